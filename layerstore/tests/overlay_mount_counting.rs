//! Without this, two processes mounting one overlay container could stack two mounts or
//! unmount under each other, a dead holder's count could pin a container forever, and
//! misuse (unmounting twice, mounting a removed key) could pass silently.

use std::fs;
use std::path::Path;
use std::process::Command;

use layerstore::drivers::overlay::Overlay;
use layerstore::{Driver, ErrorKind, LayerStore};

const ROLE: &str = "CARGOHOLD_OVERLAY_MOUNT_CHILD";

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "overlay mount-counting tests mount and must run as root"
    );
}

fn open(root: &Path) -> LayerStore {
    LayerStore::open_with(root, Box::new(Overlay::new())).unwrap()
}

/// How many mounts sit exactly at `target`.
fn mounts_at(target: &Path) -> usize {
    let target = fs::canonicalize(target).unwrap();
    layerstore::mounts::mounts_below(&target)
        .unwrap()
        .iter()
        .filter(|p| **p == target)
        .count()
}

/// A store with a committed base holding `f`, and the container `c` on it.
fn store_with_container(root: &Path) -> LayerStore {
    let s = open(root);
    let at = root.parent().unwrap().join("fill");
    fs::create_dir(&at).unwrap();
    s.prepare("base-active", None, Default::default()).unwrap();
    s.mount("base-active", &at).unwrap();
    fs::write(at.join("f"), "base").unwrap();
    s.unmount(&at).unwrap();
    s.commit("base", "base-active", Default::default()).unwrap();
    s.prepare("c", Some("base"), Default::default()).unwrap();
    s
}

/// In a child started by [`mount_in_child`]: open the store named in the environment,
/// mount `c` at the target and exit without unmounting (the count stays on disk).
fn child_role() {
    let Some(spec) = std::env::var_os(ROLE) else {
        return;
    };
    let spec = spec.into_string().unwrap();
    let (root, target) = spec.split_once('\n').unwrap();
    let code = match open(Path::new(root)).mount("c", Path::new(target)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child mount: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn mount_in_child(test: &str, root: &Path, target: &Path) {
    let exe = std::env::current_exe().unwrap();
    let st = Command::new(exe)
        .args(["--exact", test, "--test-threads=1"])
        .env(ROLE, format!("{}\n{}", root.display(), target.display()))
        .status()
        .unwrap();
    assert!(st.success(), "the child failed to mount");
}

#[test]
fn two_processes_share_one_mount_and_the_last_unmount_unmounts() {
    child_role();
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let s = store_with_container(&root);
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();

    mount_in_child(
        "two_processes_share_one_mount_and_the_last_unmount_unmounts",
        &root,
        &at,
    );
    assert_eq!(mounts_at(&at), 1);
    s.mount("c", &at).unwrap();
    assert_eq!(mounts_at(&at), 1, "the second mount shares the first");
    assert_eq!(fs::read_to_string(at.join("f")).unwrap(), "base");
    assert_eq!(s.remove("c").unwrap_err().kind(), ErrorKind::InUse);

    s.unmount(&at).unwrap();
    assert_eq!(mounts_at(&at), 1, "one user is left");
    s.unmount(&at).unwrap();
    assert_eq!(mounts_at(&at), 0, "the last unmount unmounts");
    assert_eq!(s.unmount(&at).unwrap_err().kind(), ErrorKind::NotFound);

    s.remove("c").unwrap();
    assert_eq!(s.mount("c", &at).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(mounts_at(&at), 0);
    assert!(
        layerstore::mounts::mounts_below(tmp.path())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_dead_holders_count_is_dropped_when_its_mount_is_gone() {
    child_role();
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let s = store_with_container(&root);
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();
    mount_in_child(
        "a_dead_holders_count_is_dropped_when_its_mount_is_gone",
        &root,
        &at,
    );
    assert_eq!(mounts_at(&at), 1);
    // The holder is dead; something else (a reboot, an admin) took the mount away.
    layerstore::mounts::unmount(&at).unwrap();
    drop(s);
    let s = open(&root);
    assert_eq!(s.unmount(&at).unwrap_err().kind(), ErrorKind::NotFound);
    s.remove("c").unwrap();
    s.remove("base").unwrap();
    assert!(
        layerstore::mounts::mounts_below(tmp.path())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn removing_a_layer_with_children_and_bad_keys_are_typed_errors() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let s = store_with_container(&root);
    assert_eq!(s.remove("base").unwrap_err().kind(), ErrorKind::InUse);
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();
    for bad in ["", "a\nb", &"k".repeat(1025)] {
        assert_eq!(
            s.mount(bad, &at).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            s.prepare(bad, None, Default::default()).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    assert_eq!(
        s.mount("base", &at).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(mounts_at(&at), 0);
    s.remove("c").unwrap();
    s.remove("base").unwrap();
}
