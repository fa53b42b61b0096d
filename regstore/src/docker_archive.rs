//! Import from and export to docker-archive tars, the format of `docker save` /
//! `docker load` and of `skopeo copy docker-archive:FILE`.
//!
//! An archive holds `manifest.json` (`[{"Config": ..., "RepoTags": [...], "Layers":
//! [...]}]`), the image config and one uncompressed layer tar per layer. Docker ≤ 24 and
//! skopeo name members `<hex>.json`, `<hex>.tar` or `<id>/layer.tar` (often a symlink to
//! another member); Docker ≥ 25 names them `blobs/sha256/<hex>` (an OCI layout inside
//! the tar). Both are read through `manifest.json`.
//!
//! Rules of import: the archive is untrusted. It is indexed in one pass without being
//! extracted (a member is then read at its offset); a member name or link that leaves
//! the archive (`..`, absolute) is `PathEscape`, a member named twice or a link loop is
//! `InvalidArgument`, a missing member is `NotFound`, all before anything is stored.
//! Every layer must hash to its `rootfs.diff_ids` entry (`DigestMismatch`). A plain
//! layer is stored as is with `application/vnd.docker.image.rootfs.diff.tar` (its digest
//! is its diff_id), a gzip one as is with `...diff.tar.gzip`, a zstd one decompressed
//! (Docker schema 2 has no zstd layer type); bzip2 and xz are `Unsupported`. The image is
//! stored as a Docker schema 2 manifest and tagged last: on any failure nothing is
//! tagged and the blobs this import linked into the repository are unlinked again.
//!
//! Rules of export: the file appears whole or not at all (temporary file, fsync,
//! rename). Members are written in a fixed order with fixed headers (owner 0, time 0),
//! so the same image always gives the same bytes: `<config hex>.json`, one `<diff_id
//! hex>.tar` per distinct layer (gzip and zstd blobs are decompressed on the way out and
//! must hash to their diff_id and their blob digest), the legacy `<id>/{VERSION,json,
//! layer.tar}` entries (ids are chain IDs, `layer.tar` a symlink), `manifest.json` and
//! `repositories`. From a multi-platform index the child for the requested
//! [`Platform`] (default: this host's) is exported.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::Path;

use cargohold_core::atomic::AtomicFile;
use cargohold_core::root::Dir;
use cargohold_core::{Algorithm, Digest, DigestReader, Error, ErrorKind, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::manifests::{MediaType, classify};
use crate::oci_layout::{Progress, Transfer};
use crate::registry::Registry;

/// Layer media type of an uncompressed Docker layer.
pub const LAYER_TAR: &str = "application/vnd.docker.image.rootfs.diff.tar";
/// Layer media type of a gzip Docker layer.
pub const LAYER_TAR_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// Media type of a Docker image config.
pub const CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// Largest `manifest.json` or config read into memory.
const MAX_JSON: u64 = 8 << 20;
/// Most members an archive may have.
const MAX_MEMBERS: usize = 1_000_000;
/// Most links followed to reach one member.
const MAX_HOPS: usize = 16;
const BUF: usize = 1 << 20;

fn bad(file: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        "docker archive",
        file.display(),
        why,
    )
}

fn escape(name: &str) -> Error {
    Error::new(
        ErrorKind::PathEscape,
        "docker archive",
        name,
        "member path leaves the archive",
    )
}

/// A platform to pick from a multi-platform index (`os/architecture[/variant]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// `linux`, ...
    pub os: String,
    /// `amd64`, `arm64`, ... (Go's names).
    pub architecture: String,
    /// `v8`, `v7`, ...; `None` matches any.
    pub variant: Option<String>,
}

impl Platform {
    /// This host: linux and the Go name of this machine's architecture.
    pub fn host() -> Platform {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform {
            os: "linux".into(),
            architecture: architecture.into(),
            variant: None,
        }
    }

    /// Parse `os/architecture[/variant]` (as `--platform` takes it).
    pub fn parse(s: &str) -> Result<Platform> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &&str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric());
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: None,
            }),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Platform {
                os: (*os).into(),
                architecture: (*arch).into(),
                variant: Some((*v).into()),
            }),
            _ => Err(Error::new(
                ErrorKind::InvalidArgument,
                "platform",
                s,
                "expected os/architecture[/variant]",
            )),
        }
    }

    fn matches(&self, p: &Value) -> bool {
        p["os"] == self.os.as_str()
            && p["architecture"] == self.architecture.as_str()
            && self
                .variant
                .as_ref()
                .is_none_or(|v| p["variant"] == v.as_str())
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(v) => write!(f, "/{v}"),
            None => Ok(()),
        }
    }
}

/// One image of an archive's `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveImage {
    /// The config member.
    #[serde(rename = "Config")]
    pub config: String,
    /// The names the image carries (`name:tag`).
    #[serde(rename = "RepoTags", default, deserialize_with = "null_as_empty")]
    pub repo_tags: Vec<String>,
    /// The layer members, bottom first.
    #[serde(rename = "Layers")]
    pub layers: Vec<String>,
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// A member of the archive: data at an offset, or a link to another member.
#[derive(Debug, Clone)]
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

/// An archive indexed in one pass: member names (normalised) to where their data is.
#[derive(Debug)]
struct Archive {
    file: File,
    members: HashMap<String, Member>,
}

/// `a/./b//c` → `a/b/c`; `..` or a leading `/` is `PathEscape`.
fn normalise(name: &str) -> Result<String> {
    if name.starts_with('/') {
        return Err(escape(name));
    }
    let mut parts = Vec::new();
    for p in name.split('/') {
        match p {
            "" | "." => {}
            ".." => return Err(escape(name)),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// The member a symlink at `at` pointing to `target` names, confined to the archive.
fn link_target(at: &str, target: &str) -> Result<String> {
    if target.starts_with('/') {
        return Err(escape(target));
    }
    let mut parts: Vec<&str> = at.split('/').collect();
    parts.pop();
    for p in target.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(escape(target));
                }
            }
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

impl Archive {
    fn open(path: &Path) -> Result<Archive> {
        let file = File::open(path).map_err(|e| Error::io("docker archive", path.display(), e))?;
        let mut members = HashMap::new();
        let mut tar = tar::Archive::new(&file);
        let ioerr = |e: io::Error| bad(path, format!("not a readable tar: {e}"));
        for entry in tar.entries_with_seek().map_err(ioerr)? {
            let entry = entry.map_err(ioerr)?;
            let raw = entry.path_bytes();
            let name = std::str::from_utf8(&raw)
                .map_err(|_| bad(path, "a member name is not UTF-8"))?
                .to_owned();
            let norm = normalise(&name)?;
            let link = || -> Result<String> {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| bad(path, format!("link {name} has no target")))?;
                std::str::from_utf8(&target)
                    .map(str::to_owned)
                    .map_err(|_| bad(path, "a link target is not UTF-8"))
            };
            let member = match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => Member::Data {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                },
                tar::EntryType::Symlink => Member::Link(link_target(&norm, &link()?)?),
                tar::EntryType::Link => Member::Link(normalise(&link()?)?),
                // Directories and anything else are never an image's part.
                _ => continue,
            };
            if norm.is_empty() || members.insert(norm.clone(), member).is_some() {
                return Err(bad(
                    path,
                    format!("member {name:?} appears twice or is empty"),
                ));
            }
            if members.len() > MAX_MEMBERS {
                return Err(Error::new(
                    ErrorKind::LimitExceeded,
                    "docker archive",
                    path.display(),
                    "too many members",
                ));
            }
        }
        Ok(Archive { file, members })
    }

    /// Offset and size of member `name` (a name from `manifest.json`), links followed.
    fn locate(&self, name: &str) -> Result<(u64, u64)> {
        let mut cur = normalise(name)?;
        for _ in 0..MAX_HOPS {
            match self.members.get(&cur) {
                Some(Member::Data { offset, size }) => return Ok((*offset, *size)),
                Some(Member::Link(to)) => cur = to.clone(),
                None => {
                    return Err(Error::new(
                        ErrorKind::NotFound,
                        "docker archive",
                        name,
                        "no such member in the archive",
                    ));
                }
            }
        }
        Err(Error::new(
            ErrorKind::InvalidArgument,
            "docker archive",
            name,
            "links loop or nest too deep",
        ))
    }

    fn reader(&self, (offset, size): (u64, u64)) -> MemberReader<'_> {
        MemberReader {
            file: &self.file,
            pos: offset,
            end: offset + size,
        }
    }

    fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let at = self.locate(name)?;
        if at.1 > MAX_JSON {
            return Err(Error::new(
                ErrorKind::LimitExceeded,
                "docker archive",
                name,
                "member larger than 8 MiB",
            ));
        }
        let mut out = Vec::with_capacity(at.1 as usize);
        self.reader(at)
            .read_to_end(&mut out)
            .map_err(|e| Error::io("docker archive", name, e))?;
        if out.len() as u64 != at.1 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "docker archive",
                name,
                "member truncated",
            ));
        }
        Ok(out)
    }
}

/// Reads one member's bytes with positioned reads (the archive is never seeked).
#[derive(Debug)]
struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf.len().min((self.end - self.pos) as usize);
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "archive ends inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// The compression a stream starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

fn sniff(head: &[u8], what: &str) -> Result<Compression> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Compression::Gzip)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Compression::Zstd)
    } else if head.starts_with(b"BZh") || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z']) {
        Err(Error::new(
            ErrorKind::Unsupported,
            "docker archive",
            what,
            "bzip2 and xz layers are not supported",
        ))
    } else {
        Ok(Compression::None)
    }
}

/// The `rootfs.diff_ids` of a config.
fn diff_ids(config: &Value, ctx: &str) -> Result<Vec<Digest>> {
    config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidArgument,
                "docker archive",
                ctx,
                "config has no rootfs.diff_ids",
            )
        })?
        .iter()
        .map(|d| Digest::parse(d.as_str().unwrap_or("")))
        .collect()
}

/// `docker.io/library/x:t` and `x:t` name the same image.
fn short_name(s: &str) -> &str {
    let s = s.strip_prefix("docker.io/").unwrap_or(s);
    s.strip_prefix("library/").unwrap_or(s)
}

/// The images listed in the archive's `manifest.json`.
pub fn images(file: &Path) -> Result<Vec<ArchiveImage>> {
    read_manifest(&Archive::open(file)?, file)
}

fn read_manifest(archive: &Archive, file: &Path) -> Result<Vec<ArchiveImage>> {
    let bytes = archive.read_small("manifest.json").map_err(|e| {
        if e.kind() == ErrorKind::NotFound {
            bad(file, "no manifest.json: not a docker-archive")
        } else {
            e
        }
    })?;
    let images: Vec<ArchiveImage> =
        serde_json::from_slice(&bytes).map_err(|e| bad(file, format!("manifest.json: {e}")))?;
    Ok(images)
}

/// Pick the image named `name` (or the only one).
fn pick(images: Vec<ArchiveImage>, file: &Path, name: Option<&str>) -> Result<ArchiveImage> {
    let choices = || {
        let all: Vec<String> = images.iter().flat_map(|i| i.repo_tags.clone()).collect();
        all.join(", ")
    };
    let found: Vec<&ArchiveImage> = match name {
        Some(n) => images
            .iter()
            .filter(|i| i.repo_tags.iter().any(|t| short_name(t) == short_name(n)))
            .collect(),
        None => images.iter().collect(),
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] if name.is_some() => Err(Error::new(
            ErrorKind::NotFound,
            "docker archive",
            file.display(),
            format!(
                "no image named {}; the archive has: {}",
                name.unwrap_or(""),
                choices()
            ),
        )),
        [] => Err(bad(file, "the archive lists no image")),
        _ => Err(bad(
            file,
            format!("several images in the archive, name one of: {}", choices()),
        )),
    }
}

/// Import the image named `name` (a `RepoTags` entry; or the only image) from the
/// docker-archive `file` into `repo:tag`. See the module doc for the rules.
pub fn import(
    reg: &Registry,
    file: &Path,
    name: Option<&str>,
    repo: &str,
    tag: &str,
    progress: Progress<'_>,
) -> Result<Transfer> {
    crate::names::check_repository(repo)?;
    crate::names::check_tag(tag)?;
    let archive = Archive::open(file)?;
    let image = pick(read_manifest(&archive, file)?, file, name)?;
    let config_bytes = archive.read_small(&image.config)?;
    let config_digest = Digest::sha256(&config_bytes);
    let stem = image.config.rsplit('/').next().unwrap_or("");
    let stem = stem.strip_suffix(".json").unwrap_or(stem);
    if stem.len() == 64
        && stem.bytes().all(|b| b.is_ascii_hexdigit())
        && stem != config_digest.hex()
    {
        return Err(Error::new(
            ErrorKind::DigestMismatch,
            "docker archive",
            &image.config,
            format!("config content is {config_digest}"),
        ));
    }
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| bad(file, format!("config {}: {e}", image.config)))?;
    let ids = diff_ids(&config, &image.config)?;
    if ids.len() != image.layers.len() {
        return Err(bad(
            file,
            format!(
                "{} layers but {} diff_ids in the config",
                image.layers.len(),
                ids.len()
            ),
        ));
    }
    // Every member is found before anything is stored.
    let places: Vec<(u64, u64)> = image
        .layers
        .iter()
        .map(|l| archive.locate(l))
        .collect::<Result<_>>()?;
    let mut linked = Vec::new();
    let result = store_image(
        reg,
        &archive,
        repo,
        tag,
        &config_bytes,
        &config_digest,
        &image,
        &places,
        &ids,
        &mut linked,
        progress,
    );
    if result.is_err() {
        for d in &linked {
            let _ = reg.delete_blob(repo, d);
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn store_image(
    reg: &Registry,
    archive: &Archive,
    repo: &str,
    tag: &str,
    config_bytes: &[u8],
    config_digest: &Digest,
    image: &ArchiveImage,
    places: &[(u64, u64)],
    ids: &[Digest],
    linked: &mut Vec<Digest>,
    progress: Progress<'_>,
) -> Result<Transfer> {
    let mut t = Transfer {
        digest: config_digest.clone(),
        media_type: MediaType::DockerManifest,
        manifests: 0,
        blobs_copied: 0,
        blobs_present: 0,
        bytes: 0,
    };
    if present(reg, repo, config_digest)? {
        t.blobs_present += 1;
    } else {
        upload(reg, repo, config_bytes, config_digest, linked)?;
        t.blobs_copied += 1;
        t.bytes += config_bytes.len() as u64;
    }
    progress(config_digest, config_bytes.len() as u64);
    let mut layers = Vec::new();
    for ((name, at), diff_id) in image.layers.iter().zip(places).zip(ids) {
        let (desc, copied) = store_layer(reg, archive, repo, name, *at, diff_id, linked)?;
        if copied {
            t.blobs_copied += 1;
            t.bytes += desc.1;
        } else {
            t.blobs_present += 1;
        }
        progress(&desc.0, desc.1);
        layers.push(json!({"mediaType": desc.2, "size": desc.1, "digest": desc.0.to_string()}));
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::DockerManifest.as_str(),
        "config": {"mediaType": CONFIG, "size": config_bytes.len(), "digest": config_digest.to_string()},
        "layers": layers,
    });
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, "docker archive", repo, e))?;
    let digest = Digest::sha256(&bytes);
    reg.put_manifest(
        repo,
        &digest.to_string(),
        &bytes,
        Some(MediaType::DockerManifest.as_str()),
    )?;
    t.manifests = 1;
    reg.tag(repo, tag, &digest)?;
    t.digest = digest;
    Ok(t)
}

fn present(reg: &Registry, repo: &str, d: &Digest) -> Result<bool> {
    match reg.stat_blob(repo, d) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Upload `r` as blob `expected` (the digest is checked by the commit).
fn upload(
    reg: &Registry,
    repo: &str,
    r: impl Read,
    expected: &Digest,
    linked: &mut Vec<Digest>,
) -> Result<u64> {
    let desc = reg.put_blob_as(repo, expected, None, r)?;
    linked.push(expected.clone());
    Ok(desc.size)
}

/// Store one layer member; returns (blob digest, size, media type) and whether it was
/// copied (false: the repository had it).
fn store_layer(
    reg: &Registry,
    archive: &Archive,
    repo: &str,
    name: &str,
    at: (u64, u64),
    diff_id: &Digest,
    linked: &mut Vec<Digest>,
) -> Result<((Digest, u64, &'static str), bool)> {
    let mut head = [0u8; 6];
    let n = archive
        .reader(at)
        .read(&mut head)
        .map_err(|e| Error::io("docker archive", name, e))?;
    let mismatch = |got: &Digest| {
        Error::new(
            ErrorKind::DigestMismatch,
            "docker archive",
            name,
            format!("layer is {got}, the config says {diff_id}"),
        )
    };
    match sniff(&head[..n], name)? {
        Compression::None => {
            if present(reg, repo, diff_id)? {
                return Ok(((diff_id.clone(), at.1, LAYER_TAR), false));
            }
            let size = upload(reg, repo, archive.reader(at), diff_id, linked)?;
            Ok(((diff_id.clone(), size, LAYER_TAR), true))
        }
        Compression::Gzip => {
            // One pass hashes both the blob and what it decompresses to.
            let mut raw = DigestReader::new(archive.reader(at), Algorithm::Sha256);
            let mut dec = flate2::read::MultiGzDecoder::new(&mut raw);
            let got = cargohold_core::digest::digest_reader(&mut dec, Algorithm::Sha256)?.0;
            drop(dec);
            io::copy(&mut raw, &mut io::sink())
                .map_err(|e| Error::io("docker archive", name, e))?;
            if &got != diff_id {
                return Err(mismatch(&got));
            }
            let (blob, size) = raw.digest();
            if present(reg, repo, &blob)? {
                return Ok(((blob, size, LAYER_TAR_GZIP), false));
            }
            upload(reg, repo, archive.reader(at), &blob, linked)?;
            Ok(((blob, size, LAYER_TAR_GZIP), true))
        }
        Compression::Zstd => {
            if present(reg, repo, diff_id)? {
                let size = reg.stat_blob(repo, diff_id)?.size;
                return Ok(((diff_id.clone(), size, LAYER_TAR), false));
            }
            let dec = zstd::stream::read::Decoder::new(archive.reader(at))
                .map_err(|e| Error::io("docker archive", name, e))?;
            let size = upload(reg, repo, dec, diff_id, linked)?;
            Ok(((diff_id.clone(), size, LAYER_TAR), true))
        }
    }
}

/// A tar being written member by member with fixed headers.
#[derive(Debug)]
struct TarOut {
    f: AtomicFile,
    pos: u64,
    ctx: String,
}

fn header(kind: tar::EntryType, name: &str, size: u64, mode: u32) -> Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_path(name)
        .map_err(|e| Error::io("docker archive", name, e))?;
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    Ok(h)
}

impl TarOut {
    fn write(&mut self, b: &[u8]) -> Result<()> {
        self.f
            .file()
            .write_all_at(b, self.pos)
            .map_err(|e| Error::io("docker archive", &self.ctx, e))?;
        self.pos += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> Result<()> {
        let rest = (512 - self.pos % 512) % 512;
        self.write(&vec![0u8; rest as usize])
    }

    fn file(&mut self, name: &str, data: &[u8]) -> Result<()> {
        let h = header(tar::EntryType::Regular, name, data.len() as u64, 0o644)?;
        self.write(h.as_bytes())?;
        self.write(data)?;
        self.pad()
    }

    fn dir(&mut self, name: &str) -> Result<()> {
        let h = header(tar::EntryType::Directory, &format!("{name}/"), 0, 0o755)?;
        self.write(h.as_bytes())
    }

    fn symlink(&mut self, name: &str, target: &str) -> Result<()> {
        let mut h = header(tar::EntryType::Symlink, name, 0, 0o777)?;
        h.set_link_name(target)
            .map_err(|e| Error::io("docker archive", name, e))?;
        h.set_cksum();
        self.write(h.as_bytes())
    }

    /// A member whose size is known only at its end: the header is written again then.
    fn stream(&mut self, name: &str, r: &mut dyn Read) -> Result<u64> {
        let at = self.pos;
        self.write(header(tar::EntryType::Regular, name, 0, 0o644)?.as_bytes())?;
        let mut buf = vec![0u8; BUF];
        let mut n = 0u64;
        loop {
            let got = match r.read(&mut buf) {
                Ok(0) => break,
                Ok(got) => got,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(cargohold_core::error::from_io_error("export", name, e)),
            };
            self.write(&buf[..got])?;
            n += got as u64;
        }
        let h = header(tar::EntryType::Regular, name, n, 0o644)?;
        self.f
            .file()
            .write_all_at(h.as_bytes(), at)
            .map_err(|e| Error::io("docker archive", name, e))?;
        self.pad()?;
        Ok(n)
    }

    fn finish(mut self) -> Result<()> {
        self.write(&[0u8; 1024])?;
        self.f.commit()
    }
}

/// The image manifest to export: `reference` itself, or its child for `platform`.
fn platform_manifest(
    reg: &Registry,
    repo: &str,
    reference: &str,
    platform: &Platform,
) -> Result<(crate::Manifest, Value)> {
    let m = reg.get_manifest(repo, reference)?;
    let (mt, v) = classify(&m.bytes, Some(m.media_type.as_str()))?;
    if !mt.is_index() {
        return Ok((m, v));
    }
    let children = v["manifests"].as_array().cloned().unwrap_or_default();
    let child = children
        .iter()
        .find(|c| platform.matches(&c["platform"]))
        .ok_or_else(|| {
            let have: Vec<String> = children
                .iter()
                .map(|c| {
                    let p = &c["platform"];
                    format!(
                        "{}/{}",
                        p["os"].as_str().unwrap_or("?"),
                        p["architecture"].as_str().unwrap_or("?")
                    )
                })
                .collect();
            Error::new(
                ErrorKind::NotFound,
                "docker archive",
                format!("{repo}:{reference}"),
                format!("no image for {platform}; the index has {}", have.join(", ")),
            )
        })?;
    let d = child["digest"].as_str().unwrap_or("");
    let m = reg.get_manifest(repo, d)?;
    let (mt, v) = classify(&m.bytes, Some(m.media_type.as_str()))?;
    if mt.is_index() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "docker archive",
            d,
            "an index inside an index",
        ));
    }
    Ok((m, v))
}

#[derive(Serialize)]
struct ManifestEntry<'a> {
    #[serde(rename = "Config")]
    config: &'a str,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<&'a str>,
    #[serde(rename = "Layers")]
    layers: &'a [String],
}

/// Export `repo:reference` (tag or digest) as a docker-archive at `file`, named
/// `repo_tag` (`name:tag`, default `repo:reference` when `reference` is a tag). From an
/// index the child for `platform` (default: this host) is written. See the module doc.
pub fn export(
    reg: &Registry,
    repo: &str,
    reference: &str,
    file: &Path,
    repo_tag: Option<&str>,
    platform: Option<&Platform>,
    progress: Progress<'_>,
) -> Result<Transfer> {
    let host = Platform::host();
    let (m, v) = platform_manifest(reg, repo, reference, platform.unwrap_or(&host))?;
    let default_tag = format!("{repo}:{reference}");
    let repo_tag = match repo_tag {
        Some(t) => Some(t),
        None if !reference.contains(':') => Some(default_tag.as_str()),
        None => None,
    };
    let config_digest = Digest::parse(v["config"]["digest"].as_str().unwrap_or(""))?;
    let config_bytes = reg.read_blob(repo, &config_digest)?;
    let config: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| Error::new(ErrorKind::Corrupt, "docker archive", &config_digest, e))?;
    let ids = diff_ids(&config, &config_digest.to_string())?;
    let layers = v["layers"].as_array().cloned().unwrap_or_default();
    if ids.len() != layers.len() {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "docker archive",
            &m.digest,
            "the config's diff_ids do not match the layers",
        ));
    }
    let name = file
        .file_name()
        .ok_or_else(|| bad(file, "not a file name"))?;
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = Dir::open_path(parent)?;
    let mut out = TarOut {
        f: AtomicFile::new(&dir, name, 0o644)?,
        pos: 0,
        ctx: file.display().to_string(),
    };
    let mut t = Transfer {
        digest: m.digest.clone(),
        media_type: m.media_type,
        manifests: 1,
        blobs_copied: 0,
        blobs_present: 0,
        bytes: 0,
    };
    let config_name = format!("{}.json", config_digest.hex());
    out.file(&config_name, &config_bytes)?;
    t.blobs_copied += 1;
    t.bytes += config_bytes.len() as u64;
    progress(&config_digest, config_bytes.len() as u64);
    let mut names = Vec::new();
    let mut written = std::collections::HashSet::new();
    for (desc, diff_id) in layers.iter().zip(&ids) {
        let member = format!("{}.tar", diff_id.hex());
        if written.insert(diff_id.clone()) {
            let blob = Digest::parse(desc["digest"].as_str().unwrap_or(""))?;
            let n = export_layer(reg, repo, &blob, diff_id, &member, &mut out)?;
            t.blobs_copied += 1;
            t.bytes += n;
            progress(&blob, n);
        }
        names.push(member);
    }
    // The legacy layout: one directory per layer, named by its chain ID.
    let mut parent_id: Option<String> = None;
    for (member, chain) in names.iter().zip(chain_ids(&ids)) {
        let id = chain.hex().to_owned();
        out.dir(&id)?;
        out.file(&format!("{id}/VERSION"), b"1.0")?;
        let mut legacy = json!({"id": id});
        if let Some(p) = &parent_id {
            legacy["parent"] = json!(p);
        }
        out.file(&format!("{id}/json"), legacy.to_string().as_bytes())?;
        out.symlink(&format!("{id}/layer.tar"), &format!("../{member}"))?;
        parent_id = Some(id);
    }
    let entry = ManifestEntry {
        config: &config_name,
        repo_tags: repo_tag.into_iter().collect(),
        layers: &names,
    };
    let manifest = serde_json::to_vec(&[entry])
        .map_err(|e| Error::new(ErrorKind::InvalidArgument, "docker archive", repo, e))?;
    out.file("manifest.json", &manifest)?;
    if let (Some(rt), Some(top)) = (repo_tag, &parent_id) {
        let (n, tg) = match rt.rfind(':') {
            Some(i) if !rt[i + 1..].contains('/') => (&rt[..i], &rt[i + 1..]),
            _ => (rt, "latest"),
        };
        out.file("repositories", json!({n: {tg: top}}).to_string().as_bytes())?;
    }
    out.finish()?;
    Ok(t)
}

/// The OCI chain IDs of a stack of diff_ids.
fn chain_ids(ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::new();
    for d in ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => Digest::sha256(format!("{prev} {d}").as_bytes()),
        };
        out.push(next);
    }
    out
}

/// Write blob `blob` uncompressed as member `member`; it must hash to `blob` as stored
/// and to `diff_id` uncompressed. Returns the member's size.
fn export_layer(
    reg: &Registry,
    repo: &str,
    blob: &Digest,
    diff_id: &Digest,
    member: &str,
    out: &mut TarOut,
) -> Result<u64> {
    let size = reg.stat_blob(repo, blob)?.size;
    let mut head = Vec::new();
    reg.blob_reader(repo, blob, 0, Some(size.min(6)))?
        .read_to_end(&mut head)
        .map_err(|e| Error::io("docker archive", blob, e))?;
    let raw = BufReader::with_capacity(BUF, reg.blob_reader(repo, blob, 0, None)?);
    let ctx = |e: io::Error| Error::io("docker archive", blob, e);
    let comp = sniff(&head, &blob.to_string())?;
    let (n, got, raw_digest) = match comp {
        Compression::None => {
            if blob.algorithm() != Algorithm::Sha256 {
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    "docker archive",
                    blob,
                    "an uncompressed layer must be named by sha256",
                ));
            }
            let mut r = DigestReader::new(raw, Algorithm::Sha256);
            let n = out.stream(member, &mut r)?;
            let d = r.finish().1;
            (n, d.clone(), d)
        }
        Compression::Gzip => {
            let mut raw = DigestReader::new(raw, blob.algorithm());
            let mut dec = DigestReader::new(
                flate2::read::MultiGzDecoder::new(&mut raw),
                Algorithm::Sha256,
            );
            let n = out.stream(member, &mut dec)?;
            let got = dec.finish().1;
            io::copy(&mut raw, &mut io::sink()).map_err(ctx)?;
            (n, got, raw.finish().1)
        }
        Compression::Zstd => {
            let mut raw = DigestReader::new(raw, blob.algorithm());
            let dec =
                zstd::stream::read::Decoder::with_buffer(BufReader::new(&mut raw)).map_err(ctx)?;
            let mut dec = DigestReader::new(dec, Algorithm::Sha256);
            let n = out.stream(member, &mut dec)?;
            let got = dec.finish().1;
            io::copy(&mut raw, &mut io::sink()).map_err(ctx)?;
            (n, got, raw.finish().1)
        }
    };
    blob.verify("docker archive", &raw_digest)
        .map_err(|e| e.with_kind(ErrorKind::Corrupt))?;
    if &got != diff_id {
        return Err(Error::new(
            ErrorKind::Corrupt,
            "docker archive",
            blob,
            format!("decompresses to {got}, the config says {diff_id}"),
        ));
    }
    Ok(n)
}
