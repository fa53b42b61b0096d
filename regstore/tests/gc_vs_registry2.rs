//! Without these, cargohold's garbage collection could silently disagree with registry:2's
//! `garbage-collect` (Debian's docker-registry, distribution 2.8) on the same storage
//! root: deleting a blob registry:2 keeps, or keeping garbage it deletes. The only
//! differences allowed are the deliberate ones, each asserted here: the per-platform
//! manifests of a tagged index and the referrers of a tagged image (and their blobs)
//! are kept, and no `_layers` link is left pointing at a deleted blob.
//! Needs docker-registry on PATH (fails loudly without it).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use cargohold_core::Digest;
use regstore::drivers::Filesystem;
use regstore::gc::{self, GcOptions};
use regstore::{Key, Registry, StorageDriver, layout};

#[allow(dead_code)]
#[path = "../examples/gc_fixture.rs"]
mod fixture;

fn copy_tree(from: &Path, to: &Path) {
    let st = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .unwrap();
    assert!(st.success());
}

fn registry2_gc(root: &Path, scratch: &Path, delete_untagged: bool) {
    let config = scratch.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            root.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new("docker-registry");
    cmd.arg("garbage-collect");
    if delete_untagged {
        cmd.arg("--delete-untagged");
    }
    let out = cmd
        .arg(&config)
        .output()
        .expect("docker-registry (distribution 2.8) must be installed");
    assert!(
        out.status.success(),
        "garbage-collect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn blobs(root: &Path) -> BTreeSet<Digest> {
    let d = Filesystem::new(root).unwrap();
    let prefix = Key::parse(&format!("{}/blobs", layout::V2)).unwrap();
    d.walk(&prefix)
        .unwrap()
        .into_iter()
        .filter(|i| i.key.file_name() == "data")
        .map(|i| {
            let dir = i.key.parent().unwrap();
            let alg = dir.parent().unwrap().parent().unwrap();
            Digest::parse(&format!("{}:{}", alg.file_name(), dir.file_name())).unwrap()
        })
        .collect()
}

type Links = BTreeSet<(String, Digest)>;

/// `(repository, digest)` of every revision link, and of every `_layers` link.
fn links(root: &Path) -> (Links, Links) {
    let reg = Registry::open(Filesystem::new(root).unwrap());
    let (mut revs, mut layers) = (BTreeSet::new(), BTreeSet::new());
    for repo in reg.catalog(None, None).unwrap() {
        for (dir, out) in [
            (layout::revisions(&repo), &mut revs),
            (
                layout::repository(&repo).join("_layers").unwrap(),
                &mut layers,
            ),
        ] {
            for i in reg.driver().walk(&dir).unwrap_or_default() {
                if i.key.file_name() == "link" {
                    let hex = i.key.parent().unwrap();
                    let alg = hex.parent().unwrap();
                    let d = format!("{}:{}", alg.file_name(), hex.file_name());
                    out.insert((repo.clone(), Digest::parse(&d).unwrap()));
                }
            }
        }
    }
    (revs, layers)
}

#[test]
fn same_blobs_removed_as_registry2_except_the_deliberate_differences() {
    let tmp = tempfile::tempdir().unwrap();
    let pristine = tmp.path().join("pristine");
    let reg = Registry::open(Filesystem::new(&pristine).unwrap());
    let exp = fixture::generate(&reg, 11, 4).unwrap();
    assert!(!exp.index_children_blobs.is_empty() && !exp.referrer_blobs.is_empty());
    let before = blobs(&pristine);

    for delete_untagged in [false, true] {
        let theirs = tmp.path().join(format!("registry2-{delete_untagged}"));
        let ours = tmp.path().join(format!("cargohold-{delete_untagged}"));
        copy_tree(&pristine, &theirs);
        copy_tree(&pristine, &ours);
        registry2_gc(&theirs, tmp.path(), delete_untagged);
        let report = gc::collect(
            &Registry::open(Filesystem::new(&ours).unwrap()),
            GcOptions {
                delete_untagged,
                grace: std::time::Duration::ZERO,
                ..GcOptions::default()
            },
        )
        .unwrap();
        let (b2, bc) = (blobs(&theirs), blobs(&ours));
        assert!(b2.len() < before.len(), "registry:2 deleted nothing");
        let deleted: BTreeSet<Digest> = before.difference(&bc).cloned().collect();
        assert_eq!(
            deleted,
            report.blobs_deleted.iter().cloned().collect(),
            "the report names what went"
        );
        let only_ours: BTreeSet<Digest> = bc.difference(&b2).cloned().collect();
        let only_theirs: BTreeSet<Digest> = b2.difference(&bc).cloned().collect();
        assert!(
            only_theirs.is_empty(),
            "cargohold deleted what registry:2 keeps: {only_theirs:?}"
        );
        let (revs2, layers2) = links(&theirs);
        let (revsc, layersc) = links(&ours);
        if delete_untagged {
            // Deliberate: an index's platforms and a tagged image's referrers stay.
            let kept: BTreeSet<Digest> = exp
                .index_children_blobs
                .union(&exp.referrer_blobs)
                .cloned()
                .collect();
            assert_eq!(only_ours, kept);
            let revs_only_ours: BTreeSet<_> = revsc.difference(&revs2).cloned().collect();
            assert_eq!(revs_only_ours, exp.kept_manifests);
            assert!(revs2.is_subset(&revsc));
        } else {
            assert!(
                only_ours.is_empty(),
                "kept what registry:2 deletes: {only_ours:?}"
            );
            assert_eq!(revs2, revsc);
        }
        // Deliberate: registry:2 leaves links to deleted blobs; cargohold removes them.
        assert!(layersc.iter().all(|(_, d)| bc.contains(d)));
        let dangling2: BTreeSet<_> = layers2
            .iter()
            .filter(|(_, d)| !b2.contains(d))
            .cloned()
            .collect();
        assert!(!dangling2.is_empty());
        assert!(layersc.is_subset(&layers2));
        // And what cargohold left is a healthy store.
        let check = regstore::fsck::check(
            &Registry::open(Filesystem::new(&ours).unwrap()),
            regstore::fsck::FsckOptions::default(),
        )
        .unwrap();
        assert!(check.is_clean(), "{:?}", check.findings);
    }
}
