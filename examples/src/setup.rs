//! Configuration, the Mattermost client and the token store, as both
//! examples need them.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use clap::ValueEnum;
use mattermost_tokens::{
    CodeStore, EncryptedStore, EncryptionKeys, Error, HostUserSource, HostUserTable,
    MattermostClient, MemoryCodeStore, MemoryStore, TokenStore,
};
use mattermost_tokens_stand_in::{Fault, FaultRule, StandIn};

use crate::demo_db::{Backend, DEFAULT_DATABASE_URL, HostDb, with_create_mode};

/// Which `TokenStore` implementation holds the tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StoreKind {
    /// `mattermost-tokens-sqlx` on the database of `DATABASE_URL`.
    Sqlx,
    /// `mattermost-tokens-diesel` on the database of `DATABASE_URL`.
    Diesel,
    /// In memory (nothing is kept after the run; the host users still come
    /// from the database).
    Memory,
}

/// Settings read from the environment.
#[derive(Clone)]
pub struct Env {
    /// `MATTERMOST_URL`; `None` starts the stand-in.
    pub mattermost_url: Option<String>,
    /// `MATTERMOST_TOKEN`: the admin personal access token.
    pub mattermost_token: Option<String>,
    /// `DATABASE_URL`, defaulting to a SQLite file in the working directory.
    pub database_url: String,
    /// `MATTERMOST_TOKENS_KEY`: turns on encryption at rest.
    pub encryption_key: Option<String>,
    /// `SQLITE_BUSY_TIMEOUT_MS`: how long a SQLite connection waits for
    /// another one's lock before the write fails (default 5 s).
    pub sqlite_busy_timeout: std::time::Duration,
    /// `HOST_INACTIVE_COLUMN`: a users column whose non-NULL value means the
    /// user left the app (Laravel's soft-delete `deleted_at`).
    pub inactive_column: Option<String>,
    /// `MATTERMOST_ALLOW_HTTP=1`: accept a plain `http://` `MATTERMOST_URL`
    /// on another host (a private container network); tokens then cross it
    /// in clear.
    pub allow_http: bool,
    /// `MATTERMOST_TOKENS_ALLOW_PLAINTEXT=1`: with a key, still read
    /// plaintext tokens (rows from before encryption was turned on) during a
    /// migration window.
    pub allow_plaintext: bool,
}

impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Env")
            .field("mattermost_url", &self.mattermost_url)
            .field(
                "mattermost_token",
                &self.mattermost_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("database_url", &"[not shown]")
            .field(
                "encryption_key",
                &self.encryption_key.as_ref().map(|_| "[REDACTED]"),
            )
            .field("sqlite_busy_timeout", &self.sqlite_busy_timeout)
            .field("inactive_column", &self.inactive_column)
            .field("allow_http", &self.allow_http)
            .field("allow_plaintext", &self.allow_plaintext)
            .finish()
    }
}

impl Env {
    /// Reads the environment; empty values count as unset.
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Env {
            mattermost_url: get("MATTERMOST_URL"),
            mattermost_token: get("MATTERMOST_TOKEN"),
            database_url: get("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
            encryption_key: get("MATTERMOST_TOKENS_KEY"),
            sqlite_busy_timeout: std::time::Duration::from_millis(
                get("SQLITE_BUSY_TIMEOUT_MS")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(5_000),
            ),
            inactive_column: get("HOST_INACTIVE_COLUMN"),
            allow_http: get("MATTERMOST_ALLOW_HTTP").is_some_and(|v| v == "1" || v == "true"),
            allow_plaintext: get("MATTERMOST_TOKENS_ALLOW_PLAINTEXT")
                .is_some_and(|v| v == "1" || v == "true"),
        }
    }
}

/// An error that ends the program with exit code 2: configuration or server
/// problems, with what to do about them.
#[derive(Debug)]
pub struct Fatal(pub anyhow::Error);

impl<E: Into<anyhow::Error>> From<E> for Fatal {
    fn from(e: E) -> Self {
        Fatal(e.into())
    }
}

impl Fatal {
    /// Prints the error chain and returns exit code 2.
    pub fn report(self) -> ExitCode {
        eprintln!("error: {:#}", self.0);
        ExitCode::from(2)
    }
}

/// Advice for the server errors that stop a run before it starts.
pub fn explain(e: Error) -> anyhow::Error {
    let hint = match &e {
        Error::Unreachable { .. } | Error::Timeout { .. } => {
            "check MATTERMOST_URL and that the server is running and reachable from here"
        }
        Error::Unauthorized(_) => {
            "MATTERMOST_TOKEN was refused: set it to a valid personal access token of a system admin; if it is one, personal access tokens may be disabled on the server, which stops the admin's own token too: enable them in System Console > Integrations > Integration Management"
        }
        Error::PermissionDenied(_) => {
            "the admin token's user lacks permissions: it needs create_user_access_token and edit_other_users (a system admin has both)"
        }
        Error::TokensDisabled(_) => {
            "enable personal access tokens in System Console > Integrations > Integration Management"
        }
        Error::InvalidConfig(_) => "fix MATTERMOST_URL / MATTERMOST_TOKEN",
        _ => "see the README's troubleshooting section",
    };
    anyhow!(e).context(hint.to_owned())
}

/// The Mattermost server to talk to, and the stand-in when one was started.
#[derive(Debug)]
pub struct Server {
    /// The client.
    pub client: MattermostClient,
    /// The in-process stand-in, when `MATTERMOST_URL` was unset.
    pub stand_in: Option<StandIn>,
}

impl Server {
    /// Saves the stand-in's state for the next run (no-op for a real server).
    pub fn save(&self) {
        if let Some(s) = &self.stand_in
            && let Err(e) = s.save_state()
        {
            tracing::warn!(error = %e, "could not save the stand-in's state");
        }
    }
}

/// `STAND_IN_LOST_ANSWERS=P` (0 to 1): the stand-in does each write (create
/// user, mint, revoke, patch) and then, with probability `P`, answers a
/// proxy's 504 page instead of its answer; `STAND_IN_FAULT_SEED` repeats a
/// run's choices. For trying what a sync does when answers are lost.
fn lost_answer_rules() -> Result<Vec<FaultRule>, Fatal> {
    let get = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    let Some(rate) = get("STAND_IN_LOST_ANSWERS") else {
        return Ok(Vec::new());
    };
    let rate: f64 = rate
        .trim()
        .parse()
        .ok()
        .filter(|r| (0.0..=1.0).contains(r))
        .ok_or_else(|| anyhow!("STAND_IN_LOST_ANSWERS must be a number from 0 to 1"))?;
    let seed: u64 = match get("STAND_IN_FAULT_SEED") {
        Some(s) => s
            .trim()
            .parse()
            .map_err(|_| anyhow!("STAND_IN_FAULT_SEED must be a whole number"))?,
        None => rand::random(),
    };
    Ok([
        "POST /api/v4/users",
        "POST /api/v4/users/{user_id}/tokens",
        "POST /api/v4/users/tokens/revoke",
        "PUT /api/v4/users/{user_id}/patch",
    ]
    .iter()
    .enumerate()
    .map(|(i, endpoint)| {
        FaultRule::random(rate, seed.wrapping_add(i as u64), Fault::ProxyHtml(504))
            .on(*endpoint)
            .after_handler()
    })
    .collect())
}

/// Where the stand-in keeps its state between runs of the examples.
pub fn stand_in_state_file() -> PathBuf {
    PathBuf::from("mattermost-tokens-demo.stand-in.json")
}

/// Connects to `MATTERMOST_URL` with `MATTERMOST_TOKEN`, or starts the
/// stand-in (saying so in one line) when no URL is set.
pub async fn mattermost(env: &Env) -> Result<Server, Fatal> {
    match &env.mattermost_url {
        Some(url) => {
            let token = env.mattermost_token.clone().ok_or_else(|| {
                anyhow!("MATTERMOST_URL is set but MATTERMOST_TOKEN is not: set it to the admin's personal access token")
            })?;
            let mut builder = MattermostClient::builder(url, token);
            if env.allow_http {
                builder = builder.allow_insecure_http();
            }
            let client = builder.build().map_err(explain)?;
            Ok(Server {
                client,
                stand_in: None,
            })
        }
        None => {
            let file = stand_in_state_file();
            let mut builder = StandIn::builder().state_file(&file);
            for rule in lost_answer_rules()? {
                builder = builder.fault(rule);
            }
            let stand_in = builder.start().await.with_context(|| {
                format!(
                    "cannot start the stand-in Mattermost (state file {})",
                    file.display()
                )
            })?;
            eprintln!(
                "MATTERMOST_URL is not set: using a stand-in Mattermost at {} (state kept in {})",
                stand_in.url(),
                file.display()
            );
            let client =
                MattermostClient::new(stand_in.url(), stand_in.admin_token()).map_err(explain)?;
            Ok(Server {
                client,
                stand_in: Some(stand_in),
            })
        }
    }
}

/// The stores of one backend: user tokens, and magic-link codes.
#[derive(Debug, Clone)]
pub struct Stores {
    /// User tokens, in the host's `users` table (encrypted when a key is set).
    pub tokens: Arc<dyn TokenStore>,
    /// The token store without encryption: what it reads is what the
    /// table holds (ciphertext when rows are encrypted).
    pub plain: Arc<dyn TokenStore>,
    /// The encrypting store, when `MATTERMOST_TOKENS_KEY` is set.
    pub encrypted: Option<Arc<EncryptedStore<Arc<dyn TokenStore>>>>,
    /// One-time magic-link codes (hashes only).
    pub codes: Arc<dyn CodeStore>,
    /// The host's users, read page by page from its `users` table.
    pub users: Arc<dyn HostUserSource>,
}

/// What opening the stores does to the schema.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// Leave it alone.
    Leave,
    /// Apply the migrations that are missing.
    Migrate,
    /// Undo the migrations (the token columns and codes go with them).
    Undo,
}

/// Migrates (or undoes) a token store `$t` and code store `$c` of either
/// adapter as `$schema` says.
macro_rules! change_schema {
    ($schema:expr, $t:expr, $c:expr) => {
        match $schema {
            Schema::Leave => {}
            Schema::Migrate => {
                $t.migrate().await?;
                $c.migrate().await?;
            }
            Schema::Undo => {
                $c.undo_migration().await?;
                $t.undo_migration().await?;
            }
        }
    };
}

/// The stores of `kind` over the host's database (the schema changed first
/// as `schema` says; never for the memory store), with the token store wrapped in encryption when a key is
/// configured, and the host's users read through the same adapter (sqlx for
/// the memory store).
pub async fn stores(
    kind: StoreKind,
    env: &Env,
    host: &HostDb,
    schema: Schema,
) -> Result<Stores, Fatal> {
    let url = with_create_mode(&env.database_url);
    let table = HostUserTable::laravel()
        .with_inactive_column(
            env.inactive_column
                .as_deref()
                .map(|c| (c, mattermost_tokens::InactiveWhen::NotNull)),
        )
        .context("HOST_INACTIVE_COLUMN must be a column name")?;
    let (tokens, codes, users): (
        Arc<dyn TokenStore>,
        Arc<dyn CodeStore>,
        Arc<dyn HostUserSource>,
    ) = match (kind, host.backend()) {
        (StoreKind::Sqlx | StoreKind::Memory, Backend::Sqlite) => {
            use mattermost_tokens_sqlx::sqlx::sqlite::SqlitePoolOptions;
            use mattermost_tokens_sqlx::{SqliteCodeStore, SqliteHostUsers, SqliteTokenStore};
            let pool = SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(sqlite_options(env)?)
                .await?;
            let t = SqliteTokenStore::new(pool.clone());
            let c = SqliteCodeStore::new(pool.clone());
            migrate_both(kind, &t, &c, schema).await?;
            (
                Arc::new(t),
                Arc::new(c),
                Arc::new(SqliteHostUsers::new(pool, table)),
            )
        }
        (StoreKind::Sqlx | StoreKind::Memory, Backend::Postgres) => {
            use mattermost_tokens_sqlx::{
                PgCodeStore, PgHostUsers, PgTokenStore, sqlx::postgres::PgPoolOptions,
            };
            let pool = PgPoolOptions::new()
                .max_connections(8)
                .connect(&url)
                .await?;
            let t = PgTokenStore::new(pool.clone());
            let c = PgCodeStore::new(pool.clone());
            migrate_both(kind, &t, &c, schema).await?;
            (
                Arc::new(t),
                Arc::new(c),
                Arc::new(PgHostUsers::new(pool, table)),
            )
        }
        (StoreKind::Sqlx | StoreKind::Memory, Backend::MySql) => {
            use mattermost_tokens_sqlx::{
                MySqlCodeStore, MySqlHostUsers, MySqlTokenStore, sqlx::mysql::MySqlPoolOptions,
            };
            let pool = MySqlPoolOptions::new()
                .max_connections(8)
                .connect(&url)
                .await?;
            let t = MySqlTokenStore::new(pool.clone());
            let c = MySqlCodeStore::new(pool.clone());
            migrate_both(kind, &t, &c, schema).await?;
            (
                Arc::new(t),
                Arc::new(c),
                Arc::new(MySqlHostUsers::new(pool, table)),
            )
        }
        (StoreKind::Diesel, Backend::Sqlite) => {
            use mattermost_tokens_diesel::sqlite;
            let pool = sqlite::pool_with_busy_timeout(
                &sqlite_path(&env.database_url),
                4,
                env.sqlite_busy_timeout,
            )?;
            let t = sqlite::SqliteTokenStore::new(pool.clone());
            let c = sqlite::SqliteCodeStore::new(pool.clone());
            change_schema!(schema, t, c);
            let u = mattermost_tokens_diesel::SqliteHostUsers::new(pool, table);
            (Arc::new(t), Arc::new(c), Arc::new(u))
        }
        (StoreKind::Diesel, Backend::Postgres) => {
            use mattermost_tokens_diesel::postgres;
            let t = postgres::PgTokenStore::from_url(&env.database_url)?;
            let c = postgres::PgCodeStore::new(t.pool().clone());
            change_schema!(schema, t, c);
            let u = mattermost_tokens_diesel::PgHostUsers::new(t.pool().clone(), table);
            (Arc::new(t), Arc::new(c), Arc::new(u))
        }
        (StoreKind::Diesel, Backend::MySql) => {
            let t = mattermost_tokens_diesel::MySqlTokenStore::from_url(&env.database_url)?;
            let c = mattermost_tokens_diesel::MySqlCodeStore::new(t.pool().clone());
            change_schema!(schema, t, c);
            let u = mattermost_tokens_diesel::MySqlHostUsers::new(t.pool().clone(), table);
            (Arc::new(t), Arc::new(c), Arc::new(u))
        }
    };
    let tokens: Arc<dyn TokenStore> = if kind == StoreKind::Memory {
        use futures::TryStreamExt;
        let ids: Vec<_> = mattermost_tokens::host_table::stream(users.clone())
            .map_ok(|u| u.id)
            .try_collect()
            .await?;
        Arc::new(MemoryStore::with_users(ids))
    } else {
        tokens
    };
    let codes: Arc<dyn CodeStore> = if kind == StoreKind::Memory {
        Arc::new(MemoryCodeStore::new())
    } else {
        codes
    };
    let encrypted = match &env.encryption_key {
        Some(config) => {
            let keys = EncryptionKeys::from_config(config)
                .context("MATTERMOST_TOKENS_KEY is not a valid key (32 bytes, base64)")?;
            // Plaintext rows are refused unless the host opens a migration
            // window for the rows written before encryption was turned on.
            Some(Arc::new(
                EncryptedStore::new(tokens.clone(), keys).allow_plaintext(env.allow_plaintext),
            ))
        }
        None => None,
    };
    Ok(Stores {
        tokens: match &encrypted {
            Some(e) => e.clone() as Arc<dyn TokenStore>,
            None => tokens.clone(),
        },
        plain: tokens,
        encrypted,
        codes,
        users,
    })
}

/// The SQL the store's migrations would run now (or, with `undo`, their
/// undo), read through the sqlx adapter whatever `--store` is: both
/// adapters run the same schema steps, so the statements are the same
/// (each records them in its own tracking table, which is not listed).
/// Empty when there is nothing to do.
pub async fn migration_sql(env: &Env, host: &HostDb, undo: bool) -> Result<Vec<String>, Fatal> {
    use mattermost_tokens_sqlx::{SqlxCodeStore, SqlxTokenStore};
    async fn plan<DB: mattermost_tokens_sqlx::Backend>(
        pool: sqlx::Pool<DB>,
        undo: bool,
    ) -> Result<Vec<String>, Fatal> {
        let t = SqlxTokenStore::<DB>::new(pool.clone());
        let c = SqlxCodeStore::<DB>::new(pool);
        let mut out = t.migration_sql(undo).await?;
        out.extend(c.migration_sql(undo).await?);
        Ok(out)
    }
    let url = with_create_mode(&env.database_url);
    match host.backend() {
        Backend::Sqlite => {
            use mattermost_tokens_sqlx::sqlx::sqlite::SqlitePoolOptions;
            plan(
                SqlitePoolOptions::new()
                    .max_connections(1)
                    .connect_with(sqlite_options(env)?)
                    .await?,
                undo,
            )
            .await
        }
        Backend::Postgres => {
            use mattermost_tokens_sqlx::sqlx::postgres::PgPoolOptions;
            plan(
                PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await?,
                undo,
            )
            .await
        }
        Backend::MySql => {
            use mattermost_tokens_sqlx::sqlx::mysql::MySqlPoolOptions;
            plan(
                MySqlPoolOptions::new()
                    .max_connections(1)
                    .connect(&url)
                    .await?,
                undo,
            )
            .await
        }
    }
}

/// Migrates (or undoes) the sqlx token and code stores, except for the
/// memory store (which leaves the host's tables as they are).
async fn migrate_both<DB: mattermost_tokens_sqlx::Backend>(
    kind: StoreKind,
    tokens: &mattermost_tokens_sqlx::SqlxTokenStore<DB>,
    codes: &mattermost_tokens_sqlx::SqlxCodeStore<DB>,
    schema: Schema,
) -> Result<(), Fatal> {
    if kind != StoreKind::Memory {
        change_schema!(schema, tokens, codes);
    }
    Ok(())
}

/// How the sqlx connections open `DATABASE_URL` on SQLite: the file created
/// when missing, and the connection's busy timeout. The journal mode and
/// other persistent settings are the host's.
fn sqlite_options(
    env: &Env,
) -> Result<mattermost_tokens_sqlx::sqlx::sqlite::SqliteConnectOptions, Fatal> {
    Ok(with_create_mode(&env.database_url)
        .parse::<mattermost_tokens_sqlx::sqlx::sqlite::SqliteConnectOptions>()?
        .busy_timeout(env.sqlite_busy_timeout))
}

/// The file path of a `sqlite:` URL, as diesel's SQLite connection takes it.
pub fn sqlite_path(url: &str) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or(rest).to_owned()
}

/// Sets up `tracing` from `RUST_LOG` (default: warnings) on stderr.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
