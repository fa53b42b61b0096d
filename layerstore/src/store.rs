//! The layer store: image layers by chain ID and containers on top of them, over the
//! shared [`Snapshots`] bookkeeping, safe for several processes at once.
//!
//! A layer is a committed snapshot named by its chain ID. Applying builds it in a locked
//! temporary directory (invisible to everyone) and publishes it by rename; only the
//! per-chain-ID lock `locks/chain-<hex>.lock` is held while a tar is extracted, so
//! different layers extract in parallel and the same layer extracts once.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use cargohold_core::{Digest, Error, ErrorKind, FileLock, LockMode, Result};

use crate::chain_id::chain_id;
use crate::drivers::Backend;
use crate::layer_tar::{self, Expect};
use crate::mounts::MountTable;
use crate::snapshots::{LayerRecord, Record, Snapshots};
use crate::{Driver, DriverChoice, Info, Kind, Labels, Mount, Usage};

/// A layer: a read-only snapshot made from an OCI layer tar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    /// Its name: the chain ID of it and everything below it.
    pub chain_id: Digest,
    /// The layer below, by chain ID.
    pub parent: Option<Digest>,
    /// Digest of its uncompressed tar.
    pub diff_id: Digest,
    /// Digest of the compressed tar it was applied from, when known.
    pub compressed_digest: Option<Digest>,
    /// Uncompressed tar size in bytes.
    pub size: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Whether its files are known to be on stable storage. Only a layer applied with
    /// [`ApplyOptions::defer_sync`] is not, until [`LayerStore::sync`] (or a durable
    /// layer or commit on top of it) made it so.
    pub durable: bool,
}

/// Options for [`LayerStore::apply_layer`].
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// The diff ID the tar must have; lets a repeated apply return without reading it.
    pub expected_diff_id: Option<Digest>,
    /// The digest the (compressed) stream must have.
    pub expected_compressed_digest: Option<Digest>,
    /// Labels for the layer.
    pub labels: Labels,
    /// Publish the layer without waiting for its files to reach the disk (no `syncfs`),
    /// as containerd does by default. The layer is usable at once, in this process and
    /// others; it becomes durable by [`LayerStore::sync`], by a durable layer or commit
    /// built on it, or by the kernel's own write-back. A store opened after a crash, a
    /// reboot or a new mount of its filesystem drops every layer not known to be
    /// durable by then, with the layers and containers built on it, so a power cut
    /// costs a pull again, never a torn layer. Ignored (the apply syncs) where the
    /// kernel cannot name the mount (before Linux 6.8).
    pub defer_sync: bool,
}

/// Layers and containers in one directory.
#[derive(Debug)]
pub struct LayerStore {
    snaps: Snapshots,
    mounts: MountTable,
    extractions: AtomicU64,
}

fn layer_of(rec: &Record) -> Result<Layer> {
    let l = rec
        .layer
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "layer", &rec.name, "not a layer"))?;
    let parse = |s: &str| Digest::parse(s).map_err(|e| e.with_kind(ErrorKind::Corrupt));
    Ok(Layer {
        chain_id: parse(&rec.name)?,
        parent: rec.parent.as_deref().map(parse).transpose()?,
        diff_id: l.diff_id.clone(),
        compressed_digest: l.compressed_digest.clone(),
        size: l.size,
        created: rec.created,
        durable: rec.unsynced.is_none(),
    })
}

/// The file in a store's root that names its driver.
const DRIVER_FILE: &str = "driver";

fn backend_for(choice: DriverChoice, root: &Path) -> Result<Box<dyn Backend>> {
    use crate::drivers::{btrfs::Btrfs, overlay::Overlay, vfs::Vfs};
    let choice = match choice {
        DriverChoice::Auto => {
            std::fs::create_dir_all(root).map_err(|e| Error::io("open", root.display(), e))?;
            let dir = cargohold_core::Dir::open_path(root)?;
            match dir.open_file(OsStr::new(DRIVER_FILE), rustix::fs::OFlags::RDONLY) {
                Ok(mut f) => {
                    let mut name = String::new();
                    std::io::Read::read_to_string(&mut f, &mut name)
                        .map_err(|e| Error::io("open", DRIVER_FILE, e))?;
                    match name.trim() {
                        "vfs" => DriverChoice::Vfs,
                        "overlay" => DriverChoice::Overlay,
                        "btrfs" => DriverChoice::Btrfs,
                        other => {
                            return Err(Error::new(
                                ErrorKind::Corrupt,
                                "open",
                                root.display(),
                                format!("unknown recorded driver {other:?}"),
                            ));
                        }
                    }
                }
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    if crate::drivers::btrfs::is_btrfs(&dir)? {
                        DriverChoice::Btrfs
                    } else if rustix::process::geteuid().is_root() {
                        DriverChoice::Overlay
                    } else {
                        DriverChoice::Vfs
                    }
                }
                Err(e) => return Err(e),
            }
        }
        c => c,
    };
    Ok(match choice {
        DriverChoice::Vfs => Box::new(Vfs),
        DriverChoice::Overlay => Box::new(Overlay::new()),
        DriverChoice::Btrfs => {
            std::fs::create_dir_all(root).map_err(|e| Error::io("open", root.display(), e))?;
            Box::new(Btrfs::for_store(root)?)
        }
        DriverChoice::Auto => unreachable!("resolved above"),
    })
}

/// Record the store's driver on first open; refuse another one after.
fn check_driver(snaps: &Snapshots) -> Result<()> {
    let want = snaps.backend().name();
    let dir = snaps.root().dir();
    let name = OsStr::new(DRIVER_FILE);
    let recorded = match snaps.root().read(DRIVER_FILE) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            match cargohold_core::atomic::write_new_file(dir, name, want.as_bytes(), 0o644) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::AlreadyExists => snaps.root().read(DRIVER_FILE)?,
                Err(e) => return Err(e),
            }
        }
        Err(e) => return Err(e),
    };
    let recorded = String::from_utf8_lossy(&recorded);
    if recorded.trim() != want {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "open",
            snaps.root().path().display(),
            format!(
                "the store was made with the {} driver, not {want}",
                recorded.trim()
            ),
        ));
    }
    Ok(())
}

impl LayerStore {
    /// Open (creating if needed) the store at `root` with `driver`, removing what killed
    /// writers left (temporary directories and files, orphan snapshot directories,
    /// mount records whose mounts are gone).
    pub fn open(root: impl AsRef<Path>, driver: DriverChoice) -> Result<LayerStore> {
        let root = root.as_ref();
        Self::open_with(root, backend_for(driver, root)?)
    }

    /// Open with any backend.
    pub fn open_with(root: impl AsRef<Path>, backend: Box<dyn Backend>) -> Result<LayerStore> {
        let snaps = Snapshots::open(root, backend)?;
        check_driver(&snaps)?;
        let mounts = MountTable::open(&snaps)?;
        Ok(LayerStore {
            snaps,
            mounts,
            extractions: AtomicU64::new(0),
        })
    }

    /// The shared bookkeeping (for tests and wrappers).
    pub fn snapshots(&self) -> &Snapshots {
        &self.snaps
    }

    /// How many layer tars this handle extracted (dedup hits do not count).
    pub fn extractions(&self) -> u64 {
        self.extractions.load(Ordering::Relaxed)
    }

    /// The layer `chain_id`; `NotFound` if absent.
    pub fn layer(&self, chain_id: &Digest) -> Result<Layer> {
        layer_of(&self.snaps.get(&chain_id.to_string())?)
    }

    /// The directory holding the layer's files (vfs: its whole tree; overlay: its own
    /// changes), for reading only: a layer never changes.
    pub fn layer_dir(&self, chain_id: &Digest) -> Result<std::path::PathBuf> {
        let rec = self.snaps.get(&chain_id.to_string())?;
        layer_of(&rec)?;
        let roots = self.snaps.content_roots(&rec)?;
        Ok(roots[0].path().to_path_buf())
    }

    /// Every layer, in no particular order.
    pub fn layers(&self) -> Result<Vec<Layer>> {
        self.snaps
            .all()?
            .iter()
            .filter(|r| r.layer.is_some())
            .map(layer_of)
            .collect()
    }

    fn existing(&self, chain: &Digest) -> Result<Option<Layer>> {
        match self.layer(chain) {
            Ok(l) => Ok(Some(l)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn chain_lock(&self, chain: &Digest) -> Result<FileLock> {
        let name = format!("chain-{}.lock", &chain.hex()[..32]);
        FileLock::lock(self.snaps.locks(), OsStr::new(&name), LockMode::Exclusive)
    }

    /// The lock of "the stream with this digest applied on `parent`", for an apply that
    /// knows the compressed digest but not the diff ID.
    fn stream_lock(&self, parent: Option<&Digest>, compressed: &Digest) -> Result<FileLock> {
        let key = chain_id(parent, compressed);
        let name = format!("stream-{}.lock", &key.hex()[..32]);
        FileLock::lock(self.snaps.locks(), OsStr::new(&name), LockMode::Exclusive)
    }

    /// The layer applied on `parent` from a stream with the digest `compressed`: a plain
    /// tar's digest is its diff ID, a compressed one is recorded with the layer.
    fn existing_from_stream(
        &self,
        parent: Option<&Digest>,
        compressed: &Digest,
    ) -> Result<Option<Layer>> {
        if let Some(l) = self.existing(&chain_id(parent, compressed))? {
            return Ok(Some(l));
        }
        Ok(self.layers()?.into_iter().find(|l| {
            l.parent.as_ref() == parent && l.compressed_digest.as_ref() == Some(compressed)
        }))
    }

    /// Apply the OCI layer tar (plain, gzip or zstd) from `reader` on top of the layer
    /// `parent`, returning the layer.
    ///
    /// Rules: the same tar on the same parent yields the existing layer without
    /// extracting again (with `expected_diff_id` or `expected_compressed_digest`, without
    /// reading `reader` at all); a layer being built is invisible until complete;
    /// concurrent applies of one layer extract it once when either digest is given
    /// (without one, each reads its stream to learn what it holds, and all but the first
    /// to finish drop their copy); `NotFound` for a missing parent; `DigestMismatch` when
    /// the tar does not match an expected digest (nothing is kept). Unless
    /// `defer_sync` is set, the layer returned is durable, even one found already there
    /// that was applied with its sync deferred.
    pub fn apply_layer(
        &self,
        reader: &mut (dyn Read + Send),
        parent: Option<&Digest>,
        opts: &ApplyOptions,
    ) -> Result<Layer> {
        let l = self.apply_or_find(reader, parent, opts)?;
        if opts.defer_sync || l.durable {
            return Ok(l);
        }
        // Found, applied earlier without its sync: this caller wants it durable.
        self.sync()?;
        self.layer(&l.chain_id)
    }

    fn apply_or_find(
        &self,
        reader: &mut (dyn Read + Send),
        parent: Option<&Digest>,
        opts: &ApplyOptions,
    ) -> Result<Layer> {
        let parent_name = parent.map(Digest::to_string);
        if let Some(p) = parent {
            self.layer(p).map_err(|e| match e.kind() {
                ErrorKind::NotFound => {
                    Error::new(ErrorKind::NotFound, "apply", p, "no such parent layer")
                }
                _ => e,
            })?;
        }
        let known = opts.expected_diff_id.as_ref().map(|d| chain_id(parent, d));
        let _held = match &known {
            Some(chain) => {
                if let Some(l) = self.existing(chain)? {
                    return Ok(l);
                }
                let lock = self.chain_lock(chain)?;
                if let Some(l) = self.existing(chain)? {
                    return Ok(l);
                }
                Some(lock)
            }
            None => match &opts.expected_compressed_digest {
                Some(compressed) => {
                    if let Some(l) = self.existing_from_stream(parent, compressed)? {
                        return Ok(l);
                    }
                    let lock = self.stream_lock(parent, compressed)?;
                    if let Some(l) = self.existing_from_stream(parent, compressed)? {
                        return Ok(l);
                    }
                    Some(lock)
                }
                None => None,
            },
        };
        let mut build = self.snaps.begin("apply", parent_name.as_deref())?;
        let deferred = match (opts.defer_sync, self.snaps.session()) {
            (true, Some(session)) => {
                build.defer_sync(session.to_owned());
                true
            }
            _ => false,
        };
        let target = build.content()?;
        let lowers = self.snaps.build_lowers(&build)?;
        let applied = layer_tar::apply(
            reader,
            &target,
            &lowers,
            self.snaps.backend().layout(),
            Expect {
                diff_id: opts.expected_diff_id.as_ref(),
                compressed: opts.expected_compressed_digest.as_ref(),
                sync: !deferred,
            },
        )?;
        self.extractions.fetch_add(1, Ordering::Relaxed);
        let chain = chain_id(parent, &applied.diff_id);
        // Unless the chain's own lock is held, take it now: another process may be
        // applying the same layer under it (knowing its diff ID, or another stream).
        let _late = match (&known, &_held) {
            (Some(_), _) => None,
            _ => {
                let lock = self.chain_lock(&chain)?;
                if let Some(l) = self.existing(&chain)? {
                    return Ok(l); // the build is dropped and removed
                }
                Some(lock)
            }
        };
        let rec = self.snaps.finish(
            "apply",
            build,
            &chain.to_string(),
            Kind::Committed,
            opts.labels.clone(),
            Some(LayerRecord {
                diff_id: applied.diff_id,
                compressed_digest: applied.compressed_digest,
                size: applied.size,
            }),
        )?;
        layer_of(&rec)
    }

    /// Make every layer applied with [`ApplyOptions::defer_sync`] in this session
    /// durable (one `syncfs` of the store's filesystem); returns their chain IDs. Call
    /// it before a planned reboot or unmount to keep them: a store opened in another
    /// session drops the ones still not durable.
    pub fn sync(&self) -> Result<Vec<Digest>> {
        self.snaps
            .sync()?
            .iter()
            .map(|n| Digest::parse(n).map_err(|e| e.with_kind(ErrorKind::Corrupt)))
            .collect()
    }

    /// Remove the layer `chain_id`; `InUse` while a child layer or container is on it.
    pub fn remove_layer(&self, chain_id: &Digest) -> Result<()> {
        self.layer(chain_id)?;
        self.remove(&chain_id.to_string())
    }

    /// Prepare the writable container snapshot `key` on the layer `parent`.
    pub fn prepare_container(
        &self,
        key: &str,
        parent: Option<&Digest>,
        labels: Labels,
    ) -> Result<Vec<Mount>> {
        self.prepare(key, parent.map(Digest::to_string).as_deref(), labels)
    }

    /// Write the changes of the active snapshot `key` against its parent as an
    /// uncompressed layer tar to `out`; returns the diff ID and size.
    pub fn diff(&self, key: &str, out: &mut dyn Write) -> Result<(Digest, u64)> {
        let rec = self.snaps.get(key)?;
        let roots = self.snaps.content_roots(&rec)?;
        layer_tar::export(&roots[0], &roots[1..], self.snaps.backend().layout(), out)
    }

    /// The paths the active snapshot `key` changed against its parent, sorted.
    pub fn changes(&self, key: &str) -> Result<Vec<layer_tar::Change>> {
        let rec = self.snaps.get(key)?;
        let roots = self.snaps.content_roots(&rec)?;
        layer_tar::changes(&roots[0], &roots[1..], self.snaps.backend().layout())
    }

    /// Commit the container `key` into a new layer (its diff becomes the layer's tar) and
    /// return it. Commit removes the active key. If that layer exists already, the
    /// container is removed and the existing layer returned.
    pub fn commit_container(&self, key: &str, labels: Labels) -> Result<Layer> {
        let rec = self.snaps.get(key)?;
        if rec.kind != Kind::Active {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "commit",
                key,
                "not a writable container",
            ));
        }
        let parent = rec
            .parent
            .as_deref()
            .map(|p| Digest::parse(p).map_err(|e| e.with_kind(ErrorKind::InvalidArgument)))
            .transpose()?;
        let (diff_id, size) = self.diff(key, &mut std::io::sink())?;
        let chain = chain_id(parent.as_ref(), &diff_id);
        let _lock = self.chain_lock(&chain)?;
        if let Some(l) = self.existing(&chain)? {
            self.remove(key)?;
            return Ok(l);
        }
        let layer = LayerRecord {
            diff_id,
            compressed_digest: None,
            size,
        };
        let rec = self
            .snaps
            .commit(&chain.to_string(), key, labels, Some(layer))?;
        layer_of(&rec)
    }

    /// Mount the active snapshot or view `key` at `target`. Mount counts are kept on
    /// disk: a second mount of the same key at the same target (from any process) shares
    /// the first; at another target it is `Conflict`.
    pub fn mount(&self, key: &str, target: &Path) -> Result<()> {
        let mounts = self.snaps.mounts(key)?;
        self.mounts.mount(&self.snaps, key, &mounts, target)
    }

    /// Drop one mount of whatever is mounted at `target`; the last one unmounts.
    /// `NotFound` if this store mounted nothing there.
    pub fn unmount(&self, target: &Path) -> Result<()> {
        self.mounts.unmount(&self.snaps, target)
    }
}

impl Driver for LayerStore {
    fn prepare(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        Driver::prepare(&self.snaps, key, parent, labels)
    }

    fn view(&self, key: &str, parent: Option<&str>, labels: Labels) -> Result<Vec<Mount>> {
        Driver::view(&self.snaps, key, parent, labels)
    }

    fn commit(&self, name: &str, key: &str, labels: Labels) -> Result<()> {
        Driver::commit(&self.snaps, name, key, labels)
    }

    fn mounts(&self, key: &str) -> Result<Vec<Mount>> {
        self.snaps.mounts(key)
    }

    /// Also refused with `InUse` while the snapshot is mounted through [`LayerStore::mount`].
    fn remove(&self, key: &str) -> Result<()> {
        self.snaps
            .remove(key, |rec| self.mounts.is_mounted(&rec.name))
    }

    fn stat(&self, key: &str) -> Result<Info> {
        Driver::stat(&self.snaps, key)
    }

    fn walk(&self, f: &mut dyn FnMut(&Info)) -> Result<()> {
        Driver::walk(&self.snaps, f)
    }

    fn usage(&self, key: &str) -> Result<Usage> {
        self.snaps.usage(key)
    }
}
