//! One volume's own state file and lock.
//!
//! Docker's local driver keeps `<name>/_data` and `<name>/opts.json`; cargohold adds
//! `<name>/cargohold.json` (labels, creation time, anonymous flag, options as given,
//! populated), replaced whole, atomically and durably; `<name>/cargohold-holders.json`
//! (the holders and the boot they were taken in), replaced atomically but without
//! `fsync`; and `<name>/cargohold.lock`, the volume's lock. Docker ignores all three.
//!
//! Holders live in their own file so that the frequent, fsync-free holder writes can
//! never cost the durable record: after a power loss the holders file may come back
//! missing, empty or torn (its rename reached the disk before its data), and that is
//! read as "no holders" — right, since a power loss ends every holder. Without a power
//! loss the file is never torn (every reader sees the page cache, and a killed writer
//! leaves the old file or the new one).

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

use cargohold_core::atomic;
use cargohold_core::lock::{FileLock, LockMode};
use cargohold_core::{Dir, Error, ErrorKind, Result};

use crate::Options;

/// Docker's content directory.
pub const DATA: &str = "_data";
/// Docker's options file.
pub const DOCKER_OPTS: &str = "opts.json";
/// cargohold's state file.
pub const STATE: &str = "cargohold.json";
/// cargohold's holders file (volatile).
pub const HOLDERS: &str = "cargohold-holders.json";
/// cargohold's per-volume lock file.
pub const LOCK: &str = "cargohold.lock";
/// The image of a size-capped volume.
pub const IMAGE: &str = "cargohold-disk.img";
/// Prefix of the marker files (in the store directory) of volumes that have holders.
pub const HELD_PREFIX: &str = ".held.";

/// What cargohold keeps about a volume.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct State {
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Whether the volume was created without a name.
    #[serde(default)]
    pub anonymous: bool,
    /// The driver options as given at creation.
    #[serde(default)]
    pub options: Options,
    /// The mount ids holding the volume (kept in `cargohold-holders.json`; read from the state file
    /// only as stores written before the split kept them).
    #[serde(default, skip_serializing)]
    pub holders: BTreeSet<String>,
    /// The boot the holders were taken in (`/proc/sys/kernel/random/boot_id`); holders
    /// from another boot are stale. Kept in `cargohold-holders.json` like the holders.
    #[serde(default, skip_serializing)]
    pub boot_id: Option<String>,
    /// Whether `populate` already ran (it copies once).
    #[serde(default)]
    pub populated: bool,
}

/// The volatile part of a volume's state, in [`HOLDERS`].
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct Holders {
    #[serde(default)]
    holders: BTreeSet<String>,
    #[serde(default)]
    boot_id: Option<String>,
}

/// Read a volume's state from its directory: the durable record, then the holders.
/// A holders file that does not parse is what a power loss leaves, and reads as no
/// holders.
pub fn read(vol: &Dir, name: &str) -> Result<State> {
    let f = vol.open_file(OsStr::new(STATE), rustix::fs::OFlags::RDONLY)?;
    let mut st: State = serde_json::from_reader(std::io::BufReader::new(f))
        .map_err(|e| Error::new(ErrorKind::Corrupt, "read volume state", name, e.to_string()))?;
    match vol.open_file(OsStr::new(HOLDERS), rustix::fs::OFlags::RDONLY) {
        Ok(f) => {
            let h: Holders =
                serde_json::from_reader(std::io::BufReader::new(f)).unwrap_or_default();
            st.holders = h.holders;
            st.boot_id = h.boot_id;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    Ok(st)
}

/// Replace a volume's durable record (everything but the holders) atomically and
/// durably.
pub fn write(vol: &Dir, state: &State) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
    atomic::write_file(vol, OsStr::new(STATE), &bytes, 0o600)
}

/// Replace a volume's holders atomically (a killed writer leaves the old or the new
/// file) but without `fsync`: a power loss makes holders stale anyway, and what it
/// leaves of this file reads as no holders.
pub fn write_holders(vol: &Dir, state: &State) -> Result<()> {
    let h = Holders {
        holders: state.holders.clone(),
        boot_id: state.boot_id.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&h).expect("holders serialise");
    atomic::write_file_volatile(vol, OsStr::new(HOLDERS), &bytes, 0o600)
}

/// A volume's directory, opened and locked exclusively.
#[derive(Debug)]
pub struct Locked {
    /// The volume's directory.
    pub dir: Dir,
    /// Its name.
    pub name: String,
    _lock: FileLock,
}

/// Open the volume `name` in the store directory `store` and lock it. `NotFound` if it
/// does not exist, also when it was removed while this waited for the lock.
pub fn lock(store: &Dir, name: &str) -> Result<Locked> {
    let dir = store
        .open_dir(OsStr::new(name))
        .map_err(|e| not_found(e, name))?;
    let lock = FileLock::lock(&dir, OsStr::new(LOCK), LockMode::Exclusive)?;
    // A remover renames the directory away while holding this lock: if the name now
    // leads somewhere else (or nowhere), this lock guards a removed volume.
    let locked = rustix::fs::fstat(&lock).map_err(|e| Error::errno("lock volume", name, e))?;
    let now = store
        .open_dir(OsStr::new(name))
        .and_then(|d| d.stat(OsStr::new(LOCK)))
        .map_err(|e| not_found(e, name))?;
    if (now.st_dev, now.st_ino) != (locked.st_dev, locked.st_ino) {
        return Err(Error::new(
            ErrorKind::NotFound,
            "volume",
            name,
            "removed meanwhile",
        ));
    }
    Ok(Locked {
        dir,
        name: name.to_string(),
        _lock: lock,
    })
}

fn not_found(e: Error, name: &str) -> Error {
    if e.kind() == ErrorKind::NotFound {
        Error::new(ErrorKind::NotFound, "volume", name, "no such volume")
    } else {
        e
    }
}

/// The name of the held-marker file of `name`.
pub fn held_marker(name: &str) -> std::ffi::OsString {
    let mut s = std::ffi::OsString::from(HELD_PREFIX);
    s.push(name);
    s
}

/// The volume a held-marker names, if `file` is one.
pub fn marked_volume(file: &OsStr) -> Option<&str> {
    let b = file.as_bytes().strip_prefix(HELD_PREFIX.as_bytes())?;
    std::str::from_utf8(b).ok()
}
