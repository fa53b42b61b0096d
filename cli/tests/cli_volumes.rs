//! Without these, `cargohold volume` could lose a volume between invocations, prune one a
//! container holds, exit 0 on a bad name, or restore a backup that differs.

mod support;
use support::{cargohold, ok, stdout};

#[test]
fn volume_lifecycle_from_the_shell() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    assert_eq!(
        ok(cargohold(
            root,
            &["volume", "create", "data", "--label", "app=web"]
        )),
        "data"
    );
    let anon = ok(cargohold(root, &["volume", "create"]));
    assert_eq!(anon.len(), 64);

    let path = ok(cargohold(root, &["volume", "mount", "data", "--id", "c1"]));
    std::fs::write(std::path::Path::new(&path).join("hello.txt"), b"kept\n").unwrap();

    let ls: serde_json::Value =
        serde_json::from_str(&ok(cargohold(root, &["--json", "volume", "ls"]))).unwrap();
    let names: Vec<&str> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    let mut want = vec!["data", anon.as_str()];
    want.sort();
    assert_eq!(names, want);

    let info: serde_json::Value =
        serde_json::from_str(&ok(cargohold(root, &["volume", "inspect", "data"]))).unwrap();
    assert_eq!(info["labels"]["app"], "web");
    assert_eq!(info["holders"], serde_json::json!(["c1"]));

    // Held: removal and prune --all leave it alone.
    let o = cargohold(root, &["volume", "rm", "data"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[in_use]"));
    let pruned = ok(cargohold(root, &["volume", "prune", "--all"]));
    assert_eq!(pruned, anon);

    // Backup and restore into a new volume.
    let backup = root.join("data.tar");
    ok(cargohold(
        root,
        &["volume", "export", "data", backup.to_str().unwrap()],
    ));
    ok(cargohold(root, &["volume", "create", "copy"]));
    ok(cargohold(
        root,
        &["volume", "import", "copy", backup.to_str().unwrap()],
    ));
    let copy = ok(cargohold(root, &["volume", "mount", "copy"]));
    assert_eq!(
        std::fs::read(std::path::Path::new(&copy).join("hello.txt")).unwrap(),
        b"kept\n"
    );
    ok(cargohold(root, &["volume", "unmount", "copy"]));

    ok(cargohold(
        root,
        &["volume", "unmount", "data", "--id", "c1"],
    ));
    ok(cargohold(root, &["volume", "rm", "data"]));
    ok(cargohold(root, &["volume", "rm", "copy"]));
    assert_eq!(
        ok(cargohold(root, &["volume", "ls"])),
        "NAME  TYPE  HOLDERS  CREATED"
    );
}

#[test]
fn bad_volume_input_is_refused_with_the_right_exit_code() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for bad in [
        &["volume", "create", "../escape"][..],
        &["volume", "create", "ok-name", "-o", "colour=blue"],
    ] {
        let o = cargohold(root, bad);
        assert_eq!(o.status.code(), Some(1), "{bad:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("[invalid_argument]") && err.lines().count() == 1,
            "{err}"
        );
    }
    let o = cargohold(root, &["volume", "create", "v1", "-o", "novalue"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a malformed KEY=VALUE is a usage error"
    );
    let o = cargohold(root, &["volume", "inspect", "missing"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[not_found]"));
    let o = cargohold(root, &["volume", "import", "missing", "/nonexistent.tar"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stdout(&cargohold(root, &["volume", "ls"])).lines().count() == 1,
        "nothing was created"
    );
}

#[test]
fn serve_plugin_answers_the_plugin_protocol_until_sigterm() {
    use volstore::Driver;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let socket = tmp.path().join("cargohold.sock");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cargohold"))
        .arg("--root")
        .arg(&root)
        .args(["volume", "serve-plugin", "--socket"])
        .arg(&socket)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed().as_secs() < 30,
            "the plugin socket never appeared"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let client = volstore::plugin::Client::connect(&socket).unwrap();
    client
        .create("via-plugin", &volstore::Options::new())
        .unwrap();
    let p = client.mount("via-plugin", "ctr-1").unwrap();
    assert!(p.is_dir());
    // The same store, seen from the command line.
    let info: serde_json::Value =
        serde_json::from_str(&ok(cargohold(&root, &["volume", "inspect", "via-plugin"]))).unwrap();
    assert_eq!(info["holders"], serde_json::json!(["ctr-1"]));
    client.unmount("via-plugin", "ctr-1").unwrap();
    drop(client);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!socket.exists(), "the socket is removed on shutdown");
}
