//! `cargohold.LayerStore`: image layers and container snapshots (the layerstore tier).

use std::path::PathBuf;

use cargohold_core::{Digest, Error, ErrorKind};
use layerstore::archive::ChangeKind;
use layerstore::{ApplyOptions, Driver, DriverChoice, Labels};
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList};

use crate::exceptions::{detached, digest_arg, invalid};
use crate::handle::Handle;
use crate::streams::{Sink, Source};

/// A read-only image layer, made by applying an OCI layer tar on a parent.
#[pyclass(module = "cargohold._cargohold", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Layer {
    /// Its id: the chain ID of it and every layer below it (`sha256:...`).
    #[pyo3(get)]
    chain_id: String,
    /// The sha256 of its uncompressed tar.
    #[pyo3(get)]
    diff_id: String,
    /// The chain ID of the layer below, or None.
    #[pyo3(get)]
    parent: Option<String>,
    /// The digest of the compressed tar it was applied from, when known.
    #[pyo3(get)]
    compressed_digest: Option<String>,
    /// Uncompressed tar size in bytes.
    #[pyo3(get)]
    size: u64,
    /// Creation time, seconds since the Unix epoch.
    #[pyo3(get)]
    created: u64,
    /// Whether its files are known to be on disk (False only for a layer applied with
    /// ``defer_sync=True`` until ``LayerStore.sync()``).
    #[pyo3(get)]
    durable: bool,
}

#[pymethods]
impl Layer {
    fn __repr__(&self) -> String {
        format!("Layer(chain_id={:?}, size={})", self.chain_id, self.size)
    }
}

impl From<layerstore::Layer> for Layer {
    fn from(l: layerstore::Layer) -> Layer {
        Layer {
            chain_id: l.chain_id.to_string(),
            diff_id: l.diff_id.to_string(),
            parent: l.parent.map(|p| p.to_string()),
            compressed_digest: l.compressed_digest.map(|d| d.to_string()),
            size: l.size,
            created: l.created,
            durable: l.durable,
        }
    }
}

/// One mount, as data: what `mount -t KIND -o OPTIONS SOURCE TARGET` would be given.
#[pyclass(module = "cargohold._cargohold", frozen, eq)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Filesystem type: "overlay" or "bind".
    #[pyo3(get)]
    kind: String,
    /// Source directory ("overlay" for overlay).
    #[pyo3(get)]
    source: String,
    /// Where to mount it relative to the container root; None for the root itself.
    #[pyo3(get)]
    target: Option<String>,
    /// Mount options.
    #[pyo3(get)]
    options: Vec<String>,
    /// Overlay lower directories, topmost first.
    #[pyo3(get)]
    lowerdirs: Vec<String>,
}

#[pymethods]
impl Mount {
    fn __repr__(&self) -> String {
        format!("Mount(kind={:?}, source={:?})", self.kind, self.source)
    }
}

impl From<layerstore::Mount> for Mount {
    fn from(m: layerstore::Mount) -> Mount {
        let s = |p: PathBuf| p.display().to_string();
        Mount {
            kind: m.kind,
            source: s(m.source),
            target: m.target.map(s),
            options: m.options,
            lowerdirs: m.lowerdirs.into_iter().map(s).collect(),
        }
    }
}

/// One path a container changed against its parent, as `docker diff` prints it.
#[pyclass(module = "cargohold._cargohold", frozen, eq, hash)]
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// "A" (added), "C" (changed) or "D" (deleted).
    #[pyo3(get)]
    kind: String,
    /// The path, relative to the container root.
    #[pyo3(get)]
    path: String,
}

#[pymethods]
impl Change {
    fn __repr__(&self) -> String {
        format!("Change({:?}, {:?})", self.kind, self.path)
    }
}

/// Image layers and writable container layers in one directory, shared safely by
/// several processes.
///
/// ``driver`` is "vfs" (full copies, works anywhere), "overlay" (kernel overlayfs,
/// needs root), "btrfs" (subvolumes; the root must be on btrfs: Unsupported otherwise)
/// or "auto" (the driver the store recorded; for a new store btrfs on btrfs, overlay as
/// root, vfs otherwise). A store records its driver when created and refuses another
/// (InvalidArgument). Every call releases the GIL. Use as a context manager, or call
/// ``close()``; calls on a closed store raise ValueError.
#[pyclass(module = "cargohold._cargohold", frozen)]
#[derive(Debug)]
pub struct LayerStore {
    store: Handle<layerstore::LayerStore>,
    root: PathBuf,
    driver: &'static str,
}

fn choice(py: Python<'_>, driver: &str) -> PyResult<DriverChoice> {
    Ok(match driver {
        "vfs" => DriverChoice::Vfs,
        "overlay" => DriverChoice::Overlay,
        "btrfs" => DriverChoice::Btrfs,
        "auto" => DriverChoice::Auto,
        other => {
            return Err(invalid(
                py,
                "open layer store",
                other,
                "driver is one of auto, vfs, overlay, btrfs",
            ));
        }
    })
}

fn labels_of(labels: Option<Labels>) -> Labels {
    labels.unwrap_or_default()
}

fn parent_arg(py: Python<'_>, parent: Option<&str>) -> PyResult<Option<Digest>> {
    parent.map(|p| digest_arg(py, p)).transpose()
}

#[pymethods]
impl LayerStore {
    #[new]
    #[pyo3(signature = (root, driver = "auto"))]
    fn new(py: Python<'_>, root: PathBuf, driver: &str) -> PyResult<LayerStore> {
        let choice = choice(py, driver)?;
        let r = root.clone();
        let store = detached(py, move || layerstore::LayerStore::open(&r, choice))?;
        let name = store.snapshots().backend().name();
        Ok(LayerStore {
            store: Handle::new(store, "LayerStore"),
            root,
            driver: name,
        })
    }

    /// The store's directory.
    #[getter]
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// The driver in use ("vfs", "overlay" or "btrfs").
    #[getter]
    fn driver(&self) -> &'static str {
        self.driver
    }

    /// Apply an OCI layer tar (plain, gzip or zstd) on top of the layer ``parent`` and
    /// return the layer. ``source`` is bytes, a path, or a binary file object (read in
    /// chunks with ``.read(n)``). The same tar on the same parent returns the existing
    /// layer; with ``diff_id`` known and present, ``source`` is not read at all.
    /// NotFound for a missing parent, DigestMismatch when the tar's diff ID is not
    /// ``diff_id`` (nothing is kept), PathEscape for an entry that leaves the root.
    /// With ``defer_sync=True`` it returns without waiting for the files to reach the
    /// disk: the layer is usable at once, but a store opened after a crash, a reboot or
    /// a new mount drops it unless ``sync()`` (or a durable layer on top) came first.
    #[pyo3(signature = (source, parent = None, diff_id = None, labels = None, defer_sync = false))]
    fn apply_layer(
        &self,
        py: Python<'_>,
        source: &Bound<'_, PyAny>,
        parent: Option<&str>,
        diff_id: Option<&str>,
        labels: Option<Labels>,
        defer_sync: bool,
    ) -> PyResult<Layer> {
        let source = Source::from_py(source, "source")?;
        let parent = parent_arg(py, parent)?;
        let opts = ApplyOptions {
            expected_diff_id: diff_id.map(|d| digest_arg(py, d)).transpose()?,
            expected_compressed_digest: None,
            labels: labels_of(labels),
            defer_sync,
        };
        let store = self.store.get()?;
        let (result, failure) = py.detach(move || {
            let (mut r, failure) = match source.into_reader("apply") {
                Ok(x) => x,
                Err(e) => return (Err(e), Default::default()),
            };
            (store.apply_layer(&mut r, parent.as_ref(), &opts), failure)
        });
        result.map(Layer::from).map_err(|e| failure.raise(py, e))
    }

    /// Make every layer applied with ``defer_sync=True`` durable (one sync of the
    /// store's filesystem); returns their chain IDs.
    fn sync(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let store = self.store.get()?;
        let done = detached(py, move || store.sync())?;
        Ok(done.iter().map(Digest::to_string).collect())
    }

    /// Every layer, in no particular order, as an iterator of Layer.
    fn layers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyIterator>> {
        let store = self.store.get()?;
        let all = detached(py, move || store.layers())?;
        let list = PyList::new(py, all.into_iter().map(Layer::from))?;
        list.try_iter()
    }

    /// The layer with chain ID ``chain_id``; NotFound if absent.
    fn layer(&self, py: Python<'_>, chain_id: &str) -> PyResult<Layer> {
        let d = digest_arg(py, chain_id)?;
        let store = self.store.get()?;
        detached(py, move || store.layer(&d)).map(Layer::from)
    }

    /// Remove the layer ``chain_id``; InUse while a layer or container is on top of it.
    fn remove_layer(&self, py: Python<'_>, chain_id: &str) -> PyResult<()> {
        let d = digest_arg(py, chain_id)?;
        let store = self.store.get()?;
        detached(py, move || store.remove_layer(&d))
    }

    /// Create the writable container layer ``name`` on the layer ``parent`` (empty when
    /// None) and return the mounts that show it. AlreadyExists if the name is taken,
    /// InvalidArgument for an empty name or one with control characters.
    #[pyo3(signature = (name, parent = None, labels = None))]
    fn prepare_container(
        &self,
        py: Python<'_>,
        name: &str,
        parent: Option<&str>,
        labels: Option<Labels>,
    ) -> PyResult<Vec<Mount>> {
        let parent = parent_arg(py, parent)?;
        let store = self.store.get()?;
        let labels = labels_of(labels);
        let mounts = detached(py, move || {
            store.prepare_container(name, parent.as_ref(), labels)
        })?;
        Ok(mounts.into_iter().map(Mount::from).collect())
    }

    /// Remove the container ``name`` and its changes; InUse while it is mounted.
    fn remove_container(&self, py: Python<'_>, name: &str) -> PyResult<()> {
        let store = self.store.get()?;
        detached(py, move || {
            let info = store.stat(name)?;
            if info.kind == layerstore::Kind::Committed {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "remove container",
                    name,
                    "a layer, not a container: use remove_layer",
                ));
            }
            Driver::remove(&*store, name)
        })
    }

    /// Mount the container ``name`` at the existing directory ``target``. A second
    /// mount at the same target shares the first; at another target it is Conflict.
    fn mount(&self, py: Python<'_>, name: &str, target: PathBuf) -> PyResult<()> {
        let store = self.store.get()?;
        detached(py, move || store.mount(name, &target))
    }

    /// Drop one mount at ``target``; the last one unmounts. NotFound if this store
    /// mounted nothing there.
    fn unmount(&self, py: Python<'_>, target: PathBuf) -> PyResult<()> {
        let store = self.store.get()?;
        detached(py, move || store.unmount(&target))
    }

    /// The paths the container ``name`` changed against its parent, sorted by path.
    fn changes(&self, py: Python<'_>, name: &str) -> PyResult<Vec<Change>> {
        let store = self.store.get()?;
        let all = detached(py, move || store.changes(name))?;
        Ok(all
            .into_iter()
            .map(|c| Change {
                kind: match c.kind {
                    ChangeKind::Added => "A",
                    ChangeKind::Modified => "C",
                    ChangeKind::Deleted => "D",
                }
                .to_string(),
                path: c.path.display().to_string(),
            })
            .collect())
    }

    /// Commit the container ``name`` into a new layer and return it; the container is
    /// gone afterwards.
    #[pyo3(signature = (name, labels = None))]
    fn commit_container(
        &self,
        py: Python<'_>,
        name: &str,
        labels: Option<Labels>,
    ) -> PyResult<Layer> {
        let store = self.store.get()?;
        let labels = labels_of(labels);
        detached(py, move || store.commit_container(name, labels)).map(Layer::from)
    }

    /// Write the changes of the container ``name`` as an uncompressed OCI layer tar to
    /// ``file`` (a path or a binary file object); returns ``(diff_id, size)``.
    fn export_diff(
        &self,
        py: Python<'_>,
        name: &str,
        file: &Bound<'_, PyAny>,
    ) -> PyResult<(String, u64)> {
        let sink = Sink::from_py(file, "file")?;
        let store = self.store.get()?;
        let (result, failure) = py.detach(move || {
            let (mut out, failure) = match sink.open("export diff") {
                Ok(x) => x,
                Err(e) => return (Err(e), Default::default()),
            };
            let r = store
                .diff(name, &mut out)
                .and_then(|d| out.finish("export diff").map(|()| d));
            (r, failure)
        });
        result
            .map(|(d, n)| (d.to_string(), n))
            .map_err(|e| failure.raise(py, e))
    }

    /// Release the store; later calls raise ValueError. Calls in flight finish first.
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
        format!(
            "LayerStore({:?}, driver={:?})",
            self.root.display().to_string(),
            self.driver
        )
    }
}

/// Add the layer classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<LayerStore>()?;
    m.add_class::<Layer>()?;
    m.add_class::<Mount>()?;
    m.add_class::<Change>()?;
    Ok(())
}
