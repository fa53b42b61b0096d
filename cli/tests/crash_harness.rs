//! Processes killed at random points never corrupt a store or lose what they reported
//! as done. Without this, a kill during a layer apply, a container commit, a blob upload,
//! a manifest put, a tag, or a volume create, populate or remove could leave a
//! half-visible object, a store that no longer opens, or lose an acknowledged write.
//!
//! A child process loops over those operations on one root (all three stores), printing
//! a line for each object once the call that made it returned; the parent SIGKILLs it
//! after a random delay, reopens every store and checks: everything acknowledged is
//! there and verifies, every listed object reads back, and reopening cleaned what the
//! killed writer left. `CARGOHOLD_CRASH_KILLS` sets how many kills (default 30 in the
//! test command; the 1,000 on demand).

mod workload;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use workload::{Acked, child, pseudo_random, verify};

const ROLE: &str = "CARGOHOLD_CRASH_CHILD_ROOT";

#[test]
fn killed_writers_lose_nothing_they_acknowledged() {
    if let Some(root) = std::env::var_os(ROLE) {
        child(Path::new(&root));
    }
    let kills: u64 = std::env::var("CARGOHOLD_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let mut acked = Acked::default();
    let mut lines = 0;
    let start = Instant::now();
    for i in 0..kills {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "killed_writers_lose_nothing_they_acknowledged",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(ROLE, root)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Kill somewhere between start-up and a few rounds of every operation.
        std::thread::sleep(Duration::from_millis(5 + pseudo_random(i) % 250));
        child.kill().unwrap();
        child.wait().unwrap();
        for line in BufReader::new(child.stdout.take().unwrap()).lines() {
            acked.take(&line.unwrap());
            lines += 1;
        }
        verify(root, &acked, false);
    }
    eprintln!(
        "{kills} kills, {lines} acknowledged operations, {} layers, {} blobs, {} volumes alive, {} collections, in {:.1} s",
        acked.layers.len(),
        acked.blobs.len(),
        acked.volumes.len(),
        acked.collections,
        start.elapsed().as_secs_f64()
    );
    assert!(lines > 0, "the children never got to acknowledge anything");
}
