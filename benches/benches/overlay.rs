//! The overlay driver's costs: a container's prepare+mount+unmount+remove on a 3-layer
//! image against a raw overlay `mount(2)`+`umount2(2)` of the same directories, the
//! commit of a one-file change, and the mount+unmount of a 500-layer stack through the
//! new mount API and through the `mount(2)` short-name fallback.
//!
//! With `CARGOHOLD_CORPUS` set (a corpus made by the project's make-corpus.sh), also
//! the commit of a one-file change on the debootstrap root filesystem
//! (`layers/1-base.tar`) through `LayerStore::commit_container` (export of the upper dir,
//! hashing, storing the layer durably) against `tar -c` of the same upper dir and a
//! naive full-tree diff (`diff -rq` of the lower against the merged tree).
//!
//! Needs root. Scratch data goes under `CARGOHOLD_BENCH_DIR` (a loop-mounted journaled
//! fs, see the benchmarking notes), else a temporary directory.

use std::ffi::CString;
use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use layerstore::drivers::overlay::mount::{MountApi, mount_overlay};
use layerstore::drivers::overlay::{BASE_OPTIONS, Overlay};
use layerstore::{ApplyOptions, Driver, LayerStore, Mount};
use rustix::mount::{MountFlags, UnmountFlags};

fn scratch() -> tempfile::TempDir {
    match std::env::var_os("CARGOHOLD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap()
}

/// An overlay store with a 3-layer image (`l0` ← `l1` ← `l2`, 50 files each).
fn image(root: &Path, mnt: &Path) -> LayerStore {
    let store = LayerStore::open_with(root, Box::new(Overlay::new())).unwrap();
    let mut parent: Option<String> = None;
    for l in 0..3 {
        let key = format!("build-{l}");
        store
            .prepare(&key, parent.as_deref(), Default::default())
            .unwrap();
        store.mount(&key, mnt).unwrap();
        for i in 0..50 {
            let d = mnt.join(format!("d{}", i % 5));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("f-{l}-{i}")), vec![l as u8; 4096]).unwrap();
        }
        store.unmount(mnt).unwrap();
        let name = format!("l{l}");
        store.commit(&name, &key, Default::default()).unwrap();
        parent = Some(name);
    }
    store
}

fn lifecycle(c: &mut Criterion) {
    assert!(
        rustix::process::geteuid().is_root(),
        "overlay benches mount: run as root"
    );
    let tmp = scratch();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let store = image(&tmp.path().join("store"), &mnt);

    // The same directories, mounted raw: a container's upper/work next to the layers.
    let spec = store
        .prepare("raw", Some("l2"), Default::default())
        .unwrap();
    let data = CString::new(
        spec[0]
            .options
            .iter()
            .filter(|o| *o != "rw")
            .cloned()
            .collect::<Vec<_>>()
            .join(","),
    )
    .unwrap();

    let mut g = c.benchmark_group("overlay container");
    g.sample_size(50);
    g.bench_function("prepare+mount+unmount+remove on 3 layers", |b| {
        b.iter(|| {
            store.prepare("c", Some("l2"), Default::default()).unwrap();
            store.mount("c", &mnt).unwrap();
            store.unmount(&mnt).unwrap();
            store.remove("c").unwrap();
        })
    });
    g.bench_function("prepare+remove on 3 layers (no mount)", |b| {
        b.iter(|| {
            store.prepare("c", Some("l2"), Default::default()).unwrap();
            store.remove("c").unwrap();
        })
    });
    g.bench_function("LayerStore mount+unmount of a prepared container", |b| {
        b.iter(|| {
            store.mount("raw", &mnt).unwrap();
            store.unmount(&mnt).unwrap();
        })
    });
    g.bench_function("raw mount(2)+umount2(2) of the same dirs", |b| {
        b.iter(|| {
            rustix::mount::mount(
                "overlay",
                &mnt,
                "overlay",
                MountFlags::empty(),
                Some(&*data),
            )
            .unwrap();
            rustix::mount::unmount(&mnt, UnmountFlags::empty()).unwrap();
        })
    });
    g.bench_function(
        "driver mount, mounts()+mount_overlay+umount2 of the same dirs",
        |b| {
            b.iter(|| {
                let spec = store.mounts("raw").unwrap();
                mount_overlay(&spec[0], &mnt, MountApi::Auto).unwrap();
                rustix::mount::unmount(&mnt, UnmountFlags::empty()).unwrap();
            })
        },
    );
    g.bench_function("driver mount through mount(2), same dirs", |b| {
        b.iter(|| {
            let spec = store.mounts("raw").unwrap();
            mount_overlay(&spec[0], &mnt, MountApi::Legacy).unwrap();
            rustix::mount::unmount(&mnt, UnmountFlags::empty()).unwrap();
        })
    });
    g.bench_function("commit of a one-file change", |b| {
        let mut n = 0u64;
        b.iter(|| {
            n += 1;
            let key = format!("w{n}");
            store.prepare(&key, Some("l2"), Default::default()).unwrap();
            store.mount(&key, &mnt).unwrap();
            fs::write(mnt.join("d0/f-0-0"), b"changed").unwrap();
            store.unmount(&mnt).unwrap();
            let name = format!("committed-{n}");
            black_box(store.commit(&name, &key, Default::default())).unwrap();
            store.remove(&name).unwrap();
        })
    });
    g.finish();
    store.remove("raw").unwrap();
}

/// 500 lowers under a path longer than 100 bytes, one file each.
fn deep(base: &Path) -> Mount {
    let lowers: Vec<PathBuf> = (0..500)
        .map(|i| {
            let d = base.join(format!("snapshots/{i:016x}/fs"));
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join(format!("f{i}")), b"x").unwrap();
            d
        })
        .collect();
    let mut options: Vec<String> = BASE_OPTIONS.iter().map(|s| (*s).to_owned()).collect();
    options.push("ro".to_owned());
    Mount {
        kind: "overlay".to_owned(),
        source: PathBuf::from("overlay"),
        target: None,
        options,
        lowerdirs: lowers,
    }
}

fn deep_stack(c: &mut Criterion) {
    let tmp = scratch();
    let base = tmp.path().join("a-store-root-with-a-long-name-".repeat(4));
    let m = deep(&base);
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let mut g = c.benchmark_group("overlay 500 layers");
    g.sample_size(30);
    for (label, api) in [
        ("mount+unmount, new mount API", MountApi::New),
        ("mount+unmount, mount(2) short names", MountApi::Legacy),
    ] {
        g.bench_function(label, |b| {
            b.iter(|| {
                mount_overlay(&m, &mnt, api).unwrap();
                rustix::mount::unmount(&mnt, UnmountFlags::empty()).unwrap();
            })
        });
    }
    g.finish();
}

/// Run `cmd`, which must exit with one of `ok` (diff says 1 when trees differ).
fn run(cmd: &mut Command, ok: &[i32]) {
    let st = cmd.status().unwrap();
    assert!(ok.contains(&st.code().unwrap_or(-1)), "{cmd:?}: {st}");
}

/// Commit of a one-file change on the debootstrap root filesystem, against `tar -c` of
/// the upper dir and `diff -rq` of the lower against the merged tree.
fn corpus_commit(c: &mut Criterion) {
    let Some(corpus) = std::env::var_os("CARGOHOLD_CORPUS") else {
        eprintln!("CARGOHOLD_CORPUS not set: no commit on the debootstrap root filesystem");
        return;
    };
    let tmp = scratch();
    let mnt = tmp.path().join("mnt");
    fs::create_dir(&mnt).unwrap();
    let store = LayerStore::open_with(tmp.path().join("store"), Box::new(Overlay::new())).unwrap();
    let mut tar = fs::File::open(Path::new(&corpus).join("layers/1-base.tar")).unwrap();
    let base = store
        .apply_layer(&mut tar, None, &ApplyOptions::default())
        .unwrap();
    let change = |key: &str| {
        store
            .prepare_container(key, Some(&base.chain_id), Default::default())
            .unwrap();
        store.mount(key, &mnt).unwrap();
        fs::write(mnt.join("etc/hostname"), format!("{key}\n")).unwrap();
    };

    let mut g = c.benchmark_group("overlay commit on rootfs");
    g.sample_size(20);
    g.bench_function("commit_container of a one-file change", |b| {
        let mut n = 0u64;
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let key = format!("w{n}");
                change(&key);
                store.unmount(&mnt).unwrap();
                let t = Instant::now();
                let layer = black_box(store.commit_container(&key, Default::default())).unwrap();
                spent += t.elapsed();
                store.remove_layer(&layer.chain_id).unwrap();
            }
            spent
        })
    });

    // The peers read the same container: its upper dir, and the merged tree.
    change("peer");
    let rec = store.snapshots().get("peer").unwrap();
    let upper = store.snapshots().content_roots(&rec).unwrap()[0]
        .path()
        .to_path_buf();
    let lower = store.layer_dir(&base.chain_id).unwrap();
    let out = tmp.path().join("upper.tar");
    g.bench_function("tar -c of the upper dir", |b| {
        b.iter(|| {
            run(
                Command::new("tar")
                    .arg("-C")
                    .arg(&upper)
                    .arg("-cf")
                    .arg(&out)
                    .arg("."),
                &[0],
            )
        })
    });
    g.sample_size(10);
    g.bench_function("diff -rq lower vs merged tree", |b| {
        b.iter(|| {
            run(
                Command::new("diff")
                    .args(["-rq", "--no-dereference"])
                    .arg(&lower)
                    .arg(&mnt)
                    .stdout(std::process::Stdio::null()),
                &[1],
            )
        })
    });
    g.finish();
    store.unmount(&mnt).unwrap();
    store.remove("peer").unwrap();
    store.remove_layer(&base.chain_id).unwrap();
}

criterion_group!(benches, lifecycle, deep_stack, corpus_commit);
criterion_main!(benches);
