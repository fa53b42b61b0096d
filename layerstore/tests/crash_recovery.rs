//! Without this, a writer killed mid-apply could leave a partial layer that others
//! see, an orphan directory that is never removed, or a lock nobody can take again.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cargohold_core::{Dir, FileLock, LockMode};
use layerstore::{ApplyOptions, DriverChoice, LayerStore};

const ROLE: &str = "CARGOHOLD_TEST_CHILD_ROLE";
const STORE: &str = "CARGOHOLD_TEST_CHILD_STORE";

/// Files of 4 KiB each: far more than a pipe buffer, so a reader fed half of it is
/// stuck in the middle of the tar.
fn big_tar(files: usize) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for i in 0..files {
        let data = vec![(i % 251) as u8; 4096];
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_entry_type(tar::EntryType::Regular);
        b.append_data(&mut h, format!("file-{i:04}"), &data[..])
            .unwrap();
    }
    b.into_inner().unwrap()
}

/// The child: apply the tar on stdin to the store, print the chain ID.
fn child_apply() {
    let store = LayerStore::open(std::env::var_os(STORE).unwrap(), DriverChoice::Vfs).unwrap();
    let layer = store
        .apply_layer(&mut std::io::stdin(), None, &ApplyOptions::default())
        .unwrap();
    println!("chain={}", layer.chain_id);
    std::process::exit(0);
}

fn temp_entries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(".tmp"))
        .collect()
}

fn assert_no_lock_held(locks: &Path) {
    let dir = Dir::open_path(locks).unwrap();
    for e in std::fs::read_dir(locks).unwrap() {
        let name = e.unwrap().file_name();
        let held = FileLock::try_lock(&dir, &name, LockMode::Exclusive).unwrap();
        assert!(held.is_some(), "lock {name:?} is still held");
    }
}

#[test]
fn a_writer_killed_mid_apply_leaves_nothing_after_reopen() {
    if std::env::var_os(ROLE).is_some() {
        return child_apply();
    }
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    drop(LayerStore::open(&root, DriverChoice::Vfs).unwrap());
    let tar = big_tar(200);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_writer_killed_mid_apply_leaves_nothing_after_reopen",
            "--nocapture",
        ])
        .env(ROLE, "apply")
        .env(STORE, &root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&tar[..tar.len() / 2]).unwrap();
    // Wait (bounded) until the child has extracted part of the tar into its build dir.
    let snaps = root.join("snapshots");
    let deadline = Instant::now() + Duration::from_secs(60);
    let build = loop {
        let found = temp_entries(&snaps)
            .into_iter()
            .find(|p| p.join("fs/file-0010").exists());
        if let Some(p) = found {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "the child never started extracting"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // While it is being built, the layer is invisible, and opening the store (which
    // cleans up after dead writers) leaves a live writer's build alone.
    let other = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    assert!(other.layers().unwrap().is_empty());
    assert!(build.exists(), "open removed a live writer's build");
    drop(other);

    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success());
    drop(stdin);
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(
        !out.contains("chain="),
        "the child finished before it was killed"
    );

    // Reopen: the partial build is gone, no orphan, no record, no held lock.
    let store = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    assert!(store.layers().unwrap().is_empty());
    assert!(!build.exists());
    assert_eq!(std::fs::read_dir(&snaps).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(root.join("meta")).unwrap().count(), 0);
    assert_no_lock_held(&root.join("locks"));
    assert!(store.snapshots().leftovers().unwrap().is_empty());
    // And the store works: the same tar applies in full now.
    let layer = store
        .apply_layer(
            &mut std::io::Cursor::new(&tar),
            None,
            &ApplyOptions::default(),
        )
        .unwrap();
    assert_eq!(store.layer(&layer.chain_id).unwrap(), layer);
}

#[test]
fn an_orphan_directory_and_a_superseded_record_are_cleaned_on_open() {
    let t = tempfile::tempdir().unwrap();
    let root = t.path().join("store");
    {
        let store = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
        use layerstore::Driver;
        store.prepare("c", None, Default::default()).unwrap();
        store.commit("n", "c", Default::default()).unwrap();
    }
    // What a writer killed between publishing a directory and writing its record
    // leaves: a snapshot directory nobody names.
    std::fs::create_dir_all(root.join("snapshots/0123456789abcdef/fs/x")).unwrap();
    // What a commit cut short between its two record writes leaves: the active record
    // next to the committed one for the same directory.
    let meta = root.join("meta");
    let committed = std::fs::read_dir(&meta)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&committed).unwrap();
    let active = text
        .replace("\"committed\"", "\"active\"")
        .replace("\"name\": \"n\"", "\"name\": \"c\"");
    let digest = cargohold_core::Digest::sha256(b"c");
    std::fs::write(meta.join(format!("{}.json", &digest.hex()[..40])), active).unwrap();

    let store = LayerStore::open(&root, DriverChoice::Vfs).unwrap();
    use layerstore::Driver;
    assert!(!root.join("snapshots/0123456789abcdef").exists());
    assert_eq!(
        store.stat("c").unwrap_err().kind(),
        layerstore::ErrorKind::NotFound
    );
    assert_eq!(store.stat("n").unwrap().kind, layerstore::Kind::Committed);
    let mut n = 0;
    store.walk(&mut |_| n += 1).unwrap();
    assert_eq!(n, 1);
}
