//! Status codes and error objects.

use std::ffi::{CString, c_char};

use cargohold_core::{Error, ErrorKind};

/// The outcome of a call. `CARGOHOLD_STATUS_OK` is zero; every other value names one
/// error kind, in the order of the shared `ErrorKind`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum cargohold_status {
    /// Success.
    Ok = 0,
    /// The named object does not exist.
    NotFound = 1,
    /// An object with that name exists already.
    AlreadyExists = 2,
    /// Malformed input: a bad name, digest, option, pointer or size.
    InvalidArgument = 3,
    /// Content did not hash to its digest.
    DigestMismatch = 4,
    /// A path tried to leave its root.
    PathEscape = 5,
    /// The object is in use.
    InUse = 6,
    /// Stored state is damaged.
    Corrupt = 7,
    /// Not supported by this driver, kernel or filesystem.
    Unsupported = 8,
    /// A concurrent change won.
    Conflict = 9,
    /// A size or count limit was exceeded.
    LimitExceeded = 10,
    /// Permission denied.
    PermissionDenied = 11,
    /// Other input/output failure.
    Io = 12,
    /// A bug: cargohold panicked; the call had no effect it could vouch for.
    Panic = 13,
}

impl From<ErrorKind> for cargohold_status {
    fn from(kind: ErrorKind) -> Self {
        match kind {
            ErrorKind::NotFound => cargohold_status::NotFound,
            ErrorKind::AlreadyExists => cargohold_status::AlreadyExists,
            ErrorKind::InvalidArgument => cargohold_status::InvalidArgument,
            ErrorKind::DigestMismatch => cargohold_status::DigestMismatch,
            ErrorKind::PathEscape => cargohold_status::PathEscape,
            ErrorKind::InUse => cargohold_status::InUse,
            ErrorKind::Corrupt => cargohold_status::Corrupt,
            ErrorKind::Unsupported => cargohold_status::Unsupported,
            ErrorKind::Conflict => cargohold_status::Conflict,
            ErrorKind::LimitExceeded => cargohold_status::LimitExceeded,
            ErrorKind::PermissionDenied => cargohold_status::PermissionDenied,
            _ => cargohold_status::Io,
        }
    }
}

/// Details of a failed call: its status and a message. Owned by the caller, released
/// with `cargohold_error_free`. Immutable, so it may be read from any thread.
#[derive(Debug)]
#[allow(non_camel_case_types)]
pub struct cargohold_error {
    status: cargohold_status,
    kind: &'static str,
    message: CString,
}

impl cargohold_error {
    pub(crate) fn from_error(err: &Error) -> Box<cargohold_error> {
        Box::new(cargohold_error {
            status: err.kind().into(),
            kind: err.kind().as_str(),
            message: lossless_cstring(err.to_string()),
        })
    }

    pub(crate) fn new(
        status: cargohold_status,
        kind: &'static str,
        message: String,
    ) -> Box<cargohold_error> {
        Box::new(cargohold_error {
            status,
            kind,
            message: lossless_cstring(message),
        })
    }
}

/// A C string of `s`, with interior NULs replaced so nothing is cut off silently.
fn lossless_cstring(s: String) -> CString {
    CString::new(s.replace('\0', "\\0")).expect("NULs were replaced")
}

/// Release an error object. NULL is ignored.
///
/// # Safety
/// `err` is NULL or a pointer returned by cargohold and not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_error_free(err: *mut cargohold_error) {
    if !err.is_null() {
        // SAFETY: the caller passes a pointer that came from Box::into_raw in this
        // library and has not been freed (the documented contract).
        drop(unsafe { Box::from_raw(err) });
    }
}

/// The status of an error object (`CARGOHOLD_STATUS_INVALID_ARGUMENT` for NULL).
///
/// # Safety
/// `err` is NULL or a live error object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_error_status(err: *const cargohold_error) -> cargohold_status {
    // SAFETY: NULL or a live object, per the contract.
    match unsafe { err.as_ref() } {
        Some(e) => e.status,
        None => cargohold_status::InvalidArgument,
    }
}

/// The message of an error object, valid until the object is freed; NULL for NULL.
///
/// # Safety
/// `err` is NULL or a live error object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_error_message(err: *const cargohold_error) -> *const c_char {
    // SAFETY: NULL or a live object, per the contract.
    match unsafe { err.as_ref() } {
        Some(e) => e.message.as_ptr(),
        None => std::ptr::null(),
    }
}

/// The stable lower-case name of an error object's kind (`"not_found"`, ...), static.
///
/// # Safety
/// `err` is NULL or a live error object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cargohold_error_kind_name(err: *const cargohold_error) -> *const c_char {
    // SAFETY: NULL or a live object, per the contract.
    let kind = match unsafe { err.as_ref() } {
        Some(e) => e.kind,
        None => return std::ptr::null(),
    };
    static_name(kind)
}

fn static_name(kind: &str) -> *const c_char {
    macro_rules! names {
        ($($s:literal),*) => {
            match kind {
                $($s => concat!($s, "\0").as_ptr().cast(),)*
                _ => c"io".as_ptr(),
            }
        };
    }
    names!(
        "not_found",
        "already_exists",
        "invalid_argument",
        "digest_mismatch",
        "path_escape",
        "in_use",
        "corrupt",
        "unsupported",
        "conflict",
        "limit_exceeded",
        "permission_denied",
        "io",
        "panic"
    )
}

/// The stable lower-case name of a status (`"ok"`, `"not_found"`, ...), static.
#[unsafe(no_mangle)]
pub extern "C" fn cargohold_status_name(status: cargohold_status) -> *const c_char {
    match status {
        cargohold_status::Ok => c"ok".as_ptr(),
        cargohold_status::Panic => c"panic".as_ptr(),
        other => {
            let kind = ErrorKind::ALL
                .iter()
                .find(|k| cargohold_status::from(**k) == other)
                .map(|k| k.as_str())
                .unwrap_or("io");
            static_name(kind)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_status() {
        let mut seen: Vec<i32> = ErrorKind::ALL
            .iter()
            .map(|k| cargohold_status::from(*k) as i32)
            .collect();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), ErrorKind::ALL.len());
        assert!(!seen.contains(&0));
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(
                cargohold_status::from(*k) as usize,
                i + 1,
                "{k:?} follows the kind order"
            );
        }
    }

    #[test]
    fn error_objects_carry_status_kind_and_message() {
        let err = Error::new(
            ErrorKind::DigestMismatch,
            "commit",
            "sha256:00",
            "bad\0bytes",
        );
        let obj = Box::into_raw(cargohold_error::from_error(&err));
        // SAFETY: obj is a live object made just above; freed once at the end.
        unsafe {
            assert_eq!(
                cargohold_error_status(obj),
                cargohold_status::DigestMismatch
            );
            let name = std::ffi::CStr::from_ptr(cargohold_error_kind_name(obj));
            assert_eq!(name.to_str().unwrap(), "digest_mismatch");
            let msg = std::ffi::CStr::from_ptr(cargohold_error_message(obj))
                .to_str()
                .unwrap();
            assert!(msg.contains("sha256:00") && msg.contains("bytes"));
            cargohold_error_free(obj);
            assert_eq!(
                cargohold_error_status(std::ptr::null()),
                cargohold_status::InvalidArgument
            );
            assert!(cargohold_error_message(std::ptr::null()).is_null());
            cargohold_error_free(std::ptr::null_mut());
        }
        let n = unsafe_free_name(cargohold_status_name(cargohold_status::InUse));
        assert_eq!(n, "in_use");
    }

    fn unsafe_free_name(p: *const c_char) -> String {
        // SAFETY: status names are static NUL-terminated strings.
        unsafe { std::ffi::CStr::from_ptr(p) }
            .to_str()
            .unwrap()
            .to_owned()
    }
}
