//! Storage drivers, and the [`Backend`] trait they implement.
//!
//! A driver only lays out directories and computes mounts. Everything else a snapshot
//! needs (its metadata, parents, labels, kinds, locks, building in a temporary directory
//! and renaming it into place, `fsync`, removal and the clean-up of what killed writers
//! left) is done once for every driver by [`crate::snapshots`].

pub mod btrfs;
pub mod overlay;
pub mod vfs;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;

use cargohold_core::root::FileType;
use cargohold_core::{Dir, Result};

use crate::{Mount, Usage};

/// Name of the directory inside every snapshot directory that holds its files: the
/// full tree for `vfs`, the upper dir for `overlay`. Layer tars are applied into it.
pub const CONTENT_DIR: &str = "fs";

/// One snapshot's directory as a [`Backend`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotDir<'a> {
    /// The short random id that names the directory (stable for the snapshot's life,
    /// also across commit).
    pub id: &'a str,
    /// Its absolute path (for mount specs and external programs only; file access goes
    /// through `dir`).
    pub path: &'a Path,
    /// The open directory.
    pub dir: &'a Dir,
}

/// How a backend's snapshots hold their files, which decides how the store applies a
/// layer tar into them and exports a diff from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Every snapshot's [`CONTENT_DIR`] is the complete tree (vfs). A layer is applied
    /// into it with whiteouts carried out (`WhiteoutFormat::Remove`); a diff is the tree
    /// difference between the parent's and the child's content dirs.
    Full,
    /// Like [`Layout::Full`], and every snapshot is a copy-on-write snapshot of its
    /// parent (btrfs): files the child never touched keep their inode number and change
    /// time, so a diff reads only the files whose identity changed
    /// (`archive::export_snapshot_diff`).
    Snapshot,
    /// A snapshot's [`CONTENT_DIR`] holds only its own changes, over its parents' content
    /// dirs (overlay). A layer is applied with overlay whiteouts and the parents passed as
    /// lowers; a diff is exported from the content dir alone.
    Overlay {
        /// Whiteouts and opaque markers use `user.overlay.*` xattrs instead of
        /// `trusted.overlay.*` and character devices.
        userxattr: bool,
    },
}

/// What a driver implements. Called by [`crate::snapshots`] with its bookkeeping lock
/// rules already applied: a backend never sees a half-built parent, and never needs its
/// own locks.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// The driver's name (`"vfs"`, `"overlay"`).
    fn name(&self) -> &'static str;

    /// How snapshots hold their files.
    fn layout(&self) -> Layout;

    /// Lay out the new snapshot `new` (an empty directory being built under a temporary
    /// name, invisible to everyone else) on top of `parents`, nearest parent first.
    /// Must create [`CONTENT_DIR`] in it. Called for active snapshots and views alike.
    fn create(&self, new: &SnapshotDir<'_>, parents: &[SnapshotDir<'_>]) -> Result<()>;

    /// The mounts that show `snap` over `parents` (nearest first) as one tree, read-only
    /// unless `writable`. Returned as data; nothing is mounted.
    fn mounts(
        &self,
        snap: &SnapshotDir<'_>,
        parents: &[SnapshotDir<'_>],
        writable: bool,
    ) -> Result<Vec<Mount>>;

    /// Remove the snapshot directory `name` in `parent` and everything in it (it is
    /// already invisible under its key). The default removes it recursively; a driver
    /// whose content is not plain files (btrfs subvolumes) removes it its own way.
    fn discard(&self, parent: &Dir, name: &OsStr) -> Result<()> {
        parent.remove_all(name)
    }

    /// `snap` is about to become a committed snapshot: make its content immutable if the
    /// driver can (btrfs: a read-only subvolume). Called once, before its record is
    /// written; the default does nothing.
    fn seal(&self, snap: &SnapshotDir<'_>) -> Result<()> {
        let _ = snap;
        Ok(())
    }

    /// Disk usage of `snap`'s own data (never counting its parents'); `parent` is its
    /// nearest parent, for drivers whose snapshots share their parent's files. The
    /// default walks [`CONTENT_DIR`].
    fn usage(&self, snap: &SnapshotDir<'_>, parent: Option<&SnapshotDir<'_>>) -> Result<Usage> {
        let _ = parent;
        tree_usage(&snap.dir.open_dir(OsStr::new(CONTENT_DIR))?)
    }
}

/// Disk usage of everything below `dir` (and `dir` itself), each inode counted once.
pub fn tree_usage(dir: &Dir) -> Result<Usage> {
    let mut seen = HashSet::new();
    let mut usage = Usage::default();
    let st = dir.stat_self()?;
    seen.insert(st.st_ino);
    usage.inodes += 1;
    usage.size += st.st_blocks as u64 * 512;
    walk_usage(dir, &mut seen, &mut usage)?;
    Ok(usage)
}

fn walk_usage(dir: &Dir, seen: &mut HashSet<u64>, usage: &mut Usage) -> Result<()> {
    for (name, kind) in dir.entries()? {
        let st = dir.stat(&name)?;
        if st.st_nlink > 1 && !seen.insert(st.st_ino) {
            continue;
        }
        usage.inodes += 1;
        usage.size += st.st_blocks as u64 * 512;
        if kind == FileType::Directory {
            walk_usage(&dir.open_dir(&name)?, seen, usage)?;
        }
    }
    Ok(())
}
