//! The host app's magic-link endpoint: `GET /api/mattermost/magic-link` with
//! `Authorization: Bearer <app token>` answers
//! `{"url": "...", "expires_at": "..."}` for that app user, and the redeem
//! route that link points at logs them into Mattermost.
//!
//! App tokens stand for the host app's own API tokens (Laravel Sanctum's, for
//! example): `magic_link_server issue-app-token --user ID` creates one.

use std::net::SocketAddr;
use std::process::ExitCode;

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
}

#[tokio::main]
async fn main() -> ExitCode {
    setup::init_logging();
    let args = Args::parse();
    let result = match args.command {
        Some(Command::IssueAppToken { user }) => issue_app_token(user).await,
        Some(Command::Serve(s)) => serve(s).await,
        None => serve(args.serve).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => f.report(),
    }
}

const APP_TOKENS_DDL: &str = "CREATE TABLE IF NOT EXISTS app_tokens (\
    token_hash VARCHAR(64) NOT NULL PRIMARY KEY, user_id BIGINT NOT NULL, created_at TIMESTAMP NULL)";

fn hash_hex(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn issue_app_token(user: i64) -> Result<(), Fatal> {
    let env = Env::from_env();
    let host = HostDb::connect(&env.database_url)
        .await
        .context("check DATABASE_URL")?;
    host.ensure_demo_users().await?;
    if !host.user_exists(user).await? {
        return Err(anyhow!("no user with id {user} in the users table").into());
    }
    sqlx::query(APP_TOKENS_DDL).execute(host.pool()).await?;
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    let sql = host.sql("INSERT INTO app_tokens (token_hash, user_id, created_at) VALUES ($1, $2, CURRENT_TIMESTAMP)");
    sqlx::query(AssertSqlSafe(sql))
        .bind(hash_hex(&token))
        .bind(user)
        .execute(host.pool())
        .await?;
    println!("{token}");
    Ok(())
}

#[derive(Clone)]
struct AppState {
    host: HostDb,
    links: MagicLinks,
}

async fn serve(args: Serve) -> Result<(), Fatal> {
    let env = Env::from_env();
    let host = HostDb::connect(&env.database_url)
        .await
        .context("check DATABASE_URL")?;
    host.ensure_demo_users().await?;
    sqlx::query(APP_TOKENS_DDL).execute(host.pool()).await?;
    let stores = setup::stores(args.store, &env, &host).await?;
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
    let app = Router::new()
        .route("/api/mattermost/magic-link", get(magic_link))
        .with_state(AppState {
            host,
            links: links.clone(),
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
        .sql("SELECT user_id FROM app_tokens WHERE token_hash = $1");
    let user: Option<i64> = match sqlx::query_scalar(AssertSqlSafe(sql))
        .bind(hash_hex(bearer))
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
        return json_error(StatusCode::UNAUTHORIZED, "invalid bearer token");
    };
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
