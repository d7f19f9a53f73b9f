//! `stand-in`: the stand-in Mattermost as a server of its own, for other
//! programs and test suites (in any language) to run against. It models
//! the endpoints this library uses as the real server behaves (see the
//! `mattermost-tokens-stand-in` crate), keeps its state in a file between
//! runs, and can rate-limit and inject faults.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use mattermost_tokens_stand_in::{AdminCredential, Fault, FaultRule, StandIn};
use serde_json::json;

use crate::cli::{Ended, Format, emit, print};
use crate::setup::Fatal;

/// Run the stand-in Mattermost as a standalone server until interrupted
/// (Ctrl-C or SIGTERM), saving its state on the way out.
#[derive(Debug, Clone, clap::Args)]
pub struct StandInArgs {
    /// The address to listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8065")]
    pub listen: SocketAddr,
    /// The admin's personal access token (the MATTERMOST_TOKEN of its
    /// clients); from STAND_IN_ADMIN_TOKEN, other users of the machine do
    /// not see it in the process list.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "STAND_IN_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: String,
    /// A JSON file the state is loaded from (when it exists) and saved to.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
    /// Requests per second per client address, as Mattermost's rate
    /// limiter (with the same `X-Ratelimit-*` headers and 429 answers).
    #[arg(long, value_name = "R", requires = "burst", value_parser = clap::value_parser!(u32).range(1..))]
    pub rate_limit: Option<u32>,
    /// Requests allowed at once beyond the rate.
    #[arg(long, value_name = "B", requires = "rate_limit")]
    pub burst: Option<u32>,
    /// Answer this share of requests (0 to 1) with 503 before handling them.
    #[arg(long, value_name = "P")]
    pub fault_rate: Option<f64>,
    /// Seed for `--fault-rate` (repeats a run's choices).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub fault_seed: u64,
    /// Personal access tokens disabled (the admin token is then a session
    /// token, which keeps working).
    #[arg(long)]
    pub tokens_disabled: bool,
    /// Take a permission out of the system_admin role (repeatable), e.g.
    /// manage_system.
    #[arg(long, value_name = "PERMISSION")]
    pub admin_without: Vec<String>,
    /// Active users allowed (the server's user limit).
    #[arg(long, value_name = "N")]
    pub user_limit: Option<u32>,
}

/// Runs `stand-in` until interrupted.
pub async fn run(args: StandInArgs, format: Format) -> Result<Ended, Fatal> {
    let mut b = StandIn::builder()
        .bind(args.listen)
        .admin_token(args.admin_token.as_str());
    if let Some(file) = &args.state {
        b = b.state_file(file);
    }
    if let (Some(r), Some(burst)) = (args.rate_limit, args.burst) {
        b = b.rate_limit(r, burst);
    }
    if let Some(p) = args.fault_rate {
        if !(0.0..=1.0).contains(&p) {
            return Err(anyhow::anyhow!("--fault-rate must be from 0 to 1").into());
        }
        b = b.fault(FaultRule::random(p, args.fault_seed, Fault::Status(503)));
    }
    if args.tokens_disabled {
        b = b
            .tokens_enabled(false)
            .admin_credential(AdminCredential::Session);
    }
    for p in &args.admin_without {
        b = b.admin_without(p.as_str());
    }
    if let Some(n) = args.user_limit {
        b = b.user_limit(n);
    }
    let server = b
        .start()
        .await
        .with_context(|| format!("cannot start the stand-in on {}", args.listen))?;
    match format {
        Format::Json => emit(&json!({
            "url": server.url(),
            "admin_user_id": server.admin_user_id(),
        })),
        Format::Text => print(&format!(
            "stand-in Mattermost listening on {} (admin user {}); Ctrl-C stops it\n",
            server.url(),
            server.admin_user_id()
        )),
    }
    wait_for_signal().await;
    if server.state_file().is_some() {
        server
            .save_state()
            .context("cannot save the stand-in's state")?;
    }
    server.shutdown();
    Ok(Ended::OK)
}

/// Ctrl-C, or SIGTERM on Unix.
async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
