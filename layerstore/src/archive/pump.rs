//! Reading, decompressing and hashing a layer stream on a thread of its own, so that
//! on two cores the inflater and the hashers run while the applier writes files.
//!
//! The producer reads the stream to its end (what follows the tar's end-of-archive
//! blocks belongs to the digests too) in chunks of at least [`MIN_SEND`] and at most
//! [`CHUNK`] bytes and hands them over a bounded channel; the consumer reads them as a plain [`Read`]. Buffers go back to the
//! producer once read, so at most [`DEPTH`] + 2 chunks exist. When the consumer stops
//! (an entry failed), the channel closes and the producer stops at its next chunk: the
//! failed apply returns once the read the producer is in returns (a reader that stalls
//! forever without closing holds it there, as it would hold any apply that reads it).

use std::io::{self, Read};
use std::sync::mpsc::{Receiver, Sender, SyncSender};

use cargohold_core::{Algorithm, Hasher};

/// Bytes per chunk handed over.
pub(crate) const CHUNK: usize = 1 << 20;
/// Chunks in flight between the producer and the consumer.
pub(crate) const DEPTH: usize = 8;
/// A chunk is handed over once it holds this much, full or not: a stream that arrives
/// slowly (a pipe, a network) is applied as it comes instead of waiting for a whole
/// [`CHUNK`].
pub(crate) const MIN_SEND: usize = 64 << 10;

/// What the producer hands over.
pub(crate) enum Msg {
    /// Sent before any data when the consumer is to hash the bytes it receives (a
    /// compressed stream: the producer hashes what it reads, the consumer what the
    /// inflater made of it, which spreads the two digests over the two threads).
    HashHere,
    /// The next bytes of the uncompressed stream (never empty).
    Data(Vec<u8>),
    /// Reading failed; the stream ends here.
    Failed(io::Error),
    /// The stream ended cleanly.
    End,
}

/// Read `src` to its end, handing chunks to `tx` and reusing the buffers that come back
/// on `free`. `Ok(false)` when the consumer went away before the end.
pub(crate) fn produce(
    mut src: impl Read,
    tx: &SyncSender<Msg>,
    free: &Receiver<Vec<u8>>,
) -> Result<bool, io::Error> {
    loop {
        let mut buf = free.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        let mut ended = false;
        let failed = loop {
            if filled >= MIN_SEND {
                break None;
            }
            match src.read(&mut buf[filled..]) {
                Ok(0) => {
                    ended = true;
                    break None;
                }
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e),
            }
        };
        if filled > 0 {
            buf.truncate(filled);
            if tx.send(Msg::Data(buf)).is_err() {
                return Ok(false);
            }
        }
        if let Some(e) = failed {
            // The consumer gets a copy of the kind and message; the producer's caller
            // keeps the original (with its source, e.g. the size limit's marker).
            let copy = io::Error::new(e.kind(), e.to_string());
            let _ = tx.send(Msg::Failed(copy));
            return Err(e);
        }
        if ended {
            return Ok(tx.send(Msg::End).is_ok());
        }
    }
}

/// The consumer's side: a [`Read`] over the chunks.
pub(crate) struct Chunks {
    rx: Receiver<Msg>,
    free: Sender<Vec<u8>>,
    cur: Vec<u8>,
    at: usize,
    done: bool,
    /// Hashes every byte received, from [`Msg::HashHere`] on.
    hasher: Option<Hasher>,
}

impl Chunks {
    pub(crate) fn new(rx: Receiver<Msg>, free: Sender<Vec<u8>>) -> Chunks {
        Chunks {
            rx,
            free,
            cur: Vec::new(),
            at: 0,
            done: false,
            hasher: None,
        }
    }

    /// The digest of everything received, if the producer asked for one.
    pub(crate) fn into_hasher(self) -> Option<Hasher> {
        self.hasher
    }
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        while self.at == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Msg::HashHere) => self.hasher = Some(Hasher::new(Algorithm::Sha256)),
                Ok(Msg::Data(next)) => {
                    if let Some(h) = self.hasher.as_mut() {
                        h.update(&next);
                    }
                    let old = std::mem::replace(&mut self.cur, next);
                    self.at = 0;
                    if old.capacity() > 0 {
                        let _ = self.free.send(old);
                    }
                }
                Ok(Msg::End) => self.done = true,
                Ok(Msg::Failed(e)) => {
                    self.done = true;
                    return Err(e);
                }
                // The producer stopped without a word: it panicked or failed before it
                // could send; its own result says why.
                Err(_) => {
                    self.done = true;
                    return Err(io::Error::other("the layer reader stopped"));
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.at);
        buf[..n].copy_from_slice(&self.cur[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn pump(data: Vec<u8>) -> (Vec<u8>, Result<bool, io::Error>) {
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (free_tx, free_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let p = s.spawn(move || produce(&data[..], &tx, &free_rx));
            let mut out = Vec::new();
            Chunks::new(rx, free_tx).read_to_end(&mut out).unwrap();
            (out, p.join().unwrap())
        })
    }

    #[test]
    fn every_byte_arrives_in_order_whatever_the_length() {
        for len in [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let (out, done) = pump(data.clone());
            assert!(done.unwrap(), "clean end for {len}");
            assert_eq!(out, data, "length {len}");
        }
    }

    #[test]
    fn a_read_error_reaches_the_consumer_after_the_bytes_before_it() {
        struct Failing(usize);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0 == 0 {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "bad block"));
                }
                let n = buf.len().min(self.0);
                buf[..n].fill(9);
                self.0 -= n;
                Ok(n)
            }
        }
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (free_tx, free_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let p = s.spawn(move || produce(Failing(CHUNK + 5), &tx, &free_rx));
            let mut r = Chunks::new(rx, free_tx);
            let mut out = Vec::new();
            let err = r.read_to_end(&mut out).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData);
            assert_eq!(out.len(), CHUNK + 5);
            assert_eq!(
                p.join().unwrap().unwrap_err().kind(),
                io::ErrorKind::InvalidData
            );
        });
    }

    #[test]
    fn the_producer_stops_when_the_consumer_goes_away() {
        let (tx, rx) = mpsc::sync_channel(1);
        let (free_tx, free_rx) = mpsc::channel();
        std::thread::scope(|s| {
            // An endless stream: only the consumer going away can stop it.
            let p = s.spawn(move || produce(io::repeat(1), &tx, &free_rx));
            let mut r = Chunks::new(rx, free_tx);
            let mut first = vec![0u8; 10];
            r.read_exact(&mut first).unwrap();
            drop(r);
            assert!(!p.join().unwrap().unwrap(), "stopped, not ended");
        });
    }
}

#[cfg(test)]
mod slow_streams {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_stream_that_stalls_is_handed_over_as_far_as_it_came() {
        // A pipe whose writer has written less than a chunk and waits: what came must
        // reach the consumer without waiting for the rest.
        let (r, mut w) = std::io::pipe().unwrap();
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (free_tx, free_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let p = s.spawn(move || produce(r, &tx, &free_rx));
            let writer = s.spawn(move || {
                std::io::Write::write_all(&mut w, &vec![3u8; 3 * MIN_SEND]).unwrap();
                w
            });
            let mut c = Chunks::new(rx, free_tx);
            let mut got = vec![0u8; 2 * MIN_SEND];
            c.read_exact(&mut got).unwrap();
            assert!(got.iter().all(|&b| b == 3));
            drop(writer.join().unwrap());
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            assert_eq!(rest.len(), MIN_SEND);
            assert!(p.join().unwrap().unwrap());
        });
    }
}

#[cfg(test)]
mod hashing {
    use super::*;
    use cargohold_core::Digest;
    use std::sync::mpsc;

    #[test]
    fn the_consumer_hashes_every_byte_it_receives_when_asked() {
        let data: Vec<u8> = (0..3 * CHUNK + 5).map(|i| (i % 253) as u8).collect();
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (free_tx, free_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let src = &data[..];
            let p = s.spawn(move || {
                tx.send(Msg::HashHere).unwrap();
                produce(src, &tx, &free_rx)
            });
            let mut c = Chunks::new(rx, free_tx);
            // Read only a little, then drain: the digest covers what was drained too.
            let mut head = [0u8; 10];
            c.read_exact(&mut head).unwrap();
            std::io::copy(&mut c, &mut std::io::sink()).unwrap();
            assert!(p.join().unwrap().unwrap());
            assert_eq!(c.into_hasher().unwrap().finish(), Digest::sha256(&data));
        });
    }

    #[test]
    fn without_the_request_nothing_is_hashed() {
        let (tx, rx) = mpsc::sync_channel(DEPTH);
        let (free_tx, free_rx) = mpsc::channel();
        std::thread::scope(|s| {
            let p = s.spawn(move || produce(&b"abc"[..], &tx, &free_rx));
            let mut c = Chunks::new(rx, free_tx);
            std::io::copy(&mut c, &mut std::io::sink()).unwrap();
            assert!(p.join().unwrap().unwrap());
            assert!(c.into_hasher().is_none());
        });
    }
}
