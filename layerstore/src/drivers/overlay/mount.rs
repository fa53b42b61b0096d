//! The kernel calls that mount an overlay [`Mount`] spec, for stacks of any depth.
//!
//! Two paths, chosen by [`MountApi`]:
//! - **New mount API** (`fsopen("overlay")`, one `fsconfig(FSCONFIG_SET_STRING,
//!   "lowerdir+", dir)` per lower, `upperdir`, `workdir`, `fsconfig(CMD_CREATE)`,
//!   `fsmount`, `move_mount`): every lower is its own string, so a stack reaches the
//!   kernel's limit of 500 lowers whatever the store path's length. Needs Linux 6.8+.
//! - **`mount(2)`** with one option string, which the kernel cuts at one page (4,095
//!   bytes plus NUL), in up to three steps: the absolute paths when they fit (and hold no
//!   `,` `:` or `\`); else the paths relative to their deepest common directory (for a
//!   store that is `snapshots/`, so a lower is `<16 hex>/fs`, 20 bytes: about 200 lowers,
//!   and no file is made); else numbered symlinks `0`, `1`, … to the lowers and `u`, `w`
//!   to the upper and work dirs in a private temporary directory in that common directory
//!   (a `.tmp-` name the store's clean-up removes if we die; removed right after:
//!   overlay resolves the names at mount time and holds the directories by reference),
//!   so the longest string is `lowerdir=0:1:…:499,upperdir=u,workdir=w` plus options and
//!   the fallback, too, reaches 500 lowers. Relative names need a working directory: a
//!   helper thread with its own filesystem context (`unshare(CLONE_FS)`) `fchdir`s there
//!   and mounts, so no other thread of the process ever sees its working directory move.
//!
//! [`MountApi::Auto`] takes the new API and falls back to `mount(2)` only when the kernel
//! lacks it (`ENOSYS` from `fsopen`, or `lowerdir+` unknown).

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cargohold_core::atomic::TempDir;
use cargohold_core::{Dir, Error, ErrorKind, Result};
use rustix::io::Errno;
use rustix::mount::{
    self as rmount, FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags,
};

use crate::Mount;

/// The kernel's limit on the number of overlay lower layers.
pub const MAX_LOWERS: usize = 500;

/// Longest option string `mount(2)` passes to overlay (one page minus the NUL).
pub const MAX_OPTIONS: usize = 4095;

/// Which kernel interface mounts an overlay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountApi {
    /// The new mount API, falling back to `mount(2)` where the kernel lacks it.
    Auto,
    /// Only the new mount API (`fsopen`/`fsconfig`/`fsmount`/`move_mount`).
    New,
    /// Only `mount(2)` (with short relative names when absolute paths do not fit).
    Legacy,
}

/// An overlay [`Mount`] taken apart.
#[derive(Debug)]
struct Spec<'a> {
    lowers: &'a [PathBuf],
    upper: Option<&'a str>,
    work: Option<&'a str>,
    /// Other options, passed through (`userxattr`, `redirect_dir=off`, …).
    extra: Vec<&'a str>,
    read_only: bool,
}

fn invalid(at: &Path, detail: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        "mount overlay",
        at.display(),
        detail,
    )
}

fn parse<'a>(m: &'a Mount, at: &Path) -> Result<Spec<'a>> {
    if m.kind != "overlay" {
        return Err(invalid(at, format!("not an overlay mount: {}", m.kind)));
    }
    if m.lowerdirs.is_empty() || m.lowerdirs.len() > MAX_LOWERS {
        return Err(invalid(
            at,
            format!("1 to {MAX_LOWERS} lowers, not {}", m.lowerdirs.len()),
        ));
    }
    let mut spec = Spec {
        lowers: &m.lowerdirs,
        upper: None,
        work: None,
        extra: Vec::new(),
        read_only: m.is_read_only(),
    };
    for o in &m.options {
        if o.contains('\0') {
            return Err(invalid(at, "NUL in an option"));
        }
        if let Some(v) = o.strip_prefix("upperdir=") {
            spec.upper = Some(v);
        } else if let Some(v) = o.strip_prefix("workdir=") {
            spec.work = Some(v);
        } else if o.starts_with("lowerdir=") || o == "ro" || o == "rw" {
            // The lowers come unjoined from `lowerdirs`; ro/rw are mount flags.
        } else {
            spec.extra.push(o);
        }
    }
    if spec.upper.is_some() != spec.work.is_some() {
        return Err(invalid(at, "upperdir and workdir go together"));
    }
    if spec.upper.is_none() && spec.lowers.len() < 2 {
        return Err(invalid(at, "an overlay without upper needs two lowers"));
    }
    Ok(spec)
}

/// Mount the overlay spec `m` at `target` through `api`.
///
/// `InvalidArgument` for a spec that is not overlay, has no lower or more than
/// [`MAX_LOWERS`], an upper without work dir, or a NUL; `Unsupported` when `api` is
/// [`MountApi::New`] and the kernel lacks it; the errno of the failing call otherwise.
/// Nothing stays mounted after an error.
pub fn mount_overlay(m: &Mount, target: &Path, api: MountApi) -> Result<()> {
    let spec = parse(m, target)?;
    match api {
        MountApi::New => mount_new(&spec, target),
        MountApi::Legacy => mount_legacy(&spec, target),
        MountApi::Auto => match mount_new(&spec, target) {
            Err(e) if e.kind() == ErrorKind::Unsupported => mount_legacy(&spec, target),
            r => r,
        },
    }
}

fn unsupported(e: Errno) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "mount overlay",
        "fsopen",
        format!("the kernel lacks the new mount API for overlay: {e}"),
    )
}

fn mount_new(spec: &Spec<'_>, target: &Path) -> Result<()> {
    let fs = match rmount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fd) => fd,
        Err(e) if e == Errno::NOSYS => return Err(unsupported(e)),
        Err(e) => return Err(Error::errno("fsopen overlay", target.display(), e)),
    };
    let cfg = |key: &str, val: &OsStr| {
        rmount::fsconfig_set_string(&fs, key, val)
            .map_err(|e| Error::errno("fsconfig", format!("{key}={}", val.to_string_lossy()), e))
    };
    for (i, l) in spec.lowers.iter().enumerate() {
        match rmount::fsconfig_set_string(&fs, "lowerdir+", l.as_os_str()) {
            Ok(()) => {}
            // An overlay that does not know "lowerdir+" (before 6.8) says EINVAL on the key.
            Err(e) if i == 0 && e == Errno::INVAL => return Err(unsupported(e)),
            Err(e) => return Err(Error::errno("fsconfig lowerdir+", l.display(), e)),
        }
    }
    if let (Some(u), Some(w)) = (spec.upper, spec.work) {
        cfg("upperdir", OsStr::new(u))?;
        cfg("workdir", OsStr::new(w))?;
    }
    for o in &spec.extra {
        match o.split_once('=') {
            Some((k, v)) => cfg(k, OsStr::new(v))?,
            None => {
                rmount::fsconfig_set_flag(&fs, *o).map_err(|e| Error::errno("fsconfig", *o, e))?
            }
        }
    }
    rmount::fsconfig_create(&fs)
        .map_err(|e| Error::errno("fsconfig create overlay", target.display(), e))?;
    let attrs = if spec.read_only {
        MountAttrFlags::MOUNT_ATTR_RDONLY
    } else {
        MountAttrFlags::empty()
    };
    let mnt = rmount::fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| Error::errno("fsmount overlay", target.display(), e))?;
    rmount::move_mount(
        &mnt,
        "",
        rustix::fs::CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
    .map_err(|e| Error::errno("move_mount overlay", target.display(), e))
}

/// The `mount(2)` option string with the given names for lowers, upper and work.
fn options<L: AsRef<OsStr>>(spec: &Spec<'_>, lowers: &[L], upper: &str, work: &str) -> Vec<u8> {
    let mut s = b"lowerdir=".to_vec();
    for (i, l) in lowers.iter().enumerate() {
        if i > 0 {
            s.push(b':');
        }
        s.extend_from_slice(l.as_ref().as_bytes());
    }
    if spec.upper.is_some() {
        s.extend_from_slice(format!(",upperdir={upper},workdir={work}").as_bytes());
    }
    for o in &spec.extra {
        s.push(b',');
        s.extend_from_slice(o.as_bytes());
    }
    s
}

fn plain_fits(spec: &Spec<'_>, data: &[u8]) -> bool {
    let bad = |b: &[u8]| b.iter().any(|c| matches!(c, b',' | b':' | b'\\'));
    data.len() <= MAX_OPTIONS
        && !spec.lowers.iter().any(|l| bad(l.as_os_str().as_bytes()))
        && !spec.upper.is_some_and(|u| bad(u.as_bytes()))
        && !spec.work.is_some_and(|w| bad(w.as_bytes()))
}

fn flags(spec: &Spec<'_>) -> MountFlags {
    if spec.read_only {
        MountFlags::RDONLY
    } else {
        MountFlags::empty()
    }
}

fn cstring(at: &Path, data: Vec<u8>) -> Result<CString> {
    CString::new(data).map_err(|_| invalid(at, "NUL in options"))
}

fn mount_legacy(spec: &Spec<'_>, target: &Path) -> Result<()> {
    let plain = options(
        spec,
        spec.lowers,
        spec.upper.unwrap_or(""),
        spec.work.unwrap_or(""),
    );
    if plain_fits(spec, &plain) {
        let data = cstring(target, plain)?;
        return rmount::mount("overlay", target, "overlay", flags(spec), Some(&*data))
            .map_err(|e| Error::errno("mount overlay", target.display(), e));
    }
    mount_short(spec, target)
}

/// The deepest directory holding all of `paths` (absolute, normalised by the caller).
fn common_ancestor<'p>(paths: impl Iterator<Item = &'p Path>) -> Option<PathBuf> {
    let mut common: Option<PathBuf> = None;
    for p in paths {
        let p = p.parent()?;
        common = Some(match common {
            None => p.to_path_buf(),
            Some(c) => c
                .components()
                .zip(p.components())
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    common.filter(|c| c.is_absolute())
}

/// `mount(2)` with short relative names (see the module docs): first the paths relative
/// to their deepest common directory (`<id>/fs` for a store's snapshots, no file made),
/// and when even those do not fit, numbered symlinks in a private temporary directory.
fn mount_short(spec: &Spec<'_>, target: &Path) -> Result<()> {
    let target =
        std::path::absolute(target).map_err(|e| Error::io("mount overlay", target.display(), e))?;
    let all = || {
        spec.lowers
            .iter()
            .map(PathBuf::as_path)
            .chain(spec.upper.map(Path::new))
            .chain(spec.work.map(Path::new))
    };
    if let Some(base) = common_ancestor(all()) {
        let rel = |p: &Path| p.strip_prefix(&base).map(Path::to_path_buf).ok();
        let lowers: Option<Vec<PathBuf>> = spec.lowers.iter().map(|l| rel(l)).collect();
        if let Some(lowers) = lowers {
            let u = spec.upper.and_then(|u| rel(Path::new(u)));
            let w = spec.work.and_then(|w| rel(Path::new(w)));
            let u = u.as_deref().map(Path::to_string_lossy).unwrap_or_default();
            let w = w.as_deref().map(Path::to_string_lossy).unwrap_or_default();
            let data = options(spec, &lowers, &u, &w);
            let bad = |b: &[u8]| b.iter().any(|c| matches!(c, b',' | b':' | b'\\'));
            let fits = data.len() <= MAX_OPTIONS
                && !lowers.iter().any(|l| bad(l.as_os_str().as_bytes()))
                && !bad(u.as_bytes())
                && !bad(w.as_bytes());
            if fits && !base.as_os_str().is_empty() {
                let dir = Dir::open_path(&base)?;
                return mount_in(&dir, &target, cstring(&target, data)?, flags(spec));
            }
        }
    }
    let links = link_dir(common_ancestor(all()))?;
    let names: Vec<String> = (0..spec.lowers.len()).map(|i| i.to_string()).collect();
    for (name, l) in names.iter().zip(spec.lowers) {
        links.dir().symlink(l, OsStr::new(name))?;
    }
    if let (Some(u), Some(w)) = (spec.upper, spec.work) {
        links.dir().symlink(Path::new(u), OsStr::new("u"))?;
        links.dir().symlink(Path::new(w), OsStr::new("w"))?;
    }
    let data = options(spec, &names, "u", "w");
    if data.len() > MAX_OPTIONS {
        return Err(invalid(
            &target,
            format!("{} bytes of options even with short names", data.len()),
        ));
    }
    mount_in(links.dir(), &target, cstring(&target, data)?, flags(spec))
}

/// A private temporary directory for the links: in the lowers' common directory when
/// writable (for a store, `snapshots/`, whose clean-up removes it if we die; on the
/// store's filesystem, not on whatever holds `/tmp`), else in the temporary directory.
fn link_dir(common: Option<PathBuf>) -> Result<TempDir> {
    if let Some(base) = common {
        if let Ok(t) = Dir::open_path(&base).and_then(|d| TempDir::new(&d, 0o700)) {
            return Ok(t);
        }
    }
    TempDir::new(&Dir::open_path(std::env::temp_dir())?, 0o700)
}

/// `mount(2)` with option names relative to `dir`, from a helper thread whose working
/// directory is its own (`unshare(CLONE_FS)`); the process's other threads keep theirs,
/// and the thread ends right after, taking its filesystem context with it.
fn mount_in(dir: &Dir, target: &Path, data: CString, flags: MountFlags) -> Result<()> {
    std::thread::scope(|s| {
        s.spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).map_err(|e| {
                Error::errno(
                    "unshare CLONE_FS",
                    "mount overlay",
                    Errno::from_raw_os_error(e as i32),
                )
            })?;
            rustix::process::fchdir(dir).map_err(|e| Error::errno("fchdir", "mount overlay", e))?;
            rmount::mount("overlay", target, "overlay", flags, Some(&*data))
                .map_err(|e| Error::errno("mount overlay", target.display(), e))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Io,
                "mount overlay",
                target.display(),
                "the mounting thread panicked",
            ))
        })
    })
}

/// Whether this kernel's overlay takes `lowerdir+` through the new mount API.
pub fn new_api_available() -> bool {
    match rmount::fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC) {
        Ok(fs) => rmount::fsconfig_set_string(&fs, "lowerdir+", "/").is_ok(),
        Err(_) => false,
    }
}
