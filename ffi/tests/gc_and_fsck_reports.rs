//! Without these, a C caller could not collect a registry's garbage or check its
//! integrity, or would get reports that lose what was deleted, spared or found damaged:
//! collection and check run through the C ABI on a registry set up from Rust, and
//! their JSON reports are compared with the store.

use std::ffi::{CStr, CString, c_char, c_void};
use std::path::Path;
use std::ptr;

use cargohold::gc::*;
use cargohold::registry::*;
use cargohold::{cargohold_error, cargohold_error_free, cargohold_status, cargohold_string_free};
use cargohold_core::Digest;
use regstore::Registry;
use regstore::drivers::Filesystem;
use serde_json::Value;

fn status_of(f: impl FnOnce(*mut *mut cargohold_error) -> cargohold_status) -> cargohold_status {
    let mut err = ptr::null_mut();
    let st = f(&mut err);
    assert_eq!(st == cargohold_status::Ok, err.is_null());
    // SAFETY: NULL or a live error object, freed once.
    unsafe { cargohold_error_free(err) };
    st
}

fn take_json(p: *mut c_char) -> Value {
    assert!(!p.is_null());
    // SAFETY: a live string returned by cargohold, freed once after copying.
    let s = unsafe {
        let s = CStr::from_ptr(p).to_str().unwrap().to_owned();
        cargohold_string_free(p);
        s
    };
    serde_json::from_str(&s).unwrap()
}

/// A registry with one tagged image (config and layer) and one blob nothing names.
fn setup(root: &Path) -> (Registry, Digest, Digest) {
    let reg = Registry::open(Filesystem::new(root).unwrap());
    let cfg = reg.put_blob("lab/app", br#"{"os":"linux"}"#).unwrap();
    let layer = reg.put_blob("lab/app", b"layer bytes").unwrap();
    let orphan = reg.put_blob("lab/app", b"nobody names me").unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
        cfg.digest, cfg.size, layer.digest, layer.size
    );
    reg.put_manifest("lab/app", "v1", manifest.as_bytes(), None)
        .unwrap();
    (reg, layer.digest, orphan.digest)
}

fn open(root: &Path) -> *mut cargohold_registry {
    let c = CString::new(root.to_str().unwrap()).unwrap();
    let mut h = ptr::null_mut();
    // SAFETY: valid string and out-param.
    let st = status_of(|e| unsafe { cargohold_registry_open(c.as_ptr(), &mut h, e) });
    assert_eq!(st, cargohold_status::Ok);
    h
}

unsafe extern "C" fn record(ctx: *mut c_void, stage: *const c_char, done: u64, total: u64) {
    // SAFETY: ctx is the Vec the test passed, not otherwise used during the call.
    let seen = unsafe { &mut *ctx.cast::<Vec<(String, u64, u64)>>() };
    // SAFETY: stage is a static NUL-terminated string (the callback's contract).
    let stage = unsafe { CStr::from_ptr(stage) }
        .to_str()
        .unwrap()
        .to_owned();
    seen.push((stage, done, total));
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn gc_reports_what_it_deletes_and_keeps_what_is_tagged() {
    let tmp = tempfile::tempdir().unwrap();
    let (rust, layer, orphan) = setup(tmp.path());
    let reg = open(tmp.path());
    let mut out = ptr::null_mut();
    // SAFETY: live handle, NULL or valid callbacks, writable out-params.
    unsafe {
        let st = status_of(|e| {
            cargohold_registry_gc(reg, 1 << 7, 0, None, ptr::null_mut(), &mut out, e)
        });
        assert_eq!(st, cargohold_status::InvalidArgument, "unknown flags");
        assert!(out.is_null());

        // Within the grace period nothing goes; the orphan is spared.
        let st =
            status_of(|e| cargohold_registry_gc(reg, 0, -1, None, ptr::null_mut(), &mut out, e));
        assert_eq!(st, cargohold_status::Ok);
        let report = take_json(out);
        assert_eq!(strings(&report["blobs_spared"]), [orphan.to_string()]);
        assert!(strings(&report["blobs_deleted"]).is_empty());

        // A dry run without grace names the orphan and deletes nothing.
        let st = status_of(|e| {
            cargohold_registry_gc(
                reg,
                CARGOHOLD_GC_DRY_RUN,
                0,
                None,
                ptr::null_mut(),
                &mut out,
                e,
            )
        });
        assert_eq!(st, cargohold_status::Ok);
        let report = take_json(out);
        assert_eq!(report["dry_run"], Value::Bool(true));
        assert_eq!(strings(&report["blobs_deleted"]), [orphan.to_string()]);
        assert!(rust.stat_blob("lab/app", &orphan).is_ok());

        let mut seen: Vec<(String, u64, u64)> = Vec::new();
        let st = status_of(|e| {
            cargohold_registry_gc(
                reg,
                0,
                0,
                Some(record),
                (&mut seen as *mut Vec<(String, u64, u64)>).cast(),
                &mut out,
                e,
            )
        });
        assert_eq!(st, cargohold_status::Ok);
        let report = take_json(out);
        assert_eq!(strings(&report["blobs_deleted"]), [orphan.to_string()]);
        assert_eq!(report["bytes_deleted"], 15);
        assert!(seen.iter().any(|(s, d, t)| s == "mark" && d == t));
        assert!(seen.iter().any(|(s, d, t)| s == "sweep" && d == t));
        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
    }
    assert!(
        rust.stat_blob("lab/app", &orphan).is_err(),
        "the orphan is gone"
    );
    assert!(
        rust.stat_blob("lab/app", &layer).is_ok(),
        "tagged content stays"
    );
}

#[test]
fn fsck_reports_a_corrupt_blob_and_repair_quarantines_it() {
    let tmp = tempfile::tempdir().unwrap();
    let (_rust, layer, _) = setup(tmp.path());
    let data = tmp
        .path()
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex())
        .join("data");
    std::fs::write(&data, b"layer bytez").unwrap();
    let reg = open(tmp.path());
    let mut out = ptr::null_mut();
    // SAFETY: live handle, valid callbacks, writable out-params.
    unsafe {
        let mut seen: Vec<(String, u64, u64)> = Vec::new();
        let st = status_of(|e| {
            cargohold_registry_fsck(
                reg,
                false,
                -1,
                0,
                Some(record),
                (&mut seen as *mut Vec<(String, u64, u64)>).cast(),
                &mut out,
                e,
            )
        });
        assert_eq!(
            st,
            cargohold_status::Ok,
            "damage is a finding, not an error"
        );
        let report = take_json(out);
        assert_eq!(report["clean"], Value::Bool(false));
        let findings = report["findings"].as_array().unwrap();
        let corrupt: Vec<&Value> = findings
            .iter()
            .filter(|f| f["kind"] == "corrupt_blob")
            .collect();
        assert_eq!(corrupt.len(), 1, "{report}");
        assert_eq!(corrupt[0]["digest"], layer.to_string());
        assert_eq!(corrupt[0]["repaired"], Value::Bool(false));
        assert!(seen.iter().any(|(s, _, _)| s == "blobs"));

        let st = status_of(|e| {
            cargohold_registry_fsck(reg, true, -1, 1, None, ptr::null_mut(), &mut out, e)
        });
        assert_eq!(st, cargohold_status::Ok);
        let report = take_json(out);
        let fixed = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["kind"] == "corrupt_blob")
            .unwrap()
            .clone();
        assert_eq!(fixed["repaired"], Value::Bool(true));
        assert!(fixed["quarantined"].as_str().unwrap().contains(layer.hex()));
        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
    }
    assert!(!data.exists(), "the corrupt blob left its place");
}
