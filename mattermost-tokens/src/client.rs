//! The HTTP client: construction, identities, and the request loop with
//! retries, rate-limit bookkeeping and secret-safe errors.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, HeaderValue, USER_AGENT};
use reqwest::{Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use crate::error::{ApiError, AppErrorBody, Error, snippet};
use crate::ids::AccessToken;
use crate::pacing::Pacer;
use crate::rate_limit::{RateLimitStatus, ServerVersion, retry_after};
use crate::retry::RetryPolicy;

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

/// Builds a [`MattermostClient`].
pub struct ClientBuilder {
    url: String,
    admin_token: AccessToken,
    timeout: Duration,
    connect_timeout: Duration,
    user_agent: String,
    retry: RetryPolicy,
    http: Option<reqwest::Client>,
    max_response_bytes: usize,
    pacing: bool,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("url", &self.url)
            .field("admin_token", &"[REDACTED]")
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .field("retry", &self.retry)
            .field("custom_http_client", &self.http.is_some())
            .field("pacing", &self.pacing)
            .finish()
    }
}

impl ClientBuilder {
    /// Total time allowed for one HTTP attempt (default 30 s).
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }

    /// Time allowed to open a connection (default 10 s).
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// The `User-Agent` header (default `mattermost-tokens/<version>`).
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// The retry policy (default [`RetryPolicy::default`]; use
    /// [`RetryPolicy::none`] to turn retries off).
    pub fn retry_policy(mut self, p: RetryPolicy) -> Self {
        self.retry = p;
        self
    }

    /// Use this `reqwest::Client` (and its connection pool) instead of
    /// building one. Do not enable a cookie store on it: Mattermost's CSRF
    /// check rejects cookie-carrying token requests. The timeout set here is
    /// still applied per request.
    pub fn http_client(mut self, c: reqwest::Client) -> Self {
        self.http = Some(c);
        self
    }

    /// Largest response body accepted (default 8 MiB); larger answers give
    /// [`Error::BadResponse`] without being read further.
    pub fn max_response_bytes(mut self, n: usize) -> Self {
        self.max_response_bytes = n;
        self
    }

    /// Pace requests by the server's `X-RateLimit-*` headers so that a
    /// rate-limited server sees no burst of 429s (default on). The budget is
    /// shared by every clone of the client, as the server's is shared by
    /// every request from one address.
    pub fn pace_requests(mut self, on: bool) -> Self {
        self.pacing = on;
        self
    }

    /// Validates the configuration and builds the client.
    pub fn build(self) -> Result<MattermostClient, Error> {
        let base = parse_base_url(&self.url)?;
        if self.admin_token.expose_secret().trim().is_empty() {
            return Err(Error::InvalidConfig("the admin token is empty".into()));
        }
        if HeaderValue::from_str(&format!("Bearer {}", self.admin_token.expose_secret())).is_err() {
            return Err(Error::InvalidConfig(
                "the admin token contains characters not allowed in an HTTP header".into(),
            ));
        }
        let ua = HeaderValue::from_str(&self.user_agent).map_err(|_| {
            Error::InvalidConfig("the user agent is not a valid header value".into())
        })?;
        let http = match self.http {
            Some(c) => c,
            None => reqwest::Client::builder()
                .connect_timeout(self.connect_timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .build()
                .map_err(|e| {
                    Error::InvalidConfig(format!(
                        "cannot build the HTTP client: {}",
                        e.without_url()
                    ))
                })?,
        };
        Ok(MattermostClient {
            inner: Arc::new(Inner {
                http,
                base,
                admin_bearer: bearer(&self.admin_token)?,
                user_agent: ua,
                timeout: self.timeout,
                retry: self.retry,
                max_response_bytes: self.max_response_bytes,
                rate: Mutex::new(None),
                version: Mutex::new(None),
                pacer: self.pacing.then(Pacer::default),
            }),
        })
    }
}

fn parse_base_url(raw: &str) -> Result<Url, Error> {
    let mut url = Url::parse(raw.trim()).map_err(|e| {
        Error::InvalidConfig(format!(
            "the Mattermost URL is not a valid URL ({e}); expected something like https://chat.example.com"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(Error::InvalidConfig(format!(
            "the Mattermost URL must start with http:// or https://, not {}://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Error::InvalidConfig(
            "the Mattermost URL has no host".into(),
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidConfig(
            "the Mattermost URL must not have a query string or fragment".into(),
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::InvalidConfig(
            "the Mattermost URL must not carry credentials; pass the admin token separately".into(),
        ));
    }
    // Accept https://host, https://host/, https://host/sub and .../api/v4.
    let path = url.path().trim_end_matches('/').to_owned();
    let path = path.strip_suffix("/api/v4").unwrap_or(&path).to_owned();
    url.set_path(&format!("{path}/"));
    Ok(url)
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
        ClientBuilder {
            url: url.to_owned(),
            admin_token: admin_token.into(),
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            retry: RetryPolicy::default(),
            http: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            pacing: true,
        }
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
        let (status, body, ctx) = self.execute_raw(identity, &req).await?;
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
            let _in_flight = match &inner.pacer {
                Some(p) => Some(p.before_request().await),
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
            let outcome = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status();
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

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    /// The error's message with the URL left out (a URL may hold a query).
    fn without_url_ref(&self) -> String {
        let mut s = String::new();
        let mut src: Option<&dyn std::error::Error> = std::error::Error::source(self);
        s.push_str(if self.is_timeout() {
            "timed out"
        } else if self.is_connect() {
            "connect error"
        } else if self.is_body() || self.is_decode() {
            "body error"
        } else {
            "request error"
        });
        while let Some(e) = src {
            s.push_str(": ");
            s.push_str(&e.to_string());
            src = e.source();
        }
        s
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn bearer(t: &AccessToken) -> Result<HeaderValue, Error> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose_secret())).map_err(|_| {
        Error::InvalidInput("a token contains characters not allowed in an HTTP header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

enum Outcome {
    Status(StatusCode, reqwest::header::HeaderMap, Vec<u8>),
    /// The error, and whether it happened while connecting (nothing sent).
    Transport(reqwest::Error, bool),
}

enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

async fn read_bounded(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, BodyError> {
    if resp.content_length().is_some_and(|n| n > max as u64) {
        return Err(BodyError::TooLarge);
    }
    let mut buf = Vec::with_capacity(resp.content_length().map_or(0, |n| n as usize));
    while let Some(chunk) = resp.chunk().await.map_err(BodyError::Transport)? {
        if buf.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf)
}

#[derive(Clone, Debug)]
pub(crate) struct Ctx {
    method: String,
    url: String,
}

fn body_snippet(req: &Request, body: &[u8]) -> String {
    if req.sensitive {
        "[not shown: the response may hold a token]".into()
    } else {
        snippet(body)
    }
}

fn classify(
    ctx: &Ctx,
    req: &Request,
    status: StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &[u8],
) -> Error {
    let header_request_id = headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Only a JSON object is Mattermost's error body (serde would also read
    // an array into the struct, taking arbitrary values as id and message).
    let parsed: Option<AppErrorBody> = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .and_then(|v| serde_json::from_value(v).ok());
    let is_json = parsed.is_some();
    let api = Box::new(match parsed {
        // A `/tokens` error keeps only its id: a developer-mode message or
        // a proxy echoing the request could quote a token.
        Some(b) if req.sensitive => ApiError {
            status: status.as_u16(),
            id: b.id,
            message: body_snippet(req, body),
            detailed_error: String::new(),
            request_id: if b.request_id.is_empty() {
                header_request_id
            } else {
                Some(b.request_id)
            },
            method: ctx.method.clone(),
            url: ctx.url.clone(),
        },
        Some(b) => ApiError {
            status: status.as_u16(),
            id: b.id,
            message: b.message,
            detailed_error: b.detailed_error,
            request_id: if b.request_id.is_empty() {
                header_request_id
            } else {
                Some(b.request_id)
            },
            method: ctx.method.clone(),
            url: ctx.url.clone(),
        },
        None => ApiError {
            status: status.as_u16(),
            id: String::new(),
            message: body_snippet(req, body).trim().to_owned(),
            detailed_error: String::new(),
            request_id: header_request_id,
            method: ctx.method.clone(),
            url: ctx.url.clone(),
        },
    });
    match status.as_u16() {
        401 => Error::Unauthorized(api),
        403 => Error::PermissionDenied(api),
        404 => Error::NotFound(api),
        429 => Error::RateLimited {
            retry_after: retry_after(headers),
            error: api,
        },
        501 => Error::TokensDisabled(api),
        400 if let Some(rule) = crate::error::ExpiryRule::from_error_id(&api.id) => {
            Error::TokenExpiryPolicy { rule, error: api }
        }
        400 if api.id.contains("exists") => Error::AlreadyExists(api),
        _ if is_json => Error::Api(api),
        s => Error::BadResponse {
            status: s,
            method: ctx.method.clone(),
            url: ctx.url.clone(),
            reason: if body.is_empty() {
                "error status with an empty body".into()
            } else {
                "error status with a body that is not Mattermost's error JSON".into()
            },
            snippet: api.message,
        },
    }
}

/// One API request, described before it is sent.
#[derive(Debug)]
pub(crate) struct Request {
    method: Method,
    path: Vec<String>,
    query: Vec<(&'static str, String)>,
    /// Shared, so a retry sends it again without a copy.
    body: Option<bytes::Bytes>,
    /// Safe to repeat after a 5xx or a broken connection.
    idempotent: bool,
    /// The response may carry a token: never show its body.
    sensitive: bool,
    auth: bool,
}

impl Request {
    fn new(method: Method, path: &[&str]) -> Self {
        let idempotent = method != Method::POST;
        Request {
            method,
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            query: Vec::new(),
            body: None,
            idempotent,
            sensitive: false,
            auth: true,
        }
    }

    pub(crate) fn get(path: &[&str]) -> Self {
        Self::new(Method::GET, path)
    }

    pub(crate) fn post(path: &[&str]) -> Self {
        Self::new(Method::POST, path)
    }

    pub(crate) fn put(path: &[&str]) -> Self {
        Self::new(Method::PUT, path)
    }

    pub(crate) fn delete(path: &[&str]) -> Self {
        Self::new(Method::DELETE, path)
    }

    pub(crate) fn json(mut self, body: &impl Serialize) -> Result<Self, Error> {
        self.body = Some(
            serde_json::to_vec(body)
                .map_err(|e| Error::InvalidInput(format!("cannot encode the request: {e}")))?
                .into(),
        );
        Ok(self)
    }

    pub(crate) fn query(mut self, k: &'static str, v: impl ToString) -> Self {
        self.query.push((k, v.to_string()));
        self
    }

    /// Marks a POST as safe to repeat (it changes nothing when repeated).
    pub(crate) fn idempotent(mut self) -> Self {
        self.idempotent = true;
        self
    }

    pub(crate) fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    fn no_auth(mut self) -> Self {
        self.auth = false;
        self
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_forms() {
        for (raw, want) in [
            ("https://chat.example.com", "https://chat.example.com/"),
            ("https://chat.example.com/", "https://chat.example.com/"),
            (
                "https://chat.example.com/api/v4",
                "https://chat.example.com/",
            ),
            ("https://example.com/mm/", "https://example.com/mm/"),
            ("http://127.0.0.1:8065", "http://127.0.0.1:8065/"),
        ] {
            assert_eq!(parse_base_url(raw).unwrap().as_str(), want, "{raw}");
        }
        for bad in [
            "",
            "chat.example.com",
            "ftp://x",
            "https://x/?a=b",
            "https://u:p@x/",
        ] {
            assert!(
                matches!(parse_base_url(bad), Err(Error::InvalidConfig(_))),
                "{bad}"
            );
        }
    }
}
