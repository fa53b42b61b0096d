//! Without these, an image imported with the command could not be unpacked into a
//! container, a commit could produce an image other tools cannot read, or a bad source
//! could be half-imported.

use std::path::Path;
use std::process::Command;

mod support;
use support::{cargohold, ok, run};

/// A one-layer image made by umoci (unpack, change, repack), tagged `t`.
fn umoci_image(base: &Path) -> String {
    let l = base.join("layout");
    let ls = l.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", ls]));
    run(Command::new("umoci").args(["new", "--image", &format!("{ls}:t")]));
    let bundle = base.join("b");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{ls}:t"),
        bundle.to_str().unwrap(),
    ]));
    std::fs::create_dir_all(bundle.join("rootfs/etc")).unwrap();
    std::fs::write(bundle.join("rootfs/etc/motd"), b"from umoci\n").unwrap();
    run(Command::new("umoci").args([
        "repack",
        "--image",
        &format!("{ls}:t"),
        bundle.to_str().unwrap(),
    ]));
    ls.to_owned()
}

#[test]
fn import_unpack_commit_export_and_skopeo_reads_the_result() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    let root = tmp.path().join("store");
    let line = ok(cargohold(
        &root,
        &["image", "import", &format!("oci:{layout}:t"), "demo/app:v1"],
    ));
    assert!(line.starts_with("demo/app:v1 sha256:"), "{line}");
    let ls: serde_json::Value =
        serde_json::from_str(&ok(cargohold(&root, &["--json", "image", "ls"]))).unwrap();
    assert_eq!(ls[0]["repository"], "demo/app");
    assert_eq!(ls[0]["tag"], "v1");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(cargohold(&root, &["image", "inspect", "demo/app:v1"]))).unwrap();
    assert_eq!(
        inspect["config"]["rootfs"]["diff_ids"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    ok(cargohold(
        &root,
        &["container", "create", "c", "--image", "demo/app:v1"],
    ));
    let dir = std::path::PathBuf::from(ok(cargohold(&root, &["container", "mount", "c"])));
    assert_eq!(
        std::fs::read(dir.join("etc/motd")).unwrap(),
        b"from umoci\n"
    );
    std::fs::write(dir.join("etc/added"), b"by the test\n").unwrap();
    ok(cargohold(&root, &["container", "unmount", "c"]));
    ok(cargohold(
        &root,
        &["container", "commit", "c", "demo/app:v2"],
    ));
    let out = tmp.path().join("out");
    ok(cargohold(
        &root,
        &[
            "image",
            "export",
            "demo/app:v2",
            &format!("oci:{}:v2", out.display()),
        ],
    ));
    let raw = run(Command::new("skopeo").args([
        "inspect",
        "--raw",
        &format!("oci:{}:v2", out.display()),
    ]));
    let m: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        m["layers"].as_array().unwrap().len(),
        2,
        "the base layer plus the committed one"
    );
    let bundle = tmp.path().join("bundle");
    run(Command::new("umoci").args([
        "unpack",
        "--image",
        &format!("{}:v2", out.display()),
        bundle.to_str().unwrap(),
    ]));
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/added")).unwrap(),
        b"by the test\n"
    );
    assert_eq!(
        std::fs::read(bundle.join("rootfs/etc/motd")).unwrap(),
        b"from umoci\n"
    );
    let tags = ok(cargohold(&root, &["registry", "tags", "demo/app"]));
    assert_eq!(tags.lines().skip(1).collect::<Vec<_>>(), vec!["v1", "v2"]);
    ok(cargohold(&root, &["image", "rm", "demo/app:v1"]));
    let o = cargohold(&root, &["image", "inspect", "demo/app:v1"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[not_found]"));
}

#[test]
fn bad_sources_and_names_fail_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let o = cargohold(&root, &["image", "import", "ftp://nowhere"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "an unknown source form is a usage error"
    );
    let o = cargohold(
        &root,
        &["image", "import", "oci:/nonexistent/layout:t", "x/y:z"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[not_found]"));
    let o = cargohold(&root, &["image", "inspect", "UPPER/case:t"]);
    assert_eq!(o.status.code(), Some(2));
    let catalog = ok(cargohold(&root, &["--json", "registry", "catalog"]));
    assert_eq!(catalog, "[]", "nothing half-imported");
}

#[test]
fn an_unpacked_image_s_layers_are_all_durable_after_one_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = umoci_image(tmp.path());
    // A second and third layer on top of umoci's first.
    for n in ["second", "third"] {
        let bundle = tmp.path().join(n);
        let image = format!("{layout}:t");
        run(Command::new("umoci").args(["unpack", "--image", &image, bundle.to_str().unwrap()]));
        std::fs::write(bundle.join("rootfs/etc").join(n), n).unwrap();
        run(Command::new("umoci").args(["repack", "--image", &image, bundle.to_str().unwrap()]));
    }
    let root = tmp.path().join("store");
    ok(cargohold(
        &root,
        &["image", "import", &format!("oci:{layout}:t"), "demo/app:v1"],
    ));
    ok(cargohold(
        &root,
        &["container", "create", "c", "--image", "demo/app:v1"],
    ));
    let ls: serde_json::Value =
        serde_json::from_str(&ok(cargohold(&root, &["--json", "layer", "ls"]))).unwrap();
    let chains: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["chain_id"].as_str().unwrap())
        .collect();
    assert_eq!(chains.len(), 3);
    for chain in chains {
        let l: serde_json::Value =
            serde_json::from_str(&ok(cargohold(&root, &["layer", "inspect", chain]))).unwrap();
        assert_eq!(l["durable"], true, "{chain}");
    }
    let dir = std::path::PathBuf::from(ok(cargohold(&root, &["container", "mount", "c"])));
    assert_eq!(std::fs::read(dir.join("etc/third")).unwrap(), b"third");
    ok(cargohold(&root, &["container", "unmount", "c"]));
}
