//! Which table and key column a store works on, what kind of key it is,
//! and the name of the token expiry column.

use mattermost_tokens::StoreError;
use mattermost_tokens::store::{validate_column_name, validate_identifier};

use crate::queries::{TOKEN, TOKEN_ID, USER_ID};

/// The default name of the column holding when a user's token expires
/// (milliseconds since the Unix epoch, NULL for a token that does not
/// expire); see [`SqlxTokenStore::with_expiry_column`](crate::SqlxTokenStore::with_expiry_column).
pub const DEFAULT_EXPIRY_COLUMN: &str = "mattermost_token_expires_at";

/// The SQL type of the host's user key (the key column of its `users`
/// table), which decides how [`HostUserId`](mattermost_tokens::HostUserId)
/// values are bound and read back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// An integer key (`BIGINT`, `INTEGER`, Laravel's `BIGINT UNSIGNED`
    /// auto-increment). Users are [`HostUserId::Int`](mattermost_tokens::HostUserId::Int).
    #[default]
    Integer,
    /// A text key (`TEXT`, `VARCHAR(n)`, `CHAR(n)`). Users are
    /// [`HostUserId::Text`](mattermost_tokens::HostUserId::Text).
    Text,
    /// A UUID key, given as [`HostUserId::Text`](mattermost_tokens::HostUserId::Text).
    /// On PostgreSQL the column is a native `uuid`: keys are compared as
    /// `key = $1::uuid` (so the primary key index is used), read back in
    /// canonical lower-case form, and a string that is not a UUID names no
    /// user. On MySQL/MariaDB (`CHAR(36)` or MariaDB's `UUID`) and SQLite it
    /// behaves like [`KeyType::Text`].
    Uuid,
}

/// The host table a store reads and writes.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    table: String,
    key: String,
    key_type: KeyType,
    /// The token expiry column.
    expiry: String,
}

impl Default for Target {
    fn default() -> Self {
        Target {
            table: "users".into(),
            key: "id".into(),
            key_type: KeyType::Integer,
            expiry: DEFAULT_EXPIRY_COLUMN.into(),
        }
    }
}

/// Refuses an expiry column that is the key column or another of the
/// store's columns: the store writes it, and its undo drops it. Unquoted
/// column names are case-insensitive on every supported database.
fn distinct_columns(key: &str, expiry: &str) -> Result<(), StoreError> {
    let same = |other: &str| expiry.eq_ignore_ascii_case(other);
    if same(key) {
        return Err(StoreError::Config(format!(
            "the key column and the token expiry column would both be {expiry:?}; \
             give one of them another name"
        )));
    }
    if [USER_ID, TOKEN, TOKEN_ID].into_iter().any(same) {
        return Err(StoreError::Config(format!(
            "{expiry:?} cannot be the token expiry column: the store keeps another value in it"
        )));
    }
    Ok(())
}

impl Target {
    pub(crate) fn with_table(mut self, table: String) -> Result<Self, StoreError> {
        validate_identifier(&table)?;
        self.table = table;
        Ok(self)
    }

    pub(crate) fn with_key(mut self, key: String) -> Result<Self, StoreError> {
        // A key column is a plain column name: no `schema.` prefix.
        validate_column_name(&key)?;
        distinct_columns(&key, &self.expiry)?;
        self.key = key;
        Ok(self)
    }

    pub(crate) fn with_expiry(mut self, expiry: String) -> Result<Self, StoreError> {
        validate_column_name(&expiry)?;
        distinct_columns(&self.key, &expiry)?;
        self.expiry = expiry;
        Ok(self)
    }

    pub(crate) fn with_key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// The table as configured, possibly `schema.table`.
    pub(crate) fn table(&self) -> &str {
        &self.table
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }

    pub(crate) fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The token expiry column.
    pub(crate) fn expiry(&self) -> &str {
        &self.expiry
    }
}
