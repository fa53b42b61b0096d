//! How the store applies a layer tar into a snapshot and exports a snapshot's diff.
//!
//! The one place the store calls the [`crate::archive`] module. Layer tars are applied
//! by `archive::apply`. Until `archive::export_tree_diff`/`export_overlay_upper` land,
//! this file carries a small stand-in export for the `vfs` layout (tree diffs by
//! metadata: type, mode, owner, size, mtime, link target).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use cargohold_core::{Algorithm, Digest, DigestWriter, Error, ErrorKind, Result, Root};

use crate::archive;
use crate::drivers::Layout;

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
/// over `lowers` (nearest first), through [`crate::archive::apply`]: whiteouts carried
/// out for [`Layout::Full`], kept in overlay format for [`Layout::Overlay`].
/// `DigestMismatch` when an expectation fails (the caller throws the target away).
pub fn apply(
    reader: &mut (dyn Read + Send),
    target: &Root,
    lowers: &[Root],
    layout: Layout,
    expect: Expect<'_>,
) -> Result<AppliedTar> {
    let whiteouts = match layout {
        Layout::Full => archive::WhiteoutFormat::Remove,
        Layout::Overlay { userxattr } => archive::WhiteoutFormat::Overlay { userxattr },
    };
    let lowers: Vec<&Root> = match layout {
        // A full copy already holds its parents' tree.
        Layout::Full => Vec::new(),
        Layout::Overlay { .. } => lowers.iter().collect(),
    };
    let opts = archive::ApplyOptions {
        expected_diff_id: expect.diff_id.cloned(),
        expected_compressed_digest: expect.compressed.cloned(),
        whiteouts,
        ..archive::ApplyOptions::default()
    };
    let applied = archive::apply(reader, target, &lowers, &opts)?;
    Ok(AppliedTar {
        diff_id: applied.diff_id,
        compressed_digest: (applied.compression != archive::Compression::None)
            .then_some(applied.compressed_digest),
        size: applied.uncompressed_size,
    })
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
