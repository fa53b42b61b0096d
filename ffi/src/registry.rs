//! The registry blob store (the filesystem driver) over C: blobs, manifests, tags and
//! OCI layout import/export.

use std::ffi::{c_char, c_int, c_void};
use std::io::{self, Read};
use std::path::Path;

use cargohold_core::{Digest, Error, ErrorKind, Result};
use regstore::drivers::Filesystem;
use regstore::oci_layout;
use regstore::{Descriptor, Registry};
use serde_json::Value;

use crate::boundary::call;
use crate::error::{cargohold_error, cargohold_status};
use crate::streams::{
    CallbackSink, CallbackStream, FdStream, Progress, ProgressReader, cargohold_progress_fn,
    cargohold_read_fn, cargohold_write_fn,
};
use crate::{handles, strings};

/// A registry: repositories, blobs, manifests and tags stored under one directory in
/// the layout of the distribution registry's filesystem driver.
///
/// Thread safety: the handle is `Send + Sync`; any number of threads may call functions
/// on one handle at once, and several processes may open the same root. Only
/// `cargohold_registry_free` must not run concurrently with another call on it.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct cargohold_registry {
    reg: Registry,
}

pub(crate) unsafe fn registry<'a>(p: *const cargohold_registry) -> Result<&'a Registry> {
    // SAFETY: forwarded contract (no free during the call).
    Ok(&unsafe { handles::borrow(p, "registry") }?.reg)
}

/// Open (creating it when missing) the registry stored at `root`; `*out` receives the
/// handle (free with `cargohold_registry_free`).
///
/// # Safety
/// `root` is NUL-terminated; `out` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_registry_open(
    root: *const c_char,
    out: *mut *mut cargohold_registry,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let root = strings::required(root, "root")?;
            strings::out_ptr(out, "out")?;
            let reg = Registry::open(Filesystem::new(root)?);
            strings::put(out, handles::register(cargohold_registry { reg }));
            Ok(())
        })
    }
}

/// Release a registry handle. NULL is `OK`; a handle already freed is
/// `INVALID_ARGUMENT` and nothing is touched.
///
/// # Safety
/// No other call may be using `reg` at the same time.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_registry_free(reg: *mut cargohold_registry) -> cargohold_status {
    // SAFETY: NULL error out: nothing is written.
    unsafe { call(std::ptr::null_mut(), || handles::release(reg, "registry")) }
}

/// Store the blob read from `reader` through a new upload, cancelled on failure.
fn put_stream(
    r: &Registry,
    repo: &str,
    reader: impl Read,
    expected: Option<Digest>,
) -> Result<Descriptor> {
    let up = r.start_upload(repo)?;
    let stored = (|| {
        up.append(0, reader)?;
        let d = match expected {
            Some(d) => d,
            None => up.digest()?,
        };
        up.commit(&d, None)
    })();
    if stored.is_err() {
        let _ = up.cancel(); // the first error is the one to report
    }
    stored
}

/// Write `desc` through the nullable out-params, allocating before writing anything.
///
/// # Safety
/// The out-params are writable or NULL.
unsafe fn put_descriptor(
    desc: &Descriptor,
    out_digest: *mut *mut c_char,
    out_size: *mut u64,
) -> Result<()> {
    let d = match out_digest.is_null() {
        true => None,
        false => Some(strings::to_c(desc.digest.to_string(), "digest")?),
    };
    // SAFETY: forwarded contract.
    unsafe {
        if let Some(d) = d {
            strings::put(out_digest, d);
        }
        strings::put(out_size, desc.size);
    }
    Ok(())
}

/// Store the blob read from `fd` (to its end; left open) in the repository `repo`.
/// With `expected_digest` (NULL: none) the content must hash to it
/// (`DIGEST_MISMATCH` otherwise, nothing kept). `*out_digest` (when not NULL)
/// receives the blob's digest, `*out_size` (when not NULL) its size.
/// `progress(ctx, done, 0)` (when not NULL) is called with the bytes read so far,
/// every MiB and at the end, from this thread.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `fd` is open; out-params writable or NULL;
/// `progress` is callable with `ctx` or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_blob_put_fd(
    reg: *const cargohold_registry,
    repo: *const c_char,
    fd: c_int,
    expected_digest: *const c_char,
    progress: cargohold_progress_fn,
    ctx: *mut c_void,
    out_digest: *mut *mut c_char,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let input = ProgressReader::new(
                FdStream(crate::streams::fd(fd, "fd")?),
                Progress::new(progress, ctx),
            );
            let expected = strings::optional_digest(expected_digest, "expected_digest")?;
            let desc = put_stream(r, repo, input, expected)?;
            put_descriptor(&desc, out_digest, out_size)
        })
    }
}

/// Like `cargohold_blob_put_fd`, reading the blob through `read(ctx, buf, len)` until
/// it returns 0 (see `cargohold_read_fn`); the callback may be called from a helper
/// thread, never concurrently, never after the return.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `read` is callable with `ctx`; out-params
/// writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_blob_put_read(
    reg: *const cargohold_registry,
    repo: *const c_char,
    read: cargohold_read_fn,
    ctx: *mut c_void,
    expected_digest: *const c_char,
    out_digest: *mut *mut c_char,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let input = CallbackStream::new(read, ctx)?;
            let expected = strings::optional_digest(expected_digest, "expected_digest")?;
            let desc = put_stream(r, repo, input, expected)?;
            put_descriptor(&desc, out_digest, out_size)
        })
    }
}

/// `*out_size` receives the size of the blob `digest` in `repo`; `NOT_FOUND` when the
/// repository does not have it.
///
/// # Safety
/// Strings are NUL-terminated; `out_size` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_blob_stat(
    reg: *const cargohold_registry,
    repo: *const c_char,
    digest: *const c_char,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let d = strings::digest(digest, "digest")?;
            strings::out_ptr(out_size, "out_size")?;
            let desc = r.stat_blob(repo, &d)?;
            strings::put(out_size, desc.size);
            Ok(())
        })
    }
}

/// Write the blob `digest` of `repo` to `fd` (left open), verified against its digest
/// as it streams (`DIGEST_MISMATCH` for content changed on disk, after the bytes were
/// written). `*out_size` (when not NULL) receives the bytes written.
///
/// # Safety
/// Strings are NUL-terminated; `fd` is open; `out_size` writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_blob_read_fd(
    reg: *const cargohold_registry,
    repo: *const c_char,
    digest: *const c_char,
    fd: c_int,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let d = strings::digest(digest, "digest")?;
            let mut out = FdStream(crate::streams::fd(fd, "fd")?);
            let mut reader = r.blob_reader(repo, &d, 0, None)?;
            let n = io::copy(&mut reader, &mut out).map_err(|e| Error::io("blob read", &d, e))?;
            strings::put(out_size, n);
            Ok(())
        })
    }
}

/// Like `cargohold_blob_read_fd`, writing the blob through `write(ctx, buf, len)`
/// (see `cargohold_write_fn`) on this thread. A negative return stops with `IO`.
///
/// # Safety
/// Strings are NUL-terminated; `write` is callable with `ctx`; `out_size` writable
/// or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_blob_read_write(
    reg: *const cargohold_registry,
    repo: *const c_char,
    digest: *const c_char,
    write: cargohold_write_fn,
    ctx: *mut c_void,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let d = strings::digest(digest, "digest")?;
            let mut out = CallbackSink::new(write, ctx)?;
            let mut reader = r.blob_reader(repo, &d, 0, None)?;
            let n = io::copy(&mut reader, &mut out).map_err(|e| Error::io("blob read", &d, e))?;
            strings::put(out_size, n);
            Ok(())
        })
    }
}

/// Store the manifest `data`/`len` in `repo` under `reference` (a tag, or its own
/// digest). `media_type` (NULL: from the JSON) must agree with the content.
/// `*out_digest` (when not NULL) receives its digest. A manifest naming blobs the
/// repository lacks is refused (`NOT_FOUND`); malformed JSON is `INVALID_ARGUMENT`.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `data` has `len` readable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_manifest_put(
    reg: *const cargohold_registry,
    repo: *const c_char,
    reference: *const c_char,
    data: *const u8,
    len: usize,
    media_type: *const c_char,
    out_digest: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let reference = strings::required(reference, "reference")?;
            let bytes = strings::buffer(data, len, "data")?;
            let mt = strings::optional(media_type, "media_type")?;
            let d = r.put_manifest(repo, reference, bytes, mt)?;
            if !out_digest.is_null() {
                strings::put(out_digest, strings::to_c(d.to_string(), "digest")?);
            }
            Ok(())
        })
    }
}

/// Fetch the manifest `reference` (tag or digest) of `repo`: `*out_data`/`*out_len`
/// receive its exact bytes (free with `cargohold_bytes_free(data, len)`),
/// `*out_media_type` (when not NULL) its media type (free with
/// `cargohold_string_free`).
///
/// # Safety
/// Strings are NUL-terminated; out-params writable (`out_media_type` may be NULL).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_manifest_get(
    reg: *const cargohold_registry,
    repo: *const c_char,
    reference: *const c_char,
    out_data: *mut *mut u8,
    out_len: *mut usize,
    out_media_type: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let reference = strings::required(reference, "reference")?;
            strings::out_ptr(out_data, "out_data")?;
            strings::out_ptr(out_len, "out_len")?;
            let m = r.get_manifest(repo, reference)?;
            let mt = match out_media_type.is_null() {
                true => None,
                false => Some(strings::to_c(m.media_type.as_str(), "media type")?),
            };
            let (p, n) = strings::bytes_to_c(m.bytes);
            strings::put(out_data, p);
            strings::put(out_len, n);
            if let Some(mt) = mt {
                strings::put(out_media_type, mt);
            }
            Ok(())
        })
    }
}

/// `*out_json` receives the tags of `repo` as a sorted JSON array of strings.
///
/// # Safety
/// `repo` is NUL-terminated; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_registry_tags(
    reg: *const cargohold_registry,
    repo: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            strings::out_ptr(out_json, "out_json")?;
            let tags = r.tags(repo, None, None)?;
            let v = Value::Array(tags.into_iter().map(Value::String).collect());
            strings::put(out_json, strings::json(&v)?);
            Ok(())
        })
    }
}

/// `*out_json` receives the manifests of `repo` whose `subject` is `subject`, as a JSON
/// array of OCI descriptors (`mediaType`, `digest`, `size`, and `artifactType` and
/// `annotations` when set), only those of `artifact_type` when it is not NULL.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `out_json` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_registry_referrers(
    reg: *const cargohold_registry,
    repo: *const c_char,
    subject: *const c_char,
    artifact_type: *const c_char,
    out_json: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let subject = strings::digest(subject, "subject")?;
            let artifact_type = strings::optional(artifact_type, "artifact_type")?;
            strings::out_ptr(out_json, "out_json")?;
            let found = r.referrers(repo, &subject, artifact_type)?;
            let v = serde_json::to_value(&found).map_err(|e| {
                Error::new(ErrorKind::Corrupt, "referrers", &subject, e.to_string())
            })?;
            strings::put(out_json, strings::json(&v)?);
            Ok(())
        })
    }
}

/// Import the image named `ref_name` (NULL: the only one) from the OCI layout
/// directory `dir` into `repo:tag`, every blob verified. `progress(ctx, done, 0)` (when
/// not NULL) is called on this thread after each blob with the bytes done so far (the
/// total is not known ahead: 0). `*out_digest` (when not NULL) receives the top
/// manifest's digest.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `progress` is callable with `ctx`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_oci_import(
    reg: *const cargohold_registry,
    dir: *const c_char,
    ref_name: *const c_char,
    repo: *const c_char,
    tag: *const c_char,
    progress: cargohold_progress_fn,
    ctx: *mut c_void,
    out_digest: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let dir = strings::required(dir, "dir")?;
            let ref_name = strings::optional(ref_name, "ref_name")?;
            let repo = strings::required(repo, "repo")?;
            let tag = strings::required(tag, "tag")?;
            let mut p = Progress::new(progress, ctx);
            let t = oci_layout::import(r, Path::new(dir), ref_name, repo, tag, &mut |_, n| {
                p.add(n, 0)
            })?;
            if !out_digest.is_null() {
                strings::put(out_digest, strings::to_c(t.digest.to_string(), "digest")?);
            }
            Ok(())
        })
    }
}

/// Export `repo:reference` (tag or digest) into the OCI layout directory `dir`
/// (created when missing; other images in it stay) named `ref_name`. `progress` as for
/// `cargohold_oci_import`.
///
/// # Safety
/// Strings are NUL-terminated; `progress` is callable with `ctx` or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_oci_export(
    reg: *const cargohold_registry,
    repo: *const c_char,
    reference: *const c_char,
    dir: *const c_char,
    ref_name: *const c_char,
    progress: cargohold_progress_fn,
    ctx: *mut c_void,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            let reference = strings::required(reference, "reference")?;
            let dir = strings::required(dir, "dir")?;
            let ref_name = strings::required(ref_name, "ref_name")?;
            let mut p = Progress::new(progress, ctx);
            oci_layout::export(r, repo, reference, Path::new(dir), ref_name, &mut |_, n| {
                p.add(n, 0)
            })?;
            Ok(())
        })
    }
}
