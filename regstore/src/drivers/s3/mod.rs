//! The `s3` backend: the key space as objects of an S3-compatible bucket, through the
//! `object_store` crate (no hand-written HTTP), behind a private tokio runtime.
//!
//! Key `/docker/registry/v2/x` is object `PREFIX/docker/registry/v2/x`, so a bucket
//! holds the same names registry:2's filesystem layout does. Directories are prefixes
//! only. How each rule of [`StorageDriver`] is kept:
//! - a [`FileWriter`] buffers up to [`S3Config::part_size`] bytes; a file that stays
//!   smaller is one `PutObject` at commit, a larger one a multipart upload (parts of
//!   `part_size`, the last smaller) that commit completes and cancel aborts, so nothing
//!   is visible before commit and a failed upload leaves no object.
//! - S3 cannot append: a writer opened with `append` on a non-empty file first streams
//!   the existing bytes into its new upload (a download and a re-upload of them).
//! - `rename` is a server-side copy then a delete (not atomic for a directory); a file
//!   above [`S3Config::copy_limit`] (S3's `CopyObject` stops at 5 GiB, and object_store
//!   offers no ranged `UploadPartCopy`) is streamed through this process instead.
//! - a file cannot have children: writers and puts look up the key's ancestors first.
//! - [`StorageDriver::multipart`] hands out S3 multipart uploads whose ids and part
//!   ETags a caller persists, so an upload's bytes go to the server once and another
//!   process can continue it (see [`crate::uploads`]).
//! - [`StorageDriver::delete_many`] is one paginated listing under the keys' common
//!   prefix and one `DeleteObjects` request per 1,000 objects.

#[cfg(any(feature = "gcs", feature = "azure"))]
mod clouds;
mod config;
mod requests;
mod stream;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{self, Read};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cargohold_core::{Error, ErrorKind, Result};
use futures_util::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    ClientOptions, GetOptions, GetRange, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use tokio::runtime::Runtime;

pub use config::S3Config;
pub use requests::RequestCounts;
use requests::{Request, Requests};
use stream::{ObjectReader, ObjectWriter};

use crate::{FileInfo, FileWriter, Key, StorageDriver};

/// The smallest part S3 accepts in a multipart upload (all parts but the last).
pub const MIN_PART_SIZE: usize = 5 << 20;
/// Parts uploading at once per writer.
const IN_FLIGHT: usize = 2;
/// The largest object S3's `CopyObject` copies: 5 GiB.
pub const MAX_COPY: u64 = 5 << 30;

/// What the driver needs of an object_store backend.
pub(crate) trait Store: ObjectStore + MultipartStore {}
impl<T: ObjectStore + MultipartStore> Store for T {}

/// A key space in an S3-compatible bucket (or, with the `gcs` and `azure` features, a
/// Google Cloud Storage bucket or an Azure Blob container: [`S3::open_gcs`],
/// [`S3::open_azure`]); clones share the connection pool.
#[derive(Clone)]
pub struct S3 {
    store: Arc<dyn Store>,
    backend: &'static str,
    rt: Arc<Runtime>,
    bucket: String,
    prefix: String,
    part_size: usize,
    copy_limit: u64,
    requests: Arc<Requests>,
}

fn invalid(op: &'static str, what: impl fmt::Display, why: impl fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidArgument, op, what, why)
}

/// The kind of an object_store failure; the message keeps the server's own words.
fn map_err(op: &'static str, context: impl fmt::Display, e: object_store::Error) -> Error {
    use object_store::Error as E;
    let kind = match &e {
        E::NotFound { .. } => ErrorKind::NotFound,
        E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        E::Precondition { .. } | E::NotModified { .. } => ErrorKind::Conflict,
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => ErrorKind::PermissionDenied,
        E::NotSupported { .. } | E::NotImplemented { .. } => ErrorKind::Unsupported,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } => ErrorKind::InvalidArgument,
        _ => match s3_code(&e).as_deref() {
            Some("NoSuchBucket" | "NoSuchKey" | "NoSuchUpload") => ErrorKind::NotFound,
            Some(
                "InvalidAccessKeyId"
                | "SignatureDoesNotMatch"
                | "AccessDenied"
                | "ExpiredToken"
                | "InvalidToken"
                | "InvalidSecurity",
            ) => ErrorKind::PermissionDenied,
            _ => ErrorKind::Io,
        },
    };
    Error::new(kind, op, context, e.to_string()).with_source(e)
}

/// The S3 error code (`<Code>NoSuchBucket</Code>`) of a failure object_store passes on
/// as a generic one: its message carries the server's XML answer.
fn s3_code(e: &object_store::Error) -> Option<String> {
    let text = e.to_string();
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_owned())
}

/// Make ring rustls' crypto provider for this process, once, before any HTTP client is
/// built (reqwest is built without a provider of its own). A provider another part of
/// the process installed first is kept.
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A key prefix without its outer slashes, checked to be key components.
fn check_prefix(op: &'static str, name: &str, prefix: &str) -> Result<String> {
    let prefix = prefix.trim_matches('/');
    if !prefix.is_empty() && Key::parse(&format!("/{prefix}")).is_err() {
        return Err(invalid(
            op,
            name,
            "a prefix is key components ([A-Za-z0-9._-]) joined by /",
        ));
    }
    Ok(prefix.to_owned())
}

fn not_found(op: &'static str, key: &Key) -> Error {
    Error::new(ErrorKind::NotFound, op, key, "no such file")
}

impl S3 {
    /// Connect to the bucket `config` names and check that it answers: a missing bucket
    /// is `NotFound`, refused credentials `PermissionDenied`, an unreachable server `Io`,
    /// each naming the bucket and endpoint.
    pub fn open(config: S3Config) -> Result<S3> {
        let name = format!(
            "s3://{}/{} at {}",
            config.bucket,
            config.prefix,
            config.endpoint.as_deref().unwrap_or("AWS")
        );
        if config.part_size < MIN_PART_SIZE {
            return Err(invalid(
                "open",
                &name,
                format!("part size below S3's minimum of {MIN_PART_SIZE} bytes"),
            ));
        }
        let prefix = &check_prefix("open", &name, &config.prefix)?;
        install_crypto_provider();
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&config.bucket)
            .with_region(&config.region)
            .with_virtual_hosted_style_request(!config.path_style)
            .with_retry(RetryConfig {
                max_retries: config.max_retries,
                retry_timeout: config.retry_timeout,
                ..RetryConfig::default()
            })
            .with_client_options(
                ClientOptions::new()
                    .with_allow_http(true)
                    .with_connect_timeout(Duration::from_secs(10)),
            );
        if let Some(e) = &config.endpoint {
            b = b.with_endpoint(e);
        }
        match (&config.access_key_id, &config.secret_access_key) {
            (Some(id), Some(secret)) => {
                b = b.with_access_key_id(id).with_secret_access_key(secret);
                if let Some(t) = &config.session_token {
                    b = b.with_token(t);
                }
            }
            (None, None) => b = b.with_skip_signature(true),
            _ => {
                return Err(invalid(
                    "open",
                    &name,
                    "an access key id needs its secret and the other way round",
                ));
            }
        }
        let store = b
            .build()
            .map_err(|e| map_err("open", &name, e).with_kind(ErrorKind::InvalidArgument))?;
        S3::on_store(
            Arc::new(store),
            "s3",
            name,
            &config.bucket,
            prefix,
            config.part_size,
            config.copy_limit,
            config.access_key_id.as_deref(),
        )
    }

    /// The driver over a built store: a runtime, then one listing that checks the
    /// bucket answers.
    #[allow(clippy::too_many_arguments)]
    fn on_store(
        store: Arc<dyn Store>,
        backend: &'static str,
        name: String,
        bucket: &str,
        prefix: &str,
        part_size: usize,
        copy_limit: u64,
        key_id: Option<&str>,
    ) -> Result<S3> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("regstore-s3")
            .enable_all()
            .build()
            .map_err(|e| Error::io("open", &name, e))?;
        let s3 = S3 {
            store,
            backend,
            rt: Arc::new(rt),
            bucket: bucket.to_owned(),
            prefix: prefix.to_owned(),
            part_size,
            copy_limit,
            requests: Arc::default(),
        };
        let probe = s3.dir_path(&Key::root());
        s3.requests.listed(0);
        s3.rt
            .block_on(s3.store.list_with_delimiter(probe.as_ref()))
            .map_err(|e| {
                let err = map_err("open", &name, e);
                match err.kind() {
                    ErrorKind::NotFound => Error::new(
                        ErrorKind::NotFound,
                        "open",
                        &name,
                        format!("bucket {bucket} does not exist"),
                    )
                    .with_source(err),
                    ErrorKind::PermissionDenied => Error::new(
                        ErrorKind::PermissionDenied,
                        "open",
                        &name,
                        format!(
                            "the server refused the credentials (access key id {}) for bucket {bucket}",
                            key_id.unwrap_or("none"),
                        ),
                    )
                    .with_source(err),
                    _ => err,
                }
            })?;
        Ok(s3)
    }
}

/// The driver's name for a store (a `dyn Store` has no `Debug`).
impl fmt::Debug for S3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3")
            .field("backend", &self.backend)
            .field("bucket", &self.bucket)
            .field("prefix", &self.prefix)
            .field("part_size", &self.part_size)
            .finish_non_exhaustive()
    }
}

impl S3 {
    /// The requests this driver and its clones sent so far, by kind.
    pub fn requests(&self) -> RequestCounts {
        self.requests.snapshot()
    }

    /// The bucket this key space lives in.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn path(&self, key: &Key) -> Path {
        match (self.prefix.is_empty(), key.is_root()) {
            (true, _) => Path::from(key.relative()),
            (false, true) => Path::from(self.prefix.as_str()),
            (false, false) => Path::from(format!("{}/{}", self.prefix, key.relative())),
        }
    }

    /// The listing prefix of a directory (`None`: the whole bucket).
    fn dir_path(&self, key: &Key) -> Option<Path> {
        if key.is_root() && self.prefix.is_empty() {
            None
        } else {
            Some(self.path(key))
        }
    }

    fn key_of(&self, p: &Path) -> Result<Key> {
        let s = p.as_ref();
        let rel = if self.prefix.is_empty() {
            Some(s)
        } else {
            s.strip_prefix(self.prefix.as_str())
                .and_then(|r| r.strip_prefix('/'))
        };
        rel.and_then(|r| Key::parse(&format!("/{r}")).ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupt,
                    "list",
                    s,
                    "an object whose name is not a key of this store",
                )
            })
    }

    fn head(&self, op: &'static str, key: &Key) -> Result<Option<object_store::ObjectMeta>> {
        if key.is_root() {
            return Ok(None);
        }
        self.requests.count(Request::Head);
        match self.rt.block_on(self.store.head(&self.path(key))) {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(map_err(op, key, e)),
        }
    }

    /// Every object below `key` (not `key` itself).
    fn objects_below(&self, op: &'static str, key: &Key) -> Result<Vec<object_store::ObjectMeta>> {
        let prefix = self.dir_path(key);
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut s = self.store.list(prefix.as_ref());
            let mut seen = 0;
            while let Some(m) = s.next().await {
                let m = m.map_err(|e| {
                    self.requests.listed(seen);
                    map_err(op, key, e)
                })?;
                seen += 1;
                if Some(&m.location) != prefix.as_ref() {
                    out.push(m);
                }
            }
            self.requests.listed(seen);
            Ok(out)
        })
    }

    fn is_dir(&self, op: &'static str, key: &Key) -> Result<bool> {
        if key.is_root() {
            return Ok(true);
        }
        let prefix = self.dir_path(key);
        self.requests.listed(1);
        self.rt.block_on(async {
            let mut s = self.store.list(prefix.as_ref());
            match s.next().await {
                Some(Ok(_)) => Ok(true),
                Some(Err(e)) => Err(map_err(op, key, e)),
                None => Ok(false),
            }
        })
    }

    /// A file cannot sit below a file nor replace a directory: one concurrent round of
    /// HEADs of the ancestors and a listing of the key.
    fn check_place(&self, op: &'static str, key: &Key) -> Result<()> {
        let mut ancestors = Vec::new();
        let mut p = key.parent();
        while let Some(dir) = p {
            if !dir.is_root() {
                ancestors.push(dir.clone());
            }
            p = dir.parent();
        }
        for _ in &ancestors {
            self.requests.count(Request::Head);
        }
        self.requests.listed(1);
        let heads = ancestors.iter().map(|a| {
            let path = self.path(a);
            let store = self.store.clone();
            async move { store.head(&path).await }
        });
        let (results, is_dir) = self.rt.block_on(async {
            let dir = async {
                let prefix = self.dir_path(key);
                let mut s = self.store.list(prefix.as_ref());
                s.next().await.transpose()
            };
            futures_util::join!(futures_util::future::join_all(heads), dir)
        });
        for (a, r) in ancestors.iter().zip(results) {
            match r {
                Ok(_) => return Err(invalid(op, key, format!("{a} is a file"))),
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(map_err(op, key, e)),
            }
        }
        match is_dir {
            Ok(Some(_)) => Err(invalid(op, key, "is a directory")),
            Ok(None) => Ok(()),
            Err(e) => Err(map_err(op, key, e)),
        }
    }

    fn delete_paths(&self, op: &'static str, key: &Key, paths: Vec<Path>) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        self.requests.deleted(paths.len() as u64);
        self.rt.block_on(async {
            let input = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
            let mut s = self.store.delete_stream(input);
            while let Some(r) = s.next().await {
                match r {
                    Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(e) => return Err(map_err(op, key, e)),
                }
            }
            Ok(())
        })
    }
}

impl StorageDriver for S3 {
    fn name(&self) -> &'static str {
        self.backend
    }

    fn get_content(&self, key: &Key) -> Result<Vec<u8>> {
        if key.is_root() {
            return Err(not_found("get", key));
        }
        let path = self.path(key);
        self.requests.count(Request::Get);
        self.rt
            .block_on(async { self.store.get(&path).await?.bytes().await })
            .map(|b| b.to_vec())
            .map_err(|e| map_err("get", key, e))
    }

    fn put_content(&self, key: &Key, data: &[u8]) -> Result<()> {
        if key.is_root() {
            return Err(invalid("put", key, "the root is a directory"));
        }
        self.check_place("put", key)?;
        let payload = PutPayload::from(data.to_vec());
        self.requests.count(Request::Put);
        self.rt
            .block_on(self.store.put(&self.path(key), payload))
            .map(|_| ())
            .map_err(|e| map_err("put", key, e))
    }

    fn reader(&self, key: &Key, offset: u64) -> Result<Box<dyn Read + Send>> {
        let path = self.path(key);
        let range = if offset == 0 {
            None
        } else {
            let size = self
                .head("read", key)?
                .ok_or_else(|| not_found("read", key))?
                .size;
            if offset > size {
                return Err(invalid("read", key, "offset beyond the end"));
            }
            if offset == size {
                return Ok(Box::new(io::empty()));
            }
            Some(GetRange::Offset(offset))
        };
        if key.is_root() {
            return Err(not_found("read", key));
        }
        let opts = GetOptions {
            range,
            ..GetOptions::default()
        };
        self.requests.count(Request::Get);
        let got = self
            .rt
            .block_on(self.store.get_opts(&path, opts))
            .map_err(|e| map_err("read", key, e))?;
        Ok(Box::new(ObjectReader::new(
            self.rt.clone(),
            got.into_stream(),
            key.clone(),
        )))
    }

    fn writer(&self, key: &Key, append: bool) -> Result<Box<dyn FileWriter>> {
        if key.is_root() {
            return Err(invalid("writer", key, "the root is a directory"));
        }
        self.check_place("writer", key)?;
        let mut w = ObjectWriter::new(self.clone(), key.clone(), self.path(key));
        if append && self.head("writer", key)?.is_some_and(|m| m.size > 0) {
            let mut r = self.reader(key, 0)?;
            io::copy(&mut r, &mut w)
                .map_err(|e| cargohold_core::error::from_io_error("writer", key, e))?;
        }
        Ok(Box::new(w))
    }

    fn stat(&self, key: &Key) -> Result<FileInfo> {
        if let Some(m) = self.head("stat", key)? {
            return Ok(FileInfo {
                key: key.clone(),
                size: m.size,
                is_dir: false,
                modified: Some(SystemTime::from(m.last_modified)),
            });
        }
        if self.is_dir("stat", key)? {
            return Ok(FileInfo {
                key: key.clone(),
                size: 0,
                is_dir: true,
                modified: None,
            });
        }
        Err(not_found("stat", key))
    }

    fn list(&self, key: &Key) -> Result<Vec<Key>> {
        let prefix = self.dir_path(key);
        let r = self
            .rt
            .block_on(self.store.list_with_delimiter(prefix.as_ref()))
            .map_err(|e| map_err("list", key, e))?;
        self.requests
            .listed((r.common_prefixes.len() + r.objects.len()) as u64);
        let mut out = r
            .common_prefixes
            .iter()
            .chain(r.objects.iter().map(|m| &m.location))
            .filter(|p| Some(*p) != prefix.as_ref())
            .map(|p| self.key_of(p))
            .collect::<Result<Vec<Key>>>()?;
        if out.is_empty() && !key.is_root() {
            return Err(not_found("list", key));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        if from.is_root() || to.is_root() || to.is_below(from) || to == from {
            return Err(invalid("move", from, format!("cannot move to {to}")));
        }
        let from_is_file = self.head("move", from)?.is_some();
        let sources: Vec<(Path, Path)> = if from_is_file {
            vec![(self.path(from), self.path(to))]
        } else {
            let below = self.objects_below("move", from)?;
            if below.is_empty() {
                return Err(not_found("move", from));
            }
            below
                .iter()
                .map(|m| {
                    let k = self.key_of(&m.location)?;
                    let new = Key::parse(&format!("{}{}", to, &k.as_str()[from.as_str().len()..]))?;
                    Ok((m.location.clone(), self.path(&new)))
                })
                .collect::<Result<_>>()?
        };
        // The destination is replaced whole: what was below it goes first.
        let mut old: Vec<Path> = self
            .objects_below("move", to)?
            .into_iter()
            .map(|m| m.location)
            .collect();
        if !from_is_file && self.head("move", to)?.is_some() {
            old.push(self.path(to));
        }
        self.delete_paths("move", to, old)?;
        if from_is_file
            && let Some(m) = self.head("move", from)?
            && m.size > self.copy_limit
        {
            // Too big for CopyObject: through this process, as a multipart upload.
            let mut r = self.reader(from, 0)?;
            let mut w = ObjectWriter::new(self.clone(), to.clone(), self.path(to));
            io::copy(&mut r, &mut w)
                .map_err(|e| cargohold_core::error::from_io_error("move", from, e))?;
            Box::new(w).commit()?;
            return self.delete_paths("move", from, vec![self.path(from)]);
        }
        self.rt.block_on(async {
            for (src, dst) in &sources {
                self.requests.count(Request::Copy);
                self.store
                    .copy(src, dst)
                    .await
                    .map_err(|e| map_err("move", from, e))?;
            }
            Ok::<_, Error>(())
        })?;
        self.delete_paths("move", from, sources.into_iter().map(|(s, _)| s).collect())
    }

    fn delete(&self, key: &Key) -> Result<()> {
        if key.is_root() {
            return Err(invalid("delete", key, "the root cannot be deleted"));
        }
        let mut paths: Vec<Path> = self
            .objects_below("delete", key)?
            .into_iter()
            .map(|m| m.location)
            .collect();
        if self.head("delete", key)?.is_some() {
            paths.push(self.path(key));
        }
        if paths.is_empty() {
            return Err(not_found("delete", key));
        }
        self.delete_paths("delete", key, paths)
    }

    fn delete_many(&self, keys: &[Key]) -> Result<()> {
        let Some(first) = keys.first() else {
            return Ok(());
        };
        if keys.iter().any(Key::is_root) {
            return Err(invalid("delete", first, "the root cannot be deleted"));
        }
        // The deepest directory holding every key: one listing below it finds each key
        // and everything under it.
        let mut common = first.parent().unwrap_or_else(Key::root);
        for k in &keys[1..] {
            while !(k.is_below(&common)) {
                common = common.parent().unwrap_or_else(Key::root);
            }
        }
        let wanted: std::collections::BTreeSet<&str> = keys.iter().map(Key::as_str).collect();
        let hit = |k: &Key| {
            let mut p = Some(k.clone());
            while let Some(c) = p {
                if wanted.contains(c.as_str()) {
                    return true;
                }
                if c == common {
                    return false;
                }
                p = c.parent();
            }
            false
        };
        let mut doomed = Vec::new();
        for m in self.objects_below("delete", &common)? {
            if hit(&self.key_of(&m.location)?) {
                doomed.push(m.location);
            }
        }
        self.delete_paths("delete", &common, doomed)
    }

    fn atomic_writes(&self) -> bool {
        true
    }

    fn multipart(&self) -> Option<&dyn crate::MultipartDriver> {
        Some(self)
    }

    fn walk(&self, key: &Key) -> Result<Vec<FileInfo>> {
        if self.head("walk", key)?.is_some() {
            return Err(not_found("walk", key));
        }
        let objects = self.objects_below("walk", key)?;
        if objects.is_empty() && !key.is_root() {
            return Err(not_found("walk", key));
        }
        let mut out: BTreeMap<Key, FileInfo> = BTreeMap::new();
        for m in objects {
            let k = self.key_of(&m.location)?;
            let mut p = k.parent();
            while let Some(dir) = p {
                if !dir.is_below(key) {
                    break;
                }
                p = dir.parent();
                out.entry(dir.clone()).or_insert(FileInfo {
                    key: dir,
                    size: 0,
                    is_dir: true,
                    modified: None,
                });
            }
            out.insert(
                k.clone(),
                FileInfo {
                    key: k,
                    size: m.size,
                    is_dir: false,
                    modified: Some(SystemTime::from(m.last_modified)),
                },
            );
        }
        Ok(out.into_values().collect())
    }
}

impl crate::MultipartDriver for S3 {
    fn min_part_size(&self) -> usize {
        MIN_PART_SIZE
    }

    fn part_size(&self) -> usize {
        self.part_size
    }

    fn create_multipart(&self, key: &Key) -> Result<String> {
        if key.is_root() {
            return Err(invalid("multipart", key, "the root is a directory"));
        }
        self.check_place("multipart", key)?;
        self.requests.count(Request::Multipart);
        self.rt
            .block_on(self.store.create_multipart(&self.path(key)))
            .map_err(|e| map_err("multipart", key, e))
    }

    fn put_part(&self, key: &Key, id: &str, index: usize, data: Vec<u8>) -> Result<String> {
        self.requests.count(Request::Multipart);
        self.rt
            .block_on(self.store.put_part(
                &self.path(key),
                &id.to_owned(),
                index,
                PutPayload::from(data),
            ))
            .map(|p| p.content_id)
            .map_err(|e| map_err("put part", key, e))
    }

    fn complete_multipart(&self, key: &Key, id: &str, parts: &[String]) -> Result<()> {
        self.requests.count(Request::Multipart);
        let parts = parts
            .iter()
            .map(|p| PartId {
                content_id: p.clone(),
            })
            .collect();
        self.rt
            .block_on(
                self.store
                    .complete_multipart(&self.path(key), &id.to_owned(), parts),
            )
            .map(|_| ())
            .map_err(|e| map_err("complete", key, e))
    }

    fn abort_multipart(&self, key: &Key, id: &str) -> Result<()> {
        self.requests.count(Request::Multipart);
        match self
            .rt
            .block_on(self.store.abort_multipart(&self.path(key), &id.to_owned()))
        {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = map_err("abort", key, e);
                if err.kind() == ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}
