//! Strings and byte buffers across the boundary: borrowed NUL-terminated UTF-8 in,
//! caller-freed allocations out (`cargohold_string_free`, `cargohold_bytes_free`).

use std::ffi::{CStr, CString, c_char};

use cargohold_core::{Digest, Error, ErrorKind, Result};

fn invalid(what: &str, why: &str) -> Error {
    Error::new(ErrorKind::InvalidArgument, "argument", what, why)
}

/// Borrow the required string argument `p`.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn required<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    // SAFETY: forwarded contract.
    unsafe { optional(p, what) }?.ok_or_else(|| invalid(what, "NULL string"))
}

/// Borrow the nullable string argument `p` (`None` for NULL).
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the call.
pub(crate) unsafe fn optional<'a>(p: *const c_char, what: &str) -> Result<Option<&'a str>> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL `p` is NUL-terminated and valid for the call (the contract).
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map(Some)
        .map_err(|_| invalid(what, "not valid UTF-8"))
}

/// Parse the required digest argument `p`.
///
/// # Safety
/// As [`required`].
pub(crate) unsafe fn digest(p: *const c_char, what: &str) -> Result<Digest> {
    // SAFETY: forwarded contract.
    let s = unsafe { required(p, what) }?;
    Digest::parse(s).map_err(|e| e.with_kind(ErrorKind::InvalidArgument))
}

/// Parse the nullable digest argument `p`.
///
/// # Safety
/// As [`optional`].
pub(crate) unsafe fn optional_digest(p: *const c_char, what: &str) -> Result<Option<Digest>> {
    // SAFETY: forwarded contract.
    match unsafe { optional(p, what) }? {
        None => Ok(None),
        Some(s) => Digest::parse(s)
            .map(Some)
            .map_err(|e| e.with_kind(ErrorKind::InvalidArgument)),
    }
}

/// A string for C, owned by the caller until `cargohold_string_free`.
pub(crate) fn to_c(s: impl Into<Vec<u8>>, what: &str) -> Result<*mut c_char> {
    CString::new(s)
        .map(CString::into_raw)
        .map_err(|_| Error::new(ErrorKind::Corrupt, "string", what, "contains a NUL byte"))
}

/// Check that the out-param `out` is not NULL (before any work is done).
pub(crate) fn out_ptr<T>(out: *mut T, what: &str) -> Result<()> {
    if out.is_null() {
        return Err(invalid(what, "NULL out-param"));
    }
    Ok(())
}

/// Write `value` through the out-param `out` when it is not NULL.
///
/// # Safety
/// `out` is NULL or points to writable storage for one `T`.
pub(crate) unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: non-NULL `out` is writable (the contract).
        unsafe { out.write(value) };
    }
}

/// Serialize `value` as a JSON string for C.
pub(crate) fn json(value: &serde_json::Value) -> Result<*mut c_char> {
    to_c(value.to_string(), "json")
}

/// Free a string returned by cargohold. NULL is ignored.
///
/// # Safety
/// `s` is NULL or a string returned by a cargohold function and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_string_free(s: *mut c_char) {
    if !s.is_null() {
        // SAFETY: `s` came from `CString::into_raw` in `to_c` (the contract).
        drop(unsafe { CString::from_raw(s) });
    }
}

/// A byte buffer for C: pointer and length, owned by the caller until
/// `cargohold_bytes_free(ptr, len)`.
pub(crate) fn bytes_to_c(v: Vec<u8>) -> (*mut u8, usize) {
    let b = v.into_boxed_slice();
    let len = b.len();
    (Box::into_raw(b).cast::<u8>(), len)
}

/// Free a byte buffer returned by cargohold, with the length it was returned with.
/// NULL is ignored.
///
/// # Safety
/// `data` is NULL or a buffer returned by a cargohold function with exactly `len`
/// bytes, not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_bytes_free(data: *mut u8, len: usize) {
    if !data.is_null() {
        let slice = std::ptr::slice_from_raw_parts_mut(data, len);
        // SAFETY: `data`/`len` came from `bytes_to_c` (a boxed slice) by contract.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// Borrow the buffer argument `data`/`len`; `len` 0 accepts NULL.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes valid for the call.
pub(crate) unsafe fn buffer<'a>(data: *const u8, len: usize, what: &str) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(invalid(what, "NULL buffer with a non-zero length"));
    }
    // SAFETY: non-NULL `data` has `len` readable bytes (the contract).
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}
