//! Without this, the filesystem backend could drift from the StorageDriver contract
//! (atomic puts, appends, listings, recursive deletes) that the registry model relies on.

use std::path::Path;

use regstore::StorageDriver;
use regstore::drivers::Filesystem;

fn open(dir: &Path) -> Box<dyn StorageDriver> {
    Box::new(Filesystem::new(dir).expect("open filesystem backend"))
}

regstore::storage_driver_tests!(open);
