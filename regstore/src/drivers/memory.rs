//! The `memory` backend: files in a map, directories implied by prefixes.

use std::collections::BTreeMap;
use std::io::{self, Cursor, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use cargohold_core::{Error, ErrorKind, Result};

use crate::{FileInfo, FileWriter, Key, StorageDriver};

type Files = BTreeMap<Key, (Arc<Vec<u8>>, SystemTime)>;

/// An in-memory key space; clones share the same files.
#[derive(Debug, Clone, Default)]
pub struct Memory {
    files: Arc<Mutex<Files>>,
}

impl Memory {
    /// An empty key space.
    pub fn new() -> Memory {
        Memory::default()
    }

    fn files(&self) -> MutexGuard<'_, Files> {
        self.files.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn is_dir(files: &Files, key: &Key) -> bool {
    key.is_root()
        || files
            .range(key.clone()..)
            .take_while(|(k, _)| k.as_str().starts_with(key.as_str()))
            .any(|(k, _)| k.is_below(key))
}

fn below<'a>(files: &'a Files, key: &'a Key) -> impl Iterator<Item = &'a Key> + 'a {
    files
        .range(key.clone()..)
        .map(|(k, _)| k)
        .filter(move |k| k.is_below(key))
        .take_while(move |k| key.is_root() || k.as_str().starts_with(key.as_str()))
}

fn not_found(op: &'static str, key: &Key) -> Error {
    Error::new(ErrorKind::NotFound, op, key, "no such file")
}

fn no_file_under_file(op: &'static str, files: &Files, key: &Key) -> Result<()> {
    let mut p = key.parent();
    while let Some(dir) = p {
        if files.contains_key(&dir) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                op,
                key,
                format!("{dir} is a file"),
            ));
        }
        p = dir.parent();
    }
    if is_dir(files, key) {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            op,
            key,
            "is a directory",
        ));
    }
    Ok(())
}

impl StorageDriver for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn atomic_writes(&self) -> bool {
        true
    }

    fn get_content(&self, key: &Key) -> Result<Vec<u8>> {
        let files = self.files();
        files
            .get(key)
            .map(|(d, _)| d.as_ref().clone())
            .ok_or_else(|| not_found("get", key))
    }

    fn put_content(&self, key: &Key, data: &[u8]) -> Result<()> {
        let mut files = self.files();
        no_file_under_file("put", &files, key)?;
        files.insert(key.clone(), (Arc::new(data.to_vec()), SystemTime::now()));
        Ok(())
    }

    fn reader(&self, key: &Key, offset: u64) -> Result<Box<dyn Read + Send>> {
        let data = self
            .files()
            .get(key)
            .map(|(d, _)| d.clone())
            .ok_or_else(|| not_found("read", key))?;
        if offset > data.len() as u64 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "read",
                key,
                "offset beyond the end",
            ));
        }
        let mut c = Cursor::new(ArcBytes(data));
        c.set_position(offset);
        Ok(Box::new(c))
    }

    fn writer(&self, key: &Key, append: bool) -> Result<Box<dyn FileWriter>> {
        let files = self.files();
        no_file_under_file("writer", &files, key)?;
        let buf = match (append, files.get(key)) {
            (true, Some((d, _))) => d.as_ref().clone(),
            _ => Vec::new(),
        };
        Ok(Box::new(MemWriter {
            key: key.clone(),
            files: self.files.clone(),
            buf,
        }))
    }

    fn stat(&self, key: &Key) -> Result<FileInfo> {
        let files = self.files();
        if let Some((d, t)) = files.get(key) {
            return Ok(FileInfo {
                key: key.clone(),
                size: d.len() as u64,
                is_dir: false,
                modified: Some(*t),
            });
        }
        if is_dir(&files, key) {
            return Ok(FileInfo {
                key: key.clone(),
                size: 0,
                is_dir: true,
                modified: None,
            });
        }
        Err(not_found("stat", key))
    }

    fn list(&self, key: &Key) -> Result<Vec<Key>> {
        let files = self.files();
        if !is_dir(&files, key) {
            return Err(not_found("list", key));
        }
        let depth = if key.is_root() {
            1
        } else {
            key.as_str().matches('/').count() + 1
        };
        let mut out: Vec<Key> = below(&files, key)
            .map(|k| {
                let parts: Vec<&str> = k.as_str().split('/').collect();
                Key::parse(&parts[..=depth].join("/")).expect("a prefix of a key is a key")
            })
            .collect();
        out.dedup();
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
        let mut files = self.files();
        if let Some(v) = files.remove(from) {
            let old: Vec<Key> = below(&files, to).cloned().collect();
            for k in old {
                files.remove(&k);
            }
            files.insert(to.clone(), v);
            return Ok(());
        }
        if !is_dir(&files, from) {
            return Err(not_found("move", from));
        }
        files.remove(to);
        let old: Vec<Key> = below(&files, to).cloned().collect();
        for k in old {
            files.remove(&k);
        }
        let moving: Vec<Key> = below(&files, from).cloned().collect();
        for k in moving {
            let v = files.remove(&k).expect("listed above");
            let new = Key::parse(&format!("{}{}", to, &k.as_str()[from.as_str().len()..]))?;
            files.insert(new, v);
        }
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
        let mut files = self.files();
        let mut gone = files.remove(key).is_some();
        let under: Vec<Key> = below(&files, key).cloned().collect();
        gone |= !under.is_empty();
        for k in under {
            files.remove(&k);
        }
        if gone {
            Ok(())
        } else {
            Err(not_found("delete", key))
        }
    }

    fn walk(&self, key: &Key) -> Result<Vec<FileInfo>> {
        let mut out = Vec::new();
        let mut stack = vec![self.stat(key).and_then(|i| {
            if i.is_dir {
                Ok(key.clone())
            } else {
                Err(not_found("walk", key))
            }
        })?];
        while let Some(dir) = stack.pop() {
            for child in self.list(&dir)? {
                let info = self.stat(&child)?;
                if info.is_dir {
                    stack.push(child);
                }
                out.push(info);
            }
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }
}

#[derive(Debug)]
struct ArcBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for ArcBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

/// Buffers the file and publishes it on commit.
#[derive(Debug)]
struct MemWriter {
    key: Key,
    files: Arc<Mutex<Files>>,
    buf: Vec<u8>,
}

impl Write for MemWriter {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl FileWriter for MemWriter {
    fn size(&self) -> u64 {
        self.buf.len() as u64
    }
    fn commit(self: Box<Self>) -> Result<()> {
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        no_file_under_file("commit", &files, &self.key)?;
        files.insert(self.key, (Arc::new(self.buf), SystemTime::now()));
        Ok(())
    }
    fn cancel(self: Box<Self>) -> Result<()> {
        self.files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.key);
        Ok(())
    }
}
