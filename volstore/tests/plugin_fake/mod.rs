//! A scripted fake volume plugin (hyper on a unix socket) that records what it is sent,
//! and a small raw HTTP client, for the plugin tests.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::sync::oneshot;

/// What the fake plugin answers to one request.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A status and a body.
    Reply(u16, Vec<u8>),
    /// Read the request, then never answer.
    Hang,
}

impl Answer {
    /// A JSON answer.
    pub fn json(status: u16, body: &serde_json::Value) -> Answer {
        Answer::Reply(status, serde_json::to_vec(body).unwrap())
    }
}

/// One request the fake plugin received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Recorded {
    /// The body as JSON (`None` for an empty body).
    pub fn json(&self) -> Option<serde_json::Value> {
        if self.body.is_empty() {
            return None;
        }
        Some(serde_json::from_slice(&self.body).expect("the client sends JSON"))
    }
}

#[derive(Default)]
struct Shared {
    script: VecDeque<Answer>,
    recorded: Vec<Recorded>,
}

/// A fake plugin listening on `socket` in a temporary directory.
pub struct FakePlugin {
    pub socket: PathBuf,
    shared: Arc<Mutex<Shared>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl FakePlugin {
    /// Start a fake plugin that answers requests with the scripted answers, in order
    /// (a request with nothing scripted gets a 500 with `{"Err": "unscripted"}`).
    pub fn start() -> FakePlugin {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("fake.sock");
        let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        listener.set_nonblocking(true).unwrap();
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (stop, mut stopped) = oneshot::channel::<()>();
        let state = shared.clone();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::UnixListener::from_std(listener).unwrap();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => {
                            let (stream, _) = accepted.unwrap();
                            let state = state.clone();
                            tokio::spawn(async move {
                                let svc = hyper::service::service_fn(move |req| {
                                    answer(state.clone(), req)
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .serve_connection(TokioIo::new(stream), svc)
                                    .await;
                            });
                        }
                        _ = &mut stopped => break,
                    }
                }
            });
        });
        FakePlugin {
            socket,
            shared,
            stop: Some(stop),
            thread: Some(thread),
            dir,
        }
    }

    /// Answer the next request with `answer`.
    pub fn script(&self, answer: Answer) {
        self.shared.lock().unwrap().script.push_back(answer);
    }

    /// Take what was received so far.
    pub fn take_recorded(&self) -> Vec<Recorded> {
        std::mem::take(&mut self.shared.lock().unwrap().recorded)
    }

    /// Answers scripted but not asked for.
    pub fn unused(&self) -> usize {
        self.shared.lock().unwrap().script.len()
    }

    /// The temporary directory the socket is in.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Script an activation as a volume driver and a local scope (what
    /// `Client::connect` asks first).
    pub fn script_handshake(&self) {
        self.script(Answer::json(
            200,
            &serde_json::json!({"Implements": ["VolumeDriver"]}),
        ));
        self.script(Answer::json(
            200,
            &serde_json::json!({"Capabilities": {"Scope": "local"}}),
        ));
    }
}

impl Drop for FakePlugin {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap();
        }
    }
}

async fn answer(
    state: Arc<Mutex<Shared>>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let body = req.into_body().collect().await.unwrap().to_bytes().to_vec();
    let next = {
        let mut shared = state.lock().unwrap();
        shared.recorded.push(Recorded {
            method,
            path,
            headers,
            body,
        });
        shared.script.pop_front()
    };
    let (status, body) = match next {
        Some(Answer::Reply(status, body)) => (status, body),
        Some(Answer::Hang) => std::future::pending().await,
        None => (500, br#"{"Err":"unscripted"}"#.to_vec()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::from_u16(status).unwrap();
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        "application/vnd.docker.plugins.v1.2+json".parse().unwrap(),
    );
    Ok(resp)
}

/// A raw HTTP/1.1 exchange on a unix socket: send one request, read the whole answer.
pub struct RawClient {
    rt: tokio::runtime::Runtime,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl RawClient {
    /// Connect to `socket` (one connection, kept alive across requests).
    pub fn connect(socket: &Path) -> RawClient {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let sender = rt.block_on(async {
            let stream = tokio::net::UnixStream::connect(socket).await.unwrap();
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            sender
        });
        RawClient { rt, sender }
    }

    /// Send `method path` with `headers` and `body`; the status, the content type and
    /// the body of the answer.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &BTreeMap<String, String>,
        body: Vec<u8>,
    ) -> (u16, Option<String>, Vec<u8>) {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "plugin");
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Full::new(Bytes::from(body))).unwrap();
        let sender = &mut self.sender;
        self.rt.block_on(async {
            sender.ready().await.unwrap();
            let resp = sender.send_request(req).await.unwrap();
            let status = resp.status().as_u16();
            let ctype = resp
                .headers()
                .get(hyper::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_string());
            let body = resp
                .into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec();
            (status, ctype, body)
        })
    }
}
