//! The registry model on a [`StorageDriver`]: repositories, blobs, tags and catalog.
//! Uploads are in [`crate::uploads`], manifests and referrers in [`crate::manifests`].
//!
//! Rules: data is written before the links that make it visible (blob data, then the
//! repository's link; manifest bytes, then the revision link, then the tag); every link
//! is replaced atomically; a link that is empty or names another digest is `Corrupt`.

use std::io::Read;
use std::sync::Arc;

use cargohold_core::{Digest, DigestWriter, ErrorKind, Result};
use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, coded, recode};
use crate::names::{check_repository, check_tag};
use crate::{Key, StorageDriver, layout};

/// An OCI content descriptor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the content.
    pub media_type: String,
    /// Digest of the content.
    pub digest: Digest,
    /// Size in bytes.
    pub size: u64,
    /// The artifact type (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations (referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Media type reported for a plain blob.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// A registry on a storage driver. Cheap to clone; clones share the driver.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) driver: Arc<dyn StorageDriver>,
    verify: bool,
}

impl Registry {
    /// A registry on `driver` (an empty key space is an empty registry). Reads verify
    /// digests by default.
    pub fn open(driver: impl StorageDriver + 'static) -> Registry {
        Registry::on(Arc::new(driver))
    }

    /// A registry on a shared driver.
    pub fn on(driver: Arc<dyn StorageDriver>) -> Registry {
        Registry {
            driver,
            verify: true,
        }
    }

    /// Whether whole-blob reads check the bytes against their digest (`Corrupt` if not).
    pub fn set_verify(&mut self, verify: bool) {
        self.verify = verify;
    }

    /// The storage driver.
    pub fn driver(&self) -> &dyn StorageDriver {
        self.driver.as_ref()
    }

    /// Read a link file; `Ok(None)` when absent, `Corrupt` when empty or wrong.
    pub(crate) fn read_link(
        &self,
        at: &Key,
        expected: Option<&Digest>,
        code: ErrorCode,
    ) -> Result<Option<Digest>> {
        match self.driver.get_content(at) {
            Ok(b) => layout::parse_link(at, &b, expected, code).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn write_link(&self, at: &Key, d: &Digest) -> Result<()> {
        self.driver.put_content(at, &layout::link_content(d))
    }

    /// Whether the repository exists (has manifests, layers or uploads).
    pub fn has_repository(&self, repo: &str) -> Result<bool> {
        check_repository(repo)?;
        match self.driver.stat(&layout::repository(repo)) {
            Ok(i) => Ok(i.is_dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn blob_size(&self, d: &Digest) -> Result<Option<u64>> {
        match self.driver.stat(&layout::blob_data(d)) {
            Ok(i) if !i.is_dir => Ok(Some(i.size)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn global_blob_exists(&self, d: &Digest) -> Result<bool> {
        Ok(self.blob_size(d)?.is_some())
    }

    fn unknown(repo: &str, d: &Digest) -> cargohold_core::Error {
        coded(
            ErrorCode::BlobUnknown,
            ErrorKind::NotFound,
            "blob",
            format!("{repo}@{d}"),
            "blob unknown to repository",
        )
    }

    /// Size of a blob of the repository (`NotFound`, `BLOB_UNKNOWN` when it has none; an
    /// empty or wrong link is `Corrupt`).
    pub fn stat_blob(&self, repo: &str, d: &Digest) -> Result<Descriptor> {
        check_repository(repo)?;
        if self
            .read_link(
                &layout::layer_link(repo, d),
                Some(d),
                ErrorCode::BlobUnknown,
            )?
            .is_none()
        {
            return Err(Self::unknown(repo, d));
        }
        let size = self.blob_size(d)?.ok_or_else(|| Self::unknown(repo, d))?;
        Ok(Descriptor {
            media_type: OCTET_STREAM.into(),
            digest: d.clone(),
            size,
            artifact_type: None,
            annotations: None,
        })
    }

    /// A reader of `len` bytes (all when `None`) of a blob from `offset`. A range past the
    /// end is `InvalidArgument`. Ranged reads are not verified.
    pub fn blob_reader(
        &self,
        repo: &str,
        d: &Digest,
        offset: u64,
        len: Option<u64>,
    ) -> Result<Box<dyn Read + Send>> {
        let desc = self.stat_blob(repo, d)?;
        let end = offset.checked_add(len.unwrap_or(desc.size - offset.min(desc.size)));
        if offset > desc.size || end.is_none_or(|e| e > desc.size) {
            return Err(coded(
                ErrorCode::BlobUnknown,
                ErrorKind::InvalidArgument,
                "read blob",
                d,
                "range beyond the blob",
            ));
        }
        let r = self.driver.reader(&layout::blob_data(d), offset)?;
        Ok(Box::new(r.take(end.unwrap_or(desc.size) - offset)))
    }

    /// The whole blob; with verification on, bytes that do not hash to `d` are `Corrupt`.
    pub fn read_blob(&self, repo: &str, d: &Digest) -> Result<Vec<u8>> {
        self.stat_blob(repo, d)?;
        self.read_global(d)
    }

    pub(crate) fn read_global(&self, d: &Digest) -> Result<Vec<u8>> {
        let data = self.driver.get_content(&layout::blob_data(d))?;
        if self.verify && Digest::of(d.algorithm(), &data) != *d {
            return Err(coded(
                ErrorCode::DigestInvalid,
                ErrorKind::Corrupt,
                "read blob",
                d,
                "stored bytes do not match their digest",
            ));
        }
        Ok(data)
    }

    /// Unlink a blob from a repository (its data stays for other repositories; garbage
    /// collection removes unreferenced data).
    pub fn delete_blob(&self, repo: &str, d: &Digest) -> Result<()> {
        self.stat_blob(repo, d)?;
        let link = layout::layer_link(repo, d);
        self.driver
            .delete(&link.parent().expect("a link has a directory"))
    }

    /// Make a blob of `from` part of `to` without copying it.
    pub fn mount_blob(&self, from: &str, to: &str, d: &Digest) -> Result<Descriptor> {
        check_repository(to)?;
        let _gc = crate::gc::writer_lock(self)?;
        let desc = self.stat_blob(from, d)?;
        self.write_link(&layout::layer_link(to, d), d)?;
        Ok(desc)
    }

    /// Store a whole blob in one call (a monolithic upload).
    pub fn put_blob(&self, repo: &str, data: &[u8]) -> Result<Descriptor> {
        let d = Digest::sha256(data);
        self.put_blob_as(repo, &d, Some(data.len() as u64), data)
    }

    /// Store the blob `expected` (of `size` bytes, when given) streamed from `data`,
    /// whose digest the caller knows ahead (an import, a push that names its digest).
    /// A mismatch is `DigestMismatch` (`DIGEST_INVALID`) or `InvalidArgument`
    /// (`SIZE_INVALID`) and nothing is kept. On a backend whose writes are invisible
    /// until committed ([`StorageDriver::atomic_writes`]: object stores, memory) the
    /// bytes go straight to the blob's key, checked before the commit: no upload, no
    /// copy. Elsewhere it is an upload (start, append, commit). A blob the store already
    /// has is linked without reading `data`.
    pub fn put_blob_as(
        &self,
        repo: &str,
        expected: &Digest,
        size: Option<u64>,
        data: impl Read,
    ) -> Result<Descriptor> {
        check_repository(repo)?;
        let size_err = |got: u64, want: u64| {
            coded(
                ErrorCode::SizeInvalid,
                ErrorKind::InvalidArgument,
                "put blob",
                expected,
                format!("size {got}, expected {want}"),
            )
        };
        let desc = |size| Descriptor {
            media_type: OCTET_STREAM.into(),
            digest: expected.clone(),
            size,
            artifact_type: None,
            annotations: None,
        };
        if let Some(have) = self.blob_size(expected)? {
            if let Some(want) = size
                && want != have
            {
                return Err(size_err(have, want));
            }
            let _gc = crate::gc::writer_lock(self)?;
            self.write_link(&layout::layer_link(repo, expected), expected)?;
            return Ok(desc(have));
        }
        if !self.driver.atomic_writes() {
            let up = self.start_upload(repo)?;
            let r = up.append(0, data).and_then(|_| up.commit(expected, size));
            if r.is_err() {
                let _ = up.cancel();
            }
            return r;
        }
        let key = layout::blob_data(expected);
        let w = self.driver.writer(&key, false)?;
        let mut w = DigestWriter::new(w, expected.algorithm());
        let copied = std::io::copy(
            &mut std::io::BufReader::with_capacity(1 << 20, data),
            &mut w,
        );
        let (w, got, len) = w.finish();
        let bad = match copied {
            Err(e) => Some(cargohold_core::error::from_io_error(
                "put blob", expected, e,
            )),
            Ok(_) if size.is_some_and(|want| want != len) => {
                Some(size_err(len, size.unwrap_or_default()))
            }
            Ok(_) if &got != expected => Some(coded(
                ErrorCode::DigestInvalid,
                ErrorKind::DigestMismatch,
                "put blob",
                expected,
                format!("content is {got}"),
            )),
            Ok(_) => None,
        };
        if let Some(e) = bad {
            let _ = w.cancel();
            return Err(e);
        }
        let _gc = crate::gc::writer_lock(self)?;
        w.commit()?;
        self.write_link(&layout::layer_link(repo, expected), expected)?;
        Ok(desc(len))
    }

    /// Tags of a repository, sorted; `n` at most, after `last` (the spec's pagination).
    pub fn tags(&self, repo: &str, n: Option<usize>, last: Option<&str>) -> Result<Vec<String>> {
        if !self.has_repository(repo)? {
            return Err(coded(
                ErrorCode::NameUnknown,
                ErrorKind::NotFound,
                "tags",
                repo,
                "repository unknown",
            ));
        }
        let names = match self.driver.list(&layout::tags(repo)) {
            Ok(keys) => keys.iter().map(|k| k.file_name().to_owned()).collect(),
            Err(e) if e.kind() == ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut live = Vec::new();
        for t in names {
            if check_tag(&t).is_ok() && self.driver.stat(&layout::tag_current(repo, &t)).is_ok() {
                live.push(t);
            }
        }
        Ok(paginate(live, n, last))
    }

    /// The manifest digest a tag points at (`NotFound`, `MANIFEST_UNKNOWN` if none).
    pub fn resolve_tag(&self, repo: &str, tag: &str) -> Result<Digest> {
        check_repository(repo)?;
        check_tag(tag)?;
        self.read_link(
            &layout::tag_current(repo, tag),
            None,
            ErrorCode::ManifestUnknown,
        )?
        .ok_or_else(|| {
            coded(
                ErrorCode::ManifestUnknown,
                ErrorKind::NotFound,
                "tag",
                format!("{repo}:{tag}"),
                "tag unknown",
            )
        })
    }

    /// Point `tag` at a manifest of the repository (history entry first, then current).
    pub fn tag(&self, repo: &str, tag: &str, d: &Digest) -> Result<()> {
        check_repository(repo)?;
        check_tag(tag)?;
        let _gc = crate::gc::writer_lock(self)?;
        self.tag_locked(repo, tag, d)
    }

    /// [`Registry::tag`] for a caller that holds the collector's shared lock already.
    pub(crate) fn tag_locked(&self, repo: &str, tag: &str, d: &Digest) -> Result<()> {
        if self
            .read_link(
                &layout::revision_link(repo, d),
                Some(d),
                ErrorCode::ManifestUnknown,
            )?
            .is_none()
        {
            return Err(coded(
                ErrorCode::ManifestUnknown,
                ErrorKind::NotFound,
                "tag",
                format!("{repo}@{d}"),
                "manifest unknown",
            ));
        }
        self.write_link(&layout::tag_index(repo, tag, d), d)?;
        self.write_link(&layout::tag_current(repo, tag), d)
    }

    /// Remove a tag (the manifest stays).
    pub fn untag(&self, repo: &str, tag: &str) -> Result<()> {
        self.resolve_tag(repo, tag)?;
        let dir = layout::tags(repo).join(tag)?;
        self.driver
            .delete(&dir)
            .map_err(|e| recode(e, ErrorCode::ManifestUnknown))
    }

    /// Every repository, sorted; `n` at most, after `last`.
    pub fn catalog(&self, n: Option<usize>, last: Option<&str>) -> Result<Vec<String>> {
        let mut out = Vec::new();
        self.find_repositories(&layout::repositories(), "", &mut out)?;
        out.sort();
        Ok(paginate(out, n, last))
    }

    /// Names of the repositories below `dir` (`prefix` is `dir`'s name so far).
    pub(crate) fn find_repositories(
        &self,
        dir: &Key,
        prefix: &str,
        out: &mut Vec<String>,
    ) -> Result<()> {
        let children = match self.driver.list(dir) {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut is_repo = false;
        for child in children {
            let name = child.file_name();
            if name.starts_with('_') {
                is_repo |= matches!(name, "_manifests" | "_layers" | "_uploads");
                continue;
            }
            let full = if prefix.is_empty() {
                name.to_owned()
            } else {
                format!("{prefix}/{name}")
            };
            if self.driver.stat(&child).is_ok_and(|i| i.is_dir) {
                self.find_repositories(&child, &full, out)?;
            }
        }
        if is_repo && check_repository(prefix).is_ok() {
            out.push(prefix.to_owned());
        }
        Ok(())
    }
}

/// The spec's pagination: sorted entries after `last`, at most `n`.
pub fn paginate(mut all: Vec<String>, n: Option<usize>, last: Option<&str>) -> Vec<String> {
    all.sort();
    let start = last.map_or(0, |l| all.partition_point(|x| x.as_str() <= l));
    let mut page: Vec<String> = all.split_off(start);
    if let Some(n) = n {
        page.truncate(n);
    }
    page
}
