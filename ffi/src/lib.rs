//! The C ABI of cargohold (`libcargohold.so`, `libcargohold.a`, `include/cargohold.h`).
//!
//! Conventions (see `docs/c-api.md`): every symbol starts with `cargohold_`; handles are
//! opaque, made by `_open`/`_new` and released by `_free`; every call returns a
//! [`cargohold_status`] whose values map one-to-one to the shared error kind; error
//! details come back as a [`cargohold_error`] object the caller frees (never a
//! thread-local "last error": a goroutine can change OS thread between two cgo calls);
//! out-params are written only on success; a buffer is always followed by its length;
//! every pointer is NULL-checked; no panic crosses the boundary.

mod boundary;
pub mod containers;
pub mod docker_archive;
mod error;
pub mod gc;
mod handles;
pub mod layers;
pub mod registry;
pub mod snapshots;
pub mod streams;
mod strings;
pub mod uploads;
pub mod volumes;

pub use error::{
    cargohold_error, cargohold_error_free, cargohold_error_kind_name, cargohold_error_message,
    cargohold_error_status, cargohold_status, cargohold_status_name,
};
pub use strings::{cargohold_bytes_free, cargohold_string_free};

/// The library version as a static NUL-terminated string (never freed).
#[unsafe(no_mangle)]
pub extern "C" fn cargohold_version() -> *const std::ffi::c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}
