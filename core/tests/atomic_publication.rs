//! Without these, a writer killed mid-write could leave a half-written file visible
//! under its final name, or temporaries that nobody ever removes.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use cargohold_core::ErrorKind;
use cargohold_core::atomic::{self, AtomicFile, TempDir};
use cargohold_core::root::Dir;

const ROLE: &str = "CARGOHOLD_TEST_CHILD_ROLE";

fn names(dir: &Dir) -> Vec<String> {
    let mut v: Vec<_> = dir
        .entries()
        .unwrap()
        .into_iter()
        .map(|(n, _)| n.to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn write_replace_and_refuse_existing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    atomic::write_file(&dir, OsStr::new("meta.json"), b"one", 0o644).unwrap();
    atomic::write_file(&dir, OsStr::new("meta.json"), b"two", 0o644).unwrap();
    assert_eq!(std::fs::read(tmp.path().join("meta.json")).unwrap(), b"two");
    let err = atomic::write_new_file(&dir, OsStr::new("meta.json"), b"three", 0o644).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(std::fs::read(tmp.path().join("meta.json")).unwrap(), b"two");
    assert_eq!(names(&dir), vec!["meta.json"], "no temporary left behind");
}

#[test]
fn dropped_writers_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    {
        let mut f = AtomicFile::new(&dir, OsStr::new("never"), 0o644).unwrap();
        f.write_all(&[1u8; 100_000]).unwrap();
    }
    {
        let t = TempDir::new(&dir, 0o755).unwrap();
        drop(
            t.dir()
                .create_file(OsStr::new("inner"), 0o644, true)
                .unwrap(),
        );
    }
    assert!(names(&dir).is_empty(), "left: {:?}", names(&dir));
}

#[test]
fn published_temp_dir_appears_whole() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let t = TempDir::new(&dir, 0o755).unwrap();
    t.dir().mkdir(OsStr::new("sub"), 0o755).unwrap();
    let published = t.publish(&dir, OsStr::new("layer")).unwrap();
    assert_eq!(names(&published), vec!["sub"]);
    assert_eq!(names(&dir), vec!["layer"]);
    let t2 = TempDir::new(&dir, 0o755).unwrap();
    let err = t2.publish(&dir, OsStr::new("layer")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(names(&dir), vec!["layer"], "a refused publish cleans up");
}

/// Child: start an atomic file and a temporary directory, report, then wait to be killed.
/// Without the child variable this checks that a live writer's temporaries survive
/// `clean_stale` run by someone else.
#[test]
fn child_writer_role() {
    if let Ok(path) = std::env::var(ROLE) {
        let dir = Dir::open_path(&path).unwrap();
        let mut f = AtomicFile::new(&dir, OsStr::new("final"), 0o644).unwrap();
        f.write_all(&vec![0xabu8; 1 << 20]).unwrap();
        let t = TempDir::new(&dir, 0o755).unwrap();
        drop(
            t.dir()
                .create_file(OsStr::new("partial"), 0o644, true)
                .unwrap(),
        );
        println!("ready");
        std::io::stdout().flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(600));
        unreachable!("the parent kills this process");
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let live = TempDir::new(&dir, 0o755).unwrap();
    assert!(
        atomic::clean_stale(&dir).unwrap().is_empty(),
        "a live writer's temp dir is kept"
    );
    assert_eq!(names(&dir).len(), 1);
    drop(live);
}

#[test]
fn killed_writer_leaves_no_visible_object_and_clean_stale_removes_its_temporaries() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_writer_role",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE, tmp.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "child exited before ready"
        );
        if line.trim_end().ends_with("ready") {
            break;
        }
    }
    // Keep draining the child's output so its test harness never writes to a closed pipe.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    child.kill().unwrap();
    child.wait().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    let left = names(&dir);
    assert!(
        !left.contains(&"final".to_owned()),
        "half-written file visible: {left:?}"
    );
    assert_eq!(
        left.len(),
        1,
        "only the killed writer's temp dir remains: {left:?}"
    );
    assert!(left[0].starts_with(atomic::TEMP_PREFIX));
    let removed = atomic::clean_stale(&dir).unwrap();
    assert_eq!(removed.len(), 1);
    assert!(names(&dir).is_empty());
}

#[test]
fn old_unlocked_temporaries_are_removed_young_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Dir::open_path(tmp.path()).unwrap();
    dir.mkdir(OsStr::new(".tmpx-old"), 0o755).unwrap();
    drop(
        dir.create_file(OsStr::new(".tmpx-young"), 0o644, true)
            .unwrap(),
    );
    dir.set_times(OsStr::new(".tmpx-old"), (0, 0), (0, 0))
        .unwrap();
    drop(dir.create_file(OsStr::new("keep"), 0o644, true).unwrap());
    let removed = atomic::clean_stale(&dir).unwrap();
    assert_eq!(removed, vec![std::ffi::OsString::from(".tmpx-old")]);
    assert_eq!(names(&dir), vec![".tmpx-young", "keep"]);
}
