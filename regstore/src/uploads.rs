//! Resumable blob uploads, stored as registry:2 stores them.
//!
//! An upload is a directory `_uploads/<id>` holding `startedat` (RFC 3339), `data` (the
//! bytes so far, appended in place) and `hashstates/sha256/<offset>` (Go's marshalled
//! sha256 state after `offset` bytes, saved at least every [`CHECKPOINT`] bytes and at
//! the end of every chunk). A chunk must start at the current size. Another process can
//! resume the upload: it loads the newest state at or below the current size and
//! re-hashes only the bytes after it. Commit checks the digest; on a mismatch nothing is
//! kept. The data is moved to the blob store (skipped when the blob is already there),
//! then linked into the repository.
//!
//! On a backend that cannot append ([`crate::StorageDriver::multipart`]: object stores)
//! an upload started here is kept as a multipart upload instead of `data` (see
//! `upload_parts`): each byte goes to the server once (but for a tail shorter than a
//! part), the hash states are saved as above, and another process resumes it the same
//! way. Such an upload has one writer at a time (as on registry:2's S3 driver): two
//! processes appending to the same upload at once are not detected.

use std::io::{Read, Write};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cargohold_core::{Algorithm, Digest, Error, ErrorKind, Hasher, Result};

use crate::error::{ErrorCode, coded, recode};
use crate::hashstate::ResumableSha256;
use crate::names::check_repository;
use crate::registry::{Descriptor, OCTET_STREAM, Registry};
use crate::upload_parts::{self as parts, PartState, PartWriter};
use crate::{Key, layout};

/// Hash state is saved at least this often while a chunk is written.
pub const CHECKPOINT: u64 = 16 << 20;
const BUF: usize = 1 << 20;
/// Buffers circulating between the reading/writing thread and the hasher.
const POOL: usize = 4;

/// An upload in progress.
#[derive(Debug, Clone)]
pub struct Upload {
    reg: Registry,
    repo: String,
    id: String,
}

/// What [`Upload::status`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The upload's id.
    pub id: String,
    /// Bytes received so far: the offset the next chunk must start at.
    pub offset: u64,
    /// When the upload started.
    pub started_at: SystemTime,
}

fn new_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the kernel's random source is available");
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn check_id(id: &str) -> Result<()> {
    let ok =
        !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
    if !ok {
        return Err(coded(
            ErrorCode::BlobUploadUnknown,
            ErrorKind::NotFound,
            "upload",
            id,
            "not an upload id",
        ));
    }
    Ok(())
}

impl Registry {
    /// Start an upload into `repo`.
    pub fn start_upload(&self, repo: &str) -> Result<Upload> {
        check_repository(repo)?;
        let id = new_id();
        self.driver.put_content(
            &layout::upload_started(repo, &id),
            rfc3339(SystemTime::now()).as_bytes(),
        )?;
        if self.driver.multipart().is_some() {
            parts::save(&*self.driver, repo, &id, &PartState::default())?;
        } else {
            self.driver
                .writer(&layout::upload_data(repo, &id), false)?
                .commit()?;
        }
        Ok(Upload {
            reg: self.clone(),
            repo: repo.to_owned(),
            id,
        })
    }

    /// An existing upload (possibly started by another process or by registry:2).
    pub fn resume_upload(&self, repo: &str, id: &str) -> Result<Upload> {
        check_repository(repo)?;
        check_id(id)?;
        let up = Upload {
            reg: self.clone(),
            repo: repo.to_owned(),
            id: id.to_owned(),
        };
        up.status()?;
        Ok(up)
    }

    /// Cancel every upload of every repository that started more than `age` ago;
    /// returns `(repository, id)` of each one removed.
    pub fn purge_uploads(&self, age: Duration) -> Result<Vec<(String, String)>> {
        let mut repos = Vec::new();
        self.find_repositories(&layout::repositories(), "", &mut repos)?;
        let cutoff = SystemTime::now().checked_sub(age).unwrap_or(UNIX_EPOCH);
        let mut gone = Vec::new();
        for repo in repos {
            let ids = match self.driver.list(&layout::uploads(&repo)) {
                Ok(ids) => ids,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for dir in ids {
                let id = dir.file_name().to_owned();
                let started = self
                    .driver
                    .get_content(&layout::upload_started(&repo, &id))
                    .ok()
                    .and_then(|b| parse_rfc3339(std::str::from_utf8(&b).ok()?))
                    .or_else(|| self.driver.stat(&dir).ok()?.modified)
                    .unwrap_or(UNIX_EPOCH);
                if started < cutoff {
                    parts::abort(&*self.driver, &repo, &id)?;
                    self.driver.delete(&dir)?;
                    gone.push((repo.clone(), id));
                }
            }
        }
        Ok(gone)
    }
}

impl Upload {
    /// The upload's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    fn unknown(&self) -> Error {
        coded(
            ErrorCode::BlobUploadUnknown,
            ErrorKind::NotFound,
            "upload",
            &self.id,
            "upload unknown",
        )
    }

    /// The offset the next chunk must start at, and when the upload started.
    pub fn status(&self) -> Result<UploadStatus> {
        let started = self
            .reg
            .driver
            .get_content(&layout::upload_started(&self.repo, &self.id))
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    self.unknown()
                } else {
                    e
                }
            })?;
        let started_at = std::str::from_utf8(&started)
            .ok()
            .and_then(parse_rfc3339)
            .unwrap_or(UNIX_EPOCH);
        let offset = match self.parts()? {
            Some(st) => st.size(),
            None => match self
                .reg
                .driver
                .stat(&layout::upload_data(&self.repo, &self.id))
            {
                Ok(i) => i.size,
                Err(e) if e.kind() == ErrorKind::NotFound => 0,
                Err(e) => return Err(e),
            },
        };
        Ok(UploadStatus {
            id: self.id.clone(),
            offset,
            started_at,
        })
    }

    /// The hash of the first `size` bytes: the newest saved state at or below `size`,
    /// then the bytes after it re-hashed from the data. Returns the state and how many
    /// bytes had to be re-hashed.
    pub fn hash_state(&self, size: u64) -> Result<(ResumableSha256, u64)> {
        let dir = layout::upload_hashstates(&self.repo, &self.id);
        let mut offsets: Vec<u64> = match self.reg.driver.list(&dir) {
            Ok(keys) => keys
                .iter()
                .filter_map(|k| k.file_name().parse().ok())
                .filter(|&o| o <= size)
                .collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        offsets.sort_unstable();
        let mut h = ResumableSha256::new();
        while let Some(off) = offsets.pop() {
            let key = dir.join(&off.to_string())?;
            match self
                .reg
                .driver
                .get_content(&key)
                .and_then(|b| ResumableSha256::unmarshal(&b))
            {
                Ok(s) if s.len() == off => {
                    h = s;
                    break;
                }
                _ => continue,
            }
        }
        let from = h.len();
        if from < size {
            let r = match self.parts()? {
                Some(st) => parts::tail_reader(&*self.reg.driver, &self.repo, &self.id, &st, from)?,
                None => self
                    .reg
                    .driver
                    .reader(&layout::upload_data(&self.repo, &self.id), from)?,
            };
            let mut r = r.take(size - from);
            let mut buf = vec![0u8; BUF];
            loop {
                let n = r
                    .read(&mut buf)
                    .map_err(|e| Error::io("rehash", &self.id, e))?;
                if n == 0 {
                    break;
                }
                h.update(&buf[..n]);
            }
            if h.len() != size {
                return Err(Error::new(
                    ErrorKind::Corrupt,
                    "rehash",
                    &self.id,
                    "upload data shorter than its size",
                ));
            }
        }
        Ok((h, size - from))
    }

    /// The sha256 digest of the bytes received so far (re-hashing at most one
    /// checkpoint interval), e.g. for a client that learns the digest while streaming.
    pub fn digest(&self) -> Result<Digest> {
        let size = self.status()?.offset;
        Ok(self.hash_state(size)?.0.digest())
    }

    fn save_state(&self, h: &ResumableSha256) -> Result<()> {
        let key = layout::upload_hashstates(&self.repo, &self.id).join(&h.len().to_string())?;
        self.reg.driver.put_content(&key, &h.marshal())
    }

    /// The state of an upload kept as a multipart upload (`None`: kept as `data`).
    fn parts(&self) -> Result<Option<PartState>> {
        parts::load(&*self.reg.driver, &self.repo, &self.id)
    }

    /// Append a chunk that must start at `offset`, the current size (else `Conflict`,
    /// `BLOB_UPLOAD_INVALID`). Returns the new size.
    ///
    /// One pass over the data: this thread reads each buffer and writes it while a
    /// second thread hashes the same buffer, so the bytes hashed are exactly the bytes
    /// written. The hasher hands back the state at every [`CHECKPOINT`] boundary and it
    /// is saved once the data up to it is written.
    pub fn append(&self, offset: u64, chunk: impl Read) -> Result<u64> {
        let st = self.parts()?;
        let size = match &st {
            Some(st) => st.size(),
            None => self.status()?.offset,
        };
        if offset != size {
            return Err(coded(
                ErrorCode::BlobUploadInvalid,
                ErrorKind::Conflict,
                "append",
                &self.id,
                format!("chunk starts at {offset}, upload is at {size}"),
            ));
        }
        let (mut h, _) = self.hash_state(size)?;
        let Some(st) = st else {
            let writer = self
                .reg
                .driver
                .writer(&layout::upload_data(&self.repo, &self.id), true)?;
            if writer.size() != size {
                return Err(coded(
                    ErrorCode::BlobUploadInvalid,
                    ErrorKind::Conflict,
                    "append",
                    &self.id,
                    "upload changed meanwhile",
                ));
            }
            let (writer, read_err) = self.pump(&mut h, size, writer, chunk)?;
            let written = writer.size();
            writer.commit()?;
            if let Some(e) = read_err {
                return Err(Error::io("read chunk", &self.id, e));
            }
            if written != h.len() {
                return Err(Error::new(ErrorKind::Io, "append", &self.id, "short write"));
            }
            self.save_state(&h)?;
            return Ok(written);
        };
        let d = &*self.reg.driver;
        let writer = PartWriter::new(d, &self.repo, &self.id, st);
        let (writer, read_err) = self.pump(&mut h, size, writer, chunk)?;
        if writer.size() != h.len() {
            return Err(Error::new(ErrorKind::Io, "append", &self.id, "short write"));
        }
        // Parts and tail, then the hash at the new size, then the state that makes them
        // the upload's (see upload_parts for why in this order).
        let (st, folded) = writer.finish()?;
        self.save_state(&h)?;
        parts::save(d, &self.repo, &self.id, &st)?;
        // Best effort: pieces no state names are removed with the upload anyway.
        let _ = d.delete_many(&folded);
        if let Some(e) = read_err {
            return Err(Error::io("read chunk", &self.id, e));
        }
        Ok(st.size())
    }

    /// Read `chunk` into `writer` while hashing it into `h` (which is at `size`), saving
    /// the hash state at each checkpoint once the data up to it is written; returns the
    /// writer and a read error, if any (what was read before it is written and hashed).
    fn pump<W: Write>(
        &self,
        h: &mut ResumableSha256,
        size: u64,
        mut writer: W,
        mut chunk: impl Read,
    ) -> Result<(W, Option<std::io::Error>)> {
        debug_assert_eq!(h.len(), size);
        let (tx, rx) = mpsc::sync_channel::<(Arc<Vec<u8>>, usize)>(POOL);
        let (back_tx, back_rx) = mpsc::channel::<Arc<Vec<u8>>>();
        let (state_tx, state_rx) = mpsc::channel::<ResumableSha256>();
        let start = std::mem::take(h);
        let hasher = std::thread::spawn(move || hash_buffers(start, &rx, &back_tx, &state_tx));
        let mut fresh = POOL;
        let mut read_err = None;
        let mut failed = None;
        loop {
            let mut buf = if fresh > 0 {
                fresh -= 1;
                vec![0u8; BUF]
            } else {
                // The hasher hands each buffer back once hashed; this thread dropped
                // its own reference when the write returned.
                match back_rx.recv() {
                    Ok(b) => Arc::try_unwrap(b).unwrap_or_else(|_| vec![0u8; BUF]),
                    Err(_) => break, // the hasher is gone: join reports why
                }
            };
            let n = match read_full(&mut chunk, &mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    read_err = Some(e);
                    break;
                }
            };
            let buf = Arc::new(buf);
            if tx.send((Arc::clone(&buf), n)).is_err() {
                break;
            }
            if let Err(e) = writer.write_all(&buf[..n]) {
                failed = Some(cargohold_core::error::from_io_error("write", &self.id, e));
                break;
            }
            drop(buf);
            // Every state received so far is at or below what is now written.
            if let Err(e) = state_rx.try_iter().try_for_each(|s| self.save_state(&s)) {
                failed = Some(e);
                break;
            }
        }
        drop(tx);
        *h = hasher
            .join()
            .map_err(|_| Error::new(ErrorKind::Io, "append", &self.id, "hasher thread panicked"))?;
        if let Some(e) = failed {
            return Err(e);
        }
        for s in state_rx.try_iter() {
            self.save_state(&s)?;
        }
        Ok((writer, read_err))
    }

    /// Finish the upload as blob `expected` (and `size`, when given). A mismatch is
    /// `DigestMismatch` (`DIGEST_INVALID`) or `InvalidArgument` (`SIZE_INVALID`), and the
    /// upload is removed: nothing is kept.
    pub fn commit(&self, expected: &Digest, size: Option<u64>) -> Result<Descriptor> {
        let _gc = crate::gc::writer_lock(&self.reg)?;
        let st = self.parts()?;
        let got = match &st {
            Some(st) => st.size(),
            None => self.status()?.offset,
        };
        // The upload's bytes as one file: `data`, or for an upload kept as parts, what
        // assembling them gives (after the sha256 check, so a mismatch assembles nothing).
        let mut whole = None;
        let actual = match expected.algorithm() {
            Algorithm::Sha256 => self.hash_state(got)?.0.digest(),
            alg => {
                let file = self.whole(&st, &mut whole)?;
                let mut h = Hasher::new(alg);
                let mut r = self.reg.driver.reader(&file, 0)?;
                let mut buf = vec![0u8; BUF];
                loop {
                    let n = r
                        .read(&mut buf)
                        .map_err(|e| Error::io("hash", &self.id, e))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finish()
            }
        };
        if let Some(want) = size
            && want != got
        {
            self.cancel()?;
            return Err(coded(
                ErrorCode::SizeInvalid,
                ErrorKind::InvalidArgument,
                "commit",
                expected,
                format!("size {got}, expected {want}"),
            ));
        }
        if &actual != expected {
            self.cancel()?;
            return Err(coded(
                ErrorCode::DigestInvalid,
                ErrorKind::DigestMismatch,
                "commit",
                expected,
                format!("content is {actual}"),
            ));
        }
        if !self.reg.global_blob_exists(expected)? {
            let data = self.whole(&st, &mut whole)?;
            self.reg
                .driver
                .rename(&data, &layout::blob_data(expected))?;
        }
        self.reg
            .write_link(&layout::layer_link(&self.repo, expected), expected)?;
        if whole.is_some() {
            // Completed: nothing to abort.
            self.remove()?;
        } else {
            self.cancel()?;
        }
        Ok(Descriptor {
            media_type: OCTET_STREAM.into(),
            digest: expected.clone(),
            size: got,
            artifact_type: None,
            annotations: None,
        })
    }

    /// The key holding the whole upload, assembling its parts the first time.
    fn whole(&self, st: &Option<PartState>, done: &mut Option<Key>) -> Result<Key> {
        if let Some(k) = done {
            return Ok(k.clone());
        }
        let k = match st {
            Some(st) => parts::assemble(&*self.reg.driver, &self.repo, &self.id, st)?,
            None => layout::upload_data(&self.repo, &self.id),
        };
        *done = Some(k.clone());
        Ok(k)
    }

    /// Abandon the upload and remove everything it stored (aborting its multipart
    /// upload, so no part is left on the server).
    pub fn cancel(&self) -> Result<()> {
        parts::abort(&*self.reg.driver, &self.repo, &self.id)?;
        self.remove()
    }

    fn remove(&self) -> Result<()> {
        self.reg
            .driver
            .delete(&layout::upload(&self.repo, &self.id))
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    recode(e, ErrorCode::BlobUploadUnknown)
                } else {
                    e
                }
            })
    }
}

/// The hasher thread: hash each buffer, send back the state at each checkpoint
/// boundary and the buffer once hashed; returns the final state.
fn hash_buffers(
    mut h: ResumableSha256,
    rx: &mpsc::Receiver<(Arc<Vec<u8>>, usize)>,
    back: &mpsc::Sender<Arc<Vec<u8>>>,
    states: &mpsc::Sender<ResumableSha256>,
) -> ResumableSha256 {
    let mut next = (h.len() / CHECKPOINT + 1) * CHECKPOINT;
    for (buf, n) in rx {
        let mut data = &buf[..n];
        while h.len() + data.len() as u64 >= next {
            let (now, rest) = data.split_at((next - h.len()) as usize);
            h.update(now);
            let _ = states.send(h.clone());
            data = rest;
            next += CHECKPOINT;
        }
        h.update(data);
        let _ = back.send(buf);
    }
    h
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

/// `t` as RFC 3339 in UTC with seconds (as registry:2 writes `startedat`).
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86400), secs.rem_euclid(86400));
    let z = days + 719468;
    let era = z.div_euclid(146097);
    let doe = z - era * 146097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d, h, mi, se) = (
        num(0..4)?,
        num(5..7)?,
        num(8..10)?,
        num(11..13)?,
        num(14..16)?,
        num(17..19)?,
    );
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        rest = &frac[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        o if o.len() == 6 => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            sign * (o.get(1..3)?.parse::<i64>().ok()? * 3600
                + o.get(4..6)?.parse::<i64>().ok()? * 60)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se - offset;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let s = rfc3339(t);
        assert_eq!(parse_rfc3339(&s), Some(t));
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            parse_rfc3339("2000-02-29T01:00:00.123456789+01:00"),
            Some(UNIX_EPOCH + Duration::from_secs(951_782_400))
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn ids_look_like_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        check_id(&id).unwrap();
        assert!(check_id("../x").is_err());
    }
}
