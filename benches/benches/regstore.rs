//! The registry store's hot paths: ingest of a 64 MiB blob through a resumable upload
//! (stream, hash, write, commit), a blob stat and a manifest get by tag.
//!
//! Scratch data goes under `CARGOHOLD_BENCH_DIR` (tmpfs or a loop-mounted journaled fs,
//! see the benchmarking notes), else a temporary directory.

use std::hint::black_box;

use cargohold_core::Digest;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use regstore::drivers::Filesystem;
use regstore::{MediaType, Registry};

fn scratch() -> tempfile::TempDir {
    match std::env::var_os("CARGOHOLD_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap()
}

fn regstore(c: &mut Criterion) {
    let dir = scratch();
    let reg = Registry::open(Filesystem::new(dir.path()).unwrap());
    let blob: Vec<u8> = (0..(64u32 << 20))
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let digest = Digest::sha256(&blob);

    let mut g = c.benchmark_group("regstore");
    g.sample_size(10);
    g.throughput(Throughput::Bytes(blob.len() as u64));
    g.bench_function("ingest_64MiB_upload", |b| {
        b.iter(|| {
            let up = reg.start_upload("bench/ingest").unwrap();
            up.append(0, &blob[..]).unwrap();
            up.commit(&digest, Some(blob.len() as u64)).unwrap();
            reg.delete_blob("bench/ingest", &digest).unwrap();
            reg.driver()
                .delete(&regstore::layout::blob_data(&digest))
                .unwrap();
        })
    });
    g.finish();

    let layer = reg.put_blob("bench/app", &blob[..1 << 20]).unwrap();
    let cfg = reg.put_blob("bench/app", br#"{"os":"linux"}"#).unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg.digest, "size": cfg.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer.digest, "size": layer.size}]}))
    .unwrap();
    reg.put_manifest("bench/app", "v1", &manifest, None)
        .unwrap();
    let mut g = c.benchmark_group("regstore");
    g.bench_function("stat_blob", |b| {
        b.iter(|| black_box(reg.stat_blob("bench/app", &layer.digest).unwrap()))
    });
    g.bench_function("get_manifest_by_tag", |b| {
        b.iter(|| black_box(reg.get_manifest("bench/app", "v1").unwrap()))
    });
    g.finish();
}

criterion_group!(benches, regstore);
criterion_main!(benches);
