//! A path-by-path description of a tree, for comparing trees.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use cargohold_core::root::FileType;
use cargohold_core::{Algorithm, Dir, Error, Hasher, Result, Root};

/// What kind of entry a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntryKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link.
    Symlink,
    /// Character device.
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// One path of an [`inventory`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// Type.
    pub kind: EntryKind,
    /// Permission bits with setuid/setgid/sticky (0 for symlinks).
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size of regular files (0 for others).
    pub size: u64,
    /// sha256 hex of a regular file's content.
    pub sha256: Option<String>,
    /// A symlink's target.
    pub link_target: Option<PathBuf>,
    /// Device numbers of character and block devices.
    pub rdev: Option<(u32, u32)>,
    /// Extended attributes, sorted by name.
    pub xattrs: BTreeMap<String, Vec<u8>>,
    /// For a path with other hardlinks in the tree: the first of them in path order.
    pub hardlinked_with: Option<PathBuf>,
    /// Modification time in seconds of non-directories (directories' change whenever
    /// an entry is added, so trees built differently would never compare equal).
    pub mtime: Option<i64>,
}

/// Options of [`inventory_with`].
#[derive(Debug, Clone, Copy, Default)]
pub struct InventoryOptions {
    /// Leave out `trusted.overlay.*` and `user.overlay.*` xattrs.
    pub ignore_overlay_xattrs: bool,
    /// Leave out symlinks' mtimes (tools differ in restoring them).
    pub ignore_symlink_mtimes: bool,
}

/// Describe every path below `root` (the root itself is not listed).
pub fn inventory(root: &Root) -> Result<BTreeMap<PathBuf, EntryInfo>> {
    inventory_with(root, &InventoryOptions::default())
}

/// [`inventory`] with options.
pub fn inventory_with(
    root: &Root,
    opts: &InventoryOptions,
) -> Result<BTreeMap<PathBuf, EntryInfo>> {
    let mut out = BTreeMap::new();
    walk_root(root, opts, &mut out, None)?;
    Ok(out)
}

/// Who a regular file is, for telling an untouched file of a copy-on-write snapshot
/// from a changed one without reading either: inode number and change time (which
/// every write, truncate, chmod, chown, xattr change or link count change moves, and
/// which user space cannot set).
pub(crate) type Identity = (u64, i64, i64);

/// [`inventory_with`] without reading file contents (`sha256` is `None`), with each
/// regular file's [`Identity`]; [`hash_file`] fills the content in where needed.
pub(crate) fn inventory_unhashed(
    root: &Root,
    opts: &InventoryOptions,
) -> Result<(BTreeMap<PathBuf, EntryInfo>, HashMap<PathBuf, Identity>)> {
    let mut out = BTreeMap::new();
    let mut ids = HashMap::new();
    walk_root(root, opts, &mut out, Some(&mut ids))?;
    Ok((out, ids))
}

/// The sha256 hex of the regular file `path` below `root`.
pub(crate) fn hash_file(root: &Root, path: &Path) -> Result<String> {
    let f = root.open_file(path, rustix::fs::OFlags::RDONLY)?;
    hash_reader(f, path)
}

fn hash_reader(mut f: impl Read, path: &Path) -> Result<String> {
    let mut h = Hasher::new(Algorithm::Sha256);
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io("inventory", path.display(), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finish().hex().to_owned())
}

fn walk_root(
    root: &Root,
    opts: &InventoryOptions,
    out: &mut BTreeMap<PathBuf, EntryInfo>,
    ids: Option<&mut HashMap<PathBuf, Identity>>,
) -> Result<()> {
    let mut inodes: BTreeMap<(u64, u64), Vec<PathBuf>> = BTreeMap::new();
    let dir = root.open_dir("")?;
    Walk {
        opts,
        out: &mut *out,
        inodes: &mut inodes,
        ids,
    }
    .walk(&dir, Path::new(""))?;
    for paths in inodes.values() {
        if paths.len() > 1 {
            let mut sorted = paths.clone();
            sorted.sort();
            for p in &sorted[1..] {
                if let Some(e) = out.get_mut(p) {
                    e.hardlinked_with = Some(sorted[0].clone());
                }
            }
        }
    }
    Ok(())
}

struct Walk<'a> {
    opts: &'a InventoryOptions,
    out: &'a mut BTreeMap<PathBuf, EntryInfo>,
    inodes: &'a mut BTreeMap<(u64, u64), Vec<PathBuf>>,
    /// When set, file contents are not read and identities are recorded here.
    ids: Option<&'a mut HashMap<PathBuf, Identity>>,
}

impl Walk<'_> {
    fn walk(&mut self, dir: &Dir, rel: &Path) -> Result<()> {
        let opts = self.opts;
        let mut entries = dir.entries()?;
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, _) in entries {
            let path = rel.join(&name);
            let st = dir.stat(&name)?;
            let ft = FileType::from_raw_mode(st.st_mode);
            let kind = match ft {
                FileType::RegularFile => EntryKind::File,
                FileType::Directory => EntryKind::Dir,
                FileType::Symlink => EntryKind::Symlink,
                FileType::CharacterDevice => EntryKind::Char,
                FileType::BlockDevice => EntryKind::Block,
                FileType::Fifo => EntryKind::Fifo,
                _ => EntryKind::Socket,
            };
            let mut xattrs = BTreeMap::new();
            if kind != EntryKind::Symlink {
                for key in dir.list_xattrs(&name)? {
                    let overlay =
                        key.starts_with("trusted.overlay.") || key.starts_with("user.overlay.");
                    if opts.ignore_overlay_xattrs && overlay {
                        continue;
                    }
                    if let Some(v) = dir.get_xattr(&name, &key)? {
                        xattrs.insert(key, v);
                    }
                }
            }
            let mut info = EntryInfo {
                kind,
                mode: if kind == EntryKind::Symlink {
                    0
                } else {
                    st.st_mode & 0o7777
                },
                uid: st.st_uid,
                gid: st.st_gid,
                size: 0,
                sha256: None,
                link_target: None,
                rdev: None,
                xattrs,
                hardlinked_with: None,
                mtime: None,
            };
            match kind {
                EntryKind::File => {
                    info.size = st.st_size as u64;
                    match self.ids.as_deref_mut() {
                        Some(ids) => {
                            ids.insert(
                                path.clone(),
                                (st.st_ino, st.st_ctime, st.st_ctime_nsec as i64),
                            );
                        }
                        None => {
                            let f = dir.open_file(&name, rustix::fs::OFlags::RDONLY)?;
                            info.sha256 = Some(hash_reader(f, &path)?);
                        }
                    }
                    if st.st_nlink > 1 {
                        self.inodes
                            .entry((st.st_dev, st.st_ino))
                            .or_default()
                            .push(path.clone());
                    }
                }
                EntryKind::Symlink => info.link_target = Some(dir.read_link(&name)?),
                EntryKind::Char | EntryKind::Block => {
                    let r = st.st_rdev;
                    info.rdev = Some((rustix::fs::major(r), rustix::fs::minor(r)));
                }
                _ => {}
            }
            if kind != EntryKind::Dir && !(kind == EntryKind::Symlink && opts.ignore_symlink_mtimes)
            {
                info.mtime = Some(st.st_mtime);
            }
            self.out.insert(path.clone(), info);
            if kind == EntryKind::Dir {
                let sub = dir.open_dir(&name)?;
                self.walk(&sub, &path)?;
            }
        }
        Ok(())
    }
}
