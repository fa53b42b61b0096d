//! The local driver: volumes in a directory on this machine, in Docker's layout.
//!
//! # Layout
//!
//! ```text
//! STORE/<name>/_data               the content (Docker's)
//! STORE/<name>/opts.json           Docker's record of type/device/o/size (only with options)
//! STORE/<name>/cargohold.json      labels, created, anonymous, options, populated (durable)
//! STORE/<name>/cargohold-holders.json  holders and their boot id (written without fsync)
//! STORE/<name>/cargohold.lock      the volume's lock
//! STORE/<name>/cargohold-disk.img  the ext4 image of a size-capped volume
//! STORE/.held.<name>               a volume that has holders (found by `open` after a crash)
//! ```
//!
//! Docker's local driver pointed at `STORE` lists and mounts the same volumes (it skips
//! files, and ignores the `cargohold.*` files in a volume's directory).
//!
//! # Concurrency and crashes
//!
//! - `create` builds the whole volume directory under a temporary name and renames it
//!   into place, so a volume is either fully there or not at all, and of two racing
//!   creators one wins and the other compares options with the winner's.
//! - Everything that reads or changes holders holds the volume's `flock`. `remove`
//!   renames the directory away while holding it, and a waiter that then gets the lock
//!   sees the name no longer leads to the file it locked (`NotFound`).
//! - Holders are kept on disk with the boot they were taken in. [`LocalDriver::open`]
//!   visits the volumes marked as held and drops holders that cannot be real: ones
//!   from an earlier boot, and ones of a volume that must be mounted but is not; it
//!   unmounts volume mounts that no holder accounts for. It reports what it dropped.

mod content;
mod state;

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use cargohold_core::atomic::{self, TempDir};
use cargohold_core::{Confine, Error, ErrorKind, Result, Root};

use crate::mounter::{Kernel, Mounter};
use crate::options::{self, Backing, DockerOpts, MountSpec};
use crate::{Capabilities, Driver, Options, Scope, Volume, check_name, names, rfc3339};

pub use content::PruneReport;
pub use state::State;

/// A volume as the local driver describes it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct VolumeInfo {
    /// The name.
    pub name: String,
    /// Where the content is (mounted there while held, for volumes with options).
    pub mountpoint: PathBuf,
    /// Creation time, RFC 3339 UTC.
    pub created_at: String,
    /// Labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// Driver options as given.
    pub options: Options,
    /// Created without a name.
    pub anonymous: bool,
    /// Mount ids holding it.
    pub holders: Vec<String>,
}

/// A holder or mount `open` found to be left over from a crash, and dropped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Stale {
    /// The volume.
    pub volume: String,
    /// The holders dropped (empty when a mount without holders was undone).
    pub holders: Vec<String>,
    /// Why.
    pub reason: String,
}

/// What to create: options, labels, and whether the volume is anonymous.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Driver options (`type`, `device`, `o`, `size`).
    pub options: Options,
    /// Labels to keep with the volume.
    pub labels: std::collections::BTreeMap<String, String>,
}

/// Volumes in a directory on this machine.
#[derive(Debug)]
pub struct LocalDriver {
    root: Root,
    path: PathBuf,
    mounter: Arc<dyn Mounter>,
    stale: Vec<Stale>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl LocalDriver {
    /// Open (creating it if needed) the store directory `path`, clean what killed
    /// writers left, and reconcile holders with the mount table.
    pub fn open(path: impl AsRef<Path>) -> Result<LocalDriver> {
        LocalDriver::open_with(path, Arc::new(Kernel))
    }

    /// [`LocalDriver::open`] with another [`Mounter`] (tests record instead of mounting).
    pub fn open_with(path: impl AsRef<Path>, mounter: Arc<dyn Mounter>) -> Result<LocalDriver> {
        let path = path.as_ref();
        std::fs::create_dir_all(path)
            .map_err(|e| Error::io("open volume store", path.display(), e))?;
        let path = path
            .canonicalize()
            .map_err(|e| Error::io("open volume store", path.display(), e))?;
        let root = Root::open(&path, Confine::Beneath)?;
        atomic::clean_stale(root.dir())?;
        let mut driver = LocalDriver {
            root,
            path,
            mounter,
            stale: Vec::new(),
        };
        driver.stale = driver.reconcile()?;
        Ok(driver)
    }

    /// The store directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What [`LocalDriver::open`] found left over from a crash and dropped.
    pub fn stale(&self) -> &[Stale] {
        &self.stale
    }

    /// Where the content of `name` is.
    pub fn data_path(&self, name: &str) -> PathBuf {
        self.path.join(name).join(state::DATA)
    }

    /// Create a volume: named, or anonymous (a generated name) when `name` is `None`.
    /// See [`Driver::create`] for the rules; returns the volume.
    pub fn create_volume(&self, name: Option<&str>, req: &CreateRequest) -> Result<VolumeInfo> {
        let (name, anonymous) = match name {
            Some(n) => (n.to_string(), false),
            None => (names::anonymous_name(), true),
        };
        check_name(&name)?;
        if let Some(k) = req.labels.keys().find(|k| k.is_empty() || k.contains('\0')) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "volume label",
                k,
                "bad label key",
            ));
        }
        let backing = options::parse(&req.options)?;
        if let Some(existing) = self.existing(&name, &req.options)? {
            return Ok(existing);
        }
        let tmp = TempDir::new(self.root.dir(), 0o701)?;
        tmp.dir().mkdir(OsStr::new(state::DATA), 0o755)?;
        if !req.options.is_empty() {
            let opts =
                serde_json::to_vec(&DockerOpts::from_options(&req.options)?).expect("serialises");
            atomic::write_new_file(tmp.dir(), OsStr::new(state::DOCKER_OPTS), &opts, 0o600)?;
        }
        if let Backing::Sized(bytes) = backing {
            let image = self.path.join(tmp.name()).join(state::IMAGE);
            self.mounter.make_image(&image, bytes)?;
        }
        let st = State {
            created: now(),
            labels: req.labels.clone(),
            anonymous,
            options: req.options.clone(),
            holders: Default::default(),
            boot_id: None,
            populated: false,
        };
        state::write(tmp.dir(), &st)?;
        match tmp.publish(self.root.dir(), OsStr::new(&name)) {
            Ok(_) => Ok(self.info(&name, &st)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                self.existing(&name, &req.options)?.ok_or(e)
            }
            Err(e) => Err(e),
        }
    }

    /// The volume `name` if it exists with exactly `options`; `AlreadyExists` if it
    /// exists with others.
    fn existing(&self, name: &str, options: &Options) -> Result<Option<VolumeInfo>> {
        let dir = match self.root.dir().open_dir(OsStr::new(name)) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let st = state::read(&dir, name)?;
        if &st.options != options {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                "create volume",
                name,
                "a volume with this name exists with other options",
            ));
        }
        Ok(Some(self.info(name, &st)))
    }

    fn info(&self, name: &str, st: &State) -> VolumeInfo {
        VolumeInfo {
            name: name.to_string(),
            mountpoint: self.data_path(name),
            created_at: rfc3339(st.created),
            labels: st.labels.clone(),
            options: st.options.clone(),
            anonymous: st.anonymous,
            holders: st.holders.iter().cloned().collect(),
        }
    }

    /// Describe the volume `name`.
    pub fn inspect(&self, name: &str) -> Result<VolumeInfo> {
        check_name(name)?;
        let dir = self
            .root
            .dir()
            .open_dir(OsStr::new(name))
            .map_err(|e| e.with_kind_if_not_found(name))?;
        Ok(self.info(name, &state::read(&dir, name)?))
    }

    /// Every volume's name, sorted. Reads the store directory only.
    pub fn names(&self) -> Result<Vec<String>> {
        let mut out: Vec<String> = self
            .root
            .dir()
            .entries()?
            .into_iter()
            .filter(|(_, t)| *t == rustix::fs::FileType::Directory)
            .filter_map(|(n, _)| n.into_string().ok())
            .filter(|n| check_name(n).is_ok())
            .collect();
        out.sort();
        Ok(out)
    }

    /// Remove the volume `name` and its content. With holders: `InUse`, unless `force`,
    /// which unmounts it first.
    pub fn remove_volume(&self, name: &str, force: bool) -> Result<()> {
        check_name(name)?;
        let mut vol = state::lock(self.root.dir(), name)?;
        let mut st = state::read(&vol.dir, name)?;
        let data = self.data_path(name);
        if !st.holders.is_empty() {
            if !force {
                return Err(Error::new(
                    ErrorKind::InUse,
                    "remove volume",
                    name,
                    format!("held by {} mount(s)", st.holders.len()),
                ));
            }
            let ids: Vec<String> = st.holders.iter().cloned().collect();
            for id in ids {
                self.release(&mut vol, &mut st, &id)?;
            }
        }
        if self.mounter.is_mounted(&data)? {
            return Err(Error::new(
                ErrorKind::InUse,
                "remove volume",
                name,
                "something is mounted on its content",
            ));
        }
        // Gone under its name in one rename; the rest is clean-up that `clean_stale`
        // finishes if this process dies.
        let trash = std::ffi::OsString::from(format!(".tmpx-{}", atomic::random_suffix()));
        self.root
            .dir()
            .rename(OsStr::new(name), self.root.dir(), &trash)?;
        let _ = self.root.dir().remove_file(&state::held_marker(name));
        drop(vol);
        self.root.dir().remove_all(&trash)
    }

    /// Hold `name` for `id` with its lock held (see [`Driver::mount`]).
    fn hold(&self, vol: &mut state::Locked, st: &mut State, id: &str) -> Result<PathBuf> {
        if id.is_empty() || id.contains('\0') {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "mount volume",
                id,
                "bad mount id",
            ));
        }
        let data = self.data_path(&vol.name);
        if st.holders.contains(id) {
            return Ok(data);
        }
        let mounted_now = if st.holders.is_empty() {
            self.mark_held(&vol.name)?;
            match self.mount_spec(&vol.name, st)? {
                Some(spec) if !self.mounter.is_mounted(&data)? => {
                    self.mounter.mount(&spec, &data)?;
                    true
                }
                _ => false,
            }
        } else {
            false
        };
        st.holders.insert(id.to_string());
        st.boot_id = cargohold_core::boot::boot_id();
        if let Err(e) = state::write_holders(&vol.dir, st) {
            st.holders.remove(id);
            if mounted_now {
                let _ = self.mounter.unmount(&data);
            }
            return Err(e);
        }
        Ok(data)
    }

    /// Release `id`'s hold with the lock held (see [`Driver::unmount`]).
    fn release(&self, vol: &mut state::Locked, st: &mut State, id: &str) -> Result<()> {
        if !st.holders.remove(id) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "unmount volume",
                format!("{} {id}", vol.name),
                "this mount id does not hold the volume",
            ));
        }
        if st.holders.is_empty() {
            let data = self.data_path(&vol.name);
            if self.mount_spec(&vol.name, st)?.is_some() && self.mounter.is_mounted(&data)? {
                self.mounter.unmount(&data)?;
            }
            st.boot_id = None;
        }
        state::write_holders(&vol.dir, st)?;
        if st.holders.is_empty() {
            let _ = self.root.dir().remove_file(&state::held_marker(&vol.name));
        }
        Ok(())
    }

    fn mark_held(&self, name: &str) -> Result<()> {
        self.root
            .dir()
            .create_file(&state::held_marker(name), 0o600, false)
            .map(drop)
    }

    /// How a volume's content is mounted, if it is.
    fn mount_spec(&self, name: &str, st: &State) -> Result<Option<MountSpec>> {
        Ok(match options::parse(&st.options)? {
            Backing::Directory => None,
            Backing::Mount(spec) => Some(spec),
            Backing::Sized(_) => Some(MountSpec {
                fstype: "ext4".into(),
                source: self
                    .path
                    .join(name)
                    .join(state::IMAGE)
                    .to_string_lossy()
                    .into_owned(),
                flags: rustix::mount::MountFlags::empty(),
                data: String::new(),
                loop_file: true,
            }),
        })
    }

    /// Drop holders and mounts left over from a crash (see the module docs).
    pub fn reconcile(&self) -> Result<Vec<Stale>> {
        let mut stale = Vec::new();
        let boot = cargohold_core::boot::boot_id();
        let marked: Vec<String> = self
            .root
            .dir()
            .entries()?
            .into_iter()
            .filter_map(|(n, _)| state::marked_volume(&n).map(str::to_string))
            .collect();
        for name in marked {
            let vol = match state::lock(self.root.dir(), &name) {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    let _ = self.root.dir().remove_file(&state::held_marker(&name));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let mut st = state::read(&vol.dir, &name)?;
            let data = self.data_path(&name);
            let needs_mount = self.mount_spec(&name, &st)?.is_some();
            let reason = if st.holders.is_empty() {
                None
            } else if st.boot_id != boot {
                Some("taken before the last reboot")
            } else if needs_mount && !self.mounter.is_mounted(&data)? {
                Some("the volume is not mounted")
            } else {
                None
            };
            if let Some(reason) = reason {
                stale.push(Stale {
                    volume: name.clone(),
                    holders: std::mem::take(&mut st.holders).into_iter().collect(),
                    reason: reason.to_string(),
                });
                st.boot_id = None;
                state::write_holders(&vol.dir, &st)?;
            }
            if st.holders.is_empty() {
                let _ = self.root.dir().remove_file(&state::held_marker(&name));
            }
            drop(vol);
        }
        // Mounts on a volume's content that no holder accounts for.
        let prefix = &self.path;
        for mp in crate::mounter::mount_points()? {
            let Ok(rest) = mp.strip_prefix(prefix) else {
                continue;
            };
            let parts: Vec<_> = rest.iter().collect();
            if parts.len() != 2 || parts[1] != OsStr::new(state::DATA) {
                continue;
            }
            let Some(name) = parts[0].to_str() else {
                continue;
            };
            if check_name(name).is_err() {
                continue;
            }
            let vol = match state::lock(self.root.dir(), name) {
                Ok(v) => v,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let st = state::read(&vol.dir, name)?;
            if st.holders.is_empty() && self.mount_spec(name, &st)?.is_some() {
                self.mounter.unmount(&mp)?;
                stale.push(Stale {
                    volume: name.to_string(),
                    holders: Vec::new(),
                    reason: "mounted without holders".into(),
                });
            }
        }
        Ok(stale)
    }
}

trait NotFoundVolume {
    fn with_kind_if_not_found(self, name: &str) -> Error;
}

impl NotFoundVolume for Error {
    fn with_kind_if_not_found(self, name: &str) -> Error {
        if self.kind() == ErrorKind::NotFound {
            Error::new(ErrorKind::NotFound, "volume", name, "no such volume")
        } else {
            self
        }
    }
}

impl Driver for LocalDriver {
    fn create(&self, name: &str, options: &Options) -> Result<()> {
        self.create_volume(
            Some(name),
            &CreateRequest {
                options: options.clone(),
                labels: Default::default(),
            },
        )
        .map(drop)
    }

    fn remove(&self, name: &str) -> Result<()> {
        self.remove_volume(name, false)
    }

    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        check_name(name)?;
        let mut vol = state::lock(self.root.dir(), name)?;
        let mut st = state::read(&vol.dir, name)?;
        self.hold(&mut vol, &mut st, id)
    }

    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        check_name(name)?;
        let mut vol = state::lock(self.root.dir(), name)?;
        let mut st = state::read(&vol.dir, name)?;
        self.release(&mut vol, &mut st, id)
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        check_name(name)?;
        self.root
            .dir()
            .stat(OsStr::new(name))
            .map_err(|e| e.with_kind_if_not_found(name))?;
        Ok(Some(self.data_path(name)))
    }

    fn get(&self, name: &str) -> Result<Volume> {
        let info = self.inspect(name)?;
        let mut status = std::collections::BTreeMap::new();
        status.insert("holders".to_string(), serde_json::json!(info.holders.len()));
        if !info.labels.is_empty() {
            status.insert("labels".to_string(), serde_json::json!(info.labels));
        }
        Ok(Volume {
            name: info.name,
            mountpoint: Some(info.mountpoint),
            created_at: Some(info.created_at),
            status,
        })
    }

    fn list(&self) -> Result<Vec<Volume>> {
        Ok(self
            .names()?
            .into_iter()
            .map(|name| Volume {
                mountpoint: Some(self.data_path(&name)),
                name,
                created_at: None,
                status: Default::default(),
            })
            .collect())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            scope: Scope::Local,
        }
    }
}
