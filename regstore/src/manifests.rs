//! Manifests (OCI image manifest and index, Docker schema 2 manifest and manifest list),
//! tags that point at them, and referrers.
//!
//! A manifest is stored as a blob (its exact bytes, so its digest never changes) and
//! linked into the repository under `_manifests/revisions`. A put is refused with
//! `MANIFEST_BLOB_UNKNOWN` while a blob it references (config, layers without `urls`)
//! or a manifest its index lists is missing from the repository. The `subject` of a
//! manifest may be missing (the OCI spec allows pushing referrers first).
//!
//! Referrers are found by scanning the repository's manifest revisions: registry:2
//! 2.8 keeps no referrers index, and a scan can never disagree with what a real registry
//! wrote into the same root.

use cargohold_core::{Digest, ErrorKind, Result};
use serde_json::Value;

use crate::error::{ErrorCode, coded};
use crate::layout;
use crate::names::{Reference, check_repository};
use crate::registry::{Descriptor, Registry};

/// Largest manifest accepted (registry:2's limit is 4 MiB).
pub const MAX_MANIFEST: usize = 4 << 20;

/// The manifest types the store understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaType {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
}

impl MediaType {
    /// The media type string.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            MediaType::OciIndex => "application/vnd.oci.image.index.v1+json",
            MediaType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
            MediaType::DockerManifestList => {
                "application/vnd.docker.distribution.manifest.list.v2+json"
            }
        }
    }

    /// The type a media type string names, if supported.
    pub fn parse(s: &str) -> Option<MediaType> {
        [
            MediaType::OciManifest,
            MediaType::OciIndex,
            MediaType::DockerManifest,
            MediaType::DockerManifestList,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }

    /// Whether the manifest lists other manifests.
    pub fn is_index(self) -> bool {
        matches!(self, MediaType::OciIndex | MediaType::DockerManifestList)
    }
}

/// A stored manifest: its exact bytes, digest and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The type.
    pub media_type: MediaType,
    /// The digest of `bytes`.
    pub digest: Digest,
    /// The bytes as pushed.
    pub bytes: Vec<u8>,
}

fn invalid(ctx: impl std::fmt::Display, why: impl std::fmt::Display) -> cargohold_core::Error {
    coded(
        ErrorCode::ManifestInvalid,
        ErrorKind::InvalidArgument,
        "manifest",
        ctx,
        why,
    )
}

/// Parse and type a manifest: the JSON `mediaType`, the caller's `content_type`, or (for
/// OCI, where `mediaType` is optional) the shape. The two given types must agree.
pub fn classify(bytes: &[u8], content_type: Option<&str>) -> Result<(MediaType, Value)> {
    let v: Value = serde_json::from_slice(bytes).map_err(|e| invalid("json", e))?;
    if v.get("schemaVersion").and_then(Value::as_u64) != Some(2) {
        return Err(invalid("schemaVersion", "schemaVersion must be 2"));
    }
    let inner = v.get("mediaType").and_then(Value::as_str);
    let parse = |s: &str| {
        MediaType::parse(s).ok_or_else(|| {
            coded(
                ErrorCode::ManifestInvalid,
                ErrorKind::Unsupported,
                "manifest",
                s,
                "unsupported media type",
            )
        })
    };
    let mt = match (inner, content_type) {
        (Some(a), Some(b)) if a != b => {
            return Err(invalid(a, format!("content type {b} disagrees")));
        }
        (Some(a), _) | (None, Some(a)) => parse(a)?,
        (None, None) if v.get("manifests").is_some() => MediaType::OciIndex,
        (None, None) if v.get("config").is_some() => MediaType::OciManifest,
        (None, None) => return Err(invalid("mediaType", "cannot tell the manifest type")),
    };
    let field_ok = |f: &str| v.get(f).is_some_and(Value::is_array);
    if mt.is_index() && !field_ok("manifests") {
        return Err(invalid(mt.as_str(), "an index needs a manifests array"));
    }
    if !mt.is_index() && (!field_ok("layers") || !v.get("config").is_some_and(Value::is_object)) {
        return Err(invalid(mt.as_str(), "a manifest needs config and layers"));
    }
    Ok((mt, v))
}

fn descriptor_digest(d: &Value) -> Result<Digest> {
    let s = d
        .get("digest")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("descriptor", "no digest"))?;
    Digest::parse(s).map_err(|e| invalid(s, e))
}

impl Registry {
    /// Store a manifest under `reference` (a tag, or the digest of `bytes`); returns its
    /// digest. See the module doc for what is refused.
    pub fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<Digest> {
        check_repository(repo)?;
        let reference = Reference::parse(reference)?;
        if bytes.len() > MAX_MANIFEST {
            return Err(coded(
                ErrorCode::ManifestInvalid,
                ErrorKind::LimitExceeded,
                "manifest",
                repo,
                "manifest too large",
            ));
        }
        let digest = match &reference {
            Reference::Digest(d) => Digest::of(d.algorithm(), bytes),
            Reference::Tag(_) => Digest::sha256(bytes),
        };
        if let Reference::Digest(d) = &reference
            && d != &digest
        {
            return Err(coded(
                ErrorCode::DigestInvalid,
                ErrorKind::DigestMismatch,
                "manifest",
                d,
                format!("content is {digest}"),
            ));
        }
        let (mt, v) = classify(bytes, content_type)?;
        let _gc = crate::gc::writer_lock(self)?;
        let missing = |d: &Digest| {
            coded(
                ErrorCode::ManifestBlobUnknown,
                ErrorKind::NotFound,
                "manifest",
                format!("{repo}@{d}"),
                "referenced content is missing",
            )
        };
        if mt.is_index() {
            for m in v["manifests"].as_array().into_iter().flatten() {
                let d = descriptor_digest(m)?;
                if !matches!(
                    self.read_link(
                        &layout::revision_link(repo, &d),
                        Some(&d),
                        ErrorCode::ManifestBlobUnknown
                    ),
                    Ok(Some(_))
                ) {
                    return Err(missing(&d));
                }
            }
        } else {
            let layers = v["layers"].as_array().into_iter().flatten();
            for b in std::iter::once(&v["config"]).chain(layers) {
                let d = descriptor_digest(b)?;
                if b.get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty())
                {
                    continue;
                }
                if self.stat_blob(repo, &d).is_err() {
                    return Err(missing(&d));
                }
            }
        }
        if !self.global_blob_exists(&digest)? {
            self.driver
                .put_content(&layout::blob_data(&digest), bytes)?;
        }
        self.write_link(&layout::revision_link(repo, &digest), &digest)?;
        if let Reference::Tag(t) = &reference {
            self.tag_locked(repo, t, &digest)?;
        }
        Ok(digest)
    }

    /// The manifest `reference` (tag or digest) names; its bytes are always verified.
    pub fn get_manifest(&self, repo: &str, reference: &str) -> Result<Manifest> {
        check_repository(repo)?;
        let d = match Reference::parse(reference)? {
            Reference::Digest(d) => d,
            Reference::Tag(t) => self.resolve_tag(repo, &t)?,
        };
        if self
            .read_link(
                &layout::revision_link(repo, &d),
                Some(&d),
                ErrorCode::ManifestUnknown,
            )?
            .is_none()
        {
            return Err(coded(
                ErrorCode::ManifestUnknown,
                ErrorKind::NotFound,
                "manifest",
                format!("{repo}@{d}"),
                "manifest unknown",
            ));
        }
        let bytes = self
            .driver
            .get_content(&layout::blob_data(&d))
            .map_err(|e| {
                if e.kind() == ErrorKind::NotFound {
                    coded(
                        ErrorCode::ManifestUnknown,
                        ErrorKind::Corrupt,
                        "manifest",
                        &d,
                        "linked manifest has no data",
                    )
                } else {
                    e
                }
            })?;
        if Digest::of(d.algorithm(), &bytes) != d {
            return Err(coded(
                ErrorCode::DigestInvalid,
                ErrorKind::Corrupt,
                "manifest",
                &d,
                "stored bytes do not match their digest",
            ));
        }
        let (media_type, _) =
            classify(&bytes, None).map_err(|e| e.with_kind(ErrorKind::Corrupt))?;
        Ok(Manifest {
            media_type,
            digest: d,
            bytes,
        })
    }

    /// Delete a manifest by digest (its tags go with it), or a tag by name.
    pub fn delete_manifest(&self, repo: &str, reference: &str) -> Result<()> {
        check_repository(repo)?;
        let d = match Reference::parse(reference)? {
            Reference::Tag(t) => return self.untag(repo, &t),
            Reference::Digest(d) => d,
        };
        let link = layout::revision_link(repo, &d);
        if self
            .read_link(&link, Some(&d), ErrorCode::ManifestUnknown)?
            .is_none()
        {
            return Err(coded(
                ErrorCode::ManifestUnknown,
                ErrorKind::NotFound,
                "manifest",
                format!("{repo}@{d}"),
                "manifest unknown",
            ));
        }
        for t in self.tags(repo, None, None)? {
            if self.resolve_tag(repo, &t).ok().as_ref() == Some(&d) {
                self.untag(repo, &t)?;
            }
        }
        self.driver
            .delete(&link.parent().expect("a link has a directory"))
    }

    /// Digests of every manifest of the repository.
    pub fn manifests(&self, repo: &str) -> Result<Vec<Digest>> {
        check_repository(repo)?;
        let mut out = Vec::new();
        let algs = match self.driver.list(&layout::revisions(repo)) {
            Ok(a) => a,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        for alg in algs {
            for dir in self.driver.list(&alg)? {
                let Ok(d) = Digest::parse(&format!("{}:{}", alg.file_name(), dir.file_name()))
                else {
                    continue;
                };
                if matches!(
                    self.read_link(
                        &layout::revision_link(repo, &d),
                        Some(&d),
                        ErrorCode::ManifestUnknown
                    ),
                    Ok(Some(_))
                ) {
                    out.push(d);
                }
            }
        }
        Ok(out)
    }

    /// The manifests whose `subject` is `subject`, as descriptors, optionally only those
    /// of `artifact_type` (a manifest's `artifactType`, else its config's media type).
    pub fn referrers(
        &self,
        repo: &str,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Vec<Descriptor>> {
        let mut out = Vec::new();
        for d in self.manifests(repo)? {
            let m = match self.get_manifest(repo, &d.to_string()) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let v: Value = serde_json::from_slice(&m.bytes).map_err(|e| invalid(&d, e))?;
            let Some(s) = v
                .get("subject")
                .and_then(|s| s.get("digest"))
                .and_then(Value::as_str)
            else {
                continue;
            };
            if s != subject.to_string() {
                continue;
            }
            let at = v
                .get("artifactType")
                .and_then(Value::as_str)
                .or_else(|| {
                    v.get("config")
                        .and_then(|c| c.get("mediaType"))
                        .and_then(Value::as_str)
                })
                .map(str::to_owned);
            if artifact_type.is_some_and(|want| at.as_deref() != Some(want)) {
                continue;
            }
            out.push(Descriptor {
                media_type: m.media_type.as_str().to_owned(),
                digest: d,
                size: m.bytes.len() as u64,
                artifact_type: at,
                annotations: v.get("annotations").and_then(Value::as_object).cloned(),
            });
        }
        out.sort_by_key(|a| a.digest.to_string());
        Ok(out)
    }
}
