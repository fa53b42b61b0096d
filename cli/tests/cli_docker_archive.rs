//! Without these, `cargohold image import docker-archive:...` and `image export ...
//! docker-archive:...` could name images differently than the archive does, write an
//! archive skopeo (and so `docker load`) cannot read, or half-import a broken archive.

use std::path::Path;
use std::process::Command;

mod support;
use support::{cargohold, ok, run};

/// A one-layer image made by umoci and saved by skopeo as `demo/app:v1`.
fn skopeo_archive(base: &Path) -> (String, String) {
    let l = base.join("layout");
    let ls = l.to_str().unwrap();
    run(Command::new("umoci").args(["init", "--layout", ls]));
    run(Command::new("umoci").args(["new", "--image", &format!("{ls}:t")]));
    let src = base.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/motd"), b"from umoci\n").unwrap();
    run(Command::new("umoci").args([
        "insert",
        "--image",
        &format!("{ls}:t"),
        src.to_str().unwrap(),
        "/",
    ]));
    let archive = base.join("app.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{ls}:t"),
        &format!("docker-archive:{}:demo/app:v1", archive.display()),
    ]));
    (format!("oci:{ls}:t"), archive.to_str().unwrap().to_owned())
}

fn config_of(reference: &str) -> serde_json::Value {
    serde_json::from_str(&run(
        Command::new("skopeo").args(["inspect", "--config", reference])
    ))
    .unwrap()
}

#[test]
fn docker_archives_import_under_their_name_and_export_for_skopeo() {
    let tmp = tempfile::tempdir().unwrap();
    let (oci, archive) = skopeo_archive(tmp.path());
    let root = tmp.path().join("store");

    // Without a name, the image keeps the archive's (in its familiar form).
    let first = ok(cargohold(
        &root,
        &["image", "import", &format!("docker-archive:{archive}")],
    ));
    assert!(first.starts_with("demo/app:v1 sha256:"), "{first}");
    // With one, it is stored under it; picking by the archive's name works too.
    let line = ok(cargohold(
        &root,
        &[
            "image",
            "import",
            &format!("docker-archive:{archive}:docker.io/demo/app:v1"),
            "other/name:x",
        ],
    ));
    assert!(line.starts_with("other/name:x sha256:"), "{line}");
    let digest = |l: &str| l.split(' ').nth(1).unwrap().to_owned();
    assert_eq!(digest(&line), digest(&first), "the same manifest");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(cargohold(&root, &["image", "inspect", "demo/app:v1"]))).unwrap();
    assert_eq!(
        inspect["manifest"]["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );

    // Export, and skopeo reads the same config back out of our archive.
    let out = tmp.path().join("out.tar");
    ok(cargohold(
        &root,
        &[
            "image",
            "export",
            "demo/app:v1",
            &format!("docker-archive:{}:saved/app:v2", out.display()),
        ],
    ));
    let ours = format!("docker-archive:{}", out.display());
    assert_eq!(config_of(&ours), config_of(&oci));
    let copy = tmp.path().join("copy");
    run(Command::new("skopeo").args(["copy", "-q", &ours, &format!("oci:{}:c", copy.display())]));
    // The name given on export is the one a re-import finds.
    let line = ok(cargohold(
        &root,
        &[
            "image",
            "import",
            &format!("docker-archive:{}", out.display()),
        ],
    ));
    assert!(line.starts_with("saved/app:v2 sha256:"), "{line}");

    // A broken archive: a usage-level error with its kind, nothing tagged.
    let junk = tmp.path().join("junk.tar");
    std::fs::write(&junk, b"not a tar").unwrap();
    let o = cargohold(
        &root,
        &[
            "image",
            "import",
            &format!("docker-archive:{}", junk.display()),
            "junk/x:1",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[invalid_argument]"));
    let tags = cargohold(&root, &["registry", "tags", "junk/x"]);
    assert!(!tags.status.success(), "no repository was created");
    let bad = cargohold(
        &root,
        &[
            "image",
            "export",
            "demo/app:v1",
            &format!("docker-archive:{}", tmp.path().join("p.tar").display()),
            "--platform",
            "nonsense",
        ],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("[invalid_argument]"));
    assert!(!tmp.path().join("p.tar").exists());
}
