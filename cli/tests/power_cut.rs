//! What a call reported as done survives a power cut, not only a killed process.
//! Without this, an object whose data or directory entry still sat in the page cache
//! when the call returned (a missing fsync, a rename not made durable, a flag written
//! before the data it vouches for) would pass the crash harness — the kernel keeps
//! a killed process's writes — and be lost, or be half there, after a real outage.
//!
//! The stores live on a loop-mounted XFS image. The child of the crash harness loops
//! over every kind of write; at a random moment the parent shuts the filesystem down
//! without flushing its log (`xfs_io -x -c shutdown`, the way xfstests simulates a
//! power failure): whatever was not yet on stable storage is gone and every later
//! write fails. The parent then kills the child, unmounts, mounts again (XFS replays
//! its log as after a reboot) and checks that every acknowledged object is there and
//! verifies. `CARGOHOLD_POWER_CUTS` sets how many cuts (default 8).

mod workload;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use workload::{Acked, child, pseudo_random, verify};

const ROLE: &str = "CARGOHOLD_POWER_CUT_CHILD_ROOT";

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A loop-mounted XFS image, unmounted when dropped.
struct Disk {
    image: PathBuf,
    mnt: PathBuf,
    mounted: bool,
}

impl Disk {
    fn new(dir: &Path) -> Disk {
        let image = dir.join("disk.img");
        let mnt = dir.join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        std::fs::File::create(&image)
            .unwrap()
            .set_len(1 << 30)
            .unwrap();
        run(Command::new("mkfs.xfs").arg("-q").arg(&image));
        let mut d = Disk {
            image,
            mnt,
            mounted: false,
        };
        d.mount();
        d
    }

    fn mount(&mut self) {
        run(Command::new("mount")
            .args(["-t", "xfs", "-o", "loop"])
            .arg(&self.image)
            .arg(&self.mnt));
        self.mounted = true;
    }

    /// The power cut: the log is not flushed, so only what reached it survives.
    fn cut(&self) {
        run(Command::new("xfs_io")
            .args(["-x", "-c", "shutdown"])
            .arg(&self.mnt));
    }

    fn unmount(&mut self) {
        run(Command::new("umount").arg(&self.mnt));
        self.mounted = false;
    }
}

impl Drop for Disk {
    fn drop(&mut self) {
        if self.mounted {
            let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
        }
    }
}

#[test]
fn acknowledged_objects_survive_a_power_cut() {
    if let Some(root) = std::env::var_os(ROLE) {
        child(Path::new(&root));
    }
    assert!(
        rustix::process::geteuid().is_root(),
        "the power-cut test mounts a loop device and must run as root"
    );
    let cuts: u64 = std::env::var("CARGOHOLD_POWER_CUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let tmp = tempfile::tempdir().unwrap();
    let mut disk = Disk::new(tmp.path());
    let root = disk.mnt.join("store");
    let mut acked = Acked::default();
    let mut lines = 0;
    let start = Instant::now();
    for i in 0..cuts {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "acknowledged_objects_survive_a_power_cut",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, &root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Cut somewhere between start-up and a few rounds of every operation.
        std::thread::sleep(Duration::from_millis(50 + pseudo_random(i) % 600));
        disk.cut();
        child.kill().unwrap();
        child.wait().unwrap();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            acked.take(&line.unwrap());
            lines += 1;
        }
        disk.unmount();
        disk.mount();
        verify(&root, &acked, true);
    }
    eprintln!(
        "{cuts} power cuts, {lines} acknowledged operations, {} layers, {} deferred ({} synced), {} blobs, {} volumes alive, {} collections, in {:.1} s",
        acked.layers.len(),
        acked.deferred.len(),
        acked.synced.len(),
        acked.blobs.len(),
        acked.volumes.len(),
        acked.collections,
        start.elapsed().as_secs_f64()
    );
    assert!(lines > 0, "the children never got to acknowledge anything");
    disk.unmount();
}
