//! Fault tolerance of the user sync, against the stand-in (and a raw TCP
//! server for answers no real server would send).
//!
//! The promise under test: whatever happens during a sync, a clean re-run
//! leaves every app user with exactly one live token minted by the library,
//! equal to the stored one, and no other live library token anywhere; no app
//! row is lost or changed beyond the Mattermost columns; no token reaches a
//! log.
//!
//! Every test here records the whole `tracing` output of the library (one
//! subscriber for the binary) and checks at its end that no token value it
//! saw is in it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use futures::stream;
use mattermost_tokens::*;
use mattermost_tokens_sqlx::sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqlitePoolOptions,
};
use mattermost_tokens_sqlx::sqlx::{self, Connection};
use mattermost_tokens_sqlx::{PgTokenStore, SqliteTokenStore};
use mattermost_tokens_stand_in::{Fault, FaultRule, NewUser, StandIn};
use mattermost_tokens_tests::db::{POSTGRES_ENV, unique_suffix, url_or_skip};
use mattermost_tokens_tests::pg_temp::TempDatabase;
use mattermost_tokens_tests::promise::{assert_one_account_per_user, assert_promise};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const MINT: &str = "POST /api/v4/users/{user_id}/tokens";
const REVOKE: &str = "POST /api/v4/users/tokens/revoke";

// ---------------------------------------------------------------------------
// Helpers

fn host_user(i: i64) -> HostUser {
    HostUser::new(
        i,
        format!("user{i}@example.com"),
        &format!("User Number{i}"),
    )
}

fn users(n: i64) -> Vec<HostUser> {
    (1..=n).map(host_user).collect()
}

fn ids(n: i64) -> Vec<HostUserId> {
    (1..=n).map(HostUserId::Int).collect()
}

/// Retries as in production, with delays small enough for a test.
fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        max_rate_limited_attempts: 30,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_millis(40),
        max_total_wait: Duration::from_secs(30),
        jitter: true,
    }
}

fn sync_over(server: &StandIn, store: Arc<dyn TokenStore>, concurrency: usize) -> UserSync {
    sync_with(
        server,
        store,
        SyncOptions::new("faults").concurrency(concurrency),
    )
}

fn sync_with(server: &StandIn, store: Arc<dyn TokenStore>, options: SyncOptions) -> UserSync {
    let client = MattermostClient::builder(server.url(), server.admin_token())
        .retry_policy(fast_retry())
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    UserSync::new(client, store, options).unwrap()
}

/// How long the claims of the read-only scenario last: a claim whose
/// release the read-only database refused runs out by then.
const SHORT_CLAIMS: Duration = Duration::from_secs(1);

/// The library's live tokens on the stand-in, by id.
fn live_library_token_ids(server: &StandIn) -> BTreeSet<String> {
    server
        .live_tokens()
        .into_iter()
        .filter(|t| t.description.starts_with(DESCRIPTION_PREFIX))
        .map(|t| t.id.into_string())
        .collect()
}

/// The token ids stored for `users`.
async fn stored_token_ids(store: &dyn TokenStore, users: &[HostUserId]) -> BTreeSet<String> {
    store
        .get_many(users)
        .await
        .expect("the store is readable")
        .into_values()
        .filter_map(|r| r.token_id.map(TokenId::into_string))
        .collect()
}

/// Every token value the stand-in holds right now (the admin token too).
fn token_values(server: &StandIn) -> Vec<String> {
    let mut v: Vec<String> = server
        .tokens()
        .iter()
        .filter_map(|t| server.token_value(&t.id))
        .map(|t| t.expose_secret().to_owned())
        .collect();
    v.push(server.admin_token().expose_secret().to_owned());
    v
}

// ---- log capture ----

#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogBuf {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// The log of every test in this binary: the library and the stores at
/// TRACE level, everything else from WARN.
fn capture_logs() -> LogBuf {
    static LOG: OnceLock<LogBuf> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = LogBuf::default();
        let w = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "warn,mattermost_tokens=trace,mattermost_tokens_sqlx=trace",
            ))
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::set_global_default(subscriber)
            .expect("no other global subscriber in this binary");
        buf
    })
    .clone()
}

fn assert_no_token_logged(log: &LogBuf, tokens: &[String]) {
    let text = log.text();
    assert!(
        text.contains("mattermost request"),
        "nothing was logged: is the capture working?"
    );
    for t in tokens {
        assert!(!t.is_empty());
        assert!(!text.contains(t.as_str()), "a token value reached the log");
    }
}

// ---- a SQLite host database ----

/// A SQLite file with a Laravel-shaped `users` table of users `1..=n`.
struct SqliteApp {
    dir: PathBuf,
    file: PathBuf,
}

impl SqliteApp {
    async fn create(name: &str, n: i64) -> SqliteApp {
        let dir = std::env::temp_dir().join(format!("mmt-faults-{name}-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("app.sqlite");
        let app = SqliteApp { dir, file };
        let mut conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&app.file)
                .create_if_missing(true),
        )
        .await
        .unwrap();
        sqlx::query(
            "CREATE TABLE users (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(255) NOT NULL, \
             email VARCHAR(255) NOT NULL UNIQUE, email_verified_at TIMESTAMP NULL, \
             password VARCHAR(255) NOT NULL, remember_token VARCHAR(100) NULL, \
             created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL)",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        let mut tx = conn.begin().await.unwrap();
        for i in 1..=n {
            sqlx::query(
                "INSERT INTO users (name, email, email_verified_at, password, remember_token, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(format!("User Number{i}"))
            .bind(format!("user{i}@example.com"))
            .bind((i % 3 != 0).then(|| format!("2024-01-01 08:{:02}:00", i % 60)))
            .bind(format!("$2y$10$hash-of-{i}"))
            .bind((i % 2 == 0).then(|| format!("remember-{i}")))
            .bind(format!("2023-06-01 12:{:02}:{:02}", i % 60, i % 7))
            .bind((i % 5 != 0).then(|| "2023-07-01 00:00:00".to_owned()))
            .execute(&mut *tx)
            .await
            .unwrap();
        }
        tx.commit().await.unwrap();
        conn.close().await.unwrap();
        app
    }

    fn options(&self) -> SqliteConnectOptions {
        SqliteConnectOptions::new().filename(&self.file)
    }

    /// A migrated store over a pool of `max` connections.
    async fn store(&self, max: u32) -> SqliteTokenStore {
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(self.options())
            .await
            .unwrap();
        let store = SqliteTokenStore::new(pool);
        store.migrate().await.unwrap();
        store
    }

    /// The host's own columns of every row, in id order.
    async fn dump(&self) -> Vec<String> {
        let pool = SqlitePool::connect_with(self.options()).await.unwrap();
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT id || ' | ' || name || ' | ' || email || ' | ' || coalesce(email_verified_at, 'NULL') \
             || ' | ' || password || ' | ' || coalesce(remember_token, 'NULL') || ' | ' \
             || coalesce(created_at, 'NULL') || ' | ' || coalesce(updated_at, 'NULL') \
             FROM users ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        rows
    }
}

impl Drop for SqliteApp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A short name for the kind of a per-user error caused by an unreliable
/// server; any other kind fails the test.
fn server_fault_kind(e: &Error) -> &'static str {
    match e {
        Error::Api(a) if a.status >= 500 => "5xx with Mattermost's JSON",
        Error::BadResponse { status, .. } if *status >= 500 => "5xx proxy page",
        Error::Transport { .. } => "connection dropped",
        Error::Timeout { .. } => "timed out",
        other => panic!("not an error a server fault explains: {other}"),
    }
}

// ---------------------------------------------------------------------------
// 1a. Random 5xx and dropped connections

/// About 10% of requests get a 5xx (Mattermost JSON or a proxy's HTML page),
/// about 5% lose their connection, some of those after the server made the
/// change ("did my POST go through?"). Seeded: the same rules fire on the
/// same requests in a run of the same order.
fn unreliable_server_rules(seed: u64) -> Vec<FaultRule> {
    vec![
        FaultRule::random(0.03, seed, Fault::Status(500)),
        FaultRule::random(0.02, seed + 1, Fault::Status(502)),
        FaultRule::random(0.02, seed + 2, Fault::Status(503)),
        FaultRule::random(0.03, seed + 3, Fault::ProxyHtml(502)),
        FaultRule::random(0.02, seed + 4, Fault::DropConnection),
        FaultRule::random(0.03, seed + 5, Fault::DropConnection).after_handler(),
        FaultRule::random(0.01, seed + 6, Fault::ProxyHtml(504)).after_handler(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_5xx_and_dropped_connections_then_a_clean_rerun_keeps_the_promise() {
    let log = capture_logs();
    const N: i64 = 200;
    let server = StandIn::start().await.unwrap();
    let app = SqliteApp::create("random", N).await;
    let before = app.dump().await;
    let store: Arc<dyn TokenStore> = Arc::new(app.store(4).await);
    let sync = sync_over(&server, store.clone(), 8);

    // The random rules land on whichever requests the concurrency puts in
    // their way, so at least one lost mint answer is made sure of: the
    // re-run must find its token (first rule added, first to win).
    server.add_fault(
        FaultRule::nth(
            "POST /api/v4/users/{user_id}/tokens",
            10,
            Fault::DropConnection,
        )
        .after_handler(),
    );
    for rule in unreliable_server_rules(0x5eed) {
        server.add_fault(rule);
    }
    let mut kinds: BTreeMap<&'static str, u32> = BTreeMap::new();
    let r = sync
        .sync_all(stream::iter(users(N)), |r| {
            if let Err(f) = r {
                *kinds.entry(server_fault_kind(&f.error)).or_default() += 1;
            }
        })
        .await
        .expect("the server check is made of reads, which are retried");
    let injected = server.faults_injected();
    let mut seen_tokens = token_values(&server);
    println!(
        "faulty run: {} requests, {injected} faults injected, {} users failed {kinds:?}, {} minted",
        server.total_requests(),
        r.summary.failed,
        r.summary.minted
    );
    assert_eq!(r.summary.total, N as u64);
    assert!(injected > 20, "too few faults injected: {injected}");
    assert!(
        r.summary.failed >= 10 && r.summary.failed < N as u64 / 2,
        "{:?}",
        r.summary
    );
    assert_eq!(r.failures.len() as u64, r.summary.failed);
    assert!(
        kinds.len() >= 3,
        "expected several kinds of failure: {kinds:?}"
    );
    // Whoever failed has no token stored.
    let records = store.get_many(&ids(N)).await.unwrap();
    for f in &r.failures {
        assert!(records[&f.user].token.is_none(), "user {} failed", f.user);
    }

    // The clean re-run.
    server.clear_faults();
    server.reset_counts();
    let r = sync.sync_all(stream::iter(users(N)), |_| {}).await.unwrap();
    println!("clean re-run: {:?}", r.summary);
    assert_eq!(r.summary.failed, 0, "{:?}", r.failures);
    // Mints whose answer was lost ("did my POST go through?") left tokens
    // nobody stored; the re-run found and revoked them.
    assert!(r.summary.orphans_revoked > 0, "{:?}", r.summary);
    assert_promise(&server, store.as_ref(), &ids(N)).await;
    assert_one_account_per_user(&server, store.as_ref(), N).await;
    assert_eq!(app.dump().await, before, "host columns changed");
    seen_tokens.extend(token_values(&server));
    assert_no_token_logged(&log, &seen_tokens);
}

// ---------------------------------------------------------------------------
// 1b. The database refusing writes in the middle of a sync

type Switch = Arc<dyn Fn(bool) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// `n` users, the even ones already in Mattermost and linked in the store
/// (their sync goes straight to minting, so a refused write comes after a
/// mint); after `k` results the database stops taking writes (`switch(true)`
/// runs to completion before the sync goes on); then it is restored and the
/// sync re-run.
async fn store_turns_read_only_mid_sync(
    name: &str,
    store: Arc<dyn TokenStore>,
    switch: Switch,
    n: i64,
    k: usize,
) {
    let log = capture_logs();
    let server = StandIn::builder()
        .latency(Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    for i in (2..=n).step_by(2) {
        let mm = server
            .create_user_directly(
                NewUser::new(format!("user{i}"), format!("user{i}@example.com"))
                    .names("User", format!("Number{i}")),
            )
            .unwrap();
        store
            .set_mattermost_user_id(&HostUserId::Int(i), &mm)
            .await
            .unwrap();
    }
    let sync = sync_with(
        &server,
        store.clone(),
        SyncOptions::new("faults").claim_ttl(SHORT_CLAIMS),
    );

    // The switch runs on a task of its own; the sync waits for it (the
    // callback blocks the test's thread, which drives the sync) so that
    // exactly `k` users are done when the database turns read-only.
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let done_rx = Mutex::new(done_rx);
    let s = switch.clone();
    let tripper = tokio::spawn(async move {
        if go_rx.await.is_ok() {
            s(true).await;
            let _ = done_tx.send(());
        }
    });
    let mut go_tx = Some(go_tx);
    let mut done = 0usize;
    let mut failures: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut ok_before_trip = 0usize;
    let r = sync
        .sync_all(stream::iter(users(n)), |r| {
            done += 1;
            match r {
                Ok(_) if go_tx.is_some() => ok_before_trip += 1,
                Ok(_) => {}
                Err(f) => {
                    let kind = match &f.error {
                        Error::Store(StoreError::ReadOnly { .. }) => "ReadOnly",
                        Error::Store(StoreError::Unavailable { .. }) => "Unavailable",
                        other => panic!("{name}: user {}: unexpected error {other}", f.user),
                    };
                    *failures.entry(kind).or_default() += 1;
                }
            }
            if done == k
                && let Some(tx) = go_tx.take()
            {
                tx.send(()).unwrap();
                done_rx
                    .lock()
                    .unwrap()
                    .recv_timeout(Duration::from_secs(30))
                    .expect("the database switch finished");
            }
        })
        .await
        .unwrap();
    tripper.await.unwrap();
    let mints = server.request_count(MINT);
    let revokes = server.request_count(REVOKE);
    let stored = stored_token_ids(store.as_ref(), &ids(n)).await;
    println!(
        "{name}: read-only after {k} users: {} failed {failures:?}, {mints} minted, {} stored, {revokes} revoked",
        r.summary.failed,
        stored.len()
    );
    assert_eq!(ok_before_trip, k, "{name}: the first {k} users succeed");
    assert!(
        r.summary.failed as i64 >= n - k as i64 - 8,
        "{name}: users after the switch fail: {:?}",
        r.summary
    );
    assert!(
        failures.get("ReadOnly").copied().unwrap_or(0) > 0,
        "{name}: {failures:?}"
    );
    // A user whose claim or intent can no longer be written fails before
    // its mint (nothing to clean up); one whose intent was recorded before
    // the switch and whose store write then failed has its token revoked
    // at once (checked below: every live library token is a stored one).
    assert!(mints as usize >= stored.len(), "{name}");
    assert_eq!(
        live_library_token_ids(&server),
        stored,
        "{name}: a live library token is not stored"
    );
    assert!(revokes as usize >= mints as usize - stored.len());
    let mut seen_tokens = token_values(&server);
    let failed = r.summary.failed;

    // Restored: the clean re-run, once the claims whose release the
    // read-only database refused have run out.
    switch(false).await;
    tokio::time::sleep(SHORT_CLAIMS + Duration::from_millis(100)).await;
    server.reset_counts();
    let r = sync.sync_all(stream::iter(users(n)), |_| {}).await.unwrap();
    assert_eq!(r.summary.failed, 0, "{name}: {:?}", r.failures);
    assert_eq!(r.summary.minted, failed, "{name}: {:?}", r.summary);
    assert_promise(&server, store.as_ref(), &ids(n)).await;
    assert_one_account_per_user(&server, store.as_ref(), n).await;
    seen_tokens.extend(token_values(&server));
    assert_no_token_logged(&log, &seen_tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_turning_read_only_mid_sync() {
    let Some(url) = url_or_skip(POSTGRES_ENV, "faults::postgres_turning_read_only_mid_sync") else {
        return;
    };
    let db = Arc::new(TempDatabase::create(&url, "mmt_faults").await);
    db.create_laravel_users(80).await;
    let before = db.dump_app_rows().await;
    let store = PgTokenStore::new(db.pool(4).await);
    store.migrate().await.unwrap();
    let d = db.clone();
    // ALTER DATABASE ... SET default_transaction_read_only and the end of
    // every open connection: the pool's next connections refuse writes.
    let switch: Switch = Arc::new(move |on| {
        let d = d.clone();
        Box::pin(async move { d.set_read_only(on).await })
    });
    store_turns_read_only_mid_sync("postgres", Arc::new(store), switch, 80, 20).await;
    assert_eq!(db.dump_app_rows().await, before, "host columns changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_turning_read_only_mid_sync() {
    let app = SqliteApp::create("readonly", 60).await;
    let before = app.dump().await;
    app.store(1).await; // migrated
    // `PRAGMA query_only` on every connection as the pool hands it out: the
    // switch flips what the next statement of each connection sees. (Tests
    // run as root in CI, where a file mode cannot make a file read-only.)
    let read_only = Arc::new(AtomicBool::new(false));
    let ro = read_only.clone();
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        .before_acquire(move |conn, _| {
            let on = ro.load(Ordering::SeqCst);
            Box::pin(async move {
                let pragma = if on {
                    "PRAGMA query_only = ON"
                } else {
                    "PRAGMA query_only = OFF"
                };
                sqlx::query(pragma).execute(&mut *conn).await?;
                Ok(true)
            })
        })
        .connect_with(app.options())
        .await
        .unwrap();
    let store = SqliteTokenStore::new(pool);
    let switch: Switch = Arc::new(move |on| {
        read_only.store(on, Ordering::SeqCst);
        Box::pin(async {})
    });
    store_turns_read_only_mid_sync("sqlite", Arc::new(store), switch, 60, 15).await;
    assert_eq!(app.dump().await, before, "host columns changed");
}

// ---------------------------------------------------------------------------
// 1c. A 429 storm

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_fails_nobody_and_mints_each_user_once() {
    let log = capture_logs();
    const N: i64 = 40;
    const PER_SEC: u32 = 50;
    let server = StandIn::builder()
        .rate_limit(PER_SEC, 0)
        .start()
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(N)));
    // The client as shipped: default retry policy, pacing on.
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(client, store.clone(), SyncOptions::new("faults")).unwrap();
    let started = Instant::now();
    // A safety net only (the client's waits are bounded anyway).
    let r = tokio::time::timeout(
        Duration::from_secs(300),
        sync.sync_all(stream::iter(users(N)), |_| {}),
    )
    .await
    .expect("the sync under a 429 storm ends")
    .unwrap();
    let elapsed = started.elapsed();
    let total = server.total_requests();
    let limited = server.rate_limited_count();
    let served = total - limited;
    println!(
        "429 storm: {total} requests, {limited} answered 429, {} mint requests, {elapsed:?}",
        server.request_count(MINT)
    );
    assert_eq!(r.summary.failed, 0, "{:?}", r.failures);
    assert_eq!((r.summary.created, r.summary.minted), (N as u64, N as u64));
    // Minted exactly once each: N tokens exist and none was ever revoked
    // (a 429 is answered before the handler: it mints nothing).
    assert_eq!(server.request_count(REVOKE), 0);
    // (The admin's own personal access token aside.)
    let admin = server.admin_user_id();
    assert_eq!(
        server
            .tokens()
            .iter()
            .filter(|t| t.user_id != admin)
            .count(),
        N as usize
    );
    let mint_requests = server.request_count(MINT);
    assert!(
        mint_requests >= N as u64 && mint_requests - N as u64 <= limited,
        "{mint_requests} mint requests: more than 40 plus the 429s"
    );
    assert_eq!(server.users().len(), N as usize + 1, "duplicate accounts");
    // The server let one request through per 1/PER_SEC s.
    let floor = Duration::from_secs_f64((served - 1) as f64 / f64::from(PER_SEC));
    assert!(elapsed >= floor, "{elapsed:?} < {floor:?}");
    assert_promise(&server, store.as_ref(), &ids(N)).await;
    assert_one_account_per_user(&server, store.as_ref(), N).await;
    assert_no_token_logged(&log, &token_values(&server));
}

// ---------------------------------------------------------------------------
// 1d. Bad host data

/// What must become of one host user.
#[derive(Debug)]
enum Expect {
    /// Synced; the check looks at the account.
    Synced(fn(&mattermost_tokens_stand_in::UserSnapshot)),
    /// A per-user `InvalidHostUser` error whose reason contains this.
    Invalid(&'static str),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_host_data_gives_per_user_errors_and_the_good_users_sync() {
    use Expect::*;
    let log = capture_logs();
    let long_local = "x".repeat(64);
    let too_long_local = "y".repeat(120);
    let long_name = format!("{} {}", "Ł".repeat(150), "ß".repeat(149));
    assert_eq!(long_name.chars().count(), 300);
    let mut cases: Vec<(HostUser, Expect)> = vec![
        (
            HostUser::new(1, "good.one@example.com", "Good One"),
            Synced(|u| assert_eq!(u.username, "good.one")),
        ),
        (HostUser::new(2, "not-an-email", "No At"), Invalid("no @")),
        (HostUser::new(3, "", "Empty Email"), Invalid("empty")),
        (
            HostUser::new(4, "two@@example.com", "Two Ats"),
            Invalid("not a valid address"),
        ),
        (
            HostUser::new(5, "nodot@localhost", "No Dot"),
            Invalid("not a valid address"),
        ),
        (
            HostUser::new(6, "bad email@example.com", "Space"),
            Invalid("not a valid address"),
        ),
        (
            HostUser::new(7, "noname@example.com", ""),
            Synced(|u| {
                assert_eq!((u.first_name.as_str(), u.last_name.as_str()), ("", ""));
                assert_eq!(u.username, "noname");
            }),
        ),
        (
            HostUser::new(8, "zoe@example.com", "Zoë Ångström-Łódź 日本語 🙂"),
            Synced(|u| {
                assert_eq!(u.first_name, "Zoë");
                assert_eq!(u.last_name, "Ångström-Łódź 日本語 🙂");
                assert_eq!(u.username, "zoe");
            }),
        ),
        (
            HostUser::new(9, "long.name@example.com", &long_name),
            Synced(|u| {
                assert_eq!(u.first_name, "Ł".repeat(64));
                assert_eq!(u.last_name, "ß".repeat(64));
            }),
        ),
        (
            HostUser::new(10, "all@example.com", "All"),
            Synced(|u| assert!(u.username.starts_with("all-"), "{}", u.username)),
        ),
        (
            HostUser::new(11, "system@example.com", "System"),
            Synced(|u| assert!(u.username.starts_with("system-"), "{}", u.username)),
        ),
        (
            HostUser::new(12, "channel@example.com", "Channel"),
            Synced(|u| assert!(u.username.starts_with("channel-"), "{}", u.username)),
        ),
        (
            HostUser::new(13, "matterbot@example.com", "Matter Bot"),
            Synced(|u| assert!(u.username.starts_with("matterbot-"), "{}", u.username)),
        ),
        (
            HostUser::new(14, "Ana+Newsletter@example.com", "Ana Tagged"),
            Synced(|u| {
                assert_eq!(u.email, "ana+newsletter@example.com");
                assert_eq!(u.username, "ana");
            }),
        ),
        (
            HostUser::new(15, format!("{long_local}@example.com"), "Long Local"),
            Synced(|u| assert_eq!(u.username, "x".repeat(22))),
        ),
        (
            HostUser::new(16, format!("{too_long_local}@example.com"), "Too Long"),
            Invalid("longer than 128"),
        ),
        (
            HostUser::new(17, "  Mixed.Case@Example.COM ", "Mixed Case"),
            Synced(|u| {
                assert_eq!(u.email, "mixed.case@example.com");
                assert_eq!(u.username, "mixed.case");
            }),
        ),
        (
            HostUser::new(18, "12345@example.com", "🙂🙂"),
            // Nothing usable in the email or the name: the fallback.
            Synced(|u| assert_eq!(u.username, "user")),
        ),
        (
            HostUser::new(19, "john.smith@one.example.com", "John Smith"),
            Synced(|u| assert!(u.username.starts_with("john.smith"))),
        ),
        (
            HostUser::new(20, "john.smith@two.example.com", "John Smith"),
            Synced(|u| assert!(u.username.starts_with("john.smith"))),
        ),
        (
            HostUser::new(21, "a@example.com", "A"),
            Synced(|u| assert!(u.username.starts_with("a-"), "{}", u.username)),
        ),
        (
            HostUser::new(22, "jürgen@example.com", "Jürgen Groß"),
            Synced(|u| assert_eq!(u.username, "jurgen")),
        ),
        (
            HostUser::new(23, "explicit@example.com", "Explicit All").username("all"),
            Invalid("reserved"),
        ),
        (
            HostUser::new(24, "explicit2@example.com", "Explicit Bad").username("Not Valid!"),
            Invalid("not valid for Mattermost"),
        ),
        (
            HostUser::new(25, "ctl\u{7}@example.com", "Control"),
            Invalid("not a valid address"),
        ),
    ];
    for i in 26..=35 {
        cases.push((
            HostUser::new(
                i,
                format!("good{i}@example.com"),
                &format!("Good Number{i}"),
            ),
            Synced(|u| assert!(u.username.starts_with("good"))),
        ));
    }
    // Two host users with one email, first and last in the run (so the
    // first is done when the second starts; the concurrent case is
    // `duplicate_email_race_where_the_creator_links_late`): the first gets
    // the account, the second a clear per-user error.
    let dups = [
        HostUser::new(36, "dup@example.com", "Dup First"),
        HostUser::new(37, "  DUP@Example.com", "Dup Second").email_verified(true),
    ];

    let server = StandIn::builder()
        .latency(Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    let all_ids: Vec<HostUserId> = (1..=37).map(HostUserId::Int).collect();
    let store = Arc::new(MemoryStore::with_users(all_ids.clone()));
    let sync = sync_over(&server, store.clone(), 8);
    let mut batch = vec![dups[0].clone()];
    batch.extend(cases.iter().map(|(u, _)| u.clone()));
    batch.push(dups[1].clone());
    let mut results: BTreeMap<HostUserId, Result<UserOutcome, String>> = BTreeMap::new();
    let r = sync
        .sync_all(stream::iter(batch.clone()), |r| {
            let (id, v) = match r {
                Ok(o) => (o.user.clone(), Ok(o.clone())),
                Err(f) => {
                    let reason = match &f.error {
                        Error::InvalidHostUser { reason, .. } => reason.clone(),
                        other => format!("NOT InvalidHostUser: {other}"),
                    };
                    (f.user.clone(), Err(reason))
                }
            };
            results.insert(id, v);
        })
        .await
        .unwrap();
    assert_eq!(results.len(), 37);

    let check = |results: &BTreeMap<HostUserId, Result<UserOutcome, String>>, first_run: bool| {
        for (u, expect) in &cases {
            let got = &results[&u.id];
            match (expect, got) {
                (Synced(check_account), Ok(o)) => {
                    let want = if first_run {
                        (AccountOutcome::Created, TokenOutcome::Minted)
                    } else {
                        (AccountOutcome::Unchanged, TokenOutcome::Kept)
                    };
                    assert_eq!((o.account, o.token), want, "user {}", u.id);
                    let account = server.user(o.mattermost_user_id.as_ref().unwrap()).unwrap();
                    check_account(&account);
                    assert!(validate_username(&account.username).is_ok());
                }
                (Invalid(why), Err(reason)) => {
                    assert!(
                        reason.contains(why),
                        "user {}: {reason:?} lacks {why:?}",
                        u.id
                    )
                }
                _ => panic!("user {}: expected {expect:?}, got {got:?}", u.id),
            }
        }
        // The duplicate email: the first has the account, the second a
        // clear error, refused before it changed anything of the account.
        let (winner, loser) = (&dups[0].id, &dups[1].id);
        let want = if first_run {
            (AccountOutcome::Created, TokenOutcome::Minted)
        } else {
            (AccountOutcome::Unchanged, TokenOutcome::Kept)
        };
        match (&results[winner], &results[loser]) {
            (Ok(o), Err(reason)) => {
                assert_eq!((o.account, o.token), want, "user {winner}");
                assert!(
                    reason.contains(&format!("already linked to host user {winner}")),
                    "user {loser}: {reason}"
                );
            }
            (a, b) => panic!("duplicate email: expected {want:?} and an error: {a:?} {b:?}"),
        }
        (winner.clone(), loser.clone())
    };
    let (winner, loser) = check(&results, true);
    let synced: Vec<HostUserId> = cases
        .iter()
        .filter(|(_, e)| matches!(e, Synced(_)))
        .map(|(u, _)| u.id.clone())
        .chain([winner.clone()])
        .collect();
    assert_eq!(r.summary.failed as usize, 37 - synced.len());
    assert_promise(&server, store.as_ref(), &synced).await;

    // A second run: the same answers, nothing minted, nothing broken.
    results.clear();
    let r2 = sync
        .sync_all(stream::iter(batch), |r| {
            let (id, v) = match r {
                Ok(o) => (o.user.clone(), Ok(o.clone())),
                Err(f) => (
                    f.user.clone(),
                    Err(match &f.error {
                        Error::InvalidHostUser { reason, .. } => reason.clone(),
                        other => format!("NOT InvalidHostUser: {other}"),
                    }),
                ),
            };
            results.insert(id, v);
        })
        .await
        .unwrap();
    // The duplicate's loser is refused again, the winner keeps its token.
    let (winner2, loser2) = check(&results, false);
    assert_eq!((winner2, loser2), (winner, loser.clone()));
    assert_eq!(r2.summary.minted, 0);
    assert!(store.get(&loser).await.unwrap().unwrap().token.is_none());
    assert_promise(&server, store.as_ref(), &synced).await;
    assert_no_token_logged(&log, &token_values(&server));
}

// ---------------------------------------------------------------------------
// 1e. Bad server answers

/// What the raw server does with a request.
#[derive(Clone, Debug)]
enum Answer {
    /// Status and body, as given.
    Body(u16, &'static str, String),
    /// 201 with a 10 MB JSON-ish body, with a `Content-Length` or chunked.
    Huge { chunked: bool },
    /// Reads the request and never answers.
    Silence,
    /// Sends the headers of a 201 and part of a body, then nothing more.
    Stall,
}

const MM_USER_ID: &str = "abcdefghijklmnopqrstuvwxy1";

fn good_user_json() -> String {
    format!(
        r#"{{"id":"{MM_USER_ID}","username":"ana","email":"ana@example.com","first_name":"Ana","last_name":"López"}}"#
    )
}

/// A raw HTTP/1.1 server on 127.0.0.1: `route(method, path)` decides the
/// answer to each request. One request per connection.
async fn raw_server(route: fn(&str, &str) -> Answer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    if buf.len() > 1 << 20 {
                        return;
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut words = head.split_whitespace();
                let method = words.next().unwrap_or_default().to_owned();
                let path = words.next().unwrap_or_default().to_owned();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + length {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                match route(&method, &path) {
                    Answer::Body(status, content_type, body) => {
                        let resp = format!(
                            "HTTP/1.1 {status} Whatever\r\nContent-Type: {content_type}\r\n\
                             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        );
                        let _ = sock.write_all(resp.as_bytes()).await;
                    }
                    Answer::Huge { chunked } => {
                        const SIZE: usize = 10 * 1024 * 1024;
                        let framing = if chunked {
                            "Transfer-Encoding: chunked".to_owned()
                        } else {
                            format!("Content-Length: {SIZE}")
                        };
                        let head = format!(
                            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
                        );
                        if sock.write_all(head.as_bytes()).await.is_err() {
                            return;
                        }
                        let piece = vec![b' '; 64 * 1024];
                        for _ in 0..SIZE / piece.len() {
                            let r = if chunked {
                                let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
                                framed.extend_from_slice(&piece);
                                framed.extend_from_slice(b"\r\n");
                                sock.write_all(&framed).await
                            } else {
                                sock.write_all(&piece).await
                            };
                            if r.is_err() {
                                return; // the client stopped reading
                            }
                        }
                        if chunked {
                            let _ = sock.write_all(b"0\r\n\r\n").await;
                        }
                    }
                    Answer::Silence => {
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                    Answer::Stall => {
                        let _ = sock
                            .write_all(
                                b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n\
                                  Content-Length: 500\r\nConnection: close\r\n\r\n{\"id\":\"abc",
                            )
                            .await;
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
            });
        }
    });
    format!("http://{addr}")
}

fn not_found() -> Answer {
    Answer::Body(
        404,
        "application/json",
        r#"{"id":"api.context.404.app_error","message":"Sorry, we could not find the page.","status_code":404}"#.into(),
    )
}

/// `POST /users` answers `answer`; every other request gets a 404.
macro_rules! on_create {
    ($answer:expr) => {
        |method: &str, path: &str| match (method, path) {
            ("POST", "/api/v4/users") => $answer,
            _ => not_found(),
        }
    };
}

/// `POST /users` creates the user; minting answers `answer`.
macro_rules! on_mint {
    ($answer:expr) => {
        |method: &str, path: &str| match (method, path) {
            ("POST", "/api/v4/users") => Answer::Body(201, "application/json", good_user_json()),
            ("POST", p) if p.ends_with("/tokens") => $answer,
            _ => not_found(),
        }
    };
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_server_answers_give_typed_errors_promptly_and_store_nothing() {
    let log = capture_logs();
    fn is_bad_response(e: &Error) -> bool {
        matches!(e, Error::BadResponse { .. })
    }
    fn is_timeout(e: &Error) -> bool {
        matches!(e, Error::Timeout { .. })
    }
    type Route = fn(&str, &str) -> Answer;
    type Expected = fn(&Error) -> bool;
    // (what, route, expected error, whether the account was linked)
    let cases: Vec<(&str, Route, Expected, bool)> = vec![
        (
            "create: truncated JSON",
            on_create!(Answer::Body(
                201,
                "application/json",
                r#"{"id":"abcdefghijklmnopqrstuvwxy1","username":"#.into()
            )),
            is_bad_response,
            false,
        ),
        (
            "create: HTML with 201",
            on_create!(Answer::Body(
                201,
                "text/html",
                "<html><body>Welcome to the captive portal</body></html>".into()
            )),
            is_bad_response,
            false,
        ),
        (
            "create: wrong field types",
            on_create!(Answer::Body(
                201,
                "application/json",
                r#"{"id":12345,"username":["ana"],"email":{"x":1},"delete_at":"never"}"#.into()
            )),
            is_bad_response,
            false,
        ),
        (
            "create: a JSON array",
            on_create!(Answer::Body(201, "application/json", "[1,2,3]".into())),
            is_bad_response,
            false,
        ),
        (
            "create: an object without an id",
            on_create!(Answer::Body(201, "application/json", "{}".into())),
            is_bad_response,
            false,
        ),
        (
            "create: an id that is not a Mattermost id",
            on_create!(Answer::Body(
                201,
                "application/json",
                r#"{"id":"../../tokens","username":"ana","email":"ana@example.com"}"#.into()
            )),
            is_bad_response,
            false,
        ),
        (
            "create: an empty 201",
            on_create!(Answer::Body(201, "application/json", String::new())),
            is_bad_response,
            false,
        ),
        (
            "create: 10 MB with Content-Length",
            on_create!(Answer::Huge { chunked: false }),
            is_bad_response,
            false,
        ),
        (
            "create: 10 MB chunked",
            on_create!(Answer::Huge { chunked: true }),
            is_bad_response,
            false,
        ),
        (
            "create: never answers",
            on_create!(Answer::Silence),
            is_timeout,
            false,
        ),
        (
            "create: stalls mid-body",
            on_create!(Answer::Stall),
            is_timeout,
            false,
        ),
        (
            "mint: truncated JSON",
            on_mint!(Answer::Body(200, "application/json", r#"{"id":"#.into())),
            is_bad_response,
            true,
        ),
        (
            "mint: wrong field types",
            on_mint!(Answer::Body(
                200,
                "application/json",
                r#"{"id":1,"token":2,"user_id":3}"#.into()
            )),
            is_bad_response,
            true,
        ),
        (
            "mint: empty id and token",
            on_mint!(Answer::Body(
                200,
                "application/json",
                r#"{"id":"","token":"","user_id":""}"#.into()
            )),
            is_bad_response,
            true,
        ),
        (
            "mint: an empty token value",
            on_mint!(Answer::Body(
                200,
                "application/json",
                format!(r#"{{"id":"tttttttttttttttttttttttttt","token":"","user_id":"{MM_USER_ID}"}}"#)
            )),
            is_bad_response,
            true,
        ),
        (
            "mint: a token of another user",
            on_mint!(Answer::Body(
                200,
                "application/json",
                r#"{"id":"tttttttttttttttttttttttttt","token":"vvvvvvvvvvvvvvvvvvvvvvvvvv","user_id":"zzzzzzzzzzzzzzzzzzzzzzzzzz"}"#.into()
            )),
            is_bad_response,
            true,
        ),
        (
            "mint: 10 MB chunked",
            on_mint!(Answer::Huge { chunked: true }),
            is_bad_response,
            true,
        ),
        (
            "mint: never answers",
            on_mint!(Answer::Silence),
            is_timeout,
            true,
        ),
    ];
    let mut problems = Vec::new();
    for (what, route, expected, linked) in cases {
        let url = raw_server(route).await;
        let client = MattermostClient::builder(&url, "raw-server-admin-token")
            .timeout(Duration::from_millis(400))
            .max_response_bytes(1024 * 1024)
            .retry_policy(fast_retry())
            .build()
            .unwrap();
        let store = Arc::new(MemoryStore::with_users([HostUserId::Int(1)]));
        let sync = UserSync::new(client, store.clone(), SyncOptions::new("faults")).unwrap();
        let started = Instant::now();
        let result = tokio::time::timeout(
            Duration::from_secs(10),
            sync.sync_user(&HostUser::new(1, "ana@example.com", "Ana López")),
        )
        .await
        .unwrap_or_else(|_| panic!("{what}: sync_user hangs"));
        let elapsed = started.elapsed();
        println!("{what}: {elapsed:?}: {result:?}");
        match &result {
            Ok(o) => problems.push(format!("{what}: a bad answer was taken: {o:?}")),
            Err(e) if !expected(e) => problems.push(format!("{what}: unexpected error {e:?}")),
            Err(e) if e.to_string().contains("raw-server-admin-token") => {
                problems.push(format!("{what}: the admin token is in the error"))
            }
            Err(_) => {}
        }
        if elapsed > Duration::from_secs(5) {
            problems.push(format!("{what}: took {elapsed:?}"));
        }
        let rec = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
        if rec.token.is_some() || rec.token_id.is_some() {
            problems.push(format!("{what}: a token was stored"));
        }
        // Nothing from a bad answer is stored: the link only when the
        // account came from a good one.
        let want = linked.then(|| UserId::new(MM_USER_ID));
        if rec.mattermost_user_id != want {
            problems.push(format!(
                "{what}: stored link {:?}, expected {want:?}",
                rec.mattermost_user_id
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert_no_token_logged(&log, &["raw-server-admin-token".to_owned()]);
}

/// A store that holds one user's `set_mattermost_user_id` until released:
/// the sync that created the account is slow to link it.
#[derive(Debug)]
struct SlowLink {
    inner: MemoryStore,
    user: HostUserId,
    entered: tokio::sync::Notify,
    release: tokio::sync::Notify,
}

#[async_trait::async_trait]
impl TokenStore for SlowLink {
    async fn get(&self, u: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.get(u).await
    }
    async fn set_mattermost_user_id(&self, u: &HostUserId, m: &UserId) -> Result<(), StoreError> {
        if *u == self.user {
            self.entered.notify_one();
            self.release.notified().await;
        }
        self.inner.set_mattermost_user_id(u, m).await
    }
    async fn put_token_if_absent(&self, u: &HostUserId, t: &NewToken) -> Result<bool, StoreError> {
        self.inner.put_token_if_absent(u, t).await
    }
    async fn put_token(&self, u: &HostUserId, t: &NewToken) -> Result<(), StoreError> {
        self.inner.put_token(u, t).await
    }
    async fn replace_token(
        &self,
        u: &HostUserId,
        expected: &TokenId,
        t: &NewToken,
    ) -> Result<bool, StoreError> {
        self.inner.replace_token(u, expected, t).await
    }
    async fn clear_token(&self, u: &HostUserId) -> Result<bool, StoreError> {
        self.inner.clear_token(u).await
    }
    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        self.inner.list_missing(after, limit).await
    }
}

/// Two host users with one email, synced at the same moment, where the one
/// that created the account is slower to link it than the other is to find
/// the account by email, check it for other users' tokens (none yet), mint
/// and store. Both end up holding a live token of the same Mattermost
/// account: each app user can act as the other, and no later sync notices
/// (both have a stored token, which a sync keeps without looking further).
///
/// The creator of an account never lists its tokens (it has none when
/// created), and the user that found the account by email cannot tell a
/// concurrent sync of another host user from one of its own; the link itself
/// settles it: a Mattermost id is linked to one host user at most (a unique
/// index in the database stores), so the second link is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_email_race_where_the_creator_links_late() {
    let server = StandIn::start().await.unwrap();
    let (a, b) = (HostUserId::Int(1), HostUserId::Int(2));
    let store = Arc::new(SlowLink {
        inner: MemoryStore::with_users([a.clone(), b.clone()]),
        user: a.clone(),
        entered: tokio::sync::Notify::new(),
        release: tokio::sync::Notify::new(),
    });
    let sync = sync_over(&server, store.clone(), 8);
    let first = {
        let sync = sync.clone();
        tokio::spawn(async move {
            sync.sync_user(&HostUser::new(1, "dup@example.com", "Dup First"))
                .await
        })
    };
    // User 1 created the account and is about to link it.
    store.entered.notified().await;
    let second = sync
        .sync_user(&HostUser::new(2, "DUP@example.com", "Dup Second"))
        .await;
    store.release.notify_one();
    let first = first.await.unwrap();
    println!("first: {first:?}\nsecond: {second:?}");
    assert!(
        first.is_ok() != second.is_ok(),
        "exactly one of the two may hold the account"
    );
    let winner = if first.is_ok() { a } else { b };
    assert_promise(&server, store.as_ref(), &[winner]).await;
}

/// A library token of a user without a stored token (the row restored
/// from a backup, say) that cannot be revoked: every revocation answers
/// 503. Under its claim the sync revokes such a token before it mints, so
/// it mints nothing while the orphan stays live, and the clean re-run
/// revokes the orphan and mints once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_that_cannot_be_revoked_stops_the_mint_until_the_next_sync() {
    let log = capture_logs();
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(1)));
    let sync = sync_over(&server, store.clone(), 8);
    sync.sync_user(&host_user(1)).await.unwrap();
    // The token is lost from the store (a restored backup, say) while it
    // is still live: a young library token of the user, stored nowhere.
    store.clear_token(&HostUserId::Int(1)).await.unwrap();
    server.add_fault(FaultRule::always(REVOKE, Fault::Status(503)));
    let e = sync.sync_user(&host_user(1)).await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e}");
    assert!(
        store.get(&1.into()).await.unwrap().unwrap().token.is_none(),
        "the new token stayed stored although the orphan is live"
    );
    let mut seen = token_values(&server);
    assert_eq!(
        live_library_token_ids(&server).len(),
        1,
        "nothing minted while the orphan is live"
    );
    server.clear_faults();
    let r = sync.sync_all(stream::iter(users(1)), |_| {}).await.unwrap();
    assert_eq!(
        (
            r.summary.failed,
            r.summary.minted,
            r.summary.orphans_revoked
        ),
        (0, 1, 1)
    );
    assert_promise(&server, store.as_ref(), &ids(1)).await;
    seen.extend(token_values(&server));
    assert_no_token_logged(&log, &seen);
}
