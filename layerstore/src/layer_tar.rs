//! How the store applies a layer tar into a snapshot and exports a snapshot's diff.
//!
//! The one place the store calls the [`crate::archive`] module: layer tars are applied
//! by `archive::apply`, diffs are exported by `archive::export_tree_diff` (full-copy
//! layouts, against the parent's tree) or `archive::export_overlay_upper` (overlay
//! layouts, from the upper directory alone, so the cost follows the change).

use std::io::{self, Read, Write};

use cargohold_core::{Digest, Result, Root};

use crate::archive;
use crate::drivers::Layout;

/// What applying a layer tar found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedTar {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the stream as given, when it was compressed.
    pub compressed_digest: Option<Digest>,
    /// Uncompressed size in bytes.
    pub size: u64,
}

/// Expectations the caller has about a tar.
#[derive(Debug, Clone, Default)]
pub struct Expect<'a> {
    /// The diff ID the uncompressed tar must hash to.
    pub diff_id: Option<&'a Digest>,
    /// The digest the stream as given must hash to.
    pub compressed: Option<&'a Digest>,
    /// Make the files durable before returning (one `syncfs`); off when the caller
    /// defers the sync.
    pub sync: bool,
}

/// Apply the (plain, gzip or zstd) tar from `reader` into `target` laid out as `layout`
/// over `lowers` (nearest first), through [`crate::archive::apply`]: whiteouts carried
/// out for [`Layout::Full`], kept in overlay format for [`Layout::Overlay`].
/// `DigestMismatch` when an expectation fails (the caller throws the target away).
pub fn apply(
    reader: &mut (dyn Read + Send),
    target: &Root,
    lowers: &[Root],
    layout: Layout,
    expect: Expect<'_>,
) -> Result<AppliedTar> {
    let whiteouts = match layout {
        Layout::Full | Layout::Snapshot => archive::WhiteoutFormat::Remove,
        Layout::Overlay { userxattr } => archive::WhiteoutFormat::Overlay { userxattr },
    };
    let lowers: Vec<&Root> = match layout {
        // A full copy already holds its parents' tree.
        Layout::Full | Layout::Snapshot => Vec::new(),
        Layout::Overlay { .. } => lowers.iter().collect(),
    };
    let opts = archive::ApplyOptions {
        expected_diff_id: expect.diff_id.cloned(),
        expected_compressed_digest: expect.compressed.cloned(),
        whiteouts,
        sync: expect.sync,
        ..archive::ApplyOptions::default()
    };
    let applied = archive::apply(reader, target, &lowers, &opts)?;
    Ok(AppliedTar {
        diff_id: applied.diff_id,
        compressed_digest: (applied.compression != archive::Compression::None)
            .then_some(applied.compressed_digest),
        size: applied.uncompressed_size,
    })
}

pub use crate::archive::{Change, ChangeKind};

/// Export the diff of `child` over `lowers` (its parents' content dirs, nearest first).
fn exported(
    child: &Root,
    lowers: &[Root],
    layout: Layout,
    out: impl Write,
) -> Result<archive::Exported> {
    match layout {
        Layout::Full => archive::export_tree_diff(lowers.first(), child, out),
        Layout::Snapshot => archive::export_snapshot_diff(lowers.first(), child, out),
        Layout::Overlay { userxattr } => {
            let lowers: Vec<&Root> = lowers.iter().collect();
            archive::export_overlay_upper(child, &lowers, userxattr, out)
        }
    }
}

/// The changes of `child` over `lowers` (nearest first; none: everything is added),
/// sorted by path, as `docker diff` reports them.
pub fn changes(child: &Root, lowers: &[Root], layout: Layout) -> Result<Vec<Change>> {
    Ok(exported(child, lowers, layout, io::sink())?.changes)
}

/// Write the diff of `child` over `lowers` as an uncompressed layer tar to `out`;
/// returns its diff ID and size.
pub fn export(
    child: &Root,
    lowers: &[Root],
    layout: Layout,
    out: &mut dyn Write,
) -> Result<(Digest, u64)> {
    let e = exported(child, lowers, layout, out)?;
    Ok((e.diff_id, e.size))
}
