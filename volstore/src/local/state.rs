//! One volume's own state file and lock.
//!
//! Docker's local driver keeps `<name>/_data` and `<name>/opts.json`; cargohold adds
//! `<name>/cargohold.json` (labels, creation time, anonymous flag, options as given,
//! holders), always replaced whole and atomically, and `<name>/cargohold.lock`, the
//! volume's lock. Docker ignores both.

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
    /// The mount ids holding the volume.
    #[serde(default)]
    pub holders: BTreeSet<String>,
    /// The boot the holders were taken in (`/proc/sys/kernel/random/boot_id`); holders
    /// from another boot are stale.
    #[serde(default)]
    pub boot_id: Option<String>,
    /// Whether `populate` already ran (it copies once).
    #[serde(default)]
    pub populated: bool,
}

/// The current boot's id, if the kernel says.
pub fn boot_id() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()
        .map(|s| s.trim().to_string())
}

/// Read a volume's state from its directory.
pub fn read(vol: &Dir, name: &str) -> Result<State> {
    let f = vol.open_file(OsStr::new(STATE), rustix::fs::OFlags::RDONLY)?;
    serde_json::from_reader(std::io::BufReader::new(f))
        .map_err(|e| Error::new(ErrorKind::Corrupt, "read volume state", name, e.to_string()))
}

/// Replace a volume's state atomically and durably.
pub fn write(vol: &Dir, state: &State) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
    atomic::write_file(vol, OsStr::new(STATE), &bytes, 0o600)
}

/// Replace a volume's state atomically (a killed writer leaves the old or the new
/// state) but without `fsync`: for holder changes, which a power loss makes stale
/// anyway (holders from another boot are dropped on open). If the file comes back
/// empty or torn after a power loss, reading it is `Corrupt`, and the volume's durable
/// part (its content and `opts.json`) is untouched.
pub fn write_holders(vol: &Dir, state: &State) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
    atomic::write_file_volatile(vol, OsStr::new(STATE), &bytes, 0o600)
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
