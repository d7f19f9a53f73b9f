//! The redeem route for axum (feature `axum`).

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::header::{COOKIE, HeaderName, HeaderValue, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::page::ERROR_PAGE;
use super::{
    INVALID_LINK_PAGE, LOGOUT_PATH, MagicLinks, PAGE_HEADERS, REDEEM_PATH, RESPONSE_HEADERS,
    Redemption, binding_from_cookie_header,
};
use crate::error::Error;

impl MagicLinks {
    /// An axum router serving the redeem route at [`REDEEM_PATH`]:
    /// - `GET ?code=...`: the confirm page (uses nothing up);
    /// - `POST` with the form field `code`: redeems it, sets the Mattermost
    ///   cookies and answers `303 See Other` into Mattermost.
    ///
    /// And at [`LOGOUT_PATH`] (`GET` or `POST`): expires the cookies
    /// ([`logout_cookies`](Self::logout_cookies)) and answers `303 See
    /// Other` to Mattermost's sign-in.
    ///
    /// Every answer carries [`RESPONSE_HEADERS`]. Invalid, expired and used
    /// codes all get `400` and the same page ([`INVALID_LINK_PAGE`]). A
    /// redeem `POST` must come from the confirm page itself: its `Origin`
    /// must be the redeem URL's, or, without `Origin` or with the opaque
    /// `null` (which browsers send for the confirm page's own form, as its
    /// `no-referrer` policy hides the origin), `Sec-Fetch-Site` must say
    /// `same-origin`; anything else (a page on a sibling host or
    /// another site, a request without either header) is refused with
    /// `403`, so no page can sign the user in to an account of its
    /// choosing (login CSRF).
    ///
    /// Merge it into the host's router: `app.merge(links.router())`. The
    /// route issuing links belongs to the host, behind its login.
    pub fn router(&self) -> Router {
        Router::new()
            .route(REDEEM_PATH, get(confirm).post(redeem))
            .route(LOGOUT_PATH, get(logout).post(logout))
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

/// The request's link binding cookie, if any.
fn binding(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(binding_from_cookie_header)
}

async fn confirm(
    State(links): State<MagicLinks>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let code = code_field(query.as_deref().unwrap_or_default().as_bytes());
    match links.confirm_page(&code, binding(&headers)).await {
        Ok(page) => page_response(StatusCode::OK, page.into_html()),
        Err(e) => error_response(&e),
    }
}

/// Whether a redeem POST comes from the confirm page's own origin.
fn same_origin(links: &MagicLinks, headers: &HeaderMap) -> bool {
    let Some(redeem) = links.redeem_url() else {
        return false;
    };
    match headers.get("origin").map(|v| v.as_bytes()) {
        // A page whose referrer policy is `no-referrer`, as the confirm
        // page's is, sends its form with `Origin: null` (the Fetch
        // standard's "serializing a request origin").
        Some(origin) if origin != b"null" => {
            origin == redeem.origin().ascii_serialization().as_bytes()
        }
        _ => headers
            .get("sec-fetch-site")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"same-origin")),
    }
}

async fn redeem(State(links): State<MagicLinks>, headers: HeaderMap, body: Bytes) -> Response {
    if !same_origin(&links, &headers) {
        tracing::info!("magic link redemption from another origin refused");
        return page_response(StatusCode::FORBIDDEN, INVALID_LINK_PAGE.to_owned());
    }
    let code = code_field(&body);
    match links.redeem(&code, binding(&headers)).await {
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
    see_other(r.redirect_url(), r.set_cookie_headers())
}

/// `303 See Other` to `to`, setting `cookies`, with [`RESPONSE_HEADERS`].
fn see_other(to: &url::Url, cookies: Vec<String>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SEE_OTHER;
    let headers = response.headers_mut();
    match HeaderValue::from_str(to.as_str()) {
        Ok(v) => {
            headers.insert(LOCATION, v);
        }
        Err(_) => return error_response(&Error::InvalidConfig("bad redirect URL".into())),
    }
    for cookie in cookies {
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

async fn logout(State(links): State<MagicLinks>) -> Response {
    let (Ok(cookies), Ok(to)) = (links.logout_cookies(), links.logout_redirect()) else {
        return page_response(StatusCode::NOT_FOUND, ERROR_PAGE.to_owned());
    };
    tracing::info!("magic link session cookies expired");
    see_other(to, cookies)
}
