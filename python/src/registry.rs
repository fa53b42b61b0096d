//! `cargohold.Registry`: blobs, uploads, manifests and tags in registry:2's on-disk
//! layout (the regstore tier).

use std::path::PathBuf;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use pyo3::types::PyString;
use regstore::drivers::filesystem::Filesystem;
use regstore::drivers::{Location, SCHEMES, open_location};

use crate::blobs::{BlobReader, Descriptor, Upload, append_source};
use crate::exceptions::{detached, digest_arg};
use crate::handle::Handle;
use crate::streams::Source;
use crate::transfers::{Progress, Transfer, layout_total, registry_total};

/// Images at rest: repositories of blobs, manifests and tags in one directory, in
/// distribution registry:2's layout (a registry:2 whose ``rootdirectory`` is ``root``
/// serves them), shared safely by several processes. ``root`` may instead be
/// ``s3://BUCKET/PREFIX``: the same layout in an S3-compatible bucket, configured from
/// ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID`` and
/// ``AWS_SECRET_ACCESS_KEY`` (``root`` then returns it as a path); ``gs://`` and
/// ``az://`` locations work where the extension was built with regstore's ``gcs`` and
/// ``azure`` features. A location must be a ``str``: an ``os.PathLike`` is always a
/// local directory, and one that reads ``s3:/...`` (what ``pathlib.Path("s3://b/p")``
/// makes of a location) is refused with ValueError.
///
/// Repository names and tags follow the distribution spec; anything else is
/// InvalidArgument. Digests are ``sha256:<64 hex>`` (or sha512). Every call releases
/// the GIL.
#[pyclass(module = "cargohold._cargohold", frozen)]
#[derive(Debug)]
pub struct Registry {
    reg: Handle<regstore::Registry>,
    root: PathBuf,
}

#[pymethods]
impl Registry {
    #[new]
    fn new(py: Python<'_>, root: &Bound<'_, PyAny>) -> PyResult<Registry> {
        let is_str = root.is_instance_of::<PyString>();
        let path: PathBuf = root.extract()?;
        if !is_str
            && let Some(scheme) = path
                .to_str()
                .and_then(|p| SCHEMES.iter().find(|s| p.starts_with(&format!("{s}:/"))))
        {
            return Err(PyValueError::new_err(format!(
                "{} looks like a {scheme}:// location that a path object folded \
                 ({scheme}:// became {scheme}:/); pass the location as a str, e.g. \
                 Registry(\"{scheme}://BUCKET/PREFIX\"); a path object is always a local \
                 directory",
                path.display()
            )));
        }
        let r = path.clone();
        let root = path;
        let reg = detached(py, move || {
            // `s3://`, `gs://`, `az://`: a bucket configured from the environment.
            if is_str
                && let Some(loc) = r.to_str()
                && !matches!(Location::parse(loc)?, Location::Directory(_))
            {
                return Ok(regstore::Registry::on(open_location(loc)?));
            }
            std::fs::create_dir_all(&r)
                .map_err(|e| cargohold_core::Error::io("open registry", r.display(), e))?;
            Ok(regstore::Registry::open(Filesystem::new(&r)?))
        })?;
        Ok(Registry {
            reg: Handle::new(reg, "Registry"),
            root,
        })
    }

    /// The registry's directory.
    #[getter]
    fn root(&self) -> PathBuf {
        self.root.clone()
    }

    /// Store a blob in ``repo`` from bytes, a path or a binary file object (streamed,
    /// hashed while written) and return its descriptor. With ``digest``, the content
    /// must hash to it (DigestMismatch otherwise, and nothing is kept); it goes straight
    /// to the blob's place (on object storage: no upload, no copy), and a blob the
    /// registry already holds is linked into ``repo`` without reading ``data``.
    #[pyo3(signature = (repo, data, digest = None))]
    fn put_blob(
        &self,
        py: Python<'_>,
        repo: &str,
        data: &Bound<'_, PyAny>,
        digest: Option<&str>,
    ) -> PyResult<Descriptor> {
        let source = Source::from_py(data, "data")?;
        let expected = digest.map(|d| digest_arg(py, d)).transpose()?;
        let reg = self.reg.get()?;
        if let Some(d) = expected {
            let (result, failure) = py.detach(|| {
                let (r, failure) = match source.into_reader("put blob") {
                    Ok(x) => x,
                    Err(e) => return (Err(e), Default::default()),
                };
                (reg.put_blob_as(repo, &d, None, r), failure)
            });
            return result
                .map(Descriptor::from)
                .map_err(|e| failure.raise(py, e));
        }
        let up = detached(py, || reg.start_upload(repo))?;
        let result = append_source(py, &up, source).and_then(|_| {
            detached(py, || {
                let d = up.digest()?;
                up.commit(&d, None)
            })
        });
        if result.is_err() {
            let _ = py.detach(|| up.cancel());
        }
        result.map(Descriptor::from)
    }

    /// The descriptor of a blob of ``repo``; NotFound if the repository has none.
    fn stat_blob(&self, py: Python<'_>, repo: &str, digest: &str) -> PyResult<Descriptor> {
        let d = digest_arg(py, digest)?;
        let reg = self.reg.get()?;
        detached(py, move || reg.stat_blob(repo, &d)).map(Descriptor::from)
    }

    /// The whole blob, verified against its digest (Corrupt if stored bytes differ).
    fn read_blob<'py>(
        &self,
        py: Python<'py>,
        repo: &str,
        digest: &str,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let d = digest_arg(py, digest)?;
        let reg = self.reg.get()?;
        let data = detached(py, move || reg.read_blob(repo, &d))?;
        Ok(PyBytes::new(py, &data))
    }

    /// A binary stream over the blob from ``offset`` (``length`` bytes, or to the
    /// end). A range past the end is InvalidArgument.
    #[pyo3(signature = (repo, digest, offset = 0, length = None))]
    fn open_blob(
        &self,
        py: Python<'_>,
        repo: &str,
        digest: &str,
        offset: u64,
        length: Option<u64>,
    ) -> PyResult<BlobReader> {
        let d = digest_arg(py, digest)?;
        let reg = self.reg.get()?;
        detached(py, move || reg.blob_reader(repo, &d, offset, length)).map(BlobReader::new)
    }

    /// Unlink a blob from ``repo`` (its data stays for other repositories).
    fn delete_blob(&self, py: Python<'_>, repo: &str, digest: &str) -> PyResult<()> {
        let d = digest_arg(py, digest)?;
        let reg = self.reg.get()?;
        detached(py, move || reg.delete_blob(repo, &d))
    }

    /// Start a resumable upload into ``repo``.
    fn start_upload(&self, py: Python<'_>, repo: &str) -> PyResult<Upload> {
        let reg = self.reg.get()?;
        detached(py, move || reg.start_upload(repo)).map(|u| Upload::new(u, repo))
    }

    /// An upload started earlier (by any process); NotFound if it is gone.
    fn resume_upload(&self, py: Python<'_>, repo: &str, id: &str) -> PyResult<Upload> {
        let reg = self.reg.get()?;
        detached(py, move || reg.resume_upload(repo, id)).map(|u| Upload::new(u, repo))
    }

    /// Store a manifest (OCI or Docker, image or index) under ``reference`` (a tag, or
    /// the digest of ``data``) and return its digest. NotFound while a blob or child
    /// manifest it references is missing; DigestMismatch when ``reference`` is a
    /// digest ``data`` does not hash to.
    #[pyo3(signature = (repo, reference, data, media_type = None))]
    fn put_manifest(
        &self,
        py: Python<'_>,
        repo: &str,
        reference: &str,
        data: &[u8],
        media_type: Option<&str>,
    ) -> PyResult<String> {
        let reg = self.reg.get()?;
        detached(py, move || {
            reg.put_manifest(repo, reference, data, media_type)
        })
        .map(|d| d.to_string())
    }

    /// The manifest ``reference`` (tag or digest) names, as ``(bytes, media_type,
    /// digest)``.
    fn get_manifest<'py>(
        &self,
        py: Python<'py>,
        repo: &str,
        reference: &str,
    ) -> PyResult<(Bound<'py, PyBytes>, &'static str, String)> {
        let reg = self.reg.get()?;
        let m = detached(py, move || reg.get_manifest(repo, reference))?;
        Ok((
            PyBytes::new(py, &m.bytes),
            m.media_type.as_str(),
            m.digest.to_string(),
        ))
    }

    /// Delete the manifest ``reference`` (tag or digest) from ``repo``.
    fn delete_manifest(&self, py: Python<'_>, repo: &str, reference: &str) -> PyResult<()> {
        let reg = self.reg.get()?;
        detached(py, move || reg.delete_manifest(repo, reference))
    }

    /// The tags of ``repo``, sorted.
    fn tags(&self, py: Python<'_>, repo: &str) -> PyResult<Vec<String>> {
        let reg = self.reg.get()?;
        detached(py, move || reg.tags(repo, None, None))
    }

    /// Point ``tag`` of ``repo`` at the manifest ``digest`` (NotFound if absent).
    fn tag(&self, py: Python<'_>, repo: &str, tag: &str, digest: &str) -> PyResult<()> {
        let d = digest_arg(py, digest)?;
        let reg = self.reg.get()?;
        detached(py, move || reg.tag(repo, tag, &d))
    }

    /// Remove ``tag`` from ``repo`` (the manifest stays).
    fn untag(&self, py: Python<'_>, repo: &str, tag: &str) -> PyResult<()> {
        let reg = self.reg.get()?;
        detached(py, move || reg.untag(repo, tag))
    }

    /// Every repository's name, sorted.
    fn catalog(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        let reg = self.reg.get()?;
        detached(py, move || reg.catalog(None, None))
    }

    /// Import the image named ``ref_name`` (or the only one) from the OCI image layout
    /// at ``dir`` as ``repo:tag``. Every blob is verified. ``progress``, when given, is
    /// called as ``progress(done, total)`` in bytes after each blob.
    #[pyo3(signature = (dir, repo, tag, ref_name = None, progress = None))]
    fn import_oci(
        &self,
        py: Python<'_>,
        dir: PathBuf,
        repo: &str,
        tag: &str,
        ref_name: Option<&str>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Transfer> {
        let reg = self.reg.get()?;
        let mut p = Progress::new(progress);
        let result = py.detach(|| {
            if p.wanted() {
                p.set_total(layout_total(&dir, ref_name));
            }
            let mut cb = |d: &cargohold_core::Digest, s: u64| p.blob(d, s);
            regstore::oci_layout::import(&reg, &dir, ref_name, repo, tag, &mut cb)
        });
        finish(py, result, &p)
    }

    /// Export ``repo:reference`` (tag or digest) into the OCI image layout at ``dir``
    /// (created when missing) as ``ref_name``; other images in the layout stay.
    /// ``progress`` as for ``import_oci``.
    #[pyo3(signature = (repo, reference, dir, ref_name, progress = None))]
    fn export_oci(
        &self,
        py: Python<'_>,
        repo: &str,
        reference: &str,
        dir: PathBuf,
        ref_name: &str,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Transfer> {
        let reg = self.reg.get()?;
        let mut p = Progress::new(progress);
        let result = py.detach(|| {
            if p.wanted() {
                p.set_total(registry_total(&reg, repo, reference));
            }
            let mut cb = |d: &cargohold_core::Digest, s: u64| p.blob(d, s);
            regstore::oci_layout::export(&reg, repo, reference, &dir, ref_name, &mut cb)
        });
        finish(py, result, &p)
    }

    /// Release the registry; later calls raise ValueError.
    fn close(&self, py: Python<'_>) {
        let reg = self.reg.close();
        py.detach(move || drop(reg));
    }

    /// Whether ``close()`` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.reg.is_closed()
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
        format!("Registry({:?})", self.root.display().to_string())
    }
}

fn finish(
    py: Python<'_>,
    result: cargohold_core::Result<regstore::oci_layout::Transfer>,
    p: &Progress,
) -> PyResult<Transfer> {
    let t = result.map_err(|e| crate::to_py(py, e))?;
    if let Some(e) = p.failure.take() {
        return Err(e);
    }
    Ok(Transfer::from(t))
}

/// Add the registry classes to the module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Registry>()?;
    m.add_class::<Descriptor>()?;
    m.add_class::<Upload>()?;
    m.add_class::<BlobReader>()?;
    m.add_class::<Transfer>()?;
    Ok(())
}
