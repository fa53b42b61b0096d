//! The vfs driver: every snapshot is a complete directory tree, a child a copy of its
//! parent (reflinked where the filesystem can, copied where not). Mounts are bind mounts.

pub mod copy;

use std::ffi::OsStr;

use cargohold_core::Result;

use crate::Mount;
use crate::drivers::{Backend, CONTENT_DIR, Layout, SnapshotDir};

/// The vfs backend.
#[derive(Debug, Default, Clone, Copy)]
pub struct Vfs;

impl Backend for Vfs {
    fn name(&self) -> &'static str {
        "vfs"
    }

    fn layout(&self) -> Layout {
        Layout::Full
    }

    fn create(&self, new: &SnapshotDir<'_>, parents: &[SnapshotDir<'_>]) -> Result<()> {
        let name = OsStr::new(CONTENT_DIR);
        match parents.first() {
            None => {
                new.dir.mkdir(name, 0o755)?;
            }
            Some(parent) => {
                let src = parent.dir.open_dir(name)?;
                let st = src.stat_self()?;
                let dst = new.dir.mkdir_open(name, 0o700)?;
                copy::copy_tree(&src, &dst)?;
                copy::copy_meta(&src, &dst, &st)?;
            }
        }
        Ok(())
    }

    fn mounts(
        &self,
        snap: &SnapshotDir<'_>,
        _parents: &[SnapshotDir<'_>],
        writable: bool,
    ) -> Result<Vec<Mount>> {
        let mut options = vec![if writable { "rw" } else { "ro" }.to_owned()];
        options.push("rbind".to_owned());
        Ok(vec![Mount {
            kind: "bind".to_owned(),
            source: snap.path.join(CONTENT_DIR),
            target: None,
            options,
            lowerdirs: Vec::new(),
        }])
    }
}
