//! The plugin client drives a real volume plugin written by others, buttervolume (btrfs
//! subvolumes as volumes, from PyPI), through every verb, and reads its errors as the
//! right kinds; without this, the client would only be known to agree with our own
//! server.
//!
//! Needs root (a loop-mounted btrfs image), `mkfs.btrfs`, and buttervolume: the
//! executable named by `CARGOHOLD_BUTTERVOLUME`, or else one this test installs with
//! pip (`buttervolume==3.13`) into a virtual environment in its temporary directory.
//! Fails loudly when any of them is missing.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use volstore::plugin::Client;
use volstore::{Driver, ErrorKind, Options, Scope};

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loop-mounted btrfs image, unmounted when dropped.
struct Btrfs {
    mnt: PathBuf,
}

impl Btrfs {
    fn new(dir: &Path) -> Btrfs {
        let img = dir.join("btrfs.img");
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&img)
            .unwrap()
            .set_len(256 << 20)
            .unwrap();
        run(Command::new("mkfs.btrfs").arg("-q").arg(&img));
        run(Command::new("mount")
            .arg("-o")
            .arg("loop")
            .arg(&img)
            .arg(&mnt));
        Btrfs { mnt }
    }
}

impl Drop for Btrfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.mnt).status();
    }
}

/// The buttervolume plugin process, killed when dropped.
struct Plugin {
    child: Child,
}

impl Drop for Plugin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn buttervolume(dir: &Path) -> PathBuf {
    if let Some(exe) = std::env::var_os("CARGOHOLD_BUTTERVOLUME") {
        return PathBuf::from(exe);
    }
    let venv = dir.join("venv");
    run(Command::new("python3").arg("-m").arg("venv").arg(&venv));
    run(Command::new(venv.join("bin/pip")).args([
        "install",
        "-q",
        "--disable-pip-version-check",
        "buttervolume==3.13",
    ]));
    venv.join("bin/buttervolume")
}

fn start(exe: &Path, dir: &Path, btrfs: &Btrfs) -> (Plugin, PathBuf) {
    let socket = dir.join("run/btrfs.sock");
    std::fs::create_dir(dir.join("run")).unwrap();
    let child = Command::new(exe)
        .arg("run")
        .env("BUTTERVOLUME_VOLUMES_PATH", btrfs.mnt.join("volumes"))
        .env("BUTTERVOLUME_SNAPSHOTS_PATH", btrfs.mnt.join("snapshots"))
        .env("BUTTERVOLUME_TEST_REMOTE_PATH", btrfs.mnt.join("received"))
        .env("BUTTERVOLUME_SCHEDULE", dir.join("schedule.csv"))
        .env("BUTTERVOLUME_RUNPATH", dir.join("run"))
        .env("BUTTERVOLUME_SOCKET", &socket)
        .env("BUTTERVOLUME_TIMER", "3600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{} could not start: {e}", exe.display()));
    let mut plugin = Plugin { child };
    // Wait (bounded) until it answers on its socket.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if let Some(status) = plugin.child.try_wait().unwrap() {
            panic!("buttervolume exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "buttervolume never listened");
        std::thread::sleep(Duration::from_millis(50));
    }
    (plugin, socket)
}

#[test]
fn the_client_drives_buttervolume() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (it loop-mounts a btrfs image)"
    );
    let dir = tempfile::tempdir().unwrap();
    let exe = buttervolume(dir.path());
    let btrfs = Btrfs::new(dir.path());
    let (plugin, socket) = start(&exe, dir.path(), &btrfs);
    let volumes = btrfs.mnt.join("volumes");

    let client = Client::connect(&socket).unwrap();
    assert_eq!(client.capabilities().scope, Scope::Local);
    assert_eq!(client.list().unwrap(), vec![]);

    client.create("vol", &Options::new()).unwrap();
    assert!(volumes.join("vol").is_dir(), "a subvolume was made");
    let names: Vec<String> = client.list().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["vol"]);
    let got = client.get("vol").unwrap();
    assert_eq!(
        got.mountpoint.as_deref(),
        Some(volumes.join("vol").as_path())
    );
    assert_eq!(
        client.path("vol").unwrap().as_deref(),
        Some(volumes.join("vol").as_path())
    );

    let at = client.mount("vol", "c1").unwrap();
    assert_eq!(at, volumes.join("vol"));
    std::fs::write(at.join("data.txt"), b"kept").unwrap();
    client.unmount("vol", "c1").unwrap();
    assert_eq!(
        std::fs::read(volumes.join("vol/data.txt")).unwrap(),
        b"kept"
    );

    // buttervolume answers failures as 200 with Err, in words: the kinds are inferred.
    assert_eq!(client.get("nope").unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(
        client.mount("nope", "c1").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    let bad: Options = [("copyonwrite".to_string(), "maybe".to_string())].into();
    assert_eq!(
        client.create("other", &bad).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert!(!volumes.join("other").exists(), "nothing created");

    client.remove("vol").unwrap();
    assert!(!volumes.join("vol").exists());
    assert_eq!(
        client.remove("vol").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert_eq!(client.list().unwrap(), vec![]);

    drop(client);
    drop(plugin);
    drop(btrfs);
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&*dir.path().to_string_lossy()),
        "the btrfs image is still mounted"
    );
}
