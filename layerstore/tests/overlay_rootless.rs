//! Without this, the overlay driver could stop working rootless: inside a user namespace
//! it must notice it, mount with `userxattr`, and a deletion must leave overlay's 0/0
//! character-device whiteout in the upper dir (what the diff export turns into `.wh.`).

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::process::Command;

use layerstore::Driver;
use layerstore::drivers::Layout;
use layerstore::drivers::overlay::{Overlay, in_user_namespace};

const ROLE: &str = "CARGOHOLD_OVERLAY_ROOTLESS_CHILD";
const TEST: &str = "basic_flow_inside_unshare_user_map_root";

#[test]
fn basic_flow_inside_unshare_user_map_root() {
    if std::env::var_os(ROLE).is_some() {
        child();
    } else {
        parent();
    }
}

/// Re-run this very test inside `unshare --user --map-root-user --mount`.
fn parent() {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "--"])
        .arg(exe)
        .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
        .env(ROLE, "1")
        .output()
        .expect("run unshare (util-linux) — it must be installed");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "the child did not run the test:\n{text}"
    );
}

fn child() {
    assert!(
        in_user_namespace().unwrap(),
        "unshare did not make a user namespace"
    );
    let backend = Overlay::new();
    assert!(backend.userxattr(), "rootless overlay must use userxattr");
    assert_eq!(
        layerstore::drivers::Backend::layout(&backend),
        Layout::Overlay { userxattr: true }
    );
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let snaps: Box<dyn Driver> =
        Box::new(layerstore::snapshots::Snapshots::open(&root, Box::new(backend)).unwrap());
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();

    let base = snaps
        .prepare("base-active", None, Default::default())
        .unwrap();
    layerstore::mounts::mount_all(&base, &at).unwrap();
    fs::write(at.join("keep"), "k").unwrap();
    fs::write(at.join("gone"), "g").unwrap();
    layerstore::mounts::unmount(&at).unwrap();
    snaps
        .commit("base", "base-active", Default::default())
        .unwrap();

    let top = snaps
        .prepare("c", Some("base"), Default::default())
        .unwrap();
    assert_eq!(top[0].kind, "overlay");
    assert!(top[0].options.iter().any(|o| o == "userxattr"), "{top:?}");
    layerstore::mounts::mount_all(&top, &at).unwrap();
    let r = std::panic::catch_unwind(|| {
        assert_eq!(fs::read_to_string(at.join("keep")).unwrap(), "k");
        fs::remove_file(at.join("gone")).unwrap();
        assert!(!at.join("gone").exists());
    });
    layerstore::mounts::unmount(&at).unwrap();
    r.unwrap();

    // The upper dir of "c" holds the whiteout: find it without knowing the id.
    let mut whiteouts = Vec::new();
    for d in fs::read_dir(root.join("snapshots")).unwrap() {
        let p = d.unwrap().path().join("fs/gone");
        if let Ok(md) = fs::symlink_metadata(&p) {
            whiteouts.push(md);
        }
    }
    let gone: Vec<_> = whiteouts
        .iter()
        .filter(|m| m.file_type().is_char_device())
        .collect();
    assert_eq!(gone.len(), 1, "exactly one whiteout in the upper dir");
    assert_eq!(gone[0].rdev(), 0, "a whiteout is the 0/0 character device");

    let left = layerstore::mounts::mounts_below(tmp.path()).unwrap();
    assert!(left.is_empty(), "mounts leaked: {left:?}");
    snaps.remove("c").unwrap();
    snaps.remove("base").unwrap();
}
