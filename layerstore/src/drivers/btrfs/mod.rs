//! The btrfs driver: every snapshot's content is a btrfs subvolume, a child a
//! copy-on-write snapshot of its parent's, so a container costs one snapshot ioctl, not
//! a copy. The tree is complete in every snapshot ([`Layout::Full`]), so layers are
//! applied and diffs exported exactly as with vfs; mounts are bind mounts.
//!
//! Removal needs no hook: the bookkeeping removes a snapshot's directory recursively,
//! and an emptied subvolume root is removed by `rmdir` (Linux 4.18+, as root or with
//! `user_subvol_rm_allowed`). [`destroy`] deletes a whole subvolume at once where a
//! caller can use it.

mod ioctl;

use std::ffi::OsStr;

use cargohold_core::{Error, ErrorKind, Result};

pub use ioctl::{create_subvolume, destroy, is_btrfs, is_subvolume_root, set_readonly, snapshot};

use crate::Mount;
use crate::drivers::{Backend, CONTENT_DIR, Layout, SnapshotDir};

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
        Layout::Full
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
}
