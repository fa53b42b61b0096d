//! A real S3-compatible server for the S3 tests: moto's server mode (`moto_server`,
//! from PyPI's `moto[server]`) on a free port of 127.0.0.1, plus a byte-counting TCP
//! proxy that can play a server that went away.
//!
//! The binary is `$CARGOHOLD_MOTO_SERVER` or `moto_server` on the `PATH`; a missing one
//! fails the test loudly (`regstore/tests/s3-server.sh install` installs it).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use regstore::drivers::{S3, S3Config};

/// A running moto server; dropping it kills it.
#[derive(Debug)]
pub struct MotoServer {
    child: Mutex<Child>,
    port: u16,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

fn binary() -> String {
    std::env::var("CARGOHOLD_MOTO_SERVER").unwrap_or_else(|_| "moto_server".into())
}

impl MotoServer {
    /// Start a server; `auth` makes it check every request's credentials.
    /// `setpriv --pdeathsig` ties the server to the thread that started it, so a test
    /// binary that dies does not leave it running.
    pub fn start(auth: bool) -> MotoServer {
        let port = free_port();
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig", "KILL", "--"])
            .arg(binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if auth {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", "0");
        }
        let child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot start {} (install it with regstore/tests/s3-server.sh install): {e}",
                binary()
            )
        });
        let server = MotoServer {
            child: Mutex::new(child),
            port,
        };
        let deadline = Instant::now() + Duration::from_secs(120);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = server.child.lock().unwrap().try_wait().expect("wait") {
                panic!("{} exited before listening: {status}", binary());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not listen within 120 s",
                binary()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The server shared by every test of this binary, started once from a thread that
    /// lives as long as the process (the death signal follows the process, not a test).
    pub fn shared() -> &'static MotoServer {
        static SERVER: OnceLock<MotoServer> = OnceLock::new();
        SERVER.get_or_init(|| {
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                tx.send(MotoServer::start(false)).expect("the test waits");
                // Park for the life of the process: the server's death signal fires
                // when this thread ends.
                loop {
                    std::thread::park();
                }
            });
            rx.recv().expect("the server started")
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Create a bucket (moto accepts an unsigned `PUT /bucket`).
    pub fn create_bucket(&self, name: &str) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        assert!(
            answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
            "create bucket {name}: {answer}"
        );
    }

    /// Multipart uploads in progress in `bucket` (ListMultipartUploads, unsigned as
    /// moto accepts it): what cancel and abort must leave at zero.
    pub fn multipart_uploads(&self, bucket: &str) -> usize {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        write!(
            s,
            "GET /{bucket}?uploads HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        )
        .expect("send");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("answer");
        assert!(answer.contains(" 200 "), "list multipart uploads: {answer}");
        answer.matches("<Upload>").count()
    }

    /// A fresh bucket with a name unique in this process.
    pub fn fresh_bucket(&self) -> String {
        static N: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "t{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        self.create_bucket(&name);
        name
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let mut c = self.child.lock().unwrap_or_else(|p| p.into_inner());
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// A configuration for `bucket` on `endpoint` with test credentials, failing fast.
pub fn config(endpoint: &str, bucket: &str, prefix: &str) -> S3Config {
    let mut c = S3Config::new(bucket, prefix);
    c.endpoint = Some(endpoint.to_owned());
    c.path_style = true;
    c.access_key_id = Some("testing".into());
    c.secret_access_key = Some("testing".into());
    c.max_retries = 1;
    c.retry_timeout = Duration::from_secs(5);
    c
}

/// The S3 driver on a fresh bucket of the shared server.
pub fn fresh_driver(prefix: &str) -> S3 {
    let server = MotoServer::shared();
    let bucket = server.fresh_bucket();
    S3::open(config(&server.endpoint(), &bucket, prefix)).expect("open the S3 driver")
}

/// A TCP proxy to a server that counts the bytes clients send, and can play a server
/// that went away: [`Proxy::stop`] cuts every connection and refuses new ones until
/// [`Proxy::resume`].
#[derive(Debug)]
pub struct Proxy {
    port: u16,
    sent: Arc<AtomicU64>,
    lists: Arc<AtomicU64>,
    batch_deletes: Arc<AtomicU64>,
    deletes: Arc<AtomicU64>,
    down: Arc<AtomicBool>,
    closing: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

/// What a ListObjectsV2 request line carries.
const LIST: &[u8] = b"list-type=2";
/// What a DeleteObjects (batched) request line carries: `POST /bucket?delete`.
const BATCH_DELETE: &[u8] = b"?delete";
/// A single-object delete (DeleteObject, AbortMultipartUpload).
const DELETE: &[u8] = b"DELETE /";

/// What the proxy counts of what clients send.
#[derive(Clone)]
struct Counters {
    bytes: Arc<AtomicU64>,
    lists: Arc<AtomicU64>,
    batch_deletes: Arc<AtomicU64>,
    deletes: Arc<AtomicU64>,
}

fn pump(mut from: TcpStream, mut to: TcpStream, count: Option<Counters>) {
    let mut buf = vec![0u8; 64 << 10];
    let mut carry: Vec<u8> = Vec::new();
    while let Ok(n) = from.read(&mut buf) {
        if n == 0 || to.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = &count {
            c.bytes.fetch_add(n as u64, Ordering::Relaxed);
            let old = carry.len();
            carry.extend_from_slice(&buf[..n]);
            for (pat, counter) in [
                (LIST, &c.lists),
                (BATCH_DELETE, &c.batch_deletes),
                (DELETE, &c.deletes),
            ] {
                // Matches that end in the new bytes: none is counted twice.
                let found = carry
                    .windows(pat.len())
                    .enumerate()
                    .filter(|(i, w)| i + pat.len() > old && *w == pat)
                    .count();
                counter.fetch_add(found as u64, Ordering::Relaxed);
            }
            let keep = carry.len().saturating_sub(LIST.len() - 1);
            carry.drain(..keep);
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Proxy {
    /// Forward a free port of 127.0.0.1 to `upstream`.
    pub fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        let sent = Arc::new(AtomicU64::new(0));
        let lists = Arc::new(AtomicU64::new(0));
        let batch_deletes = Arc::new(AtomicU64::new(0));
        let deletes = Arc::new(AtomicU64::new(0));
        let counters = Counters {
            bytes: sent.clone(),
            lists: lists.clone(),
            batch_deletes: batch_deletes.clone(),
            deletes: deletes.clone(),
        };
        let down = Arc::new(AtomicBool::new(false));
        let closing = Arc::new(AtomicBool::new(false));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let (dn, cl, cs) = (down.clone(), closing.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            for client in listener.incoming() {
                if cl.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = client else { continue };
                if dn.load(Ordering::SeqCst) {
                    // Gone: the connection is reset before a byte is read.
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let mut list = cs.lock().unwrap();
                list.push(client.try_clone().expect("clone"));
                list.push(server.try_clone().expect("clone"));
                drop(list);
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let count = counters.clone();
                std::thread::spawn(move || pump(client, server, Some(count)));
                std::thread::spawn(move || pump(s2, c2, None));
            }
        });
        Proxy {
            port,
            sent,
            lists,
            batch_deletes,
            deletes,
            down,
            closing,
            conns,
            accept: Some(accept),
        }
    }

    /// The proxy's URL.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Bytes clients sent through the proxy so far (request heads and bodies).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// ListObjectsV2 requests (pages) clients sent so far.
    pub fn list_requests(&self) -> u64 {
        self.lists.load(Ordering::Relaxed)
    }

    /// DeleteObjects (batched) requests clients sent so far.
    pub fn batch_delete_requests(&self) -> u64 {
        self.batch_deletes.load(Ordering::Relaxed)
    }

    /// Single-object DELETE requests (DeleteObject, AbortMultipartUpload) so far.
    pub fn delete_requests(&self) -> u64 {
        self.deletes.load(Ordering::Relaxed)
    }

    /// Cut every connection and refuse new ones, as a server that went away.
    pub fn stop(&self) {
        self.down.store(true, Ordering::SeqCst);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Accept connections again, as a server that came back.
    pub fn resume(&self) {
        self.down.store(false, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
        self.closing.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}
