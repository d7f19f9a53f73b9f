//! The migration conformance suite: the schema's steps
//! ([`Step`]) run through each
//! adapter on each database, and a database migrated through one adapter
//! opened, migrated again and used through the other.
//!
//! Every case takes a fresh [`MigrationDb`]; an adapter and a database kind
//! instantiate all of them with
//! [`migration_conformance_tests!`](crate::migration_conformance_tests):
//!
//! ```text
//! mattermost_tokens_tests::migration_conformance_tests!(sqlx_postgres, Adapter::Sqlx, Kind::Postgres);
//! ```
//!
//! The adapters differ where they are meant to, and the cases say so:
//! diesel marks what it adds and undoes only that
//! ([`MigrationDb::marks`]), and runs the steps one by one, each recorded
//! on its own ([`MigrationDb::steps_apart`]); sqlx checks every step before
//! it changes anything and undoes whatever has the step's names and types.

use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::store::schema::{
    CLAIM_COLUMNS, DEFAULT_EXPIRY_COLUMN, Dialect, KeyType, MIGRATIONS_TABLE, Step,
};
use mattermost_tokens::{
    AccessToken, HostUserId, NewToken, StoreError, TokenId, TokenStore, UserId,
};
use mattermost_tokens_diesel::{ConnectionPool, DieselTokenStore, StoreConnection};
use mattermost_tokens_sqlx::{Backend, SqlxTokenStore};

use crate::db::unique_suffix;
use crate::scratch::{DieselPools, Kind, Pool, Rows, ScratchDb};

/// A token store with its migration methods, whichever adapter made it.
#[async_trait]
pub trait MigratingStore: TokenStore {
    /// `migrate()`.
    async fn migrate(&self) -> Result<(), StoreError>;
    /// `undo_migration()`.
    async fn undo(&self) -> Result<(), StoreError>;
    /// `user_id_index_name()`.
    fn index_name(&self) -> String;
    /// `expiry_column()`.
    fn expiry_column(&self) -> String;
}

#[async_trait]
impl<DB: Backend> MigratingStore for SqlxTokenStore<DB> {
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

#[async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> MigratingStore for DieselTokenStore<C, P> {
    async fn migrate(&self) -> Result<(), StoreError> {
        DieselTokenStore::migrate(self).await
    }
    async fn undo(&self) -> Result<(), StoreError> {
        self.undo_migration().await
    }
    fn index_name(&self) -> String {
        self.user_id_index_name().to_owned()
    }
    fn expiry_column(&self) -> String {
        DieselTokenStore::expiry_column(self).to_owned()
    }
}

/// The adapter a store comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Adapter {
    /// `mattermost-tokens-sqlx`.
    Sqlx,
    /// `mattermost-tokens-diesel`.
    Diesel,
}

impl Adapter {
    /// The other one.
    pub fn other(self) -> Adapter {
        match self {
            Adapter::Sqlx => Adapter::Diesel,
            Adapter::Diesel => Adapter::Sqlx,
        }
    }
}

/// How a store is configured.
#[derive(Clone, Debug)]
pub struct Config {
    /// The users table (possibly `schema.table`).
    pub table: String,
    /// Its key's type.
    pub key_type: KeyType,
    /// The key column.
    pub key_column: String,
    /// The expiry column.
    pub expiry: String,
}

impl Config {
    /// Table `table`, key `id` of `key_type`, the default expiry column.
    pub fn new(table: &str, key_type: KeyType) -> Config {
        Config {
            table: table.to_owned(),
            key_type,
            key_column: "id".to_owned(),
            expiry: DEFAULT_EXPIRY_COLUMN.to_owned(),
        }
    }
}

/// A fresh database (a PostgreSQL schema, a MariaDB database, a SQLite
/// file) for one case, reached through sqlx for set-up and inspection, and
/// through both adapters' stores.
#[derive(Debug)]
pub struct MigrationDb {
    db: ScratchDb,
    diesel: DieselPools,
    /// The adapter the case is about.
    pub adapter: Adapter,
}

const PREFIX: &str = "mmt_mig_";

impl std::ops::Deref for MigrationDb {
    type Target = ScratchDb;
    fn deref(&self) -> &ScratchDb {
        &self.db
    }
}

impl MigrationDb {
    /// A fresh database of `kind` whose cases are about `adapter`, or `None`
    /// after printing that `test` was skipped.
    pub async fn open(kind: Kind, adapter: Adapter, test: &str) -> Option<MigrationDb> {
        let db = ScratchDb::open(kind, PREFIX, test).await?;
        let url = db.url().expect("a database other drivers reach");
        let diesel = match kind {
            Kind::Postgres => {
                DieselPools::Pg(mattermost_tokens_diesel::postgres::pool(&url, 8).unwrap())
            }
            Kind::MariaDb => {
                DieselPools::My(mattermost_tokens_diesel::mysql::pool(&url, 8).unwrap())
            }
            Kind::Sqlite => {
                DieselPools::Lite(mattermost_tokens_diesel::sqlite::pool(&url, 8).unwrap())
            }
        };
        Some(MigrationDb {
            db,
            diesel,
            adapter,
        })
    }

    /// The schema's name for the database.
    pub fn dialect(&self) -> Dialect {
        match self.kind() {
            Kind::Postgres => Dialect::Postgres,
            Kind::MariaDb => Dialect::MySql,
            Kind::Sqlite => Dialect::Sqlite,
        }
    }

    /// Whether the adapter marks what it adds, and undoes only that
    /// (diesel); otherwise it undoes what has the steps' names and types.
    pub fn marks(&self) -> bool {
        self.adapter == Adapter::Diesel
    }

    /// Whether the adapter runs the steps one by one, each recorded on its
    /// own (diesel), rather than checking all before changing any (sqlx).
    pub fn steps_apart(&self) -> bool {
        self.adapter == Adapter::Diesel
    }

    /// The case's adapter's store on `table` with integer or text keys.
    pub fn store(&self, table: &str, key_type: KeyType) -> Arc<dyn MigratingStore> {
        self.store_with(self.adapter, &Config::new(table, key_type))
    }

    /// A store of `adapter` as configured.
    pub fn store_with(&self, adapter: Adapter, c: &Config) -> Arc<dyn MigratingStore> {
        macro_rules! configured {
            ($store:expr) => {
                Arc::new(
                    $store
                        .with_table_name(&c.table)
                        .unwrap()
                        .with_key_column(&c.key_column)
                        .unwrap()
                        .with_expiry_column(&c.expiry)
                        .unwrap()
                        .with_key_type(c.key_type),
                )
            };
        }
        match adapter {
            Adapter::Sqlx => match &self.pool {
                Pool::Pg(p) => configured!(mattermost_tokens_sqlx::PgTokenStore::new(p.clone())),
                Pool::My(p) => {
                    configured!(mattermost_tokens_sqlx::MySqlTokenStore::new(p.clone()))
                }
                Pool::Lite(p) => {
                    configured!(mattermost_tokens_sqlx::SqliteTokenStore::new(p.clone()))
                }
            },
            Adapter::Diesel => crate::each_diesel_pool!(&self.diesel, |p| {
                configured!(DieselTokenStore::new(p.clone()))
            }),
        }
    }

    /// The table's column definitions, in order.
    pub async fn columns(&self, table: &str) -> Rows {
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

    /// The table's column names, in order.
    pub async fn column_names(&self, table: &str) -> Vec<String> {
        names(self.columns(table).await)
    }

    /// The names of the table's indexes, lower case, sorted.
    pub async fn index_names(&self, table: &str) -> Vec<String> {
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
        let mut names: Vec<String> = names(self.rows(&q).await)
            .into_iter()
            .map(|n| n.to_lowercase())
            .collect();
        names.sort();
        names
    }

    /// The steps the case's adapter has recorded for `table`, in their
    /// order.
    pub async fn recorded(&self, table: &str) -> Vec<Step> {
        self.recorded_by(self.adapter, table).await
    }

    /// The steps `adapter` has recorded for `table`, in their order.
    pub async fn recorded_by(&self, adapter: Adapter, table: &str) -> Vec<Step> {
        let records = self.records_by(adapter, table).await;
        Step::USERS_TABLE
            .into_iter()
            .filter(|s| {
                let key = key_of(adapter, *s, table);
                records
                    .iter()
                    .any(|r| r[0].as_deref() == Some(key.as_str()))
            })
            .collect()
    }

    /// The case's adapter's records of `table`'s steps, in order: the
    /// step's key, then what else the tracking keeps (name, time).
    pub async fn records(&self, table: &str) -> Rows {
        self.records_by(self.adapter, table).await
    }

    async fn records_by(&self, adapter: Adapter, table: &str) -> Rows {
        let (tracking, q) = match adapter {
            Adapter::Sqlx => (
                MIGRATIONS_TABLE,
                format!(
                    "SELECT {}, description, {} FROM {MIGRATIONS_TABLE} \
                     WHERE users_table = '{table}' ORDER BY version",
                    self.text("version"),
                    self.text("installed_on")
                ),
            ),
            Adapter::Diesel => {
                let tags: Vec<String> = Step::USERS_TABLE
                    .iter()
                    .map(|s| format!("'{}'", s.tag(table)))
                    .collect();
                (
                    "__diesel_schema_migrations",
                    format!(
                        "SELECT version, {} FROM __diesel_schema_migrations \
                         WHERE version IN ({}) ORDER BY version",
                        self.text("run_on"),
                        tags.join(", ")
                    ),
                )
            }
        };
        if self.column_names(tracking).await.is_empty() {
            return Vec::new();
        }
        self.rows(&q).await
    }

    /// Removes the adapter's record of `step` on `table`, as if it had never
    /// run (a database migrated by a release without the step).
    pub async fn forget(&self, table: &str, step: Step) {
        let key = key_of(self.adapter, step, table);
        self.exec(&match self.adapter {
            Adapter::Sqlx => format!(
                "DELETE FROM {MIGRATIONS_TABLE} WHERE users_table = '{table}' AND version = {key}"
            ),
            Adapter::Diesel => {
                format!("DELETE FROM __diesel_schema_migrations WHERE version = '{key}'")
            }
        })
        .await;
    }

    /// Drops index `index` of `table`.
    pub async fn drop_index(&self, table: &str, index: &str) {
        self.exec(&match self.kind() {
            Kind::MariaDb => format!("DROP INDEX {index} ON {table}"),
            _ => format!("DROP INDEX {index}"),
        })
        .await;
    }

    /// A users table holding `users` (all of one kind); text keys are a
    /// native `uuid` column when `uuid` is set (PostgreSQL).
    pub async fn users_table(&self, users: &[HostUserId], uuid: bool) -> (String, KeyType) {
        let (table, key) = self.db.users_table(users, uuid).await;
        (table, key.into())
    }

    /// Drops the database.
    pub async fn finish(self) {
        self.db.finish().await
    }
}

/// A step's key in an adapter's tracking: its version (sqlx), its tag
/// (diesel).
fn key_of(adapter: Adapter, step: Step, table: &str) -> String {
    match adapter {
        Adapter::Sqlx => step.version().to_string(),
        Adapter::Diesel => step.tag(table),
    }
}

fn names(rows: Rows) -> Vec<String> {
    rows.into_iter().map(|r| r[0].clone().unwrap()).collect()
}

// ---------------------------------------------------------------------------
// Helpers of the cases.

/// The users table's steps, all recorded.
pub const ALL: [Step; 4] = Step::USERS_TABLE;

/// 2100-01-01 and 2300-01-01, in milliseconds since the Unix epoch: past
/// 2^31 seconds, so only a 64-bit column holds them.
pub const SOON_MS: i64 = 4_102_444_800_000;
/// See [`SOON_MS`].
pub const LATER_MS: i64 = 10_413_792_000_000;

/// Token `n` with `value`: Mattermost user id `u<n>`, token id `t<n>`.
pub fn token(n: u32, value: &str) -> NewToken {
    NewToken {
        mattermost_user_id: UserId::new(format!("{:0>26}", format!("u{n}"))),
        token: AccessToken::new(value),
        token_id: TokenId::new(format!("{:0>26}", format!("t{n}"))),
        expires_at: None,
    }
}

/// [`token`], expiring at `expires_at`.
pub fn expiring(n: u32, value: &str, expires_at: Option<i64>) -> NewToken {
    NewToken {
        expires_at,
        ..token(n, value)
    }
}

/// A Mattermost user id.
pub fn mm(name: &str) -> UserId {
    UserId::new(format!("{name:0>26}"))
}

/// A fresh table name.
pub fn table_name() -> String {
    format!("users_{}", unique_suffix())
}

/// The message of a [`StoreError::Schema`].
pub fn schema_message<T: std::fmt::Debug>(r: Result<T, StoreError>) -> String {
    match r {
        Err(StoreError::Schema { message, .. }) => message,
        other => panic!("expected StoreError::Schema, got {other:?}"),
    }
}

/// `AlreadyLinked` for `user` and `id`, and nothing else.
pub fn already_linked<T: std::fmt::Debug>(
    r: Result<T, StoreError>,
    user: &HostUserId,
    id: &UserId,
) {
    match r {
        Err(StoreError::AlreadyLinked {
            user: u,
            mattermost_user_id: m,
        }) if u == *user && m == *id => {}
        other => panic!("expected AlreadyLinked for {user:?} / {id:?}, got {other:?}"),
    }
}

/// Neither the error nor its sources, shown any way, contain `secret`.
pub fn assert_no_secret(err: &StoreError, secret: &str) {
    let mut text = format!("{err} {err:?}");
    let mut src = std::error::Error::source(err);
    while let Some(s) = src {
        text.push_str(&format!(" {s} {s:?}"));
        src = s.source();
    }
    assert!(!text.contains(secret), "{text}");
}

/// Column `column` of the row with key `id`, as text.
pub async fn cell(db: &MigrationDb, table: &str, column: &str, id: i64) -> Option<String> {
    let rows = db
        .rows(&format!(
            "SELECT {} FROM {table} WHERE id = {id}",
            db.text(column)
        ))
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    rows[0][0].clone()
}

/// Checks that `def` ([`MigrationDb::columns`]) is the expiry column as the
/// migration adds it: a nullable 64-bit integer without a default.
pub fn assert_expiry_column(kind: Kind, def: &[Option<String>], column: &str) {
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

/// The token columns in the order the migration adds them, then the
/// expiry column.
pub const ADDED: [&str; 7] = [
    "mattermost_user_id",
    "mattermost_token",
    "mattermost_token_id",
    DEFAULT_EXPIRY_COLUMN,
    CLAIM_COLUMNS[0],
    CLAIM_COLUMNS[1],
    CLAIM_COLUMNS[2],
];

mod cases;
pub use cases::*;

/// One multi-threaded `#[tokio::test]` per case, in a module `$name`, each
/// in a fresh [`MigrationDb`] of `$kind` about `$adapter`.
#[macro_export]
macro_rules! migration_conformance_tests {
    ($name:ident, $adapter:expr, $kind:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::migration_conformance as c;

            macro_rules! case {
                ($case:ident) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $case() {
                        let test = concat!(stringify!($name), "::", stringify!($case));
                        let Some(db) = c::MigrationDb::open($kind, $adapter, test).await else {
                            return;
                        };
                        c::$case(&db).await;
                        db.finish().await;
                    }
                };
            }

            case!(migrate_is_idempotent_and_reversible);
            case!(laravel_users_table);
            case!(laravel_token_column_present);
            case!(clashing_host_columns_refused);
            case!(missing_table_and_columns);
            case!(key_types);
            case!(duplicate_links_refused);
            case!(upgrade_adds_unique_index);
            case!(existing_unique_index_kept);
            case!(earlier_index_name_recognised);
            case!(every_write_refuses_a_second_link);
            case!(concurrent_links_one_wins);
            case!(qualified_and_long_table_names);
            case!(upgrade_adds_expiry_column);
            case!(undo_drops_expiry_column);
            case!(custom_expiry_column);
            case!(expiry_migration_is_idempotent);
            case!(rewriting_same_values_matches);
            case!(get_many_over_one_in_list);
            case!(other_adapter_opens_migrated_table);
        }
    };
}
