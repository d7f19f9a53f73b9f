//! The stand-in's state file: save, shut down, start again from the file.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use mattermost_tokens::{TokenId, UserId};
use mattermost_tokens_stand_in::StandIn;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mmt-stand-in-state-{}-{}-{name}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.0)
            .expect("read temp dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Plain HTTP calls against one stand-in.
struct Api {
    url: String,
    admin: String,
    http: reqwest::Client,
}

impl Api {
    fn new(server: &StandIn) -> Self {
        Self {
            url: server.url().to_owned(),
            admin: server.admin_token().expose_secret().to_owned(),
            http: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v4{path}", self.url))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request reaches the stand-in");
        let status = response.status();
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.send(reqwest::Method::GET, path, token, None).await
    }

    async fn admin_post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(reqwest::Method::POST, path, &self.admin, Some(body))
            .await
    }

    async fn create_user(&self, username: &str) -> UserId {
        let (status, body) = self
            .admin_post(
                "/users",
                json!({
                    "username": username,
                    "email": format!("{username}@example.com"),
                    "password": "correct-horse-battery",
                }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        UserId::new(body["id"].as_str().expect("id"))
    }

    async fn mint(&self, user: &UserId, description: &str) -> (TokenId, String) {
        let (status, body) = self
            .admin_post(
                &format!("/users/{user}/tokens"),
                json!({ "description": description }),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            TokenId::new(body["id"].as_str().expect("id")),
            body["token"].as_str().expect("token").to_owned(),
        )
    }

    /// `GET /users/me` with this token: the status and the user id.
    async fn me(&self, token: &str) -> (StatusCode, String) {
        let (status, body) = self.get("/users/me", token).await;
        (status, body["id"].as_str().unwrap_or("").to_owned())
    }
}

async fn start_from(path: &Path) -> StandIn {
    StandIn::builder()
        .state_file(path)
        .start()
        .await
        .expect("stand-in starts from the state file")
}

async fn start_err(path: &Path) -> io::Error {
    StandIn::builder()
        .state_file(path)
        .start()
        .await
        .expect_err("a bad state file is refused")
}

#[tokio::test]
async fn users_tokens_teams_and_channels_survive_a_restart() {
    let dir = TempDir::new("roundtrip");
    let path = dir.file("state.json");

    // First run: a fresh server (the file does not exist yet).
    let first = start_from(&path).await;
    assert_eq!(first.state_file(), Some(path.as_path()));
    assert_eq!(first.users().len(), 1, "only the admin");
    let api = Api::new(&first);
    let alice = api.create_user("alice").await;
    let bob = api.create_user("bob").await;
    let carol = api.create_user("carol").await;
    let (a1, a1_value) = api.mint(&alice, "laptop").await;
    let (a2, a2_value) = api.mint(&alice, "revoked one").await;
    let (a3, a3_value) = api.mint(&alice, "disabled one").await;
    let (b1, b1_value) = api.mint(&bob, "bob's").await;
    let (c1, c1_value) = api.mint(&carol, "carol's").await;
    let (status, body) = api
        .admin_post("/users/tokens/revoke", json!({ "token_id": a2 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api
        .admin_post("/users/tokens/disable", json!({ "token_id": a3 }))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(first.deactivate_user(&carol));

    let team = first.add_team("research", "Research", false);
    assert!(first.add_team_member_directly(&team, &alice));
    let (status, body) = api
        .admin_post(
            "/channels",
            json!({
                "team_id": team,
                "name": "lab",
                "display_name": "Lab",
                "type": "P",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let lab = first
        .channel_by_name(&team, "lab")
        .expect("channel created");
    let (status, body) = api
        .admin_post(
            &format!("/channels/{}/members", lab.id),
            json!({ "user_id": alice }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let admin_token = first.admin_token();
    let admin_id = first.admin_user_id();
    let default_team = first.default_team_id();
    let users_before = first.users();
    let tokens_before = first.tokens();
    let team_before = first.team_by_name("research").expect("team");

    first.save_state().expect("state saved");
    assert_eq!(dir.entries(), ["state.json"], "no temp file left behind");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).expect("file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "owner-only: the file holds secrets");
    }
    first.shutdown();
    drop(first);

    // Second run, from the file.
    let second = start_from(&path).await;
    let api = Api::new(&second);
    assert_eq!(
        second.admin_token().expose_secret(),
        admin_token.expose_secret(),
        "the admin token is the same"
    );
    assert_eq!(second.admin_user_id(), admin_id);
    assert_eq!(second.default_team_id(), default_team);
    assert_eq!(
        api.me(&api.admin).await,
        (StatusCode::OK, admin_id.to_string())
    );

    // Users: the same, found by email, username and id, in the API too.
    assert_eq!(second.users(), users_before);
    let found = second
        .user_by_email("ALICE@example.com")
        .expect("alice by email");
    assert_eq!(found.id, alice);
    assert_eq!(second.user_by_username("bob").expect("bob").id, bob);
    assert!(second.user(&alice).is_some());
    let (status, body) = api.get(&format!("/users/{alice}"), &api.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "alice");
    let (status, body) = api.get("/users/email/bob@example.com", &api.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], bob.as_str());
    assert!(!second.user(&carol).expect("carol").is_active());

    // Tokens: the same ids, values, descriptions, flags and order.
    assert_eq!(second.tokens(), tokens_before);
    assert_eq!(api.me(&a1_value).await, (StatusCode::OK, alice.to_string()));
    assert_eq!(api.me(&b1_value).await, (StatusCode::OK, bob.to_string()));
    assert_eq!(
        api.me(&a2_value).await.0,
        StatusCode::UNAUTHORIZED,
        "revoked"
    );
    assert!(second.token(&a2).is_none());
    assert_eq!(
        api.me(&a3_value).await.0,
        StatusCode::UNAUTHORIZED,
        "disabled"
    );
    assert!(!second.token(&a3).expect("a3").is_active);
    assert_eq!(
        api.me(&c1_value).await.0,
        StatusCode::UNAUTHORIZED,
        "owner deactivated"
    );
    assert!(second.token(&c1).is_some());
    assert_eq!(second.token_id_of(&b1_value), Some(b1.clone()));
    let (status, body) = api.get(&format!("/users/{alice}/tokens"), &api.admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let listed: Vec<(&str, &str, bool)> = body
        .as_array()
        .expect("a list")
        .iter()
        .map(|t| {
            (
                t["id"].as_str().unwrap_or(""),
                t["description"].as_str().unwrap_or(""),
                t["is_active"].as_bool().unwrap_or(true),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (a1.as_str(), "laptop", true),
            (a3.as_str(), "disabled one", false)
        ]
    );

    // Teams, channels and memberships.
    assert_eq!(second.team_by_name("research").expect("team"), team_before);
    assert_eq!(second.channel_by_name(&team, "lab"), Some(lab.clone()));
    assert!(second.is_team_member(&team, &alice));
    assert!(!second.is_team_member(&team, &bob));
    assert!(second.is_channel_member(&lab.id, &alice));
    assert!(second.is_channel_member(&lab.id, &admin_id));
    assert!(!second.is_channel_member(&lab.id, &bob));
    assert!(
        second
            .channel_by_name(&default_team, "town-square")
            .is_some()
    );

    // New things fit in beside the old: no id or index clash.
    let dave = api.create_user("dave").await;
    assert!(users_before.iter().all(|u| u.id != dave));
    assert_eq!(second.users().len(), users_before.len() + 1);
    let (status, body) = api
        .admin_post(
            "/users",
            json!({
                "username": "alice2",
                "email": "alice@example.com",
                "password": "correct-horse-battery",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["id"], "app.user.save.email_exists.app_error");
    let (a4, a4_value) = api.mint(&alice, "after restart").await;
    assert_eq!(api.me(&a4_value).await, (StatusCode::OK, alice.to_string()));
    let order: Vec<TokenId> = second.tokens_of(&alice).into_iter().map(|t| t.id).collect();
    assert_eq!(order, [a1.clone(), a3.clone(), a4.clone()]);
    let (status, body) = api
        .admin_post(
            "/channels",
            json!({
                "team_id": team,
                "name": "lab",
                "display_name": "Lab again",
                "type": "O",
            }),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["id"],
        "store.sql_channel.save_channel.exists.app_error"
    );

    // Saving over the old file, then a third run sees the additions.
    second.save_state().expect("saved again");
    assert_eq!(dir.entries(), ["state.json"]);
    second.shutdown();
    drop(second);
    let third = start_from(&path).await;
    let api = Api::new(&third);
    assert_eq!(
        third.user_by_email("dave@example.com").map(|u| u.id),
        Some(dave)
    );
    assert_eq!(api.me(&a4_value).await, (StatusCode::OK, alice.to_string()));
    let order: Vec<TokenId> = third.tokens_of(&alice).into_iter().map(|t| t.id).collect();
    assert_eq!(order, [a1, a3, a4]);
}

#[tokio::test]
async fn tokens_enabled_is_restored_unless_the_builder_says_otherwise() {
    let dir = TempDir::new("tokens-enabled");
    let path = dir.file("state.json");
    let first = start_from(&path).await;
    let user = first
        .create_user_directly(mattermost_tokens_stand_in::NewUser::new(
            "erin",
            "erin@example.com",
        ))
        .expect("user");
    let minted = first.mint_token_directly(&user, "t").expect("token");
    first.set_tokens_enabled(false);
    first.save_state().expect("saved");
    first.shutdown();
    drop(first);

    let second = start_from(&path).await;
    assert!(!second.tokens_enabled());
    assert!(!second.token_is_live(minted.token.expose_secret()));
    second.shutdown();
    drop(second);

    let third = StandIn::builder()
        .state_file(&path)
        .tokens_enabled(true)
        .start()
        .await
        .expect("starts");
    assert!(third.tokens_enabled());
    let api = Api::new(&third);
    assert_eq!(
        api.me(minted.token.expose_secret()).await,
        (StatusCode::OK, user.to_string())
    );
}

#[tokio::test]
async fn an_explicit_admin_token_replaces_the_saved_one() {
    let dir = TempDir::new("admin-token");
    let path = dir.file("state.json");
    let first = start_from(&path).await;
    let saved = first.admin_token().expose_secret().to_owned();
    let admin_id = first.admin_user_id();
    first.save_state().expect("saved");
    first.shutdown();
    drop(first);

    let explicit = "explicitadmintoken00000000";
    let second = StandIn::builder()
        .state_file(&path)
        .admin_token(explicit)
        .start()
        .await
        .expect("starts");
    assert_eq!(second.admin_token().expose_secret(), explicit);
    assert_eq!(second.admin_user_id(), admin_id, "same admin user");
    let api = Api::new(&second);
    assert_eq!(
        api.me(explicit).await,
        (StatusCode::OK, admin_id.to_string())
    );
    assert_eq!(api.me(&saved).await.0, StatusCode::UNAUTHORIZED, "replaced");
    second.save_state().expect("saved");
    second.shutdown();
    drop(second);

    // The file now carries the explicit token.
    let third = start_from(&path).await;
    assert_eq!(third.admin_token().expose_secret(), explicit);
}

#[tokio::test]
async fn token_expiry_survives_a_restart() {
    let dir = TempDir::new("expiry");
    let path = dir.file("state.json");
    let server = start_from(&path).await;
    let api = Api::new(&server);
    let user = api.create_user("erin").await;
    // 2100-01-01, in milliseconds.
    let at = 4_102_444_800_000_i64;
    let (status, body) = api
        .admin_post(
            &format!("/users/{user}/tokens"),
            json!({ "description": "expiring", "expires_at": at }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_at"].as_i64(), Some(at));
    let (plain, _) = api.mint(&user, "plain").await;
    server.save_state().expect("saved");
    server.shutdown();
    drop(server);

    let restored = start_from(&path).await;
    let expiry = |id: &str| {
        restored
            .tokens()
            .into_iter()
            .find(|t| t.id.as_str() == id)
            .map(|t| t.expires_at)
    };
    assert_eq!(expiry(body["id"].as_str().unwrap()), Some(Some(at)));
    assert_eq!(expiry(plain.as_str()), Some(None));
}

#[tokio::test]
async fn a_missing_file_means_a_fresh_server() {
    let dir = TempDir::new("missing");
    let path = dir.file("nested-name.json");
    let server = start_from(&path).await;
    assert_eq!(server.users().len(), 1);
    // Only the admin's own personal access token.
    let tokens = server.tokens();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0].user_id, server.admin_user_id());
    assert!(server.team_by_name("demo").is_some());
    assert!(
        dir.entries().is_empty(),
        "nothing written before save_state"
    );
    let api = Api::new(&server);
    assert_eq!(api.me(&api.admin).await.0, StatusCode::OK);
    server.save_state().expect("saved");
    assert_eq!(dir.entries(), ["nested-name.json"]);
}

#[tokio::test]
async fn save_state_needs_a_configured_file_and_save_state_to_takes_any_path() {
    let dir = TempDir::new("save-to");
    let server = StandIn::start().await.expect("starts");
    assert!(server.state_file().is_none());
    let err = server.save_state().expect_err("no file configured");
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);

    let user = server
        .create_user_directly(mattermost_tokens_stand_in::NewUser::new(
            "frank",
            "frank@example.com",
        ))
        .expect("user");
    let minted = server.mint_token_directly(&user, "t").expect("token");
    let path = dir.file("elsewhere.json");
    server.save_state_to(&path).expect("saved");
    let admin = server.admin_token().expose_secret().to_owned();
    server.shutdown();
    drop(server);

    let restored = start_from(&path).await;
    assert_eq!(restored.admin_token().expose_secret(), admin);
    assert_eq!(
        restored.user(&user).map(|u| u.email),
        Some("frank@example.com".to_owned())
    );
    assert!(restored.token_is_live(minted.token.expose_secret()));

    let err = server_save_into_missing_dir(&restored, &dir).expect_err("no such directory");
    assert_ne!(err.kind(), io::ErrorKind::InvalidData);
}

fn server_save_into_missing_dir(server: &StandIn, dir: &TempDir) -> io::Result<()> {
    server.save_state_to(dir.file("no-such-dir").join("state.json"))
}

#[tokio::test]
async fn a_corrupt_or_foreign_file_is_refused_with_invalid_data() {
    let dir = TempDir::new("corrupt");
    let path = dir.file("state.json");

    // A valid file to damage.
    let server = start_from(&path).await;
    let user = server
        .create_user_directly(mattermost_tokens_stand_in::NewUser::new(
            "gina",
            "gina@example.com",
        ))
        .expect("user");
    let minted = server.mint_token_directly(&user, "t").expect("token");
    server.save_state().expect("saved");
    let secret = minted.token.expose_secret().to_owned();
    let good = std::fs::read_to_string(&path).expect("read");
    let good_json: Value = serde_json::from_str(&good).expect("valid JSON");
    server.shutdown();
    drop(server);

    let check = |err: io::Error, expect: &str| {
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
        let message = err.to_string();
        assert!(message.contains("state.json"), "names the file: {message}");
        assert!(message.contains(expect), "{message}");
        assert!(
            !message.contains(&secret),
            "never quotes a secret: {message}"
        );
    };

    std::fs::write(&path, &good[..good.len() / 2]).expect("write");
    check(start_err(&path).await, "truncated");

    std::fs::write(&path, "{ this is not json").expect("write");
    check(start_err(&path).await, "not valid JSON");

    std::fs::write(&path, "[1, 2, 3]").expect("write");
    check(start_err(&path).await, "layout");

    std::fs::write(&path, "{\"users\": []}").expect("write");
    check(start_err(&path).await, "not a stand-in state file");

    let mut future = good_json.clone();
    future["version"] = json!(99);
    std::fs::write(&path, future.to_string()).expect("write");
    check(start_err(&path).await, "version 99");

    let mut no_users = good_json.clone();
    no_users.as_object_mut().expect("object").remove("users");
    std::fs::write(&path, no_users.to_string()).expect("write");
    check(start_err(&path).await, "users");

    // A token value where a flag belongs: refused without quoting it.
    let mut wrong_type = good_json.clone();
    wrong_type["tokens_enabled"] = json!(secret);
    std::fs::write(&path, wrong_type.to_string()).expect("write");
    check(start_err(&path).await, "layout");

    // Parts that do not fit together.
    let mut orphan = good_json.clone();
    orphan["tokens"][0]["user_id"] = json!("nosuchuser0000000000000000");
    std::fs::write(&path, orphan.to_string()).expect("write");
    check(start_err(&path).await, "nosuchuser0000000000000000");

    let mut twice = good_json.clone();
    let first_user = twice["users"][0].clone();
    twice["users"]
        .as_array_mut()
        .expect("users")
        .push(first_user);
    std::fs::write(&path, twice.to_string()).expect("write");
    check(start_err(&path).await, "twice");

    let mut same_value = good_json.clone();
    let token = same_value["tokens"][0].clone();
    let mut copy = token.clone();
    copy["id"] = json!("othertokenid00000000000000");
    same_value["tokens"]
        .as_array_mut()
        .expect("tokens")
        .push(copy);
    std::fs::write(&path, same_value.to_string()).expect("write");
    check(start_err(&path).await, "another token");

    let mut no_admin = good_json.clone();
    no_admin["admin"]["user_id"] = json!("nosuchadmin000000000000000");
    std::fs::write(&path, no_admin.to_string()).expect("write");
    check(start_err(&path).await, "admin");

    // A directory where the file should be cannot be read.
    std::fs::remove_file(&path).expect("remove");
    std::fs::create_dir(&path).expect("dir");
    check(start_err(&path).await, "cannot be read");

    // And the good file still loads.
    std::fs::remove_dir(&path).expect("remove dir");
    std::fs::write(&path, &good).expect("write");
    let restored = start_from(&path).await;
    assert!(restored.token_is_live(&secret));
}
