//! Without these, garbage collection could delete a blob a kept image needs (an index's
//! per-platform manifests, a referrer, a layer shared with another repository), keep
//! garbage forever, delete something on a dry run, or take the blob of a push that is
//! still going on in another process.
//! Children are this test binary re-executed with `REGSTORE_GC_CHILD` naming their role.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use cargohold_core::lock::{FileLock, LockMode};
use cargohold_core::{Digest, ErrorKind};
use regstore::drivers::{Filesystem, Memory};
use regstore::gc::{self, GC_LOCK, GcOptions, GcProgress};
use regstore::{Descriptor, Key, MediaType, Registry, layout};
use serde_json::json;

const ROLE: &str = "REGSTORE_GC_CHILD";
const ROOT: &str = "REGSTORE_GC_CHILD_ROOT";
const ARG: &str = "REGSTORE_GC_CHILD_ARG";

fn fs_registry(dir: &Path) -> Registry {
    Registry::open(Filesystem::new(dir).unwrap())
}

fn now() -> GcOptions<'static> {
    GcOptions {
        grace: Duration::ZERO,
        ..GcOptions::default()
    }
}

fn untagged() -> GcOptions<'static> {
    GcOptions {
        delete_untagged: true,
        ..now()
    }
}

fn desc(d: &Descriptor, mt: &str) -> serde_json::Value {
    json!({"mediaType": mt, "digest": d.digest, "size": d.size})
}

/// An OCI image of `layers` (and a config naming `tag`), pushed and tagged (when `tag`
/// is given); returns the manifest digest and the blob digests.
fn image(reg: &Registry, repo: &str, tag: Option<&str>, layers: &[&[u8]]) -> (Digest, Vec<Digest>) {
    let cfg = reg
        .put_blob(
            repo,
            format!("{{\"os\":\"linux\",\"n\":\"{repo}{layers:?}\"}}").as_bytes(),
        )
        .unwrap();
    let ls: Vec<Descriptor> = layers
        .iter()
        .map(|l| reg.put_blob(repo, l).unwrap())
        .collect();
    let m = json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
        "config": desc(&cfg, "application/vnd.oci.image.config.v1+json"),
        "layers": ls.iter().map(|l| desc(l, "application/vnd.oci.image.layer.v1.tar")).collect::<Vec<_>>()});
    let bytes = serde_json::to_vec(&m).unwrap();
    let d = Digest::sha256(&bytes);
    reg.put_manifest(repo, tag.unwrap_or(&d.to_string()), &bytes, None)
        .unwrap();
    let mut blobs = vec![cfg.digest];
    blobs.extend(ls.into_iter().map(|l| l.digest));
    (d, blobs)
}

fn blob_exists(reg: &Registry, d: &Digest) -> bool {
    reg.driver().stat(&layout::blob_data(d)).is_ok()
}

fn all_blobs(reg: &Registry) -> BTreeSet<Digest> {
    let prefix = Key::parse(&format!("{}/blobs", layout::V2)).unwrap();
    match reg.driver().walk(&prefix) {
        Ok(all) => all
            .into_iter()
            .filter(|i| i.key.file_name() == "data")
            .map(|i| {
                let dir = i.key.parent().unwrap();
                let alg = dir.parent().unwrap().parent().unwrap();
                Digest::parse(&format!("{}:{}", alg.file_name(), dir.file_name())).unwrap()
            })
            .collect(),
        Err(_) => BTreeSet::new(),
    }
}

/// Every tagged manifest of every repository can be read, and so can every blob and
/// child manifest it names.
fn assert_tagged_images_whole(reg: &Registry) {
    for repo in reg.catalog(None, None).unwrap() {
        for tag in reg.tags(&repo, None, None).unwrap() {
            let m = reg.get_manifest(&repo, &tag).unwrap();
            assert_manifest_whole(reg, &repo, &m.bytes);
        }
    }
}

fn assert_manifest_whole(reg: &Registry, repo: &str, bytes: &[u8]) {
    let v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
    for c in v["manifests"].as_array().into_iter().flatten() {
        let child = reg
            .get_manifest(repo, c["digest"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{repo}: child of a tagged index: {e}"));
        assert_manifest_whole(reg, repo, &child.bytes);
    }
    let layers = v["layers"].as_array().into_iter().flatten();
    for b in v.get("config").into_iter().chain(layers) {
        let d = Digest::parse(b["digest"].as_str().unwrap()).unwrap();
        reg.read_blob(repo, &d)
            .unwrap_or_else(|e| panic!("{repo}: blob {d} of a tagged manifest: {e}"));
    }
}

fn both(check: fn(&Registry)) {
    let dir = tempfile::tempdir().unwrap();
    check(&fs_registry(dir.path()));
    check(&Registry::open(Memory::new()));
}

#[test]
fn unreferenced_blobs_and_their_links_go_referenced_ones_stay() {
    both(|reg| {
        let (m, blobs) = image(reg, "app", Some("v1"), &[b"layer one", b"shared"]);
        let (_, other) = image(reg, "other/app", Some("v1"), &[b"shared", b"two"]);
        let orphan = reg.put_blob("app", b"pushed but never referenced").unwrap();
        let report = gc::collect(reg, now()).unwrap();
        assert_eq!(report.blobs_deleted, std::slice::from_ref(&orphan.digest));
        assert_eq!(report.bytes_deleted, orphan.size);
        assert_eq!(
            report.links_deleted,
            [("app".into(), orphan.digest.clone())]
        );
        assert_eq!(report.repositories, 2);
        assert_eq!(report.manifests_kept, 2);
        assert!(report.manifests_deleted.is_empty());
        assert!(!blob_exists(reg, &orphan.digest));
        let err = reg.stat_blob("app", &orphan.digest).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            reg.driver()
                .stat(&layout::layer_link("app", &orphan.digest))
                .is_err(),
            "the link to a swept blob stays"
        );
        for d in blobs.iter().chain(&other).chain([&m]) {
            assert!(blob_exists(reg, d), "{d} was swept");
        }
        assert_tagged_images_whole(reg);
        // A second collection finds nothing.
        let again = gc::collect(reg, now()).unwrap();
        assert!(again.blobs_deleted.is_empty() && again.links_deleted.is_empty());
    });
}

#[test]
fn dry_run_reports_what_would_go_and_deletes_nothing() {
    both(|reg| {
        image(reg, "app", Some("v1"), &[b"kept"]);
        let (old, old_blobs) = image(reg, "app", None, &[b"only in the untagged one"]);
        let orphan = reg.put_blob("app", b"orphan bytes").unwrap();
        let before = reg.driver().walk(&Key::root()).unwrap();
        let dry = gc::collect(
            reg,
            GcOptions {
                dry_run: true,
                ..untagged()
            },
        )
        .unwrap();
        assert!(dry.dry_run);
        assert_eq!(reg.driver().walk(&Key::root()).unwrap(), before);
        assert_eq!(dry.manifests_deleted, [("app".into(), old.clone())]);
        let mut want: Vec<Digest> = old_blobs.clone();
        want.extend([old.clone(), orphan.digest.clone()]);
        want.sort();
        assert_eq!(dry.blobs_deleted, want);
        let real = gc::collect(reg, untagged()).unwrap();
        assert_eq!(real.blobs_deleted, dry.blobs_deleted);
        assert_eq!(real.bytes_deleted, dry.bytes_deleted);
        assert_eq!(real.manifests_deleted, dry.manifests_deleted);
        assert!(!real.dry_run);
        assert_ne!(reg.driver().walk(&Key::root()).unwrap(), before);
        for d in &want {
            assert!(!blob_exists(reg, d));
        }
    });
}

#[test]
fn untagged_manifests_go_only_when_asked() {
    both(|reg| {
        let (first, first_blobs) = image(reg, "app", Some("latest"), &[b"v1 layer", b"base"]);
        let (second, _) = image(reg, "app", Some("latest"), &[b"v2 layer", b"base"]);
        // Without delete_untagged every manifest is kept.
        let kept = gc::collect(reg, now()).unwrap();
        assert!(kept.blobs_deleted.is_empty() && kept.manifests_deleted.is_empty());
        reg.get_manifest("app", &first.to_string()).unwrap();
        // With it, the retagged-away manifest, its history entry and its own layer go.
        let report = gc::collect(reg, untagged()).unwrap();
        assert_eq!(report.manifests_deleted, [("app".into(), first.clone())]);
        let err = reg.get_manifest("app", &first.to_string()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::NotFound);
        assert!(
            reg.driver()
                .stat(&layout::tag_index("app", "latest", &first))
                .is_err()
        );
        assert!(!blob_exists(reg, &first));
        assert!(!blob_exists(reg, &first_blobs[1]), "the v1 layer stays");
        assert!(blob_exists(reg, &first_blobs[2]), "the shared base went");
        assert_eq!(reg.resolve_tag("app", "latest").unwrap(), second);
        assert_tagged_images_whole(reg);
    });
}

#[test]
fn a_layer_stays_while_any_repository_needs_it() {
    both(|reg| {
        let (_, a) = image(reg, "a", None, &[b"common layer", b"only a"]);
        let (_, b) = image(reg, "b", Some("v1"), &[b"common layer"]);
        assert_eq!(a[1], b[1]);
        let report = gc::collect(reg, untagged()).unwrap();
        assert!(blob_exists(reg, &a[1]));
        assert!(!blob_exists(reg, &a[2]));
        assert!(report.blobs_deleted.contains(&a[2]));
        assert!(!report.blobs_deleted.contains(&a[1]));
        assert_tagged_images_whole(reg);
    });
}

#[test]
fn children_and_referrers_of_a_tagged_index_stay_untagged_ones_go() {
    both(|reg| {
        let (amd, amd_blobs) = image(reg, "multi", None, &[b"amd64 layer"]);
        let (arm, arm_blobs) = image(reg, "multi", None, &[b"arm64 layer"]);
        let child = |d: &Digest, arch: &str| {
            json!({"mediaType": MediaType::OciManifest.as_str(), "digest": d, "size": 1,
                "platform": {"os": "linux", "architecture": arch}})
        };
        let index = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": MediaType::OciIndex.as_str(),
            "manifests": [child(&amd, "amd64"), child(&arm, "arm64")]}))
        .unwrap();
        let idx = reg.put_manifest("multi", "v1", &index, None).unwrap();
        // A signature-like referrer of the index, untagged.
        let sig_blob = reg.put_blob("multi", b"signature payload").unwrap();
        let empty = reg.put_blob("multi", b"{}").unwrap();
        let sig = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": MediaType::OciManifest.as_str(),
            "artifactType": "application/vnd.example.sig",
            "config": desc(&empty, "application/vnd.oci.empty.v1+json"),
            "layers": [desc(&sig_blob, "application/vnd.example.sig")],
            "subject": {"mediaType": MediaType::OciIndex.as_str(), "digest": idx, "size": index.len()}}))
        .unwrap();
        let sig_d = reg
            .put_manifest("multi", &Digest::sha256(&sig).to_string(), &sig, None)
            .unwrap();
        // An untagged index whose only child is untagged too: both go.
        let (lone, lone_blobs) = image(reg, "multi", None, &[b"riscv layer"]);
        let lone_index = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": MediaType::OciIndex.as_str(), "manifests": [child(&lone, "riscv64")]}))
        .unwrap();
        let lone_idx = reg
            .put_manifest(
                "multi",
                &Digest::sha256(&lone_index).to_string(),
                &lone_index,
                None,
            )
            .unwrap();

        let report = gc::collect(reg, untagged()).unwrap();
        let mut gone = vec![("multi".to_string(), lone), ("multi".to_string(), lone_idx)];
        gone.sort();
        assert_eq!(report.manifests_deleted, gone);
        for d in [&amd, &arm, &idx, &sig_d] {
            reg.get_manifest("multi", &d.to_string()).unwrap();
        }
        for d in amd_blobs.iter().chain(&arm_blobs).chain([&sig_blob.digest]) {
            assert!(blob_exists(reg, d), "{d} of a kept image went");
        }
        assert!(!blob_exists(reg, &lone_blobs[1]));
        assert_eq!(reg.referrers("multi", &idx, None).unwrap()[0].digest, sig_d);
        assert_tagged_images_whole(reg);
    });
}

#[test]
fn the_grace_period_spares_young_blobs() {
    both(|reg| {
        image(reg, "app", Some("v1"), &[b"kept"]);
        let young = reg
            .put_blob("app", b"just pushed, manifest to come")
            .unwrap();
        let report = gc::collect(reg, GcOptions::default()).unwrap();
        assert_eq!(report.blobs_spared, std::slice::from_ref(&young.digest));
        assert!(report.blobs_deleted.is_empty());
        assert!(blob_exists(reg, &young.digest));
        let report = gc::collect(reg, now()).unwrap();
        assert_eq!(report.blobs_deleted, std::slice::from_ref(&young.digest));
        assert!(report.blobs_spared.is_empty());
    });
}

#[test]
fn progress_reports_every_repository_and_every_blob() {
    both(|reg| {
        image(reg, "a", Some("v1"), &[b"1"]);
        image(reg, "b/c", Some("v1"), &[b"2", b"3"]);
        let blobs = all_blobs(reg).len();
        let mut seen = Vec::new();
        let mut cb = |p: GcProgress| seen.push(p);
        gc::collect(
            reg,
            GcOptions {
                progress: Some(&mut cb),
                ..now()
            },
        )
        .unwrap();
        let marked: Vec<_> = seen
            .iter()
            .filter_map(|p| match p {
                GcProgress::Marked {
                    repository,
                    done,
                    total,
                } => Some((repository.as_str(), *done, *total)),
                _ => None,
            })
            .collect();
        assert_eq!(marked, [("a", 1, 2), ("b/c", 2, 2)]);
        let swept: Vec<_> = seen
            .iter()
            .filter_map(|p| match p {
                GcProgress::Swept { done, total } => Some((*done, *total)),
                _ => None,
            })
            .collect();
        assert_eq!(swept.len(), blobs);
        assert_eq!(swept.last(), Some(&(blobs, blobs)));
    });
}

#[test]
fn a_corrupt_manifest_stops_the_collection_before_anything_goes() {
    both(|reg| {
        let (m, _) = image(reg, "app", Some("v1"), &[b"x"]);
        let orphan = reg.put_blob("app", b"orphan").unwrap();
        reg.driver()
            .put_content(&layout::blob_data(&m), b"{\"not\": \"the pushed bytes\"}")
            .unwrap();
        let err = gc::collect(reg, now()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert!(blob_exists(reg, &orphan.digest));
    });
}

#[test]
fn a_damaged_revision_link_keeps_its_manifest_and_blobs() {
    both(|reg| {
        let (m, blobs) = image(reg, "app", None, &[b"behind a damaged link"]);
        reg.driver()
            .put_content(&layout::revision_link("app", &m), b"")
            .unwrap();
        let report = gc::collect(reg, untagged()).unwrap();
        assert!(report.blobs_deleted.is_empty(), "{report:?}");
        for d in blobs.iter().chain([&m]) {
            assert!(blob_exists(reg, d));
        }
    });
}

#[test]
fn the_collector_holds_the_lock_exclusively_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let reg = fs_registry(dir.path());
    image(&reg, "app", Some("v1"), &[b"x"]);
    let root = cargohold_core::Dir::open_path(dir.path()).unwrap();
    let mut checks = 0;
    let mut cb = |_: GcProgress| {
        let shared =
            FileLock::try_lock(&root, std::ffi::OsStr::new(GC_LOCK), LockMode::Shared).unwrap();
        assert!(shared.is_none(), "a writer could run during the collection");
        checks += 1;
    };
    gc::collect(
        &reg,
        GcOptions {
            progress: Some(&mut cb),
            ..now()
        },
    )
    .unwrap();
    assert!(checks > 0);
    // And it is free again afterwards.
    let after = FileLock::try_lock(&root, std::ffi::OsStr::new(GC_LOCK), LockMode::Shared);
    assert!(after.unwrap().is_some());
}

// ---------------------------------------------------------------------------------------
// Pushers in other processes while collections run.

fn spawn(role: &str, test: &str, root: &Path, arg: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(ROOT, root)
        .env(ARG, arg)
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

fn child_role() -> Option<(String, PathBuf, String)> {
    let role = std::env::var(ROLE).ok()?;
    Some((
        role,
        std::env::var_os(ROOT).unwrap().into(),
        std::env::var(ARG).unwrap_or_default(),
    ))
}

/// Push `n` images into `push/<who>` (each a unique layer, a layer shared by every pusher
/// and a config), each tagged `latest`, retagging the previous one away, and every third
/// one also tagged `keep-<i>`; with `lease`, each push holds a [`gc::lease`].
fn pusher(reg: &Registry, who: &str, n: usize, lease: bool) {
    let repo = format!("push/{who}");
    for i in 0..n {
        let unique = format!("{who} image {i} ").repeat(2000).into_bytes();
        let shared: &[u8] = &[7u8; 64 << 10];
        let held = lease.then(|| gc::lease(reg).unwrap().expect("the filesystem has locks"));
        let cfg = reg.put_blob(&repo, format!("{{\"who\":\"{who}\",\"i\":{i}}}").as_bytes());
        let l1 = reg.put_blob(&repo, &unique);
        let l2 = reg.put_blob(&repo, shared);
        let (cfg, l1, l2) = (cfg.unwrap(), l1.unwrap(), l2.unwrap());
        let m = serde_json::to_vec(&json!({"schemaVersion": 2,
            "mediaType": MediaType::OciManifest.as_str(),
            "config": desc(&cfg, "application/vnd.oci.image.config.v1+json"),
            "layers": [desc(&l1, "application/vnd.oci.image.layer.v1.tar"),
                       desc(&l2, "application/vnd.oci.image.layer.v1.tar")]}))
        .unwrap();
        let d = reg
            .put_manifest(&repo, "latest", &m, None)
            .unwrap_or_else(|e| panic!("push {repo} {i}: a blob was taken: {e}"));
        if i % 3 == 0 {
            reg.tag(&repo, &format!("keep-{i}"), &d).unwrap();
        }
        drop(held);
    }
}

#[test]
fn pushes_in_other_processes_survive_concurrent_collections() {
    const TEST: &str = "pushes_in_other_processes_survive_concurrent_collections";
    const IMAGES: usize = 20;
    if let Some((role, root, arg)) = child_role() {
        let reg = fs_registry(&root);
        match role.as_str() {
            "pusher" => pusher(&reg, &arg, IMAGES, false),
            "leaseholder" => pusher(&reg, &arg, IMAGES, true),
            _ => panic!("unknown role {role}"),
        }
        return;
    }
    // Plain pushers are protected by the grace period; with none, by their leases.
    for (grace, role) in [
        (gc::DEFAULT_GRACE, "pusher"),
        (Duration::ZERO, "leaseholder"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let reg = fs_registry(dir.path());
        let mut kids: Vec<_> = ["p0", "p1", "p2"]
            .iter()
            .map(|who| spawn(role, TEST, dir.path(), who))
            .collect();
        let (mut collections, mut deleted) = (0, 0);
        // Collect while any pusher runs (bounded: the pushers finish on their own).
        while kids.iter_mut().any(|k| k.try_wait().unwrap().is_none()) && collections < 2000 {
            let r = gc::collect(
                &reg,
                GcOptions {
                    delete_untagged: collections % 2 == 1,
                    grace,
                    ..GcOptions::default()
                },
            )
            .unwrap();
            deleted += r.blobs_deleted.len();
            collections += 1;
            assert_tagged_images_whole(&reg);
        }
        for k in &mut kids {
            assert!(k.wait().unwrap().success(), "a {role} failed");
        }
        assert!(collections > 0);
        // Every pusher's tags are whole, and a final collection keeps them whole.
        deleted += gc::collect(&reg, untagged()).unwrap().blobs_deleted.len();
        assert_tagged_images_whole(&reg);
        // The images retagged away were collected: the collections did real work.
        assert!(
            deleted >= 3 * 20,
            "{deleted} blobs deleted in {collections} collections"
        );
        for who in ["p0", "p1", "p2"] {
            let tags = reg.tags(&format!("push/{who}"), None, None).unwrap();
            assert_eq!(tags.len(), 1 + IMAGES.div_ceil(3), "{who}: {tags:?}");
        }
    }
}
