//! The btrfs driver: every snapshot's content is a btrfs subvolume, a child a
//! copy-on-write snapshot of its parent's, so a container costs one snapshot ioctl, not
//! a copy. The tree is complete in every snapshot ([`Layout::Snapshot`]), so layers are
//! applied as with vfs, and a diff reads only the files whose inode or change time the
//! snapshot changed (the tar is the one vfs exports); mounts are bind mounts.
//!
//! Removal deletes the content subvolume with one ioctl ([`Backend::discard`]), so it
//! costs the same whatever the snapshot holds. Where the bookkeeping removes a snapshot
//! directory without the backend (a killed builder's leftovers), the recursive removal
//! still works: an emptied subvolume root is removed by `rmdir` (Linux 4.18+, as root).

mod ioctl;

use std::ffi::OsStr;

use std::collections::HashSet;

use cargohold_core::root::{FileType, Stat};
use cargohold_core::{Dir, Error, ErrorKind, Result};

pub use ioctl::{create_subvolume, destroy, is_btrfs, is_subvolume_root, set_readonly, snapshot};

use crate::Mount;
use crate::Usage;
use crate::drivers::{Backend, CONTENT_DIR, Layout, SnapshotDir, tree_usage};

/// The btrfs backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct Btrfs;

impl Btrfs {
    /// The backend, after checking that `store` (the store's directory) is on btrfs:
    /// `Unsupported` otherwise.
    pub fn for_store(store: &std::path::Path) -> Result<Btrfs> {
        let dir = cargohold_core::Dir::open_path(store)?;
        if !is_btrfs(&dir)? {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "btrfs driver",
                store.display(),
                "the store is not on btrfs",
            ));
        }
        Ok(Btrfs)
    }
}

impl Backend for Btrfs {
    fn name(&self) -> &'static str {
        "btrfs"
    }

    fn layout(&self) -> Layout {
        Layout::Snapshot
    }

    fn create(&self, new: &SnapshotDir<'_>, parents: &[SnapshotDir<'_>]) -> Result<()> {
        let name = OsStr::new(CONTENT_DIR);
        match parents.first() {
            None => create_subvolume(new.dir, name),
            Some(parent) => {
                let src = parent.dir.open_dir(name)?;
                snapshot(&src, new.dir, name, false)
            }
        }
    }

    /// Deletes the content subvolume with one ioctl (whatever it holds), then the rest.
    fn discard(&self, parent: &Dir, name: &OsStr) -> Result<()> {
        match parent.open_dir(name) {
            Ok(dir) => {
                let content = OsStr::new(CONTENT_DIR);
                if let Ok(fs) = dir.open_dir(content)
                    && is_subvolume_root(&fs)?
                {
                    drop(fs);
                    destroy(&dir, content)?;
                }
            }
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        parent.remove_all(name)
    }

    fn mounts(
        &self,
        snap: &SnapshotDir<'_>,
        _parents: &[SnapshotDir<'_>],
        writable: bool,
    ) -> Result<Vec<Mount>> {
        Ok(vec![Mount {
            kind: "bind".to_owned(),
            source: snap.path.join(CONTENT_DIR),
            target: None,
            options: vec![
                if writable { "rw" } else { "ro" }.to_owned(),
                "rbind".to_owned(),
            ],
            lowerdirs: Vec::new(),
        }])
    }

    /// A committed snapshot's subvolume becomes read-only (children are writable
    /// snapshots of it; destroying it needs no flag change).
    fn seal(&self, snap: &SnapshotDir<'_>) -> Result<()> {
        set_readonly(snap.dir.open_dir(OsStr::new(CONTENT_DIR))?, true)
    }

    /// The snapshot's own changes: what differs from the parent at the same path
    /// (another inode number, change time or size — the rule of
    /// `archive::export_snapshot_diff`); the files the snapshot still shares with its
    /// parent are not counted. Directories are always walked (a change below one does
    /// not move its change time) and counted only when they changed themselves.
    fn usage(&self, snap: &SnapshotDir<'_>, parent: Option<&SnapshotDir<'_>>) -> Result<Usage> {
        let content = OsStr::new(CONTENT_DIR);
        let dir = snap.dir.open_dir(content)?;
        let Some(parent) = parent else {
            return tree_usage(&dir);
        };
        let pdir = parent.dir.open_dir(content)?;
        let mut usage = Usage::default();
        let mut seen = HashSet::new();
        own_usage(&dir, Some(&pdir), &mut seen, &mut usage)?;
        Ok(usage)
    }
}

/// Whether two stats are the same untouched file of a snapshot and its parent.
fn same_inode(a: &Stat, b: &Stat) -> bool {
    a.st_ino == b.st_ino
        && a.st_ctime == b.st_ctime
        && a.st_ctime_nsec == b.st_ctime_nsec
        && a.st_size == b.st_size
}

fn own_usage(
    dir: &Dir,
    parent: Option<&Dir>,
    seen: &mut HashSet<u64>,
    usage: &mut Usage,
) -> Result<()> {
    for (name, kind) in dir.entries()? {
        let st = dir.stat(&name)?;
        let before = match parent {
            Some(p) => match p.stat(&name) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let unchanged = before.as_ref().is_some_and(|b| same_inode(&st, b));
        if !unchanged && (st.st_nlink <= 1 || seen.insert(st.st_ino)) {
            usage.inodes += 1;
            usage.size += st.st_blocks as u64 * 512;
        }
        if kind == FileType::Directory {
            let sub_parent = match &before {
                Some(b) if FileType::from_raw_mode(b.st_mode) == FileType::Directory => Some(
                    parent
                        .expect("a parent stat comes from a parent")
                        .open_dir(&name)?,
                ),
                _ => None,
            };
            own_usage(&dir.open_dir(&name)?, sub_parent.as_ref(), seen, usage)?;
        }
    }
    Ok(())
}
