//! The volume store (the local driver) over C.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int};
use std::path::Path;

use cargohold_core::{Error, ErrorKind, Result};
use serde_json::Value;
use volstore::local::{CreateRequest, LocalDriver};
use volstore::{Driver, Scope};

use crate::boundary::call;
use crate::error::{cargohold_error, cargohold_status};
use crate::streams::FdStream;
use crate::{handles, strings};

/// A volume store: named volumes in one directory (the local driver).
///
/// Thread safety: the handle is `Send + Sync`; any number of threads may call functions
/// on one handle at once, and several processes may open the same root. Only
/// `cargohold_volume_store_free` must not run concurrently with another call on it.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct cargohold_volume_store {
    driver: LocalDriver,
}

unsafe fn volume_store<'a>(p: *const cargohold_volume_store) -> Result<&'a LocalDriver> {
    // SAFETY: forwarded contract (no free during the call).
    Ok(&unsafe { handles::borrow(p, "volume store") }?.driver)
}

fn string_map(json: Option<&str>, what: &str) -> Result<BTreeMap<String, String>> {
    match json {
        None => Ok(BTreeMap::new()),
        Some(s) => serde_json::from_str(s).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                "argument",
                what,
                format!("not a JSON object of strings: {e}"),
            )
        }),
    }
}

fn to_json(v: &impl serde::Serialize) -> Result<*mut c_char> {
    let v: Value = serde_json::to_value(v)
        .map_err(|e| Error::new(ErrorKind::Corrupt, "json", "volume", e.to_string()))?;
    strings::json(&v)
}

/// Open (creating it when missing) the volume store at `root`, cleaning what killed
/// writers left; `*out` receives the handle (free with `cargohold_volume_store_free`).
///
/// # Safety
/// `root` is NUL-terminated; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_store_open(
    root: *const c_char,
    out: *mut *mut cargohold_volume_store,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let root = strings::required(root, "root")?;
            strings::out_ptr(out, "out")?;
            let driver = LocalDriver::open(root)?;
            strings::put(out, handles::register(cargohold_volume_store { driver }));
            Ok(())
        })
    }
}

/// Release a volume store handle. NULL is `OK`; a handle already freed is
/// `INVALID_ARGUMENT` and nothing is touched.
///
/// # Safety
/// No other call may be using `store` at the same time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_store_free(
    store: *mut cargohold_volume_store,
) -> cargohold_status {
    // SAFETY: NULL error out: nothing is written.
    unsafe {
        call(std::ptr::null_mut(), || {
            handles::release(store, "volume store")
        })
    }
}

/// Create the volume `name` (NULL: an anonymous volume with a generated name) with
/// driver options and labels given as JSON objects of strings (NULL: none), e.g.
/// `{"type":"tmpfs","device":"tmpfs","o":"size=1m"}`. Creating an existing volume
/// with the same options returns it; with other options it is `CONFLICT`.
/// `*out_name` (when not NULL) receives the name.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `out_name` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_create(
    store: *const cargohold_volume_store,
    name: *const c_char,
    options_json: *const c_char,
    labels_json: *const c_char,
    out_name: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let name = strings::optional(name, "name")?;
            let req = CreateRequest {
                options: string_map(strings::optional(options_json, "options")?, "options")?,
                labels: string_map(strings::optional(labels_json, "labels")?, "labels")?,
            };
            let info = s.create_volume(name, &req)?;
            if !out_name.is_null() {
                strings::put(out_name, strings::to_c(info.name, "name")?);
            }
            Ok(())
        })
    }
}

/// Remove the volume `name`: `NOT_FOUND` when missing, `IN_USE` while mounted unless
/// `force`.
///
/// # Safety
/// `name` is NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_remove(
    store: *const cargohold_volume_store,
    name: *const c_char,
    force: bool,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            s.remove_volume(strings::required(name, "name")?, force)
        })
    }
}

/// Hold the volume `name` for the caller `id` and mount it when it has options;
/// `*out_path` receives where its content is.
///
/// # Safety
/// Strings are NUL-terminated; `out_path` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_mount(
    store: *const cargohold_volume_store,
    name: *const c_char,
    id: *const c_char,
    out_path: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let name = strings::required(name, "name")?;
            let id = strings::required(id, "id")?;
            strings::out_ptr(out_path, "out_path")?;
            let p = Driver::mount(s, name, id)?;
            strings::put(
                out_path,
                strings::to_c(p.into_os_string().into_encoded_bytes(), "path")?,
            );
            Ok(())
        })
    }
}

/// Release the hold of `id` on the volume `name`; the last one unmounts.
///
/// # Safety
/// Strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_unmount(
    store: *const cargohold_volume_store,
    name: *const c_char,
    id: *const c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            Driver::unmount(
                s,
                strings::required(name, "name")?,
                strings::required(id, "id")?,
            )
        })
    }
}

/// `*out_path` receives where the content of `name` is, or NULL when it is not
/// reachable now (a volume with options that nobody holds). `NOT_FOUND` when missing.
///
/// # Safety
/// `name` is NUL-terminated; `out_path` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_path(
    store: *const cargohold_volume_store,
    name: *const c_char,
    out_path: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let name = strings::required(name, "name")?;
            strings::out_ptr(out_path, "out_path")?;
            let p = match Driver::path(s, name)? {
                Some(p) => strings::to_c(p.into_os_string().into_encoded_bytes(), "path")?,
                None => std::ptr::null_mut(),
            };
            strings::put(out_path, p);
            Ok(())
        })
    }
}

/// `*out_json` receives the volume `name` as a JSON object `{"name", "mountpoint",
/// "created_at", "labels", "options", "anonymous", "holders"}`.
///
/// # Safety
/// `name` is NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_get(
    store: *const cargohold_volume_store,
    name: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let name = strings::required(name, "name")?;
            strings::out_ptr(out_json, "out_json")?;
            let info = s.inspect(name)?;
            strings::put(out_json, to_json(&info)?);
            Ok(())
        })
    }
}

/// `*out_json` receives every volume as a JSON array of the objects
/// `cargohold_volume_get` returns, sorted by name.
///
/// # Safety
/// `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_list(
    store: *const cargohold_volume_store,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            strings::out_ptr(out_json, "out_json")?;
            let mut infos = Vec::new();
            for name in s.names()? {
                match s.inspect(&name) {
                    Ok(i) => infos.push(i),
                    Err(e) if e.kind() == ErrorKind::NotFound => {} // removed meanwhile
                    Err(e) => return Err(e),
                }
            }
            infos.sort_by(|a, b| a.name.cmp(&b.name));
            strings::put(out_json, to_json(&infos)?);
            Ok(())
        })
    }
}

/// Copy the directory `src` into the empty volume `name` (Docker's copy-up of an
/// image's directory into a new volume). `*out_copied` (when not NULL) receives false
/// when the volume was not empty and nothing was copied.
///
/// # Safety
/// Strings are NUL-terminated; `out_copied` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_populate(
    store: *const cargohold_volume_store,
    name: *const c_char,
    src: *const c_char,
    out_copied: *mut bool,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let name = strings::required(name, "name")?;
            let src = strings::required(src, "src")?;
            let copied = s.populate(name, Path::new(src))?;
            strings::put(out_copied, copied);
            Ok(())
        })
    }
}

/// Write the content of the volume `name` as a tar to `fd` (left open).
///
/// # Safety
/// `name` is NUL-terminated; `fd` is open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_export_fd(
    store: *const cargohold_volume_store,
    name: *const c_char,
    fd: c_int,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let name = strings::required(name, "name")?;
            let out = FdStream(crate::streams::fd(fd, "fd")?);
            s.export(name, out)
        })
    }
}

/// Replace the content of the volume `name` with the tar read from `fd` (to its end;
/// left open). A bad tar leaves the old content.
///
/// # Safety
/// `name` is NUL-terminated; `fd` is open.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_import_fd(
    store: *const cargohold_volume_store,
    name: *const c_char,
    fd: c_int,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let name = strings::required(name, "name")?;
            let input = FdStream(crate::streams::fd(fd, "fd")?);
            s.import(name, input)
        })
    }
}

/// Remove the volumes nobody holds: only anonymous ones, or all when `all`.
/// `*out_json` (when not NULL) receives `{"removed": [names], "bytes": n}`.
///
/// # Safety
/// `out_json` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_prune(
    store: *const cargohold_volume_store,
    all: bool,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            let report = s.prune(all)?;
            if !out_json.is_null() {
                strings::put(out_json, to_json(&report)?);
            }
            Ok(())
        })
    }
}

/// Volumes exist on this machine only.
pub const CARGOHOLD_VOLUME_SCOPE_LOCAL: u32 = 0;
/// Volumes are the same on every machine (network storage).
pub const CARGOHOLD_VOLUME_SCOPE_GLOBAL: u32 = 1;

/// `*out_scope` receives the scope of the store's volumes
/// (`CARGOHOLD_VOLUME_SCOPE_LOCAL` for this local driver), as the volume plugin API's
/// `Capabilities` reports it.
///
/// # Safety
/// `out_scope` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_volume_capabilities(
    store: *const cargohold_volume_store,
    out_scope: *mut u32,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let s = volume_store(store)?;
            strings::out_ptr(out_scope, "out_scope")?;
            let scope = match Driver::capabilities(s).scope {
                Scope::Local => CARGOHOLD_VOLUME_SCOPE_LOCAL,
                Scope::Global => CARGOHOLD_VOLUME_SCOPE_GLOBAL,
            };
            strings::put(out_scope, scope);
            Ok(())
        })
    }
}
