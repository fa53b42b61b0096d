//! The layer store over C: the handle, and layers applied from a descriptor or a read
//! callback, listed, read and removed (containers are in `containers`).

use std::ffi::{c_char, c_int, c_void};
use std::io::Read;

use cargohold_core::{Digest, Error, ErrorKind, Result};
use layerstore::{ApplyOptions, DriverChoice, Layer, LayerStore};
use serde_json::{Value, json};

use crate::boundary::call;
use crate::error::{cargohold_error, cargohold_status};
use crate::streams::{
    CallbackStream, FdStream, Progress, ProgressReader, cargohold_progress_fn, cargohold_read_fn,
};
use crate::{handles, strings};

/// The vfs driver (full copies, reflinked where possible): works on any filesystem.
pub const CARGOHOLD_LAYER_DRIVER_VFS: u32 = 0;
/// The overlay driver: layers are overlayfs lower directories (needs root).
pub const CARGOHOLD_LAYER_DRIVER_OVERLAY: u32 = 1;
/// The btrfs driver: layers are subvolumes, children snapshots (the root must be on
/// btrfs, else `UNSUPPORTED`).
pub const CARGOHOLD_LAYER_DRIVER_BTRFS: u32 = 2;
/// The driver the store recorded; for a new store btrfs on btrfs, overlay as root,
/// vfs otherwise.
pub const CARGOHOLD_LAYER_DRIVER_AUTO: u32 = 3;

/// A layer store: layers and containers in one directory.
///
/// Thread safety: the handle is `Send + Sync`; any number of threads may call functions
/// on one handle at once, and several processes may open the same root. Only
/// `cargohold_layer_store_free` must not run concurrently with another call on it.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct cargohold_layer_store {
    store: LayerStore,
}

pub(crate) unsafe fn layer_store<'a>(p: *const cargohold_layer_store) -> Result<&'a LayerStore> {
    // SAFETY: forwarded contract (no free during the call).
    Ok(&unsafe { handles::borrow(p, "layer store") }?.store)
}

fn layer_json(l: &Layer) -> Value {
    json!({
        "chain_id": l.chain_id.to_string(),
        "parent": l.parent.as_ref().map(Digest::to_string),
        "diff_id": l.diff_id.to_string(),
        "compressed_digest": l.compressed_digest.as_ref().map(Digest::to_string),
        "size": l.size,
        "created": l.created,
    })
}

/// Open (creating it when missing) the layer store at `root` with the driver
/// `CARGOHOLD_LAYER_DRIVER_VFS`, `_OVERLAY`, `_BTRFS` or `_AUTO`; `*out` receives the
/// handle, released with `cargohold_layer_store_free`. A store keeps the driver it was
/// made with: asking for another one is `INVALID_ARGUMENT`.
///
/// # Safety
/// `root` is a NUL-terminated string or NULL; `out` is writable or NULL; `err` as usual.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_layer_store_open(
    root: *const c_char,
    driver: u32,
    out: *mut *mut cargohold_layer_store,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let root = strings::required(root, "root")?;
            strings::out_ptr(out, "out")?;
            let choice = match driver {
                CARGOHOLD_LAYER_DRIVER_VFS => DriverChoice::Vfs,
                CARGOHOLD_LAYER_DRIVER_OVERLAY => DriverChoice::Overlay,
                CARGOHOLD_LAYER_DRIVER_BTRFS => DriverChoice::Btrfs,
                CARGOHOLD_LAYER_DRIVER_AUTO => DriverChoice::Auto,
                other => {
                    return Err(Error::new(
                        ErrorKind::InvalidArgument,
                        "layer store open",
                        other,
                        "unknown driver",
                    ));
                }
            };
            let store = LayerStore::open(root, choice)?;
            strings::put(out, handles::register(cargohold_layer_store { store }));
            Ok(())
        })
    }
}

/// Release a layer store handle. NULL is `OK`; a handle already freed (or never made
/// here) is `INVALID_ARGUMENT` and nothing is touched.
///
/// # Safety
/// No other call may be using `store` at the same time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_layer_store_free(
    store: *mut cargohold_layer_store,
) -> cargohold_status {
    // SAFETY: NULL error out: nothing is written.
    unsafe {
        call(std::ptr::null_mut(), || {
            handles::release(store, "layer store")
        })
    }
}

fn apply(
    store: &LayerStore,
    reader: &mut (dyn Read + Send),
    parent: Option<Digest>,
    expected: Option<Digest>,
) -> Result<Layer> {
    let opts = ApplyOptions {
        expected_diff_id: expected,
        ..ApplyOptions::default()
    };
    store.apply_layer(reader, parent.as_ref(), &opts)
}

/// Apply the OCI layer tar (plain, gzip or zstd) read from `fd` (left open, read to
/// its end) on top of the layer `parent` (NULL: a base layer). With
/// `expected_diff_id` (NULL: none) the tar must have that diff ID
/// (`DIGEST_MISMATCH` otherwise, nothing kept) and an existing layer is returned
/// without reading. `*out_chain_id` receives the layer's chain ID (free with
/// `cargohold_string_free`). `NOT_FOUND` for a missing parent. `progress(ctx, done,
/// 0)` (when not NULL) is called with the bytes read so far, every MiB and at the end;
/// it may be called from a helper thread, never concurrently, never after the return.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `fd` is open for the call; `progress` is
/// callable with `ctx` or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_layer_apply_fd(
    store: *const cargohold_layer_store,
    fd: c_int,
    parent: *const c_char,
    expected_diff_id: *const c_char,
    progress: cargohold_progress_fn,
    ctx: *mut c_void,
    out_chain_id: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let mut reader = ProgressReader::new(
                FdStream(crate::streams::fd(fd, "fd")?),
                Progress::new(progress, ctx),
            );
            let parent = strings::optional_digest(parent, "parent")?;
            let expected = strings::optional_digest(expected_diff_id, "expected_diff_id")?;
            strings::out_ptr(out_chain_id, "out_chain_id")?;
            let layer = apply(s, &mut reader, parent, expected)?;
            strings::put(
                out_chain_id,
                strings::to_c(layer.chain_id.to_string(), "chain id")?,
            );
            Ok(())
        })
    }
}

/// Like `cargohold_layer_apply_fd`, reading the tar through `read(ctx, buf, len)`
/// until it returns 0 (the callback sees every byte: no progress callback). The callback may be called from a helper thread, never
/// concurrently with itself, and never after this function returns.
///
/// # Safety
/// `read` is callable with `ctx` until this function returns.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_layer_apply_read(
    store: *const cargohold_layer_store,
    read: cargohold_read_fn,
    ctx: *mut c_void,
    parent: *const c_char,
    expected_diff_id: *const c_char,
    out_chain_id: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let mut reader = CallbackStream::new(read, ctx)?;
            let parent = strings::optional_digest(parent, "parent")?;
            let expected = strings::optional_digest(expected_diff_id, "expected_diff_id")?;
            strings::out_ptr(out_chain_id, "out_chain_id")?;
            let layer = apply(s, &mut reader, parent, expected)?;
            strings::put(
                out_chain_id,
                strings::to_c(layer.chain_id.to_string(), "chain id")?,
            );
            Ok(())
        })
    }
}

/// `*out_json` receives every layer as a JSON array of objects `{"chain_id", "parent"
/// (null for a base), "diff_id", "compressed_digest" (or null), "size", "created"}`,
/// sorted by chain ID (free with `cargohold_string_free`).
///
/// # Safety
/// `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_layer_list(
    store: *const cargohold_layer_store,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            strings::out_ptr(out_json, "out_json")?;
            let mut layers = s.layers()?;
            layers.sort_by_key(|l| l.chain_id.to_string());
            let v = Value::Array(layers.iter().map(layer_json).collect());
            strings::put(out_json, strings::json(&v)?);
            Ok(())
        })
    }
}

/// `*out_json` receives the layer `chain_id` as the JSON object `cargohold_layer_list`
/// gives for it (free with `cargohold_string_free`); `NOT_FOUND` when absent.
///
/// # Safety
/// `chain_id` is NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_layer_get(
    store: *const cargohold_layer_store,
    chain_id: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let d = strings::digest(chain_id, "chain_id")?;
            strings::out_ptr(out_json, "out_json")?;
            let layer = s.layer(&d)?;
            strings::put(out_json, strings::json(&layer_json(&layer))?);
            Ok(())
        })
    }
}

/// Remove the layer `chain_id`: `NOT_FOUND` when missing, `IN_USE` while a layer or
/// container is on it.
///
/// # Safety
/// `chain_id` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_layer_remove(
    store: *const cargohold_layer_store,
    chain_id: *const c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = layer_store(store)?;
            let d = strings::digest(chain_id, "chain_id")?;
            s.remove_layer(&d)
        })
    }
}
