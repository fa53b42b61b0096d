//! Without these, the `cargohold` command could exit 0 on failure, print errors scripts
//! cannot tell apart, or lose track of layers and containers between invocations.

use std::path::Path;

mod support;
use support::{cargohold, stdout};

fn layer_tar(dir: &Path) -> std::path::PathBuf {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_path("hello.txt").unwrap();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_uid(0);
    h.set_gid(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append(&h, &b"hello\n"[..]).unwrap();
    let path = dir.join("layer.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    path
}

#[test]
fn usage_errors_exit_2_and_operation_errors_exit_1_with_one_line() {
    let tmp = tempfile::tempdir().unwrap();
    let o = cargohold(tmp.path(), &["layer", "frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
    let o = cargohold(tmp.path(), &["layer", "inspect", "sha256:nothex"]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "a malformed digest argument is a usage error"
    );
    let missing = format!("sha256:{}", "0".repeat(64));
    let o = cargohold(tmp.path(), &["layer", "inspect", &missing]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("[not_found]"), "the kind is named: {err}");
    let o = cargohold(tmp.path(), &["container", "create", "../escape"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("[invalid_argument]"));
}

#[test]
fn layer_and_container_lifecycle_across_invocations() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let tar = layer_tar(tmp.path());
    let o = cargohold(&root, &["layer", "apply", tar.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let chain = stdout(&o);
    assert!(chain.starts_with("sha256:") && chain.len() == 71);
    let ls = cargohold(&root, &["--json", "layer", "ls"]);
    let v: serde_json::Value = serde_json::from_slice(&ls.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1);
    assert_eq!(v[0]["chain_id"], chain.as_str());

    assert!(
        cargohold(&root, &["container", "create", "c1", "--layer", &chain])
            .status
            .success()
    );
    let o = cargohold(&root, &["layer", "rm", &chain]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a layer under a container cannot go"
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("[in_use]"));
    let mnt = cargohold(&root, &["container", "mount", "c1"]);
    assert!(
        mnt.status.success(),
        "{}",
        String::from_utf8_lossy(&mnt.stderr)
    );
    let dir = std::path::PathBuf::from(stdout(&mnt));
    assert_eq!(std::fs::read(dir.join("hello.txt")).unwrap(), b"hello\n");
    std::fs::write(dir.join("new.txt"), b"x").unwrap();
    assert!(
        cargohold(&root, &["container", "unmount", "c1"])
            .status
            .success()
    );
    let diff = cargohold(&root, &["container", "diff", "c1"]);
    assert_eq!(stdout(&diff), "A /new.txt");
    let commit = cargohold(&root, &["container", "commit", "c1"]);
    assert!(commit.status.success());
    let new_chain = stdout(&commit);
    assert_ne!(new_chain, chain);
    let out = tmp.path().join("export.tar");
    assert!(
        cargohold(
            &root,
            &["layer", "export", &new_chain, out.to_str().unwrap()]
        )
        .status
        .success()
    );
    let mut names = Vec::new();
    for e in tar::Archive::new(std::fs::File::open(&out).unwrap())
        .entries()
        .unwrap()
    {
        names.push(e.unwrap().path().unwrap().display().to_string());
    }
    assert_eq!(names, vec!["new.txt"]);
    assert!(
        cargohold(&root, &["layer", "rm", &new_chain])
            .status
            .success()
    );
    assert!(cargohold(&root, &["layer", "rm", &chain]).status.success());
    let ls = cargohold(&root, &["--json", "layer", "ls"]);
    assert_eq!(stdout(&ls), "[]");
}

#[test]
fn a_layer_applied_with_its_sync_deferred_is_durable_after_layer_sync() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let tar = layer_tar(tmp.path());
    let o = cargohold(
        &root,
        &["layer", "apply", "--defer-sync", tar.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let chain = stdout(&o);
    let durable = |root: &Path| {
        let o = cargohold(root, &["layer", "inspect", &chain]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        v["durable"].as_bool().unwrap()
    };
    assert!(!durable(&root), "deferred until synced");
    let o = cargohold(&root, &["layer", "sync"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o), chain, "sync names what it made durable");
    assert!(durable(&root));
    assert_eq!(stdout(&cargohold(&root, &["layer", "sync"])), "");
}
