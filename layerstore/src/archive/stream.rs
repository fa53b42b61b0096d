//! The uncompressed tar stream as the applier reads it: a size limit, and where the
//! tar parser stands in it (to tell a tar that a Go writer left unpadded from one cut
//! short).

use std::cell::Cell;
use std::io::{self, Read};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cargohold_core::{Error, ErrorKind, Hasher};

/// An I/O error of the layer stream, as a typed error: `LimitExceeded` past the size
/// limit, `Corrupt` for what a broken tar or compressed stream gives, else by kind.
pub(crate) fn stream_err(context: &str, e: io::Error) -> Error {
    if e.get_ref().is_some_and(|r| r.is::<LimitHit>()) {
        return Error::new(
            ErrorKind::LimitExceeded,
            "apply layer",
            context,
            e.to_string(),
        );
    }
    let kind = match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::Other => {
            ErrorKind::Corrupt
        }
        io::ErrorKind::InvalidInput => ErrorKind::InvalidArgument,
        _ => ErrorKind::from_io(&e),
    };
    Error::io("apply layer", context, e).with_kind(kind)
}

/// Tar's block size: headers and the padding after file data align to it.
pub(crate) const BLOCK: u64 = 512;

/// Counts uncompressed bytes and stops past a limit.
pub(crate) struct Limited<R> {
    pub(crate) inner: R,
    pub(crate) read: u64,
    pub(crate) limit: u64,
    pub(crate) hit: Arc<AtomicBool>,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if self.read > self.limit {
            self.hit.store(true, Ordering::Relaxed);
            return Err(io::Error::other(LimitHit));
        }
        Ok(n)
    }
}

/// The error [`Limited`] stops with.
#[derive(Debug)]
pub(crate) struct LimitHit;

impl std::fmt::Display for LimitHit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("uncompressed size limit exceeded")
    }
}

impl std::error::Error for LimitHit {}

/// Counts the bytes read through it and, when given a hasher, hashes them.
pub(crate) struct Hashing<R> {
    inner: R,
    hasher: Option<Hasher>,
    len: u64,
}

impl<R> Hashing<R> {
    pub(crate) fn new(inner: R, hasher: Option<Hasher>) -> Hashing<R> {
        Hashing {
            inner,
            hasher,
            len: 0,
        }
    }

    /// The hasher (if any) and the number of bytes read.
    pub(crate) fn finish(self) -> (Option<Hasher>, u64) {
        (self.hasher, self.len)
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.len += n as u64;
        Ok(n)
    }
}

/// How far the tar parser has read, and where the stream ended if it did.
#[derive(Debug, Default)]
pub(crate) struct Position {
    read: Cell<u64>,
    eof_at: Cell<Option<u64>>,
}

impl Position {
    /// Whether the stream ended exactly at `data_end`, the end of an entry's data,
    /// with not one byte of the padding that should follow it (nor the end-of-archive
    /// blocks). Go's `archive/tar` writer leaves a tar in that shape when it is not
    /// closed (`umoci insert` does so), and Go's reader takes it as a complete
    /// archive. A stream that ends inside the data, or inside the padding, is not
    /// this shape.
    pub(crate) fn ended_unpadded_at(&self, data_end: u64) -> bool {
        data_end % BLOCK != 0 && self.read.get() == data_end && self.eof_at.get() == Some(data_end)
    }
}

/// A reader that records its [`Position`].
pub(crate) struct Tracked<R> {
    inner: R,
    pos: Rc<Position>,
}

impl<R> Tracked<R> {
    /// Wrap `inner`; the returned [`Position`] follows what is read through it.
    pub(crate) fn new(inner: R) -> (Tracked<R>, Rc<Position>) {
        let pos = Rc::new(Position::default());
        (
            Tracked {
                inner,
                pos: pos.clone(),
            },
            pos,
        )
    }
}

impl<R> Tracked<R> {
    /// The reader underneath.
    pub(crate) fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let at = self.pos.read.get() + n as u64;
        self.pos.read.set(at);
        if n == 0 && !buf.is_empty() {
            self.pos.eof_at.set(Some(at));
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpadded_end_is_told_from_a_cut() {
        let data = vec![7u8; 700];
        let (mut r, pos) = Tracked::new(&data[..]);
        let mut buf = vec![0u8; 600];
        r.read_exact(&mut buf).unwrap();
        assert!(!pos.ended_unpadded_at(600), "not at the end yet");
        let mut rest = Vec::new();
        r.read_to_end(&mut rest).unwrap();
        assert!(pos.ended_unpadded_at(700));
        assert!(
            !pos.ended_unpadded_at(650),
            "ended after the data: not unpadded"
        );
        assert!(!pos.ended_unpadded_at(800), "ended inside the data");

        let aligned = vec![0u8; 1024];
        let (mut r, pos) = Tracked::new(&aligned[..]);
        r.read_to_end(&mut Vec::new()).unwrap();
        assert!(
            !pos.ended_unpadded_at(1024),
            "a block boundary needs no leniency"
        );
    }
}
