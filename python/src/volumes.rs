//! `cargohold.VolumeStore`: named volumes with the local driver (the volstore tier).

use std::collections::BTreeMap;
use std::path::PathBuf;

use cargohold_core::ErrorKind;
use pyo3::prelude::*;
use pyo3::types::PyIterator;
use volstore::local::{CreateRequest, VolumeInfo};
use volstore::{Driver, LocalDriver, Options};

use crate::exceptions::{detached, to_py};
use crate::handle::Handle;
use crate::streams::{Sink, Source};

/// A volume as the store describes it.
#[pyclass(module = "cargohold._cargohold", frozen)]
#[derive(Debug, Clone)]
pub struct Volume {
    /// The volume's name.
    #[pyo3(get)]
    name: String,
    /// Where its content is (mounted there while held, for volumes with options).
    #[pyo3(get)]
    mountpoint: PathBuf,
    /// Creation time, RFC 3339 in UTC.
    #[pyo3(get)]
    created_at: String,
    /// Labels given at creation.
    #[pyo3(get)]
    labels: BTreeMap<String, String>,
    /// Driver options given at creation (type, device, o, size).
    #[pyo3(get)]
    options: BTreeMap<String, String>,
    /// Whether it was created without a name.
    #[pyo3(get)]
    anonymous: bool,
    /// The mount ids holding it.
    #[pyo3(get)]
    holders: Vec<String>,
}

#[pymethods]
impl Volume {
    fn __repr__(&self) -> String {
        format!("Volume({:?})", self.name)
    }
}

impl From<VolumeInfo> for Volume {
    fn from(v: VolumeInfo) -> Volume {
        Volume {
            name: v.name,
            mountpoint: v.mountpoint,
            created_at: v.created_at,
            labels: v.labels,
            options: v.options,
            anonymous: v.anonymous,
            holders: v.holders,
        }
    }
}

/// What ``VolumeStore.prune`` removed.
#[pyclass(module = "cargohold._cargohold", frozen)]
#[derive(Debug, Clone)]
pub struct PruneReport {
    /// The names of the volumes removed, sorted.
    #[pyo3(get)]
    removed: Vec<String>,
    /// Disk space their content used, in bytes.
    #[pyo3(get)]
    bytes: u64,
}

#[pymethods]
impl PruneReport {
    fn __repr__(&self) -> String {
        format!(
            "PruneReport(removed={:?}, bytes={})",
            self.removed, self.bytes
        )
    }
}

/// Named volumes in one directory, in Docker's local-driver layout, shared safely by
/// several processes.
///
/// Names are Docker's (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``): anything else is
/// InvalidArgument. A volume held by a mount id (``mount``) cannot be removed (InUse)
/// until every holder called ``unmount``. Every call releases the GIL. Use as a context
/// manager, or call ``close()``.
#[pyclass(module = "cargohold._cargohold", frozen)]
#[derive(Debug)]
pub struct VolumeStore {
    store: Handle<LocalDriver>,
    root: PathBuf,
}

#[pymethods]
impl VolumeStore {
    #[new]
    fn new(py: Python<'_>, root: PathBuf) -> PyResult<VolumeStore> {
        let r = root.clone();
        let store = detached(py, move || LocalDriver::open(&r))?;
        Ok(VolumeStore {
            store: Handle::new(store, "VolumeStore"),
            root,
        })
    }

    /// The store's directory.
    #[getter]
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// Create a volume (anonymous, with a generated name, when ``name`` is None) and
    /// return it. Creating an existing name with the same options returns it unchanged;
    /// with other options it is AlreadyExists. Unknown options are InvalidArgument.
    #[pyo3(signature = (name = None, options = None, labels = None))]
    fn create(
        &self,
        py: Python<'_>,
        name: Option<&str>,
        options: Option<Options>,
        labels: Option<BTreeMap<String, String>>,
    ) -> PyResult<Volume> {
        let store = self.store.get()?;
        let req = CreateRequest {
            options: options.unwrap_or_default(),
            labels: labels.unwrap_or_default(),
        };
        detached(py, move || store.create_volume(name, &req)).map(Volume::from)
    }

    /// The volume ``name``; NotFound if absent.
    fn get(&self, py: Python<'_>, name: &str) -> PyResult<Volume> {
        let store = self.store.get()?;
        detached(py, move || store.inspect(name)).map(Volume::from)
    }

    /// Every volume, sorted by name.
    fn list(&self, py: Python<'_>) -> PyResult<Vec<Volume>> {
        let store = self.store.get()?;
        detached(py, move || {
            let mut out = Vec::new();
            for name in store.names()? {
                match store.inspect(&name) {
                    Ok(v) => out.push(Volume::from(v)),
                    // Removed since the listing: not a volume any more.
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        })
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        let all = self.list(py)?;
        pyo3::types::PyList::new(py, all)?.try_iter()
    }

    fn __contains__(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        let store = self.store.get()?;
        match py.detach(move || store.inspect(name)) {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidArgument) => {
                Ok(false)
            }
            Err(e) => Err(to_py(py, e)),
        }
    }

    /// Remove the volume ``name`` and its content. InUse while it has holders, unless
    /// ``force`` (which unmounts it first); NotFound if absent.
    #[pyo3(signature = (name, force = false))]
    fn remove(&self, py: Python<'_>, name: &str, force: bool) -> PyResult<()> {
        let store = self.store.get()?;
        detached(py, move || store.remove_volume(name, force))
    }

    /// Hold the volume for the mount id ``id`` (mounting it if it has options) and
    /// return where its content is. Idempotent per id.
    fn mount(&self, py: Python<'_>, name: &str, id: &str) -> PyResult<PathBuf> {
        let store = self.store.get()?;
        detached(py, move || Driver::mount(&*store, name, id))
    }

    /// Release the hold of ``id``; the last holder unmounts. InvalidArgument if ``id``
    /// does not hold the volume.
    fn unmount(&self, py: Python<'_>, name: &str, id: &str) -> PyResult<()> {
        let store = self.store.get()?;
        detached(py, move || Driver::unmount(&*store, name, id))
    }

    /// Copy the directory ``src`` into the volume the first time (only if it is empty
    /// and never populated), keeping owners, modes, xattrs, times and hardlinks.
    /// Returns whether it copied.
    fn populate(&self, py: Python<'_>, name: &str, src: PathBuf) -> PyResult<bool> {
        let store = self.store.get()?;
        detached(py, move || store.populate(name, &src))
    }

    /// Write the volume's content as a tar to ``file`` (a path or a binary file
    /// object).
    fn export(&self, py: Python<'_>, name: &str, file: &Bound<'_, PyAny>) -> PyResult<()> {
        let sink = Sink::from_py(file, "file")?;
        let store = self.store.get()?;
        let (result, failure) = py.detach(move || {
            let (mut out, failure) = match sink.open("export volume") {
                Ok(x) => x,
                Err(e) => return (Err(e), Default::default()),
            };
            let r = store
                .export(name, &mut out)
                .and_then(|()| out.finish("export volume"));
            (r, failure)
        });
        result.map_err(|e| failure.raise(py, e))
    }

    /// Restore a tar (plain, gzip or zstd; bytes, a path or a binary file object) into
    /// the empty volume ``name``. Conflict if the volume is not empty; a bad tar
    /// (PathEscape, Corrupt, ...) leaves it empty.
    fn import_(&self, py: Python<'_>, name: &str, file: &Bound<'_, PyAny>) -> PyResult<()> {
        let source = Source::from_py(file, "file")?;
        let store = self.store.get()?;
        let (result, failure) = py.detach(move || {
            let (r, failure) = match source.into_reader("import volume") {
                Ok(x) => x,
                Err(e) => return (Err(e), Default::default()),
            };
            (store.import(name, r), failure)
        });
        result.map_err(|e| failure.raise(py, e))
    }

    /// The same as ``import_``.
    fn restore(&self, py: Python<'_>, name: &str, file: &Bound<'_, PyAny>) -> PyResult<()> {
        self.import_(py, name, file)
    }

    /// Remove volumes nobody holds: anonymous ones, or every one with ``all``.
    #[pyo3(signature = (all = false))]
    fn prune(&self, py: Python<'_>, all: bool) -> PyResult<PruneReport> {
        let store = self.store.get()?;
        let r = detached(py, move || store.prune(all))?;
        Ok(PruneReport {
            removed: r.removed,
            bytes: r.bytes,
        })
    }

    /// Release the store; later calls raise ValueError.
    fn close(&self, py: Python<'_>) {
        let store = self.store.close();
        py.detach(move || drop(store));
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.store.is_closed()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        format!("VolumeStore({:?})", self.root.display().to_string())
    }
}

/// Add the volume classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<VolumeStore>()?;
    m.add_class::<Volume>()?;
    m.add_class::<PruneReport>()?;
    Ok(())
}
