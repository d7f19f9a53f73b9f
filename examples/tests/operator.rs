//! The operator's command line (`mattermost-tokens`), process by process,
//! against the stand-in: every subcommand in both output formats, with the
//! documented JSON shapes and exit codes.

mod common;

use std::process::Output;

use common::Demo;
use mattermost_tokens::TokenId;
use mattermost_tokens_stand_in::{AdminCredential, StandIn};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mattermost-tokens");

fn run(demo: &Demo, server: &StandIn, args: &[&str], env: &[(&str, &str)]) -> Output {
    demo.command(BIN, server)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The JSON lines of stdout (every line must parse).
fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}\n{}", text(out)))
        })
        .collect()
}

/// The one JSON document of stdout.
fn json_doc(out: &Output) -> Value {
    let mut lines = json_lines(out);
    assert_eq!(lines.len(), 1, "one document expected\n{}", text(out));
    lines.remove(0)
}

/// The summary line of a per-user command, after checking that every other
/// line is a user line.
fn summary(lines: &[Value]) -> &Value {
    let (last, users) = lines.split_last().expect("no output");
    assert_eq!(last["type"], "summary", "{last}");
    for u in users {
        assert!(matches!(u["type"].as_str(), Some("user" | "repair")), "{u}");
    }
    last
}

fn code(out: &Output) -> i32 {
    out.status.code().unwrap_or(-1)
}

async fn stored(demo: &Demo, user: i64) -> (Option<String>, Option<String>) {
    let pool = sqlx::SqlitePool::connect(&demo.db_url).await.unwrap();
    let row: (Option<String>, Option<String>) =
        sqlx::query_as("SELECT mattermost_token, mattermost_token_id FROM users WHERE id = ?")
            .bind(user)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    row
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_status_verify_and_revoke_in_both_formats() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("operator-sync");

    // sync, text then JSON lines.
    let out = run(&demo, &server, &["sync", "--all"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(common::count(&out, "created"), 5);
    let out = run(&demo, &server, &["sync", "--all", "--format", "json"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 6);
    let s = summary(&lines);
    assert_eq!(
        (s["unchanged"].as_u64(), s["failed"].as_u64()),
        (Some(5), Some(0))
    );
    for u in &lines[..5] {
        assert_eq!(u["ok"], true, "{u}");
        assert_eq!(u["account"], "unchanged");
        assert!(u["mattermost_user_id"].is_string());
    }

    // status reads the database only.
    let before = server.total_requests();
    let out = run(&demo, &server, &["status"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(common::count(&out, "with token"), 5);
    assert_eq!(common::count(&out, "without token"), 0);
    let out = run(&demo, &server, &["status", "--format", "json"], &[]);
    let doc = json_doc(&out);
    for (k, v) in [
        ("host_users", 5),
        ("linked", 5),
        ("with_token", 5),
        ("without_token", 0),
        ("expired", 0),
        ("expiring", 0),
        ("failed_last_run", 0),
    ] {
        assert_eq!(doc[k].as_u64(), Some(v), "{k} in {doc}");
    }
    assert_eq!(server.total_requests(), before, "status asked Mattermost");

    // verify one user, and everyone, after an admin revoked user 2's token.
    let out = run(&demo, &server, &["verify", "--user", "1"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("user 1: valid"), "{}", text(&out));
    let (_, id2) = stored(&demo, 2).await;
    assert!(server.revoke_token_directly(&TokenId::new(id2.unwrap())));
    let out = run(
        &demo,
        &server,
        &["verify", "--user", "2", "--format", "json"],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let doc = json_doc(&out);
    assert_eq!(
        (doc["verdict"].as_str(), doc["ok"].as_bool()),
        (Some("token_revoked"), Some(false))
    );
    let out = run(
        &demo,
        &server,
        &["verify", "--all", "--format", "json"],
        &[],
    );
    assert_eq!(code(&out), 1, "{}", text(&out));
    let lines = json_lines(&out);
    let s = summary(&lines);
    assert_eq!(
        (s["users"].as_u64(), s["needing_repair"].as_u64()),
        (Some(5), Some(1))
    );
    assert_eq!(lines[0]["user"], 2);
    assert_eq!(lines[0]["repair"], "reminted");
    let out = run(&demo, &server, &["verify", "--all"], &[]);
    assert_eq!(code(&out), 1);
    assert_eq!(common::count(&out, "needing repair"), 1);
    assert!(
        text(&out).contains("needs repair: user 2"),
        "{}",
        text(&out)
    );
    // verify changed nothing.
    assert!(stored(&demo, 2).await.0.is_some());

    // revoke: the token is gone from Mattermost and from the row.
    let (token3, id3) = stored(&demo, 3).await;
    let out = run(
        &demo,
        &server,
        &["revoke", "--user", "3", "--format", "json"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc = json_doc(&out);
    assert_eq!(doc["had_token"], true);
    assert_eq!(doc["token_id"].as_str(), id3.as_deref());
    assert!(!server.token_is_live(&token3.unwrap()));
    assert_eq!(stored(&demo, 3).await, (None, None));
    let out = run(&demo, &server, &["revoke", "--user", "3"], &[]);
    assert_eq!(code(&out), 0);
    assert!(
        text(&out).contains("user 3: had no token"),
        "{}",
        text(&out)
    );

    // status sees it.
    let doc = json_doc(&run(&demo, &server, &["status", "--format", "json"], &[]));
    assert_eq!(
        (doc["with_token"].as_u64(), doc["without_token"].as_u64()),
        (Some(4), Some(1))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn rotate_one_user_and_everyone_in_both_formats() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("operator-rotate");
    assert_eq!(code(&run(&demo, &server, &["sync", "--all"], &[])), 0);

    let (old1, _) = stored(&demo, 1).await;
    let out = run(
        &demo,
        &server,
        &["rotate", "--user", "1", "--format", "json"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json_doc(&out)["outcome"], "replaced");
    let (new1, _) = stored(&demo, 1).await;
    assert_ne!(old1, new1);
    assert!(!server.token_is_live(&old1.unwrap()));
    assert!(server.token_is_live(new1.as_deref().unwrap()));

    let mut before = Vec::new();
    for u in 1..=5 {
        before.push(stored(&demo, u).await.0.unwrap());
    }
    let out = run(&demo, &server, &["rotate", "--all"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(common::count(&out, "replaced"), 5);
    assert_eq!(common::count(&out, "total"), 5);
    assert!(text(&out).contains("finished"), "{}", text(&out));
    for (u, old) in (1..=5).zip(&before) {
        let now = stored(&demo, u).await.0.unwrap();
        assert_ne!(&now, old);
        assert!(!server.token_is_live(old));
        assert!(server.token_is_live(&now));
    }
    // A finished campaign is not continued: a new one begins.
    let out = run(
        &demo,
        &server,
        &["rotate", "--all", "--format", "json"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let lines = json_lines(&out);
    let s = summary(&lines);
    assert_eq!(
        (s["replaced"].as_u64(), s["done_before"].as_u64()),
        (Some(5), Some(0))
    );
    assert_eq!(s["finished"], true);
    assert!(lines[..5].iter().all(|l| l["outcome"] == "replaced"));
    let journal =
        std::fs::read_to_string(demo.dir.join("mattermost-tokens-rotation.jsonl")).unwrap();
    assert!(journal.lines().last().unwrap().contains("finished_at_ms"));
    assert!(
        !journal.contains(&before[0]),
        "the journal holds no token value"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_prints_applies_and_undoes_in_both_formats() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("operator-migrate");
    // The host's users table, not migrated.
    common::host_with_users(&demo.db_url, 5).await;

    let out = run(&demo, &server, &["migrate", "--dry-run"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let sql = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        sql.contains("ALTER TABLE users ADD COLUMN mattermost_token"),
        "{sql}"
    );
    assert!(
        sql.contains("CREATE TABLE mattermost_magic_link_codes"),
        "{sql}"
    );
    // Nothing changed: the status cannot read token columns yet.
    let out = run(&demo, &server, &["status"], &[]);
    assert_eq!(code(&out), 2, "{}", text(&out));
    let doc = pending(&demo, &server);
    assert_eq!(
        (doc["direction"].as_str(), doc["dry_run"].as_bool()),
        (Some("up"), Some(true))
    );
    assert!(doc["statements"].as_array().unwrap().len() >= 5, "{doc}");

    let out = run(&demo, &server, &["migrate"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert!(text(&out).contains("migrations applied"));
    let doc = pending(&demo, &server);
    assert_eq!(doc["statements"].as_array().unwrap().len(), 0, "{doc}");
    let out = run(&demo, &server, &["migrate", "--dry-run"], &[]);
    assert!(text(&out).contains("-- nothing to do"));
    assert_eq!(code(&run(&demo, &server, &["status"], &[])), 0);

    let out = run(&demo, &server, &["migrate", "--undo", "--dry-run"], &[]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("DROP TABLE mattermost_magic_link_codes")
    );
    let out = run(
        &demo,
        &server,
        &["migrate", "--undo", "--format", "json"],
        &[],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(json_doc(&out)["done"], true);
    let doc = pending(&demo, &server);
    assert!(!doc["statements"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn reencrypt_seals_plaintext_rows_in_both_formats() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("operator-reencrypt");
    assert_eq!(code(&run(&demo, &server, &["sync", "--all"], &[])), 0);
    let key = mattermost_tokens::EncryptionKeys::generate_key();

    let out = run(&demo, &server, &["reencrypt"], &[]);
    assert_eq!(code(&out), 2, "no key, nothing to do\n{}", text(&out));
    assert!(text(&out).contains("MATTERMOST_TOKENS_KEY is not set"));

    let out = run(
        &demo,
        &server,
        &["reencrypt", "--format", "json"],
        &[("MATTERMOST_TOKENS_KEY", &key)],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc = json_doc(&out);
    assert_eq!(
        (doc["plaintext_sealed"].as_u64(), doc["failed"].as_u64()),
        (Some(5), Some(0))
    );
    for u in 1..=5 {
        let token = stored(&demo, u).await.0.unwrap();
        assert!(token.starts_with(mattermost_tokens::encryption::ENCRYPTED_PREFIX));
    }
    let out = run(
        &demo,
        &server,
        &["reencrypt"],
        &[("MATTERMOST_TOKENS_KEY", &key)],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(common::count(&out, "already current"), 5);
    // The tokens still work through the key, and doctor sees the key.
    let out = run(
        &demo,
        &server,
        &["verify", "--user", "4"],
        &[("MATTERMOST_TOKENS_KEY", &key)],
    );
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = run(&demo, &server, &["doctor", "--format", "json"], &[]);
    let doc = json_doc(&out);
    let check = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "encryption_key")
        .unwrap()
        .clone();
    assert_eq!(check["ok"], false, "{doc}");
    assert!(
        check["fix"]
            .as_str()
            .unwrap()
            .contains("MATTERMOST_TOKENS_KEY")
    );
}

/// `migrate --dry-run --format json`: the document.
fn pending(demo: &Demo, server: &StandIn) -> Value {
    json_doc(&run(
        demo,
        server,
        &["migrate", "--dry-run", "--format", "json"],
        &[],
    ))
}

/// The check of `doc` named `name`.
fn check<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {doc}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_passes_on_a_good_setup_in_both_formats() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("operator-doctor-ok");
    assert_eq!(code(&run(&demo, &server, &["sync", "--all"], &[])), 0);
    let out = run(&demo, &server, &["doctor"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(t.contains("All checks passed."), "{t}");
    assert!(t.contains("[ok  ] stored_tokens"), "{t}");
    let out = run(&demo, &server, &["doctor", "--format", "json"], &[]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let doc = json_doc(&out);
    assert_eq!(doc["ok"], true);
    let names: Vec<&str> = doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "server",
            "admin_credential",
            "personal_access_tokens",
            "admin_permissions",
            "list_tokens",
            "migrations",
            "encryption_key",
            "stored_tokens"
        ]
    );
    assert!(
        check(&doc, "server")["detail"]
            .as_str()
            .unwrap()
            .contains("version")
    );
    assert_eq!(
        check(&doc, "stored_tokens")["detail"],
        "5 sampled token(s) work"
    );

    // A stored token revoked behind the store's back fails the sample.
    let (_, id) = stored(&demo, 1).await;
    server.revoke_token_directly(&TokenId::new(id.unwrap()));
    let out = run(&demo, &server, &["doctor", "--format", "json"], &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let c = check(&json_doc(&out), "stored_tokens").clone();
    assert_eq!(c["ok"], false);
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("user 1: token_revoked"),
        "{c}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_each_failure_with_its_fix() {
    // Personal access tokens disabled (the admin signs in with a session,
    // which keeps working).
    let server = StandIn::builder()
        .tokens_enabled(false)
        .admin_credential(AdminCredential::Session)
        .start()
        .await
        .unwrap();
    let demo = Demo::new("operator-doctor-pats");
    common::host_with_users(&demo.db_url, 3).await;
    assert_eq!(code(&run(&demo, &server, &["migrate"], &[])), 0);
    let out = run(&demo, &server, &["doctor", "--format", "json"], &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let doc = json_doc(&out);
    assert_eq!(doc["ok"], false);
    let pats = check(&doc, "personal_access_tokens");
    assert_eq!(pats["ok"], false);
    assert!(
        pats["detail"].as_str().unwrap().contains("disabled"),
        "{pats}"
    );
    assert!(
        pats["fix"]
            .as_str()
            .unwrap()
            .contains("Enable Personal Access Tokens")
    );
    for other in [
        "server",
        "admin_credential",
        "admin_permissions",
        "migrations",
    ] {
        assert_eq!(check(&doc, other)["ok"], true, "{other}: {doc}");
    }
    let out = run(&demo, &server, &["doctor"], &[]);
    assert_eq!(code(&out), 1);
    assert!(String::from_utf8_lossy(&out.stdout).contains("[FAIL] personal_access_tokens"));

    // The same with the usual admin credential, a personal access token:
    // disabling tokens stops it too, which doctor says.
    let server = StandIn::builder()
        .tokens_enabled(false)
        .start()
        .await
        .unwrap();
    let demo = Demo::new("operator-doctor-pat-admin");
    common::host_with_users(&demo.db_url, 3).await;
    assert_eq!(code(&run(&demo, &server, &["migrate"], &[])), 0);
    let out = run(&demo, &server, &["doctor", "--format", "json"], &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let doc = json_doc(&out);
    let admin = check(&doc, "admin_credential");
    assert_eq!(admin["ok"], false);
    assert!(
        admin["detail"].as_str().unwrap().contains("refused (401)"),
        "{admin}"
    );
    let pats = check(&doc, "personal_access_tokens");
    assert_eq!(pats["ok"], false);
    assert!(
        pats["fix"]
            .as_str()
            .unwrap()
            .contains("enable personal access tokens"),
        "{pats}"
    );

    // An admin whose role lost manage_system.
    let server = StandIn::builder()
        .admin_without("manage_system")
        .start()
        .await
        .unwrap();
    let demo = Demo::new("operator-doctor-perms");
    common::host_with_users(&demo.db_url, 3).await;
    assert_eq!(code(&run(&demo, &server, &["migrate"], &[])), 0);
    let out = run(&demo, &server, &["doctor", "--format", "json"], &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let doc = json_doc(&out);
    let perms = check(&doc, "admin_permissions");
    assert_eq!(perms["ok"], false);
    let detail = perms["detail"].as_str().unwrap();
    assert!(detail.contains("missing: manage_system"), "{detail}");
    assert!(!detail.contains("edit_other_users ("), "{detail}");
    assert!(perms["fix"].as_str().unwrap().contains("System Roles"));
    assert_eq!(check(&doc, "list_tokens")["ok"], false, "{doc}");
    assert_eq!(check(&doc, "personal_access_tokens")["ok"], true, "{doc}");

    // Migrations not applied.
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("operator-doctor-schema");
    common::host_with_users(&demo.db_url, 3).await;
    let out = run(&demo, &server, &["doctor", "--format", "json"], &[]);
    assert_eq!(code(&out), 1, "{}", text(&out));
    let doc = json_doc(&out);
    let m = check(&doc, "migrations");
    assert_eq!(m["ok"], false);
    assert!(m["detail"].as_str().unwrap().contains("not applied"), "{m}");
    assert!(
        m["fix"]
            .as_str()
            .unwrap()
            .contains("mattermost-tokens migrate")
    );
    for other in [
        "server",
        "admin_credential",
        "personal_access_tokens",
        "admin_permissions",
    ] {
        assert_eq!(check(&doc, other)["ok"], true, "{other}: {doc}");
    }
    // doctor changed nothing.
    let doc = pending(&demo, &server);
    assert!(!doc["statements"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_cannot_be_reached_is_exit_code_2_in_json_too() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("operator-unreachable");
    let out = demo
        .command(BIN, &server)
        .args(["sync", "--all", "--format", "json"])
        .env(
            "MATTERMOST_URL",
            format!("http://127.0.0.1:{}", common::free_port()),
        )
        .output()
        .unwrap();
    assert_eq!(code(&out), 2, "{}", text(&out));
    let doc = json_doc(&out);
    assert_eq!(doc["type"], "error");
    assert!(
        doc["error"].as_str().unwrap().contains("MATTERMOST_URL"),
        "{doc}"
    );
}

/// `mattermost-tokens stand-in` on `port`, with `extra` arguments: the
/// process and the first line it printed.
fn stand_in_process(demo: &Demo, port: u16, extra: &[&str]) -> (common::Proc, String) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(BIN)
        .current_dir(&demo.dir)
        .args([
            "stand-in",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--admin-token",
            "standalone-admin-token-0123456789",
            "--state",
            "stand-in.json",
        ])
        .args(extra)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    (common::Proc(child), line)
}

/// A command of the operator against a stand-in process at `url`.
fn against(demo: &Demo, url: &str, args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .current_dir(&demo.dir)
        .env("DATABASE_URL", &demo.db_url)
        .env("MATTERMOST_URL", url)
        .env("MATTERMOST_TOKEN", "standalone-admin-token-0123456789")
        .env_remove("MATTERMOST_TOKENS_KEY")
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stand_in_runs_as_a_server_of_its_own_and_keeps_its_state() {
    let demo = Demo::new("operator-stand-in");
    let port = common::free_port();
    let (mut proc, first) = stand_in_process(
        &demo,
        port,
        &["--rate-limit", "100", "--burst", "20", "--format", "json"],
    );
    let started: Value = serde_json::from_str(&first).unwrap();
    let url = started["url"].as_str().unwrap().to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    assert!(started["admin_user_id"].is_string());

    let out = against(&demo, &url, &["sync", "--all", "--format", "json"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(summary(&json_lines(&out))["minted"], 5);
    // Rate limited as Mattermost is, with its headers.
    let resp = reqwest::Client::new()
        .get(format!("{url}/api/v4/users/me"))
        .bearer_auth("standalone-admin-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // throttled's bucket, as Mattermost reports it: the burst plus one.
    assert_eq!(resp.headers()["x-ratelimit-limit"], "21");

    // SIGTERM: it saves its state and ends cleanly.
    let pid = proc.0.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = proc.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let state = std::fs::read_to_string(demo.dir.join("stand-in.json")).unwrap();
    assert!(state.contains("ana.lopez@example.com"));

    // Started again on its state: the users and their tokens are still there.
    let port = common::free_port();
    let (_proc, first) = stand_in_process(&demo, port, &[]);
    assert!(
        first.starts_with(&format!(
            "stand-in Mattermost listening on http://127.0.0.1:{port}"
        )),
        "{first}"
    );
    let url = format!("http://127.0.0.1:{port}");
    let out = against(&demo, &url, &["verify", "--user", "1"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    let out = against(&demo, &url, &["sync", "--all"]);
    assert_eq!(code(&out), 0, "{}", text(&out));
    assert_eq!(common::count(&out, "unchanged"), 5);
    assert_eq!(common::count(&out, "minted"), 0);

    // Faults: every request answered 503.
    let port = common::free_port();
    let (_faulty, _) = stand_in_process(&demo, port, &["--fault-rate", "1"]);
    let resp = reqwest::get(format!("http://127.0.0.1:{port}/api/v4/system/ping"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
}
