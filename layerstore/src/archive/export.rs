//! Exporting a layer's diff as a deterministic tar.

use std::io::Write;

use cargohold_core::{Digest, Error, ErrorKind, Result, Root};
use std::path::PathBuf;

/// What changed at a path, as `docker diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// `A`: new in the child.
    Added,
    /// `C`: changed.
    Modified,
    /// `D`: gone from the child.
    Deleted,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Kind of change.
    pub kind: ChangeKind,
    /// Path relative to the root.
    pub path: PathBuf,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// sha256 of the tar written.
    pub diff_id: Digest,
    /// Length of the tar written.
    pub size: u64,
    /// Changed paths, sorted by path.
    pub changes: Vec<Change>,
}

/// Write the diff of the full-copy tree `child` against `parent` (none: everything is
/// added) to `out` as a layer tar.
pub fn export_tree_diff(parent: Option<&Root>, child: &Root, out: impl Write) -> Result<Exported> {
    let _ = (parent, child, out);
    Err(Error::new(
        ErrorKind::Unsupported,
        "export",
        "tree diff",
        "not yet",
    ))
}

/// Write the diff held by the overlay upper dir `upper` (over `lowers`, nearest first)
/// to `out` as a layer tar.
pub fn export_overlay_upper(
    upper: &Root,
    lowers: &[&Root],
    userxattr: bool,
    out: impl Write,
) -> Result<Exported> {
    let _ = (upper, lowers, userxattr, out);
    Err(Error::new(
        ErrorKind::Unsupported,
        "export",
        "overlay upper",
        "not yet",
    ))
}
