//! Magic links: issuing, the confirm step, redeeming, cookies, the JSON
//! answer, the token-in-URL mode, secrecy in Debug and logs, and (feature
//! `axum`) the redeem route.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use mattermost_tokens::magic_link::{
    AUTH_COOKIE, CSRF_COOKIE, CodeHash, LinkMode, ManualClock, RESPONSE_HEADERS, USER_ID_COOKIE,
    cookie::{Cookie, SameSite},
};
use mattermost_tokens::{
    Actor, Error, HostUserId, InvalidLinkReason, MagicLinkConfig, MagicLinks, MattermostClient,
    MemoryCodeStore, MemoryStore, NewToken, Operation, Policy, StoreError, TokenId, TokenSelector,
    TokenStore, UserId,
};

const SERVER: &str = "https://chat.example.com";
const REDEEM: &str = "https://app.example.com/mattermost/magic-link/redeem";
const ADMIN_TOKEN: &str = "admintokenadmintokenadmint";
const TOKEN: &str = "usertokenusertokenusertoke";
const MM_ID: &str = "mmuseridmmuseridmmuseridmm";

/// User 1: synced with a token. User 2: synced, no token. User 3: never
/// synced.
const SYNCED: HostUserId = HostUserId::Int(1);
const NO_TOKEN: HostUserId = HostUserId::Int(2);
const NOT_SYNCED: HostUserId = HostUserId::Int(3);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 26, 12, 0, 0).unwrap()
}

struct Fixture {
    links: MagicLinks,
    store: Arc<MemoryStore>,
    codes: Arc<MemoryCodeStore>,
    clock: Arc<ManualClock>,
}

async fn users() -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::with_users([SYNCED, NO_TOKEN, NOT_SYNCED]));
    store
        .put_token(
            &SYNCED,
            &NewToken {
                mattermost_user_id: UserId::new(MM_ID),
                token: TOKEN.into(),
                token_id: TokenId::new("tokenidtokenidtokenidtoken"),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    store
        .set_mattermost_user_id(&NO_TOKEN, &UserId::new("othermmidothermmidothermmi"))
        .await
        .unwrap();
    store
}

/// A fixture whose links are not bound to a browser: most cases here are
/// about codes (lifetime, single use, cookies), and pass no binding;
/// binding has cases of its own ([`fixture_bound`]).
async fn fixture_with(server: &str, config: MagicLinkConfig) -> Result<Fixture, Error> {
    fixture_bound(server, config.browser_binding(false)).await
}

/// A fixture with `config` as given (links bound by default).
async fn fixture_bound(server: &str, config: MagicLinkConfig) -> Result<Fixture, Error> {
    let store = users().await;
    let codes = Arc::new(MemoryCodeStore::new());
    let clock = Arc::new(ManualClock::new(t0()));
    // (Plain http to a real host is refused by the client unless allowed:
    // allowed here, so that the magic-link checks themselves are tested.)
    let client = MattermostClient::builder(server, ADMIN_TOKEN)
        .allow_insecure_http()
        .build()
        .unwrap();
    let links = MagicLinks::new(
        client,
        store.clone(),
        codes.clone(),
        config.clock(clock.clone()),
    )?;
    Ok(Fixture {
        links,
        store,
        codes,
        clock,
    })
}

async fn fixture() -> Fixture {
    fixture_with(
        SERVER,
        MagicLinkConfig::one_time_code(REDEEM).cookie_domain("example.com"),
    )
    .await
    .unwrap()
}

fn code_of(url: &str) -> String {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code parameter")
}

fn invalid_reason(e: Error) -> InvalidLinkReason {
    match e {
        Error::InvalidMagicLink { reason } => reason,
        other => panic!("expected InvalidMagicLink, got {other:?}"),
    }
}

#[tokio::test]
async fn json_is_the_seed_shape_with_whole_seconds_utc() {
    let f = fixture().await;
    // Sub-second time: expires_at is still whole seconds.
    f.clock.set(t0() + chrono::Duration::milliseconds(700));
    let link = f.links.issue(&SYNCED).await.unwrap();
    assert_eq!(link.expires_at(), t0() + chrono::Duration::minutes(5));

    let json = serde_json::to_value(&link).unwrap();
    let obj = json.as_object().unwrap();
    let mut keys: Vec<_> = obj.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["expires_at", "url"]);
    assert_eq!(obj["expires_at"], "2026-01-26T12:05:00Z");
    assert_eq!(obj["url"], link.url());
    assert_eq!(
        serde_json::to_string(&link).unwrap(),
        format!(
            r#"{{"url":"{}","expires_at":"2026-01-26T12:05:00Z"}}"#,
            link.url()
        )
    );

    // The URL is the redeem route with a 256-bit base64url code.
    assert!(link.url().starts_with(&format!("{REDEEM}?code=")));
    let code = code_of(link.url());
    assert_eq!(code.len(), 43);
    assert!(
        code.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_ne!(code, code_of(f.links.issue(&SYNCED).await.unwrap().url()));
    assert_eq!(f.links.mode(), LinkMode::OneTimeCode);
    assert_eq!(f.links.ttl(), Duration::from_secs(300));
}

#[tokio::test]
async fn ttl_is_configurable() {
    let f = fixture_with(
        SERVER,
        MagicLinkConfig::one_time_code(REDEEM)
            .cookie_domain("example.com")
            .ttl(Duration::from_secs(90)),
    )
    .await
    .unwrap();
    let link = f.links.issue(&SYNCED).await.unwrap();
    assert_eq!(
        serde_json::to_value(&link).unwrap()["expires_at"],
        "2026-01-26T12:01:30Z"
    );
}

#[tokio::test]
async fn codes_expire() {
    let f = fixture().await;
    let link = f.links.issue(&SYNCED).await.unwrap();
    let code = code_of(link.url());

    f.clock.set(t0() + chrono::Duration::seconds(299));
    f.links.confirm_page(&code, None).await.unwrap();

    f.clock.set(t0() + chrono::Duration::seconds(300));
    let e = f.links.confirm_page(&code, None).await.unwrap_err();
    assert_eq!(invalid_reason(e), InvalidLinkReason::NotRedeemable);
    let e = f.links.redeem(&code, None).await.unwrap_err();
    assert_eq!(invalid_reason(e), InvalidLinkReason::NotRedeemable);

    // An expired code stays in the store until purged.
    assert_eq!(f.codes.len(), 1);
    assert_eq!(f.links.purge_expired().await.unwrap(), 1);
    assert!(f.codes.is_empty());

    // A fresh link still works at the later time.
    let link = f.links.issue(&SYNCED).await.unwrap();
    f.links.redeem(&code_of(link.url()), None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_code_is_redeemed_once_under_concurrency() {
    let f = fixture().await;
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let links = f.links.clone();
            let code = code.clone();
            tokio::spawn(async move { links.redeem(&code, None).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(r) => {
                ok += 1;
                assert_eq!(r.user(), &SYNCED);
            }
            Err(e) => assert_eq!(invalid_reason(e), InvalidLinkReason::NotRedeemable),
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test]
async fn unknown_garbled_and_replayed_codes_are_refused_alike() {
    let f = fixture().await;
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());

    // Unknown: the right shape, never issued.
    let unknown = code_of(fixture().await.links.issue(&SYNCED).await.unwrap().url());
    for e in [
        f.links.redeem(&unknown, None).await.unwrap_err(),
        f.links.confirm_page(&unknown, None).await.unwrap_err(),
    ] {
        assert_eq!(invalid_reason(e), InvalidLinkReason::NotRedeemable);
    }

    // Garbled: wrong length, wrong characters, padding, empty.
    let mut wrong_char = code.clone();
    wrong_char.replace_range(10..11, "!");
    for garbled in [
        String::new(),
        "abc".to_owned(),
        code[..42].to_owned(),
        format!("{code}A"),
        format!("{}=", &code[..42]),
        wrong_char,
        code.replace(|c: char| c.is_ascii_lowercase(), "é"),
    ] {
        for e in [
            f.links.redeem(&garbled, None).await.unwrap_err(),
            f.links.confirm_page(&garbled, None).await.unwrap_err(),
        ] {
            assert_eq!(
                invalid_reason(e),
                InvalidLinkReason::Malformed,
                "{garbled:?}"
            );
        }
    }

    // Replayed.
    f.links.redeem(&code, None).await.unwrap();
    let e = f.links.redeem(&code, None).await.unwrap_err();
    let shown = format!("{e} {e:?}");
    assert!(!shown.contains(&code), "{shown}");
    assert_eq!(invalid_reason(e), InvalidLinkReason::NotRedeemable);
}

#[tokio::test]
async fn the_confirm_page_consumes_nothing() {
    let f = fixture().await;
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    for _ in 0..3 {
        let page = f.links.confirm_page(&code, None).await.unwrap();
        let html = page.html();
        assert!(html.contains(r#"<form method="post" action="/mattermost/magic-link/redeem">"#));
        assert!(html.contains(&format!(r#"name="code" value="{code}""#)));
        assert!(!html.contains("<script"));
        assert!(!format!("{page:?}").contains(&code));
    }
    assert_eq!(f.codes.len(), 1);
    f.links.redeem(&code, None).await.unwrap();
    assert!(f.links.confirm_page(&code, None).await.is_err());
}

fn cookies(r: &mattermost_tokens::Redemption) -> Vec<(String, Cookie<'static>)> {
    r.set_cookie_headers()
        .into_iter()
        .map(|h| {
            let c = Cookie::parse(h.clone()).unwrap().into_owned();
            (h, c)
        })
        .collect()
}

#[tokio::test]
async fn cookies_carry_the_right_attributes() {
    let f = fixture().await;
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    let r = f.links.redeem(&code, None).await.unwrap();
    assert_eq!(r.user(), &SYNCED);
    assert_eq!(r.mattermost_user_id().as_str(), MM_ID);
    assert_eq!(r.redirect_url().as_str(), "https://chat.example.com/");

    let cookies = cookies(&r);
    let names: Vec<_> = cookies.iter().map(|(_, c)| c.name().to_owned()).collect();
    assert_eq!(names, [AUTH_COOKIE, USER_ID_COOKIE, CSRF_COOKIE]);
    assert_eq!(r.cookies().len(), 3);
    for (header, c) in &cookies {
        let removal = c.name() == CSRF_COOKIE;
        assert_eq!(c.secure(), Some(true), "{}", c.name());
        assert_eq!(c.same_site(), Some(SameSite::Lax), "{}", c.name());
        assert_eq!(c.domain(), Some("example.com"), "{}", c.name());
        assert_eq!(c.path(), Some("/"), "{}", c.name());
        let life = if removal { 0 } else { 12 * 3600 };
        assert_eq!(
            c.max_age(),
            Some(cookie_duration(life)),
            "a short life by default: {header}"
        );
        let http_only = c.name() == AUTH_COOKIE;
        assert_eq!(c.http_only().unwrap_or(false), http_only, "{header}");
        assert_eq!(header.contains("HttpOnly"), http_only, "{header}");
    }
    assert_eq!(cookies[0].1.value(), TOKEN);
    assert_eq!(cookies[1].1.value(), MM_ID);
    // MMCSRF is removed, never given a value: a session Mattermost makes
    // from a personal access token has no CSRF value for it to match.
    assert_eq!(cookies[2].1.value(), "");
}

#[tokio::test]
async fn cookie_and_redirect_options() {
    let f = fixture_with(
        SERVER,
        MagicLinkConfig::one_time_code(REDEEM)
            .cookie_domain(".Example.com")
            .redirect_url("https://chat.example.com/myteam")
            .cookie_max_age(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    let r = f.links.redeem(&code, None).await.unwrap();
    assert_eq!(r.redirect_url().as_str(), "https://chat.example.com/myteam");
    for (_, c) in cookies(&r) {
        assert_eq!(c.domain(), Some("example.com"));
        let life = if c.name() == CSRF_COOKIE { 0 } else { 3600 };
        assert_eq!(c.max_age(), Some(cookie_duration(life)));
    }

    // Secure off only on request (here a local demo over http).
    let f = fixture_with(
        "http://localhost:8065",
        MagicLinkConfig::one_time_code("http://localhost:3000/mattermost/magic-link/redeem")
            .insecure_cookies(),
    )
    .await
    .unwrap();
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    let r = f.links.redeem(&code, None).await.unwrap();
    for (header, c) in cookies(&r) {
        assert_eq!(c.secure(), None, "{header}");
        assert_eq!(c.domain(), None, "host-only: {header}");
    }
}

fn cookie_duration(secs: i64) -> mattermost_tokens::magic_link::cookie::time::Duration {
    mattermost_tokens::magic_link::cookie::time::Duration::seconds(secs)
}

/// A link works only in the browser that asked for it: forwarded, logged
/// or read over a shoulder, it signs in nobody, and trying uses nothing up.
#[tokio::test]
async fn a_link_works_only_in_the_browser_that_asked_for_it() {
    let f = fixture_bound(
        SERVER,
        MagicLinkConfig::one_time_code(REDEEM).cookie_domain("example.com"),
    )
    .await
    .unwrap();
    let link = f.links.issue(&SYNCED).await.unwrap();
    let code = code_of(link.url());
    let set = Cookie::parse(link.binding_cookie().unwrap().to_owned()).unwrap();
    assert_eq!(set.name(), mattermost_tokens::magic_link::BINDING_COOKIE);
    assert_eq!(set.http_only(), Some(true));
    assert_eq!(set.secure(), Some(true));
    assert_eq!(set.max_age(), Some(cookie_duration(300)));
    assert!(
        !format!("{link:?}").contains(set.value()),
        "Debug shows the binding"
    );
    let other = mattermost_tokens::magic_link::binding_from_cookie_header(
        "theme=dark; mmt_link_binding=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    );
    for binding in [None, Some(""), other] {
        assert_eq!(
            invalid_reason(f.links.confirm_page(&code, binding).await.unwrap_err()),
            InvalidLinkReason::NotRedeemable
        );
        assert_eq!(
            invalid_reason(f.links.redeem(&code, binding).await.unwrap_err()),
            InvalidLinkReason::NotRedeemable
        );
    }
    assert_eq!(f.codes.len(), 1, "nothing used up");
    let header = format!("a=1; {}={}", set.name(), set.value());
    let mine = mattermost_tokens::magic_link::binding_from_cookie_header(&header);
    f.links.confirm_page(&code, mine).await.unwrap();
    f.links.redeem(&code, mine).await.unwrap();
    // Unbound links are an explicit choice.
    let f = fixture_with(
        SERVER,
        MagicLinkConfig::one_time_code(REDEEM).cookie_domain("example.com"),
    )
    .await
    .unwrap();
    let link = f.links.issue(&SYNCED).await.unwrap();
    assert!(link.binding_cookie().is_none());
    f.links.redeem(&code_of(link.url()), None).await.unwrap();
}

#[tokio::test]
async fn configuration_is_checked() {
    let bad = [
        // Mattermost is not under the cookie domain.
        (
            SERVER,
            MagicLinkConfig::one_time_code(REDEEM).cookie_domain("app.example.com"),
        ),
        // App and Mattermost on different hosts without a cookie domain.
        (SERVER, MagicLinkConfig::one_time_code(REDEEM)),
        // A suffix that is not a parent domain.
        (
            "https://chat.badexample.com",
            MagicLinkConfig::one_time_code("https://app.badexample.com/r")
                .cookie_domain("example.com"),
        ),
        // Secure cookies over plain http on a real host.
        (
            "http://chat.example.com",
            MagicLinkConfig::one_time_code("http://app.example.com/r").cookie_domain("example.com"),
        ),
        // Cookies without Secure for a real host: only a local demo may.
        (
            "http://chat.example.com",
            MagicLinkConfig::one_time_code("http://app.example.com/r")
                .cookie_domain("example.com")
                .insecure_cookies(),
        ),
        (
            SERVER,
            MagicLinkConfig::one_time_code(REDEEM)
                .cookie_domain("example.com")
                .insecure_cookies(),
        ),
        // Not a URL, or not http(s).
        (
            SERVER,
            MagicLinkConfig::one_time_code("/relative").cookie_domain("example.com"),
        ),
        (
            SERVER,
            MagicLinkConfig::one_time_code("ftp://app.example.com/r").cookie_domain("example.com"),
        ),
        // The redeem URL already has a code parameter.
        (
            SERVER,
            MagicLinkConfig::one_time_code(format!("{REDEEM}?code=x")).cookie_domain("example.com"),
        ),
        // Lifetime out of range.
        (
            SERVER,
            MagicLinkConfig::one_time_code(REDEEM)
                .cookie_domain("example.com")
                .ttl(Duration::ZERO),
        ),
        (
            SERVER,
            MagicLinkConfig::one_time_code(REDEEM)
                .cookie_domain("example.com")
                .ttl(Duration::from_secs(2 * 24 * 3600)),
        ),
        // A template without the token.
        (
            SERVER,
            MagicLinkConfig::token_in_url().url_template("{server}/login"),
        ),
        // The Mattermost the browser is sent to is what the cookies must
        // reach, whatever address the app calls it at.
        (
            "http://10.0.0.7:8065",
            MagicLinkConfig::one_time_code(REDEEM)
                .cookie_domain("example.com")
                .redirect_url("https://chat.other.example/"),
        ),
    ];
    for (server, config) in bad {
        let shown = format!("{config:?}");
        match fixture_with(server, config).await {
            Err(Error::InvalidConfig(msg)) => assert!(msg.starts_with("magic links:"), "{msg}"),
            Err(e) => panic!("{shown}: unexpected {e:?}"),
            Ok(_) => panic!("accepted {shown}"),
        }
    }
    // The app calls Mattermost at an internal address; browsers go to the
    // public one, under the cookie domain.
    fixture_with(
        "http://10.0.0.7:8065",
        MagicLinkConfig::one_time_code(REDEEM)
            .cookie_domain("example.com")
            .redirect_url("https://chat.example.com/"),
    )
    .await
    .unwrap();
    // Same host (ports differ) needs no cookie domain; loopback http may
    // keep Secure cookies (browsers treat it as a secure context).
    fixture_with(
        "http://127.0.0.1:8065",
        MagicLinkConfig::one_time_code("http://127.0.0.1:3000/mattermost/magic-link/redeem"),
    )
    .await
    .unwrap();
}

#[test]
fn every_redeem_and_confirm_response_carries_the_privacy_headers() {
    assert!(RESPONSE_HEADERS.contains(&("referrer-policy", "no-referrer")));
    assert!(RESPONSE_HEADERS.contains(&("cache-control", "no-store")));
    let page: Vec<_> = mattermost_tokens::magic_link::ConfirmPage::headers().collect();
    for h in RESPONSE_HEADERS {
        assert!(page.contains(&h), "{h:?}");
    }
    assert!(page.contains(&("content-type", "text/html; charset=utf-8")));
}

#[tokio::test]
async fn codes_are_stored_only_as_hashes() {
    let f = fixture().await;
    let link = f.links.issue(&SYNCED).await.unwrap();
    let code = code_of(link.url());
    let entries = f.codes.entries();
    assert_eq!(entries.len(), 1);
    let e = &entries[0];
    assert_eq!(e.hash, CodeHash::of_code(&code));
    assert_eq!(e.user, SYNCED);
    assert_eq!(e.expires_at, link.expires_at());
    for shown in [
        format!("{entries:?}"),
        format!("{:?}", f.codes),
        e.hash.to_hex(),
        String::from_utf8_lossy(e.hash.as_bytes()).into_owned(),
    ] {
        assert!(!shown.contains(&code), "{shown}");
        assert!(!shown.contains(&code[..12]), "{shown}");
    }
}

#[tokio::test]
async fn token_in_url_mode_is_opt_in_and_builds_the_seed_url() {
    assert_eq!(
        MagicLinkConfig::one_time_code(REDEEM).mode(),
        LinkMode::OneTimeCode
    );
    let (log, f) =
        with_captured_logs(|| fixture_with(SERVER, MagicLinkConfig::token_in_url())).await;
    let f = f.unwrap();
    assert_eq!(log.matches("WARN").count(), 1, "{log}");
    assert!(log.contains("Referer"), "{log}");
    assert_eq!(f.links.mode(), LinkMode::TokenInUrl);
    assert!(f.links.redeem_url().is_none());

    let link = f.links.issue(&SYNCED).await.unwrap();
    assert_eq!(
        link.url(),
        format!("https://chat.example.com/login?token={TOKEN}")
    );
    assert_eq!(
        serde_json::to_value(&link).unwrap()["expires_at"],
        "2026-01-26T12:05:00Z"
    );
    assert!(!format!("{link:?}").contains(TOKEN));
    assert!(link.redacted_url().ends_with("token=REDACTED"));
    assert!(f.codes.is_empty());
    // Nothing to redeem in this mode.
    assert!(matches!(
        f.links.redeem("x", None).await,
        Err(Error::InvalidConfig(_))
    ));

    let f = fixture_with(
        "https://chat.example.com/sub/",
        MagicLinkConfig::token_in_url().url_template("{server}/plugins/sso/login?t={token}"),
    )
    .await
    .unwrap();
    assert_eq!(
        f.links.issue(&SYNCED).await.unwrap().url(),
        format!("https://chat.example.com/sub/plugins/sso/login?t={TOKEN}")
    );
}

#[tokio::test]
async fn never_the_admin_token() {
    for config in [
        MagicLinkConfig::one_time_code(REDEEM).cookie_domain("example.com"),
        MagicLinkConfig::token_in_url(),
    ] {
        let f = fixture_with(SERVER, config).await.unwrap();
        // The selector would act for this user with the admin token...
        let selector = TokenSelector::new(f.store.clone(), Policy::FallbackToAdmin);
        let selection = selector
            .select(Operation::UserScoped, &NO_TOKEN)
            .await
            .unwrap();
        assert_eq!(selection.actor, Actor::AdminFallback(NO_TOKEN));
        // ...a magic link does not.
        assert!(matches!(
            f.links.issue(&NO_TOKEN).await,
            Err(Error::NoUserToken { user }) if user == NO_TOKEN
        ));
        assert!(matches!(
            f.links.issue(&NOT_SYNCED).await,
            Err(Error::NotSynced { user }) if user == NOT_SYNCED
        ));
        assert!(matches!(
            f.links.issue(&HostUserId::Int(99)).await,
            Err(Error::Store(StoreError::UnknownUser(_)))
        ));
        assert!(f.codes.is_empty());
    }

    // A token cleared between issue and redeem: the code is spent, no
    // cookie is made, and there is no fallback either.
    let f = fixture().await;
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    f.store.clear_token(&SYNCED).await.unwrap();
    assert!(matches!(
        f.links.redeem(&code, None).await,
        Err(Error::NoUserToken { .. })
    ));
    assert!(f.links.redeem(&code, None).await.is_err());
}

#[tokio::test]
async fn an_expired_token_signs_nobody_in() {
    let f = fixture().await;
    // The token expires ten minutes after t0, by the links' clock.
    let expiring = NewToken {
        mattermost_user_id: UserId::new(MM_ID),
        token: TOKEN.into(),
        token_id: TokenId::new("tokenidtokenidtokenidtoken"),
        expires_at: Some((t0() + chrono::Duration::minutes(10)).timestamp_millis()),
    };
    f.store.put_token(&SYNCED, &expiring).await.unwrap();
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    f.clock.set(t0() + chrono::Duration::minutes(3));
    assert!(f.links.redeem(&code, None).await.is_ok(), "still valid");

    f.clock.set(t0() + chrono::Duration::minutes(6));
    let code = code_of(f.links.issue(&SYNCED).await.unwrap().url());
    // The code is good for five minutes; the token ends before it does.
    f.clock.set(t0() + chrono::Duration::minutes(10));
    let err = f.links.redeem(&code, None).await.unwrap_err();
    assert!(
        matches!(&err, Error::UserTokenExpired { user } if *user == SYNCED),
        "{err:?}"
    );
    assert!(!err.to_string().contains(TOKEN), "{err}");
    assert!(matches!(
        f.links.issue(&SYNCED).await,
        Err(Error::UserTokenExpired { .. })
    ));
}

#[tokio::test]
async fn debug_hides_codes_and_tokens() {
    let f = fixture().await;
    let link = f.links.issue(&SYNCED).await.unwrap();
    let code = code_of(link.url());
    let shown = format!("{link:?} {link:#?}");
    assert!(!shown.contains(&code), "{shown}");
    assert!(
        shown.contains("REDACTED") && shown.contains("2026-01-26T12:05:00Z"),
        "{shown}"
    );
    assert_eq!(link.redacted_url(), format!("{REDEEM}?code=REDACTED"));

    let r = f.links.redeem(&code, None).await.unwrap();
    let shown = format!("{r:?} {r:#?} {:?}", f.links);
    for secret in [TOKEN, &code, ADMIN_TOKEN] {
        assert!(!shown.contains(secret), "{shown}");
    }
    assert!(
        shown.contains(AUTH_COOKIE) && shown.contains(MM_ID),
        "{shown}"
    );
}

/// A `MakeWriter` collecting everything written.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Runs `f` with every event at TRACE and above captured (on this thread;
/// the tests run on the current-thread runtime, so spawned tasks too).
async fn with_captured_logs<T, Fut: Future<Output = T>>(f: impl FnOnce() -> Fut) -> (String, T) {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let guard = tracing::subscriber::set_default(subscriber);
    let out = f().await;
    drop(guard);
    (captured.text(), out)
}

#[tokio::test]
async fn logs_at_trace_hold_neither_code_nor_token() {
    let (log, secrets) = with_captured_logs(|| async {
        let f = fixture().await;
        let link = f.links.issue(&SYNCED).await.unwrap();
        let code = code_of(link.url());
        f.links.confirm_page(&code, None).await.unwrap();
        let r = f.links.redeem(&code, None).await.unwrap();
        let _ = f.links.redeem(&code, None).await.unwrap_err();
        let _ = f.links.redeem("garbled", None).await.unwrap_err();
        let _ = f.links.issue(&NO_TOKEN).await.unwrap_err();
        assert_eq!(r.cookies()[0].value(), TOKEN);
        let seed = fixture_with(SERVER, MagicLinkConfig::token_in_url())
            .await
            .unwrap();
        seed.links.issue(&SYNCED).await.unwrap();
        vec![code]
    })
    .await;
    for secret in secrets
        .iter()
        .map(String::as_str)
        .chain([TOKEN, ADMIN_TOKEN])
    {
        assert!(!log.contains(secret), "log shows a secret:\n{log}");
    }
    // The log is not empty: it names the user and the outcomes.
    for expected in [
        "issued magic link",
        "magic link redeemed",
        "host_user=1",
        "magic link refused",
    ] {
        assert!(log.contains(expected), "missing {expected:?} in:\n{log}");
    }
}

#[cfg(feature = "axum")]
mod router {
    use super::*;
    use mattermost_tokens::magic_link::{BINDING_COOKIE, REDEEM_PATH};

    struct Served {
        f: Fixture,
        base: String,
        http: reqwest::Client,
        /// The browser's link binding cookie (`name=value`), once a link
        /// was issued to it.
        binding: std::sync::Mutex<Option<String>>,
    }

    async fn serve() -> Served {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let base = format!("http://127.0.0.1:{port}");
        let f = fixture_bound(
            "http://127.0.0.1:8065",
            MagicLinkConfig::one_time_code(format!("{base}{REDEEM_PATH}")),
        )
        .await
        .unwrap();
        let app = f.links.router();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Served {
            f,
            base,
            http,
            binding: std::sync::Mutex::new(None),
        }
    }

    fn assert_common_headers(r: &reqwest::Response) {
        for (name, value) in RESPONSE_HEADERS {
            assert_eq!(
                r.headers().get(name).and_then(|v| v.to_str().ok()),
                Some(value),
                "{name} on {}",
                r.status()
            );
        }
    }

    impl Served {
        /// A link for this browser, as the app's front end gets it: the
        /// binding cookie comes with it and is kept.
        async fn issue(&self) -> mattermost_tokens::magic_link::MagicLink {
            let link = self.f.links.issue(&SYNCED).await.unwrap();
            let set = Cookie::parse(link.binding_cookie().unwrap().to_owned()).unwrap();
            assert_eq!(set.http_only(), Some(true));
            assert_eq!(set.path(), Some(REDEEM_PATH));
            *self.binding.lock().unwrap() = Some(format!("{}={}", set.name(), set.value()));
            link
        }

        fn with_binding(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
            match self.binding.lock().unwrap().clone() {
                Some(c) => req.header("cookie", c),
                None => req,
            }
        }

        async fn get(&self, code: &str) -> reqwest::Response {
            let url = format!("{}{REDEEM_PATH}?code={code}", self.base);
            self.with_binding(self.http.get(url)).send().await.unwrap()
        }

        /// A POST as the confirm page sends it (its own `Origin`).
        async fn post(&self, body: String) -> reqwest::Response {
            let origin = self.base.clone();
            self.post_with(body, &[("origin", &origin)]).await
        }

        async fn post_with(&self, body: String, headers: &[(&str, &str)]) -> reqwest::Response {
            let mut req = self.with_binding(
                self.http
                    .post(format!("{}{REDEEM_PATH}", self.base))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body),
            );
            for (name, value) in headers {
                req = req.header(*name, *value);
            }
            req.send().await.unwrap()
        }
    }

    #[tokio::test]
    async fn get_confirms_post_redeems_with_cookies_and_303() {
        let (log, code) = with_captured_logs(|| async {
            let s = serve().await;
            let link = s.issue().await;
            let code = code_of(link.url());
            assert!(link.url().starts_with(&s.base));

            // GET: the confirm page, nothing used up.
            for _ in 0..2 {
                let r = s.get(&code).await;
                assert_eq!(r.status(), 200);
                assert_common_headers(&r);
                assert!(
                    r.headers()["content-type"]
                        .to_str()
                        .unwrap()
                        .starts_with("text/html")
                );
                assert!(
                    r.headers()["content-security-policy"]
                        .to_str()
                        .unwrap()
                        .contains("frame-ancestors 'none'")
                );
                let html = r.text().await.unwrap();
                assert!(html.contains(&format!(r#"value="{code}""#)));
            }
            assert_eq!(s.f.codes.len(), 1);

            // A POST from anywhere but the confirm page is refused and uses
            // nothing up: another site, a sibling host of the cookie domain,
            // a request that names no origin at all (login CSRF).
            for headers in [
                vec![("origin", "https://evil.test")],
                vec![("origin", "http://127.0.0.1:1")],
                vec![("sec-fetch-site", "cross-site")],
                vec![("sec-fetch-site", "same-site")],
                vec![],
                // An opaque origin (a sandboxed frame, a page whose
                // referrer policy hides it) proves nothing by itself.
                vec![("origin", "null")],
                vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
            ] {
                let r = s.post_with(format!("code={code}"), &headers).await;
                assert_eq!(r.status(), 403, "{headers:?}");
                assert_common_headers(&r);
            }
            assert_eq!(s.f.codes.len(), 1);

            // POST: cookies, headers, 303 into Mattermost. As a browser
            // sends the confirm page's form: the page's `no-referrer`
            // policy makes its origin `null`, and Sec-Fetch-Site tells.
            let same = [("origin", "null"), ("sec-fetch-site", "same-origin")];
            let r = s.post_with(format!("other=1&code={code}"), &same).await;
            assert_eq!(r.status(), 303);
            assert_common_headers(&r);
            assert_eq!(r.headers()["location"], "http://127.0.0.1:8065/");
            let mut set: Vec<Cookie<'static>> = r
                .headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
                .collect();
            let names: Vec<_> = set.iter().map(|c| c.name()).collect();
            assert_eq!(
                names,
                [AUTH_COOKIE, USER_ID_COOKIE, CSRF_COOKIE, BINDING_COOKIE]
            );
            // The used link's binding goes with it.
            let binding = set.pop().unwrap();
            assert_eq!(binding.max_age(), Some(cookie_duration(0)));
            assert_eq!(binding.path(), Some(REDEEM_PATH));
            assert_eq!(set[0].value(), TOKEN);
            assert_eq!(set[0].http_only(), Some(true));
            assert_eq!(set[1].value(), MM_ID);
            assert_eq!(set[1].http_only(), None);
            assert!(set.iter().all(|c| c.secure() == Some(true)
                && c.path() == Some("/")
                && c.same_site() == Some(SameSite::Lax)));
            // Not a session cookie kept until the browser closes: 12 hours;
            // MMCSRF only removed.
            let csrf = set.pop().unwrap();
            assert_eq!(
                (csrf.value(), csrf.max_age()),
                ("", Some(cookie_duration(0)))
            );
            assert!(
                set.iter()
                    .all(|c| c.max_age() == Some(cookie_duration(12 * 3600))),
                "{set:?}"
            );

            // Replayed, unknown, garbled, missing: all 400 with the same page.
            let mut pages = Vec::new();
            for r in [
                s.post(format!("code={code}")).await,
                s.get(&code).await,
                s.get("garbled").await,
                s.post("code=%FF%FE".into()).await,
                s.post(String::new()).await,
                s.http
                    .get(format!("{}{REDEEM_PATH}", s.base))
                    .send()
                    .await
                    .unwrap(),
            ] {
                assert_eq!(r.status(), 400);
                assert_common_headers(&r);
                pages.push(r.text().await.unwrap());
            }
            assert!(pages.windows(2).all(|w| w[0] == w[1]));
            code
        })
        .await;
        for secret in [code.as_str(), TOKEN, ADMIN_TOKEN] {
            assert!(!log.contains(secret), "log shows a secret:\n{log}");
        }
        assert!(log.contains("magic link redeemed"), "{log}");
    }

    /// A way out: the logout route expires the three cookies with the
    /// Domain and Path they were set with (a browser matches a removal on
    /// both), and sends the browser to Mattermost's sign-in.
    #[tokio::test]
    async fn logout_expires_the_cookies_a_redeem_set() {
        let s = serve().await;
        let code = code_of(s.issue().await.url());
        let set = s.post(format!("code={code}")).await;
        let parse = |r: &reqwest::Response| -> Vec<Cookie<'static>> {
            r.headers()
                .get_all("set-cookie")
                .iter()
                .map(|v| Cookie::parse(v.to_str().unwrap().to_owned()).unwrap())
                .collect()
        };
        let set = parse(&set);
        for post in [false, true] {
            let url = format!("{}{}", s.base, mattermost_tokens::magic_link::LOGOUT_PATH);
            let r = match post {
                true => s.http.post(url).send().await.unwrap(),
                false => s.http.get(url).send().await.unwrap(),
            };
            assert_eq!(r.status(), 303);
            assert_common_headers(&r);
            assert_eq!(r.headers()["location"], "http://127.0.0.1:8065/");
            let gone = parse(&r);
            assert_eq!(gone.len(), 3);
            for (old, new) in set.iter().zip(&gone) {
                assert_eq!(new.name(), old.name());
                assert_eq!(new.value(), "");
                assert_eq!(new.max_age(), Some(cookie_duration(0)));
                assert_eq!((new.domain(), new.path()), (old.domain(), old.path()));
                assert_eq!(new.secure(), old.secure());
            }
        }
    }

    #[tokio::test]
    async fn expired_codes_get_the_invalid_page() {
        let s = serve().await;
        let code = code_of(s.issue().await.url());
        s.f.clock.advance(Duration::from_secs(301));
        let r = s.get(&code).await;
        assert_eq!(r.status(), 400);
        let r = s.post(format!("code={code}")).await;
        assert_eq!(r.status(), 400);
        assert_common_headers(&r);
        assert!(r.headers().get("set-cookie").is_none());
    }
}
