//! `mattermost-tokens rotate --all` as the incident response it is for:
//! 2,000 users, the run killed twice (SIGKILL, mid-flight) and run again,
//! paced by the server's rate limit, while a reader checks the users table
//! and the tokens in it throughout.
//!
//! What must hold: every user ends with exactly one live library token,
//! the stored one, and not the one stored before the campaign; no user is
//! rotated twice; at no moment is a user without a stored token, or with a
//! stored token that the server refuses while it is still the stored one.

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Demo;
use mattermost_tokens::{DESCRIPTION_PREFIX, UserId};
use mattermost_tokens_stand_in::{RateLimit, StandIn};

const BIN: &str = env!("CARGO_BIN_EXE_mattermost-tokens");
const USERS: i64 = 2_000;
const CONCURRENCY: u64 = 8;

type Row = (i64, Option<String>, Option<String>, Option<String>);

async fn rows(pool: &sqlx::SqlitePool) -> Vec<Row> {
    sqlx::query_as(
        "SELECT id, mattermost_user_id, mattermost_token, mattermost_token_id FROM users ORDER BY id",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

/// What the reader saw.
#[derive(Default)]
struct Seen {
    /// Token ids seen stored, per user.
    ids: HashMap<i64, HashSet<String>>,
    /// What must never happen.
    violations: Vec<String>,
    /// Passes over the table, and live checks made.
    passes: u64,
    live_checks: u64,
}

/// Reads the table over and over until `stop`: every user has a token, and
/// a rotating sample of stored tokens is live at the server unless the row
/// moved on meanwhile.
async fn reader(db_url: String, server: StandIn, stop: Arc<AtomicBool>, seen: Arc<Mutex<Seen>>) {
    let pool = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    let mut next = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let table = match tokio::time::timeout(Duration::from_secs(10), rows(&pool)).await {
            Ok(t) => t,
            Err(_) => continue,
        };
        {
            let mut s = seen.lock().unwrap();
            s.passes += 1;
            for (id, _, token, token_id) in &table {
                match (token, token_id) {
                    (Some(_), Some(tid)) => {
                        s.ids.entry(*id).or_default().insert(tid.clone());
                    }
                    _ => s.violations.push(format!("user {id} had no stored token")),
                }
            }
        }
        // 50 users per pass, round the table.
        for _ in 0..50 {
            let (id, _, token, _) = &table[next % table.len()];
            next += 1;
            let Some(token) = token else { continue };
            if server.token_is_live(token) {
                continue;
            }
            // Refused: only allowed when the row has moved on.
            let now: Option<String> =
                sqlx::query_scalar("SELECT mattermost_token FROM users WHERE id = ?")
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            if now.as_deref() == Some(token.as_str()) {
                seen.lock().unwrap().violations.push(format!(
                    "user {id}: the stored token is refused by the server"
                ));
            }
        }
        seen.lock().unwrap().live_checks += 50;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    pool.close().await;
}

fn rotate(demo: &Demo, server: &StandIn) -> Child {
    demo.command(BIN, server)
        .args([
            "rotate",
            "--all",
            "--claim-ttl",
            "2",
            "--concurrency",
            &CONCURRENCY.to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Lets `child` get `n` users further, then kills it (SIGKILL). Returns what
/// it printed on stderr.
fn kill_after(mut child: Child, n: usize) -> Vec<String> {
    let stderr = child.stderr.take().unwrap();
    let mut lines = Vec::new();
    let mut done = 0;
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        if line.contains(": rotated") || line.contains("old token revoked") {
            done += 1;
        }
        lines.push(line);
        if done >= n {
            break;
        }
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the run ended by itself before it was killed: {lines:?}"
    );
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotate_all_killed_twice_ends_with_one_live_token_per_user_and_none_rotated_twice() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("rotate-campaign");
    common::host_with_users(&demo.db_url, USERS).await;
    let out = demo
        .command(BIN, &server)
        .args(["sync", "--all", "--concurrency", "32"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pool = sqlx::SqlitePool::connect(&demo.db_url).await.unwrap();
    let before: HashMap<i64, (String, String)> = rows(&pool)
        .await
        .into_iter()
        .map(|(id, mm, _, tid)| (id, (mm.unwrap(), tid.unwrap())))
        .collect();
    assert_eq!(before.len(), USERS as usize);

    // The server's rate limit paces the campaign: 2 requests a user.
    server.set_rate_limit(Some(RateLimit::new(500, 20)));
    server.reset_counts();
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Seen::default()));
    let reading = tokio::spawn(reader(
        demo.db_url.clone(),
        server.clone(),
        stop.clone(),
        seen.clone(),
    ));

    let started = Instant::now();
    let first = kill_after(rotate(&demo, &server), 600);
    assert!(first[0].contains("began rotation campaign"), "{first:?}");
    let second = kill_after(rotate(&demo, &server), 600);
    assert!(
        second[0].contains("continuing rotation campaign"),
        "{second:?}"
    );
    let out = rotate(&demo, &server).wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.starts_with("continuing rotation campaign"),
        "{stderr}"
    );
    assert!(
        stdout.contains("finished: every token of the snapshot is revoked"),
        "{stdout}"
    );
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    reading.await.unwrap();

    // The reader saw nothing wrong, and saw enough.
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    assert!(
        seen.violations.is_empty(),
        "{:?}",
        &seen.violations[..seen.violations.len().min(10)]
    );
    assert!(seen.passes >= 10, "the reader made {} passes", seen.passes);
    eprintln!(
        "rotation of {USERS} users with two kills: {elapsed:.1?}, reader passes {}, live checks {}",
        seen.passes, seen.live_checks
    );

    // Every user: one live library token, the stored one, not the old one;
    // at most two token ids ever stored (none rotated twice).
    let after = rows(&pool).await;
    let mut by_owner: HashMap<UserId, Vec<String>> = HashMap::new();
    for t in server.live_tokens() {
        if t.description.starts_with(DESCRIPTION_PREFIX) {
            by_owner
                .entry(t.user_id.clone())
                .or_default()
                .push(t.id.to_string());
        }
    }
    for (id, mm, token, tid) in &after {
        let (old_mm, old_tid) = &before[id];
        let (mm, tid) = (mm.as_ref().unwrap(), tid.as_ref().unwrap());
        assert_eq!(mm, old_mm);
        assert_ne!(tid, old_tid, "user {id} was not rotated");
        assert!(server.token_is_live(token.as_ref().unwrap()));
        assert_eq!(
            by_owner.get(&UserId::new(mm.clone())),
            Some(&vec![tid.clone()]),
            "user {id}: live library tokens"
        );
        let ids = &seen.ids[id];
        assert!(ids.len() <= 2, "user {id} was rotated twice: {ids:?}");
    }
    // Mints: one per user, and at most the ones in flight at each kill.
    let mints = server.request_count("POST /api/v4/users/{user_id}/tokens");
    assert!(
        (USERS as u64..=USERS as u64 + 2 * CONCURRENCY).contains(&mints),
        "{mints} mints for {USERS} users"
    );
    assert!(
        server.rate_limited_count() < 200,
        "{} answers were 429",
        server.rate_limited_count()
    );
    pool.close().await;
}
