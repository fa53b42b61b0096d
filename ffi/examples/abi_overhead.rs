//! What the C ABI costs over calling the Rust crates directly: a trivial call, a blob
//! stat, a layer apply from a file descriptor and a blob ingest from a descriptor, each
//! alternated C/Rust for several rounds; prints medians and the C/Rust ratio.
//!
//! Usage: cargo run --release -p cargohold-ffi --example abi_overhead -- SCRATCH_DIR [LAYER_TAR]
//! (put SCRATCH_DIR on tmpfs or a loop-mounted filesystem; LAYER_TAR defaults to a
//! generated tar of 2000 small files).

use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::ptr;
use std::time::{Duration, Instant};

use cargohold::layers::*;
use cargohold::registry::*;
use cargohold::{cargohold_error_free, cargohold_status, cargohold_string_free};
use cargohold_core::Digest;
use layerstore::{ApplyOptions, DriverChoice, LayerStore};
use regstore::Registry;
use regstore::drivers::Filesystem;

const ROUNDS: usize = 7;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn report(what: &str, c: Vec<Duration>, rust: Vec<Duration>, per: u32) {
    let (c, r) = (median(c) / per, median(rust) / per);
    println!(
        "{what:<28} C {:>12.3?}  Rust {:>12.3?}  C/Rust {:.3}",
        c,
        r,
        c.as_secs_f64() / r.as_secs_f64()
    );
}

fn make_tar(dir: &Path) -> PathBuf {
    let src = dir.join("tar-src");
    for i in 0..2000 {
        let d = src.join(format!("d{}", i % 50));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}")), vec![b'x'; 1000 + i]).unwrap();
    }
    let tar = dir.join("layer.tar");
    let ok = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["-cf"])
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap()
        .success();
    assert!(ok, "tar failed");
    std::fs::remove_dir_all(&src).unwrap();
    tar
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let scratch = PathBuf::from(
        args.get(1)
            .expect("usage: abi_overhead SCRATCH_DIR [LAYER_TAR]"),
    );
    std::fs::create_dir_all(&scratch).unwrap();
    let tar = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(|| make_tar(&scratch));

    // A trivial call: cargohold_error_free(NULL) against an empty Rust function.
    let n = 10_000_000u32;
    let (mut c, mut r) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: NULL is accepted and ignored.
            unsafe { cargohold_error_free(std::hint::black_box(ptr::null_mut())) };
        }
        c.push(t.elapsed());
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(Option::<Box<u8>>::None);
        }
        r.push(t.elapsed());
    }
    report("error_free(NULL)", c, r, n);

    // Registry: blob stat and blob ingest.
    let reg_dir = scratch.join("registry");
    let creg = CString::new(reg_dir.to_str().unwrap()).unwrap();
    let mut reg = ptr::null_mut();
    // SAFETY: valid string and out-param.
    let st = unsafe { cargohold_registry_open(creg.as_ptr(), &mut reg, ptr::null_mut()) };
    assert_eq!(st, cargohold_status::Ok);
    let rust_reg = Registry::open(Filesystem::new(&reg_dir).unwrap());
    let blob = scratch.join("blob");
    let data: Vec<u8> = (0..64u32 << 20).map(|i| (i * 7 + i / 4096) as u8).collect();
    std::fs::write(&blob, &data).unwrap();
    let digest = Digest::sha256(&data);
    let repo = CString::new("bench/app").unwrap();
    let (mut c, mut r) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let f = File::open(&blob).unwrap();
        let t = Instant::now();
        // SAFETY: live handle, open descriptor, NULL optional out-params.
        let st = unsafe {
            cargohold_blob_put_fd(
                reg,
                repo.as_ptr(),
                f.as_raw_fd(),
                ptr::null(),
                None,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        c.push(t.elapsed());
        assert_eq!(st, cargohold_status::Ok);
        rust_reg.delete_blob("bench/app", &digest).unwrap();
        let f = File::open(&blob).unwrap();
        let t = Instant::now();
        let up = rust_reg.start_upload("bench/app").unwrap();
        up.append(0, f).unwrap();
        let d = up.digest().unwrap();
        up.commit(&d, None).unwrap();
        r.push(t.elapsed());
    }
    report("blob ingest 64 MiB (fd)", c, r, 1);

    let cd = CString::new(digest.to_string()).unwrap();
    let n = 20_000u32;
    let (mut c, mut r) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let mut size = 0u64;
        let t = Instant::now();
        for _ in 0..n {
            // SAFETY: live handle, valid strings and out-param.
            unsafe {
                cargohold_blob_stat(reg, repo.as_ptr(), cd.as_ptr(), &mut size, ptr::null_mut())
            };
        }
        c.push(t.elapsed());
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(rust_reg.stat_blob("bench/app", &digest).unwrap());
        }
        r.push(t.elapsed());
    }
    report("blob stat", c, r, n);
    // SAFETY: live handle, no other call in flight.
    unsafe { cargohold_registry_free(reg) };

    // Layers: apply from a descriptor, then remove, alternating C and Rust.
    let layers = scratch.join("layers");
    let cl = CString::new(layers.to_str().unwrap()).unwrap();
    let mut store = ptr::null_mut();
    // SAFETY: valid string and out-param.
    let st = unsafe {
        cargohold_layer_store_open(
            cl.as_ptr(),
            CARGOHOLD_LAYER_DRIVER_VFS,
            &mut store,
            ptr::null_mut(),
        )
    };
    assert_eq!(st, cargohold_status::Ok);
    let rust_store = LayerStore::open(&layers, DriverChoice::Vfs).unwrap();
    let (mut c, mut r) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let f = File::open(&tar).unwrap();
        let mut chain = ptr::null_mut();
        let t = Instant::now();
        // SAFETY: live handle, open descriptor, writable out-param.
        let st = unsafe {
            cargohold_layer_apply_fd(
                store,
                f.as_raw_fd(),
                ptr::null(),
                ptr::null(),
                None,
                ptr::null_mut(),
                &mut chain,
                ptr::null_mut(),
            )
        };
        c.push(t.elapsed());
        assert_eq!(st, cargohold_status::Ok);
        // SAFETY: a string returned by cargohold, freed once.
        unsafe { cargohold_string_free(chain) };
        let l = rust_store.layers().unwrap().remove(0);
        rust_store.remove_layer(&l.chain_id).unwrap();
        let mut f = File::open(&tar).unwrap();
        let t = Instant::now();
        let l = rust_store
            .apply_layer(&mut f, None, &ApplyOptions::default())
            .unwrap();
        r.push(t.elapsed());
        rust_store.remove_layer(&l.chain_id).unwrap();
    }
    report("layer apply (fd)", c, r, 1);
    // SAFETY: live handle, no other call in flight.
    unsafe { cargohold_layer_store_free(store) };
}
