//! Who is calling: the token a request presents, the user it belongs to, and
//! the few permissions the modelled endpoints check.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use http::request::Parts;
use http::{Method, header};
use mattermost_tokens::ids::UserId;

use crate::error::AppError;
use crate::model::Data;
use crate::server::Shared;

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub user_id: UserId,
    /// `manage_system` (`system_admin` has it unless taken out).
    pub admin: bool,
    /// `create_user_access_token` (`system_admin` and
    /// `system_user_access_token` have it): create, read and revoke own
    /// tokens.
    pub token_role: bool,
    /// `edit_other_users` (`system_admin` has it unless taken out).
    pub edit_others: bool,
}

impl Caller {
    pub fn is_self(&self, user_id: &UserId) -> bool {
        &self.user_id == user_id
    }

    /// `create_user_access_token`, `read_user_access_token`,
    /// `revoke_user_access_token`: not in `system_user` by default.
    pub fn can_manage_own_tokens(&self) -> bool {
        self.token_role
    }

    /// `manage_system` (and `manage_roles`): admins only.
    pub fn is_admin(&self) -> bool {
        self.admin
    }

    /// `SessionHasPermissionToUser`: oneself, or `edit_other_users`.
    pub fn can_act_on_user(&self, user_id: &UserId) -> bool {
        self.is_self(user_id) || self.edit_others
    }

    /// Resolves a `{user_id}` path parameter (`me` is the caller).
    pub fn user_param(&self, raw: &str) -> Result<UserId, AppError> {
        if raw == "me" {
            Ok(self.user_id.clone())
        } else {
            user_id_param(raw)
        }
    }
}

/// A `{user_id}` path parameter that must be a well-formed id.
pub(crate) fn user_id_param(raw: &str) -> Result<UserId, AppError> {
    if mattermost_tokens::ids::is_valid_mattermost_id(raw) {
        Ok(UserId::new(raw))
    } else {
        Err(AppError::invalid_url_param("user_id"))
    }
}

/// Where a request carried its token.
enum Presented {
    None,
    Header(String),
    Cookie(String),
    Query(String),
}

/// `ParseAuthTokenFromRequest`: the `MMAUTHTOKEN` cookie, then the
/// `Authorization` header (`Bearer` or `Token`), then `?access_token=`.
fn presented_token(parts: &Parts) -> Presented {
    for value in parts.headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            if let Some(token) = pair.trim().strip_prefix("MMAUTHTOKEN=")
                && !token.is_empty()
            {
                return Presented::Cookie(token.to_owned());
            }
        }
    }
    if let Some(value) = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if value.len() > 7 && value[..7].eq_ignore_ascii_case("bearer ") {
            return Presented::Header(value[7..].trim().to_owned());
        }
        if value.len() > 6 && value[..6].eq_ignore_ascii_case("token ") {
            return Presented::Header(value[6..].trim().to_owned());
        }
    }
    if let Some(query) = parts.uri.query() {
        for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
            if k == "access_token" && !v.is_empty() {
                return Presented::Query(v.into_owned());
            }
        }
    }
    Presented::None
}

fn caller_from(data: &Data, token: &str) -> Result<Caller, AppError> {
    let user = data.authenticate(token)?;
    let admin = user.is_system_admin();
    let has = |p: &str| admin && !data.admin_lacks.contains(p);
    Ok(Caller {
        user_id: user.id.clone(),
        admin: has("manage_system"),
        token_role: has("create_user_access_token") || user.has_role("system_user_access_token"),
        edit_others: has("edit_other_users"),
    })
}

/// `checkCSRFToken` (`server/channels/web/handlers.go`) for a cookie
/// session: a request other than `GET` passes when its `X-CSRF-Token`
/// header equals the session's CSRF value, which a session made from a
/// personal access token does not have (it is empty, and so is a missing
/// header: such a request passes); else `X-Requested-With: XMLHttpRequest`
/// (compared exactly) passes unless
/// `ServiceSettings.ExperimentalStrictCSRFEnforcement` is on. The stand-in's
/// cookie sessions are all of the first kind.
fn csrf_passes(parts: &Parts, strict: bool) -> bool {
    const SESSION_CSRF: &[u8] = b"";
    let header = |name| parts.headers.get(name).map_or(&b""[..], |v| v.as_bytes());
    parts.method == Method::GET
        || header("x-csrf-token") == SESSION_CSRF
        || (!strict && header("x-requested-with") == b"XMLHttpRequest")
}

/// Authenticates as a session-requiring handler does.
pub(crate) fn authenticate(shared: &Shared, parts: &Parts) -> Result<Caller, AppError> {
    match presented_token(parts) {
        Presented::None => Err(AppError::session_expired()),
        Presented::Header(token) => caller_from(&shared.data(), &token),
        Presented::Cookie(token) => {
            let data = shared.data();
            let caller = caller_from(&data, &token)?;
            if csrf_passes(parts, data.strict_csrf) {
                Ok(caller)
            } else {
                Err(AppError::session_expired())
            }
        }
        Presented::Query(token) => {
            // A valid token is still refused: only OAuth sessions may use the
            // query string, and the stand-in has none.
            caller_from(&shared.data(), &token)?;
            Err(AppError::new(
                401,
                "api.context.token_provided.app_error",
                "Session is not OAuth but token was provided in the query string.",
            ))
        }
    }
}

impl FromRequestParts<Arc<Shared>> for Caller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        authenticate(state, parts)
    }
}

/// The caller of a handler that does not require a session: an invalid or
/// missing token just means anonymous.
#[derive(Clone, Debug)]
pub(crate) struct MaybeCaller(pub Option<Caller>);

impl FromRequestParts<Arc<Shared>> for MaybeCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<Shared>,
    ) -> Result<Self, Self::Rejection> {
        Ok(MaybeCaller(match presented_token(parts) {
            Presented::Header(token) | Presented::Cookie(token) => {
                caller_from(&state.data(), &token).ok()
            }
            Presented::Query(_) | Presented::None => None,
        }))
    }
}
