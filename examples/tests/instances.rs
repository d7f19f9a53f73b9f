//! Several `sync_users` processes at once over one users table and one
//! Mattermost, on SQLite, PostgreSQL and MariaDB: they split the work
//! through their claims and mint exactly once per user; a sign-up handled
//! by four web servers at once mints once; killed workers leave nothing a
//! clean run cannot settle, without `revoke_orphans`.
//!
//! PostgreSQL and MariaDB come from `MATTERMOST_TOKENS_TEST_POSTGRES_URL`
//! and `MATTERMOST_TOKENS_TEST_MYSQL_URL` (skipped without them, a failure
//! in CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mattermost_tokens::{
    HostUser, HostUserId, MattermostClient, SyncOptions, TokenStore, UserSync,
};
use mattermost_tokens_examples::demo_db::HostDb;
use mattermost_tokens_examples::setup::{self, Env, StoreKind};
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::db::{MYSQL_ENV, POSTGRES_ENV, unique_suffix, url_or_skip};
use mattermost_tokens_tests::promise::assert_promise;
use mattermost_tokens_tests::scratch::{Kind, Namespace};

mod common;

const MINT: &str = "POST /api/v4/users/{user_id}/tokens";
const REVOKE: &str = "POST /api/v4/users/tokens/revoke";
const RUN_LIMIT: Duration = Duration::from_secs(300);
/// The binary's default `--app-name`.
const APP_NAME: &str = "demo-app";

/// A scratch directory for the processes' output.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Self {
        let d = std::env::temp_dir().join(format!("mmt-instances-{name}-{}", unique_suffix()));
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A database of each kind for one test, dropped at the end.
enum Db {
    Sqlite(Dir),
    Server(Namespace),
}

impl Db {
    async fn open(kind: Kind, test: &str) -> Option<Db> {
        Some(match kind {
            Kind::Sqlite => Db::Sqlite(Dir::new(test)),
            Kind::Postgres | Kind::MariaDb => {
                let env = if kind == Kind::Postgres {
                    POSTGRES_ENV
                } else {
                    MYSQL_ENV
                };
                let server = url_or_skip(env, test)?;
                Db::Server(Namespace::create(kind, &server, "mmt_inst_").await)
            }
        })
    }

    fn url(&self) -> String {
        match self {
            Db::Sqlite(d) => format!("sqlite://{}?mode=rwc", d.0.join("app.sqlite").display()),
            Db::Server(ns) => ns.url(),
        }
    }

    async fn finish(self) {
        if let Db::Server(ns) = self {
            ns.finish().await;
        }
    }
}

/// The token store the processes use, for the checks.
async fn store_of(url: &str) -> Arc<dyn TokenStore> {
    let mut env = Env::from_env();
    env.database_url = url.to_owned();
    env.encryption_key = None;
    let host = HostDb::connect(url).await.unwrap();
    setup::stores(StoreKind::Sqlx, &env, &host, setup::Schema::Migrate)
        .await
        .map_err(|e| e.0)
        .unwrap()
        .tokens
}

/// What each test starts from: a database of `kind` with `n` users in the
/// demo's users table (migrated), its token store, and a stand-in built by
/// `server`. `None` when the database is not configured (skipped).
struct Scene {
    db: Db,
    url: String,
    store: Arc<dyn TokenStore>,
    server: StandIn,
}

impl Scene {
    async fn open(
        kind: Kind,
        test: &str,
        n: i64,
        server: mattermost_tokens_stand_in::StandInBuilder,
    ) -> Option<Scene> {
        let db = Db::open(kind, test).await?;
        let url = db.url();
        common::host_with_users(&url, n).await;
        // The schema first, as a deployment migrates before it scales out.
        let store = store_of(&url).await;
        let server = server.start().await.unwrap();
        Some(Scene {
            db,
            url,
            store,
            server,
        })
    }
}

/// One `sync_users` process, its output in files.
struct Proc {
    child: Child,
    out: PathBuf,
    err: PathBuf,
}

impl Proc {
    fn start(dir: &Path, tag: &str, url: &str, server: &StandIn, args: &[&str]) -> Proc {
        let (out, err) = (
            dir.join(format!("{tag}.out")),
            dir.join(format!("{tag}.err")),
        );
        let child = Command::new(env!("CARGO_BIN_EXE_sync_users"))
            .args(args)
            .current_dir(dir)
            .env("DATABASE_URL", url)
            .env("MATTERMOST_URL", server.url())
            .env("MATTERMOST_TOKEN", server.admin_token().expose_secret())
            .env("RUST_LOG", "warn")
            .env_remove("MATTERMOST_TOKENS_KEY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&err).unwrap())
            .spawn()
            .unwrap();
        Proc { child, out, err }
    }

    async fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "sync_users did not finish in {RUN_LIMIT:?}:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn output(&self) -> String {
        format!(
            "{}\n{}",
            std::fs::read_to_string(&self.out).unwrap_or_default(),
            std::fs::read_to_string(&self.err).unwrap_or_default()
        )
    }

    /// The number on summary line `label`.
    fn count(&self, label: &str) -> u64 {
        let out = std::fs::read_to_string(&self.out).unwrap_or_default();
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .filter(|r| r.starts_with(' '))
                    .and_then(|r| r.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no {label:?} in:\n{}", self.output()))
    }
}

/// Four `sync_users --all` started together; each must succeed. The
/// processes (for their summaries) and the wall time.
async fn four_syncs(dir: &Dir, url: &str, server: &StandIn) -> (Vec<Proc>, Duration) {
    let started = Instant::now();
    let mut procs: Vec<Proc> = (0..4)
        .map(|i| Proc::start(&dir.0, &format!("w{i}"), url, server, &["--all"]))
        .collect();
    for p in &mut procs {
        let status = p.wait().await;
        assert!(status.success(), "{status}\n{}", p.output());
    }
    (procs, started.elapsed())
}

fn ids(n: i64) -> Vec<HostUserId> {
    (1..=n).map(HostUserId::Int).collect()
}

/// Four `sync_users --all` started together over `n` fresh users: exactly
/// `n` mints and no revoke; every user holds one live token, the stored one.
async fn four_processes_mint_once(kind: Kind, test: &str) {
    const N: i64 = 2_000;
    let builder = StandIn::builder().latency(Duration::from_millis(1));
    let Some(Scene {
        db,
        url,
        store,
        server,
    }) = Scene::open(kind, test, N, builder).await
    else {
        return;
    };
    let dir = Dir::new(test);
    let (procs, elapsed) = four_syncs(&dir, &url, &server).await;
    let minted: u64 = procs.iter().map(|p| p.count("minted")).sum();
    let held: u64 = procs.iter().map(|p| p.count("held elsewhere")).sum();
    let failed: u64 = procs.iter().map(|p| p.count("failed")).sum();
    println!(
        "{test}: 4 processes, {N} users: {} mints, {} revokes, {held} users left to another process, {elapsed:.1?}",
        server.request_count(MINT),
        server.request_count(REVOKE),
    );
    assert_eq!(failed, 0);
    assert_eq!(server.request_count(MINT), N as u64, "one mint per user");
    assert_eq!(server.request_count(REVOKE), 0, "nothing minted twice");
    assert_eq!(minted, N as u64);
    assert!(
        procs.iter().filter(|p| p.count("minted") > 0).count() >= 2,
        "the work was shared"
    );
    assert_promise(&server, store.as_ref(), &ids(N)).await;
    assert_eq!(server.users().len(), N as usize + 1, "duplicate accounts");
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_mint_once_sqlite() {
    four_processes_mint_once(Kind::Sqlite, "instances::four_processes_mint_once_sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_mint_once_postgres() {
    four_processes_mint_once(
        Kind::Postgres,
        "instances::four_processes_mint_once_postgres",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_processes_mint_once_mariadb() {
    four_processes_mint_once(Kind::MariaDb, "instances::four_processes_mint_once_mariadb").await;
}

/// The sign-up path: four processes (this test binary started again as a
/// worker) each call `sync_user` at once for the same 50 users, as four web
/// servers handling each sign-up would: 200 calls, 50 mints.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signups_on_four_servers_mint_once_per_user() {
    const N: i64 = 50;
    let test = "instances::signups_on_four_servers_mint_once_per_user";
    let builder = StandIn::builder().latency(Duration::from_millis(2));
    let Some(Scene {
        db,
        url,
        store,
        server,
    }) = Scene::open(Kind::Postgres, test, N, builder).await
    else {
        return;
    };
    let exe = std::env::current_exe().unwrap();
    let workers: Vec<Child> = (0..4)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--exact",
                    "signup_worker",
                    "--nocapture",
                    "--test-threads",
                    "1",
                ])
                .env("MMT_SIGNUP_DATABASE_URL", &url)
                .env("MMT_SIGNUP_MATTERMOST_URL", server.url())
                .env("MMT_SIGNUP_TOKEN", server.admin_token().expose_secret())
                .env("MMT_SIGNUP_USERS", N.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outcomes = String::new();
    for w in workers {
        let out = tokio::task::spawn_blocking(move || w.wait_with_output().unwrap())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            text.contains("signup worker done"),
            "the worker did not run:\n{text}"
        );
        outcomes.push_str(&text);
    }
    let minted = outcomes.matches("outcome minted").count();
    let kept = outcomes.matches("outcome kept").count();
    println!(
        "sign-ups: {minted} minted, {kept} kept, {} mint requests",
        server.request_count(MINT)
    );
    assert_eq!(server.request_count(MINT), N as u64, "one mint per user");
    assert_eq!(server.request_count(REVOKE), 0);
    assert_eq!((minted, kept), (N as usize, 3 * N as usize));
    assert_promise(&server, store.as_ref(), &ids(N)).await;
    db.finish().await;
}

/// The worker of [`signups_on_four_servers_mint_once_per_user`]: nothing
/// unless started by it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signup_worker() {
    let Ok(url) = std::env::var("MMT_SIGNUP_DATABASE_URL") else {
        return;
    };
    let n: i64 = std::env::var("MMT_SIGNUP_USERS").unwrap().parse().unwrap();
    let store = store_of(&url).await;
    let client = MattermostClient::new(
        &std::env::var("MMT_SIGNUP_MATTERMOST_URL").unwrap(),
        std::env::var("MMT_SIGNUP_TOKEN").unwrap(),
    )
    .unwrap();
    let sync = UserSync::new(
        client,
        store,
        SyncOptions::new(APP_NAME).claim_wait(Duration::from_secs(60)),
    )
    .unwrap();
    let calls = (1..=n).map(|i| {
        let sync = sync.clone();
        async move {
            let u = HostUser::new(i, format!("user{i}@example.com"), &format!("User {i}"))
                .email_verified(true);
            let o = sync.sync_user(&u).await.unwrap();
            format!("user {i} outcome {}", o.token.name())
        }
    });
    for line in futures::future::join_all(calls).await {
        println!("{line}");
    }
    println!("signup worker done");
}

/// Four workers killed twenty times at random moments, then one clean run
/// once their claims have run out: no live library token the app does not
/// hold, every user with exactly one, and no `revoke_orphans` anywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_kills_across_four_workers_then_one_clean_run() {
    const N: i64 = 600;
    let test = "instances::twenty_kills_across_four_workers_then_one_clean_run";
    let builder = StandIn::builder().latency(Duration::from_millis(3));
    let Some(Scene {
        db,
        url,
        store,
        server,
    }) = Scene::open(Kind::Postgres, test, N, builder).await
    else {
        return;
    };
    let dir = Dir::new("kills");
    let args = ["--all", "--claim-ttl", "1"];
    let mut rng: u64 = 0x5eed_cafe;
    let mut next = |hi: u64| {
        rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (rng >> 33) % hi
    };
    let mut workers: Vec<Proc> = (0..4)
        .map(|i| Proc::start(&dir.0, &format!("w{i}-0"), &url, &server, &args))
        .collect();
    let mut kills = 0;
    let mut round = 0;
    while kills < 20 {
        round += 1;
        tokio::time::sleep(Duration::from_millis(20 + next(200))).await;
        let i = next(4) as usize;
        if workers[i].child.try_wait().unwrap().is_none() {
            workers[i].child.kill().unwrap();
            let _ = workers[i].child.wait();
            kills += 1;
        }
        // A killed or finished worker is replaced, as a job scheduler would.
        workers[i] = Proc::start(&dir.0, &format!("w{i}-{round}"), &url, &server, &args);
    }
    for w in &mut workers {
        let _ = w.child.kill();
        let _ = w.child.wait();
    }
    let minted_so_far = server.request_count(MINT);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let mut clean = Proc::start(&dir.0, "clean", &url, &server, &["--all"]);
    let status = clean.wait().await;
    assert!(status.success(), "{status}\n{}", clean.output());
    assert_eq!(clean.count("failed"), 0);
    assert_eq!(clean.count("held elsewhere"), 0);
    println!(
        "20 kills over {round} starts; {minted_so_far} mints before the clean run, {} after; {} revokes",
        server.request_count(MINT),
        server.request_count(REVOKE)
    );
    assert_promise(&server, store.as_ref(), &ids(N)).await;
    assert_eq!(server.users().len(), N as usize + 1, "duplicate accounts");
    db.finish().await;
}

/// Four workers against a server rate-limited at 10/s with a burst of 100
/// (Mattermost's defaults when the limiter is on), over 300 fresh users:
/// they share the one budget, each pacing itself from the server's
/// `X-RateLimit-*` headers, so few requests are answered 429. (The time is
/// printed, compared with one worker's ideal; the benchmark reports it too.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_workers_share_one_rate_limit() {
    const N: i64 = 300;
    let (rate, burst) = (10u32, 100u32);
    let test = "instances::four_workers_share_one_rate_limit";
    let builder = StandIn::builder().rate_limit(rate, burst);
    let Scene {
        db,
        url,
        store,
        server,
    } = Scene::open(Kind::Sqlite, test, N, builder).await.unwrap();
    let dir = Dir::new("rate");
    let (_, elapsed) = four_syncs(&dir, &url, &server).await;
    let elapsed = elapsed.as_secs_f64();
    // One worker alone: 3 checks, a limits read, and create and mint for
    // each user.
    let one_worker = 4 + 2 * N as u64;
    let ideal = (one_worker - u64::from(burst)) as f64 / f64::from(rate);
    println!(
        "4 workers, {rate}/s burst {burst}, {N} users: {} requests, {} answered 429, {elapsed:.1} s, one worker's ideal {ideal:.1} s: {:.3} x",
        server.total_requests(),
        server.rate_limited_count(),
        elapsed / ideal
    );
    assert!(
        server.rate_limited_count() <= 20,
        "{} answered 429",
        server.rate_limited_count()
    );
    assert_eq!(server.request_count(REVOKE), 0, "nothing minted twice");
    assert_promise(&server, store.as_ref(), &ids(N)).await;
    db.finish().await;
}
