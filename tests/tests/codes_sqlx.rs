//! The sqlx magic-link code stores (`PgCodeStore`, `MySqlCodeStore` on
//! MariaDB, `SqliteCodeStore` in a file): the `CodeStore` contract and the
//! table's contents (the shared cases of `code_conformance`), the migration,
//! errors; then magic links end to end over a SQLite token store and code
//! store.
//!
//! PostgreSQL and MariaDB tests need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL`; without them they print SKIPPED. Each
//! test works in a namespace of its own (a PostgreSQL schema or a MariaDB
//! database named `mmt_codes_<pid>_...`, or a SQLite file), dropped at the
//! end; namespaces left by processes that are gone are dropped the next time
//! the suite runs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mattermost_tokens::magic_link::CodeStore;
use mattermost_tokens::{HostUserId, StoreError};
use mattermost_tokens_sqlx::sqlx::mysql::MySqlPoolOptions;
use mattermost_tokens_sqlx::sqlx::postgres::PgPoolOptions;
use mattermost_tokens_sqlx::{
    Backend, CODES_MIGRATION_NAME, CODES_MIGRATION_VERSION, DEFAULT_CODES_TABLE, MIGRATIONS_TABLE,
    MySqlCodeStore, PgCodeStore, SqliteCodeStore, SqliteTokenStore, SqlxCodeStore,
};
use mattermost_tokens_tests::code_conformance::{self, CodeDb, CodeStoreFactory, T, at, hash};
use mattermost_tokens_tests::scratch::{Kind, Pool, Rows, ScratchDb};

// ---------------------------------------------------------------------------
// A database to test against, whatever its kind.

/// A code store with its migration methods, as a trait object.
#[async_trait]
trait Codes: CodeStore {
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn undo(&self) -> Result<(), StoreError>;
}

#[async_trait]
impl<DB: Backend> Codes for SqlxCodeStore<DB> {
    async fn migrate(&self) -> Result<(), StoreError> {
        SqlxCodeStore::migrate(self).await
    }
    async fn undo(&self) -> Result<(), StoreError> {
        self.undo_migration().await
    }
}

const PREFIX: &str = "mmt_codes_";

/// A pool on a fresh namespace, with this suite's views of it.
struct Db(ScratchDb);

impl std::ops::Deref for Db {
    type Target = ScratchDb;
    fn deref(&self) -> &ScratchDb {
        &self.0
    }
}

impl Db {
    async fn open(kind: Kind, test: &str) -> Option<Db> {
        ScratchDb::open(kind, PREFIX, test).await.map(Db)
    }

    async fn sqlite_file() -> Db {
        Db(ScratchDb::sqlite_file(PREFIX).await)
    }

    /// A code store on `table` (`None`: the default table).
    fn codes(&self, table: Option<&str>) -> Arc<dyn Codes> {
        fn named<DB: Backend>(s: SqlxCodeStore<DB>, table: Option<&str>) -> Arc<dyn Codes> {
            match table {
                Some(t) => Arc::new(s.with_table_name(t).unwrap()),
                None => Arc::new(s),
            }
        }
        match &self.pool {
            Pool::Pg(p) => named(PgCodeStore::new(p.clone()), table),
            Pool::My(p) => named(MySqlCodeStore::new(p.clone()), table),
            Pool::Lite(p) => named(SqliteCodeStore::new(p.clone()), table),
        }
    }

    /// The table's column names, in order; empty when there is no table.
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

    /// Every column of every row of `table`, as text.
    async fn all_rows(&self, table: &str) -> (Vec<String>, Rows) {
        let columns = self.column_names(table).await;
        let select: Vec<String> = columns.iter().map(|c| self.text(c)).collect();
        let rows = self
            .rows(&format!("SELECT {} FROM {table}", select.join(", ")))
            .await;
        (columns, rows)
    }

    /// The tracking table's rows for `table`: (version, description).
    async fn tracking(&self, table: &str) -> Rows {
        let exists = match self.kind() {
            Kind::Sqlite => !self
                .rows(&format!(
                    "SELECT name FROM sqlite_master WHERE name = '{MIGRATIONS_TABLE}'"
                ))
                .await
                .is_empty(),
            _ => !self.column_names(MIGRATIONS_TABLE).await.is_empty(),
        };
        if !exists {
            return Vec::new();
        }
        self.rows(&format!(
            "SELECT {}, {} FROM {MIGRATIONS_TABLE} WHERE users_table = '{table}'",
            self.text("version"),
            self.text("description")
        ))
        .await
    }

    /// A second pool on the same database that refuses writes.
    async fn read_only(&self) -> Db {
        Db(ScratchDb::on(self.pool.read_only().await))
    }

    async fn finish(self) {
        self.0.finish().await
    }
}

// ---------------------------------------------------------------------------
// The `CodeStore` contract, on every database.

/// Fresh migrated code tables on one kind of database.
struct SqlxCodes(Kind);

#[async_trait]
impl CodeStoreFactory for SqlxCodes {
    async fn fresh(&self, test: &str) -> Option<Box<dyn CodeDb>> {
        let db = Db::open(self.0, test).await?;
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
        let codes = self.read_only().await.codes(None);
        // On a migrated database, migrate writes nothing and so succeeds
        // through a read-only pool.
        codes.migrate().await.unwrap();
        codes
    }

    async fn table(&self) -> (Vec<String>, Rows) {
        self.all_rows(DEFAULT_CODES_TABLE).await
    }

    async fn finish(self: Box<Self>) {
        self.0.finish().await
    }
}

mattermost_tokens_tests::code_conformance_tests!(postgres, SqlxCodes(Kind::Postgres));
mattermost_tokens_tests::code_conformance_tests!(mariadb, SqlxCodes(Kind::MariaDb));
mattermost_tokens_tests::code_conformance_tests!(sqlite, SqlxCodes(Kind::Sqlite));

// ---------------------------------------------------------------------------
// The migration, on every database.

/// migrate: idempotent (also from several instances at once), recorded,
/// reversible; refuses, and does not drop, a host table of the same name.
async fn migration(kind: Kind) {
    let Some(db) = Db::open(kind, "migration").await else {
        return;
    };
    let table = DEFAULT_CODES_TABLE;
    let codes = db.codes(None);
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
    let recorded = vec![vec![
        Some(CODES_MIGRATION_VERSION.to_string()),
        Some(CODES_MIGRATION_NAME.to_owned()),
    ]];
    assert_eq!(db.tracking(table).await, recorded);

    // Again: nothing changes, the stored code survives.
    codes
        .insert(&hash("kept"), &HostUserId::Int(1), at(T + 60, 0).into())
        .await
        .unwrap();
    codes.migrate().await.unwrap();
    assert_eq!(db.tracking(table).await, recorded);
    assert!(codes.peek(&hash("kept"), at(T, 0).into()).await.unwrap());

    // Undo: table and record gone; twice is fine; migrate again works.
    codes.undo().await.unwrap();
    assert!(db.column_names(table).await.is_empty());
    assert!(db.tracking(table).await.is_empty());
    codes.undo().await.unwrap();
    codes.migrate().await.unwrap();
    assert_eq!(db.column_names(table).await, columns);
    assert!(!codes.peek(&hash("kept"), at(T, 0).into()).await.unwrap());

    // Another table name: its own table and record.
    let other = db.codes(Some("app_login_codes"));
    other.migrate().await.unwrap();
    other
        .insert(&hash("o"), &HostUserId::Int(2), at(T + 60, 0).into())
        .await
        .unwrap();
    assert!(!codes.peek(&hash("o"), at(T, 0).into()).await.unwrap());
    assert_eq!(db.tracking("app_login_codes").await.len(), 1);
    other.undo().await.unwrap();
    assert_eq!(db.column_names(table).await, columns);

    // A host table that has the name but not the columns.
    db.exec("CREATE TABLE login_codes (id BIGINT NOT NULL PRIMARY KEY, code VARCHAR(64))")
        .await;
    let clash = db.codes(Some("login_codes"));
    for r in [clash.migrate().await, clash.undo().await] {
        assert!(
            matches!(&r, Err(StoreError::Schema { message, .. }) if message.contains("login_codes")),
            "{r:?}"
        );
    }
    assert_eq!(db.column_names("login_codes").await, ["id", "code"]);
    assert!(db.tracking("login_codes").await.is_empty());
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

#[tokio::test]
async fn table_names_are_validated() {
    let db = ScratchDb::sqlite_memory().await;
    let Pool::Lite(pool) = &db.pool else {
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
    }
    let s = SqliteCodeStore::new(pool.clone())
        .with_table_name("main.codes")
        .unwrap();
    assert_eq!(s.table_name(), "main.codes");
    s.migrate().await.unwrap();
    s.insert(&hash("q"), &HostUserId::Int(1), at(T + 5, 0).into())
        .await
        .unwrap();
    assert!(s.peek(&hash("q"), at(T, 0).into()).await.unwrap());
    s.undo_migration().await.unwrap();
    assert_eq!(
        SqliteCodeStore::new(pool.clone()).table_name(),
        DEFAULT_CODES_TABLE
    );
}

/// Connection refused: `Unavailable`, quickly, without the URL's password.
#[tokio::test]
async fn unreachable_database_is_unavailable() {
    let pg = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("postgres://app:hunter2-secret@127.0.0.1:1/app")
        .unwrap();
    let my = MySqlPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy("mysql://app:hunter2-secret@127.0.0.1:1/app")
        .unwrap();
    let stores: Vec<Arc<dyn Codes>> = vec![
        Arc::new(PgCodeStore::new(pg)),
        Arc::new(MySqlCodeStore::new(my)),
    ];
    for codes in stores {
        let errors = [
            codes
                .consume(&hash("c"), at(T, 0).into())
                .await
                .unwrap_err(),
            codes.peek(&hash("c"), at(T, 0).into()).await.unwrap_err(),
            codes.migrate().await.unwrap_err(),
        ];
        for e in errors {
            assert!(matches!(e, StoreError::Unavailable { .. }), "{e:?}");
            let text = format!("{e} {e:?} {:?}", std::error::Error::source(&e));
            assert!(!text.contains("hunter2"), "{text}");
        }
    }
}

#[tokio::test]
async fn debug_names_the_table_only() {
    let pg = PgPoolOptions::new()
        .connect_lazy("postgres://app:hunter2-secret@127.0.0.1:1/app")
        .unwrap();
    let s = format!("{:?}", PgCodeStore::new(pg));
    assert!(
        s.contains(DEFAULT_CODES_TABLE) && s.contains("PostgreSQL"),
        "{s}"
    );
    assert!(!s.contains("hunter2"), "{s}");
}

// ---------------------------------------------------------------------------
// Magic links end to end: SQLite token store and code store.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_link_over_sqlite_stores() {
    let db = Db::sqlite_file().await;
    let Pool::Lite(pool) = &db.pool else {
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
