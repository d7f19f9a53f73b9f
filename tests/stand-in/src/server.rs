//! The HTTP side: the accept loop, the per-request gate (counting, latency,
//! rate limit, faults, common headers) and the shared state it works on.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::error::AppError;
use crate::faults::{Chosen, Fault, FaultPoint, Faults};
use crate::model::{Data, FastMap, new_id};
use crate::rate_limit::{Decision, Limiter};

/// Counters and switches the gate reads on every request.
#[derive(Debug, Default)]
pub(crate) struct Control {
    pub counts: FastMap<String, u64>,
    pub faults: Faults,
    pub latency: Duration,
    pub limiter: Option<Limiter>,
}

/// The state shared by the server task and every [`StandIn`](super::StandIn)
/// handle.
pub(crate) struct Shared {
    data: Mutex<Data>,
    control: Mutex<Control>,
    /// `X-Version-Id`.
    pub version_id: HeaderValue,
    pub version: String,
    pub build_number: String,
    pub site_url: String,
    pub total: AtomicU64,
    pub rate_limited: AtomicU64,
    pub faults_injected: AtomicU64,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("site_url", &self.site_url)
            .field("version_id", &self.version_id)
            .field("total", &self.total)
            .finish_non_exhaustive()
    }
}

/// The build number and config hash a real `X-Version-Id` carries.
const BUILD_NUMBER: &str = "13685270376";
const CONFIG_HASH: &str = "215f100adf6ccda09afcaaa84ac4bfbd";

impl Shared {
    pub fn new(data: Data, control: Control, version: &str, site_url: String) -> Self {
        let version_id = format!("{version}.{BUILD_NUMBER}.{CONFIG_HASH}.true");
        Self {
            data: Mutex::new(data),
            control: Mutex::new(control),
            version_id: HeaderValue::from_str(&version_id)
                .unwrap_or_else(|_| HeaderValue::from_static("11.0.0")),
            version: version.to_owned(),
            build_number: BUILD_NUMBER.to_owned(),
            site_url,
            total: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            faults_injected: AtomicU64::new(0),
        }
    }

    /// The state. A panic elsewhere must not wedge every later request, so
    /// a poisoned lock is taken over as is.
    pub fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn control(&self) -> MutexGuard<'_, Control> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The client's address, put on each request by the accept loop.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PeerAddr(pub SocketAddr);

/// Marks a response that must not be sent: the connection is closed instead.
#[derive(Clone, Copy, Debug)]
struct DropConnection;

/// The error the connection service returns to make hyper close the
/// connection without writing a response.
#[derive(Debug)]
struct ConnectionDropped;

impl fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by an injected fault")
    }
}

impl std::error::Error for ConnectionDropped {}

/// Runs the accept loop until the task is aborted; aborting it also ends
/// every connection (they live in its `JoinSet`).
pub(crate) async fn serve(listener: TcpListener, router: Router) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(_) => {
                        // Out of file descriptors and the like: back off
                        // instead of spinning.
                        tokio::time::sleep(Duration::from_millis(5)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let router = router.clone();
                connections.spawn(async move {
                    let service = service_fn(move |mut request: http::Request<Incoming>| {
                        request.extensions_mut().insert(PeerAddr(peer));
                        let router = router.clone();
                        async move {
                            let response = router
                                .oneshot(request.map(Body::new))
                                .await
                                .unwrap_or_else(|never: Infallible| match never {});
                            if response.extensions().get::<DropConnection>().is_some() {
                                Err(ConnectionDropped)
                            } else {
                                Ok(response)
                            }
                        }
                    });
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// The gate for matched routes: the route key is the method and the route
/// template, e.g. `POST /api/v4/users/{user_id}/tokens`.
pub(crate) async fn route_gate(
    State(shared): State<Arc<Shared>>,
    matched: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let key = format!("{} {}", request.method(), matched.as_str());
    gate(shared, key, request, |r| next.run(r)).await
}

/// The gate and answer for paths no route matches: a Mattermost 404.
pub(crate) async fn unmatched(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let key = format!("{} {}", request.method(), super::UNMATCHED_ROUTE);
    gate(shared, key, request, |_| async {
        AppError::not_found_route().into_response()
    })
    .await
}

/// What every request goes through, in the order a real deployment applies
/// it: the proxy in front (faults before the handler), the server's rate
/// limiter, the handler, then whatever the proxy does with the answer.
async fn gate<F, Fut>(shared: Arc<Shared>, key: String, request: Request, run: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let ip = request
        .extensions()
        .get::<PeerAddr>()
        .map(|p| p.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    shared.total.fetch_add(1, Ordering::Relaxed);
    let (latency, fault) = {
        let mut control = shared.control();
        let fault = control.faults.choose(&key);
        match control.counts.get_mut(&key) {
            Some(n) => *n += 1,
            None => {
                control.counts.insert(key, 1);
            }
        }
        (control.latency, fault)
    };
    if fault.is_some() {
        shared.faults_injected.fetch_add(1, Ordering::Relaxed);
    }
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let request_id = new_id();
    if let Some(Chosen {
        fault,
        point: FaultPoint::BeforeHandler,
    }) = &fault
    {
        return fault_response(&shared, fault, &request_id);
    }
    let decision = shared
        .control()
        .limiter
        .as_mut()
        .map(|l| l.check(ip, tokio::time::Instant::now()));
    let response = match decision {
        Some(d) if d.limited => {
            shared.rate_limited.fetch_add(1, Ordering::Relaxed);
            too_many_requests()
        }
        _ => run(request).await,
    };
    if let Some(Chosen {
        fault,
        point: FaultPoint::AfterHandler,
    }) = &fault
    {
        return fault_response(&shared, fault, &request_id);
    }
    finish(&shared, response, &request_id, decision.as_ref())
}

/// Writes error bodies (which need the request id) and the headers every
/// Mattermost answer carries.
fn finish(
    shared: &Shared,
    mut response: Response,
    request_id: &str,
    decision: Option<&Decision>,
) -> Response {
    if let Some(error) = response.extensions_mut().remove::<AppError>() {
        *response.body_mut() = Body::from(error.body(request_id));
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-request-id", v);
    }
    headers.insert("x-version-id", shared.version_id.clone());
    if let Some(d) = decision {
        headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
        headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
        headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_secs));
        if d.limited {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(d.retry_after_secs));
        }
    }
    response
}

fn too_many_requests() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "limit exceeded\n",
    )
        .into_response()
}

fn fault_response(shared: &Shared, fault: &Fault, request_id: &str) -> Response {
    match fault {
        Fault::Status(status) => {
            let error = AppError::new(
                *status,
                "api.stand_in.injected_fault.app_error",
                "An injected fault: the stand-in was told to fail this request.",
            );
            finish(shared, error.into_response(), request_id, None)
        }
        Fault::ProxyHtml(status) => {
            let code = StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY);
            let title = format!(
                "{} {}",
                code.as_u16(),
                code.canonical_reason().unwrap_or("Error")
            );
            let page = format!(
                "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
            );
            (code, [(header::CONTENT_TYPE, "text/html")], page).into_response()
        }
        Fault::DropConnection => {
            let mut response = Response::new(Body::empty());
            response.extensions_mut().insert(DropConnection);
            response
        }
    }
}

/// Wraps every route of `router` in the gate, and answers unmatched paths.
pub(crate) fn with_gate(router: Router<Arc<Shared>>, shared: Arc<Shared>) -> Router {
    router
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(middleware::from_fn_with_state(shared.clone(), route_gate))
        .fallback(unmatched)
        .with_state(shared)
}

/// Mattermost's router sends a known path with an unknown method to its
/// catch-all, so the answer is the same 404.
async fn method_not_allowed() -> Response {
    AppError::not_found_route().into_response()
}
