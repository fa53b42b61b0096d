//! Root-confined file access.
//!
//! A [`Root`] is an open directory that every path given to it is resolved inside: `..`
//! never climbs above it, symlinks (absolute or relative, including ones created while
//! the operation runs) never lead out of it, and hardlinks are only made between names
//! that both resolve inside it. Resolution uses `openat2(2)` with `RESOLVE_IN_ROOT` or
//! `RESOLVE_BENEATH` where the kernel has it and a component-by-component walk with
//! `O_NOFOLLOW` and a stack of held directory descriptors where it does not.
//!
//! Two confinements are offered:
//! - [`Confine::InRoot`]: the root behaves like `/` of a chroot. An absolute symlink
//!   resolves from the root, `..` at the root stays at the root. This is what applying
//!   an image layer needs (images hold absolute symlinks such as `var/run -> /run`).
//! - [`Confine::Beneath`]: any attempt to leave (a `..` above the root, an absolute
//!   symlink, a symlink pointing out) fails with [`ErrorKind::PathEscape`]. This is what
//!   a store's own metadata uses: it never holds symlinks, so one is an attack.
//!
//! Operations on the final component (create, remove, rename, link, stat) never follow
//! a symlink in that position; `open_file` and `open_dir` follow it, confined.
//!
//! [`Dir`] is an open directory inside a root, with operations on single names, so that
//! hot loops (applying a layer with thousands of entries) resolve each parent once.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result};

/// How paths may not leave a [`Root`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Confine {
    /// Resolve as if the root were `/` (chroot semantics): nothing escapes, nothing fails
    /// for trying.
    InRoot,
    /// Fail with `PathEscape` on any attempt to leave the root.
    Beneath,
}

/// Which resolver a [`Root`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolver {
    /// `openat2(2)` with `RESOLVE_IN_ROOT`/`RESOLVE_BENEATH` (Linux 5.6+).
    Openat2,
    /// A component-by-component walk in user space, for kernels without `openat2`.
    Walk,
}

const OPENAT2_UNKNOWN: u8 = 0;
const OPENAT2_YES: u8 = 1;
const OPENAT2_NO: u8 = 2;
static OPENAT2: AtomicU8 = AtomicU8::new(OPENAT2_UNKNOWN);

fn default_resolver() -> Resolver {
    if std::env::var_os("CARGOHOLD_FORCE_WALK_RESOLVER").is_some() {
        return Resolver::Walk;
    }
    match OPENAT2.load(Ordering::Relaxed) {
        OPENAT2_YES => Resolver::Openat2,
        OPENAT2_NO => Resolver::Walk,
        _ => {
            let probe = rfs::openat2(
                rfs::CWD,
                "/",
                OFlags::PATH | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::IN_ROOT,
            );
            let have = !matches!(probe, Err(Errno::NOSYS) | Err(Errno::PERM));
            OPENAT2.store(
                if have { OPENAT2_YES } else { OPENAT2_NO },
                Ordering::Relaxed,
            );
            if have {
                Resolver::Openat2
            } else {
                Resolver::Walk
            }
        }
    }
}

/// The symlink budget of one resolution, as the kernel's (`ELOOP` after 40).
const MAX_SYMLINKS: usize = 40;

/// A directory that all paths given to it are confined to.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    path: PathBuf,
    confine: Confine,
    resolver: Resolver,
}

/// An open directory; operations take single names (no `/`, not `.` or `..`).
#[derive(Debug)]
pub struct Dir {
    fd: OwnedFd,
}

/// File type of a directory entry or stat result.
pub use rustix::fs::FileType;
/// Result of `stat`.
pub use rustix::fs::Stat;

impl Root {
    /// Open an existing directory as a root with the given confinement.
    pub fn open(path: impl AsRef<Path>, confine: Confine) -> Result<Root> {
        Root::open_with(path, confine, default_resolver())
    }

    /// Create the directory (and its parents) if missing, then open it as a root. The
    /// path itself is the caller's and trusted; only paths below it are confined.
    pub fn create(path: impl AsRef<Path>, confine: Confine) -> Result<Root> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| Error::io("create root", path.display(), e))?;
        Root::open(path, confine)
    }

    /// Open with an explicit resolver (tests force the fallback walk with this).
    pub fn open_with(path: impl AsRef<Path>, confine: Confine, resolver: Resolver) -> Result<Root> {
        let path = path.as_ref();
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::errno("open root", path.display(), e))?;
        Ok(Root {
            dir: Dir { fd },
            path: path.to_owned(),
            confine,
            resolver,
        })
    }

    /// The path the root was opened at (for messages and for handing to other programs).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The confinement.
    pub fn confine(&self) -> Confine {
        self.confine
    }

    /// The resolver in use.
    pub fn resolver(&self) -> Resolver {
        self.resolver
    }

    /// The root directory itself as a [`Dir`].
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// A second root over the directory `rel` inside this one, with the same resolver.
    pub fn sub_root(&self, rel: impl AsRef<Path>, confine: Confine) -> Result<Root> {
        let rel = rel.as_ref();
        let dir = self.open_dir(rel)?;
        Ok(Root {
            dir,
            path: self.path.join(strip_root(rel)),
            confine,
            resolver: self.resolver,
        })
    }

    fn err(&self, op: &'static str, rel: &Path, errno: Errno) -> Error {
        let ctx = self.path.join(strip_root(rel));
        let kind = match errno {
            Errno::XDEV => ErrorKind::PathEscape,
            Errno::LOOP if self.confine == Confine::Beneath => ErrorKind::PathEscape,
            e => ErrorKind::from_errno(e),
        };
        Error::errno(op, ctx.display(), errno).with_kind(kind)
    }

    /// Resolve `rel` to an `O_PATH` descriptor, following symlinks in every position
    /// (the last one too when `follow_last`), confined.
    fn resolve(&self, rel: &Path, follow_last: bool, extra: OFlags) -> Result<OwnedFd, Errno> {
        match self.resolver {
            Resolver::Openat2 => {
                let how = match self.confine {
                    Confine::InRoot => ResolveFlags::IN_ROOT,
                    Confine::Beneath => ResolveFlags::BENEATH,
                } | ResolveFlags::NO_MAGICLINKS;
                let mut flags = OFlags::PATH | OFlags::CLOEXEC | extra;
                if !follow_last {
                    flags |= OFlags::NOFOLLOW;
                }
                let rel = if rel.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    rel
                };
                let mut tries = 0;
                loop {
                    match rfs::openat2(&self.dir.fd, rel, flags, Mode::empty(), how) {
                        // The kernel asks for a retry when a rename or mount raced the walk.
                        Err(Errno::AGAIN) if tries < 16 => tries += 1,
                        other => return other,
                    }
                }
            }
            Resolver::Walk => walk(&self.dir.fd, rel, self.confine, follow_last, extra),
        }
    }

    /// Open `rel` with real access flags in one `openat2` call (Openat2 resolver only).
    fn resolve_open(&self, rel: &Path, flags: OFlags) -> Result<OwnedFd, Errno> {
        let how = match self.confine {
            Confine::InRoot => ResolveFlags::IN_ROOT,
            Confine::Beneath => ResolveFlags::BENEATH,
        } | ResolveFlags::NO_MAGICLINKS;
        let mut tries = 0;
        loop {
            match rfs::openat2(
                &self.dir.fd,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                how,
            ) {
                Err(Errno::AGAIN) if tries < 16 => tries += 1,
                other => return other,
            }
        }
    }

    /// The parent directory of `rel`, confined, and the final name (which must be a
    /// plain name: not empty, `.` or `..`).
    pub fn parent_of<'p>(&self, op: &'static str, rel: &'p Path) -> Result<(Dir, &'p OsStr)> {
        let (parent, name) = split_last(rel).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                op,
                self.path.join(strip_root(rel)).display(),
                "path must end in a plain name",
            )
        })?;
        let fd = self
            .resolve(parent, true, OFlags::DIRECTORY)
            .map_err(|e| self.err(op, rel, e))?;
        Ok((Dir { fd }, name))
    }

    /// Open the directory at `rel` (following symlinks, confined) for reading entries
    /// and for further `*at` operations.
    pub fn open_dir(&self, rel: impl AsRef<Path>) -> Result<Dir> {
        let rel = rel.as_ref();
        // With openat2 the directory is opened for reading in the confined walk itself:
        // `O_DIRECTORY` refuses anything else before it is opened, so there is no fifo or
        // device to guard against and no need for an `O_PATH` step and a reopen.
        if self.resolver == Resolver::Openat2 {
            let rel = if rel.as_os_str().is_empty() {
                Path::new(".")
            } else {
                rel
            };
            let fd = self
                .resolve_open(rel, OFlags::RDONLY | OFlags::DIRECTORY)
                .map_err(|e| self.err("open dir", rel, e))?;
            return Ok(Dir { fd });
        }
        let path_fd = self
            .resolve(rel, true, OFlags::DIRECTORY)
            .map_err(|e| self.err("open dir", rel, e))?;
        let fd = reopen(&path_fd, OFlags::RDONLY | OFlags::DIRECTORY)
            .map_err(|e| self.err("open dir", rel, e))?;
        Ok(Dir { fd })
    }

    /// Open the existing file at `rel` (following symlinks, confined) with `flags`
    /// (`O_CREAT` is not allowed here; use [`Root::create_file`]).
    pub fn open_file(&self, rel: impl AsRef<Path>, flags: OFlags) -> Result<File> {
        let rel = rel.as_ref();
        if flags.contains(OFlags::CREATE) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "open",
                rel.display(),
                "use create_file to create",
            ));
        }
        // With openat2 a read-only open is one call; O_NONBLOCK keeps a fifo from
        // blocking before its type is checked, and is cleared afterwards.
        let direct = self.resolver == Resolver::Openat2
            && !flags.intersects(OFlags::WRONLY | OFlags::RDWR | OFlags::TRUNC);
        let fd = if direct {
            self.resolve_open(rel, flags | OFlags::NONBLOCK)
        } else {
            self.resolve(rel, true, OFlags::empty())
        }
        .map_err(|e| self.err("open", rel, e))?;
        let kind = FileType::from_raw_mode(
            rfs::fstat(&fd)
                .map_err(|e| self.err("open", rel, e))?
                .st_mode,
        );
        if kind != FileType::RegularFile {
            let errno = if kind == FileType::Directory {
                Errno::ISDIR
            } else {
                Errno::INVAL
            };
            return Err(self.err("open", rel, errno));
        }
        if direct {
            if !flags.contains(OFlags::NONBLOCK) {
                rfs::fcntl_setfl(&fd, flags).map_err(|e| self.err("open", rel, e))?;
            }
            return Ok(File::from(fd));
        }
        let fd = reopen(&fd, flags).map_err(|e| self.err("open", rel, e))?;
        Ok(File::from(fd))
    }

    /// Create a regular file at `rel` (never through a symlink in the final position).
    /// With `exclusive`, an existing name is `AlreadyExists`; without, it is truncated.
    pub fn create_file(&self, rel: impl AsRef<Path>, mode: u32, exclusive: bool) -> Result<File> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of("create", rel)?;
        dir.create_file(name, mode, exclusive)
            .map_err(|e| e.in_root(self, rel))
    }

    /// Create a directory at `rel`.
    pub fn mkdir(&self, rel: impl AsRef<Path>, mode: u32) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of("mkdir", rel)?;
        dir.mkdir(name, mode).map_err(|e| e.in_root(self, rel))
    }

    /// Create the directory `rel` and any missing parents; existing directories are
    /// kept. Returns the directory, opened.
    pub fn mkdir_all(&self, rel: impl AsRef<Path>, mode: u32) -> Result<Dir> {
        let rel = rel.as_ref();
        let mut dir = self.dir.try_clone()?;
        for comp in rel.components() {
            match comp {
                Component::Normal(name) => {
                    dir = dir
                        .mkdir_open(name, mode)
                        .map_err(|e| e.in_root(self, rel))?;
                }
                Component::CurDir | Component::RootDir => {}
                Component::ParentDir | Component::Prefix(_) => {
                    return Err(Error::new(
                        ErrorKind::PathEscape,
                        "mkdir_all",
                        self.path.join(strip_root(rel)).display(),
                        "'..' is not allowed in a created path",
                    ));
                }
            }
        }
        Ok(dir)
    }

    /// Remove the file, symlink or device at `rel` (not a directory).
    pub fn remove_file(&self, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of("remove", rel)?;
        dir.remove_file(name).map_err(|e| e.in_root(self, rel))
    }

    /// Remove the empty directory at `rel`.
    pub fn remove_dir(&self, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of("rmdir", rel)?;
        dir.remove_dir(name).map_err(|e| e.in_root(self, rel))
    }

    /// Remove whatever is at `rel`, recursively, never following symlinks.
    /// A missing name is not an error.
    pub fn remove_all(&self, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = match self.parent_of("remove_all", rel) {
            Ok(x) => x,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        dir.remove_all(name).map_err(|e| e.in_root(self, rel))
    }

    /// Rename `from` to `to`, both inside the root; an existing `to` is replaced as
    /// `rename(2)` does.
    pub fn rename(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        let (fdir, fname) = self.parent_of("rename", from)?;
        let (tdir, tname) = self.parent_of("rename", to)?;
        rfs::renameat(&fdir.fd, fname, &tdir.fd, tname).map_err(|e| self.err("rename", from, e))
    }

    /// Rename `from` to `to` only if `to` does not exist (`AlreadyExists` otherwise).
    pub fn rename_noreplace(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> Result<()> {
        let (from, to) = (from.as_ref(), to.as_ref());
        let (fdir, fname) = self.parent_of("rename", from)?;
        let (tdir, tname) = self.parent_of("rename", to)?;
        rfs::renameat_with(
            &fdir.fd,
            fname,
            &tdir.fd,
            tname,
            rfs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| self.err("rename", to, e))
    }

    /// The target of the symlink at `rel`, unresolved.
    pub fn read_link(&self, rel: impl AsRef<Path>) -> Result<PathBuf> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of("readlink", rel)?;
        dir.read_link(name).map_err(|e| e.in_root(self, rel))
    }

    /// Create a symlink at `rel` pointing at `target` (stored as given; it is confined
    /// when resolved through a root, not when created).
    pub fn symlink(&self, target: impl AsRef<Path>, rel: impl AsRef<Path>) -> Result<()> {
        let rel = rel.as_ref();
        let (dir, name) = self.parent_of("symlink", rel)?;
        dir.symlink(target.as_ref(), name)
            .map_err(|e| e.in_root(self, rel))
    }

    /// Create a hardlink at `new` to the existing file `existing`; both names resolve
    /// inside the root, and `existing` is never followed if it is a symlink.
    pub fn hardlink(&self, existing: impl AsRef<Path>, new: impl AsRef<Path>) -> Result<()> {
        let (existing, new) = (existing.as_ref(), new.as_ref());
        let (sdir, sname) = self.parent_of("link", existing)?;
        let (ndir, nname) = self.parent_of("link", new)?;
        ndir.hardlink(&sdir, sname, nname)
            .map_err(|e| e.in_root(self, new))
    }

    /// `lstat` of `rel` (a symlink in the final position is not followed).
    pub fn metadata(&self, rel: impl AsRef<Path>) -> Result<Stat> {
        let rel = rel.as_ref();
        if split_last(rel).is_none() {
            return self.dir.stat_self();
        }
        let (dir, name) = self.parent_of("stat", rel)?;
        dir.stat(name).map_err(|e| e.in_root(self, rel))
    }

    /// Whether `rel` names anything (a dangling symlink counts).
    pub fn exists(&self, rel: impl AsRef<Path>) -> Result<bool> {
        match self.metadata(rel) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Read the whole regular file at `rel`.
    pub fn read(&self, rel: impl AsRef<Path>) -> Result<Vec<u8>> {
        use std::io::Read;
        let rel = rel.as_ref();
        let mut f = self.open_file(rel, OFlags::RDONLY)?;
        let mut out = Vec::new();
        f.read_to_end(&mut out)
            .map_err(|e| Error::io("read", self.path.join(strip_root(rel)).display(), e))?;
        Ok(out)
    }
}

impl Error {
    fn in_root(self, root: &Root, rel: &Path) -> Error {
        let ctx = root.path.join(strip_root(rel)).display().to_string();
        Error::new(self.kind(), self.op(), ctx, self.detail().to_owned())
    }
}

fn strip_root(rel: &Path) -> &Path {
    rel.strip_prefix("/").unwrap_or(rel)
}

/// Split into (parent, last plain name) on the raw bytes (`Path::components` would
/// silently drop a trailing `.` or `/`). `None` when the path does not end in a plain
/// name: empty, `.`, `..`, or a trailing slash.
fn split_last(rel: &Path) -> Option<(&Path, &OsStr)> {
    let bytes = rel.as_os_str().as_bytes();
    let (parent, name) = match bytes.iter().rposition(|b| *b == b'/') {
        Some(i) => (&bytes[..i], &bytes[i + 1..]),
        None => (&bytes[..0], bytes),
    };
    if name.is_empty() || name == b"." || name == b".." {
        return None;
    }
    Some((
        Path::new(OsStr::from_bytes(parent)),
        OsStr::from_bytes(name),
    ))
}

/// Re-open an `O_PATH` descriptor with real access flags through procfs, which is how an
/// `O_PATH` handle becomes readable or writable without resolving its path again.
fn reopen(path_fd: &OwnedFd, flags: OFlags) -> Result<OwnedFd, Errno> {
    let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(path_fd));
    let mut flags = flags | OFlags::CLOEXEC;
    flags.remove(OFlags::NOFOLLOW | OFlags::CREATE | OFlags::EXCL);
    rfs::open(proc_path.as_str(), flags, Mode::empty())
}

/// The user-space resolver: one component at a time with `O_NOFOLLOW`, symlinks expanded
/// by hand, `..` answered from a stack of descriptors already held (never by asking the
/// kernel for the parent, so a directory moved out of the root cannot be climbed from).
fn walk(
    root: &OwnedFd,
    rel: &Path,
    confine: Confine,
    follow_last: bool,
    extra: OFlags,
) -> Result<OwnedFd, Errno> {
    let mut queue: Vec<OsString> = Vec::new();
    push_components(&mut queue, rel, confine)?;
    queue.reverse();
    let root_dup = || {
        rfs::openat(
            root,
            ".",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
    };
    let mut current = root_dup()?;
    let mut stack: Vec<OwnedFd> = Vec::new();
    let mut links = 0usize;
    while let Some(comp) = queue.pop() {
        if comp == ".." {
            match stack.pop() {
                Some(parent) => current = parent,
                None if confine == Confine::InRoot => {}
                None => return Err(Errno::XDEV),
            }
            continue;
        }
        let next = rfs::openat(
            &current,
            comp.as_os_str(),
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let st = rfs::fstat(&next)?;
        let is_last = queue.is_empty();
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink && (!is_last || follow_last) {
            links += 1;
            if links > MAX_SYMLINKS {
                return Err(Errno::LOOP);
            }
            let target = rfs::readlinkat(&next, "", Vec::new())?;
            let target = PathBuf::from(OsString::from_vec(target.into_bytes()));
            if target.is_absolute() {
                if confine == Confine::Beneath {
                    return Err(Errno::XDEV);
                }
                stack.clear();
                current = root_dup()?;
            }
            let mut expanded = Vec::new();
            push_components(&mut expanded, &target, confine)?;
            queue.extend(expanded.into_iter().rev());
            continue;
        }
        if !is_last && FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(Errno::NOTDIR);
        }
        stack.push(std::mem::replace(&mut current, next));
    }
    if extra.contains(OFlags::DIRECTORY) {
        let st = rfs::fstat(&current)?;
        if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
            return Err(Errno::NOTDIR);
        }
    }
    Ok(current)
}

fn push_components(out: &mut Vec<OsString>, p: &Path, _confine: Confine) -> Result<(), Errno> {
    for comp in p.components() {
        match comp {
            Component::Normal(n) => out.push(n.to_owned()),
            Component::ParentDir => out.push(OsString::from("..")),
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    Ok(())
}

fn check_name(op: &'static str, name: &OsStr) -> Result<()> {
    let b = name.as_bytes();
    if b.is_empty() || b == b"." || b == b".." || b.contains(&b'/') || b.contains(&0) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            op,
            name.to_string_lossy(),
            "not a plain file name",
        ));
    }
    Ok(())
}

/// Turn a symlink-following errno on the final name into the typed error: `ELOOP` from
/// `O_NOFOLLOW` means a symlink sits where a file was expected.
fn name_err(op: &'static str, name: &OsStr, e: Errno) -> Error {
    Error::errno(op, name.to_string_lossy(), e)
}

/// Owner change for [`Dir::chown`].
#[derive(Debug, Clone, Copy)]
pub struct Owner {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Dir {
    /// Wrap an open directory descriptor.
    pub fn from_fd(fd: OwnedFd) -> Dir {
        Dir { fd }
    }

    /// Open a directory by an absolute or relative path the caller trusts.
    pub fn open_path(path: impl AsRef<Path>) -> Result<Dir> {
        let path = path.as_ref();
        let fd = rfs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::errno("open dir", path.display(), e))?;
        Ok(Dir { fd })
    }

    /// A second descriptor for the same directory.
    pub fn try_clone(&self) -> Result<Dir> {
        let fd = self
            .fd
            .try_clone()
            .map_err(|e| Error::io("dup", "dir", e))?;
        Ok(Dir { fd })
    }

    /// The subdirectory `name`, never following a symlink.
    pub fn open_dir(&self, name: &OsStr) -> Result<Dir> {
        check_name("open dir", name)?;
        let fd = rfs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| name_err("open dir", name, e))?;
        Ok(Dir { fd })
    }

    /// Create the subdirectory `name` if it is missing and open it; an existing
    /// directory is kept, anything else in its place is an error.
    pub fn mkdir_open(&self, name: &OsStr, mode: u32) -> Result<Dir> {
        check_name("mkdir", name)?;
        match rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode)) {
            Ok(()) | Err(Errno::EXIST) => {}
            Err(e) => return Err(name_err("mkdir", name, e)),
        }
        self.open_dir(name)
    }

    /// Create a regular file `name` (never through a symlink). With `exclusive`, an
    /// existing name is `AlreadyExists`; without, an existing file is truncated.
    pub fn create_file(&self, name: &OsStr, mode: u32, exclusive: bool) -> Result<File> {
        check_name("create", name)?;
        let mut flags = OFlags::WRONLY | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        flags |= if exclusive {
            OFlags::EXCL
        } else {
            OFlags::TRUNC
        };
        let fd = rfs::openat(&self.fd, name, flags, Mode::from_raw_mode(mode))
            .map_err(|e| name_err("create", name, e))?;
        Ok(File::from(fd))
    }

    /// Open the regular file `name` with `flags`, never following a symlink.
    pub fn open_file(&self, name: &OsStr, flags: OFlags) -> Result<File> {
        check_name("open", name)?;
        let fd = rfs::openat(
            &self.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| name_err("open", name, e))?;
        Ok(File::from(fd))
    }

    /// Create the directory `name`.
    pub fn mkdir(&self, name: &OsStr, mode: u32) -> Result<()> {
        check_name("mkdir", name)?;
        rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(mode))
            .map_err(|e| name_err("mkdir", name, e))
    }

    /// Create the symlink `name` pointing at `target`.
    pub fn symlink(&self, target: &Path, name: &OsStr) -> Result<()> {
        check_name("symlink", name)?;
        rfs::symlinkat(target, &self.fd, name).map_err(|e| name_err("symlink", name, e))
    }

    /// Create a device node, fifo or socket `name`.
    pub fn mknod(
        &self,
        name: &OsStr,
        kind: FileType,
        mode: u32,
        major: u32,
        minor: u32,
    ) -> Result<()> {
        check_name("mknod", name)?;
        let dev = rustix::fs::makedev(major, minor);
        rfs::mknodat(&self.fd, name, kind, Mode::from_raw_mode(mode), dev)
            .map_err(|e| name_err("mknod", name, e))
    }

    /// Create the hardlink `name` to `src_name` in `src_dir`, not following a symlink
    /// at the source.
    pub fn hardlink(&self, src_dir: &Dir, src_name: &OsStr, name: &OsStr) -> Result<()> {
        check_name("link", name)?;
        check_name("link", src_name)?;
        rfs::linkat(&src_dir.fd, src_name, &self.fd, name, AtFlags::empty())
            .map_err(|e| name_err("link", name, e))
    }

    /// Remove the non-directory `name`.
    pub fn remove_file(&self, name: &OsStr) -> Result<()> {
        check_name("remove", name)?;
        rfs::unlinkat(&self.fd, name, AtFlags::empty()).map_err(|e| name_err("remove", name, e))
    }

    /// Remove the empty directory `name`.
    pub fn remove_dir(&self, name: &OsStr) -> Result<()> {
        check_name("rmdir", name)?;
        rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR).map_err(|e| name_err("rmdir", name, e))
    }

    /// Remove `name` and everything below it, never following symlinks. Missing is fine.
    pub fn remove_all(&self, name: &OsStr) -> Result<()> {
        check_name("remove_all", name)?;
        match rfs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => return Ok(()),
            Err(Errno::ISDIR) | Err(Errno::PERM) => {}
            Err(e) => return Err(name_err("remove_all", name, e)),
        }
        let sub = match self.open_dir(name) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        for (child, kind) in sub.entries()? {
            if kind == FileType::Directory {
                sub.remove_all(&child)?;
            } else {
                match rfs::unlinkat(&sub.fd, child.as_os_str(), AtFlags::empty()) {
                    Ok(()) | Err(Errno::NOENT) => {}
                    Err(Errno::ISDIR) => sub.remove_all(&child)?,
                    Err(e) => return Err(name_err("remove_all", &child, e)),
                }
            }
        }
        match rfs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(name_err("remove_all", name, e)),
        }
    }

    /// Rename `name` to `to_name` in `to_dir`.
    pub fn rename(&self, name: &OsStr, to_dir: &Dir, to_name: &OsStr) -> Result<()> {
        check_name("rename", name)?;
        check_name("rename", to_name)?;
        rfs::renameat(&self.fd, name, &to_dir.fd, to_name).map_err(|e| name_err("rename", name, e))
    }

    /// Rename `name` to `to_name` in `to_dir` unless `to_name` exists.
    pub fn rename_noreplace(&self, name: &OsStr, to_dir: &Dir, to_name: &OsStr) -> Result<()> {
        check_name("rename", name)?;
        check_name("rename", to_name)?;
        rfs::renameat_with(
            &self.fd,
            name,
            &to_dir.fd,
            to_name,
            rfs::RenameFlags::NOREPLACE,
        )
        .map_err(|e| name_err("rename", to_name, e))
    }

    /// The target of the symlink `name`.
    pub fn read_link(&self, name: &OsStr) -> Result<PathBuf> {
        check_name("readlink", name)?;
        let t = rfs::readlinkat(&self.fd, name, Vec::new())
            .map_err(|e| name_err("readlink", name, e))?;
        Ok(PathBuf::from(OsString::from_vec(t.into_bytes())))
    }

    /// `lstat` of `name`.
    pub fn stat(&self, name: &OsStr) -> Result<Stat> {
        check_name("stat", name)?;
        rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| name_err("stat", name, e))
    }

    /// `fstat` of this directory.
    pub fn stat_self(&self) -> Result<Stat> {
        rfs::fstat(&self.fd).map_err(|e| Error::errno("stat", ".", e))
    }

    /// Change the owner of `name` (a symlink itself, not its target).
    pub fn chown(&self, name: &OsStr, owner: Owner) -> Result<()> {
        check_name("chown", name)?;
        rfs::chownat(
            &self.fd,
            name,
            Some(rustix::fs::Uid::from_raw(owner.uid)),
            Some(rustix::fs::Gid::from_raw(owner.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| name_err("chown", name, e))
    }

    /// Change the mode of `name` (never through a symlink: symlinks have no mode).
    pub fn chmod(&self, name: &OsStr, mode: u32) -> Result<()> {
        check_name("chmod", name)?;
        let st = self.stat(name)?;
        if FileType::from_raw_mode(st.st_mode) == FileType::Symlink {
            return Ok(());
        }
        rfs::chmodat(&self.fd, name, Mode::from_raw_mode(mode), AtFlags::empty())
            .map_err(|e| name_err("chmod", name, e))
    }

    /// Set access and modification times of `name` (of a symlink itself).
    pub fn set_times(&self, name: &OsStr, atime: (i64, u32), mtime: (i64, u32)) -> Result<()> {
        check_name("utimes", name)?;
        let ts = rfs::Timestamps {
            last_access: rustix::fs::Timespec {
                tv_sec: atime.0,
                tv_nsec: atime.1 as _,
            },
            last_modification: rustix::fs::Timespec {
                tv_sec: mtime.0,
                tv_nsec: mtime.1 as _,
            },
        };
        rfs::utimensat(&self.fd, name, &ts, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| name_err("utimes", name, e))
    }

    fn proc_path(&self, name: &OsStr) -> CString {
        let mut p = format!(
            "/proc/self/fd/{}/",
            std::os::fd::AsRawFd::as_raw_fd(&self.fd)
        )
        .into_bytes();
        p.extend_from_slice(name.as_bytes());
        CString::new(p).expect("names were checked for NUL")
    }

    /// Set the extended attribute `key` on `name` itself (not through a symlink).
    pub fn set_xattr(&self, name: &OsStr, key: &str, value: &[u8]) -> Result<()> {
        check_name("setxattr", name)?;
        let p = self.proc_path(name);
        rfs::lsetxattr(p.as_c_str(), key, value, rfs::XattrFlags::empty())
            .map_err(|e| name_err("setxattr", name, e))
    }

    /// The extended attribute `key` of `name` itself, `None` when it is not set.
    pub fn get_xattr(&self, name: &OsStr, key: &str) -> Result<Option<Vec<u8>>> {
        check_name("getxattr", name)?;
        let p = self.proc_path(name);
        xattr_get(|buf| rfs::lgetxattr(p.as_c_str(), key, buf))
            .map_err(|e| name_err("getxattr", name, e))
    }

    /// The extended attribute names of `name` itself.
    pub fn list_xattrs(&self, name: &OsStr) -> Result<Vec<String>> {
        check_name("listxattr", name)?;
        let p = self.proc_path(name);
        let raw = xattr_list(|buf| rfs::llistxattr(p.as_c_str(), buf))
            .map_err(|e| name_err("listxattr", name, e))?;
        Ok(raw)
    }

    /// Remove the extended attribute `key` of `name` (missing is fine).
    pub fn remove_xattr(&self, name: &OsStr, key: &str) -> Result<()> {
        check_name("removexattr", name)?;
        let p = self.proc_path(name);
        match rfs::lremovexattr(p.as_c_str(), key) {
            Ok(()) | Err(Errno::NODATA) => Ok(()),
            Err(e) => Err(name_err("removexattr", name, e)),
        }
    }

    /// Names and types of the entries (without `.` and `..`), unsorted.
    pub fn entries(&self) -> Result<Vec<(OsString, FileType)>> {
        let fd = rfs::openat(
            &self.fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::errno("readdir", ".", e))?;
        let mut dir = rfs::Dir::new(fd).map_err(|e| Error::errno("readdir", ".", e))?;
        let mut out = Vec::new();
        while let Some(ent) = dir.read() {
            let ent = ent.map_err(|e| Error::errno("readdir", ".", e))?;
            let name: &CStr = ent.file_name();
            let bytes = name.to_bytes();
            if bytes == b"." || bytes == b".." {
                continue;
            }
            let name = OsStr::from_bytes(bytes).to_owned();
            let mut kind = ent.file_type();
            if kind == FileType::Unknown {
                kind = FileType::from_raw_mode(self.stat(&name)?.st_mode);
            }
            out.push((name, kind));
        }
        Ok(out)
    }

    /// `fsync` the directory, making renames and creations in it durable.
    pub fn sync(&self) -> Result<()> {
        rfs::fsync(&self.fd).map_err(|e| Error::errno("fsync", "dir", e))
    }
}

impl AsFd for Dir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.dir.fd.as_fd()
    }
}

/// Read an xattr value with the usual size-probe loop.
pub fn xattr_get(
    mut call: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
) -> Result<Option<Vec<u8>>, Errno> {
    let mut buf = vec![0u8; 256];
    loop {
        match call(&mut buf) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(Errno::NODATA) => return Ok(None),
            Err(Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(e) => return Err(e),
        }
    }
}

/// List xattr names with the usual size-probe loop.
pub fn xattr_list(
    mut call: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
) -> Result<Vec<String>, Errno> {
    let mut buf = vec![0u8; 1024];
    loop {
        match call(&mut buf) {
            Ok(n) => {
                return Ok(buf[..n]
                    .split(|b| *b == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect());
            }
            Err(Errno::RANGE) if buf.len() < 1 << 20 => buf.resize(buf.len() * 4, 0),
            Err(Errno::NOTSUP) | Err(Errno::PERM) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
    }
}
