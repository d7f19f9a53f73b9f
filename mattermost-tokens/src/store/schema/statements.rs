//! The statements of the token store and the code store, built once per
//! configuration.
//!
//! Table and column names cannot be bound as parameters, so they are
//! written into the text; they have passed
//! [`validate_identifier`](crate::store::validate_identifier) (letters,
//! digits, `_`). Every value is a bound parameter.

use super::{
    CLAIMED_BY_COLUMN, CLAIMED_UNTIL_COLUMN, Dialect, MINT_INTENT_COLUMN, TOKEN_COLUMN,
    TOKEN_ID_COLUMN, USER_ID_COLUMN, UsersTable,
};

/// Keys per `IN (...)` list of a `get_many`: far below every database's
/// bind limit, small enough for a quick plan.
pub const IN_LIST_MAX: usize = 512;

/// The token store's statements for one [`UsersTable`] on one database.
///
/// Reads return the columns `mmt_key` (the key as text),
/// `mattermost_user_id`, `mattermost_token`, `mattermost_token_id` and
/// `mmt_token_expires_at` (a nullable `BIGINT`), in that order; key
/// listings `mmt_key` alone. The placeholders are numbered as the field
/// documentation says.
#[derive(Clone, Debug)]
pub struct StoreStatements {
    dialect: Dialect,
    table: UsersTable,
    user_id_index: String,
    select_prefix: String,
    /// One user's row: (1) key.
    pub get: String,
    /// Sets the Mattermost user id: (1) id, (2) key.
    pub set_user_id: String,
    /// Writes id, token, token id and expiry while no token is stored:
    /// (1) id, (2) token, (3) token id, (4) expiry, (5) key.
    pub put_if_absent: String,
    /// Writes id, token, token id and expiry: as `put_if_absent`.
    pub put: String,
    /// Writes them while the stored token id is (6): as `put_if_absent`,
    /// then (6) the expected token id.
    pub replace: String,
    /// Clears the token, its id and its expiry while a token is stored:
    /// (1) key.
    pub clear: String,
    /// Clears a token id and expiry left without a token (written by
    /// another tool): (1) key.
    pub clear_orphan: String,
    /// The first users without a token, in key order: (1) limit.
    pub missing_first: String,
    /// The users without a token after a key: (1) key, (2) limit.
    pub missing_after: String,
    /// The keys (`mmt_key`) of the users other than (2) holding the
    /// Mattermost user id (1).
    pub linked_elsewhere: String,
    /// Records a mint intent while the claim is (4)'s: (1) nonce, (2) new
    /// claim end, (3) key, (4) owner.
    pub intent: String,
    /// Ends (2)'s claim and clears the intent: (1) key, (2) owner.
    pub release: String,
    /// Ends (2)'s claim, keeping the intent: (1) key, (2) owner.
    pub release_keep_intent: String,
}

impl StoreStatements {
    /// The statements for `t` on `dialect`.
    pub fn new(dialect: Dialect, t: &UsersTable) -> Self {
        let (table, key, kt, expiry) = (t.table(), t.key_column(), t.key_type(), t.expiry_column());
        let p = |n| dialect.placeholder(n);
        let kp = |n| dialect.key_param(n, kt);
        let key_text = dialect.as_text(key);
        let select_prefix = format!(
            "SELECT {key_text} AS mmt_key, {USER_ID_COLUMN}, {TOKEN_COLUMN}, {TOKEN_ID_COLUMN}, \
             {expiry} AS mmt_token_expires_at FROM {table} WHERE {key}"
        );
        // The token, its id and its expiry are written together, by one
        // statement: a write that its condition refuses changes none.
        let write = format!(
            "UPDATE {table} SET {USER_ID_COLUMN} = {}, {TOKEN_COLUMN} = {}, {TOKEN_ID_COLUMN} = {}, \
             {expiry} = {} WHERE {key} = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            kp(5)
        );
        let missing =
            format!("SELECT {key_text} AS mmt_key FROM {table} WHERE {TOKEN_COLUMN} IS NULL");
        StoreStatements {
            dialect,
            table: t.clone(),
            user_id_index: t.user_id_index_name(),
            get: format!("{select_prefix} = {}", kp(1)),
            set_user_id: format!(
                "UPDATE {table} SET {USER_ID_COLUMN} = {} WHERE {key} = {}",
                p(1),
                kp(2)
            ),
            put_if_absent: format!("{write} AND {TOKEN_COLUMN} IS NULL"),
            replace: format!("{write} AND {TOKEN_ID_COLUMN} = {}", p(6)),
            put: write,
            clear: format!(
                "UPDATE {table} SET {TOKEN_COLUMN} = NULL, {TOKEN_ID_COLUMN} = NULL, {expiry} = NULL \
                 WHERE {key} = {} AND {TOKEN_COLUMN} IS NOT NULL",
                kp(1)
            ),
            clear_orphan: format!(
                "UPDATE {table} SET {TOKEN_ID_COLUMN} = NULL, {expiry} = NULL \
                 WHERE {key} = {} AND {TOKEN_COLUMN} IS NULL",
                kp(1)
            ),
            missing_first: format!("{missing} ORDER BY {key} LIMIT {}", p(1)),
            missing_after: format!(
                "{missing} AND {key} > {} ORDER BY {key} LIMIT {}",
                kp(1),
                p(2)
            ),
            linked_elsewhere: format!(
                "SELECT {key_text} AS mmt_key FROM {table} WHERE {USER_ID_COLUMN} = {} AND {key} <> {}",
                p(1),
                kp(2)
            ),
            intent: format!(
                "UPDATE {table} SET {MINT_INTENT_COLUMN} = {}, {CLAIMED_UNTIL_COLUMN} = {} \
                 WHERE {key} = {} AND {CLAIMED_BY_COLUMN} = {}",
                p(1),
                p(2),
                kp(3),
                p(4)
            ),
            release: format!(
                "UPDATE {table} SET {CLAIMED_BY_COLUMN} = NULL, {CLAIMED_UNTIL_COLUMN} = NULL, \
                 {MINT_INTENT_COLUMN} = NULL WHERE {key} = {} AND {CLAIMED_BY_COLUMN} = {}",
                kp(1),
                p(2)
            ),
            release_keep_intent: format!(
                "UPDATE {table} SET {CLAIMED_BY_COLUMN} = NULL, {CLAIMED_UNTIL_COLUMN} = NULL \
                 WHERE {key} = {} AND {CLAIMED_BY_COLUMN} = {}",
                kp(1),
                p(2)
            ),
            select_prefix,
        }
    }

    /// Claims the rows of `n` users whose claim is absent, ran out, or is
    /// (4)'s already (which it extends): (1) owner, (2) claim end, (3) now,
    /// (4) owner again, (5) to (`n` + 4) the keys.
    pub fn claim_in(&self, n: usize) -> String {
        let (table, key) = (self.table.table(), self.table.key_column());
        let p = |i| self.dialect.placeholder(i);
        format!(
            "UPDATE {table} SET {CLAIMED_BY_COLUMN} = {}, {CLAIMED_UNTIL_COLUMN} = {} \
             WHERE ({CLAIMED_UNTIL_COLUMN} IS NULL OR {CLAIMED_UNTIL_COLUMN} < {} \
             OR {CLAIMED_BY_COLUMN} = {}) AND {key} IN ({})",
            p(1),
            p(2),
            p(3),
            p(4),
            self.key_list(5, n)
        )
    }

    /// The keys (`mmt_key`) of those of `n` users that (1) holds, with
    /// `pending` only those with a mint intent: (1) owner, (2) to
    /// (`n` + 1) the keys.
    pub fn held_in(&self, n: usize, pending: bool) -> String {
        let (table, key) = (self.table.table(), self.table.key_column());
        let intent = match pending {
            true => format!(" AND {MINT_INTENT_COLUMN} IS NOT NULL"),
            false => String::new(),
        };
        format!(
            "SELECT {} AS mmt_key FROM {table} WHERE {CLAIMED_BY_COLUMN} = {}{intent} AND {key} IN ({})",
            self.dialect.as_text(key),
            self.dialect.placeholder(1),
            self.key_list(2, n)
        )
    }

    /// Key placeholders `first` to `first + n - 1`, comma-separated.
    fn key_list(&self, first: usize, n: usize) -> String {
        let list: Vec<String> = (first..first + n)
            .map(|i| self.dialect.key_param(i, self.table.key_type()))
            .collect();
        list.join(", ")
    }

    /// The table the statements are for.
    pub fn users_table(&self) -> &UsersTable {
        &self.table
    }

    /// The name of its unique index on `mattermost_user_id`.
    pub fn user_id_index_name(&self) -> &str {
        &self.user_id_index
    }

    /// The database they are written for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// The rows of `n` users (`get`'s columns): `SELECT ... WHERE key IN
    /// (...)` with placeholders (1) to (`n`).
    pub fn get_in(&self, n: usize) -> String {
        format!("{} IN ({})", self.select_prefix, self.key_list(1, n))
    }
}

/// The code store's statements for one code table on one database. Reads
/// return `host_user_id` and `host_user_kind`; "live" means (1) is the
/// code's hash and (2) is before its `expires_at`.
#[derive(Clone, Debug)]
pub struct CodeStatements {
    dialect: Dialect,
    table: String,
    /// Stores a code: (1) hash, (2) user id, (3) kind, (4) expiry.
    pub insert: String,
    /// Deletes a live code, returning its user (`DELETE ... RETURNING`).
    pub consume: String,
    /// Reads a live code's user and locks its row (`SELECT ... FOR UPDATE`).
    pub lock: String,
    /// Deletes a code: (1) hash.
    pub delete: String,
    /// Reads a live code's user.
    pub peek: String,
    /// Deletes the codes that expired at or before (1).
    pub purge: String,
}

impl CodeStatements {
    /// The statements for code table `table` on `dialect`.
    pub fn new(dialect: Dialect, table: &str) -> Self {
        let p = |n| dialect.placeholder(n);
        let live = format!("code_hash = {} AND expires_at > {}", p(1), p(2));
        let user = "host_user_id, host_user_kind";
        CodeStatements {
            dialect,
            table: table.to_owned(),
            insert: format!(
                "INSERT INTO {table} (code_hash, {user}, expires_at) VALUES ({}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            consume: format!("DELETE FROM {table} WHERE {live} RETURNING {user}"),
            lock: format!("SELECT {user} FROM {table} WHERE {live} FOR UPDATE"),
            delete: format!("DELETE FROM {table} WHERE code_hash = {}", p(1)),
            peek: format!("SELECT {user} FROM {table} WHERE {live}"),
            purge: format!("DELETE FROM {table} WHERE expires_at <= {}", p(1)),
        }
    }

    /// The code table, as configured.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The database they are written for.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::schema::KeyType;

    #[test]
    fn statements_bind_in_order() {
        let t = UsersTable::default()
            .with_table("app.users")
            .unwrap()
            .with_key_type(KeyType::Uuid);
        let s = StoreStatements::new(Dialect::Postgres, &t);
        assert!(
            s.get
                .ends_with("FROM app.users WHERE id = CAST($1 AS UUID)"),
            "{}",
            s.get
        );
        assert!(
            s.replace
                .ends_with("id = CAST($5 AS UUID) AND mattermost_token_id = $6")
        );
        assert!(
            s.get_in(2)
                .ends_with("IN (CAST($1 AS UUID), CAST($2 AS UUID))")
        );
        let s = StoreStatements::new(Dialect::MySql, &UsersTable::default());
        assert!(s.missing_after.ends_with("id > ? ORDER BY id LIMIT ?"));
        assert!(s.get.starts_with("SELECT CAST(id AS CHAR) AS mmt_key"));
        let c = CodeStatements::new(Dialect::Sqlite, "codes");
        assert_eq!(
            c.consume,
            "DELETE FROM codes WHERE code_hash = ? AND expires_at > ? RETURNING host_user_id, host_user_kind"
        );
    }
}
