//! The migration that adds the token columns to the host's users table:
//! [`TokenMigrations`].
//!
//! # One migration, rendered for the configured table
//!
//! The table name is configurable, so the migration is not a static
//! `embed_migrations!` directory: [`TokenMigrations`] implements diesel's
//! [`MigrationSource`] itself and renders the SQL for its table (the default
//! is `users`). It is one migration, named
//! `add_mattermost_token_to_users_table` like the sqlx adapter's and the
//! Laravel seed's. Before it alters anything it reads the table's columns,
//! so it is safe on a table that already has some or all of the columns
//! (from the Laravel migration, from the sqlx adapter, from an earlier run):
//! compatible columns are kept as they are, a column of the same name that
//! cannot hold the value (an integer `mattermost_token`, a `NOT NULL` one)
//! stops it with [`StoreError::Schema`], and so does a missing table.
//!
//! The columns it adds carry a marker (a column comment on PostgreSQL and
//! MySQL, an SQL comment in the column definition on SQLite). Reverting
//! drops only marked columns: a `mattermost_token` column that the host had
//! before (and its tokens) survives a revert.
//!
//! # Versions next to the host's own
//!
//! diesel records applied migrations by version in
//! `__diesel_schema_migrations(version VARCHAR(50))`, the table the host's
//! own migrations (and the `diesel` CLI) use too. This migration's version
//! is `00000000000000_mattermost_tokens_1_<table>` (the table lowercased;
//! a hash of it when the version would exceed 50 characters):
//!
//! - it cannot collide with a host's version, which diesel derives from a
//!   migration directory name and is digits only (`20261126103000`); with
//!   the table in it, stores on two tables each get their migration;
//! - it sorts before every host version (14 zeros, then `_`), so the
//!   host's `diesel migration revert` and `redo`, which act on the latest
//!   applied version, never pick it (they would fail on a version missing
//!   from the host's directory). Only diesel's own
//!   `00000000000000_diesel_initial_setup` sorts before it;
//! - `diesel migration run` ignores applied versions it does not know, so
//!   host tooling keeps working. `diesel migration revert --all` would stop
//!   at this version: revert it first with [`TokenMigrations::revert`] or
//!   the store's `revert_migration()`.
//!
//! # Running it
//!
//! - From the store: `store.migrate().await` (any tokio runtime; it runs
//!   diesel's blocking harness on tokio's blocking pool).
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
use mattermost_tokens::store::validate_identifier;

use crate::error::{ErrorContext, SchemaProblem, migration_error};

/// The migration's name, shared with the sqlx adapter and the Laravel seed.
pub const MIGRATION_NAME: &str = "add_mattermost_token_to_users_table";

/// Version prefix: sorts before every timestamped version; `1` numbers this
/// crate's migrations.
const VERSION_PREFIX: &str = "00000000000000_mattermost_tokens_1";

/// The width of diesel's `version` column on PostgreSQL and MySQL.
const MAX_VERSION_LEN: usize = 50;

/// Marks the columns this migration added, so that reverting drops only
/// those.
pub(crate) const MARKER: &str = "mattermost-tokens: added by add_mattermost_token_to_users_table";

pub(crate) use sealed::{ColumnKind, ColumnSpec, ExistingColumn};

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
        /// Whether this migration added it (it carries the marker).
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
/// migrations.run(&mut conn)?;
/// migrations.run(&mut conn)?; // already applied: nothing to do
/// migrations.revert(&mut conn)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMigrations {
    table: String,
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
        Ok(Self { table })
    }

    pub(crate) fn for_validated_table(table: &str) -> Self {
        Self {
            table: table.to_owned(),
        }
    }

    /// The table the migrations alter.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The version the migration is recorded under in
    /// `__diesel_schema_migrations`.
    pub fn version(&self) -> String {
        version_for(&self.table)
    }

    /// Runs the migrations that `harness` has not applied yet (none when
    /// they all were). `harness` is a diesel connection with migration
    /// support (`diesel::SqliteConnection`, diesel-async's
    /// `AsyncConnectionWrapper`) or diesel-async's `AsyncMigrationHarness`.
    pub fn run<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        H: MigrationHarness<DB> + ?Sized,
    {
        harness
            .run_pending_migrations(self.clone())
            .map(|_| ())
            .map_err(|e| migration_error(e, self.cx::<DB>()))
    }

    /// Reverts the applied migrations of this table, newest first (none when
    /// none was applied). Only columns the migration added are dropped.
    pub fn revert<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        H: MigrationHarness<DB> + ?Sized,
    {
        let cx = self.cx::<DB>();
        let applied = harness
            .applied_migrations()
            .map_err(|e| migration_error(e, cx))?;
        let ours =
            <Self as MigrationSource<DB>>::migrations(self).map_err(|e| migration_error(e, cx))?;
        for m in ours.iter().rev() {
            if applied.contains(&m.name().version()) {
                harness
                    .revert_migration(&**m)
                    .map_err(|e| migration_error(e, cx))?;
            }
        }
        Ok(())
    }

    fn cx<DB: MigrationBackend>(&self) -> ErrorContext<'_> {
        ErrorContext {
            backend: DB::NAME,
            table: &self.table,
        }
    }
}

impl<DB: MigrationBackend> MigrationSource<DB> for TokenMigrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        let version = version_for(&self.table);
        Ok(vec![Box::new(AddTokenColumns {
            table: self.table.clone(),
            name: format!("{version}_{MIGRATION_NAME}"),
            version,
        })])
    }
}

fn version_for(table: &str) -> String {
    let table = table.to_ascii_lowercase();
    let version = format!("{VERSION_PREFIX}_{table}");
    if version.len() <= MAX_VERSION_LEN {
        return version;
    }
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash = table.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // '#' cannot appear in a table name, so a hashed version never equals
    // a literal one.
    format!("{VERSION_PREFIX}_#{:012x}", hash & 0xffff_ffff_ffff)
}

/// The one migration: adds `mattermost_user_id`, `mattermost_token` and
/// `mattermost_token_id` where missing.
struct AddTokenColumns {
    table: String,
    version: String,
    name: String,
}

impl fmt::Display for AddTokenColumns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl MigrationName for AddTokenColumns {
    fn version(&self) -> MigrationVersion<'_> {
        MigrationVersion::from(self.version.as_str())
    }
}

// Runs in a transaction (the default): all or nothing where the database
// has transactional DDL (PostgreSQL, SQLite).
impl MigrationMetadata for AddTokenColumns {}

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
                    column: spec.name,
                    found: col.sql_type.clone(),
                    expected: spec.kind.description(),
                }));
            }
            if !col.nullable {
                return Err(Box::new(SchemaProblem::NotNullable {
                    table: self.table.clone(),
                    column: spec.name,
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
                .filter(|s| find(&existing, s.name).is_some_and(|c| c.ours == ours))
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
        assert_eq!(
            version_for("users"),
            "00000000000000_mattermost_tokens_1_users"
        );
        assert_eq!(
            version_for("Users"),
            "00000000000000_mattermost_tokens_1_users"
        );
        let long = version_for("a_rather_long_schema.with_a_long_users_table");
        assert!(long.len() <= MAX_VERSION_LEN, "{long}");
        assert!(long.starts_with("00000000000000_mattermost_tokens_1_#"));
        assert_ne!(
            long,
            version_for("a_rather_long_schema.with_a_long_users_tablf")
        );
        // Sorts before timestamped versions and after diesel's own setup.
        assert!(version_for("users").as_str() < "00000000000001");
        assert!(version_for("users").as_str() < "0001");
        assert!(version_for("users").as_str() > "00000000000000");
    }

    #[test]
    fn lengths() {
        assert_eq!(declared_len("varchar(26)"), Some(26));
        assert_eq!(declared_len("character varying(255)"), Some(255));
        assert_eq!(declared_len("text"), None);
    }
}
