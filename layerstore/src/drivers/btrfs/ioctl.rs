//! The four btrfs ioctls the driver needs, and the only `unsafe` outside the C ABI.
//!
//! Each call passes a `#[repr(C)]` argument laid out as `linux/btrfs.h` defines it
//! (checked by size assertions below) to an ioctl whose number is computed from that
//! same struct, through rustix's typed ioctl patterns: the kernel reads the struct and
//! writes nothing back. A btrfs-specific crate was considered (`btrfs-uapi`), but it
//! generates its bindings with bindgen at build time and so needs libclang on every
//! build machine, for four calls.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;

use cargohold_core::{Error, ErrorKind, Result};
use rustix::ioctl::{Opcode, Setter, ioctl, opcode};

const MAGIC: u8 = 0x94;
/// `BTRFS_PATH_NAME_MAX + 1`.
const VOL_NAME_LEN: usize = 4088;
/// `BTRFS_SUBVOL_NAME_MAX + 1`.
const VOL_NAME_LEN_V2: usize = 4040;
/// `BTRFS_SUBVOL_RDONLY`.
const SUBVOL_RDONLY: u64 = 1 << 1;
/// `BTRFS_SUPER_MAGIC` as `statfs` reports it.
pub const SUPER_MAGIC: i64 = 0x9123_683e;

/// `struct btrfs_ioctl_vol_args`.
#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; VOL_NAME_LEN],
}

/// `struct btrfs_ioctl_vol_args_v2` (the size/qgroup union left zero).
#[repr(C)]
struct VolArgsV2 {
    fd: i64,
    transid: u64,
    flags: u64,
    unused: [u64; 4],
    name: [u8; VOL_NAME_LEN_V2],
}

const _: () = assert!(std::mem::size_of::<VolArgs>() == 4096);
const _: () = assert!(std::mem::size_of::<VolArgsV2>() == 4096);

const SUBVOL_CREATE: Opcode = opcode::write::<VolArgs>(MAGIC, 14);
const SNAP_DESTROY: Opcode = opcode::write::<VolArgs>(MAGIC, 15);
const SNAP_CREATE_V2: Opcode = opcode::write::<VolArgsV2>(MAGIC, 23);
const SUBVOL_SETFLAGS: Opcode = opcode::write::<u64>(MAGIC, 26);

fn name_bytes<const N: usize>(name: &OsStr) -> Result<[u8; N]> {
    let b = name.as_bytes();
    if b.is_empty()
        || b.len() >= N
        || b.contains(&0)
        || b.contains(&b'/')
        || b == b"."
        || b == b".."
    {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "btrfs subvolume",
            name.to_string_lossy(),
            "not a single file name",
        ));
    }
    let mut out = [0u8; N];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// Create the empty subvolume `name` in the directory `parent`.
pub fn create_subvolume(parent: impl AsFd, name: &OsStr) -> Result<()> {
    let args = VolArgs {
        fd: 0,
        name: name_bytes(name)?,
    };
    // SAFETY: SUBVOL_CREATE takes a `btrfs_ioctl_vol_args` by pointer and only reads it;
    // `VolArgs` has that layout (asserted above) and the name is NUL-terminated.
    unsafe { ioctl(parent, Setter::<SUBVOL_CREATE, VolArgs>::new(args)) }
        .map_err(|e| Error::errno("create btrfs subvolume", name.to_string_lossy(), e))
}

/// Snapshot the subvolume whose root is `source` as `name` in the directory `parent`,
/// read-only if asked.
pub fn snapshot(source: impl AsFd, parent: impl AsFd, name: &OsStr, readonly: bool) -> Result<()> {
    let args = VolArgsV2 {
        fd: i64::from(source.as_fd().as_raw_fd()),
        transid: 0,
        flags: if readonly { SUBVOL_RDONLY } else { 0 },
        unused: [0; 4],
        name: name_bytes(name)?,
    };
    // SAFETY: SNAP_CREATE_V2 takes a `btrfs_ioctl_vol_args_v2` by pointer and only
    // reads it (no qgroup inheritance pointer: the union is zero); `source` stays open
    // for the call.
    unsafe { ioctl(parent, Setter::<SNAP_CREATE_V2, VolArgsV2>::new(args)) }
        .map_err(|e| Error::errno("snapshot btrfs subvolume", name.to_string_lossy(), e))
}

/// Delete the subvolume `name` in the directory `parent` (also read-only ones), at once
/// and whatever it holds; the space is reclaimed in the background.
pub fn destroy(parent: impl AsFd, name: &OsStr) -> Result<()> {
    let args = VolArgs {
        fd: 0,
        name: name_bytes(name)?,
    };
    // SAFETY: as for SUBVOL_CREATE: a `btrfs_ioctl_vol_args`, read only.
    unsafe { ioctl(parent, Setter::<SNAP_DESTROY, VolArgs>::new(args)) }
        .map_err(|e| Error::errno("delete btrfs subvolume", name.to_string_lossy(), e))
}

/// Make the subvolume whose root is `subvol` read-only (or writable again).
pub fn set_readonly(subvol: impl AsFd, readonly: bool) -> Result<()> {
    let flags: u64 = if readonly { SUBVOL_RDONLY } else { 0 };
    // SAFETY: SUBVOL_SETFLAGS reads one `u64` of flags through the pointer.
    unsafe { ioctl(subvol, Setter::<SUBVOL_SETFLAGS, u64>::new(flags)) }
        .map_err(|e| Error::errno("set btrfs subvolume flags", "", e))
}

/// Whether `dir` is on btrfs.
pub fn is_btrfs(dir: impl AsFd) -> Result<bool> {
    let st = rustix::fs::fstatfs(dir).map_err(|e| Error::errno("statfs", "", e))?;
    Ok(st.f_type as i64 == SUPER_MAGIC)
}

/// Whether `dir` is the root of a subvolume (btrfs gives every subvolume root inode 256).
pub fn is_subvolume_root(dir: impl AsFd) -> Result<bool> {
    Ok(is_btrfs(&dir)?
        && rustix::fs::fstat(&dir)
            .map_err(|e| Error::errno("stat", "", e))?
            .st_ino
            == 256)
}
