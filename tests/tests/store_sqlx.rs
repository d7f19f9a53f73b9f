//! The sqlx stores: the conformance suite on PostgreSQL, MariaDB and SQLite
//! (in memory and in a file), a host's own sqlx migrations next to the
//! store's, then configuration and error behaviour. The migration steps
//! themselves are the migration conformance suite's (`tests/migrations.rs`),
//! run through both adapters.
//!
//! PostgreSQL and MariaDB tests need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL`; without them they print SKIPPED. Each
//! test works in a namespace of its own (a PostgreSQL schema or a MariaDB
//! database named `mmt_sqlx_<pid>_...`), dropped at the end of the test;
//! namespaces left behind by processes that are gone are dropped the next
//! time the suite runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mattermost_tokens::{HostUserId, StoreError, TokenStore, UserId};
use mattermost_tokens_sqlx::sqlx::SqlSafeStr;
use mattermost_tokens_sqlx::sqlx::migrate::{Migration, MigrationType, Migrator};
use mattermost_tokens_sqlx::sqlx::mysql::MySqlPoolOptions;
use mattermost_tokens_sqlx::sqlx::postgres::PgPoolOptions;
use mattermost_tokens_sqlx::sqlx::sqlite::SqlitePool;
use mattermost_tokens_sqlx::{
    DEFAULT_EXPIRY_COLUMN, EXPIRY_MIGRATION_NAME, KeyType, MIGRATIONS_TABLE, MySqlTokenStore,
    PgTokenStore, SqliteTokenStore,
};
use mattermost_tokens_tests::conformance::StoreFactory;
use mattermost_tokens_tests::migration_conformance::{MigratingStore as Store, token};
use mattermost_tokens_tests::scratch::{Kind, Pool, ScratchDb};

const PREFIX: &str = "mmt_sqlx_";

/// A pool on a fresh namespace (PostgreSQL schema, MariaDB database, SQLite
/// database), with this suite's views of it.
struct Db(ScratchDb);

impl std::ops::Deref for Db {
    type Target = ScratchDb;
    fn deref(&self) -> &ScratchDb {
        &self.0
    }
}

impl Db {
    async fn open(kind: Kind, test: &str) -> Option<Db> {
        if kind == Kind::Sqlite {
            return Some(Db::sqlite_memory().await);
        }
        ScratchDb::open(kind, PREFIX, test).await.map(Db)
    }

    async fn sqlite_memory() -> Db {
        Db(ScratchDb::sqlite_memory().await)
    }

    async fn sqlite_file() -> Db {
        Db(ScratchDb::sqlite_file(PREFIX).await)
    }

    fn store(&self, table: &str, key_type: KeyType) -> Arc<dyn Store> {
        macro_rules! configured {
            ($store:expr) => {
                Arc::new(
                    $store
                        .with_table_name(table)
                        .unwrap()
                        .with_key_type(key_type),
                )
            };
        }
        match &self.pool {
            Pool::Pg(p) => configured!(PgTokenStore::new(p.clone())),
            Pool::My(p) => configured!(MySqlTokenStore::new(p.clone())),
            Pool::Lite(p) => configured!(SqliteTokenStore::new(p.clone())),
        }
    }

    async fn column_names(&self, table: &str) -> Vec<String> {
        let q = match self.kind() {
            Kind::Postgres => format!(
                "SELECT column_name::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
            ),
            Kind::MariaDb => format!(
                "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' ORDER BY ORDINAL_POSITION"
            ),
            Kind::Sqlite => format!("SELECT name FROM pragma_table_info('{table}')"),
        };
        self.rows(&q)
            .await
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect()
    }

    /// A users table holding `users` (all of one kind); text keys are a
    /// native `uuid` column when `uuid` is set (PostgreSQL).
    async fn users_table(&self, users: &[HostUserId], uuid: bool) -> (String, KeyType) {
        let (table, key) = self.0.users_table(users, uuid).await;
        (table, key.into())
    }

    async fn finish(self) {
        self.0.finish().await
    }
}

// ---------------------------------------------------------------------------
// Conformance.

struct Factory {
    kind: Kind,
    /// Text keys in a native `uuid` column (PostgreSQL).
    uuid: bool,
    /// SQLite in a temporary file instead of memory.
    file: bool,
}

#[async_trait]
impl StoreFactory for Factory {
    async fn fresh(&self, users: &[HostUserId]) -> Option<Arc<dyn TokenStore>> {
        let db = if self.file {
            Db::sqlite_file().await
        } else {
            Db::open(self.kind, "sqlx conformance").await?
        };
        let (table, key_type) = db.users_table(users, self.uuid).await;
        let store = db.store(&table, key_type);
        store.migrate().await.unwrap();
        // The namespace is dropped by a later run (a factory has no
        // teardown); the file goes with the temporary directory.
        Some(store)
    }
}

const fn factory(kind: Kind, uuid: bool, file: bool) -> Factory {
    Factory { kind, uuid, file }
}

const POSTGRES: Factory = factory(Kind::Postgres, false, false);
const POSTGRES_UUID: Factory = factory(Kind::Postgres, true, false);
const MARIADB: Factory = factory(Kind::MariaDb, false, false);
const SQLITE_MEMORY: Factory = factory(Kind::Sqlite, false, false);
const SQLITE_FILE: Factory = factory(Kind::Sqlite, false, true);

mattermost_tokens_tests::conformance_tests!(postgres, crate::POSTGRES);
mattermost_tokens_tests::conformance_tests!(postgres_uuid, crate::POSTGRES_UUID);
mattermost_tokens_tests::conformance_tests!(mariadb, crate::MARIADB);
mattermost_tokens_tests::conformance_tests!(sqlite_memory, crate::SQLITE_MEMORY);
mattermost_tokens_tests::conformance_tests!(sqlite_file, crate::SQLITE_FILE);

// ---------------------------------------------------------------------------
// The host's own sqlx migrations.

/// The store's records of `table` in its own tracking table.
async fn tracking_rows(db: &Db) -> Vec<Vec<Option<String>>> {
    db.rows(&format!(
        "SELECT users_table, {} FROM {MIGRATIONS_TABLE} ORDER BY users_table, version",
        db.text("version")
    ))
    .await
}

/// A host with its own sqlx migrations (default table `_sqlx_migrations`)
/// runs them before and after ours.
async fn host_migrator_coexists(kind: Kind) {
    let Some(owned) = Db::open(kind, "host_migrator_coexists").await else {
        return;
    };
    let db = &owned;
    let v1 = Migration::new(
        1,
        "create users".into(),
        MigrationType::Simple,
        "CREATE TABLE users (id BIGINT NOT NULL PRIMARY KEY, email VARCHAR(255) NOT NULL)"
            .into_sql_str(),
        false,
    );
    let v2 = Migration::new(
        2,
        "add nickname".into(),
        MigrationType::Simple,
        "ALTER TABLE users ADD COLUMN nickname VARCHAR(50)".into_sql_str(),
        false,
    );
    let first = Migrator::with_migrations(vec![v1.clone()]);
    let both = Migrator::with_migrations(vec![v1, v2]);
    async fn run(db: &Db, m: &Migrator) {
        match &db.pool {
            Pool::Pg(p) => m.run(p).await,
            Pool::My(p) => m.run(p).await,
            Pool::Lite(p) => m.run(p).await,
        }
        .expect("the host's migrations run")
    }

    run(db, &first).await;
    db.exec("INSERT INTO users (id, email) VALUES (1, 'ada@example.com')")
        .await;
    let store = db.store("users", KeyType::Integer);
    store.migrate().await.unwrap();
    run(db, &first).await;
    run(db, &both).await;
    store.migrate().await.unwrap();
    run(db, &both).await;

    let host = db
        .rows(&format!(
            "SELECT {} FROM _sqlx_migrations ORDER BY version",
            db.text("version")
        ))
        .await;
    assert_eq!(
        host,
        vec![vec![Some("1".to_string())], vec![Some("2".to_string())]]
    );
    let versions = mattermost_tokens::store::schema::Step::USERS_TABLE
        .map(|s| vec![Some("users".to_owned()), Some(s.version().to_string())]);
    assert_eq!(tracking_rows(db).await, versions);
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(1), &token(1, "x"))
            .await
            .unwrap()
    );

    store.undo().await.unwrap();
    run(db, &both).await;
    assert_eq!(db.column_names("users").await, ["id", "email", "nickname"]);
    owned.finish().await;
}

mattermost_tokens_tests::on_every_database! {
    workers = 2,
    postgres: postgres_host_migrations,
    mariadb: mariadb_host_migrations,
    sqlite: sqlite_host_migrations;
    host_migrator_coexists,
}

// ---------------------------------------------------------------------------
// Configuration and errors.

#[tokio::test]
async fn identifiers_are_validated() {
    let pool = SqlitePool::connect_lazy("sqlite::memory:").unwrap();
    for bad in [
        "users; drop table x",
        "users ",
        "\"users\"",
        "1users",
        "a.b.c",
        "",
    ] {
        assert!(
            matches!(
                SqliteTokenStore::new(pool.clone()).with_table_name(bad),
                Err(StoreError::Config(_))
            ),
            "{bad:?}"
        );
        assert!(
            matches!(
                SqliteTokenStore::new(pool.clone()).with_key_column(bad),
                Err(StoreError::Config(_))
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        SqliteTokenStore::new(pool.clone()).with_key_column("users.id"),
        Err(StoreError::Config(_))
    ));
    let store = SqliteTokenStore::new(pool)
        .with_table_name("main.app_users")
        .unwrap()
        .with_key_column("user_key")
        .unwrap();
    assert_eq!(store.table_name(), "main.app_users");
    assert_eq!(store.key_column(), "user_key");
}

/// The expiry column's name is validated like the key column's, and may be
/// neither the key column nor another of the store's columns, whichever is
/// configured first.
#[tokio::test]
async fn expiry_column_is_validated() {
    let pool = SqlitePool::connect_lazy("sqlite::memory:").unwrap();
    let store = || SqliteTokenStore::new(pool.clone());
    let refused = |r: Result<SqliteTokenStore, StoreError>, what: &str| match r {
        Err(StoreError::Config(message)) => message,
        other => panic!("{what}: expected StoreError::Config, got {other:?}"),
    };
    assert_eq!(DEFAULT_EXPIRY_COLUMN, "mattermost_token_expires_at");
    assert_eq!(
        EXPIRY_MIGRATION_NAME,
        "add_mattermost_token_expires_at_column"
    );
    assert_eq!(store().expiry_column(), DEFAULT_EXPIRY_COLUMN);
    for bad in [
        "expires; drop table users",
        "expires ",
        "\"expires\"",
        "1expires",
        "users.expires",
        "a.b.c",
        "",
    ] {
        refused(store().with_expiry_column(bad), bad);
    }
    for taken in [
        "id",
        "ID",
        "mattermost_user_id",
        "mattermost_token",
        "Mattermost_Token_Id",
    ] {
        let msg = refused(store().with_expiry_column(taken), taken);
        assert!(msg.contains(taken), "{msg}");
    }
    refused(
        store()
            .with_key_column("user_key")
            .unwrap()
            .with_expiry_column("USER_KEY"),
        "expiry after key",
    );
    refused(
        store()
            .with_expiry_column("user_key")
            .unwrap()
            .with_key_column("user_key"),
        "key after expiry",
    );
    refused(
        store().with_key_column(DEFAULT_EXPIRY_COLUMN),
        "key named as the default expiry column",
    );
    let configured = store()
        .with_expiry_column("token_expiry_ms")
        .unwrap()
        .with_key_column(DEFAULT_EXPIRY_COLUMN)
        .unwrap();
    assert_eq!(configured.expiry_column(), "token_expiry_ms");
    assert_eq!(configured.key_column(), DEFAULT_EXPIRY_COLUMN);
    assert!(format!("{configured:?}").contains("token_expiry_ms"));
}

#[tokio::test]
async fn schema_qualified_sqlite_table() {
    let db = Db::sqlite_memory().await;
    db.exec("CREATE TABLE app_users (user_key INTEGER PRIMARY KEY)")
        .await;
    db.exec("INSERT INTO app_users (user_key) VALUES (7)").await;
    let Pool::Lite(pool) = &db.pool else {
        unreachable!()
    };
    let store = SqliteTokenStore::new(pool.clone())
        .with_table_name("main.app_users")
        .unwrap()
        .with_key_column("user_key")
        .unwrap();
    store.migrate().await.unwrap();
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(7), &token(7, "v"))
            .await
            .unwrap()
    );
    store.undo_migration().await.unwrap();
    assert_eq!(db.column_names("app_users").await, ["user_key"]);
}

/// A PostgreSQL `uuid` key answers to every spelling PostgreSQL accepts,
/// and results come back under the caller's own ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_uuid_spellings() {
    let Some(db) = Db::open(Kind::Postgres, "postgres_uuid_spellings").await else {
        return;
    };
    let canon = "7f1c2a9e-0000-4000-8000-000000000001";
    let (t, kt) = db
        .users_table(&[HostUserId::Text(canon.into())], true)
        .await;
    assert_eq!(kt, KeyType::Uuid);
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let upper = HostUserId::Text(canon.to_uppercase());
    assert!(
        store
            .put_token_if_absent(&upper, &token(1, "v"))
            .await
            .unwrap()
    );
    let bare = HostUserId::Text(canon.replace('-', ""));
    assert!(store.get(&bare).await.unwrap().unwrap().token.is_some());
    let many = store
        .get_many(&[upper.clone(), HostUserId::Text("not-a-uuid".into())])
        .await
        .unwrap();
    assert_eq!(many.keys().collect::<Vec<_>>(), [&upper]);
    assert!(matches!(
        store
            .put_token(&HostUserId::Text("not-a-uuid".into()), &token(2, "v"))
            .await,
        Err(StoreError::UnknownUser(_))
    ));
    db.finish().await;
}

/// Connection refused: `Unavailable`, within the pool's acquire timeout,
/// and neither the URL's password nor the token in any error text.
#[tokio::test]
async fn unreachable_database_is_unavailable_quickly() {
    let started = Instant::now();
    let pg = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://app:hunter2-secret@127.0.0.1:1/app")
        .unwrap();
    let my = MySqlPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("mysql://app:hunter2-secret@127.0.0.1:1/app")
        .unwrap();
    let stores: Vec<Arc<dyn Store>> = vec![
        Arc::new(PgTokenStore::new(pg)),
        Arc::new(MySqlTokenStore::new(my)),
    ];
    for store in stores {
        let t = token(1, "token-that-must-not-leak");
        let errors = [
            store.get(&HostUserId::Int(1)).await.unwrap_err(),
            store
                .put_token_if_absent(&HostUserId::Int(1), &t)
                .await
                .unwrap_err(),
            store.migrate().await.unwrap_err(),
        ];
        for e in errors {
            assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
            let text = format!("{e} {e:?} {:?}", std::error::Error::source(&e));
            assert!(!text.contains("hunter2"), "{text}");
            assert!(!text.contains("token-that-must-not-leak"), "{text}");
        }
    }
    // Six calls, each bounded by the 500 ms acquire timeout.
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "{:?}",
        started.elapsed()
    );
}

/// A closed pool is `Unavailable` as well.
#[tokio::test]
async fn closed_pool_is_unavailable() {
    let db = Db::sqlite_memory().await;
    let store = db.store("users", KeyType::Integer);
    let Pool::Lite(pool) = &db.pool else {
        unreachable!()
    };
    pool.close().await;
    let e = store.get(&HostUserId::Int(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
}

/// On a migrated table in a read-only database: reads work, `migrate()`
/// has nothing to write and succeeds, writes fail with a typed error that
/// quotes no token.
async fn check_read_only(store: Arc<dyn Store>) {
    let u = HostUserId::Int(1);
    assert!(store.get(&u).await.unwrap().is_some());
    store.migrate().await.unwrap();
    let e = store
        .put_token_if_absent(&u, &token(1, "secret-token-value"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
    assert!(e.to_string().contains("read-only"), "{e}");
    assert!(!format!("{e} {e:?}").contains("secret-token-value"));
    let e = store.clear_token(&u).await.unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
    let e = store
        .set_mattermost_user_id(&u, &UserId::new("a1b2c3d4e5f6g7h8i9j0k1l2m3"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::ReadOnly { .. }), "{e:?}");
}

/// A migrated one-user table, seen through a second, read-only pool on the
/// same database (SQLite in a file opened `mode=ro`, a PostgreSQL session
/// with `default_transaction_read_only`, a MariaDB session with
/// `TRANSACTION READ ONLY`).
async fn read_only(kind: Kind, test: &str) {
    let Some(db) = (match kind {
        Kind::Sqlite => Some(Db::sqlite_file().await),
        _ => Db::open(kind, test).await,
    }) else {
        return;
    };
    let (table, kt) = db.users_table(&[HostUserId::Int(1)], false).await;
    db.store(&table, kt).migrate().await.unwrap();
    let ro = Db(ScratchDb::on(db.pool.read_only().await));
    check_read_only(ro.store(&table, kt)).await;
    db.finish().await;
}

#[tokio::test]
async fn read_only_sqlite_is_typed() {
    read_only(Kind::Sqlite, "read_only_sqlite_is_typed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_postgres_is_typed() {
    read_only(Kind::Postgres, "read_only_postgres_is_typed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mariadb_is_typed() {
    read_only(Kind::MariaDb, "read_only_mariadb_is_typed").await;
}

#[tokio::test]
async fn debug_shows_no_secrets() {
    let db = Db::sqlite_memory().await;
    let Pool::Lite(pool) = &db.pool else {
        unreachable!()
    };
    let store = SqliteTokenStore::new(pool.clone()).with_key_type(KeyType::Uuid);
    let s = format!("{store:?}");
    assert!(
        s.contains("SQLite") && s.contains("users") && s.contains("Uuid"),
        "{s}"
    );
    let pg = PgPoolOptions::new()
        .connect_lazy("postgres://app:hunter2-secret@127.0.0.1:1/app")
        .unwrap();
    let s = format!("{:?}", PgTokenStore::new(pg));
    assert!(!s.contains("hunter2"), "{s}");
}
