//! [`ClientBuilder`]: the client's settings, checked when it is built.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderValue;
use url::Url;

use crate::error::Error;
use crate::ids::AccessToken;
use crate::pacing::Pacer;
use crate::retry::RetryPolicy;

use super::*;

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
    allow_http: bool,
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
    pub(super) fn new(url: &str, admin_token: AccessToken) -> Self {
        ClientBuilder {
            url: url.to_owned(),
            admin_token,
            timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            retry: RetryPolicy::default(),
            http: None,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            pacing: true,
            allow_http: false,
        }
    }

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

    /// Accepts a plain `http://` Mattermost URL on a host other than this
    /// machine. Off by default: the admin token (which can create users and
    /// mint tokens for anyone) and every user token would cross the network
    /// in clear. Only for a private network that nobody else can read, such
    /// as a container network between the app and Mattermost.
    pub fn allow_insecure_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// Validates the configuration and builds the client.
    pub fn build(self) -> Result<MattermostClient, Error> {
        let base = parse_base_url(&self.url)?;
        if base.scheme() == "http" && !is_loopback_host(base.host_str().unwrap_or_default()) {
            if !self.allow_http {
                return Err(Error::InvalidConfig(format!(
                    "the Mattermost URL is http:// on {}: the admin token would cross the network \
                     in clear; use https://, or ClientBuilder::allow_insecure_http() on a private \
                     network",
                    base.host_str().unwrap_or_default()
                )));
            }
            tracing::warn!(
                host = base.host_str().unwrap_or_default(),
                "plain http:// to Mattermost: tokens cross the network in clear"
            );
        }
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

/// Whether a URL's host is this machine: `localhost` (and `*.localhost`),
/// `127.0.0.0/8` or `[::1]`.
pub(crate) fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host.ends_with(".localhost")
        || host == "[::1]"
        || host.starts_with("127.")
}

pub(super) fn parse_base_url(raw: &str) -> Result<Url, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_to_another_host_is_refused_unless_allowed() {
        let refused =
            MattermostClient::new("http://chat.example.com", "s3cr3tadminvalue").unwrap_err();
        match &refused {
            Error::InvalidConfig(m) => assert!(m.contains("in clear"), "{m}"),
            e => panic!("{e:?}"),
        }
        assert!(!refused.to_string().contains("s3cr3tadminvalue"));
        for local in [
            "http://127.0.0.1:8065",
            "http://localhost",
            "http://[::1]:8065",
        ] {
            assert!(MattermostClient::new(local, "tok").is_ok(), "{local}");
        }
        assert!(MattermostClient::new("https://chat.example.com", "tok").is_ok());
        let allowed = MattermostClient::builder("http://mattermost:8065", "tok")
            .allow_insecure_http()
            .build();
        assert!(allowed.is_ok());
    }

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
