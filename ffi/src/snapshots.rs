//! The layer store's snapshot vocabulary over C, in containerd's shape: snapshots named
//! by free-form keys (not digests), committed under a name of the caller's choosing,
//! with labels, stat, walk and usage. This is the layer store's `Driver` trait; the
//! `cargohold_container_*` functions are its layer-oriented face, and
//! `cargohold_container_mounts` and `_remove` serve both (they take any key).

use std::ffi::c_char;

use cargohold_core::{Error, ErrorKind, Result};
use layerstore::{Driver, Info, Kind, Labels};
use serde_json::{Value, json};

use crate::boundary::call;
use crate::containers::mounts_json;
use crate::error::{cargohold_error, cargohold_status};
use crate::layers::{cargohold_layer_store, layer_store};
use crate::strings;

/// Parse the nullable labels argument `p`.
///
/// # Safety
/// `p` is NULL or NUL-terminated.
unsafe fn labels(p: *const c_char) -> Result<Labels> {
    // SAFETY: forwarded contract.
    match unsafe { strings::optional(p, "labels") }? {
        None => Ok(Labels::new()),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                "argument",
                "labels",
                format!("not a JSON object of strings: {e}"),
            )
        }),
    }
}

fn info_json(i: &Info) -> Value {
    json!({
        "name": i.name,
        "parent": i.parent,
        "kind": match i.kind {
            Kind::Active => "active",
            Kind::View => "view",
            Kind::Committed => "committed",
        },
        "created": i.created,
        "labels": i.labels,
    })
}

/// Create the writable snapshot `key` on the committed snapshot `parent` (NULL:
/// empty) with `labels_json` (a JSON object of strings, NULL: none). `*out_mounts_json`
/// (when not NULL) receives its mounts (as `cargohold_container_prepare`).
/// `ALREADY_EXISTS` when `key` is taken, `NOT_FOUND` for a missing parent,
/// `INVALID_ARGUMENT` for a parent that is not committed or a bad key.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `out_mounts_json` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_snapshot_prepare(
    store: *const cargohold_layer_store,
    key: *const c_char,
    parent: *const c_char,
    labels_json: *const c_char,
    out_mounts_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe { snapshot(store, key, parent, labels_json, out_mounts_json, err, false) }
}

/// Like `cargohold_snapshot_prepare`, for the read-only view `key` of `parent`; a view
/// can never be committed.
///
/// # Safety
/// As `cargohold_snapshot_prepare`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_snapshot_view(
    store: *const cargohold_layer_store,
    key: *const c_char,
    parent: *const c_char,
    labels_json: *const c_char,
    out_mounts_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe { snapshot(store, key, parent, labels_json, out_mounts_json, err, true) }
}

unsafe fn snapshot(
    store: *const cargohold_layer_store,
    key: *const c_char,
    parent: *const c_char,
    labels_json: *const c_char,
    out_mounts_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
    view: bool,
) -> cargohold_status {
    // SAFETY: forwarded contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            let parent = strings::optional(parent, "parent")?;
            let labels = labels(labels_json)?;
            let mounts = match view {
                true => Driver::view(s, key, parent, labels)?,
                false => Driver::prepare(s, key, parent, labels)?,
            };
            if !out_mounts_json.is_null() {
                strings::put(out_mounts_json, strings::json(&mounts_json(&mounts))?);
            }
            Ok(())
        })
    }
}

/// Commit the writable snapshot `key` as the committed snapshot `name`; `key` is gone
/// afterwards. `labels_json` (NULL or `{}`: keep the labels) replaces its labels.
/// `INVALID_ARGUMENT` for a view, `ALREADY_EXISTS` when `name` is taken, `NOT_FOUND`
/// when `key` is missing or committed.
///
/// # Safety
/// Strings are NUL-terminated or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_snapshot_commit(
    store: *const cargohold_layer_store,
    name: *const c_char,
    key: *const c_char,
    labels_json: *const c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let name = strings::required(name, "name")?;
            let key = strings::required(key, "key")?;
            Driver::commit(s, name, key, labels(labels_json)?)
        })
    }
}

/// `*out_json` receives the snapshot `key` as `{"name", "parent" (or null), "kind"
/// ("active", "view" or "committed"), "created" (seconds since the epoch), "labels"}`.
///
/// # Safety
/// `key` is NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_snapshot_stat(
    store: *const cargohold_layer_store,
    key: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            strings::out_ptr(out_json, "out_json")?;
            let info = Driver::stat(s, key)?;
            strings::put(out_json, strings::json(&info_json(&info))?);
            Ok(())
        })
    }
}

/// `*out_json` receives every snapshot as a JSON array of the objects
/// `cargohold_snapshot_stat` gives, sorted by name.
///
/// # Safety
/// `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_snapshot_walk(
    store: *const cargohold_layer_store,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            strings::out_ptr(out_json, "out_json")?;
            let mut all = Vec::new();
            Driver::walk(s, &mut |i| all.push(i.clone()))?;
            all.sort_by(|a, b| a.name.cmp(&b.name));
            let v = Value::Array(all.iter().map(info_json).collect());
            strings::put(out_json, strings::json(&v)?);
            Ok(())
        })
    }
}

/// `*out_size` receives the bytes and `*out_inodes` (when not NULL) the inodes of the
/// snapshot's own data, not counting its parents.
///
/// # Safety
/// `key` is NUL-terminated; `out_size` is writable, `out_inodes` writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_snapshot_usage(
    store: *const cargohold_layer_store,
    key: *const c_char,
    out_size: *mut u64,
    out_inodes: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            strings::out_ptr(out_size, "out_size")?;
            let u = Driver::usage(s, key)?;
            strings::put(out_size, u.size);
            strings::put(out_inodes, u.inodes);
            Ok(())
        })
    }
}
