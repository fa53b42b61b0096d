//! Helpers shared by the archive tests: hand-made tar entries and temp roots.
#![allow(dead_code)]

use std::path::Path;

use cargohold_core::{Confine, Root};
use tar::{EntryType, Header};

/// A tar being built entry by entry, with names set byte for byte (so that hostile
/// names the `tar` crate's own path setters refuse can be written too).
pub struct TarMaker {
    pub builder: tar::Builder<Vec<u8>>,
}

impl Default for TarMaker {
    fn default() -> Self {
        Self::new()
    }
}

impl TarMaker {
    pub fn new() -> TarMaker {
        TarMaker {
            builder: tar::Builder::new(Vec::new()),
        }
    }

    fn header(name: &[u8], kind: EntryType, mode: u32, size: u64) -> Header {
        let mut h = Header::new_ustar();
        assert!(name.len() < 100, "use long() for long names");
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h
    }

    fn push(&mut self, mut h: Header, data: &[u8]) {
        h.set_cksum();
        self.builder.append(&h, data).unwrap();
    }

    pub fn dir(&mut self, name: &str, mode: u32) -> &mut Self {
        let h = Self::header(name.as_bytes(), EntryType::Directory, mode, 0);
        self.push(h, &[]);
        self
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        self.file_raw(name.as_bytes(), 0o644, data)
    }

    pub fn file_raw(&mut self, name: &[u8], mode: u32, data: &[u8]) -> &mut Self {
        let h = Self::header(name, EntryType::Regular, mode, data.len() as u64);
        self.push(h, data);
        self
    }

    pub fn file_owned(
        &mut self,
        name: &str,
        mode: u32,
        uid: u64,
        gid: u64,
        data: &[u8],
    ) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), EntryType::Regular, mode, data.len() as u64);
        h.set_uid(uid);
        h.set_gid(gid);
        self.push(h, data);
        self
    }

    pub fn link(&mut self, kind: EntryType, name: &str, target: &str) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), kind, 0o777, 0);
        let t = target.as_bytes();
        h.as_old_mut().linkname[..t.len()].copy_from_slice(t);
        self.push(h, &[]);
        self
    }

    pub fn device(&mut self, kind: EntryType, name: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Self::header(name.as_bytes(), kind, 0o600, 0);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, &[]);
        self
    }

    /// PAX records applying to the next entry.
    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.builder
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    pub fn finish(self) -> Vec<u8> {
        self.builder.into_inner().unwrap()
    }
}

/// A scratch area: `target` to apply into and `sentinel` beside it that no apply may
/// touch.
pub struct Scratch {
    pub tmp: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Scratch {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("target")).unwrap();
        let s = tmp.path().join("sentinel");
        std::fs::create_dir_all(s.join("etc")).unwrap();
        std::fs::write(s.join("etc/passwd"), b"root:x:0:0\n").unwrap();
        std::fs::write(s.join("secret"), b"keep me\n").unwrap();
        Scratch { tmp }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn target(&self) -> Root {
        Root::open(self.tmp.path().join("target"), Confine::InRoot).unwrap()
    }

    pub fn sentinel(&self) -> Root {
        Root::open(self.tmp.path().join("sentinel"), Confine::Beneath).unwrap()
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (ownership, devices, trusted xattrs)"
    );
}
