//! The btrfs driver against the other two on the same btrfs filesystem: a container
//! prepare+remove on an image (btrfs: one snapshot; vfs: a reflink copy of the tree;
//! overlay: two mkdirs), and the commit of a one-file change.
//!
//! The image is the corpus's debootstrap layer when `CARGOHOLD_CORPUS` is set, else a
//! generated 2,000-file layer. Needs root and `CARGOHOLD_BENCH_BTRFS` naming a directory
//! on a mounted btrfs (benches/compare-btrfs.sh makes one on a loop device).

use std::io::Cursor;
use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use layerstore::drivers::Backend;
use layerstore::drivers::btrfs::Btrfs;
use layerstore::drivers::overlay::Overlay;
use layerstore::drivers::vfs::Vfs;
use layerstore::{ApplyOptions, Driver, LayerStore};

fn image() -> Vec<u8> {
    if let Some(c) = std::env::var_os("CARGOHOLD_CORPUS") {
        return std::fs::read(PathBuf::from(c).join("layers/1-base.tar")).unwrap();
    }
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..2000 {
        let data = vec![(i % 251) as u8; 4096 + (i % 7) * 1000];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("usr/d{}/f{i}", i % 40), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

fn drivers(c: &mut Criterion) {
    let Some(base) = std::env::var_os("CARGOHOLD_BENCH_BTRFS") else {
        eprintln!("btrfs: skipped (set CARGOHOLD_BENCH_BTRFS to a directory on btrfs)");
        return;
    };
    let tmp = tempfile::tempdir_in(base).unwrap();
    let tar = image();
    let mut g = c.benchmark_group("container on an image, same btrfs");
    g.sample_size(10);
    let backends: Vec<(&str, Box<dyn Backend>)> = vec![
        ("btrfs", Box::new(Btrfs::for_store(tmp.path()).unwrap())),
        ("vfs (reflink)", Box::new(Vfs)),
        ("overlay", Box::new(Overlay::new())),
    ];
    for (name, backend) in backends {
        let store = LayerStore::open_with(tmp.path().join(name), backend).unwrap();
        let layer = store
            .apply_layer(&mut Cursor::new(&tar), None, &ApplyOptions::default())
            .unwrap();
        g.bench_function(format!("{name}: prepare+remove"), |b| {
            b.iter(|| {
                store
                    .prepare_container("c", Some(&layer.chain_id), Default::default())
                    .unwrap();
                store.remove("c").unwrap();
            })
        });
        g.bench_function(format!("{name}: commit of a one-file change"), |b| {
            b.iter_batched(
                || {
                    let mounts = store
                        .prepare_container("c", Some(&layer.chain_id), Default::default())
                        .unwrap();
                    let target = tmp.path().join("mnt");
                    std::fs::create_dir_all(&target).unwrap();
                    store.mount("c", &target).unwrap();
                    std::fs::write(target.join("etc-new-file"), b"one change\n").unwrap();
                    store.unmount(&target).unwrap();
                    drop(mounts);
                },
                |()| {
                    let l = store.commit_container("c", Default::default()).unwrap();
                    store.remove_layer(&l.chain_id).unwrap();
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group!(benches, drivers);
criterion_main!(benches);
