//! The shared mechanisms' costs: hashing throughput, confined path resolution against a
//! plain `open`, and an atomic (durable) small-file write against a plain write.

use std::ffi::OsStr;
use std::hint::black_box;
use std::io::Write;

use cargohold_core::atomic;
use cargohold_core::root::{Confine, Dir, Resolver, Root};
use cargohold_core::{Algorithm, DigestWriter};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rustix::fs::OFlags;

fn hashing(c: &mut Criterion) {
    let data = vec![0x5au8; 16 << 20];
    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    for alg in [Algorithm::Sha256, Algorithm::Sha512] {
        g.bench_function(format!("{alg}-16MiB-streamed"), |b| {
            b.iter(|| {
                let mut w = DigestWriter::new(std::io::sink(), alg);
                for chunk in data.chunks(1 << 20) {
                    w.write_all(chunk).unwrap();
                }
                black_box(w.finish().1)
            })
        });
    }
    g.finish();
}

fn resolution(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let deep = tmp.path().join("a/b/c/d/e");
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f"), b"x").unwrap();
    let mut g = c.benchmark_group("open a/b/c/d/e/f");
    g.bench_function("std::fs::File::open (unconfined)", |b| {
        b.iter(|| black_box(std::fs::File::open(deep.join("f")).unwrap()))
    });
    for (name, resolver) in [("openat2", Resolver::Openat2), ("walk", Resolver::Walk)] {
        for confine in [Confine::InRoot, Confine::Beneath] {
            let root = Root::open_with(tmp.path(), confine, resolver).unwrap();
            g.bench_function(format!("Root::open_file {name} {confine:?}"), |b| {
                b.iter(|| black_box(root.open_file("a/b/c/d/e/f", OFlags::RDONLY).unwrap()))
            });
        }
    }
    g.finish();
}

fn atomic_writes(c: &mut Criterion) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let body = vec![b'j'; 512];
    let mut g = c.benchmark_group("write 512 B metadata file");
    g.sample_size(30);
    g.bench_function("plain write (not durable)", |b| {
        b.iter(|| std::fs::write(tmp.path().join("plain"), &body).unwrap())
    });
    g.bench_function(
        "atomic::write_file (tmpfile, fsync, rename, dir fsync)",
        |b| b.iter(|| atomic::write_file(&dir, OsStr::new("meta.json"), &body, 0o644).unwrap()),
    );
    g.finish();
}

criterion_group!(benches, hashing, resolution, atomic_writes);
criterion_main!(benches);
