//! How the store applies a layer tar into a snapshot and exports a snapshot's diff.
//!
//! The one place the store calls the [`crate::archive`] module. Until that module's
//! `apply`/`export_tree_diff`/`export_overlay_upper` land, this file carries a small
//! stand-in for the `vfs` layout (whiteouts carried out, tree diffs), built on the
//! `tar` crate's `unpack_in` (which refuses `..` and escapes through symlinks).

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use cargohold_core::{
    Algorithm, Digest, DigestReader, DigestWriter, Error, ErrorKind, Result, Root,
};

use crate::drivers::Layout;
use cargohold_core::root::FileType;

/// What applying a layer tar found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedTar {
    /// Digest of the uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the stream as given, when it was compressed.
    pub compressed_digest: Option<Digest>,
    /// Uncompressed size in bytes.
    pub size: u64,
}

/// Expectations the caller has about a tar.
#[derive(Debug, Clone, Default)]
pub struct Expect<'a> {
    /// The diff ID the uncompressed tar must hash to.
    pub diff_id: Option<&'a Digest>,
    /// The digest the stream as given must hash to.
    pub compressed: Option<&'a Digest>,
}

fn err(op: &'static str, ctx: impl std::fmt::Display, e: io::Error) -> Error {
    cargohold_core::error::from_io_error(op, ctx, e)
}

/// Apply the (plain, gzip or zstd) tar from `reader` into `target` laid out as `layout`
/// over `lowers` (nearest first). `DigestMismatch` when an expectation fails.
pub fn apply(
    reader: &mut dyn Read,
    target: &Root,
    _lowers: &[Root],
    layout: Layout,
    expect: Expect<'_>,
) -> Result<AppliedTar> {
    if layout != Layout::Full {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "apply",
            "overlay",
            "applying in overlay format needs the archive module",
        ));
    }
    let raw = DigestReader::new(reader, Algorithm::Sha256);
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let head = buffered
        .fill_buf()
        .map_err(|e| err("apply", "layer", e))?
        .to_vec();
    let compressed = head.starts_with(&[0x1f, 0x8b]) || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]);
    let plain: Box<dyn Read + '_> = if head.starts_with(&[0x1f, 0x8b]) {
        Box::new(flate2::bufread::MultiGzDecoder::new(&mut buffered))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Box::new(zstd::Decoder::with_buffer(&mut buffered).map_err(|e| err("apply", "zstd", e))?)
    } else {
        Box::new(&mut buffered)
    };
    let mut plain = DigestReader::new(plain, Algorithm::Sha256);
    unpack(&mut plain, target.path())?;
    io::copy(&mut plain, &mut io::sink()).map_err(|e| err("apply", "layer", e))?;
    let (_, diff_id, size) = plain.finish();
    io::copy(&mut buffered, &mut io::sink()).map_err(|e| err("apply", "layer", e))?;
    let (_, stream_digest, _) = buffered.into_inner().finish();
    if let Some(want) = expect.diff_id {
        want.verify("apply", &diff_id)?;
    }
    if let Some(want) = expect.compressed {
        want.verify("apply", &stream_digest)?;
    }
    Ok(AppliedTar {
        diff_id,
        compressed_digest: compressed.then_some(stream_digest),
        size,
    })
}

fn clean_rel(p: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            _ => {
                return Err(Error::new(
                    ErrorKind::PathEscape,
                    "apply",
                    p.display(),
                    "entry leaves the layer",
                ));
            }
        }
    }
    Ok(out)
}

fn unpack(reader: &mut dyn Read, dst: &Path) -> Result<()> {
    let mut ar = tar::Archive::new(reader);
    ar.set_preserve_permissions(true);
    ar.set_preserve_ownerships(true);
    ar.set_unpack_xattrs(true);
    ar.set_overwrite(true);
    ar.set_preserve_mtime(true);
    let mut dirs = Vec::new();
    for entry in ar.entries().map_err(|e| err("apply", "tar", e))? {
        let mut entry = entry.map_err(|e| err("apply", "tar", e))?;
        let path = clean_rel(&entry.path().map_err(|e| err("apply", "tar", e))?)?;
        let Some(base) = path.file_name() else {
            continue;
        };
        let base = base.as_bytes();
        if let Some(hidden) = base.strip_prefix(b".wh.") {
            let parent = dst.join(path.parent().unwrap_or(Path::new("")));
            if hidden == b".wh..opq" {
                if let Ok(rd) = std::fs::read_dir(&parent) {
                    for e in rd.flatten() {
                        remove_any(&e.path())?;
                    }
                }
            } else {
                remove_any(&parent.join(OsStr::from_bytes(hidden)))?;
            }
            continue;
        }
        let full = dst.join(&path);
        let is_dir = entry.header().entry_type().is_dir();
        if let Ok(st) = std::fs::symlink_metadata(&full)
            && !(is_dir && st.is_dir())
        {
            remove_any(&full)?;
        }
        let special = match entry.header().entry_type() {
            tar::EntryType::Char => Some(FileType::CharacterDevice),
            tar::EntryType::Block => Some(FileType::BlockDevice),
            tar::EntryType::Fifo => Some(FileType::Fifo),
            _ => None,
        };
        if let Some(kind) = special {
            make_node(&entry, &full, kind)?;
            continue;
        }
        let xattrs = pax_xattrs(&mut entry)?;
        entry
            .unpack_in(dst)
            .map_err(|e| err("apply", path.display(), e))?;
        let errno = |op: &'static str, e| Error::errno(op, full.display(), e);
        for (key, value) in &xattrs {
            rustix::fs::lsetxattr(&full, key.as_str(), value, rustix::fs::XattrFlags::empty())
                .map_err(|e| errno("setxattr", e))?;
        }
        let mtime = entry.header().mtime().unwrap_or(0);
        if !is_dir && mtime == 0 {
            // The tar crate turns an mtime of 0 into 1; keep the layer's.
            let t = filetime_secs(0);
            rustix::fs::utimensat(
                rustix::fs::CWD,
                &full,
                &t,
                rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
            )
            .map_err(|e| errno("utimes", e))?;
        }
        if is_dir {
            dirs.push((full, entry.header().mtime().unwrap_or(0)));
        }
    }
    // Directory times last: entries created in them changed them.
    for (dir, mtime) in dirs.into_iter().rev() {
        let t = filetime_secs(mtime);
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            &dir,
            &t,
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

/// The `SCHILY.xattr.*` PAX records of an entry (the `tar` crate applies them only with
/// a feature this workspace does not enable).
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| err("apply", "pax", e))? {
        for ext in exts {
            let ext = ext.map_err(|e| err("apply", "pax", e))?;
            if let Ok(key) = ext.key()
                && let Some(name) = key.strip_prefix("SCHILY.xattr.")
            {
                out.push((name.to_owned(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Device nodes and fifos, which the `tar` crate does not create.
fn make_node<R: Read>(entry: &tar::Entry<'_, R>, full: &Path, kind: FileType) -> Result<()> {
    let h = entry.header();
    let bad = |e: io::Error| err("apply", full.display(), e);
    let mode = h.mode().map_err(bad)? & 0o7777;
    let major = h.device_major().map_err(bad)?.unwrap_or(0);
    let minor = h.device_minor().map_err(bad)?.unwrap_or(0);
    if let Some(parent) = full.parent() {
        std::fs::create_dir_all(parent).map_err(bad)?;
    }
    let errno = |op: &'static str| move |e| Error::errno(op, full.display(), e);
    rustix::fs::mknodat(
        rustix::fs::CWD,
        full,
        kind,
        rustix::fs::Mode::from_raw_mode(mode),
        rustix::fs::makedev(major, minor),
    )
    .map_err(errno("mknod"))?;
    let (uid, gid) = (h.uid().map_err(bad)?, h.gid().map_err(bad)?);
    rustix::fs::chownat(
        rustix::fs::CWD,
        full,
        Some(rustix::fs::Uid::from_raw(uid as u32)),
        Some(rustix::fs::Gid::from_raw(gid as u32)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno("chown"))?;
    rustix::fs::chmodat(
        rustix::fs::CWD,
        full,
        rustix::fs::Mode::from_raw_mode(mode),
        rustix::fs::AtFlags::empty(),
    )
    .map_err(errno("chmod"))?;
    let t = filetime_secs(h.mtime().unwrap_or(0));
    rustix::fs::utimensat(
        rustix::fs::CWD,
        full,
        &t,
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(errno("utimes"))
}

fn filetime_secs(secs: u64) -> rustix::fs::Timestamps {
    let ts = rustix::fs::Timespec {
        tv_sec: secs as i64,
        tv_nsec: 0,
    };
    rustix::fs::Timestamps {
        last_access: ts,
        last_modification: ts,
    }
}

fn remove_any(p: &Path) -> Result<()> {
    let r = match std::fs::symlink_metadata(p) {
        Ok(st) if st.is_dir() => std::fs::remove_dir_all(p),
        Ok(_) => std::fs::remove_file(p),
        // Nothing to remove: missing, or a parent is not a directory.
        Err(e) if e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => Ok(()),
        Err(e) => Err(e),
    };
    r.map_err(|e| err("apply", p.display(), e))
}

/// What happened to a path between a parent and a child.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Not in the parent.
    Added,
    /// In both, with different type, mode, owner, size, time or link target.
    Modified,
    /// In the parent only (reported once, at the topmost deleted path).
    Deleted,
}

/// One changed path, relative to the snapshot root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path.
    pub path: PathBuf,
    /// What happened.
    pub kind: ChangeKind,
}

fn unsupported_overlay(op: &'static str) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        op,
        "overlay",
        "diffs of overlay upper dirs need the archive module",
    )
}

/// The changes of `child` against `parent` (none: everything is added), sorted by path.
pub fn changes(child: &Root, parent: Option<&Root>, layout: Layout) -> Result<Vec<Change>> {
    if layout != Layout::Full {
        return Err(unsupported_overlay("changes"));
    }
    let new = inventory(child.path())?;
    let old = match parent {
        Some(p) => inventory(p.path())?,
        None => BTreeMap::new(),
    };
    let mut out = Vec::new();
    for (rel, meta) in &new {
        match old.get(rel) {
            Some(m) if m == meta => {}
            Some(_) => out.push(Change {
                path: rel.clone(),
                kind: ChangeKind::Modified,
            }),
            None => out.push(Change {
                path: rel.clone(),
                kind: ChangeKind::Added,
            }),
        }
    }
    for rel in old.keys() {
        let under_deleted = rel
            .parent()
            .is_some_and(|p| !p.as_os_str().is_empty() && !new.contains_key(p));
        if !new.contains_key(rel) && !under_deleted {
            out.push(Change {
                path: rel.clone(),
                kind: ChangeKind::Deleted,
            });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// Write the diff of `child` against `parent` (its parent's content, or none) as an
/// uncompressed tar to `out`; returns its diff ID and size.
pub fn export(
    child: &Root,
    parent: Option<&Root>,
    layout: Layout,
    out: &mut dyn Write,
) -> Result<(Digest, u64)> {
    if layout != Layout::Full {
        return Err(unsupported_overlay("diff"));
    }
    let list = changes(child, parent, layout)?;
    let mut w = DigestWriter::new(out, Algorithm::Sha256);
    {
        let mut b = tar::Builder::new(&mut w);
        b.follow_symlinks(false);
        for c in &list {
            let rel = &c.path;
            if c.kind != ChangeKind::Deleted {
                b.append_path_with_name(child.path().join(rel), rel)
                    .map_err(|e| err("diff", rel.display(), e))?;
                continue;
            }
            let name = rel.with_file_name(format!(
                ".wh.{}",
                rel.file_name().unwrap_or_default().to_string_lossy()
            ));
            let mut h = tar::Header::new_gnu();
            h.set_size(0);
            h.set_mode(0o644);
            h.set_uid(0);
            h.set_gid(0);
            h.set_entry_type(tar::EntryType::Regular);
            b.append_data(&mut h, name, io::empty())
                .map_err(|e| err("diff", rel.display(), e))?;
        }
        b.finish().map_err(|e| err("diff", "tar", e))?;
    }
    let (_, d, n) = w.finish();
    Ok((d, n))
}

type Meta = (u32, u32, u32, u64, i64, i64, Option<PathBuf>);

fn inventory(root: &Path) -> Result<BTreeMap<PathBuf, Meta>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let rd = std::fs::read_dir(root.join(&rel)).map_err(|e| err("diff", rel.display(), e))?;
        for e in rd {
            let e = e.map_err(|e| err("diff", rel.display(), e))?;
            let r = rel.join(e.file_name());
            let m = e.metadata().map_err(|e| err("diff", r.display(), e))?;
            let link = m
                .file_type()
                .is_symlink()
                .then(|| std::fs::read_link(e.path()).ok())
                .flatten();
            let mtime = if m.is_dir() { 0 } else { m.mtime() };
            out.insert(
                r.clone(),
                (
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.size(),
                    mtime,
                    m.mtime_nsec() * i64::from(!m.is_dir()),
                    link,
                ),
            );
            if m.is_dir() {
                stack.push(r);
            }
        }
    }
    Ok(out)
}
