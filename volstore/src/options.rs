//! The local driver's options, taken as Docker's local driver takes them.
//!
//! | option | meaning |
//! |---|---|
//! | `type` | filesystem type to mount: `tmpfs`, `none` (with `o=bind`), `nfs`/`nfs4`, or a block filesystem (`ext4`, `xfs`, `btrfs`, ...) |
//! | `device` | what to mount: a path for `none`/bind, `:/export` or `host:/export` for NFS, a block device or an image file (attached to a loop device) for a block filesystem; `tmpfs` (or anything) for tmpfs |
//! | `o` | comma-separated mount options: flags (`ro`, `nosuid`, `nodev`, `noexec`, `noatime`, `bind`, `rbind`, ...) become mount flags, the rest (`size=64m`, `uid=1000`, `addr=10.0.0.1`) the filesystem's own options |
//! | `size` | cap the volume's size (bytes, or with a `k`/`m`/`g`/`t` suffix): a loop-backed ext4 image per volume |
//!
//! Anything else is `InvalidArgument`, as are `o` or `device` without `type`, bind
//! without `bind`/`rbind` in `o`, NFS without `addr=`, and `size` together with `type`.
//! A bind source or block device that does not exist is `NotFound`.

use std::path::Path;

use cargohold_core::{Error, ErrorKind, Result};
use rustix::mount::MountFlags;

use crate::Options;

const OP: &str = "volume options";

/// The keys the local driver knows.
pub const KEYS: [&str; 4] = ["type", "device", "o", "size"];

/// What a volume's options ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backing {
    /// A plain directory in the store (no options).
    Directory,
    /// A filesystem mounted over the volume's directory while it has holders.
    Mount(MountSpec),
    /// A loop-backed ext4 image of this many bytes, mounted while held.
    Sized(u64),
}

/// How to mount a volume's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountSpec {
    /// The filesystem type given to `mount(2)` (`tmpfs`, `nfs`, `ext4`, ...; `none` for bind).
    pub fstype: String,
    /// The source given to `mount(2)`.
    pub source: String,
    /// Mount flags parsed from `o`.
    pub flags: MountFlags,
    /// The filesystem's own options from `o` (comma-separated).
    pub data: String,
    /// Whether `source` is a regular file to attach to a loop device first.
    pub loop_file: bool,
}

impl MountSpec {
    /// Whether this is a bind mount (`type=none`, `o=bind` or `o=rbind`).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MountFlags::BIND)
    }
}

fn invalid(context: impl std::fmt::Display, detail: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::InvalidArgument, OP, context, detail)
}

/// Parse a size: bytes, or a number with a `k`, `m`, `g` or `t` suffix (powers of 1024,
/// an optional trailing `b`, any case), as Docker's `RAMInBytes` reads it. Zero and
/// overflow are `InvalidArgument`.
pub fn parse_size(text: &str) -> Result<u64> {
    let lower = text.trim().to_ascii_lowercase();
    let body = lower.strip_suffix('b').unwrap_or(&lower);
    let (digits, shift) = match body.chars().last() {
        Some('k') => (&body[..body.len() - 1], 10),
        Some('m') => (&body[..body.len() - 1], 20),
        Some('g') => (&body[..body.len() - 1], 30),
        Some('t') => (&body[..body.len() - 1], 40),
        _ => (body, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| invalid(text, "not a size (bytes, or a number with k, m, g or t)"))?;
    let bytes = n
        .checked_mul(1u64 << shift)
        .ok_or_else(|| invalid(text, "size overflows"))?;
    if bytes == 0 {
        return Err(invalid(text, "size must be more than zero"));
    }
    Ok(bytes)
}

fn flag_of(word: &str) -> Option<(MountFlags, bool)> {
    // (flag, set?) — `rw`, `suid`, `dev`, `exec`, `async` clear what their opposite sets.
    Some(match word {
        "ro" => (MountFlags::RDONLY, true),
        "rw" => (MountFlags::RDONLY, false),
        "nosuid" => (MountFlags::NOSUID, true),
        "suid" => (MountFlags::NOSUID, false),
        "nodev" => (MountFlags::NODEV, true),
        "dev" => (MountFlags::NODEV, false),
        "noexec" => (MountFlags::NOEXEC, true),
        "exec" => (MountFlags::NOEXEC, false),
        "sync" => (MountFlags::SYNCHRONOUS, true),
        "async" => (MountFlags::SYNCHRONOUS, false),
        "dirsync" => (MountFlags::DIRSYNC, true),
        "noatime" => (MountFlags::NOATIME, true),
        "nodiratime" => (MountFlags::NODIRATIME, true),
        "relatime" => (MountFlags::RELATIME, true),
        "strictatime" => (MountFlags::STRICTATIME, true),
        "lazytime" => (MountFlags::LAZYTIME, true),
        "bind" => (MountFlags::BIND, true),
        "rbind" => (MountFlags::BIND | MountFlags::REC, true),
        _ => return None,
    })
}

/// Split `o` into mount flags and the filesystem's own options.
pub fn parse_o(o: &str) -> Result<(MountFlags, String)> {
    let mut flags = MountFlags::empty();
    let mut data = Vec::new();
    for word in o.split(',').map(str::trim).filter(|w| !w.is_empty()) {
        if word.contains('\0') {
            return Err(invalid(o, "NUL in mount options"));
        }
        match flag_of(word) {
            Some((f, true)) => flags |= f,
            Some((f, false)) => flags &= !f,
            None => data.push(word),
        }
    }
    Ok((flags, data.join(",")))
}

fn existing(device: &str) -> Result<std::fs::Metadata> {
    let p = Path::new(device);
    if !p.is_absolute() {
        return Err(invalid(device, "the device must be an absolute path"));
    }
    std::fs::metadata(p).map_err(|e| Error::io(OP, device, e))
}

/// Check a volume's options and say what they ask for. Nothing is touched beyond
/// `stat`ing the device.
pub fn parse(options: &Options) -> Result<Backing> {
    if let Some(k) = options.keys().find(|k| !KEYS.contains(&k.as_str())) {
        return Err(invalid(
            k,
            "unknown option (the local driver takes type, device, o and size)",
        ));
    }
    let fstype = options.get("type").map(String::as_str);
    let device = options.get("device").map(String::as_str);
    let o = options.get("o").map(String::as_str).unwrap_or("");
    if let Some(size) = options.get("size") {
        if fstype.is_some() || device.is_some() || !o.is_empty() {
            return Err(invalid(
                "size",
                "size caps a plain volume; it cannot be combined with type, device or o",
            ));
        }
        return Ok(Backing::Sized(parse_size(size)?));
    }
    let Some(fstype) = fstype else {
        if device.is_some() || !o.is_empty() {
            return Err(invalid("type", "device and o need a type"));
        }
        return Ok(Backing::Directory);
    };
    if fstype.is_empty()
        || !fstype
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.')
    {
        return Err(invalid(fstype, "not a filesystem type"));
    }
    let (flags, data) = parse_o(o)?;
    let mut spec = MountSpec {
        fstype: fstype.to_string(),
        source: String::new(),
        flags,
        data,
        loop_file: false,
    };
    match fstype {
        "tmpfs" => {
            spec.source = device.unwrap_or("tmpfs").to_string();
            if spec.is_bind() {
                return Err(invalid(o, "bind is for type=none"));
            }
        }
        "none" => {
            let device = device.ok_or_else(|| invalid("device", "a bind mount needs a device"))?;
            if !spec.is_bind() {
                return Err(invalid(o, "type=none needs o=bind or o=rbind"));
            }
            if !spec.data.is_empty() {
                return Err(invalid(o, "a bind mount takes flags only"));
            }
            if !existing(device)?.is_dir() {
                return Err(invalid(device, "a bind source must be a directory"));
            }
            spec.source = device.to_string();
        }
        "nfs" | "nfs4" => {
            let device = device.ok_or_else(|| invalid("device", "NFS needs device=:/export"))?;
            let addr = spec
                .data
                .split(',')
                .find_map(|w| w.strip_prefix("addr="))
                .ok_or_else(|| invalid(o, "NFS needs o=addr=HOST"))?;
            if addr.is_empty() {
                return Err(invalid(o, "empty NFS addr"));
            }
            spec.source = match device.strip_prefix(':') {
                Some(export) if export.starts_with('/') => format!("{addr}:{export}"),
                Some(_) => return Err(invalid(device, "an NFS export is an absolute path")),
                None if device.contains(":/") => device.to_string(),
                None => return Err(invalid(device, "NFS device is :/export or host:/export")),
            };
        }
        _ => {
            let device = device.ok_or_else(|| invalid("device", "a filesystem needs a device"))?;
            if spec.is_bind() {
                return Err(invalid(o, "bind is for type=none"));
            }
            let meta = existing(device)?;
            use std::os::unix::fs::FileTypeExt;
            if meta.file_type().is_block_device() {
                spec.loop_file = false;
            } else if meta.is_file() {
                spec.loop_file = true;
            } else {
                return Err(invalid(
                    device,
                    "the device must be a block device or an image file",
                ));
            }
            spec.source = device.to_string();
        }
    }
    Ok(Backing::Mount(spec))
}

/// The `opts.json` Docker's local driver keeps beside a volume's `_data`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerOpts {
    /// `type`.
    pub mount_type: String,
    /// `o`.
    pub mount_opts: String,
    /// `device`.
    pub mount_device: String,
    /// `size`, as Docker's quota field.
    pub quota: DockerQuota,
}

/// The quota part of [`DockerOpts`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DockerQuota {
    /// Bytes; zero for none.
    pub size: u64,
}

impl DockerOpts {
    /// What Docker's local driver would record for `options` (already checked by [`parse`]).
    pub fn from_options(options: &Options) -> Result<DockerOpts> {
        let get = |k: &str| options.get(k).cloned().unwrap_or_default();
        let size = match options.get("size") {
            Some(s) => parse_size(s)?,
            None => 0,
        };
        Ok(DockerOpts {
            mount_type: get("type"),
            mount_opts: get("o"),
            mount_device: get("device"),
            quota: DockerQuota { size },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(pairs: &[(&str, &str)]) -> Options {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn kind(pairs: &[(&str, &str)]) -> ErrorKind {
        parse(&opts(pairs)).unwrap_err().kind()
    }

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(parse_size("64m").unwrap(), 64 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("10kb").unwrap(), 10 << 10);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        for bad in ["", "0", "m", "-1m", "1x", "99999999999t"] {
            assert_eq!(
                parse_size(bad).unwrap_err().kind(),
                ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn tmpfs_options_split_into_flags_and_data() {
        let Backing::Mount(m) = parse(&opts(&[
            ("type", "tmpfs"),
            ("o", "size=64m,uid=1000,nosuid,noexec"),
        ]))
        .unwrap() else {
            panic!("not a mount")
        };
        assert_eq!(m.fstype, "tmpfs");
        assert_eq!(m.source, "tmpfs");
        assert_eq!(m.flags, MountFlags::NOSUID | MountFlags::NOEXEC);
        assert_eq!(m.data, "size=64m,uid=1000");
    }

    #[test]
    fn nfs_source_is_addr_and_export() {
        let Backing::Mount(m) = parse(&opts(&[
            ("type", "nfs"),
            ("o", "addr=10.0.0.2,rw,nfsvers=4"),
            ("device", ":/srv/share"),
        ]))
        .unwrap() else {
            panic!("not a mount")
        };
        assert_eq!(m.source, "10.0.0.2:/srv/share");
        assert_eq!(m.data, "addr=10.0.0.2,nfsvers=4");
        assert_eq!(
            kind(&[("type", "nfs"), ("device", ":/srv")]),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(&[("type", "nfs"), ("o", "addr=h"), ("device", "srv")]),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn bind_needs_an_existing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let Backing::Mount(m) =
            parse(&opts(&[("type", "none"), ("o", "bind"), ("device", d)])).unwrap()
        else {
            panic!("not a mount")
        };
        assert!(m.is_bind());
        assert_eq!(m.source, d);
        let missing = format!("{d}/missing");
        assert_eq!(
            kind(&[("type", "none"), ("o", "bind"), ("device", &missing)]),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(&[("type", "none"), ("device", d)]),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(&[("type", "none"), ("o", "bind"), ("device", "relative")]),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn bad_combinations_are_invalid() {
        assert_eq!(kind(&[("colour", "blue")]), ErrorKind::InvalidArgument);
        assert_eq!(kind(&[("o", "size=1m")]), ErrorKind::InvalidArgument);
        assert_eq!(kind(&[("device", "/dev/null")]), ErrorKind::InvalidArgument);
        assert_eq!(
            kind(&[("size", "1m"), ("type", "tmpfs")]),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(&[("type", "ext4"), ("device", "/nonexistent/disk.img")]),
            ErrorKind::NotFound
        );
        assert_eq!(
            kind(&[("type", "ext4"), ("device", "/dev")]),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            kind(&[("type", "bad/type"), ("device", "x")]),
            ErrorKind::InvalidArgument
        );
        assert_eq!(parse(&Options::new()).unwrap(), Backing::Directory);
        assert_eq!(
            parse(&opts(&[("size", "64m")])).unwrap(),
            Backing::Sized(64 << 20)
        );
    }

    #[test]
    fn docker_opts_use_dockers_field_names() {
        let o = DockerOpts::from_options(&opts(&[
            ("type", "tmpfs"),
            ("device", "tmpfs"),
            ("o", "size=1m"),
        ]))
        .unwrap();
        let json = serde_json::to_value(&o).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"MountType": "tmpfs", "MountOpts": "size=1m", "MountDevice": "tmpfs", "Quota": {"Size": 0}})
        );
    }
}
