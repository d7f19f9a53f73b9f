//! The store's SQL, built once per configuration from validated identifiers.
//!
//! Table and column names cannot be bound as parameters, so they are
//! written into the text; they have passed
//! [`validate_identifier`](mattermost_tokens::store::validate_identifier)
//! (letters, digits, `_`). Every value is a bound parameter.

use std::sync::Arc;

use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use crate::backend::Backend;
use crate::config::{KeyType, Target};
use crate::migration;

/// The columns the store owns, in the order queries read them (after the
/// key), followed by the token expiry column, whose name is configured
/// ([`Target::expiry`]).
pub(crate) const USER_ID: &str = "mattermost_user_id";
pub(crate) const TOKEN: &str = "mattermost_token";
pub(crate) const TOKEN_ID: &str = "mattermost_token_id";

/// Keys per `IN (...)` list. Lists are padded to a power of two so that a
/// connection's prepared-statement cache holds at most a dozen shapes.
pub(crate) const IN_LIST_MAX: usize = 512;

#[derive(Debug)]
pub(crate) struct Queries {
    pub(crate) get: Arc<str>,
    pub(crate) exists: Arc<str>,
    pub(crate) set_user_id: Arc<str>,
    pub(crate) put_if_absent: Arc<str>,
    pub(crate) put: Arc<str>,
    pub(crate) replace: Arc<str>,
    pub(crate) clear: Arc<str>,
    pub(crate) missing_first: Arc<str>,
    pub(crate) missing_after: Arc<str>,
    /// Whether another row than the key's holds a Mattermost user id.
    pub(crate) linked_elsewhere: Arc<str>,
    /// The unique index on the Mattermost user id column.
    pub(crate) user_id_index: String,
    select_prefix: String,
    key_type: KeyType,
    key_param: fn(usize, KeyType) -> String,
}

/// Wraps a query built by this module for sqlx.
pub(crate) fn sql(text: &Arc<str>) -> SqlStr {
    AssertSqlSafe(Arc::clone(text)).into_sql_str()
}

impl Queries {
    pub(crate) fn new<DB: Backend>(t: &Target) -> Self {
        let table = t.table();
        let key = t.key();
        let kt = t.key_type();
        let p = DB::placeholder;
        let expiry = t.expiry();
        let kp = |n| DB::key_param(n, kt);
        let select_prefix = format!(
            "SELECT {}, {USER_ID}, {TOKEN}, {TOKEN_ID}, {expiry} FROM {table} WHERE {key}",
            DB::key_select(key, kt)
        );
        // The token, its id and its expiry are written together, by one
        // statement.
        let write = format!(
            "UPDATE {table} SET {USER_ID} = {}, {TOKEN} = {}, {TOKEN_ID} = {}, {expiry} = {} \
             WHERE {key} = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            kp(5)
        );
        let missing = format!(
            "SELECT {} FROM {table} WHERE {TOKEN} IS NULL",
            DB::key_select(key, kt)
        );
        let q = |s: String| -> Arc<str> { s.into() };
        Queries {
            get: q(format!("{select_prefix} = {}", kp(1))),
            exists: q(format!("SELECT 1 FROM {table} WHERE {key} = {}", kp(1))),
            set_user_id: q(format!(
                "UPDATE {table} SET {USER_ID} = {} WHERE {key} = {}",
                p(1),
                kp(2)
            )),
            put_if_absent: q(format!("{write} AND {TOKEN} IS NULL")),
            replace: q(format!("{write} AND {TOKEN_ID} = {}", p(6))),
            put: q(write),
            clear: q(format!(
                "UPDATE {table} SET {TOKEN} = NULL, {TOKEN_ID} = NULL, {expiry} = NULL \
                 WHERE {key} = {} AND {TOKEN} IS NOT NULL",
                kp(1)
            )),
            missing_first: q(format!("{missing} ORDER BY {key} LIMIT {}", p(1))),
            missing_after: q(format!(
                "{missing} AND {key} > {} ORDER BY {key} LIMIT {}",
                kp(1),
                p(2)
            )),
            linked_elsewhere: q(format!(
                "SELECT 1 FROM {table} WHERE {USER_ID} = {} AND {key} <> {}",
                p(1),
                kp(2)
            )),
            user_id_index: migration::unique_index_name(table),
            select_prefix,
            key_type: kt,
            key_param: DB::key_param,
        }
    }

    /// `SELECT ... WHERE key IN (...)` for `n` keys (`n` a power of two).
    pub(crate) fn get_in(&self, n: usize) -> SqlStr {
        let list: Vec<String> = (1..=n)
            .map(|i| (self.key_param)(i, self.key_type))
            .collect();
        AssertSqlSafe(format!("{} IN ({})", self.select_prefix, list.join(", "))).into_sql_str()
    }
}
