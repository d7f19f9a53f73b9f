//! The `magic_link_server` binary end to end: app tokens, the magic-link
//! endpoint, the confirm page and the redeem step, against the stand-in.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mattermost_tokens_stand_in::StandIn;
use reqwest::redirect::Policy;
use serde_json::Value;

use common::{Demo, Proc as Server, free_port, wait_for_port};

/// `sync_users` with `args`, which must succeed.
fn sync_all(demo: &Demo, server: &StandIn, args: &[&str]) {
    let out = demo.run(Some(server), args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn issue_app_token(demo: &Demo, server: &StandIn, user: i64) -> String {
    demo.magic_link_server(server, &["issue-app-token", "--user", &user.to_string()])
}

async fn wait_until_listening(port: u16) {
    wait_for_port(port, "magic_link_server").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_link_flow_sqlx() {
    magic_link_flow("sqlx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_link_flow_diesel() {
    magic_link_flow("diesel").await;
}

async fn magic_link_flow(store: &str) {
    let mm = StandIn::start().await.unwrap();
    let demo = Demo::new(&format!("flow-{store}"));
    sync_all(&demo, &mm, &["--all", "--store", store]);
    let app_token = issue_app_token(&demo, &mm, 1);
    assert!(app_token.len() >= 40, "{app_token}");

    let port = free_port();
    let _server = Server(
        demo.command(env!("CARGO_BIN_EXE_magic_link_server"), &mm)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--store", store])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let http = reqwest::Client::builder()
        .redirect(Policy::none())
        .build()
        .unwrap();
    let endpoint = format!("http://127.0.0.1:{port}/api/mattermost/magic-link");

    // No or a wrong bearer: 401 with a JSON error.
    for auth in [None, Some("Bearer nope"), Some("Basic abc")] {
        let mut req = http.get(&endpoint);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 401, "{auth:?}");
        let body: Value = resp.json().await.unwrap();
        assert!(body["error"].is_string());
    }

    // The scheme is case-insensitive: `bearer` works as `Bearer` does.
    let resp = http
        .get(&endpoint)
        .header("authorization", format!("bearer {app_token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);

    // A valid app token: the seed's JSON shape.
    let before = chrono::Utc::now();
    let resp = http
        .get(&endpoint)
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    // The browser that asked gets the link's binding cookie.
    let binding = resp.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        binding.starts_with("mmt_link_binding=") && binding.contains("HttpOnly"),
        "{binding}"
    );
    let binding = binding.split(';').next().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let obj = body.as_object().unwrap();
    assert_eq!(obj.len(), 2, "{body}");
    let url = obj["url"].as_str().unwrap().to_owned();
    let expires = obj["expires_at"].as_str().unwrap();
    assert!(
        expires.ends_with('Z') && !expires.contains('.'),
        "{expires}"
    );
    let expires = chrono::DateTime::parse_from_rfc3339(expires).unwrap();
    let ttl = expires.signed_duration_since(before).num_seconds();
    assert!((295..=301).contains(&ttl), "ttl {ttl}");
    let prefix = format!("http://127.0.0.1:{port}/mattermost/magic-link/redeem?code=");
    assert!(url.starts_with(&prefix), "{url}");
    let code = url[prefix.len()..].to_owned();
    let user_token = {
        let rows = mm.live_tokens();
        let u1 = mm.user_by_email("ana.lopez@example.com").unwrap();
        let t = rows.iter().find(|t| t.user_id == u1.id).unwrap();
        mm.token_value(&t.id).unwrap()
    };
    assert!(!url.contains(user_token.expose_secret()));

    // In another browser (without the cookie) the link is worth nothing.
    let elsewhere = http.get(&url).send().await.unwrap();
    assert_eq!(elsewhere.status(), 400);

    // Opening the link shows the confirm page and uses nothing up.
    for _ in 0..2 {
        let page = http
            .get(&url)
            .header("cookie", &binding)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        assert_eq!(page.headers()["cache-control"], "no-store");
        assert!(page.text().await.unwrap().contains("<form"));
    }

    // Confirming redeems it: cookies and a redirect into Mattermost.
    let redeem_url = format!("http://127.0.0.1:{port}/mattermost/magic-link/redeem");
    let resp = http
        .post(&redeem_url)
        .header("content-type", "application/x-www-form-urlencoded")
        // As the confirm page's form sends it.
        .header("origin", format!("http://127.0.0.1:{port}"))
        .header("cookie", &binding)
        .body(format!("code={code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    assert!(
        resp.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with(mm.url())
    );
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let auth = cookies
        .iter()
        .find(|c| c.starts_with("MMAUTHTOKEN="))
        .unwrap();
    assert!(auth.starts_with(&format!("MMAUTHTOKEN={};", user_token.expose_secret())));
    assert!(auth.contains("HttpOnly") && auth.contains("SameSite"));
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("MMUSERID=") && !c.contains("HttpOnly"))
    );
    // MMCSRF is only ever removed (a personal-access-token session has no
    // CSRF value for it to hold).
    assert!(
        cookies
            .iter()
            .any(|c| c.starts_with("MMCSRF=;") && c.contains("Max-Age=0"))
    );
    assert!(mm.token_is_live(user_token.expose_secret()));

    // Used once: a replay gets the same answer as a garbled code.
    for c in [code.as_str(), "garbled"] {
        let resp = http
            .post(&redeem_url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("origin", format!("http://127.0.0.1:{port}"))
            .header("cookie", &binding)
            .body(format!("code={c}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "{c}");
        assert!(resp.headers().get("set-cookie").is_none());
    }

    // The library's metrics, for Prometheus: requests to Mattermost by
    // endpoint template, and no secret.
    let resp = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let metrics = resp.text().await.unwrap();
    assert!(
        metrics.contains("mattermost_tokens_request_duration_seconds_bucket{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"endpoint="/api/v4/config""#),
        "{metrics}"
    );
    assert!(!metrics.contains(user_token.expose_secret()));
    assert!(!metrics.contains(&code));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_a_token_gets_a_clear_conflict() {
    let mm = StandIn::start().await.unwrap();
    let demo = Demo::new("notoken");
    // The users table exists, nobody is synced.
    let app_token = issue_app_token(&demo, &mm, 2);
    let port = free_port();
    let _server = Server(
        demo.command(env!("CARGO_BIN_EXE_magic_link_server"), &mm)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/mattermost/magic-link"))
        .bearer_auth(&app_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("sync_users --missing")
    );
}

/// The rows of a table of the demo's SQLite database.
async fn count_rows(demo: &Demo, table: &str) -> i64 {
    let pool = sqlx::SqlitePool::connect(&demo.db_url).await.unwrap();
    let n = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}")))
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_tokens_expire_and_are_revoked_links_are_limited_and_codes_purged() {
    let mm = StandIn::start().await.unwrap();
    let demo = Demo::new("limits");
    sync_all(&demo, &mm, &["--all"]);
    let port = free_port();
    let _server = Server(
        demo.command(env!("CARGO_BIN_EXE_magic_link_server"), &mm)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--ttl",
                "1",
                "--purge-every",
                "1",
                "--links-per-minute",
                "3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_until_listening(port).await;
    let endpoint = format!("http://127.0.0.1:{port}/api/mattermost/magic-link");
    let ask = |token: String| {
        let req = reqwest::Client::new().get(&endpoint).bearer_auth(token);
        async move { req.send().await.unwrap() }
    };

    // Three links a minute for a user; the fourth waits.
    let ana = issue_app_token(&demo, &mm, 1);
    for _ in 0..3 {
        assert_eq!(ask(ana.clone()).await.status(), 200);
    }
    let refused = ask(ana.clone()).await;
    assert_eq!(refused.status(), 429);
    let retry: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another user is not held back by the first.
    let bob = issue_app_token(&demo, &mm, 2);
    assert_eq!(ask(bob.clone()).await.status(), 200);

    // Expired codes leave the code table within a purge or two.
    assert!(count_rows(&demo, "mattermost_magic_link_codes").await >= 1);
    let deadline = Instant::now() + Duration::from_secs(10);
    while count_rows(&demo, "mattermost_magic_link_codes").await > 0 {
        assert!(Instant::now() < deadline, "expired codes were not purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Revoked: every token of the user stops working at once.
    let said = demo.magic_link_server(&mm, &["revoke-app-tokens", "--user", "2"]);
    assert_eq!(said, "revoked 1 app tokens of user 2");
    assert_eq!(ask(bob).await.status(), 401);

    // Expired: a token past its lifetime is refused.
    demo.sql("UPDATE app_api_tokens SET expires_at = 0 WHERE user_id = 1")
        .await;
    let expired = ask(ana).await;
    assert_eq!(expired.status(), 401);
    let body: Value = expired.json().await.unwrap();
    assert_eq!(body["error"], "invalid or expired bearer token");
}

#[test]
fn help_explains_the_options() {
    let out = Command::new(env!("CARGO_BIN_EXE_magic_link_server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--listen",
        "--public-url",
        "--cookie-domain",
        "--ttl",
        "--token-in-url",
        "--store",
        "issue-app-token",
        "revoke-app-tokens",
        "--links-per-minute",
        "--purge-every",
        "MATTERMOST_URL",
        "DATABASE_URL",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}
