//! The redeem route for axum (feature `axum`).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header::{HeaderName, HeaderValue, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::page::ERROR_PAGE;
use super::{
    INVALID_LINK_PAGE, MagicLinks, PAGE_HEADERS, REDEEM_PATH, RESPONSE_HEADERS, Redemption,
};
use crate::error::Error;

impl MagicLinks {
    /// An axum router serving the redeem route at [`REDEEM_PATH`]:
    /// - `GET ?code=...`: the confirm page (uses nothing up);
    /// - `POST` with the form field `code`: redeems it, sets the Mattermost
    ///   cookies and answers `303 See Other` into Mattermost.
    ///
    /// Every answer carries [`RESPONSE_HEADERS`]. Invalid, expired and used
    /// codes all get `400` and the same page ([`INVALID_LINK_PAGE`]). A POST
    /// a browser marks as cross-site (`Sec-Fetch-Site: cross-site`) is
    /// refused with `403`: another site must not sign the user in to an
    /// account of its choosing.
    ///
    /// Merge it into the host's router: `app.merge(links.router())`. The
    /// route issuing links belongs to the host, behind its login.
    pub fn router(&self) -> Router {
        Router::new()
            .route(REDEEM_PATH, get(confirm).post(redeem))
            .with_state(self.clone())
    }
}

/// The `code` field of a query string or form body. Parsed by hand so that
/// no extractor rejection message (logged at TRACE by axum) can echo input.
fn code_field(input: &[u8]) -> String {
    url::form_urlencoded::parse(input)
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

async fn confirm(State(links): State<MagicLinks>, RawQuery(query): RawQuery) -> Response {
    let code = code_field(query.as_deref().unwrap_or_default().as_bytes());
    match links.confirm_page(&code).await {
        Ok(page) => page_response(StatusCode::OK, page.into_html()),
        Err(e) => error_response(&e),
    }
}

async fn redeem(State(links): State<MagicLinks>, headers: HeaderMap, body: Bytes) -> Response {
    let cross_site = headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"));
    if cross_site {
        tracing::info!("cross-site magic link redemption refused");
        return page_response(StatusCode::FORBIDDEN, INVALID_LINK_PAGE.to_owned());
    }
    let code = code_field(&body);
    match links.redeem(&code).await {
        Ok(r) => redirect_response(&r),
        Err(e) => error_response(&e),
    }
}

fn with_headers(
    mut response: Response,
    headers: impl IntoIterator<Item = (&'static str, &'static str)>,
) -> Response {
    for (name, value) in headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

fn page_response(status: StatusCode, html: String) -> Response {
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    with_headers(response, PAGE_HEADERS.into_iter().chain(RESPONSE_HEADERS))
}

fn error_response(e: &Error) -> Response {
    match e {
        Error::InvalidMagicLink { .. } => {
            page_response(StatusCode::BAD_REQUEST, INVALID_LINK_PAGE.to_owned())
        }
        e => {
            tracing::warn!(error = %e, "magic link route failed");
            page_response(StatusCode::INTERNAL_SERVER_ERROR, ERROR_PAGE.to_owned())
        }
    }
}

fn redirect_response(r: &Redemption) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    match HeaderValue::from_str(r.redirect_url().as_str()) {
        Ok(v) => {
            headers.insert(LOCATION, v);
        }
        Err(_) => return error_response(&Error::InvalidConfig("bad redirect URL".into())),
    }
    for cookie in r.set_cookie_headers() {
        match HeaderValue::from_str(&cookie) {
            Ok(v) => {
                headers.append(SET_COOKIE, v);
            }
            // The values are ids and tokens; a token with a control
            // character cannot be a cookie. Say so without the value.
            Err(_) => {
                return error_response(&Error::InvalidInput(
                    "a Mattermost cookie value is not a valid header value".into(),
                ));
            }
        }
    }
    with_headers(response, RESPONSE_HEADERS)
}
