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
        "overlay" => {
            let data: Vec<&str> = m
                .options
                .iter()
                .map(String::as_str)
                .filter(|o| *o != "ro" && *o != "rw")
                .collect();
            let flags = if ro {
                MountFlags::RDONLY
            } else {
                MountFlags::empty()
            };
            let data = std::ffi::CString::new(data.join(",")).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    "mount",
                    at.display(),
                    "NUL in options",
                )
            })?;
            rmount::mount(&m.source, at, "overlay", flags, Some(data.as_c_str()))
                .map_err(|e| Error::errno("mount overlay", at.display(), e))
        }
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
