//! Without these, two processes pushing the same image could corrupt a blob or a tag, a
//! process killed mid-upload could leave a half-visible blob or an upload that cannot be
//! resumed, and one killed mid-manifest-put could leave a tag naming missing bytes.
//! Children are this test binary re-executed with `REGSTORE_CHILD` naming their role.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cargohold_core::{Digest, ErrorKind, Result};
use regstore::drivers::Filesystem;
use regstore::{FileInfo, FileWriter, Key, MediaType, Registry, StorageDriver, layout};
use serde_json::json;

const ROLE: &str = "REGSTORE_CHILD";
const ROOT: &str = "REGSTORE_CHILD_ROOT";
const ARG: &str = "REGSTORE_CHILD_ARG";

fn layer() -> Vec<u8> {
    (0..(3u32 << 20)).map(|i| (i % 249) as u8).collect()
}

/// The same image every pusher pushes.
fn push_image(reg: &Registry) -> Digest {
    let layer = layer();
    let cfg = br#"{"architecture":"amd64","os":"linux"}"#;
    let l = reg.put_blob("race/app", &layer).unwrap();
    let c = reg.put_blob("race/app", cfg).unwrap();
    let m = serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.digest, "size": c.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": l.digest, "size": l.size}]}))
    .unwrap();
    reg.put_manifest("race/app", "latest", &m, None).unwrap()
}

fn spawn(role: &str, test: &str, root: &Path, arg: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(ROOT, root)
        .env(ARG, arg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn child_role() -> Option<(String, PathBuf, String)> {
    let role = std::env::var(ROLE).ok()?;
    Some((
        role,
        std::env::var_os(ROOT).unwrap().into(),
        std::env::var(ARG).unwrap_or_default(),
    ))
}

/// No temporary entries anywhere under `dir`.
fn assert_no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        assert!(
            !cargohold_core::atomic::is_temp_name(&e.file_name()),
            "left behind: {}",
            e.path().display()
        );
        if e.file_type().unwrap().is_dir() {
            assert_no_temp_files(&e.path());
        }
    }
}

#[test]
fn two_processes_push_the_same_image_at_once() {
    if let Some((role, root, _)) = child_role() {
        if role == "pusher" {
            let reg = Registry::open(Filesystem::new(&root).unwrap());
            for _ in 0..15 {
                push_image(&reg);
            }
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut kids: Vec<_> = (0..2)
        .map(|_| {
            spawn(
                "pusher",
                "two_processes_push_the_same_image_at_once",
                dir.path(),
                "",
            )
        })
        .collect();
    for k in &mut kids {
        assert!(k.wait().unwrap().success(), "a pusher failed");
    }
    let reg = Registry::open(Filesystem::new(dir.path()).unwrap());
    let want = push_image(&reg);
    let m = reg.get_manifest("race/app", "latest").unwrap();
    assert_eq!(m.digest, want);
    assert_eq!(
        reg.read_blob("race/app", &Digest::sha256(&layer()))
            .unwrap()
            .len(),
        3 << 20
    );
    assert_eq!(reg.manifests("race/app").unwrap(), [want]);
    let uploads = reg
        .driver()
        .list(&layout::uploads("race/app"))
        .unwrap_or_default();
    assert!(uploads.is_empty(), "uploads left: {uploads:?}");
    assert_no_temp_files(dir.path());
}

/// Streams a pattern forever; after `signal_at` bytes it creates `marker` and stalls.
struct Stalling {
    sent: u64,
    signal_at: u64,
    marker: PathBuf,
}

impl Read for Stalling {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.sent >= self.signal_at {
            std::fs::write(&self.marker, b"ready")?;
            std::thread::sleep(Duration::from_secs(60));
            return Err(std::io::Error::other("parent never killed the child"));
        }
        let n = buf.len().min((self.signal_at - self.sent) as usize);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = ((self.sent + i as u64) % 251) as u8;
        }
        self.sent += n as u64;
        Ok(n)
    }
}

fn pattern(from: u64, to: u64) -> Vec<u8> {
    (from..to).map(|i| (i % 251) as u8).collect()
}

#[test]
fn upload_killed_midway_is_invisible_and_resumes() {
    if let Some((role, root, marker)) = child_role() {
        if role == "uploader" {
            let reg = Registry::open(Filesystem::new(&root).unwrap());
            let up = reg.start_upload("crash/up").unwrap();
            let _ = up.append(
                0,
                Stalling {
                    sent: 0,
                    signal_at: 40 << 20,
                    marker: marker.into(),
                },
            );
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let marker = dir.path().join("marker");
    let mut kid = spawn(
        "uploader",
        "upload_killed_midway_is_invisible_and_resumes",
        &root,
        marker.to_str().unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "the uploader never got going");
        if let Some(st) = kid.try_wait().unwrap() {
            panic!("uploader exited early: {st}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(kid.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    kid.wait().unwrap();

    let reg = Registry::open(Filesystem::new(&root).unwrap());
    let whole = pattern(0, 48 << 20);
    let d = Digest::sha256(&whole);
    assert_eq!(
        reg.stat_blob("crash/up", &d).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let blobs = Key::parse(&format!("{}/blobs", layout::V2)).unwrap();
    assert!(
        reg.driver()
            .walk(&blobs)
            .map(|w| w.iter().all(|i| i.is_dir))
            .unwrap_or(true),
        "no blob is visible"
    );
    let ids = reg.driver().list(&layout::uploads("crash/up")).unwrap();
    assert_eq!(ids.len(), 1);
    let up = reg.resume_upload("crash/up", ids[0].file_name()).unwrap();
    let at = up.status().unwrap().offset;
    assert!(at <= 40 << 20);
    let (_, rehashed) = up.hash_state(at).unwrap();
    assert!(
        rehashed <= regstore::uploads::CHECKPOINT,
        "re-hashed {rehashed} bytes"
    );
    up.append(at, &whole[at as usize..]).unwrap();
    up.commit(&d, Some(whole.len() as u64)).unwrap();
    assert_eq!(
        reg.stat_blob("crash/up", &d).unwrap().size,
        whole.len() as u64
    );
    assert_no_temp_files(&root);
}

/// A filesystem backend that kills its own process at the n-th `put_content`.
#[derive(Debug)]
struct KillAt {
    inner: Filesystem,
    puts: AtomicUsize,
    at: usize,
}

impl StorageDriver for KillAt {
    fn name(&self) -> &'static str {
        "kill-at"
    }
    fn get_content(&self, key: &Key) -> Result<Vec<u8>> {
        self.inner.get_content(key)
    }
    fn put_content(&self, key: &Key, data: &[u8]) -> Result<()> {
        if self.puts.fetch_add(1, Ordering::SeqCst) == self.at {
            std::io::stdout().flush().unwrap();
            nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL).unwrap();
        }
        self.inner.put_content(key, data)
    }
    fn reader(&self, key: &Key, offset: u64) -> Result<Box<dyn Read + Send>> {
        self.inner.reader(key, offset)
    }
    fn writer(&self, key: &Key, append: bool) -> Result<Box<dyn FileWriter>> {
        self.inner.writer(key, append)
    }
    fn stat(&self, key: &Key) -> Result<FileInfo> {
        self.inner.stat(key)
    }
    fn list(&self, key: &Key) -> Result<Vec<Key>> {
        self.inner.list(key)
    }
    fn rename(&self, from: &Key, to: &Key) -> Result<()> {
        self.inner.rename(from, to)
    }
    fn delete(&self, key: &Key) -> Result<()> {
        self.inner.delete(key)
    }
    fn walk(&self, key: &Key) -> Result<Vec<FileInfo>> {
        self.inner.walk(key)
    }
}

fn manifest_over(reg: &Registry) -> Vec<u8> {
    let c = reg.put_blob("crash/man", br#"{"os":"linux"}"#).unwrap();
    serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.digest, "size": c.size},
        "layers": []}))
    .unwrap()
}

#[test]
fn manifest_put_killed_at_every_step_is_all_or_nothing() {
    if let Some((role, root, at)) = child_role() {
        if role == "manifest" {
            let plain = Registry::open(Filesystem::new(&root).unwrap());
            let bytes = manifest_over(&plain);
            let reg = Registry::open(KillAt {
                inner: Filesystem::new(&root).unwrap(),
                puts: AtomicUsize::new(0),
                at: at.parse().unwrap(),
            });
            reg.put_manifest("crash/man", "v1", &bytes, None).unwrap();
        }
        return;
    }
    // A manifest put with a tag writes four files: bytes, revision, tag index, current.
    let mut outcomes = Vec::new();
    for at in 0..5 {
        let dir = tempfile::tempdir().unwrap();
        let mut kid = spawn(
            "manifest",
            "manifest_put_killed_at_every_step_is_all_or_nothing",
            dir.path(),
            &at.to_string(),
        );
        let status = kid.wait().unwrap();
        let reg = Registry::open(Filesystem::new(dir.path()).unwrap());
        let d = Digest::sha256(&manifest_over(&reg));
        let by_tag = reg.get_manifest("crash/man", "v1");
        let by_digest = reg.get_manifest("crash/man", &d.to_string());
        match (&by_tag, &by_digest) {
            (Ok(m), Ok(_)) => assert_eq!(m.digest, d),
            (Err(e), _) => assert_eq!(e.kind(), ErrorKind::NotFound, "step {at}: {e}"),
            (Ok(_), Err(e)) => panic!("step {at}: tag visible, manifest not: {e}"),
        }
        if let Err(e) = &by_digest {
            assert_eq!(e.kind(), ErrorKind::NotFound, "step {at}: {e}");
        }
        assert_no_temp_files(dir.path());
        outcomes.push((status.success(), by_tag.is_ok(), by_digest.is_ok()));
    }
    assert_eq!(
        outcomes,
        [
            (false, false, false),
            (false, false, false),
            (false, false, true),
            (false, false, true),
            (true, true, true)
        ]
    );
}
