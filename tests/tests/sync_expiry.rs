//! Token expiry: lifetimes asked for and stored, servers without expiry,
//! lifetime policies, and renewal of stored tokens before they expire.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mattermost_tokens::models::CreateToken;
use mattermost_tokens::*;
use mattermost_tokens_stand_in::{StandIn, TokenExpiry};

const DAY: Duration = Duration::from_secs(86_400);
const MINT: &str = "POST /api/v4/users/{user_id}/tokens";
const CREATE: &str = "POST /api/v4/users";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn server(expiry: TokenExpiry) -> StandIn {
    StandIn::builder()
        .token_expiry(expiry)
        .start()
        .await
        .unwrap()
}

fn sync(server: &StandIn, store: Arc<MemoryStore>, options: SyncOptions) -> UserSync {
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    UserSync::new(client, store, {
        let mut o = options;
        o.app_name = "expiry".into();
        o
    })
    .unwrap()
}

fn users(n: i64) -> Vec<HostUser> {
    (1..=n)
        .map(|i| HostUser::new(i, format!("user{i}@example.com"), &format!("User {i}")))
        .collect()
}

fn store(n: i64) -> Arc<MemoryStore> {
    Arc::new(MemoryStore::with_users((1..=n).map(HostUserId::Int)))
}

fn lifetime(d: Duration) -> SyncOptions {
    SyncOptions::new("expiry").token_lifetime(d)
}

async fn record(store: &MemoryStore, i: i64) -> TokenRecord {
    store.get(&HostUserId::Int(i)).await.unwrap().unwrap()
}

/// `at` is `want` give or take a minute (the time the test takes).
fn about(at: Option<i64>, want: i64) -> bool {
    at.is_some_and(|at| (at - want).abs() < 60_000)
}

#[tokio::test]
async fn a_lifetime_is_asked_for_stored_and_enforced_by_the_server() {
    let server = server(TokenExpiry::Optional).await;
    let store = store(2);
    let sync = sync(&server, store.clone(), lifetime(30 * DAY));
    let report = sync
        .sync_all(futures::stream::iter(users(2)), |_| {})
        .await
        .unwrap();
    assert_eq!(report.summary.minted, 2, "{:?}", report.failures.first());
    let want = now_ms() + (30 * DAY).as_millis() as i64;
    for i in 1..=2 {
        let rec = record(&store, i).await;
        assert!(about(rec.token_expires_at, want), "{rec:?}");
        let id = rec.token_id.unwrap();
        assert_eq!(
            server
                .tokens()
                .iter()
                .find(|t| t.id == id)
                .unwrap()
                .expires_at,
            rec.token_expires_at,
            "the store holds the expiry the server gave"
        );
    }
}

#[tokio::test]
async fn without_a_lifetime_tokens_do_not_expire() {
    let server = server(TokenExpiry::Optional).await;
    let store = store(1);
    let sync = sync(&server, store.clone(), SyncOptions::new("expiry"));
    sync.sync_all(futures::stream::iter(users(1)), |_| {})
        .await
        .unwrap();
    assert_eq!(record(&store, 1).await.token_expires_at, None);
    assert!(server.tokens().iter().all(|t| t.expires_at.is_none()));
}

#[tokio::test]
async fn a_server_without_expiry_gets_no_expiry_stored_and_the_token_works() {
    let server = server(TokenExpiry::Unsupported).await;
    let store = store(1);
    let sync = sync(&server, store.clone(), lifetime(30 * DAY));
    let report = sync
        .sync_all(futures::stream::iter(users(1)), |_| {})
        .await
        .unwrap();
    assert_eq!(report.summary.minted, 1);
    let rec = record(&store, 1).await;
    assert_eq!(
        rec.token_expires_at, None,
        "the server ignored the lifetime: storing one would renew a token that never expires"
    );
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    client.as_user(rec.token.unwrap()).me().await.unwrap();
}

#[tokio::test]
async fn a_policy_requiring_expiry_fails_the_sync_fast_with_advice() {
    let server = server(TokenExpiry::Required {
        max_lifetime: 90 * DAY,
    })
    .await;
    let store = store(6);
    let sync = sync(
        &server,
        store.clone(),
        SyncOptions::new("test").concurrency(1),
    );
    let report = sync
        .sync_all(futures::stream::iter(users(6)), |_| {})
        .await
        .unwrap();
    assert_eq!(report.summary.failed, 6);
    for f in &report.failures {
        assert!(
            matches!(
                f.error,
                Error::TokenExpiryPolicy {
                    rule: ExpiryRule::Required,
                    ..
                }
            ),
            "{:?}",
            f.error
        );
        assert!(
            f.error.to_string().contains("token_lifetime"),
            "{}",
            f.error
        );
    }
    // One refused mint; the other users are not even created.
    assert_eq!(server.request_count(MINT), 1);
    assert_eq!(server.request_count(CREATE), 1);
    for i in 1..=6 {
        assert!(record(&store, i).await.token.is_none());
    }
}

#[tokio::test]
async fn a_lifetime_within_the_policy_is_accepted_and_one_too_long_is_refused() {
    let server = server(TokenExpiry::Required {
        max_lifetime: 7 * DAY,
    })
    .await;
    let too_long = sync(&server, store(1), lifetime(30 * DAY));
    let err = too_long
        .sync_user(&users(1)[0])
        .await
        .expect_err("a 30-day lifetime exceeds the 7-day policy");
    assert!(
        matches!(
            err,
            Error::TokenExpiryPolicy {
                rule: ExpiryRule::TooFar,
                ..
            }
        ),
        "{err:?}"
    );

    let store = store(1);
    let fits = sync(&server, store.clone(), lifetime(6 * DAY));
    fits.sync_user(&users(1)[0]).await.unwrap();
    assert!(about(
        record(&store, 1).await.token_expires_at,
        now_ms() + (6 * DAY).as_millis() as i64
    ));
}

#[tokio::test]
async fn tokens_near_expiry_are_renewed_and_others_kept() {
    let server = server(TokenExpiry::Optional).await;
    let store = store(2);
    let first = sync(&server, store.clone(), lifetime(20 * DAY));
    first
        .sync_all(futures::stream::iter(users(2)), |_| {})
        .await
        .unwrap();
    let old = record(&store, 1).await;
    let kept = record(&store, 2).await;
    // User 1's token is about to expire (as if minted long ago).
    store
        .put_token(
            &HostUserId::Int(1),
            &NewToken {
                mattermost_user_id: old.mattermost_user_id.clone().unwrap(),
                token: old.token.clone().unwrap(),
                token_id: old.token_id.clone().unwrap(),
                expires_at: Some(now_ms() + 60_000),
            },
        )
        .await
        .unwrap();

    // A later sync renews what expires within its margin (a quarter of the
    // 30-day lifetime, at most a day): user 1's token, not user 2's 20 days.
    let later = sync(&server, store.clone(), lifetime(30 * DAY));
    let mut outcomes = Vec::new();
    let report = later
        .sync_all(futures::stream::iter(users(2)), |r| {
            if let Ok(o) = r {
                outcomes.push((o.user.clone(), o.token));
            }
        })
        .await
        .unwrap();
    assert_eq!(report.summary.failed, 0);
    outcomes.sort_by_key(|(u, _)| u.to_key_string());
    assert_eq!(
        outcomes,
        vec![
            (HostUserId::Int(1), TokenOutcome::Replaced),
            (HostUserId::Int(2), TokenOutcome::Kept),
        ]
    );
    let renewed = record(&store, 1).await;
    assert_ne!(renewed.token_id, old.token_id);
    assert!(about(
        renewed.token_expires_at,
        now_ms() + (30 * DAY).as_millis() as i64
    ));
    assert!(
        server.token(&old.token_id.unwrap()).is_none(),
        "the old token is revoked"
    );
    assert_eq!(record(&store, 2).await.token_id, kept.token_id);
}

#[tokio::test]
async fn an_expired_token_is_refused_by_the_server() {
    let server = server(TokenExpiry::Optional).await;
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let me = client.as_admin().me().await.unwrap();
    let minted = client
        .as_admin()
        .create_token(
            &me.id,
            &CreateToken {
                description: "short".into(),
                expires_at: Some(now_ms() + 1_500),
            },
        )
        .await
        .unwrap();
    assert!(minted.expires_at.is_some());
    let user = client.as_user(minted.token.clone());
    user.me().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert!(matches!(user.me().await, Err(Error::Unauthorized(_))));
}

#[tokio::test]
async fn verify_tells_an_expired_token_and_remints_it() {
    let server = server(TokenExpiry::Optional).await;
    let store = store(1);
    let sync = sync(&server, store.clone(), lifetime(30 * DAY));
    sync.sync_user(&users(1)[0]).await.unwrap();
    let rec = record(&store, 1).await;
    let account = rec.mattermost_user_id.clone().unwrap();
    // Swap in a token that expires in a moment.
    let short = sync
        .client()
        .as_admin()
        .create_token(
            &account,
            &CreateToken {
                description: "short".into(),
                expires_at: Some(now_ms() + 1_500),
            },
        )
        .await
        .unwrap();
    store
        .put_token(
            &HostUserId::Int(1),
            &NewToken {
                mattermost_user_id: account,
                token: short.token.clone(),
                token_id: short.id.clone(),
                expires_at: short.expires_at,
            },
        )
        .await
        .unwrap();
    assert_eq!(
        sync.verify(&HostUserId::Int(1), false).await.unwrap(),
        Verification::Valid
    );
    tokio::time::sleep(Duration::from_millis(1_600)).await;
    assert_eq!(
        sync.verify(&HostUserId::Int(1), false).await.unwrap(),
        Verification::TokenExpired
    );
    assert_eq!(
        sync.verify(&HostUserId::Int(1), true).await.unwrap(),
        Verification::Reminted
    );
    let renewed = record(&store, 1).await;
    assert_ne!(renewed.token_id.as_ref(), Some(&short.id));
    assert!(about(
        renewed.token_expires_at,
        now_ms() + (30 * DAY).as_millis() as i64
    ));
    assert!(
        server.token(&short.id).is_none(),
        "the expired token is revoked"
    );
}

#[tokio::test]
async fn lifetimes_are_checked_when_the_sync_is_made() {
    let server = server(TokenExpiry::Optional).await;
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let make = |options: SyncOptions| {
        UserSync::new(client.clone(), store(1), {
            let mut o = options;
            o.app_name = "expiry".into();
            o
        })
    };
    for (options, why) in [
        (lifetime(Duration::from_secs(10)), "shorter than a minute"),
        (
            {
                let mut o = SyncOptions::new("test");
                o.token_lifetime = Some(DAY);
                o.renew_before = Some(DAY);
                o
            },
            "renewal margin as long as the lifetime",
        ),
    ] {
        assert!(
            matches!(make(options), Err(Error::InvalidInput(_))),
            "{why}"
        );
    }
    assert!(make(lifetime(DAY)).is_ok());
}
