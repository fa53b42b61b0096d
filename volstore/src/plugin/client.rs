//! The client side: any volume plugin socket as a [`Driver`].

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use cargohold_core::{Error, ErrorKind, Result};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{ACCEPT, CONTENT_TYPE as CONTENT_TYPE_HEADER, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

use super::protocol::{
    ACTIVATE, ActivateResponse, CapabilitiesResponse, CreateRequest, Endpoint, ErrResponse,
    GetResponse, ListResponse, MountRequest, MountpointResponse, NameRequest, VOLUME_DRIVER,
    WireVolume,
};
use super::{CONTENT_TYPE, kind_of_message};
use crate::{Capabilities, Driver, Options, Scope, Volume, check_name};

/// Largest answer read (a list of many thousand volumes fits).
const MAX_RESPONSE: usize = 64 << 20;

/// How long the client waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Connecting to the socket and the HTTP handshake (default 5 s).
    pub connect: Duration,
    /// One call, from sending the request to the last byte of the answer (default
    /// 120 s).
    pub call: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(5),
            call: Duration::from_secs(120),
        }
    }
}

/// A volume plugin reached through its unix socket, as a [`Driver`].
///
/// Calls block the calling thread; they run on a private current-thread tokio runtime
/// and reuse idle keep-alive connections, so a `Client` must not be used (or dropped)
/// from inside an async runtime. Names are checked with [`check_name`] before anything
/// is sent. Connection failures are `Io` (a missing socket too: `NotFound` would read
/// as "no such volume").
pub struct Client {
    socket: PathBuf,
    timeouts: Timeouts,
    runtime: tokio::runtime::Runtime,
    idle: Mutex<Vec<SendRequest<Full<Bytes>>>>,
    capabilities: Capabilities,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("socket", &self.socket)
            .field("timeouts", &self.timeouts)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect to the plugin at `socket` with the default [`Timeouts`]: activate it
    /// (`Unsupported` if it is not a `VolumeDriver`) and ask its capabilities (a plugin
    /// that fails that call is `local`, as Docker assumes).
    pub fn connect(socket: &Path) -> Result<Client> {
        Client::connect_with(socket, Timeouts::default())
    }

    /// [`Client::connect`] with other timeouts.
    pub fn connect_with(socket: &Path, timeouts: Timeouts) -> Result<Client> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("connect plugin", "tokio runtime", e))?;
        let mut client = Client {
            socket: socket.to_path_buf(),
            timeouts,
            runtime,
            idle: Mutex::new(Vec::new()),
            capabilities: Capabilities {
                scope: Scope::Local,
            },
        };
        let context = socket.display().to_string();
        let (status, body) = client.exchange("connect plugin", &context, ACTIVATE, Vec::new())?;
        if status != StatusCode::OK {
            return Err(remote_failure("connect plugin", &context, status, &body));
        }
        let activated: ActivateResponse = decode("connect plugin", &context, &body)?;
        if !activated.implements.iter().any(|i| i == VOLUME_DRIVER) {
            return Err(Error::new(
                ErrorKind::Unsupported,
                "connect plugin",
                &context,
                format!(
                    "the plugin implements {:?}, not {VOLUME_DRIVER}",
                    activated.implements
                ),
            ));
        }
        let path = Endpoint::Capabilities.path();
        let op = Endpoint::Capabilities.op();
        let (status, body) = client.exchange(op, &context, path, b"{}".to_vec())?;
        if status == StatusCode::OK {
            let caps: CapabilitiesResponse = decode(op, &context, &body)?;
            let scope = match caps.capabilities.scope.as_str() {
                "local" | "" => Scope::Local,
                "global" => Scope::Global,
                other => {
                    return Err(Error::new(
                        ErrorKind::Corrupt,
                        op,
                        &context,
                        format!("unknown scope {other:?}"),
                    ));
                }
            };
            client.capabilities = Capabilities { scope };
        }
        Ok(client)
    }

    /// The socket this client calls.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Send one request and read the whole answer, within the call timeout.
    fn exchange(
        &self,
        op: &'static str,
        context: &str,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes)> {
        let io_err = |detail: String| Error::new(ErrorKind::Io, op, context, detail);
        let call = async {
            let mut request = Some(self.request(path, body)?);
            // One retry, only when the request never left (a kept-alive connection the
            // plugin closed meanwhile); a request that was sent is never repeated.
            for fresh in [false, true] {
                let mut sender = self.sender(op, context, fresh).await?;
                let req = request.take().expect("a request to send");
                match sender.try_send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let body = Limited::new(resp.into_body(), MAX_RESPONSE)
                            .collect()
                            .await
                            .map_err(|e| io_err(format!("reading the answer: {e}")))?
                            .to_bytes();
                        self.idle.lock().expect("idle pool").push(sender);
                        return Ok((status, body));
                    }
                    Err(mut e) => match e.take_message() {
                        Some(unsent) if !fresh => request = Some(unsent),
                        _ => return Err(io_err(format!("calling {path}: {}", e.error()))),
                    },
                }
            }
            unreachable!("the second attempt returns")
        };
        self.runtime
            .block_on(async { tokio::time::timeout(self.timeouts.call, call).await })
            .map_err(|_| {
                io_err(format!(
                    "no answer to {path} within {:?}",
                    self.timeouts.call
                ))
            })?
    }

    fn request(&self, path: &str, body: Vec<u8>) -> Result<Request<Full<Bytes>>> {
        Request::post(path)
            .header(HOST, "plugin")
            .header(ACCEPT, CONTENT_TYPE)
            .header(CONTENT_TYPE_HEADER, CONTENT_TYPE)
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| Error::new(ErrorKind::InvalidArgument, "plugin request", path, e))
    }

    /// An idle connection that is still open, or a new one (`fresh` forces a new one).
    async fn sender(
        &self,
        op: &'static str,
        context: &str,
        fresh: bool,
    ) -> Result<SendRequest<Full<Bytes>>> {
        if !fresh {
            loop {
                let Some(mut sender) = self.idle.lock().expect("idle pool").pop() else {
                    break;
                };
                if sender.ready().await.is_ok() {
                    return Ok(sender);
                }
            }
        }
        let open = async {
            let stream = tokio::net::UnixStream::connect(&self.socket)
                .await
                .map_err(|e| Error::io(op, context, e).with_kind(ErrorKind::Io))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| Error::new(ErrorKind::Io, op, context, e))?;
            tokio::spawn(conn);
            Ok::<_, Error>(sender)
        };
        tokio::time::timeout(self.timeouts.connect, open)
            .await
            .map_err(|_| {
                Error::new(
                    ErrorKind::Io,
                    op,
                    context,
                    format!(
                        "could not connect to {} within {:?}",
                        self.socket.display(),
                        self.timeouts.connect
                    ),
                )
            })?
    }

    /// One `/VolumeDriver.*` call: the typed answer, or the plugin's error.
    fn call<T: DeserializeOwned + HasErr>(
        &self,
        endpoint: Endpoint,
        context: &str,
        request: &impl serde::Serialize,
    ) -> Result<T> {
        let op = endpoint.op();
        let body = serde_json::to_vec(request).expect("plugin requests serialise");
        let (status, body) = self.exchange(op, context, endpoint.path(), body)?;
        if status != StatusCode::OK {
            return Err(remote_failure(op, context, status, &body));
        }
        let answer: T = decode(op, context, &body)?;
        match answer.err() {
            "" => Ok(answer),
            message => Err(remote_error(op, context, message)),
        }
    }
}

/// Answers with an `Err` slot.
trait HasErr {
    fn err(&self) -> &str;
}

macro_rules! has_err {
    ($($t:ty),*) => {$(
        impl HasErr for $t {
            fn err(&self) -> &str {
                &self.err
            }
        }
    )*};
}
has_err!(ErrResponse, MountpointResponse, GetResponse, ListResponse);

fn decode<T: DeserializeOwned>(op: &'static str, context: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|e| {
        Error::new(
            ErrorKind::Corrupt,
            op,
            context,
            format!("unreadable answer from the plugin: {e}"),
        )
    })
}

fn remote_error(op: &'static str, context: &str, message: &str) -> Error {
    let (kind, message) = kind_of_message(message);
    Error::new(kind, op, context, message)
}

/// A non-200 answer: the plugin's `Err` if it gave one, its body otherwise.
fn remote_failure(op: &'static str, context: &str, status: StatusCode, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrResponse>(body) {
        Ok(e) if !e.err.is_empty() => remote_error(op, context, &e.err),
        _ => {
            let text = String::from_utf8_lossy(&body[..body.len().min(512)]);
            Error::new(
                ErrorKind::Io,
                op,
                context,
                format!("the plugin answered {status}: {text}"),
            )
        }
    }
}

/// A mountpoint from the plugin: `None` when empty, `Corrupt` when not absolute.
fn mountpoint(op: &'static str, name: &str, mountpoint: &str) -> Result<Option<PathBuf>> {
    if mountpoint.is_empty() {
        return Ok(None);
    }
    let path = PathBuf::from(mountpoint);
    if !path.is_absolute() || mountpoint.contains('\0') {
        return Err(Error::new(
            ErrorKind::Corrupt,
            op,
            name,
            format!(
                "the plugin answered a mountpoint that is not an absolute path: {mountpoint:?}"
            ),
        ));
    }
    Ok(Some(path))
}

/// A volume from the plugin, its mountpoint checked.
fn volume(op: &'static str, wire: WireVolume) -> Result<Volume> {
    mountpoint(op, &wire.name, &wire.mountpoint)?;
    Ok(wire.into())
}

impl Driver for Client {
    fn create(&self, name: &str, options: &Options) -> Result<()> {
        check_name(name)?;
        let req = CreateRequest {
            name: name.to_string(),
            opts: options.clone(),
        };
        self.call::<ErrResponse>(Endpoint::Create, name, &req)
            .map(drop)
    }

    fn remove(&self, name: &str) -> Result<()> {
        check_name(name)?;
        let req = NameRequest {
            name: name.to_string(),
        };
        self.call::<ErrResponse>(Endpoint::Remove, name, &req)
            .map(drop)
    }

    fn mount(&self, name: &str, id: &str) -> Result<PathBuf> {
        check_name(name)?;
        let req = MountRequest {
            name: name.to_string(),
            id: id.to_string(),
        };
        let answer: MountpointResponse = self.call(Endpoint::Mount, name, &req)?;
        mountpoint(Endpoint::Mount.op(), name, &answer.mountpoint)?.ok_or_else(|| {
            Error::new(
                ErrorKind::Corrupt,
                Endpoint::Mount.op(),
                name,
                "the plugin answered without a mountpoint",
            )
        })
    }

    fn unmount(&self, name: &str, id: &str) -> Result<()> {
        check_name(name)?;
        let req = MountRequest {
            name: name.to_string(),
            id: id.to_string(),
        };
        self.call::<ErrResponse>(Endpoint::Unmount, name, &req)
            .map(drop)
    }

    fn path(&self, name: &str) -> Result<Option<PathBuf>> {
        check_name(name)?;
        let req = NameRequest {
            name: name.to_string(),
        };
        let answer: MountpointResponse = self.call(Endpoint::Path, name, &req)?;
        mountpoint(Endpoint::Path.op(), name, &answer.mountpoint)
    }

    fn get(&self, name: &str) -> Result<Volume> {
        check_name(name)?;
        let req = NameRequest {
            name: name.to_string(),
        };
        let answer: GetResponse = self.call(Endpoint::Get, name, &req)?;
        let Some(wire) = answer.volume else {
            return Err(Error::new(
                ErrorKind::Corrupt,
                Endpoint::Get.op(),
                name,
                "the plugin answered without a volume",
            ));
        };
        if wire.name != name {
            return Err(Error::new(
                ErrorKind::Corrupt,
                Endpoint::Get.op(),
                name,
                format!("the plugin answered with volume {:?}", wire.name),
            ));
        }
        volume(Endpoint::Get.op(), wire)
    }

    fn list(&self) -> Result<Vec<Volume>> {
        let answer: ListResponse = self.call(
            Endpoint::List,
            "",
            &serde_json::Map::<String, serde_json::Value>::new(),
        )?;
        let op = Endpoint::List.op();
        let mut volumes = answer
            .volumes
            .into_iter()
            .map(|w| volume(op, w))
            .collect::<Result<Vec<Volume>>>()?;
        volumes.sort_by(|a, b| a.name.cmp(&b.name));
        if let Some(pair) = volumes.windows(2).find(|p| p[0].name == p[1].name) {
            return Err(Error::new(
                ErrorKind::Corrupt,
                op,
                &pair[0].name,
                "the plugin listed this volume twice",
            ));
        }
        Ok(volumes)
    }

    fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}
