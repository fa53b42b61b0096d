//! Copying a whole store from one [`StorageDriver`] to another (a directory to a bucket,
//! a bucket to memory, ...), key for key, since every backend keeps the same layout.
//!
//! Rules [`migrate`] keeps:
//! - every blob's bytes are hashed while they stream across and must match the digest
//!   its key names; a mismatch is `DigestMismatch` naming the key, that blob's writer is
//!   cancelled, and the copy stops (what was copied before stays, and is all verified).
//! - blobs are copied before anything else, so the destination never holds a link to a
//!   blob it lacks (the order registry:2 writes in); a blob the destination already has
//!   with the same size is not copied again (content addressing makes it the same).
//! - every other file (links, upload data and hash states, start times) is copied as it
//!   is and replaces what the destination had under that key.
//! - files are streamed, never held whole in memory.

use std::io::{Read, Write};

use cargohold_core::{Algorithm, Digest, DigestWriter, Error, ErrorKind, Result};

use crate::{FileInfo, Key, StorageDriver, layout};

/// What [`migrate`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MigrateReport {
    /// Blobs copied, each verified against its digest.
    pub blobs: u64,
    /// Blobs the destination already had (same key and size), not copied.
    pub blobs_skipped: u64,
    /// Other files copied (links, upload state).
    pub files: u64,
    /// Bytes copied.
    pub bytes: u64,
}

/// The digest a blob's data key names (`.../blobs/<alg>/<xx>/<hex>/data`), or `None`
/// for any other key.
fn blob_digest(key: &Key) -> Option<Digest> {
    let rest = key
        .as_str()
        .strip_prefix(layout::V2)?
        .strip_prefix("/blobs/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [alg, _, hex, "data"] => {
            let d = Digest::parse(&format!("{alg}:{hex}")).ok()?;
            (layout::blob_data(&d) == *key).then_some(d)
        }
        _ => None,
    }
}

/// Copy every file of `from` into `to`, verifying blobs; see the module's rules.
pub fn migrate(from: &dyn StorageDriver, to: &dyn StorageDriver) -> Result<MigrateReport> {
    let files: Vec<FileInfo> = match from.walk(&Key::root()) {
        Ok(all) => all.into_iter().filter(|i| !i.is_dir).collect(),
        Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e),
    };
    let (blobs, others): (Vec<_>, Vec<_>) = files
        .into_iter()
        .partition(|i| blob_digest(&i.key).is_some());
    let mut report = MigrateReport::default();
    for info in blobs {
        let digest = blob_digest(&info.key).expect("partitioned on it");
        match to.stat(&info.key) {
            Ok(there) if !there.is_dir && there.size == info.size => {
                report.blobs_skipped += 1;
                continue;
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        report.bytes += copy(from, to, &info.key, Some(&digest))?;
        report.blobs += 1;
    }
    for info in others {
        report.bytes += copy(from, to, &info.key, None)?;
        report.files += 1;
    }
    Ok(report)
}

/// Stream one file across; with `digest`, the bytes must hash to it before the
/// destination's writer commits.
fn copy(
    from: &dyn StorageDriver,
    to: &dyn StorageDriver,
    key: &Key,
    digest: Option<&Digest>,
) -> Result<u64> {
    let mut r = from.reader(key, 0)?;
    let w = to.writer(key, false)?;
    let alg = digest.map_or(Algorithm::Sha256, Digest::algorithm);
    let mut w = DigestWriter::new(w, alg);
    let mut buf = vec![0u8; 1 << 20];
    let copied = loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(cargohold_core::error::from_io_error("migrate read", key, e)),
        };
        if let Err(e) = w.write_all(&buf[..n]) {
            break Err(cargohold_core::error::from_io_error(
                "migrate write",
                key,
                e,
            ));
        }
    };
    let (w, got, len) = w.finish();
    if let Err(e) = copied {
        let _ = w.cancel();
        return Err(e);
    }
    if let Some(want) = digest
        && &got != want
    {
        let _ = w.cancel();
        return Err(Error::new(
            ErrorKind::DigestMismatch,
            "migrate",
            key,
            format!("the source's bytes are {got}"),
        ));
    }
    w.commit()?;
    Ok(len)
}
