//! Without this, the btrfs driver could break a rule of the Driver contract (parents,
//! kinds, labels, mounts, refusals, clean-up) unnoticed, or stop making containers as
//! snapshots. Each check runs on its own loop-mounted btrfs image.
#![cfg(feature = "conformance")]

use std::path::Path;

mod btrfs_support;

use btrfs_support::mount_btrfs;
use layerstore::conformance::{Fixture, scratch_dir};
use layerstore::drivers::btrfs::{Btrfs, is_subvolume_root};
use layerstore::{Driver, Labels};

fn fixture_with(open: impl FnOnce(&Path) -> Box<dyn Driver>) -> Fixture {
    let tempdir = scratch_dir();
    let m = mount_btrfs(tempdir.path(), 256 << 20);
    let root = m.0.join("store");
    let driver = open(&root);
    Fixture {
        driver,
        root,
        guard: Some(Box::new(m)),
        tempdir,
    }
}

fn snapshots_fixture() -> Fixture {
    fixture_with(|root| {
        std::fs::create_dir_all(root).unwrap();
        let backend = Btrfs::for_store(root).unwrap();
        Box::new(layerstore::snapshots::Snapshots::open(root, Box::new(backend)).unwrap())
    })
}

fn layer_store_fixture() -> Fixture {
    fixture_with(|root| {
        std::fs::create_dir_all(root).unwrap();
        let backend = Btrfs::for_store(root).unwrap();
        Box::new(layerstore::LayerStore::open_with(root, Box::new(backend)).unwrap())
    })
}

layerstore::driver_conformance_tests!(btrfs, snapshots_fixture);
layerstore::driver_conformance_tests!(layer_store_btrfs, layer_store_fixture);

#[test]
fn containers_are_snapshots_not_copies() {
    let f = snapshots_fixture();
    let d = &f.driver;
    let content = |key: &str| d.mounts(key).unwrap()[0].source.clone();
    d.prepare("base-active", None, Labels::new()).unwrap();
    std::fs::write(content("base-active").join("big"), vec![5u8; 8 << 20]).unwrap();
    d.commit("base", "base-active", Labels::new()).unwrap();
    d.prepare("container", Some("base"), Labels::new()).unwrap();
    let c_fs = content("container");
    let dir = cargohold_core::Dir::open_path(&c_fs).unwrap();
    assert!(
        is_subvolume_root(&dir).unwrap(),
        "the container's content is a subvolume"
    );
    assert_eq!(std::fs::metadata(c_fs.join("big")).unwrap().len(), 8 << 20);
    // Copy-on-write: the container's change leaves the layer as it was.
    std::fs::write(c_fs.join("big"), b"changed").unwrap();
    d.view("look", Some("base"), Labels::new()).unwrap();
    assert_eq!(
        std::fs::metadata(content("look").join("big"))
            .unwrap()
            .len(),
        8 << 20
    );
    drop(dir);
    for key in ["look", "container", "base"] {
        d.remove(key).unwrap();
    }
}

#[test]
fn the_driver_refuses_a_store_not_on_btrfs() {
    let t = tempfile::tempdir().unwrap();
    if layerstore::drivers::btrfs::is_btrfs(cargohold_core::Dir::open_path(t.path()).unwrap())
        .unwrap()
    {
        panic!("the temporary directory is on btrfs; this check needs another filesystem");
    }
    assert_eq!(
        Btrfs::for_store(t.path()).unwrap_err().kind(),
        cargohold_core::ErrorKind::Unsupported
    );
}

#[test]
fn auto_chooses_btrfs_on_btrfs_and_keeps_it() {
    let tempdir = scratch_dir();
    let m = mount_btrfs(tempdir.path(), 256 << 20);
    let root = m.0.join("store");
    let s = layerstore::LayerStore::open(&root, layerstore::DriverChoice::Auto).unwrap();
    assert_eq!(s.snapshots().backend().name(), "btrfs");
    drop(s);
    assert_eq!(
        layerstore::LayerStore::open(&root, layerstore::DriverChoice::Vfs)
            .unwrap_err()
            .kind(),
        cargohold_core::ErrorKind::InvalidArgument
    );
    drop(m);
}
