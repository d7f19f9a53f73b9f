//! mattermost-tokens-diesel on PostgreSQL, MariaDB/MySQL and SQLite: the
//! conformance suite, then migrations (async and sync paths, a Laravel
//! `users` table, a host's own diesel migrations, the unique index on
//! `mattermost_user_id`, the token expiry column), one Mattermost account
//! per host user, and error mapping.
//!
//! PostgreSQL and MariaDB run when `MATTERMOST_TOKENS_TEST_POSTGRES_URL` and
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL` are set (skipped with a message
//! otherwise, a failure under CI); SQLite always runs, on files under
//! cargo's target tmp directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mattermost_tokens::{
    AccessToken, HostUserId, NewToken, StoreError, TokenId, TokenStore, UserId,
};
use mattermost_tokens_diesel::diesel::QueryableByName;
use mattermost_tokens_diesel::diesel::sql_types::{Nullable, Text};
use mattermost_tokens_diesel::diesel_async::pooled_connection::deadpool::Pool;
use mattermost_tokens_diesel::diesel_async::{
    AsyncMigrationHarness, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use mattermost_tokens_diesel::sqlite::AsyncSqliteConnection;
use mattermost_tokens_diesel::{
    ConnectionPool, DieselTokenStore, KeyType, StoreConnection, TokenMigrations, mysql, postgres,
    sqlite,
};
use mattermost_tokens_tests::conformance::StoreFactory;
use mattermost_tokens_tests::db::{MYSQL_ENV, POSTGRES_ENV, unique_suffix, url_or_skip};
use mattermost_tokens_tests::scratch::{self, padded_select, scratch_file};

/// Every table (and SQLite file) these tests make starts with this, followed
/// by the test process id, so stale ones can be told from live ones.
const PREFIX: &str = "mmt_diesel_";

// ---------------------------------------------------------------------------
// The backends, as the tests see them
// ---------------------------------------------------------------------------

/// What the tests need from a backend besides the store.
#[async_trait]
trait TestDb: StoreConnection + Sized {
    /// The pool type (diesel-async's deadpool pool of `Self`).
    type Pool: ConnectionPool<Self> + Clone;

    const NAME: &'static str;

    /// A pool on the test database; `None` when the backend is skipped.
    async fn pool(test: &str) -> Option<Self::Pool>;

    /// Column type of an integer key.
    const INT_KEY: &'static str;

    /// Column type of a text key (`uuid`: a UUID-typed one where the
    /// database has it).
    fn text_key(uuid: bool) -> &'static str;

    /// An expression reading `expr` as text.
    fn text(expr: &str) -> String;

    /// Statements creating Laravel's default `users` table.
    fn laravel_table(table: &str) -> Vec<String>;

    /// `(name, type, nullable)` of each column, in order.
    async fn columns(pool: &Self::Pool, table: &str) -> Vec<String>;

    /// The names of the table's indexes, sorted.
    async fn indexes(pool: &Self::Pool, table: &str) -> Vec<String>;

    /// Rows of an all-text query (up to 8 columns `c0`..`c7`).
    async fn rows(pool: &Self::Pool, sql: &str) -> Vec<Row>;

    /// Drops tables left by test processes that are gone.
    async fn drop_stale_tables(pool: &Self::Pool);

    /// The schema (database, on MySQL) the test tables are in.
    async fn schema(pool: &Self::Pool) -> String;
}

/// One row of text columns, for dumps and listings.
#[derive(QueryableByName, Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Row {
    #[diesel(sql_type = Nullable<Text>)]
    c0: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c1: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c2: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c3: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c4: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c5: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c6: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c7: Option<String>,
}

/// `SELECT` list padding `exprs` to the 8 columns of [`Row`].
fn row_select(exprs: &[String]) -> String {
    padded_select(8, exprs)
}

macro_rules! load_rows {
    ($pool:expr, $sql:expr) => {{
        let mut conn = $pool.get().await.expect("test connection");
        mattermost_tokens_diesel::diesel_async::RunQueryDsl::load::<Row>(
            mattermost_tokens_diesel::diesel::sql_query($sql),
            &mut conn,
        )
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", $sql))
    }};
}

/// Whether a table or file of this suite belongs to a process that is gone.
fn is_stale(name: &str) -> bool {
    scratch::is_stale(PREFIX, name)
}

/// Runs `sql` (one or more statements) on a pooled connection.
async fn exec<C: TestDb>(pool: &C::Pool, sql: &str) {
    let mut conn = pool.connection().await.expect("test connection");
    (*conn)
        .batch_execute(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

#[async_trait]
impl TestDb for AsyncPgConnection {
    type Pool = Pool<AsyncPgConnection>;
    const NAME: &'static str = "PostgreSQL";
    const INT_KEY: &'static str = "BIGINT PRIMARY KEY";

    async fn pool(test: &str) -> Option<Self::Pool> {
        let url = url_or_skip(POSTGRES_ENV, test)?;
        let pool = postgres::pool(&url, 10).unwrap();
        once_per_process(&PG_CLEANED, Self::drop_stale_tables(&pool)).await;
        Some(pool)
    }

    fn text_key(uuid: bool) -> &'static str {
        if uuid {
            "UUID PRIMARY KEY"
        } else {
            "VARCHAR(64) PRIMARY KEY"
        }
    }

    fn text(expr: &str) -> String {
        format!("CAST({expr} AS TEXT)")
    }

    fn laravel_table(t: &str) -> Vec<String> {
        vec![format!(
            "CREATE TABLE {t} (id BIGSERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, \
             email VARCHAR(255) NOT NULL, email_verified_at TIMESTAMP(0) NULL, \
             password VARCHAR(255) NOT NULL, remember_token VARCHAR(100) NULL, \
             created_at TIMESTAMP(0) NULL, updated_at TIMESTAMP(0) NULL, \
             CONSTRAINT {t}_email_unique UNIQUE (email))"
        )]
    }

    async fn columns(pool: &Self::Pool, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT {} FROM information_schema.columns WHERE table_name = '{table}' \
             AND table_schema = current_schema() ORDER BY ordinal_position",
            row_select(&[
                "CAST(column_name AS TEXT)".into(),
                "CAST(data_type AS TEXT)".into(),
                "CAST(is_nullable AS TEXT)".into(),
                "CAST(character_maximum_length AS TEXT)".into(),
                "CAST(column_default AS TEXT)".into(),
            ])
        );
        describe(Self::rows(pool, &sql).await)
    }

    async fn indexes(pool: &Self::Pool, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT {} FROM pg_indexes WHERE schemaname = current_schema() \
             AND tablename = '{table}' ORDER BY indexname",
            row_select(&["CAST(indexname AS TEXT)".into()])
        );
        names(Self::rows(pool, &sql).await)
    }

    async fn rows(pool: &Self::Pool, sql: &str) -> Vec<Row> {
        load_rows!(pool, sql)
    }

    async fn drop_stale_tables(pool: &Self::Pool) {
        let sql = format!(
            "SELECT {} FROM information_schema.tables WHERE table_schema = current_schema() \
             AND table_name LIKE '{PREFIX}%'",
            row_select(&["CAST(table_name AS TEXT)".into()])
        );
        for r in Self::rows(pool, &sql).await {
            let name = r.c0.unwrap_or_default();
            if is_stale(&name) {
                forget_table::<Self>(pool, &name).await;
            }
        }
    }

    async fn schema(pool: &Self::Pool) -> String {
        let r = Self::rows(
            pool,
            &format!(
                "SELECT {}",
                row_select(&["CAST(current_schema() AS TEXT)".into()])
            ),
        )
        .await;
        r[0].c0.clone().unwrap()
    }
}

#[async_trait]
impl TestDb for AsyncMysqlConnection {
    type Pool = Pool<AsyncMysqlConnection>;
    const NAME: &'static str = "MariaDB";
    const INT_KEY: &'static str = "BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY";

    async fn pool(test: &str) -> Option<Self::Pool> {
        let url = url_or_skip(MYSQL_ENV, test)?;
        let pool = mysql::pool(&url, 10).unwrap();
        once_per_process(&MYSQL_CLEANED, Self::drop_stale_tables(&pool)).await;
        Some(pool)
    }

    fn text_key(_uuid: bool) -> &'static str {
        "CHAR(36) NOT NULL PRIMARY KEY"
    }

    fn text(expr: &str) -> String {
        format!("CAST({expr} AS CHAR)")
    }

    fn laravel_table(t: &str) -> Vec<String> {
        vec![format!(
            "CREATE TABLE {t} (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY, \
             name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL, \
             email_verified_at TIMESTAMP NULL, password VARCHAR(255) NOT NULL, \
             remember_token VARCHAR(100) NULL, created_at TIMESTAMP NULL, \
             updated_at TIMESTAMP NULL, UNIQUE KEY {t}_email_unique (email)) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci"
        )]
    }

    async fn columns(pool: &Self::Pool, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT {} FROM information_schema.columns WHERE table_name = '{table}' \
             AND table_schema = DATABASE() ORDER BY ordinal_position",
            row_select(&[
                "CAST(column_name AS CHAR)".into(),
                "CAST(column_type AS CHAR)".into(),
                "CAST(is_nullable AS CHAR)".into(),
                "CAST(collation_name AS CHAR)".into(),
                "CAST(column_default AS CHAR)".into(),
                "CAST(extra AS CHAR)".into(),
            ])
        );
        describe(Self::rows(pool, &sql).await)
    }

    async fn indexes(pool: &Self::Pool, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT DISTINCT {} FROM information_schema.statistics \
             WHERE table_schema = DATABASE() AND table_name = '{table}' ORDER BY c0",
            row_select(&["CAST(index_name AS CHAR)".into()])
        );
        names(Self::rows(pool, &sql).await)
    }

    async fn rows(pool: &Self::Pool, sql: &str) -> Vec<Row> {
        load_rows!(pool, sql)
    }

    async fn drop_stale_tables(pool: &Self::Pool) {
        let sql = format!(
            "SELECT {} FROM information_schema.tables WHERE table_schema = DATABASE() \
             AND table_name LIKE '{PREFIX}%'",
            row_select(&["CAST(table_name AS CHAR)".into()])
        );
        for r in Self::rows(pool, &sql).await {
            let name = r.c0.unwrap_or_default();
            if is_stale(&name) {
                forget_table::<Self>(pool, &name).await;
            }
        }
    }

    async fn schema(pool: &Self::Pool) -> String {
        let r = Self::rows(
            pool,
            &format!("SELECT {}", row_select(&["DATABASE()".into()])),
        )
        .await;
        r[0].c0.clone().unwrap()
    }
}

#[async_trait]
impl TestDb for AsyncSqliteConnection {
    type Pool = Pool<AsyncSqliteConnection>;
    const NAME: &'static str = "SQLite";
    const INT_KEY: &'static str = "INTEGER PRIMARY KEY";

    async fn pool(_test: &str) -> Option<Self::Pool> {
        Some(sqlite::pool(&sqlite_file(), 8).unwrap())
    }

    fn text_key(_uuid: bool) -> &'static str {
        "TEXT PRIMARY KEY NOT NULL"
    }

    fn text(expr: &str) -> String {
        format!("CAST({expr} AS TEXT)")
    }

    fn laravel_table(t: &str) -> Vec<String> {
        vec![
            format!(
                "CREATE TABLE {t} (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, \
                 name VARCHAR NOT NULL, email VARCHAR NOT NULL, email_verified_at DATETIME, \
                 password VARCHAR NOT NULL, remember_token VARCHAR, created_at DATETIME, \
                 updated_at DATETIME)"
            ),
            format!("CREATE UNIQUE INDEX {t}_email_unique ON {t} (email)"),
        ]
    }

    async fn columns(pool: &Self::Pool, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT {} FROM pragma_table_info('{table}') ORDER BY cid",
            row_select(&[
                "name".into(),
                "type".into(),
                "CAST(\"notnull\" AS TEXT)".into(),
                "dflt_value".into(),
                "CAST(pk AS TEXT)".into(),
            ])
        );
        describe(Self::rows(pool, &sql).await)
    }

    async fn indexes(pool: &Self::Pool, table: &str) -> Vec<String> {
        let sql = format!(
            "SELECT {} FROM pragma_index_list('{table}') ORDER BY name",
            row_select(&["name".into()])
        );
        names(Self::rows(pool, &sql).await)
    }

    async fn rows(pool: &Self::Pool, sql: &str) -> Vec<Row> {
        load_rows!(pool, sql)
    }

    async fn drop_stale_tables(_pool: &Self::Pool) {}

    async fn schema(_pool: &Self::Pool) -> String {
        "main".to_owned()
    }
}

/// Drops a test table and forgets its migration versions.
async fn forget_table<C: TestDb>(pool: &C::Pool, table: &str) {
    let versions = TokenMigrations::new(table).unwrap().versions().join("', '");
    exec::<C>(
        pool,
        &format!(
            "DROP TABLE IF EXISTS {table}; \
             DELETE FROM __diesel_schema_migrations WHERE version IN ('{versions}')"
        ),
    )
    .await;
}

/// The first column of each row, sorted.
fn names(rows: Vec<Row>) -> Vec<String> {
    let mut names: Vec<String> = rows.into_iter().filter_map(|r| r.c0).collect();
    names.sort();
    names
}

/// A column listing as comparable strings.
fn describe(rows: Vec<Row>) -> Vec<String> {
    rows.into_iter()
        .map(|r| {
            [r.c0, r.c1, r.c2, r.c3, r.c4, r.c5]
                .map(|c| c.unwrap_or_else(|| "-".into()))
                .join(" ")
        })
        .collect()
}

static PG_CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
static MYSQL_CLEANED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

async fn once_per_process(cell: &tokio::sync::OnceCell<()>, f: impl Future<Output = ()>) {
    if cell.initialized() {
        return;
    }
    f.await;
    let _ = cell.set(());
}

/// A fresh SQLite file for one test.
fn sqlite_file() -> String {
    scratch_file(std::path::Path::new(env!("CARGO_TARGET_TMPDIR")), PREFIX)
        .to_str()
        .unwrap()
        .to_owned()
}

fn table_name() -> String {
    format!("{PREFIX}{}", unique_suffix())
}

fn key_literal(u: &HostUserId) -> String {
    match u {
        HostUserId::Int(i) => i.to_string(),
        HostUserId::Text(s) => format!("'{s}'"),
    }
}

/// Creates `table` with `users` (all of one key kind), returns the store
/// configured for it, not yet migrated.
async fn users_table<C: TestDb>(
    pool: &C::Pool,
    users: &[HostUserId],
    uuid: bool,
) -> DieselTokenStore<C, C::Pool> {
    let table = table_name();
    let text_keys = matches!(users.first(), Some(HostUserId::Text(_)));
    let key = if text_keys {
        C::text_key(uuid)
    } else {
        C::INT_KEY
    };
    exec::<C>(
        pool,
        &format!("CREATE TABLE {table} (id {key}, name VARCHAR(100) NOT NULL)"),
    )
    .await;
    for chunk in users.chunks(200) {
        let values: Vec<String> = chunk
            .iter()
            .map(|u| format!("({}, 'user {u}')", key_literal(u)))
            .collect();
        exec::<C>(
            pool,
            &format!(
                "INSERT INTO {table} (id, name) VALUES {}",
                values.join(", ")
            ),
        )
        .await;
    }
    let key_type = match (text_keys, uuid) {
        (false, _) => KeyType::Integer,
        (true, false) => KeyType::Text,
        (true, true) => KeyType::Uuid,
    };
    DieselTokenStore::new(pool.clone())
        .with_table_name(table)
        .unwrap()
        .with_key_type(key_type)
}

// ---------------------------------------------------------------------------
// Conformance
// ---------------------------------------------------------------------------

/// Fresh table per case; `uuid` makes text keys PostgreSQL `uuid` columns.
struct Factory<C> {
    uuid: bool,
    _c: std::marker::PhantomData<fn() -> C>,
}

impl<C> Factory<C> {
    const fn new(uuid: bool) -> Self {
        Factory {
            uuid,
            _c: std::marker::PhantomData,
        }
    }
}

#[async_trait]
impl<C: TestDb> StoreFactory for Factory<C> {
    async fn fresh(&self, users: &[HostUserId]) -> Option<Arc<dyn TokenStore>> {
        let pool = C::pool(&format!("diesel {} conformance", C::NAME)).await?;
        let store = users_table::<C>(&pool, users, self.uuid).await;
        store.migrate().await.expect("migrate");
        Some(Arc::new(store))
    }
}

type PgFactory = Factory<AsyncPgConnection>;
type MariaFactory = Factory<AsyncMysqlConnection>;
type SqliteFactory = Factory<AsyncSqliteConnection>;

mattermost_tokens_tests::conformance_tests!(postgres_conformance, PgFactory::new(false));
mattermost_tokens_tests::conformance_tests!(postgres_uuid_keys_conformance, PgFactory::new(true));
mattermost_tokens_tests::conformance_tests!(mariadb_conformance, MariaFactory::new(false));
mattermost_tokens_tests::conformance_tests!(sqlite_conformance, SqliteFactory::new(false));

// ---------------------------------------------------------------------------
// Scenarios, written once and run per backend
// ---------------------------------------------------------------------------

fn token(n: u32, value: &str) -> NewToken {
    NewToken {
        mattermost_user_id: UserId::new(format!("{:0>26}", format!("u{n}"))),
        token: AccessToken::new(value),
        token_id: TokenId::new(format!("{:0>26}", format!("t{n}"))),
        expires_at: None,
    }
}

/// Laravel's `users` table with rows: migrating loses and changes nothing,
/// the store works on it, reverting restores the original columns.
async fn laravel_table<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} laravel table", C::NAME)).await else {
        return;
    };
    let t = table_name();
    for s in C::laravel_table(&t) {
        exec::<C>(&pool, &s).await;
    }
    exec::<C>(
        &pool,
        &format!(
            "INSERT INTO {t} (name, email, email_verified_at, password, remember_token, created_at, updated_at) VALUES \
             ('Ada', 'ada@example.com', '2026-01-02 03:04:05', '$2y$12$abcdefghijklmnopqrstuv', 'rtok1', '2026-01-01 00:00:00', '2026-01-02 00:00:00'), \
             ('Bob', 'bob@example.com', NULL, '$2y$12$bcdefghijklmnopqrstuvw', NULL, '2026-01-03 00:00:00', NULL), \
             ('Cé 🙂', 'ce@example.com', NULL, 'x', NULL, NULL, NULL)"
        ),
    )
    .await;
    let laravel_columns = [
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
        row_select(
            &laravel_columns
                .iter()
                .map(|c| C::text(c))
                .collect::<Vec<_>>()
        )
    );
    let rows_before = C::rows(&pool, &dump_sql).await;
    let columns_before = C::columns(&pool, &t).await;
    let indexes_before = C::indexes(&pool, &t).await;
    assert_eq!(rows_before.len(), 3);
    assert_eq!(columns_before.len(), 8);

    let store = DieselTokenStore::<C, _>::new(pool.clone())
        .with_table_name(t.clone())
        .unwrap();
    store.migrate().await.unwrap();

    let columns_after = C::columns(&pool, &t).await;
    assert_eq!(
        columns_after[..8],
        columns_before[..],
        "existing columns changed"
    );
    let added: Vec<&str> = columns_after[8..]
        .iter()
        .map(|c| c.split(' ').next().unwrap())
        .collect();
    assert_eq!(
        added,
        [
            "mattermost_user_id",
            "mattermost_token",
            "mattermost_token_id",
            "mattermost_token_expires_at"
        ]
    );
    assert_eq!(C::rows(&pool, &dump_sql).await, rows_before, "rows changed");
    // And the unique index next to the host's own.
    let mut indexes_migrated = indexes_before.clone();
    indexes_migrated.push(store.user_id_index_name().to_owned());
    indexes_migrated.sort();
    assert_eq!(C::indexes(&pool, &t).await, indexes_migrated);

    // The store works on it.
    let page = store.list_missing(None, 10).await.unwrap();
    assert_eq!(page.users, [1, 2, 3].map(HostUserId::Int));
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(2), &token(2, "tok-two"))
            .await
            .unwrap()
    );
    assert_eq!(
        store
            .get(&HostUserId::Int(2))
            .await
            .unwrap()
            .unwrap()
            .token
            .unwrap()
            .expose_secret(),
        "tok-two"
    );
    assert_eq!(
        C::rows(&pool, &dump_sql).await,
        rows_before,
        "rows changed by the store"
    );

    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, columns_before);
    assert_eq!(C::indexes(&pool, &t).await, indexes_before);
    assert_eq!(C::rows(&pool, &dump_sql).await, rows_before);
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// A table that already has `mattermost_token` (the Laravel seed's
/// migration) with a token in it: the migration adds the two other columns
/// and keeps it; reverting drops only what it added.
async fn seed_column_survives<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} seed column", C::NAME)).await else {
        return;
    };
    let store = users_table::<C>(&pool, &[HostUserId::Int(1), HostUserId::Int(2)], false).await;
    let t = store.table_name().to_owned();
    exec::<C>(
        &pool,
        &format!("ALTER TABLE {t} ADD COLUMN mattermost_token VARCHAR(255) NULL"),
    )
    .await;
    exec::<C>(
        &pool,
        &format!("UPDATE {t} SET mattermost_token = 'seed-token-value' WHERE id = 1"),
    )
    .await;
    store.migrate().await.unwrap();
    let rec = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "seed-token-value");
    assert!(rec.token_id.is_none(), "the seed stored no token id");
    // The seed's token counts as present.
    assert!(
        !store
            .put_token_if_absent(&HostUserId::Int(1), &token(1, "new"))
            .await
            .unwrap()
    );
    assert_eq!(
        store.list_missing(None, 10).await.unwrap().users,
        [HostUserId::Int(2)]
    );

    store.undo_migration().await.unwrap();
    let names: Vec<String> = C::columns(&pool, &t)
        .await
        .into_iter()
        .map(|c| c.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["id", "name", "mattermost_token"]);
    let kept = C::rows(
        &pool,
        &format!(
            "SELECT {} FROM {t} WHERE id = 1",
            row_select(&["mattermost_token".into()])
        ),
    )
    .await;
    assert_eq!(kept[0].c0.as_deref(), Some("seed-token-value"));
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// Migrating twice, reverting twice, migrating again; through the store
/// (async) and diesel-async's `AsyncMigrationHarness` over a pooled object.
async fn idempotent_and_reversible<C: TestDb>()
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>:
        mattermost_tokens_diesel::diesel_migrations::MigrationHarness<C::Backend>,
    C::Backend: mattermost_tokens_diesel::MigrationBackend,
{
    let Some(pool) = C::pool(&format!("diesel {} idempotent", C::NAME)).await else {
        return;
    };
    let store = users_table::<C>(&pool, &[HostUserId::Int(1)], false).await;
    let t = store.table_name().to_owned();
    let original = C::columns(&pool, &t).await;
    store.migrate().await.unwrap();
    let migrated = C::columns(&pool, &t).await;
    assert_eq!(migrated.len(), original.len() + 4);
    store.migrate().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, migrated);
    store
        .put_token(&HostUserId::Int(1), &token(1, "kept"))
        .await
        .unwrap();

    // The harness sees ours as applied: nothing to run, and the token stays.
    let mut harness = AsyncMigrationHarness::new(pool.connection().await.unwrap());
    store.migrations().run(&mut harness).unwrap();
    assert_eq!(
        store
            .get(&HostUserId::Int(1))
            .await
            .unwrap()
            .unwrap()
            .token
            .unwrap()
            .expose_secret(),
        "kept"
    );
    // Revert through the harness, then again (nothing applied: no-op).
    store.migrations().revert(&mut harness).unwrap();
    store.migrations().revert(&mut harness).unwrap();
    assert_eq!(C::columns(&pool, &t).await, original);
    drop(harness);
    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, original);

    // And forward again through the harness.
    let mut harness = AsyncMigrationHarness::new(pool.connection().await.unwrap());
    store.migrations().run(&mut harness).unwrap();
    assert_eq!(C::columns(&pool, &t).await, migrated);
    drop(harness);
    store.migrate().await.unwrap();
    store.undo_migration().await.unwrap();
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// An existing column that cannot hold the value, or is NOT NULL, stops the
/// migration with `Schema` and changes nothing.
async fn clashing_columns<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} clashing column", C::NAME)).await else {
        return;
    };
    for (column, ddl) in [
        ("mattermost_token", "mattermost_token INTEGER NULL"),
        (
            "mattermost_token_id",
            "mattermost_token_id VARCHAR(26) NOT NULL DEFAULT 'x'",
        ),
        ("mattermost_user_id", "mattermost_user_id VARCHAR(10) NULL"),
    ] {
        if column == "mattermost_user_id" && C::NAME == "SQLite" {
            continue; // SQLite ignores declared lengths: VARCHAR(10) is fine there.
        }
        let store = users_table::<C>(&pool, &[HostUserId::Int(1)], false).await;
        let t = store.table_name().to_owned();
        exec::<C>(&pool, &format!("ALTER TABLE {t} ADD COLUMN {ddl}")).await;
        let before = C::columns(&pool, &t).await;
        match store.migrate().await {
            Err(StoreError::Schema { message, .. }) => {
                assert!(message.contains(column), "{message}");
            }
            other => panic!("{}: {ddl}: expected Schema, got {other:?}", C::NAME),
        }
        assert_eq!(C::columns(&pool, &t).await, before, "{ddl}: table changed");
        exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
    }
}

/// No users table: migrating and using the store say `Schema`; a table
/// without the columns (not migrated) too.
async fn missing_table<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} missing table", C::NAME)).await else {
        return;
    };
    let store = DieselTokenStore::<C, _>::new(pool.clone())
        .with_table_name(table_name())
        .unwrap();
    assert!(
        matches!(store.migrate().await, Err(StoreError::Schema { .. })),
        "{}",
        C::NAME
    );
    assert!(matches!(
        store.get(&HostUserId::Int(1)).await,
        Err(StoreError::Schema { .. })
    ));
    // Reverting a migration that never ran does nothing.
    store.undo_migration().await.unwrap();

    let store = users_table::<C>(&pool, &[HostUserId::Int(1)], false).await;
    let err = store
        .put_token(&HostUserId::Int(1), &token(1, "secret-token-value"))
        .await;
    match err {
        Err(e @ StoreError::Schema { .. }) => {
            assert!(!format!("{e} {e:?}").contains("secret-token-value"));
        }
        other => panic!("{}: expected Schema, got {other:?}", C::NAME),
    }
    exec::<C>(&pool, &format!("DROP TABLE {}", store.table_name())).await;
}

/// Writes that change nothing (same values again) still count: MySQL's
/// changed-rows count must not turn them into "unknown user" or "lost".
async fn unchanged_writes<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} unchanged writes", C::NAME)).await else {
        return;
    };
    let store = users_table::<C>(&pool, &[HostUserId::Int(1)], false).await;
    store.migrate().await.unwrap();
    let u = HostUserId::Int(1);
    // An encrypted-looking value of about 100 characters.
    let long = format!(
        "mmt1:k1:{}",
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo".repeat(3)
    );
    let t = token(1, &long);
    store
        .set_mattermost_user_id(&u, &t.mattermost_user_id)
        .await
        .unwrap();
    store
        .set_mattermost_user_id(&u, &t.mattermost_user_id)
        .await
        .unwrap();
    store.put_token(&u, &t).await.unwrap();
    store.put_token(&u, &t).await.unwrap();
    assert!(store.replace_token(&u, &t.token_id, &t).await.unwrap());
    assert_eq!(
        store
            .get(&u)
            .await
            .unwrap()
            .unwrap()
            .token
            .unwrap()
            .expose_secret(),
        long
    );
    // A token id without a token (another tool's row) is cleared too.
    exec::<C>(
        &pool,
        &format!(
            "UPDATE {} SET mattermost_token = NULL WHERE id = 1",
            store.table_name()
        ),
    )
    .await;
    assert!(!store.clear_token(&u).await.unwrap());
    let rec = store.get(&u).await.unwrap().unwrap();
    assert!(rec.token.is_none() && rec.token_id.is_none());
    assert!(rec.mattermost_user_id.is_some());
    exec::<C>(&pool, &format!("DROP TABLE {}", store.table_name())).await;
}

// ---------------------------------------------------------------------------
// One Mattermost account per host user: the unique index
// ---------------------------------------------------------------------------

fn mm(n: u32) -> UserId {
    UserId::new(format!("{:0>26}", format!("u{n}")))
}

/// `AlreadyLinked` for `user` and `mattermost_user_id`, and nothing else.
fn assert_already_linked<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    user: &HostUserId,
    mattermost_user_id: &UserId,
) {
    match r {
        Err(StoreError::AlreadyLinked {
            user: u,
            mattermost_user_id: m,
        }) => {
            assert_eq!(&u, user);
            assert_eq!(&m, mattermost_user_id);
        }
        other => panic!("expected AlreadyLinked for {user}, got {other:?}"),
    }
}

/// A table whose rows share `mattermost_user_id` values, migrated by an
/// earlier version (the columns migration only): the index migration fails
/// with `Schema`, says how many ids and what to do, changes nothing and is
/// not recorded (the expiry column, which does not need it, is added so the
/// store keeps working); once the duplicates are resolved it runs, and
/// reverting removes the index.
async fn duplicate_links_block_index<C: TestDb>()
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>:
        mattermost_tokens_diesel::diesel_migrations::MigrationHarness<C::Backend>,
    C::Backend: mattermost_tokens_diesel::MigrationBackend,
{
    use mattermost_tokens_diesel::diesel_migrations::MigrationHarness;

    let Some(pool) = C::pool(&format!("diesel {} duplicate links", C::NAME)).await else {
        return;
    };
    let users: Vec<HostUserId> = (1..=6).map(HostUserId::Int).collect();
    let store = users_table::<C>(&pool, &users, false).await;
    let t = store.table_name().to_owned();
    let migrations = store.migrations();
    let index = migrations.user_id_index_name();
    let applied = async || -> Vec<String> {
        let mut h = AsyncMigrationHarness::new(pool.connection().await.unwrap());
        h.applied_migrations()
            .unwrap()
            .into_iter()
            .map(|v| v.to_string())
            .filter(|v| migrations.versions().contains(v))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect()
    };

    // What an earlier version left: the columns, no index.
    {
        let mut h = AsyncMigrationHarness::new(pool.connection().await.unwrap());
        h.run_next_migration(migrations.clone()).unwrap();
    }
    assert_eq!(applied().await, [migrations.version()]);
    assert!(!C::indexes(&pool, &t).await.contains(&index));
    // Users 1 and 2 share one Mattermost id, 3 and 4 another (with a
    // token); 5 and 6 have none (NULLs may repeat).
    exec::<C>(
        &pool,
        &format!(
            "UPDATE {t} SET mattermost_user_id = '{a}' WHERE id IN (1, 2); \
             UPDATE {t} SET mattermost_user_id = '{b}', mattermost_token = 'dup-token' WHERE id IN (3, 4)",
            a = mm(1),
            b = mm(3),
        ),
    )
    .await;
    let dump_sql = format!(
        "SELECT {} FROM {t} ORDER BY id",
        row_select(&[
            C::text("id"),
            "mattermost_user_id".into(),
            "mattermost_token".into(),
            "mattermost_token_id".into(),
        ])
    );
    let rows = C::rows(&pool, &dump_sql).await;
    let columns = C::columns(&pool, &t).await;
    let indexes = C::indexes(&pool, &t).await;

    let check = |r: Result<(), StoreError>| match r {
        Err(StoreError::Schema { message, .. }) => {
            assert!(message.contains("2 Mattermost user ids"), "{message}");
            assert!(message.contains(&t), "{message}");
            assert!(message.contains("GROUP BY mattermost_user_id"), "{message}");
            assert!(message.contains("nothing was changed"), "{message}");
            assert!(!message.contains("dup-token"), "{message}");
        }
        other => panic!("{}: expected Schema, got {other:?}", C::NAME),
    };
    check(store.migrate().await);
    // Through diesel-async's harness alike.
    {
        let mut h = AsyncMigrationHarness::new(pool.connection().await.unwrap());
        check(migrations.run(&mut h));
    }
    assert_eq!(C::rows(&pool, &dump_sql).await, rows, "rows changed");
    // Only the expiry column was added.
    let columns_now = C::columns(&pool, &t).await;
    assert_eq!(columns_now[..columns.len()], columns[..], "columns changed");
    assert_eq!(column_names(&columns_now[columns.len()..]), [EXPIRY]);
    assert_eq!(C::indexes(&pool, &t).await, indexes, "indexes changed");
    let mut expected = vec![migrations.version(), migrations.expiry_version()];
    expected.sort();
    assert_eq!(applied().await, expected);
    // The store still works meanwhile (without the guarantee).
    assert!(store.get(&HostUserId::Int(1)).await.unwrap().is_some());

    // One duplicate left: the message says so.
    exec::<C>(
        &pool,
        &format!("UPDATE {t} SET mattermost_user_id = NULL WHERE id = 2"),
    )
    .await;
    match store.migrate().await {
        Err(StoreError::Schema { message, .. }) => {
            assert!(message.contains("1 Mattermost user id is"), "{message}");
        }
        other => panic!("{}: expected Schema, got {other:?}", C::NAME),
    }

    // Resolved: the index is added, and enforced.
    exec::<C>(
        &pool,
        &format!("UPDATE {t} SET mattermost_user_id = NULL, mattermost_token = NULL WHERE id = 4"),
    )
    .await;
    store.migrate().await.unwrap();
    assert_eq!(applied().await, migrations.versions());
    assert!(C::indexes(&pool, &t).await.contains(&index));
    assert_already_linked(
        store
            .set_mattermost_user_id(&HostUserId::Int(2), &mm(1))
            .await,
        &HostUserId::Int(2),
        &mm(1),
    );
    store.migrate().await.unwrap();

    // Reverting removes the index (and the columns); again is a no-op.
    store.undo_migration().await.unwrap();
    assert!(!C::indexes(&pool, &t).await.contains(&index));
    assert_eq!(C::columns(&pool, &t).await.len(), 2);
    assert!(applied().await.is_empty());
    store.undo_migration().await.unwrap();
    // And forward again.
    store.migrate().await.unwrap();
    assert!(C::indexes(&pool, &t).await.contains(&index));
    store.undo_migration().await.unwrap();
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// The host's own unique index on `mattermost_user_id` is kept: none is
/// added next to it, writes are still refused, and reverting keeps it.
async fn host_unique_index_kept<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} host unique index", C::NAME)).await else {
        return;
    };
    let store = users_table::<C>(&pool, &[HostUserId::Int(1), HostUserId::Int(2)], false).await;
    let t = store.table_name().to_owned();
    exec::<C>(
        &pool,
        &format!("ALTER TABLE {t} ADD COLUMN mattermost_user_id VARCHAR(26) NULL"),
    )
    .await;
    let host_index = format!("{t}_host_mm");
    exec::<C>(
        &pool,
        &format!("CREATE UNIQUE INDEX {host_index} ON {t} (mattermost_user_id)"),
    )
    .await;
    let before = C::indexes(&pool, &t).await;
    store.migrate().await.unwrap();
    assert_eq!(C::indexes(&pool, &t).await, before);
    store
        .set_mattermost_user_id(&HostUserId::Int(1), &mm(1))
        .await
        .unwrap();
    assert_already_linked(
        store.put_token(&HostUserId::Int(2), &token(1, "x")).await,
        &HostUserId::Int(2),
        &mm(1),
    );
    store.undo_migration().await.unwrap();
    assert_eq!(C::indexes(&pool, &t).await, before);
    let names: Vec<String> = C::columns(&pool, &t)
        .await
        .into_iter()
        .map(|c| c.split(' ').next().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["id", "name", "mattermost_user_id"]);

    // Without the host's index ours is added; reverting drops it (by its
    // marker: the host's column, and so no index on it, goes away).
    let drop = if C::NAME == "MariaDB" {
        format!("DROP INDEX {host_index} ON {t}")
    } else {
        format!("DROP INDEX {host_index}")
    };
    exec::<C>(&pool, &drop).await;
    let plain = C::indexes(&pool, &t).await;
    store.migrate().await.unwrap();
    let mut with_ours = plain.clone();
    with_ours.push(store.user_id_index_name().to_owned());
    with_ours.sort();
    assert_eq!(C::indexes(&pool, &t).await, with_ours);
    store.undo_migration().await.unwrap();
    assert_eq!(C::indexes(&pool, &t).await, plain);
    assert_eq!(C::columns(&pool, &t).await.len(), 3);
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// Every write that links refuses another row's Mattermost user, changing
/// nothing; compare-and-set keeps its answers.
async fn already_linked_writes<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} already linked", C::NAME)).await else {
        return;
    };
    let (a, b, c) = (HostUserId::Int(1), HostUserId::Int(2), HostUserId::Int(3));
    let store = users_table::<C>(&pool, &[a.clone(), b.clone(), c.clone()], false).await;
    store.migrate().await.unwrap();
    let t1 = token(1, "token-of-a");
    let t2 = token(2, "token-of-b");
    assert!(store.put_token_if_absent(&a, &t1).await.unwrap());
    assert!(store.put_token_if_absent(&b, &t2).await.unwrap());
    let before = store.get(&b).await.unwrap().unwrap();

    // b wants a's Mattermost user, with a new token.
    let stolen = NewToken {
        mattermost_user_id: mm(1),
        token: AccessToken::new("secret-stolen-token"),
        token_id: TokenId::new(format!("{:0>26}", "t99")),
        expires_at: None,
    };
    let r = store.replace_token(&b, &t2.token_id, &stolen).await;
    if let Err(e) = &r {
        assert_no_secret(e, "secret-stolen-token");
    }
    assert_already_linked(r, &b, &mm(1));
    assert_already_linked(store.put_token(&b, &stolen).await, &b, &mm(1));
    assert_already_linked(store.set_mattermost_user_id(&b, &mm(1)).await, &b, &mm(1));
    // Compare-and-set that does not match writes nothing: no conflict.
    assert!(!store.put_token_if_absent(&b, &stolen).await.unwrap());
    assert!(
        !store
            .replace_token(&b, &TokenId::new(format!("{:0>26}", "t0")), &stolen)
            .await
            .unwrap()
    );
    // A user without a token: refused as well.
    assert_already_linked(store.put_token_if_absent(&c, &stolen).await, &c, &mm(1));
    let after = store.get(&b).await.unwrap().unwrap();
    assert_eq!(after.mattermost_user_id, before.mattermost_user_id);
    assert_eq!(after.token_id, before.token_id);
    assert!(after.token.unwrap().ct_eq(&before.token.unwrap()));
    let c_rec = store.get(&c).await.unwrap().unwrap();
    assert!(c_rec.mattermost_user_id.is_none() && c_rec.token.is_none());
    // a keeps its link; writing it again is fine.
    store.set_mattermost_user_id(&a, &mm(1)).await.unwrap();
    store.put_token(&a, &t1).await.unwrap();
    // Unknown users are still unknown.
    assert!(matches!(
        store
            .set_mattermost_user_id(&HostUserId::Int(99), &mm(1))
            .await,
        Err(StoreError::UnknownUser(_))
    ));
    exec::<C>(&pool, &format!("DROP TABLE {}", store.table_name())).await;
}

/// Ten concurrent links of one Mattermost user to ten host users: exactly
/// one wins, the others are `AlreadyLinked`; the same for tokens.
async fn concurrent_links<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} concurrent links", C::NAME)).await else {
        return;
    };
    let users: Vec<HostUserId> = (1..=20).map(HostUserId::Int).collect();
    let store = Arc::new(users_table::<C>(&pool, &users, false).await);
    store.migrate().await.unwrap();

    let set = users[..10].iter().cloned().map(|u| {
        let store = store.clone();
        tokio::spawn(async move {
            let r = store.set_mattermost_user_id(&u, &mm(7)).await;
            (u, r)
        })
    });
    let mut winners = Vec::new();
    for (u, r) in futures::future::join_all(set)
        .await
        .into_iter()
        .map(Result::unwrap)
    {
        match r {
            Ok(()) => winners.push(u),
            r => assert_already_linked(r, &u, &mm(7)),
        }
    }
    assert_eq!(winners.len(), 1, "{}: {winners:?}", C::NAME);

    let put = users[10..].iter().cloned().map(|u| {
        let store = store.clone();
        tokio::spawn(async move {
            let r = store.put_token_if_absent(&u, &token(8, "raced")).await;
            (u, r)
        })
    });
    let mut token_winners = Vec::new();
    for (u, r) in futures::future::join_all(put)
        .await
        .into_iter()
        .map(Result::unwrap)
    {
        match r {
            Ok(true) => token_winners.push(u),
            r => assert_already_linked(r, &u, &mm(8)),
        }
    }
    assert_eq!(token_winners.len(), 1, "{}: {token_winners:?}", C::NAME);

    // What is stored agrees: one row per Mattermost user.
    let all = store.get_many(&users).await.unwrap();
    let linked = |id: UserId| -> Vec<HostUserId> {
        all.iter()
            .filter(|(_, r)| r.mattermost_user_id.as_ref() == Some(&id))
            .map(|(u, _)| u.clone())
            .collect()
    };
    assert_eq!(linked(mm(7)), winners);
    assert_eq!(linked(mm(8)), token_winners);
    assert_eq!(
        all.values().filter(|r| r.token.is_some()).count(),
        1,
        "{}",
        C::NAME
    );
    exec::<C>(&pool, &format!("DROP TABLE {}", store.table_name())).await;
}

/// The host's own diesel migrations before and after ours: no collision,
/// the host's `revert_last_migration` keeps acting on its own migrations.
async fn host_migrations<C: TestDb>(harness_conn: C)
where
    C::Backend: mattermost_tokens_diesel::MigrationBackend,
    AsyncMigrationHarness<C>:
        mattermost_tokens_diesel::diesel_migrations::MigrationHarness<C::Backend>,
{
    use mattermost_tokens_diesel::diesel_migrations::MigrationHarness;

    let t = table_name();
    let host = HostMigrations::new(&t);
    let mut h = AsyncMigrationHarness::new(harness_conn);
    // The host's first migration creates its users table.
    h.run_next_migration(host.clone()).unwrap();
    let ours = TokenMigrations::new(t.clone()).unwrap();
    ours.run(&mut h).unwrap();
    // The host's second migration, then its tooling's "run pending": no
    // error, nothing left, ours not mistaken for the host's.
    h.run_pending_migrations(host.clone()).unwrap();
    assert!(!h.has_pending_migration(host.clone()).unwrap());
    let applied: Vec<String> = h
        .applied_migrations()
        .unwrap()
        .into_iter()
        .map(|v| v.to_string())
        .collect();
    for v in [HOST_V1, HOST_V2] {
        assert!(applied.contains(&v.to_owned()), "{applied:?}");
    }
    for v in ours.versions() {
        assert!(applied.contains(&v), "{applied:?}");
    }
    // The host reverts its latest migration: its own, not ours (which sort
    // before every timestamped version).
    let reverted = h.revert_last_migration(host.clone()).unwrap();
    assert_eq!(reverted.to_string(), HOST_V2);
    // Ours is still applied and works with the host's first migration's table.
    ours.run(&mut h).unwrap();
    ours.revert(&mut h).unwrap();
    h.revert_last_migration(host.clone()).unwrap();
    let left: Vec<String> = h
        .applied_migrations()
        .unwrap()
        .into_iter()
        .map(|v| v.to_string())
        .filter(|v| v == HOST_V1 || v == HOST_V2 || ours.versions().contains(v))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

const HOST_V1: &str = "20251101120000";
const HOST_V2: &str = "20261127090000";

/// Two host migrations, as `embed_migrations!` would give them.
#[derive(Clone)]
struct HostMigrations {
    table: String,
}

impl HostMigrations {
    fn new(table: &str) -> Self {
        HostMigrations {
            table: table.to_owned(),
        }
    }
}

struct HostMigration {
    version: &'static str,
    name: String,
    up: String,
    down: String,
}

impl std::fmt::Display for HostMigration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl mattermost_tokens_diesel::diesel::migration::MigrationName for HostMigration {
    fn version(&self) -> mattermost_tokens_diesel::diesel::migration::MigrationVersion<'_> {
        self.version.into()
    }
}

impl mattermost_tokens_diesel::diesel::migration::MigrationMetadata for HostMigration {}

impl<DB: mattermost_tokens_diesel::diesel::backend::Backend>
    mattermost_tokens_diesel::diesel::migration::Migration<DB> for HostMigration
{
    fn run(
        &self,
        conn: &mut dyn mattermost_tokens_diesel::diesel::connection::BoxableConnection<DB>,
    ) -> mattermost_tokens_diesel::diesel::migration::Result<()> {
        Ok(conn.batch_execute(&self.up)?)
    }

    fn revert(
        &self,
        conn: &mut dyn mattermost_tokens_diesel::diesel::connection::BoxableConnection<DB>,
    ) -> mattermost_tokens_diesel::diesel::migration::Result<()> {
        Ok(conn.batch_execute(&self.down)?)
    }

    fn metadata(&self) -> &dyn mattermost_tokens_diesel::diesel::migration::MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn mattermost_tokens_diesel::diesel::migration::MigrationName {
        self
    }
}

impl<DB: mattermost_tokens_diesel::diesel::backend::Backend>
    mattermost_tokens_diesel::diesel::migration::MigrationSource<DB> for HostMigrations
{
    fn migrations(
        &self,
    ) -> mattermost_tokens_diesel::diesel::migration::Result<
        Vec<Box<dyn mattermost_tokens_diesel::diesel::migration::Migration<DB>>>,
    > {
        let t = &self.table;
        Ok(vec![
            Box::new(HostMigration {
                version: HOST_V1,
                name: format!("{HOST_V1}_create_users"),
                up: format!(
                    "CREATE TABLE {t} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL)"
                ),
                down: format!("DROP TABLE {t}"),
            }),
            Box::new(HostMigration {
                version: HOST_V2,
                name: format!("{HOST_V2}_add_nickname"),
                up: format!("ALTER TABLE {t} ADD COLUMN nickname VARCHAR(50) NULL"),
                down: format!("ALTER TABLE {t} DROP COLUMN nickname"),
            }),
        ])
    }
}

macro_rules! per_backend {
    ($scenario:ident) => {
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$scenario::<AsyncPgConnection>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                super::$scenario::<AsyncMysqlConnection>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$scenario::<AsyncSqliteConnection>().await;
            }
        }
    };
}

/// A `schema.table` name works for the migration and the store.
async fn schema_qualified_table<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} schema-qualified table", C::NAME)).await else {
        return;
    };
    let plain = users_table::<C>(&pool, &[HostUserId::Int(1), HostUserId::Int(2)], false).await;
    let qualified = format!("{}.{}", C::schema(&pool).await, plain.table_name());
    let store = DieselTokenStore::<C, _>::new(pool.clone())
        .with_table_name(qualified.clone())
        .unwrap();
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    // The index is named after the table without its schema, and lives in
    // the table's schema.
    let index = store.user_id_index_name().to_owned();
    assert_eq!(index, plain.user_id_index_name().to_owned());
    assert!(C::indexes(&pool, plain.table_name()).await.contains(&index));
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(2), &token(2, "q"))
            .await
            .unwrap()
    );
    assert_already_linked(
        plain
            .set_mattermost_user_id(&HostUserId::Int(1), &mm(2))
            .await,
        &HostUserId::Int(1),
        &mm(2),
    );
    // The unqualified store's migration finds the index there.
    plain.migrate().await.unwrap();
    assert!(C::indexes(&pool, plain.table_name()).await.contains(&index));
    // The unqualified store sees the same columns and values.
    assert_eq!(
        plain
            .get(&HostUserId::Int(2))
            .await
            .unwrap()
            .unwrap()
            .token
            .unwrap()
            .expose_secret(),
        "q"
    );
    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, plain.table_name()).await.len(), 2);
    assert!(!C::indexes(&pool, plain.table_name()).await.contains(&index));
    // Nothing left to drop: the unqualified store forgets its versions.
    plain.undo_migration().await.unwrap();
    exec::<C>(&pool, &format!("DROP TABLE {qualified}")).await;
}

per_backend!(schema_qualified_table);
per_backend!(laravel_table);
per_backend!(seed_column_survives);
per_backend!(idempotent_and_reversible);
per_backend!(clashing_columns);
per_backend!(missing_table);
per_backend!(unchanged_writes);
per_backend!(duplicate_links_block_index);
per_backend!(host_unique_index_kept);
per_backend!(already_linked_writes);
per_backend!(concurrent_links);

// ---------------------------------------------------------------------------
// The token expiry column
// ---------------------------------------------------------------------------

/// The expiry column's default name.
const EXPIRY: &str = "mattermost_token_expires_at";

/// 2100-01-01 in milliseconds: past 2^31 seconds, so only a BIGINT holds it.
const EXPIRES: i64 = 4_102_444_800_000;

/// The names in a [`TestDb::columns`] listing.
fn column_names(columns: &[String]) -> Vec<String> {
    columns
        .iter()
        .map(|c| c.split(' ').next().unwrap().to_owned())
        .collect()
}

/// The declared type in a [`TestDb::columns`] line, lowercased.
fn column_type(columns: &[String], name: &str) -> String {
    let line = columns
        .iter()
        .find(|c| c.split(' ').next() == Some(name))
        .unwrap_or_else(|| panic!("no column {name} in {columns:?}"));
    line.split(' ').nth(1).unwrap().to_ascii_lowercase()
}

/// Whether a declared type is the expiry column's: PostgreSQL and MySQL
/// BIGINT, SQLite INTEGER.
fn is_expiry_type(sql_type: &str) -> bool {
    sql_type == "bigint" || sql_type.starts_with("bigint(") || sql_type == "integer"
}

/// The versions of `migrations` that the database records, in order.
async fn applied_versions<C: TestDb>(pool: &C::Pool, migrations: &TokenMigrations) -> Vec<String>
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>:
        mattermost_tokens_diesel::diesel_migrations::MigrationHarness<C::Backend>,
    C::Backend: mattermost_tokens_diesel::MigrationBackend,
{
    use mattermost_tokens_diesel::diesel_migrations::MigrationHarness;

    let mut h = AsyncMigrationHarness::new(pool.connection().await.unwrap());
    let mut versions: Vec<String> = h
        .applied_migrations()
        .unwrap()
        .into_iter()
        .map(|v| v.to_string())
        .filter(|v| migrations.versions().contains(v))
        .collect();
    versions.sort();
    versions.dedup();
    versions
}

/// A token expiring at `ms`.
fn expiring_token(n: u32, value: &str, ms: Option<i64>) -> NewToken {
    NewToken {
        expires_at: ms,
        ..token(n, value)
    }
}

/// A table migrated by the previous version (the token columns and the
/// unique index, no expiry column) with tokens in it: `migrate()` runs only
/// the new step, adds the column (BIGINT; INTEGER on SQLite) after the
/// others, keeps every row as it was, and the stored tokens read back
/// without an expiry.
async fn expiry_upgrade<C: TestDb>()
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>:
        mattermost_tokens_diesel::diesel_migrations::MigrationHarness<C::Backend>,
    C::Backend: mattermost_tokens_diesel::MigrationBackend,
{
    use mattermost_tokens_diesel::diesel_migrations::MigrationHarness;

    let Some(pool) = C::pool(&format!("diesel {} expiry upgrade", C::NAME)).await else {
        return;
    };
    let users: Vec<HostUserId> = (1..=3).map(HostUserId::Int).collect();
    let store = users_table::<C>(&pool, &users, false).await;
    let t = store.table_name().to_owned();
    let migrations = store.migrations();
    // What the previous version left: its two migrations, applied one by one.
    {
        let mut h = AsyncMigrationHarness::new(pool.connection().await.unwrap());
        h.run_next_migration(migrations.clone()).unwrap();
        h.run_next_migration(migrations.clone()).unwrap();
    }
    assert_eq!(
        applied_versions::<C>(&pool, &migrations).await,
        [migrations.version(), migrations.index_version()]
    );
    let columns_before = C::columns(&pool, &t).await;
    assert!(!column_names(&columns_before).contains(&EXPIRY.to_owned()));
    let indexes_before = C::indexes(&pool, &t).await;
    assert!(indexes_before.contains(&migrations.user_id_index_name()));
    // Tokens stored by the previous version.
    exec::<C>(
        &pool,
        &format!(
            "UPDATE {t} SET mattermost_user_id = '{u1}', mattermost_token = 'old-token-1', \
             mattermost_token_id = '{i1}' WHERE id = 1; \
             UPDATE {t} SET mattermost_user_id = '{u2}' WHERE id = 2",
            u1 = mm(1),
            i1 = token(1, "").token_id,
            u2 = mm(2),
        ),
    )
    .await;
    let dump_sql = format!(
        "SELECT {} FROM {t} ORDER BY id",
        row_select(&[
            C::text("id"),
            "name".into(),
            "mattermost_user_id".into(),
            "mattermost_token".into(),
            "mattermost_token_id".into(),
        ])
    );
    let rows_before = C::rows(&pool, &dump_sql).await;

    store.migrate().await.unwrap();
    assert_eq!(
        applied_versions::<C>(&pool, &migrations).await,
        migrations.versions()
    );
    let columns_after = C::columns(&pool, &t).await;
    assert_eq!(columns_after[..columns_before.len()], columns_before[..]);
    assert_eq!(
        column_names(&columns_after[columns_before.len()..]),
        [EXPIRY]
    );
    let sql_type = column_type(&columns_after, EXPIRY);
    assert!(is_expiry_type(&sql_type), "{}: {sql_type}", C::NAME);
    assert_eq!(C::indexes(&pool, &t).await, indexes_before);
    assert_eq!(C::rows(&pool, &dump_sql).await, rows_before, "rows changed");

    // The old rows read back as they were, with no expiry.
    let rec = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "old-token-1");
    assert_eq!(rec.mattermost_user_id, Some(mm(1)));
    assert_eq!(rec.token_expires_at, None);
    let all = store.get_many(&users).await.unwrap();
    assert!(all.values().all(|r| r.token_expires_at.is_none()));
    assert_eq!(all[&HostUserId::Int(2)].mattermost_user_id, Some(mm(2)));
    // And new writes store an expiry.
    assert!(
        store
            .replace_token(
                &HostUserId::Int(1),
                &token(1, "").token_id,
                &expiring_token(1, "new-token-1", Some(EXPIRES)),
            )
            .await
            .unwrap()
    );
    let rec = store.get(&HostUserId::Int(1)).await.unwrap().unwrap();
    assert_eq!(rec.token_expires_at, Some(EXPIRES));
    let stored = C::rows(
        &pool,
        &format!(
            "SELECT {} FROM {t} WHERE id = 1",
            row_select(&[C::text(EXPIRY)])
        ),
    )
    .await;
    assert_eq!(stored[0].c0.as_deref(), Some(EXPIRES.to_string().as_str()));
    // Nothing left to do.
    store.migrate().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, columns_after);

    store.undo_migration().await.unwrap();
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// Reverting removes the expiry column first (reverting that step alone
/// leaves the index and the token columns), then the other steps; a later
/// `migrate()` adds back only what is missing.
async fn expiry_revert<C: TestDb>()
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>:
        mattermost_tokens_diesel::diesel_migrations::MigrationHarness<C::Backend>,
    C::Backend: mattermost_tokens_diesel::MigrationBackend,
{
    use mattermost_tokens_diesel::diesel::migration::MigrationSource;
    use mattermost_tokens_diesel::diesel_migrations::MigrationHarness;

    let Some(pool) = C::pool(&format!("diesel {} expiry revert", C::NAME)).await else {
        return;
    };
    let store = users_table::<C>(&pool, &[HostUserId::Int(1), HostUserId::Int(2)], false).await;
    let t = store.table_name().to_owned();
    let migrations = store.migrations();
    let original = C::columns(&pool, &t).await;
    let original_indexes = C::indexes(&pool, &t).await;
    store.migrate().await.unwrap();
    let migrated = C::columns(&pool, &t).await;
    assert_eq!(
        column_names(&migrated).last().map(String::as_str),
        Some(EXPIRY)
    );
    store
        .put_token(
            &HostUserId::Int(1),
            &expiring_token(1, "tok", Some(EXPIRES)),
        )
        .await
        .unwrap();

    // The newest step alone, through the harness: the column goes, the
    // index and the token columns (and the token) stay.
    {
        let mut h = AsyncMigrationHarness::new(pool.connection().await.unwrap());
        let steps = MigrationSource::<C::Backend>::migrations(&migrations).unwrap();
        assert_eq!(
            steps.last().unwrap().name().to_string(),
            format!(
                "{}_add_mattermost_token_expires_at_column",
                migrations.expiry_version()
            )
        );
        h.revert_migration(&**steps.last().unwrap()).unwrap();
    }
    assert_eq!(
        applied_versions::<C>(&pool, &migrations).await,
        [migrations.version(), migrations.index_version()]
    );
    let without_expiry = C::columns(&pool, &t).await;
    assert_eq!(without_expiry[..], migrated[..migrated.len() - 1]);
    assert!(
        C::indexes(&pool, &t)
            .await
            .contains(&migrations.user_id_index_name())
    );
    let kept = C::rows(
        &pool,
        &format!(
            "SELECT {} FROM {t} WHERE id = 1",
            row_select(&["mattermost_token".into()])
        ),
    )
    .await;
    assert_eq!(kept[0].c0.as_deref(), Some("tok"));

    // migrate() adds back just the column (empty).
    store.migrate().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, migrated);
    assert_eq!(
        store
            .get(&HostUserId::Int(1))
            .await
            .unwrap()
            .unwrap()
            .token_expires_at,
        None
    );

    // The whole revert: every step, newest first; then nothing to do.
    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, original);
    assert_eq!(C::indexes(&pool, &t).await, original_indexes);
    assert!(applied_versions::<C>(&pool, &migrations).await.is_empty());
    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, original);
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// A custom expiry column name: the migration adds that column (and not the
/// default one), the store reads and writes it, reverting drops it.
async fn expiry_custom_column<C: TestDb>() {
    let Some(pool) = C::pool(&format!("diesel {} expiry custom column", C::NAME)).await else {
        return;
    };
    let users = [HostUserId::Int(1), HostUserId::Int(2)];
    let store = users_table::<C>(&pool, &users, false)
        .await
        .with_expiry_column("token_valid_until_ms")
        .unwrap();
    assert_eq!(store.expiry_column(), "token_valid_until_ms");
    assert_eq!(store.migrations().expiry_column(), "token_valid_until_ms");
    let t = store.table_name().to_owned();
    let original = C::columns(&pool, &t).await;
    store.migrate().await.unwrap();
    let migrated = C::columns(&pool, &t).await;
    let names = column_names(&migrated);
    assert_eq!(
        names.last().map(String::as_str),
        Some("token_valid_until_ms")
    );
    assert!(!names.contains(&EXPIRY.to_owned()), "{names:?}");
    assert!(is_expiry_type(&column_type(
        &migrated,
        "token_valid_until_ms"
    )));

    let u = &users[0];
    assert!(
        store
            .put_token_if_absent(u, &expiring_token(1, "custom", Some(EXPIRES)))
            .await
            .unwrap()
    );
    assert_eq!(
        store.get(u).await.unwrap().unwrap().token_expires_at,
        Some(EXPIRES)
    );
    assert_eq!(
        store.get_many(&users).await.unwrap()[u].token_expires_at,
        Some(EXPIRES)
    );
    let stored = C::rows(
        &pool,
        &format!(
            "SELECT {} FROM {t} WHERE id = 1",
            row_select(&[C::text("token_valid_until_ms")])
        ),
    )
    .await;
    assert_eq!(stored[0].c0.as_deref(), Some(EXPIRES.to_string().as_str()));
    assert!(store.clear_token(u).await.unwrap());
    assert_eq!(store.get(u).await.unwrap().unwrap().token_expires_at, None);

    // A store with the default name finds no column of its own.
    let default = DieselTokenStore::<C, _>::new(pool.clone())
        .with_table_name(t.clone())
        .unwrap();
    assert!(matches!(
        default.get(u).await,
        Err(StoreError::Schema { .. })
    ));

    store.migrate().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, migrated);
    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, original);
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
}

/// Migrating twice changes nothing the second time (through the store and
/// diesel-async's harness); a compatible expiry column the host already
/// has is kept with its values, also by a revert; an incompatible one
/// (text, or NOT NULL) stops the step with `Schema` and is left alone.
async fn expiry_idempotent<C: TestDb>()
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>:
        mattermost_tokens_diesel::diesel_migrations::MigrationHarness<C::Backend>,
    C::Backend: mattermost_tokens_diesel::MigrationBackend,
{
    let Some(pool) = C::pool(&format!("diesel {} expiry idempotent", C::NAME)).await else {
        return;
    };
    let u = HostUserId::Int(1);
    let store = users_table::<C>(&pool, std::slice::from_ref(&u), false).await;
    let t = store.table_name().to_owned();
    store.migrate().await.unwrap();
    let migrated = C::columns(&pool, &t).await;
    store
        .put_token(&u, &expiring_token(1, "kept", Some(EXPIRES)))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    {
        let mut h = AsyncMigrationHarness::new(pool.connection().await.unwrap());
        store.migrations().run(&mut h).unwrap();
    }
    assert_eq!(C::columns(&pool, &t).await, migrated);
    assert_eq!(
        store.get(&u).await.unwrap().unwrap().token_expires_at,
        Some(EXPIRES)
    );
    store.undo_migration().await.unwrap();
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;

    // The host's own BIGINT column of that name, holding values: kept.
    let store = users_table::<C>(&pool, std::slice::from_ref(&u), false).await;
    let t = store.table_name().to_owned();
    exec::<C>(
        &pool,
        &format!(
            "ALTER TABLE {t} ADD COLUMN {EXPIRY} BIGINT NULL; \
             UPDATE {t} SET {EXPIRY} = 1234 WHERE id = 1"
        ),
    )
    .await;
    let before = C::columns(&pool, &t).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    let after = C::columns(&pool, &t).await;
    assert_eq!(
        after[..before.len()],
        before[..],
        "the host's column changed"
    );
    assert_eq!(
        column_names(&after[before.len()..]),
        [
            "mattermost_user_id",
            "mattermost_token",
            "mattermost_token_id"
        ]
    );
    assert_eq!(
        store.get(&u).await.unwrap().unwrap().token_expires_at,
        Some(1234)
    );
    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, before);
    let kept = C::rows(
        &pool,
        &format!(
            "SELECT {} FROM {t} WHERE id = 1",
            row_select(&[C::text(EXPIRY)])
        ),
    )
    .await;
    assert_eq!(kept[0].c0.as_deref(), Some("1234"));
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;

    // Columns that cannot hold it.
    for ddl in [
        format!("{EXPIRY} VARCHAR(20) NULL"),
        format!("{EXPIRY} BIGINT NOT NULL DEFAULT 0"),
    ] {
        let store = users_table::<C>(&pool, std::slice::from_ref(&u), false).await;
        let t = store.table_name().to_owned();
        exec::<C>(&pool, &format!("ALTER TABLE {t} ADD COLUMN {ddl}")).await;
        match store.migrate().await {
            Err(StoreError::Schema { message, .. }) => {
                assert!(message.contains(EXPIRY), "{message}");
            }
            other => panic!("{}: {ddl}: expected Schema, got {other:?}", C::NAME),
        }
        let columns = C::columns(&pool, &t).await;
        assert_eq!(
            column_names(&columns)[2],
            EXPIRY,
            "{ddl}: the host's column was touched"
        );
        let migrations = store.migrations();
        assert!(
            !applied_versions::<C>(&pool, &migrations)
                .await
                .contains(&migrations.expiry_version()),
            "{ddl}"
        );
        store.undo_migration().await.unwrap();
        assert_eq!(
            column_names(&C::columns(&pool, &t).await),
            ["id", "name", EXPIRY]
        );
        exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
    }
}

per_backend!(expiry_upgrade);
per_backend!(expiry_revert);
per_backend!(expiry_custom_column);
per_backend!(expiry_idempotent);

// ---------------------------------------------------------------------------
// Host migrations: each backend in a database of its own, so the shared
// `__diesel_schema_migrations` holds only this test's versions.
// ---------------------------------------------------------------------------

mod host_migrations {
    use super::*;
    use mattermost_tokens_diesel::diesel_async::AsyncConnection;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        let Some(url) = url_or_skip(POSTGRES_ENV, "diesel postgres host migrations") else {
            return;
        };
        let schema = table_name();
        let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
        conn.batch_execute(&format!(
            "CREATE SCHEMA {schema}; SET search_path TO {schema}"
        ))
        .await
        .unwrap();
        super::host_migrations(conn).await;
        let mut conn = AsyncPgConnection::establish(&url).await.unwrap();
        conn.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mariadb() {
        let Some(url) = url_or_skip(MYSQL_ENV, "diesel mariadb host migrations") else {
            return;
        };
        let db = table_name();
        let mut conn = AsyncMysqlConnection::establish(&url).await.unwrap();
        conn.batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        conn.batch_execute(&format!("USE {db}")).await.unwrap();
        super::host_migrations(conn).await;
        let mut conn = AsyncMysqlConnection::establish(&url).await.unwrap();
        conn.batch_execute(&format!("DROP DATABASE {db}"))
            .await
            .unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        let conn = sqlite::establish(&sqlite_file()).await.unwrap();
        super::host_migrations(conn).await;
    }

    /// The same on a plain sync `diesel::SqliteConnection`, as a host's
    /// `diesel migration run`-style tooling would hold.
    #[test]
    fn sqlite_sync_connection() {
        use mattermost_tokens_diesel::diesel::Connection;
        use mattermost_tokens_diesel::diesel_migrations::MigrationHarness;

        let path = sqlite_file();
        let mut conn =
            mattermost_tokens_diesel::diesel::SqliteConnection::establish(&path).unwrap();
        let t = table_name();
        let host = HostMigrations::new(&t);
        let ours = TokenMigrations::new(t.clone()).unwrap();
        conn.run_next_migration(host.clone()).unwrap();
        ours.run(&mut conn).unwrap();
        ours.run(&mut conn).unwrap();
        conn.run_pending_migrations(host.clone()).unwrap();
        assert_eq!(
            conn.revert_last_migration(host.clone())
                .unwrap()
                .to_string(),
            HOST_V2
        );
        ours.revert(&mut conn).unwrap();
        ours.revert(&mut conn).unwrap();
        ours.run(&mut conn).unwrap();

        // The async store finds it applied and works on the same file.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            exec::<AsyncSqliteConnection>(
                &sqlite::pool(&path, 2).unwrap(),
                &format!("INSERT INTO {t} (id, name) VALUES (7, 'seven')"),
            )
            .await;
            let store = sqlite::SqliteTokenStore::from_url(&path)
                .unwrap()
                .with_table_name(t.clone())
                .unwrap();
            store.migrate().await.unwrap();
            assert!(
                store
                    .put_token_if_absent(&HostUserId::Int(7), &token(7, "seven"))
                    .await
                    .unwrap()
            );
        });
        ours.revert(&mut conn).unwrap();
        let cols = {
            use mattermost_tokens_diesel::diesel::RunQueryDsl;
            mattermost_tokens_diesel::diesel::sql_query(format!(
                "SELECT {} FROM pragma_table_info('{t}')",
                row_select(&["name".into()])
            ))
            .load::<Row>(&mut conn)
            .unwrap()
        };
        let names: Vec<_> = cols.into_iter().filter_map(|r| r.c0).collect();
        assert_eq!(names, ["id", "name"]);
    }
}

// ---------------------------------------------------------------------------
// Configuration and errors
// ---------------------------------------------------------------------------

#[test]
fn identifiers_are_validated() {
    let pool = sqlite::pool(&sqlite_file(), 1).unwrap();
    for bad in [
        "users; DROP TABLE x",
        "1users",
        "us-ers",
        "a.b.c",
        "\"users\"",
        "",
    ] {
        assert!(
            matches!(
                sqlite::SqliteTokenStore::new(pool.clone()).with_table_name(bad),
                Err(StoreError::Config(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(TokenMigrations::new(bad), Err(StoreError::Config(_))),
            "{bad}"
        );
        assert!(
            matches!(
                sqlite::SqliteTokenStore::new(pool.clone()).with_key_column(bad),
                Err(StoreError::Config(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                sqlite::SqliteTokenStore::new(pool.clone()).with_expiry_column(bad),
                Err(StoreError::Config(_))
            ),
            "{bad}"
        );
        assert!(
            matches!(
                TokenMigrations::default().with_expiry_column(bad),
                Err(StoreError::Config(_))
            ),
            "{bad}"
        );
    }
    // Not a qualified name, not another column of the store.
    for taken in [
        "users.expires_at",
        "id",
        "mattermost_user_id",
        "mattermost_token",
        "MATTERMOST_TOKEN_ID",
    ] {
        assert!(
            matches!(
                sqlite::SqliteTokenStore::new(pool.clone()).with_expiry_column(taken),
                Err(StoreError::Config(_))
            ),
            "{taken}"
        );
    }
    assert!(matches!(
        sqlite::SqliteTokenStore::new(pool.clone())
            .with_expiry_column("expires_ms")
            .unwrap()
            .with_key_column("expires_ms"),
        Err(StoreError::Config(_))
    ));
    assert!(matches!(
        sqlite::SqliteTokenStore::new(pool.clone()).with_key_column("users.id"),
        Err(StoreError::Config(_))
    ));
    let ok = sqlite::SqliteTokenStore::new(pool)
        .with_table_name("main.app_users")
        .unwrap()
        .with_key_column("user_key")
        .unwrap()
        .with_expiry_column("Token_Expiry_1")
        .unwrap();
    assert_eq!(ok.table_name(), "main.app_users");
    assert_eq!(ok.key_column(), "user_key");
    assert_eq!(ok.expiry_column(), "Token_Expiry_1");
    assert_eq!(ok.migrations().expiry_column(), "Token_Expiry_1");
}

/// A URL nobody listens on: `Unavailable`, fast, and without the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_unavailable() {
    let port = closed_port().await;
    let pg = postgres::PgTokenStore::from_url(&format!(
        "postgres://app:hunter2-secret@127.0.0.1:{port}/app"
    ))
    .unwrap();
    let my = mattermost_tokens_diesel::MySqlTokenStore::from_url(&format!(
        "mysql://app:hunter2-secret@127.0.0.1:{port}/app"
    ))
    .unwrap();
    let lite =
        sqlite::SqliteTokenStore::from_url("/nonexistent-dir/hunter2-secret/app.db").unwrap();
    let stores: [Arc<dyn TokenStore>; 3] = [Arc::new(pg), Arc::new(my), Arc::new(lite)];
    for store in stores {
        let start = Instant::now();
        let err = store.get(&HostUserId::Int(1)).await.unwrap_err();
        assert!(start.elapsed() < Duration::from_secs(3), "{err}");
        assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
        assert_no_secret(&err, "hunter2-secret");
    }
    let pg = postgres::PgTokenStore::from_url(&format!(
        "postgres://app:hunter2-secret@127.0.0.1:{port}/app"
    ))
    .unwrap();
    let err = pg.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_no_secret(&err, "hunter2-secret");
}

/// A server that accepts connections and never answers: the acquire
/// timeout turns it into `Unavailable`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let store =
        postgres::PgTokenStore::from_url(&format!("postgres://app:pw-secret@127.0.0.1:{port}/app"))
            .unwrap()
            .with_acquire_timeout(Duration::from_millis(300));
    let start = Instant::now();
    let err = store.get(&HostUserId::Int(1)).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(2));
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert_no_secret(&err, "pw-secret");
    holder.abort();
}

/// A read-only SQLite file: reads work, writes are `ReadOnly` and do not
/// quote the token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sqlite() {
    let path = sqlite_file();
    let rw = users_table::<AsyncSqliteConnection>(
        &sqlite::pool(&path, 2).unwrap(),
        &[HostUserId::Int(1)],
        false,
    )
    .await;
    rw.migrate().await.unwrap();
    let t = rw.table_name().to_owned();
    let ro = sqlite::SqliteTokenStore::from_url(&format!("file:{path}?mode=ro"))
        .unwrap()
        .with_table_name(t.clone())
        .unwrap();
    assert!(ro.get(&HostUserId::Int(1)).await.unwrap().is_some());
    let err = ro
        .put_token(&HostUserId::Int(1), &token(1, "a-secret-token-value"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_no_secret(&err, "a-secret-token-value");

    // Migrating a read-only database that needs it: typed as well.
    let other = users_table::<AsyncSqliteConnection>(
        &sqlite::pool(&path, 2).unwrap(),
        &[HostUserId::Int(1)],
        false,
    )
    .await;
    let ro_unmigrated = sqlite::SqliteTokenStore::from_url(&format!("file:{path}?mode=ro"))
        .unwrap()
        .with_table_name(other.table_name())
        .unwrap();
    let err = ro_unmigrated.migrate().await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
}

/// A PostgreSQL session in read-only mode (as on a hot standby).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_postgres() {
    let Some(url) = url_or_skip(POSTGRES_ENV, "diesel postgres read-only") else {
        return;
    };
    let pool = postgres::pool(&url, 2).unwrap();
    let rw = users_table::<AsyncPgConnection>(&pool, &[HostUserId::Int(1)], false).await;
    rw.migrate().await.unwrap();
    let sep = if url.contains('?') { '&' } else { '?' };
    let ro = postgres::PgTokenStore::from_url(&format!(
        "{url}{sep}options=-c%20default_transaction_read_only%3Don"
    ))
    .unwrap()
    .with_table_name(rw.table_name())
    .unwrap();
    assert!(ro.get(&HostUserId::Int(1)).await.unwrap().is_some());
    let err = ro
        .put_token(&HostUserId::Int(1), &token(1, "a-secret-token-value"))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_no_secret(&err, "a-secret-token-value");
    exec::<AsyncPgConnection>(&pool, &format!("DROP TABLE {}", rw.table_name())).await;
}

/// 32-bit integer keys (`INTEGER`, `SERIAL`) work with the default key type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_int4_keys() {
    let Some(pool) = AsyncPgConnection::pool("diesel postgres int4 keys").await else {
        return;
    };
    let t = table_name();
    exec::<AsyncPgConnection>(
        &pool,
        &format!(
            "CREATE TABLE {t} (id SERIAL PRIMARY KEY, name TEXT); \
             INSERT INTO {t} (name) VALUES ('a'), ('b'), ('c')"
        ),
    )
    .await;
    let store = postgres::PgTokenStore::new(pool.clone())
        .with_table_name(t.clone())
        .unwrap();
    store.migrate().await.unwrap();
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(2), &token(2, "x"))
            .await
            .unwrap()
    );
    let page = store
        .list_missing(Some(&HostUserId::Int(1)), 5)
        .await
        .unwrap();
    assert_eq!(page.users, [HostUserId::Int(3)]);
    assert_eq!(
        store.get_many(&[HostUserId::Int(2)]).await.unwrap().len(),
        1
    );
    forget_table::<AsyncPgConnection>(&pool, &t).await;
}

/// UUID keys in any spelling find their row on a PostgreSQL `uuid` column.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_uuid_spellings() {
    let Some(pool) = AsyncPgConnection::pool("diesel postgres uuid spellings").await else {
        return;
    };
    let id = "7f1c2a9e-0000-4000-8000-00000000abcd";
    let store = users_table::<AsyncPgConnection>(&pool, &[HostUserId::Text(id.into())], true).await;
    store.migrate().await.unwrap();
    let spellings = [
        id.to_owned(),
        id.to_uppercase(),
        id.replace('-', ""),
        format!("{{{id}}}"),
    ];
    for s in &spellings {
        assert!(
            store
                .get(&HostUserId::Text(s.clone()))
                .await
                .unwrap()
                .is_some(),
            "{s}"
        );
    }
    let asked: Vec<HostUserId> = spellings.iter().cloned().map(HostUserId::Text).collect();
    let many = store.get_many(&asked).await.unwrap();
    assert_eq!(many.len(), spellings.len());
    assert_eq!(
        store.list_missing(None, 10).await.unwrap().users,
        [HostUserId::Text(id.into())]
    );
    forget_table::<AsyncPgConnection>(&pool, store.table_name()).await;
}

/// A MySQL error that quotes the value written (a host's latin1 token
/// column refusing an emoji) reaches the caller without the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_error_does_not_quote_token() {
    let Some(pool) = AsyncMysqlConnection::pool("diesel mariadb quoted value").await else {
        return;
    };
    let store = users_table::<AsyncMysqlConnection>(&pool, &[HostUserId::Int(1)], false).await;
    exec::<AsyncMysqlConnection>(
        &pool,
        &format!(
            "ALTER TABLE {} ADD COLUMN mattermost_token VARCHAR(255) CHARACTER SET latin1 NULL",
            store.table_name()
        ),
    )
    .await;
    store.migrate().await.unwrap();
    let secret = "sëcret-tøken-🙂-value";
    let err = store
        .put_token(&HostUserId::Int(1), &token(1, secret))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Database { .. }), "{err:?}");
    assert!(err.to_string().contains("withheld"), "{err}");
    assert_no_secret(&err, "\\xF0");
    assert_no_secret(&err, secret);
    forget_table::<AsyncMysqlConnection>(&pool, store.table_name()).await;
}

/// `migrate()` also works on tokio's current-thread runtime (it does not
/// use `block_in_place`).
#[tokio::test]
async fn migrate_on_current_thread_runtime() {
    let pool = sqlite::pool(&sqlite_file(), 2).unwrap();
    let store = users_table::<AsyncSqliteConnection>(&pool, &[HostUserId::Int(1)], false).await;
    store.migrate().await.unwrap();
    store.migrate().await.unwrap();
    assert!(
        store
            .put_token_if_absent(&HostUserId::Int(1), &token(1, "x"))
            .await
            .unwrap()
    );
    store.undo_migration().await.unwrap();
}

/// `get_many` answers a long list in chunks, one query each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_many_in_chunks() {
    let users: Vec<HostUserId> = (1..=1_234).map(HostUserId::Int).collect();
    let pool = sqlite::pool(&sqlite_file(), 2).unwrap();
    let store = users_table::<AsyncSqliteConnection>(&pool, &users, false).await;
    store.migrate().await.unwrap();
    let mut ask = users.clone();
    ask.push(HostUserId::Int(99_999));
    ask.push(HostUserId::Text("1".into()));
    let got = store.get_many(&ask).await.unwrap();
    assert_eq!(got.len(), users.len());
}

/// The store's `Debug` shows its configuration, not its pool.
#[test]
fn debug_shows_no_url() {
    let store =
        postgres::PgTokenStore::from_url("postgres://app:dbg-secret@127.0.0.1:1/app").unwrap();
    let s = format!("{store:?}");
    assert!(s.contains("users") && !s.contains("dbg-secret"), "{s}");
}

fn assert_no_secret(err: &StoreError, secret: &str) {
    let mut text = format!("{err} {err:?}");
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        text.push_str(&format!(" {s} {s:?}"));
        src = s.source();
    }
    assert!(!text.contains(secret), "{text}");
}

/// A loopback port with nothing listening.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}
