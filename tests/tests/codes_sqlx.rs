//! The sqlx magic-link code stores (`PgCodeStore`, `MySqlCodeStore` on
//! MariaDB, `SqliteCodeStore` in a file): the `CodeStore` contract, the
//! table's contents, the migration, errors; then magic links end to end over
//! a SQLite token store and code store.
//!
//! PostgreSQL and MariaDB tests need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL`; without them they print SKIPPED. Each
//! test works in a namespace of its own (a PostgreSQL schema or a MariaDB
//! database named `mmt_codes_<pid>_...`, or a SQLite file), dropped at the
//! end; namespaces left by processes that are gone are dropped the next time
//! the suite runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use mattermost_tokens::magic_link::{CodeHash, CodeStore, MagicLinkConfig, MagicLinks};
use mattermost_tokens::{
    AccessToken, Error, HostUserId, MattermostClient, NewToken, StoreError, TokenId, TokenStore,
    UserId,
};
use mattermost_tokens_sqlx::sqlx::mysql::MySqlPoolOptions;
use mattermost_tokens_sqlx::sqlx::postgres::PgPoolOptions;
use mattermost_tokens_sqlx::sqlx::sqlite::SqlitePoolOptions;
use mattermost_tokens_sqlx::{
    Backend, CODES_MIGRATION_NAME, CODES_MIGRATION_VERSION, DEFAULT_CODES_TABLE, MIGRATIONS_TABLE,
    MySqlCodeStore, PgCodeStore, SqliteCodeStore, SqliteTokenStore, SqlxCodeStore,
};
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
// Helpers.

/// A point in time, `secs` after the epoch (plus `millis`), for the
/// `DateTime<Utc>` parameters (`.into()`).
fn at(secs: u64, millis: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis)
}

/// Now-ish, in whole seconds (the tests choose their own clock).
const T: u64 = 1_769_428_800; // 2026-01-26T12:00:00Z

fn hash(code: &str) -> CodeHash {
    CodeHash::of_code(code)
}

/// A fresh migrated code store on `kind`, or `None` when skipped.
async fn fresh(kind: Kind, test: &str) -> Option<(Db, Arc<dyn Codes>)> {
    let db = Db::open(kind, test).await?;
    let codes = db.codes(None);
    codes.migrate().await.unwrap();
    Some((db, codes))
}

// ---------------------------------------------------------------------------
// Checks, run on every database.

/// Integer and text users come back as they went in; a code works once.
async fn round_trip(kind: Kind) {
    let Some((db, codes)) = fresh(kind, "round_trip").await else {
        return;
    };
    let users = [
        HostUserId::Int(42),
        HostUserId::Int(-7),
        HostUserId::Int(i64::MAX),
        HostUserId::Text("7f1c2a9e-0000-4000-8000-000000000001".into()),
        // Looks like an integer, is text: the kind column keeps it text.
        HostUserId::Text("42".into()),
        HostUserId::Text("ünïcødé-用户-✓".into()),
        HostUserId::Text("x".repeat(255)),
    ];
    let now = at(T, 0);
    for (i, u) in users.iter().enumerate() {
        let h = hash(&format!("code-{i}"));
        codes.insert(&h, u, at(T + 300, 0).into()).await.unwrap();
        assert!(codes.peek(&h, now.into()).await.unwrap(), "{u:?}");
    }
    for (i, u) in users.iter().enumerate() {
        let h = hash(&format!("code-{i}"));
        assert_eq!(
            codes.consume(&h, now.into()).await.unwrap().as_ref(),
            Some(u)
        );
        assert_eq!(codes.consume(&h, now.into()).await.unwrap(), None);
        assert!(!codes.peek(&h, now.into()).await.unwrap());
    }
    // Consumed codes are deleted.
    let (_, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert!(rows.is_empty(), "{rows:?}");
    // Unknown codes.
    assert_eq!(
        codes.consume(&hash("nope"), now.into()).await.unwrap(),
        None
    );
    assert!(!codes.peek(&hash("nope"), now.into()).await.unwrap());
    // A text key too long for the column is refused before any SQL.
    assert!(matches!(
        codes
            .insert(
                &hash("long"),
                &HostUserId::Text("x".repeat(256)),
                at(T + 300, 0).into()
            )
            .await,
        Err(StoreError::Config(_))
    ));
    db.finish().await;
}

/// A code works while `now < expires_at`, and not at or after it; failed
/// attempts on an expired code do not change it.
async fn expiry(kind: Kind) {
    let Some((db, codes)) = fresh(kind, "expiry").await else {
        return;
    };
    let u = HostUserId::Int(1);
    let h = hash("expiring");
    codes.insert(&h, &u, at(T, 0).into()).await.unwrap();
    assert!(codes.peek(&h, at(T - 1, 999).into()).await.unwrap());
    for late in [at(T, 0), at(T, 700), at(T + 1, 0), at(T + 3600, 0)] {
        assert!(!codes.peek(&h, late.into()).await.unwrap());
        assert_eq!(codes.consume(&h, late.into()).await.unwrap(), None);
    }
    // Still stored (until purged), and never consumable late.
    let (_, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert_eq!(rows.len(), 1);

    // Just before expiry it works.
    let h2 = hash("just-in-time");
    codes.insert(&h2, &u, at(T, 0).into()).await.unwrap();
    assert_eq!(
        codes.consume(&h2, at(T - 1, 999).into()).await.unwrap(),
        Some(u.clone())
    );

    // An expiry between seconds is rounded down: never valid past it.
    let h3 = hash("sub-second");
    codes.insert(&h3, &u, at(T + 10, 500).into()).await.unwrap();
    assert!(!codes.peek(&h3, at(T + 10, 600).into()).await.unwrap());
    assert!(codes.peek(&h3, at(T + 9, 999).into()).await.unwrap());
    db.finish().await;
}

/// 20 concurrent consumers of one code: exactly one gets the user. Five
/// codes are raced at once.
async fn consume_exactly_once(kind: Kind) {
    let Some((db, codes)) = fresh(kind, "consume_exactly_once").await else {
        return;
    };
    const CODES: usize = 5;
    const RACERS: usize = 20;
    for c in 0..CODES {
        codes
            .insert(
                &hash(&format!("race-{c}")),
                &HostUserId::Int(c as i64),
                at(T + 300, 0).into(),
            )
            .await
            .unwrap();
    }
    let tasks: Vec<_> = (0..CODES * RACERS)
        .map(|i| {
            let codes = codes.clone();
            let c = i % CODES;
            tokio::spawn(async move {
                let got = codes
                    .consume(&hash(&format!("race-{c}")), at(T, 0).into())
                    .await
                    .unwrap();
                (c, got)
            })
        })
        .collect();
    let mut winners: HashMap<usize, Vec<HostUserId>> = HashMap::new();
    for t in tasks {
        let (c, got) = t.await.unwrap();
        if let Some(u) = got {
            winners.entry(c).or_default().push(u);
        }
    }
    for c in 0..CODES {
        assert_eq!(
            winners.get(&c).map(Vec::as_slice),
            Some(&[HostUserId::Int(c as i64)][..]),
            "code {c}: {winners:?}"
        );
    }
    let (_, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert!(rows.is_empty(), "{rows:?}");
    db.finish().await;
}

/// `peek` changes nothing, however often it runs.
async fn peek_consumes_nothing(kind: Kind) {
    let Some((db, codes)) = fresh(kind, "peek_consumes_nothing").await else {
        return;
    };
    let u = HostUserId::Text("user-a".into());
    let h = hash("peeked");
    codes.insert(&h, &u, at(T + 60, 0).into()).await.unwrap();
    let before = db.all_rows(DEFAULT_CODES_TABLE).await;
    let peeks = (0..10).map(|_| {
        let codes = codes.clone();
        tokio::spawn(async move { codes.peek(&hash("peeked"), at(T, 0).into()).await })
    });
    for p in futures::future::join_all(peeks).await {
        assert!(p.unwrap().unwrap());
    }
    assert_eq!(db.all_rows(DEFAULT_CODES_TABLE).await, before);
    assert_eq!(codes.consume(&h, at(T, 0).into()).await.unwrap(), Some(u));
    db.finish().await;
}

/// `purge_expired` deletes codes with `expires_at <= now` and says how many.
async fn purge_counts(kind: Kind) {
    let Some((db, codes)) = fresh(kind, "purge_counts").await else {
        return;
    };
    let u = HostUserId::Int(9);
    for (name, expires) in [
        ("old-1", T - 3600),
        ("old-2", T - 1),
        ("boundary", T),
        ("live-1", T + 1),
        ("live-2", T + 300),
    ] {
        codes
            .insert(&hash(name), &u, at(expires, 0).into())
            .await
            .unwrap();
    }
    assert_eq!(codes.purge_expired(at(T, 0).into()).await.unwrap(), 3);
    assert_eq!(codes.purge_expired(at(T, 0).into()).await.unwrap(), 0);
    let (_, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert_eq!(rows.len(), 2);
    for live in ["live-1", "live-2"] {
        assert_eq!(
            codes.consume(&hash(live), at(T, 0).into()).await.unwrap(),
            Some(u.clone())
        );
    }
    assert_eq!(
        codes.purge_expired(at(T + 10_000, 0).into()).await.unwrap(),
        0
    );
    db.finish().await;
}

/// The table holds the code's hash (lowercase hex), never the code.
async fn table_holds_only_the_hash(kind: Kind) {
    let Some((db, codes)) = fresh(kind, "table_holds_only_the_hash").await else {
        return;
    };
    // A code of the issued shape (43 base64url characters).
    let code = "Zm9vYmFyLWJhei1xdXV4LWNvZGUtMTIzNDU2Nzg5MDE";
    codes
        .insert(&hash(code), &HostUserId::Int(5), at(T + 300, 0).into())
        .await
        .unwrap();
    let (columns, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert_eq!(
        columns,
        ["code_hash", "host_user_id", "host_user_kind", "expires_at"]
    );
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    for value in row.iter().flatten() {
        assert!(!value.contains(code), "{value}");
        assert!(!value.contains(&code[..20]), "{value}");
    }
    assert_eq!(row[0].as_deref(), Some(hash(code).to_hex().as_str()));
    assert_eq!(row[1].as_deref(), Some("5"));
    assert_eq!(row[2].as_deref(), Some("i"));
    assert_eq!(row[3].as_deref(), Some((T + 300).to_string().as_str()));
    db.finish().await;
}

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

/// Writes to a read-only database fail with `StoreError::ReadOnly`; reads
/// (peek) work; migrate on a migrated database writes nothing and succeeds.
async fn read_only(kind: Kind) {
    let Some((db, codes)) = fresh(kind, "read_only").await else {
        return;
    };
    codes
        .insert(&hash("ro"), &HostUserId::Int(1), at(T + 60, 0).into())
        .await
        .unwrap();
    let ro = db.read_only().await;
    let ro_codes = ro.codes(None);
    ro_codes.migrate().await.unwrap();
    assert!(ro_codes.peek(&hash("ro"), at(T, 0).into()).await.unwrap());
    let errors = [
        ro_codes
            .consume(&hash("ro"), at(T, 0).into())
            .await
            .map(drop),
        ro_codes
            .insert(&hash("new"), &HostUserId::Int(1), at(T + 60, 0).into())
            .await,
        ro_codes.purge_expired(at(T, 0).into()).await.map(drop),
    ];
    for r in errors {
        assert!(matches!(r, Err(StoreError::ReadOnly { .. })), "{r:?}");
    }
    // Nothing was consumed.
    assert_eq!(
        codes.consume(&hash("ro"), at(T, 0).into()).await.unwrap(),
        Some(HostUserId::Int(1))
    );
    db.finish().await;
}

mattermost_tokens_tests::on_every_database!(
    workers = 4,
    postgres: postgres,
    mariadb: mariadb,
    sqlite: sqlite;
    round_trip,
    expiry,
    consume_exactly_once,
    peek_consumes_nothing,
    purge_counts,
    table_holds_only_the_hash,
    migration,
    read_only,
);

// ---------------------------------------------------------------------------
// Configuration and errors.

#[tokio::test]
async fn table_names_are_validated() {
    // One connection that never expires: the in-memory database lives as
    // long as it does.
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await
        .unwrap();
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
    assert_eq!(SqliteCodeStore::new(pool).table_name(), DEFAULT_CODES_TABLE);
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

/// The `code` query parameter of a link.
fn code_of(url: &str) -> String {
    let url = reqwest::Url::parse(url).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code parameter")
}

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
    let codes = SqliteCodeStore::new(pool.clone());
    codes.migrate().await.unwrap();

    // A synced user: Mattermost id and own token stored.
    let ada = HostUserId::Int(1);
    let mm_id = UserId::new("a1b2c3d4e5f6g7h8i9j0k1l2m3");
    let secret = "t0k3nt0k3nt0k3nt0k3nt0k3n";
    let synced = NewToken {
        mattermost_user_id: mm_id.clone(),
        token: AccessToken::new(secret),
        token_id: TokenId::new("i1d2i3d4i5d6i7d8i9d0i1d2i3"),
        expires_at: None,
    };
    assert!(tokens.put_token_if_absent(&ada, &synced).await.unwrap());

    // Two instances of the app sharing the database: one issues, the other
    // redeems. The client is never called (nothing listens on port 9).
    let instance = || {
        MagicLinks::new(
            MattermostClient::new("http://127.0.0.1:9", "admintoken").unwrap(),
            Arc::new(tokens.clone()),
            Arc::new(codes.clone()),
            MagicLinkConfig::one_time_code("http://127.0.0.1:8080/mattermost/magic-link/redeem"),
        )
        .unwrap()
    };
    let (a, b) = (instance(), instance());
    let link = a.issue(&ada).await.unwrap();
    assert!(
        link.url()
            .starts_with("http://127.0.0.1:8080/mattermost/magic-link/redeem?code="),
        "{link:?}"
    );
    let code = code_of(link.url());

    // Only the hash is in the database, with the link's expiry.
    let (_, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].iter().flatten().all(|v| !v.contains(&code)));
    assert_eq!(rows[0][0].as_deref(), Some(hash(&code).to_hex().as_str()));
    assert_eq!(
        rows[0][3].as_deref(),
        Some(link.expires_at().timestamp().to_string().as_str())
    );

    // The confirm page (GET) uses nothing up.
    b.confirm_page(&code).await.unwrap();
    b.confirm_page(&code).await.unwrap();

    let redemption = b.redeem(&code).await.unwrap();
    assert_eq!(redemption.user(), &ada);
    assert_eq!(redemption.mattermost_user_id(), &mm_id);
    let cookies: HashMap<&str, &str> = redemption
        .cookies()
        .iter()
        .map(|c| (c.name(), c.value()))
        .collect();
    assert_eq!(cookies.get("MMAUTHTOKEN"), Some(&secret));
    assert_eq!(cookies.get("MMUSERID"), Some(&mm_id.as_str()));
    assert!(cookies.contains_key("MMCSRF"));
    assert_eq!(redemption.redirect_url().as_str(), "http://127.0.0.1:9/");

    // Once only, on either instance.
    for links in [&a, &b] {
        assert!(
            matches!(
                links.redeem(&code).await,
                Err(Error::InvalidMagicLink { .. })
            ),
            "second redeem must fail"
        );
        assert!(matches!(
            links.confirm_page(&code).await,
            Err(Error::InvalidMagicLink { .. })
        ));
    }
    let (_, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert!(rows.is_empty(), "{rows:?}");

    // A user without a token gets no link, and no code is stored.
    let bob = HostUserId::Int(2);
    tokens
        .set_mattermost_user_id(&bob, &UserId::new("b1b2c3d4e5f6g7h8i9j0k1l2m3"))
        .await
        .unwrap();
    assert!(matches!(
        a.issue(&bob).await,
        Err(Error::NoUserToken { .. })
    ));
    let (_, rows) = db.all_rows(DEFAULT_CODES_TABLE).await;
    assert!(rows.is_empty(), "{rows:?}");
    assert_eq!(a.purge_expired().await.unwrap(), 0);
    db.finish().await;
}
