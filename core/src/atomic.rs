//! Atomic publication of files and directories, and the clean-up of what a killed
//! writer left behind.
//!
//! A writer never makes a half-written object visible under its final name:
//! - files are written into an unnamed `O_TMPFILE` inode (or, on filesystems without
//!   it, a `.tmpx-` name), locked with `flock`, `fsync`ed, given a `.tmp-` name and then
//!   renamed over the final name, after which the directory is `fsync`ed;
//! - directories (a layer under construction) are built under a `.tmp-` name whose
//!   directory descriptor holds an exclusive `flock` for the builder's lifetime, then
//!   renamed into place.
//!
//! A `.tmp-` entry whose lock can be taken belongs to a dead writer: [`clean_stale`]
//! removes it. A `.tmpx-` entry exists only for the instant between `mkdir` and `flock`;
//! one older than [`UNLOCKED_GRACE`] is removed too.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime};

use rustix::fs::{self as rfs, AtFlags, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result};
use crate::root::{Dir, FileType};

/// Prefix of a temporary entry that a live writer holds locked.
pub const TEMP_PREFIX: &str = ".tmp-";
/// Prefix of a temporary entry in the instant before its writer locks it.
pub const UNLOCKED_PREFIX: &str = ".tmpx-";
/// How old an unlocked `.tmpx-` entry must be before it is considered dead.
pub const UNLOCKED_GRACE: Duration = Duration::from_secs(600);

/// A random suffix for temporary names.
pub fn random_suffix() -> String {
    let mut b = [0u8; 8];
    getrandom::fill(&mut b).expect("the kernel's random source is available");
    hex::encode(b)
}

/// Whether `name` is a temporary entry (either prefix).
pub fn is_temp_name(name: &OsStr) -> bool {
    let b = name.as_bytes();
    b.starts_with(TEMP_PREFIX.as_bytes()) || b.starts_with(UNLOCKED_PREFIX.as_bytes())
}

fn try_lock_fd(fd: impl AsFd) -> Result<bool, Errno> {
    match rfs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// A file being written that appears under its final name only on [`AtomicFile::commit`].
/// Dropped without commit, nothing of it remains.
#[derive(Debug)]
pub struct AtomicFile {
    dir: Dir,
    file: File,
    final_name: OsString,
    /// The visible temporary name, when the filesystem lacks `O_TMPFILE`.
    named_tmp: Option<OsString>,
    done: bool,
}

impl AtomicFile {
    /// Start writing `name` in `dir` with permission bits `mode`.
    pub fn new(dir: &Dir, name: &OsStr, mode: u32) -> Result<AtomicFile> {
        let dir = dir.try_clone()?;
        let unnamed = rfs::openat(
            &dir,
            ".",
            OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        );
        let (file, named_tmp) = match unnamed {
            Ok(fd) => {
                rfs::flock(&fd, FlockOperation::LockExclusive)
                    .map_err(|e| Error::errno("lock temp", name.to_string_lossy(), e))?;
                (File::from(fd), None)
            }
            Err(Errno::OPNOTSUPP) | Err(Errno::ISDIR) | Err(Errno::INVAL) => {
                let suffix = random_suffix();
                let pending = OsString::from(format!("{UNLOCKED_PREFIX}{suffix}"));
                let f = dir.create_file(&pending, mode, true)?;
                rfs::flock(&f, FlockOperation::LockExclusive)
                    .map_err(|e| Error::errno("lock temp", name.to_string_lossy(), e))?;
                let tmp = OsString::from(format!("{TEMP_PREFIX}{suffix}"));
                dir.rename(&pending, &dir, &tmp)?;
                (f, Some(tmp))
            }
            Err(e) => return Err(Error::errno("create temp", name.to_string_lossy(), e)),
        };
        Ok(AtomicFile {
            dir,
            file,
            final_name: name.to_owned(),
            named_tmp,
            done: false,
        })
    }

    /// The file being written.
    pub fn file(&mut self) -> &mut File {
        &mut self.file
    }

    fn publish(&mut self, replace: bool, durable: bool) -> Result<()> {
        let name = self.final_name.clone();
        let ctx = name.to_string_lossy().into_owned();
        if durable {
            self.file
                .sync_all()
                .map_err(|e| Error::io("fsync", &ctx, e))?;
        }
        let tmp = match self.named_tmp.take() {
            Some(tmp) => tmp,
            None => {
                // Give the unnamed inode a locked temporary name, then rename it.
                let tmp = OsString::from(format!("{TEMP_PREFIX}{}", random_suffix()));
                let proc = format!(
                    "/proc/self/fd/{}",
                    std::os::fd::AsRawFd::as_raw_fd(&self.file)
                );
                rfs::linkat(
                    rfs::CWD,
                    proc.as_str(),
                    &self.dir,
                    tmp.as_os_str(),
                    AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(|e| Error::errno("link temp", &ctx, e))?;
                tmp
            }
        };
        let res = if replace {
            self.dir.rename(&tmp, &self.dir, &name)
        } else {
            self.dir.rename_noreplace(&tmp, &self.dir, &name)
        };
        if let Err(e) = res {
            let _ = self.dir.remove_file(&tmp);
            return Err(e);
        }
        self.done = true;
        if durable { self.dir.sync() } else { Ok(()) }
    }

    /// Make the file durable and visible under its name, replacing what was there.
    pub fn commit(mut self) -> Result<()> {
        self.publish(true, true)
    }

    /// Like [`AtomicFile::commit`], but `AlreadyExists` if the name exists.
    pub fn commit_new(mut self) -> Result<()> {
        self.publish(false, true)
    }

    /// Make the file visible under its name, replacing what was there, without any
    /// `fsync`: still all-or-nothing if the writer is killed (the rename is atomic), but
    /// after a power loss the name may be missing, or name an empty or partly written
    /// file. For records that can be rebuilt or dropped after a reboot.
    pub fn commit_volatile(mut self) -> Result<()> {
        self.publish(true, false)
    }

    /// Like [`AtomicFile::commit_volatile`], but `AlreadyExists` if the name exists.
    pub fn commit_new_volatile(mut self) -> Result<()> {
        self.publish(false, false)
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.done
            && let Some(tmp) = &self.named_tmp
        {
            let _ = self.dir.remove_file(tmp);
        }
    }
}

/// Write `data` to `name` in `dir` atomically and durably, replacing what was there.
pub fn write_file(dir: &Dir, name: &OsStr, data: &[u8], mode: u32) -> Result<()> {
    let mut f = AtomicFile::new(dir, name, mode)?;
    f.write_all(data)
        .map_err(|e| Error::io("write", name.to_string_lossy(), e))?;
    f.commit()
}

/// Write `data` to `name` in `dir` atomically and durably; `AlreadyExists` if present.
pub fn write_new_file(dir: &Dir, name: &OsStr, data: &[u8], mode: u32) -> Result<()> {
    let mut f = AtomicFile::new(dir, name, mode)?;
    f.write_all(data)
        .map_err(|e| Error::io("write", name.to_string_lossy(), e))?;
    f.commit_new()
}

/// Like [`write_file`] but without `fsync` (see [`AtomicFile::commit_volatile`]):
/// atomic against a killed writer, not durable against a power loss.
pub fn write_file_volatile(dir: &Dir, name: &OsStr, data: &[u8], mode: u32) -> Result<()> {
    let mut f = AtomicFile::new(dir, name, mode)?;
    f.write_all(data)
        .map_err(|e| Error::io("write", name.to_string_lossy(), e))?;
    f.commit_volatile()
}

/// Like [`write_new_file`] but without `fsync` (see [`AtomicFile::commit_volatile`]).
pub fn write_new_file_volatile(dir: &Dir, name: &OsStr, data: &[u8], mode: u32) -> Result<()> {
    let mut f = AtomicFile::new(dir, name, mode)?;
    f.write_all(data)
        .map_err(|e| Error::io("write", name.to_string_lossy(), e))?;
    f.commit_new_volatile()
}

/// A directory under construction: invisible under its final name until
/// [`TempDir::publish`]; removed on drop otherwise, and by [`clean_stale`] if its
/// builder dies.
#[derive(Debug)]
pub struct TempDir {
    parent: Dir,
    name: OsString,
    dir: Option<Dir>,
}

impl TempDir {
    /// Create a locked temporary directory in `parent`.
    pub fn new(parent: &Dir, mode: u32) -> Result<TempDir> {
        let parent = parent.try_clone()?;
        let suffix = random_suffix();
        let pending = OsString::from(format!("{UNLOCKED_PREFIX}{suffix}"));
        parent.mkdir(&pending, mode)?;
        let dir = parent.open_dir(&pending)?;
        rfs::flock(&dir, FlockOperation::LockExclusive)
            .map_err(|e| Error::errno("lock temp dir", suffix.as_str(), e))?;
        let name = OsString::from(format!("{TEMP_PREFIX}{suffix}"));
        parent.rename(&pending, &parent, &name)?;
        Ok(TempDir {
            parent,
            name,
            dir: Some(dir),
        })
    }

    /// The directory being built.
    pub fn dir(&self) -> &Dir {
        self.dir.as_ref().expect("present until published")
    }

    /// Its current (temporary) name in the parent.
    pub fn name(&self) -> &OsStr {
        &self.name
    }

    /// `fsync` the directory and rename it to `name` in `to` (which must not exist:
    /// `AlreadyExists` otherwise, and the temporary directory is kept for the caller to
    /// drop), then `fsync` `to`. Returns the published directory.
    pub fn publish(mut self, to: &Dir, name: &OsStr) -> Result<Dir> {
        self.dir().sync()?;
        self.parent.rename_noreplace(&self.name, to, name)?;
        to.sync()?;
        Ok(self.dir.take().expect("present until published"))
    }

    /// Like [`TempDir::publish`] without the two `fsync`s: the rename is atomic against
    /// a killed builder, but after a power loss the directory may be missing or hold
    /// only part of what was built. For directories a reboot may lose.
    pub fn publish_volatile(mut self, to: &Dir, name: &OsStr) -> Result<Dir> {
        self.parent.rename_noreplace(&self.name, to, name)?;
        Ok(self.dir.take().expect("present until published"))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.dir.is_some() {
            let _ = self.parent.remove_all(&self.name);
        }
    }
}

/// Remove the temporary entries in `dir` whose writers are dead. Returns their names.
pub fn clean_stale(dir: &Dir) -> Result<Vec<OsString>> {
    let mut removed = Vec::new();
    for (name, kind) in dir.entries()? {
        let b = name.as_bytes();
        if b.starts_with(UNLOCKED_PREFIX.as_bytes()) {
            let st = match dir.stat(&name) {
                Ok(st) => st,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(st.st_mtime.max(0) as u64);
            if SystemTime::now().duration_since(mtime).unwrap_or_default() > UNLOCKED_GRACE {
                dir.remove_all(&name)?;
                removed.push(name);
            }
            continue;
        }
        if !b.starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let fd = match rfs::openat(
            dir,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => continue,
            Err(e) => return Err(Error::errno("clean temp", name.to_string_lossy(), e)),
        };
        if try_lock_fd(&fd).map_err(|e| Error::errno("clean temp", name.to_string_lossy(), e))? {
            if kind == FileType::Directory {
                dir.remove_all(&name)?;
            } else {
                match dir.remove_file(&name) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            removed.push(name);
        }
    }
    Ok(removed)
}
