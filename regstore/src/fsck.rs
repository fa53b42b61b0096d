//! Checking a store: every blob's bytes against its digest, every link, tag and manifest
//! of every repository, and uploads left behind; optionally repairing what can be
//! repaired without destroying evidence or anything healthy.
//!
//! What is checked, in order, and what `repair` does about it:
//! - blobs (`blobs/<alg>/<xx>/<hex>/data`), hashed as streams by
//!   [`FsckOptions::threads`] threads: bytes that do not hash to the digest are
//!   [`Damage::CorruptBlob`]; repair moves the blob's directory into the quarantine
//!   ([`QUARANTINE`], outside `blobs/`, one entry per blob and repair, never deleted by
//!   cargohold), so it is no longer served but stays for inspection. A blob directory
//!   without data is [`Damage::EmptyBlobDir`]; repair removes it.
//! - repository links (`_layers`, `_manifests/revisions`): an empty, malformed or wrong
//!   link is [`Damage::BadLink`], a link to a blob the store lacks (or just quarantined)
//!   is [`Damage::DanglingLink`]; repair removes the link's directory.
//! - tags: a `current` link that is damaged, or names a manifest the repository does not
//!   have, is [`Damage::DanglingTag`]; repair removes that `current` link (the tag's
//!   history stays).
//! - manifests: bytes that are not a manifest are [`Damage::UnreadableManifest`]; a
//!   config, layer (without `urls`) or child manifest the repository lacks is
//!   [`Damage::MissingReference`]. Neither is repaired: pushing the missing content again
//!   heals the manifest, and the manifest is the evidence of what is missing.
//! - uploads started longer than [`FsckOptions::upload_age`] ago (or with no readable
//!   start time) are [`Damage::StaleUpload`]; repair removes them, as registry:2's upload
//!   purger does.
//!
//! A check without repair holds the collector's lock ([`crate::gc::GC_LOCK`]) shared, so
//! pushes go on and no collection deletes under it; a blob that appears during the check
//! is hashed when a link to it is met. A repair holds the lock exclusively, so no push
//! races it. Entries whose names are not digests or tags are left alone.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cargohold_core::lock::LockMode;
use cargohold_core::{Digest, Error, ErrorKind, Hasher, Result};
use serde_json::Value;

use crate::error::ErrorCode;
use crate::gc::{blob_dirs, linked_digests, list_or_empty};
use crate::manifests::classify;
use crate::registry::Registry;
use crate::uploads::parse_rfc3339;
use crate::{Key, layout};

/// The default [`FsckOptions::upload_age`] (registry:2 purges uploads after a week).
pub const DEFAULT_UPLOAD_AGE: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where repair moves corrupt blobs: `<QUARANTINE>/<alg>/<hex>.<unix nanoseconds>/data`.
pub const QUARANTINE: &str = "/cargohold/quarantine";

/// What a check reports as it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsckProgress {
    /// Blob `done` of `total` was hashed (`bytes` so far).
    Blob {
        /// Blobs hashed.
        done: usize,
        /// Blobs in all.
        total: usize,
        /// Bytes hashed so far.
        bytes: u64,
    },
    /// Repository `done` of `total` was checked.
    Repository {
        /// The repository.
        repository: String,
        /// Repositories done.
        done: usize,
        /// Repositories in all.
        total: usize,
    },
}

/// How to check.
pub struct FsckOptions<'a> {
    /// Repair what is damaged (see the module doc); otherwise only report.
    pub repair: bool,
    /// Uploads older than this are stale.
    pub upload_age: Duration,
    /// Threads hashing blobs (at least one; two by default).
    pub threads: usize,
    /// Called as the check goes, on the calling thread.
    pub progress: Option<&'a mut dyn FnMut(FsckProgress)>,
}

impl Default for FsckOptions<'_> {
    fn default() -> Self {
        FsckOptions {
            repair: false,
            upload_age: DEFAULT_UPLOAD_AGE,
            threads: 2,
            progress: None,
        }
    }
}

impl std::fmt::Debug for FsckOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsckOptions")
            .field("repair", &self.repair)
            .field("upload_age", &self.upload_age)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// One kind of damage found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// A blob's bytes hash to `actual`, not to its name.
    CorruptBlob {
        /// The blob's name.
        digest: Digest,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A blob directory without data.
    EmptyBlobDir {
        /// The blob's name.
        digest: Digest,
    },
    /// A link file that is empty, malformed, missing or names another digest.
    BadLink {
        /// The link's key.
        key: Key,
    },
    /// A link to a blob the store does not have.
    DanglingLink {
        /// The link's key.
        key: Key,
        /// The blob it names.
        digest: Digest,
    },
    /// A tag whose current link is damaged or names a manifest the repository lacks.
    DanglingTag {
        /// The repository.
        repository: String,
        /// The tag.
        tag: String,
    },
    /// A manifest whose bytes are not a manifest.
    UnreadableManifest {
        /// The repository.
        repository: String,
        /// The manifest.
        digest: Digest,
    },
    /// A manifest naming content the repository lacks.
    MissingReference {
        /// The repository.
        repository: String,
        /// The manifest.
        manifest: Digest,
        /// The missing blob or child manifest.
        missing: Digest,
    },
    /// An upload older than the allowed age (or of unknown age).
    StaleUpload {
        /// The repository.
        repository: String,
        /// The upload id.
        id: String,
    },
}

impl Damage {
    /// A stable lower-case name of the kind of damage (`corrupt_blob`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            Damage::CorruptBlob { .. } => "corrupt_blob",
            Damage::EmptyBlobDir { .. } => "empty_blob_dir",
            Damage::BadLink { .. } => "bad_link",
            Damage::DanglingLink { .. } => "dangling_link",
            Damage::DanglingTag { .. } => "dangling_tag",
            Damage::UnreadableManifest { .. } => "unreadable_manifest",
            Damage::MissingReference { .. } => "missing_reference",
            Damage::StaleUpload { .. } => "stale_upload",
        }
    }
}

/// One finding and what repair did about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What is wrong.
    pub damage: Damage,
    /// Whether repair dealt with it (removed it, or moved it into the quarantine).
    pub repaired: bool,
    /// Where a quarantined blob went.
    pub quarantined: Option<Key>,
}

/// What a check found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FsckReport {
    /// Blobs hashed.
    pub blobs_checked: usize,
    /// Bytes hashed.
    pub bytes_checked: u64,
    /// Repositories checked.
    pub repositories: usize,
    /// Links and tags read.
    pub links_checked: usize,
    /// Manifests parsed.
    pub manifests_checked: usize,
    /// Everything found, in the order found.
    pub findings: Vec<Finding>,
}

impl FsckReport {
    /// Whether nothing was found.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }

    /// Findings that were not repaired.
    pub fn unrepaired(&self) -> usize {
        self.findings.iter().filter(|f| !f.repaired).count()
    }

    /// How many findings of each kind ([`Damage::kind`]), sorted by kind.
    pub fn counts(&self) -> Vec<(&'static str, usize)> {
        let mut m: std::collections::BTreeMap<&'static str, usize> = Default::default();
        for f in &self.findings {
            *m.entry(f.damage.kind()).or_default() += 1;
        }
        m.into_iter().collect()
    }
}

/// What the check knows of a blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blob {
    /// Bytes match the digest.
    Good,
    /// Bytes do not match, and the blob is still in place (check without repair).
    Corrupt,
    /// Not in `blobs/` (absent, or quarantined by this repair).
    Absent,
}

struct Checker<'r, 'o> {
    reg: &'r Registry,
    opts: FsckOptions<'o>,
    report: FsckReport,
    blobs: HashMap<Digest, Blob>,
    /// What repair removes, in one batch at the end of the check.
    removals: Vec<Key>,
}

/// Hash the data of blob `d`: `(actual digest, bytes)`.
fn hash(reg: &Registry, d: &Digest, data: &Key) -> Result<(Digest, u64)> {
    let mut r = reg.driver().reader(data, 0)?;
    let mut h = Hasher::new(d.algorithm());
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io("fsck hash", d, e)),
        };
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    Ok((h.finish(), total))
}

fn nanos_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

impl Checker<'_, '_> {
    fn record(&mut self, damage: Damage, repaired: bool, quarantined: Option<Key>) {
        self.report.findings.push(Finding {
            damage,
            repaired,
            quarantined,
        });
    }

    /// Record `damage`, removing `key` (a file or directory) when repairing (batched:
    /// [`check`] deletes them all at its end, and fails if that fails).
    fn found(&mut self, damage: Damage, remove: Option<Key>) -> Result<()> {
        let mut repaired = false;
        if self.opts.repair
            && let Some(key) = remove
        {
            self.removals.push(key);
            repaired = true;
        }
        self.record(damage, repaired, None);
        Ok(())
    }

    /// Record what hashing blob `d` gave, quarantining or removing when repairing.
    fn blob_result(&mut self, d: &Digest, data: &Key, res: Result<(Digest, u64)>) -> Result<()> {
        let dir = data.parent().expect("data has a directory");
        match res {
            Ok((actual, n)) => {
                self.report.blobs_checked += 1;
                self.report.bytes_checked += n;
                if actual == *d {
                    self.blobs.insert(d.clone(), Blob::Good);
                    return Ok(());
                }
                let damage = Damage::CorruptBlob {
                    digest: d.clone(),
                    actual,
                };
                if !self.opts.repair {
                    self.blobs.insert(d.clone(), Blob::Corrupt);
                    self.record(damage, false, None);
                    return Ok(());
                }
                let to = Key::parse(&format!(
                    "{QUARANTINE}/{}/{}.{}",
                    d.algorithm(),
                    d.hex(),
                    nanos_now()
                ))?;
                self.reg.driver().rename(&dir, &to)?;
                self.blobs.insert(d.clone(), Blob::Absent);
                self.record(damage, true, Some(to));
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
                self.blobs.insert(d.clone(), Blob::Absent);
                self.found(Damage::EmptyBlobDir { digest: d.clone() }, Some(dir))?;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Hash every blob with `threads` threads; results are recorded on this thread.
    fn all_blobs(&mut self) -> Result<()> {
        let blobs = blob_dirs(self.reg)?;
        let total = blobs.len();
        let next = AtomicUsize::new(0);
        let threads = self.opts.threads.clamp(1, 64);
        let reg = self.reg;
        std::thread::scope(|s| -> Result<()> {
            let (tx, rx) = mpsc::channel();
            for _ in 0..threads {
                let tx = tx.clone();
                let (next, blobs) = (&next, &blobs);
                s.spawn(move || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((d, data)) = blobs.get(i) else { break };
                        if tx.send((i, hash(reg, d, data))).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            for (done, (i, res)) in rx.iter().enumerate() {
                let (d, data) = &blobs[i];
                if let Err(e) = self.blob_result(d, data, res) {
                    // Stop the workers before giving up.
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                    return Err(e);
                }
                if let Some(p) = self.opts.progress.as_mut() {
                    p(FsckProgress::Blob {
                        done: done + 1,
                        total,
                        bytes: self.report.bytes_checked,
                    });
                }
            }
            Ok(())
        })
    }

    /// What is known of blob `d`, hashing it now if it appeared after the blob pass.
    fn blob(&mut self, d: &Digest) -> Result<Blob> {
        if let Some(b) = self.blobs.get(d) {
            return Ok(*b);
        }
        let data = layout::blob_data(d);
        match self.reg.driver().stat(&data) {
            Ok(i) if !i.is_dir => {
                let res = hash(self.reg, d, &data);
                self.blob_result(d, &data, res)?;
            }
            Ok(_) => {
                self.blobs.insert(d.clone(), Blob::Absent);
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.blobs.insert(d.clone(), Blob::Absent);
            }
            Err(e) => return Err(e),
        }
        Ok(self.blobs[d])
    }

    /// Check the links under `dir` (`<alg>/<hex>/link`); returns the sound ones.
    fn links(&mut self, dir: &Key) -> Result<HashSet<Digest>> {
        let mut out = HashSet::new();
        for (d, hex) in linked_digests(self.reg, dir)? {
            self.report.links_checked += 1;
            let link = hex.join("link")?;
            let bytes = match self.reg.driver().get_content(&link) {
                Ok(b) => Some(b),
                Err(e) if e.kind() == ErrorKind::NotFound => None,
                Err(e) => return Err(e),
            };
            let ok = bytes.is_some_and(|b| {
                layout::parse_link(&link, &b, Some(&d), ErrorCode::BlobUnknown).is_ok()
            });
            if !ok {
                self.found(Damage::BadLink { key: link }, Some(hex))?;
            } else if self.blob(&d)? == Blob::Absent {
                let damage = Damage::DanglingLink {
                    key: link,
                    digest: d,
                };
                self.found(damage, Some(hex))?;
            } else {
                out.insert(d);
            }
        }
        Ok(out)
    }

    fn manifest(
        &mut self,
        repo: &str,
        d: &Digest,
        layers: &HashSet<Digest>,
        revisions: &HashSet<Digest>,
    ) -> Result<()> {
        if self.blob(d)? != Blob::Good {
            return Ok(()); // reported as a corrupt blob already
        }
        self.report.manifests_checked += 1;
        let unreadable = Damage::UnreadableManifest {
            repository: repo.to_owned(),
            digest: d.clone(),
        };
        let bytes = self.reg.driver().get_content(&layout::blob_data(d))?;
        let Ok((mt, v)) = classify(&bytes, None) else {
            return self.found(unreadable, None);
        };
        let list = |f: &str| v.get(f).and_then(Value::as_array).into_iter().flatten();
        let mut wanted = Vec::new();
        if mt.is_index() {
            wanted.extend(list("manifests").map(|c| (c, true)));
        } else {
            for b in v.get("config").into_iter().chain(list("layers")) {
                let foreign = b
                    .get("urls")
                    .and_then(Value::as_array)
                    .is_some_and(|u| !u.is_empty());
                if !foreign {
                    wanted.push((b, false));
                }
            }
        }
        let mut missing = Vec::new();
        for (desc, child) in wanted {
            let Some(m) = desc
                .get("digest")
                .and_then(Value::as_str)
                .and_then(|s| Digest::parse(s).ok())
            else {
                return self.found(unreadable, None);
            };
            let linked = if child {
                revisions.contains(&m)
            } else {
                layers.contains(&m)
            };
            // A corrupt blob still in place is reported once, as a corrupt blob.
            if !linked || self.blob(&m)? == Blob::Absent {
                missing.push(m);
            }
        }
        for m in missing {
            let damage = Damage::MissingReference {
                repository: repo.to_owned(),
                manifest: d.clone(),
                missing: m,
            };
            self.found(damage, None)?;
        }
        Ok(())
    }

    fn repository(&mut self, repo: &str) -> Result<()> {
        let layers = self.links(&layout::repository(repo).join("_layers")?)?;
        let revisions = self.links(&layout::revisions(repo))?;
        let mut sorted: Vec<&Digest> = revisions.iter().collect();
        sorted.sort();
        for d in sorted {
            self.manifest(repo, d, &layers, &revisions)?;
        }
        for tag in list_or_empty(self.reg, &layout::tags(repo))? {
            let name = tag.file_name().to_owned();
            if crate::names::check_tag(&name).is_err() {
                continue;
            }
            let current = layout::tag_current(repo, &name);
            let target = match self.reg.driver().get_content(&current) {
                Ok(b) => layout::parse_link(&current, &b, None, ErrorCode::ManifestUnknown).ok(),
                Err(e) if e.kind() == ErrorKind::NotFound => continue, // not a live tag
                Err(e) => return Err(e),
            };
            self.report.links_checked += 1;
            if !target.is_some_and(|t| revisions.contains(&t)) {
                let damage = Damage::DanglingTag {
                    repository: repo.to_owned(),
                    tag: name,
                };
                self.found(damage, current.parent())?;
            }
        }
        let cutoff = SystemTime::now()
            .checked_sub(self.opts.upload_age)
            .unwrap_or(UNIX_EPOCH);
        for up in list_or_empty(self.reg, &layout::uploads(repo))? {
            let id = up.file_name().to_owned();
            let started = self
                .reg
                .driver()
                .get_content(&layout::upload_started(repo, &id))
                .ok()
                .and_then(|b| parse_rfc3339(std::str::from_utf8(&b).ok()?));
            if started.is_none_or(|t| t < cutoff) {
                if self.opts.repair {
                    // Its multipart upload goes with it (an unreadable state names none).
                    match crate::upload_parts::abort(self.reg.driver(), repo, &id) {
                        Err(e) if e.kind() != ErrorKind::Corrupt => return Err(e),
                        _ => {}
                    }
                }
                let damage = Damage::StaleUpload {
                    repository: repo.to_owned(),
                    id,
                };
                self.found(damage, Some(up))?;
            }
        }
        Ok(())
    }
}

/// Check the store, repairing with [`FsckOptions::repair`]; see the module doc for what
/// is checked and what repair does.
pub fn check(reg: &Registry, opts: FsckOptions<'_>) -> Result<FsckReport> {
    let mode = if opts.repair {
        LockMode::Exclusive
    } else {
        LockMode::Shared
    };
    let _lock = reg.driver().lock(crate::gc::GC_LOCK, mode)?;
    let mut c = Checker {
        reg,
        opts,
        report: FsckReport::default(),
        blobs: HashMap::new(),
        removals: Vec::new(),
    };
    c.all_blobs()?;
    let repos = reg.catalog(None, None)?;
    c.report.repositories = repos.len();
    for (i, repo) in repos.iter().enumerate() {
        c.repository(repo)?;
        if let Some(p) = c.opts.progress.as_mut() {
            p(FsckProgress::Repository {
                repository: repo.clone(),
                done: i + 1,
                total: repos.len(),
            });
        }
    }
    reg.driver().delete_many(&c.removals)?;
    Ok(c.report)
}
