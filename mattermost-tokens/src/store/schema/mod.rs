//! The schema the SQL adapters (`mattermost-tokens-sqlx`,
//! `mattermost-tokens-diesel`) give a host's database, written once so that
//! both give it the same shape: a database migrated through one adapter
//! opens, migrates and works through the other.
//!
//! - the users table: four nullable columns on the host's own table
//!   ([`USER_ID_COLUMN`], [`TOKEN_COLUMN`], [`TOKEN_ID_COLUMN`] and the
//!   expiry column, [`DEFAULT_EXPIRY_COLUMN`] unless configured), and a
//!   unique index on `mattermost_user_id` named by
//!   [`user_id_index_name`]; which table, key column and key type a store
//!   works on is a [`UsersTable`];
//! - the magic-link code table ([`DEFAULT_CODES_TABLE`] unless configured);
//! - the migration [`Step`]s that make them, in order, with the names and
//!   versions they are recorded under, and what each step checks before it
//!   changes anything ([`plan`]): which host columns are acceptable on each
//!   database ([`Dialect`], [`SqlType`]), which indexes count, and the
//!   errors that say what to do;
//! - the SQL both adapters run, per database ([`sql`], [`StoreStatements`],
//!   [`CodeStatements`]), and how host user keys are bound and read back
//!   ([`KeyValue`], [`Wanted`]).
//!
//! This module is the adapters' shared ground rather than an API for apps:
//! a host uses it through an adapter, which re-exports what a host names
//! ([`KeyType`], the default names, the step names).

pub mod errors;
mod keys;
pub mod plan;
pub mod sql;
mod statements;
mod steps;
mod tables;
mod types;

pub use keys::{
    CODE_USER_MAX_CHARS, KeyValue, UuidKeys, Wanted, canonical_uuid, decode_code_user,
    encode_code_user, key_value, parse_key, unix_secs,
};
pub use statements::{CodeStatements, IN_LIST_MAX, StoreStatements};
pub use steps::{
    CLAIM_MIGRATION_NAME, CLAIM_MIGRATION_VERSION, CODES_MIGRATION_NAME, CODES_MIGRATION_VERSION,
    EXPIRY_MIGRATION_NAME, EXPIRY_MIGRATION_VERSION, MIGRATION_LOCK_ID, MIGRATION_LOCK_NAME,
    MIGRATION_NAME, MIGRATION_VERSION, MIGRATIONS_TABLE, Step, UNIQUE_INDEX_MIGRATION_NAME,
    UNIQUE_INDEX_MIGRATION_VERSION, code_index_name, is_user_id_index_name, user_id_index_name,
};
pub use tables::{KeyPolicy, SqlCodeTable, SqlTokenTable, Take, Value, Written};
pub use types::{ColumnKind, Dialect, SqlType};

use crate::store::{StoreError, validate_column_name, validate_identifier};

/// The column holding each user's Mattermost user id (unique: one
/// Mattermost account per host user).
pub const USER_ID_COLUMN: &str = "mattermost_user_id";

/// The column holding each user's personal access token (the Laravel
/// integration's column).
pub const TOKEN_COLUMN: &str = "mattermost_token";

/// The column holding the id of that token.
pub const TOKEN_ID_COLUMN: &str = "mattermost_token_id";

/// The column naming the sync that holds a claim on the user (see
/// [`TokenStore::claim`](crate::TokenStore::claim)).
pub const CLAIMED_BY_COLUMN: &str = "mattermost_claimed_by";

/// The column holding until when that claim holds, in milliseconds since
/// the Unix epoch.
pub const CLAIMED_UNTIL_COLUMN: &str = "mattermost_claimed_until";

/// The column holding the nonce of the token a claim holder is about to
/// mint, until the token is stored (or revoked).
pub const MINT_INTENT_COLUMN: &str = "mattermost_mint_intent";

/// The claim columns, added by [`Step::ClaimColumns`].
pub const CLAIM_COLUMNS: [&str; 3] = [CLAIMED_BY_COLUMN, CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN];

/// The default name of the column holding when a user's token expires
/// (milliseconds since the Unix epoch, NULL for a token that does not
/// expire).
pub const DEFAULT_EXPIRY_COLUMN: &str = "mattermost_token_expires_at";

/// The magic-link code table a code store uses unless configured otherwise.
pub const DEFAULT_CODES_TABLE: &str = "mattermost_magic_link_codes";

/// The SQL type of the host's user key (the key column of its `users`
/// table), which decides how [`HostUserId`](crate::HostUserId) values are
/// bound and read back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// An integer key (`BIGINT`, `INTEGER`, `SERIAL`, Laravel's
    /// `BIGINT UNSIGNED` auto-increment). Users are
    /// [`HostUserId::Int`](crate::HostUserId::Int). The default.
    #[default]
    Integer,
    /// A text key (`TEXT`, `VARCHAR(n)`, `CHAR(n)`, MySQL `CHAR(36)`
    /// UUIDs). Users are [`HostUserId::Text`](crate::HostUserId::Text).
    Text,
    /// A UUID key, given as [`HostUserId::Text`](crate::HostUserId::Text).
    /// On PostgreSQL the column is a native `uuid`: keys are compared as
    /// `key = CAST($1 AS UUID)` (so the primary key index is used), any
    /// spelling PostgreSQL reads finds its row, and a string that is not a
    /// UUID names no user. On MySQL/MariaDB (`CHAR(36)` or MariaDB's `UUID`)
    /// and SQLite UUIDs are stored as text, compared as text.
    Uuid,
}

/// The host table a token store reads and writes: its name (possibly
/// `schema.table`), key column, key type and token expiry column, each
/// validated before it can reach SQL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsersTable {
    table: String,
    key_column: String,
    key_type: KeyType,
    expiry_column: String,
}

impl Default for UsersTable {
    /// Table `users`, integer key column `id`, expiry column
    /// [`DEFAULT_EXPIRY_COLUMN`].
    fn default() -> Self {
        UsersTable {
            table: "users".into(),
            key_column: "id".into(),
            key_type: KeyType::Integer,
            expiry_column: DEFAULT_EXPIRY_COLUMN.into(),
        }
    }
}

impl UsersTable {
    /// Uses another table (`app_users`, `schema.users`): an identifier,
    /// optionally with one `schema.` prefix, or [`StoreError::Config`].
    pub fn with_table(mut self, table: impl Into<String>) -> Result<Self, StoreError> {
        let table = table.into();
        validate_identifier(&table)?;
        self.table = table;
        Ok(self)
    }

    /// Uses another key column: a plain column name that is not the expiry
    /// column, or [`StoreError::Config`].
    pub fn with_key_column(mut self, column: impl Into<String>) -> Result<Self, StoreError> {
        let column = column.into();
        validate_column_name(&column)?;
        distinct_columns(&column, &self.expiry_column)?;
        self.key_column = column;
        Ok(self)
    }

    /// Sets the key column's type.
    pub fn with_key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// Uses another expiry column: a plain column name that is neither the
    /// key column nor another of the store's columns (compared without
    /// regard to case), or [`StoreError::Config`].
    pub fn with_expiry_column(mut self, column: impl Into<String>) -> Result<Self, StoreError> {
        let column = column.into();
        validate_expiry_column(&column)?;
        distinct_columns(&self.key_column, &column)?;
        self.expiry_column = column;
        Ok(self)
    }

    /// The table as configured, possibly `schema.table`.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The key column.
    pub fn key_column(&self) -> &str {
        &self.key_column
    }

    /// The key column's type.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The token expiry column.
    pub fn expiry_column(&self) -> &str {
        &self.expiry_column
    }

    /// The name of the unique index on `mattermost_user_id`
    /// ([`user_id_index_name`] of the table).
    pub fn user_id_index_name(&self) -> String {
        user_id_index_name(&self.table)
    }
}

/// Checks a configured expiry column name: a plain column name (no
/// `table.` prefix) that is not one of the token or claim columns, or
/// [`StoreError::Config`].
pub fn validate_expiry_column(name: &str) -> Result<(), StoreError> {
    validate_column_name(name)?;
    if [USER_ID_COLUMN, TOKEN_COLUMN, TOKEN_ID_COLUMN]
        .iter()
        .chain(CLAIM_COLUMNS.iter())
        .any(|c| c.eq_ignore_ascii_case(name))
    {
        return Err(StoreError::Config(format!(
            "{name:?} cannot be the token expiry column: the store keeps another value in it"
        )));
    }
    Ok(())
}

/// Refuses a key column and an expiry column of one name: the store writes
/// the expiry column, and undoing the migration drops it. Unquoted column
/// names are case-insensitive on every supported database.
fn distinct_columns(key: &str, expiry: &str) -> Result<(), StoreError> {
    if expiry.eq_ignore_ascii_case(key) {
        return Err(StoreError::Config(format!(
            "the key column and the token expiry column would both be {expiry:?}; \
             give one of them another name"
        )));
    }
    Ok(())
}

/// The configuration methods of a SQL adapter's token store, written once
/// so that both adapters have the same ones. Expands, inside an inherent
/// `impl` block of a [`SqlTokenTable`] that has
/// `fn rendered(self, table: UsersTable) -> Self` (the store for another
/// configuration), to `with_table_name`, `with_key_column`,
/// `with_expiry_column`, `with_key_type`, `table_name`, `key_column`,
/// `key_type`, `expiry_column` and `user_id_index_name`.
#[doc(hidden)]
#[macro_export]
macro_rules! users_table_methods {
    () => {
        /// Uses another users table (`app_users`, or `schema.users`). The
        /// name goes into SQL, so it must be an identifier: letters, digits
        /// and `_`, optionally one `schema.` prefix; anything else is
        /// [`StoreError::Config`](mattermost_tokens::StoreError::Config).
        pub fn with_table_name(self, table: impl Into<String>) -> Result<Self, $crate::StoreError> {
            let t = self.users_table().clone().with_table(table)?;
            Ok(self.rendered(t))
        }

        /// Uses another key column than `id` (validated like
        /// [`with_table_name`](Self::with_table_name), without a schema
        /// prefix; the token expiry column's name is refused with
        /// [`StoreError::Config`](mattermost_tokens::StoreError::Config)).
        pub fn with_key_column(
            self,
            column: impl Into<String>,
        ) -> Result<Self, $crate::StoreError> {
            let t = self.users_table().clone().with_key_column(column)?;
            Ok(self.rendered(t))
        }

        /// Uses another column than `mattermost_token_expires_at`
        /// ([`DEFAULT_EXPIRY_COLUMN`](crate::DEFAULT_EXPIRY_COLUMN)) for
        /// when the token expires (a nullable `BIGINT` of milliseconds since
        /// the Unix epoch), for reads, writes and
        /// [`migrate`](Self::migrate) alike. Validated like
        /// [`with_key_column`](Self::with_key_column); a name that is the
        /// key column's or one of the store's other columns
        /// (`mattermost_user_id`, `mattermost_token`, `mattermost_token_id`;
        /// compared without regard to case) is
        /// [`StoreError::Config`](mattermost_tokens::StoreError::Config)
        /// too.
        pub fn with_expiry_column(
            self,
            column: impl Into<String>,
        ) -> Result<Self, $crate::StoreError> {
            let t = self.users_table().clone().with_expiry_column(column)?;
            Ok(self.rendered(t))
        }

        /// Sets the type of the key column
        /// ([`KeyType::Integer`](crate::KeyType::Integer) by default).
        pub fn with_key_type(self, key_type: $crate::store::schema::KeyType) -> Self {
            let t = self.users_table().clone().with_key_type(key_type);
            self.rendered(t)
        }

        /// The users table, as configured.
        pub fn table_name(&self) -> &str {
            self.users_table().table()
        }

        /// The key column.
        pub fn key_column(&self) -> &str {
            self.users_table().key_column()
        }

        /// The key column's type.
        pub fn key_type(&self) -> $crate::store::schema::KeyType {
            self.users_table().key_type()
        }

        /// The token expiry column.
        pub fn expiry_column(&self) -> &str {
            self.users_table().expiry_column()
        }

        /// The name of the unique index [`migrate`](Self::migrate) creates
        /// on `mattermost_user_id`: `<table>_mattermost_user_id_unique` in
        /// lower case, for the table's name without its schema (the index
        /// lives in the table's schema); the name Laravel's `->unique()`
        /// gives it. When that would exceed 63 characters, the table's name
        /// is cut and a hash of all of it added:
        /// `<start>_<8 hex digits>_mattermost_user_id_unique`. Both adapters
        /// give it the same name.
        pub fn user_id_index_name(&self) -> &str {
            $crate::store::schema::SqlTokenTable::statements(self).user_id_index_name()
        }

        fn users_table(&self) -> &$crate::store::schema::UsersTable {
            $crate::store::schema::SqlTokenTable::statements(self).users_table()
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_table_names_are_checked() {
        let t = UsersTable::default();
        assert_eq!(t.expiry_column(), DEFAULT_EXPIRY_COLUMN);
        for taken in [
            "id",
            "ID",
            USER_ID_COLUMN,
            TOKEN_COLUMN,
            "Mattermost_Token_Id",
        ] {
            match t.clone().with_expiry_column(taken) {
                Err(StoreError::Config(m)) => assert!(m.contains(taken), "{m}"),
                other => panic!("{taken}: {other:?}"),
            }
        }
        for bad in ["users.expires", "1x", "a-b", ""] {
            assert!(t.clone().with_expiry_column(bad).is_err(), "{bad}");
        }
        let t = t.with_expiry_column("user_key").unwrap();
        assert!(t.clone().with_key_column("USER_KEY").is_err());
        let t = t.with_table("app.users").unwrap();
        assert_eq!(t.user_id_index_name(), "users_mattermost_user_id_unique");
        assert!(t.with_table("a.b.c").is_err());
    }
}
