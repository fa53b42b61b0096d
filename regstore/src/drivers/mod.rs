//! The [`StorageDriver`] backends, and [`open_location`], which
//! picks one from a location string (what the CLI's `--registry` and Python take).

pub mod filesystem;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

pub use filesystem::Filesystem;
pub use memory::Memory;
#[cfg(feature = "s3")]
pub use s3::{S3, S3Config};

use std::sync::Arc;

use cargohold_core::{Error, ErrorKind, Result};

use crate::StorageDriver;

/// The scheme of an object-storage location.
pub const S3_SCHEME: &str = "s3://";

/// Open the backend `location` names:
/// - `s3://BUCKET` or `s3://BUCKET/PREFIX`: the `s3` backend (feature `s3`),
///   configured from the environment (`S3Config::from_env`: `AWS_ENDPOINT_URL`,
///   `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...); without the
///   feature it is `Unsupported`. An empty bucket name is `InvalidArgument`.
/// - anything else: a directory for the [`filesystem`] backend, created when missing.
pub fn open_location(location: &str) -> Result<Arc<dyn StorageDriver>> {
    let Some(rest) = location.strip_prefix(S3_SCHEME) else {
        return Ok(Arc::new(Filesystem::new(location)?));
    };
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "open",
            location,
            "an s3 location is s3://BUCKET or s3://BUCKET/PREFIX",
        ));
    }
    open_s3(location, bucket, prefix)
}

#[cfg(feature = "s3")]
fn open_s3(_location: &str, bucket: &str, prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Ok(Arc::new(S3::open(S3Config::from_env(bucket, prefix))?))
}

#[cfg(not(feature = "s3"))]
fn open_s3(location: &str, _bucket: &str, _prefix: &str) -> Result<Arc<dyn StorageDriver>> {
    Err(Error::new(
        ErrorKind::Unsupported,
        "open",
        location,
        "regstore was built without its s3 feature",
    ))
}
