//! The layer store's bookkeeping costs: a container prepare+remove on vfs (against
//! `cp -a` + `rm -rf` of the same tree), an apply that hits an existing layer (with and
//! without a known diff ID), listing many layers, and a container's prepare+remove in a
//! store of 500 layers (a removal finds children through the index, not by reading every
//! record, so this should cost what it costs in an empty store), and a stack of four
//! layers applied with each synced, with the sync deferred below the top, and with all
//! deferred.
//!
//! Scratch data goes under `CARGOHOLD_BENCH_DIR` (a loop-mounted journaled fs, see the
//! benchmarking notes), else a temporary directory.

use std::hint::black_box;
use std::io::Cursor;
use std::process::Command;

use cargohold_core::Digest;
use criterion::{Criterion, criterion_group, criterion_main};
use layerstore::{ApplyOptions, Driver, DriverChoice, LayerStore};

fn scratch() -> tempfile::TempDir {
    match std::env::var_os("CARGOHOLD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap()
}

fn tar_of(tag: u32, files: usize, size: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..files {
        let data = vec![(tag % 251) as u8; size];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("d{}/f-{tag}-{i}", i % 10), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn containers(c: &mut Criterion) {
    let tmp = scratch();
    let store = LayerStore::open(tmp.path().join("store"), DriverChoice::Vfs).unwrap();
    let tar = tar_of(1, 200, 4096);
    let layer = store
        .apply_layer(&mut Cursor::new(&tar), None, &ApplyOptions::default())
        .unwrap();
    let mut g = c.benchmark_group("vfs container");
    g.sample_size(20);
    g.bench_function("prepare+remove on empty", |b| {
        b.iter(|| {
            store.prepare("c", None, Default::default()).unwrap();
            store.remove("c").unwrap();
        })
    });
    g.bench_function("prepare+remove on a 200-file layer", |b| {
        b.iter(|| {
            store
                .prepare_container("c", Some(&layer.chain_id), Default::default())
                .unwrap();
            store.remove("c").unwrap();
        })
    });
    let src = store.layer_dir(&layer.chain_id).unwrap();
    let dst = tmp.path().join("cp-copy");
    g.bench_function("peer: cp -a + rm -rf of the same tree", |b| {
        b.iter(|| {
            let ok = Command::new("cp")
                .arg("-a")
                .arg(&src)
                .arg(&dst)
                .status()
                .unwrap();
            assert!(ok.success());
            std::fs::remove_dir_all(&dst).unwrap();
        })
    });
    g.finish();
}

fn dedup(c: &mut Criterion) {
    let tmp = scratch();
    let store = LayerStore::open(tmp.path().join("store"), DriverChoice::Vfs).unwrap();
    let tar = tar_of(2, 200, 4096);
    let layer = store
        .apply_layer(&mut Cursor::new(&tar), None, &ApplyOptions::default())
        .unwrap();
    let known = ApplyOptions {
        expected_diff_id: Some(layer.diff_id.clone()),
        ..Default::default()
    };
    let mut g = c.benchmark_group("apply existing layer");
    g.sample_size(20);
    g.bench_function("known diff_id (no read)", |b| {
        b.iter(|| {
            black_box(
                store
                    .apply_layer(&mut std::io::empty(), None, &known)
                    .unwrap(),
            )
        })
    });
    g.bench_function("unknown diff_id (extract, discard)", |b| {
        b.iter(|| {
            black_box(
                store
                    .apply_layer(&mut Cursor::new(&tar), None, &ApplyOptions::default())
                    .unwrap(),
            )
        })
    });
    g.finish();
}

fn listing(c: &mut Criterion) {
    let tmp = scratch();
    let store = LayerStore::open(tmp.path().join("store"), DriverChoice::Vfs).unwrap();
    let mut parent: Option<Digest> = None;
    for i in 0..500 {
        let tar = tar_of(1000 + i, 1, 16);
        let l = store
            .apply_layer(
                &mut Cursor::new(&tar),
                parent.as_ref(),
                &ApplyOptions::default(),
            )
            .unwrap();
        // Chains of 10, like images.
        parent = if i % 10 == 9 { None } else { Some(l.chain_id) };
    }
    let mut g = c.benchmark_group("list");
    g.sample_size(20);
    g.bench_function("layers() of 500", |b| {
        b.iter(|| assert_eq!(black_box(store.layers().unwrap()).len(), 500))
    });
    g.bench_function(
        "container prepare+remove on empty, in a store of 500 layers",
        |b| {
            b.iter(|| {
                store.prepare("c", None, Default::default()).unwrap();
                store.remove("c").unwrap();
            })
        },
    );
    g.finish();
}

/// Four 200-file layers applied as a stack into a fresh store: every layer synced
/// (four `syncfs`), the three below deferred and the top synced (one `syncfs` that
/// makes the whole chain durable, as `container create --image` does), and all four
/// deferred (none).
fn stacks(c: &mut Criterion) {
    let tmp = scratch();
    let tars: Vec<Vec<u8>> = (0..4).map(|i| tar_of(2000 + i, 200, 16 << 10)).collect();
    let mut g = c.benchmark_group("apply a 4-layer stack");
    g.sample_size(10);
    for (name, deferred) in [
        ("each layer synced", 0),
        ("three deferred, top synced", 3),
        ("all deferred", 4),
    ] {
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    let dir = tempfile::tempdir_in(tmp.path()).unwrap();
                    let store = LayerStore::open(dir.path(), DriverChoice::Vfs).unwrap();
                    (dir, store)
                },
                |(dir, store)| {
                    let mut parent: Option<Digest> = None;
                    for (i, tar) in tars.iter().enumerate() {
                        let opts = ApplyOptions {
                            defer_sync: i < deferred,
                            ..Default::default()
                        };
                        let l = store
                            .apply_layer(&mut Cursor::new(tar), parent.as_ref(), &opts)
                            .unwrap();
                        parent = Some(l.chain_id);
                    }
                    // Removed outside the timed part.
                    (dir, store)
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, containers, dedup, listing, stacks);
criterion_main!(benches);
