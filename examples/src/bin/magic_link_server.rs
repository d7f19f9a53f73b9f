//! The host app's magic-link endpoint: `GET /api/mattermost/magic-link` with
//! `Authorization: Bearer <app token>` answers
//! `{"url": "...", "expires_at": "..."}` for that app user, and the redeem
//! route that link points at logs them into Mattermost.
//!
//! App tokens stand for the host app's own API tokens (Laravel Sanctum's, for
//! example): `magic_link_server issue-app-token --user ID` creates one that
//! lives `--lifetime-hours` (24 by default); `revoke-app-tokens --user ID`
//! ends all of a user's. Each user may ask for `--links-per-minute` links
//! (per instance); expired codes are purged every `--purge-every` seconds.

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use clap::{Parser, Subcommand};
use mattermost_tokens::{Error, HostUserId, MagicLinkConfig, MagicLinks};
use mattermost_tokens_examples::demo_db::HostDb;
use mattermost_tokens_examples::setup::{self, Env, Fatal, StoreKind};
use rand::RngCore;
use serde_json::json;
use sha2::{Digest, Sha256};
use sqlx::AssertSqlSafe;

/// Serve magic links into Mattermost for the app's signed-in users.
///
/// Environment: MATTERMOST_URL (unset: start a stand-in Mattermost),
/// MATTERMOST_TOKEN (admin token), DATABASE_URL (default
/// sqlite://mattermost-tokens-demo.sqlite), MATTERMOST_TOKENS_KEY (optional
/// encryption key of the stored tokens), RUST_LOG.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: Serve,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server (the default).
    Serve(Serve),
    /// Create an app API token for a user and print it (store it: it is shown
    /// once; only its hash is kept).
    IssueAppToken {
        /// The app user's id.
        #[arg(long, value_name = "ID")]
        user: i64,
        /// How long the token works, in hours.
        #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(1..=8760))]
        lifetime_hours: u32,
    },
    /// Revoke every app API token of a user (they stop working at once) and
    /// print how many there were.
    RevokeAppTokens {
        /// The app user's id.
        #[arg(long, value_name = "ID")]
        user: i64,
    },
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// This app's public base URL, which magic links point at (default:
    /// `http://<listen address>`).
    #[arg(long)]
    public_url: Option<String>,
    /// The parent domain shared by the app and Mattermost, for the session
    /// cookies (e.g. example.com for app.example.com and chat.example.com).
    #[arg(long)]
    cookie_domain: Option<String>,
    /// Mattermost's address as browsers reach it, where a redeemed link
    /// sends them (default: MATTERMOST_URL, the address this server calls).
    #[arg(long)]
    mattermost_public_url: Option<String>,
    /// Link lifetime in seconds.
    #[arg(long, default_value_t = 300)]
    ttl: u64,
    /// The seed's mode: put the user's token into `{server}/login?token=...`.
    /// NOT recommended: a stock Mattermost ignores it and the never-expiring
    /// token lands in browser history, proxy logs and Referer headers.
    #[arg(long)]
    token_in_url: bool,
    /// Where user tokens are read from.
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlx)]
    store: StoreKind,
    /// Links one user may ask for per minute, on this instance; more are
    /// answered 429 with Retry-After.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    links_per_minute: u32,
    /// Seconds between purges of expired codes from the code store.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    purge_every: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    setup::init_logging();
    let args = Args::parse();
    let result = match args.command {
        Some(Command::IssueAppToken {
            user,
            lifetime_hours,
        }) => issue_app_token(user, lifetime_hours).await,
        Some(Command::RevokeAppTokens { user }) => revoke_app_tokens(user).await,
        Some(Command::Serve(s)) => serve(s).await,
        None => serve(args.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

/// The app's API tokens, hashed, with when each stops working (Unix
/// seconds).
const APP_TOKENS_DDL: &str = "CREATE TABLE IF NOT EXISTS app_api_tokens (\
    token_hash VARCHAR(64) NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL, expires_at BIGINT NOT NULL)";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn app_db() -> Result<HostDb, Fatal> {
    let env = Env::from_env();
    let host = HostDb::connect(&env.database_url)
        .await
        .context("check DATABASE_URL")?;
    host.ensure_demo_users().await?;
    sqlx::query(APP_TOKENS_DDL).execute(host.pool()).await?;
    Ok(host)
}

fn hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn issue_app_token(user: i64, lifetime_hours: u32) -> Result<(), Fatal> {
    let host = app_db().await?;
    if !host.user_exists(user).await? {
        return Err(anyhow!("no user with id {user} in the users table").into());
    }
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let expires_at = unix_now() + i64::from(lifetime_hours) * 3600;
    let sql = host
        .sql("INSERT INTO app_api_tokens (token_hash, user_id, expires_at) VALUES ($1, $2, $3)");
    sqlx::query(AssertSqlSafe(sql))
        .bind(hash_hex(&token))
        .bind(user)
        .bind(expires_at)
        .execute(host.pool())
        .await?;
    println!("{token}");
    Ok(())
}

async fn revoke_app_tokens(user: i64) -> Result<(), Fatal> {
    let host = app_db().await?;
    let sql = host.sql("DELETE FROM app_api_tokens WHERE user_id = $1");
    let done = sqlx::query(AssertSqlSafe(sql))
        .bind(user)
        .execute(host.pool())
        .await?;
    println!("revoked {} app tokens of user {user}", done.rows_affected());
    Ok(())
}

/// Links issued per user, on this instance.
type LinkLimiter = governor::DefaultKeyedRateLimiter<i64>;

#[derive(Clone)]
struct AppState {
    host: HostDb,
    links: MagicLinks,
    limiter: Arc<LinkLimiter>,
}

async fn serve(args: Serve) -> Result<(), Fatal> {
    // The library's metrics (mattermost_tokens::telemetry), served at
    // /metrics in Prometheus' text format.
    let prometheus = metrics_exporter_prometheus::PrometheusBuilder::new()
        .set_buckets_for_metric(
            metrics_exporter_prometheus::Matcher::Full(
                mattermost_tokens::telemetry::names::REQUEST_DURATION.to_owned(),
            ),
            &[
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ],
        )
        .context("metrics buckets")?
        .install_recorder()
        .context("cannot install the metrics recorder")?;
    let env = Env::from_env();
    let host = app_db().await?;
    let stores = setup::stores(args.store, &env, &host, setup::Schema::Migrate).await?;
    let server = setup::mattermost(&env).await?;
    let public = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", args.listen));
    let public = public.trim_end_matches('/').to_owned();
    let mut config = if args.token_in_url {
        MagicLinkConfig::token_in_url()
    } else {
        let mut c = MagicLinkConfig::one_time_code(format!(
            "{public}{}",
            mattermost_tokens::magic_link::REDEEM_PATH
        ));
        if let Some(d) = &args.cookie_domain {
            c = c.cookie_domain(d.clone());
        }
        if let Some(u) = &args.mattermost_public_url {
            c = c.redirect_url(u.clone());
        }
        if public.starts_with("http://") {
            c = c.insecure_cookies();
        }
        c
    };
    config = config.ttl(std::time::Duration::from_secs(args.ttl));
    let links = MagicLinks::new(server.client.clone(), stores.tokens, stores.codes, config)
        .map_err(setup::explain)?;
    // Refuses a setup where Mattermost's strict CSRF check would turn the
    // users' writes away (see MagicLinks::check_server).
    links.check_server().await.map_err(setup::explain)?;
    let per_minute = NonZeroU32::new(args.links_per_minute).unwrap_or(NonZeroU32::MIN);
    let limiter = Arc::new(LinkLimiter::keyed(governor::Quota::per_minute(per_minute)));
    tokio::spawn(purge(
        links.clone(),
        Arc::clone(&limiter),
        Duration::from_secs(args.purge_every),
    ));
    let app = Router::new()
        .route("/", get(home))
        .route("/api/mattermost/magic-link", get(magic_link))
        .route(
            "/metrics",
            get(move || std::future::ready(prometheus.render())),
        )
        .with_state(AppState {
            host,
            links: links.clone(),
            limiter,
        })
        .merge(links.router());
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!("magic-link server listening on http://{}", args.listen);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    server.save();
    Ok(())
}

/// Every `every`: deletes the expired codes from the code store (a store
/// keeps them until purged) and forgets users the limiter has not seen
/// lately.
async fn purge(links: MagicLinks, limiter: Arc<LinkLimiter>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match links.purge_expired().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(purged = n, "expired magic-link codes purged"),
            Err(e) => tracing::warn!(error = %e, "purging expired magic-link codes failed"),
        }
        limiter.retain_recent();
    }
}

/// The app's front end, reduced to the part that matters here: signing in
/// (pasting an app token, kept in the tab's session storage) and a button
/// that fetches a magic link with it and opens it, as a single-page app's
/// "Open Mattermost" would.
async fn home() -> Response {
    const PAGE: &str = r#"<!doctype html>
<html><head><meta charset="utf-8"><title>The app</title></head>
<body><h1>The app</h1>
<form id="signin"><input id="token" name="token" placeholder="app token" autocomplete="off">
<button id="sign-in" type="submit">Sign in</button></form>
<button id="open" type="button">Open Mattermost</button>
<p id="status"></p>
<script>
const status = t => { document.getElementById('status').textContent = t; };
document.getElementById('signin').onsubmit = e => {
  e.preventDefault();
  sessionStorage.setItem('appToken', document.getElementById('token').value);
  status('Signed in');
};
document.getElementById('open').onclick = async () => {
  const r = await fetch('/api/mattermost/magic-link', {
    headers: {Authorization: 'Bearer ' + sessionStorage.getItem('appToken')},
  });
  const body = await r.json();
  if (r.ok) { location.href = body.url; } else { status(body.error); }
};
</script></body></html>"#;
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        PAGE,
    )
        .into_response()
}

fn json_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({ "error": message })),
    )
        .into_response()
}

async fn magic_link(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        // The scheme is case-insensitive (RFC 9110, section 11.1).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    let Some(bearer) = bearer else {
        return json_error(StatusCode::UNAUTHORIZED, "missing bearer token");
    };
    let sql = state
        .host
        .sql("SELECT user_id FROM app_api_tokens WHERE token_hash = $1 AND expires_at > $2");
    let user: Option<i64> = match sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(hash_hex(bearer))
        .bind(unix_now())
        .fetch_optional(state.host.pool())
        .await
    {
        Ok(u) => u,
        Err(e) => {
            tracing::error!(error = %e, "app token lookup failed");
            return json_error(StatusCode::SERVICE_UNAVAILABLE, "database unavailable");
        }
    };
    let Some(user) = user else {
        return json_error(StatusCode::UNAUTHORIZED, "invalid or expired bearer token");
    };
    if let Err(not_until) = state.limiter.check_key(&user) {
        let now = governor::clock::Clock::now(state.limiter.clock());
        let wait = not_until.wait_time_from(now);
        let mut response = json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many magic links asked for; try again later",
        );
        let secs = wait.as_secs() + 1;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
        return response;
    }
    match state.links.issue(&HostUserId::Int(user)).await {
        Ok(link) => {
            let mut response = ([(header::CACHE_CONTROL, "no-store")], Json(&link)).into_response();
            // The link works only in the browser that holds this cookie:
            // the front end's fetch of this route receives it.
            if let Some(v) = link
                .binding_cookie()
                .and_then(|c| header::HeaderValue::from_str(c).ok())
            {
                response.headers_mut().append(header::SET_COOKIE, v);
            }
            response
        }
        Err(Error::NoUserToken { .. } | Error::NotSynced { .. }) => json_error(
            StatusCode::CONFLICT,
            "this user has no Mattermost token yet; run sync_users --missing",
        ),
        Err(Error::UserTokenExpired { .. }) => json_error(
            StatusCode::CONFLICT,
            "this user's Mattermost token has expired; run sync_users --all (it renews tokens)",
        ),
        Err(e) => {
            tracing::error!(host_user = user, error = %e, "issuing a magic link failed");
            json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not issue a magic link",
            )
        }
    }
}
