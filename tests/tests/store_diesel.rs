//! mattermost-tokens-diesel on PostgreSQL, MariaDB/MySQL and SQLite: the
//! conformance suite, the migrations through diesel's own harnesses
//! (diesel-async's `AsyncMigrationHarness`, a plain sync
//! `diesel::SqliteConnection`) and next to a host's own diesel migrations,
//! and error mapping. The migration steps themselves are the migration
//! conformance suite's (`tests/migrations.rs`), run through both adapters.
//!
//! PostgreSQL and MariaDB run when `MATTERMOST_TOKENS_TEST_POSTGRES_URL` and
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL` are set (skipped with a message
//! otherwise, a failure under CI); SQLite always runs, on files under
//! cargo's target tmp directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mattermost_tokens::store::schema::Step;
use mattermost_tokens::{HostUserId, StoreError, TokenStore};
use mattermost_tokens_diesel::diesel::QueryableByName;
use mattermost_tokens_diesel::diesel::migration::MigrationSource;
use mattermost_tokens_diesel::diesel::sql_types::{Nullable, Text};
use mattermost_tokens_diesel::diesel_async::pooled_connection::deadpool::Pool;
use mattermost_tokens_diesel::diesel_async::{
    AsyncMigrationHarness, AsyncMysqlConnection, AsyncPgConnection, SimpleAsyncConnection,
};
use mattermost_tokens_diesel::diesel_migrations::MigrationHarness;
use mattermost_tokens_diesel::sqlite::AsyncSqliteConnection;
use mattermost_tokens_diesel::{
    ConnectionPool, DieselTokenStore, KeyType, MigrationBackend, StoreConnection, TokenMigrations,
    mysql, postgres, sqlite,
};
use mattermost_tokens_tests::conformance::StoreFactory;
use mattermost_tokens_tests::db::{MYSQL_ENV, POSTGRES_ENV, unique_suffix, url_or_skip};
use mattermost_tokens_tests::migration_conformance::{assert_no_secret, expiring, mm, token};
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

    /// `(name, type, nullable)` of each column, in order.
    async fn columns(pool: &Self::Pool, table: &str) -> Vec<String>;

    /// The names of the table's indexes, sorted.
    async fn indexes(pool: &Self::Pool, table: &str) -> Vec<String>;

    /// Rows of an all-text query (up to 8 columns `c0`..`c7`).
    async fn rows(pool: &Self::Pool, sql: &str) -> Vec<Row>;

    /// Drops tables left by test processes that are gone.
    async fn drop_stale_tables(pool: &Self::Pool);
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
// Through diesel's harness
// ---------------------------------------------------------------------------

/// 2100-01-01 in milliseconds: past 2^31 seconds, so only a BIGINT holds it.
const EXPIRES: i64 = 4_102_444_800_000;

/// The versions of `migrations` that the database records, in order.
async fn applied_versions<C: TestDb>(pool: &C::Pool, migrations: &TokenMigrations) -> Vec<String>
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>: MigrationHarness<C::Backend>,
    C::Backend: MigrationBackend,
{
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

/// diesel-async's `AsyncMigrationHarness` over a pooled connection runs and
/// reverts the same steps as the store, one at a time too: it sees what the
/// store applied (nothing to run, the tokens stay), reverts all of it
/// twice (no-op the second time), runs it forward again; applies the steps
/// one by one as an earlier release did; reverts the newest alone (the
/// expiry column goes, the index and the tokens stay); and refuses the
/// index over duplicate links as the store does, adding the expiry column
/// anyway.
async fn harness_runs_and_reverts_steps<C: TestDb>()
where
    AsyncMigrationHarness<<C::Pool as ConnectionPool<C>>::Connection>: MigrationHarness<C::Backend>,
    C::Backend: MigrationBackend,
{
    let Some(pool) = C::pool(&format!("diesel {} harness", C::NAME)).await else {
        return;
    };
    let harness = async || AsyncMigrationHarness::new(pool.connection().await.unwrap());
    let u = HostUserId::Int(1);
    let store = users_table::<C>(&pool, std::slice::from_ref(&u), false).await;
    let t = store.table_name().to_owned();
    let migrations = store.migrations();
    let original = C::columns(&pool, &t).await;
    store.migrate().await.unwrap();
    let migrated = C::columns(&pool, &t).await;
    assert_eq!(migrated.len(), original.len() + 7);
    store
        .put_token(&u, &expiring(1, "kept", Some(EXPIRES)))
        .await
        .unwrap();

    // The harness sees the store's steps as applied: nothing to run, and
    // the token and its expiry stay.
    let mut h = harness().await;
    migrations.run(&mut h).unwrap();
    assert_eq!(C::columns(&pool, &t).await, migrated);
    let rec = store.get(&u).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "kept");
    assert_eq!(rec.token_expires_at, Some(EXPIRES));
    // Revert through the harness, then again (nothing applied: no-op).
    migrations.revert(&mut h).unwrap();
    migrations.revert(&mut h).unwrap();
    assert_eq!(C::columns(&pool, &t).await, original);
    drop(h);
    store.undo_migration().await.unwrap();
    assert_eq!(C::columns(&pool, &t).await, original);
    // And forward again through the harness.
    let mut h = harness().await;
    migrations.run(&mut h).unwrap();
    assert_eq!(C::columns(&pool, &t).await, migrated);
    drop(h);
    store.migrate().await.unwrap();
    store.undo_migration().await.unwrap();

    // One step at a time, as a release without the expiry column left it.
    {
        let mut h = harness().await;
        h.run_next_migration(migrations.clone()).unwrap();
        h.run_next_migration(migrations.clone()).unwrap();
    }
    assert_eq!(
        applied_versions::<C>(&pool, &migrations).await,
        [
            migrations.step_version(Step::TokenColumns),
            migrations.step_version(Step::UserIdIndex)
        ]
    );
    let index = migrations.user_id_index_name();
    assert!(C::indexes(&pool, &t).await.contains(&index));
    store.migrate().await.unwrap();
    assert_eq!(
        applied_versions::<C>(&pool, &migrations).await,
        migrations.versions()
    );
    assert_eq!(C::columns(&pool, &t).await, migrated);

    // The newest two steps alone: the claim columns and the expiry column
    // go, the index and the token columns (and the token) stay.
    store.put_token(&u, &token(1, "tok")).await.unwrap();
    {
        let mut h = harness().await;
        let steps = MigrationSource::<C::Backend>::migrations(&migrations).unwrap();
        assert_eq!(
            steps[2].name().to_string(),
            format!(
                "{}_add_mattermost_token_expires_at_column",
                migrations.step_version(Step::ExpiryColumn)
            )
        );
        assert!(
            steps[3]
                .name()
                .to_string()
                .ends_with("add_mattermost_claim_columns")
        );
        h.revert_migration(&*steps[3]).unwrap();
        h.revert_migration(&*steps[2]).unwrap();
    }
    assert_eq!(
        applied_versions::<C>(&pool, &migrations).await,
        [
            migrations.step_version(Step::TokenColumns),
            migrations.step_version(Step::UserIdIndex)
        ]
    );
    assert_eq!(
        C::columns(&pool, &t).await[..],
        migrated[..migrated.len() - 4]
    );
    assert!(C::indexes(&pool, &t).await.contains(&index));
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
    assert_eq!(store.get(&u).await.unwrap().unwrap().token_expires_at, None);
    store.undo_migration().await.unwrap();
    assert!(applied_versions::<C>(&pool, &migrations).await.is_empty());

    // Duplicate links: the harness refuses the index as the store does,
    // and adds the expiry column, which does not need it.
    {
        let mut h = harness().await;
        h.run_next_migration(migrations.clone()).unwrap();
    }
    exec::<C>(
        &pool,
        &format!(
            "INSERT INTO {t} (id, name) VALUES (2, 'two'), (3, 'three'); \
             UPDATE {t} SET mattermost_user_id = '{a}' WHERE id IN (1, 2); \
             UPDATE {t} SET mattermost_user_id = '{b}', mattermost_token = 'dup-token' WHERE id = 3",
            a = mm("a"),
            b = mm("b"),
        ),
    )
    .await;
    exec::<C>(
        &pool,
        &format!(
            "INSERT INTO {t} (id, name, mattermost_user_id) VALUES (4, 'four', '{}')",
            mm("b")
        ),
    )
    .await;
    let mut h = harness().await;
    match migrations.run(&mut h) {
        Err(StoreError::Schema { message, .. }) => {
            assert!(message.contains("2 Mattermost user ids"), "{message}");
            assert!(message.contains(&t), "{message}");
            assert!(message.contains("GROUP BY mattermost_user_id"), "{message}");
            assert!(message.contains("nothing was changed"), "{message}");
            assert!(!message.contains("dup-token"), "{message}");
        }
        other => panic!("{}: expected Schema, got {other:?}", C::NAME),
    }
    drop(h);
    let mut expected = vec![
        migrations.step_version(Step::TokenColumns),
        migrations.step_version(Step::ExpiryColumn),
        migrations.versions()[3].clone(),
    ];
    expected.sort();
    assert_eq!(applied_versions::<C>(&pool, &migrations).await, expected);
    assert!(!C::indexes(&pool, &t).await.contains(&index));
    store.undo_migration().await.unwrap();
    exec::<C>(&pool, &format!("DROP TABLE {t}")).await;
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

per_backend!(harness_runs_and_reverts_steps);

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

/// The store's `Debug` shows its configuration, not its pool.
#[test]
fn debug_shows_no_url() {
    let store =
        postgres::PgTokenStore::from_url("postgres://app:dbg-secret@127.0.0.1:1/app").unwrap();
    let s = format!("{store:?}");
    assert!(s.contains("users") && !s.contains("dbg-secret"), "{s}");
}

/// A loopback port with nothing listening.
async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

/// The versions the migrations are recorded under: per table, in step
/// order, before every timestamped version (after diesel's own setup),
/// within diesel's 50 characters; and their names.
#[test]
fn migration_versions_and_names() {
    use mattermost_tokens_diesel::CodeMigrations;

    let v = |t: &str| {
        TokenMigrations::new(t)
            .unwrap()
            .step_version(Step::TokenColumns)
    };
    assert_eq!(v("users"), "00000000000000_mattermost_tokens_1_users");
    assert_eq!(v("Users"), "00000000000000_mattermost_tokens_1_users");
    let long = v("a_rather_long_schema.with_a_long_users_table");
    assert!(long.len() <= 50, "{long}");
    assert!(long.starts_with("00000000000000_mattermost_tokens_1_#"));
    assert_ne!(long, v("a_rather_long_schema.with_a_long_users_tablf"));
    assert!(v("users").as_str() < "00000000000001");
    assert!(v("users").as_str() < "0001");
    assert!(v("users").as_str() > "00000000000000");

    let m = TokenMigrations::new("users").unwrap();
    assert_eq!(
        m.step_version(Step::UserIdIndex),
        "00000000000000_mattermost_tokens_3_users"
    );
    assert_eq!(
        m.step_version(Step::ExpiryColumn),
        "00000000000000_mattermost_tokens_4_users"
    );
    assert_eq!(
        m.versions(),
        [
            m.step_version(Step::TokenColumns),
            m.step_version(Step::UserIdIndex),
            m.step_version(Step::ExpiryColumn),
            "00000000000000_mattermost_tokens_5_users".to_owned()
        ]
    );
    assert!(
        m.step_version(Step::TokenColumns) < m.step_version(Step::UserIdIndex)
            && m.step_version(Step::UserIdIndex) < m.step_version(Step::ExpiryColumn)
    );
    assert!(m.step_version(Step::ExpiryColumn).as_str() < "00000000000001");
    assert_ne!(
        m.step_version(Step::UserIdIndex),
        CodeMigrations::new("users").unwrap().version()
    );
    let long = TokenMigrations::new("a_rather_long_schema.with_a_long_users_table").unwrap();
    assert!(long.versions().iter().all(|v| v.len() <= 50));
    assert!(
        long.step_version(Step::TokenColumns) < long.step_version(Step::UserIdIndex)
            && long.step_version(Step::UserIdIndex) < long.step_version(Step::ExpiryColumn)
    );
    // The expiry column's name does not change them.
    let custom = m.clone().with_expiry_column("token_expiry").unwrap();
    assert_eq!(custom.expiry_column(), "token_expiry");
    assert_eq!(custom.versions(), m.versions());
    let names: Vec<String> =
        MigrationSource::<mattermost_tokens_diesel::diesel::sqlite::Sqlite>::migrations(&m)
            .unwrap()
            .iter()
            .map(|m| m.name().to_string())
            .collect();
    assert_eq!(
        names,
        [
            "00000000000000_mattermost_tokens_1_users_add_mattermost_token_to_users_table",
            "00000000000000_mattermost_tokens_3_users_add_unique_mattermost_user_id_index",
            "00000000000000_mattermost_tokens_4_users_add_mattermost_token_expires_at_column",
            "00000000000000_mattermost_tokens_5_users_add_mattermost_claim_columns",
        ]
    );

    let c = |t: &str| CodeMigrations::new(t).unwrap().version();
    assert_eq!(
        CodeMigrations::default().version(),
        "00000000000000_mattermost_tokens_2"
    );
    assert_eq!(
        c("login_codes"),
        "00000000000000_mattermost_tokens_2_login_codes"
    );
    let long = c("public.mattermost_magic_link_codes");
    assert!(long.len() <= 50, "{long}");
    assert!(long.starts_with("00000000000000_mattermost_tokens_2_#"));
    assert_ne!(c("users"), v("users"));
    assert!(c("x").as_str() < "00000000000001");

    for bad in [
        "",
        "1x",
        "a-b",
        "x; DROP TABLE users",
        "users.expires",
        "mattermost_token",
        "Mattermost_Token_Id",
        "mattermost_user_id",
    ] {
        assert!(
            matches!(
                TokenMigrations::default().with_expiry_column(bad),
                Err(StoreError::Config(_))
            ),
            "{bad}"
        );
    }
}
