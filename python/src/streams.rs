//! Bytes in and out of Python: a `bytes`-like object, a path, or a binary file object.
//!
//! File objects are driven from Rust with the GIL released around the storage call and
//! taken back only for each `.read(n)` / `.write(b)`. An exception raised by the file
//! object is kept in a [`Failure`] slot and re-raised unchanged once the call returns
//! (the storage call itself sees an I/O error and cleans up as for any broken stream).

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Cursor, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use cargohold_core::Error;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView, PyString};

/// How many bytes one `.read(n)` asks a Python file for (and the write buffer size).
pub const CHUNK: usize = 1 << 20;

/// The first exception a Python file object or callback raised during a call.
#[derive(Debug, Clone, Default)]
pub struct Failure(Arc<Mutex<Option<PyErr>>>);

impl Failure {
    /// Keep `err` unless an earlier one is kept already.
    pub fn set(&self, err: PyErr) {
        let mut slot = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(err);
        }
    }

    /// Whether an exception is kept.
    pub fn is_set(&self) -> bool {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }

    /// The kept exception, if any.
    pub fn take(&self) -> Option<PyErr> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }

    /// The exception to raise for `err`: the caller's own exception when one was kept
    /// (it caused `err`), else the exception of `err`'s kind.
    pub fn raise(&self, py: Python<'_>, err: Error) -> PyErr {
        self.take()
            .unwrap_or_else(|| crate::exceptions::to_py(py, err))
    }
}

fn io_failed(what: &str) -> io::Error {
    io::Error::other(format!("the Python file object's {what} raised"))
}

/// A `Read` over a Python binary file object's `.read(n)`.
#[derive(Debug)]
pub struct PyReader {
    file: Py<PyAny>,
    failure: Failure,
}

impl Read for PyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.failure.is_set() {
            return Err(io_failed("read()"));
        }
        Python::attach(|py| {
            let got = self
                .file
                .bind(py)
                .call_method1(intern!(py, "read"), (buf.len(),))
                .and_then(|o| {
                    if o.is_none() {
                        // A non-blocking raw file with nothing ready.
                        return Err(PyValueError::new_err(
                            "read() returned None: blocking binary files only",
                        ));
                    }
                    o.extract::<PyBackedBytes>().map_err(|_| {
                        PyTypeError::new_err(format!(
                            "read() must return bytes (open the file in binary mode), not {}",
                            o.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ))
                    })
                })
                .and_then(|b| {
                    if b.len() > buf.len() {
                        return Err(PyValueError::new_err("read(n) returned more than n bytes"));
                    }
                    buf[..b.len()].copy_from_slice(&b);
                    Ok(b.len())
                });
            got.map_err(|e| {
                self.failure.set(e);
                io_failed("read()")
            })
        })
    }
}

/// A `Write` over a Python binary file object's `.write(b)`.
#[derive(Debug)]
pub struct PyWriter {
    file: Py<PyAny>,
    failure: Failure,
}

impl Write for PyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.failure.is_set() {
            return Err(io_failed("write()"));
        }
        Python::attach(|py| {
            let data = PyBytes::new(py, buf);
            let got = self
                .file
                .bind(py)
                .call_method1(intern!(py, "write"), (data,))
                .and_then(|n| {
                    if n.is_none() {
                        return Ok(buf.len());
                    }
                    let n: usize = n.extract()?;
                    if n == 0 || n > buf.len() {
                        return Err(PyValueError::new_err(
                            "write(b) must return how many bytes of b it wrote",
                        ));
                    }
                    Ok(n)
                });
            got.map_err(|e| {
                self.failure.set(e);
                io_failed("write()")
            })
        })
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Where input bytes come from.
#[derive(Debug)]
pub enum Source {
    /// A `bytes`-like object (kept alive, never copied for `bytes`).
    Bytes(PyBackedBytes),
    /// A file named by `str` or `os.PathLike`.
    Path(PathBuf),
    /// A binary file object with `.read(n)`.
    File(Py<PyAny>),
}

fn is_pathlike(obj: &Bound<'_, PyAny>) -> bool {
    obj.is_instance_of::<PyString>()
        || obj
            .hasattr(intern!(obj.py(), "__fspath__"))
            .unwrap_or(false)
}

impl Source {
    /// Classify `obj`: bytes/bytearray/memoryview are content, `str`/`os.PathLike` a
    /// path, anything with `.read` a file; otherwise `TypeError`.
    pub fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Source> {
        let py = obj.py();
        if obj.is_instance_of::<PyBytes>() || obj.is_instance_of::<PyByteArray>() {
            return Ok(Source::Bytes(obj.extract()?));
        }
        if obj.is_instance_of::<PyMemoryView>() {
            let b = obj.call_method0(intern!(py, "tobytes"))?;
            return Ok(Source::Bytes(b.extract()?));
        }
        if is_pathlike(obj) {
            return Ok(Source::Path(obj.extract()?));
        }
        if obj.hasattr(intern!(py, "read"))? {
            return Ok(Source::File(obj.clone().unbind()));
        }
        Err(PyTypeError::new_err(format!(
            "{what} must be bytes, a path or a binary file object, not {}",
            obj.get_type().name()?
        )))
    }

    /// The bytes as a buffered reader (call with the GIL released), and the slot where a
    /// file object's exception lands.
    pub fn into_reader(
        self,
        op: &'static str,
    ) -> cargohold_core::Result<(Box<dyn Read + Send>, Failure)> {
        let failure = Failure::default();
        let r: Box<dyn Read + Send> = match self {
            Source::Bytes(b) => Box::new(Cursor::new(b)),
            Source::Path(p) => {
                let f = File::open(&p).map_err(|e| Error::io(op, p.display(), e))?;
                Box::new(BufReader::with_capacity(CHUNK, f))
            }
            Source::File(file) => Box::new(BufReader::with_capacity(
                CHUNK,
                PyReader {
                    file,
                    failure: failure.clone(),
                },
            )),
        };
        Ok((r, failure))
    }
}

/// Where output bytes go.
#[derive(Debug)]
pub enum Sink {
    /// A file named by `str` or `os.PathLike`, created or truncated.
    Path(PathBuf),
    /// A binary file object with `.write(b)`.
    File(Py<PyAny>),
}

/// An open [`Sink`]: call [`Output::finish`] to flush it.
pub struct Output {
    writer: BufWriter<Box<dyn Write + Send>>,
    context: String,
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("context", &self.context)
            .finish()
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

impl Output {
    /// Flush what is buffered; `op` names the failing operation.
    pub fn finish(mut self, op: &'static str) -> cargohold_core::Result<()> {
        self.writer
            .flush()
            .map_err(|e| Error::io(op, &self.context, e))
    }
}

impl Sink {
    /// Classify `obj`: `str`/`os.PathLike` a path, anything with `.write` a file;
    /// otherwise `TypeError`.
    pub fn from_py(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<Sink> {
        if is_pathlike(obj) {
            return Ok(Sink::Path(obj.extract()?));
        }
        if obj.hasattr(intern!(obj.py(), "write"))? {
            return Ok(Sink::File(obj.clone().unbind()));
        }
        Err(PyTypeError::new_err(format!(
            "{what} must be a path or a binary file object, not {}",
            obj.get_type().name()?
        )))
    }

    /// Open for writing (call with the GIL released).
    pub fn open(self, op: &'static str) -> cargohold_core::Result<(Output, Failure)> {
        let failure = Failure::default();
        let (w, context): (Box<dyn Write + Send>, String) = match self {
            Sink::Path(p) => {
                let f = File::create(&p).map_err(|e| Error::io(op, p.display(), e))?;
                (Box::new(f), p.display().to_string())
            }
            Sink::File(file) => (
                Box::new(PyWriter {
                    file,
                    failure: failure.clone(),
                }),
                "<file object>".into(),
            ),
        };
        Ok((
            Output {
                writer: BufWriter::with_capacity(CHUNK, w),
                context,
            },
            failure,
        ))
    }
}
