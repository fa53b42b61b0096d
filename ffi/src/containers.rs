//! Containers over C: writable containers and read-only views on a layer, their
//! mounts, the diff of their changes as a layer tar, commit and removal.

use std::ffi::{c_char, c_int, c_void};
use std::path::Path;

use layerstore::{Driver, Labels, Mount};
use serde_json::{Value, json};

use crate::boundary::call;
use crate::error::{cargohold_error, cargohold_status};
use crate::layers::{cargohold_layer_store, layer_store};
use crate::streams::{CallbackSink, FdStream, cargohold_write_fn};
use crate::strings;

pub(crate) fn mounts_json(ms: &[Mount]) -> Value {
    Value::Array(
        ms.iter()
            .map(|m| {
                json!({
                    "type": m.kind,
                    "source": m.source.to_string_lossy(),
                    "target": m.target.as_ref().map(|t| t.to_string_lossy()),
                    "options": m.options,
                    "lowerdirs": m.lowerdirs.iter().map(|d| d.to_string_lossy()).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}

/// Prepare the writable container `key` on the layer `parent` (NULL: empty).
/// `*out_mounts_json` (when `out_mounts_json` is not NULL) receives how to mount it: a
/// JSON array of `{"type", "source", "target" (null: the root), "options",
/// "lowerdirs" (overlay: the lower directories, topmost first)}`. `ALREADY_EXISTS` when
/// `key` is taken, `NOT_FOUND` for a missing parent.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `out_mounts_json` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_prepare(
    store: *const cargohold_layer_store,
    key: *const c_char,
    parent: *const c_char,
    out_mounts_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            let parent = strings::optional_digest(parent, "parent")?;
            let mounts = s.prepare_container(key, parent.as_ref(), Labels::new())?;
            if !out_mounts_json.is_null() {
                strings::put(out_mounts_json, strings::json(&mounts_json(&mounts))?);
            }
            Ok(())
        })
    }
}

/// Prepare the read-only view `key` of the layer `parent` (required).
/// `*out_mounts_json` (when not NULL) receives its mounts as for
/// `cargohold_container_prepare`. A view is mounted, unmounted and removed like a
/// container, and cannot be committed (`INVALID_ARGUMENT`).
///
/// # Safety
/// Strings are NUL-terminated; `out_mounts_json` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_view(
    store: *const cargohold_layer_store,
    key: *const c_char,
    parent: *const c_char,
    out_mounts_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            let parent = strings::digest(parent, "parent")?;
            let mounts = Driver::view(s, key, Some(&parent.to_string()), Labels::new())?;
            if !out_mounts_json.is_null() {
                strings::put(out_mounts_json, strings::json(&mounts_json(&mounts))?);
            }
            Ok(())
        })
    }
}

/// `*out_json` receives the mounts of the container or view `key` (a JSON array as
/// `cargohold_container_prepare` gives); `NOT_FOUND` when missing.
///
/// # Safety
/// `key` is NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_mounts(
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
            let mounts = Driver::mounts(s, key)?;
            strings::put(out_json, strings::json(&mounts_json(&mounts))?);
            Ok(())
        })
    }
}

/// Commit the container `key` into a layer; `*out_chain_id` receives its chain ID.
/// The container is gone afterwards (it must be unmounted first).
///
/// # Safety
/// `key` is NUL-terminated; `out_chain_id` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_commit(
    store: *const cargohold_layer_store,
    key: *const c_char,
    out_chain_id: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            strings::out_ptr(out_chain_id, "out_chain_id")?;
            let layer = s.commit_container(key, Labels::new())?;
            strings::put(
                out_chain_id,
                strings::to_c(layer.chain_id.to_string(), "chain id")?,
            );
            Ok(())
        })
    }
}

/// Mount the container `key` at the existing directory `target` (needs root). A second
/// mount at the same target shares the first; at another target it is `CONFLICT`.
///
/// # Safety
/// Strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_mount(
    store: *const cargohold_layer_store,
    key: *const c_char,
    target: *const c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            let target = strings::required(target, "target")?;
            s.mount(key, Path::new(target))
        })
    }
}

/// Drop one mount at `target`; the last one unmounts. `NOT_FOUND` when this store
/// mounted nothing there.
///
/// # Safety
/// `target` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_unmount(
    store: *const cargohold_layer_store,
    target: *const c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let target = strings::required(target, "target")?;
            s.unmount(Path::new(target))
        })
    }
}

/// Remove the container `key` and its data: `NOT_FOUND` when missing.
///
/// # Safety
/// `key` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_remove(
    store: *const cargohold_layer_store,
    key: *const c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            s.remove(key)
        })
    }
}

/// Write the changes of the container `key` as an uncompressed layer tar to `fd` (left
/// open). `*out_diff_id` (when not NULL) receives the tar's digest, `*out_size` (when
/// not NULL) its size.
///
/// # Safety
/// `key` is NUL-terminated; `fd` is open; out-params are writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_diff_fd(
    store: *const cargohold_layer_store,
    key: *const c_char,
    fd: c_int,
    out_diff_id: *mut *mut c_char,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            let mut out = FdStream(crate::streams::fd(fd, "fd")?);
            let (diff_id, size) = s.diff(key, &mut out)?;
            if !out_diff_id.is_null() {
                strings::put(out_diff_id, strings::to_c(diff_id.to_string(), "diff id")?);
            }
            strings::put(out_size, size);
            Ok(())
        })
    }
}

/// Like `cargohold_container_diff_fd`, writing the tar through `write(ctx, buf, len)`
/// (see `cargohold_write_fn`). A negative return stops the export with `IO`.
///
/// # Safety
/// `key` is NUL-terminated; `write` is callable with `ctx` until this function
/// returns; out-params are writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_container_diff_write(
    store: *const cargohold_layer_store,
    key: *const c_char,
    write: cargohold_write_fn,
    ctx: *mut c_void,
    out_diff_id: *mut *mut c_char,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let key = strings::required(key, "key")?;
            let mut out = CallbackSink::new(write, ctx)?;
            let (diff_id, size) = s.diff(key, &mut out)?;
            let id = match out_diff_id.is_null() {
                true => None,
                false => Some(strings::to_c(diff_id.to_string(), "diff id")?),
            };
            if let Some(id) = id {
                strings::put(out_diff_id, id);
            }
            strings::put(out_size, size);
            Ok(())
        })
    }
}
