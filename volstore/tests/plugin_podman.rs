//! A real peer, podman (which speaks the Docker volume plugin protocol as a client),
//! creates, lists, inspects, mounts and removes volumes through a served local driver;
//! without this, the server would only be known to agree with our own client and our
//! reading of the documentation.
//!
//! Needs root and podman; fails loudly without them. Podman runs with its own root,
//! run root and configuration in a temporary directory and touches nothing else.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use volstore::plugin::serve;
use volstore::{Driver, ErrorKind, LocalDriver, Options};

struct Podman<'a> {
    base: &'a Path,
}

impl Podman<'_> {
    fn cmd(&self, args: &[&str]) -> std::process::Output {
        Command::new("podman")
            .env("CONTAINERS_CONF", self.base.join("containers.conf"))
            .env("XDG_RUNTIME_DIR", self.base.join("xdg"))
            .arg("--root")
            .arg(self.base.join("root"))
            .arg("--runroot")
            .arg(self.base.join("runroot"))
            .arg("--tmpdir")
            .arg(self.base.join("tmp"))
            .arg("--storage-driver")
            .arg("vfs")
            .arg("--events-backend")
            .arg("none")
            .args(args)
            .output()
            .expect("podman must be installed (Debian package podman)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "podman {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

fn require_root() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root (podman with its own root directory)"
    );
}

#[test]
fn podman_uses_a_served_local_driver() {
    require_root();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path();
    for sub in ["root", "runroot", "tmp", "xdg"] {
        std::fs::create_dir(base.join(sub)).unwrap();
    }
    let socket = base.join("cargohold.sock");
    std::fs::write(
        base.join("containers.conf"),
        format!(
            "[engine]\n[engine.volume_plugins]\ncargohold = \"{}\"\n",
            socket.display()
        ),
    )
    .unwrap();
    let local = Arc::new(LocalDriver::open(base.join("volumes")).unwrap());
    let store = local.path().to_path_buf();
    let server = serve(local.clone(), &socket).unwrap();
    let podman = Podman { base };

    podman.ok(&[
        "volume",
        "create",
        "--driver",
        "cargohold",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=nodev,mode=0700",
        "scratch",
    ]);
    podman.ok(&["volume", "create", "--driver", "cargohold", "data"]);
    // The volumes are in the local driver, with their options.
    let names: Vec<String> = local.list().unwrap().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["data", "scratch"]);
    let same_opts: Options = [
        ("type", "tmpfs"),
        ("device", "tmpfs"),
        ("o", "nodev,mode=0700"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    local.create("scratch", &same_opts).unwrap();

    let listed = podman.ok(&["volume", "ls", "--format", "{{.Name}} {{.Driver}}"]);
    let mut lines: Vec<&str> = listed.lines().collect();
    lines.sort();
    assert_eq!(lines, ["data cargohold", "scratch cargohold"]);

    let inspected = podman.ok(&["volume", "inspect", "data"]);
    let json: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(json[0]["Driver"], "cargohold", "{inspected}");

    // Podman mounts through the plugin, holding the volume under its own id (its
    // `volume mount` prints nothing for a plugin volume; inspect then shows the path).
    podman.ok(&["volume", "mount", "data"]);
    assert_eq!(local.get("data").unwrap().status["holders"], 1);
    assert_eq!(local.remove("data").unwrap_err().kind(), ErrorKind::InUse);
    let inspected = podman.ok(&["volume", "inspect", "data"]);
    let json: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    let mountpoint = json[0]["Mountpoint"].as_str().unwrap_or_default();
    assert_eq!(
        Path::new(mountpoint),
        store.join("data/_data"),
        "{inspected}"
    );
    podman.ok(&["volume", "unmount", "data"]);
    assert_eq!(local.get("data").unwrap().status["holders"], 0);

    // Podman cannot remove a volume the driver says is in use.
    local.mount("data", "held-by-test").unwrap();
    let out = podman.cmd(&["volume", "rm", "data"]);
    assert!(!out.status.success(), "removing a held volume must fail");
    assert!(local.get("data").is_ok(), "the held volume is still there");
    local.unmount("data", "held-by-test").unwrap();

    podman.ok(&["volume", "rm", "data"]);
    podman.ok(&["volume", "rm", "scratch"]);
    assert_eq!(local.list().unwrap(), vec![]);

    server.shutdown().unwrap();
    assert!(!socket.exists());
    // Podman's own state goes with the temporary directory; make sure it holds no mounts.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(
        !mounts.contains(&*base.to_string_lossy()),
        "mounts left under {}",
        base.display()
    );
}
