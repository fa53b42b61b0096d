//! The Python extension module `cargohold._cargohold`.
use pyo3::prelude::*;

/// The native part of the `cargohold` package.
#[pymodule]
fn _cargohold(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
