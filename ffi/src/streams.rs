//! Byte streams from C: a file descriptor the caller keeps (never closed here), a read
//! callback, and a progress callback.

use std::ffi::{CStr, c_char, c_int, c_void};
use std::io::{self, Read, Write};
use std::os::fd::BorrowedFd;

use cargohold_core::{Error, ErrorKind, Result};

/// A read callback: fill `buf` with up to `len` bytes, return how many (0 at the end of
/// the stream) or a negative `-errno` for an error, which becomes the call's status as
/// the system error would (`-EIO` is `IO`). Like `read(2)`; more than `len` is
/// `INVALID_ARGUMENT`.
#[allow(non_camel_case_types)]
pub type cargohold_read_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *mut u8, len: usize) -> isize>;

/// A write callback: take up to `len` bytes from `buf` and return how many were taken
/// (at least 1 when `len` is not 0), or a negative `-errno` for an error, which
/// becomes the call's status as the system error would (`-ENOSPC` is
/// `LIMIT_EXCEEDED`, `-EACCES` `PERMISSION_DENIED`, most others `IO`). Like `write(2)`:
/// a short count is retried with the rest; 0 is `IO`, more than `len`
/// `INVALID_ARGUMENT`.
#[allow(non_camel_case_types)]
pub type cargohold_write_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, buf: *const u8, len: usize) -> isize>;

/// A progress callback: `done` of `total` bytes so far (`total` 0 when not known).
#[allow(non_camel_case_types)]
pub type cargohold_progress_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, done: u64, total: u64)>;

/// Borrow the caller's descriptor `fd` for the call.
///
/// # Safety
/// `fd`, when not negative, is an open descriptor that stays open for the call.
pub(crate) unsafe fn fd<'a>(fd: c_int, what: &str) -> Result<BorrowedFd<'a>> {
    if fd < 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "argument",
            what,
            "negative file descriptor",
        ));
    }
    // SAFETY: a non-negative `fd` is open for the whole call (the contract); it is
    // only borrowed, never closed.
    Ok(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Reads from a borrowed descriptor.
#[derive(Debug)]
pub(crate) struct FdStream<'a>(pub BorrowedFd<'a>);

impl Read for FdStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match rustix::io::read(self.0, &mut *buf) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }
}

impl Write for FdStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        loop {
            match rustix::io::write(self.0, buf) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(io::Error::from),
            }
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Reads through a C read callback.
#[derive(Debug)]
pub(crate) struct CallbackStream {
    read: unsafe extern "C" fn(*mut c_void, *mut u8, usize) -> isize,
    ctx: *mut c_void,
}

// SAFETY: the callback and its context are used from the calling thread only in
// practice; the store may move the reader to a helper thread, which the C contract
// allows (the header says the callback may be called from another thread than the
// caller's, never concurrently).
unsafe impl Send for CallbackStream {}

impl CallbackStream {
    pub(crate) fn new(read: cargohold_read_fn, ctx: *mut c_void) -> Result<CallbackStream> {
        let read = read.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "argument",
                "read",
                "NULL read callback",
            )
        })?;
        Ok(CallbackStream { read, ctx })
    }
}

impl Read for CallbackStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // SAFETY: `buf` is writable for `buf.len()` bytes; the callback's contract is
        // to write at most `len` bytes and return how many.
        let n = unsafe { (self.read)(self.ctx, buf.as_mut_ptr(), buf.len()) };
        if n < 0 {
            let errno = i32::try_from(-n).unwrap_or(libc::EIO);
            return Err(io::Error::from_raw_os_error(errno));
        }
        let n = n as usize;
        if n > buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "read callback returned more bytes than asked for",
            ));
        }
        Ok(n)
    }
}

/// Writes through a C write callback.
#[derive(Debug)]
pub(crate) struct CallbackSink {
    write: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> isize,
    ctx: *mut c_void,
}

impl CallbackSink {
    pub(crate) fn new(write: cargohold_write_fn, ctx: *mut c_void) -> Result<CallbackSink> {
        let write = write.ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "argument",
                "write",
                "NULL write callback",
            )
        })?;
        Ok(CallbackSink { write, ctx })
    }
}

impl Write for CallbackSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        // SAFETY: `buf` is readable for `buf.len()` bytes for the duration of the call;
        // the callback's contract is to read at most `len` bytes and not keep `buf`.
        let n = unsafe { (self.write)(self.ctx, buf.as_ptr(), buf.len()) };
        if n < 0 {
            let errno = i32::try_from(-n).unwrap_or(libc::EIO);
            return Err(io::Error::from_raw_os_error(errno));
        }
        match n as usize {
            0 => Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write callback took no bytes",
            )),
            n if n > buf.len() => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "write callback claimed more bytes than it was given",
            )),
            n => Ok(n),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader that tells a progress callback how many bytes went through, at most once
/// per [`PROGRESS_STEP`] bytes and once at the end of the stream.
#[derive(Debug)]
pub(crate) struct ProgressReader<R> {
    inner: R,
    progress: Progress,
    pending: u64,
}

/// How many bytes pass between two progress calls of a stream.
pub(crate) const PROGRESS_STEP: u64 = 1 << 20;

impl<R: Read> ProgressReader<R> {
    pub(crate) fn new(inner: R, progress: Progress) -> ProgressReader<R> {
        ProgressReader {
            inner,
            progress,
            pending: 0,
        }
    }
}

impl<R: Read> Read for ProgressReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pending += n as u64;
        if self.pending >= PROGRESS_STEP || (n == 0 && !buf.is_empty() && self.pending > 0) {
            self.progress.add(self.pending, 0);
            self.pending = 0;
        }
        Ok(n)
    }
}

/// A progress callback with its context; calls nothing when NULL.
#[derive(Debug)]
pub(crate) struct Progress {
    f: cargohold_progress_fn,
    ctx: *mut c_void,
    done: u64,
}

impl Progress {
    pub(crate) fn new(f: cargohold_progress_fn, ctx: *mut c_void) -> Progress {
        Progress { f, ctx, done: 0 }
    }

    /// Count `bytes` more and tell the callback.
    pub(crate) fn add(&mut self, bytes: u64, total: u64) {
        self.done += bytes;
        if let Some(f) = self.f {
            // SAFETY: a non-NULL callback is callable with its own context (the contract).
            unsafe { f(self.ctx, self.done, total) };
        }
    }
}

// SAFETY: a progress callback may be called from a helper thread of the call it was
// given to, never concurrently with itself and never after that call returns (the
// documented C contract), so moving it to another thread is allowed.
unsafe impl Send for Progress {}

/// A progress callback for calls made of stages: `stage` is a static lower-case name
/// (valid for the whole program, never freed), `done` of `total` counts that stage's
/// units (documented per call).
#[allow(non_camel_case_types)]
pub type cargohold_stage_fn =
    Option<unsafe extern "C" fn(ctx: *mut c_void, stage: *const c_char, done: u64, total: u64)>;

/// A stage callback with its context; calls nothing when NULL.
#[derive(Debug)]
pub(crate) struct Stages {
    f: cargohold_stage_fn,
    ctx: *mut c_void,
}

impl Stages {
    pub(crate) fn new(f: cargohold_stage_fn, ctx: *mut c_void) -> Stages {
        Stages { f, ctx }
    }

    /// Tell the callback about `stage` (a static C string).
    pub(crate) fn report(&mut self, stage: &'static CStr, done: usize, total: usize) {
        if let Some(f) = self.f {
            // SAFETY: a non-NULL callback is callable with its own context (the
            // contract); `stage` is a static NUL-terminated string.
            unsafe { f(self.ctx, stage.as_ptr(), done as u64, total as u64) };
        }
    }
}
