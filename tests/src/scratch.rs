//! Scratch space for one test on the test servers: a PostgreSQL schema or a
//! MariaDB database (a "namespace"), or a SQLite file, plus the SQL the
//! adapter suites build their tables with.
//!
//! Names are `<prefix><pid>_...`: a suite tells what a finished test process
//! left behind from what a live one is using, and drops the former the next
//! time it runs (a conformance factory has no teardown, so this is the only
//! cleanup its namespaces get).
//!
//! Set-up goes through sqlx whatever the store under test is: a diesel suite
//! takes a [`Namespace`] for its schema and builds its own pools on
//! [`Namespace::url`], so only the store's own queries run on diesel.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Mutex;

use mattermost_tokens::HostUserId;
use mattermost_tokens_sqlx::sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use mattermost_tokens_sqlx::sqlx::postgres::{PgConnectOptions, PgPool};
use mattermost_tokens_sqlx::sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use mattermost_tokens_sqlx::sqlx::{self, AssertSqlSafe, Executor, Row, SqlSafeStr};

use crate::db::{MYSQL_ENV, POSTGRES_ENV, unique_suffix, url_or_skip, with_database};

/// The kinds of database the adapter suites run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// PostgreSQL, one schema per test.
    Postgres,
    /// MariaDB (or MySQL), one database per test.
    MariaDb,
    /// SQLite, in memory or one file per test.
    Sqlite,
}

impl Kind {
    /// The test server's URL (a server kind), or `None` after printing that
    /// `test` was skipped.
    pub fn server_url(self, test: &str) -> Option<String> {
        let env = match self {
            Kind::Postgres => POSTGRES_ENV,
            Kind::MariaDb => MYSQL_ENV,
            Kind::Sqlite => panic!("SQLite has no server"),
        };
        url_or_skip(env, test)
    }

    /// `expr` read as text (MariaDB has no `CAST(... AS TEXT)`).
    pub fn text(self, expr: &str) -> String {
        match self {
            Kind::MariaDb => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }
}

/// Rows of text columns, `None` for NULL.
pub type Rows = Vec<Vec<Option<String>>>;

/// A sqlx pool, whatever its database.
#[derive(Clone, Debug)]
pub enum Pool {
    /// A PostgreSQL pool.
    Pg(PgPool),
    /// A MariaDB pool.
    My(MySqlPool),
    /// A SQLite pool.
    Lite(SqlitePool),
}

fn sql(s: &str) -> sqlx::SqlStr {
    AssertSqlSafe(s.to_owned()).into_sql_str()
}

impl Pool {
    /// The database's kind.
    pub fn kind(&self) -> Kind {
        match self {
            Pool::Pg(_) => Kind::Postgres,
            Pool::My(_) => Kind::MariaDb,
            Pool::Lite(_) => Kind::Sqlite,
        }
    }

    /// Runs `statement` (one or more statements); panics on failure.
    pub async fn exec(&self, statement: &str) {
        let r = match self {
            Pool::Pg(p) => sqlx::raw_sql(sql(statement)).execute(p).await.map(drop),
            Pool::My(p) => sqlx::raw_sql(sql(statement)).execute(p).await.map(drop),
            // A statement first, so that a connection whose view of the
            // schema is older than another connection's change reads it
            // again before the statements are prepared.
            Pool::Lite(p) => {
                let fresh = format!("SELECT 1 FROM sqlite_master LIMIT 1; {statement}");
                sqlx::raw_sql(sql(&fresh)).execute(p).await.map(drop)
            }
        };
        r.unwrap_or_else(|e| panic!("{statement}: {e}"));
    }

    /// Rows of a query whose columns are all text.
    pub async fn rows(&self, query: &str) -> Rows {
        fn texts<R: Row>(rows: Vec<R>) -> Rows
        where
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            rows.into_iter()
                .map(|r| (0..r.len()).map(|i| r.try_get(i).unwrap()).collect())
                .collect()
        }
        let q = sql(query);
        match self {
            Pool::Pg(p) => texts(sqlx::query(q).fetch_all(p).await.unwrap()),
            Pool::My(p) => texts(sqlx::query(q).fetch_all(p).await.unwrap()),
            Pool::Lite(p) => texts(sqlx::query(q).fetch_all(p).await.unwrap()),
        }
    }

    /// A second pool on the same database that refuses writes (SQLite
    /// `mode=ro`, PostgreSQL `default_transaction_read_only`, MariaDB
    /// `SET SESSION TRANSACTION READ ONLY`).
    pub async fn read_only(&self) -> Pool {
        match self {
            Pool::Pg(p) => {
                let opts = (*p.connect_options())
                    .clone()
                    .options([("default_transaction_read_only", "on")]);
                Pool::Pg(PgPool::connect_with(opts).await.unwrap())
            }
            Pool::My(p) => Pool::My(
                MySqlPoolOptions::new()
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
                            Ok(())
                        })
                    })
                    .connect_with((*p.connect_options()).clone())
                    .await
                    .unwrap(),
            ),
            Pool::Lite(p) => Pool::Lite(
                SqlitePool::connect_with((*p.connect_options()).clone().read_only(true))
                    .await
                    .unwrap(),
            ),
        }
    }
}

/// Whether `name` (`<prefix><pid>_...`) was made by a test process that is
/// gone. Without `/proc` nothing counts as stale: better a leftover than a
/// live test's namespace dropped.
pub fn is_stale(prefix: &str, name: &str) -> bool {
    let Some(pid) = name
        .strip_prefix(prefix)
        .and_then(|r| r.split('_').next())
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id()
        && Path::new("/proc/self").exists()
        && !Path::new(&format!("/proc/{pid}")).exists()
}

/// True the first time it is called with `what` in this process, so that
/// each cleanup scans once per run rather than once per test.
fn first_time(what: String) -> bool {
    static SEEN: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    SEEN.lock().unwrap_or_else(|e| e.into_inner()).insert(what)
}

/// A fresh path `<dir>/<prefix><suffix>.db` for one test's SQLite file,
/// after removing the files of gone test processes from `dir`.
pub fn scratch_file(dir: &Path, prefix: &str) -> PathBuf {
    if first_time(format!("files {prefix} {}", dir.display())) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if is_stale(prefix, &entry.file_name().to_string_lossy()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    dir.join(format!("{prefix}{}.db", unique_suffix()))
}

/// A `SELECT` list of `exprs` as `c0`, `c1`, ... padded with NULLs to
/// `width` columns: the diesel suites load rows into fixed-width structs.
pub fn padded_select(width: usize, exprs: &[String]) -> String {
    assert!(exprs.len() <= width, "at most {width} columns");
    (0..width)
        .map(|i| match exprs.get(i) {
            Some(e) => format!("{e} AS c{i}"),
            None => format!("NULL AS c{i}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A PostgreSQL schema or MariaDB database made for one test, with the
/// admin connection that made it and drops it in [`Namespace::finish`].
#[derive(Debug)]
pub struct Namespace {
    name: String,
    server_url: String,
    admin: Pool,
}

impl Namespace {
    /// Creates `<prefix><suffix>` on the server of `server_url` (dropping
    /// the namespaces of gone test processes first). `kind` must be a
    /// server kind.
    pub async fn create(kind: Kind, server_url: &str, prefix: &str) -> Namespace {
        let admin = match kind {
            Kind::Postgres => Pool::Pg(
                PgPool::connect(server_url)
                    .await
                    .expect("connect to PostgreSQL"),
            ),
            Kind::MariaDb => Pool::My(
                MySqlPool::connect(server_url)
                    .await
                    .expect("connect to MariaDB"),
            ),
            Kind::Sqlite => panic!("SQLite has no namespaces: use scratch_file"),
        };
        drop_stale_namespaces(&admin, prefix).await;
        let name = format!("{prefix}{}", unique_suffix());
        admin
            .exec(&match kind {
                Kind::Postgres => format!("CREATE SCHEMA {name}"),
                _ => format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                ),
            })
            .await;
        Namespace {
            name,
            server_url: server_url.to_owned(),
            admin,
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL whose connections work in the namespace: the database swapped
    /// (MariaDB), or `search_path` set through libpq's `options` parameter
    /// (PostgreSQL; it stays last, so callers may append more settings).
    pub fn url(&self) -> String {
        match self.admin.kind() {
            Kind::Postgres => {
                let sep = if self.server_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                format!(
                    "{}{sep}options=-c%20search_path%3D{}",
                    self.server_url, self.name
                )
            }
            _ => with_database(&self.server_url, &self.name),
        }
    }

    /// Drops the namespace.
    pub async fn finish(self) {
        drop_namespace(&self.admin, &self.name).await;
    }
}

async fn drop_namespace(admin: &Pool, ns: &str) {
    match admin.kind() {
        Kind::Postgres => {
            admin
                .exec(&format!("DROP SCHEMA IF EXISTS {ns} CASCADE"))
                .await
        }
        Kind::MariaDb => admin.exec(&format!("DROP DATABASE IF EXISTS {ns}")).await,
        Kind::Sqlite => {}
    }
}

async fn drop_stale_namespaces(admin: &Pool, prefix: &str) {
    if !first_time(format!("namespaces {prefix} {:?}", admin.kind())) {
        return;
    }
    let like = format!("{}%", prefix.replace('_', "\\_"));
    let q = match admin.kind() {
        Kind::Postgres => {
            format!("SELECT nspname::text FROM pg_namespace WHERE nspname LIKE '{like}'")
        }
        Kind::MariaDb => format!(
            "SELECT CAST(SCHEMA_NAME AS CHAR) FROM information_schema.SCHEMATA \
             WHERE SCHEMA_NAME LIKE '{like}'"
        ),
        Kind::Sqlite => return,
    };
    for row in admin.rows(&q).await {
        let ns = row[0].clone().unwrap();
        if is_stale(prefix, &ns) {
            drop_namespace(admin, &ns).await;
        }
    }
}

/// A sqlx pool on a fresh namespace (or SQLite database), and what to drop
/// when the test is done.
#[derive(Debug)]
pub struct ScratchDb {
    /// The pool the test works through.
    pub pool: Pool,
    namespace: Option<Namespace>,
    file: Option<PathBuf>,
}

impl ScratchDb {
    /// A fresh namespace named after `prefix` (SQLite: a file in the
    /// temporary directory), or `None` after printing that `test` was
    /// skipped.
    pub async fn open(kind: Kind, prefix: &str, test: &str) -> Option<ScratchDb> {
        if kind == Kind::Sqlite {
            return Some(ScratchDb::sqlite_file(prefix).await);
        }
        let url = kind.server_url(test)?;
        let ns = Namespace::create(kind, &url, prefix).await;
        let pool = match kind {
            Kind::Postgres => {
                let opts = PgConnectOptions::from_str(&url)
                    .unwrap()
                    .options([("search_path", ns.name())]);
                Pool::Pg(PgPool::connect_with(opts).await.unwrap())
            }
            _ => {
                let opts = MySqlConnectOptions::from_str(&url)
                    .unwrap()
                    .database(ns.name());
                Pool::My(MySqlPool::connect_with(opts).await.unwrap())
            }
        };
        Some(ScratchDb {
            pool,
            namespace: Some(ns),
            file: None,
        })
    }

    /// An in-memory SQLite database.
    pub async fn sqlite_memory() -> ScratchDb {
        // One connection that never expires: the in-memory database lives
        // as long as it does, and every caller sees the same database.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        ScratchDb::on(Pool::Lite(pool))
    }

    /// A SQLite database in a fresh file of the temporary directory.
    pub async fn sqlite_file(prefix: &str) -> ScratchDb {
        let path = scratch_file(&std::env::temp_dir(), prefix);
        let opts = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await
            .unwrap();
        ScratchDb {
            pool: Pool::Lite(pool),
            namespace: None,
            file: Some(path),
        }
    }

    /// A handle on `pool` that owns nothing: [`ScratchDb::finish`] leaves
    /// the database alone.
    pub fn on(pool: Pool) -> ScratchDb {
        ScratchDb {
            pool,
            namespace: None,
            file: None,
        }
    }

    /// The database's kind.
    pub fn kind(&self) -> Kind {
        self.pool.kind()
    }

    /// The name of the namespace the test works in (`None` on SQLite).
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_ref().map(Namespace::name)
    }

    /// A URL (a SQLite file's path) on which other drivers reach the same
    /// database; `None` for an in-memory one.
    pub fn url(&self) -> Option<String> {
        match (&self.namespace, &self.file) {
            (Some(ns), _) => Some(ns.url()),
            (None, Some(path)) => path.to_str().map(str::to_owned),
            (None, None) => None,
        }
    }

    /// Runs `statement` (one or more statements); panics on failure.
    pub async fn exec(&self, statement: &str) {
        self.pool.exec(statement).await
    }

    /// Rows of a query whose columns are all text.
    pub async fn rows(&self, query: &str) -> Rows {
        self.pool.rows(query).await
    }

    /// `expr` read as text.
    pub fn text(&self, expr: &str) -> String {
        self.kind().text(expr)
    }

    /// Creates the table of [`users_table`] and returns its name and key.
    pub async fn users_table(&self, users: &[HostUserId], uuid: bool) -> (String, Key) {
        let t = users_table(self.kind(), users, uuid);
        for s in &t.statements {
            self.exec(s).await;
        }
        (t.name, t.key)
    }

    /// Drops the namespace (or file) the test worked in.
    pub async fn finish(self) {
        if let Some(ns) = self.namespace {
            ns.finish().await;
        }
        if let Some(path) = &self.file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// A diesel pool, whatever its database: the diesel suites work through
/// the store's own driver once the namespace is made.
#[derive(Clone)]
pub enum DieselPools {
    /// A PostgreSQL pool.
    Pg(mattermost_tokens_diesel::postgres::PgPool),
    /// A MariaDB pool.
    My(mattermost_tokens_diesel::mysql::MySqlPool),
    /// A SQLite pool.
    Lite(mattermost_tokens_diesel::sqlite::SqlitePool),
}

impl DieselPools {
    /// The database's kind.
    pub fn kind(&self) -> Kind {
        match self {
            DieselPools::Pg(_) => Kind::Postgres,
            DieselPools::My(_) => Kind::MariaDb,
            DieselPools::Lite(_) => Kind::Sqlite,
        }
    }
}

// diesel's connections are not `Debug`, so neither are their pools.
impl std::fmt::Debug for DieselPools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DieselPools({:?})", self.kind())
    }
}

/// Runs `$body` with `$p` bound to the pool of a [`DieselPools`], whatever
/// its type (the pools share no trait the body could be written against).
#[macro_export]
macro_rules! each_diesel_pool {
    ($pools:expr, |$p:ident| $body:expr) => {
        match $pools {
            $crate::scratch::DieselPools::Pg($p) => $body,
            $crate::scratch::DieselPools::My($p) => $body,
            $crate::scratch::DieselPools::Lite($p) => $body,
        }
    };
}

/// Runs `statement` (one or more statements) on a pooled connection;
/// panics on failure.
pub async fn diesel_exec(pools: &DieselPools, statement: &str) {
    use mattermost_tokens_diesel::diesel_async::SimpleAsyncConnection;
    each_diesel_pool!(pools, |p| {
        let mut conn = p.get().await.expect("a test connection");
        conn.batch_execute(statement)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    })
}

/// Diesel pools on a fresh namespace (or SQLite file), and what to drop
/// when the test is done.
pub struct DieselScratch {
    /// The database's kind.
    pub kind: Kind,
    /// The pools the test works through.
    pub pools: DieselPools,
    /// The URL of the namespace (SQLite: the file's path).
    pub url: String,
    namespace: Option<Namespace>,
    file: Option<String>,
}

impl std::fmt::Debug for DieselScratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DieselScratch")
            .field("pools", &self.pools)
            .field("namespace", &self.namespace)
            .field("file", &self.file)
            .finish_non_exhaustive()
    }
}

impl DieselScratch {
    /// A fresh namespace named after `prefix` with a pool of `max_size`
    /// connections on it (SQLite: a file in `sqlite_dir`), or `None` after
    /// printing that `test` was skipped.
    pub async fn open(
        kind: Kind,
        prefix: &str,
        test: &str,
        max_size: usize,
        sqlite_dir: &Path,
    ) -> Option<DieselScratch> {
        if kind == Kind::Sqlite {
            return Some(DieselScratch::sqlite_file(sqlite_dir, prefix));
        }
        let ns = Namespace::create(kind, &kind.server_url(test)?, prefix).await;
        let url = ns.url();
        let pools = match kind {
            Kind::Postgres => {
                DieselPools::Pg(mattermost_tokens_diesel::postgres::pool(&url, max_size).unwrap())
            }
            _ => DieselPools::My(mattermost_tokens_diesel::mysql::pool(&url, max_size).unwrap()),
        };
        Some(DieselScratch {
            kind,
            pools,
            url,
            namespace: Some(ns),
            file: None,
        })
    }

    /// A SQLite database in a fresh file of `dir`.
    pub fn sqlite_file(dir: &Path, prefix: &str) -> DieselScratch {
        let path = scratch_file(dir, prefix).to_str().unwrap().to_owned();
        DieselScratch {
            kind: Kind::Sqlite,
            pools: DieselPools::Lite(mattermost_tokens_diesel::sqlite::pool(&path, 8).unwrap()),
            url: path.clone(),
            namespace: None,
            file: Some(path),
        }
    }

    /// Runs `statement` (one or more statements); panics on failure.
    pub async fn exec(&self, statement: &str) {
        diesel_exec(&self.pools, statement).await
    }

    /// `expr` read as text.
    pub fn text(&self, expr: &str) -> String {
        self.kind.text(expr)
    }

    /// Drops the namespace (or file) the test worked in.
    pub async fn finish(self) {
        if let Some(ns) = self.namespace {
            ns.finish().await;
        }
        if let Some(path) = &self.file {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How a users table is keyed, for the adapters' `KeyType` (one type, the
/// schema's, re-exported by both).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Key {
    /// An integer column.
    Integer,
    /// A text column.
    Text,
    /// A PostgreSQL `uuid` column.
    Uuid,
}

impl From<Key> for mattermost_tokens::store::schema::KeyType {
    fn from(k: Key) -> Self {
        match k {
            Key::Integer => Self::Integer,
            Key::Text => Self::Text,
            Key::Uuid => Self::Uuid,
        }
    }
}

/// A plain users table: its name, key and the statements creating it.
#[derive(Clone, Debug)]
pub struct UsersTable {
    /// `users_<suffix>`.
    pub name: String,
    /// How its `id` column is keyed.
    pub key: Key,
    /// `CREATE TABLE`, then an `INSERT` of the users (when there are any).
    pub statements: Vec<String>,
}

/// A `users_<suffix>` table of `id` and `name`, holding `users` (all of the
/// kind of the first); text keys are a native `uuid` column when `uuid` is
/// set on PostgreSQL.
pub fn users_table(kind: Kind, users: &[HostUserId], uuid: bool) -> UsersTable {
    let name = format!("users_{}", unique_suffix());
    let (key_sql, key) = match (&users[0], kind, uuid) {
        (HostUserId::Int(_), Kind::Sqlite, _) => ("INTEGER", Key::Integer),
        (HostUserId::Int(_), _, _) => ("BIGINT", Key::Integer),
        (HostUserId::Text(_), Kind::Postgres, true) => ("UUID", Key::Uuid),
        (HostUserId::Text(_), Kind::MariaDb, _) => ("VARCHAR(64)", Key::Text),
        (HostUserId::Text(_), _, _) => ("TEXT", Key::Text),
    };
    let mut statements = vec![format!(
        "CREATE TABLE {name} (id {key_sql} NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL)"
    )];
    let values: Vec<String> = users
        .iter()
        .map(|u| match u {
            HostUserId::Int(i) => format!("({i}, 'user {i}')"),
            HostUserId::Text(s) => format!("('{s}', 'user {s}')"),
        })
        .collect();
    if !values.is_empty() {
        statements.push(format!(
            "INSERT INTO {name} (id, name) VALUES {}",
            values.join(", ")
        ));
    }
    UsersTable {
        name,
        key,
        statements,
    }
}

/// One multi-threaded `#[tokio::test]` per check and database kind: for
/// each kind a module of the given name whose tests call
/// `super::<check>(Kind::...)`, so that a check written once over [`Kind`]
/// is reported per database.
#[macro_export]
macro_rules! on_every_database {
    (
        workers = $workers:tt,
        postgres: $pg:ident,
        mariadb: $my:ident,
        sqlite: $lite:ident;
        $($check:ident),* $(,)?
    ) => {
        $crate::on_every_database!(@kind $workers, $pg, Postgres; $($check),*);
        $crate::on_every_database!(@kind $workers, $my, MariaDb; $($check),*);
        $crate::on_every_database!(@kind $workers, $lite, Sqlite; $($check),*);
    };
    (@kind $workers:tt, $module:ident, $kind:ident; $($check:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = $workers)]
                async fn $check() {
                    super::$check($crate::scratch::Kind::$kind).await;
                }
            )*
        }
    };
}

#[cfg(test)]
mod tests {
    use super::is_stale;

    #[test]
    fn only_gone_processes_are_stale() {
        assert!(!is_stale(
            "mmt_x_",
            &format!("mmt_x_{}_1_2", std::process::id())
        ));
        assert!(!is_stale("mmt_x_", "mmt_y_4000000000_1"));
        assert!(!is_stale("mmt_x_", "mmt_x_notapid_1"));
        if std::path::Path::new("/proc/self").exists() {
            // Above the kernel's pid limit: never a live process.
            assert!(is_stale("mmt_x_", "mmt_x_4000000000_1_2"));
        }
    }
}
