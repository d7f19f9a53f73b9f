//! The diesel magic-link code stores (`PgCodeStore`, `MySqlCodeStore` on
//! MariaDB, `SqliteCodeStore` in a file): the `CodeStore` contract and what
//! the table holds (the shared cases of `code_conformance`), the migration,
//! errors; then magic links end to end over a diesel SQLite token store and
//! code store.
//!
//! PostgreSQL and MariaDB tests need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL`; without them they print SKIPPED (a
//! failure under CI). Each test works in a namespace of its own (a
//! PostgreSQL schema or a MariaDB database named `mmt_dcodes_<pid>_...`, or
//! a SQLite file), dropped at the end; namespaces left by processes that are
//! gone are dropped the next time the suite runs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mattermost_tokens::magic_link::CodeStore;
use mattermost_tokens::{HostUserId, StoreError};
use mattermost_tokens_diesel::MySqlCodeStore;
use mattermost_tokens_diesel::diesel::sql_types::{Nullable, Text};
use mattermost_tokens_diesel::diesel::{ConnectionError, QueryableByName};
use mattermost_tokens_diesel::diesel_async::pooled_connection::deadpool::Pool;
use mattermost_tokens_diesel::diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig,
};
use mattermost_tokens_diesel::diesel_async::{
    AsyncConnection, AsyncMigrationHarness, AsyncMysqlConnection, SimpleAsyncConnection,
};
use mattermost_tokens_diesel::postgres::PgCodeStore;
use mattermost_tokens_diesel::sqlite::{SqliteCodeStore, SqliteTokenStore};
use mattermost_tokens_diesel::{
    CODES_MIGRATION_NAME, CodeMigrations, ConnectionPool, DEFAULT_CODES_TABLE, DieselCodeStore,
    StoreConnection, TokenMigrations, postgres, sqlite,
};
use mattermost_tokens_tests::code_conformance::{self, CodeDb, CodeStoreFactory, T, at, hash};
use mattermost_tokens_tests::each_diesel_pool as each_pool;
use mattermost_tokens_tests::scratch::{
    DieselPools as Pools, DieselScratch, Kind, Rows, padded_select,
};

// ---------------------------------------------------------------------------
// A database to test against, whatever its kind.

/// A code store with its migration methods, as a trait object.
#[async_trait]
trait Codes: CodeStore {
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn revert(&self) -> Result<(), StoreError>;
}

#[async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> Codes for DieselCodeStore<C, P> {
    async fn migrate(&self) -> Result<(), StoreError> {
        DieselCodeStore::migrate(self).await
    }
    async fn revert(&self) -> Result<(), StoreError> {
        self.undo_migration().await
    }
}

/// One row of text columns (up to 6, `c0`..`c5`).
#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
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
}

impl Row {
    fn values(self) -> Vec<Option<String>> {
        vec![self.c0, self.c1, self.c2, self.c3, self.c4, self.c5]
    }
}

/// A `SELECT` list padding `exprs` to the 6 columns of [`Row`].
fn row_select(exprs: &[String]) -> String {
    padded_select(6, exprs)
}

const PREFIX: &str = "mmt_dcodes_";

/// Pools on a fresh namespace, with this suite's views of it.
struct Db(DieselScratch);

impl std::ops::Deref for Db {
    type Target = DieselScratch;
    fn deref(&self) -> &DieselScratch {
        &self.0
    }
}

impl Db {
    async fn open(kind: Kind, test: &str) -> Option<Db> {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        DieselScratch::open(kind, PREFIX, test, 24, dir)
            .await
            .map(Db)
    }

    fn sqlite_file() -> Db {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        Db(DieselScratch::sqlite_file(dir, PREFIX))
    }

    async fn rows(&self, query: &str) -> Rows {
        rows_on(&self.pools, query).await
    }

    /// A code store on `table` (`None`: the default table).
    fn codes(&self, table: Option<&str>) -> Arc<dyn Codes> {
        codes_on(&self.pools, table)
    }

    /// The table's column names, in order; empty when there is no table.
    async fn column_names(&self, table: &str) -> Vec<String> {
        let q = match self.kind {
            Kind::Postgres => format!(
                "SELECT {} FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = '{table}' \
                 ORDER BY ordinal_position",
                row_select(&["CAST(column_name AS TEXT)".into()])
            ),
            Kind::MariaDb => format!(
                "SELECT {} FROM information_schema.columns \
                 WHERE table_schema = DATABASE() AND table_name = '{table}' \
                 ORDER BY ordinal_position",
                row_select(&["CAST(column_name AS CHAR)".into()])
            ),
            Kind::Sqlite => format!(
                "SELECT {} FROM pragma_table_info('{table}') ORDER BY cid",
                row_select(&["name".into()])
            ),
        };
        self.rows(&q)
            .await
            .into_iter()
            .map(|r| r[0].clone().unwrap())
            .collect()
    }

    /// Every column of every row of `table`, as text.
    async fn all_rows(&self, table: &str) -> (Vec<String>, Rows) {
        let columns = self.column_names(table).await;
        let select: Vec<String> = columns.iter().map(|c| self.text(c)).collect();
        let rows = self
            .rows(&format!(
                "SELECT {} FROM {table} ORDER BY 1",
                row_select(&select)
            ))
            .await
            .into_iter()
            .map(|mut r| {
                r.truncate(columns.len());
                r
            })
            .collect();
        (columns, rows)
    }

    /// The versions in diesel's `__diesel_schema_migrations` (this
    /// namespace has no others).
    async fn versions(&self) -> Vec<String> {
        if self
            .column_names("__diesel_schema_migrations")
            .await
            .is_empty()
        {
            return Vec::new();
        }
        self.rows(&format!(
            "SELECT {} FROM __diesel_schema_migrations ORDER BY version",
            row_select(&[self.text("version")])
        ))
        .await
        .into_iter()
        .map(|r| r[0].clone().unwrap())
        .collect()
    }

    /// A second pool on the same namespace that refuses writes (SQLite
    /// `mode=ro`, PostgreSQL `default_transaction_read_only`, MariaDB
    /// `SET SESSION TRANSACTION READ ONLY`).
    fn read_only(&self) -> Pools {
        match self.kind {
            Kind::Sqlite => {
                Pools::Lite(sqlite::pool(&format!("file:{}?mode=ro", self.url), 2).unwrap())
            }
            Kind::Postgres => {
                let url = format!("{}%20-c%20default_transaction_read_only%3Don", self.url);
                Pools::Pg(postgres::pool(&url, 2).unwrap())
            }
            Kind::MariaDb => {
                let mut config = ManagerConfig::<AsyncMysqlConnection>::default();
                config.custom_setup = Box::new(|url| {
                    let url = url.to_owned();
                    Box::pin(async move {
                        let mut conn = AsyncMysqlConnection::establish(&url).await?;
                        conn.batch_execute("SET SESSION TRANSACTION READ ONLY")
                            .await
                            .map_err(ConnectionError::CouldntSetupConfiguration)?;
                        Ok(conn)
                    })
                });
                let manager = AsyncDieselConnectionManager::new_with_config(&self.url, config);
                Pools::My(Pool::builder(manager).max_size(2).build().unwrap())
            }
        }
    }

    /// Drops the namespace (or file) the test worked in.
    async fn finish(self) {
        self.0.finish().await
    }
}

async fn rows_on(pools: &Pools, query: &str) -> Rows {
    each_pool!(pools, |p| {
        let mut conn = p.get().await.expect("a test connection");
        mattermost_tokens_diesel::diesel_async::RunQueryDsl::load::<Row>(
            mattermost_tokens_diesel::diesel::sql_query(query),
            &mut conn,
        )
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .into_iter()
        .map(Row::values)
        .collect()
    })
}

fn codes_on(pools: &Pools, table: Option<&str>) -> Arc<dyn Codes> {
    fn named<C: StoreConnection, P: ConnectionPool<C>>(
        s: DieselCodeStore<C, P>,
        table: Option<&str>,
    ) -> Arc<dyn Codes> {
        match table {
            Some(t) => Arc::new(s.with_table_name(t).unwrap()),
            None => Arc::new(s),
        }
    }
    match pools {
        Pools::Pg(p) => named(PgCodeStore::new(p.clone()), table),
        Pools::My(p) => named(MySqlCodeStore::new(p.clone()), table),
        Pools::Lite(p) => named(SqliteCodeStore::new(p.clone()), table),
    }
}

// ---------------------------------------------------------------------------
// The `CodeStore` contract, on every database.

/// Fresh migrated code tables on one kind of database.
struct DieselCodes(Kind);

#[async_trait]
impl CodeStoreFactory for DieselCodes {
    async fn fresh(&self, test: &str) -> Option<Box<dyn CodeDb>> {
        let db = Db::open(self.0, &format!("diesel codes {test}")).await?;
        db.codes(None).migrate().await.unwrap();
        Some(Box::new(db))
    }
}

#[async_trait]
impl CodeDb for Db {
    fn store(&self) -> Arc<dyn CodeStore> {
        self.codes(None)
    }

    async fn read_only_store(&self) -> Arc<dyn CodeStore> {
        codes_on(&self.read_only(), None)
    }

    async fn table(&self) -> (Vec<String>, Rows) {
        self.all_rows(DEFAULT_CODES_TABLE).await
    }

    async fn finish(self: Box<Self>) {
        self.0.finish().await
    }
}

mattermost_tokens_tests::code_conformance_tests!(on_postgres, DieselCodes(Kind::Postgres));
mattermost_tokens_tests::code_conformance_tests!(on_mariadb, DieselCodes(Kind::MariaDb));
mattermost_tokens_tests::code_conformance_tests!(on_sqlite, DieselCodes(Kind::Sqlite));

// ---------------------------------------------------------------------------
// The migration, on every database.

/// Runs the default code table migration through diesel-async's
/// `AsyncMigrationHarness` over a pooled connection (and reverts it).
async fn through_harness(pools: &Pools, revert: bool) {
    let m = CodeMigrations::default();
    each_pool!(pools, |p| {
        let conn = p.get().await.unwrap();
        let mut harness = AsyncMigrationHarness::new(conn);
        if revert {
            m.revert(&mut harness).unwrap();
        } else {
            m.run(&mut harness).unwrap();
        }
    })
}

/// migrate: idempotent (also from several instances at once), recorded
/// under its own version, reversible (store and harness alike); refuses,
/// and does not drop, a host table of the same name.
async fn migration(kind: Kind) {
    let Some(db) = Db::open(kind, "diesel codes migration").await else {
        return;
    };
    let table = DEFAULT_CODES_TABLE;
    let codes = db.codes(None);
    let version = CodeMigrations::default().version();
    assert_eq!(version, "00000000000000_mattermost_tokens_2");
    // The sqlx adapter's name for the same migration.
    assert_eq!(
        CODES_MIGRATION_NAME,
        "create_mattermost_magic_link_codes_table"
    );

    // Before migrate: a schema error, naming the table.
    let e = codes
        .insert(&hash("a"), &HostUserId::Int(1), at(T + 60, 0).into())
        .await
        .unwrap_err();
    assert!(
        matches!(&e, StoreError::Schema { message, .. } if message.contains(table)),
        "{e:?}"
    );

    let runs = (0..4).map(|_| {
        let codes = db.codes(None);
        tokio::spawn(async move { codes.migrate().await })
    });
    for r in futures::future::join_all(runs).await {
        r.unwrap().unwrap();
    }
    let columns = db.column_names(table).await;
    assert_eq!(
        columns,
        ["code_hash", "host_user_id", "host_user_kind", "expires_at"]
    );
    assert_eq!(db.versions().await, [version.as_str()]);

    // Again: nothing changes, the stored code survives.
    codes
        .insert(&hash("kept"), &HostUserId::Int(1), at(T + 60, 0).into())
        .await
        .unwrap();
    codes.migrate().await.unwrap();
    through_harness(&db.pools, false).await;
    assert_eq!(db.versions().await, [version.as_str()]);
    assert!(codes.peek(&hash("kept"), at(T, 0).into()).await.unwrap());

    // Revert: table and record gone; twice is fine; migrate again works.
    codes.revert().await.unwrap();
    assert!(db.column_names(table).await.is_empty());
    assert!(db.versions().await.is_empty());
    codes.revert().await.unwrap();
    through_harness(&db.pools, true).await;
    codes.migrate().await.unwrap();
    assert_eq!(db.column_names(table).await, columns);
    assert!(!codes.peek(&hash("kept"), at(T, 0).into()).await.unwrap());
    // And through the harness: reverted, then applied.
    through_harness(&db.pools, true).await;
    assert!(db.column_names(table).await.is_empty());
    through_harness(&db.pools, false).await;
    assert_eq!(db.column_names(table).await, columns);
    assert_eq!(db.versions().await, [version.as_str()]);

    // Another table name: its own table and version.
    let other = db.codes(Some("app_login_codes"));
    other.migrate().await.unwrap();
    other
        .insert(&hash("o"), &HostUserId::Int(2), at(T + 60, 0).into())
        .await
        .unwrap();
    assert!(!codes.peek(&hash("o"), at(T, 0).into()).await.unwrap());
    let other_version = CodeMigrations::new("app_login_codes").unwrap().version();
    assert_eq!(
        other_version,
        "00000000000000_mattermost_tokens_2_app_login_codes"
    );
    assert_eq!(db.versions().await, [version.clone(), other_version]);
    other.revert().await.unwrap();
    assert_eq!(db.column_names(table).await, columns);
    assert_eq!(db.versions().await, [version.as_str()]);

    // Next to the users table migration, each keeps its own version.
    let users = "app_users";
    db.exec(&format!(
        "CREATE TABLE {users} (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100))"
    ))
    .await;
    let token_migration = TokenMigrations::new(users).unwrap();
    each_pool!(&db.pools, |p| {
        mattermost_tokens_diesel::DieselTokenStore::new(p.clone())
            .with_table_name(users)
            .unwrap()
            .migrate()
            .await
            .unwrap()
    });
    // The users table's two (columns, unique index) sort around the code
    // table's.
    let mut all = token_migration.versions();
    all.push(version.clone());
    all.sort();
    assert_eq!(db.versions().await, all);
    codes.revert().await.unwrap();
    assert_eq!(db.versions().await, token_migration.versions());
    codes.migrate().await.unwrap();

    // A host table that has the name but not the columns.
    db.exec("CREATE TABLE login_codes (id BIGINT NOT NULL PRIMARY KEY, code VARCHAR(64))")
        .await;
    let clash = db.codes(Some("login_codes"));
    let r = clash.migrate().await;
    assert!(
        matches!(&r, Err(StoreError::Schema { message, .. }) if message.contains("login_codes")),
        "{r:?}"
    );
    // Not applied, so reverting does nothing (and drops nothing).
    clash.revert().await.unwrap();
    assert_eq!(db.column_names("login_codes").await, ["id", "code"]);
    // Applied, but the table was since replaced by one of the host's:
    // reverting refuses to drop it.
    let swapped = db.codes(Some("swapped_codes"));
    swapped.migrate().await.unwrap();
    db.exec("DROP TABLE swapped_codes").await;
    db.exec("CREATE TABLE swapped_codes (id BIGINT NOT NULL PRIMARY KEY)")
        .await;
    let r = swapped.revert().await;
    assert!(
        matches!(&r, Err(StoreError::Schema { message, .. }) if message.contains("swapped_codes")),
        "{r:?}"
    );
    assert_eq!(db.column_names("swapped_codes").await, ["id"]);
    db.exec("DROP TABLE swapped_codes").await;
    swapped.revert().await.unwrap();
    // One whose hash column is too short to hold a hash.
    db.exec(
        "CREATE TABLE short_codes (code_hash VARCHAR(32) NOT NULL PRIMARY KEY, \
         host_user_id VARCHAR(255) NOT NULL, host_user_kind CHAR(1) NOT NULL, \
         expires_at BIGINT NOT NULL)",
    )
    .await;
    let r = db.codes(Some("short_codes")).migrate().await;
    assert!(
        matches!(&r, Err(StoreError::Schema { message, .. }) if message.contains("code_hash")),
        "{r:?}"
    );
    assert!(
        !db.versions()
            .await
            .iter()
            .any(|v| v.ends_with("login_codes") || v.ends_with("short_codes"))
    );
    db.finish().await;
}

mattermost_tokens_tests::on_every_database!(
    workers = 4,
    postgres: adapter_postgres,
    mariadb: adapter_mariadb,
    sqlite: adapter_sqlite;
    migration,
);

// ---------------------------------------------------------------------------
// Configuration and errors.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn table_names_are_validated() {
    let db = Db::sqlite_file();
    let Pools::Lite(pool) = &db.pools else {
        unreachable!()
    };
    for bad in [
        "",
        "codes; DROP TABLE users",
        "1codes",
        "a.b.c",
        "\"codes\"",
    ] {
        assert!(
            matches!(
                SqliteCodeStore::new(pool.clone()).with_table_name(bad),
                Err(StoreError::Config(_))
            ),
            "{bad}"
        );
        assert!(matches!(
            CodeMigrations::new(bad),
            Err(StoreError::Config(_))
        ));
    }
    // A schema-qualified name works (the index goes into that schema).
    let s = SqliteCodeStore::new(pool.clone())
        .with_table_name("main.codes")
        .unwrap();
    assert_eq!(s.table_name(), "main.codes");
    s.migrate().await.unwrap();
    s.insert(&hash("q"), &HostUserId::Int(1), at(T + 5, 0).into())
        .await
        .unwrap();
    assert!(s.peek(&hash("q"), at(T, 0).into()).await.unwrap());
    assert_eq!(
        s.consume(&hash("q"), at(T, 0).into()).await.unwrap(),
        Some(HostUserId::Int(1))
    );
    s.undo_migration().await.unwrap();
    assert!(db.column_names("codes").await.is_empty());
    assert_eq!(
        SqliteCodeStore::new(pool.clone()).table_name(),
        DEFAULT_CODES_TABLE
    );
    db.finish().await;
}

/// The migration on a plain sync `diesel::SqliteConnection`.
#[test]
fn migration_on_sync_sqlite_connection() {
    use mattermost_tokens_diesel::diesel::{Connection, SqliteConnection};
    let db = Db::sqlite_file();
    let mut conn = SqliteConnection::establish(&db.url).unwrap();
    let m = CodeMigrations::new("sync_codes").unwrap();
    m.run(&mut conn).unwrap();
    m.run(&mut conn).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(db.column_names("sync_codes").await.len(), 4);
        assert_eq!(db.versions().await, [m.version()]);
        // The store finds it applied and works on it.
        let s = SqliteCodeStore::from_url(&db.url)
            .unwrap()
            .with_table_name("sync_codes")
            .unwrap();
        s.migrate().await.unwrap();
        s.insert(&hash("s"), &HostUserId::Int(1), at(T + 5, 0).into())
            .await
            .unwrap();
    });
    m.revert(&mut conn).unwrap();
    m.revert(&mut conn).unwrap();
    rt.block_on(async {
        assert!(db.column_names("sync_codes").await.is_empty());
        assert!(db.versions().await.is_empty());
        db.finish().await;
    });
}

/// Connection refused: `Unavailable`, quickly, without the URL's password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_unavailable() {
    let stores: Vec<Arc<dyn Codes>> = vec![
        Arc::new(
            PgCodeStore::from_url("postgres://app:hunter2-secret@127.0.0.1:1/app")
                .unwrap()
                .with_acquire_timeout(Duration::from_secs(2)),
        ),
        Arc::new(
            MySqlCodeStore::from_url("mysql://app:hunter2-secret@127.0.0.1:1/app")
                .unwrap()
                .with_acquire_timeout(Duration::from_secs(2)),
        ),
    ];
    for codes in stores {
        let started = std::time::Instant::now();
        let errors = [
            codes
                .consume(&hash("c"), at(T, 0).into())
                .await
                .unwrap_err(),
            codes.peek(&hash("c"), at(T, 0).into()).await.unwrap_err(),
            codes
                .insert(&hash("c"), &HostUserId::Int(1), at(T, 0).into())
                .await
                .unwrap_err(),
            codes.migrate().await.unwrap_err(),
        ];
        for e in errors {
            assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
            let text = format!("{e} {e:?} {:?}", std::error::Error::source(&e));
            assert!(!text.contains("hunter2"), "{text}");
        }
        assert!(started.elapsed() < Duration::from_secs(20));
    }
}

#[test]
fn debug_names_the_table_only() {
    let s = format!(
        "{:?}",
        PgCodeStore::from_url("postgres://app:hunter2-secret@127.0.0.1:1/app").unwrap()
    );
    assert!(
        s.contains(DEFAULT_CODES_TABLE) && s.contains("PostgreSQL"),
        "{s}"
    );
    assert!(!s.contains("hunter2"), "{s}");
}

// ---------------------------------------------------------------------------
// Magic links end to end: diesel SQLite token store and code store.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_link_over_diesel_sqlite_stores() {
    let db = Db::sqlite_file();
    let Pools::Lite(pool) = &db.pools else {
        unreachable!()
    };
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
        .await;
    db.exec("INSERT INTO users (id, email) VALUES (1, 'ada@example.com'), (2, 'bob@example.com')")
        .await;
    let tokens = SqliteTokenStore::new(pool.clone());
    tokens.migrate().await.unwrap();
    db.codes(None).migrate().await.unwrap();
    code_conformance::magic_links_end_to_end(Arc::new(tokens), &db).await;
    db.finish().await;
}
