//! A store remembers its driver: without this, reopening an overlay store with vfs (or
//! the reverse) would read upper dirs as full trees and hand out wrong root filesystems.

use layerstore::{DriverChoice, ErrorKind, LayerStore};

#[test]
fn a_store_is_never_reopened_with_another_driver() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    drop(LayerStore::open(&root, DriverChoice::Vfs).unwrap());
    assert_eq!(std::fs::read_to_string(root.join("driver")).unwrap(), "vfs");
    let err = LayerStore::open(&root, DriverChoice::Overlay).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    // Auto takes what the store recorded, whoever opens it.
    let s = LayerStore::open(&root, DriverChoice::Auto).unwrap();
    assert_eq!(s.snapshots().backend().name(), "vfs");
}

#[test]
fn auto_picks_by_filesystem_and_user_for_a_new_store() {
    let t = tempfile::tempdir().unwrap();
    let s = LayerStore::open(t.path().join("new"), DriverChoice::Auto).unwrap();
    let on_btrfs =
        layerstore::drivers::btrfs::is_btrfs(cargohold_core::Dir::open_path(t.path()).unwrap())
            .unwrap();
    let want = if on_btrfs {
        "btrfs"
    } else if rustix::process::geteuid().is_root() {
        "overlay"
    } else {
        "vfs"
    };
    assert_eq!(s.snapshots().backend().name(), want);
}
