//! The web app's page (`/`), `GET /system/ping`, `GET /config/client`,
//! `GET /config`, `GET /limits/server` and `POST /roles/names`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::response::Response;
use http::StatusCode;
use serde_json::json;

use super::{json, query};
use crate::auth::MaybeCaller;
use crate::error::AppError;
use crate::server::Shared;

/// The web app's page, reduced to what a browser test needs: it asks
/// `/api/v4/users/me` with the browser's cookies, as the web app does, and
/// shows who is signed in.
pub(crate) async fn home() -> Response {
    const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>Mattermost stand-in</title></head>
<body><h1>Mattermost stand-in</h1><p id="me">Loading</p>
<script>
fetch('/api/v4/users/me', {credentials: 'include', headers: {'X-Requested-With': 'XMLHttpRequest'}})
  .then(r => r.ok ? r.json() : Promise.reject(r.status))
  .then(u => { document.getElementById('me').textContent = 'Signed in as @' + u.username; })
  .catch(s => { document.getElementById('me').textContent = 'Not signed in (' + s + ')'; });
</script></body></html>"#;
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(axum::body::Body::from(PAGE))
        .unwrap_or_default()
}

/// No session needed: the server is up.
pub(crate) async fn ping() -> Response {
    json(
        StatusCode::OK,
        &json!({"status": "OK", "ActiveSearchBackend": "database"}),
    )
}

/// The client config in the old format: every value a string. Without a
/// valid session the server sends the shorter "limited" config, which lacks
/// `EnableUserAccessTokens`.
pub(crate) async fn client_config(
    State(shared): State<Arc<Shared>>,
    caller: MaybeCaller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = query(raw.as_deref());
    match q.get("format").map(String::as_str) {
        None | Some("") => {
            return Err(AppError::new(
                501,
                "api.config.client.old_format.app_error",
                "New format for the client configuration is not supported yet. Please specify format=old in the query string.",
            ));
        }
        Some("old") => {}
        Some(_) => return Err(AppError::invalid_url_param("format")),
    }
    let tokens_enabled = shared.data().tokens_enabled;
    let mut config: BTreeMap<&str, String> = BTreeMap::new();
    let t = |b: bool| if b { "true" } else { "false" }.to_owned();
    config.insert("Version", shared.version.clone());
    config.insert("BuildNumber", shared.build_number.clone());
    config.insert("BuildDate", String::new());
    config.insert("BuildHash", String::new());
    config.insert("BuildEnterpriseReady", t(true));
    config.insert("SiteURL", shared.site_url.clone());
    config.insert("SiteName", "Mattermost stand-in".to_owned());
    config.insert("EnableSignUpWithEmail", t(true));
    config.insert("EnableSignInWithEmail", t(true));
    config.insert("EnableSignInWithUsername", t(true));
    config.insert("EnableUserCreation", t(true));
    config.insert("EnableOpenServer", t(false));
    config.insert("DiagnosticsEnabled", t(false));
    config.insert("NoAccounts", t(false));
    if caller.0.is_some() {
        config.insert("EnableUserAccessTokens", t(tokens_enabled));
        config.insert("EnableCustomEmoji", t(true));
        config.insert("EnableUserDeactivation", t(false));
        config.insert("ShowEmailAddress", t(true));
        config.insert("ShowFullName", t(true));
        config.insert("RestrictDirectMessage", "any".to_owned());
        config.insert("TeammateNameDisplay", "username".to_owned());
        config.insert("ExperimentalEnableAuthenticationTransfer", t(true));
    }
    Ok(json(StatusCode::OK, &config))
}

/// `GET /limits/server` (`api4/limits.go`): the active-user limit, for
/// system admins; 0 means no limit.
pub(crate) async fn server_limits(
    State(shared): State<Arc<Shared>>,
    caller: crate::auth::Caller,
) -> Result<Response, AppError> {
    if !caller.is_admin() {
        return Err(AppError::permissions());
    }
    let limits = shared.data().server_limits();
    Ok(json(StatusCode::OK, &limits))
}

/// `GET /config` (`api4/config.go`): the server's configuration, for
/// callers who may read the System Console (system admins). Only the
/// settings the stand-in has: `ServiceSettings.SiteURL`,
/// `EnableUserAccessTokens` and `ExperimentalStrictCSRFEnforcement`.
pub(crate) async fn config(
    State(shared): State<Arc<Shared>>,
    caller: crate::auth::Caller,
) -> Result<Response, AppError> {
    if !caller.is_admin() {
        return Err(AppError::permissions());
    }
    let data = shared.data();
    let service = json!({
        "SiteURL": shared.site_url,
        "EnableUserAccessTokens": data.tokens_enabled,
        "ExperimentalStrictCSRFEnforcement": data.strict_csrf,
    });
    Ok(json(StatusCode::OK, &json!({ "ServiceSettings": service })))
}

/// The permissions of the built-in roles the stand-in models (a subset of
/// the real lists: those the library's checks read).
fn role_permissions(name: &str) -> Option<&'static [&'static str]> {
    Some(match name {
        "system_admin" => &[
            "manage_system",
            "manage_roles",
            "edit_other_users",
            "create_user_access_token",
            "read_user_access_token",
            "revoke_user_access_token",
            "add_user_to_team",
            "manage_public_channel_members",
            "manage_private_channel_members",
        ],
        "system_user_access_token" => &[
            "create_user_access_token",
            "read_user_access_token",
            "revoke_user_access_token",
        ],
        "system_user" => &[
            "create_team",
            "list_public_teams",
            "join_public_teams",
            "join_public_channels",
            "create_public_channel",
            "create_private_channel",
            "view_members",
        ],
        _ => return None,
    })
}

/// `POST /roles/names` (`getRolesByNames` in `api4/role.go`): any session;
/// a JSON array of role names, answered with the roles that exist (unknown
/// names are left out) and their permissions.
pub(crate) async fn roles_by_names(
    State(shared): State<Arc<Shared>>,
    _caller: crate::auth::Caller,
    body: axum::body::Bytes,
) -> Result<Response, AppError> {
    let names: Vec<String> = super::parse_body(&body, "rolenames")?;
    if names.iter().all(|n| n.trim().is_empty()) {
        return Err(AppError::invalid_body_param("rolenames"));
    }
    let data = shared.data();
    let roles: Vec<_> = names
        .iter()
        .filter_map(|n| {
            let perms = role_permissions(n)?;
            let permissions: Vec<&str> = perms
                .iter()
                .copied()
                .filter(|p| n != "system_admin" || !data.admin_lacks.contains(*p))
                .collect();
            Some(json!({
                "id": format!("{:0<26}", n.replace('_', "")),
                "name": n,
                "display_name": n,
                "permissions": permissions,
                "built_in": true,
            }))
        })
        .collect();
    Ok(json(StatusCode::OK, &roles))
}
