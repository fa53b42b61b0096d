//! Blobs from Python: descriptors, streaming readers and resumable uploads.

use std::io::Read;
use std::sync::Mutex;

use cargohold_core::Error;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::exceptions::{detached, digest_arg};
use crate::streams::Source;

/// An OCI content descriptor: media type, digest and size.
#[pyclass(module = "cargohold._cargohold", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Descriptor {
    /// The media type.
    #[pyo3(get)]
    media_type: String,
    /// The digest (``sha256:...``).
    #[pyo3(get)]
    digest: String,
    /// The size in bytes.
    #[pyo3(get)]
    size: u64,
}

#[pymethods]
impl Descriptor {
    fn __repr__(&self) -> String {
        format!("Descriptor(digest={:?}, size={})", self.digest, self.size)
    }
}

impl From<regstore::Descriptor> for Descriptor {
    fn from(d: regstore::Descriptor) -> Descriptor {
        Descriptor {
            media_type: d.media_type,
            digest: d.digest.to_string(),
            size: d.size,
        }
    }
}

/// A binary stream over one blob (or a range of it), from ``Registry.open_blob``.
/// Ranged reads are not verified against the digest; use ``read_blob`` for that.
#[pyclass(module = "cargohold._cargohold", frozen)]
pub struct BlobReader {
    reader: Mutex<Option<Box<dyn Read + Send>>>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader").finish_non_exhaustive()
    }
}

impl BlobReader {
    pub fn new(reader: Box<dyn Read + Send>) -> BlobReader {
        BlobReader {
            reader: Mutex::new(Some(reader)),
        }
    }
}

#[pymethods]
impl BlobReader {
    /// Up to ``size`` bytes (everything left when ``size`` is negative); ``b""`` at the
    /// end.
    #[pyo3(signature = (size = -1))]
    fn read<'py>(&self, py: Python<'py>, size: i64) -> PyResult<Bound<'py, PyBytes>> {
        let reader = &self.reader;
        let data = py.detach(move || -> PyResult<Vec<u8>> {
            let mut guard = reader.lock().unwrap_or_else(|p| p.into_inner());
            let r = guard
                .as_mut()
                .ok_or_else(|| PyValueError::new_err("read from a closed BlobReader"))?;
            let mut buf = Vec::new();
            let res = if size < 0 {
                r.read_to_end(&mut buf).map(drop)
            } else {
                r.take(size as u64).read_to_end(&mut buf).map(drop)
            };
            res.map(|()| buf).map_err(|e| {
                Python::attach(|py| {
                    crate::to_py(py, cargohold_core::error::from_io_error("read blob", "", e))
                })
            })
        })?;
        Ok(PyBytes::new(py, &data))
    }

    /// Always True.
    fn readable(&self) -> bool {
        true
    }

    /// Stop reading; later reads raise ValueError.
    fn close(&self) {
        self.reader.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.reader
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close();
        false
    }
}

/// A resumable blob upload into one repository, from ``Registry.start_upload`` or
/// ``Registry.resume_upload``. Chunks are appended in order; ``commit`` checks the
/// digest (DigestMismatch: nothing is kept); ``cancel`` drops it.
#[pyclass(module = "cargohold._cargohold", frozen)]
#[derive(Debug)]
pub struct Upload {
    up: regstore::Upload,
    repo: String,
}

impl Upload {
    pub fn new(up: regstore::Upload, repo: &str) -> Upload {
        Upload {
            up,
            repo: repo.to_owned(),
        }
    }
}

/// Append all of `source` to `up` at its current size; returns the new size.
pub fn append_source(py: Python<'_>, up: &regstore::Upload, source: Source) -> PyResult<u64> {
    let (result, failure) = py.detach(move || {
        let (r, failure) = match source.into_reader("upload") {
            Ok(x) => x,
            Err(e) => return (Err(e), Default::default()),
        };
        let r = up.status().and_then(|s| up.append(s.offset, r));
        (r, failure)
    });
    result.map_err(|e: Error| failure.raise(py, e))
}

#[pymethods]
impl Upload {
    /// The upload's id (resume it elsewhere with ``Registry.resume_upload``).
    #[getter]
    fn id(&self) -> &str {
        self.up.id()
    }

    /// The repository it uploads into.
    #[getter]
    fn repo(&self) -> &str {
        &self.repo
    }

    /// Bytes received so far.
    #[getter]
    fn offset(&self, py: Python<'_>) -> PyResult<u64> {
        let up = &self.up;
        detached(py, move || up.status().map(|s| s.offset))
    }

    /// Append a chunk (bytes, a path or a binary file object); returns the new size.
    fn append(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<u64> {
        let source = Source::from_py(data, "data")?;
        append_source(py, &self.up, source)
    }

    /// The sha256 of the bytes received so far.
    fn digest(&self, py: Python<'_>) -> PyResult<String> {
        let up = &self.up;
        detached(py, move || up.digest()).map(|d| d.to_string())
    }

    /// Finish as the blob ``digest`` (and ``size`` when given) and return its
    /// descriptor. DigestMismatch when the bytes do not hash to it (the upload is
    /// removed: nothing is kept).
    #[pyo3(signature = (digest, size = None))]
    fn commit(&self, py: Python<'_>, digest: &str, size: Option<u64>) -> PyResult<Descriptor> {
        let d = digest_arg(py, digest)?;
        let up = &self.up;
        detached(py, move || up.commit(&d, size)).map(Descriptor::from)
    }

    /// Drop the upload and what it received.
    fn cancel(&self, py: Python<'_>) -> PyResult<()> {
        let up = &self.up;
        detached(py, move || up.cancel())
    }

    fn __repr__(&self) -> String {
        format!("Upload(repo={:?}, id={:?})", self.repo, self.up.id())
    }
}
