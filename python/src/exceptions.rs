//! The Python exception of every error kind: `cargohold.Error` and one subclass per
//! [`ErrorKind`], each carrying `kind`, `op` and `context`.

use cargohold_core::{Error, ErrorKind};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _cargohold,
    CargoholdError,
    PyException,
    "Base class of every cargohold error."
);
create_exception!(
    _cargohold,
    NotFound,
    CargoholdError,
    "The named object does not exist."
);
create_exception!(
    _cargohold,
    AlreadyExists,
    CargoholdError,
    "An object with that name exists already."
);
create_exception!(
    _cargohold,
    InvalidArgument,
    CargoholdError,
    "Malformed input: a bad name, digest, tag, option or archive."
);
create_exception!(
    _cargohold,
    DigestMismatch,
    CargoholdError,
    "Content did not hash to its digest."
);
create_exception!(
    _cargohold,
    PathEscape,
    CargoholdError,
    "A path tried to leave its root."
);
create_exception!(
    _cargohold,
    InUse,
    CargoholdError,
    "The object is in use (mounted, held, has children)."
);
create_exception!(
    _cargohold,
    Corrupt,
    CargoholdError,
    "Stored state is damaged."
);
create_exception!(
    _cargohold,
    Unsupported,
    CargoholdError,
    "Not supported by this driver, kernel or filesystem."
);
create_exception!(
    _cargohold,
    Conflict,
    CargoholdError,
    "A concurrent change won."
);
create_exception!(
    _cargohold,
    LimitExceeded,
    CargoholdError,
    "A size or count limit was exceeded."
);
create_exception!(
    _cargohold,
    PermissionDenied,
    CargoholdError,
    "The operating system refused the operation."
);
create_exception!(
    _cargohold,
    IoError,
    CargoholdError,
    "Any other input/output failure."
);

/// Turn a cargohold error into the Python exception of its kind, with `kind`, `op` and
/// `context` attributes.
pub fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let msg = err.to_string();
    let pyerr = match err.kind() {
        ErrorKind::NotFound => NotFound::new_err(msg),
        ErrorKind::AlreadyExists => AlreadyExists::new_err(msg),
        ErrorKind::InvalidArgument => InvalidArgument::new_err(msg),
        ErrorKind::DigestMismatch => DigestMismatch::new_err(msg),
        ErrorKind::PathEscape => PathEscape::new_err(msg),
        ErrorKind::InUse => InUse::new_err(msg),
        ErrorKind::Corrupt => Corrupt::new_err(msg),
        ErrorKind::Unsupported => Unsupported::new_err(msg),
        ErrorKind::Conflict => Conflict::new_err(msg),
        ErrorKind::LimitExceeded => LimitExceeded::new_err(msg),
        ErrorKind::PermissionDenied => PermissionDenied::new_err(msg),
        _ => IoError::new_err(msg),
    };
    let value = pyerr.value(py);
    let _ = value.setattr("kind", err.kind().as_str());
    let _ = value.setattr("op", err.op());
    let _ = value.setattr("context", err.context());
    pyerr
}

/// Run `f` (storage work) with the GIL released and turn its error into the exception of
/// its kind.
pub fn detached<T, F>(py: Python<'_>, f: F) -> PyResult<T>
where
    F: Send + FnOnce() -> cargohold_core::Result<T>,
    T: Send,
{
    py.detach(f).map_err(|e| to_py(py, e))
}

/// Parse a digest argument; `InvalidArgument` (or `Unsupported`) when malformed.
pub fn digest_arg(py: Python<'_>, s: &str) -> PyResult<cargohold_core::Digest> {
    cargohold_core::Digest::parse(s).map_err(|e| to_py(py, e))
}

/// An `InvalidArgument` exception raised by the bindings themselves.
pub fn invalid(py: Python<'_>, op: &'static str, context: &str, detail: &str) -> PyErr {
    to_py(
        py,
        Error::new(ErrorKind::InvalidArgument, op, context, detail),
    )
}

/// Add the exception classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<CargoholdError>())?;
    m.add("NotFound", py.get_type::<NotFound>())?;
    m.add("AlreadyExists", py.get_type::<AlreadyExists>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("DigestMismatch", py.get_type::<DigestMismatch>())?;
    m.add("PathEscape", py.get_type::<PathEscape>())?;
    m.add("InUse", py.get_type::<InUse>())?;
    m.add("Corrupt", py.get_type::<Corrupt>())?;
    m.add("Unsupported", py.get_type::<Unsupported>())?;
    m.add("Conflict", py.get_type::<Conflict>())?;
    m.add("LimitExceeded", py.get_type::<LimitExceeded>())?;
    m.add("PermissionDenied", py.get_type::<PermissionDenied>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    Ok(())
}
