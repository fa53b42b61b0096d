//! Cross-process locks with `flock(2)`.
//!
//! A lock is a file; holding it is holding an `flock` on an open description of it.
//! The kernel drops the lock when the holder dies, so a killed process never leaves a
//! store locked. Locks taken through separate [`FileLock::lock`] calls conflict with each
//! other even inside one process.

use std::ffi::OsStr;
use std::fs::File;
use std::time::{Duration, Instant};

use rustix::fs::{self as rfs, FlockOperation, Mode, OFlags};
use rustix::io::Errno;

use crate::error::{Error, ErrorKind, Result};
use crate::root::Dir;

/// Shared (many readers) or exclusive (one writer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// Any number of shared holders at once, no exclusive one.
    Shared,
    /// One holder, no shared ones.
    Exclusive,
}

/// A held lock; dropping it releases the lock.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    mode: LockMode,
}

fn open_lock_file(dir: &Dir, name: &OsStr) -> Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| Error::errno("open lock", name.to_string_lossy(), e))?;
    Ok(File::from(fd))
}

fn op(mode: LockMode, blocking: bool) -> FlockOperation {
    match (mode, blocking) {
        (LockMode::Shared, true) => FlockOperation::LockShared,
        (LockMode::Exclusive, true) => FlockOperation::LockExclusive,
        (LockMode::Shared, false) => FlockOperation::NonBlockingLockShared,
        (LockMode::Exclusive, false) => FlockOperation::NonBlockingLockExclusive,
    }
}

impl FileLock {
    /// Take the lock file `name` in `dir` (created if missing), waiting as long as it takes.
    pub fn lock(dir: &Dir, name: &OsStr, mode: LockMode) -> Result<FileLock> {
        let file = open_lock_file(dir, name)?;
        loop {
            match rfs::flock(&file, op(mode, true)) {
                Ok(()) => return Ok(FileLock { file, mode }),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::errno("lock", name.to_string_lossy(), e)),
            }
        }
    }

    /// Take the lock if it is free now; `None` if another holder has it.
    pub fn try_lock(dir: &Dir, name: &OsStr, mode: LockMode) -> Result<Option<FileLock>> {
        let file = open_lock_file(dir, name)?;
        match rfs::flock(&file, op(mode, false)) {
            Ok(()) => Ok(Some(FileLock { file, mode })),
            Err(Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(Error::errno("lock", name.to_string_lossy(), e)),
        }
    }

    /// Take the lock, giving up with `InUse` after `timeout`.
    pub fn lock_timeout(
        dir: &Dir,
        name: &OsStr,
        mode: LockMode,
        timeout: Duration,
    ) -> Result<FileLock> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(1);
        loop {
            if let Some(l) = FileLock::try_lock(dir, name, mode)? {
                return Ok(l);
            }
            if start.elapsed() >= timeout {
                return Err(Error::new(
                    ErrorKind::InUse,
                    "lock",
                    name.to_string_lossy(),
                    "held by another process",
                ));
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// The mode held.
    pub fn mode(&self) -> LockMode {
        self.mode
    }

    /// Change a held lock's mode (not atomic: `flock` releases before it converts).
    pub fn convert(&mut self, mode: LockMode) -> Result<()> {
        rfs::flock(&self.file, op(mode, true)).map_err(|e| Error::errno("lock", "convert", e))?;
        self.mode = mode;
        Ok(())
    }
}

/// The lock file's descriptor, e.g. to `fstat` it and check that the name still points at
/// the file that was locked (a holder may have removed it in between).
impl std::os::fd::AsFd for FileLock {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(&self.file)
    }
}
