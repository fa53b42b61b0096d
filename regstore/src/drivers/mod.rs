//! The [`StorageDriver`](crate::StorageDriver) backends.

pub mod filesystem;
pub mod memory;
#[cfg(feature = "s3")]
pub mod s3;

pub use filesystem::Filesystem;
pub use memory::Memory;
#[cfg(feature = "s3")]
pub use s3::{S3, S3Config};
