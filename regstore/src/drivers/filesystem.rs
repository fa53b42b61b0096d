//! The `filesystem` backend: one file per key under a root directory, as registry:2's
//! filesystem driver lays them out, with every access confined beneath the root.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cargohold_core::atomic::{self, is_temp_name};
use cargohold_core::lock::{FileLock, LockMode};
use cargohold_core::root::{FileType, Stat};
use cargohold_core::{Confine, Dir, Error, ErrorKind, Result, Root};
use rustix::fs::OFlags;

use crate::{FileInfo, FileWriter, Key, StorageDriver};

/// Files under a root directory (`Confine::Beneath`: any escape is `PathEscape`).
#[derive(Debug)]
pub struct Filesystem {
    root: Root,
}

impl Filesystem {
    /// Use the directory at `path` (created when missing) as the key space's `/`.
    pub fn new(path: impl AsRef<Path>) -> Result<Filesystem> {
        Ok(Filesystem {
            root: Root::create(path, Confine::Beneath)?,
        })
    }

    /// The root directory.
    pub fn path(&self) -> &Path {
        self.root.path()
    }

    /// The directory holding `key`, created with its parents when missing.
    fn parent_dir(&self, key: &Key) -> Result<Dir> {
        let parent = key.parent().unwrap_or_else(Key::root);
        self.root.mkdir_all(parent.relative(), 0o755)
    }
}

fn rel(key: &Key) -> PathBuf {
    PathBuf::from(if key.is_root() { "." } else { key.relative() })
}

fn not_file(op: &'static str, key: &Key) -> Error {
    Error::new(ErrorKind::NotFound, op, key, "no such file")
}

fn mtime(st: &Stat) -> Option<SystemTime> {
    let secs = u64::try_from(st.st_mtime).ok()?;
    let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

/// `NotADirectory`/`IsADirectory` on the way to a file mean the file is not there.
fn missing_as_not_found(op: &'static str, key: &Key, e: Error) -> Error {
    if e.kind() == ErrorKind::InvalidArgument {
        not_file(op, key)
    } else {
        e
    }
}

impl StorageDriver for Filesystem {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn get_content(&self, key: &Key) -> Result<Vec<u8>> {
        self.root
            .read(rel(key))
            .map_err(|e| missing_as_not_found("get", key, e))
    }

    fn put_content(&self, key: &Key, data: &[u8]) -> Result<()> {
        if key.is_root() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "put",
                key,
                "the root is a directory",
            ));
        }
        let dir = self.parent_dir(key)?;
        atomic::write_file(&dir, OsStr::new(key.file_name()), data, 0o644)
    }

    fn reader(&self, key: &Key, offset: u64) -> Result<Box<dyn Read + Send>> {
        let mut f = self
            .root
            .open_file(rel(key), OFlags::RDONLY)
            .map_err(|e| missing_as_not_found("read", key, e))?;
        let len = f.metadata().map_err(|e| Error::io("stat", key, e))?.len();
        if offset > len {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "read",
                key,
                format!("offset {offset} beyond the end ({len})"),
            ));
        }
        f.seek(SeekFrom::Start(offset))
            .map_err(|e| Error::io("seek", key, e))?;
        Ok(Box::new(f))
    }

    fn writer(&self, key: &Key, append: bool) -> Result<Box<dyn FileWriter>> {
        if key.is_root() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "writer",
                key,
                "the root is a directory",
            ));
        }
        let dir = self.parent_dir(key)?;
        let name = OsStr::new(key.file_name());
        let file = if append {
            match dir.open_file(name, OFlags::WRONLY | OFlags::APPEND) {
                Ok(f) => f,
                Err(e) if e.kind() == ErrorKind::NotFound => dir.create_file(name, 0o644, false)?,
                Err(e) => return Err(e),
            }
        } else {
            dir.create_file(name, 0o644, false)?
        };
        let size = file
            .metadata()
            .map_err(|e| Error::io("stat", key, e))?
            .len();
        Ok(Box::new(FsWriter {
            key: key.clone(),
            dir,
            file,
            size,
        }))
    }

    fn stat(&self, key: &Key) -> Result<FileInfo> {
        let st = self
            .root
            .metadata(rel(key))
            .map_err(|e| missing_as_not_found("stat", key, e))?;
        let kind = FileType::from_raw_mode(st.st_mode);
        let is_dir = kind == FileType::Directory;
        if !is_dir && kind != FileType::RegularFile {
            return Err(Error::new(
                ErrorKind::Corrupt,
                "stat",
                key,
                "neither file nor directory",
            ));
        }
        Ok(FileInfo {
            key: key.clone(),
            size: if is_dir { 0 } else { st.st_size as u64 },
            is_dir,
            modified: mtime(&st),
        })
    }

    fn list(&self, key: &Key) -> Result<Vec<Key>> {
        let dir = self
            .root
            .open_dir(rel(key))
            .map_err(|e| missing_as_not_found("list", key, e))?;
        let mut out = Vec::new();
        for (name, _) in dir.entries()? {
            if is_temp_name(&name) {
                continue;
            }
            let Some(name) = name.to_str() else { continue };
            if let Ok(child) = key.join(name) {
                out.push(child);
            }
        }
        out.sort();
        Ok(out)
    }

    fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        if from.is_root() || to.is_root() || to.is_below(from) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "move",
                from,
                format!("cannot move to {to}"),
            ));
        }
        self.stat(from)?;
        self.parent_dir(to)?;
        self.root.rename(rel(from), rel(to))?;
        Ok(())
    }

    fn delete(&self, key: &Key) -> Result<()> {
        if key.is_root() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "delete",
                key,
                "the root cannot be deleted",
            ));
        }
        self.stat(key)?;
        self.root.remove_all(rel(key))
    }

    fn walk(&self, key: &Key) -> Result<Vec<FileInfo>> {
        let mut out = Vec::new();
        let mut stack = vec![key.clone()];
        while let Some(dir) = stack.pop() {
            for child in self.list(&dir)? {
                let info = match self.stat(&child) {
                    Ok(i) => i,
                    Err(e) if e.kind() == ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                if info.is_dir {
                    stack.push(child);
                }
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn lock(&self, name: &str, mode: LockMode) -> Result<Option<FileLock>> {
        FileLock::lock(self.root.dir(), OsStr::new(name), mode).map(Some)
    }
}

/// Appends in place to the file, as registry:2 writes upload data.
#[derive(Debug)]
struct FsWriter {
    key: Key,
    dir: Dir,
    file: File,
    size: u64,
}

impl Write for FsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for FsWriter {
    fn size(&self) -> u64 {
        self.size
    }

    fn commit(self: Box<Self>) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.key, e))
    }

    fn cancel(self: Box<Self>) -> Result<()> {
        drop(self.file);
        match self.dir.remove_file(OsStr::new(self.key.file_name())) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}
