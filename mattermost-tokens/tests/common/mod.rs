//! Shared helpers for the `client_*` integration tests: fixed tokens and ids,
//! client constructors, httpmock identity matchers, a scripted raw HTTP
//! responder (for sequences, hangs, dropped connections and chunked bodies)
//! and a `tracing` capture buffer.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use httpmock::{MockServer, When};
use mattermost_tokens::{MattermostClient, RetryPolicy};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The admin token the test clients are built with.
pub const ADMIN_TOKEN: &str = "adm1nsecret7q4w9e2r5t8y3u6";
/// A user's personal access token.
pub const USER_TOKEN: &str = "us3rsecret9k2j7h4g6f1d8s5a";
/// A freshly minted token value, as a create-token answer carries it.
pub const MINTED_TOKEN: &str = "m1ntedsecret0z8x6c4v2b7n5m";

/// A well-formed 26-character Mattermost id starting with `tag`.
pub fn id(tag: &str) -> String {
    assert!(tag.len() <= 26);
    let mut s = tag.to_ascii_lowercase();
    while s.len() < 26 {
        s.push('0');
    }
    s
}

/// A retry policy with tiny, deterministic backoff.
pub fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        max_rate_limited_attempts: max_attempts,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(20),
        max_total_wait: Duration::from_secs(10),
        jitter: false,
    }
}

/// A client for `url` with the admin token and the given retry policy.
pub fn client_for(url: &str, retry: RetryPolicy) -> MattermostClient {
    MattermostClient::builder(url, ADMIN_TOKEN)
        .retry_policy(retry)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("valid client config")
}

/// A client for the mock server with retries off.
pub fn client(server: &MockServer) -> MattermostClient {
    client_for(&server.base_url(), RetryPolicy::none())
}

/// Matches requests sent with the admin token and not with the user's.
pub fn admin_auth(when: When) -> When {
    when.header("authorization", format!("Bearer {ADMIN_TOKEN}"))
        .header_not("authorization", format!("Bearer {USER_TOKEN}"))
}

/// Matches requests sent with the user's token and not with the admin's.
pub fn user_auth(when: When) -> When {
    when.header("authorization", format!("Bearer {USER_TOKEN}"))
        .header_not("authorization", format!("Bearer {ADMIN_TOKEN}"))
}

/// A user object as a real server sends it, with fields the client does not
/// model (`props`, `notify_props`, `timezone`, `is_bot`, ...).
pub fn user_json(id: &str, username: &str, email: &str) -> Value {
    json!({
        "id": id,
        "create_at": 1_700_000_000_000_i64,
        "update_at": 1_700_000_000_001_i64,
        "delete_at": 0,
        "username": username,
        "auth_data": "",
        "auth_service": "",
        "email": email,
        "email_verified": true,
        "nickname": "",
        "first_name": "Ada",
        "last_name": "Lovelace",
        "position": "",
        "roles": "system_user",
        "props": {},
        "notify_props": {"email": "true", "push": "mention"},
        "last_password_update": 1_700_000_000_000_i64,
        "locale": "en",
        "timezone": {"automaticTimezone": "", "manualTimezone": "", "useAutomaticTimezone": "true"},
        "is_bot": false,
        "disable_welcome_email": false
    })
}

/// Mattermost's JSON error body.
pub fn app_error(id: &str, message: &str, status: u16, request_id: &str) -> Value {
    json!({
        "id": id,
        "message": message,
        "detailed_error": "",
        "request_id": request_id,
        "status_code": status,
        "is_oauth": false
    })
}

// ---------------------------------------------------------------------------
// A scripted raw HTTP/1.1 responder.

/// One scripted answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// A response with `Content-Length`.
    Status {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// A chunked response without `Content-Length`.
    Chunked { status: u16, chunks: Vec<Vec<u8>> },
    /// Read the request, then hold the socket open without answering.
    Hang,
    /// Read the request, then close the connection without answering.
    Close,
}

impl Reply {
    pub fn json(status: u16, body: &Value) -> Self {
        Reply::Status {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: serde_json::to_vec(body).unwrap(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Reply::Status {
            status,
            headers: vec![("Content-Type".into(), "text/plain".into())],
            body: body.as_bytes().to_vec(),
        }
    }

    pub fn header(mut self, k: &str, v: &str) -> Self {
        if let Reply::Status { headers, .. } = &mut self {
            headers.push((k.into(), v.into()));
        }
        self
    }
}

/// A request as the scripted responder received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Serves `replies` in order, one per request (every connection is closed
/// after its answer); answers 599 once the script is used up.
pub struct Scripted {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Scripted {
    pub async fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, replies)
    }

    pub async fn start_at(addr: SocketAddr, replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind(addr).await.unwrap();
        Self::serve(listener, replies)
    }

    fn serve(listener: TcpListener, replies: Vec<Reply>) -> Self {
        let addr = listener.local_addr().unwrap();
        let script = Arc::new(Mutex::new(VecDeque::from(replies)));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(AtomicUsize::new(0));
        let (s, r, c) = (script, requests.clone(), connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(handle(sock, s.clone(), r.clone()));
            }
        });
        Scripted {
            addr,
            requests,
            connections,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests fully received.
    pub fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// Connections accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(sock: &mut TcpStream) -> Option<Recorded> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_owned();
    let target = first.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Recorded {
        method,
        target,
        headers,
        body,
    })
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Unknown")
}

async fn handle(
    mut sock: TcpStream,
    script: Arc<Mutex<VecDeque<Reply>>>,
    requests: Arc<Mutex<Vec<Recorded>>>,
) {
    let Some(req) = read_request(&mut sock).await else {
        return;
    };
    requests.lock().unwrap().push(req);
    let reply = script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or_else(|| Reply::text(599, "script exhausted"));
    match reply {
        Reply::Status {
            status,
            headers,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
                reason(status),
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            bytes.extend_from_slice(&body);
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
        }
        Reply::Chunked { status, chunks } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
                reason(status)
            );
            if sock.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for c in chunks {
                let mut frame = format!("{:x}\r\n", c.len()).into_bytes();
                frame.extend_from_slice(&c);
                frame.extend_from_slice(b"\r\n");
                if sock.write_all(&frame).await.is_err() {
                    return;
                }
            }
            let _ = sock.write_all(b"0\r\n\r\n").await;
            let _ = sock.shutdown().await;
        }
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(sock);
        }
        Reply::Close => drop(sock),
    }
}

/// An address on which nothing listens (a port bound, then released).
pub fn closed_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

// ---------------------------------------------------------------------------
// Capturing `tracing` output.

/// A `tracing_subscriber` writer that keeps everything in memory.
#[derive(Clone, Default)]
pub struct LogCapture(Arc<Mutex<Vec<u8>>>);

impl LogCapture {
    pub fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogCapture {
    type Writer = LogCapture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Installs a TRACE-level fmt subscriber writing into the returned buffer
/// for the current thread until the guard is dropped.
///
/// `tracing` caches each callsite's interest process-wide, computed on the
/// thread that first reaches it: a sibling test without a subscriber would
/// cache "never" and blind the capture. A global, always-interested (and
/// silent) registry keeps every callsite enabled, and the cache is rebuilt
/// once the capture is installed.
pub fn capture_logs() -> (LogCapture, tracing::subscriber::DefaultGuard) {
    static ANCHOR: std::sync::Once = std::sync::Once::new();
    ANCHOR.call_once(|| {
        let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
    });
    let cap = LogCapture::default();
    let sub = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(cap.clone())
        .finish();
    let guard = tracing::subscriber::set_default(sub);
    tracing::callsite::rebuild_interest_cache();
    (cap, guard)
}

/// Asserts that `haystack` holds none of the secrets.
#[track_caller]
pub fn assert_no_secret(what: &str, haystack: &str) {
    for secret in [ADMIN_TOKEN, USER_TOKEN, MINTED_TOKEN] {
        assert!(
            !haystack.contains(secret),
            "{what} shows a secret token: {haystack}"
        );
    }
}
