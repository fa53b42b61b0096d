//! Import from and export to OCI image layout directories (`oci-layout`, `index.json`,
//! `blobs/<alg>/<hex>`), the format `skopeo copy oci:DIR:TAG` and umoci write and read.
//!
//! Rules: a layout is untrusted input, read through a confined root; every blob is
//! streamed through an upload and committed only when it hashes to its descriptor's
//! digest and size; a multi-platform index is imported whole (children first, so the
//! index is never refused for a missing child); export writes blobs before `index.json`,
//! each by temporary name and rename, and keeps the other entries of an existing
//! `index.json`. Tags are the `org.opencontainers.image.ref.name` annotation.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;

use cargohold_core::atomic::{self, AtomicFile};
use cargohold_core::root::{Confine, Root};
use cargohold_core::{Digest, Error, ErrorKind, Result};
use rustix::fs::OFlags;
use serde_json::{Value, json};

use crate::manifests::{MediaType, classify};
use crate::registry::Registry;

/// The annotation that names an image in `index.json`.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// What an import or export moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The top manifest (or index) digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: MediaType,
    /// Manifests (the top one and any index children).
    pub manifests: usize,
    /// Blobs (configs and layers) copied.
    pub blobs_copied: usize,
    /// Blobs already present and not copied again.
    pub blobs_present: usize,
    /// Bytes of blob data copied.
    pub bytes: u64,
}

/// Progress of a long transfer: called after each blob with the digest and its size.
pub type Progress<'a> = &'a mut dyn FnMut(&Digest, u64);

fn layout_err(dir: &Path, why: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidArgument, "oci layout", dir.display(), why)
}

/// The config and layer descriptors of an image manifest.
fn blob_descriptors(v: &Value) -> impl Iterator<Item = &Value> {
    std::iter::once(&v["config"]).chain(v["layers"].as_array().into_iter().flatten())
}

/// The `org.opencontainers.image.ref.name` of an `index.json` entry.
fn ref_name_of(entry: &Value) -> Option<&str> {
    entry.get("annotations")?.get(REF_NAME)?.as_str()
}

fn blob_path(d: &Digest) -> String {
    format!("blobs/{}/{}", d.algorithm(), d.hex())
}

fn descriptor(v: &Value) -> Result<(Digest, u64, Option<String>)> {
    let digest = v.get("digest").and_then(Value::as_str).ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidArgument,
            "oci layout",
            "descriptor",
            "no digest",
        )
    })?;
    let digest = Digest::parse(digest)?;
    let size = v
        .get("size")
        .and_then(Value::as_u64)
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "oci layout", &digest, "no size"))?;
    let mt = v
        .get("mediaType")
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok((digest, size, mt))
}

/// Read `index.json` of the layout at `dir` and pick the entry tagged `ref_name` (or the
/// only entry when `ref_name` is `None`).
fn pick(root: &Root, dir: &Path, ref_name: Option<&str>) -> Result<Value> {
    let marker: Value =
        serde_json::from_slice(&root.read("oci-layout")?).map_err(|e| layout_err(dir, e))?;
    if marker
        .get("imageLayoutVersion")
        .and_then(Value::as_str)
        .is_none()
    {
        return Err(layout_err(dir, "oci-layout has no imageLayoutVersion"));
    }
    let index: Value =
        serde_json::from_slice(&root.read("index.json")?).map_err(|e| layout_err(dir, e))?;
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| layout_err(dir, "index.json has no manifests"))?;
    let named = |e: &&Value| ref_name_of(e) == ref_name;
    let found: Vec<&Value> = match ref_name {
        Some(_) => entries.iter().filter(named).collect(),
        None => entries.iter().collect(),
    };
    match found.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(Error::new(
            ErrorKind::NotFound,
            "oci layout",
            dir.display(),
            format!("no image named {}", ref_name.unwrap_or("(any)")),
        )),
        _ => Err(layout_err(dir, "several images in the layout: name one")),
    }
}

/// Import the image tagged `ref_name` (or the only one) from the OCI layout at `dir` into
/// `repo:tag`.
pub fn import(
    reg: &Registry,
    dir: &Path,
    ref_name: Option<&str>,
    repo: &str,
    tag: &str,
    progress: Progress<'_>,
) -> Result<Transfer> {
    crate::names::check_repository(repo)?;
    crate::names::check_tag(tag)?;
    let root = Root::open(dir, Confine::Beneath)?;
    let entry = pick(&root, dir, ref_name)?;
    let (digest, size, mt) = descriptor(&entry)?;
    let mut t = Transfer {
        digest: digest.clone(),
        media_type: MediaType::OciManifest,
        manifests: 0,
        blobs_copied: 0,
        blobs_present: 0,
        bytes: 0,
    };
    t.media_type = import_manifest(
        reg,
        &root,
        repo,
        &digest,
        size,
        mt.as_deref(),
        &mut t,
        progress,
        0,
    )?;
    reg.tag(repo, tag, &digest)?;
    Ok(t)
}

#[allow(clippy::too_many_arguments)]
fn import_manifest(
    reg: &Registry,
    root: &Root,
    repo: &str,
    digest: &Digest,
    size: u64,
    media_type: Option<&str>,
    t: &mut Transfer,
    progress: Progress<'_>,
    depth: usize,
) -> Result<MediaType> {
    if depth > 4 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "oci layout",
            digest,
            "indexes nested too deep",
        ));
    }
    if size > 4 << 20 {
        return Err(Error::new(
            ErrorKind::LimitExceeded,
            "oci layout",
            digest,
            "manifest larger than 4 MiB",
        ));
    }
    let bytes = root.read(blob_path(digest))?;
    if bytes.len() as u64 != size {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "oci layout",
            digest,
            "size differs from its descriptor",
        ));
    }
    digest.verify("oci layout", &Digest::of(digest.algorithm(), &bytes))?;
    let (mt, v) = classify(&bytes, media_type)?;
    if mt.is_index() {
        for child in v["manifests"].as_array().into_iter().flatten() {
            let (d, s, cmt) = descriptor(child)?;
            import_manifest(
                reg,
                root,
                repo,
                &d,
                s,
                cmt.as_deref(),
                t,
                progress,
                depth + 1,
            )?;
        }
    } else {
        for b in blob_descriptors(&v) {
            let (d, s, _) = descriptor(b)?;
            import_blob(reg, root, repo, &d, s, t)?;
            progress(&d, s);
        }
    }
    reg.put_manifest(repo, &digest.to_string(), &bytes, Some(mt.as_str()))?;
    t.manifests += 1;
    Ok(mt)
}

fn import_blob(
    reg: &Registry,
    root: &Root,
    repo: &str,
    d: &Digest,
    size: u64,
    t: &mut Transfer,
) -> Result<()> {
    match reg.stat_blob(repo, d) {
        Ok(_) => {
            t.blobs_present += 1;
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let file = root.open_file(blob_path(d), OFlags::RDONLY)?;
    reg.put_blob_as(repo, d, Some(size), file)?;
    t.blobs_copied += 1;
    t.bytes += size;
    Ok(())
}

/// Export `repo:reference` (a tag or digest) into the OCI layout at `dir` (created when
/// missing), named `ref_name` in `index.json`; other entries of an existing layout stay.
pub fn export(
    reg: &Registry,
    repo: &str,
    reference: &str,
    dir: &Path,
    ref_name: &str,
    progress: Progress<'_>,
) -> Result<Transfer> {
    let root = Root::create(dir, Confine::Beneath)?;
    if !root.exists("oci-layout")? {
        atomic::write_file(
            root.dir(),
            OsStr::new("oci-layout"),
            br#"{"imageLayoutVersion":"1.0.0"}"#,
            0o644,
        )?;
    }
    let top = reg.get_manifest(repo, reference)?;
    let mut t = Transfer {
        digest: top.digest.clone(),
        media_type: top.media_type,
        manifests: 0,
        blobs_copied: 0,
        blobs_present: 0,
        bytes: 0,
    };
    export_manifest(
        reg,
        &root,
        repo,
        &top.digest.to_string(),
        &mut t,
        progress,
        0,
    )?;
    let mut index: Value = if root.exists("index.json")? {
        serde_json::from_slice(&root.read("index.json")?).map_err(|e| layout_err(dir, e))?
    } else {
        json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []})
    };
    let entries = index
        .get_mut("manifests")
        .and_then(Value::as_array_mut)
        .ok_or_else(|| layout_err(dir, "index.json has no manifests"))?;
    entries.retain(|e| ref_name_of(e) != Some(ref_name));
    entries.push(json!({
        "mediaType": top.media_type.as_str(),
        "digest": top.digest.to_string(),
        "size": top.bytes.len(),
        "annotations": {REF_NAME: ref_name},
    }));
    let bytes = serde_json::to_vec(&index).map_err(|e| layout_err(dir, e))?;
    atomic::write_file(root.dir(), OsStr::new("index.json"), &bytes, 0o644)?;
    Ok(t)
}

fn export_manifest(
    reg: &Registry,
    root: &Root,
    repo: &str,
    reference: &str,
    t: &mut Transfer,
    progress: Progress<'_>,
    depth: usize,
) -> Result<()> {
    if depth > 4 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "export",
            reference,
            "indexes nested too deep",
        ));
    }
    let m = reg.get_manifest(repo, reference)?;
    let (mt, v) = classify(&m.bytes, Some(m.media_type.as_str()))?;
    if mt.is_index() {
        for child in v["manifests"].as_array().into_iter().flatten() {
            let (d, _, _) = descriptor(child)?;
            export_manifest(reg, root, repo, &d.to_string(), t, progress, depth + 1)?;
        }
    } else {
        for b in blob_descriptors(&v) {
            let (d, s, _) = descriptor(b)?;
            export_blob(reg, root, repo, &d, s, t)?;
            progress(&d, s);
        }
    }
    write_blob(root, &m.digest, &mut &m.bytes[..])?;
    t.manifests += 1;
    Ok(())
}

fn export_blob(
    reg: &Registry,
    root: &Root,
    repo: &str,
    d: &Digest,
    size: u64,
    t: &mut Transfer,
) -> Result<()> {
    if let Ok(st) = root.metadata(blob_path(d))
        && st.st_size as u64 == size
    {
        t.blobs_present += 1;
        return Ok(());
    }
    let mut r = reg.blob_reader(repo, d, 0, None)?;
    write_blob(root, d, &mut r)?;
    t.blobs_copied += 1;
    t.bytes += size;
    Ok(())
}

/// Write a blob under `blobs/<alg>/<hex>` by temporary file and rename, verifying its
/// digest on the way.
fn write_blob(root: &Root, d: &Digest, r: &mut dyn Read) -> Result<()> {
    let dir = root.mkdir_all(format!("blobs/{}", d.algorithm()), 0o755)?;
    let mut f = AtomicFile::new(&dir, OsStr::new(d.hex()), 0o644)?;
    let mut h = d.algorithm().hasher();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(cargohold_core::error::from_io_error("export", d, e)),
        };
        h.update(&buf[..n]);
        f.write_all(&buf[..n])
            .map_err(|e| Error::io("export", d, e))?;
    }
    d.verify("export", &h.finish())?;
    f.commit()
}
