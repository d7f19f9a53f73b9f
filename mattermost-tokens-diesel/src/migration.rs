//! The schema's migration steps as diesel migrations: [`TokenMigrations`]
//! for the host's users table and [`CodeMigrations`] for the magic-link
//! code table. What each step checks and changes is the core's
//! ([`mattermost_tokens::store::schema::plan`]); here is how the steps
//! become a diesel [`MigrationSource`] and are recorded and run.
//!
//! What a step adds carries a mark ([`Step::marker`]: a column or index
//! comment, an SQL comment in the definition on SQLite), and reverting
//! removes only what carries it: a host's own `mattermost_token` column or
//! unique index on `mattermost_user_id` survives a revert.
//!
//! The steps are recorded in diesel's `__diesel_schema_migrations` under
//! [`Step::tag`]s (`00000000000000_mattermost_tokens_<n>_<table>`), which
//! cannot collide with a host's digits-only versions and sort before them:
//! the host's `diesel migration revert` and `redo` never pick them, and
//! `diesel migration run` ignores them. (`diesel migration revert --all`
//! stops at them: revert them first with [`TokenMigrations::revert`].)

use std::fmt;

use diesel::connection::BoxableConnection;
use diesel::connection::SimpleConnection;
use diesel::migration::{
    Migration, MigrationMetadata, MigrationName, MigrationSource, MigrationVersion,
};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_migrations::MigrationHarness;
use mattermost_tokens::StoreError;
use mattermost_tokens::store::schema::plan::{self, Direction};
use mattermost_tokens::store::schema::{DEFAULT_CODES_TABLE, Dialect, Step, UsersTable, sql};

use crate::error::{ErrorContext, migration_error};

/// The backends the migrations support: `diesel::pg::Pg`,
/// `diesel::mysql::Mysql` and `diesel::sqlite::Sqlite`. Sealed.
pub trait MigrationBackend: sealed::Backend {}

pub(crate) mod sealed {
    use diesel::QueryableByName;
    use diesel::connection::BoxableConnection;
    use diesel::migration::Result;
    use diesel::sql_types::BigInt;
    use mattermost_tokens::store::schema::{Dialect, sql};

    crate::backend::text_rows! {
        /// A row of [`sql::columns`].
        ColumnRow { name, sql_type, nullable, comment }
        /// A row of [`sql::indexes`].
        IndexRow { name, is_unique, key_columns, complete, is_constraint, schema_name, comment }
    }

    /// A row of [`sql::duplicates`] and [`sql::index_name_taken`].
    #[derive(QueryableByName, Debug)]
    pub struct Count {
        #[diesel(sql_type = BigInt)]
        pub n: i64,
    }

    /// A schema query on a table (named in errors).
    pub type Catalog<'a> = (&'a str, &'a sql::Query);

    /// How the migrations read a backend's catalog: the rows of a schema
    /// query through the concrete connection behind `conn`.
    pub trait Backend: diesel::backend::Backend + 'static {
        /// Which SQL the database speaks.
        const DIALECT: Dialect;

        /// Rows of [`sql::columns`].
        fn columns(conn: &mut dyn BoxableConnection<Self>, q: Catalog) -> Result<Vec<ColumnRow>>;

        /// Rows of [`sql::indexes`].
        fn indexes(conn: &mut dyn BoxableConnection<Self>, q: Catalog) -> Result<Vec<IndexRow>>;

        /// Rows of [`sql::duplicates`] and [`sql::index_name_taken`].
        fn counts(conn: &mut dyn BoxableConnection<Self>, q: Catalog) -> Result<Vec<Count>>;
    }
}

/// `run` and `revert` through a diesel harness, documented as given, for
/// a type whose method `$steps` gives its [`TokenMigrations`].
macro_rules! through_harness {
    ($steps:ident, $(#[$run:meta])* run, $(#[$revert:meta])* revert) => {
        $(#[$run])*
        pub fn run<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
        where
            DB: MigrationBackend,
            H: MigrationHarness<DB> + ?Sized,
        {
            self.$steps().apply(harness, false)
        }

        $(#[$revert])*
        pub fn revert<DB, H>(&self, harness: &mut H) -> Result<(), StoreError>
        where
            DB: MigrationBackend,
            H: MigrationHarness<DB> + ?Sized,
        {
            self.$steps().apply(harness, true)
        }
    };
}

/// The migrations this crate ships, rendered for one users table; a diesel
/// [`MigrationSource`] for PostgreSQL, MySQL and SQLite alike (run it with
/// any diesel harness, or as below). On a plain sync SQLite connection:
///
/// ```
/// use mattermost_tokens_diesel::TokenMigrations;
/// use mattermost_tokens_diesel::diesel::{Connection, SqliteConnection, connection::SimpleConnection};
///
/// let mut conn = SqliteConnection::establish(":memory:")?;
/// conn.batch_execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")?;
/// let migrations = TokenMigrations::new("users")?;
/// assert_eq!(migrations.user_id_index_name(), "users_mattermost_user_id_unique");
/// assert_eq!(migrations.expiry_column(), "mattermost_token_expires_at");
/// migrations.run(&mut conn)?; // the columns, the unique index, the expiry column
/// migrations.run(&mut conn)?; // already applied: nothing to do
/// migrations.revert(&mut conn)?; // the expiry column, the index, then the columns
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenMigrations {
    /// The users table, or (for the code table's step) the code table.
    table: UsersTable,
    list: &'static [Step],
    /// Whether the key column is checked against the key type (a store's
    /// migrations, which know them).
    check_key: bool,
}

impl Default for TokenMigrations {
    fn default() -> Self {
        TokenMigrations::users(UsersTable::default(), false)
    }
}

impl TokenMigrations {
    /// The migrations for `table` (`users`, `app_users`, `schema.users`).
    /// Fails with [`StoreError::Config`] when it is not a plain identifier.
    pub fn new(table: impl Into<String>) -> Result<Self, StoreError> {
        let table = UsersTable::default().with_table(table)?;
        Ok(TokenMigrations::users(table, false))
    }

    /// A store's migrations, which also check the key column against the
    /// key type.
    pub(crate) fn for_store(table: &UsersTable) -> Self {
        TokenMigrations::users(table.clone(), true)
    }

    fn users(table: UsersTable, check_key: bool) -> Self {
        TokenMigrations {
            table,
            list: &Step::USERS_TABLE,
            check_key,
        }
    }

    pub(crate) fn into_steps(self) -> TokenMigrations {
        self
    }

    fn as_steps(&self) -> &TokenMigrations {
        self
    }

    /// The table the migrations alter.
    pub fn table_name(&self) -> &str {
        self.table.table()
    }

    fn step(&self, step: Step) -> StepMigration {
        StepMigration::new(step, self.table.clone(), self.check_key)
    }

    pub(crate) fn migrations<DB: MigrationBackend>(
        &self,
    ) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        Ok(self
            .list
            .iter()
            .map(|s| Box::new(self.step(*s)) as Box<dyn Migration<DB>>)
            .collect())
    }

    /// Runs (or with `revert`, reverts, newest first) the steps
    /// `harness` has not applied (has applied). Going up, when the index
    /// step is refused after the token columns are in place, the expiry
    /// column step is still run (see [`TokenMigrations::run`]).
    pub(crate) fn apply<DB, H>(&self, harness: &mut H, revert: bool) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        H: MigrationHarness<DB> + ?Sized,
    {
        let cx = cx::<DB>(self.table_name());
        let err = |e| migration_error(e, cx);
        if revert {
            let applied = harness.applied_migrations().map_err(err)?;
            for m in self.migrations::<DB>().map_err(err)?.iter().rev() {
                if applied.contains(&m.name().version()) {
                    harness.revert_migration(&**m).map_err(err)?;
                }
            }
            return Ok(());
        }
        let refused = match harness.run_pending_migrations(self.clone()) {
            Ok(_) => return Ok(()),
            Err(e) => migration_error(e, cx),
        };
        let Ok(applied) = harness.applied_migrations() else {
            return Err(refused);
        };
        let table = self.table_name();
        let has = |step: Step| applied.contains(&MigrationVersion::from(step.tag(table)));
        if matches!(refused, StoreError::Schema { .. })
            && self.list.contains(&Step::UserIdIndex)
            && has(Step::TokenColumns)
            && !has(Step::UserIdIndex)
        {
            for step in [Step::ExpiryColumn, Step::ClaimColumns] {
                if has(step) {
                    continue;
                }
                if let Err(e) = harness.run_migration(&self.step(step)) {
                    tracing::warn!(table, error = %err(e), "{} could not run either", step.name());
                    break;
                }
            }
        }
        Err(refused)
    }

    /// Uses another name than
    /// [`DEFAULT_EXPIRY_COLUMN`](crate::DEFAULT_EXPIRY_COLUMN) for the
    /// column holding when the token expires (the store's
    /// [`with_expiry_column`](crate::DieselTokenStore::with_expiry_column)
    /// sets the same). Fails with [`StoreError::Config`] when `name` is not
    /// a plain SQL identifier, is a qualified name, or names one of the
    /// three token columns or the key column.
    pub fn with_expiry_column(mut self, name: impl Into<String>) -> Result<Self, StoreError> {
        self.table = self.table.with_expiry_column(name)?;
        Ok(self)
    }

    /// The column holding when the token expires.
    pub fn expiry_column(&self) -> &str {
        self.table.expiry_column()
    }

    /// The version `step` is recorded under in `__diesel_schema_migrations`
    /// for this table ([`Step::tag`]).
    pub fn step_version(&self, step: Step) -> String {
        step.tag(self.table_name())
    }

    /// All versions, in the order the migrations run.
    pub fn versions(&self) -> Vec<String> {
        Step::USERS_TABLE
            .iter()
            .map(|s| s.tag(self.table_name()))
            .collect()
    }

    /// The name of the unique index on `mattermost_user_id`, the sqlx
    /// adapter's too
    /// ([`user_id_index_name`](mattermost_tokens::store::schema::user_id_index_name)).
    pub fn user_id_index_name(&self) -> String {
        self.table.user_id_index_name()
    }

    /// Runs (or reverts) the steps on `conn` after taking the database's
    /// session-level migration lock: two app instances starting together
    /// would both find the migration pending; the second waits here and
    /// then finds it applied. The lock goes with the connection, which is
    /// dropped after.
    pub(crate) fn apply_locked<DB, C>(&self, conn: C, revert: bool) -> Result<(), StoreError>
    where
        DB: MigrationBackend,
        AsyncConnectionWrapper<C>: From<C> + SimpleConnection + MigrationHarness<DB>,
    {
        // Where the database has no such lock (SQLite), two migrations in
        // one process at once would both find theirs pending, and the
        // second would fail recording it.
        static IN_PROCESS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let mut conn = AsyncConnectionWrapper::<C>::from(conn);
        // Read first: a database that has every step needs no lock, so a
        // host's instance starts while another process holds SQLite's
        // write lock (or a long transaction holds the table).
        if !revert && matches!(conn.has_pending_migration(self.clone()), Ok(false)) {
            return Ok(());
        }
        let _guard = match sql::lock(DB::DIALECT, false) {
            Some(lock) => {
                let cx = cx::<DB>(self.table_name());
                SimpleConnection::batch_execute(&mut conn, &lock)
                    .map_err(|e| crate::error::query_error(e, cx))?;
                None
            }
            None => Some(IN_PROCESS.lock().unwrap_or_else(|e| e.into_inner())),
        };
        self.apply(&mut conn, revert)
    }

    through_harness! {
        as_steps,
        /// Runs the migrations that `harness` has not applied yet, in order:
        /// the token columns, the unique index, the expiry column, the claim
        /// columns. `harness` is a diesel connection with migration support
        /// (`diesel::SqliteConnection`, diesel-async's
        /// `AsyncConnectionWrapper`) or diesel-async's `AsyncMigrationHarness`.
        ///
        /// Fails with [`StoreError::Schema`] when the table does not exist,
        /// its key column does not suit the key type (a store's
        /// migrations), it has a column of one of the names that cannot
        /// hold the value or is `NOT NULL`, or rows already share a
        /// `mattermost_user_id`: the index is not created then (the message
        /// says how many ids and how to find them), but the expiry and claim
        /// columns, which do not need it, still are, so that the store keeps
        /// working while the duplicates are resolved. (diesel's own
        /// `run_pending_migrations` with this source stops at the index.)
        run,
        /// Reverts the applied migrations of this table, newest first (none when
        /// none was applied): drops the expiry column if this crate added it,
        /// the unique index if this crate created it, then the token columns
        /// the migration added.
        revert
    }
}

impl<DB: MigrationBackend> MigrationSource<DB> for TokenMigrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        TokenMigrations::migrations(self)
    }
}

/// The migration that creates the magic-link code table
/// ([`DieselCodeStore`](crate::DieselCodeStore)), rendered for one table
/// name; a diesel [`MigrationSource`] for PostgreSQL, MySQL and SQLite
/// alike, run the same ways as [`TokenMigrations`].
///
/// One migration, [`CODES_MIGRATION_NAME`](crate::CODES_MIGRATION_NAME),
/// recorded as [`Step::tag`] names it; what it does is
/// [`DieselCodeStore::migrate`](crate::DieselCodeStore::migrate)'s.
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
pub struct CodeMigrations(TokenMigrations);

impl Default for CodeMigrations {
    /// The migration for table [`DEFAULT_CODES_TABLE`].
    fn default() -> Self {
        Self::new(DEFAULT_CODES_TABLE).expect("the default is an identifier")
    }
}

impl CodeMigrations {
    /// The migration for code table `table` (`mattermost_magic_link_codes`,
    /// `app.login_codes`). Fails with [`StoreError::Config`] when it is not
    /// a plain identifier.
    pub fn new(table: impl Into<String>) -> Result<Self, StoreError> {
        let table = UsersTable::default().with_table(table)?;
        Ok(CodeMigrations(TokenMigrations {
            table,
            list: &[Step::CodeTable],
            check_key: false,
        }))
    }

    pub(crate) fn into_steps(self) -> TokenMigrations {
        self.0
    }

    fn as_steps(&self) -> &TokenMigrations {
        &self.0
    }

    /// The code table the migration creates.
    pub fn table_name(&self) -> &str {
        self.0.table_name()
    }

    /// The version the migration is recorded under in
    /// `__diesel_schema_migrations`.
    pub fn version(&self) -> String {
        Step::CodeTable.tag(self.table_name())
    }

    through_harness! {
        as_steps,
        /// Runs the migration unless `harness` has applied it (see
        /// [`TokenMigrations::run`]).
        run,
        /// Reverts the migration if `harness` has applied it: drops the code
        /// table.
        revert
    }
}

impl<DB: MigrationBackend> MigrationSource<DB> for CodeMigrations {
    fn migrations(&self) -> diesel::migration::Result<Vec<Box<dyn Migration<DB>>>> {
        self.0.migrations()
    }
}

fn cx<DB: MigrationBackend>(table: &str) -> ErrorContext<'_> {
    ErrorContext {
        backend: DB::DIALECT.name(),
        table,
    }
}

/// One step as a diesel migration, run in a transaction (the default
/// metadata): all or nothing where the database has transactional DDL
/// (PostgreSQL, SQLite). On PostgreSQL the index build also blocks writes
/// to the table until it commits, so no duplicate can slip in between the
/// check and the index.
struct StepMigration {
    step: Step,
    /// The users table, or (for the code table's step) the code table.
    table: UsersTable,
    check_key: bool,
    version: String,
    name: String,
}

impl StepMigration {
    fn new(step: Step, table: UsersTable, check_key: bool) -> Self {
        let version = step.tag(table.table());
        StepMigration {
            name: format!("{version}_{}", step.name()),
            version,
            step,
            table,
            check_key,
        }
    }

    /// Reads the table, asks the schema what the step does, and does it.
    fn apply<DB: MigrationBackend>(
        &self,
        conn: &mut dyn BoxableConnection<DB>,
        dir: Direction,
    ) -> diesel::migration::Result<()> {
        let table = self.table.table();
        let mut catalog = Reader { conn, table };
        let (d, t) = (DB::DIALECT, &self.table);
        let change = plan::step_change(&mut catalog, self.step, d, dir, t, self.check_key, true)?;
        for statement in &change.statements {
            conn.batch_execute(statement).map_err(|e| match e {
                // A writer linked a second row between the count and the
                // index (MySQL, SQLite: the index build is not atomic with
                // the check there).
                diesel::result::Error::DatabaseError(
                    diesel::result::DatabaseErrorKind::UniqueViolation,
                    _,
                ) if self.step == Step::UserIdIndex => {
                    Box::new(plan::duplicate_links(&self.table, None, Some(Box::new(e))))
                        as Box<dyn std::error::Error + Send + Sync>
                }
                other => Box::new(other),
            })?;
        }
        tracing::info!(
            table,
            changed = ?change.names,
            "{}: {} done",
            self.step.name(),
            dir.what()
        );
        Ok(())
    }
}

/// The catalog of `table`, read through a migration's connection.
struct Reader<'a, DB: MigrationBackend> {
    conn: &'a mut dyn BoxableConnection<DB>,
    table: &'a str,
}

impl<DB: MigrationBackend> plan::Catalog for Reader<'_, DB> {
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn columns(&mut self, q: &sql::Query) -> Result<Vec<[Option<String>; 4]>, Self::Error> {
        let rows = DB::columns(self.conn, (self.table, q))?;
        Ok(rows.into_iter().map(|r| r.into_array()).collect())
    }

    fn indexes(&mut self, q: &sql::Query) -> Result<Vec<[Option<String>; 7]>, Self::Error> {
        let rows = DB::indexes(self.conn, (self.table, q))?;
        Ok(rows.into_iter().map(|r| r.into_array()).collect())
    }

    fn counts(&mut self, q: &sql::Query) -> Result<Vec<i64>, Self::Error> {
        Ok(DB::counts(self.conn, (self.table, q))?
            .iter()
            .map(|c| c.n)
            .collect())
    }
}

impl fmt::Display for StepMigration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl MigrationName for StepMigration {
    fn version(&self) -> MigrationVersion<'_> {
        MigrationVersion::from(self.version.as_str())
    }
}

impl MigrationMetadata for StepMigration {}

impl<DB: MigrationBackend> Migration<DB> for StepMigration {
    fn run(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        self.apply(conn, Direction::Up)
    }

    fn revert(&self, conn: &mut dyn BoxableConnection<DB>) -> diesel::migration::Result<()> {
        self.apply(conn, Direction::Down)
    }

    fn metadata(&self) -> &dyn MigrationMetadata {
        self
    }

    fn name(&self) -> &dyn MigrationName {
        self
    }
}

/// The error for a connection type the migration cannot read through.
pub(crate) fn unsupported_connection(
    dialect: Dialect,
    table: &str,
) -> Box<dyn std::error::Error + Send + Sync> {
    Box::new(StoreError::Config(format!(
        "the {} migration cannot read table {table} through this connection type; run it \
             through the store's migrate(), an AsyncConnectionWrapper over the backend's \
             connection (or a deadpool or bb8 one), or diesel-async's AsyncMigrationHarness",
        dialect.name()
    )))
}
