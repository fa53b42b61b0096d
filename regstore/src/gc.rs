//! Garbage collection: delete the blobs no manifest needs, the repository links to them,
//! and optionally the manifests no tag needs, in registry:2's layout.
//!
//! **Mark.** Every manifest revision of every repository is kept; with
//! [`GcOptions::delete_untagged`], only the manifests a tag points at, the children of a
//! kept index (recursively) and the referrers (`subject`) of a kept manifest. A revision
//! whose link is damaged is always kept (what it is cannot be known). A kept manifest
//! marks its own bytes, its config, its layers and its children, in every repository.
//!
//! **Sweep.** A manifest not kept loses its revision link and its tags' history entries.
//! Every blob under `blobs/` that is not marked is deleted (its whole
//! `blobs/<alg>/<xx>/<hex>` directory), and so is every repository's `_layers` link to
//! a deleted blob (registry:2 leaves those links dangling).
//!
//! **Concurrent pushers: a lock, plus a grace period.** Collection holds the store-wide
//! lock [`GC_LOCK`] exclusively from its first read to its last delete, and every call
//! that makes content referenced (upload commit, blob mount, manifest put, tag) holds it
//! shared. So a manifest put either completes before the mark (its blobs are marked) or
//! starts after the sweep, and then finds its blobs or fails with
//! `MANIFEST_BLOB_UNKNOWN`: no manifest can ever be stored, nor a tag point, at a blob
//! the sweep took. A lock alone would still take the blob of a pusher whose blob landed
//! just before the collection and whose manifest comes just after, and make it push that
//! blob again; the grace period ([`GcOptions::grace`], an hour by default) spares an
//! unmarked blob while its data or any repository's link to it is younger than that at
//! the start of the collection; a pusher can also hold a [`lease`] (the same lock,
//! shared) across its whole push. Uploads in progress (`_uploads`) are never touched. A
//! lock was chosen over leases because `flock` is released by the kernel when a holder
//! dies, so a killed pusher can never wedge the collector, and it costs one open and one
//! `flock` per reference-making call.
//!
//! **Backends without locks** ([`crate::StorageDriver::lock`] answers `None`: memory,
//! object stores): only the grace period protects pushers. A push whose manifest comes
//! more than the grace period after its blobs, while a collection runs, may fail with
//! `MANIFEST_BLOB_UNKNOWN` (and must push its blobs again), and a manifest put that
//! overlaps the sweep of a blob it names can be stored while that blob is gone. Collect
//! such a store only while nothing pushes to it (as registry:2 requires of every backend)
//! or keep the grace period well above the longest push.
//!
//! **Deliberate differences from registry:2 2.8** (`garbage-collect`): with
//! `--delete-untagged` it deletes the untagged per-platform manifests of a tagged index
//! (distribution #3178: the image can then no longer be pulled, and their layers go
//! too) and the untagged referrers of a tagged image; cargohold keeps both. It leaves
//! `_layers` links to deleted blobs behind; cargohold removes them. It stops at a
//! manifest whose bytes are missing; cargohold keeps going (that manifest marks nothing
//! and is reported). With a zero grace period the set of blobs deleted is otherwise the
//! same.
//!
//! A manifest whose bytes do not match its digest or are not JSON stops the collection
//! with `Corrupt` before anything is deleted (what it references cannot be known: run
//! [`crate::fsck`] first).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use cargohold_core::lock::{FileLock, LockMode};
use cargohold_core::{Digest, Error, ErrorKind, Result};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::registry::Registry;
use crate::{FileInfo, Key, layout};

/// The name of the store-wide lock (a file at the root of the key space).
pub const GC_LOCK: &str = ".cargohold-gc.lock";

/// The default [`GcOptions::grace`].
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// Taken shared by every call that makes content referenced; `None` without locks.
pub(crate) fn writer_lock(reg: &Registry) -> Result<Option<FileLock>> {
    reg.driver().lock(GC_LOCK, LockMode::Shared)
}

/// A push lease: while the returned lock is held, no collection runs (one that is
/// running is waited for), so a pusher that holds it from its first blob to its manifest
/// can never lose a blob to a collection, whatever the grace period. Hold it for one push
/// and drop it: collections wait for every holder. `None` on a backend without locks.
pub fn lease(reg: &Registry) -> Result<Option<FileLock>> {
    writer_lock(reg)
}

/// What a collection reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GcProgress {
    /// The manifests of repository `done` of `total` are read.
    Marked {
        /// The repository.
        repository: String,
        /// Repositories done so far.
        done: usize,
        /// Repositories in all.
        total: usize,
    },
    /// Blob `done` of `total` was considered by the sweep.
    Swept {
        /// Blobs considered so far.
        done: usize,
        /// Blobs in the store.
        total: usize,
    },
}

/// How to collect.
pub struct GcOptions<'a> {
    /// Delete nothing; report what would be deleted and the bytes it would free.
    pub dry_run: bool,
    /// Also delete the manifests no tag needs (see the module doc for what is kept).
    pub delete_untagged: bool,
    /// Unmarked blobs whose data or links are younger than this are kept
    /// ([`DEFAULT_GRACE`]; zero sweeps like registry:2).
    pub grace: Duration,
    /// Called as the collection goes.
    pub progress: Option<&'a mut dyn FnMut(GcProgress)>,
}

impl Default for GcOptions<'_> {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            delete_untagged: false,
            grace: DEFAULT_GRACE,
            progress: None,
        }
    }
}

impl std::fmt::Debug for GcOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcOptions")
            .field("dry_run", &self.dry_run)
            .field("delete_untagged", &self.delete_untagged)
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

/// What a collection did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Whether nothing was deleted.
    pub dry_run: bool,
    /// Repositories visited.
    pub repositories: usize,
    /// Manifest revisions kept.
    pub manifests_kept: usize,
    /// Distinct digests marked (blobs and manifests).
    pub marked: usize,
    /// Manifest revisions deleted, as `(repository, digest)`, sorted.
    pub manifests_deleted: Vec<(String, Digest)>,
    /// Blobs deleted, sorted.
    pub blobs_deleted: Vec<Digest>,
    /// Bytes of the blobs deleted (what the collection frees).
    pub bytes_deleted: u64,
    /// Repository links to deleted blobs that were removed, as `(repository, digest)`.
    pub links_deleted: Vec<(String, Digest)>,
    /// Unmarked blobs kept because they are younger than the grace period.
    pub blobs_spared: Vec<Digest>,
    /// Kept manifests whose bytes are missing (nothing could be marked for them).
    pub manifests_missing: Vec<(String, Digest)>,
}

/// What one manifest references.
#[derive(Debug, Default)]
struct Refs {
    /// Config and layers.
    blobs: Vec<Digest>,
    /// Manifests an index lists.
    children: Vec<Digest>,
    /// The manifest this one refers to.
    subject: Option<Digest>,
}

fn corrupt(repo: &str, d: &Digest, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::Corrupt,
        "gc mark",
        format!("{repo}@{d}"),
        format!("{why}; run fsck before collecting"),
    )
}

fn digest_of(repo: &str, m: &Digest, v: &Value) -> Result<Option<Digest>> {
    match v.get("digest") {
        None => Ok(None),
        Some(s) => s
            .as_str()
            .and_then(|s| Digest::parse(s).ok())
            .map(Some)
            .ok_or_else(|| corrupt(repo, m, "a descriptor's digest is malformed")),
    }
}

/// The references of the manifest `d` of `repo`; `None` when its bytes are missing.
fn references(reg: &Registry, repo: &str, d: &Digest) -> Result<Option<Refs>> {
    let bytes = match reg.driver().get_content(&layout::blob_data(d)) {
        Ok(b) => b,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if Digest::of(d.algorithm(), &bytes) != *d {
        return Err(corrupt(repo, d, "manifest bytes do not match their digest"));
    }
    let v: Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(repo, d, format!("not JSON: {e}")))?;
    let mut refs = Refs::default();
    let list = |f: &str| v.get(f).and_then(Value::as_array).into_iter().flatten();
    for c in list("manifests") {
        if let Some(c) = digest_of(repo, d, c)? {
            refs.children.push(c);
        }
    }
    for b in v.get("config").into_iter().chain(list("layers")) {
        if let Some(b) = digest_of(repo, d, b)? {
            refs.blobs.push(b);
        }
    }
    if let Some(s) = v.get("subject") {
        refs.subject = digest_of(repo, d, s)?;
    }
    Ok(Some(refs))
}

/// The digests the tags of `repo` point at. A tag whose link is damaged stops the
/// collection (what it tags cannot be known).
fn tagged(reg: &Registry, repo: &str) -> Result<HashSet<Digest>> {
    let mut out = HashSet::new();
    for t in list_or_empty(reg, &layout::tags(repo))? {
        let current = layout::tag_current(repo, t.file_name());
        if let Some(d) = reg.read_link(&current, None, ErrorCode::ManifestUnknown)? {
            out.insert(d);
        }
    }
    Ok(out)
}

/// The manifests of `repo` to keep, from `roots`: children of kept indexes and referrers
/// of kept manifests, until nothing changes.
fn keep_set(roots: HashSet<Digest>, refs: &HashMap<Digest, Option<Refs>>) -> HashSet<Digest> {
    let mut keep = HashSet::new();
    let mut work: Vec<Digest> = roots.into_iter().collect();
    loop {
        while let Some(d) = work.pop() {
            if !keep.insert(d.clone()) {
                continue;
            }
            if let Some(Some(r)) = refs.get(&d) {
                work.extend(r.children.iter().cloned());
            }
        }
        for (d, r) in refs {
            if !keep.contains(d)
                && r.as_ref()
                    .and_then(|r| r.subject.as_ref())
                    .is_some_and(|s| keep.contains(s))
            {
                work.push(d.clone());
            }
        }
        if work.is_empty() {
            return keep;
        }
    }
}

pub(crate) fn list_or_empty(reg: &Registry, key: &Key) -> Result<Vec<Key>> {
    match reg.driver().list(key) {
        Ok(k) => Ok(k),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Every blob directory under `blobs/` (as [`blob_dirs`] finds them) with what its
/// `data` file is (`None`: missing), from one walk of `blobs/` (on an object store, one
/// paginated listing instead of a lookup per blob).
pub(crate) fn blob_infos(reg: &Registry) -> Result<Vec<(Digest, Key, Option<FileInfo>)>> {
    let blobs = Key::parse(&format!("{}/blobs", layout::V2))?;
    let all = match reg.driver().walk(&blobs) {
        Ok(all) => all,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let depth = |k: &Key| k.as_str().len() > blobs.as_str().len();
    let mut files: HashMap<Key, FileInfo> = HashMap::new();
    let mut dirs = Vec::new();
    for i in all {
        if !depth(&i.key) {
            continue;
        }
        let rel = &i.key.as_str()[blobs.as_str().len() + 1..];
        let parts: Vec<&str> = rel.split('/').collect();
        match (parts.as_slice(), i.is_dir) {
            ([alg, prefix, hex], true) => {
                if let Ok(d) = Digest::parse(&format!("{alg}:{hex}"))
                    && d.hex().starts_with(prefix)
                {
                    dirs.push(d);
                }
            }
            ([_, _, _, "data"], false) => {
                files.insert(i.key.clone(), i);
            }
            _ => {}
        }
    }
    Ok(dirs
        .into_iter()
        .map(|d| {
            let data = layout::blob_data(&d);
            let info = files.remove(&data);
            (d, data, info)
        })
        .collect())
}

/// Every blob directory under `blobs/`, as `(digest, data key)`; entries whose names
/// are not digests (or sit under the wrong two-character prefix) are left out.
pub(crate) fn blob_dirs(reg: &Registry) -> Result<Vec<(Digest, Key)>> {
    let mut out = Vec::new();
    let blobs = Key::parse(&format!("{}/blobs", layout::V2))?;
    for alg in list_or_empty(reg, &blobs)? {
        for prefix in list_or_empty(reg, &alg)? {
            for dir in list_or_empty(reg, &prefix)? {
                let name = format!("{}:{}", alg.file_name(), dir.file_name());
                if let Ok(d) = Digest::parse(&name)
                    && d.hex().starts_with(prefix.file_name())
                {
                    let data = layout::blob_data(&d);
                    out.push((d, data));
                }
            }
        }
    }
    Ok(out)
}

/// The digests named by the `<alg>/<hex>` directories below `dir` (link directories).
pub(crate) fn linked_digests(reg: &Registry, dir: &Key) -> Result<Vec<(Digest, Key)>> {
    let mut out = Vec::new();
    for alg in list_or_empty(reg, dir)? {
        for hex in list_or_empty(reg, &alg)? {
            if let Ok(d) = Digest::parse(&format!("{}:{}", alg.file_name(), hex.file_name())) {
                out.push((d, hex));
            }
        }
    }
    Ok(out)
}

fn layers_dir(repo: &str) -> Result<Key> {
    layout::repository(repo).join("_layers")
}

/// Collect garbage; see the module doc for what is kept, deleted and locked.
pub fn collect(reg: &Registry, mut opts: GcOptions<'_>) -> Result<GcReport> {
    let _lock = reg.driver().lock(GC_LOCK, LockMode::Exclusive)?;
    let start = SystemTime::now();
    let cutoff = start
        .checked_sub(opts.grace)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let grace = !opts.grace.is_zero();
    let mut report = GcReport {
        dry_run: opts.dry_run,
        ..GcReport::default()
    };
    let repos = reg.catalog(None, None)?;
    report.repositories = repos.len();
    let mut marked: HashSet<Digest> = HashSet::new();
    let mut young_links: HashSet<Digest> = HashSet::new();
    let mut layer_links: Vec<(String, Digest, Key)> = Vec::new();
    let mut doomed: Vec<(String, Digest)> = Vec::new();
    for (i, repo) in repos.iter().enumerate() {
        let mut refs = HashMap::new();
        let mut damaged = HashSet::new();
        for (d, dir) in linked_digests(reg, &layout::revisions(repo))? {
            let link = dir.join("link")?;
            match reg.read_link(&link, Some(&d), ErrorCode::ManifestUnknown) {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => {
                    damaged.insert(d.clone());
                }
            }
            let r = references(reg, repo, &d)?;
            refs.insert(d, r);
        }
        let keep = if opts.delete_untagged {
            let mut roots = tagged(reg, repo)?;
            roots.retain(|d| refs.contains_key(d));
            roots.extend(damaged);
            keep_set(roots, &refs)
        } else {
            refs.keys().cloned().collect()
        };
        for (d, r) in &refs {
            if !keep.contains(d) {
                doomed.push((repo.clone(), d.clone()));
                continue;
            }
            report.manifests_kept += 1;
            marked.insert(d.clone());
            match r {
                Some(r) => marked.extend(r.blobs.iter().chain(&r.children).cloned()),
                None => report.manifests_missing.push((repo.clone(), d.clone())),
            }
        }
        for (d, dir) in linked_digests(reg, &layers_dir(repo)?)? {
            if grace {
                let modified = reg.driver().stat(&dir.join("link")?).ok();
                if modified
                    .and_then(|i| i.modified)
                    .is_some_and(|t| t >= cutoff)
                {
                    young_links.insert(d.clone());
                }
            }
            layer_links.push((repo.clone(), d, dir));
        }
        if let Some(p) = opts.progress.as_mut() {
            p(GcProgress::Marked {
                repository: repo.clone(),
                done: i + 1,
                total: repos.len(),
            });
        }
    }
    report.marked = marked.len();
    doomed.sort();
    report.manifests_missing.sort();
    if !opts.dry_run {
        let mut by_repo: HashMap<&str, HashSet<&Digest>> = HashMap::new();
        for (repo, d) in &doomed {
            by_repo.entry(repo.as_str()).or_default().insert(d);
        }
        let mut links = Vec::new();
        for (repo, gone) in by_repo {
            // One listing per tag's history, not one lookup per tag and manifest.
            for tag in list_or_empty(reg, &layout::tags(repo))? {
                for (d, dir) in linked_digests(reg, &tag.join("index")?)? {
                    if gone.contains(&d) {
                        links.push(dir);
                    }
                }
            }
            for d in gone {
                let rev = layout::revision_link(repo, d);
                links.push(rev.parent().expect("a link has a directory"));
            }
        }
        reg.driver().delete_many(&links)?;
    }
    report.manifests_deleted = doomed;
    let blobs = blob_infos(reg)?;
    let mut deleted = HashSet::new();
    let mut doomed_dirs = Vec::new();
    for (i, (d, data, info)) in blobs.iter().enumerate() {
        if !marked.contains(d) {
            let young = grace
                && (info
                    .as_ref()
                    .and_then(|i| i.modified)
                    .is_some_and(|t| t >= cutoff)
                    || young_links.contains(d));
            if young {
                report.blobs_spared.push(d.clone());
            } else {
                doomed_dirs.push(data.parent().expect("data has a directory"));
                report.bytes_deleted += info.as_ref().map_or(0, |i| i.size);
                report.blobs_deleted.push(d.clone());
                deleted.insert(d.clone());
            }
        }
        if let Some(p) = opts.progress.as_mut() {
            p(GcProgress::Swept {
                done: i + 1,
                total: blobs.len(),
            });
        }
    }
    // The sweep's deletions in batches: the blobs, then the links to them.
    let mut dangling = Vec::new();
    for (repo, d, dir) in layer_links {
        if deleted.contains(&d) {
            dangling.push(dir);
            report.links_deleted.push((repo, d));
        }
    }
    if !opts.dry_run {
        reg.driver().delete_many(&doomed_dirs)?;
        reg.driver().delete_many(&dangling)?;
    }
    report.blobs_deleted.sort();
    report.blobs_spared.sort();
    report.links_deleted.sort();
    Ok(report)
}
