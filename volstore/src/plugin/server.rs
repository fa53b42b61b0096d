//! The server side: any [`Driver`] behind a unix socket, as Docker Engine calls plugins.

use std::convert::Infallible;
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use cargohold_core::{Error, ErrorKind, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE as CONTENT_TYPE_HEADER, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustix::fs::{FlockOperation, Mode, OFlags};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::protocol::{
    ACTIVATE, ActivateResponse, CapabilitiesResponse, CreateRequest, Endpoint, ErrResponse,
    GetResponse, ListResponse, MountRequest, MountpointResponse, NameRequest, VOLUME_DRIVER,
    WireVolume,
};
use super::{CONTENT_TYPE, message_of};
use crate::Driver;

/// Largest request body read (a create request with its options is a few hundred bytes).
const MAX_REQUEST: usize = 1 << 20;

/// How much of an oversized request body is read and thrown away before refusing it.
const MAX_DRAIN: usize = 16 << 20;

/// The socket's mode: its owner and group may connect.
const SOCKET_MODE: u32 = 0o660;

/// How long shutdown waits for calls in flight to be answered before closing their
/// connections (their driver calls still run to the end).
const DRAIN: Duration = Duration::from_secs(10);

/// A running plugin server; dropping it or calling [`Server::shutdown`] stops it and
/// removes its socket.
#[derive(Debug)]
pub struct Server {
    socket: PathBuf,
    identity: (u64, u64),
    stop: Option<watch::Sender<bool>>,
    thread: Option<JoinHandle<()>>,
}

/// Serve `driver` on a unix socket at `socket` (see the module documentation for what
/// happens when something is there already).
///
/// The server runs a current-thread tokio runtime on a thread of its own; driver calls
/// run on its blocking pool, so a slow mount does not hold up other calls.
pub fn serve(driver: Arc<dyn Driver>, socket: &Path) -> Result<Server> {
    let (listener, identity) = bind(socket)?;
    start(driver, listener)
        .inspect_err(|_| {
            let _ = remove_if_ours(socket, identity);
        })
        .map(|(stop, thread)| Server {
            socket: socket.to_path_buf(),
            identity,
            stop: Some(stop),
            thread: Some(thread),
        })
}

/// Run the accept loop on a thread of its own.
fn start(
    driver: Arc<dyn Driver>,
    listener: UnixListener,
) -> Result<(watch::Sender<bool>, JoinHandle<()>)> {
    let op = "serve plugin";
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::io(op, "socket", e))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io(op, "tokio runtime", e))?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let thread = std::thread::Builder::new()
        .name("volstore-plugin".into())
        .spawn(move || {
            // The driver is dropped last, outside the runtime: its drop may block (a
            // plugin `Client` owns a runtime of its own).
            let last = driver.clone();
            runtime.block_on(run(listener, driver, stop_rx));
            drop(runtime);
            drop(last);
        })
        .map_err(|e| Error::io(op, "server thread", e))?;
    Ok((stop_tx, thread))
}

/// Remove the socket at `socket` if it is still the one with `identity` (device, inode).
fn remove_if_ours(socket: &Path, identity: (u64, u64)) -> io::Result<()> {
    match std::fs::symlink_metadata(socket) {
        Ok(meta) if (meta.dev(), meta.ino()) == identity => match std::fs::remove_file(socket) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

impl Server {
    /// The socket's path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Stop accepting, let calls in flight finish, close the connections and remove the
    /// socket (unless another server has put its own socket there since).
    pub fn shutdown(mut self) -> Result<()> {
        self.stop()
    }

    fn stop(&mut self) -> Result<()> {
        let Some(stop) = self.stop.take() else {
            return Ok(());
        };
        let _ = stop.send(true);
        let mut result = Ok(());
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            result = Err(Error::new(
                ErrorKind::Io,
                "stop plugin server",
                self.socket.display(),
                "the server thread panicked",
            ));
        }
        if let Err(e) = remove_if_ours(&self.socket, self.identity) {
            result = result.and(Err(Error::io(
                "stop plugin server",
                self.socket.display(),
                e,
            )));
        }
        result
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Bind `socket`, replacing a stale socket, under an `flock` on its directory; the
/// listener and the socket's identity (device, inode).
fn bind(socket: &Path) -> Result<(UnixListener, (u64, u64))> {
    let op = "serve plugin";
    let parent = match socket.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::errno(op, parent.display(), e))?;
    loop {
        match rustix::fs::flock(&dir, FlockOperation::LockExclusive) {
            Ok(()) => break,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::errno(op, parent.display(), e)),
        }
    }
    match std::fs::symlink_metadata(socket) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(op, socket.display(), e)),
        Ok(meta) if meta.file_type().is_socket() => match UnixStream::connect(socket) {
            Ok(_) => {
                return Err(Error::new(
                    ErrorKind::InUse,
                    op,
                    socket.display(),
                    "a server answers on this socket",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(socket).map_err(|e| Error::io(op, socket.display(), e))?;
            }
            Err(e) => return Err(Error::io(op, socket.display(), e)),
        },
        Ok(_) => {
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                op,
                socket.display(),
                "the path exists and is not a socket",
            ));
        }
    }
    let bound = bind_private(parent, socket)?;
    drop(dir);
    Ok(bound)
}

/// Bind in a private (0700) staging directory, make the socket 0660, then rename it into
/// place: nobody but its owner and group can ever connect, whatever the umask.
fn bind_private(parent: &Path, socket: &Path) -> Result<(UnixListener, (u64, u64))> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let op = "serve plugin";
    let staging = parent.join(format!(".cargohold-bind-{}", std::process::id()));
    // A staging directory of an earlier run with this pid is a crash leftover.
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&staging)
        .map_err(|e| Error::io(op, staging.display(), e))?;
    let staged = staging.join("s");
    let bound = UnixListener::bind(&staged)
        .map_err(|e| Error::io(op, socket.display(), e))
        .and_then(|listener| {
            std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(SOCKET_MODE))
                .and_then(|()| std::fs::symlink_metadata(&staged))
                .and_then(|meta| {
                    std::fs::rename(&staged, socket)?;
                    Ok((listener, (meta.dev(), meta.ino())))
                })
                .map_err(|e| Error::io(op, socket.display(), e))
        });
    let cleaned = std::fs::remove_dir_all(&staging);
    let listener = bound?;
    cleaned.map_err(|e| Error::io(op, staging.display(), e))?;
    Ok(listener)
}

async fn run(listener: UnixListener, driver: Arc<dyn Driver>, mut stop: watch::Receiver<bool>) {
    let Ok(listener) = tokio::net::UnixListener::from_std(listener) else {
        return;
    };
    let mut connections = tokio::task::JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    connections.spawn(connection(stream, driver.clone(), stop.clone()));
                }
                // Out of descriptors and the like: let connections finish, then retry.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            changed = stop.changed() => {
                if changed.is_err() {
                    break;
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(DRAIN, drain).await.is_err() {
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}

async fn connection(
    stream: tokio::net::UnixStream,
    driver: Arc<dyn Driver>,
    mut stop: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req| handle(driver.clone(), req));
    let conn =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    if *stop.borrow_and_update() {
        conn.as_mut().graceful_shutdown();
    }
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A parsed call, ready for the driver.
enum Call {
    Activate,
    Create(CreateRequest),
    Remove(NameRequest),
    Mount(MountRequest),
    Unmount(MountRequest),
    Path(NameRequest),
    Get(NameRequest),
    List,
    Capabilities,
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, body: Vec<u8>) -> Reply {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(CONTENT_TYPE));
    resp
}

fn failure(status: StatusCode, err: &Error) -> Reply {
    let body = ErrResponse {
        err: message_of(err),
    };
    reply(
        status,
        serde_json::to_vec(&body).expect("a string map serialises"),
    )
}

fn success(value: &impl serde::Serialize) -> Reply {
    reply(
        StatusCode::OK,
        serde_json::to_vec(value).expect("plugin responses serialise"),
    )
}

/// Whether a request's content type is one the protocol uses (none at all included).
fn json_content_type(value: Option<&HeaderValue>) -> bool {
    let Some(value) = value else { return true };
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim();
    let essence = essence.to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/vnd.docker.plugins.v1")
            .and_then(|rest| rest.strip_suffix("+json"))
            .is_some_and(|minor| {
                minor.is_empty()
                    || minor
                        .strip_prefix('.')
                        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            })
}

async fn handle(
    driver: Arc<dyn Driver>,
    req: Request<Incoming>,
) -> std::result::Result<Reply, Infallible> {
    let path = req.uri().path().to_string();
    let refuse = |status, kind, detail: &str| {
        Ok(failure(
            status,
            &Error::new(kind, "plugin request", &path, detail),
        ))
    };
    if req.method() != Method::POST {
        return refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            ErrorKind::Unsupported,
            "plugin calls are POST",
        );
    }
    let endpoint = if path == ACTIVATE {
        None
    } else {
        match Endpoint::from_path(&path) {
            Some(e) => Some(e),
            None => {
                return refuse(
                    StatusCode::NOT_FOUND,
                    ErrorKind::Unsupported,
                    "no such endpoint",
                );
            }
        }
    };
    if !json_content_type(req.headers().get(CONTENT_TYPE_HEADER)) {
        return refuse(
            StatusCode::BAD_REQUEST,
            ErrorKind::InvalidArgument,
            "the request body must be JSON",
        );
    }
    let body = match read_body(req.into_body()).await {
        Ok(body) => body,
        Err(BodyError::TooLarge) => {
            return refuse(
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorKind::LimitExceeded,
                "the request body is over 1 MiB",
            );
        }
        Err(BodyError::Read(e)) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                ErrorKind::InvalidArgument,
                &e.to_string(),
            );
        }
    };
    let call = match parse(endpoint, &body) {
        Ok(call) => call,
        Err(detail) => return refuse(StatusCode::BAD_REQUEST, ErrorKind::InvalidArgument, &detail),
    };
    let done = tokio::task::spawn_blocking(move || execute(&*driver, call)).await;
    Ok(match done {
        Ok(Ok(reply)) => reply,
        Ok(Err(err)) => failure(StatusCode::INTERNAL_SERVER_ERROR, &err),
        Err(_) => failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            &Error::new(
                ErrorKind::Io,
                "plugin request",
                &path,
                "the driver panicked",
            ),
        ),
    })
}

enum BodyError {
    TooLarge,
    Read(hyper::Error),
}

/// Read a request body of at most [`MAX_REQUEST`] bytes. A longer one is read on and
/// thrown away up to [`MAX_DRAIN`] bytes, so that its sender can finish writing and
/// read the refusal; past that the connection is closed with the refusal unread.
async fn read_body(mut body: Incoming) -> std::result::Result<Bytes, BodyError> {
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(BodyError::Read)?;
        if let Ok(data) = frame.into_data() {
            seen = seen.saturating_add(data.len());
            if seen <= MAX_REQUEST {
                kept.extend_from_slice(&data);
            } else if seen > MAX_DRAIN {
                break;
            }
        }
    }
    if seen > MAX_REQUEST {
        return Err(BodyError::TooLarge);
    }
    Ok(Bytes::from(kept))
}

fn parse(endpoint: Option<Endpoint>, body: &[u8]) -> std::result::Result<Call, String> {
    fn json<T: DeserializeOwned>(body: &[u8]) -> std::result::Result<T, String> {
        let body = if body.iter().all(u8::is_ascii_whitespace) {
            b"{}".as_slice()
        } else {
            body
        };
        serde_json::from_slice(body).map_err(|e| format!("malformed request: {e}"))
    }
    // Endpoints without arguments still refuse a body that is not a JSON object.
    let empty = |body: &[u8]| json::<serde_json::Map<String, serde_json::Value>>(body).map(drop);
    Ok(match endpoint {
        None => {
            empty(body)?;
            Call::Activate
        }
        Some(Endpoint::Create) => Call::Create(json(body)?),
        Some(Endpoint::Remove) => Call::Remove(json(body)?),
        Some(Endpoint::Mount) => Call::Mount(json(body)?),
        Some(Endpoint::Unmount) => Call::Unmount(json(body)?),
        Some(Endpoint::Path) => Call::Path(json(body)?),
        Some(Endpoint::Get) => Call::Get(json(body)?),
        Some(Endpoint::List) => {
            empty(body)?;
            Call::List
        }
        Some(Endpoint::Capabilities) => {
            empty(body)?;
            Call::Capabilities
        }
    })
}

fn execute(driver: &dyn Driver, call: Call) -> Result<Reply> {
    let ok = ErrResponse::default;
    let path_string = |p: PathBuf| p.to_string_lossy().into_owned();
    Ok(match call {
        Call::Activate => success(&ActivateResponse {
            implements: vec![VOLUME_DRIVER.to_string()],
        }),
        Call::Create(r) => {
            driver.create(&r.name, &r.opts)?;
            success(&ok())
        }
        Call::Remove(r) => {
            driver.remove(&r.name)?;
            success(&ok())
        }
        Call::Mount(r) => success(&MountpointResponse {
            mountpoint: path_string(driver.mount(&r.name, &r.id)?),
            err: String::new(),
        }),
        Call::Unmount(r) => {
            driver.unmount(&r.name, &r.id)?;
            success(&ok())
        }
        Call::Path(r) => success(&MountpointResponse {
            mountpoint: driver.path(&r.name)?.map(path_string).unwrap_or_default(),
            err: String::new(),
        }),
        Call::Get(r) => success(&GetResponse {
            volume: Some(WireVolume::from(driver.get(&r.name)?)),
            err: String::new(),
        }),
        Call::List => success(&ListResponse {
            volumes: driver.list()?.into_iter().map(WireVolume::from).collect(),
            err: String::new(),
        }),
        Call::Capabilities => success(&CapabilitiesResponse::from(driver.capabilities())),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_accepted() {
        let ok = |v: &str| json_content_type(Some(&HeaderValue::from_str(v).unwrap()));
        assert!(json_content_type(None));
        assert!(ok("application/json"));
        assert!(ok("application/json; charset=utf-8"));
        assert!(ok("application/vnd.docker.plugins.v1+json"));
        assert!(ok("application/vnd.docker.plugins.v1.2+json"));
        assert!(ok("Application/Vnd.Docker.Plugins.V1.10+JSON"));
        assert!(!ok("text/plain"));
        assert!(!ok("application/vnd.docker.plugins.v2+json"));
        assert!(!ok("application/vnd.docker.plugins.v1.+json"));
        assert!(!ok("application/xml"));
    }
}
