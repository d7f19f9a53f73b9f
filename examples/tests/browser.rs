//! Magic links in a real browser: headless Chromium, driven through
//! ChromeDriver, against the example server (`app.example.test`) and the
//! stand-in Mattermost (`chat.example.test`), both over HTTPS with a
//! certificate made here, so that `Secure` cookies, `SameSite`, the cookie
//! domain and the redirects are the browser's own decisions. Chromium maps
//! the names to this machine (`--host-resolver-rules`).
//!
//! The flow, as a person would go through it: sign in to the app, ask for a
//! link from the app's page, see the confirm page (saved as a screenshot),
//! press Continue, land in Mattermost signed in, and write from there; sign
//! out. Then the attacks: the link opened in a second browser profile, and a
//! page on `evil.test` that submits a code cross-site.
//!
//! Needs `chromium` and `chromedriver` (Debian's `chromium` and
//! `chromium-driver`, which `.ci/run` installs): without them the test says
//! it was skipped, except under `CI`, where it fails.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use mattermost_tokens_stand_in::StandIn;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, pki_types::PrivateKeyDer};

use common::{Demo, Proc, free_port, wait_for_port};

const APP: &str = "app.example.test";
const CHAT: &str = "chat.example.test";
const EVIL: &str = "evil.test";

/// Where ChromeDriver is, or why the test cannot run.
fn chromedriver() -> Option<&'static str> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "skipped: chromedriver is not installed (apt-get install chromium chromium-driver)"
        );
    }
    found
}

/// An HTTPS front for the plain-HTTP server on `backend`: each TLS
/// connection is one TCP connection to it, bytes copied both ways.
async fn https_front(acceptor: TlsAcceptor, backend: u16) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                if let Ok(mut up) = TcpStream::connect(("127.0.0.1", backend)).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
                }
            });
        }
    });
    port
}

/// A certificate for the three host names, made for this run.
fn tls_acceptor() -> TlsAcceptor {
    let names = [APP, CHAT, EVIL].map(str::to_owned).to_vec();
    let cert = rcgen::generate_simple_self_signed(names).unwrap();
    let key = PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    TlsAcceptor::from(Arc::new(config))
}

/// A page on `evil.test` that submits `code` to the app's redeem route as
/// soon as it loads, served on a port of its own.
async fn evil_site(redeem_url: String, code: Arc<std::sync::Mutex<String>>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let page = axum::routing::get(move || {
        let code = code.lock().unwrap().clone();
        let redeem_url = redeem_url.clone();
        async move {
            axum::response::Html(format!(
                r#"<!doctype html><html><body><form id="f" method="post" action="{redeem_url}">
<input name="code" value="{code}"></form><script>document.getElementById('f').submit()</script>
</body></html>"#
            ))
        }
    });
    let app = axum::Router::new().route("/", page);
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// A browser with a fresh profile of its own.
async fn browser(driver: u16, resolver: &str) -> Client {
    let profile = tempdir("profile");
    let mut caps = serde_json::Map::new();
    caps.insert("acceptInsecureCerts".into(), json!(true));
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1100,800", format!("--user-data-dir={}", profile.display()),
                format!("--host-resolver-rules={resolver}"),
            ],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{driver}"))
        .await
        .expect("a ChromeDriver session")
}

fn tempdir(what: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mmt-browser-{what}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `fetch` in the page and answers `{status, body}`.
async fn fetch_in_page(c: &Client, path: &str, init: Value) -> (u16, Value) {
    let script = r#"
        const [path, init, done] = arguments;
        fetch(path, Object.assign({credentials: 'include'}, init))
          .then(async r => done({status: r.status, body: await r.text()}))
          .catch(e => done({status: 0, body: String(e)}));
    "#;
    let out = c
        .execute_async(script, vec![json!(path), init])
        .await
        .unwrap();
    let status = out["status"].as_u64().unwrap() as u16;
    let body = out["body"].as_str().unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(json!(body)))
}

/// The text of the first element `css` finds, once the page has one (a
/// page that is being replaced is tried again).
async fn text_of(c: &Client, css: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(e) = c.find(Locator::Css(css)).await
            && let Ok(text) = e.text().await
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "no {css} on {:?}",
            c.current_url().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Signs in to the app's page with an app token, as a person would.
async fn sign_in(c: &Client, app: &str, token: &str) {
    c.goto(&format!("{app}/")).await.unwrap();
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(token)
        .await
        .unwrap();
    c.find(Locator::Id("sign-in"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(c, "#status").await, "Signed in");
}

/// Signs in to the app's page with `token` and asks it for a link: the
/// app's front end fetches it (receiving the link's binding cookie) and
/// answers its URL instead of opening it.
async fn fetch_link(c: &Client, app: &str, token: &str) -> String {
    sign_in(c, app, token).await;
    let (status, body) = fetch_in_page(
        c,
        "/api/mattermost/magic-link",
        json!({"headers": {"Authorization": format!("Bearer {token}")}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body["url"].as_str().unwrap().to_owned()
}

/// Presses the confirm page's button and follows the browser into
/// Mattermost.
async fn continue_to_mattermost(c: &Client) {
    c.find(Locator::Css("button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_for_host(c, CHAT).await;
}

async fn wait_for_host(c: &Client, host: &str) -> url::Url {
    wait_for_url(c, |u| u.host_str() == Some(host)).await
}

async fn wait_for_url(c: &Client, ok: impl Fn(&url::Url) -> bool) -> url::Url {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let url = c.current_url().await.unwrap();
        if ok(&url) {
            return url;
        }
        assert!(Instant::now() < deadline, "still on {url}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_through_a_magic_link_and_attacks_fail() {
    let Some(chromedriver) = chromedriver() else {
        return;
    };
    let mm = StandIn::start().await.unwrap();
    let demo = Demo::new("browser");
    let sync = demo.run(Some(&mm), &["--all"]);
    assert!(
        sync.status.success(),
        "{}",
        String::from_utf8_lossy(&sync.stderr)
    );
    let app_token = demo.magic_link_server(&mm, &["issue-app-token", "--user", "1"]);

    // HTTPS fronts for the app, Mattermost and the attacker's site.
    let acceptor = tls_acceptor();
    let app_plain = free_port();
    let app_port = https_front(acceptor.clone(), app_plain).await;
    let stand_in_port: u16 = url::Url::parse(mm.url()).unwrap().port().unwrap();
    let chat_port = https_front(acceptor.clone(), stand_in_port).await;
    let app = format!("https://{APP}:{app_port}");
    let chat = format!("https://{CHAT}:{chat_port}");
    let redeem_url = format!("{app}/mattermost/magic-link/redeem");
    let evil_code = Arc::new(std::sync::Mutex::new(String::new()));
    let evil_plain = evil_site(redeem_url.clone(), Arc::clone(&evil_code)).await;
    let evil_port = https_front(acceptor, evil_plain).await;

    // The app: calls Mattermost at its own address, sends browsers to the
    // public one, sets the cookies for the domain both share.
    let _app = Proc(
        demo.command(env!("CARGO_BIN_EXE_magic_link_server"), &mm)
            .args(["--listen", &format!("127.0.0.1:{app_plain}")])
            .args(["--public-url", &app, "--cookie-domain", "example.test"])
            .args(["--mattermost-public-url", &format!("{chat}/")])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(app_plain, "magic_link_server").await;
    let driver_port = free_port();
    let _driver = Proc(
        Command::new(chromedriver)
            .arg(format!("--port={driver_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(driver_port, "chromedriver").await;
    let resolver = format!("MAP *.example.test 127.0.0.1, MAP {EVIL} 127.0.0.1");
    let c = browser(driver_port, &resolver).await;

    // Sign in to the app and open Mattermost from its page.
    sign_in(&c, &app, &app_token).await;
    c.find(Locator::Id("open"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // The confirm page; nothing is used up by showing it.
    wait_for_url(&c, |u| u.as_str().starts_with(&redeem_url)).await;
    let confirm = text_of(&c, "button").await;
    assert!(!confirm.is_empty());
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&shots).unwrap();
    let shot = shots.join("confirm-page.png");
    std::fs::write(&shot, c.screenshot().await.unwrap()).unwrap();
    eprintln!("confirm page: {}", shot.display());
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .starts_with(&redeem_url)
    );

    // Continue: into Mattermost, signed in by the cookies alone.
    continue_to_mattermost(&c).await;
    let shown = text_of(&c, "#me").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut shown = shown;
    while shown == "Loading" && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        shown = text_of(&c, "#me").await;
    }
    let ana = mm.user_by_email("ana.lopez@example.com").unwrap();
    assert_eq!(shown, format!("Signed in as @{}", ana.username));
    std::fs::write(shots.join("mattermost.png"), c.screenshot().await.unwrap()).unwrap();
    let (status, me) = fetch_in_page(&c, "/api/v4/users/me", json!({})).await;
    assert_eq!(
        (status, me["id"].as_str()),
        (200, Some(ana.id.as_str())),
        "{me}"
    );
    // The token is HttpOnly; no MMCSRF is left for the web app to send.
    let visible = c.execute("return document.cookie", vec![]).await.unwrap();
    let visible = visible.as_str().unwrap().to_owned();
    assert!(visible.contains("MMUSERID="), "{visible}");
    assert!(
        !visible.contains("MMAUTHTOKEN") && !visible.contains("MMCSRF"),
        "{visible}"
    );
    // A write from the page, as the web app sends it.
    let (status, body) = fetch_in_page(
        &c,
        &format!("/api/v4/users/{}/patch", ana.id),
        json!({"method": "PUT", "headers": {"X-Requested-With": "XMLHttpRequest"},
               "body": "{\"nickname\":\"from the browser\"}"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["nickname"], "from the browser");

    // Signing out of the app's logout route ends the Mattermost session.
    c.goto(&format!("{app}/mattermost/magic-link/logout"))
        .await
        .unwrap();
    wait_for_host(&c, CHAT).await;
    let (status, _) = fetch_in_page(&c, "/api/v4/users/me", json!({})).await;
    assert_eq!(status, 401);

    // A link opened in another browser profile is refused, and used up by
    // nothing: it still works in the browser that asked for it.
    let link = fetch_link(&c, &app, &app_token).await;
    let other = browser(driver_port, &resolver).await;
    other.goto(&link).await.unwrap();
    let page = other.source().await.unwrap();
    assert!(
        !page.contains("<form"),
        "a second profile got a confirm form:\n{page}"
    );
    other.goto(&format!("{chat}/")).await.unwrap();
    let (status, _) = fetch_in_page(&other, "/api/v4/users/me", json!({})).await;
    assert_eq!(status, 401);
    other.close().await.unwrap();

    // A cross-site page that submits the victim's own code is refused: the
    // victim is not signed in (to anyone), and the code is not spent.
    let code = link.split_once("code=").unwrap().1.to_owned();
    *evil_code.lock().unwrap() = code.clone();
    c.goto(&format!("https://{EVIL}:{evil_port}/"))
        .await
        .unwrap();
    wait_for_host(&c, APP).await;
    let refused = c.source().await.unwrap();
    assert!(!refused.contains("Signed in as"), "{refused}");
    c.goto(&format!("{chat}/")).await.unwrap();
    let (status, _) = fetch_in_page(&c, "/api/v4/users/me", json!({})).await;
    assert_eq!(status, 401, "the cross-site submit signed the browser in");
    c.goto(&link).await.unwrap();
    continue_to_mattermost(&c).await;
    let (status, _) = fetch_in_page(&c, "/api/v4/users/me", json!({})).await;
    assert_eq!(
        status, 200,
        "the link should still work where it was asked for"
    );
    c.close().await.unwrap();
}
