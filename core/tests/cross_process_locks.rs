//! Without these, two processes sharing a store root (there is no daemon) could both
//! believe they hold the same exclusive lock, or a dead holder could wedge a store.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cargohold_core::root::Dir;
use cargohold_core::{ErrorKind, FileLock, LockMode};

const ROLE: &str = "CARGOHOLD_TEST_LOCK_ROLE";
const DIR: &str = "CARGOHOLD_TEST_LOCK_DIR";

/// Child: take the lock in the mode named by the role, say so, and hold it until stdin
/// closes. Without the child variables this checks the same rule inside one process:
/// two separately taken locks conflict.
#[test]
fn child_lock_holder_role() {
    if let (Ok(role), Ok(path)) = (std::env::var(ROLE), std::env::var(DIR)) {
        let dir = Dir::open_path(&path).unwrap();
        let mode = if role == "shared" {
            LockMode::Shared
        } else {
            LockMode::Exclusive
        };
        let _held = FileLock::lock(&dir, OsStr::new("store.lock"), mode).unwrap();
        println!("locked");
        std::io::stdout().flush().unwrap();
        let mut sink = String::new();
        let _ = std::io::stdin().read_line(&mut sink);
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let held = FileLock::lock(&dir, OsStr::new("l"), LockMode::Exclusive).unwrap();
    assert!(
        FileLock::try_lock(&dir, OsStr::new("l"), LockMode::Shared)
            .unwrap()
            .is_none()
    );
    drop(held);
    // Another test thread spawning a child holds a copy of every open descriptor from
    // its fork to its exec, so the released lock may look held for that long: retry
    // for up to a second before calling it held.
    let free = (0..20).any(|_| {
        let got = FileLock::try_lock(&dir, OsStr::new("l"), LockMode::Shared)
            .unwrap()
            .is_some();
        if !got {
            std::thread::sleep(Duration::from_millis(50));
        }
        got
    });
    assert!(
        free,
        "the lock stayed held after its only holder dropped it"
    );
}

fn spawn_holder(dir: &std::path::Path, mode: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_lock_holder_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, mode)
        .env(DIR, dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "holder exited before locking"
        );
        if line.trim_end().ends_with("locked") {
            break;
        }
    }
    // Keep draining the child's output so its test harness never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child
}

#[test]
fn exclusive_holder_in_another_process_excludes_everyone() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let mut child = spawn_holder(tmp.path(), "exclusive");
    let name = OsStr::new("store.lock");
    assert!(
        FileLock::try_lock(&dir, name, LockMode::Exclusive)
            .unwrap()
            .is_none()
    );
    assert!(
        FileLock::try_lock(&dir, name, LockMode::Shared)
            .unwrap()
            .is_none()
    );
    let err = FileLock::lock_timeout(&dir, name, LockMode::Shared, Duration::from_millis(50))
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InUse);
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(
        FileLock::try_lock(&dir, name, LockMode::Exclusive)
            .unwrap()
            .is_some()
    );
}

#[test]
fn shared_holders_coexist_across_processes_and_block_writers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let mut child = spawn_holder(tmp.path(), "shared");
    let name = OsStr::new("store.lock");
    let mine = FileLock::try_lock(&dir, name, LockMode::Shared).unwrap();
    assert!(mine.is_some(), "two shared holders in two processes");
    assert!(
        FileLock::try_lock(&dir, name, LockMode::Exclusive)
            .unwrap()
            .is_none()
    );
    drop(mine);
    drop(child.stdin.take());
    child.wait().unwrap();
    assert!(
        FileLock::try_lock(&dir, name, LockMode::Exclusive)
            .unwrap()
            .is_some()
    );
}

#[test]
fn a_killed_holder_releases_its_lock() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let mut child = spawn_holder(tmp.path(), "exclusive");
    let name = OsStr::new("store.lock");
    assert!(
        FileLock::try_lock(&dir, name, LockMode::Exclusive)
            .unwrap()
            .is_none()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    let got =
        FileLock::lock_timeout(&dir, name, LockMode::Exclusive, Duration::from_secs(10)).unwrap();
    assert_eq!(got.mode(), LockMode::Exclusive);
}
