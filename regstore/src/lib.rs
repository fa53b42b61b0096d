//! regstore: a registry blob store that keeps images in distribution registry:2's
//! on-disk layout, as a library (no HTTP, no daemon).
//!
//! Two levels, as in distribution: a small [`StorageDriver`] over a key space (this
//! page), with the [`drivers::filesystem`] and [`drivers::memory`] backends, and the
//! registry model on top of it ([`Registry`]: repositories, blobs, resumable uploads,
//! manifests, tags, referrers, catalog). Errors are core's [`Error`]; the distribution
//! spec's code of an error is [`error_code`].

use std::fmt;
use std::io::{Read, Write};
use std::time::SystemTime;

pub use cargohold_core::{Error, ErrorKind, Result};

/// A key space of byte objects, shaped like distribution's `storagedriver`.
///
/// Vocabulary: a *key* ([`Key`]) is an absolute slash-separated name (`/a/b/data`),
/// validated once when the `Key` is built, so no backend ever sees a bad one. A key
/// names a *file* (bytes) or, implicitly, a *directory*: the common prefix of the files
/// below it. Directories have no existence of their own beyond that prefix (so an
/// object store can implement this trait); a backend may keep empty ones around, and
/// callers must not rely on either.
///
/// Rules every backend keeps (the conformance suite checks them):
/// - `put_content` replaces a file atomically: a reader sees the old or the new bytes.
/// - a [`FileWriter`]'s bytes are guaranteed visible only after [`FileWriter::commit`];
///   [`FileWriter::cancel`] removes the file. A writer opened with `append` continues an
///   existing file (created empty when missing), otherwise it starts an empty one.
/// - `reader(key, offset)` with `offset` beyond the end is `InvalidArgument`.
/// - a missing key is `NotFound` for every call that reads, lists, moves or deletes.
/// - `list` returns the direct children (files and directories) of a directory, sorted.
/// - `rename` (distribution's `Move`) replaces the destination, creating its parents.
/// - `delete` removes a file or a whole directory tree.
/// - `walk` returns every file and directory below a key, sorted by key.
/// - `delete_many` removes what `delete` would for each key, skipping missing ones.
pub trait StorageDriver: Send + Sync + fmt::Debug {
    /// Short backend name (`filesystem`, `memory`).
    fn name(&self) -> &'static str;
    /// The whole content of a file.
    fn get_content(&self, key: &Key) -> Result<Vec<u8>>;
    /// Store `data` as the file `key`, atomically replacing what was there.
    fn put_content(&self, key: &Key, data: &[u8]) -> Result<()>;
    /// A reader of the file from byte `offset`.
    fn reader(&self, key: &Key, offset: u64) -> Result<Box<dyn Read + Send>>;
    /// A writer of the file; with `append` it continues the existing content.
    fn writer(&self, key: &Key, append: bool) -> Result<Box<dyn FileWriter>>;
    /// Size, kind and modification time of a file or directory.
    fn stat(&self, key: &Key) -> Result<FileInfo>;
    /// The direct children of a directory, sorted.
    fn list(&self, key: &Key) -> Result<Vec<Key>>;
    /// Move a file (or directory) to a new key, replacing what is there.
    fn rename(&self, from: &Key, to: &Key) -> Result<()>;
    /// Remove a file or a directory with everything below it.
    fn delete(&self, key: &Key) -> Result<()>;
    /// Everything below `key` (not `key` itself), sorted by key.
    fn walk(&self, key: &Key) -> Result<Vec<FileInfo>>;
    /// Take the store-wide lock `name`, shared or exclusive, across every process that
    /// opens the same store; the lock is held until the returned value is dropped and is
    /// released by the kernel if the holder dies. `None` means the backend has no such
    /// lock (the default: memory, object stores); callers then go on unlocked, and
    /// [`gc`] explains what collection can and cannot promise on such a backend.
    fn lock(
        &self,
        name: &str,
        mode: cargohold_core::lock::LockMode,
    ) -> Result<Option<cargohold_core::lock::FileLock>> {
        let _ = (name, mode);
        Ok(None)
    }
    /// Remove every key of `keys` as [`StorageDriver::delete`] does (a file, or a
    /// directory with everything below it); keys that name nothing are skipped. The
    /// default deletes one key after the other; an object store answers with few
    /// listings and batched deletes (S3's `DeleteObjects`: 1,000 keys a request).
    /// Stops at the first failure (what was deleted before stays deleted).
    fn delete_many(&self, keys: &[Key]) -> Result<()> {
        for k in keys {
            match self.delete(k) {
                Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }
    /// Whether a [`FileWriter`]'s bytes stay invisible until its commit and a writer
    /// that is cancelled, dropped or fails (or whose process dies) leaves the key as it
    /// was. Callers that know a file's final content ahead (a blob with a known digest)
    /// then write it straight to its final key. `false` by default (the filesystem
    /// backend writes in place).
    fn atomic_writes(&self) -> bool {
        false
    }
    /// Multipart uploads that outlive the process (object stores), which an upload
    /// uses instead of appending to a file the store cannot append to; `None` (the
    /// default) for backends that append in place.
    fn multipart(&self) -> Option<&dyn MultipartDriver> {
        None
    }
}

/// S3-style multipart uploads: parts uploaded one by one (each sent once), assembled
/// into one object by the server at completion. The ids it hands out are plain strings,
/// so a caller can persist them and another process can go on with the upload.
pub trait MultipartDriver: Send + Sync {
    /// The smallest part the store accepts, but for the last one.
    fn min_part_size(&self) -> usize;
    /// The size a caller should cut its parts at (at least [`Self::min_part_size`]).
    fn part_size(&self) -> usize;
    /// Start a multipart upload whose completion creates the file `key`; its id.
    fn create_multipart(&self, key: &Key) -> Result<String>;
    /// Upload part number `index` (from 0) of upload `id`; the part's id (its ETag)
    /// for [`Self::complete_multipart`]. Uploading an index again replaces that part.
    fn put_part(&self, key: &Key, id: &str, index: usize, data: Vec<u8>) -> Result<String>;
    /// Assemble parts `0..parts.len()` (their ids in order) into the file `key`.
    fn complete_multipart(&self, key: &Key, id: &str, parts: &[String]) -> Result<()>;
    /// Drop the upload and every part of it; an upload already gone is not an error.
    fn abort_multipart(&self, key: &Key, id: &str) -> Result<()>;
}

/// A file being written through [`StorageDriver::writer`].
pub trait FileWriter: Write + Send + fmt::Debug {
    /// Bytes in the file so far (existing content included when appending).
    fn size(&self) -> u64;
    /// Make the written bytes durable and visible.
    fn commit(self: Box<Self>) -> Result<()>;
    /// Drop what was written and remove the file.
    fn cancel(self: Box<Self>) -> Result<()>;
}

/// What [`StorageDriver::stat`] and [`StorageDriver::walk`] report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The key.
    pub key: Key,
    /// Size in bytes (0 for a directory).
    pub size: u64,
    /// Whether the key is a directory (a prefix of other keys).
    pub is_dir: bool,
    /// Last modification, when the backend knows it.
    pub modified: Option<SystemTime>,
}

pub mod docker_archive;
pub mod drivers;
pub mod error;
pub mod fsck;
pub mod gc;
pub mod hashstate;
pub mod key;
pub mod layout;
pub mod manifests;
pub mod migrate;
pub mod names;
pub mod oci_layout;
pub mod registry;
mod upload_parts;
pub mod uploads;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use error::{ErrorCode, error_code};
pub use key::Key;
pub use manifests::{Manifest, MediaType};
pub use registry::{Descriptor, Registry};
pub use uploads::{Upload, UploadStatus};
