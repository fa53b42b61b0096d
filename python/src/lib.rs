//! The native module `cargohold._cargohold`; the Python package `cargohold` re-exports
//! it. pyo3 stays here: the tier crates know nothing of Python.
//!
//! Rules every binding keeps:
//! - every storage call runs with the GIL released (`exceptions::detached`); Python
//!   file objects are read and written through adapters that take the GIL only for
//!   each `.read(n)` / `.write(b)` call (`streams`);
//! - every failure is the exception of its `ErrorKind` (a subclass of
//!   `cargohold.Error`); an exception raised by a caller's file object or callback is
//!   re-raised as it was, not wrapped;
//! - wrong argument types are `TypeError`, a closed store is `ValueError` (as for a
//!   closed Python file).

mod blobs;
mod exceptions;
mod handle;
mod layers;
mod registry;
mod streams;
mod transfers;
mod volumes;

use cargohold_core::{Algorithm, Digest};
use pyo3::prelude::*;

pub use exceptions::to_py;

/// The digest (`sha256:...` by default, or `sha512:...`) of a bytes-like object.
#[pyfunction]
#[pyo3(signature = (data, algorithm = "sha256"))]
fn digest_bytes(py: Python<'_>, data: &[u8], algorithm: &str) -> PyResult<String> {
    let alg = Algorithm::parse(algorithm).map_err(|e| to_py(py, e))?;
    Ok(py.detach(|| Digest::of(alg, data).to_string()))
}

/// Validate a digest string and return it in canonical form; raises InvalidArgument
/// or Unsupported otherwise.
#[pyfunction]
fn parse_digest(py: Python<'_>, digest: &str) -> PyResult<String> {
    Digest::parse(digest)
        .map(|d| d.to_string())
        .map_err(|e| to_py(py, e))
}

/// The native part of the `cargohold` package.
#[pymodule]
fn _cargohold(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    exceptions::register(m)?;
    m.add_function(wrap_pyfunction!(digest_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(parse_digest, m)?)?;
    layers::register(m)?;
    volumes::register(m)?;
    registry::register(m)?;
    Ok(())
}
