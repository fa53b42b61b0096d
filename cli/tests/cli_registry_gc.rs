//! Without these, `cargohold registry gc` could delete on a dry run, ignore its grace
//! period or --delete-untagged, and `registry fsck` could exit 0 on a damaged store
//! (scripts would never learn), or fail to quarantine what --repair is asked to.

use std::path::Path;

use cargohold_core::Digest;
use regstore::drivers::Filesystem;
use regstore::{Descriptor, MediaType, Registry, layout};
use serde_json::{Value, json};

mod support;
use support::{cargohold, ok};

fn desc(d: &Descriptor) -> Value {
    json!({"mediaType": "application/octet-stream", "digest": d.digest, "size": d.size})
}

/// The registry store under the CLI's root (`ROOT/registry`), written with the library.
fn store(root: &Path) -> Registry {
    Registry::open(Filesystem::new(root.join("registry")).unwrap())
}

/// A tagged image with `layer`; returns (manifest, layer digest).
fn image(reg: &Registry, repo: &str, tag: &str, layer: &[u8]) -> (Digest, Digest) {
    let cfg = reg
        .put_blob(repo, format!("{{\"t\":\"{tag}\"}}").as_bytes())
        .unwrap();
    let l = reg.put_blob(repo, layer).unwrap();
    let m = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": desc(&cfg), "layers": [desc(&l)]}))
    .unwrap();
    (reg.put_manifest(repo, tag, &m, None).unwrap(), l.digest)
}

fn exists(reg: &Registry, d: &Digest) -> bool {
    reg.driver().stat(&layout::blob_data(d)).is_ok()
}

fn json_of(out: String) -> Value {
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn digests(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gc_dry_run_deletes_nothing_then_collects_and_honours_grace_and_untagged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let reg = store(root);
    let (old, old_layer) = image(&reg, "demo/app", "v1", b"old layer");
    let (new, new_layer) = image(&reg, "demo/app", "v1", b"new layer");
    let orphan = reg.put_blob("demo/app", b"orphan").unwrap();

    // The default grace period spares the young orphan.
    let spared = json_of(ok(cargohold(root, &["--json", "registry", "gc"])));
    assert_eq!(
        digests(&spared["blobs_spared"]),
        [orphan.digest.to_string()]
    );
    assert!(spared["blobs_deleted"].as_array().unwrap().is_empty());
    assert!(exists(&reg, &orphan.digest));

    let dry = json_of(ok(cargohold(
        root,
        &["--json", "registry", "gc", "--dry-run", "--grace", "0"],
    )));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(digests(&dry["blobs_deleted"]), [orphan.digest.to_string()]);
    assert_eq!(dry["bytes_freed"], orphan.size);
    assert!(exists(&reg, &orphan.digest), "a dry run deleted");

    let human = ok(cargohold(root, &["registry", "gc", "--grace", "0"]));
    assert!(human.contains("blobs deleted"), "{human}");
    assert!(
        human.contains(&format!("deleted blob {}", orphan.digest)),
        "{human}"
    );
    assert!(!exists(&reg, &orphan.digest));
    assert!(
        exists(&reg, &old_layer),
        "untagged kept without --delete-untagged"
    );

    let untagged = json_of(ok(cargohold(
        root,
        &[
            "--json",
            "registry",
            "gc",
            "--delete-untagged",
            "--grace",
            "0",
        ],
    )));
    assert_eq!(
        untagged["manifests_deleted"],
        json!([{"repository": "demo/app", "digest": old}])
    );
    assert!(!exists(&reg, &old_layer));
    assert!(exists(&reg, &new_layer));
    assert_eq!(reg.resolve_tag("demo/app", "v1").unwrap(), new);

    // A bad option is a usage error.
    let bad = cargohold(root, &["registry", "gc", "--grace", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn fsck_exits_1_on_damage_and_repair_quarantines() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let reg = store(root);
    let (_, layer) = image(&reg, "demo/app", "v1", b"a layer");
    let spare = reg.put_blob("demo/app", b"unreferenced bytes").unwrap();

    let clean = json_of(ok(cargohold(root, &["--json", "registry", "fsck"])));
    assert_eq!(clean["unrepaired"], 0);
    assert_eq!(clean["blobs_checked"], 4);

    // Rot in an unreferenced blob: found (exit 1), then repaired completely (exit 0).
    reg.driver()
        .put_content(&layout::blob_data(&spare.digest), b"rot")
        .unwrap();
    let found = cargohold(root, &["--json", "registry", "fsck"]);
    assert_eq!(found.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&found.stderr).contains("[corrupt]"));
    let report = json_of(support::stdout(&found));
    assert_eq!(report["counts"], json!({"corrupt_blob": 1}));
    let repaired = json_of(ok(cargohold(
        root,
        &["--json", "registry", "fsck", "--repair"],
    )));
    assert_eq!(
        repaired["counts"],
        json!({"corrupt_blob": 1, "dangling_link": 1})
    );
    let q = repaired["findings"][0]["quarantined"].as_str().unwrap();
    let qkey = regstore::Key::parse(q).unwrap().join("data").unwrap();
    assert_eq!(reg.driver().get_content(&qkey).unwrap(), b"rot");
    ok(cargohold(root, &["registry", "fsck"]));

    // Rot in a layer an image needs: repair cannot bring it back, so fsck exits 1.
    reg.driver()
        .put_content(&layout::blob_data(&layer), b"rot too")
        .unwrap();
    let out = cargohold(root, &["registry", "fsck", "--repair"]);
    assert_eq!(out.status.code(), Some(1));
    let text = support::stdout(&out);
    assert!(text.contains("missing_reference"), "{text}");
    assert!(text.contains("quarantined to"), "{text}");
}
