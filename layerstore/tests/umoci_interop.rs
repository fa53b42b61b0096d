//! Without these, trees we build from OCI layers could differ from what the reference
//! OCI tool (umoci) unpacks from the same image, and diffs we export could be read
//! differently by it. Needs umoci, setfattr and root; with `CARGOHOLD_CORPUS` set to a
//! corpus built by the project's corpus script, also compares on that real image.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use cargohold_core::{Confine, Root};
use layerstore::archive::{self, ApplyOptions, InventoryOptions};
use support::require_root;

fn run(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e} (is it installed?)"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn umoci(args: &[&str]) {
    run(Command::new("umoci").args(args));
}

fn root(p: &Path) -> Root {
    Root::open(p, Confine::InRoot).unwrap()
}

fn sh(script: &str, dir: &Path) {
    run(Command::new("sh").arg("-ec").arg(script).current_dir(dir));
}

/// The layer blobs of `tag` in the OCI layout, bottom first.
fn layers(layout: &Path, tag: &str) -> Vec<PathBuf> {
    let blob = |d: &str| {
        let (alg, hex) = d.split_once(':').unwrap();
        layout.join("blobs").join(alg).join(hex)
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let desc = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .expect("tag in index");
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(blob(desc["digest"].as_str().unwrap())).unwrap())
            .unwrap();
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| blob(l["digest"].as_str().unwrap()))
        .collect()
}

fn apply_all(layers: &[PathBuf], into: &Path) {
    std::fs::create_dir_all(into).unwrap();
    for l in layers {
        let f = std::fs::File::open(l).unwrap();
        archive::apply(
            std::io::BufReader::new(f),
            &root(into),
            &[],
            &ApplyOptions::default(),
        )
        .unwrap_or_else(|e| panic!("applying {}: {e}", l.display()));
    }
}

/// Compare two trees path by path and name every difference.
fn assert_same_tree(ours: &Path, theirs: &Path) {
    let opts = InventoryOptions {
        ignore_overlay_xattrs: true,
        ignore_symlink_mtimes: false,
    };
    let a = archive::inventory_with(&root(ours), &opts).unwrap();
    let b = archive::inventory_with(&root(theirs), &opts).unwrap();
    let mut diffs = Vec::new();
    for (p, e) in &a {
        match b.get(p) {
            None => diffs.push(format!("only ours: {}", p.display())),
            Some(f) if f != e => diffs.push(format!("{}: ours {e:?} umoci {f:?}", p.display())),
            _ => {}
        }
    }
    for p in b.keys().filter(|p| !a.contains_key(*p)) {
        diffs.push(format!("only umoci: {}", p.display()));
    }
    assert!(
        diffs.is_empty(),
        "{} differences, first: {:#?}",
        diffs.len(),
        &diffs[..diffs.len().min(20)]
    );
    assert!(a.len() == b.len() && !a.is_empty());
}

const LAYER1: &str = r#"
mkdir -p etc/conf.d usr/bin var/lib/gone/deep dev tmp
echo hostname > etc/hostname
echo a > etc/conf.d/a; echo b > etc/conf.d/b
echo tool > usr/bin/tool; chmod 4755 usr/bin/tool
echo sg > usr/bin/sg; chown 12:34 usr/bin/sg; chmod 2750 usr/bin/sg
ln usr/bin/tool usr/bin/tool-hard
ln -s /usr/bin/tool usr/bin/tool-sym
ln -s ../../etc/hostname var/lib/rel
echo x > var/lib/gone/deep/x
mknod dev/null c 1 3; mknod dev/loop0 b 7 0; mkfifo tmp/fifo; chmod 1777 tmp
setfattr -n user.note -v hello etc/hostname
setfattr -n security.capability -v 0sAQAAAgAgAAAAAAAAAAAAAAAAAAA= usr/bin/tool
mkdir -p long/$(printf 'd%.0s' $(seq 120))
echo long > long/$(printf 'd%.0s' $(seq 120))/$(printf 'f%.0s' $(seq 120))
"#;

const LAYER2: &str = r#"
echo changed > etc/hostname
rm etc/conf.d/a
rm -r var/lib/gone
rm usr/bin/tool-sym; mkdir usr/bin/tool-sym; echo now-a-dir > usr/bin/tool-sym/f
echo new > etc/new; ln etc/new etc/new-hard
rm dev/loop0
"#;

/// A two-layer image made by umoci from trees changed with ordinary tools.
fn make_image(tmp: &Path) -> (PathBuf, PathBuf) {
    let layout = tmp.join("oci");
    let l = layout.to_str().unwrap();
    umoci(&["init", "--layout", l]);
    umoci(&["new", "--image", &format!("{l}:t")]);
    let bundle = tmp.join("bundle");
    let b = bundle.to_str().unwrap();
    umoci(&["unpack", "--image", &format!("{l}:t"), b]);
    sh(LAYER1, &bundle.join("rootfs"));
    umoci(&["repack", "--image", &format!("{l}:t"), b]);
    std::fs::remove_dir_all(&bundle).unwrap();
    umoci(&["unpack", "--image", &format!("{l}:t"), b]);
    sh(LAYER2, &bundle.join("rootfs"));
    umoci(&["repack", "--image", &format!("{l}:t"), b]);
    (layout, bundle)
}

#[test]
fn applied_umoci_layers_match_umoci_unpack() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = make_image(tmp.path());
    let blobs = layers(&layout, "t");
    assert_eq!(blobs.len(), 2);
    let ours = tmp.path().join("ours");
    apply_all(&blobs, &ours);
    let reference = tmp.path().join("ref");
    umoci(&[
        "unpack",
        "--image",
        &format!("{}:t", layout.display()),
        reference.to_str().unwrap(),
    ]);
    assert_same_tree(&ours, &reference.join("rootfs"));
}

#[test]
fn our_exported_diff_unpacks_identically_in_umoci() {
    require_root();
    let tmp = tempfile::tempdir().unwrap();
    let (layout, _) = make_image(tmp.path());
    let l = layout.to_str().unwrap();
    let parent = tmp.path().join("parent");
    apply_all(&layers(&layout, "t"), &parent);
    let child = tmp.path().join("child");
    run(Command::new("cp").arg("-a").arg(&parent).arg(&child));
    sh(
        "rm -r etc/conf.d; echo more > usr/bin/more; ln -s more usr/bin/less; rm etc/new-hard; mkfifo p",
        &child,
    );
    let tar = tmp.path().join("diff.tar");
    let f = std::fs::File::create(&tar).unwrap();
    archive::export_tree_diff(Some(&root(&parent)), &root(&child), f).unwrap();
    umoci(&[
        "raw",
        "add-layer",
        "--image",
        &format!("{l}:t"),
        "--tag",
        "t2",
        tar.to_str().unwrap(),
    ]);
    let unpacked = tmp.path().join("unpacked");
    umoci(&[
        "unpack",
        "--image",
        &format!("{l}:t2"),
        unpacked.to_str().unwrap(),
    ]);
    assert_same_tree(&child, &unpacked.join("rootfs"));
}

#[test]
fn corpus_layers_match_umoci_unpack_when_a_corpus_is_given() {
    let Some(corpus) = std::env::var_os("CARGOHOLD_CORPUS") else {
        assert!(
            std::env::var_os("CARGOHOLD_REQUIRE_CORPUS").is_none(),
            "CARGOHOLD_REQUIRE_CORPUS is set (the test command built a corpus) but CARGOHOLD_CORPUS is not"
        );
        eprintln!("CARGOHOLD_CORPUS not set: the corpus comparison is not run");
        return;
    };
    require_root();
    let corpus = PathBuf::from(corpus);
    let blobs: Vec<PathBuf> = ["1-base", "2-changes", "3-opaque", "4-special"]
        .iter()
        .map(|n| corpus.join("layers").join(format!("{n}.tar.gz")))
        .collect();
    let base = std::env::var_os("CARGOHOLD_SCRATCH").map(PathBuf::from);
    let tmp = match &base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let ours = tmp.path().join("ours");
    apply_all(&blobs, &ours);
    assert_same_tree(&ours, &corpus.join("unpacked-v1/rootfs"));
}
