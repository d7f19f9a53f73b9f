//! The migrations of the host's users table, [`TokenMigrations`] (the
//! token columns, a unique index on `mattermost_user_id`, then the token
//! expiry column), and the one that creates the magic-link code table,
//! [`CodeMigrations`]. All are rendered for a configured table, versioned
//! and run alike; what follows describes the users table's, and
//! [`CodeMigrations`] what differs for the code table.
//!
//! # Three migrations, rendered for the configured table
//!
//! The table name is configurable, so the migrations are not a static
//! `embed_migrations!` directory: [`TokenMigrations`] implements diesel's
//! [`MigrationSource`] itself and renders the SQL for its table (the default
//! is `users`) and its expiry column (the default is
//! `mattermost_token_expires_at`). It holds three migrations, run in this
//! order and reverted in the reverse one.
//!
//! **`add_mattermost_token_to_users_table`** ([`MIGRATION_NAME`], like the
//! sqlx adapter's and the Laravel seed's) adds the three columns. Before it
//! alters anything it reads the table's columns, so it is safe on a table
//! that already has some or all of the columns (from the Laravel migration,
//! from the sqlx adapter, from an earlier run): compatible columns are kept
//! as they are, a column of the same name that cannot hold the value (an
//! integer `mattermost_token`, a `NOT NULL` one) stops it with
//! [`StoreError::Schema`], and so does a missing table. The columns it adds
//! carry a marker (a column comment on PostgreSQL and MySQL, an SQL comment
//! in the column definition on SQLite). Reverting drops only marked
//! columns: a `mattermost_token` column that the host had before (and its
//! tokens) survives a revert.
//!
//! **`add_unique_mattermost_user_id_index`** ([`UNIQUE_INDEX_MIGRATION_NAME`])
//! runs `CREATE UNIQUE INDEX <table>_mattermost_user_id_unique ON <table>
//! (mattermost_user_id)` ([`TokenMigrations::index_name`]: the table's name
//! without its schema, lowercased; its start and a hash when the name
//! would exceed 63 characters). A Mattermost user is then linked to one
//! host user at most, enforced by the database: two app users sharing one
//! Mattermost account could each act as the other, and two concurrent syncs
//! could otherwise race into exactly that. Writes that would link a second
//! row fail with [`StoreError::AlreadyLinked`] and change nothing. Users
//! without a link keep `NULL`, which a unique index lets repeat on
//! PostgreSQL, MySQL/MariaDB and SQLite.
//!
//! - If rows already share a `mattermost_user_id`, the migration stops with
//!   [`StoreError::Schema`], creates nothing and is not recorded: the
//!   message says how many ids are linked more than once and gives the
//!   query that finds them. Unlink all but the right row of each (set the
//!   token columns to `NULL`; the next sync links those users again), then
//!   run it again. The expiry column migration, which does not need the
//!   index, is still applied by [`TokenMigrations::run`] and the store's
//!   `migrate()`, so that the store keeps working meanwhile.
//! - A unique index on `mattermost_user_id` alone that is already there
//!   (the host's, the sqlx adapter's) is kept and none is added. Another
//!   index of the same name stops the migration with
//!   [`StoreError::Schema`].
//! - The index carries a marker (an index comment on PostgreSQL and MySQL,
//!   an SQL comment in its definition on SQLite); reverting drops it only
//!   when it is marked.
//! - A host `TEXT` column on MySQL is indexed by its first 191 characters
//!   (an id has 26).
//!
//! **`add_mattermost_token_expires_at_column`**
//! ([`EXPIRY_MIGRATION_NAME`]) adds the nullable column that holds when
//! the stored token expires, in milliseconds since the Unix epoch (`NULL`
//! for a token that does not expire): `mattermost_token_expires_at`
//! ([`DEFAULT_EXPIRY_COLUMN`]) or the name given to
//! [`TokenMigrations::with_expiry_column`]. Like the first migration it
//! reads the table's columns first:
//!
//! | database | statements |
//! | --- | --- |
//! | PostgreSQL | `ALTER TABLE <table> ADD COLUMN IF NOT EXISTS <column> BIGINT NULL`, then `COMMENT ON COLUMN <table>.<column> IS '<marker>'` |
//! | MySQL, MariaDB | `ALTER TABLE <table> ADD COLUMN <column> BIGINT NULL COMMENT '<marker>'` |
//! | SQLite | `ALTER TABLE <table> ADD COLUMN <column> INTEGER /* <marker> */` |
//!
//! - A nullable column of that name that holds a 64-bit integer
//!   (PostgreSQL `bigint`, MySQL signed `BIGINT`, SQLite `INTEGER`
//!   affinity) is kept as it is; one of another type, or `NOT NULL`, stops
//!   the migration with [`StoreError::Schema`] before it changes anything.
//! - The column carries a marker of its own (as the token columns do);
//!   reverting drops it only when it is marked, and before the index and
//!   the token columns.
//!
//! A store that ran the first migrations with an earlier version of this
//! crate gets the missing ones (the index, the expiry column) from its next
//! `migrate()`; the rows it holds stay as they are, with no expiry.
//!
//! # Versions next to the host's own
//!
//! diesel records applied migrations by version in
//! `__diesel_schema_migrations(version VARCHAR(50))`, the table the host's
//! own migrations (and the `diesel` CLI) use too. The columns migration's
//! version is `00000000000000_mattermost_tokens_1_<table>`, the index
//! migration's `00000000000000_mattermost_tokens_3_<table>` and the expiry
//! column migration's `00000000000000_mattermost_tokens_4_<table>` (the
//! table lowercased; a hash of it when the version would exceed 50
//! characters; `2` is the code table's migration):
//!
//! - they cannot collide with a host's version, which diesel derives from a
//!   migration directory name and is digits only (`20261126103000`); with
//!   the table in them, stores on two tables each get their migrations;
//! - the index migration's sorts after the columns migration's of the same
//!   table, and the expiry column migration's after both, so diesel (which
//!   runs pending migrations in version order) runs them in that order;
//! - they sort before every host version (14 zeros, then `_`), so the
//!   host's `diesel migration revert` and `redo`, which act on the latest
//!   applied version, never pick them (they would fail on a version missing
//!   from the host's directory). Only diesel's own
//!   `00000000000000_diesel_initial_setup` sorts before them;
//! - `diesel migration run` ignores applied versions it does not know, so
//!   host tooling keeps working. `diesel migration revert --all` would stop
//!   at these versions: revert them first with [`TokenMigrations::revert`]
//!   or the store's `revert_migration()`.
//!
//! # Running it
//!
//! - From the store: `store.migrate().await` (any tokio runtime; it runs
//!   diesel's blocking harness on tokio's blocking pool), reverted by
//!   `store.revert_migration().await`.
//! - Through diesel-async's `AsyncMigrationHarness` (which uses
//!   `block_in_place`: multi-thread tokio runtime only) over an owned
//!   connection or a deadpool object: `migrations.run(&mut harness)`.
//! - On a plain sync diesel connection: `migrations.run(&mut conn)` with a
//!   `diesel::SqliteConnection`. diesel's sync `PgConnection` and
//!   `MysqlConnection` need libpq and libmysqlclient, which this crate does
//!   not link; on those databases use an
//!   `AsyncConnectionWrapper<AsyncPgConnection>` (diesel-async's sync
//!   `diesel::Connection` over the pure-Rust driver) where a sync
//!   connection is needed.
//! - With any other diesel harness: it is an ordinary [`MigrationSource`],
//!   e.g. `harness.run_pending_migrations(migrations)`.

use std::fmt;

use diesel::connection::BoxableConnection;
use diesel::migration::{
    Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion,
};
use diesel_migrations::MigrationHarness;
use mattermost_tokens::StoreError;
use mattermost_tokens::store::{validate_column_name, validate_identifier};

use crate::error::{ErrorContext, SchemaProblem, migration_error};

/// The columns migration's name, shared with the sqlx adapter and the
/// Laravel seed.
pub const MIGRATION_NAME: &str = "add_mattermost_token_to_users_table";

/// The name of the users table's second migration, the unique index on
/// `mattermost_user_id`.
pub const UNIQUE_INDEX_MIGRATION_NAME: &str = "add_unique_mattermost_user_id_index";

/// The name of the users table's third migration, the column holding when
/// the stored token expires.
pub const EXPIRY_MIGRATION_NAME: &str = "add_mattermost_token_expires_at_column";

/// The default name of the column holding when the stored token expires
/// (milliseconds since the Unix epoch; `NULL` when it does not expire).
pub const DEFAULT_EXPIRY_COLUMN: &str = "mattermost_token_expires_at";

/// Version prefix of the users table migration: sorts before every
/// timestamped version; `1` numbers this crate's first migration (the code
/// table's is `2`, see [`CodeMigrations`]).
const VERSION_PREFIX: &str = "00000000000000_mattermost_tokens_1";

/// Version prefix of the unique index migration (`3`: this crate's third
/// migration): sorts after the column migration of the same table, before
/// every timestamped version.
const INDEX_VERSION_PREFIX: &str = "00000000000000_mattermost_tokens_3";

/// Version prefix of the expiry column migration (`4`: this crate's fourth
/// migration): sorts after the index migration of the same table, before
/// every timestamped version.
const EXPIRY_VERSION_PREFIX: &str = "00000000000000_mattermost_tokens_4";

/// The column the unique index covers.
pub(crate) const LINK_COLUMN: &str = "mattermost_user_id";

/// Suffix of the unique index's name.
const INDEX_SUFFIX: &str = "_mattermost_user_id_unique";

/// The longest index name PostgreSQL keeps (MySQL allows 64).
const MAX_INDEX_NAME_LEN: usize = 63;

/// The width of diesel's `version` column on PostgreSQL and MySQL.
const MAX_VERSION_LEN: usize = 50;

/// Marks the columns this migration added, so that reverting drops only
/// those.
pub(crate) const MARKER: &str = "mattermost-tokens: added by add_mattermost_token_to_users_table";

/// Marks the unique index this crate created (an index comment on
/// PostgreSQL and MySQL, an SQL comment in its definition on SQLite), so
/// that reverting drops only that one.
pub(crate) const INDEX_MARKER: &str =
    "mattermost-tokens: added by add_unique_mattermost_user_id_index";

/// Marks the expiry column this crate added, so that reverting drops only
/// that one.
pub(crate) const EXPIRY_MARKER: &str =
    "mattermost-tokens: added by add_mattermost_token_expires_at_column";

pub(crate) use sealed::{ColumnKind, ColumnSpec, ExistingColumn, ExistingIndex};

/// The columns, in the order they are added.
pub(crate) const COLUMNS: [ColumnSpec; 3] = [
    ColumnSpec {
        name: "mattermost_user_id",
        kind: ColumnKind::Id,
    },
    ColumnSpec {
        name: "mattermost_token",
        kind: ColumnKind::Token,
    },
    ColumnSpec {
        name: "mattermost_token_id",
        kind: ColumnKind::Id,
    },
];

/// The backends the migration supports: `diesel::pg::Pg`,
/// `diesel::mysql::Mysql` and `diesel::sqlite::Sqlite`. Sealed.
pub trait MigrationBackend: sealed::Backend {}

/// Sealed: public items in a private module, so the backends' trait can
/// name them without making them part of the crate's API.
pub(crate) mod sealed {
    use diesel::connection::BoxableConnection;

    /// What a column holds.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum ColumnKind {
        /// A 26-character Mattermost id.
        Id,
        /// A token value: 26 characters plain, about 100 when encrypted.
        Token,
    }

    impl ColumnKind {
        /// The shortest length that can hold the value.
        pub fn min_len(self) -> u32 {
            26
        }

        /// A length below which encrypted tokens would not fit.
        pub fn comfortable_len(self) -> u32 {
            match self {
                ColumnKind::Id => 26,
                ColumnKind::Token => 255,
            }
        }

        pub fn description(self) -> &'static str {
            match self {
                ColumnKind::Id => "a 26-character Mattermost id (text)",
                ColumnKind::Token => "a token value (text)",
            }
        }
    }

    /// One of the three columns.
    #[derive(Clone, Copy, Debug)]
    pub struct ColumnSpec {
        pub name: &'static str,
        pub kind: ColumnKind,
    }

    /// A column as the database describes it.
    #[derive(Clone, Debug)]
    pub struct ExistingColumn {
        pub name: String,
        /// The declared type as the database spells it (for messages and
        /// compatibility checks).
        pub sql_type: String,
        pub nullable: bool,
        /// The marker it carries, if any: its comment on PostgreSQL and
        /// MySQL; on SQLite, the marker of this crate found in its
        /// definition.
        pub marker: Option<String>,
    }

    impl ExistingColumn {
        /// Whether the migration that marks its columns with `marker` added
        /// this one.
        pub fn carries(&self, marker: &str) -> bool {
            self.marker.as_deref() == Some(marker)
        }
    }

    /// An index of a table as the database describes it.
    #[derive(Clone, Debug)]
    pub struct ExistingIndex {
        /// Its name.
        pub name: String,
        /// The name `DROP INDEX` takes (schema-qualified where needed).
        pub qualified: String,
        /// Unique over every row: not partial, not a short prefix.
        pub unique: bool,
        /// Its key columns in order; an expression is an empty string.
        pub columns: Vec<String>,
        /// Whether this crate created it (it carries the index marker).
        pub ours: bool,
    }

    /// What each backend's migration SQL looks like.
    pub trait Backend: diesel::backend::Backend + 'static {
        /// The database's name in messages.
        const NAME: &'static str;

        /// Whether declared lengths (`VARCHAR(26)`) limit what a column
        /// holds (SQLite ignores them).
        const ENFORCES_LENGTH: bool = true;

        /// The table's columns; empty when there is no such table.
        fn existing_columns(
            conn: &mut dyn BoxableConnection<Self>,
            table: &str,
        ) -> diesel::migration::Result<Vec<ExistingColumn>>;

        /// Whether an existing column's type can hold what `spec` holds.
        fn compatible(column: &ExistingColumn, spec: &ColumnSpec) -> bool;

        /// Statements adding `specs` (with the marker) to `table`.
        fn add_columns(table: &str, specs: &[ColumnSpec]) -> Vec<String>;

        /// Statements dropping `columns` from `table`.
        fn drop_columns(table: &str, columns: &[&str]) -> Vec<String>;

        /// Whether an existing column's type holds a millisecond timestamp
        /// (a signed 64-bit integer).
        fn holds_millis(column: &ExistingColumn) -> bool;

        /// Statements adding the nullable expiry column `column` (with the
        /// expiry marker) to `table`.
        fn add_expiry_column(table: &str, column: &str) -> Vec<String>;

        /// Statements creating the magic-link code table `table` with its
        /// index `index` on `expires_at`.
        fn create_code_table(table: &str, index: &str) -> Vec<String>;

        /// The indexes of `table`; empty when there is no such table.
        fn existing_indexes(
            conn: &mut dyn BoxableConnection<Self>,
            table: &str,
        ) -> diesel::migration::Result<Vec<ExistingIndex>>;

        /// The single `BIGINT` value `n` of query `sql` (on `table`, named
        /// in errors).
        fn count(
            conn: &mut dyn BoxableConnection<Self>,
            table: &str,
            sql: &str,
        ) -> diesel::migration::Result<i64>;

        /// Statements creating the unique index `index` (with the index
        /// marker) on `table`'s column `column`.
        fn create_unique_index(table: &str, index: &str, column: &ExistingColumn) -> Vec<String>;

        /// Statements dropping `index` of `table`.
        fn drop_index(table: &str, index: &ExistingIndex) -> Vec<String>;
    }
}

/// The migrations this crate ships, rendered for one users table; a diesel
/// [`MigrationSource`] for PostgreSQL, MySQL and SQLite alike.
///
/// See the [module documentation](self) for how versions are chosen and the
/// ways to run it. On a plain sync SQLite connection:
///
/// ```
/// use mattermost_tokens_diesel::TokenMigrations;
/// use mattermost_tokens_diesel::diesel::{Connection, SqliteConnection, connection::SimpleConnection};
///
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// conn.batch_execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")?;
/// let migrations = TokenMigrations::new("users")?;
/// assert_eq!(migrations.index_name(), "users_mattermost_user_id_unique");
/// assert_eq!(migrations.expiry_column(), "mattermost_token_expires_at");
/// migrations.run(&mut conn)?; // the columns, the unique index, the expiry column
/// migrations.run(&mut conn)?; // already applied: nothing to do
/// migrations.revert(&mut conn)?; // the expiry column, the index, then the columns
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMigrations {
    table: String,
    expiry_column: String,
}

impl Default for TokenMigrations {
    /// The migrations for table `users`.
    fn default() -> Self {
        Self::for_validated_table("users")
    }
}

impl TokenMigrations {
    /// The migrations for `table` (`users`, `app_users`, `schema.users`).
    /// Fails with [`StoreError::Config`] when it is not a plain identifier.
    pub fn new(table: impl Into<String>) -> Result<Self, StoreError> {
        let table = table.into();
        validate_identifier(&table)?;
        Ok(Self::for_validated_table(&table))
    }

    pub(crate) fn for_validated_table(table: &str) -> Self {
        Self::for_validated(table, DEFAULT_EXPIRY_COLUMN)
    }

    /// `table` and `expiry_column` validated already.
    pub(crate) fn for_validated(table: &str, expiry_column: &str) -> Self {
        Self {
            table: table.to_owned(),
            expiry_column: expiry_column.to_owned(),
        }
    }

    /// Uses another name than [`DEFAULT_EXPIRY_COLUMN`] for the column
    /// holding when the token expires (the store's
    /// [`with_expiry_column`](crate::DieselTokenStore::with_expiry_column)
    /// sets the same). Fails with [`StoreError::Config`] when `name` is not
    /// a plain SQL identifier, is a qualified name, or names one of the
    /// three token columns.
    pub fn with_expiry_column(mut self, name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        validate_expiry_column(&name)?;
        self.expiry_column = name;
        Ok(self)
    }

    /// The table the migrations alter.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The column holding when the token expires.
    pub fn expiry_column(&self) -> &str {
        &self.expiry_column
    }

    /// The version the column migration ([`MIGRATION_NAME`]) is recorded
    /// under in `__diesel_schema_migrations`.
    pub fn version(&self) -> String {
        version_for(VERSION_PREFIX, &self.table)
    }

    /// The version the unique index migration
    /// ([`UNIQUE_INDEX_MIGRATION_NAME`]) is recorded under:
    /// `00000000000000_mattermost_tokens_3_<table>`, after
    /// [`version`](Self::version) and before every host version.
    pub fn index_version(&self) -> String {
        version_for(INDEX_VERSION_PREFIX, &self.table)
    }

    /// The version the expiry column migration
    /// ([`EXPIRY_MIGRATION_NAME`]) is recorded under:
    /// `00000000000000_mattermost_tokens_4_<table>`, after
    /// [`index_version`](Self::index_version) and before every host
    /// version.
    pub fn expiry_version(&self) -> String {
        version_for(EXPIRY_VERSION_PREFIX, &self.table)
    }

    /// All versions, in the order the migrations run.
    pub fn versions(&self) -> Vec<String> {
        vec![self.version(), self.index_version(), self.expiry_version()]
    }

    /// The name of the unique index on `mattermost_user_id`:
    /// `<table>_mattermost_user_id_unique` (the table's name lowercased,
    /// without its schema), its start and a hash of the name when that
    /// would exceed 63 characters.
    pub fn index_name(&self) -> String {
        unique_index_name(&self.table)
    }

    /// Runs the migrations that `harness` has not applied yet (none when
    /// they all were), in order: the token columns, the unique index, then
    /// the expiry column.
    /// `harness` is a diesel connection with migration support
    /// (`diesel::SqliteConnection`, diesel-async's `AsyncConnectionWrapper`)
    /// or diesel-async's `AsyncMigrationHarness`.
    ///
    /// Fails with [`StoreError::Schema`] when rows already share a
    /// `mattermost_user_id` (the index is not created then; the message
    /// says how many ids and how to find them), or when the table has a
    /// column of one of the names whose type cannot hold the value.
    ///
    /// The expiry column does not need the index: when the index migration
    /// fails with [`StoreError::Schema`] after the token columns are in
    /// place, the expiry column migration is still applied (and recorded)
    /// before the error is returned, so that the store keeps working while
    /// the duplicates are resolved. (diesel's own
    /// `run_pending_migrations` with this source stops at the index.)
    pub fn run<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        H: MigrationHarness<DB> + ?Sized,
    {
        let err = match run_source(self.clone(), &self.table, harness) {
            Ok(()) => return Ok(()),
            Err(err @ StoreError::Schema { .. }) => err,
            Err(err) => return Err(err),
        };
        let Ok(applied) = harness.applied_migrations() else {
            return Err(err);
        };
        let has = |version: String| applied.contains(&MigrationVersion::from(version));
        if has(self.version())
            && !has(self.index_version())
            && !has(self.expiry_version())
            && let Err(e) = harness.run_migration(&self.expiry_migration())
        {
            tracing::warn!(
                table = %self.table,
                error = %migration_error(e, cx::<DB>(&self.table)),
                "the token expiry column could not be added either"
            );
        }
        Err(err)
    }

    /// Reverts the applied migrations of this table, newest first (none when
    /// none was applied): drops the expiry column if this crate added it,
    /// the unique index if this crate created it, then the token columns
    /// the migration added.
    pub fn revert<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        H: MigrationHarness<DB> + ?Sized,
    {
        revert_source(self, &self.table, harness)
    }
}

/// Runs the pending migrations of `source` (on `table`).
fn run_source<DB, H, S>(source: S, table: &str, harness: &mut H) -> Result<(), StoreError>
where
    DB: MigrationBackend,
    H: MigrationHarness<DB> + ?Sized,
    S: MigrationSource<DB>,
{
    harness
        .run_pending_migrations(source)
        .map(|_| ())
        .map_err(|e| migration_error(e, cx::<DB>(table)))
}

/// Reverts the applied migrations of `source` (on `table`), newest first.
fn revert_source<DB, H, S>(source: &S, table: &str, harness: &mut H) -> Result<(), StoreError>
where
    DB: MigrationBackend,
    H: MigrationHarness<DB> + ?Sized,
    S: MigrationSource<DB>,
{
    let cx = cx::<DB>(table);
    let applied = harness
        .applied_migrations()
        .map_err(|e| migration_error(e, cx))?;
    let ours = source.migrations().map_err(|e| migration_error(e, cx))?;
    for m in ours.iter().rev() {
        if applied.contains(&m.name().version()) {
            harness
                .revert_migration(&**m)
                .map_err(|e| migration_error(e, cx))?;
        }
    }
    Ok(())
}

fn cx<DB: MigrationBackend>(table: &str) -> ErrorContext<'_> {
    ErrorContext {
        backend: DB::NAME,
        table,
    }
}

impl<DB: MigrationBackend> MigrationSource<DB> for TokenMigrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        let version = self.version();
        let index_version = self.index_version();
        Ok(vec![
            Box::new(AddTokenColumns {
                table: self.table.clone(),
                name: format!("{version}_{MIGRATION_NAME}"),
                version,
            }),
            Box::new(AddUniqueIndex {
                table: self.table.clone(),
                name: format!("{index_version}_{UNIQUE_INDEX_MIGRATION_NAME}"),
                version: index_version,
            }),
            Box::new(self.expiry_migration()),
        ])
    }
}

impl TokenMigrations {
    /// The expiry column migration.
    fn expiry_migration(&self) -> AddExpiryColumn {
        let version = self.expiry_version();
        AddExpiryColumn {
            table: self.table.clone(),
            column: self.expiry_column.clone(),
            name: format!("{version}_{EXPIRY_MIGRATION_NAME}"),
            version,
        }
    }
}

/// Checks a configured expiry column name: a plain identifier (no
/// `schema.` prefix) that is not one of the token columns.
pub(crate) fn validate_expiry_column(name: &str) -> Result<(), StoreError> {
    validate_column_name(name)?;
    if COLUMNS.iter().any(|c| c.name.eq_ignore_ascii_case(name)) {
        return Err(StoreError::Config(format!(
            "expiry column {name:?} is one of the token columns; choose another name"
        )));
    }
    Ok(())
}

fn version_for(prefix: &str, table: &str) -> String {
    let table = table.to_ascii_lowercase();
    let version = format!("{prefix}_{table}");
    if version.len() <= MAX_VERSION_LEN {
        return version;
    }
    // '#' cannot appear in a table name, so a hashed version never equals
    // a literal one.
    format!("{prefix}_#{:012x}", fnv1a(&table) & 0xffff_ffff_ffff)
}

/// FNV-1a: stable across builds and platforms, unlike std's hasher.
fn fnv1a(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The name of the unique index on `mattermost_user_id` of `table`: the
/// table's name (lowercased, without its schema, so that `users` and
/// `public.users` agree) and a suffix; when that would exceed 63
/// characters, the name's start, a hash of the whole name and the suffix.
pub(crate) fn unique_index_name(table: &str) -> String {
    let name = table
        .rsplit('.')
        .next()
        .unwrap_or(table)
        .to_ascii_lowercase();
    if name.len() + INDEX_SUFFIX.len() <= MAX_INDEX_NAME_LEN {
        return format!("{name}{INDEX_SUFFIX}");
    }
    // `_` and 8 hex digits. Identifiers are ASCII: byte slicing is safe.
    let keep = MAX_INDEX_NAME_LEN - INDEX_SUFFIX.len() - 9;
    format!(
        "{}_{:08x}{INDEX_SUFFIX}",
        &name[..keep],
        fnv1a(&name) & 0xffff_ffff
    )
}

/// The query counting the `mattermost_user_id` values that more than one
/// row of `table` holds, as `n`.
fn duplicate_links_sql(table: &str) -> String {
    format!(
        "SELECT COUNT(*) AS n FROM (SELECT {LINK_COLUMN} FROM {table} \
         WHERE {LINK_COLUMN} IS NOT NULL GROUP BY {LINK_COLUMN} HAVING COUNT(*) > 1) mmt_duplicates"
    )
}

/// Names a migration struct (fields `name` and `version`) for diesel: shown
/// by its name, versioned by its version, and run in a transaction (the
/// default metadata). A transaction makes each migration all or nothing
/// where the database has transactional DDL (PostgreSQL, SQLite); for the
/// unique index, on PostgreSQL the index build also blocks writes to the
/// table until it commits, so no duplicate can slip in between the check
/// and the index.
macro_rules! named_migrations {
    ($($migration:ty),+) => {$(
        impl fmt::Display for $migration {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.name)
            }
        }

        impl MigrationName for $migration {
            fn version(&self) -> MigrationVersion<'_> {
                MigrationVersion::from(self.version.as_str())
            }
        }

        impl MigrationMetadata for $migration {}
    )+};
}

named_migrations!(
    AddTokenColumns,
    AddUniqueIndex,
    AddExpiryColumn,
    CreateCodeTable
);

/// The first migration: adds `mattermost_user_id`, `mattermost_token` and
/// `mattermost_token_id` where missing.
struct AddTokenColumns {
    table: String,
    version: String,
    name: String,
}

impl<DB: MigrationBackend> Migration<DB> for AddTokenColumns {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        let existing = DB::existing_columns(conn, &self.table)?;
        if existing.is_empty() {
            return Err(Box::new(SchemaProblem::MissingTable {
                table: self.table.clone(),
            }));
        }
        let mut missing = Vec::new();
        for spec in COLUMNS {
            let Some(col) = find(&existing, spec.name) else {
                missing.push(spec);
                continue;
            };
            if !DB::compatible(col, &spec) {
                return Err(Box::new(SchemaProblem::ColumnClash {
                    table: self.table.clone(),
                    column: spec.name.to_owned(),
                    found: col.sql_type.clone(),
                    expected: spec.kind.description(),
                }));
            }
            if !col.nullable {
                return Err(Box::new(SchemaProblem::NotNullable {
                    table: self.table.clone(),
                    column: spec.name.to_owned(),
                }));
            }
            if DB::ENFORCES_LENGTH
                && declared_len(&col.sql_type).is_some_and(|n| n < spec.kind.comfortable_len())
            {
                tracing::warn!(
                    table = %self.table,
                    column = spec.name,
                    sql_type = %col.sql_type,
                    "existing column is short: encrypted tokens (about 100 characters) will not fit"
                );
            }
        }
        if missing.is_empty() {
            tracing::info!(table = %self.table, "mattermost token columns already present");
            return Ok(());
        }
        for statement in DB::add_columns(&self.table, &missing) {
            conn.batch_execute(&statement)?;
        }
        tracing::info!(
            table = %self.table,
            added = ?missing.iter().map(|s| s.name).collect::<Vec<_>>(),
            "added mattermost token columns"
        );
        Ok(())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        let existing = DB::existing_columns(conn, &self.table)?;
        if existing.is_empty() {
            return Err(Box::new(SchemaProblem::MissingTable {
                table: self.table.clone(),
            }));
        }
        let added_by_us = |ours: bool| -> Vec<&'static str> {
            COLUMNS
                .iter()
                .filter(|s| find(&existing, s.name).is_some_and(|c| c.carries(MARKER) == ours))
                .map(|s| s.name)
                .collect()
        };
        let (ours, kept) = (added_by_us(true), added_by_us(false));
        if !kept.is_empty() {
            tracing::info!(
                table = %self.table,
                kept = ?kept,
                "keeping mattermost token columns that existed before the migration"
            );
        }
        if !ours.is_empty() {
            for statement in DB::drop_columns(&self.table, &ours) {
                conn.batch_execute(&statement)?;
            }
        }
        Ok(())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn MigrationName {
        self
    }
}

// ---------------------------------------------------------------------------
// The unique index on mattermost_user_id.

/// The second migration: a unique index on `mattermost_user_id`, so that a
/// Mattermost user is linked to one host user at most, whatever races the
/// writers run (NULLs may repeat on every supported database).
struct AddUniqueIndex {
    table: String,
    version: String,
    name: String,
}

impl AddUniqueIndex {
    fn index_name(&self) -> diesel::migration::Result<String> {
        let index = unique_index_name(&self.table);
        validate_identifier(&index)
            .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
        Ok(index)
    }
}

/// Whether `index` makes `mattermost_user_id` unique on its own.
fn enforces_link(index: &ExistingIndex) -> bool {
    index.unique && index.columns.len() == 1 && index.columns[0].eq_ignore_ascii_case(LINK_COLUMN)
}

impl<DB: MigrationBackend> Migration<DB> for AddUniqueIndex {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        let index = self.index_name()?;
        let columns = DB::existing_columns(conn, &self.table)?;
        if columns.is_empty() {
            return Err(Box::new(SchemaProblem::MissingTable {
                table: self.table.clone(),
            }));
        }
        let Some(column) = find(&columns, LINK_COLUMN) else {
            return Err(Box::new(SchemaProblem::MissingColumn {
                table: self.table.clone(),
                column: LINK_COLUMN,
            }));
        };
        let indexes = DB::existing_indexes(conn, &self.table)?;
        if let Some(existing) = indexes.iter().find(|i| enforces_link(i)) {
            tracing::info!(
                table = %self.table,
                index = %existing.name,
                "mattermost_user_id is already unique"
            );
            return Ok(());
        }
        if indexes.iter().any(|i| i.name.eq_ignore_ascii_case(&index)) {
            return Err(Box::new(SchemaProblem::IndexClash {
                table: self.table.clone(),
                index,
            }));
        }
        let duplicates = DB::count(conn, &self.table, &duplicate_links_sql(&self.table))?;
        if duplicates > 0 {
            return Err(Box::new(SchemaProblem::DuplicateLinks {
                table: self.table.clone(),
                count: Some(duplicates),
            }));
        }
        for statement in DB::create_unique_index(&self.table, &index, column) {
            conn.batch_execute(&statement).map_err(|e| match e {
                // A writer linked a second row between the count and the
                // index (MySQL, SQLite: the index build is not atomic with
                // the check there).
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) => Box::new(SchemaProblem::DuplicateLinks {
                    table: self.table.clone(),
                    count: None,
                }) as Box<dyn std::error::Error + Send + Sync>,
                other => Box::new(other),
            })?;
        }
        tracing::info!(table = %self.table, index = %index, "added unique index on mattermost_user_id");
        Ok(())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        let index = self.index_name()?;
        let indexes = DB::existing_indexes(conn, &self.table)?;
        let Some(existing) = indexes.iter().find(|i| i.name.eq_ignore_ascii_case(&index)) else {
            return Ok(());
        };
        if !existing.ours {
            tracing::info!(
                table = %self.table,
                index = %existing.name,
                "keeping an index on mattermost_user_id that this migration did not create"
            );
            return Ok(());
        }
        for statement in DB::drop_index(&self.table, existing) {
            conn.batch_execute(&statement)?;
        }
        tracing::info!(table = %self.table, index = %index, "dropped unique index on mattermost_user_id");
        Ok(())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn MigrationName {
        self
    }
}

// ---------------------------------------------------------------------------
// The token expiry column.

/// The third migration: the nullable column holding when the stored token
/// expires (milliseconds since the Unix epoch), under its configured name.
struct AddExpiryColumn {
    table: String,
    column: String,
    version: String,
    name: String,
}

impl AddExpiryColumn {
    /// The table's columns; an error when there is no such table.
    fn existing<DB: MigrationBackend>(
        &self,
        conn: &mut dyn BoxableConnection<DB>,
    ) -> diesel::migration::Result<Vec<ExistingColumn>> {
        // A name given to `TokenMigrations` is validated there; checked
        // again because it is written into SQL here.
        validate_expiry_column(&self.column)
            .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { Box::new(e) })?;
        let existing = DB::existing_columns(conn, &self.table)?;
        if existing.is_empty() {
            return Err(Box::new(SchemaProblem::MissingTable {
                table: self.table.clone(),
            }));
        }
        Ok(existing)
    }
}

impl<DB: MigrationBackend> Migration<DB> for AddExpiryColumn {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        let existing = self.existing(conn)?;
        if let Some(col) = find(&existing, &self.column) {
            if !DB::holds_millis(col) {
                return Err(Box::new(SchemaProblem::ColumnClash {
                    table: self.table.clone(),
                    column: self.column.clone(),
                    found: col.sql_type.clone(),
                    expected: "a millisecond timestamp (a 64-bit integer, BIGINT)",
                }));
            }
            if !col.nullable {
                return Err(Box::new(SchemaProblem::NotNullable {
                    table: self.table.clone(),
                    column: self.column.clone(),
                }));
            }
            tracing::info!(
                table = %self.table,
                column = %self.column,
                "mattermost token expiry column already present"
            );
            return Ok(());
        }
        for statement in DB::add_expiry_column(&self.table, &self.column) {
            conn.batch_execute(&statement)?;
        }
        tracing::info!(
            table = %self.table,
            column = %self.column,
            "added mattermost token expiry column"
        );
        Ok(())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        let existing = self.existing(conn)?;
        let Some(col) = find(&existing, &self.column) else {
            return Ok(());
        };
        if !col.carries(EXPIRY_MARKER) {
            tracing::info!(
                table = %self.table,
                column = %self.column,
                "keeping a token expiry column that existed before the migration"
            );
            return Ok(());
        }
        for statement in DB::drop_columns(&self.table, &[self.column.as_str()]) {
            conn.batch_execute(&statement)?;
        }
        tracing::info!(
            table = %self.table,
            column = %self.column,
            "dropped mattermost token expiry column"
        );
        Ok(())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn MigrationName {
        self
    }
}

/// One key column of an index, as a backend reads them: rows ordered by
/// index, then by position.
#[derive(Debug)]
pub(crate) struct IndexColumnRow {
    pub name: String,
    pub qualified: String,
    pub unique: bool,
    /// `None` for an expression.
    pub column: Option<String>,
    pub ours: bool,
}

/// Groups the rows of each index into one [`ExistingIndex`].
pub(crate) fn group_indexes(rows: impl IntoIterator<Item = IndexColumnRow>) -> Vec<ExistingIndex> {
    let mut out: Vec<ExistingIndex> = Vec::new();
    for row in rows {
        let column = row.column.unwrap_or_default();
        match out.last_mut() {
            Some(last) if last.name == row.name => {
                last.columns.push(column);
                last.unique &= row.unique;
            }
            _ => out.push(ExistingIndex {
                name: row.name,
                qualified: row.qualified,
                unique: row.unique,
                columns: vec![column],
                ours: row.ours,
            }),
        }
    }
    out
}

/// A count read by [`sealed::Backend::count`].
#[derive(diesel::QueryableByName, Debug)]
pub(crate) struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    pub n: i64,
}

// ---------------------------------------------------------------------------
// The magic-link code table.

/// The code table migration's name, shared with the sqlx adapter.
pub const CODES_MIGRATION_NAME: &str = "create_mattermost_magic_link_codes_table";

/// Version prefix of the code table migration (`2`: this crate's second
/// migration).
const CODES_VERSION_PREFIX: &str = "00000000000000_mattermost_tokens_2";

/// The code table's columns, in order.
pub(crate) const CODE_COLUMNS: [&str; 4] =
    ["code_hash", "host_user_id", "host_user_kind", "expires_at"];

/// The migration that creates the magic-link code table
/// ([`DieselCodeStore`](crate::DieselCodeStore)), rendered for one table
/// name; a diesel [`MigrationSource`] for PostgreSQL, MySQL and SQLite
/// alike, run the same ways as [`TokenMigrations`].
///
/// One migration, [`CODES_MIGRATION_NAME`]. Running it creates the table
/// and an index on `expires_at`; a table of that name that already has the
/// code table's columns (made by an earlier run, or by the sqlx adapter) is
/// kept as it is, and one without them (a table of the host's) stops it with
/// [`StoreError::Schema`], changing nothing. Reverting drops the table
/// (every outstanding link stops working), again only when it has the code
/// table's columns.
///
/// Its version is `00000000000000_mattermost_tokens_2` for the default table
/// `mattermost_magic_link_codes`, and
/// `00000000000000_mattermost_tokens_2_<table>` for another (a hash of the
/// name when that would exceed 50 characters): like the users table
/// migration's, it cannot collide with a host's version and sorts before
/// all of them (see the [module documentation](self)).
///
/// ```
/// use mattermost_tokens_diesel::CodeMigrations;
/// use mattermost_tokens_diesel::diesel::{Connection, SqliteConnection};
///
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// let migrations = CodeMigrations::default();
/// assert_eq!(migrations.version(), "00000000000000_mattermost_tokens_2");
/// migrations.run(&mut conn)?;
/// migrations.run(&mut conn)?; // already applied: nothing to do
/// migrations.revert(&mut conn)?; // drops the table
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CodeMigrations {
    table: String,
}

impl Default for CodeMigrations {
    /// The migration for table
    /// [`DEFAULT_CODES_TABLE`](crate::DEFAULT_CODES_TABLE).
    fn default() -> Self {
        Self::for_validated_table(crate::code_store::DEFAULT_CODES_TABLE)
    }
}

impl CodeMigrations {
    /// The migration for code table `table` (`mattermost_magic_link_codes`,
    /// `app.login_codes`). Fails with [`StoreError::Config`] when it is not
    /// a plain identifier.
    pub fn new(table: impl Into<String>) -> Result<Self, StoreError> {
        let table = table.into();
        validate_identifier(&table)?;
        Ok(Self { table })
    }

    pub(crate) fn for_validated_table(table: &str) -> Self {
        Self {
            table: table.to_owned(),
        }
    }

    /// The code table the migration creates.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The version the migration is recorded under in
    /// `__diesel_schema_migrations`.
    pub fn version(&self) -> String {
        if self.table == crate::code_store::DEFAULT_CODES_TABLE {
            CODES_VERSION_PREFIX.to_owned()
        } else {
            version_for(CODES_VERSION_PREFIX, &self.table)
        }
    }

    /// Runs the migration unless `harness` has applied it (see
    /// [`TokenMigrations::run`]).
    pub fn run<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        H: MigrationHarness<DB> + ?Sized,
    {
        run_source(self.clone(), &self.table, harness)
    }

    /// Reverts the migration if `harness` has applied it: drops the code
    /// table.
    pub fn revert<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        H: MigrationHarness<DB> + ?Sized,
    {
        revert_source(self, &self.table, harness)
    }
}

impl<DB: MigrationBackend> MigrationSource<DB> for CodeMigrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        let version = self.version();
        Ok(vec![Box::new(CreateCodeTable {
            table: self.table.clone(),
            name: format!("{version}_{CODES_MIGRATION_NAME}"),
            version,
        })])
    }
}

/// The one code table migration.
struct CreateCodeTable {
    table: String,
    version: String,
    name: String,
}

impl CreateCodeTable {
    /// Whether the table exists; an error when it exists but is not a code
    /// table (a host table that happens to have the name).
    fn existing<DB: MigrationBackend>(
        &self,
        conn: &mut dyn BoxableConnection<DB>,
        reverting: bool,
    ) -> diesel::migration::Result<bool> {
        let existing = DB::existing_columns(conn, &self.table)?;
        if existing.is_empty() {
            return Ok(false);
        }
        for name in CODE_COLUMNS {
            let found = find(&existing, name);
            if !found.is_some_and(|c| code_column_fits(name, &c.sql_type)) {
                return Err(Box::new(SchemaProblem::NotACodeTable {
                    table: self.table.clone(),
                    problem: match found {
                        Some(c) => format!("its column {name} has type {}", c.sql_type),
                        None => format!("it has no column {name}"),
                    },
                    consequence: if reverting {
                        "nothing was dropped"
                    } else {
                        "nothing was changed; configure another table name"
                    },
                }));
            }
        }
        Ok(true)
    }
}

impl<DB: MigrationBackend> Migration<DB> for CreateCodeTable {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        if self.existing(conn, false)? {
            tracing::info!(table = %self.table, "magic-link code table already present");
            return Ok(());
        }
        for statement in DB::create_code_table(&self.table, &code_index_name(&self.table)) {
            conn.batch_execute(&statement)?;
        }
        tracing::info!(table = %self.table, "created magic-link code table");
        Ok(())
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        if self.existing(conn, true)? {
            conn.batch_execute(&format!("DROP TABLE {}", self.table))?;
            tracing::info!(table = %self.table, "dropped magic-link code table");
        }
        Ok(())
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn MigrationName {
        self
    }
}

/// Whether a declared column type (as any of the databases spells it) can
/// hold a code table column. SQLite's untyped columns hold anything.
fn code_column_fits(column: &str, sql_type: &str) -> bool {
    let t = sql_type.to_ascii_lowercase();
    let textual = t.contains("char") || t.contains("text") || t.contains("clob");
    match column {
        "code_hash" => t.is_empty() || (textual && declared_len(&t).is_none_or(|n| n >= 64)),
        "expires_at" => t.is_empty() || t.contains("int"),
        _ => t.is_empty() || textual,
    }
}

/// The name of the index on `expires_at`: the table's name (without its
/// schema) and a suffix, within the 63 characters PostgreSQL keeps and
/// MySQL allows.
pub(crate) fn code_index_name(table: &str) -> String {
    const SUFFIX: &str = "_expires_at_idx";
    let name = table.rsplit('.').next().unwrap_or(table);
    let name: String = name.chars().take(63 - SUFFIX.len()).collect();
    format!("{name}{SUFFIX}")
}

pub(crate) use job::Job;

/// In a private module: nominally public, so the sealed backend trait can
/// name it, yet outside the crate's API.
mod job {
    use super::*;

    /// A migration run by a store on a connection of its own.
    #[derive(Clone, Debug)]
    pub enum Job {
        /// The users table columns.
        Tokens(TokenMigrations),
        /// The code table.
        Codes(CodeMigrations),
    }

    impl Job {
        #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
        pub(crate) fn table_name(&self) -> &str {
            match self {
                Job::Tokens(m) => m.table_name(),
                Job::Codes(m) => m.table_name(),
            }
        }

        /// Runs (or with `revert`, reverts) the migration through `harness`.
        pub(crate) fn apply<DB, H>(&self, harness: &mut H, revert: bool) -> Result<(), StoreError>
        where
            DB: MigrationBackend,
            H: MigrationHarness<DB> + ?Sized,
        {
            match (self, revert) {
                (Job::Tokens(m), false) => m.run(harness),
                (Job::Tokens(m), true) => m.revert(harness),
                (Job::Codes(m), false) => m.run(harness),
                (Job::Codes(m), true) => m.revert(harness),
            }
        }

        /// Runs the job on `conn` after taking the database's session-level
        /// migration lock with `lock_sql`: two app instances starting
        /// together would both find the migration pending; the second waits
        /// here and then finds it applied. The lock goes with the
        /// connection, which is dropped after.
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        pub(crate) fn apply_locked<DB, C>(
            &self,
            conn: C,
            lock_sql: &str,
            backend: &'static str,
            revert: bool,
        ) -> Result<(), StoreError>
        where
            DB: MigrationBackend,
            diesel_async::async_connection_wrapper::AsyncConnectionWrapper<C>:
                From<C> + diesel::connection::SimpleConnection + MigrationHarness<DB>,
        {
            let mut conn =
                diesel_async::async_connection_wrapper::AsyncConnectionWrapper::<C>::from(conn);
            diesel::connection::SimpleConnection::batch_execute(&mut conn, lock_sql).map_err(
                |e| {
                    crate::error::query_error(
                        e,
                        ErrorContext {
                            backend,
                            table: self.table_name(),
                        },
                    )
                },
            )?;
            self.apply(&mut conn, revert)
        }
    }
}

/// Runs `$body` with `$c` bound to the connection behind a
/// `&mut dyn BoxableConnection`, if it is one of the listed types; `None`
/// otherwise. diesel hands migrations only that trait object, and reading
/// the table's columns needs a concrete connection type.
macro_rules! on_concrete_connection {
    ($conn:expr, |$c:ident| $body:expr, [$($(#[$cfg:meta])* $ty:ty),+ $(,)?]) => {{
        let conn = $conn;
        #[allow(clippy::never_loop)]
        loop {
            $(
                $(#[$cfg])*
                if let Some($c) = conn.downcast_mut::<$ty>() {
                    break Some($body);
                }
            )+
            break None;
        }
    }};
}
pub(crate) use on_concrete_connection;

/// The error for a connection type the migration cannot read through.
pub(crate) fn unsupported_connection(table: &str, supported: &'static str) -> SchemaProblem {
    SchemaProblem::UnsupportedConnection {
        table: table.to_owned(),
        supported,
    }
}

fn find<'a>(columns: &'a [ExistingColumn], name: &str) -> Option<&'a ExistingColumn> {
    columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The length in a declared type such as `varchar(26)` or
/// `character varying(255)`.
pub(crate) fn declared_len(sql_type: &str) -> Option<u32> {
    let open = sql_type.find('(')?;
    let close = sql_type[open..].find(')')? + open;
    sql_type[open + 1..close].trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        let v = |t: &str| TokenMigrations::new(t).unwrap().version();
        assert_eq!(v("users"), "00000000000000_mattermost_tokens_1_users");
        assert_eq!(v("Users"), "00000000000000_mattermost_tokens_1_users");
        let long = v("a_rather_long_schema.with_a_long_users_table");
        assert!(long.len() <= MAX_VERSION_LEN, "{long}");
        assert!(long.starts_with("00000000000000_mattermost_tokens_1_#"));
        assert_ne!(long, v("a_rather_long_schema.with_a_long_users_tablf"));
        // Sorts before timestamped versions and after diesel's own setup.
        assert!(v("users").as_str() < "00000000000001");
        assert!(v("users").as_str() < "0001");
        assert!(v("users").as_str() > "00000000000000");
    }

    #[test]
    fn index_versions() {
        let m = TokenMigrations::new("users").unwrap();
        assert_eq!(
            m.index_version(),
            "00000000000000_mattermost_tokens_3_users"
        );
        assert_eq!(
            m.versions(),
            [m.version(), m.index_version(), m.expiry_version()]
        );
        // After the columns, before any host version; never the code
        // table's.
        assert!(m.version() < m.index_version());
        assert!(m.index_version().as_str() < "00000000000001");
        assert_ne!(
            m.index_version(),
            CodeMigrations::new("users").unwrap().version()
        );
        let long = TokenMigrations::new("a_rather_long_schema.with_a_long_users_table").unwrap();
        assert!(long.index_version().len() <= MAX_VERSION_LEN);
        assert!(long.version() < long.index_version());
        let names: Vec<String> =
            <TokenMigrations as MigrationSource<diesel::sqlite::Sqlite>>::migrations(&m)
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
            ]
        );
    }

    #[test]
    fn expiry_versions() {
        let m = TokenMigrations::new("users").unwrap();
        assert_eq!(
            m.expiry_version(),
            "00000000000000_mattermost_tokens_4_users"
        );
        // After the index, before any host version; the column name does
        // not change it.
        assert!(m.index_version() < m.expiry_version());
        assert!(m.expiry_version().as_str() < "00000000000001");
        let custom = m.clone().with_expiry_column("token_expiry").unwrap();
        assert_eq!(custom.expiry_column(), "token_expiry");
        assert_eq!(custom.versions(), m.versions());
        let long = TokenMigrations::new("a_rather_long_schema.with_a_long_users_table").unwrap();
        assert!(long.expiry_version().len() <= MAX_VERSION_LEN);
        assert!(long.index_version() < long.expiry_version());
    }

    #[test]
    fn expiry_column_names() {
        let m = TokenMigrations::default();
        assert_eq!(m.expiry_column(), DEFAULT_EXPIRY_COLUMN);
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
                    m.clone().with_expiry_column(bad),
                    Err(StoreError::Config(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn index_names() {
        assert_eq!(
            unique_index_name("users"),
            "users_mattermost_user_id_unique"
        );
        // The schema is left out (the index lives in the table's schema),
        // the case folded: every spelling of a table gets one name.
        assert_eq!(
            unique_index_name("App.Users"),
            "users_mattermost_user_id_unique"
        );
        let fits = "t".repeat(MAX_INDEX_NAME_LEN - INDEX_SUFFIX.len());
        assert_eq!(unique_index_name(&fits), format!("{fits}{INDEX_SUFFIX}"));
        let long = format!("{fits}x");
        let hashed = unique_index_name(&long);
        assert_eq!(hashed.len(), MAX_INDEX_NAME_LEN, "{hashed}");
        assert!(hashed.ends_with(INDEX_SUFFIX));
        assert_ne!(hashed, unique_index_name(&format!("{fits}y")));
        assert_eq!(hashed, unique_index_name(&long.to_uppercase()));
        for t in ["users", "s.users", long.as_str(), &"a".repeat(63)] {
            assert!(validate_identifier(&unique_index_name(t)).is_ok(), "{t}");
        }
    }

    #[test]
    fn grouping_indexes() {
        let row = |name: &str, unique, column: Option<&str>| IndexColumnRow {
            name: name.into(),
            qualified: format!("s.{name}"),
            unique,
            column: column.map(Into::into),
            ours: false,
        };
        let got = group_indexes([
            row("a", true, Some("mattermost_user_id")),
            row("b", true, Some("mattermost_user_id")),
            row("b", true, Some("email")),
            row("c", false, Some("Mattermost_User_Id")),
            row("d", true, None),
        ]);
        assert_eq!(got.len(), 4);
        assert!(enforces_link(&got[0]));
        assert_eq!(got[1].columns, ["mattermost_user_id", "email"]);
        assert!(!enforces_link(&got[1]));
        assert!(!enforces_link(&got[2]));
        assert_eq!(got[3].columns, [""]);
        assert!(duplicate_links_sql("app.users").contains("FROM app.users "));
    }

    #[test]
    fn code_versions() {
        let v = |t: &str| CodeMigrations::new(t).unwrap().version();
        assert_eq!(
            CodeMigrations::default().version(),
            "00000000000000_mattermost_tokens_2"
        );
        assert_eq!(
            v("login_codes"),
            "00000000000000_mattermost_tokens_2_login_codes"
        );
        let long = v("public.mattermost_magic_link_codes");
        assert!(long.len() <= MAX_VERSION_LEN, "{long}");
        assert!(long.starts_with("00000000000000_mattermost_tokens_2_#"));
        // Never one of the users table migration's versions.
        assert_ne!(v("users"), TokenMigrations::new("users").unwrap().version());
        assert!(v("x").as_str() < "00000000000001");
        assert_eq!(code_index_name("app.codes"), "codes_expires_at_idx");
        assert_eq!(code_index_name(&"c".repeat(63)).len(), 63);
    }

    #[test]
    fn code_column_types() {
        assert!(code_column_fits("code_hash", "character varying(64)"));
        assert!(code_column_fits("code_hash", "CHAR(64)"));
        assert!(code_column_fits("code_hash", "text"));
        assert!(!code_column_fits("code_hash", "varchar(32)"));
        assert!(!code_column_fits("code_hash", "bigint"));
        assert!(code_column_fits("expires_at", "bigint(20)"));
        assert!(!code_column_fits("expires_at", "timestamp"));
        assert!(code_column_fits("host_user_kind", "char(1)"));
    }

    #[test]
    fn lengths() {
        assert_eq!(declared_len("varchar(26)"), Some(26));
        assert_eq!(declared_len("character varying(255)"), Some(255));
        assert_eq!(declared_len("text"), None);
    }
}
