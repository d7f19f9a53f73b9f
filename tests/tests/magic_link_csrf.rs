//! Writes in the session a magic link starts, under Mattermost's CSRF rules
//! for cookie sessions (`checkCSRFToken` in
//! `server/channels/web/handlers.go`), which the stand-in enforces as the
//! server does: a write passes when its `X-CSRF-Token` header equals the
//! session's CSRF value (a session made from a personal access token has
//! none: an absent header matches), or else with
//! `X-Requested-With: XMLHttpRequest` unless
//! `ServiceSettings.ExperimentalStrictCSRFEnforcement` is on.

use std::sync::Arc;

use mattermost_tokens::magic_link::{
    MagicLinkConfig, MagicLinks, MemoryCodeStore, Redemption, cookie,
};
use mattermost_tokens::*;
use mattermost_tokens_stand_in::StandIn;
use reqwest::StatusCode;

const REDEEM: &str = "http://127.0.0.1:8080/mattermost/magic-link/redeem";

struct Fixture {
    server: StandIn,
    client: MattermostClient,
    store: Arc<MemoryStore>,
    mm: UserId,
}

async fn fixture(strict: bool) -> Fixture {
    let server = StandIn::builder()
        .strict_csrf(strict)
        .start()
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(client.clone(), store.clone(), SyncOptions::new("csrf")).unwrap();
    sync.sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    let mm = store.get(&1.into()).await.unwrap().unwrap();
    Fixture {
        server,
        client,
        mm: mm.mattermost_user_id.unwrap(),
        store,
    }
}

/// Ana's token, as the store holds it.
async fn token_of(f: &Fixture) -> AccessToken {
    let record = f.store.get(&1.into()).await.unwrap().unwrap();
    record.token.unwrap()
}

fn links(f: &Fixture, config: MagicLinkConfig) -> MagicLinks {
    MagicLinks::new(
        f.client.clone(),
        f.store.clone(),
        Arc::new(MemoryCodeStore::new()),
        config.insecure_cookies().browser_binding(false),
    )
    .unwrap()
}

async fn redeem(f: &Fixture) -> Redemption {
    let links = links(f, MagicLinkConfig::one_time_code(REDEEM));
    let link = links.issue(&1.into()).await.unwrap();
    let (_, code) = link.url().split_once("code=").unwrap();
    links.redeem(code, None).await.unwrap()
}

/// The browser's cookies after a redeem: those it set, not those it removed.
fn jar_after(r: &Redemption) -> Vec<(String, String)> {
    r.cookies()
        .iter()
        .filter(|c| c.max_age() != Some(cookie::time::Duration::ZERO))
        .map(|c| (c.name().to_owned(), c.value().to_owned()))
        .collect()
}

/// A write as Mattermost's web app sends it (`Client4.getOptions`): the
/// browser's cookies, `X-Requested-With: XMLHttpRequest`, and
/// `X-CSRF-Token` when an `MMCSRF` cookie holds a value.
async fn web_app_write(f: &Fixture, jar: &[(String, String)]) -> StatusCode {
    let cookies: Vec<String> = jar.iter().map(|(n, v)| format!("{n}={v}")).collect();
    let mut req = reqwest::Client::new()
        .put(format!("{}/api/v4/users/{}/patch", f.server.url(), f.mm))
        .header("Cookie", cookies.join("; "))
        .header("X-Requested-With", "XMLHttpRequest")
        .body(r#"{"nickname":"ana"}"#);
    if let Some((_, v)) = jar.iter().find(|(n, v)| n == "MMCSRF" && !v.is_empty()) {
        req = req.header("X-CSRF-Token", v);
    }
    req.send().await.unwrap().status()
}

#[tokio::test]
async fn the_web_app_can_write_in_a_magic_link_session_under_strict_csrf() {
    let f = fixture(true).await;
    let r = redeem(&f).await;
    let jar = jar_after(&r);
    assert!(jar.iter().any(|(n, _)| n == "MMAUTHTOKEN"), "{jar:?}");
    // No MMCSRF value: the web app sends no X-CSRF-Token, which matches the
    // empty CSRF value of a session made from a personal access token.
    assert!(jar.iter().all(|(n, _)| n != "MMCSRF"), "{jar:?}");
    let removal = r.cookies().iter().find(|c| c.name() == "MMCSRF").unwrap();
    assert_eq!(removal.max_age(), Some(cookie::time::Duration::ZERO));
    assert_eq!(web_app_write(&f, &jar).await, StatusCode::OK);

    // Any MMCSRF value (a random one, or a stale one from Mattermost's own
    // sign-in) leaves the write to X-Requested-With, which strict
    // enforcement refuses.
    let mut stale = jar.clone();
    stale.push(("MMCSRF".into(), "x3n1f8k2q9w7e4r6t5y0u1i2o3".into()));
    assert_eq!(web_app_write(&f, &stale).await, StatusCode::UNAUTHORIZED);
    f.server.set_strict_csrf(false);
    assert_eq!(web_app_write(&f, &stale).await, StatusCode::OK);
}

#[tokio::test]
async fn the_stand_in_checks_cookie_writes_as_mattermost_does() {
    let f = fixture(false).await;
    let token = token_of(&f).await;
    let url = format!("{}/api/v4/users/{}/patch", f.server.url(), f.mm);
    let send = |method: reqwest::Method, headers: &[(&str, &str)]| {
        let mut req = reqwest::Client::new()
            .request(method, &url)
            .header("Cookie", format!("MMAUTHTOKEN={}", token.expose_secret()))
            .body(r#"{"nickname":"ana"}"#);
        for (n, v) in headers {
            req = req.header(*n, *v);
        }
        async move { req.send().await.unwrap().status() }
    };
    let put = reqwest::Method::PUT;
    let xrw = ("X-Requested-With", "XMLHttpRequest");
    let wrong = ("X-CSRF-Token", "not-the-session-value");
    // A personal-access-token session has no CSRF value: no header matches.
    assert_eq!(send(put.clone(), &[]).await, StatusCode::OK);
    assert_eq!(send(put.clone(), &[wrong]).await, StatusCode::UNAUTHORIZED);
    assert_eq!(send(put.clone(), &[wrong, xrw]).await, StatusCode::OK);
    // Compared to the letter, as the server does.
    let lower = ("X-Requested-With", "xmlhttprequest");
    assert_eq!(
        send(put.clone(), &[wrong, lower]).await,
        StatusCode::UNAUTHORIZED
    );
    f.server.set_strict_csrf(true);
    assert_eq!(
        send(put.clone(), &[wrong, xrw]).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(send(put.clone(), &[xrw]).await, StatusCode::OK);
    // GET is never checked.
    let get = format!("{}/api/v4/users/me", f.server.url());
    let me = reqwest::Client::new()
        .get(get)
        .header("Cookie", format!("MMAUTHTOKEN={}", token.expose_secret()))
        .header(wrong.0, wrong.1)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}

#[tokio::test]
async fn check_server_refuses_strict_csrf_with_a_parent_cookie_domain() {
    let f = fixture(true).await;
    let parent = links(
        &f,
        MagicLinkConfig::one_time_code(REDEEM).cookie_domain("127.0.0.1"),
    );
    let e = parent.check_server().await.unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig(m) if m.contains("ExperimentalStrictCSRFEnforcement")),
        "{e}"
    );
    // Host-only cookies: the redeem removes the MMCSRF the web app would send.
    let host_only = links(&f, MagicLinkConfig::one_time_code(REDEEM));
    host_only.check_server().await.unwrap();
    f.server.set_strict_csrf(false);
    parent.check_server().await.unwrap();
    assert_eq!(
        f.client.as_admin().strict_csrf_enforcement().await.unwrap(),
        Some(false)
    );
    // A caller who may not read the configuration: the check is skipped.
    let token = token_of(&f).await;
    let user = f.client.as_user(token);
    assert_eq!(user.strict_csrf_enforcement().await.unwrap(), None);
}
