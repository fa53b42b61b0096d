//! Without these, fsck could miss a kind of damage (a corrupt blob, a dangling or empty
//! link, a dangling tag, an unreadable manifest, a missing reference, a stale upload),
//! report a healthy store as damaged, or "repair" by destroying evidence (a corrupt
//! blob must be quarantined with its bytes, never deleted) or healthy content.

use std::time::{Duration, SystemTime};

use cargohold_core::Digest;
use regstore::drivers::{Filesystem, Memory};
use regstore::fsck::{self, Damage, FsckOptions, FsckProgress, FsckReport, QUARANTINE};
use regstore::uploads::rfc3339;
use regstore::{Descriptor, Key, MediaType, Registry, layout};
use serde_json::json;

fn desc(d: &Descriptor, mt: &str) -> serde_json::Value {
    json!({"mediaType": mt, "digest": d.digest, "size": d.size})
}

struct Image {
    manifest: Digest,
    config: Digest,
    layer: Digest,
}

fn image(reg: &Registry, repo: &str, tag: &str, layer: &[u8]) -> Image {
    let cfg = reg
        .put_blob(
            repo,
            format!("{{\"os\":\"linux\",\"t\":\"{tag}\"}}").as_bytes(),
        )
        .unwrap();
    let l = reg.put_blob(repo, layer).unwrap();
    let m = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": desc(&cfg, "application/vnd.oci.image.config.v1+json"),
        "layers": [desc(&l, "application/vnd.oci.image.layer.v1.tar")]}))
    .unwrap();
    let manifest = reg.put_manifest(repo, tag, &m, None).unwrap();
    Image {
        manifest,
        config: cfg.digest,
        layer: l.digest,
    }
}

/// A healthy store: two repositories, an index with its children, an upload in progress.
fn healthy(reg: &Registry) -> (Image, Image) {
    let a = image(reg, "app", "v1", b"layer of app");
    let b = image(reg, "lib/base", "v1", b"layer of base");
    let child =
        |d: &Digest| json!({"mediaType": MediaType::OciManifest.as_str(), "digest": d, "size": 1});
    let (x, y) = (
        image(reg, "app", "amd64", b"amd64"),
        image(reg, "app", "arm64", b"arm64"),
    );
    let index = serde_json::to_vec(&json!({"schemaVersion": 2,
        "mediaType": MediaType::OciIndex.as_str(),
        "manifests": [child(&x.manifest), child(&y.manifest)]}))
    .unwrap();
    reg.put_manifest("app", "multi", &index, None).unwrap();
    let up = reg.start_upload("app").unwrap();
    up.append(0, &b"half an upload"[..]).unwrap();
    (a, b)
}

fn check(reg: &Registry, repair: bool) -> FsckReport {
    fsck::check(
        reg,
        FsckOptions {
            repair,
            ..FsckOptions::default()
        },
    )
    .unwrap()
}

fn kinds(r: &FsckReport) -> Vec<&'static str> {
    let mut k: Vec<_> = r.findings.iter().map(|f| f.damage.kind()).collect();
    k.sort();
    k
}

fn both(test: fn(&Registry)) {
    let dir = tempfile::tempdir().unwrap();
    test(&Registry::open(Filesystem::new(dir.path()).unwrap()));
    test(&Registry::open(Memory::new()));
}

#[test]
fn a_healthy_store_is_clean_and_every_blob_is_hashed() {
    both(|reg| {
        healthy(reg);
        let blobs = reg
            .driver()
            .walk(&Key::parse(&format!("{}/blobs", layout::V2)).unwrap())
            .unwrap()
            .into_iter()
            .filter(|i| i.key.file_name() == "data")
            .collect::<Vec<_>>();
        let r = check(reg, false);
        assert!(r.is_clean(), "{:?}", r.findings);
        assert_eq!(r.blobs_checked, blobs.len());
        assert_eq!(r.bytes_checked, blobs.iter().map(|i| i.size).sum::<u64>());
        assert_eq!(r.repositories, 2);
        assert_eq!(r.manifests_checked, 5);
        assert_eq!(r.unrepaired(), 0);
        assert!(check(reg, true).is_clean());
    });
}

#[test]
fn a_corrupt_blob_is_quarantined_with_its_bytes_and_its_links_go() {
    both(|reg| {
        let (a, b) = healthy(reg);
        let bad = b"bit rot".to_vec();
        reg.driver()
            .put_content(&layout::blob_data(&a.layer), &bad)
            .unwrap();
        let r = check(reg, false);
        assert_eq!(kinds(&r), ["corrupt_blob"]);
        assert_eq!(
            r.findings[0].damage,
            Damage::CorruptBlob {
                digest: a.layer.clone(),
                actual: Digest::sha256(&bad)
            }
        );
        assert_eq!(r.unrepaired(), 1);
        // Check only: nothing changed.
        assert_eq!(
            reg.driver()
                .get_content(&layout::blob_data(&a.layer))
                .unwrap(),
            bad
        );

        let r = check(reg, true);
        assert_eq!(
            kinds(&r),
            ["corrupt_blob", "dangling_link", "missing_reference"]
        );
        let q = r.findings[0].quarantined.clone().expect("quarantined");
        assert!(q.as_str().starts_with(QUARANTINE));
        assert!(!q.as_str().contains("/blobs/"));
        assert_eq!(
            reg.driver().get_content(&q.join("data").unwrap()).unwrap(),
            bad
        );
        assert!(reg.driver().stat(&layout::blob_data(&a.layer)).is_err());
        assert!(
            reg.driver()
                .stat(&layout::layer_link("app", &a.layer))
                .is_err()
        );
        // The manifest is the evidence of what is missing: it stays, unrepaired.
        assert_eq!(r.unrepaired(), 1);
        reg.get_manifest("app", "v1").unwrap();
        // The other repository is untouched, and pushing the layer again heals the store.
        reg.read_blob("lib/base", &b.layer).unwrap();
        reg.put_blob("app", b"layer of app").unwrap();
        assert!(check(reg, false).is_clean());
    });
}

#[test]
fn dangling_and_damaged_links_are_found_and_removed() {
    both(|reg| {
        let (a, b) = healthy(reg);
        // A blob deleted behind the store's back: the link to it dangles.
        let orphan = reg.put_blob("lib/base", b"unreferenced").unwrap();
        let dir = layout::blob_data(&orphan.digest).parent().unwrap();
        reg.driver().delete(&dir).unwrap();
        // An empty link (an old registry's crash) and one naming another digest.
        reg.driver()
            .put_content(&layout::layer_link("lib/base", &b.config), b"")
            .unwrap();
        reg.driver()
            .put_content(
                &layout::layer_link("app", &a.config),
                a.layer.to_string().as_bytes(),
            )
            .unwrap();
        let r = check(reg, false);
        assert_eq!(
            kinds(&r),
            [
                "bad_link",
                "bad_link",
                "dangling_link",
                "missing_reference",
                "missing_reference"
            ]
        );
        assert!(r.findings.iter().any(|f| f.damage
            == Damage::DanglingLink {
                key: layout::layer_link("lib/base", &orphan.digest),
                digest: orphan.digest.clone()
            }));
        let r = check(reg, true);
        assert_eq!(r.unrepaired(), 2, "{:?}", r.findings);
        assert!(
            reg.driver()
                .stat(&layout::layer_link("lib/base", &orphan.digest))
                .is_err()
        );
        assert!(
            reg.driver()
                .stat(&layout::layer_link("app", &a.config))
                .is_err()
        );
        // The blobs behind the damaged links are healthy and stay.
        assert!(reg.driver().stat(&layout::blob_data(&a.config)).is_ok());
        assert_eq!(
            kinds(&check(reg, false)),
            ["missing_reference", "missing_reference"]
        );
    });
}

#[test]
fn an_empty_blob_directory_is_found_and_removed() {
    both(|reg| {
        healthy(reg);
        let ghost = Digest::sha256(b"never stored");
        let marker = layout::blob_data(&ghost)
            .parent()
            .unwrap()
            .join("partial")
            .unwrap();
        reg.driver().put_content(&marker, b"").unwrap();
        let r = check(reg, false);
        assert_eq!(
            r.findings[0].damage,
            Damage::EmptyBlobDir {
                digest: ghost.clone()
            }
        );
        assert_eq!(kinds(&check(reg, true)), ["empty_blob_dir"]);
        assert!(reg.driver().stat(&marker).is_err());
        assert!(check(reg, false).is_clean());
    });
}

#[test]
fn a_dangling_tag_is_found_and_only_its_current_link_goes() {
    both(|reg| {
        let (a, _) = healthy(reg);
        let absent = Digest::sha256(b"a manifest never pushed");
        reg.driver()
            .put_content(
                &layout::tag_current("app", "ghost"),
                absent.to_string().as_bytes(),
            )
            .unwrap();
        reg.driver()
            .put_content(
                &layout::tag_index("app", "ghost", &a.manifest),
                a.manifest.to_string().as_bytes(),
            )
            .unwrap();
        let r = check(reg, false);
        assert_eq!(
            r.findings[0].damage,
            Damage::DanglingTag {
                repository: "app".into(),
                tag: "ghost".into()
            }
        );
        check(reg, true);
        assert!(
            !reg.tags("app", None, None)
                .unwrap()
                .contains(&"ghost".to_string())
        );
        assert!(
            reg.driver()
                .stat(&layout::tag_index("app", "ghost", &a.manifest))
                .is_ok()
        );
        assert!(check(reg, false).is_clean());
    });
}

#[test]
fn unreadable_manifests_and_missing_references_are_reported_not_removed() {
    both(|reg| {
        let (a, b) = healthy(reg);
        // Bytes that hash right but are no manifest, linked as a revision.
        let junk = reg.put_blob("app", b"{\"hello\": \"world\"}").unwrap();
        reg.driver()
            .put_content(
                &layout::revision_link("app", &junk.digest),
                junk.digest.to_string().as_bytes(),
            )
            .unwrap();
        // A layer unlinked from its repository, and an index child unlinked.
        reg.delete_blob("lib/base", &b.layer).unwrap();
        let arm = reg.resolve_tag("app", "arm64").unwrap();
        reg.delete_manifest("app", &arm.to_string()).unwrap();
        let r = check(reg, true);
        assert_eq!(
            kinds(&r),
            [
                "missing_reference",
                "missing_reference",
                "unreadable_manifest"
            ]
        );
        assert_eq!(r.unrepaired(), 3);
        assert!(r.findings.contains(&fsck::Finding {
            damage: Damage::MissingReference {
                repository: "lib/base".into(),
                manifest: reg.resolve_tag("lib/base", "v1").unwrap(),
                missing: b.layer.clone()
            },
            repaired: false,
            quarantined: None
        }));
        assert!(r.findings.iter().any(|f| matches!(&f.damage,
            Damage::MissingReference { missing, .. } if *missing == arm)));
        assert!(
            reg.driver()
                .stat(&layout::revision_link("app", &junk.digest))
                .is_ok()
        );
        reg.get_manifest("app", "v1").unwrap();
        assert_eq!(a.manifest, reg.resolve_tag("app", "v1").unwrap());
    });
}

#[test]
fn stale_uploads_are_found_and_removed_fresh_ones_stay() {
    both(|reg| {
        healthy(reg);
        let old = reg.start_upload("lib/base").unwrap();
        old.append(0, &b"abandoned"[..]).unwrap();
        let long_ago = SystemTime::now() - Duration::from_secs(30 * 24 * 3600);
        reg.driver()
            .put_content(
                &layout::upload_started("lib/base", old.id()),
                rfc3339(long_ago).as_bytes(),
            )
            .unwrap();
        let unknown_age = reg.start_upload("app").unwrap();
        reg.driver()
            .delete(&layout::upload_started("app", unknown_age.id()))
            .unwrap();
        let r = check(reg, true);
        assert_eq!(kinds(&r), ["stale_upload", "stale_upload"]);
        assert!(r.findings.contains(&fsck::Finding {
            damage: Damage::StaleUpload {
                repository: "lib/base".into(),
                id: old.id().into()
            },
            repaired: true,
            quarantined: None
        }));
        assert!(
            reg.driver()
                .stat(&layout::upload("lib/base", old.id()))
                .is_err()
        );
        // The upload healthy() started is fresh and stays.
        assert_eq!(reg.driver().list(&layout::uploads("app")).unwrap().len(), 1);
        let very_strict = fsck::check(
            reg,
            FsckOptions {
                upload_age: Duration::ZERO,
                ..FsckOptions::default()
            },
        )
        .unwrap();
        assert_eq!(kinds(&very_strict), ["stale_upload"]);
    });
}

#[test]
fn one_or_two_hashing_threads_find_the_same_and_report_progress() {
    both(|reg| {
        let (a, b) = healthy(reg);
        for d in [&a.layer, &b.config] {
            reg.driver()
                .put_content(&layout::blob_data(d), b"damaged")
                .unwrap();
        }
        let mut reports = Vec::new();
        for threads in [1, 2, 5] {
            let mut seen = Vec::new();
            let mut cb = |p: FsckProgress| seen.push(p);
            let r = fsck::check(
                reg,
                FsckOptions {
                    threads,
                    progress: Some(&mut cb),
                    ..FsckOptions::default()
                },
            )
            .unwrap();
            let blobs: Vec<_> = seen
                .iter()
                .filter_map(|p| match p {
                    FsckProgress::Blob { done, total, bytes } => Some((*done, *total, *bytes)),
                    _ => None,
                })
                .collect();
            assert_eq!(blobs.len(), r.blobs_checked);
            assert_eq!(
                blobs.last(),
                Some(&(r.blobs_checked, r.blobs_checked, r.bytes_checked))
            );
            let repos = seen
                .iter()
                .filter(|p| matches!(p, FsckProgress::Repository { .. }))
                .count();
            assert_eq!(repos, 2);
            let mut findings = r.findings.clone();
            findings.sort_by_key(|f| format!("{:?}", f.damage));
            reports.push((findings, r.blobs_checked, r.bytes_checked));
        }
        assert_eq!(reports[0], reports[1]);
        assert_eq!(reports[0], reports[2]);
        assert_eq!(
            reports[0]
                .0
                .iter()
                .filter(|f| f.damage.kind() == "corrupt_blob")
                .count(),
            2
        );
    });
}
