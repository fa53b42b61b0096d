//! The system calls a volume driver makes, behind a trait: the kernel in production, a
//! recorder in tests of what cannot run here (an NFS mount needs a kernel NFS client).

use std::collections::BTreeSet;
use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use cargohold_core::{Error, ErrorKind, Result};
use rustix::mount::{MountFlags, UnmountFlags};

use crate::options::MountSpec;

/// Mounting, unmounting and making filesystem images.
pub trait Mounter: Send + Sync + std::fmt::Debug {
    /// Mount `spec` on `target` (an existing directory). An image file
    /// (`spec.loop_file`) is attached to a loop device first, detached again when the
    /// mount goes away.
    fn mount(&self, spec: &MountSpec, target: &Path) -> Result<()>;

    /// Unmount `target`. `InvalidArgument` if nothing is mounted there.
    fn unmount(&self, target: &Path) -> Result<()>;

    /// Whether something is mounted on `target` (as this process's mount table says).
    fn is_mounted(&self, target: &Path) -> Result<bool>;

    /// Make an empty ext4 filesystem of `bytes` in the new file `file` (no `lost+found`,
    /// root directory mode 0755).
    fn make_image(&self, file: &Path, bytes: u64) -> Result<()>;
}

fn cstr(s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(ErrorKind::InvalidArgument, "mount", s, "NUL byte"))
}

fn run(cmd: &mut Command, op: &'static str, context: &Path) -> Result<String> {
    let out = cmd.output().map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::Unsupported
        } else {
            ErrorKind::Io
        };
        Error::new(kind, op, context.display(), format!("{cmd:?}: {e}"))
    })?;
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Io,
            op,
            context.display(),
            format!(
                "{:?}: {}",
                cmd.get_program(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The running kernel (and util-linux `losetup`, e2fsprogs `mkfs.ext4`/`debugfs`).
#[derive(Debug, Default, Clone, Copy)]
pub struct Kernel;

impl Kernel {
    fn mount_source(&self, spec: &MountSpec, source: &str, target: &Path) -> Result<()> {
        let err = |e| Error::errno("mount", target.display(), e);
        if spec.is_bind() {
            if spec.flags.contains(MountFlags::REC) {
                rustix::mount::mount_bind_recursive(source, target).map_err(err)?;
            } else {
                rustix::mount::mount_bind(source, target).map_err(err)?;
            }
            let extra = spec.flags & !(MountFlags::BIND | MountFlags::REC);
            if !extra.is_empty() {
                // Flags of a bind mount take a remount.
                if let Err(e) = rustix::mount::mount_remount(target, MountFlags::BIND | extra, "") {
                    let _ = rustix::mount::unmount(target, UnmountFlags::DETACH);
                    return Err(err(e));
                }
            }
            return Ok(());
        }
        let data = cstr(&spec.data)?;
        rustix::mount::mount(
            source,
            target,
            spec.fstype.as_str(),
            spec.flags,
            data.as_c_str(),
        )
        .map_err(err)
    }
}

impl Mounter for Kernel {
    fn mount(&self, spec: &MountSpec, target: &Path) -> Result<()> {
        if !spec.loop_file {
            return self.mount_source(spec, &spec.source, target);
        }
        let image = Path::new(&spec.source);
        let dev = run(
            Command::new("losetup")
                .args(["--find", "--show"])
                .arg(image),
            "attach loop device",
            image,
        )?;
        let mounted = self.mount_source(spec, &dev, target);
        // Detaching a mounted loop device only marks it to go with its last mount; if
        // the mount failed this detaches it at once.
        let detached = run(
            Command::new("losetup").arg("-d").arg(&dev),
            "detach loop device",
            image,
        );
        mounted?;
        detached.map(drop)
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        rustix::mount::unmount(target, UnmountFlags::empty())
            .map_err(|e| Error::errno("unmount", target.display(), e))
    }

    fn is_mounted(&self, target: &Path) -> Result<bool> {
        // One statx instead of reading the mount table (Linux 5.8+ says whether a
        // path is the root of a mount); the table where the kernel cannot say.
        use rustix::fs::{AtFlags, StatxAttributes, StatxFlags};
        match rustix::fs::statx(
            rustix::fs::CWD,
            target,
            AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW,
            StatxFlags::empty(),
        ) {
            Ok(st) if st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) => {
                Ok(st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT))
            }
            Err(rustix::io::Errno::NOENT) => Ok(false),
            _ => Ok(mount_points()?.contains(target)),
        }
    }

    fn make_image(&self, file: &Path, bytes: u64) -> Result<()> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
            .map_err(|e| Error::io("make volume image", file.display(), e))?;
        f.set_len(bytes)
            .map_err(|e| Error::io("make volume image", file.display(), e))?;
        drop(f);
        run(
            Command::new("mkfs.ext4")
                .args(["-q", "-F", "-m", "0", "-E", "root_owner=0:0,nodiscard"])
                .arg(file),
            "make volume image",
            file,
        )?;
        run(
            Command::new("debugfs")
                .args(["-w", "-R", "rmdir lost+found"])
                .arg(file),
            "make volume image",
            file,
        )
        .map(drop)
    }
}

/// Every mount point in this process's mount table (`/proc/self/mountinfo`).
pub fn mount_points() -> Result<BTreeSet<PathBuf>> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("read mount table", "/proc/self/mountinfo", e))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape(p)))
        .collect())
}

/// Undo mountinfo's octal escapes (`\040` for a space).
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One call a [`Recorder`] saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `mount(spec.source, target, spec.fstype, spec.flags, spec.data)`.
    Mount {
        /// What was asked.
        spec: MountSpec,
        /// Where.
        target: PathBuf,
    },
    /// `umount(target)`.
    Unmount(PathBuf),
    /// `make_image(file, bytes)`.
    MakeImage(PathBuf, u64),
}

/// A [`Mounter`] that records calls instead of making them, and keeps its own table of
/// what is "mounted". For tests of what the kernel here cannot do (NFS).
#[derive(Debug, Default)]
pub struct Recorder {
    state: Mutex<(Vec<Call>, BTreeSet<PathBuf>)>,
}

impl Recorder {
    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state.lock().expect("recorder lock").0.clone()
    }
}

impl Mounter for Recorder {
    fn mount(&self, spec: &MountSpec, target: &Path) -> Result<()> {
        let mut s = self.state.lock().expect("recorder lock");
        if !s.1.insert(target.to_path_buf()) {
            return Err(Error::new(
                ErrorKind::InUse,
                "mount",
                target.display(),
                "already mounted",
            ));
        }
        s.0.push(Call::Mount {
            spec: spec.clone(),
            target: target.to_path_buf(),
        });
        Ok(())
    }

    fn unmount(&self, target: &Path) -> Result<()> {
        let mut s = self.state.lock().expect("recorder lock");
        if !s.1.remove(target) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "unmount",
                target.display(),
                "not mounted",
            ));
        }
        s.0.push(Call::Unmount(target.to_path_buf()));
        Ok(())
    }

    fn is_mounted(&self, target: &Path) -> Result<bool> {
        Ok(self.state.lock().expect("recorder lock").1.contains(target))
    }

    fn make_image(&self, file: &Path, bytes: u64) -> Result<()> {
        std::fs::write(file, b"").map_err(|e| Error::io("make volume image", file.display(), e))?;
        self.state
            .lock()
            .expect("recorder lock")
            .0
            .push(Call::MakeImage(file.to_path_buf(), bytes));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(
            unescape(r"/var/lib/my\040vol/_data"),
            "/var/lib/my vol/_data"
        );
        assert_eq!(unescape(r"/a\134b"), r"/a\b");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/trailing\04"), r"/trailing\04");
    }

    #[test]
    fn the_root_is_a_mount_point() {
        assert!(Kernel.is_mounted(Path::new("/")).unwrap());
        assert!(
            !Kernel
                .is_mounted(Path::new("/definitely/not/a/mount"))
                .unwrap()
        );
    }
}
