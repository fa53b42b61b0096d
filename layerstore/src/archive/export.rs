//! Exporting a layer's diff as a deterministic tar.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use cargohold_core::root::{FileType, Stat};
use cargohold_core::{Algorithm, Digest, DigestWriter, Error, ErrorKind, Result, Root};
use tar::{EntryType, Header};

use super::inventory::{
    EntryInfo, EntryKind, InventoryOptions, hash_file, inventory_unhashed, inventory_with,
};

const OP: &str = "export layer";

/// What changed at a path, as `docker diff` prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChangeKind {
    /// `A`: new in the child.
    Added,
    /// `C`: changed.
    Modified,
    /// `D`: gone from the child.
    Deleted,
}

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Kind of change.
    pub kind: ChangeKind,
    /// Path relative to the root.
    pub path: PathBuf,
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// sha256 of the tar written.
    pub diff_id: Digest,
    /// Length of the tar written.
    pub size: u64,
    /// Changed paths, sorted by path.
    pub changes: Vec<Change>,
}

/// Write the diff of the full-copy tree `child` against `parent` (none: everything is
/// added) to `out` as a layer tar.
///
/// A path is unchanged when type, mode, owner, size, content (compared by sha256, no
/// inode or mtime shortcut), link target, device numbers, xattrs, hardlink grouping and
/// (for non-directories) mtime in seconds are equal; directories' own mtimes are not
/// compared. A deleted path becomes `.wh.NAME` under its nearest surviving directory.
/// The tar is deterministic: entries sorted by path, ustar headers with PAX records
/// for long names and xattrs, no user/group names, atimes or ctimes.
pub fn export_tree_diff(parent: Option<&Root>, child: &Root, out: impl Write) -> Result<Exported> {
    let new = inventory_with(child, &TREE_OPTS)?;
    let old = match parent {
        Some(p) => inventory_with(p, &TREE_OPTS)?,
        None => BTreeMap::new(),
    };
    diff_trees(&new, &old, child, out)
}

const TREE_OPTS: InventoryOptions = InventoryOptions {
    ignore_overlay_xattrs: true,
    ignore_symlink_mtimes: false,
};

/// [`export_tree_diff`] for a `child` made as a copy-on-write snapshot of `parent`
/// (btrfs): a regular file whose inode number, change time (to the nanosecond) and size
/// are the same in both trees is the untouched file the snapshot shared, and is not
/// read; only files whose identity differs are hashed and compared by content. The
/// change time is the safe part of that rule: every write, truncate, chmod, chown,
/// xattr or link change moves it, and user space cannot set it back. The tar written
/// is byte for byte what [`export_tree_diff`] writes for the same two trees.
pub fn export_snapshot_diff(
    parent: Option<&Root>,
    child: &Root,
    out: impl Write,
) -> Result<Exported> {
    let (mut new, new_ids) = inventory_unhashed(child, &TREE_OPTS)?;
    let (mut old, old_ids) = match parent {
        Some(p) => inventory_unhashed(p, &TREE_OPTS)?,
        None => Default::default(),
    };
    if let Some(parent) = parent {
        for (path, info) in new.iter_mut() {
            let Some(o) = old.get_mut(path) else {
                continue;
            };
            if info.kind != EntryKind::File || o.kind != EntryKind::File {
                continue;
            }
            let untouched = new_ids.contains_key(path)
                && new_ids.get(path) == old_ids.get(path)
                && info.size == o.size;
            if !untouched {
                info.sha256 = Some(hash_file(child, path)?);
                o.sha256 = Some(hash_file(parent, path)?);
            }
        }
    }
    diff_trees(&new, &old, child, out)
}

/// The diff of two inventories of full trees, written from `child`.
fn diff_trees(
    new: &BTreeMap<PathBuf, EntryInfo>,
    old: &BTreeMap<PathBuf, EntryInfo>,
    child: &Root,
    out: impl Write,
) -> Result<Exported> {
    let mut items: Vec<Item> = Vec::new();
    let mut changes = Vec::new();
    for (path, info) in new {
        let kind = match old.get(path) {
            None => ChangeKind::Added,
            Some(o) if !same(o, info) => ChangeKind::Modified,
            Some(_) => continue,
        };
        changes.push(Change {
            kind,
            path: path.clone(),
        });
        items.push(Item::Entry(path.clone()));
    }
    for (path, info) in old {
        if new.contains_key(path) {
            continue;
        }
        // Only the top-most deleted path gets a whiteout.
        let up = path.parent().unwrap_or(Path::new(""));
        let parent_kept = up.as_os_str().is_empty()
            || (new.get(up).is_some_and(|e| e.kind == EntryKind::Dir)
                && old.get(up).is_some_and(|e| e.kind == EntryKind::Dir));
        let _ = info;
        if parent_kept {
            changes.push(Change {
                kind: ChangeKind::Deleted,
                path: path.clone(),
            });
            items.push(Item::Whiteout(path.clone()));
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    let mut w = TarWriter::new(out);
    for item in sorted(items) {
        match item {
            Item::Entry(p) => w.entry(child, &p, &new[&p], None)?,
            Item::Whiteout(p) => w.whiteout(&p)?,
            Item::Opaque(p) => w.opaque(&p)?,
        }
    }
    w.finish(changes)
}

/// Write the diff held by the overlay upper dir `upper` (over `lowers`, nearest first)
/// to `out` as a layer tar.
///
/// 0/0 character devices become `.wh.NAME`, directories with the opaque xattr get
/// `.wh..wh..opq`, files with the metacopy xattr take their data from the nearest lower
/// holding the path. Directories with a redirect xattr are `Unsupported` (the overlay
/// driver mounts with `redirect_dir=nofollow`, which does not create them).
pub fn export_overlay_upper(
    upper: &Root,
    lowers: &[&Root],
    userxattr: bool,
    out: impl Write,
) -> Result<Exported> {
    let ns = if userxattr {
        "user.overlay."
    } else {
        "trusted.overlay."
    };
    let opts = InventoryOptions {
        ignore_overlay_xattrs: false,
        ignore_symlink_mtimes: false,
    };
    let mut inv = inventory_with(upper, &opts)?;
    let mut items = Vec::new();
    let mut changes = Vec::new();
    let mut data_from: HashMap<PathBuf, usize> = HashMap::new();
    for (path, info) in inv.iter_mut() {
        if info.kind == EntryKind::Char && info.rdev == Some((0, 0)) {
            changes.push(Change {
                kind: ChangeKind::Deleted,
                path: path.clone(),
            });
            items.push(Item::Whiteout(path.clone()));
            continue;
        }
        if info.xattrs.contains_key(&format!("{ns}redirect")) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                OP,
                path.display(),
                "overlay redirect_dir entries are not exported",
            ));
        }
        let opaque = info
            .xattrs
            .get(&format!("{ns}opaque"))
            .is_some_and(|v| v == b"y");
        if info.xattrs.contains_key(&format!("{ns}metacopy")) {
            let idx = lowers
                .iter()
                .position(|l| {
                    l.metadata(path).is_ok_and(|st| {
                        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                    })
                })
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Corrupt,
                        OP,
                        path.display(),
                        "metacopy file without data in any lower",
                    )
                })?;
            data_from.insert(path.clone(), idx);
        }
        info.xattrs
            .retain(|k, _| !k.starts_with("trusted.overlay.") && !k.starts_with("user.overlay."));
        let in_lower = lowers.iter().any(|l| l.metadata(path).is_ok());
        changes.push(Change {
            kind: if in_lower {
                ChangeKind::Modified
            } else {
                ChangeKind::Added
            },
            path: path.clone(),
        });
        items.push(Item::Entry(path.clone()));
        if opaque {
            items.push(Item::Opaque(path.clone()));
        }
    }
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    let mut w = TarWriter::new(out);
    for item in sorted(items) {
        match item {
            Item::Entry(p) => {
                let data = data_from.get(&p).map(|i| lowers[*i]);
                w.entry(upper, &p, &inv[&p], data)?
            }
            Item::Whiteout(p) => w.whiteout(&p)?,
            Item::Opaque(p) => w.opaque(&p)?,
        }
    }
    w.finish(changes)
}

fn same(a: &EntryInfo, b: &EntryInfo) -> bool {
    a == b
}

enum Item {
    Entry(PathBuf),
    Whiteout(PathBuf),
    Opaque(PathBuf),
}

impl Item {
    /// The path of the tar entry this item writes.
    fn tar_path(&self) -> PathBuf {
        match self {
            Item::Entry(p) => p.clone(),
            Item::Whiteout(p) => {
                let name = p.file_name().expect("a name");
                let mut wh = b".wh.".to_vec();
                wh.extend_from_slice(name.as_bytes());
                p.with_file_name(OsStr::from_bytes(&wh))
            }
            Item::Opaque(p) => p.join(".wh..wh..opq"),
        }
    }
}

/// Items in the order of their tar paths (a directory before its contents).
fn sorted(items: Vec<Item>) -> Vec<Item> {
    let mut keyed: Vec<(PathBuf, Item)> = items.into_iter().map(|i| (i.tar_path(), i)).collect();
    keyed.sort_by(|a, b| a.0.cmp(&b.0));
    keyed.into_iter().map(|(_, i)| i).collect()
}

struct TarWriter<W: Write> {
    builder: tar::Builder<DigestWriter<W>>,
    /// Hardlink group (first path of the group) to the path written for it.
    written: HashMap<PathBuf, PathBuf>,
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::io(OP, path.display(), e)
}

impl<W: Write> TarWriter<W> {
    fn new(out: W) -> Self {
        TarWriter {
            builder: tar::Builder::new(DigestWriter::new(out, Algorithm::Sha256)),
            written: HashMap::new(),
        }
    }

    fn header(
        path: &Path,
        kind: EntryType,
        st: Option<&Stat>,
        pax: &mut Vec<(String, Vec<u8>)>,
    ) -> Header {
        let mut h = Header::new_ustar();
        let mut name = path.as_os_str().as_bytes().to_vec();
        if kind == EntryType::Directory {
            name.push(b'/');
        }
        if name.len() <= 100 && name.is_ascii() {
            h.as_old_mut().name[..name.len()].copy_from_slice(&name);
        } else {
            pax.push(("path".into(), name.clone()));
            let cut = name.len().min(100);
            h.as_old_mut().name[..cut].copy_from_slice(&name[..cut]);
        }
        h.set_entry_type(kind);
        match st {
            Some(st) => {
                h.set_mode(st.st_mode & 0o7777);
                h.set_uid(st.st_uid as u64);
                h.set_gid(st.st_gid as u64);
                h.set_mtime(st.st_mtime.max(0) as u64);
            }
            None => {
                h.set_mode(0);
                h.set_uid(0);
                h.set_gid(0);
                h.set_mtime(0);
            }
        }
        h.set_size(0);
        h
    }

    fn push(
        &mut self,
        path: &Path,
        mut h: Header,
        pax: Vec<(String, Vec<u8>)>,
        data: &mut dyn std::io::Read,
    ) -> Result<()> {
        if !pax.is_empty() {
            self.builder
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), &v[..])))
                .map_err(|e| io_err(path, e))?;
        }
        h.set_cksum();
        self.builder.append(&h, data).map_err(|e| io_err(path, e))
    }

    fn entry(
        &mut self,
        root: &Root,
        path: &Path,
        info: &EntryInfo,
        data_root: Option<&Root>,
    ) -> Result<()> {
        let (dir, name) = root.parent_of(OP, path)?;
        let st = dir.stat(name)?;
        let mut pax: Vec<(String, Vec<u8>)> = info
            .xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
            .collect();
        let group = info
            .hardlinked_with
            .clone()
            .unwrap_or_else(|| path.to_path_buf());
        if info.kind == EntryKind::File {
            if let Some(first) = self.written.get(&group).cloned() {
                let mut h = Self::header(path, EntryType::Link, Some(&st), &mut pax);
                set_link(&mut h, &first, &mut pax);
                return self.push(path, h, pax, &mut std::io::empty());
            }
            self.written.insert(group, path.to_path_buf());
        }
        let kind = match info.kind {
            EntryKind::File => EntryType::Regular,
            EntryKind::Dir => EntryType::Directory,
            EntryKind::Symlink => EntryType::Symlink,
            EntryKind::Char => EntryType::Char,
            EntryKind::Block => EntryType::Block,
            EntryKind::Fifo => EntryType::Fifo,
            EntryKind::Socket => return Ok(()), // sockets are not carried in layers
        };
        let mut h = Self::header(path, kind, Some(&st), &mut pax);
        match info.kind {
            EntryKind::Symlink => {
                let t = info.link_target.clone().unwrap_or_default();
                set_link(&mut h, &t, &mut pax);
                self.push(path, h, pax, &mut std::io::empty())
            }
            EntryKind::Char | EntryKind::Block => {
                let (ma, mi) = info.rdev.unwrap_or((0, 0));
                h.set_device_major(ma).map_err(|e| io_err(path, e))?;
                h.set_device_minor(mi).map_err(|e| io_err(path, e))?;
                self.push(path, h, pax, &mut std::io::empty())
            }
            EntryKind::File => {
                let src = data_root.unwrap_or(root);
                let mut f = src.open_file(path, rustix::fs::OFlags::RDONLY)?;
                let size = f.metadata().map_err(|e| io_err(path, e))?.len();
                h.set_size(size);
                self.push(path, h, pax, &mut f)
            }
            _ => self.push(path, h, pax, &mut std::io::empty()),
        }
    }

    fn whiteout(&mut self, path: &Path) -> Result<()> {
        let item = Item::Whiteout(path.to_path_buf());
        let mut pax = Vec::new();
        let h = Self::header(&item.tar_path(), EntryType::Regular, None, &mut pax);
        self.push(path, h, pax, &mut std::io::empty())
    }

    fn opaque(&mut self, path: &Path) -> Result<()> {
        let p = path.join(".wh..wh..opq");
        let mut pax = Vec::new();
        let h = Self::header(&p, EntryType::Regular, None, &mut pax);
        self.push(path, h, pax, &mut std::io::empty())
    }

    fn finish(self, changes: Vec<Change>) -> Result<Exported> {
        let w = self
            .builder
            .into_inner()
            .map_err(|e| io_err(Path::new("tar"), e))?;
        let (mut out, diff_id, size) = w.finish();
        out.flush().map_err(|e| io_err(Path::new("tar"), e))?;
        Ok(Exported {
            diff_id,
            size,
            changes,
        })
    }
}

fn set_link(h: &mut Header, target: &Path, pax: &mut Vec<(String, Vec<u8>)>) {
    let t = target.as_os_str().as_bytes();
    if t.len() <= 100 && t.is_ascii() {
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
    } else {
        pax.push(("linkpath".into(), t.to_vec()));
        let cut = t.len().min(100);
        h.as_old_mut().linkname[..cut].copy_from_slice(&t[..cut]);
    }
}
