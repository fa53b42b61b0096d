//! Without this, the vfs driver could break a rule of the Driver contract (parents,
//! kinds, labels, mounts, refusals, clean-up) unnoticed.
#![cfg(feature = "conformance")]

layerstore::driver_conformance_tests!(vfs, layerstore::conformance::vfs_fixture);
layerstore::driver_conformance_tests!(
    layer_store_vfs,
    layerstore::conformance::layerstore_vfs_fixture
);
