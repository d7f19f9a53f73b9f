//! Binding a link to the browser that asked for it.
//!
//! A code alone signs in whoever presses Continue: a link forwarded, logged
//! by a proxy or read over a shoulder works for anyone. So, unless turned
//! off ([`MagicLinkConfig::browser_binding`](super::MagicLinkConfig::browser_binding)),
//! issuing a link also makes a random binding, sent to the browser that
//! asked in an `HttpOnly` cookie scoped to the redeem route
//! ([`MagicLink::binding_cookie`](super::MagicLink::binding_cookie)), and
//! the code is stored hashed together with it
//! ([`CodeHash::of_bound_code`]). Only a request carrying that cookie finds
//! the code; the same link opened in another browser is an unknown code.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use secrecy::SecretString;

use super::{CodeHash, CodeMode};

/// The name of the cookie holding a link's browser binding.
pub const BINDING_COOKIE: &str = "mmt_link_binding";

/// A fresh binding: 256 random bits, base64url.
pub(super) fn new_binding() -> SecretString {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes).into()
}

/// The binding cookie with `value`: `HttpOnly`, only for the redeem
/// route's path, `SameSite=Lax` (the link is opened by a top-level
/// navigation, from a mail or a chat), `Secure` as the session cookies are.
fn cookie_of(mode: &CodeMode, value: &str) -> cookie::Cookie<'static> {
    cookie::Cookie::build((BINDING_COOKIE, value.to_owned()))
        .path(mode.redeem_url.path().to_owned())
        .http_only(true)
        .secure(mode.secure)
        .same_site(cookie::SameSite::Lax)
        .build()
}

/// The `Set-Cookie` value carrying `binding` to the browser, gone when the
/// link expires.
pub(super) fn binding_cookie(mode: &CodeMode, binding: &str, ttl_secs: i64) -> String {
    let mut c = cookie_of(mode, binding);
    c.set_max_age(cookie::time::Duration::seconds(ttl_secs));
    c.to_string()
}

/// The `Set-Cookie` value removing the binding once it was used.
pub(super) fn binding_removal(mode: &CodeMode) -> String {
    let mut c = cookie_of(mode, "");
    c.make_removal();
    c.to_string()
}

/// The stored hash a code (and, for bound links, the browser's binding)
/// stands for; `None` when a bound link comes without its binding.
pub(super) fn stored_hash(mode: &CodeMode, code: &str, binding: Option<&str>) -> Option<CodeHash> {
    match (mode.bind, binding) {
        (false, _) => Some(CodeHash::of_code(code)),
        (true, Some(b)) if !b.is_empty() => Some(CodeHash::of_bound_code(code, b)),
        (true, _) => None,
    }
}

/// The binding in a request's `Cookie` header, if it carries one.
pub fn binding_from_cookie_header(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == BINDING_COOKIE)
        .map(|(_, value)| value.trim())
}
