//! Which table and key column a store works on, and what kind of key it is.

use mattermost_tokens::StoreError;
use mattermost_tokens::store::validate_identifier;

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
}

impl Default for Target {
    fn default() -> Self {
        Target {
            table: "users".into(),
            key: "id".into(),
            key_type: KeyType::Integer,
        }
    }
}

impl Target {
    pub(crate) fn with_table(mut self, table: String) -> Result<Self, StoreError> {
        validate_identifier(&table)?;
        self.table = table;
        Ok(self)
    }

    pub(crate) fn with_key(mut self, key: String) -> Result<Self, StoreError> {
        // A key column is a plain column name: no `schema.` prefix.
        validate_identifier(&key)?;
        if key.contains('.') {
            return Err(StoreError::Config(format!(
                "{key:?} is not a column name (a key column takes no table or schema prefix)"
            )));
        }
        self.key = key;
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
}
