//! The one conformance suite of [`StorageDriver`]: every backend runs every check.
//!
//! A backend's test file calls [`storage_driver_tests!`](crate::storage_driver_tests)
//! with a function that opens the backend on a fresh, empty directory; the macro stamps
//! one `#[test]` per check. Each check gets its own temporary directory and ends by
//! asserting that nothing was left behind: no file in the key space and no temporary
//! entry on disk.

use std::io::{Read, Write};
use std::path::Path;

use crate::{ErrorKind, Key, StorageDriver};

/// Opens a backend on an empty directory (which a memory backend may ignore).
pub type Factory = fn(&Path) -> Box<dyn StorageDriver>;

fn k(s: &str) -> Key {
    Key::parse(s).expect("suite keys are valid")
}

fn read_all(d: &dyn StorageDriver, key: &Key, offset: u64) -> Vec<u8> {
    let mut out = Vec::new();
    d.reader(key, offset)
        .expect("reader")
        .read_to_end(&mut out)
        .expect("read");
    out
}

/// Run `check` against a backend on a fresh directory, then assert nothing is left.
pub fn run(factory: Factory, check: fn(&dyn StorageDriver)) {
    let dir = tempfile::tempdir().expect("temp dir");
    let driver = factory(dir.path());
    check(driver.as_ref());
    let files: Vec<_> = driver
        .walk(&Key::root())
        .expect("walk /")
        .into_iter()
        .filter(|i| !i.is_dir)
        .collect();
    assert!(files.is_empty(), "files left behind: {files:?}");
    let mut stack = vec![dir.path().to_path_buf()];
    while let Some(p) = stack.pop() {
        for e in std::fs::read_dir(&p).expect("read dir") {
            let e = e.expect("entry");
            let name = e.file_name();
            assert!(
                !cargohold_core::atomic::is_temp_name(&name),
                "temporary entry left behind: {}",
                e.path().display()
            );
            if e.file_type().expect("type").is_dir() {
                stack.push(e.path());
            }
        }
    }
}

/// Stamp one `#[test]` per conformance check for the backend `factory` opens.
#[macro_export]
macro_rules! storage_driver_tests {
    ($factory:expr) => {
        $crate::storage_driver_tests!(@each $factory;
            put_then_get, put_replaces_atomically, missing_keys_are_not_found,
            reader_starts_at_offset, writer_commit_and_append, writer_cancel_removes,
            list_direct_children_sorted, rename_files_and_directories,
            delete_is_recursive, walk_is_complete_and_sorted, stat_files_and_directories,
            file_cannot_hold_children, delete_many_removes_each_key,
            claimed_write_capabilities_hold);
    };
    (@each $factory:expr; $($check:ident),* $(,)?) => {
        $(
            #[test]
            fn $check() {
                $crate::conformance::run($factory, $crate::conformance::$check);
            }
        )*
    };
}

/// `put_content` then `get_content` gives the bytes back; empty content too.
pub fn put_then_get(d: &dyn StorageDriver) {
    let key = k("/a/b/c");
    d.put_content(&key, b"hello").unwrap();
    assert_eq!(d.get_content(&key).unwrap(), b"hello");
    let empty = k("/a/empty");
    d.put_content(&empty, b"").unwrap();
    assert_eq!(d.get_content(&empty).unwrap(), b"");
    assert_eq!(d.stat(&empty).unwrap().size, 0);
    d.delete(&k("/a")).unwrap();
}

/// A second `put_content` replaces the first entirely (shorter content included).
pub fn put_replaces_atomically(d: &dyn StorageDriver) {
    let key = k("/x");
    d.put_content(&key, b"a long first version").unwrap();
    d.put_content(&key, b"short").unwrap();
    assert_eq!(d.get_content(&key).unwrap(), b"short");
    assert_eq!(d.stat(&key).unwrap().size, 5);
    d.delete(&key).unwrap();
}

/// Reading, listing, moving or deleting a missing key is `NotFound`.
pub fn missing_keys_are_not_found(d: &dyn StorageDriver) {
    let key = k("/missing/key");
    assert_eq!(d.get_content(&key).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(d.stat(&key).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(d.reader(&key, 0).err().unwrap().kind(), ErrorKind::NotFound);
    assert_eq!(d.list(&key).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(d.delete(&key).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        d.rename(&key, &k("/other")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(d.walk(&key).unwrap_err().kind(), ErrorKind::NotFound);
    assert!(matches!(
        d.stat(&k("/other")).map_err(|e| e.kind()),
        Err(ErrorKind::NotFound)
    ));
}

/// `reader(key, n)` starts at byte n; at the end it is empty; beyond it is refused.
pub fn reader_starts_at_offset(d: &dyn StorageDriver) {
    let key = k("/r");
    d.put_content(&key, b"0123456789").unwrap();
    assert_eq!(read_all(d, &key, 0), b"0123456789");
    assert_eq!(read_all(d, &key, 4), b"456789");
    assert_eq!(read_all(d, &key, 10), b"");
    assert_eq!(
        d.reader(&key, 11).err().unwrap().kind(),
        ErrorKind::InvalidArgument
    );
    d.delete(&key).unwrap();
}

/// A committed writer's bytes are there; an appending writer continues them.
pub fn writer_commit_and_append(d: &dyn StorageDriver) {
    let key = k("/up/data");
    let mut w = d.writer(&key, false).unwrap();
    w.write_all(b"abc").unwrap();
    assert_eq!(w.size(), 3);
    w.commit().unwrap();
    assert_eq!(d.get_content(&key).unwrap(), b"abc");
    let mut w = d.writer(&key, true).unwrap();
    assert_eq!(w.size(), 3);
    w.write_all(b"def").unwrap();
    assert_eq!(w.size(), 6);
    w.commit().unwrap();
    assert_eq!(d.get_content(&key).unwrap(), b"abcdef");
    let mut w = d.writer(&key, false).unwrap();
    w.write_all(b"new").unwrap();
    w.commit().unwrap();
    assert_eq!(d.get_content(&key).unwrap(), b"new");
    let fresh = k("/up/appended-new");
    let mut w = d.writer(&fresh, true).unwrap();
    assert_eq!(w.size(), 0);
    w.write_all(b"x").unwrap();
    w.commit().unwrap();
    assert_eq!(d.get_content(&fresh).unwrap(), b"x");
    d.delete(&k("/up")).unwrap();
}

/// A cancelled writer leaves no file.
pub fn writer_cancel_removes(d: &dyn StorageDriver) {
    let key = k("/c/data");
    let mut w = d.writer(&key, false).unwrap();
    w.write_all(b"doomed").unwrap();
    w.cancel().unwrap();
    assert_eq!(d.stat(&key).unwrap_err().kind(), ErrorKind::NotFound);
}

/// `list` gives direct children only, files and directories, sorted.
pub fn list_direct_children_sorted(d: &dyn StorageDriver) {
    for key in ["/l/b", "/l/a/deep/x", "/l/c-d", "/l/a/y", "/lz"] {
        d.put_content(&k(key), b"1").unwrap();
    }
    let names: Vec<String> = d
        .list(&k("/l"))
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(names, ["/l/a", "/l/b", "/l/c-d"]);
    let top: Vec<String> = d
        .list(&Key::root())
        .unwrap()
        .iter()
        .map(|k| k.to_string())
        .collect();
    assert_eq!(top, ["/l", "/lz"]);
    d.delete(&k("/l")).unwrap();
    d.delete(&k("/lz")).unwrap();
}

/// `rename` moves a file or a tree, replacing the destination and creating parents.
pub fn rename_files_and_directories(d: &dyn StorageDriver) {
    d.put_content(&k("/m/src"), b"one").unwrap();
    d.put_content(&k("/n/dst"), b"old").unwrap();
    d.rename(&k("/m/src"), &k("/n/dst")).unwrap();
    assert_eq!(d.get_content(&k("/n/dst")).unwrap(), b"one");
    assert_eq!(
        d.stat(&k("/m/src")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    d.rename(&k("/n/dst"), &k("/new/parent/file")).unwrap();
    assert_eq!(d.get_content(&k("/new/parent/file")).unwrap(), b"one");
    d.put_content(&k("/tree/a/1"), b"1").unwrap();
    d.put_content(&k("/tree/2"), b"2").unwrap();
    d.rename(&k("/tree"), &k("/moved")).unwrap();
    assert_eq!(d.get_content(&k("/moved/a/1")).unwrap(), b"1");
    assert_eq!(d.get_content(&k("/moved/2")).unwrap(), b"2");
    assert_eq!(
        d.stat(&k("/tree/2")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(
        d.rename(&k("/moved"), &k("/moved/in")).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    for key in ["/m", "/n", "/new", "/moved"] {
        let _ = d.delete(&k(key));
    }
}

/// `delete` of a directory removes everything below it and nothing beside it.
pub fn delete_is_recursive(d: &dyn StorageDriver) {
    d.put_content(&k("/d/a/b/c"), b"1").unwrap();
    d.put_content(&k("/d/a/x"), b"1").unwrap();
    d.put_content(&k("/d/ab"), b"keep").unwrap();
    d.delete(&k("/d/a")).unwrap();
    assert_eq!(
        d.stat(&k("/d/a/b/c")).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(d.get_content(&k("/d/ab")).unwrap(), b"keep");
    assert_eq!(
        d.delete(&Key::root()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    d.delete(&k("/d/ab")).unwrap();
}

/// `walk` reports every file and directory below a key, sorted, with sizes.
pub fn walk_is_complete_and_sorted(d: &dyn StorageDriver) {
    d.put_content(&k("/w/b/f"), b"12").unwrap();
    d.put_content(&k("/w/a"), b"1").unwrap();
    let got: Vec<(String, bool, u64)> = d
        .walk(&k("/w"))
        .unwrap()
        .into_iter()
        .map(|i| (i.key.to_string(), i.is_dir, i.size))
        .collect();
    assert_eq!(
        got,
        [
            ("/w/a".to_owned(), false, 1),
            ("/w/b".to_owned(), true, 0),
            ("/w/b/f".to_owned(), false, 2)
        ]
    );
    d.delete(&k("/w")).unwrap();
}

/// `stat` tells files from directories and reports sizes and times.
pub fn stat_files_and_directories(d: &dyn StorageDriver) {
    d.put_content(&k("/s/f"), b"12345").unwrap();
    let f = d.stat(&k("/s/f")).unwrap();
    assert!(!f.is_dir);
    assert_eq!(f.size, 5);
    assert!(f.modified.is_some());
    assert!(d.stat(&k("/s")).unwrap().is_dir);
    d.delete(&k("/s")).unwrap();
}

/// A file cannot have children: writing below one fails, and the file is kept.
pub fn file_cannot_hold_children(d: &dyn StorageDriver) {
    d.put_content(&k("/f"), b"file").unwrap();
    assert!(d.put_content(&k("/f/child"), b"x").is_err());
    assert!(d.writer(&k("/f/child"), false).is_err());
    assert_eq!(d.get_content(&k("/f")).unwrap(), b"file");
    d.delete(&k("/f")).unwrap();
}

/// `delete_many` removes files and whole trees in one call, skips keys that name
/// nothing, and leaves every other key alone.
pub fn delete_many_removes_each_key(d: &dyn StorageDriver) {
    for i in 0..30 {
        d.put_content(&k(&format!("/dm/blobs/{:02}/data", i)), b"x")
            .unwrap();
    }
    d.put_content(&k("/dm/tree/a/b"), b"1").unwrap();
    d.put_content(&k("/dm/tree/c"), b"2").unwrap();
    d.put_content(&k("/dm/keep/f"), b"3").unwrap();
    d.put_content(&k("/dm/blobs-sibling"), b"4").unwrap();
    let mut doomed: Vec<Key> = (0..30)
        .filter(|i| i % 3 != 0)
        .map(|i| k(&format!("/dm/blobs/{:02}", i)))
        .collect();
    doomed.push(k("/dm/tree"));
    doomed.push(k("/dm/keep/missing"));
    doomed.push(k("/nowhere/at/all"));
    d.delete_many(&doomed).unwrap();
    d.delete_many(&[]).unwrap();
    let left: Vec<String> = d
        .walk(&Key::root())
        .unwrap()
        .into_iter()
        .filter(|i| !i.is_dir)
        .map(|i| i.key.to_string())
        .collect();
    let mut want: Vec<String> = (0..30)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("/dm/blobs/{:02}/data", i))
        .collect();
    want.push("/dm/blobs-sibling".into());
    want.push("/dm/keep/f".into());
    want.sort();
    assert_eq!(left, want);
    assert!(d.delete_many(&[Key::root()]).is_err(), "the root stays");
    d.delete(&k("/dm")).unwrap();
}

/// What a backend claims beyond the common rules holds: with `atomic_writes`, a
/// writer's bytes are invisible until commit and a cancelled or dropped one leaves the
/// old file; with `multipart`, parts uploaded in any order assemble in index order and
/// an abort leaves nothing. Every backend: a committed writer replaces the whole file.
pub fn claimed_write_capabilities_hold(d: &dyn StorageDriver) {
    let key = k("/cap/f");
    d.put_content(&key, b"old content").unwrap();
    let mut w = d.writer(&key, false).unwrap();
    w.write_all(b"new").unwrap();
    if d.atomic_writes() {
        assert_eq!(d.get_content(&key).unwrap(), b"old content");
        w.cancel().unwrap();
        // Cancel removes the file, as the common rule says; a dropped writer keeps it.
        d.put_content(&key, b"old content").unwrap();
        let mut w = d.writer(&key, false).unwrap();
        w.write_all(b"dropped").unwrap();
        drop(w);
        assert_eq!(d.get_content(&key).unwrap(), b"old content");
        let mut w = d.writer(&key, false).unwrap();
        w.write_all(b"new").unwrap();
        w.commit().unwrap();
    } else {
        w.commit().unwrap();
    }
    assert_eq!(d.get_content(&key).unwrap(), b"new");
    if let Some(m) = d.multipart() {
        assert!(m.part_size() >= m.min_part_size());
        let big = m.min_part_size();
        let target = k("/cap/assembled");
        let id = m.create_multipart(&target).unwrap();
        let last = m.put_part(&target, &id, 1, b"tail".to_vec()).unwrap();
        let first = m.put_part(&target, &id, 0, vec![7u8; big]).unwrap();
        assert!(d.stat(&target).is_err(), "invisible before completion");
        m.complete_multipart(&target, &id, &[first, last]).unwrap();
        let got = d.get_content(&target).unwrap();
        assert_eq!(got.len(), big + 4);
        assert!(got[..big].iter().all(|&b| b == 7));
        assert_eq!(&got[big..], b"tail");
        let gone = k("/cap/aborted");
        let id = m.create_multipart(&gone).unwrap();
        m.put_part(&gone, &id, 0, vec![1u8; big]).unwrap();
        m.abort_multipart(&gone, &id).unwrap();
        m.abort_multipart(&gone, &id).unwrap();
        assert_eq!(d.stat(&gone).unwrap_err().kind(), ErrorKind::NotFound);
    }
    d.delete(&k("/cap")).unwrap();
}
