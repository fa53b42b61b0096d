//! Mechanisms the cargohold storage tiers share, and nothing else:
//!
//! - [`error`]: the one [`Error`] type and the [`ErrorKind`] every tier, C status code
//!   and Python exception maps to;
//! - [`digest`]: validated `sha256:`/`sha512:` digests and hashing while streaming;
//! - [`root`]: file access confined to a store root (`openat2` with `RESOLVE_IN_ROOT`
//!   or `RESOLVE_BENEATH`, and a user-space walk where the kernel lacks it);
//! - [`atomic`]: temporary-then-rename publication with `fsync`, and the clean-up of
//!   what a killed writer left;
//! - [`lock`]: cross-process `flock` locks, shared and exclusive.

pub mod atomic;
pub mod boot;
pub mod digest;
pub mod error;
pub mod lock;
pub mod root;

pub use digest::{Algorithm, Digest, DigestReader, DigestWriter, Hasher};
pub use error::{Error, ErrorKind, Result};
pub use lock::{FileLock, LockMode};
pub use root::{Confine, Dir, Resolver, Root};
