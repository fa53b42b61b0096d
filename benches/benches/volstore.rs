//! The volume store: create, get, list and remove in a store of 10,000 volumes, and
//! the mount and unmount of a tmpfs volume against the raw `mount(2)`/`umount(2)` of
//! a tmpfs (the peer: what the driver adds is its bookkeeping).
//!
//! Scratch data goes under `CARGOHOLD_BENCH_DIR` (a loop-mounted journaled fs, see the
//! benchmarking notes), else a temporary directory. The mount group needs root.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, criterion_group, criterion_main};
use volstore::{Driver, LocalDriver, Options};

const VOLUMES: usize = 10_000;

fn scratch() -> tempfile::TempDir {
    match std::env::var_os("CARGOHOLD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap()
}

fn many(c: &mut Criterion) {
    let dir = scratch();
    let d = LocalDriver::open(dir.path().join("volumes")).unwrap();
    for i in 0..VOLUMES {
        d.create(&format!("vol-{i:05}"), &Options::new()).unwrap();
    }
    let mut g = c.benchmark_group("volstore_10k");
    g.sample_size(20);
    g.bench_function("list", |b| b.iter(|| black_box(d.list().unwrap().len())));
    g.bench_function("get", |b| b.iter(|| black_box(d.get("vol-05000").unwrap())));
    let n = AtomicU64::new(0);
    g.bench_function("create", |b| {
        b.iter(|| {
            let i = n.fetch_add(1, Ordering::Relaxed);
            d.create(&format!("new-{i}"), &Options::new()).unwrap()
        })
    });
    // Remove what "create" made, one per iteration, then more fresh ones.
    let made = n.load(Ordering::Relaxed);
    let r = AtomicU64::new(0);
    g.bench_function("remove", |b| {
        b.iter_batched(
            || {
                let i = r.fetch_add(1, Ordering::Relaxed);
                let name = format!("new-{i}");
                if i >= made {
                    d.create(&name, &Options::new()).unwrap();
                }
                name
            },
            |name| d.remove(&name).unwrap(),
            criterion::BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn tmpfs_mounts(c: &mut Criterion) {
    if !rustix::process::geteuid().is_root() {
        eprintln!("volstore_mount: skipped (mounting needs root)");
        return;
    }
    let dir = scratch();
    let d = LocalDriver::open(dir.path().join("volumes")).unwrap();
    let opts: Options = [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=16m")]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    d.create("scratch", &opts).unwrap();
    let raw = dir.path().join("raw");
    std::fs::create_dir(&raw).unwrap();
    let mut g = c.benchmark_group("volstore_mount");
    g.bench_function("tmpfs_volume_mount_unmount", |b| {
        b.iter(|| {
            d.mount("scratch", "bench").unwrap();
            d.unmount("scratch", "bench").unwrap();
        })
    });
    g.bench_function("raw_tmpfs_mount_umount", |b| {
        b.iter(|| {
            rustix::mount::mount(
                "tmpfs",
                &raw,
                "tmpfs",
                rustix::mount::MountFlags::empty(),
                c"size=16m",
            )
            .unwrap();
            rustix::mount::unmount(&raw, rustix::mount::UnmountFlags::empty()).unwrap();
        })
    });
    g.finish();
    d.remove("scratch").unwrap();
}

criterion_group!(benches, many, tmpfs_mounts);
criterion_main!(benches);
