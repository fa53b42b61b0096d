//! Copying a tree for a child snapshot: regular files are reflinked (`FICLONE`) where the
//! filesystem supports it and copied otherwise; modes, owners, xattrs, times,
//! hardlinks, device nodes, fifos and symlinks are preserved.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};

use cargohold_core::root::{FileType, Owner, Stat};
use cargohold_core::{Dir, Error, Result};
use rustix::fs::OFlags;
use rustix::io::Errno;

/// How many files were reflinked and copied by this process (for tests and benchmarks).
pub static REFLINKED: AtomicU64 = AtomicU64::new(0);
/// How many files were copied byte by byte by this process.
pub static COPIED: AtomicU64 = AtomicU64::new(0);

type Links = HashMap<(u64, u64), (Dir, OsString)>;

/// Copy everything in `src` into the empty directory `dst`.
pub fn copy_tree(src: &Dir, dst: &Dir) -> Result<()> {
    let mut links = Links::new();
    copy_entries(src, dst, &mut links)
}

fn copy_entries(src: &Dir, dst: &Dir, links: &mut Links) -> Result<()> {
    for (name, kind) in src.entries()? {
        let st = src.stat(&name)?;
        if kind != FileType::Directory && st.st_nlink > 1 {
            let key = (st.st_dev, st.st_ino);
            if let Some((ldir, lname)) = links.get(&key) {
                dst.hardlink(ldir, lname, &name)?;
                continue;
            }
            links.insert(key, (dst.try_clone()?, name.clone()));
        }
        match kind {
            FileType::Directory => {
                dst.mkdir(&name, 0o700)?;
                let (s, d) = (src.open_dir(&name)?, dst.open_dir(&name)?);
                copy_entries(&s, &d, links)?;
            }
            FileType::RegularFile => copy_file(src, dst, &name)?,
            FileType::Symlink => dst.symlink(&src.read_link(&name)?, &name)?,
            FileType::CharacterDevice
            | FileType::BlockDevice
            | FileType::Fifo
            | FileType::Socket => {
                let dev = st.st_rdev;
                dst.mknod(
                    &name,
                    kind,
                    st.st_mode & 0o7777,
                    rustix::fs::major(dev),
                    rustix::fs::minor(dev),
                )?
            }
            FileType::Unknown => {
                return Err(Error::new(
                    cargohold_core::ErrorKind::Unsupported,
                    "copy",
                    name.to_string_lossy(),
                    "unknown file type",
                ));
            }
        }
        copy_meta_entry(src, dst, &name, &st, kind)?;
    }
    Ok(())
}

fn copy_file(src: &Dir, dst: &Dir, name: &OsStr) -> Result<()> {
    let from = src.open_file(name, OFlags::RDONLY)?;
    let mut to: File = dst.create_file(name, 0o600, true)?;
    match rustix::fs::ioctl_ficlone(&to, &from) {
        Ok(()) => {
            REFLINKED.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        Err(Errno::OPNOTSUPP | Errno::XDEV | Errno::INVAL | Errno::NOTTY | Errno::PERM) => {}
        Err(e) => return Err(Error::errno("reflink", name.to_string_lossy(), e)),
    }
    let mut from = from;
    std::io::copy(&mut from, &mut to).map_err(|e| Error::io("copy", name.to_string_lossy(), e))?;
    COPIED.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Give `dst` (a directory) the owner, mode, xattrs and times of `src` (stat `st`).
pub fn copy_meta(src: &Dir, dst: &Dir, st: &Stat) -> Result<()> {
    // Directory-level metadata goes through the `.` entry of each.
    copy_xattrs_fd(src, dst)?;
    rustix::fs::fchown(
        dst,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )
    .map_err(|e| Error::errno("chown", ".", e))?;
    rustix::fs::fchmod(dst, rustix::fs::Mode::from_raw_mode(st.st_mode & 0o7777))
        .map_err(|e| Error::errno("chmod", ".", e))?;
    let ts = rustix::fs::Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    };
    rustix::fs::futimens(dst, &ts).map_err(|e| Error::errno("utimes", ".", e))
}

fn copy_xattrs_fd(src: &Dir, dst: &Dir) -> Result<()> {
    let names = cargohold_core::root::xattr_list(|buf| rustix::fs::flistxattr(src, buf))
        .map_err(|e| Error::errno("listxattr", ".", e))?;
    for key in names {
        if let Some(v) =
            cargohold_core::root::xattr_get(|buf| rustix::fs::fgetxattr(src, key.as_str(), buf))
                .map_err(|e| Error::errno("getxattr", &key, e))?
        {
            rustix::fs::fsetxattr(dst, key.as_str(), &v, rustix::fs::XattrFlags::empty())
                .map_err(|e| Error::errno("setxattr", &key, e))?;
        }
    }
    Ok(())
}

fn copy_meta_entry(src: &Dir, dst: &Dir, name: &OsStr, st: &Stat, kind: FileType) -> Result<()> {
    for key in src.list_xattrs(name)? {
        if let Some(v) = src.get_xattr(name, &key)? {
            dst.set_xattr(name, &key, &v)?;
        }
    }
    dst.chown(
        name,
        Owner {
            uid: st.st_uid,
            gid: st.st_gid,
        },
    )?;
    if kind != FileType::Symlink {
        // After chown, which clears setuid/setgid bits.
        dst.chmod(name, st.st_mode & 0o7777)?;
    }
    dst.set_times(
        name,
        (st.st_atime, st.st_atime_nsec as u32),
        (st.st_mtime, st.st_mtime_nsec as u32),
    )
}
