//! The `sync_users` binary killed with SIGKILL mid-run, and two of them run
//! at once, on a PostgreSQL database of their own against an in-process
//! stand-in Mattermost.
//!
//! The promise under test: whatever happens during a sync, a clean re-run
//! leaves every app user with exactly one live token minted by the library,
//! equal to the stored one, and no other live library token anywhere; no
//! app row is lost or changed beyond the Mattermost columns; no token
//! reaches a log.
//!
//! Needs `MATTERMOST_TOKENS_TEST_POSTGRES_URL` (skipped without it, a
//! failure in CI). Each test creates and drops a database of its own.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use mattermost_tokens::{DESCRIPTION_PREFIX, HostUserId, TokenStore};
use mattermost_tokens_sqlx::PgTokenStore;
use mattermost_tokens_sqlx::sqlx;
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::db::{POSTGRES_ENV, unique_suffix, url_or_skip};
use mattermost_tokens_tests::pg_temp::TempDatabase;
use mattermost_tokens_tests::promise::assert_promise;

const MINT: &str = "POST /api/v4/users/{user_id}/tokens";
/// The binary's default `--app-name`.
const APP_NAME: &str = "demo-app";
/// No run of the binary here may take longer than this.
const RUN_LIMIT: Duration = Duration::from_secs(120);
/// Runs that are killed hold their claims for a second only, so that the
/// clean re-run after [`CLAIMS_RUN_OUT`] finds every user free.
const SHORT_CLAIMS: &[&str] = &["--all", "--claim-ttl", "1"];
const CLAIMS_RUN_OUT: Duration = Duration::from_millis(1_100);

/// A small LCG (Knuth's MMIX constants): the kill moments are reproducible
/// from the seed printed at the start (`MMT_CRASH_SEED` overrides it).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// A working directory and log files for the binary's runs.
struct Workdir(PathBuf);

impl Workdir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mmt-crashes-{name}-{}", unique_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        Workdir(dir)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One run of `sync_users`, its output going to files (a pipe nobody reads
/// while the child runs would fill up and stall it).
struct Run {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
}

impl Run {
    fn start(dir: &Path, tag: &str, server: &StandIn, database_url: &str) -> Run {
        Self::start_with(dir, tag, server, database_url, &["--all"])
    }

    fn start_with(
        dir: &Path,
        tag: &str,
        server: &StandIn,
        database_url: &str,
        args: &[&str],
    ) -> Run {
        let stdout = dir.join(format!("{tag}.stdout"));
        let stderr = dir.join(format!("{tag}.stderr"));
        let child = Command::new(env!("CARGO_BIN_EXE_sync_users"))
            .args(args)
            .args(["--store", "sqlx"])
            .current_dir(dir)
            .env("DATABASE_URL", database_url)
            .env("MATTERMOST_URL", server.url())
            .env("MATTERMOST_TOKEN", server.admin_token().expose_secret())
            .env("RUST_LOG", "warn,mattermost_tokens=info")
            .env_remove("MATTERMOST_TOKENS_KEY")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .expect("start sync_users");
        Run {
            child,
            stdout,
            stderr,
        }
    }

    /// Waits for the end, killing the child (and failing) past `RUN_LIMIT`.
    async fn finish(&mut self) -> ExitStatus {
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "sync_users did not finish within {RUN_LIMIT:?}:\n{}",
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// SIGKILLs the child once the stand-in has counted `requests` more
    /// requests than `base`. Returns whether it was killed (`false`: it
    /// ended first).
    async fn kill_after(&mut self, server: &StandIn, base: u64, requests: u64) -> bool {
        let deadline = Instant::now() + RUN_LIMIT;
        loop {
            if self.child.try_wait().unwrap().is_some() {
                return false;
            }
            if server.total_requests() >= base + requests {
                self.child.kill().expect("SIGKILL");
                let status = self.child.wait().unwrap();
                assert!(!status.success(), "killed, yet {status}");
                return true;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("sync_users hangs:\n{}", self.output());
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The standard error output, without the log's colour codes.
    fn stderr(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }

    fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout(), self.stderr())
    }

    /// The number on the summary line `label`.
    fn count(&self, label: &str) -> u64 {
        let stdout = self.stdout();
        stdout
            .lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .filter(|rest| rest.starts_with(' '))
                    .and_then(|rest| rest.trim().parse().ok())
            })
            .unwrap_or_else(|| panic!("no {label:?} in the summary:\n{}", self.output()))
    }

    /// `(host user, token id)` of every "minted token" log line.
    fn mints(&self) -> Vec<(i64, String)> {
        self.stderr()
            .lines()
            .filter(|l| l.contains("minted token"))
            .map(|l| {
                let field = |name: &str| {
                    l.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .unwrap_or_else(|| panic!("no {name} in {l:?}"))
                        .to_owned()
                };
                (field("host_user=").parse().unwrap(), field("token_id="))
            })
            .collect()
    }

    fn assert_no_token(&self, tokens: &BTreeSet<String>) {
        let (out, err) = (self.stdout(), self.stderr());
        for t in tokens {
            assert!(
                !out.contains(t.as_str()) && !err.contains(t.as_str()),
                "a token value reached the output of sync_users"
            );
        }
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn live_library_tokens(server: &StandIn) -> BTreeMap<String, String> {
    server
        .live_tokens()
        .into_iter()
        .filter(|t| t.description.starts_with(DESCRIPTION_PREFIX))
        .map(|t| (t.id.into_string(), t.user_id.into_string()))
        .collect()
}

/// Every token value the stand-in holds now, the admin token included.
fn token_values(server: &StandIn) -> BTreeSet<String> {
    let mut v: BTreeSet<String> = server
        .tokens()
        .iter()
        .filter_map(|t| server.token_value(&t.id))
        .map(|t| t.expose_secret().to_owned())
        .collect();
    v.insert(server.admin_token().expose_secret().to_owned());
    v
}

fn ids(n: i64) -> Vec<HostUserId> {
    (1..=n).map(HostUserId::Int).collect()
}

async fn stand_in() -> StandIn {
    // A little latency, so that a run lasts long enough to be killed in
    // the middle.
    StandIn::builder()
        .latency(Duration::from_millis(3))
        .start()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_then_a_clean_rerun_keeps_the_promise() {
    let Some(url) = url_or_skip(
        POSTGRES_ENV,
        "crashes::sigkill_at_random_moments_then_a_clean_rerun_keeps_the_promise",
    ) else {
        return;
    };
    const N: i64 = 300;
    const KILLS: usize = 5;
    let seed = std::env::var("MMT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x00c0_ffee_u64);
    println!("seed {seed} (set MMT_CRASH_SEED to repeat a run)");
    let mut rng = Lcg(seed);
    let db = TempDatabase::create(&url, "mmt_crash").await;
    db.create_laravel_users(N).await;
    let original_rows = db.dump_app_rows().await;
    assert_eq!(original_rows.len(), N as usize);
    let server = stand_in().await;
    let dir = Workdir::new("sigkill");
    let mut store: Option<PgTokenStore> = None;
    let mut seen_tokens = BTreeSet::new();
    let mut killed_runs = 0usize;
    // Requests a run makes: first run 3 checks + create and mint per user;
    // later runs 3 checks, 2 bulk reads, and about 4 per user to re-mint.
    let mut expected_requests = 3 + 2 * N as u64;

    for iteration in 0..KILLS {
        let base = server.total_requests();
        let at = rng.range(1, expected_requests);
        let mut run = Run::start_with(
            &dir.0,
            &format!("kill{iteration}"),
            &server,
            db.url(),
            SHORT_CLAIMS,
        );
        let killed = run.kill_after(&server, base, at).await;
        killed_runs += usize::from(killed);
        let killed_mints = run.mints();
        println!(
            "iteration {iteration}: kill after {at} of ~{expected_requests} requests: {} ({} requests made, {} tokens minted)",
            if killed { "killed" } else { "ended first" },
            server.total_requests() - base,
            killed_mints.len(),
        );
        seen_tokens.extend(token_values(&server));
        run.assert_no_token(&seen_tokens);

        // The clean re-run, once the killed run's claims have run out.
        tokio::time::sleep(CLAIMS_RUN_OUT).await;
        let mut rerun = Run::start_with(
            &dir.0,
            &format!("rerun{iteration}"),
            &server,
            db.url(),
            SHORT_CLAIMS,
        );
        let status = rerun.finish().await;
        assert!(
            status.success(),
            "re-run {iteration}: {status}\n{}",
            rerun.output()
        );
        assert_eq!(rerun.count("failed"), 0);
        seen_tokens.extend(token_values(&server));
        run.assert_no_token(&seen_tokens);
        rerun.assert_no_token(&seen_tokens);

        assert_eq!(
            db.dump_app_rows().await,
            original_rows,
            "iteration {iteration}: the host's own columns changed"
        );
        if store.is_none() {
            store = Some(PgTokenStore::new(db.pool(2).await));
        }
        let st = store.as_ref().unwrap();
        let records = st.get_many(&ids(N)).await.unwrap();
        assert_eq!(records.len(), N as usize, "a users row went missing");

        // No live library token the app does not hold: a kill between a
        // mint and its store write left an intent, which the re-run settled
        // (whatever the orphan's age), and the tokens this test cleared from
        // the store were found by the re-run's check before its mints.
        let stored: BTreeSet<String> = records
            .values()
            .filter_map(|r| r.token_id.as_ref().map(|t| t.as_str().to_owned()))
            .collect();
        for token_id in live_library_tokens(&server).keys() {
            assert!(
                stored.contains(token_id),
                "iteration {iteration}: live library token {token_id} is stored for nobody"
            );
        }
        assert_promise(&server, st, &ids(N)).await;
        assert_eq!(
            server.users().len(),
            N as usize + 1,
            "duplicate Mattermost accounts"
        );

        // Lose the tokens of a random subset, so that the next kill hits a
        // run that mints again (the old tokens stay live in Mattermost: young
        // orphans for the next runs to find).
        let lose = rng.range(20, 61) as usize;
        let mut chosen = BTreeSet::new();
        while chosen.len() < lose {
            chosen.insert(rng.range(1, N as u64 + 1) as i64);
        }
        let list: Vec<i64> = chosen.into_iter().collect();
        let pool = db.pool(1).await;
        sqlx::query(
            "UPDATE users SET mattermost_token = NULL, mattermost_token_id = NULL WHERE id = ANY($1)",
        )
        .bind(&list)
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        expected_requests = 5 + 4 * lose as u64;
    }
    println!("{killed_runs} of {KILLS} runs killed mid-way");
    assert!(killed_runs >= 3, "too few runs were killed mid-way");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_started_together_both_succeed_and_keep_the_promise() {
    let Some(url) = url_or_skip(
        POSTGRES_ENV,
        "crashes::two_syncs_started_together_both_succeed_and_keep_the_promise",
    ) else {
        return;
    };
    const N: i64 = 300;
    let db = TempDatabase::create(&url, "mmt_crash2").await;
    db.create_laravel_users(N).await;
    let original_rows = db.dump_app_rows().await;
    let server = stand_in().await;
    let dir = Workdir::new("twice");
    let mut a = Run::start(&dir.0, "a", &server, db.url());
    let mut b = Run::start(&dir.0, "b", &server, db.url());
    // While they run, keep every token value seen (the losers' tokens are
    // revoked before the end), for the check of the logs.
    let mut tokens = BTreeSet::new();
    let deadline = Instant::now() + RUN_LIMIT;
    while a.child.try_wait().unwrap().is_none() || b.child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the two runs take too long");
        tokens.extend(token_values(&server));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (sa, sb) = (a.finish().await, b.finish().await);
    // Each leaves the users the other holds, so both must exit 0.
    assert!(sa.success(), "first: {sa}\n{}", a.output());
    assert!(sb.success(), "second: {sb}\n{}", b.output());
    assert_eq!(a.count("failed") + b.count("failed"), 0);
    assert_eq!(
        a.count("minted") + b.count("minted"),
        N as u64,
        "each user's stored token is counted as minted once"
    );
    assert_eq!(a.count("created") + b.count("created"), N as u64);

    // Mints per user, from both processes' logs; every mint request the
    // stand-in saw is in them.
    let mut per_user: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (u, t) in a.mints().into_iter().chain(b.mints()) {
        per_user.entry(u).or_default().push(t);
    }
    let logged: usize = per_user.values().map(Vec::len).sum();
    assert_eq!(logged as u64, server.request_count(MINT));
    assert_eq!(per_user.len(), N as usize, "every user minted");
    let twice = per_user.values().filter(|v| v.len() == 2).count();
    println!(
        "two processes: {} mint requests, {twice} users minted twice, {} revocations",
        server.request_count(MINT),
        server.request_count("POST /api/v4/users/tokens/revoke")
    );
    let store = PgTokenStore::new(db.pool(2).await);
    let records = store.get_many(&ids(N)).await.unwrap();
    // Claims: the two split the users, and nobody is minted twice.
    assert_eq!(server.request_count(MINT), N as u64, "one mint per user");
    assert_eq!(twice, 0);
    assert_eq!(server.request_count("POST /api/v4/users/tokens/revoke"), 0);
    for (u, minted) in &per_user {
        assert!(minted.len() <= 2, "user {u} minted {} times", minted.len());
        let stored = records[&HostUserId::Int(*u)]
            .token_id
            .as_ref()
            .unwrap()
            .as_str()
            .to_owned();
        assert!(
            minted.contains(&stored),
            "user {u}: stored token not minted here"
        );
        for t in minted.iter().filter(|t| **t != stored) {
            assert!(
                server
                    .token(&mattermost_tokens::TokenId::new(t.clone()))
                    .is_none(),
                "user {u}: the losing token {t} is still there"
            );
        }
    }
    assert_promise(&server, &store, &ids(N)).await;
    assert_eq!(server.users().len(), N as usize + 1, "duplicate accounts");
    assert_eq!(db.dump_app_rows().await, original_rows);
    tokens.extend(token_values(&server));
    a.assert_no_token(&tokens);
    b.assert_no_token(&tokens);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_killed_at_random_moments_then_rerun_keeps_the_promise() {
    let Some(url) = url_or_skip(
        POSTGRES_ENV,
        "crashes::a_reconcile_killed_at_random_moments_then_rerun_keeps_the_promise",
    ) else {
        return;
    };
    const N: i64 = 200;
    let mut rng = Lcg(0x0dec_0de5);
    let db = TempDatabase::create(&url, "mmt_crash_rec").await;
    db.create_laravel_users(N).await;
    let server = stand_in().await;
    let dir = Workdir::new("reconcile");
    let mut first = Run::start(&dir.0, "first", &server, db.url());
    assert!(first.finish().await.success(), "{}", first.output());
    let store = PgTokenStore::new(db.pool(2).await);
    let long_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3_600;
    let mut killed_runs = 0;
    for iteration in 0..4 {
        // An admin revokes and disables tokens; a crash left orphans.
        let records = store.get_many(&ids(N)).await.unwrap();
        let mut damaged = 0u64;
        for i in 1..=N {
            let rec = &records[&HostUserId::Int(i)];
            let (token, account) = (
                rec.token_id.clone().unwrap(),
                rec.mattermost_user_id.clone().unwrap(),
            );
            match rng.range(0, 10) {
                0 => assert!(server.revoke_token_directly(&token)),
                1 => assert!(server.set_token_active(&token, false)),
                2 => {
                    server
                        .mint_token_directly(
                            &account,
                            &format!("{DESCRIPTION_PREFIX}{APP_NAME} user {i} at {long_ago}"),
                        )
                        .unwrap();
                }
                _ => continue,
            }
            damaged += 1;
        }
        let base = server.total_requests();
        let at = rng.range(1, 10 + 2 * damaged);
        let mut run = Run::start_with(
            &dir.0,
            &format!("kill{iteration}"),
            &server,
            db.url(),
            &["--reconcile", "--claim-ttl", "1"],
        );
        let killed = run.kill_after(&server, base, at).await;
        killed_runs += usize::from(killed);
        println!(
            "iteration {iteration}: {damaged} users damaged; kill after {at} requests: {}",
            if killed { "killed" } else { "ended first" }
        );
        tokio::time::sleep(CLAIMS_RUN_OUT).await;
        let mut rerun = Run::start_with(
            &dir.0,
            &format!("rerun{iteration}"),
            &server,
            db.url(),
            &["--reconcile", "--claim-ttl", "1"],
        );
        assert!(rerun.finish().await.success(), "{}", rerun.output());
        assert_eq!(rerun.count("failed"), 0);
        assert_promise(&server, &store, &ids(N)).await;
        assert_eq!(server.users().len(), N as usize + 1, "duplicate accounts");
    }
    assert!(killed_runs >= 2, "too few runs were killed mid-way");
}
