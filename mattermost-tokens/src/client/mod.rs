//! The HTTP client: construction, identities, and the request loop with
//! retries, rate-limit bookkeeping and secret-safe errors.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::Error;
use crate::ids::AccessToken;
use crate::pacing::Pacer;
use crate::rate_limit::{RateLimitStatus, ServerVersion, retry_after};
use crate::retry::RetryPolicy;

mod builder;
mod request;
mod response;

pub use builder::ClientBuilder;
pub(crate) use builder::is_loopback_host;
pub(crate) use request::Request;
use response::*;

/// The default limit on a response body; larger answers are refused.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

const DEFAULT_USER_AGENT: &str = concat!("mattermost-tokens/", env!("CARGO_PKG_VERSION"));

/// Who a request acts as.
#[derive(Clone)]
pub enum Identity {
    /// The admin token the client was built with.
    Admin,
    /// A user's personal access token.
    User(AccessToken),
}

impl Identity {
    /// `"admin"` or `"user"`, as shown in logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Identity::Admin => "admin",
            Identity::User(_) => "user",
        }
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Identity::Admin => f.write_str("Identity::Admin"),
            Identity::User(_) => f.write_str("Identity::User([REDACTED])"),
        }
    }
}

struct Inner {
    http: reqwest::Client,
    /// The server's root URL, ending in `/` (without `api/v4`).
    base: Url,
    /// The admin's `Authorization` value, built once (marked sensitive).
    admin_bearer: HeaderValue,
    user_agent: HeaderValue,
    timeout: Duration,
    retry: RetryPolicy,
    max_response_bytes: usize,
    rate: Mutex<Option<RateLimitStatus>>,
    version: Mutex<Option<ServerVersion>>,
    pacer: Option<Pacer>,
}

/// A typed, rate-limit-aware Mattermost API v4 client.
///
/// Cheap to clone: clones share one connection pool, one rate-limit budget
/// and the admin token. The identity of each call is chosen per call with
/// [`MattermostClient::as_admin`] or [`MattermostClient::as_user`], never by
/// mutating the client.
///
/// ```no_run
/// # async fn demo() -> Result<(), mattermost_tokens::Error> {
/// use mattermost_tokens::MattermostClient;
///
/// let client = MattermostClient::new("https://chat.example.com", "admin-token")?;
/// let me = client.as_admin().me().await?;
/// println!("acting as {} (admin: {})", me.username, me.is_system_admin());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MattermostClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for MattermostClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MattermostClient")
            .field("url", &self.inner.base.as_str())
            .field("admin_token", &"[REDACTED]")
            .field("retry", &self.inner.retry)
            .finish()
    }
}

impl MattermostClient {
    /// A client with default options for the server at `url` (such as
    /// `https://chat.example.com`), acting as admin with `admin_token`.
    pub fn new(url: &str, admin_token: impl Into<AccessToken>) -> Result<Self, Error> {
        Self::builder(url, admin_token).build()
    }

    /// A builder for a client with non-default options.
    pub fn builder(url: &str, admin_token: impl Into<AccessToken>) -> ClientBuilder {
        ClientBuilder::new(url, admin_token.into())
    }

    /// The server's root URL (ending in `/`).
    pub fn server_url(&self) -> &Url {
        &self.inner.base
    }

    /// Calls made through the returned handle act as the admin.
    pub fn as_admin(&self) -> Acting {
        self.acting(Identity::Admin)
    }

    /// Calls made through the returned handle act as the owner of `token`.
    pub fn as_user(&self, token: AccessToken) -> Acting {
        self.acting(Identity::User(token))
    }

    /// Calls made through the returned handle act as `identity`.
    pub fn acting(&self, identity: Identity) -> Acting {
        Acting {
            client: self.clone(),
            identity,
        }
    }

    /// The latest rate-limit headers seen, if the server sends them.
    pub fn rate_limit(&self) -> Option<RateLimitStatus> {
        *lock(&self.inner.rate)
    }

    /// The server version from the latest `X-Version-Id` header seen.
    pub fn server_version(&self) -> Option<ServerVersion> {
        *lock(&self.inner.version)
    }

    /// The retry policy in force.
    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.inner.retry
    }

    /// `GET /system/ping` without credentials: whether the server is up.
    pub async fn ping(&self) -> Result<(), Error> {
        let _: serde_json::Value = self
            .execute(None, Request::get(&["system", "ping"]).no_auth())
            .await?;
        Ok(())
    }

    pub(crate) async fn execute<T: DeserializeOwned>(
        &self,
        identity: Option<&Identity>,
        req: Request,
    ) -> Result<T, Error> {
        use tracing::Instrument;
        let span = tracing::debug_span!(
            "mattermost_request",
            method = %req.method,
            endpoint = %req.endpoint(),
            identity = identity.map_or("none", Identity::kind),
            status = tracing::field::Empty,
            attempt = tracing::field::Empty,
        );
        let (status, body, ctx) = self.execute_raw(identity, &req).instrument(span).await?;
        if body.is_empty()
            && status == StatusCode::NO_CONTENT
            && let Ok(v) = serde_json::from_str("null")
        {
            return Ok(v);
        }
        serde_json::from_slice(&body).map_err(|e| Error::BadResponse {
            status: status.as_u16(),
            method: ctx.method.clone(),
            url: ctx.url.clone(),
            reason: if body.is_empty() {
                "empty body where JSON was expected".into()
            } else if req.sensitive {
                // serde's message may quote a value from the body.
                format!(
                    "unexpected JSON shape at line {} column {}",
                    e.line(),
                    e.column()
                )
            } else {
                format!("unexpected JSON: {e}")
            },
            snippet: body_snippet(&req, &body),
        })
    }

    async fn execute_raw(
        &self,
        identity: Option<&Identity>,
        req: &Request,
    ) -> Result<(StatusCode, Vec<u8>, Ctx), Error> {
        let inner = &*self.inner;
        // The url crate drops `.` and `..` segments, which would send the
        // request to another endpoint; an empty one does the same.
        if let Some(bad) = req
            .path
            .iter()
            .find(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(Error::InvalidInput(format!(
                "{bad:?} cannot be used as a name or id in a request path"
            )));
        }
        let mut url = inner.base.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|_| Error::InvalidConfig("the Mattermost URL cannot be a base".into()))?;
            segs.pop_if_empty().extend(["api", "v4"]).extend(&req.path);
        }
        let ctx = Ctx {
            method: req.method.to_string(),
            url: url.to_string(),
        };
        if !req.query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(req.query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let auth = match (req.auth, identity) {
            (false, _) | (true, None) => None,
            (true, Some(Identity::Admin)) => Some(inner.admin_bearer.clone()),
            (true, Some(Identity::User(t))) => Some(bearer(t)?),
        };
        let who = identity.map_or("none", Identity::kind);
        let started = Instant::now();
        let mut attempt: u32 = 0;
        let mut waited = Duration::ZERO;
        loop {
            attempt += 1;
            // The pacer's wait counts against the same budget as the
            // retries' waits: past it, the request goes out unpaced.
            let _in_flight = match &inner.pacer {
                Some(p) => {
                    let budget = inner.retry.max_total_wait.saturating_sub(waited);
                    let (slot, paced) = p.before_request(budget).await;
                    waited += paced;
                    Some(slot)
                }
                None => None,
            };
            let mut rb = inner
                .http
                .request(req.method.clone(), url.clone())
                .timeout(inner.timeout)
                .header(USER_AGENT, inner.user_agent.clone())
                .header("X-Requested-With", "XMLHttpRequest");
            if let Some(a) = &auth {
                rb = rb.header(AUTHORIZATION, a.clone());
            }
            if let Some(b) = &req.body {
                rb = rb
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.clone());
            }
            let sent = Instant::now();
            let outcome = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    crate::telemetry::request(
                        req.method.as_str(),
                        || req.endpoint(),
                        Some(status.as_u16()),
                        sent.elapsed(),
                    );
                    if status == StatusCode::UNAUTHORIZED
                        && matches!(identity, Some(Identity::User(_)))
                    {
                        crate::telemetry::user_token_unauthorized();
                    }
                    if status == StatusCode::TOO_MANY_REQUESTS {
                        crate::telemetry::rate_limited();
                    }
                    tracing::Span::current()
                        .record("status", status.as_u16())
                        .record("attempt", attempt);
                    self.observe(resp.headers());
                    // Only an error answer needs its headers after the body.
                    let headers = (!status.is_success()).then(|| resp.headers().clone());
                    let body = read_bounded(resp, inner.max_response_bytes).await;
                    tracing::debug!(
                        method = %ctx.method, url = %ctx.url, identity = who, status = status.as_u16(),
                        attempt, elapsed_ms = started.elapsed().as_millis() as u64,
                        "mattermost request"
                    );
                    match body {
                        Err(BodyError::TooLarge) => {
                            return Err(Error::BadResponse {
                                status: status.as_u16(),
                                method: ctx.method.clone(),
                                url: ctx.url.clone(),
                                reason: format!(
                                    "body larger than the {} byte limit",
                                    inner.max_response_bytes
                                ),
                                snippet: String::new(),
                            });
                        }
                        Err(BodyError::Transport(e)) => Outcome::Transport(e, false),
                        Ok(body) if status.is_success() => return Ok((status, body, ctx)),
                        Ok(body) => Outcome::Status(status, headers.unwrap_or_default(), body),
                    }
                }
                Err(e) => {
                    crate::telemetry::request(
                        req.method.as_str(),
                        || req.endpoint(),
                        None,
                        sent.elapsed(),
                    );
                    tracing::debug!(
                        method = %ctx.method, url = %ctx.url, identity = who, attempt,
                        error = %e.without_url_ref(), "mattermost request failed"
                    );
                    let connect = e.is_connect();
                    Outcome::Transport(e, connect)
                }
            };
            let (err, delay) = match outcome {
                Outcome::Status(status, headers, body) => {
                    let err = classify(&ctx, req, status, &headers, &body);
                    let delay = if status == StatusCode::TOO_MANY_REQUESTS {
                        (attempt < inner.retry.max_rate_limited_attempts)
                            .then(|| inner.retry.rate_limited_wait(retry_after(&headers)))
                    } else if status.is_server_error()
                        && status != StatusCode::NOT_IMPLEMENTED
                        && req.idempotent
                        && attempt < inner.retry.max_attempts
                    {
                        Some(inner.retry.backoff(attempt))
                    } else {
                        None
                    };
                    (err, delay)
                }
                Outcome::Transport(e, connect) => {
                    let e = e.without_url();
                    let delay = ((connect || req.idempotent) && attempt < inner.retry.max_attempts)
                        .then(|| inner.retry.backoff(attempt));
                    let err = if e.is_timeout() {
                        Error::Timeout {
                            method: ctx.method.clone(),
                            url: ctx.url.clone(),
                        }
                    } else if connect {
                        Error::Unreachable {
                            method: ctx.method.clone(),
                            url: ctx.url.clone(),
                            source: e,
                        }
                    } else {
                        Error::Transport {
                            method: ctx.method.clone(),
                            url: ctx.url.clone(),
                            source: e,
                        }
                    };
                    (err, delay)
                }
            };
            match delay {
                Some(d) if waited + d <= inner.retry.max_total_wait => {
                    tracing::debug!(
                        method = %ctx.method, url = %ctx.url, attempt, wait_ms = d.as_millis() as u64,
                        error = %err, "retrying mattermost request"
                    );
                    if let (Some(p), Error::RateLimited { retry_after, .. }) = (&inner.pacer, &err)
                    {
                        p.on_rate_limited(*retry_after);
                    }
                    crate::telemetry::retry(match &err {
                        Error::RateLimited { .. } => crate::telemetry::Retry::RateLimited,
                        Error::Timeout { .. }
                        | Error::Unreachable { .. }
                        | Error::Transport { .. } => crate::telemetry::Retry::Transport,
                        _ => crate::telemetry::Retry::ServerError,
                    });
                    tokio::time::sleep(d).await;
                    waited += d;
                }
                _ => return Err(err),
            }
        }
    }

    fn observe(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(s) = RateLimitStatus::from_headers(headers) {
            *lock(&self.inner.rate) = Some(s);
            if let Some(p) = &self.inner.pacer {
                p.observe(&s);
            }
        }
        if let Some(v) = headers
            .get("x-version-id")
            .and_then(|v| v.to_str().ok())
            .and_then(ServerVersion::parse)
        {
            let mut cur = lock(&self.inner.version);
            if *cur != Some(v) {
                *cur = Some(v);
            }
        }
    }
}

/// A [`MattermostClient`] handle bound to one identity. Cheap to create and
/// clone; the endpoint methods live in the `api` modules.
#[derive(Clone)]
pub struct Acting {
    pub(crate) client: MattermostClient,
    pub(crate) identity: Identity,
}

impl fmt::Debug for Acting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acting")
            .field("identity", &self.identity)
            .finish()
    }
}

impl Acting {
    /// Who the calls act as.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The client underneath.
    pub fn client(&self) -> &MattermostClient {
        &self.client
    }

    pub(crate) async fn call<T: DeserializeOwned>(&self, req: Request) -> Result<T, Error> {
        self.client.execute(Some(&self.identity), req).await
    }
}
