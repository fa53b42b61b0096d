//! Uploads kept as multipart uploads, on backends that cannot append
//! ([`StorageDriver::multipart`](crate::StorageDriver::multipart): object stores).
//!
//! Such an upload has no `data` file while it is in progress. Its `multipart` file holds
//! the [`PartState`]: the multipart upload's id (created with the first part), the
//! ETags of the parts so far, and the tail pieces. Every part but the last must be at
//! least [`MultipartDriver::min_part_size`] (5 MiB on S3), so a chunk's bytes that do
//! not fill a part are kept as a *tail piece* (`tail/<offset>`, one object per chunk,
//! each sent once). When the tail and the next chunk reach a part, the pieces are read
//! back and sent again inside that part: the bytes re-sent are bounded by the tail
//! (under 5 MiB per part), and a chunk of at least 5 MiB re-sends nothing.
//!
//! Order of writes in an append (what a process killed at any point leaves): parts and
//! the new tail piece first, then the sha256 state at the new size, then the
//! `multipart` file (the commit point), then the removal of pieces now inside a part.
//! Before the commit point the upload is where it was: parts uploaded past its recorded
//! ones are replaced by the next append (same part numbers) or left out at completion,
//! and the multipart id is saved as soon as it is created, so cancel, purge and fsck
//! repair can always abort it (no parts are left behind on the server).
//!
//! Commit uploads the tail as the last part and completes the multipart upload into
//! `data` (a lone tail piece is used as it is, a few small ones are joined in one put),
//! then goes on as for any upload: the digest is checked, and `data` moves to the blob
//! store (a server-side copy).

use std::io::{self, Read, Write};

use cargohold_core::{Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::{Key, MultipartDriver, StorageDriver, layout};

/// What the `multipart` file of an upload holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PartState {
    /// The multipart upload, once a part was needed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_id: Option<String>,
    /// ETags of parts `0..n`, in order.
    #[serde(default)]
    pub parts: Vec<String>,
    /// Bytes in those parts.
    #[serde(default)]
    pub parts_size: u64,
    /// The tail pieces after the parts, as `(offset, length)`, contiguous.
    #[serde(default)]
    pub tail: Vec<(u64, u64)>,
}

impl PartState {
    /// Bytes received so far.
    pub fn size(&self) -> u64 {
        self.parts_size + self.tail.iter().map(|(_, n)| n).sum::<u64>()
    }
}

/// The upload's state, or `None` for an upload that appends to `data`.
pub(crate) fn load(d: &dyn StorageDriver, repo: &str, id: &str) -> Result<Option<PartState>> {
    match d.get_content(&layout::upload_multipart(repo, id)) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Corrupt,
                "upload",
                id,
                format!("unreadable multipart state: {e}"),
            )
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(crate) fn save(d: &dyn StorageDriver, repo: &str, id: &str, st: &PartState) -> Result<()> {
    let bytes = serde_json::to_vec(st).expect("the state serialises");
    d.put_content(&layout::upload_multipart(repo, id), &bytes)
}

fn mp<'a>(d: &'a dyn StorageDriver, id: &str) -> Result<&'a dyn MultipartDriver> {
    d.multipart().ok_or_else(|| {
        Error::new(
            ErrorKind::Unsupported,
            "upload",
            id,
            format!(
                "the upload is kept as a multipart upload, which the {} backend does not have",
                d.name()
            ),
        )
    })
}

/// The upload's bytes from `from` on, when they are all in tail pieces (parts cannot be
/// read back before completion): `Corrupt` otherwise.
pub(crate) fn tail_reader(
    d: &dyn StorageDriver,
    repo: &str,
    id: &str,
    st: &PartState,
    from: u64,
) -> Result<Box<dyn Read + Send>> {
    if from < st.parts_size {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "rehash",
            id,
            format!(
                "no saved hash state at or after byte {from}, and bytes before {} are in \
                 multipart parts, which cannot be read back before completion",
                st.parts_size
            ),
        ));
    }
    let mut out: Box<dyn Read + Send> = Box::new(io::empty());
    for &(off, len) in &st.tail {
        if off + len <= from {
            continue;
        }
        let skip = from.saturating_sub(off);
        let r = d.reader(&layout::upload_tail_piece(repo, id, off), skip)?;
        out = Box::new(out.chain(r));
    }
    Ok(out)
}

/// Bytes of the tail pieces, joined.
fn read_tail(d: &dyn StorageDriver, repo: &str, id: &str, tail: &[(u64, u64)]) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(tail.iter().map(|(_, n)| *n as usize).sum());
    for &(off, len) in tail {
        let b = d.get_content(&layout::upload_tail_piece(repo, id, off))?;
        if b.len() as u64 != len {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "upload",
                id,
                format!("tail piece at {off} holds {} bytes, not {len}", b.len()),
            ));
        }
        out.extend_from_slice(&b);
    }
    Ok(out)
}

/// The writer of one append: cuts parts, keeps the rest as a new tail piece.
pub(crate) struct PartWriter<'a> {
    d: &'a dyn StorageDriver,
    repo: String,
    id: String,
    data: Key,
    st: PartState,
    /// New bytes, after the state's tail pieces.
    buf: Vec<u8>,
    /// Pieces folded into a part by this append (removed once the state is saved).
    folded: Vec<(u64, u64)>,
}

impl std::fmt::Debug for PartWriter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PartWriter")
            .field("id", &self.id)
            .field("state", &self.st)
            .field("buffered", &self.buf.len())
            .finish()
    }
}

impl<'a> PartWriter<'a> {
    pub(crate) fn new(d: &'a dyn StorageDriver, repo: &str, id: &str, st: PartState) -> Self {
        PartWriter {
            d,
            repo: repo.to_owned(),
            id: id.to_owned(),
            data: layout::upload_data(repo, id),
            st,
            buf: Vec::new(),
            folded: Vec::new(),
        }
    }

    fn tail_len(&self) -> usize {
        (self.st.size() - self.st.parts_size) as usize
    }

    /// Bytes received so far, this append's included.
    pub(crate) fn size(&self) -> u64 {
        self.st.size() + self.buf.len() as u64
    }

    /// Send the tail pieces and the first `n - tail` new bytes as the next part.
    fn emit_part(&mut self, n: usize) -> Result<()> {
        let tail = self.tail_len();
        let mut part = read_tail(self.d, &self.repo, &self.id, &self.st.tail)?;
        part.extend(self.buf.drain(..n - tail));
        let m = mp(self.d, &self.id)?;
        let upload = match &self.st.upload_id {
            Some(u) => u.clone(),
            None => {
                let u = m.create_multipart(&self.data)?;
                self.st.upload_id = Some(u.clone());
                // Saved at once: whatever happens next, the upload can be aborted.
                save(self.d, &self.repo, &self.id, &self.st)?;
                u
            }
        };
        let etag = m.put_part(&self.data, &upload, self.st.parts.len(), part)?;
        self.st.parts.push(etag);
        self.st.parts_size += n as u64;
        self.folded.append(&mut self.st.tail);
        Ok(())
    }

    /// Send what this append still holds (a last part when it is big enough, else a new
    /// tail piece) and return the state to save and the pieces it no longer needs.
    pub(crate) fn finish(mut self) -> Result<(PartState, Vec<Key>)> {
        let total = self.tail_len() + self.buf.len();
        if total >= mp(self.d, &self.id)?.min_part_size() {
            self.emit_part(total)?;
        } else if !self.buf.is_empty() {
            let off = self.st.size();
            self.d.put_content(
                &layout::upload_tail_piece(&self.repo, &self.id, off),
                &self.buf,
            )?;
            self.st.tail.push((off, self.buf.len() as u64));
        }
        let folded = self
            .folded
            .iter()
            .map(|&(off, _)| layout::upload_tail_piece(&self.repo, &self.id, off))
            .collect();
        Ok((self.st, folded))
    }
}

impl Write for PartWriter<'_> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        let part = mp(self.d, &self.id).map_err(io::Error::from)?.part_size();
        while self.tail_len() + self.buf.len() >= part {
            self.emit_part(part).map_err(io::Error::from)?;
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Turn the upload's parts and tail into one file; returns its key (`data`, or the lone
/// tail piece). Nothing is re-sent but the tail (under one part).
pub(crate) fn assemble(d: &dyn StorageDriver, repo: &str, id: &str, st: &PartState) -> Result<Key> {
    let data = layout::upload_data(repo, id);
    let m = mp(d, id)?;
    if let Some(upload) = &st.upload_id {
        if !st.parts.is_empty() {
            let mut parts = st.parts.clone();
            if !st.tail.is_empty() {
                let last = read_tail(d, repo, id, &st.tail)?;
                parts.push(m.put_part(&data, upload, parts.len(), last)?);
            }
            m.complete_multipart(&data, upload, &parts)?;
            return Ok(data);
        }
        // Created, then the process died before its first part was recorded.
        m.abort_multipart(&data, upload)?;
    }
    if let [(off, _)] = st.tail.as_slice() {
        return Ok(layout::upload_tail_piece(repo, id, *off));
    }
    d.put_content(&data, &read_tail(d, repo, id, &st.tail)?)?;
    Ok(data)
}

/// Abort the upload's multipart upload, if it has one. On a backend without multipart
/// uploads (a store migrated from a bucket) there is nothing this store could abort.
pub(crate) fn abort(d: &dyn StorageDriver, repo: &str, id: &str) -> Result<()> {
    if d.multipart().is_none() {
        return Ok(());
    }
    if let Some(PartState {
        upload_id: Some(u), ..
    }) = load(d, repo, id)?
    {
        mp(d, id)?.abort_multipart(&layout::upload_data(repo, id), &u)?;
    }
    Ok(())
}
