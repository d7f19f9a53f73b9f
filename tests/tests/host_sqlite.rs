//! A host's SQLite file as it comes: every journal mode, both adapters,
//! concurrency 1, 8 and 64, 2,000 Laravel users read through the adapters'
//! paged host-user sources. Each run ends in bounded time with every user
//! holding exactly one live token equal to the stored one.
//!
//! Before host users were read in pages, a sync over a file in SQLite's
//! default journal mode (`delete`) hung: the one open `SELECT` over the
//! users table kept a read lock that blocked every write of the sync.

use std::sync::Arc;

use futures::{Stream, StreamExt};
use mattermost_tokens::host_table::{self, HostUserSource};
use mattermost_tokens::*;
use mattermost_tokens_sqlx::KeyType;
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::laravel::{self, BOUND, JournalMode, TempDir};
use mattermost_tokens_tests::promise::assert_promise;

const USERS: i64 = 2_000;

#[derive(Clone, Copy, Debug)]
enum Adapter {
    Sqlx,
    Diesel,
}

/// The adapter's token store (migrated) and host-user source on `path`.
async fn open(
    adapter: Adapter,
    path: &std::path::Path,
    mode: JournalMode,
) -> (Arc<dyn TokenStore>, Arc<dyn HostUserSource>) {
    let table = HostUserTable::laravel().with_page_size(300).unwrap();
    match adapter {
        Adapter::Sqlx => {
            let pool = laravel::sqlite_host_pool(path, mode, false).await;
            let store = mattermost_tokens_sqlx::SqliteTokenStore::new(pool.clone());
            store.migrate().await.unwrap();
            let users = mattermost_tokens_sqlx::SqliteHostUsers::new(pool, table);
            (Arc::new(store), Arc::new(users))
        }
        Adapter::Diesel => {
            let pool =
                mattermost_tokens_diesel::sqlite::pool(&path.display().to_string(), 4).unwrap();
            let store = mattermost_tokens_diesel::sqlite::SqliteTokenStore::new(pool.clone());
            store.migrate().await.unwrap();
            let users = mattermost_tokens_diesel::SqliteHostUsers::new(pool, table);
            (Arc::new(store), Arc::new(users))
        }
    }
}

fn users_of(source: Arc<dyn HostUserSource>) -> impl Stream<Item = HostUser> + Send {
    host_table::stream(source).map(|r| r.expect("host users readable"))
}

async fn run(adapter: Adapter, mode: JournalMode, concurrency: usize) {
    let name = format!("{adapter:?}-{}-{concurrency}", mode.name()).to_lowercase();
    let dir = TempDir::new(&format!("host-sqlite-{name}"));
    let path = dir.join("app.sqlite");
    let host = laravel::sqlite_file(&path, mode, USERS).await;
    let server = StandIn::start().await.unwrap();
    let (store, source) = open(adapter, &path, mode).await;
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(
        client,
        store.clone(),
        SyncOptions::new("laravel").concurrency(concurrency),
    )
    .unwrap();
    let report = tokio::time::timeout(BOUND, sync.sync_all(users_of(source), |_| {}))
        .await
        .unwrap_or_else(|_| panic!("{name}: the sync did not finish within {BOUND:?}"))
        .unwrap();
    assert_eq!(
        (report.summary.minted, report.summary.failed),
        (USERS as u64, 0),
        "{name}: {:?}",
        report.failures.first()
    );
    let ids: Vec<HostUserId> = (1..=USERS).map(HostUserId::Int).collect();
    assert_promise(&server, store.as_ref(), &ids).await;
    // The host's journal mode is still its own.
    let got: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&host)
        .await
        .unwrap();
    assert_eq!(got, mode.name(), "{name}: journal mode changed");
}

macro_rules! matrix {
    ($($name:ident: $adapter:ident, $mode:ident, $concurrency:expr;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            run(Adapter::$adapter, JournalMode::$mode, $concurrency).await;
        }
    )*};
}

matrix! {
    sqlx_delete_1: Sqlx, Delete, 1;
    sqlx_delete_8: Sqlx, Delete, 8;
    sqlx_delete_64: Sqlx, Delete, 64;
    sqlx_truncate_1: Sqlx, Truncate, 1;
    sqlx_truncate_8: Sqlx, Truncate, 8;
    sqlx_truncate_64: Sqlx, Truncate, 64;
    sqlx_wal_1: Sqlx, Wal, 1;
    sqlx_wal_8: Sqlx, Wal, 8;
    sqlx_wal_64: Sqlx, Wal, 64;
    diesel_delete_1: Diesel, Delete, 1;
    diesel_delete_8: Diesel, Delete, 8;
    diesel_delete_64: Diesel, Delete, 64;
    diesel_truncate_1: Diesel, Truncate, 1;
    diesel_truncate_8: Diesel, Truncate, 8;
    diesel_truncate_64: Diesel, Truncate, 64;
    diesel_wal_1: Diesel, Wal, 1;
    diesel_wal_8: Diesel, Wal, 8;
    diesel_wal_64: Diesel, Wal, 64;
}

/// The paged source reads every shape the table description allows, and
/// holds no read open between pages: a write from another connection
/// commits while a stream is half consumed (in `delete` mode an open read
/// would make it wait out the busy timeout and fail).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_hold_no_lock_between_them() {
    let dir = TempDir::new("host-sqlite-pages");
    let path = dir.join("app.sqlite");
    let host = laravel::sqlite_file(&path, JournalMode::Delete, 25).await;
    for adapter in [Adapter::Sqlx, Adapter::Diesel] {
        let (_, source) = open(adapter, &path, JournalMode::Delete).await;
        let small: Arc<dyn HostUserSource> = match adapter {
            Adapter::Sqlx => {
                let pool = laravel::sqlite_host_pool(&path, JournalMode::Delete, false).await;
                Arc::new(mattermost_tokens_sqlx::SqliteHostUsers::new(
                    pool,
                    HostUserTable::laravel().with_page_size(10).unwrap(),
                ))
            }
            Adapter::Diesel => Arc::new(mattermost_tokens_diesel::SqliteHostUsers::new(
                mattermost_tokens_diesel::sqlite::pool(&path.display().to_string(), 2).unwrap(),
                HostUserTable::laravel().with_page_size(10).unwrap(),
            )),
        };
        let mut stream = std::pin::pin!(host_table::stream(small));
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(first.id, HostUserId::Int(1));
        assert_eq!(first.first_name, "User");
        assert_eq!(first.email_verified, Some(false));
        // A write with a 100 ms busy timeout, mid-stream.
        let writer = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                format!("sqlite://{}", path.display())
                    .parse::<sqlx::sqlite::SqliteConnectOptions>()
                    .unwrap()
                    .busy_timeout(std::time::Duration::from_millis(100)),
            )
            .await
            .unwrap();
        sqlx::query("UPDATE users SET remember_token = 'r' WHERE id = 25")
            .execute(&writer)
            .await
            .expect("no read is held open between pages");
        let rest: Vec<HostUser> = stream.map(Result::unwrap).collect().await;
        assert_eq!(rest.len(), 24);
        assert_eq!(rest[0].email_verified, Some(true), "user 2 is verified");
        assert_eq!(
            source.by_ids(&[7.into(), 99.into()]).await.unwrap().len(),
            1
        );
    }
    drop(host);
}

/// Text keys (a UUID-keyed Laravel table, say) page in key order too, and
/// a table with split name columns and no verification column reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_keys_and_other_shapes_page_in_key_order() {
    let dir = TempDir::new("host-sqlite-text-keys");
    let path = dir.join("app.sqlite");
    let host = laravel::sqlite_file(&path, JournalMode::Delete, 0).await;
    laravel::sqlite_exec(
        &host,
        "CREATE TABLE members (uuid TEXT PRIMARY KEY, given TEXT, family TEXT, mail TEXT NOT NULL)",
    )
    .await;
    let keys: Vec<String> = (0..23)
        .map(|i| format!("{:08x}-aaaa-4bbb-8ccc-{i:012}", i * 7919))
        .collect();
    for (i, k) in keys.iter().enumerate() {
        laravel::sqlite_exec(
            &host,
            &format!(
                "INSERT INTO members VALUES ('{k}', 'Given{i}', 'Family{i}', 'm{i}@example.com')"
            ),
        )
        .await;
    }
    let table = HostUserTable::laravel()
        .with_table_name("members")
        .unwrap()
        .with_key_column("uuid")
        .unwrap()
        .with_email_column("mail")
        .unwrap()
        .with_split_name_columns("given", "family")
        .unwrap()
        .with_email_verified_column(None)
        .unwrap()
        .with_page_size(5)
        .unwrap();
    let mut sorted = keys.clone();
    sorted.sort();
    let sources: [Arc<dyn HostUserSource>; 2] = [
        Arc::new(
            mattermost_tokens_sqlx::SqliteHostUsers::new(host.clone(), table.clone())
                .with_key_type(KeyType::Uuid),
        ),
        Arc::new(
            mattermost_tokens_diesel::SqliteHostUsers::new(
                mattermost_tokens_diesel::sqlite::pool(&path.display().to_string(), 2).unwrap(),
                table.clone(),
            )
            .with_key_type(KeyType::Uuid),
        ),
    ];
    for source in sources {
        let users: Vec<HostUser> = host_table::stream(source.clone())
            .map(Result::unwrap)
            .collect()
            .await;
        let got: Vec<String> = users.iter().map(|u| u.id.to_string()).collect();
        assert_eq!(got, sorted, "{source:?}");
        let first = users.iter().find(|u| u.email == "m0@example.com").unwrap();
        assert_eq!(
            (first.first_name.as_str(), first.last_name.as_str()),
            ("Given0", "Family0")
        );
        assert_eq!(first.email_verified, Some(false));
        let one = source
            .by_ids(&[
                HostUserId::Text(keys[3].clone()),
                HostUserId::Text("nope".into()),
            ])
            .await
            .unwrap();
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].email, "m3@example.com");
    }
}
