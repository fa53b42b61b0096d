//! What the C ABI costs over calling the Rust crates directly: trivial calls (the bare
//! boundary, and a store call with its handle check), a blob stat, a blob ingest and a
//! layer apply from a file descriptor; C and Rust alternate (and swap which goes first)
//! for several rounds; prints medians and the C/Rust ratio.
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
use cargohold::volumes::*;
use cargohold::{cargohold_error_free, cargohold_status, cargohold_string_free};
use cargohold_core::Digest;
use layerstore::{ApplyOptions, DriverChoice, LayerStore};
use regstore::Registry;
use regstore::drivers::Filesystem;

const ROUNDS: usize = 9;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// Time `c` and `rust` for `ROUNDS` rounds, alternating which goes first so that
/// neither always runs on a warmer cache; print the medians divided by `per` calls.
fn compare(
    what: &str,
    per: u32,
    mut c: impl FnMut() -> Duration,
    mut rust: impl FnMut() -> Duration,
) {
    let (mut cs, mut rs) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        if round % 2 == 0 {
            cs.push(c());
            rs.push(rust());
        } else {
            rs.push(rust());
            cs.push(c());
        }
    }
    let (c, r) = (
        median(cs).as_secs_f64() / f64::from(per),
        median(rs).as_secs_f64() / f64::from(per),
    );
    let show = |s: f64| match s {
        s if s < 1e-6 => format!("{:.1} ns", s * 1e9),
        s if s < 1e-3 => format!("{:.2} µs", s * 1e6),
        s => format!("{:.1} ms", s * 1e3),
    };
    println!(
        "{what:<32} C {:>10}  Rust {:>10}  C/Rust {:.3}",
        show(c),
        show(r),
        c / r
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

    // Trivial calls. First the bare boundary: cargohold_error_free(NULL) (no handle,
    // no panic guard) against a call of an empty Rust function.
    let n = 10_000_000u32;
    compare(
        "error_free(NULL)",
        n,
        || {
            let t = Instant::now();
            for _ in 0..n {
                // SAFETY: NULL is accepted and ignored.
                unsafe { cargohold_error_free(std::hint::black_box(ptr::null_mut())) };
            }
            t.elapsed()
        },
        || {
            let t = Instant::now();
            for _ in 0..n {
                drop(std::hint::black_box(Option::<Box<u8>>::None));
            }
            t.elapsed()
        },
    );

    // Then a whole trivial store call: volume capabilities through the panic boundary,
    // the live-handle check and the out-param, against the Rust trait method.
    let vol_dir = scratch.join("volumes");
    let cvol = CString::new(vol_dir.to_str().unwrap()).unwrap();
    let mut vs = ptr::null_mut();
    // SAFETY: valid string and out-param.
    let st = unsafe { cargohold_volume_store_open(cvol.as_ptr(), &mut vs, ptr::null_mut()) };
    assert_eq!(st, cargohold_status::Ok);
    let rust_vs = volstore::LocalDriver::open(&vol_dir).unwrap();
    let n = 1_000_000u32;
    compare(
        "volume capabilities",
        n,
        || {
            let mut scope = 0u32;
            let t = Instant::now();
            for _ in 0..n {
                // SAFETY: live handle, writable out-param, NULL error out.
                unsafe {
                    cargohold_volume_capabilities(
                        std::hint::black_box(vs),
                        &mut scope,
                        ptr::null_mut(),
                    )
                };
            }
            t.elapsed()
        },
        || {
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(volstore::Driver::capabilities(std::hint::black_box(
                    &rust_vs,
                )));
            }
            t.elapsed()
        },
    );
    // SAFETY: live handle, no other call in flight.
    unsafe { cargohold_volume_store_free(vs) };

    // Registry: blob ingest from a descriptor and blob stat.
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
    drop(data);
    let repo = CString::new("bench/app").unwrap();
    compare(
        "blob ingest 64 MiB (fd)",
        1,
        || {
            let f = File::open(&blob).unwrap();
            let t = Instant::now();
            // SAFETY: live handle, open descriptor, NULL optional arguments.
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
            let took = t.elapsed();
            assert_eq!(st, cargohold_status::Ok);
            rust_reg.delete_blob("bench/app", &digest).unwrap();
            took
        },
        || {
            let f = File::open(&blob).unwrap();
            let t = Instant::now();
            let up = rust_reg.start_upload("bench/app").unwrap();
            up.append(0, f).unwrap();
            let d = up.digest().unwrap();
            up.commit(&d, None).unwrap();
            let took = t.elapsed();
            rust_reg.delete_blob("bench/app", &digest).unwrap();
            took
        },
    );

    rust_reg.put_blob("bench/app", b"stat me").unwrap();
    let small = Digest::sha256(b"stat me");
    let cd = CString::new(small.to_string()).unwrap();
    let n = 20_000u32;
    compare(
        "blob stat",
        n,
        || {
            let mut size = 0u64;
            let t = Instant::now();
            for _ in 0..n {
                // SAFETY: live handle, valid strings and out-param.
                unsafe {
                    cargohold_blob_stat(reg, repo.as_ptr(), cd.as_ptr(), &mut size, ptr::null_mut())
                };
            }
            t.elapsed()
        },
        || {
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(rust_reg.stat_blob("bench/app", &small).unwrap());
            }
            t.elapsed()
        },
    );
    // SAFETY: live handle, no other call in flight.
    unsafe { cargohold_registry_free(reg) };

    // Layers: apply from a descriptor, each applied layer removed again.
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
    compare(
        "layer apply (fd)",
        1,
        || {
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
            let took = t.elapsed();
            assert_eq!(st, cargohold_status::Ok);
            // SAFETY: a string returned by cargohold, freed once.
            unsafe { cargohold_string_free(chain) };
            let l = rust_store.layers().unwrap().remove(0);
            rust_store.remove_layer(&l.chain_id).unwrap();
            took
        },
        || {
            let mut f = File::open(&tar).unwrap();
            let t = Instant::now();
            let l = rust_store
                .apply_layer(&mut f, None, &ApplyOptions::default())
                .unwrap();
            let took = t.elapsed();
            rust_store.remove_layer(&l.chain_id).unwrap();
            took
        },
    );
    // SAFETY: live handle, no other call in flight.
    unsafe { cargohold_layer_store_free(store) };
}
