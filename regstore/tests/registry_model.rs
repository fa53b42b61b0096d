//! Without these, the registry model could accept bad names, keep blobs whose digest is
//! wrong, accept manifests with missing blobs, serve corrupt bytes, or lose uploads
//! across a resume; each runs on both backends.

mod image_support;

use std::io::Read;
use std::time::{Duration, SystemTime};

use cargohold_core::{Digest, ErrorKind};
use image_support::image;
use regstore::drivers::{Filesystem, Memory};
use regstore::hashstate::ResumableSha256;
use regstore::{ErrorCode, Key, MediaType, Registry, StorageDriver, error_code, layout};
use serde_json::json;

fn both(check: fn(&Registry)) {
    check(&Registry::open(Memory::new()));
    let dir = tempfile::tempdir().unwrap();
    check(&Registry::open(Filesystem::new(dir.path()).unwrap()));
}

#[test]
fn blobs_round_trip_with_ranges_mount_and_delete() {
    both(|reg| {
        let data = b"some layer bytes".repeat(100);
        let d = reg.put_blob("lib/a", &data).unwrap().digest;
        assert_eq!(reg.read_blob("lib/a", &d).unwrap(), data);
        assert_eq!(reg.stat_blob("lib/a", &d).unwrap().size, data.len() as u64);
        let mut part = Vec::new();
        reg.blob_reader("lib/a", &d, 5, Some(10))
            .unwrap()
            .read_to_end(&mut part)
            .unwrap();
        assert_eq!(part, &data[5..15]);
        assert_eq!(
            reg.blob_reader("lib/a", &d, 1500, Some(200))
                .err()
                .unwrap()
                .kind(),
            ErrorKind::InvalidArgument
        );
        let e = reg.stat_blob("lib/b", &d).unwrap_err();
        assert_eq!(error_code(&e), Some(ErrorCode::BlobUnknown));
        reg.mount_blob("lib/a", "lib/b", &d).unwrap();
        assert_eq!(reg.read_blob("lib/b", &d).unwrap(), data);
        reg.delete_blob("lib/a", &d).unwrap();
        assert_eq!(
            reg.stat_blob("lib/a", &d).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(reg.read_blob("lib/b", &d).unwrap(), data);
    });
}

#[test]
fn uploads_check_offsets_digests_and_sizes() {
    both(|reg| {
        let up = reg.start_upload("r").unwrap();
        assert_eq!(up.append(0, &b"hello "[..]).unwrap(), 6);
        let e = up.append(3, &b"x"[..]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert_eq!(error_code(&e), Some(ErrorCode::BlobUploadInvalid));
        let again = reg.resume_upload("r", up.id()).unwrap();
        assert_eq!(again.status().unwrap().offset, 6);
        again.append(6, &b"world"[..]).unwrap();
        let wrong = Digest::sha256(b"something else");
        let e = again.commit(&wrong, None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
        assert_eq!(error_code(&e), Some(ErrorCode::DigestInvalid));
        assert_eq!(
            error_code(&reg.resume_upload("r", up.id()).unwrap_err()),
            Some(ErrorCode::BlobUploadUnknown)
        );
        assert_eq!(
            reg.stat_blob("r", &wrong).unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let blobs = Key::parse(&format!("{}/blobs", layout::V2)).unwrap();
        assert!(
            reg.driver()
                .walk(&blobs)
                .unwrap_or_default()
                .iter()
                .all(|i| i.is_dir),
            "nothing kept"
        );

        let up = reg.start_upload("r").unwrap();
        up.append(0, &b"hello world"[..]).unwrap();
        let e = up
            .commit(&Digest::sha256(b"hello world"), Some(3))
            .unwrap_err();
        assert_eq!(error_code(&e), Some(ErrorCode::SizeInvalid));

        let up = reg.start_upload("r").unwrap();
        up.append(0, &b"hello world"[..]).unwrap();
        let d = up
            .commit(&Digest::sha256(b"hello world"), Some(11))
            .unwrap()
            .digest;
        assert_eq!(reg.read_blob("r", &d).unwrap(), b"hello world");
        // The same blob again: the move is skipped, the link is written.
        let up = reg.start_upload("s").unwrap();
        up.append(0, &b"hello world"[..]).unwrap();
        up.commit(&d, None).unwrap();
        assert_eq!(reg.read_blob("s", &d).unwrap(), b"hello world");

        // An upload that started two hours ago goes; a fresh one stays.
        let old = reg.start_upload("r").unwrap();
        let fresh = reg.start_upload("r").unwrap();
        let two_hours_ago =
            regstore::uploads::rfc3339(SystemTime::now() - Duration::from_secs(7200));
        reg.driver()
            .put_content(
                &layout::upload_started("r", old.id()),
                two_hours_ago.as_bytes(),
            )
            .unwrap();
        let purged = reg.purge_uploads(Duration::from_secs(3600)).unwrap();
        assert_eq!(purged, vec![("r".to_owned(), old.id().to_owned())]);
        assert_eq!(fresh.status().unwrap().offset, 0);
        fresh.cancel().unwrap();
        let e = reg.start_upload("Bad/Name").unwrap_err();
        assert_eq!(error_code(&e), Some(ErrorCode::NameInvalid));
    });
}

#[test]
fn resumed_upload_rehashes_from_the_last_checkpoint() {
    both(|reg| {
        let chunk: Vec<u8> = (0..(20u32 << 20)).map(|i| (i % 251) as u8).collect();
        let up = reg.start_upload("big").unwrap();
        up.append(0, &chunk[..]).unwrap();
        // A checkpoint at 16 MiB and one at the chunk end: a resume re-hashes nothing.
        assert_eq!(up.hash_state(chunk.len() as u64).unwrap().1, 0);
        // Drop the end state, as if the writer died after the data: at most 16 MiB again.
        let end = layout::upload_hashstates("big", up.id())
            .join(&chunk.len().to_string())
            .unwrap();
        reg.driver().delete(&end).unwrap();
        let rehashed = up.hash_state(chunk.len() as u64).unwrap().1;
        assert_eq!(rehashed, (20 << 20) - (16 << 20));
        let d = up.commit(&Digest::sha256(&chunk), None).unwrap().digest;
        assert_eq!(reg.stat_blob("big", &d).unwrap().size, chunk.len() as u64);
    });
}

/// Hands out `data` in pieces of `piece` bytes (like a socket), then fails with `fail`
/// when given.
struct Pieces<'a> {
    data: &'a [u8],
    piece: usize,
    fail: Option<std::io::ErrorKind>,
}

impl Read for Pieces<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.data.is_empty()
            && let Some(kind) = self.fail
        {
            return Err(kind.into());
        }
        let n = buf.len().min(self.piece).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

#[test]
fn every_saved_hash_state_is_the_hash_of_the_bytes_before_it() {
    both(|reg| {
        let data: Vec<u8> = (0..(41u32 << 20) + 12_345)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let first = (3 << 20) + 7;
        let up = reg.start_upload("states").unwrap();
        up.append(0, &data[..first]).unwrap();
        let end = up
            .append(
                first as u64,
                Pieces {
                    data: &data[first..],
                    piece: 1_000_003,
                    fail: None,
                },
            )
            .unwrap();
        assert_eq!(end, data.len() as u64);
        let dir = layout::upload_hashstates("states", up.id());
        let mut offsets: Vec<u64> = reg
            .driver()
            .list(&dir)
            .unwrap()
            .iter()
            .map(|k| k.file_name().parse().unwrap())
            .collect();
        offsets.sort_unstable();
        let c = regstore::uploads::CHECKPOINT;
        assert_eq!(offsets, vec![first as u64, c, 2 * c, data.len() as u64]);
        for off in offsets {
            let raw = reg
                .driver()
                .get_content(&dir.join(&off.to_string()).unwrap());
            let state = ResumableSha256::unmarshal(&raw.unwrap()).unwrap();
            assert_eq!(state.len(), off);
            assert_eq!(
                state.digest(),
                Digest::sha256(&data[..off as usize]),
                "{off}"
            );
        }
        up.commit(&Digest::sha256(&data), Some(data.len() as u64))
            .unwrap();
    });
}

#[test]
fn a_chunk_that_fails_midway_keeps_a_consistent_prefix_and_resumes() {
    both(|reg| {
        let data: Vec<u8> = (0..(6u32 << 20) + 999).map(|i| (i % 253) as u8).collect();
        let cut = (5 << 20) + 17;
        let up = reg.start_upload("broken").unwrap();
        let e = up
            .append(
                0,
                Pieces {
                    data: &data[..cut],
                    piece: 64 << 10,
                    fail: Some(std::io::ErrorKind::ConnectionReset),
                },
            )
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Io);
        // Whatever was kept is a prefix of the chunk, and its hash is the prefix's hash.
        let kept = up.status().unwrap().offset;
        assert!(kept <= cut as u64, "{kept}");
        assert_eq!(up.digest().unwrap(), Digest::sha256(&data[..kept as usize]));
        assert_eq!(
            up.append(kept, &data[kept as usize..]).unwrap(),
            data.len() as u64
        );
        up.commit(&Digest::sha256(&data), Some(data.len() as u64))
            .unwrap();
        assert_eq!(
            reg.read_blob("broken", &Digest::sha256(&data)).unwrap(),
            data
        );
    });
}

#[test]
fn manifests_tags_and_referrers() {
    both(|reg| {
        let (m1, bytes) = image(reg, "app", "v1", b"layer one");
        let got = reg.get_manifest("app", "v1").unwrap();
        assert_eq!(got.bytes, bytes);
        assert_eq!(got.digest, m1);
        assert_eq!(got.media_type, MediaType::OciManifest);
        assert_eq!(
            reg.get_manifest("app", &m1.to_string()).unwrap().bytes,
            bytes
        );

        // Missing layer: refused, nothing linked.
        let ghost = Digest::sha256(b"ghost");
        let m = json!({"schemaVersion": 2, "mediaType": MediaType::DockerManifest.as_str(),
            "config": {"mediaType": "x", "digest": ghost, "size": 5}, "layers": []});
        let e = reg
            .put_manifest("app", "bad", &serde_json::to_vec(&m).unwrap(), None)
            .unwrap_err();
        assert_eq!(error_code(&e), Some(ErrorCode::ManifestBlobUnknown));
        assert_eq!(
            error_code(&reg.get_manifest("app", "bad").unwrap_err()),
            Some(ErrorCode::ManifestUnknown)
        );

        // Index over a missing child: refused; over present ones: kept.
        let (m2, _) = image(reg, "app", "v2", b"layer two");
        let idx = |children: &[&Digest]| {
            let ms: Vec<_> = children
                .iter()
                .map(|d| {
                    json!({"mediaType": MediaType::OciManifest.as_str(), "digest": d, "size": 1,
                "platform": {"architecture": "amd64", "os": "linux"}})
                })
                .collect();
            serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": MediaType::OciIndex.as_str(), "manifests": ms})).unwrap()
        };
        let e = reg
            .put_manifest("app", "multi", &idx(&[&m1, &ghost]), None)
            .unwrap_err();
        assert_eq!(error_code(&e), Some(ErrorCode::ManifestBlobUnknown));
        let i = reg
            .put_manifest("app", "multi", &idx(&[&m1, &m2]), None)
            .unwrap();
        assert_eq!(
            reg.get_manifest("app", "multi").unwrap().media_type,
            MediaType::OciIndex
        );

        // Content type disagreeing with mediaType, bad JSON, digest reference mismatch.
        let e = reg
            .put_manifest("app", "x", &bytes, Some(MediaType::DockerManifest.as_str()))
            .unwrap_err();
        assert_eq!(error_code(&e), Some(ErrorCode::ManifestInvalid));
        assert_eq!(
            error_code(&reg.put_manifest("app", "x", b"{nope", None).unwrap_err()),
            Some(ErrorCode::ManifestInvalid)
        );
        let e = reg
            .put_manifest("app", &m2.to_string(), &bytes, None)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::DigestMismatch);
        assert_eq!(
            error_code(&reg.put_manifest("app", "-bad", &bytes, None).unwrap_err()),
            Some(ErrorCode::TagInvalid)
        );

        // Referrers: an artifact whose subject is m1.
        let empty = reg.put_blob("app", b"{}").unwrap();
        let art = json!({"schemaVersion": 2, "mediaType": MediaType::OciManifest.as_str(),
            "artifactType": "application/vnd.example.sbom",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": empty.digest, "size": 2}],
            "subject": {"mediaType": MediaType::OciManifest.as_str(), "digest": m1, "size": bytes.len()},
            "annotations": {"k": "v"}});
        let a = reg
            .put_manifest(
                "app",
                &Digest::sha256(&serde_json::to_vec(&art).unwrap()).to_string(),
                &serde_json::to_vec(&art).unwrap(),
                None,
            )
            .unwrap();
        let refs = reg.referrers("app", &m1, None).unwrap();
        assert_eq!(refs.len(), 1);
        assert_eq!(refs[0].digest, a);
        assert_eq!(
            refs[0].artifact_type.as_deref(),
            Some("application/vnd.example.sbom")
        );
        assert!(
            reg.referrers("app", &m1, Some("other/type"))
                .unwrap()
                .is_empty()
        );
        assert!(reg.referrers("app", &m2, None).unwrap().is_empty());

        // Tags: pagination, untag, delete by digest removes its tags.
        reg.tag("app", "a0", &m1).unwrap();
        assert_eq!(
            reg.tags("app", None, None).unwrap(),
            ["a0", "multi", "v1", "v2"]
        );
        assert_eq!(reg.tags("app", Some(2), None).unwrap(), ["a0", "multi"]);
        assert_eq!(
            reg.tags("app", Some(2), Some("multi")).unwrap(),
            ["v1", "v2"]
        );
        reg.untag("app", "a0").unwrap();
        reg.delete_manifest("app", &i.to_string()).unwrap();
        assert_eq!(reg.tags("app", None, None).unwrap(), ["v1", "v2"]);
        assert_eq!(
            error_code(&reg.tags("nope", None, None).unwrap_err()),
            Some(ErrorCode::NameUnknown)
        );

        image(reg, "lib/deb", "x", b"l");
        assert_eq!(reg.catalog(None, None).unwrap(), ["app", "lib/deb"]);
        assert_eq!(reg.catalog(Some(1), Some("app")).unwrap(), ["lib/deb"]);
    });
}

#[test]
fn corruption_is_reported_not_served() {
    both(|reg| {
        let (m, _) = image(reg, "c", "t", b"layer");
        let d = reg.put_blob("c", b"precious").unwrap().digest;
        reg.driver()
            .put_content(&layout::blob_data(&d), b"tampered")
            .unwrap();
        assert_eq!(
            reg.read_blob("c", &d).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        // An empty link (an older registry's crash) is never a digest.
        reg.driver()
            .put_content(&layout::tag_current("c", "t"), b"")
            .unwrap();
        assert_eq!(
            reg.get_manifest("c", "t").unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        reg.driver()
            .put_content(&layout::layer_link("c", &d), b"")
            .unwrap();
        assert_eq!(
            reg.stat_blob("c", &d).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        reg.driver()
            .put_content(&layout::blob_data(&m), b"{}")
            .unwrap();
        assert_eq!(
            reg.get_manifest("c", &m.to_string()).unwrap_err().kind(),
            ErrorKind::Corrupt
        );
        let _: &dyn StorageDriver = reg.driver();
    });
}
