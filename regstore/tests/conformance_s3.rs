//! Without this, the S3 backend could drift from the StorageDriver contract the
//! filesystem and memory backends keep: every check runs against a real S3-compatible
//! server (moto), on a fresh bucket, with and without a key prefix.

mod s3_support;

use std::path::Path;

use regstore::StorageDriver;

fn open_bare(_dir: &Path) -> Box<dyn StorageDriver> {
    Box::new(s3_support::fresh_driver(""))
}

fn open_prefixed(_dir: &Path) -> Box<dyn StorageDriver> {
    Box::new(s3_support::fresh_driver("tenant/one"))
}

mod bare {
    regstore::storage_driver_tests!(super::open_bare);
}

mod prefixed {
    regstore::storage_driver_tests!(super::open_prefixed);
}
