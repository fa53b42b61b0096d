//! Reading and writing one object: a streamed body, and a writer that buffers one part
//! and turns into a multipart upload past it.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use bytes::Bytes;
use cargohold_core::{Error, ErrorKind, Result};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use object_store::path::Path;
use object_store::{MultipartUpload, ObjectStoreExt, PutPayload};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;

use super::{IN_FLIGHT, Request, S3, map_err};
use crate::{FileWriter, Key};

/// Streams an object's body, one network chunk at a time.
pub(super) struct ObjectReader {
    rt: Arc<Runtime>,
    stream: BoxStream<'static, object_store::Result<Bytes>>,
    chunk: Bytes,
    key: Key,
}

impl fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectReader")
            .field("key", &self.key)
            .finish()
    }
}

impl ObjectReader {
    pub(super) fn new(
        rt: Arc<Runtime>,
        stream: BoxStream<'static, object_store::Result<Bytes>>,
        key: Key,
    ) -> ObjectReader {
        ObjectReader {
            rt,
            stream,
            chunk: Bytes::new(),
            key,
        }
    }
}

impl Read for ObjectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(Ok(c)) => self.chunk = c,
                Some(Err(e)) => return Err(map_err("read", &self.key, e).into()),
            }
        }
        let n = out.len().min(self.chunk.len());
        out[..n].copy_from_slice(&self.chunk[..n]);
        let _ = self.chunk.split_to(n);
        Ok(n)
    }
}

/// Buffers a part; past one part it becomes a multipart upload.
pub(super) struct ObjectWriter {
    s3: S3,
    key: Key,
    path: Path,
    buf: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<JoinHandle<object_store::Result<()>>>,
    size: u64,
}

impl fmt::Debug for ObjectWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectWriter")
            .field("key", &self.key)
            .field("size", &self.size)
            .field("multipart", &self.upload.is_some())
            .finish()
    }
}

impl ObjectWriter {
    pub(super) fn new(s3: S3, key: Key, path: Path) -> ObjectWriter {
        ObjectWriter {
            s3,
            key,
            path,
            buf: Vec::new(),
            upload: None,
            in_flight: VecDeque::new(),
            size: 0,
        }
    }

    fn send_part(&mut self, part: Vec<u8>) -> Result<()> {
        let rt = self.s3.rt.clone();
        if self.upload.is_none() {
            self.s3.requests.count(Request::Multipart);
            let up = rt
                .block_on(self.s3.store.put_multipart(&self.path))
                .map_err(|e| map_err("write", &self.key, e))?;
            self.upload = Some(up);
        }
        let fut = self
            .upload
            .as_mut()
            .expect("created above")
            .put_part(PutPayload::from(part));
        self.s3.requests.count(Request::Multipart);
        self.in_flight.push_back(rt.spawn(fut));
        while self.in_flight.len() > IN_FLIGHT {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> Result<()> {
        let Some(h) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match self.s3.rt.block_on(h) {
            Ok(r) => r.map_err(|e| map_err("write", &self.key, e)),
            Err(e) => Err(Error::new(ErrorKind::Io, "write", &self.key, e)),
        }
    }

    fn abort(&mut self) {
        for h in self.in_flight.drain(..) {
            h.abort();
        }
        if let Some(mut up) = self.upload.take() {
            self.s3.requests.count(Request::Multipart);
            // Best effort: a server that is gone drops its own incomplete uploads, or
            // a bucket lifecycle rule does.
            let _ = self.s3.rt.block_on(up.abort());
        }
    }

    fn finish(&mut self) -> Result<()> {
        let tail = std::mem::take(&mut self.buf);
        if self.upload.is_none() {
            self.s3.requests.count(Request::Put);
            return self
                .s3
                .rt
                .block_on(self.s3.store.put(&self.path, PutPayload::from(tail)))
                .map(|_| ())
                .map_err(|e| map_err("commit", &self.key, e));
        }
        if !tail.is_empty() {
            self.send_part(tail)?;
        }
        while !self.in_flight.is_empty() {
            self.wait_one()?;
        }
        let mut up = self.upload.take().expect("checked above");
        self.s3.requests.count(Request::Multipart);
        match self.s3.rt.block_on(up.complete()) {
            Ok(_) => Ok(()),
            Err(e) => {
                let _ = self.s3.rt.block_on(up.abort());
                Err(map_err("commit", &self.key, e))
            }
        }
    }
}

impl Write for ObjectWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let part = self.s3.part_size;
        let take = b.len().min(part - self.buf.len());
        self.buf.extend_from_slice(&b[..take]);
        self.size += take as u64;
        if self.buf.len() == part {
            let full = std::mem::replace(&mut self.buf, Vec::with_capacity(part));
            self.send_part(full).map_err(io::Error::from)?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for ObjectWriter {
    fn size(&self) -> u64 {
        self.size
    }
    fn commit(mut self: Box<Self>) -> Result<()> {
        let r = self.finish();
        if r.is_err() {
            self.abort();
        }
        r
    }
    fn cancel(mut self: Box<Self>) -> Result<()> {
        self.abort();
        let path = self.path.clone();
        self.s3.requests.deleted(1);
        match self.s3.rt.block_on(self.s3.store.delete(&path)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(map_err("cancel", &self.key, e)),
        }
    }
}

impl Drop for ObjectWriter {
    fn drop(&mut self) {
        self.abort();
    }
}
