//! The overlay driver: a snapshot's [`CONTENT_DIR`] holds only its own changes, and a
//! tree is the kernel's overlay of a snapshot's upper dir over its parents' content dirs.
//!
//! Layout of one snapshot directory (`snapshots/<16 hex>/`, so a lower path is the store
//! root plus 36 bytes):
//! - `fs/`: the upper dir of an active snapshot, the lower dir of a committed one;
//! - `work/`: overlay's work dir (same filesystem as `fs/`, as the kernel requires).
//!
//! Mounts, returned as data (nearest lower first in [`Mount::lowerdirs`]):
//! - active, no parent: `fs/` bind-mounted read-write (nothing to overlay);
//! - active on parents: overlay, `upperdir=fs`, `workdir=work`, lowers the parents' `fs/`;
//! - read-only (views, committed snapshots): one non-empty layer is bound read-only,
//!   several are an overlay without upper (`ro`).
//!
//! Overlay options: `redirect_dir=nofollow` and `metacopy=off`, so the upper dir only
//! ever holds full copies, whiteouts and opaque directories (a rename of a lower
//! directory fails with `EXDEV` and programs copy instead): a diff read from the upper dir
//! alone is then complete without following redirects. (`nofollow` rather than `off`:
//! the kernel turns `off` into "off, but follow", which `userxattr` refuses.) In a user namespace (`uid_map` not the
//! identity) `userxattr` is added and [`Layout::Overlay`] says `userxattr: true`.
//!
//! Stacks of any depth up to the kernel's 500 lowers mount through [`mount::mount_overlay`],
//! which uses the new mount API and falls back to `mount(2)` with short names.

pub mod mount;

use std::ffi::OsStr;
use std::path::PathBuf;

use cargohold_core::{Error, Result};

use crate::Mount;
use crate::drivers::{Backend, CONTENT_DIR, Layout, SnapshotDir};

/// Name of the overlay work dir inside a snapshot directory.
pub const WORK_DIR: &str = "work";

/// Options every overlay mount of this driver carries (see the module docs).
pub const BASE_OPTIONS: [&str; 2] = ["redirect_dir=nofollow", "metacopy=off"];

/// The overlay backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overlay {
    userxattr: bool,
}

impl Default for Overlay {
    fn default() -> Self {
        Overlay::new()
    }
}

impl Overlay {
    /// An overlay backend for this process: rootless (`userxattr`) when running in a
    /// user namespace.
    pub fn new() -> Overlay {
        Overlay {
            userxattr: in_user_namespace().unwrap_or(false),
        }
    }

    /// An overlay backend with `userxattr` forced on or off.
    pub fn with_userxattr(userxattr: bool) -> Overlay {
        Overlay { userxattr }
    }

    /// Whether mounts use `userxattr`.
    pub fn userxattr(&self) -> bool {
        self.userxattr
    }

    fn options(&self) -> Vec<String> {
        let mut o: Vec<String> = BASE_OPTIONS.iter().map(|s| (*s).to_owned()).collect();
        if self.userxattr {
            o.push("userxattr".to_owned());
        }
        o
    }
}

/// Whether this process runs in a user namespace other than the initial one: its
/// `uid_map` is not the identity map `0 0 4294967295`.
pub fn in_user_namespace() -> Result<bool> {
    let map = std::fs::read_to_string("/proc/self/uid_map")
        .map_err(|e| Error::io("read uid_map", "/proc/self/uid_map", e))?;
    let fields: Vec<&str> = map.split_whitespace().collect();
    Ok(fields != ["0", "0", "4294967295"])
}

fn content(s: &SnapshotDir<'_>) -> PathBuf {
    s.path.join(CONTENT_DIR)
}

fn bind(source: PathBuf, writable: bool) -> Mount {
    Mount {
        kind: "bind".to_owned(),
        source,
        target: None,
        options: vec![
            if writable { "rw" } else { "ro" }.to_owned(),
            "rbind".to_owned(),
        ],
        lowerdirs: Vec::new(),
    }
}

fn lowerdir_option(lowers: &[PathBuf]) -> String {
    let joined: Vec<String> = lowers
        .iter()
        .map(|l| {
            l.to_string_lossy()
                .replace('\\', "\\\\")
                .replace(':', "\\:")
        })
        .collect();
    format!("lowerdir={}", joined.join(":"))
}

impl Backend for Overlay {
    fn name(&self) -> &'static str {
        "overlay"
    }

    fn layout(&self) -> Layout {
        Layout::Overlay {
            userxattr: self.userxattr,
        }
    }

    fn create(&self, new: &SnapshotDir<'_>, parents: &[SnapshotDir<'_>]) -> Result<()> {
        if parents.len() + 1 > mount::MAX_LOWERS {
            return Err(Error::new(
                cargohold_core::ErrorKind::InvalidArgument,
                "create",
                new.id,
                format!("overlay stacks at most {} layers", mount::MAX_LOWERS),
            ));
        }
        new.dir.mkdir(OsStr::new(CONTENT_DIR), 0o755)?;
        new.dir.mkdir(OsStr::new(WORK_DIR), 0o700)?;
        Ok(())
    }

    fn mounts(
        &self,
        snap: &SnapshotDir<'_>,
        parents: &[SnapshotDir<'_>],
        writable: bool,
    ) -> Result<Vec<Mount>> {
        if writable {
            if parents.is_empty() {
                return Ok(vec![bind(content(snap), true)]);
            }
            let lowers: Vec<PathBuf> = parents.iter().map(content).collect();
            let mut options = vec![lowerdir_option(&lowers)];
            options.push(format!("upperdir={}", content(snap).display()));
            options.push(format!("workdir={}", snap.path.join(WORK_DIR).display()));
            options.extend(self.options());
            return Ok(vec![Mount {
                kind: "overlay".to_owned(),
                source: PathBuf::from("overlay"),
                target: None,
                options,
                lowerdirs: lowers,
            }]);
        }
        // Read-only: the snapshot's own dir counts only when it holds something (a view's
        // never does), so a view of one layer is a plain read-only bind.
        let own_empty = snap
            .dir
            .open_dir(OsStr::new(CONTENT_DIR))?
            .entries()?
            .is_empty();
        let mut lowers: Vec<PathBuf> = Vec::with_capacity(parents.len() + 1);
        if !own_empty || parents.is_empty() {
            lowers.push(content(snap));
        }
        lowers.extend(parents.iter().map(content));
        if lowers.len() == 1 {
            return Ok(vec![bind(lowers.remove(0), false)]);
        }
        let mut options = vec!["ro".to_owned(), lowerdir_option(&lowers)];
        options.extend(self.options());
        Ok(vec![Mount {
            kind: "overlay".to_owned(),
            source: PathBuf::from("overlay"),
            target: None,
            options,
            lowerdirs: lowers,
        }])
    }
}
