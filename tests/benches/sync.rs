//! Bulk-sync benchmark: request budgets, throughput against the stand-in's raw
//! capacity, pacing under Mattermost's rate limiter (a sync, and `rotate
//! --all`), several instances of
//! the app at once (this binary again, `--worker`), and peak memory.
//!
//! `cargo bench -p mattermost-tokens-tests --bench sync`
//!
//! The stand-in runs in a child process (this same binary, `--stand-in`), so
//! client and server do not share a runtime, and the memory figures are the
//! syncing process's alone. Figures are ratios measured in one run on this
//! machine; absolute numbers vary with load.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use mattermost_tokens::*;
use mattermost_tokens_stand_in::{NewUser, StandIn};
use serde_json::Value;

/// Users synced at once, and requests in flight when measuring capacity.
/// Above the library's default of 8: with eight, a stall of either process
/// on this shared machine idles the other more often, for capacity and sync
/// alike, and the ratio swings more from run to run.
const CONCURRENCY: usize = 16;
/// Fresh-sync rounds per N; the reported ratio is their median.
const ROUNDS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--stand-in") {
        return child_stand_in(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("--memory") {
        return child_memory(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("--worker") {
        return child_worker(&args[2..]);
    }
    if args.iter().any(|a| a == "--list") {
        // `cargo bench -- --list` and test-harness probes: nothing to list.
        return;
    }
    // The syncing side on one thread: on two cores shared with the server
    // process, a multi-thread runtime spends its time handing wake-ups
    // between threads (measured with perf), for capacity and sync alike.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // `cargo bench -p mattermost-tokens-tests --bench sync -- throughput`
    // runs one part; no name runs them all.
    let parts: Vec<String> = args[1..]
        .iter()
        .filter(|a| !a.starts_with("--"))
        .cloned()
        .collect();
    rt.block_on(run(&parts));
}

// ---- the stand-in child process ----

fn child_stand_in(args: &[String]) {
    // The server on one thread, as the syncing side: two busy threads on two
    // cores, instead of three threads handing wake-ups to each other.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(async {
        let mut b = StandIn::builder();
        if let [rate, burst, ..] = args {
            b = b.rate_limit(rate.parse().unwrap(), burst.parse().unwrap());
        }
        b.start().await.unwrap()
    });
    println!(
        "READY {} {}",
        server.url(),
        server.admin_token().expose_secret()
    );
    std::io::stdout().flush().unwrap();
    // Commands arrive on stdin, read on their own thread so the runtime's
    // one thread only serves; the process ends when stdin closes.
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let commands = std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(line) = line else { break };
            let mut words = line.split_whitespace();
            match words.next() {
                Some("counts") => {
                    let v = serde_json::json!({
                        "requests": server.requests(),
                        "total": server.total_requests(),
                        "rate_limited": server.rate_limited_count(),
                    });
                    println!("{v}");
                }
                Some("reset") => {
                    server.reset_counts();
                    println!("OK");
                }
                Some("rate") => {
                    let r: u32 = words.next().unwrap().parse().unwrap();
                    let b: u32 = words.next().unwrap().parse().unwrap();
                    server.set_rate_limit(Some(mattermost_tokens_stand_in::RateLimit::new(r, b)));
                    println!("OK");
                }
                Some("users") => {
                    let n: usize = words.next().unwrap().parse().unwrap();
                    let prefix = words.next().unwrap_or("existing");
                    for i in 0..n {
                        server
                            .create_user_directly(
                                NewUser::new(
                                    format!("{prefix}{i}"),
                                    format!("{prefix}{i}@example.com"),
                                )
                                .names("Old", "Name"),
                            )
                            .unwrap();
                    }
                    println!("OK");
                }
                _ => println!("ERR"),
            }
            std::io::stdout().flush().unwrap();
        }
        let _ = done_tx.send(());
        server
    });
    rt.block_on(async {
        let _ = done_rx.await;
    });
    drop(commands.join());
}

struct Server {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    url: String,
    admin: AccessToken,
}

impl Server {
    fn start(rate_limit: Option<(u32, u32)>) -> Server {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.arg("--stand-in");
        if let Some((r, b)) = rate_limit {
            cmd.args([r.to_string(), b.to_string()]);
        }
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let mut w = line.split_whitespace().skip(1);
        let url = w.next().unwrap().to_owned();
        let admin = AccessToken::new(w.next().unwrap());
        Server {
            child,
            stdin,
            stdout,
            url,
            admin,
        }
    }

    fn ask(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    fn counts(&mut self) -> Counts {
        let v: Value = serde_json::from_str(&self.ask("counts")).unwrap();
        Counts(v)
    }

    fn client(&self) -> MattermostClient {
        MattermostClient::new(&self.url, self.admin.clone()).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Counts(Value);

impl Counts {
    fn get(&self, key: &str) -> u64 {
        self.0["requests"][key].as_u64().unwrap_or(0)
    }
    fn total(&self) -> u64 {
        self.0["total"].as_u64().unwrap_or(0)
    }
    fn rate_limited(&self) -> u64 {
        self.0["rate_limited"].as_u64().unwrap_or(0)
    }
}

const CREATE: &str = "POST /api/v4/users";
const MINT: &str = "POST /api/v4/users/{user_id}/tokens";
const BULK: &str = "POST /api/v4/users/ids";
const LOOKUP: &str = "GET /api/v4/users/email/{email}";
const PATCH: &str = "PUT /api/v4/users/{user_id}/patch";
const LIST_TOKENS: &str = "GET /api/v4/users/{user_id}/tokens";
const LIST_ALL_TOKENS: &str = "GET /api/v4/users/tokens";
const LIMITS: &str = "GET /api/v4/limits/server";
const REVOKE: &str = "POST /api/v4/users/tokens/revoke";

fn host_users(n: usize, prefix: &str) -> impl futures::Stream<Item = HostUser> + Send {
    let prefix = prefix.to_owned();
    stream::iter((0..n).map(move |i| {
        HostUser::new(
            i as i64 + 1,
            format!("{prefix}{i}@example.com"),
            &format!("User {prefix}{i}"),
        )
        // Verified, so users already in Mattermost are linked by email.
        .email_verified(true)
    }))
}

fn sync_over(client: MattermostClient, store: Arc<dyn TokenStore>) -> UserSync {
    sync_named(client, store, "bench")
}

/// A sync for app `app`: each round of the throughput part is an app of its
/// own, so the later rounds' reconcile finds the earlier rounds' tokens on
/// the server (they count in its listing) but not as its orphans.
fn sync_named(client: MattermostClient, store: Arc<dyn TokenStore>, app: &str) -> UserSync {
    UserSync::new(
        client,
        store,
        SyncOptions::new(app).concurrency(CONCURRENCY),
    )
    .unwrap()
}

async fn capacity(client: &MattermostClient, requests: usize, server: &Server) -> (f64, String) {
    let acting = client.as_admin();
    let cpu = CpuMeter::start(server);
    let t = Instant::now();
    let ok = stream::iter(0..requests)
        .map(|_| acting.me())
        .buffer_unordered(CONCURRENCY)
        .filter(|r| std::future::ready(r.is_ok()))
        .count()
        .await;
    assert_eq!(ok, requests);
    let rate = requests as f64 / t.elapsed().as_secs_f64();
    (rate, cpu.per_request(requests as u64))
}

/// CPU time a process has used so far, summed over its threads, from
/// `/proc/PID/task/*/schedstat` (nanoseconds; 0 where that is unreadable).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// CPU microseconds per request used by this process and by the server.
struct CpuMeter {
    server: u32,
    start: (u64, u64),
}

impl CpuMeter {
    fn start(server: &Server) -> CpuMeter {
        let server = server.child.id();
        CpuMeter {
            server,
            start: (cpu_ns(std::process::id()), cpu_ns(server)),
        }
    }

    fn per_request(&self, requests: u64) -> String {
        let client = cpu_ns(std::process::id()).saturating_sub(self.start.0);
        let server = cpu_ns(self.server).saturating_sub(self.start.1);
        let us = |ns: u64| ns as f64 / 1000.0 / requests.max(1) as f64;
        format!("{:.0} us, {:.0} us", us(client), us(server))
    }
}

fn per_user(n: u64, users: usize) -> String {
    format!("{:.2}", n as f64 / users as f64)
}

async fn run(parts: &[String]) {
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    println!("mattermost-tokens bulk sync benchmark");
    println!(
        "  {} build; stand-in Mattermost in a child process, one thread; syncing side on one thread; in-memory token store; concurrency {CONCURRENCY} (SyncOptions::concurrency, and the capacity runs); {} cores",
        if cfg!(debug_assertions) {
            "debug (test profile)"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let started = Instant::now();
    for n in [1_000usize, 10_000] {
        if !wanted("throughput") {
            break;
        }
        let mut server = Server::start(None);
        let client = server.client();
        // Warm the connection pool and the server.
        capacity(&client, 200, &server).await;
        println!("\nN = {n}");
        // Rounds of fresh sync over new users, each between two capacity
        // measurements (its capacity is their mean), and the median ratio:
        // on a shared machine, one noisy moment must not decide it.
        let mut ratios = Vec::new();
        let mut last = None;
        let (mut before, mut before_cpu) = capacity(&client, 2 * n, &server).await;
        for round in 0..ROUNDS {
            server.ask("reset");
            let store = Arc::new(MemoryStore::with_users((1..=n as i64).map(HostUserId::Int)));
            let sync = sync_named(client.clone(), store, &format!("bench-{round}"));
            let prefix = format!("u{round}x");
            let cpu = CpuMeter::start(&server);
            let t = Instant::now();
            let r = sync.sync_all(host_users(n, &prefix), |_| {}).await.unwrap();
            let fresh = t.elapsed();
            let c = server.counts();
            let sync_cpu = cpu.per_request(c.total());
            assert_eq!(r.summary.failed, 0, "{:?}", r.failures.first());
            let (after, after_cpu) = capacity(&client, 2 * n, &server).await;
            let raw = (before + after) / 2.0;
            let fresh_rps = c.total() as f64 / fresh.as_secs_f64();
            ratios.push(fresh_rps / raw);
            println!(
                "  round {}: fresh sync {} requests = {} per user (create {}, mint {}, other {}) | {:.2} s | {:.0} users/s | {:.0} requests/s | raw capacity {raw:.0} requests/s (before {before:.0}, after {after:.0}) | ratio {:.2}",
                round + 1,
                c.total(),
                per_user(c.total(), n),
                per_user(c.get(CREATE), n),
                per_user(c.get(MINT), n),
                c.total() - c.get(CREATE) - c.get(MINT),
                fresh.as_secs_f64(),
                n as f64 / fresh.as_secs_f64(),
                fresh_rps,
                fresh_rps / raw
            );
            println!(
                "           CPU per request (client, server): capacity before {before_cpu}; sync {sync_cpu}; capacity after {after_cpu}"
            );
            (before, before_cpu) = (after, after_cpu);
            last = Some((sync, prefix));
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "  fresh sync throughput ratio, sync requests/s over raw capacity (median of {ROUNDS}): {:.2} (range {:.2} to {:.2})",
            ratios[ROUNDS / 2],
            ratios[0],
            ratios[ROUNDS - 1]
        );
        let (sync, prefix) = last.unwrap();

        server.ask("reset");
        let t = Instant::now();
        let r = sync.sync_all(host_users(n, &prefix), |_| {}).await.unwrap();
        let el = t.elapsed();
        let c = server.counts();
        assert_eq!((r.summary.unchanged, r.summary.minted), (n as u64, 0));
        println!(
            "  re-sync, unchanged: {:>4} requests (bulk fetch {}, other {}) = N/{:.0} | {:.2} s | {:.0} users/s",
            c.total(),
            c.get(BULK),
            c.total() - c.get(BULK),
            n as f64 / c.total() as f64,
            el.as_secs_f64(),
            n as f64 / el.as_secs_f64()
        );

        server.ask("reset");
        let r = sync
            .sync_missing(host_users(n, &prefix), |_| {})
            .await
            .unwrap();
        let c = server.counts();
        assert_eq!(r.summary.skipped, n as u64);
        println!("  --missing, nobody missing: {} requests", c.total());

        server.ask("reset");
        let t = Instant::now();
        let r = sync
            .reconcile(host_users(n, &prefix), |_| {})
            .await
            .unwrap();
        let el = t.elapsed();
        let c = server.counts();
        assert_eq!((r.summary.repairs, r.summary.failed), (0, 0));
        println!(
            "  reconcile, nothing to repair: {} requests (token listing {}, bulk fetch {}, other {}) | {:.2} s | {:.0} users/s",
            c.total(),
            c.get(LIST_ALL_TOKENS),
            c.get(BULK),
            c.total() - c.get(LIST_ALL_TOKENS) - c.get(BULK),
            el.as_secs_f64(),
            n as f64 / el.as_secs_f64()
        );

        // Users already in Mattermost but new to the app.
        let m = n / 10;
        server.ask(&format!("users {m} existing"));
        let store = Arc::new(MemoryStore::with_users((1..=m as i64).map(HostUserId::Int)));
        let sync_existing = sync_over(client.clone(), store);
        server.ask("reset");
        let r = sync_existing
            .sync_all(host_users(m, "existing"), |_| {})
            .await
            .unwrap();
        let c = server.counts();
        assert_eq!((r.summary.updated, r.summary.minted), (m as u64, m as u64));
        println!(
            "  in Mattermost, new to the app ({m} users): {} per user (lookup {}, patch {}, orphan check {}, mint {}) + {} create attempts (users started before any answer showed that accounts exist; at most the concurrency) + other {}",
            per_user(c.total() - c.get(CREATE) - c.get(LIMITS) - 3, m),
            per_user(c.get(LOOKUP), m),
            per_user(c.get(PATCH), m),
            per_user(c.get(LIST_TOKENS), m),
            per_user(c.get(MINT), m),
            c.get(CREATE),
            c.total()
                - c.get(CREATE)
                - c.get(LOOKUP)
                - c.get(PATCH)
                - c.get(LIST_TOKENS)
                - c.get(MINT)
        );
        assert!(
            c.get(CREATE) <= CONCURRENCY as u64,
            "{} create attempts",
            c.get(CREATE)
        );
    }

    // Pacing under Mattermost's default rate limit.
    if wanted("pacing") {
        let (rate, burst, n) = (10u32, 100u32, 300usize);
        let mut server = Server::start(Some((rate, burst)));
        let client = server.client();
        let store = Arc::new(MemoryStore::with_users((1..=n as i64).map(HostUserId::Int)));
        let sync = sync_over(client, store);
        let t = Instant::now();
        let r = sync.sync_all(host_users(n, "r"), |_| {}).await.unwrap();
        let el = t.elapsed().as_secs_f64();
        let c = server.counts();
        let ideal = (c.total() as f64 - f64::from(burst)) / f64::from(rate);
        println!(
            "\nRate limited ({rate}/s, burst {burst}), {n} fresh users: {} requests, {} answered 429, {} failed | {el:.1} s, ideal (requests - burst) / rate = {ideal:.1} s | {:.3} x ideal",
            c.total(),
            c.rate_limited(),
            r.summary.failed,
            el / ideal
        );
    }

    // The incident response: every token rotated, paced by the rate limit.
    if wanted("rotate") {
        rotate_all(10_000, 500, 100).await;
    }

    // Several instances of the app over one users table.
    if wanted("processes") {
        let n = 2_000usize;
        let mut line = format!("\nProcesses syncing {n} fresh users of one SQLite file together:");
        let mut one = 0.0;
        for workers in [1usize, 2, 4] {
            let (el, c, failed) = processes(workers, n, None).await;
            if workers == 1 {
                one = el;
            }
            line.push_str(&format!(
                " {workers}: {el:.2} s ({:.2} x one; {} mints, {} revokes, {failed} failed);",
                el / one,
                c.get(MINT),
                c.get(REVOKE)
            ));
        }
        println!("{}", line.trim_end_matches(';'));
        let (rate, burst, n) = (10u32, 100u32, 300usize);
        let (el, c, failed) = processes(4, n, Some((rate, burst))).await;
        let ideal = (c.total() as f64 - f64::from(burst)) / f64::from(rate);
        println!(
            "Rate limited ({rate}/s, burst {burst}), 4 processes, {n} fresh users: {} requests, {} answered 429, {} mints, {failed} failed | {el:.1} s, ideal for one process (requests - burst) / rate = {ideal:.1} s | {:.3} x ideal",
            c.total(),
            c.rate_limited(),
            c.get(MINT),
            el / ideal
        );
    }

    // Peak memory, each size in its own process (stand-in in another).
    if wanted("memory") {
        let mut line = String::from(
            "\nPeak memory (RSS) of a fresh sync into a SQLite file (sqlx store), host users read from its users table in pages:",
        );
        for n in [10_000usize, 100_000] {
            let server = Server::start(None);
            let out = Command::new(std::env::current_exe().unwrap())
                .args([
                    "--memory",
                    &n.to_string(),
                    &server.url,
                    server.admin.expose_secret(),
                ])
                .output()
                .unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let kb: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("PEAK_RSS_KB "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "memory child failed: {text} {}",
                        String::from_utf8_lossy(&out.stderr)
                    )
                });
            let secs = text
                .lines()
                .find_map(|l| l.strip_prefix("SECONDS "))
                .unwrap_or("?")
                .trim()
                .to_owned();
            line.push_str(&format!(" {n} users: {:.1} MiB ({secs} s);", kb / 1024.0));
        }
        println!("{}", line.trim_end_matches(';'));
    }
    println!(
        "\ntotal benchmark time {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// `rotate --all` over `n` synced users (in-memory store) against a
/// stand-in limited to `rate`/s with `burst`: the time against the ideal,
/// (requests - burst) / rate, with two requests per user (mint, revoke).
async fn rotate_all(n: usize, rate: u32, burst: u32) {
    use mattermost_tokens::rotation::RotationCampaign;
    let mut server = Server::start(None);
    let store = Arc::new(MemoryStore::with_users((1..=n as i64).map(HostUserId::Int)));
    let r = sync_over(server.client(), store.clone())
        .sync_all(host_users(n, "rot"), |_| {})
        .await
        .unwrap();
    assert_eq!(r.summary.minted, n as u64);
    server.ask(&format!("rate {rate} {burst}"));
    server.ask("reset");
    // A client of its own: its pacer learns the limit from the first answers.
    let sync = sync_over(server.client(), store.clone());
    let journal =
        std::env::temp_dir().join(format!("mmt-bench-rotate-{}.jsonl", std::process::id()));
    let ids = stream::iter((1..=n as i64).map(|i| Ok(HostUserId::Int(i))));
    let mut campaign = RotationCampaign::begin(&journal, store.as_ref(), ids)
        .await
        .unwrap();
    let t = Instant::now();
    let report = sync
        .rotate_campaign(&mut campaign, CONCURRENCY, |_| {})
        .await
        .unwrap();
    let el = t.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&journal);
    let c = server.counts();
    let ideal = (c.total() as f64 - f64::from(burst)) / f64::from(rate);
    println!(
        "\nrotate --all, rate limited ({rate}/s, burst {burst}), {n} users: {} replaced, {} failed, {} requests ({:.2} per user: {} mints, {} revokes), {} answered 429 | {el:.1} s, ideal (requests - burst) / rate = {ideal:.1} s | {:.3} x ideal",
        report.replaced,
        report.failed,
        c.total(),
        c.total() as f64 / n as f64,
        c.get(MINT),
        c.get(REVOKE),
        c.rate_limited(),
        el / ideal
    );
}

// ---- the memory child process ----

fn child_memory(args: &[String]) {
    let n: usize = args[0].parse().unwrap();
    let url = args[1].clone();
    let admin = AccessToken::new(args[2].clone());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async move {
        let path =
            std::env::temp_dir().join(format!("mmt-bench-{}-{n}.sqlite", std::process::id()));
        let pool = sqlite_host(&path, n).await;
        let t = Instant::now();
        let r = sync_table(pool, &url, admin).await;
        assert_eq!(r.summary.minted, n as u64, "{:?}", r.failures.first());
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let hwm = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .map(|v| v.trim().trim_end_matches("kB").trim().to_owned())
            .unwrap_or_else(|| "0".into());
        println!("PEAK_RSS_KB {hwm}");
        println!("SECONDS {:.1}", t.elapsed().as_secs_f64());
        let _ = std::fs::remove_file(&path);
    });
}

/// A pool on the SQLite file at `path` (with `create`: made, in WAL mode).
async fn sqlite_pool(path: &std::path::Path, create: bool) -> sqlx::SqlitePool {
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    let mut opts = SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(Duration::from_secs(30));
    if create {
        opts = opts
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
    }
    SqlitePoolOptions::new()
        .max_connections(4)
        .connect_with(opts)
        .await
        .unwrap()
}

/// Syncs every user of the users table behind `pool`, read a page at a
/// time as the examples read them, into the same table.
async fn sync_table(pool: sqlx::SqlitePool, url: &str, admin: AccessToken) -> SyncReport {
    let store = mattermost_tokens_sqlx::SqliteTokenStore::new(pool.clone());
    let table = mattermost_tokens::HostUserTable::laravel()
        .with_email_verified_column(None)
        .unwrap();
    let source = mattermost_tokens_sqlx::SqliteHostUsers::new(pool, table);
    let users = source.stream().map(|r| r.expect("host users readable"));
    let client = MattermostClient::new(url, admin).unwrap();
    sync_over(client, Arc::new(store))
        .sync_all(users, |_| {})
        .await
        .unwrap()
}

/// A SQLite file (WAL) at `path` with a users table of `n` users
/// (`m0@example.com`, ...), migrated; its pool.
async fn sqlite_host(path: &std::path::Path, n: usize) -> sqlx::SqlitePool {
    let _ = std::fs::remove_file(path);
    let pool = sqlite_pool(path, true).await;
    sqlx::query("CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE)")
        .execute(&pool)
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    for i in 1..=n as i64 {
        sqlx::query("INSERT INTO users (id, name, email) VALUES (?, ?, ?)")
            .bind(i)
            .bind(format!("User m{}", i - 1))
            .bind(format!("m{}@example.com", i - 1))
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    mattermost_tokens_sqlx::SqliteTokenStore::new(pool.clone())
        .migrate()
        .await
        .unwrap();
    pool
}

// ---- a worker process of the multi-process part ----

/// `--worker <sqlite file> <url> <admin token>`: one instance of the app
/// syncing every user of the file's users table.
fn child_worker(args: &[String]) {
    let (path, url, admin) = (&args[0], &args[1], AccessToken::new(args[2].clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let pool = sqlite_pool(std::path::Path::new(path), false).await;
        let r = sync_table(pool, url, admin).await;
        println!(
            "MINTED {} HELD {} FAILED {}",
            r.summary.minted, r.summary.held_elsewhere, r.summary.failed
        );
    });
}

/// `workers` processes syncing `n` fresh users of one SQLite file against
/// one stand-in: wall time, mints, revokes and 429s.
async fn processes(workers: usize, n: usize, rate_limit: Option<(u32, u32)>) -> (f64, Counts, u64) {
    let mut server = Server::start(rate_limit);
    let path = std::env::temp_dir().join(format!(
        "mmt-bench-procs-{}-{workers}.sqlite",
        std::process::id()
    ));
    sqlite_host(&path, n).await.close().await;
    let t = Instant::now();
    let children: Vec<Child> = (0..workers)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--worker",
                    path.to_str().unwrap(),
                    &server.url,
                    server.admin.expose_secret(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failed = 0;
    for c in children {
        let out = tokio::task::spawn_blocking(move || c.wait_with_output().unwrap())
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        failed += text
            .split_whitespace()
            .skip_while(|w| *w != "FAILED")
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("worker failed: {text}"));
    }
    let el = t.elapsed().as_secs_f64();
    let c = server.counts();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    (el, c, failed)
}
