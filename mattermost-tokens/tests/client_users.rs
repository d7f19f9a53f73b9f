//! `MattermostClient` user endpoints, `ping`, `client_config`, version and
//! rate-limit headers, and paging, against httpmock.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use httpmock::prelude::*;
use mattermost_tokens::models::{CreateUser, UserPatch};
use mattermost_tokens::{AccessToken, Error, ServerVersion, UserId};
use secrecy::SecretString;
use serde_json::json;

#[tokio::test]
async fn ping_gets_system_ping_without_credentials() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/system/ping")
                .header_missing("authorization");
            then.status(200)
                .json_body(json!({"status": "OK", "ActiveSearchBackend": "database"}));
        })
        .await;
    client(&server).ping().await.unwrap();
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn ping_reports_a_down_server() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/system/ping");
            then.status(500).json_body(app_error(
                "api.system.health.app_error",
                "unhealthy",
                500,
                "rq1",
            ));
        })
        .await;
    let e = client(&server).ping().await.unwrap_err();
    assert!(matches!(e, Error::Api(ref a) if a.status == 500), "{e:?}");
}

#[tokio::test]
async fn base_url_with_api_v4_or_sub_path_targets_the_right_path() {
    let server = MockServer::start_async().await;
    let root = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me").and(admin_auth);
            then.status(200)
                .json_body(user_json(&id("me"), "root", "root@example.com"));
        })
        .await;
    let sub = server
        .mock_async(|when, then| {
            when.method(GET).path("/mm/api/v4/users/me").and(admin_auth);
            then.status(200)
                .json_body(user_json(&id("me"), "sub", "sub@example.com"));
        })
        .await;
    let a = client_for(
        &format!("{}/api/v4/", server.base_url()),
        mattermost_tokens::RetryPolicy::none(),
    );
    assert_eq!(a.as_admin().me().await.unwrap().username, "root");
    let b = client_for(
        &format!("{}/mm", server.base_url()),
        mattermost_tokens::RetryPolicy::none(),
    );
    assert_eq!(b.as_admin().me().await.unwrap().username, "sub");
    root.assert_calls_async(1).await;
    sub.assert_calls_async(1).await;
}

#[tokio::test]
async fn create_user_posts_the_expected_body_with_admin_token() {
    let server = MockServer::start_async().await;
    let uid = id("newuser");
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users")
                .and(admin_auth)
                .header("content-type", "application/json")
                .json_body(json!({
                    "email": "ada@example.com",
                    "username": "ada",
                    "first_name": "Ada",
                    "password": "correct horse battery",
                    "email_verified": true
                }));
            then.status(201)
                .json_body(user_json(&uid, "ada", "ada@example.com"));
        })
        .await;
    let c = client(&server);
    let u = c
        .as_admin()
        .create_user(&CreateUser {
            email: "ada@example.com".into(),
            username: "ada".into(),
            first_name: "Ada".into(),
            password: Some(SecretString::from("correct horse battery")),
            email_verified: true,
            ..CreateUser::default()
        })
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    assert_eq!(u.id, UserId::new(uid));
    assert_eq!(u.username, "ada");
    assert_eq!(u.email, "ada@example.com");
    assert_eq!(u.roles, "system_user");
    assert!(u.email_verified);
    assert!(!u.is_deactivated());
    assert!(!u.is_system_admin());
}

#[tokio::test]
async fn create_sso_user_sends_auth_fields_and_no_password() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users")
                .and(admin_auth)
                .json_body(json!({
                    "email": "bob@example.com",
                    "username": "bob",
                    "auth_service": "gitlab",
                    "auth_data": "42",
                    "email_verified": false,
                    "locale": "de"
                }));
            then.status(201)
                .json_body(json!({"id": id("bob"), "username": "bob"}));
        })
        .await;
    let u = client(&server)
        .as_admin()
        .create_user(&CreateUser {
            email: "bob@example.com".into(),
            username: "bob".into(),
            auth_service: "gitlab".into(),
            auth_data: "42".into(),
            locale: "de".into(),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    // Missing optional fields default.
    assert_eq!(u.email, "");
    assert_eq!(u.roles, "");
    assert_eq!(u.delete_at, 0);
    assert!(!u.email_verified);
}

#[tokio::test]
async fn user_by_id_and_me() {
    let server = MockServer::start_async().await;
    let uid = id("someone");
    let by_id = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v4/users/{uid}"))
                .and(admin_auth);
            then.status(200)
                .json_body(user_json(&uid, "someone", "s@example.com"));
        })
        .await;
    let me = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me").and(user_auth);
            let mut u = user_json(&id("me"), "alice", "alice@example.com");
            u["roles"] = json!("system_admin system_user");
            u["delete_at"] = json!(5);
            then.status(200).json_body(u);
        })
        .await;
    let c = client(&server);
    let u = c.as_admin().user(&UserId::new(uid.clone())).await.unwrap();
    assert_eq!(u.username, "someone");
    let u = c.as_user(AccessToken::new(USER_TOKEN)).me().await.unwrap();
    assert_eq!(u.username, "alice");
    assert!(u.is_system_admin());
    assert!(u.is_deactivated());
    by_id.assert_calls_async(1).await;
    me.assert_calls_async(1).await;
}

#[tokio::test]
async fn user_by_email_percent_encodes_the_email() {
    let server = MockServer::start_async().await;
    let plain = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/users/email/ada@example.com")
                .and(admin_auth);
            then.status(200)
                .json_body(user_json(&id("ada"), "ada", "ada@example.com"));
        })
        .await;
    // `/`, `?`, `#`, `%` and space must not break out of the path segment.
    let odd = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/users/email/we%2Fi%3Frd%23x%25y%20z@example.com")
                .query_param_missing("rd")
                .and(admin_auth);
            then.status(200)
                .json_body(user_json(&id("odd"), "odd", "odd@example.com"));
        })
        .await;
    let c = client(&server);
    let u = c.as_admin().user_by_email("ada@example.com").await.unwrap();
    assert_eq!(u.username, "ada");
    let u = c
        .as_admin()
        .user_by_email("we/i?rd#x%y z@example.com")
        .await
        .unwrap();
    assert_eq!(u.username, "odd");
    plain.assert_calls_async(1).await;
    odd.assert_calls_async(1).await;
}

#[tokio::test]
async fn user_by_email_not_found() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/users/email/nobody@example.com");
            then.status(404).json_body(app_error(
                "app.user.missing_account.const",
                "Unable to find the user.",
                404,
                "rq404",
            ));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .user_by_email("nobody@example.com")
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
    assert_eq!(e.status(), Some(404));
}

#[tokio::test]
async fn user_by_username() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/users/username/ada.l-x_y")
                .and(user_auth);
            then.status(200)
                .json_body(user_json(&id("ada"), "ada.l-x_y", "ada@example.com"));
        })
        .await;
    let u = client(&server)
        .as_user(AccessToken::new(USER_TOKEN))
        .user_by_username("ada.l-x_y")
        .await
        .unwrap();
    assert_eq!(u.id.as_str(), id("ada"));
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn users_by_ids_and_usernames_post_arrays() {
    let server = MockServer::start_async().await;
    let (a, b) = (id("aaa"), id("bbb"));
    let ids = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users/ids")
                .and(admin_auth)
                .json_body(json!([a, b]));
            then.status(200).json_body(json!([
                user_json(&a, "a", "a@example.com"),
                user_json(&b, "b", "b@example.com")
            ]));
        })
        .await;
    let names = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users/usernames")
                .and(admin_auth)
                .json_body(json!(["a", "zzz"]));
            then.status(200)
                .json_body(json!([user_json(&a, "a", "a@example.com")]));
        })
        .await;
    let c = client(&server);
    let got = c
        .as_admin()
        .users_by_ids(&[UserId::new(a.clone()), UserId::new(b.clone())])
        .await
        .unwrap();
    assert_eq!(
        got.iter().map(|u| u.username.as_str()).collect::<Vec<_>>(),
        ["a", "b"]
    );
    let got = c
        .as_admin()
        .users_by_usernames(&["a".to_owned(), "zzz".to_owned()])
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    ids.assert_calls_async(1).await;
    names.assert_calls_async(1).await;
}

#[tokio::test]
async fn empty_bulk_lookups_send_nothing() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let c = client(&server);
    assert!(c.as_admin().users_by_ids(&[]).await.unwrap().is_empty());
    assert!(
        c.as_admin()
            .users_by_usernames(&[])
            .await
            .unwrap()
            .is_empty()
    );
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn patch_user_sends_only_set_fields() {
    let server = MockServer::start_async().await;
    let uid = id("patchme");
    let m = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path(format!("/api/v4/users/{uid}/patch"))
                .and(admin_auth)
                .json_body(json!({"first_name": "Grace", "position": "Admiral"}));
            then.status(200)
                .json_body(user_json(&uid, "grace", "g@example.com"));
        })
        .await;
    let u = client(&server)
        .as_admin()
        .patch_user(
            &UserId::new(uid.clone()),
            &UserPatch {
                first_name: Some("Grace".into()),
                position: Some("Admiral".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.username, "grace");
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn update_roles_and_deactivate() {
    let server = MockServer::start_async().await;
    let uid = id("roles");
    let roles = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path(format!("/api/v4/users/{uid}/roles"))
                .and(admin_auth)
                .json_body(json!({"roles": "system_user system_admin"}));
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    let del = server
        .mock_async(|when, then| {
            when.method(DELETE)
                .path(format!("/api/v4/users/{uid}"))
                .and(admin_auth);
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    let c = client(&server);
    let u = UserId::new(uid.clone());
    c.as_admin()
        .update_roles(&u, "system_user system_admin")
        .await
        .unwrap();
    c.as_admin().deactivate_user(&u).await.unwrap();
    roles.assert_calls_async(1).await;
    del.assert_calls_async(1).await;
}

fn users_page(start: usize, n: usize) -> serde_json::Value {
    json!(
        (start..start + n)
            .map(|i| user_json(&id(&format!("u{i}")), &format!("user{i}"), "x@example.com"))
            .collect::<Vec<_>>()
    )
}

#[tokio::test]
async fn users_pages_until_a_short_page_and_caps_per_page() {
    let server = MockServer::start_async().await;
    let mut mocks = Vec::new();
    for (page, n) in [(0, 200), (1, 200), (2, 13)] {
        let body = users_page(page * 200, n);
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path("/api/v4/users")
                        .query_param("page", page.to_string())
                        .query_param("per_page", "200")
                        .and(admin_auth);
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    // Anything else (page 3, a larger per_page) is a failure.
    let other = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let c = client(&server);
    let users: Vec<_> = c.as_admin().users(500).collect().await;
    assert_eq!(users.len(), 413);
    let users: Vec<_> = users.into_iter().collect::<Result<_, _>>().unwrap();
    assert_eq!(users[0].username, "user0");
    assert_eq!(users[412].username, "user412");
    for m in &mocks {
        m.assert_calls_async(1).await;
    }
    other.assert_calls_async(0).await;
}

#[tokio::test]
async fn users_with_small_pages_and_an_empty_last_page() {
    let server = MockServer::start_async().await;
    let mut mocks = Vec::new();
    for (page, n) in [(0usize, 2usize), (1, 2), (2, 0)] {
        let body = users_page(page * 2, n);
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path("/api/v4/users")
                        .query_param("page", page.to_string())
                        .query_param("per_page", "2");
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let users: Vec<_> = client(&server)
        .as_admin()
        .users(2)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(users.len(), 4);
    for m in &mocks {
        m.assert_calls_async(1).await;
    }
}

#[tokio::test]
async fn users_stream_ends_after_an_error() {
    let server = MockServer::start_async().await;
    let p0 = server
        .mock_async(|when, then| {
            when.path("/api/v4/users").query_param("page", "0");
            then.status(200).json_body(users_page(0, 3));
        })
        .await;
    let p1 = server
        .mock_async(|when, then| {
            when.path("/api/v4/users").query_param("page", "1");
            then.status(500).json_body(app_error(
                "app.user.get_profiles.app_error",
                "db down",
                500,
                "rq",
            ));
        })
        .await;
    let items: Vec<_> = client(&server).as_admin().users(3).collect().await;
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    let e = items[3].as_ref().unwrap_err();
    assert_eq!(e.status(), Some(500));
    // The URL in the error carries no query string.
    let api = e.api_error().unwrap();
    assert!(api.url.ends_with("/api/v4/users"), "{}", api.url);
    assert!(!e.to_string().contains("page="), "{e}");
    assert!(!format!("{e:?}").contains("page="), "{e:?}");
    p0.assert_calls_async(1).await;
    p1.assert_calls_async(1).await;
}

#[tokio::test]
async fn client_config_asks_for_the_old_format() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/config/client")
                .query_param("format", "old")
                .and(admin_auth);
            then.status(200).json_body(json!({
                "EnableUserAccessTokens": "true",
                "Version": "10.6.0",
                "SiteName": "Mattermost",
                "SomeNumber": 5
            }));
        })
        .await;
    let cfg = client(&server).as_admin().client_config().await.unwrap();
    assert_eq!(cfg.user_access_tokens_enabled(), Some(true));
    assert_eq!(cfg.version(), Some("10.6.0"));
    assert_eq!(cfg.get("SiteName"), Some("Mattermost"));
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn client_config_disabled_and_absent() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path("/api/v4/config/client").and(admin_auth);
            then.status(200)
                .json_body(json!({"EnableUserAccessTokens": "false"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.path("/api/v4/config/client").and(user_auth);
            then.status(200).json_body(json!({"SiteName": "x"}));
        })
        .await;
    let c = client(&server);
    let cfg = c.as_admin().client_config().await.unwrap();
    assert_eq!(cfg.user_access_tokens_enabled(), Some(false));
    let cfg = c
        .as_user(AccessToken::new(USER_TOKEN))
        .client_config()
        .await
        .unwrap();
    assert_eq!(cfg.user_access_tokens_enabled(), None);
}

#[tokio::test]
async fn server_version_and_rate_limit_headers_are_exposed() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(200)
                .header(
                    "X-Version-Id",
                    "10.6.0.13685270376.215f100adf6ccda09afcaaa84ac4bfbd.true",
                )
                .header("X-RateLimit-Limit", "101")
                .header("X-RateLimit-Remaining", "97")
                .header("X-RateLimit-Reset", "1")
                .header("X-Request-Id", "abc")
                .json_body(user_json(&id("me"), "me", "me@example.com"));
        })
        .await;
    let c = client(&server);
    assert_eq!(c.server_version(), None);
    assert!(c.rate_limit().is_none());
    c.as_admin().me().await.unwrap();
    let v = c.server_version().unwrap();
    assert_eq!(
        v,
        ServerVersion {
            major: 10,
            minor: 6,
            patch: 0
        }
    );
    assert_eq!(v.to_string(), "10.6.0");
    let rl = c.rate_limit().unwrap();
    assert_eq!(rl.limit, 101);
    assert_eq!(rl.remaining, 97);
    assert_eq!(rl.reset, Duration::from_secs(1));
    // Clones share what was observed.
    assert_eq!(c.clone().server_version(), Some(v));
}

#[tokio::test]
async fn malformed_user_ids_are_refused_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    let c = client(&server);
    let a = c.as_admin();
    for bad in [
        "",
        "..",
        "../users",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "short",
        "a/b",
    ] {
        let u = UserId::new(bad);
        assert!(
            matches!(a.user(&u).await, Err(Error::InvalidInput(_))),
            "{bad}"
        );
        assert!(
            matches!(
                a.patch_user(&u, &UserPatch::default()).await,
                Err(Error::InvalidInput(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                a.update_roles(&u, "system_user").await,
                Err(Error::InvalidInput(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(a.deactivate_user(&u).await, Err(Error::InvalidInput(_))),
            "{bad}"
        );
    }
    any.assert_calls_async(0).await;
}

/// A lookup by name must never turn into a request to another endpoint:
/// `.`/`..` path segments are dropped by URL normalisation, so
/// `user_by_username("..")` goes to `GET /api/v4/users/username` (which the
/// server routes as `GET /users/{user_id}` with id `username`). Refusing
/// such names (InvalidInput) or encoding them both pass this test.
#[tokio::test]
async fn dot_segment_names_do_not_reach_another_endpoint() {
    let server = MockServer::start_async().await;
    let team = mattermost_tokens::TeamId::new(id("team"));
    let mut traps = Vec::new();
    for p in [
        "/api/v4/users/username".to_owned(),
        "/api/v4/users/email".to_owned(),
        "/api/v4/teams/name".to_owned(),
        format!("/api/v4/teams/{team}/channels/name"),
    ] {
        traps.push(
            server
                .mock_async(|when, then| {
                    when.path(p.clone());
                    then.status(200)
                        .json_body(user_json(&id("x"), "x", "x@example.com"));
                })
                .await,
        );
    }
    let c = client(&server);
    let a = c.as_admin();
    for name in [".", ".."] {
        let _ = a.user_by_username(name).await;
        let _ = a.user_by_email(name).await;
        let _ = a.team_by_name(name).await;
        let _ = a.channel_by_name(&team, name).await;
    }
    for t in &traps {
        t.assert_calls_async(0).await;
    }
}

#[tokio::test]
async fn each_identity_sends_only_its_own_token() {
    let server = MockServer::start_async().await;
    let admin = server
        .mock_async(|when, then| {
            when.path("/api/v4/users/me").and(admin_auth);
            then.status(200)
                .json_body(user_json(&id("admin"), "admin", "admin@example.com"));
        })
        .await;
    let user = server
        .mock_async(|when, then| {
            when.path("/api/v4/users/me").and(user_auth);
            then.status(200)
                .json_body(user_json(&id("user"), "user", "user@example.com"));
        })
        .await;
    let c = client(&server);
    let as_user = c.as_user(AccessToken::new(USER_TOKEN));
    assert_eq!(as_user.me().await.unwrap().username, "user");
    assert_eq!(as_user.identity().kind(), "user");
    assert_eq!(c.as_admin().me().await.unwrap().username, "admin");
    assert_eq!(c.as_admin().identity().kind(), "admin");
    // A third token matches neither mock (httpmock's own 404, not
    // Mattermost's JSON: a bad response, not "not found").
    let e = c
        .as_user(AccessToken::new("someoneelse0000000000000000"))
        .me()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(404), "{e:?}");
    assert!(!e.is_not_found(), "{e:?}");
    admin.assert_calls_async(1).await;
    user.assert_calls_async(1).await;
}
