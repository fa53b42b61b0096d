//! Resumable blob uploads over C. An upload is named by its repository and id, not by a
//! handle: it lives in the store, so another call, thread or process (or a registry:2
//! serving the same root) can append to it, commit it or cancel it.

use std::ffi::{c_char, c_int, c_void};
use std::io::Read;

use cargohold_core::Result;
use regstore::Registry;

use crate::boundary::call;
use crate::error::{cargohold_error, cargohold_status};
use crate::registry::{cargohold_registry, registry};
use crate::streams::{CallbackStream, FdStream, cargohold_read_fn};
use crate::strings;

/// Start an upload into `repo`; `*out_id` receives its id (free with
/// `cargohold_string_free`). Nothing is visible in the repository until the commit.
///
/// # Safety
/// `repo` is NUL-terminated; `out_id` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_upload_start(
    reg: *const cargohold_registry,
    repo: *const c_char,
    out_id: *mut *mut c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let repo = strings::required(repo, "repo")?;
            strings::out_ptr(out_id, "out_id")?;
            let up = r.start_upload(repo)?;
            match strings::to_c(up.id(), "upload id") {
                Ok(id) => {
                    strings::put(out_id, id);
                    Ok(())
                }
                Err(e) => {
                    let _ = up.cancel(); // the caller could never name it
                    Err(e)
                }
            }
        })
    }
}

/// `*out_offset` receives how many bytes the upload `id` of `repo` holds: the offset
/// its next chunk must start at. `NOT_FOUND` for an unknown (or finished) upload.
///
/// # Safety
/// Strings are NUL-terminated; `out_offset` is writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_upload_offset(
    reg: *const cargohold_registry,
    repo: *const c_char,
    id: *const c_char,
    out_offset: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let (repo, id) = (
                strings::required(repo, "repo")?,
                strings::required(id, "id")?,
            );
            strings::out_ptr(out_offset, "out_offset")?;
            let offset = r.resume_upload(repo, id)?.status()?.offset;
            strings::put(out_offset, offset);
            Ok(())
        })
    }
}

fn append(r: &Registry, repo: &str, id: &str, offset: u64, chunk: impl Read) -> Result<u64> {
    r.resume_upload(repo, id)?.append(offset, chunk)
}

/// Append the chunk read from `fd` (to its end; left open) to the upload `id` of
/// `repo`. The chunk must start at `offset`, the upload's current size (`CONFLICT`
/// otherwise, nothing appended). `*out_offset` (when not NULL) receives the new size.
///
/// # Safety
/// Strings are NUL-terminated; `fd` is open; `out_offset` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_upload_append_fd(
    reg: *const cargohold_registry,
    repo: *const c_char,
    id: *const c_char,
    offset: u64,
    fd: c_int,
    out_offset: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let (repo, id) = (
                strings::required(repo, "repo")?,
                strings::required(id, "id")?,
            );
            let input = FdStream(crate::streams::fd(fd, "fd")?);
            let size = append(r, repo, id, offset, input)?;
            strings::put(out_offset, size);
            Ok(())
        })
    }
}

/// Like `cargohold_upload_append_fd`, reading the chunk through `read(ctx, buf, len)`
/// until it returns 0 (see `cargohold_read_fn`).
///
/// # Safety
/// Strings are NUL-terminated; `read` is callable with `ctx`; `out_offset` is
/// writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_upload_append_read(
    reg: *const cargohold_registry,
    repo: *const c_char,
    id: *const c_char,
    offset: u64,
    read: cargohold_read_fn,
    ctx: *mut c_void,
    out_offset: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let (repo, id) = (
                strings::required(repo, "repo")?,
                strings::required(id, "id")?,
            );
            let input = CallbackStream::new(read, ctx)?;
            let size = append(r, repo, id, offset, input)?;
            strings::put(out_offset, size);
            Ok(())
        })
    }
}

/// Finish the upload `id` of `repo` as the blob `digest` (NULL: the sha256 of what was
/// received). The content must hash to `digest` (`DIGEST_MISMATCH` otherwise, and
/// nothing is kept). `*out_size` (when not NULL) receives the blob's size. The upload
/// is gone afterwards, whatever the outcome.
///
/// # Safety
/// Strings are NUL-terminated or NULL; `out_size` is writable or NULL.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_upload_commit(
    reg: *const cargohold_registry,
    repo: *const c_char,
    id: *const c_char,
    digest: *const c_char,
    out_size: *mut u64,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let (repo, id) = (
                strings::required(repo, "repo")?,
                strings::required(id, "id")?,
            );
            let expected = strings::optional_digest(digest, "digest")?;
            let up = r.resume_upload(repo, id)?;
            let d = match expected {
                Some(d) => d,
                None => up.digest()?,
            };
            let desc = up.commit(&d, None)?;
            strings::put(out_size, desc.size);
            Ok(())
        })
    }
}

/// Cancel the upload `id` of `repo` and remove what it received; `NOT_FOUND` when it
/// does not exist.
///
/// # Safety
/// Strings are NUL-terminated.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_upload_cancel(
    reg: *const cargohold_registry,
    repo: *const c_char,
    id: *const c_char,
    err: *mut *mut cargohold_error,
) -> cargohold_status {
    // SAFETY: the arguments follow the documented contract.
    unsafe {
        call(err, || {
            let r = registry(reg)?;
            let (repo, id) = (
                strings::required(repo, "repo")?,
                strings::required(id, "id")?,
            );
            r.resume_upload(repo, id)?.cancel()
        })
    }
}
