//! Without these, `docker save` / skopeo archives could not be imported or would change
//! digests on the way, archives we write could not be read by skopeo (and so by
//! `docker load`), and a hostile archive (`../` members, escaping links, missing layers,
//! wrong diff_ids) could leave a half-imported, tagged image behind.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use cargohold_core::{Digest, ErrorKind};
use regstore::Registry;
use regstore::docker_archive::{self, Platform};
use regstore::drivers::filesystem::Filesystem;
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

/// An OCI layout made by umoci with image `a`: two gzip layers (a file, then 100 kB more).
fn umoci_layout(base: &Path) -> PathBuf {
    let l = base.join("layout");
    let ls = l.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", ls]));
    run(Command::new("umoci").args(["new", "--image", &format!("{ls}:a")]));
    let src = base.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/release"), "alpha").unwrap();
    run(Command::new("umoci").args([
        "insert",
        "--image",
        &format!("{ls}:a"),
        src.to_str().unwrap(),
        "/",
    ]));
    let src2 = base.join("src2");
    std::fs::create_dir_all(&src2).unwrap();
    std::fs::write(src2.join("second"), vec![b'x'; 100_000]).unwrap();
    run(Command::new("umoci").args([
        "insert",
        "--image",
        &format!("{ls}:a"),
        src2.to_str().unwrap(),
        "/opt",
    ]));
    l
}

fn registry(base: &Path) -> Registry {
    Registry::open(Filesystem::new(base.join("registry")).unwrap())
}

fn skopeo_json(args: &[&str]) -> Value {
    serde_json::from_str(&run(Command::new("skopeo").args(args))).unwrap()
}

fn diff_ids(config: &Value) -> Vec<String> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect()
}

/// Every member of a tar: (name, type byte, link target, content).
fn members(file: &Path) -> Vec<(String, u8, String, Vec<u8>)> {
    let mut ar = tar::Archive::new(std::fs::File::open(file).unwrap());
    ar.entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = String::from_utf8(e.path_bytes().into_owned()).unwrap();
            let kind = e.header().entry_type().as_byte();
            let link = e
                .link_name_bytes()
                .map(|l| String::from_utf8(l.into_owned()).unwrap())
                .unwrap_or_default();
            let mut data = Vec::new();
            e.read_to_end(&mut data).unwrap();
            (name, kind, link, data)
        })
        .collect()
}

#[test]
fn skopeo_archives_import_with_their_digests_and_skopeo_reads_the_export() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_layout(tmp.path());
    let oci = format!("oci:{}:a", layout.display());
    let archive = tmp.path().join("in.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &oci,
        &format!("docker-archive:{}:demo/app:v1", archive.display()),
    ]));
    let original_config = skopeo_json(&["inspect", "--config", &oci]);
    let want_ids = diff_ids(&original_config);
    assert_eq!(want_ids.len(), 2);

    let reg = registry(tmp.path());
    let listed = docker_archive::images(&archive).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0].repo_tags,
        vec!["docker.io/demo/app:v1".to_owned()]
    );
    let mut seen = Vec::new();
    let t = docker_archive::import(&reg, &archive, None, "demo/app", "v1", &mut |d, _| {
        seen.push(d.clone())
    })
    .unwrap();
    assert_eq!((t.blobs_copied, t.blobs_present, t.manifests), (3, 0, 1));
    assert_eq!(seen.len(), 3, "progress after each blob");
    let m = reg.get_manifest("demo/app", "v1").unwrap();
    assert_eq!(m.digest, t.digest);
    let v: Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(
        v["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    // The config is stored with the digest the archive names it by, and it still says
    // the same diff_ids; every layer blob is the uncompressed tar, named by its diff_id.
    let config_digest = Digest::parse(v["config"]["digest"].as_str().unwrap()).unwrap();
    assert_eq!(listed[0].config, format!("{}.json", config_digest.hex()));
    let config: Value =
        serde_json::from_slice(&reg.read_blob("demo/app", &config_digest).unwrap()).unwrap();
    assert_eq!(diff_ids(&config), want_ids);
    for (layer, id) in v["layers"].as_array().unwrap().iter().zip(&want_ids) {
        assert_eq!(layer["digest"].as_str().unwrap(), id);
        assert_eq!(layer["mediaType"], docker_archive::LAYER_TAR);
        let d = Digest::parse(id).unwrap();
        let bytes = reg.read_blob("demo/app", &d).unwrap();
        assert_eq!(Digest::sha256(&bytes), d);
        assert_eq!(layer["size"].as_u64().unwrap(), bytes.len() as u64);
    }
    // A second import copies nothing.
    let again = docker_archive::import(
        &reg,
        &archive,
        Some("demo/app:v1"),
        "demo/app",
        "v2",
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!((again.blobs_copied, again.blobs_present), (0, 3));
    assert_eq!(
        again.digest, t.digest,
        "the same archive gives the same manifest"
    );

    // Export, and skopeo copies it into a fresh OCI layout with the same config and layers.
    let out = tmp.path().join("out.tar");
    let e = docker_archive::export(
        &reg,
        "demo/app",
        "v1",
        &out,
        Some("demo/app:v1"),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(e.blobs_copied, 3);
    let copy = tmp.path().join("copy");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{}", out.display()),
        &format!("oci:{}:t", copy.display()),
    ]));
    let copied_oci = format!("oci:{}:t", copy.display());
    let copied_config = skopeo_json(&["inspect", "--config", &copied_oci]);
    assert_eq!(copied_config, original_config);
    // Byte for byte, our archive holds the config skopeo wrote into its archive (skopeo
    // re-serialises a config whenever it converts between formats, so only the parsed
    // configs can be compared across its copies).
    let config_of = |f: &Path| {
        let name = docker_archive::images(f).unwrap()[0].config.clone();
        members(f).into_iter().find(|m| m.0 == name).unwrap().3
    };
    assert_eq!(
        config_of(&out),
        config_of(&archive),
        "config bytes identical"
    );
    let inspected = skopeo_json(&["inspect", &format!("docker-archive:{}", out.display())]);
    assert_eq!(
        inspected["RepoTags"],
        json!([]),
        "skopeo lists no registry tags for a file"
    );
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 2);
    for (l, id) in inspected["Layers"]
        .as_array()
        .unwrap()
        .iter()
        .zip(&want_ids)
    {
        assert_eq!(l.as_str().unwrap(), id, "each member is its diff_id");
    }
    // What is in the file: fixed order and headers; the same bytes on every export.
    let ms = members(&out);
    let names: Vec<&str> = ms.iter().map(|m| m.0.as_str()).collect();
    assert_eq!(names[0], format!("{}.json", config_digest.hex()));
    assert_eq!(
        names[1],
        format!("{}.tar", Digest::parse(&want_ids[0]).unwrap().hex())
    );
    assert_eq!(&names[names.len() - 2..], ["manifest.json", "repositories"]);
    let repos: Value = serde_json::from_slice(&ms.last().unwrap().3).unwrap();
    let top = repos["demo/app"]["v1"].as_str().unwrap();
    let link = ms
        .iter()
        .find(|m| m.0 == format!("{top}/layer.tar"))
        .unwrap();
    assert_eq!(link.1, b'2', "legacy layer.tar is a symlink");
    assert_eq!(
        link.2,
        format!("../{}.tar", Digest::parse(&want_ids[1]).unwrap().hex())
    );
    for (name, _, _, data) in &ms {
        if name.ends_with(".tar") && !name.contains('/') {
            assert!(
                want_ids.contains(&Digest::sha256(data).to_string()),
                "{name}"
            );
        }
    }
    let out2 = tmp.path().join("out2.tar");
    docker_archive::export(
        &reg,
        "demo/app",
        "v1",
        &out2,
        Some("demo/app:v1"),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
    // Our export imports back to the same manifest.
    let back = docker_archive::import(&reg, &out, None, "demo/back", "v1", &mut |_, _| {}).unwrap();
    assert_eq!(back.digest, t.digest);
    // Nothing else was left in the directory (no temporary files).
    let mut left: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "copy", "in.tar", "layout", "out.tar", "out2.tar", "registry", "src", "src2"
        ]
    );
}

/// A member of a hand-made archive.
enum M<'a> {
    File(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

/// A tar with exactly these members; names are written raw (even `../x`).
fn raw_tar(path: &Path, members: &[M<'_>]) {
    let mut out = Vec::new();
    for m in members {
        let (name, data, link, kind) = match m {
            M::File(n, d) => (*n, *d, "", tar::EntryType::Regular),
            M::Symlink(n, l) => (*n, &b""[..], *l, tar::EntryType::Symlink),
        };
        let mut h = tar::Header::new_ustar();
        h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
        h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_mtime(0);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    std::fs::write(path, out).unwrap();
}

/// A small valid layer tar holding one file.
fn layer(content: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(content.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    b.append_data(&mut h, "hello", content).unwrap();
    b.into_inner().unwrap()
}

fn config_for(layers: &[&[u8]], arch: &str) -> Vec<u8> {
    let ids: Vec<String> = layers
        .iter()
        .map(|l| Digest::sha256(l).to_string())
        .collect();
    serde_json::to_vec(&json!({"architecture": arch, "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": ids}})).unwrap()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

#[test]
fn docker_25_layouts_gzip_layers_and_several_images_import() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path());
    let (l1, l2) = (layer(b"one"), layer(b"two"));
    let gz = gzip(&l2);
    let cfg = config_for(&[&l1, &l2], "amd64");
    let blob = |b: &[u8]| format!("blobs/sha256/{}", Digest::sha256(b).hex());
    let manifest = serde_json::to_vec(
        &json!([{"Config": blob(&cfg), "RepoTags": ["x/y:1"], "Layers": [blob(&l1), blob(&gz)]}]),
    )
    .unwrap();
    let file = tmp.path().join("d25.tar");
    raw_tar(
        &file,
        &[
            M::File("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
            M::File(&blob(&l1), &l1),
            M::File(&blob(&gz), &gz),
            M::File(&blob(&cfg), &cfg),
            M::File("manifest.json", &manifest),
        ],
    );
    let t = docker_archive::import(&reg, &file, None, "x/y", "1", &mut |_, _| {}).unwrap();
    let v: Value = serde_json::from_slice(&reg.get_manifest("x/y", "1").unwrap().bytes).unwrap();
    assert_eq!(t.digest, reg.resolve_tag("x/y", "1").unwrap());
    assert_eq!(v["layers"][0]["mediaType"], docker_archive::LAYER_TAR);
    assert_eq!(v["layers"][1]["mediaType"], docker_archive::LAYER_TAR_GZIP);
    assert_eq!(
        v["layers"][1]["digest"],
        Digest::sha256(&gz).to_string(),
        "gzip kept as is"
    );
    // Exporting decompresses the gzip layer again, to its diff_id.
    let out = tmp.path().join("out.tar");
    docker_archive::export(&reg, "x/y", "1", &out, None, None, &mut |_, _| {}).unwrap();
    let ms = members(&out);
    let l2_member = ms
        .iter()
        .find(|m| m.0 == format!("{}.tar", Digest::sha256(&l2).hex()))
        .unwrap();
    assert_eq!(l2_member.3, l2);
    let listed = docker_archive::images(&out).unwrap();
    assert_eq!(listed[0].repo_tags, vec!["x/y:1".to_owned()]);

    // Two images in one archive: ambiguous without a name, found by it.
    let cfg2 = config_for(&[&l1], "arm64");
    let two = serde_json::to_vec(&json!([
        {"Config": "c1.json", "RepoTags": ["docker.io/library/one:latest"], "Layers": ["l1.tar"]},
        {"Config": "c2.json", "RepoTags": null, "Layers": ["sub/layer.tar"]},
    ]))
    .unwrap();
    let cfg1 = config_for(&[&l1], "amd64");
    let file2 = tmp.path().join("two.tar");
    raw_tar(
        &file2,
        &[
            M::File("c1.json", &cfg1),
            M::File("c2.json", &cfg2),
            M::File("l1.tar", &l1),
            M::Symlink("sub/layer.tar", "../l1.tar"),
            M::File("manifest.json", &two),
        ],
    );
    let err = docker_archive::import(&reg, &file2, None, "two/a", "t", &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    docker_archive::import(
        &reg,
        &file2,
        Some("one:latest"),
        "two/a",
        "t",
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(
        docker_archive::import(&reg, &file2, Some("nope:1"), "two/a", "t", &mut |_, _| {})
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );

    // A multi-platform index over two imported images: export picks the platform asked.
    let file3 = tmp.path().join("arm.tar");
    let arm_manifest = serde_json::to_vec(
        &json!([{"Config": "c2.json", "RepoTags": ["arm:1"], "Layers": ["sub/layer.tar"]}]),
    )
    .unwrap();
    raw_tar(
        &file3,
        &[
            M::File("c2.json", &cfg2),
            M::File("l1.tar", &l1),
            M::Symlink("sub/layer.tar", "../l1.tar"),
            M::File("manifest.json", &arm_manifest),
        ],
    );
    let arm = docker_archive::import(&reg, &file3, None, "two/a", "arm", &mut |_, _| {}).unwrap();
    let amd = reg.resolve_tag("two/a", "t").unwrap();
    let size = |d: &Digest| {
        reg.get_manifest("two/a", &d.to_string())
            .unwrap()
            .bytes
            .len()
    };
    let index = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json", "manifests": [
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": amd.to_string(), "size": size(&amd), "platform": {"os": "linux", "architecture": "amd64"}},
        {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": arm.digest.to_string(), "size": size(&arm.digest), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
    ]})).unwrap();
    reg.put_manifest("two/a", "multi", &index, None).unwrap();
    let out_arm = tmp.path().join("out-arm.tar");
    let p = Platform::parse("linux/arm64/v8").unwrap();
    let e = docker_archive::export(
        &reg,
        "two/a",
        "multi",
        &out_arm,
        None,
        Some(&p),
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(e.digest, arm.digest);
    assert_eq!(
        docker_archive::images(&out_arm).unwrap()[0].config,
        format!("{}.json", Digest::sha256(&cfg2).hex())
    );
    let p = Platform::parse("linux/s390x").unwrap();
    let err = docker_archive::export(
        &reg,
        "two/a",
        "multi",
        &tmp.path().join("none.tar"),
        None,
        Some(&p),
        &mut |_, _| {},
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!tmp.path().join("none.tar").exists(), "no file on failure");
    assert_eq!(
        Platform::parse("linux").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn hostile_and_malformed_archives_are_refused_and_nothing_is_tagged() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path());
    let (l1, l2) = (layer(b"one"), layer(b"two"));
    let cfg = config_for(&[&l1, &l2], "amd64");
    let manifest = |layers: &[&str]| {
        serde_json::to_vec(&json!([{"Config": "c.json", "RepoTags": ["h/i:1"], "Layers": layers}]))
            .unwrap()
    };
    let good = manifest(&["a.tar", "b.tar"]);
    let short = manifest(&["a.tar"]);
    let dotdot = manifest(&["a.tar", "../b.tar"]);
    let cases: Vec<(&str, Vec<M<'_>>, ErrorKind)> = vec![
        (
            "dotdot-member",
            vec![
                M::File("../x", b"x"),
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::File("b.tar", &l2),
                M::File("manifest.json", &good),
            ],
            ErrorKind::PathEscape,
        ),
        (
            "absolute-member",
            vec![M::File("/etc/x", b"x"), M::File("manifest.json", &good)],
            ErrorKind::PathEscape,
        ),
        (
            "escaping-link",
            vec![
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::Symlink("b.tar", "../../etc/passwd"),
                M::File("manifest.json", &good),
            ],
            ErrorKind::PathEscape,
        ),
        (
            "missing-layer",
            vec![
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::File("manifest.json", &good),
            ],
            ErrorKind::NotFound,
        ),
        (
            "wrong-diff-id",
            vec![
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::File("b.tar", &l1),
                M::File("manifest.json", &good),
            ],
            ErrorKind::DigestMismatch,
        ),
        (
            "link-loop",
            vec![
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::Symlink("b.tar", "c.tar"),
                M::Symlink("c.tar", "b.tar"),
                M::File("manifest.json", &good),
            ],
            ErrorKind::InvalidArgument,
        ),
        (
            "twice",
            vec![
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::File("b.tar", &l2),
                M::File("b.tar", &l2),
                M::File("manifest.json", &good),
            ],
            ErrorKind::InvalidArgument,
        ),
        (
            "no-manifest",
            vec![M::File("c.json", &cfg), M::File("a.tar", &l1)],
            ErrorKind::InvalidArgument,
        ),
        (
            "bad-json",
            vec![M::File("manifest.json", b"{not json")],
            ErrorKind::InvalidArgument,
        ),
        (
            "too-few-diff-ids",
            vec![
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::File("manifest.json", &short),
            ],
            ErrorKind::InvalidArgument,
        ),
        (
            "manifest-names-dotdot",
            vec![
                M::File("c.json", &cfg),
                M::File("a.tar", &l1),
                M::File("manifest.json", &dotdot),
            ],
            ErrorKind::PathEscape,
        ),
    ];
    for (name, members, kind) in cases {
        let file = tmp.path().join(format!("{name}.tar"));
        raw_tar(&file, &members);
        let err =
            docker_archive::import(&reg, &file, None, "h/i", "1", &mut |_, _| {}).unwrap_err();
        assert_eq!(err.kind(), kind, "{name}: {err}");
        assert_eq!(
            reg.resolve_tag("h/i", "1").unwrap_err().kind(),
            ErrorKind::NotFound,
            "{name}: nothing tagged"
        );
        for d in [
            Digest::sha256(&l1),
            Digest::sha256(&l2),
            Digest::sha256(&cfg),
        ] {
            assert_eq!(
                reg.stat_blob("h/i", &d).unwrap_err().kind(),
                ErrorKind::NotFound,
                "{name}: {d} not linked"
            );
        }
    }
    // A file that is not a tar at all, and bad store names.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, vec![0xabu8; 2000]).unwrap();
    let err = docker_archive::import(&reg, &junk, None, "h/i", "1", &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(
        docker_archive::import(&reg, &junk, None, "Bad/Name", "1", &mut |_, _| {})
            .unwrap_err()
            .kind(),
        ErrorKind::InvalidArgument
    );
    // Export of an unknown image writes nothing.
    let out = tmp.path().join("never.tar");
    let err =
        docker_archive::export(&reg, "h/i", "1", &out, None, None, &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(!out.exists());
}

#[test]
fn the_corpus_archive_imports_as_the_corpus_oci_image() {
    let Some(corpus) = std::env::var_os("CARGOHOLD_CORPUS").map(PathBuf::from) else {
        // Not a skip in disguise: without a corpus there is nothing to compare against.
        assert!(
            std::env::var_os("CARGOHOLD_REQUIRE_CORPUS").is_none(),
            "CARGOHOLD_REQUIRE_CORPUS is set (the test command built a corpus) but CARGOHOLD_CORPUS is not"
        );
        eprintln!("CARGOHOLD_CORPUS is not set; nothing to compare");
        return;
    };
    let scratch = match std::env::var_os("CARGOHOLD_TEST_TMPDIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .unwrap();
    let reg = registry(scratch.path());
    let archive = corpus.join("debian-v1.docker.tar");
    let t = docker_archive::import(
        &reg,
        &archive,
        Some("test/debian:v1"),
        "test/debian",
        "v1",
        &mut |_, _| {},
    )
    .unwrap();
    assert_eq!(t.blobs_copied, 5, "config and four layers");
    let oci = format!("oci:{}:v1", corpus.join("oci-debian").display());
    let want = skopeo_json(&["inspect", "--config", &oci]);
    let v: Value =
        serde_json::from_slice(&reg.get_manifest("test/debian", "v1").unwrap().bytes).unwrap();
    let cd = Digest::parse(v["config"]["digest"].as_str().unwrap()).unwrap();
    let got: Value = serde_json::from_slice(&reg.read_blob("test/debian", &cd).unwrap()).unwrap();
    assert_eq!(got, want, "the same config as the OCI image");
    let layer_digests: Vec<String> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        layer_digests,
        diff_ids(&want),
        "each layer stored as its diff_id"
    );
    let out = scratch.path().join("out.tar");
    docker_archive::export(
        &reg,
        "test/debian",
        "v1",
        &out,
        Some("test/debian:v1"),
        None,
        &mut |_, _| {},
    )
    .unwrap();
    let copy = scratch.path().join("copy");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("docker-archive:{}", out.display()),
        &format!("oci:{}:v1", copy.display()),
    ]));
    assert_eq!(
        skopeo_json(&["inspect", "--config", &format!("oci:{}:v1", copy.display())]),
        want
    );
}

#[test]
fn zstd_layers_are_decompressed_both_ways_and_bzip2_is_unsupported() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = registry(tmp.path());
    // Export: an OCI image with zstd layers (skopeo recompressed umoci's) leaves as
    // plain tars that hash to their diff_ids.
    let layout = umoci_layout(tmp.path());
    let zl = tmp.path().join("zstd-layout");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        "--dest-compress-format",
        "zstd",
        &format!("oci:{}:a", layout.display()),
        &format!("oci:{}:z", zl.display()),
    ]));
    regstore::oci_layout::import(&reg, &zl, Some("z"), "z/oci", "1", &mut |_, _| {}).unwrap();
    let v: Value = serde_json::from_slice(&reg.get_manifest("z/oci", "1").unwrap().bytes).unwrap();
    assert_eq!(
        v["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let out = tmp.path().join("z.tar");
    docker_archive::export(&reg, "z/oci", "1", &out, None, None, &mut |_, _| {}).unwrap();
    let ids = diff_ids(&skopeo_json(&[
        "inspect",
        "--config",
        &format!("oci:{}:z", zl.display()),
    ]));
    let ms = members(&out);
    for id in &ids {
        let d = Digest::parse(id).unwrap();
        let m = ms
            .iter()
            .find(|m| m.0 == format!("{}.tar", d.hex()))
            .unwrap();
        assert_eq!(Digest::sha256(&m.3), d);
    }
    // Import: a zstd member is stored decompressed, named by its diff_id.
    let l1 = layer(b"zstd inside");
    let z = zstd::encode_all(&l1[..], 3).unwrap();
    let cfg = config_for(&[&l1], "amd64");
    let manifest = serde_json::to_vec(
        &json!([{"Config": "c.json", "RepoTags": ["z:1"], "Layers": ["l.tar"]}]),
    )
    .unwrap();
    let file = tmp.path().join("zin.tar");
    raw_tar(
        &file,
        &[
            M::File("c.json", &cfg),
            M::File("l.tar", &z),
            M::File("manifest.json", &manifest),
        ],
    );
    docker_archive::import(&reg, &file, None, "z/arc", "1", &mut |_, _| {}).unwrap();
    let v: Value = serde_json::from_slice(&reg.get_manifest("z/arc", "1").unwrap().bytes).unwrap();
    assert_eq!(v["layers"][0]["digest"], Digest::sha256(&l1).to_string());
    assert_eq!(v["layers"][0]["mediaType"], docker_archive::LAYER_TAR);
    assert_eq!(reg.read_blob("z/arc", &Digest::sha256(&l1)).unwrap(), l1);
    // bzip2 is refused with its kind, and nothing is tagged.
    let mut bz = b"BZh91AY&SY".to_vec();
    bz.extend_from_slice(&[0u8; 100]);
    let file = tmp.path().join("bz.tar");
    raw_tar(
        &file,
        &[
            M::File("c.json", &cfg),
            M::File("l.tar", &bz),
            M::File("manifest.json", &manifest),
        ],
    );
    let err = docker_archive::import(&reg, &file, None, "z/bz", "1", &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    assert_eq!(
        reg.resolve_tag("z/bz", "1").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}
