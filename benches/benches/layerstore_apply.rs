//! Applying a layer tar: a generated layer (2,000 small files in 40 directories, 4 files
//! of 1 MiB, 100 symlinks), plain, gzip and zstd, each applied by `archive::apply` into a
//! fresh directory, next to GNU tar extracting the same bytes (`tar -xf -` and
//! `tar -xzf -`, `--same-owner`) as the peer. Both sides write the same tree; apply also
//! computes the diff ID and the compressed digest and ends with a `syncfs` of the target
//! (`ApplyOptions::sync`), which tar does not do.
//!
//! Scratch data goes under `CARGOHOLD_BENCH_DIR` (a loop-mounted journaled fs or tmpfs,
//! see the benchmarking notes), else a temporary directory under `/var/tmp`.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cargohold_core::{Confine, Root};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use layerstore::archive::{self, ApplyOptions};

fn scratch() -> tempfile::TempDir {
    match std::env::var_os("CARGOHOLD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None if Path::new("/var/tmp").is_dir() => tempfile::tempdir_in("/var/tmp"),
        None => tempfile::tempdir(),
    }
    .unwrap()
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_size(size);
    h
}

/// The generated layer, uncompressed (about 12 MB).
fn layer() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for d in 0..40 {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        b.append_data(&mut h, format!("usr/share/d{d:02}/"), &[][..])
            .unwrap();
    }
    // Mixed text-like content, so that compression ratios resemble a real layer.
    let words = b"layer apply bench content usr share lib bin etc var ";
    for i in 0..2000usize {
        let size = 100 + (i * 7919) % 8000;
        let data: Vec<u8> = (0..size)
            .map(|j| words[(j * 31 + i) % words.len()] ^ ((j / 97) as u8 & 1))
            .collect();
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        let name = format!("usr/share/d{:02}/file-{i:04}", i % 40);
        b.append_data(&mut h, name, &data[..]).unwrap();
    }
    for i in 0..4u32 {
        let data: Vec<u8> = (0..1u32 << 20)
            .map(|j| (j.wrapping_mul(2_654_435_761).rotate_left(i) >> 24) as u8 & 0x3f)
            .collect();
        let mut h = header(tar::EntryType::Regular, 0o755, data.len() as u64);
        b.append_data(&mut h, format!("usr/lib/big-{i}.so"), &data[..])
            .unwrap();
    }
    for i in 0..100 {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(
            &mut h,
            format!("usr/share/d{:02}/link-{i}", i % 40),
            format!("file-{i:04}"),
        )
        .unwrap();
    }
    b.into_inner().unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// Extract `data` with GNU tar into `dir`.
fn gnu_tar(data: &[u8], flags: &str, dir: &Path) {
    let mut child = Command::new("tar")
        .args([flags, "-", "--same-owner", "-C"])
        .arg(dir)
        .stdin(Stdio::piped())
        .spawn()
        .expect("GNU tar is installed");
    child.stdin.take().unwrap().write_all(data).unwrap();
    assert!(child.wait().unwrap().success());
}

fn apply(c: &mut Criterion) {
    let tmp = scratch();
    let plain = layer();
    let variants = [
        ("plain", plain.clone(), Some("-xf")),
        ("gzip", gzip(&plain), Some("-xzf")),
        ("zstd", zstd::encode_all(&plain[..], 3).unwrap(), None),
    ];
    let fresh = || tempfile::tempdir_in(tmp.path()).unwrap();
    let mut g = c.benchmark_group("layer apply (2,000 files + 4 MiB)");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    for (name, data, tar_flags) in &variants {
        g.bench_function(format!("archive::apply {name}"), |b| {
            b.iter_batched(
                fresh,
                |dir| {
                    let root = Root::open(dir.path(), Confine::InRoot).unwrap();
                    let applied =
                        archive::apply(&data[..], &root, &[], &ApplyOptions::default()).unwrap();
                    assert_eq!(applied.uncompressed_size, plain.len() as u64);
                    dir
                },
                BatchSize::PerIteration,
            )
        });
        if let Some(flags) = tar_flags {
            g.bench_function(format!("peer: tar {flags} {name}"), |b| {
                b.iter_batched(
                    fresh,
                    |dir| {
                        gnu_tar(data, flags, dir.path());
                        dir
                    },
                    BatchSize::PerIteration,
                )
            });
        }
    }
    g.finish();
}

criterion_group!(benches, apply);
criterion_main!(benches);
