//! Reading an answer: bounded bodies, and classifying the status and body
//! into a result or a typed, secret-safe error.

use std::sync::Mutex;

/// Mattermost's error id for an API route it does not have.
const ROUTE_NOT_FOUND: &str = "api.context.404.app_error";
/// What Mattermost's error id says when personal access tokens are disabled
/// (`app.user_access_token.disabled`, from `CreateUserAccessToken` in
/// `app/user_access_token.go`; ids vary a little between releases).
const TOKENS_DISABLED_PART: &str = "user_access_token";

use reqwest::StatusCode;
use reqwest::header::HeaderValue;

use crate::error::{ApiError, AppErrorBody, Error, snippet};
use crate::ids::AccessToken;
use crate::rate_limit::retry_after;

use super::*;

pub(super) trait WithoutUrlRef {
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

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn bearer(t: &AccessToken) -> Result<HeaderValue, Error> {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", t.expose_secret())).map_err(|_| {
        Error::InvalidInput("a token contains characters not allowed in an HTTP header".into())
    })?;
    v.set_sensitive(true);
    Ok(v)
}

pub(super) enum Outcome {
    Status(StatusCode, reqwest::header::HeaderMap, Vec<u8>),
    /// The error, and whether it happened while connecting (nothing sent).
    Transport(reqwest::Error, bool),
}

pub(super) enum BodyError {
    TooLarge,
    Transport(reqwest::Error),
}

pub(super) async fn read_bounded(
    mut resp: reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, BodyError> {
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
    pub(super) method: String,
    pub(super) url: String,
}

pub(super) fn body_snippet(req: &Request, body: &[u8]) -> String {
    if req.sensitive {
        "[not shown: the response may hold a token]".into()
    } else {
        snippet(body)
    }
}

pub(super) fn classify(
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
    // A `/tokens` error keeps only its id: a developer-mode message or a
    // proxy echoing the request could quote a token.
    let (id, message, detailed_error, request_id) = match parsed {
        Some(b) => {
            let request_id = if b.request_id.is_empty() {
                header_request_id
            } else {
                Some(b.request_id)
            };
            if req.sensitive {
                (b.id, body_snippet(req, body), String::new(), request_id)
            } else {
                (b.id, b.message, b.detailed_error, request_id)
            }
        }
        None => {
            let message = body_snippet(req, body).trim().to_owned();
            (String::new(), message, String::new(), header_request_id)
        }
    };
    let api = Box::new(ApiError {
        status: status.as_u16(),
        id,
        message,
        detailed_error,
        request_id,
        method: ctx.method.clone(),
        url: ctx.url.clone(),
    });
    // A status means what it says only when Mattermost itself said it (its
    // error JSON with an id): an HTML 404 from a proxy or a wrong base path
    // is not "the token is gone", and must not change what the store holds.
    // `api.context.404.app_error` is Mattermost's answer for a route it does
    // not have (an older server, a wrong path), not for a missing object.
    let from_mattermost = is_json && !api.id.is_empty();
    match status.as_u16() {
        401 => Error::Unauthorized(api),
        403 => Error::PermissionDenied(api),
        404 if from_mattermost && api.id != ROUTE_NOT_FOUND => Error::NotFound(api),
        429 => Error::RateLimited {
            retry_after: retry_after(headers),
            error: api,
        },
        501 if from_mattermost && api.id.contains(TOKENS_DISABLED_PART) => {
            Error::TokensDisabled(api)
        }
        400 if let Some(rule) = crate::error::ExpiryRule::from_error_id(&api.id) => {
            Error::TokenExpiryPolicy { rule, error: api }
        }
        400 if from_mattermost && crate::error::is_user_limit_id(&api.id) => {
            Error::UserLimitReached {
                active: None,
                limit: None,
                error: Some(api),
            }
        }
        400 if api.id.contains("exists") => Error::AlreadyExists(api),
        _ if is_json => Error::Api(api),
        s => Error::BadResponse {
            status: s,
            method: ctx.method.clone(),
            url: ctx.url.clone(),
            reason: if body.is_empty() {
                "error status with an empty body (not Mattermost's own answer)".into()
            } else {
                "error status with a body that is not Mattermost's error JSON".into()
            },
            snippet: api.message,
        },
    }
}
