//! The one panic boundary and the one place results become status codes.

use std::panic::{AssertUnwindSafe, catch_unwind};

use cargohold_core::Error;

use crate::error::{cargohold_error, cargohold_status};

/// Run `f` so that no panic crosses into C; turn its result into a status, and on
/// failure hand an error object to `*err_out` when the caller gave a place for it.
///
/// # Safety
/// `err_out` is NULL or points to writable storage for one pointer.
pub(crate) unsafe fn call(
    err_out: *mut *mut cargohold_error,
    f: impl FnOnce() -> Result<(), Error>,
) -> cargohold_status {
    let (status, obj) = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => return cargohold_status::Ok,
        Ok(Err(e)) => (
            cargohold_status::from(e.kind()),
            cargohold_error::from_error(&e),
        ),
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_owned());
            (
                cargohold_status::Panic,
                cargohold_error::new(
                    cargohold_status::Panic,
                    "panic",
                    format!("cargohold panicked: {what}"),
                ),
            )
        }
    };
    if !err_out.is_null() {
        // SAFETY: non-NULL err_out points to writable pointer storage (the contract).
        unsafe { *err_out = Box::into_raw(obj) };
    }
    status
}
