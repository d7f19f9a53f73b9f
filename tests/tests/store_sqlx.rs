//! The sqlx stores: the conformance suite on PostgreSQL, MariaDB and SQLite
//! (in memory and in a file), then migration, schema and error behaviour on
//! each database.
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
use mattermost_tokens::{
    AccessToken, HostUserId, NewToken, StoreError, TokenId, TokenStore, UserId,
};
use mattermost_tokens_sqlx::sqlx::SqlSafeStr;
use mattermost_tokens_sqlx::sqlx::migrate::{Migration, MigrationType, Migrator};
use mattermost_tokens_sqlx::sqlx::mysql::MySqlPoolOptions;
use mattermost_tokens_sqlx::sqlx::postgres::PgPoolOptions;
use mattermost_tokens_sqlx::sqlx::sqlite::SqlitePool;
use mattermost_tokens_sqlx::{
    Backend, DEFAULT_EXPIRY_COLUMN, EXPIRY_MIGRATION_NAME, EXPIRY_MIGRATION_VERSION, KeyType,
    MIGRATION_NAME, MIGRATION_VERSION, MIGRATIONS_TABLE, MySqlTokenStore, PgTokenStore,
    SqliteTokenStore, SqlxTokenStore, UNIQUE_INDEX_MIGRATION_NAME, UNIQUE_INDEX_MIGRATION_VERSION,
};
use mattermost_tokens_tests::conformance::StoreFactory;
use mattermost_tokens_tests::db::unique_suffix;
use mattermost_tokens_tests::scratch::{Kind, Pool, Rows, ScratchDb};

// ---------------------------------------------------------------------------
// A database to test against, whatever its kind.

/// A store with its migration methods, as a trait object.
#[async_trait]
trait Store: TokenStore {
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn undo(&self) -> Result<(), StoreError>;
    fn index_name(&self) -> String;
    fn expiry_column(&self) -> String;
}

#[async_trait]
impl<DB: Backend> Store for SqlxTokenStore<DB> {
    async fn migrate(&self) -> Result<(), StoreError> {
        SqlxTokenStore::migrate(self).await
    }
    async fn undo(&self) -> Result<(), StoreError> {
        self.undo_migration().await
    }
    fn index_name(&self) -> String {
        self.user_id_index_name().to_owned()
    }
    fn expiry_column(&self) -> String {
        SqlxTokenStore::expiry_column(self).to_owned()
    }
}

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
        self.store_with_expiry(table, key_type, DEFAULT_EXPIRY_COLUMN)
    }

    /// A store whose token expiry column is `expiry`.
    fn store_with_expiry(&self, table: &str, key_type: KeyType, expiry: &str) -> Arc<dyn Store> {
        match &self.pool {
            Pool::Pg(p) => Arc::new(
                PgTokenStore::new(p.clone())
                    .with_table_name(table)
                    .unwrap()
                    .with_key_type(key_type)
                    .with_expiry_column(expiry)
                    .unwrap(),
            ),
            Pool::My(p) => Arc::new(
                MySqlTokenStore::new(p.clone())
                    .with_table_name(table)
                    .unwrap()
                    .with_key_type(key_type)
                    .with_expiry_column(expiry)
                    .unwrap(),
            ),
            Pool::Lite(p) => Arc::new(
                SqliteTokenStore::new(p.clone())
                    .with_table_name(table)
                    .unwrap()
                    .with_key_type(key_type)
                    .with_expiry_column(expiry)
                    .unwrap(),
            ),
        }
    }

    /// The table's column definitions, in order.
    async fn columns(&self, table: &str) -> Rows {
        let q = match self.kind() {
            Kind::Postgres => format!(
                "SELECT column_name::text, data_type::text, is_nullable::text, column_default::text, \
                 character_maximum_length::text FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' ORDER BY ordinal_position"
            ),
            Kind::MariaDb => format!(
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), CAST(IS_NULLABLE AS CHAR), \
                 CAST(COLUMN_DEFAULT AS CHAR), CAST(EXTRA AS CHAR), CAST(COLLATION_NAME AS CHAR) \
                 FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}' \
                 ORDER BY ORDINAL_POSITION"
            ),
            Kind::Sqlite => format!(
                "SELECT name, type, CAST(\"notnull\" AS TEXT), dflt_value, CAST(pk AS TEXT) \
                 FROM pragma_table_info('{table}')"
            ),
        };
        self.rows(&q).await
    }

    /// The names of the table's indexes (in the current schema), lower
    /// case, sorted.
    async fn index_names(&self, table: &str) -> Vec<String> {
        let q = match self.kind() {
            Kind::Postgres => format!(
                "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
                 WHERE i.indrelid = to_regclass('{table}')"
            ),
            Kind::MariaDb => format!(
                "SELECT DISTINCT CAST(INDEX_NAME AS CHAR) FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = '{table}'"
            ),
            Kind::Sqlite => format!("SELECT name FROM pragma_index_list('{table}')"),
        };
        let mut names: Vec<String> = self
            .rows(&q)
            .await
            .into_iter()
            .map(|r| r[0].clone().unwrap().to_lowercase())
            .collect();
        names.sort();
        names
    }

    async fn column_names(&self, table: &str) -> Vec<String> {
        self.columns(table)
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
// Scenarios, run on every database.

fn token(n: u32, value: &str) -> NewToken {
    NewToken {
        mattermost_user_id: UserId::new(format!("{:0>26}", format!("u{n}"))),
        token: AccessToken::new(value),
        token_id: TokenId::new(format!("{:0>26}", format!("t{n}"))),
        expires_at: None,
    }
}

fn schema_message(r: Result<(), StoreError>) -> String {
    match r {
        Err(StoreError::Schema { message, .. }) => message,
        other => panic!("expected StoreError::Schema, got {other:?}"),
    }
}

async fn tracking_rows(db: &Db) -> Rows {
    db.rows(&format!(
        "SELECT users_table, {} FROM {MIGRATIONS_TABLE} ORDER BY users_table, version",
        db.text("version")
    ))
    .await
}

/// The tracking rows a migrated users table has: all three of its
/// migrations.
fn all_versions(table: &str) -> Rows {
    [
        MIGRATION_VERSION,
        UNIQUE_INDEX_MIGRATION_VERSION,
        EXPIRY_MIGRATION_VERSION,
    ]
    .iter()
    .map(|v| vec![Some(table.to_owned()), Some(v.to_string())])
    .collect()
}

/// The versions recorded for `table` (none when the tracking table does
/// not exist).
async fn tracked_versions(db: &Db, table: &str) -> Vec<String> {
    if db.column_names(MIGRATIONS_TABLE).await.is_empty() {
        return Vec::new();
    }
    db.rows(&format!(
        "SELECT {} FROM {MIGRATIONS_TABLE} WHERE users_table = '{table}' ORDER BY version",
        db.text("version")
    ))
    .await
    .into_iter()
    .map(|r| r[0].clone().unwrap())
    .collect()
}

fn versions() -> Vec<String> {
    vec![
        MIGRATION_VERSION.to_string(),
        UNIQUE_INDEX_MIGRATION_VERSION.to_string(),
        EXPIRY_MIGRATION_VERSION.to_string(),
    ]
}

fn mm(name: &str) -> UserId {
    UserId::new(format!("{name:0>26}"))
}

fn already_linked<T: std::fmt::Debug>(r: Result<T, StoreError>, user: &HostUserId, id: &UserId) {
    match r {
        Err(StoreError::AlreadyLinked {
            user: u,
            mattermost_user_id: m,
        }) if u == *user && m == *id => {}
        other => panic!("expected AlreadyLinked for {user:?} / {id:?}, got {other:?}"),
    }
}

async fn idempotent_and_reversible(db: &Db) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (table, kt) = db.users_table(&users, false).await;
    let before = db.column_names(&table).await;
    let indexes_before = db.index_names(&table).await;
    let store = db.store(&table, kt);

    // Several app instances starting at once.
    let runs = (0..4).map(|_| {
        let store = db.store(&table, kt);
        tokio::spawn(async move { store.migrate().await })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap().unwrap();
    }
    let migrated = db.columns(&table).await;
    let names: Vec<_> = migrated.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(
        names[before.len()..],
        [
            "mattermost_user_id",
            "mattermost_token",
            "mattermost_token_id",
            "mattermost_token_expires_at"
        ]
    );
    let index = store.index_name();
    assert_eq!(index, format!("{table}_mattermost_user_id_unique"));
    let mut indexes = indexes_before.clone();
    indexes.push(index.clone());
    indexes.sort();
    assert_eq!(db.index_names(&table).await, indexes);
    assert!(
        store
            .put_token_if_absent(&users[0], &token(1, "kept"))
            .await
            .unwrap()
    );

    // Again: nothing changes, the token is still there.
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&table).await, migrated);
    assert_eq!(db.index_names(&table).await, indexes);
    assert_eq!(tracking_rows(db).await, all_versions(&table));
    assert_eq!(
        store
            .get(&users[0])
            .await
            .unwrap()
            .unwrap()
            .token
            .unwrap()
            .expose_secret(),
        "kept"
    );

    store.undo().await.unwrap();
    assert_eq!(db.column_names(&table).await, before);
    assert_eq!(db.index_names(&table).await, indexes_before);
    assert!(tracking_rows(db).await.is_empty());
    store.undo().await.unwrap();
    assert_eq!(db.column_names(&table).await, before);

    store.migrate().await.unwrap();
    assert_eq!(db.columns(&table).await, migrated);
    assert_eq!(db.index_names(&table).await, indexes);
    assert!(store.get(&users[0]).await.unwrap().unwrap().token.is_none());
}

/// A host with its own sqlx migrations (default table `_sqlx_migrations`)
/// runs them before and after ours.
async fn host_migrator_coexists(db: &Db) {
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
    assert_eq!(tracking_rows(db).await, all_versions("users"));
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(1), &token(1, "x"))
            .await
            .unwrap()
    );

    store.undo().await.unwrap();
    run(db, &both).await;
    assert_eq!(db.column_names("users").await, ["id", "email", "nickname"]);
}

async fn clashing_column_type(db: &Db) {
    let table = format!("users_{}", unique_suffix());
    db.exec(&format!(
        "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, mattermost_token INTEGER)"
    ))
    .await;
    let before = db.columns(&table).await;
    let store = db.store(&table, KeyType::Integer);
    let msg = schema_message(store.migrate().await);
    assert!(msg.contains("mattermost_token"), "{msg}");
    assert!(msg.to_lowercase().contains("int"), "{msg}");
    // Nothing half-written.
    assert_eq!(db.columns(&table).await, before);
    // Undo does not drop a column it did not add either.
    schema_message(store.undo().await);
    assert_eq!(db.columns(&table).await, before);

    // A too-short id column clashes as well (SQLite does not enforce
    // declared lengths, so there VARCHAR(10) holds any text).
    if db.kind() == Kind::Sqlite {
        return;
    }
    let table = format!("users_{}", unique_suffix());
    db.exec(&format!(
        "CREATE TABLE {table} (id BIGINT NOT NULL PRIMARY KEY, mattermost_token_id VARCHAR(10))"
    ))
    .await;
    let msg = schema_message(db.store(&table, KeyType::Integer).migrate().await);
    assert!(msg.contains("mattermost_token_id"), "{msg}");
}

async fn missing_users_table(db: &Db) {
    let store = db.store("no_such_users", KeyType::Integer);
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains("no_such_users") && msg.contains("does not exist"),
        "{msg}"
    );
    schema_message(store.undo().await);
    // The store's own statements say the same.
    assert!(matches!(
        store.get(&HostUserId::Int(1)).await,
        Err(StoreError::Schema { .. })
    ));
}

async fn not_migrated_is_schema_error(db: &Db) {
    let (table, kt) = db.users_table(&[HostUserId::Int(1)], false).await;
    let store = db.store(&table, kt);
    let e = store.get(&HostUserId::Int(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert!(e.to_string().contains("migrate()"), "{e}");
    let e = store
        .put_token_if_absent(&HostUserId::Int(1), &token(1, "secret-token-value"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert!(!format!("{e} {e:?}").contains("secret-token-value"));
}

async fn key_type_checks(db: &Db) {
    // A text-keyed table with a store left at integer keys: migrate says so.
    let users = [HostUserId::Text("a".into())];
    let (table, _) = db.users_table(&users, false).await;
    let msg = schema_message(db.store(&table, KeyType::Integer).migrate().await);
    assert!(msg.contains("KeyType::Text"), "{msg}");
    // No such key column.
    let msg = schema_message(
        match &db.pool {
            Pool::Pg(p) => Arc::new(
                PgTokenStore::new(p.clone())
                    .with_table_name(&table)
                    .unwrap()
                    .with_key_column("uid")
                    .unwrap(),
            ) as Arc<dyn Store>,
            Pool::My(p) => Arc::new(
                MySqlTokenStore::new(p.clone())
                    .with_table_name(&table)
                    .unwrap()
                    .with_key_column("uid")
                    .unwrap(),
            ),
            Pool::Lite(p) => Arc::new(
                SqliteTokenStore::new(p.clone())
                    .with_table_name(&table)
                    .unwrap()
                    .with_key_column("uid")
                    .unwrap(),
            ),
        }
        .migrate()
        .await,
    );
    assert!(
        msg.contains("uid") && msg.contains("with_key_column"),
        "{msg}"
    );

    let store = db.store(&table, KeyType::Text);
    store.migrate().await.unwrap();

    // The wrong kind of HostUserId is a configuration error, not a panic or
    // a silent miss; get_many leaves such ids out.
    let e = store.get(&HostUserId::Int(1)).await.unwrap_err();
    assert!(matches!(e, StoreError::Config(_)), "{e:?}");
    let e = store
        .put_token(&HostUserId::Int(1), &token(1, "t"))
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::Config(_)), "{e:?}");
    let many = store
        .get_many(&[HostUserId::Int(1), users[0].clone()])
        .await
        .unwrap();
    assert_eq!(many.len(), 1);
}

/// A users table shaped like Laravel's default one, with rows: migrating
/// loses no row and changes no other column; undoing restores the table.
async fn laravel_table(db: &Db) {
    let t = format!("users_{}", unique_suffix());
    let ddl = match db.kind() {
        Kind::Postgres => format!(
            "CREATE TABLE {t} (id BIGSERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, \
             email VARCHAR(255) NOT NULL, email_verified_at TIMESTAMP(0) NULL, \
             password VARCHAR(255) NOT NULL, remember_token VARCHAR(100) NULL, \
             created_at TIMESTAMP(0) NULL, updated_at TIMESTAMP(0) NULL); \
             ALTER TABLE {t} ADD CONSTRAINT {t}_email_unique UNIQUE (email)"
        ),
        Kind::MariaDb => format!(
            "CREATE TABLE {t} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL, \
             email_verified_at TIMESTAMP NULL, password VARCHAR(255) NOT NULL, \
             remember_token VARCHAR(100) NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL, \
             UNIQUE KEY {t}_email_unique (email)) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        ),
        Kind::Sqlite => format!(
            "CREATE TABLE \"{t}\" (\"id\" integer PRIMARY KEY AUTOINCREMENT NOT NULL, \
             \"name\" varchar NOT NULL, \"email\" varchar NOT NULL, \"email_verified_at\" datetime, \
             \"password\" varchar NOT NULL, \"remember_token\" varchar, \"created_at\" datetime, \
             \"updated_at\" datetime); \
             CREATE UNIQUE INDEX \"{t}_email_unique\" ON \"{t}\" (\"email\")"
        ),
    };
    db.exec(&ddl).await;
    db.exec(&format!(
        "INSERT INTO {t} (name, email, email_verified_at, password, remember_token, created_at, updated_at) VALUES \
         ('Ada Lovelace', 'ada@example.com', '2026-01-20 10:00:00', '$2y$12$abcdefghijklmnopqrstuv', 'rt1', '2026-01-20 09:00:00', '2026-01-21 09:00:00'), \
         ('Zoë Ünïcode 日本', 'zoe@example.com', NULL, '$2y$12$zyxwvutsrqponmlkjihgfe', NULL, '2026-01-22 09:00:00', NULL), \
         ('Grace Hopper', 'grace@example.com', NULL, 'hash', 'rt3', NULL, NULL)"
    ))
    .await;
    let original = [
        "id",
        "name",
        "email",
        "email_verified_at",
        "password",
        "remember_token",
        "created_at",
        "updated_at",
    ];
    let dump_sql = format!(
        "SELECT {} FROM {t} ORDER BY id",
        original
            .iter()
            .map(|c| db.text(c))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let rows_before = db.rows(&dump_sql).await;
    let columns_before = db.columns(&t).await;
    let indexes_before = db.index_names(&t).await;
    assert_eq!(rows_before.len(), 3);

    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    // The host's indexes stay; the store's is on its own column.
    let mut indexes = indexes_before.clone();
    indexes.push(store.index_name());
    indexes.sort();
    assert_eq!(db.index_names(&t).await, indexes);
    assert_eq!(
        db.rows(&dump_sql).await,
        rows_before,
        "no row lost or changed"
    );
    let columns_after = db.columns(&t).await;
    assert_eq!(columns_after[..columns_before.len()], columns_before[..]);
    assert_eq!(columns_after.len(), columns_before.len() + 4);

    // The store works on it.
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(2), &token(2, "tök€n-🙂"))
            .await
            .unwrap()
    );
    let page = store.list_missing(None, 10).await.unwrap();
    assert_eq!(page.users, vec![HostUserId::Int(1), HostUserId::Int(3)]);
    assert_eq!(
        db.rows(&dump_sql).await,
        rows_before,
        "token writes touch only the store's columns"
    );

    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, columns_before);
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert_eq!(db.rows(&dump_sql).await, rows_before);
}

/// Tokens stored by the Laravel integration (a `mattermost_token`
/// VARCHAR(255) column and nothing else) survive the migration and read
/// back, without a token id.
async fn laravel_token_column_present(db: &Db) {
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, mattermost_token VARCHAR(255) NULL)"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO {t} (id, mattermost_token) VALUES (1, 'laravel-minted-token-value'), (2, NULL)"
    ))
    .await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    let rec = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        "laravel-minted-token-value"
    );
    assert!(rec.token_id.is_none());
    assert!(
        !store
            .put_token_if_absent(&HostUserId::Int(1), &token(1, "new"))
            .await
            .unwrap()
    );
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(2), &token(2, "new"))
            .await
            .unwrap()
    );
}

/// Writing the values a row already holds still counts as a match (MySQL
/// counts changed rows unless the client asks for found rows).
async fn same_values_still_match(db: &Db) {
    let (t, kt) = db.users_table(&[HostUserId::Int(1)], false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let u = HostUserId::Int(1);
    let tk = token(1, "same");
    store.put_token(&u, &tk).await.unwrap();
    store.put_token(&u, &tk).await.unwrap();
    store
        .set_mattermost_user_id(&u, &tk.mattermost_user_id)
        .await
        .unwrap();
    assert!(store.replace_token(&u, &tk.token_id, &tk).await.unwrap());
}

/// One test per scenario, each in a fresh namespace of database `$kind`.
/// `get_many` over more users than one `IN` list holds.
async fn get_many_in_chunks(db: &Db) {
    let users: Vec<HostUserId> = (1..=1100).map(HostUserId::Int).collect();
    let (t, kt) = db.users_table(&users, false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    assert!(
        store
            .put_token_if_absent(&users[700], &token(700, "v700"))
            .await
            .unwrap()
    );
    let mut ask = users.clone();
    ask.extend([HostUserId::Int(0), HostUserId::Int(5000)]);
    let many = store.get_many(&ask).await.unwrap();
    assert_eq!(many.len(), users.len());
    assert_eq!(
        many[&users[700]].token.as_ref().unwrap().expose_secret(),
        "v700"
    );
    assert!(many[&users[0]].token.is_none());
    assert!(store.get_many(&[]).await.unwrap().is_empty());
}

/// Rows that already share a `mattermost_user_id` (written before the
/// index existed, by hand or by the Laravel integration): `migrate()` says
/// how many and how to find them, and changes nothing, not even the columns
/// it would add; once they are fixed it goes through.
async fn duplicate_user_ids_refused(db: &Db) {
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, \
         mattermost_user_id VARCHAR(26) NULL, mattermost_token TEXT NULL)"
    ))
    .await;
    let (a, b, c) = (mm("a"), mm("b"), mm("c"));
    db.exec(&format!(
        "INSERT INTO {t} (id, mattermost_user_id, mattermost_token) VALUES \
         (1, '{a}', 'secret-token-of-row-1'), (2, '{a}', 'secret-token-of-row-2'), (3, '{a}', NULL), \
         (4, '{b}', NULL), (5, '{b}', NULL), (6, NULL, NULL), (7, NULL, NULL), (8, '{c}', NULL)"
    ))
    .await;
    let dump = format!(
        "SELECT {}, mattermost_user_id, mattermost_token FROM {t} ORDER BY id",
        db.text("id")
    );
    let rows = db.rows(&dump).await;
    let columns = db.columns(&t).await;
    let indexes = db.index_names(&t).await;
    let store = db.store(&t, KeyType::Integer);

    let msg = schema_message(store.migrate().await);
    for part in [
        "2 Mattermost user ids",
        "5 rows",
        "GROUP BY mattermost_user_id HAVING COUNT(*) > 1",
        "nothing was changed",
        "migrate() again",
        &store.index_name(),
        &t,
    ] {
        assert!(msg.contains(part), "{part:?} not in {msg}");
    }
    assert!(!msg.contains("secret-token"), "{msg}");
    assert!(!msg.contains(a.as_str()), "names no id: {msg}");
    assert_eq!(db.columns(&t).await, columns, "no column added");
    assert_eq!(db.rows(&dump).await, rows);
    assert_eq!(db.index_names(&t).await, indexes);
    assert!(tracked_versions(db, &t).await.is_empty());

    // One id left shared.
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = NULL, mattermost_token = NULL WHERE id IN (2, 3)"
    ))
    .await;
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains("1 Mattermost user id is held by 2 rows"),
        "{msg}"
    );
    assert_eq!(db.columns(&t).await, columns);

    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = NULL WHERE id = 5"
    ))
    .await;
    store.migrate().await.unwrap();
    assert_eq!(tracked_versions(db, &t).await, versions());
    assert!(db.index_names(&t).await.contains(&store.index_name()));
    already_linked(
        store.set_mattermost_user_id(&HostUserId::Int(5), &b).await,
        &HostUserId::Int(5),
        &b,
    );
    let kept = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
    assert_eq!(kept.token.unwrap().expose_secret(), "secret-token-of-row-1");
}

/// `undo_migration()` drops the index before the columns; a database
/// migrated before the index existed gets it from the next `migrate()`.
async fn undo_removes_index(db: &Db) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let indexes_before = db.index_names(&t).await;
    let store = db.store(&t, kt);
    let index = store.index_name();
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&index));
    assert_eq!(tracked_versions(db, &t).await, versions());

    store.undo().await.unwrap();
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert!(tracked_versions(db, &t).await.is_empty());
    store.undo().await.unwrap();

    // As the first release left it: the columns, no index, one record.
    store.migrate().await.unwrap();
    let drop = match db.kind() {
        Kind::MariaDb => format!("DROP INDEX {index} ON {t}"),
        _ => format!("DROP INDEX {index}"),
    };
    db.exec(&drop).await;
    db.exec(&format!(
        "DELETE FROM {MIGRATIONS_TABLE} WHERE users_table = '{t}' AND version = {UNIQUE_INDEX_MIGRATION_VERSION}"
    ))
    .await;
    let id = mm("shared");
    store.set_mattermost_user_id(&users[0], &id).await.unwrap();
    store.set_mattermost_user_id(&users[1], &id).await.unwrap();
    // Its duplicates stop the upgrade...
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains("1 Mattermost user id is held by 2 rows"),
        "{msg}"
    );
    assert_eq!(
        tracked_versions(db, &t).await,
        [
            MIGRATION_VERSION.to_string(),
            EXPIRY_MIGRATION_VERSION.to_string()
        ]
    );
    // ... until they are fixed.
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = NULL WHERE id = 2"
    ))
    .await;
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&index));
    assert_eq!(tracked_versions(db, &t).await, versions());
    already_linked(
        store.set_mattermost_user_id(&users[1], &id).await,
        &users[1],
        &id,
    );
}

/// A unique index on `mattermost_user_id` the host made (Laravel's
/// `->unique()`: a constraint on PostgreSQL, an index elsewhere; or one of
/// any other name) is taken as is; an index of the store's name that is not
/// one is refused.
async fn existing_unique_index_adopted(db: &Db) {
    let columns = "id BIGINT NOT NULL PRIMARY KEY, mattermost_user_id VARCHAR(26) NULL, \
                   mattermost_token TEXT NULL, mattermost_token_id VARCHAR(26) NULL";
    let (one, two) = (HostUserId::Int(1), HostUserId::Int(2));
    let id = mm("taken");

    // Laravel's name.
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!("CREATE TABLE {t} ({columns})")).await;
    db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2)"))
        .await;
    let laravel = match db.kind() {
        Kind::Postgres => format!(
            "ALTER TABLE {t} ADD CONSTRAINT {t}_mattermost_user_id_unique UNIQUE (mattermost_user_id)"
        ),
        _ => {
            format!("CREATE UNIQUE INDEX {t}_mattermost_user_id_unique ON {t} (mattermost_user_id)")
        }
    };
    db.exec(&laravel).await;
    let indexes = db.index_names(&t).await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    assert_eq!(db.index_names(&t).await, indexes);
    assert_eq!(tracked_versions(db, &t).await, versions());
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);
    store.undo().await.unwrap();
    assert_eq!(db.column_names(&t).await, ["id"]);

    // Another name.
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!("CREATE TABLE {t} ({columns})")).await;
    db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2)"))
        .await;
    let host_index = format!("host_idx_{}", unique_suffix());
    db.exec(&format!(
        "CREATE UNIQUE INDEX {host_index} ON {t} (mattermost_user_id)"
    ))
    .await;
    let indexes = db.index_names(&t).await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    assert_eq!(db.index_names(&t).await, indexes, "no second index");
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);
    let shared = NewToken {
        mattermost_user_id: id.clone(),
        ..token(9, "secret-token-value")
    };
    already_linked(store.put_token(&two, &shared).await, &two, &id);
    if db.kind() != Kind::Sqlite {
        // (SQLite cannot drop a column another index covers.)
        store.undo().await.unwrap();
        assert_eq!(db.column_names(&t).await, ["id"]);
    }

    // An index of the store's name that is not a unique one on the column.
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!("CREATE TABLE {t} ({columns})")).await;
    db.exec(&format!(
        "CREATE INDEX {t}_mattermost_user_id_unique ON {t} (mattermost_user_id, id)"
    ))
    .await;
    let before = (db.columns(&t).await, db.index_names(&t).await);
    let store = db.store(&t, KeyType::Integer);
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains(&store.index_name()) && msg.contains("not a unique index"),
        "{msg}"
    );
    assert_eq!((db.columns(&t).await, db.index_names(&t).await), before);
}

/// Every write that links an id: refused when another row holds it, with
/// nothing changed and no token in the error; fine on the row that holds
/// it. A compare-and-set that does not apply writes nothing and so
/// violates nothing.
async fn one_link_per_write(db: &Db) {
    let (one, two) = (HostUserId::Int(1), HostUserId::Int(2));
    let (t, kt) = db.users_table(&[one.clone(), two.clone()], false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let first = token(1, "token-of-user-one");
    let second = token(2, "token-of-user-two");
    store.put_token(&one, &first).await.unwrap();
    store.put_token(&two, &second).await.unwrap();
    let a = first.mattermost_user_id.clone();
    let stealing = NewToken {
        mattermost_user_id: a.clone(),
        ..token(3, "secret-stealing-token")
    };

    // Compare-and-set conditions that do not hold: Ok(false), not an error.
    assert!(!store.put_token_if_absent(&two, &stealing).await.unwrap());
    assert!(
        !store
            .replace_token(&two, &first.token_id, &stealing)
            .await
            .unwrap()
    );
    // Conditions that hold: the unique index refuses.
    let e = store.replace_token(&two, &second.token_id, &stealing).await;
    let text = format!("{e:?}");
    already_linked(e, &two, &a);
    assert!(!text.contains("secret-stealing-token"), "{text}");
    let e = store.put_token(&two, &stealing).await;
    let text = format!("{e:?} {}", e.as_ref().unwrap_err());
    already_linked(e, &two, &a);
    assert!(!text.contains("secret-stealing-token"), "{text}");
    already_linked(store.set_mattermost_user_id(&two, &a).await, &two, &a);
    store.clear_token(&two).await.unwrap();
    already_linked(store.put_token_if_absent(&two, &stealing).await, &two, &a);
    let rec = store.get(&two).await.unwrap().unwrap();
    assert_eq!(
        rec.mattermost_user_id,
        Some(second.mattermost_user_id.clone())
    );
    assert!(rec.token.is_none());

    // The row that holds the id may write it again.
    store.set_mattermost_user_id(&one, &a).await.unwrap();
    store.put_token(&one, &stealing).await.unwrap();
    assert!(
        store
            .replace_token(&one, &stealing.token_id, &first)
            .await
            .unwrap()
    );
    // Clearing the token keeps the link...
    store.clear_token(&one).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &a).await, &two, &a);
    // ... relinking the first user frees the id.
    store
        .set_mattermost_user_id(&one, &mm("other"))
        .await
        .unwrap();
    assert!(store.put_token_if_absent(&two, &stealing).await.unwrap());
}

/// Ten users linked to one Mattermost account at once: the database lets
/// exactly one through, whatever the interleaving.
async fn concurrent_links(db: &Db) {
    let users: Vec<HostUserId> = (1..=10).map(HostUserId::Int).collect();
    let (t, kt) = db.users_table(&users, false).await;
    let store: Arc<dyn TokenStore> = db.store(&t, kt);
    db.store(&t, kt).migrate().await.unwrap();
    race_for_one_account(&store, &users).await;
    let held = db
        .rows(&format!(
            "SELECT {} FROM {t} WHERE mattermost_user_id IS NOT NULL",
            db.text("id")
        ))
        .await;
    assert_eq!(held.len(), 2, "{held:?}");
}

/// Ten concurrent `set_mattermost_user_id` of one id, then ten concurrent
/// `put_token_if_absent` of another: one winner each, every other caller
/// `AlreadyLinked`.
async fn race_for_one_account(store: &Arc<dyn TokenStore>, users: &[HostUserId]) {
    let id = mm("contested");
    let tasks = users.iter().map(|u| {
        let (store, u, id) = (store.clone(), u.clone(), id.clone());
        tokio::spawn(async move { (u.clone(), store.set_mattermost_user_id(&u, &id).await) })
    });
    let mut winners = Vec::new();
    for r in futures::future::join_all(tasks).await {
        let (u, r) = r.unwrap();
        match r {
            Ok(()) => winners.push(u),
            other => already_linked(other, &u, &id),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let many = store.get_many(users).await.unwrap();
    let linked: Vec<_> = users
        .iter()
        .filter(|u| many[*u].mattermost_user_id.as_ref() == Some(&id))
        .collect();
    assert_eq!(linked, [&winners[0]]);

    // Tokens, for the users without a link.
    let id = mm("contested-too");
    let tasks = users.iter().filter(|u| **u != winners[0]).map(|u| {
        let (store, u) = (store.clone(), u.clone());
        let t = NewToken {
            mattermost_user_id: id.clone(),
            ..token(7, &format!("token-for-{u}"))
        };
        tokio::spawn(async move { (u.clone(), store.put_token_if_absent(&u, &t).await) })
    });
    let mut winners = Vec::new();
    for r in futures::future::join_all(tasks).await {
        let (u, r) = r.unwrap();
        match r {
            Ok(true) => winners.push(u),
            other => already_linked(other, &u, &id),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let rec = store.get(&winners[0]).await.unwrap().unwrap();
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        format!("token-for-{}", winners[0])
    );
}

/// Index names for a schema-qualified table and for a table whose name
/// leaves no room for the suffix.
async fn qualified_and_long_table_names(db: &Db) {
    let (one, two) = (HostUserId::Int(1), HostUserId::Int(2));
    let id = mm("q");
    // Schema-qualified.
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY)"
    ))
    .await;
    db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2)"))
        .await;
    let schema = match db.kind() {
        Kind::Sqlite => "main".to_owned(),
        _ => db.namespace().unwrap().to_owned(),
    };
    let store = db.store(&format!("{schema}.{t}"), KeyType::Integer);
    assert_eq!(store.index_name(), format!("{t}_mattermost_user_id_unique"));
    let before = db.index_names(&t).await;
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&store.index_name()));
    store.migrate().await.unwrap();
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);
    store.undo().await.unwrap();
    assert_eq!(db.index_names(&t).await, before);
    assert_eq!(db.column_names(&t).await, ["id"]);

    // 63 characters (the longest identifier).
    let t = format!("users_{}_", unique_suffix());
    let t = format!("{t}{}", "x".repeat(63 - t.len()));
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY)"
    ))
    .await;
    db.exec(&format!("INSERT INTO {t} (id) VALUES (1), (2)"))
        .await;
    let store = db.store(&t, KeyType::Integer);
    let index = store.index_name();
    assert_eq!(index.len(), 63, "{index}");
    assert!(index.starts_with(&t[..28]), "{index}");
    assert!(index.ends_with("_mattermost_user_id_unique"), "{index}");
    assert_eq!(db.store(&t, KeyType::Integer).index_name(), index);
    store.migrate().await.unwrap();
    assert!(db.index_names(&t).await.contains(&index));
    store.set_mattermost_user_id(&one, &id).await.unwrap();
    already_linked(store.set_mattermost_user_id(&two, &id).await, &two, &id);
    store.undo().await.unwrap();
    assert!(!db.index_names(&t).await.contains(&index));
}

// ---------------------------------------------------------------------------
// The token expiry column.

/// 2100-01-01 and 2300-01-01, in milliseconds since the Unix epoch.
const SOON_MS: i64 = 4_102_444_800_000;
const LATER_MS: i64 = 10_413_792_000_000;

fn expiring(n: u32, value: &str, expires_at: Option<i64>) -> NewToken {
    NewToken {
        expires_at,
        ..token(n, value)
    }
}

/// Column `column` of the row with key `id`, as text.
async fn cell(db: &Db, table: &str, column: &str, id: i64) -> Option<String> {
    let rows = db
        .rows(&format!(
            "SELECT {} FROM {table} WHERE id = {id}",
            db.text(column)
        ))
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0][0].clone()
}

/// The tracking rows of `table` (version, name, time installed).
async fn tracking_records(db: &Db, table: &str) -> Rows {
    db.rows(&format!(
        "SELECT {}, description, {} FROM {MIGRATIONS_TABLE} WHERE users_table = '{table}' \
         ORDER BY version",
        db.text("version"),
        db.text("installed_on")
    ))
    .await
}

/// Puts a migrated table back as the version before the expiry column left
/// it: the first two steps' columns, index and records, no expiry column and
/// no record of its step.
async fn as_before_expiry(db: &Db, table: &str, column: &str) {
    db.exec(&format!("ALTER TABLE {table} DROP COLUMN {column}"))
        .await;
    db.exec(&format!(
        "DELETE FROM {MIGRATIONS_TABLE} WHERE users_table = '{table}' \
         AND version = {EXPIRY_MIGRATION_VERSION}"
    ))
    .await;
    assert_eq!(
        tracked_versions(db, table).await,
        [
            MIGRATION_VERSION.to_string(),
            UNIQUE_INDEX_MIGRATION_VERSION.to_string()
        ]
    );
}

/// Checks that `column` is the expiry column as the migration adds it: a
/// nullable 64-bit integer.
fn assert_expiry_column(kind: Kind, def: &[Option<String>], column: &str) {
    assert_eq!(def[0].as_deref(), Some(column), "{def:?}");
    let ty = def[1].clone().unwrap_or_default().to_lowercase();
    let nullable = def[2].as_deref();
    match kind {
        Kind::Postgres => assert!(ty == "bigint" && nullable == Some("YES"), "{def:?}"),
        Kind::MariaDb => assert!(
            ty.starts_with("bigint") && !ty.contains("unsigned") && nullable == Some("YES"),
            "{def:?}"
        ),
        Kind::Sqlite => assert!(ty == "integer" && nullable == Some("0"), "{def:?}"),
    }
    // (MariaDB shows the lack of a default as `NULL`.)
    assert!(
        matches!(def[3].as_deref(), None | Some("NULL")),
        "no default: {def:?}"
    );
}

/// A database migrated by the version before the expiry column, with rows
/// it wrote: `migrate()` applies the new step alone (the other columns,
/// the index, the earlier records and every row stay as they are) and the
/// store then reads and writes the expiry. Until then, the store's
/// statements fail with a schema error that says to run `migrate()`.
async fn upgrade_adds_expiry(db: &Db) {
    let users: Vec<HostUserId> = (1..=3).map(HostUserId::Int).collect();
    let (t, kt) = db.users_table(&users, false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;

    // Rows the earlier version wrote.
    let old = token(1, "token-written-before-expiry");
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = '{}', mattermost_token = 'token-written-before-expiry', \
         mattermost_token_id = '{}' WHERE id = 1",
        old.mattermost_user_id, old.token_id
    ))
    .await;
    db.exec(&format!(
        "UPDATE {t} SET mattermost_user_id = '{}' WHERE id = 2",
        mm("linked-only")
    ))
    .await;
    let dump = format!(
        "SELECT {}, name, mattermost_user_id, mattermost_token, mattermost_token_id FROM {t} ORDER BY id",
        db.text("id")
    );
    let rows = db.rows(&dump).await;
    let columns = db.columns(&t).await;
    let indexes = db.index_names(&t).await;
    let earlier = tracking_records(db, &t).await;
    assert_eq!(earlier.len(), 2);

    let e = store.get(&users[0]).await.unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");
    assert!(e.to_string().contains("migrate()"), "{e}");

    store.migrate().await.unwrap();
    let migrated = db.columns(&t).await;
    assert_eq!(migrated[..columns.len()], columns[..], "other columns kept");
    assert_eq!(migrated.len(), columns.len() + 1, "{migrated:?}");
    assert_expiry_column(db.kind(), &migrated[columns.len()], DEFAULT_EXPIRY_COLUMN);
    assert_eq!(db.index_names(&t).await, indexes);
    assert_eq!(db.rows(&dump).await, rows, "no row lost or changed");
    let records = tracking_records(db, &t).await;
    assert_eq!(records[..2], earlier[..], "earlier records untouched");
    assert_eq!(records.len(), 3);
    assert_eq!(
        records[2][..2],
        [
            Some(EXPIRY_MIGRATION_VERSION.to_string()),
            Some(EXPIRY_MIGRATION_NAME.to_owned())
        ]
    );
    assert_eq!(
        [&earlier[0][1], &earlier[1][1]],
        [
            &Some(MIGRATION_NAME.to_owned()),
            &Some(UNIQUE_INDEX_MIGRATION_NAME.to_owned())
        ]
    );

    // Existing rows read back unchanged, without an expiry.
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(
        rec.token.as_ref().unwrap().expose_secret(),
        "token-written-before-expiry"
    );
    assert_eq!(rec.token_id, Some(old.token_id.clone()));
    assert_eq!(rec.token_expires_at, None);
    let many = store.get_many(&users).await.unwrap();
    assert_eq!(many[&users[1]].mattermost_user_id, Some(mm("linked-only")));
    assert!(many.values().all(|r| r.token_expires_at.is_none()));
    assert_eq!(
        store.list_missing(None, 10).await.unwrap().users,
        users[1..]
    );

    // The next rotation stores the expiry.
    let new = expiring(1, "rotated-token", Some(SOON_MS));
    assert!(
        store
            .replace_token(&users[0], &old.token_id, &new)
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get(&users[0])
            .await
            .unwrap()
            .unwrap()
            .token_expires_at,
        Some(SOON_MS)
    );
    assert_eq!(
        cell(db, &t, DEFAULT_EXPIRY_COLUMN, 1).await,
        Some(SOON_MS.to_string())
    );
    assert_eq!(cell(db, &t, DEFAULT_EXPIRY_COLUMN, 2).await, None);
}

/// `undo_migration()` drops the expiry column (first: a column of its name
/// that the migration cannot have added stops the undo before anything is
/// dropped), on a fully migrated database and on one the earlier version
/// migrated.
async fn undo_drops_expiry(db: &Db) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let before = db.columns(&t).await;
    let indexes_before = db.index_names(&t).await;
    let store = db.store(&t, kt);

    store.migrate().await.unwrap();
    store
        .put_token(&users[0], &expiring(1, "v", Some(SOON_MS)))
        .await
        .unwrap();
    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, before);
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert!(tracked_versions(db, &t).await.is_empty());
    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, before);

    // Migrated again, the column is back, empty.
    store.migrate().await.unwrap();
    assert_eq!(tracked_versions(db, &t).await, versions());
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert!(rec.token.is_none() && rec.token_expires_at.is_none());

    // Migrated by the earlier version only: undo works as it did.
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;
    store.undo().await.unwrap();
    assert_eq!(db.columns(&t).await, before);
    assert_eq!(db.index_names(&t).await, indexes_before);
    assert!(tracked_versions(db, &t).await.is_empty());

    // A text column of the expiry column's name was not added by the
    // migration: undo refuses before dropping anything (the expiry step is
    // checked and undone first), and migrate refuses it too.
    store.migrate().await.unwrap();
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;
    db.exec(&format!(
        "ALTER TABLE {t} ADD COLUMN {DEFAULT_EXPIRY_COLUMN} VARCHAR(40)"
    ))
    .await;
    let state = (
        db.columns(&t).await,
        db.index_names(&t).await,
        tracked_versions(db, &t).await,
    );
    let msg = schema_message(store.undo().await);
    assert!(
        msg.contains(DEFAULT_EXPIRY_COLUMN) && msg.contains("nothing was dropped"),
        "{msg}"
    );
    let msg = schema_message(store.migrate().await);
    assert!(
        msg.contains(DEFAULT_EXPIRY_COLUMN)
            && msg.contains("nothing was changed")
            && msg.contains("with_expiry_column"),
        "{msg}"
    );
    assert_eq!(
        (
            db.columns(&t).await,
            db.index_names(&t).await,
            tracked_versions(db, &t).await,
        ),
        state
    );
}

/// A store configured with another expiry column adds, reads, writes,
/// clears and drops that one, and never the default.
async fn custom_expiry_column(db: &Db) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let before = db.column_names(&t).await;
    let column = "token_expiry_ms";
    let store = db.store_with_expiry(&t, kt, column);
    assert_eq!(store.expiry_column(), column);

    store.migrate().await.unwrap();
    let migrated = db.columns(&t).await;
    let names: Vec<_> = migrated.iter().map(|r| r[0].clone().unwrap()).collect();
    assert_eq!(
        names[before.len()..],
        [
            "mattermost_user_id",
            "mattermost_token",
            "mattermost_token_id",
            column
        ]
    );
    assert_expiry_column(db.kind(), &migrated[before.len() + 3], column);
    assert_eq!(tracked_versions(db, &t).await, versions());

    store
        .put_token(&users[0], &expiring(1, "one", Some(LATER_MS)))
        .await
        .unwrap();
    assert!(
        store
            .put_token_if_absent(&users[1], &expiring(2, "two", Some(SOON_MS)))
            .await
            .unwrap()
    );
    assert_eq!(cell(db, &t, column, 1).await, Some(LATER_MS.to_string()));
    let many = store.get_many(&users).await.unwrap();
    assert_eq!(many[&users[0]].token_expires_at, Some(LATER_MS));
    assert_eq!(many[&users[1]].token_expires_at, Some(SOON_MS));
    assert!(store.clear_token(&users[1]).await.unwrap());
    assert_eq!(cell(db, &t, column, 2).await, None);
    assert_eq!(cell(db, &t, "mattermost_token", 2).await, None);
    assert_eq!(cell(db, &t, column, 1).await, Some(LATER_MS.to_string()));

    // Again: nothing changes.
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&t).await, migrated);

    // A store left at the default name does not find its column.
    let default = db.store(&t, kt);
    let e = default.get(&users[0]).await.unwrap_err();
    assert!(matches!(e, StoreError::Schema { .. }), "{e:?}");

    store.undo().await.unwrap();
    assert_eq!(db.column_names(&t).await, before);
    assert!(tracked_versions(db, &t).await.is_empty());
}

/// Running the migration twice, or several at once, on a new database and
/// on one the earlier version migrated, adds the expiry column once and
/// records it once; stored expiries survive a re-run. A column of the name
/// made beforehand as a 64-bit integer is kept; a narrower one is refused.
async fn expiry_migration_twice(db: &Db) {
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let (t, kt) = db.users_table(&users, false).await;
    let store = db.store(&t, kt);
    store.migrate().await.unwrap();
    let columns = db.columns(&t).await;
    let records = tracking_records(db, &t).await;
    store
        .put_token(&users[0], &expiring(1, "v", Some(SOON_MS)))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&t).await, columns);
    assert_eq!(tracking_records(db, &t).await, records);
    assert_eq!(
        store
            .get(&users[0])
            .await
            .unwrap()
            .unwrap()
            .token_expires_at,
        Some(SOON_MS)
    );

    // The upgrade, by several app instances at once, then once more.
    as_before_expiry(db, &t, DEFAULT_EXPIRY_COLUMN).await;
    let runs = (0..4).map(|_| {
        let store = db.store(&t, kt);
        tokio::spawn(async move { store.migrate().await })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap().unwrap();
    }
    store.migrate().await.unwrap();
    assert_eq!(db.columns(&t).await, columns);
    assert_eq!(tracked_versions(db, &t).await, versions());
    let rec = store.get(&users[0]).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "v");
    assert_eq!(rec.token_expires_at, None);

    // Made by hand beforehand, with a value: kept as it is.
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, {DEFAULT_EXPIRY_COLUMN} BIGINT NULL)"
    ))
    .await;
    db.exec(&format!(
        "INSERT INTO {t} (id, {DEFAULT_EXPIRY_COLUMN}) VALUES (1, {LATER_MS})"
    ))
    .await;
    let store = db.store(&t, KeyType::Integer);
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert_eq!(
        db.column_names(&t).await,
        [
            "id",
            DEFAULT_EXPIRY_COLUMN,
            "mattermost_user_id",
            "mattermost_token",
            "mattermost_token_id"
        ]
    );
    assert_eq!(tracked_versions(db, &t).await, versions());
    assert_eq!(
        store
            .get(&HostUserId::Int(1))
            .await
            .unwrap()
            .unwrap()
            .token_expires_at,
        Some(LATER_MS)
    );

    // A column that cannot hold milliseconds (32-bit; on SQLite, text) is
    // refused, with nothing changed.
    let narrow = match db.kind() {
        Kind::Sqlite => "TEXT",
        _ => "INTEGER",
    };
    let t = format!("users_{}", unique_suffix());
    db.exec(&format!(
        "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, {DEFAULT_EXPIRY_COLUMN} {narrow} NULL)"
    ))
    .await;
    let before = (db.columns(&t).await, db.index_names(&t).await);
    let msg = schema_message(db.store(&t, KeyType::Integer).migrate().await);
    assert!(
        msg.contains(DEFAULT_EXPIRY_COLUMN) && msg.contains("64-bit"),
        "{msg}"
    );
    assert_eq!((db.columns(&t).await, db.index_names(&t).await), before);
    assert!(tracked_versions(db, &t).await.is_empty());
}

macro_rules! scenarios {
    ($module:ident, $kind:expr, [$($test:ident = $scenario:ident),* $(,)?]) => {
        mod $module {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    let Some(db) = Db::open($kind, stringify!($test)).await else { return };
                    $scenario(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
    ($($module:ident: $kind:expr;)*) => {$(
        scenarios!($module, $kind, [
            migrate_idempotent_and_reversible = idempotent_and_reversible,
            host_sqlx_migrator_coexists = host_migrator_coexists,
            clashing_column_type_is_schema_error = clashing_column_type,
            missing_users_table_is_schema_error = missing_users_table,
            store_before_migrate_is_schema_error = not_migrated_is_schema_error,
            key_type_mismatch = key_type_checks,
            laravel_users_table = laravel_table,
            laravel_token_column_already_present = laravel_token_column_present,
            rewriting_same_values_matches = same_values_still_match,
            get_many_over_512_users = get_many_in_chunks,
            duplicate_user_ids_fail_migration = duplicate_user_ids_refused,
            undo_removes_unique_index = undo_removes_index,
            existing_unique_index_is_kept = existing_unique_index_adopted,
            every_write_refuses_a_second_link = one_link_per_write,
            concurrent_links_one_wins = concurrent_links,
            index_name_for_qualified_and_long_tables = qualified_and_long_table_names,
            expiry_column_added_on_upgrade = upgrade_adds_expiry,
            undo_removes_expiry_column = undo_drops_expiry,
            custom_expiry_column_name = custom_expiry_column,
            expiry_migration_is_idempotent = expiry_migration_twice,
        ]);
    )*};
}

scenarios! {
    postgres_scenarios: Kind::Postgres;
    mariadb_scenarios: Kind::MariaDb;
    sqlite_scenarios: Kind::Sqlite;
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

/// The race on a SQLite file, through a pool of several connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_links_sqlite_file() {
    let db = Db::sqlite_file().await;
    concurrent_links(&db).await;
    db.finish().await;
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
