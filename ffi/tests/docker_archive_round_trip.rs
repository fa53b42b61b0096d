//! Without this, a C caller could not move images in and out as docker archives, or an
//! archive written through C would not read back as the same image: an image set up
//! from Rust is exported and imported again through the C ABI, and bad names and
//! platforms are statuses.

use std::ffi::{CString, c_void};
use std::ptr;

use cargohold::docker_archive::*;
use cargohold::registry::*;
use cargohold::{cargohold_error, cargohold_error_free, cargohold_status, cargohold_string_free};
use cargohold_core::Digest;
use regstore::Registry;
use regstore::drivers::Filesystem;

fn status_of(f: impl FnOnce(*mut *mut cargohold_error) -> cargohold_status) -> cargohold_status {
    let mut err = ptr::null_mut();
    let st = f(&mut err);
    assert_eq!(st == cargohold_status::Ok, err.is_null());
    // SAFETY: NULL or a live error object, freed once.
    unsafe { cargohold_error_free(err) };
    st
}

fn c(s: &str) -> CString {
    CString::new(s).unwrap()
}

unsafe extern "C" fn count(ctx: *mut c_void, done: u64, _total: u64) {
    // SAFETY: ctx is the (calls, last) pair the test passed, used by nobody else.
    let seen = unsafe { &mut *ctx.cast::<(u64, u64)>() };
    seen.0 += 1;
    seen.1 = done;
}

/// A one-layer image tagged `lab/app:v1`; returns its config digest and layer bytes.
fn image(reg: &Registry, work: &std::path::Path) -> (Digest, Vec<u8>) {
    let src = work.join("src");
    std::fs::create_dir_all(src.join("etc")).unwrap();
    std::fs::write(src.join("etc/hello"), "hello\n").unwrap();
    let tar = work.join("layer.tar");
    let ok = std::process::Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["--numeric-owner", "-cf"])
        .arg(&tar)
        .arg("etc")
        .status()
        .unwrap()
        .success();
    assert!(ok);
    let layer = std::fs::read(&tar).unwrap();
    let l = reg.put_blob("lab/app", &layer).unwrap();
    let config = format!(
        r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{}"]}}}}"#,
        l.digest
    );
    let cfg = reg.put_blob("lab/app", config.as_bytes()).unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        cfg.digest, cfg.size, l.digest, l.size
    );
    reg.put_manifest("lab/app", "v1", manifest.as_bytes(), None)
        .unwrap();
    (cfg.digest, layer)
}

#[test]
fn an_archive_written_through_c_imports_back_as_the_same_image() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("registry");
    let rust = Registry::open(Filesystem::new(&root).unwrap());
    let (config, layer) = image(&rust, tmp.path());
    let croot = c(root.to_str().unwrap());
    let file = c(tmp.path().join("app.tar").to_str().unwrap());
    let mut reg = ptr::null_mut();
    let mut seen = (0u64, 0u64);
    let mut digest = ptr::null_mut();
    // SAFETY: valid strings, live handle, callbacks with the right signature and a
    // context that outlives the calls; returned strings are freed once.
    unsafe {
        assert_eq!(
            status_of(|e| cargohold_registry_open(croot.as_ptr(), &mut reg, e)),
            cargohold_status::Ok
        );
        let (repo, v1) = (c("lab/app"), c("v1"));
        let st = status_of(|e| {
            cargohold_docker_archive_export(
                reg,
                repo.as_ptr(),
                v1.as_ptr(),
                file.as_ptr(),
                ptr::null(),
                ptr::null(),
                Some(count),
                (&mut seen as *mut (u64, u64)).cast(),
                e,
            )
        });
        assert_eq!(st, cargohold_status::Ok);
        assert!(seen.0 >= 2, "progress after the config and the layer");

        let bad = c("linux/");
        let st = status_of(|e| {
            cargohold_docker_archive_export(
                reg,
                repo.as_ptr(),
                v1.as_ptr(),
                file.as_ptr(),
                ptr::null(),
                bad.as_ptr(),
                None,
                ptr::null_mut(),
                e,
            )
        });
        assert_eq!(
            st,
            cargohold_status::InvalidArgument,
            "a malformed platform"
        );

        let (copy, latest, missing) = (c("lab/copy"), c("latest"), c("nobody:1"));
        let st = status_of(|e| {
            cargohold_docker_archive_import(
                reg,
                file.as_ptr(),
                missing.as_ptr(),
                copy.as_ptr(),
                latest.as_ptr(),
                None,
                ptr::null_mut(),
                &mut digest,
                e,
            )
        });
        assert_eq!(st, cargohold_status::NotFound, "no image of that name");
        assert!(digest.is_null());
        let name = c("lab/app:v1");
        let st = status_of(|e| {
            cargohold_docker_archive_import(
                reg,
                file.as_ptr(),
                name.as_ptr(),
                copy.as_ptr(),
                latest.as_ptr(),
                None,
                ptr::null_mut(),
                &mut digest,
                e,
            )
        });
        assert_eq!(st, cargohold_status::Ok);
        cargohold_string_free(digest);
        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
    }
    let m = rust.get_manifest("lab/copy", "latest").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&m.bytes).unwrap();
    assert_eq!(v["config"]["digest"], config.to_string(), "the same config");
    // The archive carries the plain layer tar, which comes back byte for byte.
    let layer_digest = Digest::parse(v["layers"][0]["digest"].as_str().unwrap()).unwrap();
    assert_eq!(layer_digest, Digest::sha256(&layer));
    assert_eq!(rust.read_blob("lab/copy", &layer_digest).unwrap(), layer);
}
