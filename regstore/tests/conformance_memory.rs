//! Without this, the memory backend (used by fast tests and embedders) could drift from
//! the StorageDriver contract the filesystem backend keeps.

use std::path::Path;

use regstore::StorageDriver;
use regstore::drivers::Memory;

fn open(_dir: &Path) -> Box<dyn StorageDriver> {
    Box::new(Memory::new())
}

regstore::storage_driver_tests!(open);
