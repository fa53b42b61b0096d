//! Without these, images written by skopeo or umoci could not be imported, exported
//! images could not be read by them, digests could change on the way, and a corrupt or
//! hostile layout could leave half an image behind.

use std::path::Path;
use std::process::Command;

use cargohold_core::{Digest, ErrorKind};
use regstore::Registry;
use regstore::drivers::filesystem::Filesystem;
use regstore::oci_layout;
use serde_json::{Value, json};

fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An OCI layout made by umoci with images `a` and `b` (two layers each) plus an index
/// `multi` over both, written by hand as a multi-platform image.
fn umoci_layout(base: &Path) -> std::path::PathBuf {
    let l = base.join("layout");
    let ls = l.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", ls]));
    for (tag, content) in [("a", "alpha"), ("b", "beta")] {
        run(Command::new("umoci").args(["new", "--image", &format!("{ls}:{tag}")]));
        let src = base.join(format!("src-{tag}"));
        std::fs::create_dir_all(src.join("etc")).unwrap();
        std::fs::write(src.join("etc/release"), content).unwrap();
        run(Command::new("umoci").args([
            "insert",
            "--image",
            &format!("{ls}:{tag}"),
            src.to_str().unwrap(),
            "/",
        ]));
        let src2 = base.join(format!("src2-{tag}"));
        std::fs::create_dir_all(&src2).unwrap();
        std::fs::write(src2.join("second"), vec![b'x'; 100_000]).unwrap();
        run(Command::new("umoci").args([
            "insert",
            "--image",
            &format!("{ls}:{tag}"),
            src2.to_str().unwrap(),
            "/opt",
        ]));
    }
    let mut index: Value =
        serde_json::from_slice(&std::fs::read(l.join("index.json")).unwrap()).unwrap();
    let children: Vec<Value> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .zip(["amd64", "arm64"])
        .map(|(m, arch)| {
            json!({"mediaType": m["mediaType"], "digest": m["digest"], "size": m["size"],
                   "platform": {"architecture": arch, "os": "linux"}})
        })
        .collect();
    let multi = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": children})).unwrap();
    let d = Digest::sha256(&multi);
    std::fs::write(l.join("blobs/sha256").join(d.hex()), &multi).unwrap();
    index["manifests"].as_array_mut().unwrap().push(json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": d.to_string(), "size": multi.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(l.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
    l
}

fn registry(base: &Path) -> Registry {
    Registry::open(Filesystem::new(base.join("registry")).unwrap())
}

fn skopeo_raw(reference: &str) -> Vec<u8> {
    run(Command::new("skopeo").args(["inspect", "--raw", reference])).into_bytes()
}

#[test]
fn umoci_images_round_trip_with_identical_digests_and_skopeo_reads_the_export() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_layout(tmp.path());
    let reg = registry(tmp.path());
    let mut seen = 0usize;
    let t = oci_layout::import(&reg, &layout, Some("a"), "demo/app", "v1", &mut |_, _| {
        seen += 1
    })
    .unwrap();
    assert_eq!(t.blobs_copied, 3, "config and two layers");
    assert_eq!(seen, 3);
    let original = skopeo_raw(&format!("oci:{}:a", layout.display()));
    assert_eq!(
        Digest::sha256(&original),
        t.digest,
        "the manifest digest is kept"
    );
    // Importing again copies nothing.
    let again =
        oci_layout::import(&reg, &layout, Some("a"), "demo/app", "v1", &mut |_, _| {}).unwrap();
    assert_eq!((again.blobs_copied, again.blobs_present), (0, 3));

    let out = tmp.path().join("exported");
    oci_layout::export(&reg, "demo/app", "v1", &out, "v1", &mut |_, _| {}).unwrap();
    let exported = skopeo_raw(&format!("oci:{}:v1", out.display()));
    assert_eq!(exported, original, "skopeo reads the same bytes back");
    // umoci can unpack what we wrote, and sees the files.
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:v1", out.display()),
        bundle.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/release")).unwrap(),
        b"alpha"
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/opt/second"))
            .unwrap()
            .len(),
        100_000
    );
    // skopeo copies out of our layout into a fresh one: digests identical.
    let copy = tmp.path().join("copy");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:v1", out.display()),
        &format!("oci:{}:c", copy.display()),
    ]));
    assert_eq!(skopeo_raw(&format!("oci:{}:c", copy.display())), original);
}

#[test]
fn a_multi_platform_index_is_imported_and_exported_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_layout(tmp.path());
    let reg = registry(tmp.path());
    let t = oci_layout::import(
        &reg,
        &layout,
        Some("multi"),
        "demo/multi",
        "latest",
        &mut |_, _| {},
    )
    .unwrap();
    assert!(t.media_type.is_index());
    assert_eq!(t.manifests, 3, "the index and both platform manifests");
    let out = tmp.path().join("exported");
    oci_layout::export(&reg, "demo/multi", "latest", &out, "latest", &mut |_, _| {}).unwrap();
    let idx = skopeo_raw(&format!("oci:{}:latest", out.display()));
    assert_eq!(Digest::sha256(&idx), t.digest);
    let v: Value = serde_json::from_slice(&idx).unwrap();
    for child in v["manifests"].as_array().unwrap() {
        let d = Digest::parse(child["digest"].as_str().unwrap()).unwrap();
        assert!(
            out.join("blobs/sha256").join(d.hex()).is_file(),
            "child {d} exported"
        );
        reg.get_manifest("demo/multi", &d.to_string()).unwrap();
    }
}

#[test]
fn corrupt_missing_and_ambiguous_layouts_are_refused_and_nothing_is_tagged() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_layout(tmp.path());
    let reg = registry(tmp.path());
    // Ambiguous: three images, no name given.
    let err = oci_layout::import(&reg, &layout, None, "x/y", "t", &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        oci_layout::import(&reg, &layout, Some("nope"), "x/y", "t", &mut |_, _| {})
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    // A layer whose bytes do not match its digest.
    let raw = skopeo_raw(&format!("oci:{}:b", layout.display()));
    let m: Value = serde_json::from_slice(&raw).unwrap();
    let layer = Digest::parse(m["layers"][1]["digest"].as_str().unwrap()).unwrap();
    let path = layout.join("blobs/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let err = oci_layout::import(&reg, &layout, Some("b"), "x/y", "t", &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::DigestMismatch);
    assert_eq!(
        reg.resolve_tag("x/y", "t").unwrap_err().kind(),
        ErrorKind::NotFound,
        "nothing tagged"
    );
    assert_eq!(
        reg.stat_blob("x/y", &layer).unwrap_err().kind(),
        ErrorKind::NotFound,
        "the bad blob is not kept"
    );
    // A missing blob.
    std::fs::remove_file(&path).unwrap();
    let err = oci_layout::import(&reg, &layout, Some("b"), "x/y", "t", &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    // A hostile index.json naming a path instead of a digest.
    let evil = tmp.path().join("evil");
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(
        evil.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    std::fs::write(evil.join("index.json"), br#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../../../etc/passwd","size":10}]}"#).unwrap();
    let err = oci_layout::import(&reg, &evil, None, "x/y", "t", &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    // Bad names never reach the store.
    assert_eq!(
        oci_layout::import(&reg, &layout, Some("a"), "Bad/Name", "t", &mut |_, _| {})
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        oci_layout::import(&reg, &layout, Some("a"), "x/y", "-bad", &mut |_, _| {})
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
}
