//! Without these, a C caller's mistake (a NULL or freed handle, a NULL or non-UTF-8
//! string, a bad descriptor or callback, a double free) could crash the process or
//! corrupt a store instead of coming back as `INVALID_ARGUMENT` with nothing written.

use std::ffi::{CStr, c_char, c_void};
use std::ptr;

use cargohold::layers::*;
use cargohold::registry::*;
use cargohold::uploads::*;
use cargohold::volumes::*;
use cargohold::{
    cargohold_error, cargohold_error_free, cargohold_error_kind_name, cargohold_error_status,
    cargohold_status,
};

const INVALID: cargohold_status = cargohold_status::InvalidArgument;

/// The status of `f`, checking that the error object agrees with it and freeing it.
fn status_of(f: impl FnOnce(*mut *mut cargohold_error) -> cargohold_status) -> cargohold_status {
    let mut err = ptr::null_mut();
    let st = f(&mut err);
    if st == cargohold_status::Ok {
        assert!(err.is_null());
    } else {
        assert!(!err.is_null(), "a failed call gives an error object");
        // SAFETY: `err` is a live error object; freed once.
        unsafe {
            assert_eq!(cargohold_error_status(err), st);
            assert!(!CStr::from_ptr(cargohold_error_kind_name(err)).is_empty());
            cargohold_error_free(err);
        }
    }
    st
}

fn c(s: &str) -> std::ffi::CString {
    std::ffi::CString::new(s).unwrap()
}

fn open_volumes(dir: &std::path::Path) -> *mut cargohold_volume_store {
    let root = c(dir.join("v").to_str().unwrap());
    let mut h = ptr::null_mut();
    // SAFETY: valid string and out-param.
    let st = status_of(|e| unsafe { cargohold_volume_store_open(root.as_ptr(), &mut h, e) });
    assert_eq!(st, cargohold_status::Ok);
    h
}

fn open_registry(dir: &std::path::Path) -> *mut cargohold_registry {
    let root = c(dir.join("r").to_str().unwrap());
    let mut h = ptr::null_mut();
    // SAFETY: valid string and out-param.
    let st = status_of(|e| unsafe { cargohold_registry_open(root.as_ptr(), &mut h, e) });
    assert_eq!(st, cargohold_status::Ok);
    h
}

#[test]
fn null_handles_are_invalid_arguments() {
    let mut out: *mut c_char = ptr::null_mut();
    let name = c("x");
    // SAFETY: every pointer is NULL or valid; NULL handles are the point.
    unsafe {
        assert_eq!(
            status_of(|e| cargohold_layer_list(ptr::null(), &mut out, e)),
            INVALID
        );
        assert_eq!(
            status_of(|e| cargohold_volume_list(ptr::null(), &mut out, e)),
            INVALID
        );
        assert_eq!(
            status_of(|e| cargohold_registry_tags(ptr::null(), name.as_ptr(), &mut out, e)),
            INVALID
        );
        // A NULL error out-param is allowed: the status alone comes back.
        assert_eq!(
            cargohold_layer_list(ptr::null(), &mut out, ptr::null_mut()),
            INVALID
        );
    }
    assert!(out.is_null(), "out-params are untouched on failure");
}

#[test]
fn null_strings_and_out_params_are_invalid_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = c(tmp.path().join("never").to_str().unwrap());
    let mut h: *mut cargohold_registry = ptr::null_mut();
    // SAFETY: NULL where the test says so, valid otherwise.
    unsafe {
        assert_eq!(
            status_of(|e| cargohold_registry_open(ptr::null(), &mut h, e)),
            INVALID
        );
        assert_eq!(
            status_of(|e| cargohold_registry_open(root.as_ptr(), ptr::null_mut(), e)),
            INVALID
        );
        assert_eq!(
            status_of(|e| cargohold_layer_store_open(root.as_ptr(), 7, ptr::null_mut(), e)),
            INVALID
        );
    }
    assert!(h.is_null());
    assert!(!tmp.path().join("never").exists(), "nothing was created");
}

#[test]
fn invalid_utf8_is_an_invalid_argument() {
    let tmp = tempfile::tempdir().unwrap();
    let vs = open_volumes(tmp.path());
    let bad = b"vol\xff\xfe\0";
    let mut name: *mut c_char = ptr::null_mut();
    // SAFETY: `bad` is NUL-terminated; handle live.
    unsafe {
        let st = status_of(|e| {
            cargohold_volume_create(
                vs,
                bad.as_ptr().cast(),
                ptr::null(),
                ptr::null(),
                &mut name,
                e,
            )
        });
        assert_eq!(st, INVALID);
        assert!(name.is_null());
        let mut list = ptr::null_mut();
        assert_eq!(
            status_of(|e| cargohold_volume_list(vs, &mut list, e)),
            cargohold_status::Ok
        );
        assert_eq!(
            CStr::from_ptr(list).to_str().unwrap(),
            "[]",
            "nothing created"
        );
        cargohold::cargohold_string_free(list);
        let bad_root = b"/tmp/\xc3\x28\0";
        let mut h = ptr::null_mut();
        assert_eq!(
            status_of(|e| cargohold_registry_open(bad_root.as_ptr().cast(), &mut h, e)),
            INVALID
        );
        assert_eq!(cargohold_volume_store_free(vs), cargohold_status::Ok);
    }
}

#[test]
fn bad_json_options_and_digests_are_invalid_arguments() {
    let tmp = tempfile::tempdir().unwrap();
    let vs = open_volumes(tmp.path());
    let reg = open_registry(tmp.path());
    let (name, opts, repo) = (c("v1"), c("{\"type\": 3"), c("lab/app"));
    let mut size = 7u64;
    // SAFETY: valid strings and live handles.
    unsafe {
        let st = status_of(|e| {
            cargohold_volume_create(
                vs,
                name.as_ptr(),
                opts.as_ptr(),
                ptr::null(),
                ptr::null_mut(),
                e,
            )
        });
        assert_eq!(st, INVALID);
        for bad in ["", "sha256:", "md5:abc", "sha256:XYZ"] {
            let d = c(bad);
            let st =
                status_of(|e| cargohold_blob_stat(reg, repo.as_ptr(), d.as_ptr(), &mut size, e));
            assert_eq!(st, INVALID, "{bad:?}");
        }
        assert_eq!(size, 7, "out-param untouched");
        assert_eq!(cargohold_volume_store_free(vs), cargohold_status::Ok);
        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
    }
}

#[test]
fn buffers_null_with_a_length_or_empty_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = open_registry(tmp.path());
    let (repo, tag) = (c("lab/app"), c("v1"));
    // SAFETY: NULL buffers are the point; everything else valid.
    unsafe {
        let st = status_of(|e| {
            cargohold_manifest_put(
                reg,
                repo.as_ptr(),
                tag.as_ptr(),
                ptr::null(),
                10,
                ptr::null(),
                ptr::null_mut(),
                e,
            )
        });
        assert_eq!(st, INVALID, "NULL data with a length");
        let st = status_of(|e| {
            cargohold_manifest_put(
                reg,
                repo.as_ptr(),
                tag.as_ptr(),
                ptr::null(),
                0,
                ptr::null(),
                ptr::null_mut(),
                e,
            )
        });
        assert_eq!(st, INVALID, "an empty manifest");
        let mut tags = ptr::null_mut();
        let st = status_of(|e| cargohold_registry_tags(reg, repo.as_ptr(), &mut tags, e));
        assert_eq!(st, cargohold_status::NotFound, "no repository was made");
        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
    }
}

#[test]
fn double_free_and_use_after_free_are_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let vs = open_volumes(tmp.path());
    let reg = open_registry(tmp.path());
    let mut out = ptr::null_mut();
    // SAFETY: freed handles are only passed back to cargohold, which checks them.
    unsafe {
        assert_eq!(cargohold_volume_store_free(vs), cargohold_status::Ok);
        assert_eq!(cargohold_volume_store_free(vs), INVALID, "double free");
        assert_eq!(
            status_of(|e| cargohold_volume_list(vs, &mut out, e)),
            INVALID
        );
        // A live handle of another type is not accepted either.
        let wrong = reg.cast::<cargohold_volume_store>();
        assert_eq!(
            status_of(|e| cargohold_volume_list(wrong, &mut out, e)),
            INVALID
        );
        assert_eq!(
            cargohold_volume_store_free(ptr::null_mut()),
            cargohold_status::Ok
        );
        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
        assert_eq!(cargohold_registry_free(reg), INVALID);
    }
    assert!(out.is_null());
}

unsafe extern "C" fn failing_read(_: *mut c_void, _: *mut u8, _: usize) -> isize {
    -(libc::EIO as isize)
}

unsafe extern "C" fn lying_read(_: *mut c_void, _: *mut u8, len: usize) -> isize {
    (len + 1) as isize
}

#[test]
fn bad_descriptors_and_callbacks_fail_and_keep_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = c(tmp.path().join("l").to_str().unwrap());
    let mut store = ptr::null_mut();
    let mut chain: *mut c_char = ptr::null_mut();
    // SAFETY: valid strings, live handles, callbacks that follow the signature.
    unsafe {
        assert_eq!(
            status_of(|e| cargohold_layer_store_open(
                root.as_ptr(),
                CARGOHOLD_LAYER_DRIVER_VFS,
                &mut store,
                e
            )),
            cargohold_status::Ok
        );
        let st = status_of(|e| {
            cargohold_layer_apply_fd(
                store,
                -1,
                ptr::null(),
                ptr::null(),
                None,
                ptr::null_mut(),
                &mut chain,
                e,
            )
        });
        assert_eq!(st, INVALID);
        let st = status_of(|e| {
            cargohold_layer_apply_read(
                store,
                None,
                ptr::null_mut(),
                ptr::null(),
                ptr::null(),
                &mut chain,
                e,
            )
        });
        assert_eq!(st, INVALID);
        let st = status_of(|e| {
            cargohold_layer_apply_read(
                store,
                Some(failing_read),
                ptr::null_mut(),
                ptr::null(),
                ptr::null(),
                &mut chain,
                e,
            )
        });
        assert_eq!(st, cargohold_status::Io);
        let st = status_of(|e| {
            cargohold_layer_apply_read(
                store,
                Some(lying_read),
                ptr::null_mut(),
                ptr::null(),
                ptr::null(),
                &mut chain,
                e,
            )
        });
        assert_ne!(
            st,
            cargohold_status::Ok,
            "a callback claiming too many bytes fails"
        );
        assert!(chain.is_null());
        let mut list = ptr::null_mut();
        assert_eq!(
            status_of(|e| cargohold_layer_list(store, &mut list, e)),
            cargohold_status::Ok
        );
        assert_eq!(
            CStr::from_ptr(list).to_str().unwrap(),
            "[]",
            "no layer kept"
        );
        cargohold::cargohold_string_free(list);
        assert_eq!(cargohold_layer_store_free(store), cargohold_status::Ok);
    }
}

unsafe extern "C" fn failing_write(_: *mut c_void, _: *const u8, _: usize) -> isize {
    -(libc::ENOSPC as isize)
}

unsafe extern "C" fn stuck_write(_: *mut c_void, _: *const u8, _: usize) -> isize {
    0
}

unsafe extern "C" fn boasting_write(_: *mut c_void, _: *const u8, len: usize) -> isize {
    (len + 1) as isize
}

#[test]
fn bad_write_callbacks_and_unknown_uploads_are_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = open_registry(tmp.path());
    let repo = c("lab/app");
    let data = b"some blob bytes";
    let mut digest: *mut c_char = ptr::null_mut();
    let mut size = 0u64;
    let blob = tmp.path().join("blob");
    std::fs::write(&blob, data).unwrap();
    let f = std::fs::File::open(&blob).unwrap();
    // SAFETY: live handle, valid strings and descriptors, callbacks with the right
    // signature; every returned string is freed once.
    unsafe {
        use std::os::fd::AsRawFd;
        let st = status_of(|e| {
            cargohold_blob_put_fd(
                reg,
                repo.as_ptr(),
                f.as_raw_fd(),
                ptr::null(),
                None,
                ptr::null_mut(),
                &mut digest,
                &mut size,
                e,
            )
        });
        assert_eq!(st, cargohold_status::Ok);
        assert_eq!(size, data.len() as u64);
        for (cb, want) in [
            (
                failing_write as unsafe extern "C" fn(_, _, _) -> _,
                cargohold_status::LimitExceeded,
            ),
            (stuck_write, cargohold_status::Io),
            (boasting_write, INVALID),
        ] {
            let mut written = 77u64;
            let st = status_of(|e| {
                cargohold_blob_read_write(
                    reg,
                    repo.as_ptr(),
                    digest,
                    Some(cb),
                    ptr::null_mut(),
                    &mut written,
                    e,
                )
            });
            assert_eq!(st, want);
            assert_eq!(written, 77, "out-param untouched on failure");
        }
        let st = status_of(|e| {
            cargohold_blob_read_write(
                reg,
                repo.as_ptr(),
                digest,
                None,
                ptr::null_mut(),
                &mut size,
                e,
            )
        });
        assert_eq!(st, INVALID, "NULL write callback");
        cargohold::cargohold_string_free(digest);

        // Uploads: an unknown id is NOT_FOUND, and so is a malformed one (the registry
        // API's BLOB_UPLOAD_UNKNOWN), which reaches no path.
        let mut offset = 5u64;
        let unknown = c("00000000-0000-4000-8000-000000000000");
        let st = status_of(|e| {
            cargohold_upload_offset(reg, repo.as_ptr(), unknown.as_ptr(), &mut offset, e)
        });
        assert_eq!(st, cargohold_status::NotFound);
        let bad = c("../../etc");
        let st = status_of(|e| cargohold_upload_cancel(reg, repo.as_ptr(), bad.as_ptr(), e));
        assert_eq!(st, cargohold_status::NotFound);
        assert_eq!(offset, 5);

        // A commit under the wrong digest keeps nothing, and the upload is gone.
        let mut id: *mut c_char = ptr::null_mut();
        assert_eq!(
            status_of(|e| cargohold::uploads::cargohold_upload_start(
                reg,
                repo.as_ptr(),
                &mut id,
                e
            )),
            cargohold_status::Ok
        );
        let wrong = c(&format!("sha256:{}", "0".repeat(64)));
        let st = status_of(|e| {
            cargohold_upload_commit(reg, repo.as_ptr(), id, wrong.as_ptr(), &mut offset, e)
        });
        assert_eq!(st, cargohold_status::DigestMismatch);
        let st = status_of(|e| cargohold_upload_offset(reg, repo.as_ptr(), id, &mut offset, e));
        assert_eq!(st, cargohold_status::NotFound);
        assert_eq!(offset, 5);
        cargohold::cargohold_string_free(id);
        assert_eq!(cargohold_registry_free(reg), cargohold_status::Ok);
    }
}

#[test]
fn bad_snapshot_arguments_are_statuses_and_create_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = c(tmp.path().join("l").to_str().unwrap());
    let mut store = ptr::null_mut();
    let (key, labels, mut out) = (c("k"), c("{\"a\": 1}"), ptr::null_mut());
    // SAFETY: valid strings, live handle, writable out-params; NULLs where tested.
    unsafe {
        assert_eq!(
            status_of(|e| cargohold_layer_store_open(
                root.as_ptr(),
                CARGOHOLD_LAYER_DRIVER_VFS,
                &mut store,
                e
            )),
            cargohold_status::Ok
        );
        let st = status_of(|e| {
            cargohold::snapshots::cargohold_snapshot_prepare(
                store,
                key.as_ptr(),
                ptr::null(),
                labels.as_ptr(),
                &mut out,
                e,
            )
        });
        assert_eq!(st, INVALID, "labels must be strings");
        let st = status_of(|e| {
            cargohold::snapshots::cargohold_snapshot_view(
                store,
                ptr::null(),
                ptr::null(),
                ptr::null(),
                &mut out,
                e,
            )
        });
        assert_eq!(st, INVALID, "NULL key");
        let st = status_of(|e| {
            cargohold::snapshots::cargohold_snapshot_usage(
                store,
                key.as_ptr(),
                ptr::null_mut(),
                ptr::null_mut(),
                e,
            )
        });
        assert_eq!(st, INVALID, "NULL out_size");
        assert!(out.is_null());
        let mut all = ptr::null_mut();
        assert_eq!(
            status_of(|e| cargohold::snapshots::cargohold_snapshot_walk(store, &mut all, e)),
            cargohold_status::Ok
        );
        assert_eq!(
            CStr::from_ptr(all).to_str().unwrap(),
            "[]",
            "nothing created"
        );
        cargohold::cargohold_string_free(all);
        assert_eq!(cargohold_layer_store_free(store), cargohold_status::Ok);
    }
}
