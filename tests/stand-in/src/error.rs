//! The stand-in's copy of Mattermost's `AppError`, the JSON body of every API
//! error.

use std::borrow::Cow;
use std::fmt;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::Serialize;

/// An error the stand-in answers with, shaped like Mattermost's `AppError`.
///
/// Over HTTP it becomes the body
/// `{"id", "message", "detailed_error": "", "request_id", "status_code"}`.
/// The direct arrangement methods of [`StandIn`](super::StandIn) return it
/// too, so a test sees the same refusal the HTTP API would have given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppError {
    /// The HTTP status, e.g. 400.
    pub status: u16,
    /// Mattermost's error id, e.g. `app.user.save.email_exists.app_error`.
    pub id: Cow<'static, str>,
    /// The English message a real server sends with this id.
    pub message: String,
}

impl AppError {
    pub(crate) fn new(
        status: u16,
        id: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            id: id.into(),
            message: message.into(),
        }
    }

    pub(crate) fn invalid_url_param(name: &str) -> Self {
        Self::new(
            400,
            "api.context.invalid_url_param.app_error",
            format!("Invalid or missing {name} parameter in request URL."),
        )
    }

    pub(crate) fn invalid_body_param(name: &str) -> Self {
        Self::new(
            400,
            "api.context.invalid_body_param.app_error",
            format!("Invalid or missing {name} in request body."),
        )
    }

    pub(crate) fn permissions() -> Self {
        Self::new(
            403,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions.",
        )
    }

    pub(crate) fn session_expired() -> Self {
        Self::new(
            401,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        )
    }

    pub(crate) fn missing_account() -> Self {
        Self::new(
            404,
            "app.user.missing_account.const",
            "Unable to find the user.",
        )
    }

    pub(crate) fn not_found_route() -> Self {
        Self::new(
            404,
            "api.context.404.app_error",
            "Sorry, we could not find the page.",
        )
    }

    /// The JSON body, with the request id the response carries.
    pub(crate) fn body(&self, request_id: &str) -> Vec<u8> {
        #[derive(Serialize)]
        struct Body<'a> {
            id: &'a str,
            message: &'a str,
            detailed_error: &'a str,
            request_id: &'a str,
            status_code: u16,
        }
        serde_json::to_vec(&Body {
            id: &self.id,
            message: &self.message,
            detailed_error: "",
            request_id,
            status_code: self.status,
        })
        .unwrap_or_default()
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.status, self.id, self.message)
    }
}

impl std::error::Error for AppError {}

impl IntoResponse for AppError {
    /// The body is written later, by the request gate, which knows the
    /// request id; here the error rides along as a response extension.
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}
