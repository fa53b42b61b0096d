//! A registry:2 storage root with garbage in it, for comparing garbage collectors:
//! `gc_fixture generate DIR [REPOSITORIES] [TAGS]` (default 50 x 20) writes one, and
//! `gc_fixture collect DIR [--delete-untagged]` collects it (no grace period, as
//! registry:2's `garbage-collect`).
//!
//! Every repository gets TAGS tagged images (a unique config, a layer shared across
//! repositories, a unique layer); every odd tag is pushed twice, so the first image is
//! left untagged; two blobs are uploaded and never referenced. Every tenth repository
//! also gets a tagged multi-platform index whose two per-platform manifests are untagged,
//! and an untagged referrer (`subject`) of its first image: registry:2 2.8 with
//! `--delete-untagged` deletes those, cargohold keeps them.

use std::collections::BTreeSet;

use cargohold_core::{Digest, Result};
use regstore::drivers::Filesystem;
use regstore::{Descriptor, MediaType, Registry};
use serde_json::{Value, json};

/// What the generator knows the two collectors will disagree on (with
/// `--delete-untagged`): blobs registry:2 deletes and cargohold keeps.
#[derive(Debug, Default)]
pub struct Expected {
    /// Configs and layers of the untagged per-platform manifests of tagged indexes.
    pub index_children_blobs: BTreeSet<Digest>,
    /// Manifests, configs and layers of untagged referrers of tagged images.
    pub referrer_blobs: BTreeSet<Digest>,
    /// Untagged per-platform manifests and referrers (registry:2 deletes their revisions).
    pub kept_manifests: BTreeSet<(String, Digest)>,
    /// Tagged images.
    pub tags: usize,
}

fn desc(d: &Descriptor, mt: &str) -> Value {
    json!({"mediaType": mt, "digest": d.digest, "size": d.size})
}

/// A small layer's bytes, distinct for every `seed`.
fn bytes(seed: &str, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut i = 0u64;
    while out.len() < len {
        out.extend_from_slice(
            Digest::sha256(format!("{seed}/{i}").as_bytes())
                .hex()
                .as_bytes(),
        );
        i += 1;
    }
    out.truncate(len);
    out
}

/// Push an image (config `cfg`, `layers`) under `reference`; (manifest, its blobs).
fn push(
    reg: &Registry,
    repo: &str,
    reference: Option<&str>,
    cfg: &[u8],
    layers: &[Vec<u8>],
    extra: Option<(&str, Value)>,
) -> Result<(Digest, Vec<Digest>, usize)> {
    let c = reg.put_blob(repo, cfg)?;
    let mut ls = Vec::new();
    for l in layers {
        ls.push(reg.put_blob(repo, l)?);
    }
    let mut m = json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
        "config": desc(&c, "application/vnd.oci.image.config.v1+json"),
        "layers": ls.iter().map(|l| desc(l, "application/vnd.oci.image.layer.v1.tar")).collect::<Vec<_>>()});
    if let Some((k, v)) = extra {
        m[k] = v;
    }
    let bytes = serde_json::to_vec(&m).expect("json");
    let d = Digest::sha256(&bytes);
    let reference = reference.map_or_else(|| d.to_string(), str::to_owned);
    reg.put_manifest(repo, &reference, &bytes, None)?;
    let mut blobs = vec![c.digest];
    blobs.extend(ls.into_iter().map(|l| l.digest));
    Ok((d, blobs, bytes.len()))
}

/// Fill `reg` (see the crate doc above for the shape).
pub fn generate(reg: &Registry, repos: usize, tags: usize) -> Result<Expected> {
    let mut exp = Expected::default();
    let shared: Vec<Vec<u8>> = (0..5)
        .map(|i| bytes(&format!("base{i}"), 16 << 10))
        .collect();
    for r in 0..repos {
        let repo = format!("team{}/app{r}", r % 7);
        let mut first = None;
        for t in 0..tags {
            let tag = format!("t{t}");
            let pushes = if t % 2 == 1 { 2 } else { 1 };
            for p in 0..pushes {
                let cfg = format!(
                    "{{\"os\":\"linux\",\"repo\":\"{repo}\",\"tag\":\"{tag}\",\"push\":{p}}}"
                );
                let layers = [
                    shared[(r + t) % shared.len()].clone(),
                    bytes(&format!("{repo}/{tag}/{p}"), 2048 + 97 * t),
                ];
                let (d, _, size) = push(reg, &repo, Some(&tag), cfg.as_bytes(), &layers, None)?;
                first.get_or_insert((d, size));
            }
            exp.tags += 1;
        }
        for o in 0..2 {
            reg.put_blob(&repo, &bytes(&format!("{repo}/orphan{o}"), 4096))?;
        }
        if r % 10 != 0 {
            continue;
        }
        let mut children = Vec::new();
        for arch in ["amd64", "arm64"] {
            let cfg =
                format!("{{\"os\":\"linux\",\"architecture\":\"{arch}\",\"repo\":\"{repo}\"}}");
            let layer = bytes(&format!("{repo}/{arch}"), 8192);
            let (d, blobs, size) = push(reg, &repo, None, cfg.as_bytes(), &[layer], None)?;
            exp.index_children_blobs.extend(blobs);
            exp.kept_manifests.insert((repo.clone(), d.clone()));
            children.push(
                json!({"mediaType": MediaType::OciManifest.as_str(), "digest": d,
                "size": size, "platform": {"os": "linux", "architecture": arch}}),
            );
        }
        let index = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": MediaType::OciIndex.as_str(), "manifests": children}))
        .expect("json");
        reg.put_manifest(&repo, "multi", &index, None)?;
        exp.tags += 1;
        let (subject, subject_size) = first.expect("at least one tag");
        let subject = json!({"mediaType": MediaType::OciManifest.as_str(), "digest": subject,
            "size": subject_size});
        let cfg = format!("{{\"signature-of\":\"{repo}\"}}");
        let sig = bytes(&format!("{repo}/signature"), 512);
        let (d, blobs, _) = push(
            reg,
            &repo,
            None,
            cfg.as_bytes(),
            &[sig],
            Some(("subject", subject)),
        )?;
        exp.referrer_blobs.extend(blobs);
        exp.referrer_blobs.insert(d.clone());
        exp.kept_manifests.insert((repo, d));
    }
    Ok(exp)
}

#[allow(dead_code)] // the test that includes this file has its own main
fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!(
            "usage: gc_fixture generate DIR [REPOSITORIES] [TAGS] | collect DIR [--delete-untagged]"
        );
        std::process::exit(2)
    };
    let (Some(mode), Some(dir)) = (args.first(), args.get(1)) else {
        usage()
    };
    let reg = Registry::open(Filesystem::new(dir)?);
    let start = std::time::Instant::now();
    match mode.as_str() {
        "generate" => {
            let num = |i: usize, d: usize| args.get(i).and_then(|s| s.parse().ok()).unwrap_or(d);
            let (repos, tags) = (num(2, 50), num(3, 20));
            let exp = generate(&reg, repos, tags)?;
            println!(
                "{repos} repositories, {} tags, in {:.1} s",
                exp.tags,
                start.elapsed().as_secs_f64()
            );
        }
        "collect" => {
            let opts = regstore::gc::GcOptions {
                delete_untagged: args.iter().any(|a| a == "--delete-untagged"),
                grace: std::time::Duration::ZERO,
                ..Default::default()
            };
            let r = regstore::gc::collect(&reg, opts)?;
            println!(
                "{} manifests and {} blobs ({} bytes) deleted in {:.3} s",
                r.manifests_deleted.len(),
                r.blobs_deleted.len(),
                r.bytes_deleted,
                start.elapsed().as_secs_f64()
            );
        }
        _ => usage(),
    }
    Ok(())
}
