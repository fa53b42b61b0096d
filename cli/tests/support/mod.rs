//! Running the built `cargohold` binary and the peer tools from the CLI tests.

use std::path::Path;
use std::process::{Command, Output};

/// Run `cargohold --root ROOT ARGS...` with the vfs driver.
pub fn cargohold(root: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cargohold"))
        .arg("--root")
        .arg(root)
        .args(args)
        .env("CARGOHOLD_DRIVER", "vfs")
        .output()
        .expect("the binary runs")
}

/// Standard output, trimmed.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// Standard output of a run that must succeed.
#[allow(dead_code)] // not every test file uses every helper
pub fn ok(o: Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    stdout(&o)
}

/// Run a peer tool (umoci, skopeo) that must succeed; its standard output.
#[allow(dead_code)]
pub fn run(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} could not start (is it installed?): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
