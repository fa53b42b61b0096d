//! The children index of [`Snapshots`]: `children/<hp>/<hc>`, one empty marker per
//! snapshot `c` whose parent is `p` (both named by [`key_hash`]), changed only under the
//! store lock. A marker is written before the child's record and removed after it, so a
//! record is always indexed; the markers are never `fsync`ed, and
//! [`Snapshots::open`] rebuilds them from the records.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};

use cargohold_core::root::FileType;
use cargohold_core::{ErrorKind, Result};

use super::{Snapshots, key_hash};

impl Snapshots {
    /// Make `children/` hold exactly the markers in `want` (parent hash to child hashes).
    pub(super) fn reindex_children(&self, want: &HashMap<String, HashSet<String>>) -> Result<()> {
        for (name, kind) in self.children.entries()? {
            let expected = name.to_str().and_then(|n| want.get(n));
            if kind != FileType::Directory || expected.is_none() {
                self.children.remove_all(&name)?;
                continue;
            }
            let dir = self.children.open_dir(&name)?;
            for (child, _) in dir.entries()? {
                if !child
                    .to_str()
                    .is_some_and(|c| expected.is_some_and(|e| e.contains(c)))
                {
                    dir.remove_all(&child)?;
                }
            }
        }
        for (parent, kids) in want {
            let dir = self.children.mkdir_open(OsStr::new(parent), 0o700)?;
            for kid in kids {
                dir.create_file(OsStr::new(kid), 0o600, false)?;
            }
        }
        Ok(())
    }

    /// Mark `child` as a child of `parent` (under the store lock, before its record).
    pub(super) fn add_child(&self, parent: &str, child: &str) -> Result<()> {
        let dir = self
            .children
            .mkdir_open(OsStr::new(&key_hash(parent)), 0o700)?;
        dir.create_file(OsStr::new(&key_hash(child)), 0o600, false)?;
        Ok(())
    }

    /// Drop the marker of `child` under `parent` (after its record is gone).
    pub(super) fn drop_child(&self, parent: &str, child: &str) -> Result<()> {
        let dir = match self.children.open_dir(OsStr::new(&key_hash(parent))) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        match dir.remove_file(OsStr::new(&key_hash(child))) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// A child of `parent`, found through its markers (under the store lock). A marker
    /// whose record is gone or names another parent was left by a killed process and is
    /// dropped; when none is left the parent's marker directory is removed too.
    pub(super) fn live_child(&self, parent: &str) -> Result<Option<String>> {
        let hp = OsString::from(key_hash(parent));
        let dir = match self.children.open_dir(&hp) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        for (marker, _) in dir.entries()? {
            let mut file = marker.clone();
            file.push(".json");
            match self.find_file(&file)? {
                Some(rec) if rec.parent.as_deref() == Some(parent) => return Ok(Some(rec.name)),
                _ => dir.remove_file(&marker)?,
            }
        }
        match self.children.remove_dir(&hp) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(None),
        }
    }
}
