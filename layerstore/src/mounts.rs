//! Carrying out [`Mount`] specs, for callers that just want a directory.
//!
//! Only this module mounts anything; [`crate::Driver`] returns mounts as data.

use std::path::Path;

use cargohold_core::{Error, ErrorKind, Result};
use rustix::mount::{self as rmount, MountFlags, UnmountFlags};

use crate::Mount;

/// Mount `mounts` in order at `target` (each at its own `target` below it, if set).
/// On failure, what was mounted is unmounted again.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    let mut done: Vec<std::path::PathBuf> = Vec::new();
    for m in mounts {
        let at = match &m.target {
            Some(sub) => {
                if sub.is_absolute() || sub.components().any(|c| c.as_os_str() == "..") {
                    return Err(Error::new(
                        ErrorKind::PathEscape,
                        "mount",
                        sub.display(),
                        "a mount target must stay below the root",
                    ));
                }
                target.join(sub)
            }
            None => target.to_path_buf(),
        };
        if let Err(e) = mount_one(m, &at) {
            for p in done.iter().rev() {
                let _ = unmount(p);
            }
            return Err(e);
        }
        done.push(at);
    }
    Ok(())
}

fn mount_one(m: &Mount, at: &Path) -> Result<()> {
    let ro = m.is_read_only();
    match m.kind.as_str() {
        "bind" => {
            let rec = m.options.iter().any(|o| o == "rbind");
            let r = if rec {
                rmount::mount_bind_recursive(&m.source, at)
            } else {
                rmount::mount_bind(&m.source, at)
            };
            r.map_err(|e| Error::errno("mount", at.display(), e))?;
            if ro {
                let flags = MountFlags::BIND | MountFlags::RDONLY;
                if let Err(e) = rmount::mount_remount(at, flags, "") {
                    let _ = unmount(at);
                    return Err(Error::errno("remount ro", at.display(), e));
                }
            }
            Ok(())
        }
        "overlay" => crate::drivers::overlay::mount::mount_overlay(
            m,
            at,
            crate::drivers::overlay::mount::MountApi::Auto,
        ),
        other => Err(Error::new(
            ErrorKind::Unsupported,
            "mount",
            other,
            "unknown mount kind",
        )),
    }
}

/// Unmount `target` (recursively mounted binds are detached with it).
pub fn unmount(target: &Path) -> Result<()> {
    rmount::unmount(target, UnmountFlags::DETACH)
        .map_err(|e| Error::errno("unmount", target.display(), e))
}

/// Mount points at or below `dir`, from `/proc/self/mountinfo`.
pub fn mounts_below(dir: &Path) -> Result<Vec<std::path::PathBuf>> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read mountinfo", "/proc/self/mountinfo", e))?;
    let dir =
        std::fs::canonicalize(dir).map_err(|e| Error::io("canonicalize", dir.display(), e))?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(unescape)
        .map(std::path::PathBuf::from)
        .filter(|p| p.starts_with(&dir))
        .collect())
}

fn unescape(s: &str) -> String {
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(u8::is_ascii_digit) {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

const MOUNTS_DIR: &str = "mounts";
const MOUNTS_LOCK: &str = "mounts.lock";
const RECORD_EXT: &str = ".json";
const TARGET_EXT: &str = ".target";

/// One entry of the on-disk mount table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MountRecord {
    /// The snapshot key mounted.
    pub key: String,
    /// Where it is mounted.
    pub target: std::path::PathBuf,
    /// How many [`crate::LayerStore::mount`] calls share the mount.
    pub count: u64,
}

/// The mount counts of a store, changed only under `locks/mounts.lock`, so processes
/// mounting one key share one mount and the last unmount unmounts.
///
/// On disk, in `mounts/`: `<hk>.json`, the record of the mounted key `k`, and
/// `<ht>.target`, a symlink to that record's name from its target `t` (both names the
/// first 40 hex digits of a SHA-256), so a mount, an unmount and a removal each read one
/// record, never the whole table. A link is made before its record and removed after
/// it: a record always has its link, and a link without a matching record (left by a
/// killed process) is ignored and replaced.
///
/// Durability: none. Records and links are written temp-then-rename (a killed process
/// never leaves half a record) but never `fsync`ed: mounts do not survive a reboot, and
/// [`MountTable::open`] drops every record whose target is no longer a mount point
/// (checked against `/proc/self/mountinfo`) and every link without its record.
#[derive(Debug)]
pub struct MountTable {
    dir: cargohold_core::Dir,
}

fn hashed(s: &[u8], ext: &str) -> std::ffi::OsString {
    let d = cargohold_core::Digest::sha256(s);
    std::ffi::OsString::from(format!("{}{ext}", &d.hex()[..40]))
}

fn record_name(key: &str) -> std::ffi::OsString {
    hashed(key.as_bytes(), RECORD_EXT)
}

fn target_name(target: &Path) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    hashed(target.as_os_str().as_bytes(), TARGET_EXT)
}

impl MountTable {
    /// Open the table of `snaps`' store, dropping records whose mounts are gone (their
    /// holder died and something else unmounted them, or the machine rebooted) and
    /// target links without their record, and linking records that lack one.
    pub fn open(snaps: &crate::snapshots::Snapshots) -> Result<MountTable> {
        let dir = snaps
            .root()
            .dir()
            .mkdir_open(std::ffi::OsStr::new(MOUNTS_DIR), 0o700)?;
        let t = MountTable { dir };
        let _lock = t.lock(snaps)?;
        cargohold_core::atomic::clean_stale(&t.dir)?;
        let mut linked = std::collections::HashSet::new();
        for (file, rec) in t.records()? {
            if !is_mount_point(&rec.target)? {
                t.dir.remove_file(&file)?;
                continue;
            }
            let link = target_name(&rec.target);
            if t.linked(&link)?.as_ref() != Some(&file) {
                t.link(&link, &file)?;
            }
            linked.insert(link);
        }
        for (name, _) in t.dir.entries()? {
            if name.to_string_lossy().ends_with(TARGET_EXT) && !linked.contains(&name) {
                t.dir.remove_file(&name)?;
            }
        }
        Ok(t)
    }

    /// Take the mount-table lock. Lock order: this lock before the store lock.
    pub fn lock(&self, snaps: &crate::snapshots::Snapshots) -> Result<cargohold_core::FileLock> {
        cargohold_core::FileLock::lock(
            snaps.locks(),
            std::ffi::OsStr::new(MOUNTS_LOCK),
            cargohold_core::LockMode::Exclusive,
        )
    }

    fn records(&self) -> Result<Vec<(std::ffi::OsString, MountRecord)>> {
        let mut out = Vec::new();
        for (name, _) in self.dir.entries()? {
            if cargohold_core::atomic::is_temp_name(&name)
                || !name.to_string_lossy().ends_with(RECORD_EXT)
            {
                continue;
            }
            if let Some(rec) = self.read(&name)? {
                out.push((name, rec));
            }
        }
        Ok(out)
    }

    fn read(&self, file: &std::ffi::OsStr) -> Result<Option<MountRecord>> {
        let mut f = match self.dir.open_file(file, rustix::fs::OFlags::RDONLY) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut buf)
            .map_err(|e| Error::io("read mount record", file.to_string_lossy(), e))?;
        serde_json::from_slice(&buf).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                "read mount record",
                file.to_string_lossy(),
                e,
            )
        })
    }

    fn write(&self, rec: &MountRecord) -> Result<()> {
        let data = serde_json::to_vec(rec)
            .map_err(|e| Error::new(ErrorKind::Io, "write mount record", &rec.key, e))?;
        cargohold_core::atomic::write_file_volatile(&self.dir, &record_name(&rec.key), &data, 0o600)
    }

    /// The record file the target link `link` points at, if the link exists.
    fn linked(&self, link: &std::ffi::OsStr) -> Result<Option<std::ffi::OsString>> {
        match self.dir.read_link(link) {
            Ok(p) => Ok(Some(p.into_os_string())),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Point the target link `link` at `file`, replacing a stale link.
    fn link(&self, link: &std::ffi::OsStr, file: &std::ffi::OsStr) -> Result<()> {
        match self.dir.remove_file(link) {
            Err(e) if e.kind() != ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        self.dir.symlink(Path::new(file), link)
    }

    /// The record mounted at `target` with its file name, through the target link.
    fn at_target(&self, target: &Path) -> Result<Option<(std::ffi::OsString, MountRecord)>> {
        let Some(file) = self.linked(&target_name(target))? else {
            return Ok(None);
        };
        Ok(self
            .read(&file)?
            .filter(|r| r.target == target && record_name(&r.key) == file)
            .map(|r| (file, r)))
    }

    /// Whether `key` is mounted through the table.
    pub fn is_mounted(&self, key: &str) -> Result<bool> {
        Ok(self.read(&record_name(key))?.is_some())
    }

    /// Mount `mounts` of `key` at `target`, or count one more user of that mount.
    pub fn mount(
        &self,
        snaps: &crate::snapshots::Snapshots,
        key: &str,
        mounts: &[Mount],
        target: &Path,
    ) -> Result<()> {
        let target =
            std::fs::canonicalize(target).map_err(|e| Error::io("mount", target.display(), e))?;
        let _lock = self.lock(snaps)?;
        snaps.get(key)?;
        let file = record_name(key);
        if let Some(mut rec) = self.read(&file)? {
            if rec.target != target {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "mount",
                    key,
                    format!("already mounted at {}", rec.target.display()),
                ));
            }
            rec.count += 1;
            return self.write(&rec);
        }
        if self.at_target(&target)?.is_some() {
            return Err(Error::new(
                ErrorKind::InUse,
                "mount",
                target.display(),
                "another key is mounted there",
            ));
        }
        let link = target_name(&target);
        self.link(&link, &file)?;
        if let Err(e) = mount_all(mounts, &target) {
            let _ = self.dir.remove_file(&link);
            return Err(e);
        }
        let rec = MountRecord {
            key: key.to_owned(),
            target: target.clone(),
            count: 1,
        };
        if let Err(e) = self.write(&rec) {
            let _ = unmount(&target);
            let _ = self.dir.remove_file(&link);
            return Err(e);
        }
        Ok(())
    }

    /// Drop one user of the mount at `target`; the last one unmounts.
    pub fn unmount(&self, snaps: &crate::snapshots::Snapshots, target: &Path) -> Result<()> {
        let target =
            std::fs::canonicalize(target).map_err(|e| Error::io("unmount", target.display(), e))?;
        let _lock = self.lock(snaps)?;
        let Some((file, mut rec)) = self.at_target(&target)? else {
            return Err(Error::new(
                ErrorKind::NotFound,
                "unmount",
                target.display(),
                "nothing of this store is mounted there",
            ));
        };
        if rec.count > 1 {
            rec.count -= 1;
            return self.write(&rec);
        }
        unmount(&target)?;
        self.dir.remove_file(&file)?;
        self.dir.remove_file(&target_name(&target))
    }
}

fn is_mount_point(p: &Path) -> Result<bool> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read mountinfo", "/proc/self/mountinfo", e))?;
    Ok(info
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| Path::new(&unescape(m)) == p))
}
