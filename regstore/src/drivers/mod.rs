//! The [`StorageDriver`](crate::StorageDriver) backends.

pub mod filesystem;
pub mod memory;

pub use filesystem::Filesystem;
pub use memory::Memory;
