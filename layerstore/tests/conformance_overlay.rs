//! Without this, the overlay driver could break a rule of the Driver contract (parents,
//! kinds, labels, mounts that really mount, deletions across layers, refusals, clean-up)
//! unnoticed.
#![cfg(feature = "conformance")]

use layerstore::conformance::{Fixture, scratch_dir};
use layerstore::drivers::overlay::Overlay;

fn snapshots_fixture() -> Fixture {
    let tempdir = scratch_dir();
    let root = tempdir.path().join("store");
    let driver = layerstore::snapshots::Snapshots::open(&root, Box::new(Overlay::new()))
        .expect("open an overlay store");
    Fixture {
        driver: Box::new(driver),
        root,
        guard: None,
        tempdir,
    }
}

fn layer_store_fixture() -> Fixture {
    let tempdir = scratch_dir();
    let root = tempdir.path().join("store");
    let driver = layerstore::LayerStore::open_with(&root, Box::new(Overlay::new()))
        .expect("open an overlay layer store");
    Fixture {
        driver: Box::new(driver),
        root,
        guard: None,
        tempdir,
    }
}

layerstore::driver_conformance_tests!(overlay, snapshots_fixture);
layerstore::driver_conformance_tests!(layer_store_overlay, layer_store_fixture);
