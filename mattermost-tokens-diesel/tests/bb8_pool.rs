//! Stores over diesel-async's bb8 pool (the `bb8` feature):
//! `cargo test -p mattermost-tokens-diesel --features bb8 --test bb8_pool`.
#![cfg(all(feature = "bb8", feature = "_sqlite", feature = "postgres"))]

use std::sync::Arc;
use std::time::{Duration, Instant};

use mattermost_tokens::{
    AccessToken, HostUserId, NewToken, StoreError, TokenId, TokenStore, UserId,
};
use mattermost_tokens_diesel::diesel_async::pooled_connection::bb8::Pool;
use mattermost_tokens_diesel::diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig,
};
use mattermost_tokens_diesel::diesel_async::{
    AsyncMigrationHarness, AsyncPgConnection, SimpleAsyncConnection,
};
use mattermost_tokens_diesel::sqlite::{self, AsyncSqliteConnection};
use mattermost_tokens_diesel::{DieselTokenStore, PgTokenStore};

fn token(n: usize) -> NewToken {
    NewToken {
        mattermost_user_id: UserId::new(format!("{n:0>26}")),
        token: AccessToken::new(format!("token-{n}")),
        token_id: TokenId::new(format!("{n:0>26}")),
        expires_at: None,
    }
}

async fn sqlite_pool() -> Pool<AsyncSqliteConnection> {
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("mmt_diesel_bb8_{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut config = ManagerConfig::<AsyncSqliteConnection>::default();
    config.custom_setup = Box::new(|url| {
        let url = url.to_owned();
        Box::pin(async move { sqlite::establish(&url).await })
    });
    let manager = AsyncDieselConnectionManager::new_with_config(path.to_str().unwrap(), config);
    Pool::builder().max_size(4).build(manager).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_on_bb8() {
    let pool = sqlite_pool().await;
    pool.get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); \
             INSERT INTO users (id) VALUES (1), (2), (3)",
        )
        .await
        .unwrap();
    let store = Arc::new(DieselTokenStore::new(pool.clone()));
    store.migrate().await.unwrap();

    // diesel-async's harness over a bb8 connection finds it applied.
    let mut harness = AsyncMigrationHarness::new(pool.get_owned().await.unwrap());
    store.migrations().run(&mut harness).unwrap();
    drop(harness);

    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_token_if_absent(&HostUserId::Int(1), &token(i))
                .await
                .unwrap()
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert_eq!(store.list_missing(None, 10).await.unwrap().users.len(), 2);
    store.undo_migration().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_postgres_on_bb8() {
    let port = {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new(format!(
        "postgres://app:bb8-secret@127.0.0.1:{port}/app"
    ));
    let pool = Pool::builder()
        .connection_timeout(Duration::from_millis(500))
        .build_unchecked(manager);
    let store: PgTokenStore<_> = PgTokenStore::new(pool);
    let start = Instant::now();
    let err = store.get(&HostUserId::Int(1)).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(3));
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(!format!("{err} {err:?}").contains("bb8-secret"));
}
