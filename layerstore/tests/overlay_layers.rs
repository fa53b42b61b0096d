//! Without this, layers applied in overlay form could stop composing: a whiteout or an
//! opaque directory in an upper layer would no longer hide what the layers below hold
//! once the kernel stacks them, or would be stored in a form overlay does not read; and a
//! container's diff read from its upper dir would stop giving the OCI `.wh.` form.

use std::fs;
use std::io::Cursor;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use std::process::Command;

use layerstore::drivers::overlay::{Overlay, in_user_namespace};
use layerstore::{ApplyOptions, LayerStore};

const ROLE: &str = "CARGOHOLD_OVERLAY_LAYERS_ROOTLESS_CHILD";

fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        match data {
            Some(d) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(0o644);
                h.set_size(d.len() as u64);
                b.append_data(&mut h, path, *d).unwrap();
            }
            None => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(0o755);
                h.set_size(0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

#[test]
fn whiteouts_and_opaque_dirs_hide_lower_content_when_stacked() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts and must run as root"
    );
    assert!(!in_user_namespace().unwrap());
    stack(false);
}

/// Run the same flow inside `unshare --user --map-root-user --mount`, where the store
/// must pick `userxattr` by itself.
#[test]
fn rootless_layers_use_user_xattrs() {
    if std::env::var_os(ROLE).is_some() {
        assert!(in_user_namespace().unwrap(), "not in a user namespace");
        assert!(Overlay::new().userxattr());
        stack(true);
    } else {
        let out = Command::new("unshare")
            .args(["--user", "--map-root-user", "--mount", "--"])
            .arg(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "rootless_layers_use_user_xattrs",
                "--test-threads=1",
            ])
            .env(ROLE, "1")
            .output()
            .expect("run unshare (util-linux) — it must be installed");
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains("1 passed"),
            "child:\n{text}"
        );
    }
}

fn stack(userxattr: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("store");
    let store = LayerStore::open_with(&root, Box::new(Overlay::new())).unwrap();
    let base = tar_of(&[
        ("a", Some(b"a")),
        ("gone", Some(b"g")),
        ("dir/", None),
        ("dir/x", Some(b"x")),
    ]);
    let top = tar_of(&[
        (".wh.gone", Some(b"")),
        ("dir/", None),
        ("dir/.wh..wh..opq", Some(b"")),
        ("dir/y", Some(b"y")),
    ]);
    let opts = ApplyOptions::default();
    let l1 = store
        .apply_layer(&mut Cursor::new(base), None, &opts)
        .unwrap();
    let l2 = store
        .apply_layer(&mut Cursor::new(top), Some(&l1.chain_id), &opts)
        .unwrap();

    // Stored in overlay's own form in the layer's dir.
    let dir2 = store.layer_dir(&l2.chain_id).unwrap();
    let wh = fs::symlink_metadata(dir2.join("gone")).unwrap();
    assert!(wh.file_type().is_char_device() && wh.rdev() == 0, "{wh:?}");
    assert!(!dir2.join(".wh.gone").exists());
    let key = if userxattr {
        "user.overlay.opaque"
    } else {
        "trusted.overlay.opaque"
    };
    let opq = rustix::fs::lgetxattr(dir2.join("dir"), key, &mut [0u8; 8]);
    assert_eq!(opq.ok(), Some(1), "dir carries {key}=y");

    store
        .prepare_container("c", Some(&l2.chain_id), Default::default())
        .unwrap();
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();
    store.mount("c", &at).unwrap();
    let seen = std::panic::catch_unwind(|| {
        assert_eq!(fs::read(at.join("a")).unwrap(), b"a");
        assert!(!at.join("gone").exists(), "the whiteout hides gone");
        let mut names: Vec<_> = fs::read_dir(at.join("dir"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        names.sort();
        assert_eq!(names, ["y"], "the opaque dir hides dir/x");
    });
    store.unmount(&at).unwrap();
    seen.unwrap();
    assert!(
        layerstore::mounts::mounts_below(tmp.path())
            .unwrap()
            .is_empty()
    );
}

/// A deletion and a new file in a container come out of its upper dir alone as an OCI
/// diff: a `.wh.` entry and the file, nothing from the lowers.
#[test]
fn diff_of_the_upper_dir_holds_the_change_only() {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test mounts and must run as root"
    );
    let tmp = tempfile::tempdir().unwrap();
    let store = LayerStore::open_with(tmp.path().join("store"), Box::new(Overlay::new())).unwrap();
    let base = tar_of(&[("a", Some(b"a")), ("gone", Some(b"g"))]);
    let l1 = store
        .apply_layer(&mut Cursor::new(base), None, &ApplyOptions::default())
        .unwrap();
    let mounts = store
        .prepare_container("c", Some(&l1.chain_id), Default::default())
        .unwrap();
    let at = tmp.path().join("mnt");
    fs::create_dir(&at).unwrap();
    store.mount("c", &at).unwrap();
    let w = fs::remove_file(at.join("gone")).and_then(|()| fs::write(at.join("new"), "n"));
    store.unmount(&at).unwrap();
    w.unwrap();

    let upper = mounts[0]
        .options
        .iter()
        .find_map(|o| o.strip_prefix("upperdir="))
        .expect("an upperdir option");
    let upper = cargohold_core::Root::open(upper, cargohold_core::Confine::InRoot).unwrap();
    let lower =
        cargohold_core::Root::open(&mounts[0].lowerdirs[0], cargohold_core::Confine::InRoot)
            .unwrap();
    let mut out = Vec::new();
    layerstore::archive::export_overlay_upper(&upper, &[&lower], false, &mut out).unwrap();
    let mut names: Vec<String> = tar::Archive::new(&out[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .map(|n| n.trim_start_matches("./").to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    assert_eq!(names, [".wh.gone", "new"]);
    layerstore::Driver::remove(&store, "c").unwrap();
    assert!(
        layerstore::mounts::mounts_below(tmp.path())
            .unwrap()
            .is_empty()
    );
}
