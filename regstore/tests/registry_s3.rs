//! Without these, the registry model could break on object storage (pushes, tags and
//! deletes through S3 semantics), an upload could send its blob to the server twice, a
//! server that goes away mid-upload could leave half a blob visible, and a missing
//! bucket or refused credentials could surface as something else than what they are.

mod image_support;
mod s3_support;

use std::io::{Read, Write};

use cargohold_core::error::from_io_error;
use cargohold_core::{Digest, ErrorKind};
use regstore::drivers::S3;
use regstore::{Key, MediaType, Registry, StorageDriver, layout};
use s3_support::{MotoServer, Proxy, config, fresh_driver};
use serde_json::json;

fn pattern(len: usize, seed: u32) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

fn no_uploads_left(reg: &Registry) {
    let left: Vec<_> = reg
        .driver()
        .walk(&Key::root())
        .unwrap()
        .into_iter()
        .filter(|i| !i.is_dir && i.key.as_str().contains("/_uploads/"))
        .collect();
    assert!(left.is_empty(), "uploads left behind: {left:?}");
}

#[test]
fn push_by_upload_tag_read_back_and_delete() {
    let reg = Registry::open(fresh_driver("registry"));
    // A 12 MiB layer in two chunks: the first crosses a part boundary (multipart), the
    // second continues it (append).
    let layer = pattern(12 << 20, 1);
    let ld = Digest::sha256(&layer);
    let up = reg.start_upload("lib/app").unwrap();
    let half = 9 << 20;
    assert_eq!(up.append(0, &layer[..half]).unwrap(), half as u64);
    let again = reg.resume_upload("lib/app", up.id()).unwrap();
    assert_eq!(again.status().unwrap().offset, half as u64);
    again.append(half as u64, &layer[half..]).unwrap();
    let desc = again.commit(&ld, Some(layer.len() as u64)).unwrap();
    assert_eq!(desc.size, layer.len() as u64);

    let config_blob =
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#;
    let c = reg.put_blob("lib/app", config_blob).unwrap();
    let m = json!({
        "schemaVersion": 2,
        "mediaType": MediaType::OciManifest.as_str(),
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.digest, "size": c.size},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld, "size": layer.len()}],
    });
    let bytes = serde_json::to_vec(&m).unwrap();
    let md = reg.put_manifest("lib/app", "v1", &bytes, None).unwrap();
    reg.tag("lib/app", "latest", &md).unwrap();
    assert_eq!(reg.tags("lib/app", None, None).unwrap(), ["latest", "v1"]);
    assert_eq!(reg.resolve_tag("lib/app", "latest").unwrap(), md);
    let got = reg.get_manifest("lib/app", "latest").unwrap();
    assert_eq!(got.bytes, bytes);
    assert_eq!(got.digest, md);

    let back = reg.read_blob("lib/app", &ld).unwrap();
    assert_eq!(Digest::sha256(&back), ld);
    let mut part = Vec::new();
    reg.blob_reader("lib/app", &ld, 10 << 20, Some(100))
        .unwrap()
        .read_to_end(&mut part)
        .unwrap();
    assert_eq!(part, &layer[10 << 20..(10 << 20) + 100]);
    // The blob sits where registry:2's layout puts it, under the prefix.
    assert_eq!(
        reg.driver().stat(&layout::blob_data(&ld)).unwrap().size,
        layer.len() as u64
    );
    assert_eq!(reg.catalog(None, None).unwrap(), ["lib/app"]);
    no_uploads_left(&reg);

    reg.untag("lib/app", "latest").unwrap();
    reg.delete_manifest("lib/app", &md.to_string()).unwrap();
    assert_eq!(
        reg.get_manifest("lib/app", "v1").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    reg.delete_blob("lib/app", &ld).unwrap();
    assert_eq!(
        reg.stat_blob("lib/app", &ld).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // A wrong digest keeps nothing.
    let up = reg.start_upload("lib/app").unwrap();
    up.append(0, &b"not what it says"[..]).unwrap();
    let wrong = Digest::sha256(b"other");
    assert_eq!(
        up.commit(&wrong, None).unwrap_err().kind(),
        ErrorKind::DigestMismatch
    );
    assert_eq!(
        reg.driver()
            .stat(&layout::blob_data(&wrong))
            .unwrap_err()
            .kind(),
        ErrorKind::NotFound
    );
    no_uploads_left(&reg);
}

/// Bytes the server received for `push` per byte of `blob_len`.
fn sent_ratio(proxy: &Proxy, blob_len: usize, push: impl FnOnce()) -> f64 {
    let before = proxy.sent();
    push();
    (proxy.sent() - before) as f64 / blob_len as f64
}

/// A chunked upload of `blob` in `chunk`-byte chunks, committed.
fn chunked(reg: &Registry, repo: &str, blob: &[u8], chunk: usize) {
    let up = reg.start_upload(repo).unwrap();
    for (i, c) in blob.chunks(chunk).enumerate() {
        up.append((i * chunk) as u64, c).unwrap();
    }
    up.commit(&Digest::sha256(blob), Some(blob.len() as u64))
        .unwrap();
}

#[test]
fn an_upload_sends_its_blob_once() {
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let proxy = Proxy::start(server.port());
    let s3 = S3::open(config(&proxy.endpoint(), &bucket, "")).unwrap();
    let reg = Registry::open(s3.clone());
    let len = 64 << 20;
    let mut figures = Vec::new();
    let mut measure = |name: &str, seed: u32, push: &dyn Fn(&[u8])| {
        let blob = pattern(len, seed);
        let before = s3.requests();
        let ratio = sent_ratio(&proxy, len, || push(&blob));
        let d = Digest::sha256(&blob);
        assert_eq!(Digest::sha256(&reg.read_blob("r", &d).unwrap()), d);
        let r = s3.requests();
        eprintln!(
            "64 MiB {name}: {ratio:.4} bytes sent per blob byte; {}",
            diff(&r, &before)
        );
        figures.push((name.to_owned(), ratio, r.copy - before.copy));
    };
    // The digest known ahead (put_blob, imports): straight to the blob's key.
    measure("put_blob (digest known)", 1, &|b| {
        reg.put_blob("r", b).unwrap();
    });
    // One chunk, digest given at commit (a monolithic push): parts, then a server-side copy.
    measure("one chunk", 2, &|b| chunked(&reg, "r", b, b.len()));
    measure("8 MiB chunks", 3, &|b| chunked(&reg, "r", b, 8 << 20));
    measure("1 MiB chunks", 4, &|b| chunked(&reg, "r", b, 1 << 20));
    let [known, one, eight, small] = figures.as_slice() else {
        unreachable!()
    };
    // Each byte once, plus request heads and the small state files (under 1%).
    assert!(known.1 < 1.01, "{known:?}");
    assert_eq!(known.2, 0, "no copy when the digest is known: {known:?}");
    assert!(one.1 < 1.01, "{one:?}");
    assert!(eight.1 < 1.01, "{eight:?}");
    // Chunks under a part: a tail of up to 4 MiB is sent once more inside each 5 MiB
    // part, and the last 4 MiB once more as the last part: (64 + 12 * 4 + 4) / 64 =
    // 1.81, plus the metadata.
    assert!(small.1 > 1.8 && small.1 < 1.85, "{small:?}");
    no_uploads_left(&reg);
    assert_eq!(server.multipart_uploads(&bucket), 0);
}

/// The role a child process of a test plays, from its environment.
const CHILD: &str = "REGSTORE_S3_CHILD";

/// In a child: open the bucket the parent names, run `role`, and exit.
fn child(role: &str) -> Option<(S3, String)> {
    let spec = std::env::var(CHILD).ok()?;
    let mut it = spec.splitn(3, ' ');
    let (r, endpoint, bucket) = (it.next()?, it.next()?, it.next()?);
    if r != role {
        return None;
    }
    Some((
        S3::open(config(endpoint, bucket, "")).unwrap(),
        bucket.to_owned(),
    ))
}

fn spawn_child(test: &str, role: &str, endpoint: &str, bucket: &str) -> std::process::Child {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD, format!("{role} {endpoint} {bucket}"))
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// The upload id a child printed (`upload <id>`, among the test harness's lines); the
/// rest of its output is drained on a thread, so the child never writes to a closed pipe.
fn read_id(c: &mut std::process::Child) -> String {
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(c.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "child said {seen:?}");
        // The harness prints `test NAME ... ` before what the test prints.
        if let Some(at) = line.find("upload ") {
            let id = line[at + "upload ".len()..].trim_end().to_owned();
            std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
            return id;
        }
        seen.push_str(&line);
    }
}

#[test]
fn an_upload_started_by_one_process_is_finished_by_another() {
    let layer = pattern(20 << 20, 11);
    if let Some((s3, _)) = child("first-half") {
        // 7 MiB (a part) and 2 MiB (a tail piece), then exit with the upload open.
        let reg = Registry::open(s3);
        let up = reg.start_upload("lib/app").unwrap();
        up.append(0, &layer[..7 << 20]).unwrap();
        up.append(7 << 20, &layer[7 << 20..9 << 20]).unwrap();
        println!("upload {}", up.id());
        return;
    }
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let mut c = spawn_child(
        "an_upload_started_by_one_process_is_finished_by_another",
        "first-half",
        &server.endpoint(),
        &bucket,
    );
    let id = read_id(&mut c);
    assert!(c.wait().unwrap().success());
    assert_eq!(server.multipart_uploads(&bucket), 1);

    let s3 = S3::open(config(&server.endpoint(), &bucket, "")).unwrap();
    let reg = Registry::open(s3.clone());
    let up = reg.resume_upload("lib/app", &id).unwrap();
    assert_eq!(up.status().unwrap().offset, 9 << 20);
    // The hash of the 9 MiB comes from the saved state: nothing is read back.
    let before = s3.requests();
    assert_eq!(up.hash_state(9 << 20).unwrap().1, 0);
    assert_eq!(s3.requests().get - before.get, 1, "only the state's GET");
    up.append(9 << 20, &layer[9 << 20..]).unwrap();
    let d = Digest::sha256(&layer);
    up.commit(&d, Some(layer.len() as u64)).unwrap();
    assert_eq!(Digest::sha256(&reg.read_blob("lib/app", &d).unwrap()), d);
    no_uploads_left(&reg);
    assert_eq!(server.multipart_uploads(&bucket), 0);
}

/// Bytes, slowly (12.5 MiB/s, 512 MiB at most): a push that a kill interrupts.
struct Slow(u32);

impl Read for Slow {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.0 >= 2048 {
            return Ok(0);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        let n = out.len().min(256 << 10);
        out[..n].copy_from_slice(&pattern(n, self.0)[..n]);
        self.0 += 1;
        Ok(n)
    }
}

#[test]
fn a_process_killed_mid_upload_leaves_nothing_visible_and_cancel_leaves_no_parts() {
    if let Some((s3, _)) = child("killed") {
        let reg = Registry::open(s3);
        let up = reg.start_upload("lib/app").unwrap();
        up.append(0, &pattern(6 << 20, 12)[..]).unwrap();
        println!("upload {}", up.id());
        // The parent kills this process long before this returns.
        let _ = up.append(6 << 20, Slow(0));
        panic!("the parent did not kill the child");
    }
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let mut c = spawn_child(
        "a_process_killed_mid_upload_leaves_nothing_visible_and_cancel_leaves_no_parts",
        "killed",
        &server.endpoint(),
        &bucket,
    );
    let id = read_id(&mut c);
    let s3 = S3::open(config(&server.endpoint(), &bucket, "")).unwrap();
    // Wait for a second part (8 MiB) to be on its way, then kill.
    std::thread::sleep(std::time::Duration::from_secs(3));
    c.kill().unwrap();
    c.wait().unwrap();
    let reg = Registry::open(s3.clone());
    let up = reg.resume_upload("lib/app", &id).unwrap();
    assert_eq!(
        up.status().unwrap().offset,
        6 << 20,
        "the last recorded append"
    );
    let visible: Vec<_> = s3
        .walk(&Key::root())
        .unwrap()
        .into_iter()
        .filter(|i| !i.is_dir && !i.key.as_str().contains("/_uploads/"))
        .collect();
    assert!(visible.is_empty(), "{visible:?}");
    assert_eq!(reg.catalog(None, None).unwrap(), ["lib/app"]);
    assert_eq!(server.multipart_uploads(&bucket), 1);
    up.cancel().unwrap();
    assert_eq!(
        server.multipart_uploads(&bucket),
        0,
        "cancel aborts the parts"
    );
    assert!(s3.walk(&Key::root()).unwrap().is_empty());

    // Purging a stale upload aborts its parts too.
    let up = reg.start_upload("lib/app").unwrap();
    up.append(0, &pattern(6 << 20, 13)[..]).unwrap();
    assert_eq!(server.multipart_uploads(&bucket), 1);
    let gone = reg.purge_uploads(std::time::Duration::ZERO).unwrap();
    assert_eq!(gone.len(), 1);
    assert_eq!(
        server.multipart_uploads(&bucket),
        0,
        "purge aborts the parts"
    );
}

#[test]
fn a_blob_past_the_copy_limit_is_moved_by_streaming() {
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let mut c = config(&server.endpoint(), &bucket, "");
    c.copy_limit = 6 << 20;
    let s3 = S3::open(c).unwrap();
    let reg = Registry::open(s3.clone());
    let small = pattern(5 << 20, 14);
    let big = pattern(13 << 20, 15);
    let before = s3.requests();
    chunked(&reg, "r", &small, 8 << 20);
    let mid = s3.requests();
    assert_eq!(mid.copy - before.copy, 1, "CopyObject under the limit");
    chunked(&reg, "r", &big, 8 << 20);
    let after = s3.requests();
    assert_eq!(after.copy - mid.copy, 0, "no CopyObject past the limit");
    for b in [&small, &big] {
        let d = Digest::sha256(b);
        assert_eq!(Digest::sha256(&reg.read_blob("r", &d).unwrap()), d);
    }
    no_uploads_left(&reg);
    assert_eq!(server.multipart_uploads(&bucket), 0);
}

#[test]
fn gc_deletes_fifty_blobs_in_a_few_batched_requests() {
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let proxy = Proxy::start(server.port());
    let s3 = S3::open(config(&proxy.endpoint(), &bucket, "")).unwrap();
    let reg = Registry::open(s3.clone());
    let keep = pattern(1 << 10, 16);
    image_support::image(&reg, "lib/app", "v1", &keep);
    std::thread::scope(|t| {
        for w in 0..5u32 {
            let reg = &reg;
            t.spawn(move || {
                for i in 0..10u32 {
                    let repo = if i % 2 == 0 { "lib/app" } else { "lib/other" };
                    let mut blob = pattern(100, 16);
                    blob.extend_from_slice(format!("orphan {w} {i}").as_bytes());
                    reg.put_blob(repo, &blob).unwrap();
                }
            });
        }
    });
    let (start, lists, batches, deletes) = (
        s3.requests(),
        proxy.list_requests(),
        proxy.batch_delete_requests(),
        proxy.delete_requests(),
    );
    let report = regstore::gc::collect(
        &reg,
        regstore::gc::GcOptions {
            grace: std::time::Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    let done = s3.requests();
    assert_eq!(report.blobs_deleted.len(), 50);
    assert_eq!(report.links_deleted.len(), 50);
    let (lists, batches, deletes) = (
        proxy.list_requests() - lists,
        proxy.batch_delete_requests() - batches,
        proxy.delete_requests() - deletes,
    );
    eprintln!(
        "gc deleting 50 of 52 blobs and their 50 links: {}; at the server: {lists} LIST, \
         {batches} DeleteObjects, {deletes} DELETE",
        diff(&done, &start)
    );
    // One batch for the blobs, one for the links: not 100 requests.
    assert_eq!(batches, 2);
    assert_eq!(deletes, 0);
    assert_eq!(done.deleted_keys - start.deleted_keys, 100);
    // Sizes and times come from the listing: no lookup per blob.
    assert!(done.head - start.head < 10, "{}", done.head - start.head);
    assert!(lists < 20, "{lists} listings");
    for d in &report.blobs_deleted {
        assert!(
            s3.stat(&layout::blob_data(d)).is_err(),
            "{d} is still there"
        );
    }
    assert_eq!(
        reg.read_blob("lib/app", &Digest::sha256(&keep)).unwrap(),
        keep
    );
}

#[test]
fn server_gone_mid_upload_is_io_and_nothing_is_visible() {
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let proxy = Proxy::start(server.port());
    let through = S3::open(config(&proxy.endpoint(), &bucket, "")).unwrap();
    let direct = S3::open(config(&server.endpoint(), &bucket, "")).unwrap();
    let key = Key::parse("/docker/registry/v2/blobs/sha256/ab/abcd/data").unwrap();

    let mut w = through.writer(&key, false).unwrap();
    w.write_all(&pattern(20 << 20, 4)).unwrap();
    proxy.stop();
    let failed = match w.write_all(&pattern(20 << 20, 5)) {
        Err(e) => from_io_error("write", &key, e),
        Ok(()) => w.commit().unwrap_err(),
    };
    assert_eq!(failed.kind(), ErrorKind::Io, "{failed}");
    assert_eq!(direct.stat(&key).unwrap_err().kind(), ErrorKind::NotFound);

    // The registry over the dead endpoint: a push fails as Io; nothing is there.
    let reg = Registry::open(through);
    let blob = pattern(1 << 20, 6);
    assert_eq!(reg.put_blob("r", &blob).unwrap_err().kind(), ErrorKind::Io);
    let d = Digest::sha256(&blob);
    assert_eq!(
        direct.stat(&layout::blob_data(&d)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    assert!(
        direct.walk(&Key::root()).unwrap().is_empty(),
        "nothing half-visible"
    );
}

/// Gives `data`, stopping the proxy once `cut` bytes have been read.
struct CutAfter<'a> {
    data: &'a [u8],
    at: usize,
    cut: usize,
    proxy: &'a Proxy,
}

impl Read for CutAfter<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.cut {
            self.proxy.stop();
        }
        let n = out.len().min(self.data.len() - self.at).min(1 << 20);
        out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[test]
fn an_upload_cut_by_a_server_that_left_resumes_when_it_returns() {
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let proxy = Proxy::start(server.port());
    let reg = Registry::open(S3::open(config(&proxy.endpoint(), &bucket, "")).unwrap());
    let direct = S3::open(config(&server.endpoint(), &bucket, "")).unwrap();
    let layer = pattern(16 << 20, 7);
    let d = Digest::sha256(&layer);
    let first = 6 << 20;

    let up = reg.start_upload("lib/app").unwrap();
    up.append(0, &layer[..first]).unwrap();
    // The server goes away 3 MiB into the second chunk.
    let cut = CutAfter {
        data: &layer[first..],
        at: 0,
        cut: 3 << 20,
        proxy: &proxy,
    };
    let e = up.append(first as u64, cut).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    // Nothing of the cut chunk is visible: the upload holds the first chunk, no blob.
    let seen = Registry::open(direct.clone());
    assert_eq!(
        seen.resume_upload("lib/app", up.id())
            .unwrap()
            .status()
            .unwrap()
            .offset,
        first as u64
    );
    assert_eq!(
        direct.stat(&layout::blob_data(&d)).unwrap_err().kind(),
        ErrorKind::NotFound
    );
    // Calls while it is away fail as Io, not as something else.
    assert_eq!(
        reg.resume_upload("lib/app", up.id()).unwrap_err().kind(),
        ErrorKind::Io
    );

    proxy.resume();
    // Another handle (as another process would) resumes from where the server has it.
    let again = reg.resume_upload("lib/app", up.id()).unwrap();
    assert_eq!(again.status().unwrap().offset, first as u64);
    again.append(first as u64, &layer[first..]).unwrap();
    again.commit(&d, Some(layer.len() as u64)).unwrap();
    assert_eq!(Digest::sha256(&reg.read_blob("lib/app", &d).unwrap()), d);
    no_uploads_left(&reg);
}

#[test]
fn a_missing_bucket_is_not_found_and_named() {
    let server = MotoServer::shared();
    let e = S3::open(config(&server.endpoint(), "no-such-bucket", "p")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.context().contains("no-such-bucket"), "{e}");
}

#[test]
fn an_unreachable_server_is_io() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = S3::open(config(&format!("http://127.0.0.1:{port}"), "b", "")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Io);
}

#[test]
fn refused_credentials_are_permission_denied() {
    let server = MotoServer::start(true);
    let mut c = config(&server.endpoint(), "any-bucket", "");
    c.access_key_id = Some("AKIAWRONGWRONGWRONG0".into());
    c.secret_access_key = Some("not-the-secret".into());
    let e = S3::open(c).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    assert!(e.context().contains("any-bucket"), "{e}");
}

#[test]
fn bad_configurations_are_invalid_arguments() {
    let mut c = config("http://127.0.0.1:1", "b", "");
    c.part_size = 1 << 20;
    assert_eq!(S3::open(c).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let c = config("http://127.0.0.1:1", "b", "../escape");
    assert_eq!(S3::open(c).unwrap_err().kind(), ErrorKind::InvalidArgument);
    let mut c = config("http://127.0.0.1:1", "b", "");
    c.secret_access_key = None;
    assert_eq!(S3::open(c).unwrap_err().kind(), ErrorKind::InvalidArgument);
}

#[test]
fn migrate_carries_a_store_into_a_bucket_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let fs = regstore::drivers::Filesystem::new(dir.path().join("reg")).unwrap();
    let src = Registry::open(fs);
    let blob = pattern(9 << 20, 8);
    let d = src.put_blob("lib/app", &blob).unwrap().digest;
    let s3 = fresh_driver("migrated");
    let report = regstore::migrate::migrate(src.driver(), &s3).unwrap();
    assert_eq!(report.blobs, 1);
    assert_eq!(
        s3.stat(&layout::blob_data(&d)).unwrap().size,
        blob.len() as u64
    );
    // An upload in progress in the bucket (a tail piece, no part yet) travels as its
    // state: the memory store reports it and can cancel it (it has no parts to abort).
    let open = Registry::open(s3.clone()).start_upload("lib/app").unwrap();
    open.append(0, &pattern(1 << 20, 9)[..]).unwrap();
    let back = regstore::drivers::Memory::new();
    regstore::migrate::migrate(&s3, &back).unwrap();
    let reg = Registry::open(back);
    assert_eq!(Digest::sha256(&reg.read_blob("lib/app", &d).unwrap()), d);
    let moved = reg.resume_upload("lib/app", open.id()).unwrap();
    assert_eq!(moved.status().unwrap().offset, 1 << 20);
    moved.cancel().unwrap();
    open.cancel().unwrap();
}

#[test]
fn listing_pages_and_gc_and_fsck_report_their_requests() {
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    let proxy = Proxy::start(server.port());
    let s3 = S3::open(config(&proxy.endpoint(), &bucket, "")).unwrap();

    // 1,001 files: a walk is one recursive listing, two pages of S3's 1,000 keys.
    std::thread::scope(|t| {
        for w in 0..8 {
            let s3 = &s3;
            t.spawn(move || {
                for i in (w..1001).step_by(8) {
                    let key = Key::parse(&format!("/many/f{i:04}")).unwrap();
                    s3.put_content(&key, b"x").unwrap();
                }
            });
        }
    });
    let (pages, before) = (proxy.list_requests(), s3.requests());
    assert_eq!(s3.walk(&Key::root()).unwrap().len(), 1002);
    let walked = s3.requests();
    assert_eq!(proxy.list_requests() - pages, 2, "one request per page");
    assert_eq!(walked.list - before.list, 2);
    assert_eq!(
        walked.total() - before.total(),
        2,
        "nothing but the listing"
    );
    // Deleting the directory is one listing and one DeleteObjects batch per 1,000 keys.
    s3.delete(&Key::parse("/many").unwrap()).unwrap();
    let deleted = s3.requests();
    assert_eq!(deleted.delete - walked.delete, 2);
    assert_eq!(deleted.deleted_keys - walked.deleted_keys, 1001);
    eprintln!("walk of 1,001 files: {:?}", diff(&walked, &before));
    eprintln!("delete of 1,001 files: {:?}", diff(&deleted, &walked));

    // A collection and a check on a bucket, with what each cost.
    let reg = Registry::open(s3.clone());
    image_support::image(&reg, "lib/app", "v1", &pattern(1 << 20, 9));
    let orphan = reg.put_blob("lib/app", b"nobody needs me").unwrap().digest;
    let start = s3.requests();
    let report = regstore::gc::collect(
        &reg,
        regstore::gc::GcOptions {
            grace: std::time::Duration::ZERO,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(report.blobs_deleted, [orphan]);
    let collected = s3.requests();
    let check = regstore::fsck::check(&reg, regstore::fsck::FsckOptions::default()).unwrap();
    assert!(check.is_clean(), "{check:?}");
    assert_eq!(check.blobs_checked, 3);
    let checked = s3.requests();
    eprintln!(
        "gc (3 blobs kept, 1 deleted): {:?}",
        diff(&collected, &start)
    );
    eprintln!("fsck (3 blobs): {:?}", diff(&checked, &collected));
}

fn diff(
    a: &regstore::drivers::s3::RequestCounts,
    b: &regstore::drivers::s3::RequestCounts,
) -> String {
    format!(
        "{} requests: {} list pages ({} keys), {} head, {} get, {} put, {} copy, {} delete ({} keys), {} multipart",
        a.total() - b.total(),
        a.list - b.list,
        a.listed_keys - b.listed_keys,
        a.head - b.head,
        a.get - b.get,
        a.put - b.put,
        a.copy - b.copy,
        a.delete - b.delete,
        a.deleted_keys - b.deleted_keys,
        a.multipart - b.multipart
    )
}
