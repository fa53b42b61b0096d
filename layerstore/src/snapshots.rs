//! The bookkeeping every driver shares: snapshot metadata, parents, labels, kinds,
//! locks, building in a temporary directory and publishing by rename, removal, and the
//! clean-up of what killed writers left.
//!
//! On disk, under the store root:
//! - `snapshots/<id>/`: one directory per snapshot, `<id>` 16 random hex digits, laid
//!   out by the [`Backend`]; a snapshot under construction is a locked `.tmp-*`
//!   directory next to them, renamed into place when complete;
//! - `meta/<h>.json`: the record of each committed snapshot (layers included), `<h>` the
//!   first 40 hex digits of the SHA-256 of its name;
//! - `active/<h>.json`: the record of each active snapshot and view, named the same way;
//! - `children/<hp>/<hc>`: an empty marker per snapshot `c` with parent `p`, so a removal
//!   finds children by listing one small directory instead of reading every record;
//! - `locks/store.lock`: taken exclusively only for short metadata updates (a check,
//!   a rename, a small JSON write), never while files are copied or extracted.
//!
//! Publication order: data first (rename of the built directory), child marker second,
//! record last, all under the store lock; removal in the reverse order. So a record
//! always points at a complete directory and is always indexed under its parent, and
//! [`Snapshots::open`] removes directories without records.
//!
//! # What is durable when
//! Every write is temp-then-rename, so a killed process (`SIGKILL`, a panic) never leaves
//! a half-written record or half-built directory visible, whatever the kind. Durability
//! against a power loss or kernel crash differs by kind:
//! - **Committed snapshots** (layers, commits) are durable before the call returns: an
//!   applied layer's files (one `syncfs`, by `archive::apply`), its built directory and
//!   `snapshots/`, then the record and `meta/`. A commit of a container first `syncfs`s
//!   the store's filesystem, which makes durable the container's directory and files
//!   that nothing synced before, then writes its record durably. A removal of a
//!   committed snapshot `fsync`s `meta/` after deleting the record.
//! - **Layers applied with their sync deferred** are the exception: nothing of their
//!   files or directory is synced, only their record, which carries the write session
//!   (boot and mount, [`Record::unsynced`]). [`Snapshots::sync`], or a durable snapshot
//!   built on one (its `syncfs` covers the layers below), clears the mark. In the same
//!   session the page cache still holds whatever was not written back, so the layer
//!   is whole; [`Snapshots::open`] in another session (after a reboot, or after the
//!   filesystem was mounted again) cannot know that, and drops every record still
//!   marked, with every snapshot built on it.
//! - **Active snapshots and views** (containers) are *not* `fsync`ed at all: not their
//!   directory, not their record, not their removal. After a power loss a container may
//!   be gone, come back after its removal, or have a record that is empty or cut short;
//!   [`Snapshots::open`] drops an unreadable `active/` record and its directory (an
//!   unreadable `meta/` record stays an error: that is corruption, not a lost write).
//! - **Child markers** are never `fsync`ed: [`Snapshots::open`] rebuilds them from the
//!   records (adding missing ones, dropping stale ones), and a removal that finds a
//!   marker checks the child's record before refusing, dropping the marker of a child
//!   that no longer names it (what a process killed mid-removal leaves).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use cargohold_core::atomic::{self, TempDir};
use cargohold_core::{Confine, Digest, Dir, Error, ErrorKind, FileLock, LockMode, Result, Root};
use serde::{Deserialize, Serialize};

use crate::drivers::{Backend, CONTENT_DIR, SnapshotDir};

mod children;
use crate::{Info, Kind, Labels, Mount, Usage};

const SNAPSHOTS: &str = "snapshots";
const META: &str = "meta";
const ACTIVE: &str = "active";
const CHILDREN: &str = "children";
const LOCKS: &str = "locks";
const STORE_LOCK: &str = "store.lock";
/// The longest key or name accepted.
pub const MAX_KEY_LEN: usize = 1024;

/// What a layer adds to its snapshot record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerRecord {
    /// Digest of the uncompressed layer tar.
    pub diff_id: Digest,
    /// Digest of the tar as it was given, when it was compressed.
    pub compressed_digest: Option<Digest>,
    /// Size of the uncompressed tar in bytes.
    pub size: u64,
}

/// One snapshot's metadata record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Directory id under `snapshots/`.
    pub id: String,
    /// Key (active, view) or name (committed).
    pub name: String,
    /// Parent name.
    pub parent: Option<String>,
    /// Kind.
    pub kind: Kind,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// Labels.
    pub labels: Labels,
    /// Usage frozen at the commit of a container (none for applied layers and active
    /// snapshots: computed when asked).
    pub usage: Option<(u64, u64)>,
    /// Set for layers.
    pub layer: Option<LayerRecord>,
    /// Set while a committed snapshot's files may not be on stable storage yet (an
    /// apply that deferred its sync): the write session (boot and mount, see
    /// [`cargohold_core::boot::write_session`]) they were written in. Cleared once
    /// synced; a record still holding another session than the current one is dropped
    /// on open, with everything built on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unsynced: Option<String>,
}

impl Record {
    /// The public view of the record.
    pub fn info(&self) -> Info {
        Info {
            name: self.name.clone(),
            parent: self.parent.clone(),
            kind: self.kind,
            created: self.created,
            labels: self.labels.clone(),
        }
    }
}

/// A snapshot being built: a locked temporary directory nobody else sees.
#[derive(Debug)]
pub struct Build {
    tmp: TempDir,
    path: PathBuf,
    id: String,
    parent: Option<String>,
    parent_ids: Vec<String>,
    /// The committed chain below, nearest first (immutable once read).
    chain: Vec<Record>,
    /// Publish without making the files durable (see [`Build::defer_sync`]).
    unsynced: Option<String>,
}

impl Build {
    /// The directory where the snapshot's files go ([`CONTENT_DIR`]), as a confined root.
    pub fn content(&self) -> Result<Root> {
        Root::open(self.path.join(CONTENT_DIR), Confine::InRoot)
    }

    /// The parent's name.
    pub fn parent(&self) -> Option<&str> {
        self.parent.as_deref()
    }

    /// Publish this build without making its files durable: its record carries
    /// `session` (the store's [`Snapshots::session`]) until [`Snapshots::sync`] or a
    /// durable snapshot built on it clears the mark, and a store opened in another
    /// session drops it.
    pub fn defer_sync(&mut self, session: String) {
        self.unsynced = Some(session);
    }
}

/// The shared bookkeeping over one [`Backend`].
#[derive(Debug)]
pub struct Snapshots {
    root: Root,
    snaps: Dir,
    meta: Dir,
    active: Dir,
    children: Dir,
    locks: Dir,
    backend: Box<dyn Backend>,
    /// The write session the store is open in, when the kernel can name one.
    session: Option<String>,
}

/// `InvalidArgument` unless `key` is 1 to [`MAX_KEY_LEN`] bytes without control characters.
pub fn validate_key(op: &'static str, key: &str) -> Result<()> {
    if key.is_empty() || key.len() > MAX_KEY_LEN || key.chars().any(char::is_control) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            op,
            key.escape_debug(),
            "a key is 1 to 1024 bytes without control characters",
        ));
    }
    Ok(())
}

/// The 40 hex digits naming `key`'s record and child marker.
pub(crate) fn key_hash(key: &str) -> String {
    Digest::sha256(key.as_bytes()).hex()[..40].to_owned()
}

fn meta_name(key: &str) -> OsString {
    OsString::from(format!("{}.json", key_hash(key)))
}

/// Whether a record of `kind` is kept durably (in `meta/`) or not (in `active/`).
fn durable(kind: Kind) -> bool {
    kind == Kind::Committed
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn read_record_file(dir: &Dir, file: &OsStr) -> Result<Record> {
    let mut f = dir.open_file(file, rustix::fs::OFlags::RDONLY)?;
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut f, &mut buf)
        .map_err(|e| Error::io("read record", file.to_string_lossy(), e))?;
    serde_json::from_slice(&buf)
        .map_err(|e| Error::new(ErrorKind::Corrupt, "read record", file.to_string_lossy(), e))
}

/// `rec` as its record file holds it.
fn encode(rec: &Record) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(rec)
        .map_err(|e| Error::new(ErrorKind::Io, "write record", &rec.name, e))
}

/// The names of the records in `chain` whose sync was deferred.
fn unsynced_names(chain: &[Record]) -> Vec<String> {
    chain
        .iter()
        .filter(|r| r.unsynced.is_some())
        .map(|r| r.name.clone())
        .collect()
}

fn not_found(op: &'static str, key: &str) -> Error {
    Error::new(ErrorKind::NotFound, op, key, "no such snapshot")
}

impl Snapshots {
    /// Open (creating if needed) the bookkeeping under `path` for `backend`, removing
    /// what killed writers left: temporary directories and files, snapshot directories
    /// without a record, a record superseded by a commit that was cut short, and the
    /// snapshots a crash may have torn (a deferred sync of another session) with what
    /// stands on them.
    pub fn open(path: impl AsRef<Path>, backend: Box<dyn Backend>) -> Result<Snapshots> {
        let path = path.as_ref();
        std::fs::create_dir_all(path).map_err(|e| Error::io("open store", path.display(), e))?;
        let root = Root::open(path, Confine::Beneath)?;
        let snaps = root.dir().mkdir_open(OsStr::new(SNAPSHOTS), 0o700)?;
        let meta = root.dir().mkdir_open(OsStr::new(META), 0o700)?;
        let active = root.dir().mkdir_open(OsStr::new(ACTIVE), 0o700)?;
        let children = root.dir().mkdir_open(OsStr::new(CHILDREN), 0o700)?;
        let locks = root.dir().mkdir_open(OsStr::new(LOCKS), 0o700)?;
        let session = cargohold_core::boot::write_session(root.dir());
        let s = Snapshots {
            root,
            snaps,
            meta,
            active,
            children,
            locks,
            backend,
            session,
        };
        s.recover()?;
        Ok(s)
    }

    fn recover(&self) -> Result<()> {
        let _lock = self.lock()?;
        atomic::clean_stale(&self.meta)?;
        atomic::clean_stale(&self.active)?;
        atomic::clean_stale(&self.snaps)?;
        let records = self.scan(true)?;
        let lost = self.lost(&records);
        let mut live = std::collections::HashSet::new();
        let mut markers: std::collections::HashMap<String, std::collections::HashSet<String>> =
            std::collections::HashMap::new();
        for (dir, file, rec) in &records {
            let superseded = rec.kind != Kind::Committed
                && records
                    .iter()
                    .any(|(_, _, o)| o.id == rec.id && o.kind == Kind::Committed);
            let missing = match self.snaps.stat(OsStr::new(&rec.id)) {
                Ok(_) => false,
                Err(e) if e.kind() == ErrorKind::NotFound => true,
                Err(e) => return Err(e),
            };
            if superseded || missing || lost.contains(&rec.name) {
                dir.remove_file(file)?;
            } else {
                let home = self.records_dir(rec.kind);
                if !std::ptr::eq(*dir, home) {
                    // A store written before `active/` existed kept every record in `meta/`.
                    dir.rename(file, home, file)?;
                }
                live.insert(OsString::from(&rec.id));
                if let Some(p) = &rec.parent {
                    markers
                        .entry(key_hash(p))
                        .or_default()
                        .insert(key_hash(&rec.name));
                }
            }
        }
        for (name, _) in self.snaps.entries()? {
            if !atomic::is_temp_name(&name) && !live.contains(&name) {
                self.backend.discard(&self.snaps, &name)?;
            }
        }
        self.reindex_children(&markers)?;
        self.meta.sync()?;
        self.snaps.sync()
    }

    /// The names of the snapshots a crash may have torn: committed ones whose sync was
    /// deferred in another session than this one (see [`Record::unsynced`]), and every
    /// snapshot built on one of them.
    fn lost(&self, records: &[(&Dir, OsString, Record)]) -> std::collections::HashSet<String> {
        let mut lost: std::collections::HashSet<String> = records
            .iter()
            .filter(|(_, _, r)| {
                r.kind == Kind::Committed && r.unsynced.is_some() && !self.deferred_here(r)
            })
            .map(|(_, _, r)| r.name.clone())
            .collect();
        // Everything above a lost snapshot goes with it (parents come before children
        // in no particular order, so repeat until nothing is added).
        loop {
            let before = lost.len();
            for (_, _, rec) in records {
                if rec.parent.as_ref().is_some_and(|p| lost.contains(p)) {
                    lost.insert(rec.name.clone());
                }
            }
            if lost.len() == before {
                return lost;
            }
        }
    }

    /// Whether `rec`'s sync was deferred in the session this store is open in.
    fn deferred_here(&self, rec: &Record) -> bool {
        rec.unsynced.is_some() && rec.unsynced == self.session
    }

    /// The write session this store was opened in (boot and mount), if the kernel can
    /// name one: what a build that defers its sync records.
    pub fn session(&self) -> Option<&str> {
        self.session.as_deref()
    }

    /// Make every snapshot whose sync was deferred in this session durable: one
    /// `syncfs` of the store's filesystem, then their records lose the mark (durably).
    /// Returns their names.
    pub fn sync(&self) -> Result<Vec<String>> {
        let deferred: Vec<String> = self
            .all()?
            .into_iter()
            .filter(|r| self.deferred_here(r))
            .map(|r| r.name)
            .collect();
        if deferred.is_empty() {
            return Ok(deferred);
        }
        rustix::fs::syncfs(self.root.dir()).map_err(|e| Error::errno("sync", "syncfs", e))?;
        let _lock = self.lock()?;
        self.mark_synced(&deferred)
    }

    /// Under the store lock, after a `syncfs` that began after they were published:
    /// drop this session's mark from the records of `names` that still carry it (and
    /// still exist). Returns the names whose record changed.
    fn mark_synced(&self, names: &[String]) -> Result<Vec<String>> {
        let mut done = Vec::new();
        for name in names {
            let rec = match self.get(name) {
                Ok(r) => r,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            if !self.deferred_here(&rec) {
                continue;
            }
            let rec = Record {
                unsynced: None,
                ..rec
            };
            atomic::write_file(&self.meta, &meta_name(&rec.name), &encode(&rec)?, 0o600)?;
            done.push(rec.name);
        }
        Ok(done)
    }

    /// The backend.
    pub fn backend(&self) -> &dyn Backend {
        self.backend.as_ref()
    }

    /// The store root.
    pub fn root(&self) -> &Root {
        &self.root
    }

    /// The directory holding lock files, for the store's own locks.
    pub fn locks(&self) -> &Dir {
        &self.locks
    }

    /// Take the store-wide lock (hold it only for short metadata updates).
    pub fn lock(&self) -> Result<FileLock> {
        FileLock::lock(&self.locks, OsStr::new(STORE_LOCK), LockMode::Exclusive)
    }

    /// The directory holding records of `kind`.
    fn records_dir(&self, kind: Kind) -> &Dir {
        if durable(kind) {
            &self.meta
        } else {
            &self.active
        }
    }

    /// Every record with its file name. With `drop_unreadable`, an `active/` record that
    /// does not parse (a container record cut short by a power loss) is removed instead
    /// of failing; called so only by [`Snapshots::open`] under the store lock.
    fn scan(&self, drop_unreadable: bool) -> Result<Vec<(&Dir, OsString, Record)>> {
        let mut out = Vec::new();
        for dir in [&self.meta, &self.active] {
            for (name, _) in dir.entries()? {
                if atomic::is_temp_name(&name) {
                    continue;
                }
                match read_record_file(dir, &name) {
                    Ok(r) => out.push((dir, name, r)),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e)
                        if drop_unreadable
                            && e.kind() == ErrorKind::Corrupt
                            && std::ptr::eq(dir, &self.active) =>
                    {
                        dir.remove_file(&name)?;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(out)
    }

    /// The record stored as `file` (active ones first), if any.
    fn find_file(&self, file: &OsStr) -> Result<Option<Record>> {
        for dir in [&self.active, &self.meta] {
            match read_record_file(dir, file) {
                Ok(r) => return Ok(Some(r)),
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The record of `key`, `NotFound` if none.
    pub fn get(&self, key: &str) -> Result<Record> {
        validate_key("stat", key)?;
        let rec = self
            .find_file(&meta_name(key))?
            .ok_or_else(|| not_found("stat", key))?;
        if rec.name != key {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "stat",
                key,
                "record names another snapshot",
            ));
        }
        Ok(rec)
    }

    fn exists(&self, key: &str) -> Result<bool> {
        match self.get(key) {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every record.
    pub fn all(&self) -> Result<Vec<Record>> {
        Ok(self.scan(false)?.into_iter().map(|(_, _, r)| r).collect())
    }

    /// The committed chain below `parent`, nearest first.
    fn chain(&self, op: &'static str, parent: Option<&str>) -> Result<Vec<Record>> {
        let mut out: Vec<Record> = Vec::new();
        let mut next = parent.map(str::to_owned);
        while let Some(name) = next {
            let rec = self.get(&name).map_err(|e| match e.kind() {
                ErrorKind::NotFound => Error::new(ErrorKind::NotFound, op, &name, "no such parent"),
                _ => e,
            })?;
            if rec.kind != Kind::Committed {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    op,
                    &name,
                    "a parent must be committed",
                ));
            }
            if out.len() > 4096 {
                return Err(Error::new(ErrorKind::Corrupt, op, &name, "parent cycle"));
            }
            next = rec.parent.clone();
            out.push(rec);
        }
        Ok(out)
    }

    fn with_dirs<T>(
        &self,
        recs: &[Record],
        f: impl FnOnce(&[SnapshotDir<'_>]) -> Result<T>,
    ) -> Result<T> {
        let base = self.root.path().join(SNAPSHOTS);
        let opened = recs
            .iter()
            .map(|r| Ok((base.join(&r.id), self.snaps.open_dir(OsStr::new(&r.id))?)))
            .collect::<Result<Vec<_>>>()?;
        let dirs: Vec<SnapshotDir<'_>> = recs
            .iter()
            .zip(&opened)
            .map(|(r, (p, d))| SnapshotDir {
                id: &r.id,
                path: p,
                dir: d,
            })
            .collect();
        f(&dirs)
    }

    /// Start building a snapshot on top of the committed `parent`: a locked temporary
    /// directory laid out by the backend. Nothing is visible until [`Snapshots::finish`].
    pub fn begin(&self, op: &'static str, parent: Option<&str>) -> Result<Build> {
        if let Some(p) = parent {
            validate_key(op, p)?;
        }
        let chain = self.chain(op, parent)?;
        let tmp = TempDir::new(&self.snaps, 0o700)?;
        let path = self.root.path().join(SNAPSHOTS).join(tmp.name());
        let id = atomic::random_suffix();
        let built = self.with_dirs(&chain, |parents| {
            let new = SnapshotDir {
                id: &id,
                path: &path,
                dir: tmp.dir(),
            };
            self.backend.create(&new, parents)
        });
        built?;
        Ok(Build {
            tmp,
            path,
            id,
            parent: parent.map(str::to_owned),
            parent_ids: chain.iter().map(|r| r.id.clone()).collect(),
            chain,
            unsynced: None,
        })
    }

    /// Publish `build` as the snapshot `name` of `kind`: rename the directory into place
    /// and write its record, under the store lock. `AlreadyExists` if `name` was taken
    /// meanwhile, `NotFound` if the parent went away; the build is discarded then.
    pub fn finish(
        &self,
        op: &'static str,
        build: Build,
        name: &str,
        kind: Kind,
        labels: Labels,
        layer: Option<LayerRecord>,
    ) -> Result<Record> {
        validate_key(op, name)?;
        // No usage is recorded: a built snapshot's tree is what its builder wrote (an
        // applied layer's tar) and never changes once committed, so [`Snapshots::usage`]
        // walks it when asked, as `docker system df` does, instead of every apply paying
        // for a walk of the whole tree.
        if kind == Kind::Committed {
            self.backend.seal(&SnapshotDir {
                id: &build.id,
                path: &build.path,
                dir: build.tmp.dir(),
            })?;
        }
        let _lock = self.lock()?;
        if self.exists(name)? {
            return Err(Error::new(ErrorKind::AlreadyExists, op, name, "name taken"));
        }
        if let Some(p) = &build.parent {
            let rec = self.get(p)?;
            if Some(&rec.id) != build.parent_ids.first() {
                return Err(not_found(op, p));
            }
        }
        let rec = Record {
            id: build.id.clone(),
            name: name.to_owned(),
            parent: build.parent.clone(),
            kind,
            created: now(),
            labels,
            usage: None,
            layer,
            unsynced: build.unsynced.clone().filter(|_| durable(kind)),
        };
        if rec.unsynced.is_some() {
            // Nothing of it is synced: a crash may lose the rename as well as the files,
            // and the store drops the record then anyway.
            build
                .tmp
                .publish_volatile(&self.snaps, OsStr::new(&build.id))?;
        } else if durable(kind) {
            // What this build synced (its files, by one `syncfs` of the filesystem)
            // holds the deferred layers below it too: they are durable now, and must
            // be, before a durable record stands on them.
            self.mark_synced(&unsynced_names(&build.chain))?;
            build.tmp.publish(&self.snaps, OsStr::new(&build.id))?;
        } else {
            build
                .tmp
                .publish_volatile(&self.snaps, OsStr::new(&build.id))?;
        }
        if let Some(p) = &rec.parent {
            self.add_child(p, name)?;
        }
        self.write_record(&rec)?;
        Ok(rec)
    }

    /// Write the new record `rec`: durably in `meta/` when committed, without `fsync` in
    /// `active/` otherwise (see the module docs). `AlreadyExists` if present.
    fn write_record(&self, rec: &Record) -> Result<()> {
        let data = encode(rec)?;
        let file = meta_name(&rec.name);
        if durable(rec.kind) {
            atomic::write_new_file(&self.meta, &file, &data, 0o600)
        } else {
            atomic::write_new_file_volatile(&self.active, &file, &data, 0o600)
        }
    }

    /// Delete `rec`'s record; a committed one durably.
    fn delete_record(&self, rec: &Record) -> Result<()> {
        let dir = self.records_dir(rec.kind);
        dir.remove_file(&meta_name(&rec.name))?;
        if durable(rec.kind) {
            dir.sync()?;
        }
        Ok(())
    }

    /// The backend's usage of a snapshot, told its parent's directory (by id).
    fn usage_of(&self, id: &str, path: &Path, dir: &Dir, parent: Option<&str>) -> Result<Usage> {
        let snap = SnapshotDir { id, path, dir };
        match parent {
            None => self.backend.usage(&snap, None),
            Some(pid) => {
                let pdir = self.snaps.open_dir(OsStr::new(pid))?;
                let ppath = self.root.path().join(SNAPSHOTS).join(pid);
                let parent = SnapshotDir {
                    id: pid,
                    path: &ppath,
                    dir: &pdir,
                };
                self.backend.usage(&snap, Some(&parent))
            }
        }
    }

    /// The directory id of `rec`'s parent, if it has one.
    fn parent_id(&self, rec: &Record) -> Result<Option<String>> {
        rec.parent
            .as_deref()
            .map(|p| self.get(p).map(|r| r.id))
            .transpose()
    }

    /// Create the active snapshot or view `key` on `parent` and return its mounts.
    pub fn create(
        &self,
        op: &'static str,
        key: &str,
        parent: Option<&str>,
        kind: Kind,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        validate_key(op, key)?;
        if self.exists(key)? {
            return Err(Error::new(ErrorKind::AlreadyExists, op, key, "key taken"));
        }
        let build = self.begin(op, parent)?;
        let mut recs = build.chain.clone();
        // The chain read by `begin` still holds: committed records never change (but for
        // a deferred sync's mark, which the mounts do not use), and
        // the new child's marker keeps its parent from being removed.
        recs.insert(0, self.finish(op, build, key, kind, labels, None)?);
        self.with_dirs(&recs, |dirs| {
            self.backend
                .mounts(&dirs[0], &dirs[1..], kind == Kind::Active)
        })
    }

    /// The mounts of the active snapshot or view `key`.
    pub fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        let rec = self.get(key)?;
        if rec.kind == Kind::Committed {
            return Err(Error::new(
                ErrorKind::NotFound,
                "mounts",
                key,
                "no active snapshot by that key",
            ));
        }
        self.mounts_of(&rec, rec.kind == Kind::Active)
    }

    /// The mounts of any snapshot (committed ones read-only), for the store's own use.
    pub fn mounts_of(&self, rec: &Record, writable: bool) -> Result<Vec<Mount>> {
        let mut recs = vec![rec.clone()];
        recs.extend(self.chain("mounts", rec.parent.as_deref())?);
        self.with_dirs(&recs, |dirs| {
            self.backend
                .mounts(&dirs[0], &dirs[1..], writable && rec.kind == Kind::Active)
        })
    }

    /// The content directories of `rec` and its parents, nearest first, as confined roots
    /// (for diffs and applying).
    pub fn content_roots(&self, rec: &Record) -> Result<Vec<Root>> {
        let mut recs = vec![rec.clone()];
        recs.extend(self.chain("content", rec.parent.as_deref())?);
        let snaps = self.root.sub_root(SNAPSHOTS, Confine::Beneath)?;
        recs.iter()
            .map(|r| snaps.sub_root(Path::new(&r.id).join(CONTENT_DIR), Confine::InRoot))
            .collect()
    }

    /// Content roots of the parents of a build, nearest first.
    pub fn build_lowers(&self, build: &Build) -> Result<Vec<Root>> {
        let snaps = self.root.sub_root(SNAPSHOTS, Confine::Beneath)?;
        build
            .parent_ids
            .iter()
            .map(|id| snaps.sub_root(Path::new(id).join(CONTENT_DIR), Confine::InRoot))
            .collect()
    }

    /// Commit the active snapshot `key` as `name`.
    pub fn commit(
        &self,
        name: &str,
        key: &str,
        labels: Labels,
        layer: Option<LayerRecord>,
    ) -> Result<Record> {
        validate_key("commit", name)?;
        let rec = self
            .get(key)
            .map_err(|e| e.with_kind_if_not_found("commit"))?;
        match rec.kind {
            Kind::Active => {}
            Kind::View => {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "commit",
                    key,
                    "a view cannot be committed",
                ));
            }
            Kind::Committed => return Err(not_found("commit", key)),
        }
        let dir = self.snaps.open_dir(OsStr::new(&rec.id))?;
        let path = self.root.path().join(SNAPSHOTS).join(&rec.id);
        let parent_id = self.parent_id(&rec)?;
        let usage = self.usage_of(&rec.id, &path, &dir, parent_id.as_deref())?;
        // Nothing of a container was synced (see the module docs): its directory, its
        // files. Make them as durable as an applied layer's (one `syncfs`, as apply
        // does) before a durable record names them, outside the store lock. That also
        // makes durable the layers below whose sync was deferred.
        let below = unsynced_names(&self.chain("commit", rec.parent.as_deref())?);
        rustix::fs::syncfs(&dir).map_err(|e| Error::errno("commit", "syncfs", e))?;
        let _lock = self.lock()?;
        let first_id = rec.id;
        let rec = self.get(key)?;
        if rec.kind != Kind::Active || rec.id != first_id {
            return Err(Error::new(
                ErrorKind::Conflict,
                "commit",
                key,
                "changed meanwhile",
            ));
        }
        if self.exists(name)? {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "commit",
                name,
                "name taken",
            ));
        }
        let new = Record {
            name: name.to_owned(),
            kind: Kind::Committed,
            created: now(),
            labels: if labels.is_empty() {
                rec.labels.clone()
            } else {
                labels
            },
            usage: Some((usage.size, usage.inodes)),
            layer,
            ..rec.clone()
        };
        self.backend.seal(&SnapshotDir {
            id: &rec.id,
            path: &path,
            dir: &dir,
        })?;
        self.mark_synced(&below)?;
        if let Some(p) = &new.parent {
            self.add_child(p, name)?;
        }
        self.write_record(&new)?;
        // Killed from here on, the active record is superseded and dropped on open.
        self.active.remove_file(&meta_name(key))?;
        if let Some(p) = &rec.parent {
            self.drop_child(p, key)?;
        }
        Ok(new)
    }

    /// Remove `key`, refused with `InUse` while it has children or `busy` says so.
    pub fn remove(&self, key: &str, busy: impl Fn(&Record) -> Result<bool>) -> Result<()> {
        validate_key("remove", key)?;
        let lock = self.lock()?;
        let rec = self.get(key)?;
        if let Some(child) = self.live_child(key)? {
            return Err(Error::new(
                ErrorKind::InUse,
                "remove",
                key,
                format!("{child} is a child"),
            ));
        }
        if busy(&rec)? {
            return Err(Error::new(ErrorKind::InUse, "remove", key, "mounted"));
        }
        self.delete_record(&rec)?;
        if let Some(p) = &rec.parent {
            self.drop_child(p, key)?;
        }
        // An unlocked `.tmp-` name: if we die before removing it, the next open does.
        let doomed = OsString::from(format!(
            "{}{}",
            atomic::TEMP_PREFIX,
            atomic::random_suffix()
        ));
        self.snaps
            .rename(OsStr::new(&rec.id), &self.snaps, &doomed)?;
        drop(lock);
        match self.backend.discard(&self.snaps, &doomed) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Usage of `key`: computed now for active snapshots and for applied layers (whose
    /// trees never change), recorded at commit for committed containers.
    pub fn usage(&self, key: &str) -> Result<Usage> {
        let rec = self.get(key)?;
        if let Some((size, inodes)) = rec.usage {
            return Ok(Usage { size, inodes });
        }
        let dir = self.snaps.open_dir(OsStr::new(&rec.id))?;
        let path = self.root.path().join(SNAPSHOTS).join(&rec.id);
        let parent_id = self.parent_id(&rec)?;
        self.usage_of(&rec.id, &path, &dir, parent_id.as_deref())
    }

    /// Entries a check can list to see that nothing was left behind: temporary entries
    /// in the store's directories.
    pub fn leftovers(&self) -> Result<Vec<OsString>> {
        let mut out = Vec::new();
        for d in [
            &self.snaps,
            &self.meta,
            &self.active,
            &self.children,
            &self.locks,
            self.root.dir(),
        ] {
            out.extend(
                d.entries()?
                    .into_iter()
                    .map(|(n, _)| n)
                    .filter(|n| atomic::is_temp_name(n)),
            );
        }
        Ok(out)
    }
}

trait NotFoundOp {
    fn with_kind_if_not_found(self, op: &'static str) -> Error;
}

impl NotFoundOp for Error {
    fn with_kind_if_not_found(self, op: &'static str) -> Error {
        if self.kind() == ErrorKind::NotFound {
            Error::new(
                ErrorKind::NotFound,
                op,
                self.context().to_owned(),
                "no such snapshot",
            )
        } else {
            self
        }
    }
}

impl crate::Driver for Snapshots {
    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create("prepare", key, parent, Kind::Active, labels)
    }

    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        self.create("view", key, parent, Kind::View, labels)
    }

    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()> {
        Snapshots::commit(self, name, key, labels, None).map(|_| ())
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        Snapshots::mounts(self, key)
    }

    fn remove(&self, key: &str) -> Result<()> {
        Snapshots::remove(self, key, |_| Ok(false))
    }

    fn stat(&self, key: &str) -> Result<Info> {
        Ok(self.get(key)?.info())
    }

    fn walk(&self, f: &mut dyn FnMut(&Info)) -> Result<()> {
        for rec in self.all()? {
            f(&rec.info());
        }
        Ok(())
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        Snapshots::usage(self, key)
    }
}
