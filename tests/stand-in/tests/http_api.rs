//! The stand-in Mattermost server, driven over HTTP with plain reqwest.

use std::time::{Duration, Instant};

use mattermost_tokens::{TokenId, UserId};
use mattermost_tokens_stand_in::{AdminCredential, Fault, FaultRule, NewUser, StandIn};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};

/// One answer: status, headers, and the body as JSON (or `Value::String`
/// with the raw text when it is not JSON).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    text: String,
    body: Value,
}

impl Answer {
    fn id(&self) -> &str {
        self.body["id"].as_str().unwrap_or("")
    }

    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

struct Api {
    server: StandIn,
    http: reqwest::Client,
    admin: String,
}

impl Api {
    /// A stand-in whose admin token is a session (a login), so the admin
    /// keeps working whatever the token settings these tests switch; see
    /// `the_default_admin_token_is_a_personal_access_token`.
    async fn start() -> Self {
        Self::with(
            StandIn::builder()
                .admin_credential(AdminCredential::Session)
                .start()
                .await
                .expect("stand-in starts"),
        )
    }

    fn with(server: StandIn) -> Self {
        let admin = server.admin_token().expose_secret().to_owned();
        Self {
            server,
            http: reqwest::Client::new(),
            admin,
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Answer {
        self.try_send(method, path, token, body)
            .await
            .expect("request reaches the stand-in")
    }

    async fn try_send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Result<Answer, reqwest::Error> {
        let url = format!("{}/api/v4{path}", self.server.url());
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        Ok(Answer {
            status,
            headers,
            text,
            body,
        })
    }

    async fn admin(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, Some(self.admin.as_str()), body)
            .await
    }

    /// Creates a user over HTTP as the admin and returns its id.
    async fn create_user(&self, username: &str) -> UserId {
        let a = self
            .admin(
                "POST",
                "/users",
                Some(json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": "correct-horse-battery",
                })),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        UserId::new(a.body["id"].as_str().unwrap())
    }

    /// Mints a token as the admin; returns (token id, secret).
    async fn mint(&self, user: &UserId) -> (TokenId, String) {
        let a = self
            .admin(
                "POST",
                &format!("/users/{user}/tokens"),
                Some(json!({"description": "test token"})),
            )
            .await;
        assert_eq!(a.status, StatusCode::OK, "{}", a.text);
        (
            TokenId::new(a.body["id"].as_str().unwrap()),
            a.body["token"].as_str().unwrap().to_owned(),
        )
    }
}

fn assert_app_error(a: &Answer, status: u16, id: &str) {
    assert_eq!(a.status.as_u16(), status, "{}", a.text);
    assert_eq!(a.id(), id, "{}", a.text);
    assert_eq!(a.body["status_code"], status);
    assert_eq!(a.body["detailed_error"], "");
    assert_eq!(
        a.body["request_id"].as_str().unwrap(),
        a.header("x-request-id")
    );
    assert!(a.body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn ping_needs_no_auth_and_me_is_the_admin() {
    let api = Api::start().await;
    let ping = api.send("GET", "/system/ping", None, None).await;
    assert_eq!(ping.status, StatusCode::OK);
    assert_eq!(ping.body["status"], "OK");

    let me = api.admin("GET", "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert!(me.body["roles"].as_str().unwrap().contains("system_admin"));
    assert_eq!(me.body["id"], api.server.admin_user_id().as_str());
    assert!(me.body.get("password").is_none());
}

#[tokio::test]
async fn every_answer_carries_version_and_request_id() {
    let api = StandIn::builder().version("10.6.0").start().await.unwrap();
    let api = Api::with(api);
    for a in [
        api.send("GET", "/system/ping", None, None).await,
        api.send("GET", "/users/me", None, None).await,
        api.send("GET", "/no/such/route", None, None).await,
        api.admin("GET", "/users/me", None).await,
    ] {
        assert!(
            a.header("x-version-id").starts_with("10.6.0."),
            "{:?}",
            a.headers
        );
        assert_eq!(a.header("x-version-id").split('.').count(), 6);
        let request_id = a.header("x-request-id");
        assert!(
            mattermost_tokens::ids::is_valid_mattermost_id(request_id),
            "{request_id}"
        );
    }
}

#[tokio::test]
async fn unknown_route_missing_token_and_query_token() {
    let api = Api::start().await;
    let a = api.admin("GET", "/no/such/route", None).await;
    assert_app_error(&a, 404, "api.context.404.app_error");
    // A known path with an unmodelled method goes to the same catch-all.
    let a = api.admin("DELETE", "/users/ids", None).await;
    assert_app_error(&a, 404, "api.context.404.app_error");

    let a = api.send("GET", "/users/me", None, None).await;
    assert_app_error(&a, 401, "api.context.session_expired.app_error");
    let a = api.send("GET", "/users/me", Some("notatoken"), None).await;
    assert_app_error(&a, 401, "api.context.session_expired.app_error");

    let path = format!("/users/me?access_token={}", api.admin);
    let a = api.send("GET", &path, None, None).await;
    assert_app_error(&a, 401, "api.context.token_provided.app_error");
}

#[tokio::test]
async fn create_user_then_duplicates_are_refused() {
    let api = Api::start().await;
    let a = api
        .admin(
            "POST",
            "/users",
            Some(json!({
                "username": "Alice",
                "email": "Alice@Example.com",
                "password": "correct-horse-battery",
                "first_name": "Alice",
                "email_verified": true,
            })),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["username"], "alice");
    assert_eq!(a.body["email"], "alice@example.com");
    assert_eq!(a.body["email_verified"], true);
    assert_eq!(a.body["roles"], "system_user");
    assert!(a.body.get("password").is_none());
    assert!(mattermost_tokens::ids::is_valid_mattermost_id(
        a.body["id"].as_str().unwrap()
    ));

    let dup_email = api
        .admin(
            "POST",
            "/users",
            Some(json!({"username": "alice2", "email": "ALICE@example.com", "password": "correct-horse-battery"})),
        )
        .await;
    assert_app_error(&dup_email, 400, "app.user.save.email_exists.app_error");
    let dup_name = api
        .admin(
            "POST",
            "/users",
            Some(json!({"username": "ALICE", "email": "other@example.com", "password": "correct-horse-battery"})),
        )
        .await;
    assert_app_error(&dup_name, 400, "app.user.save.username_exists.app_error");

    let by_email = api
        .admin("GET", "/users/email/ALICE@EXAMPLE.COM", None)
        .await;
    assert_eq!(by_email.status, StatusCode::OK);
    assert_eq!(by_email.body["username"], "alice");
    let by_name = api.admin("GET", "/users/username/alice", None).await;
    assert_eq!(by_name.body["email"], "alice@example.com");
    let missing = api
        .admin("GET", "/users/email/nobody@example.com", None)
        .await;
    assert_app_error(&missing, 404, "app.user.missing_account.const");
    let missing = api.admin("GET", "/users/username/nobody", None).await;
    assert_app_error(&missing, 404, "app.user.get_by_username.app_error");
    let missing = api
        .admin("GET", "/users/abcdefghijklmnopqrstuvwxyz", None)
        .await;
    assert_app_error(&missing, 404, "app.user.missing_account.const");
    let bad = api.admin("GET", "/users/not-an-id", None).await;
    assert_app_error(&bad, 400, "api.context.invalid_url_param.app_error");

    let snapshot = api.server.user_by_email("alice@example.com").unwrap();
    assert_eq!(snapshot.first_name, "Alice");
    assert!(snapshot.is_active());
}

#[tokio::test]
async fn user_validation_rules() {
    let api = Api::start().await;
    let create = |username: &str, email: &str, extra: Value| {
        let mut body =
            json!({"username": username, "email": email, "password": "correct-horse-battery"});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        api.admin("POST", "/users", Some(body))
    };
    for bad in [
        "ab",
        "9lives",
        "all",
        "system",
        "has space",
        "a234567890123456789012x",
        "émile",
    ] {
        let a = create(bad, "x@example.com", json!({})).await;
        assert_app_error(&a, 400, "model.user.is_valid.username.app_error");
    }
    for ok in ["abc", "a.b-c_d", "a23456789012345678901"] {
        let a = create(ok, &format!("{ok}@example.com"), json!({})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{ok}: {}", a.text);
    }
    for bad in ["no-at-sign", "a@", "@b.com", "a b@c.com"] {
        let a = create("valid", bad, json!({})).await;
        assert_app_error(&a, 400, "model.user.is_valid.email.app_error");
    }
    let long_email = format!("{}@example.com", "a".repeat(120));
    let a = create("valid", &long_email, json!({})).await;
    assert_app_error(&a, 400, "model.user.is_valid.email.app_error");

    let a = create("shortpw", "s@example.com", json!({"password": "short"})).await;
    assert_app_error(&a, 400, "model.user.is_valid.pwd.app_error");
    let a = create("nopw", "n@example.com", json!({"password": null})).await;
    assert_app_error(&a, 400, "model.user.is_valid.pwd.app_error");
    let a = create(
        "longpw",
        "l@example.com",
        json!({"password": "x".repeat(73)}),
    )
    .await;
    assert_app_error(&a, 400, "model.user.is_valid.password_limit.app_error");
    let a = create(
        "both",
        "b@example.com",
        json!({"auth_service": "gitlab", "auth_data": "123"}),
    )
    .await;
    assert_app_error(&a, 400, "model.user.is_valid.auth_data_pwd.app_error");
    // An SSO user needs no password.
    let a = create(
        "ssouser",
        "sso@example.com",
        json!({"password": null, "auth_service": "gitlab", "auth_data": "123"}),
    )
    .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["auth_service"], "gitlab");
}

#[tokio::test]
async fn plain_users_cannot_create_users() {
    let api = Api::start().await;
    let bob = api.create_user("bob").await;
    api.server
        .set_roles_directly(&bob, "system_user system_user_access_token")
        .unwrap();
    let (_, token) = api.mint(&bob).await;
    let body = json!({"username": "carol", "email": "carol@example.com", "password": "correct-horse-battery"});
    let a = api
        .send("POST", "/users", Some(&token), Some(body.clone()))
        .await;
    assert_app_error(&a, 403, "api.user.create_user.no_open_server");
    let a = api.send("POST", "/users", None, Some(body)).await;
    assert_app_error(&a, 403, "api.user.create_user.no_open_server");
}

#[tokio::test]
async fn token_secret_is_shown_only_at_creation() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let a = api
        .admin(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(json!({"description": "sync"})),
        )
        .await;
    assert_eq!(
        a.status,
        StatusCode::OK,
        "the real server answers 200: {}",
        a.text
    );
    let token_id = a.body["id"].as_str().unwrap().to_owned();
    let secret = a.body["token"].as_str().unwrap().to_owned();
    assert!(mattermost_tokens::ids::is_valid_mattermost_id(&secret));
    assert_eq!(a.body["user_id"], alice.as_str());
    assert_eq!(a.body["description"], "sync");
    assert_eq!(a.body["is_active"], true);

    let list = api
        .admin("GET", &format!("/users/{alice}/tokens"), None)
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let list = list.body.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["id"], token_id.as_str());
    assert!(list[0].get("token").is_none());

    let one = api
        .admin("GET", &format!("/users/tokens/{token_id}"), None)
        .await;
    assert_eq!(one.status, StatusCode::OK);
    assert!(one.body.get("token").is_none());
    assert_eq!(one.body["user_id"], alice.as_str());
    let missing = api
        .admin("GET", "/users/tokens/abcdefghijklmnopqrstuvwxyz", None)
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);

    // The token works as alice.
    let me = api.send("GET", "/users/me", Some(&secret), None).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["id"], alice.as_str());
    assert!(api.server.token_is_live(&secret));
    assert_eq!(api.server.tokens_of(&alice).len(), 1);
    assert!(api.server.tokens_of(&alice)[0].is_active);
}

#[tokio::test]
async fn token_create_failure_table() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let bob = api.create_user("bob").await;
    let bob_token = api.server.mint_token_directly(&bob, "arranged").unwrap();
    let bob_token = bob_token.token.expose_secret().to_owned();
    let body = Some(json!({"description": "x"}));

    // A plain user can mint neither for others nor (by default) for
    // themselves.
    let a = api
        .send(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(&bob_token),
            body.clone(),
        )
        .await;
    assert_app_error(&a, 403, "api.context.permissions.app_error");
    let a = api
        .send(
            "POST",
            &format!("/users/{bob}/tokens"),
            Some(&bob_token),
            body.clone(),
        )
        .await;
    assert_app_error(&a, 403, "api.context.permissions.app_error");
    let a = api
        .send("POST", "/users/me/tokens", Some(&bob_token), body.clone())
        .await;
    assert_app_error(&a, 403, "api.context.permissions.app_error");
    // With the token role a user may mint for themselves, still not for
    // others, nor for an admin.
    api.server
        .set_roles_directly(&bob, "system_user system_user_access_token")
        .unwrap();
    let a = api
        .send("POST", "/users/me/tokens", Some(&bob_token), body.clone())
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    let a = api
        .send(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(&bob_token),
            body.clone(),
        )
        .await;
    assert_app_error(&a, 403, "api.context.permissions.app_error");

    // Malformed and unknown user ids.
    let a = api
        .admin("POST", "/users/not-an-id/tokens", body.clone())
        .await;
    assert_app_error(&a, 400, "api.context.invalid_url_param.app_error");
    let a = api
        .admin(
            "POST",
            "/users/abcdefghijklmnopqrstuvwxyz/tokens",
            body.clone(),
        )
        .await;
    assert_app_error(&a, 404, "app.user.missing_account.const");

    // The description is required, and at most 255 characters.
    let a = api
        .admin(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(json!({"description": ""})),
        )
        .await;
    assert_app_error(&a, 400, "api.context.invalid_body_param.app_error");
    let a = api
        .admin("POST", &format!("/users/{alice}/tokens"), Some(json!({})))
        .await;
    assert_app_error(&a, 400, "api.context.invalid_body_param.app_error");
    let a = api
        .admin(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(json!({"description": "d".repeat(256)})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);

    // Disabled: 501 for the admin, but the permission checks come first.
    api.server.set_tokens_enabled(false);
    let a = api
        .admin("POST", &format!("/users/{alice}/tokens"), body.clone())
        .await;
    assert_app_error(&a, 501, "app.user_access_token.disabled");
    api.server.set_roles_directly(&bob, "system_user").unwrap();
    api.server.set_tokens_enabled(true);
    let carol = api.create_user("carol").await;
    let carol_token = api.server.mint_token_directly(&carol, "arranged").unwrap();
    api.server.set_tokens_enabled(false);
    // A plain user's PAT no longer authenticates at all while disabled.
    let a = api
        .send(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(carol_token.token.expose_secret()),
            body.clone(),
        )
        .await;
    assert_app_error(&a, 401, "api.context.session_expired.app_error");
    // An unknown user still gets 404 before the 501.
    let a = api
        .admin("POST", "/users/abcdefghijklmnopqrstuvwxyz/tokens", body)
        .await;
    assert_app_error(&a, 404, "app.user.missing_account.const");
}

#[tokio::test]
async fn tokens_disabled_mode() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let (_, token) = api.mint(&alice).await;

    let config = api.admin("GET", "/config/client?format=old", None).await;
    assert_eq!(config.body["EnableUserAccessTokens"], "true");
    assert!(
        config
            .body
            .as_object()
            .unwrap()
            .values()
            .all(Value::is_string)
    );
    let anonymous = api
        .send("GET", "/config/client?format=old", None, None)
        .await;
    assert_eq!(anonymous.status, StatusCode::OK);
    assert!(anonymous.body.get("EnableUserAccessTokens").is_none());
    assert!(anonymous.body.get("Version").is_some());

    api.server.set_tokens_enabled(false);
    let a = api
        .admin(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(json!({"description": "x"})),
        )
        .await;
    assert_app_error(&a, 501, "app.user_access_token.disabled");
    let a = api.send("GET", "/users/me", Some(&token), None).await;
    assert_app_error(&a, 401, "api.context.session_expired.app_error");
    assert!(!api.server.token_is_live(&token));
    assert!(api.server.live_tokens().is_empty());
    assert_eq!(api.server.tokens().len(), 1, "the token still exists");
    let me = api.admin("GET", "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK, "the admin token keeps working");
    let config = api.admin("GET", "/config/client?format=old", None).await;
    assert_eq!(config.body["EnableUserAccessTokens"], "false");

    api.server.set_tokens_enabled(true);
    let a = api.send("GET", "/users/me", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn the_default_admin_token_is_a_personal_access_token() {
    // As in a real deployment: listed among the tokens, and refused while
    // personal access tokens are disabled.
    let api = Api::with(StandIn::start().await.unwrap());
    let admin = api.server.admin_user_id();
    let tokens = api.server.tokens_of(&admin);
    assert_eq!(tokens.len(), 1);
    let me = api.admin("GET", "/users/me", None).await;
    assert_eq!(me.status, StatusCode::OK);
    api.server.set_tokens_enabled(false);
    let me = api.admin("GET", "/users/me", None).await;
    assert_app_error(&me, 401, "api.context.session_expired.app_error");
    api.server.set_tokens_enabled(true);
    assert_eq!(
        api.admin("GET", "/users/me", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deactivated_users_tokens_get_401() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let (_, token) = api.mint(&alice).await;
    let a = api.admin("DELETE", &format!("/users/{alice}"), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body["status"], "OK");
    assert!(!api.server.user(&alice).unwrap().is_active());
    let a = api.send("GET", "/users/me", Some(&token), None).await;
    assert_app_error(&a, 401, "api.context.session_expired.app_error");
    // The admin still sees the user, with delete_at set.
    let a = api.admin("GET", &format!("/users/{alice}"), None).await;
    assert!(a.body["delete_at"].as_i64().unwrap() > 0);

    assert!(api.server.reactivate_user(&alice));
    let a = api.send("GET", "/users/me", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(api.server.deactivate_user(&alice));
    assert!(!api.server.token_is_live(&token));
}

#[tokio::test]
async fn revoke_disable_enable() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let (id, token) = api.mint(&alice).await;

    let a = api
        .admin(
            "POST",
            "/users/tokens/disable",
            Some(json!({"token_id": id})),
        )
        .await;
    assert_eq!(a.body["status"], "OK");
    let a = api.send("GET", "/users/me", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(!api.server.token(&id).unwrap().is_active);
    let a = api
        .admin(
            "POST",
            "/users/tokens/enable",
            Some(json!({"token_id": id})),
        )
        .await;
    assert_eq!(a.body["status"], "OK");
    let a = api.send("GET", "/users/me", Some(&token), None).await;
    assert_eq!(a.status, StatusCode::OK);

    let a = api
        .admin(
            "POST",
            "/users/tokens/revoke",
            Some(json!({"token_id": id})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, json!({"status": "OK"}));
    let a = api.send("GET", "/users/me", Some(&token), None).await;
    assert_app_error(&a, 401, "api.context.session_expired.app_error");
    assert!(api.server.tokens_of(&alice).is_empty());
    let a = api
        .admin(
            "POST",
            "/users/tokens/revoke",
            Some(json!({"token_id": id})),
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let a = api
        .admin(
            "POST",
            "/users/tokens/revoke",
            Some(json!({"token_id": "bad"})),
        )
        .await;
    assert_app_error(&a, 400, "api.context.invalid_body_param.app_error");
}

#[tokio::test]
async fn user_lists_page_and_cap_per_page_at_200() {
    let api = Api::start().await;
    for i in 0..250 {
        api.server
            .create_user_directly(NewUser::new(
                format!("user{i:03}"),
                format!("user{i:03}@example.com"),
            ))
            .unwrap();
    }
    let total = api.server.users().len();
    assert_eq!(total, 251);

    let default = api.admin("GET", "/users", None).await;
    assert_eq!(default.body.as_array().unwrap().len(), 60);
    let capped = api.admin("GET", "/users?per_page=1000", None).await;
    assert_eq!(capped.body.as_array().unwrap().len(), 200);

    let mut seen = Vec::new();
    for page in 0.. {
        let a = api
            .admin("GET", &format!("/users?page={page}&per_page=100"), None)
            .await;
        let users = a.body.as_array().unwrap().clone();
        seen.extend(
            users
                .iter()
                .map(|u| u["username"].as_str().unwrap().to_owned()),
        );
        if users.len() < 100 {
            break;
        }
    }
    assert_eq!(seen.len(), total);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(seen, sorted, "a stable order without repeats");

    let ids = api
        .admin(
            "POST",
            "/users/ids",
            Some(json!([
                api.server.admin_user_id(),
                "abcdefghijklmnopqrstuvwxyz"
            ])),
        )
        .await;
    assert_eq!(ids.body.as_array().unwrap().len(), 1);
    let names = api
        .admin(
            "POST",
            "/users/usernames",
            Some(json!(["user001", "user002", "nobody"])),
        )
        .await;
    assert_eq!(names.body.as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn patch_and_roles() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let a = api
        .admin(
            "PUT",
            &format!("/users/{alice}/patch"),
            Some(json!({"first_name": "Alice", "nickname": "al", "email": "ALICE2@example.com"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.text);
    assert_eq!(a.body["first_name"], "Alice");
    assert_eq!(a.body["email"], "alice2@example.com");
    assert!(api.server.user_by_email("alice2@example.com").is_some());
    assert!(api.server.user_by_email("alice@example.com").is_none());

    let bob = api.create_user("bob").await;
    let a = api
        .admin(
            "PUT",
            &format!("/users/{bob}/patch"),
            Some(json!({"username": "alice"})),
        )
        .await;
    assert_app_error(&a, 400, "app.user.save.username_exists.app_error");

    let a = api
        .admin(
            "PUT",
            &format!("/users/{bob}/roles"),
            Some(json!({"roles": "system_user system_user_access_token"})),
        )
        .await;
    assert_eq!(a.body["status"], "OK");
    assert_eq!(
        api.server.user(&bob).unwrap().roles,
        "system_user system_user_access_token"
    );
    let a = api
        .admin(
            "PUT",
            &format!("/users/{bob}/roles"),
            Some(json!({"roles": "wizard"})),
        )
        .await;
    assert_app_error(&a, 400, "api.context.invalid_body_param.app_error");
}

#[tokio::test]
async fn teams_and_channel_membership() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let bob = api.create_user("bob").await;
    let (_, alice_token) = api.mint(&alice).await;

    let team = api.admin("GET", "/teams/name/demo", None).await;
    assert_eq!(team.status, StatusCode::OK);
    let team_id = team.body["id"].as_str().unwrap().to_owned();
    assert_eq!(team_id, api.server.default_team_id().as_str());
    let a = api.admin("GET", "/teams/name/nope", None).await;
    assert_app_error(&a, 404, "app.team.get_by_name.missing.app_error");

    // Team: the body's team id must match the path; repeats are fine.
    let a = api
        .admin(
            "POST",
            &format!("/teams/{team_id}/members"),
            Some(json!({"team_id": "abcdefghijklmnopqrstuvwxyz", "user_id": alice})),
        )
        .await;
    assert_app_error(&a, 400, "api.context.invalid_body_param.app_error");
    for _ in 0..2 {
        let a = api
            .admin(
                "POST",
                &format!("/teams/{team_id}/members"),
                Some(json!({"team_id": team_id, "user_id": alice})),
            )
            .await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        assert_eq!(a.body["user_id"], alice.as_str());
    }

    let a = api
        .admin(
            "POST",
            "/channels",
            Some(json!({"team_id": team_id, "name": "general-chat", "display_name": "General", "type": "O"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let general = a.body["id"].as_str().unwrap().to_owned();
    let a = api
        .admin(
            "POST",
            "/channels",
            Some(json!({"team_id": team_id, "name": "general-chat", "display_name": "General", "type": "O"})),
        )
        .await;
    assert_app_error(&a, 400, "store.sql_channel.save_channel.exists.app_error");
    let a = api
        .admin(
            "POST",
            "/channels",
            Some(
                json!({"team_id": team_id, "name": "Bad Name", "display_name": "Bad", "type": "O"}),
            ),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = api
        .admin(
            "POST",
            "/channels",
            Some(json!({"team_id": team_id, "name": "x".repeat(65), "display_name": "Long", "type": "O"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = api
        .admin(
            "GET",
            &format!("/teams/{team_id}/channels/name/general-chat"),
            None,
        )
        .await;
    assert_eq!(a.body["id"], general.as_str());
    let a = api
        .admin("GET", &format!("/teams/{team_id}/channels/name/nope"), None)
        .await;
    assert_app_error(&a, 404, "app.channel.get_by_name.missing.app_error");

    // Alice joins by herself with her own token...
    let path = format!("/channels/{general}/members");
    let a = api
        .send(
            "POST",
            &path,
            Some(&alice_token),
            Some(json!({"user_id": alice})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body["user_id"], alice.as_str());
    assert_eq!(a.body["channel_id"], general.as_str());
    let a = api
        .send(
            "POST",
            &path,
            Some(&alice_token),
            Some(json!({"user_id": alice})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "joining twice is fine");
    // ...but cannot add Bob.
    let a = api
        .send(
            "POST",
            &path,
            Some(&alice_token),
            Some(json!({"user_id": bob})),
        )
        .await;
    assert_app_error(&a, 403, "api.context.permissions.app_error");
    // The admin can, once Bob is in the team; several at once too.
    let a = api
        .admin("POST", &path, Some(json!({"user_id": bob})))
        .await;
    assert_app_error(&a, 404, "app.team.get_member.missing.app_error");
    assert!(
        api.server
            .add_team_member_directly(&api.server.default_team_id(), &bob)
    );
    let a = api
        .admin("POST", &path, Some(json!({"user_ids": [alice, bob]})))
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    assert_eq!(a.body.as_array().unwrap().len(), 2);
    let channel = channel_id(&api.server, "general-chat");
    assert!(api.server.is_channel_member(&channel, &alice));
    assert!(api.server.is_channel_member(&channel, &bob));
    assert_eq!(api.server.channel_members(&channel).len(), 3);
}

/// A channel's id in the default team.
fn channel_id(server: &StandIn, name: &str) -> mattermost_tokens::ChannelId {
    server
        .channel_by_name(&server.default_team_id(), name)
        .expect("channel exists")
        .id
}

#[tokio::test]
async fn a_user_outside_the_team_cannot_join_its_channels() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    let (_, token) = api.mint(&alice).await;
    let channel = channel_id(&api.server, "town-square");
    let a = api
        .send(
            "POST",
            &format!("/channels/{channel}/members"),
            Some(&token),
            Some(json!({"user_id": alice})),
        )
        .await;
    assert_app_error(&a, 403, "api.context.permissions.app_error");
    // Joining the open team herself is allowed, then the channel.
    let team = api.server.default_team_id();
    let a = api
        .send(
            "POST",
            &format!("/teams/{team}/members"),
            Some(&token),
            Some(json!({"team_id": team, "user_id": alice})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
    let a = api
        .send(
            "POST",
            &format!("/channels/{channel}/members"),
            Some(&token),
            Some(json!({"user_id": alice})),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
}

#[tokio::test]
async fn rate_limit_headers_429_and_retry_after() {
    let api = Api::with(StandIn::builder().rate_limit(2, 1).start().await.unwrap());
    let first = api.admin("GET", "/users/me", None).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("x-ratelimit-limit"), "2");
    assert_eq!(first.header("x-ratelimit-remaining"), "1");
    let reset: u64 = first.header("x-ratelimit-reset").parse().unwrap();
    assert!(reset <= 1, "seconds until full, not an epoch: {reset}");

    let mut limited = None;
    for _ in 0..5 {
        let a = api.admin("GET", "/users/me", None).await;
        if a.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(a);
            break;
        }
    }
    let limited = limited.expect("a 429 within the burst");
    assert_eq!(limited.text, "limit exceeded\n");
    assert!(limited.header("content-type").starts_with("text/plain"));
    assert_eq!(limited.header("x-ratelimit-remaining"), "0");
    let retry_after: u64 = limited.header("retry-after").parse().unwrap();
    assert!(retry_after >= 1);
    assert!(!limited.header("x-request-id").is_empty());
    assert!(api.server.rate_limited_count() >= 1);

    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let after = api.admin("GET", "/users/me", None).await;
    assert_eq!(after.status, StatusCode::OK);

    // 429s are counted like every attempt.
    assert_eq!(
        api.server.request_count("GET /api/v4/users/{user_id}"),
        api.server.total_requests()
    );
}

#[tokio::test]
async fn zero_burst_paces_one_request_per_refill() {
    let api = Api::with(StandIn::builder().rate_limit(20, 0).start().await.unwrap());
    let started = Instant::now();
    let mut ok = 0;
    while ok < 5 {
        let a = api.send("GET", "/system/ping", None, None).await;
        assert_eq!(a.header("x-ratelimit-limit"), "1");
        if a.status == StatusCode::OK {
            ok += 1;
        } else {
            assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert!(started.elapsed() >= Duration::from_millis(150));
    api.server.set_rate_limit(None);
    let a = api.send("GET", "/system/ping", None, None).await;
    assert!(a.headers.get("x-ratelimit-limit").is_none());
}

#[tokio::test]
async fn requests_are_counted_per_route() {
    let api = Api::start().await;
    let alice = api.create_user("alice").await;
    api.mint(&alice).await;
    api.mint(&alice).await;
    api.admin("GET", "/users/me", None).await;
    api.admin("GET", "/nowhere", None).await;
    let counts = api.server.requests();
    assert_eq!(counts["POST /api/v4/users"], 1);
    assert_eq!(counts["POST /api/v4/users/{user_id}/tokens"], 2);
    assert_eq!(counts["GET /api/v4/users/{user_id}"], 1);
    assert_eq!(counts["GET (unmatched)"], 1);
    assert_eq!(api.server.total_requests(), 5);
    api.server.reset_counts();
    assert!(api.server.requests().is_empty());
    assert_eq!(api.server.total_requests(), 0);
}

#[tokio::test]
async fn injected_status_and_proxy_page() {
    let api = Api::start().await;
    api.server.add_fault(FaultRule::nth(
        "GET /api/v4/users/{user_id}",
        2,
        Fault::Status(503),
    ));
    assert_eq!(
        api.admin("GET", "/users/me", None).await.status,
        StatusCode::OK
    );
    let a = api.admin("GET", "/users/me", None).await;
    assert_app_error(&a, 503, "api.stand_in.injected_fault.app_error");
    assert_eq!(
        api.admin("GET", "/users/me", None).await.status,
        StatusCode::OK
    );

    api.server.add_fault(FaultRule::next(
        "GET /api/v4/system/ping",
        Fault::ProxyHtml(502),
    ));
    let a = api.send("GET", "/system/ping", None, None).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
    assert!(a.text.contains("<h1>502 Bad Gateway</h1>"), "{}", a.text);
    assert!(a.header("content-type").starts_with("text/html"));
    assert_eq!(api.server.faults_injected(), 2);
    assert_eq!(api.server.request_count("GET /api/v4/users/{user_id}"), 3);
}

#[tokio::test]
async fn a_dropped_connection_is_a_transport_error() {
    let api = Api::start().await;
    api.server.add_fault(FaultRule::next(
        "GET /api/v4/users/{user_id}",
        Fault::DropConnection,
    ));
    let err = api
        .try_send("GET", "/users/me", Some(api.admin.as_str()), None)
        .await
        .expect_err("no answer");
    assert!(err.status().is_none(), "{err:?}");
    assert!(
        err.is_request() || err.is_connect() || err.is_body(),
        "{err:?}"
    );
    // The server carries on.
    assert_eq!(
        api.admin("GET", "/users/me", None).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_fault_after_the_handler_keeps_the_change() {
    let api = Api::start().await;
    api.server
        .add_fault(FaultRule::next("POST /api/v4/users", Fault::ProxyHtml(504)).after_handler());
    let a = api
        .admin(
            "POST",
            "/users",
            Some(json!({"username": "alice", "email": "alice@example.com", "password": "correct-horse-battery"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::GATEWAY_TIMEOUT);
    assert!(
        api.server.user_by_email("alice@example.com").is_some(),
        "the user was created"
    );

    let alice = api.server.user_by_email("alice@example.com").unwrap().id;
    api.server.add_fault(
        FaultRule::next("POST /api/v4/users/{user_id}/tokens", Fault::DropConnection)
            .after_handler(),
    );
    let lost = api
        .try_send(
            "POST",
            &format!("/users/{alice}/tokens"),
            Some(api.admin.as_str()),
            Some(json!({"description": "lost"})),
        )
        .await;
    assert!(lost.is_err());
    assert_eq!(
        api.server.tokens_of(&alice).len(),
        1,
        "a live token nobody holds"
    );

    // Before the handler: nothing happens.
    api.server
        .add_fault(FaultRule::next("POST /api/v4/users", Fault::Status(500)));
    let a = api
        .admin(
            "POST",
            "/users",
            Some(json!({"username": "bob", "email": "bob@example.com", "password": "correct-horse-battery"})),
        )
        .await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(api.server.user_by_email("bob@example.com").is_none());
}

#[tokio::test]
async fn random_faults_follow_the_seed() {
    let run = |seed| async move {
        let api = Api::start().await;
        api.server.add_fault(
            FaultRule::random(0.5, seed, Fault::Status(500)).on("GET /api/v4/system/ping"),
        );
        let mut pattern = Vec::new();
        for _ in 0..20 {
            pattern.push(
                api.send("GET", "/system/ping", None, None)
                    .await
                    .status
                    .as_u16(),
            );
            // Other endpoints are not affected.
            assert_eq!(
                api.admin("GET", "/users/me", None).await.status,
                StatusCode::OK
            );
        }
        pattern
    };
    let a = run(42).await;
    assert_eq!(a, run(42).await);
    assert!(a.contains(&500) && a.contains(&200), "{a:?}");
}

#[tokio::test]
async fn latency_is_added() {
    let api = Api::with(
        StandIn::builder()
            .latency(Duration::from_millis(100))
            .start()
            .await
            .unwrap(),
    );
    let started = Instant::now();
    api.send("GET", "/system/ping", None, None).await;
    assert!(started.elapsed() >= Duration::from_millis(100));
    api.server.set_latency(Duration::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients() {
    let api = std::sync::Arc::new(Api::start().await);
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let name = format!("w{worker}u{i}");
                let id = api.create_user(&name).await;
                let (_, token) = api.mint(&id).await;
                let me = api.send("GET", "/users/me", Some(&token), None).await;
                assert_eq!(me.body["username"], name.as_str());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(api.server.users().len(), 1 + 16 * 20);
    assert_eq!(api.server.live_tokens().len(), 16 * 20);
    assert_eq!(api.server.request_count("POST /api/v4/users"), 16 * 20);
}

#[tokio::test]
async fn admin_token_can_be_chosen_and_shutdown_stops_serving() {
    let server = StandIn::builder()
        .admin_token("abcdefghijklmnopqrstuvwxyz")
        .start()
        .await
        .unwrap();
    assert_eq!(
        server.admin_token().expose_secret(),
        "abcdefghijklmnopqrstuvwxyz"
    );
    assert!(!format!("{server:?}").contains("abcdefghijklmnopqrstuvwxyz"));
    let api = Api::with(server.clone());
    assert_eq!(
        api.admin("GET", "/users/me", None).await.status,
        StatusCode::OK
    );
    server.shutdown();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh = reqwest::Client::new()
        .get(format!("{}/api/v4/system/ping", server.url()))
        .send()
        .await;
    assert!(fresh.is_err());
}

/// Run by hand: `cargo test -p mattermost-tokens-stand-in --test http_api -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a throughput measurement, not a check"]
async fn throughput() {
    let api = std::sync::Arc::new(Api::start().await);
    for i in 0..2000 {
        api.server
            .create_user_directly(NewUser::new(
                format!("user{i}"),
                format!("user{i}@example.com"),
            ))
            .unwrap();
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..16 {
        let api = api.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..500 {
                let n = (worker * 500 + i) % 2000;
                let a = api
                    .admin("GET", &format!("/users/email/user{n}@example.com"), None)
                    .await;
                assert_eq!(a.status, StatusCode::OK);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = started.elapsed();
    println!(
        "{} requests in {elapsed:?}: {:.0} requests/s",
        16 * 500,
        (16 * 500) as f64 / elapsed.as_secs_f64()
    );
}
