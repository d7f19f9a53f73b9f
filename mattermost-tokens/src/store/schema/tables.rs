//! The token store and the code store over SQL tables, written once: an
//! adapter implements [`SqlTokenTable`] (or [`SqlCodeTable`]) for its store,
//! running the schema's statements through its driver, and gets
//! [`TokenStore`] (or [`CodeStore`]) from here.

use std::collections::{HashMap, HashSet};
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    CodeStatements, IN_LIST_MAX, KeyValue, StoreStatements, USER_ID_COLUMN, UuidKeys, Wanted,
    decode_code_user, encode_code_user, key_value, parse_key, unix_secs,
};
use crate::ids::{HostUserId, TokenId, UserId};
use crate::magic_link::{CodeHash, CodeStore};
use crate::store::schema::errors::{DriverMessage, ErrorClass};
use crate::store::{Claimed, Lease, MissingPage, NewToken, StoreError, TokenRecord, TokenStore};
use crate::time::unix_now_ms;

/// A value bound to a statement parameter. Text may be a token: `Debug`
/// shows no text.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// Text.
    Text(String),
    /// NULL, for an integer column.
    NullInt,
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "Int({i})"),
            Value::Text(_) => f.write_str("Text(..)"),
            Value::NullInt => f.write_str("NullInt"),
        }
    }
}

impl From<KeyValue> for Value {
    fn from(key: KeyValue) -> Self {
        match key {
            KeyValue::Int(i) => Value::Int(i),
            KeyValue::Text(s) => Value::Text(s),
        }
    }
}

/// What a write did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Written {
    /// It matched this many rows.
    Rows(u64),
    /// A unique index refused it; what the database names as violated (an
    /// index or constraint, possibly `table.index`; on SQLite the columns,
    /// `table.column`), when it says. Never a value.
    UniqueViolation(Option<String>),
}

/// How a store binds host user keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyPolicy {
    /// How UUID keys are bound where UUIDs are kept as text (a native
    /// `uuid` column is always [`UuidKeys::Native`]).
    pub text_uuids: UuidKeys,
    /// Whether a key of the wrong kind for the key column is
    /// [`StoreError::Config`] (otherwise it names no user).
    pub strict: bool,
}

/// A token store over a host's users table ([`UsersTable`](super::UsersTable)), as an adapter
/// provides it: the table, its statements, and running them. [`TokenStore`]
/// is implemented for every such store, on the same rules everywhere:
///
/// - a token's value, id and expiry are written by one statement, and the
///   compare-and-set writes are single `UPDATE ... WHERE` statements;
/// - an update that matched no row reads the row, to tell a missing user
///   ([`StoreError::UnknownUser`]) from a condition that did not hold
///   (`Ok(false)`) and from a row that already held the values (MySQL may
///   count changed rows only);
/// - a linking write refused by a unique index on `mattermost_user_id`
///   (the store's, or the host's of any name, when another row holds the
///   id) is [`StoreError::AlreadyLinked`], with nothing written;
/// - `clear_token` also clears a token id or expiry left without a token;
/// - `get_many` asks in lists of at most [`IN_LIST_MAX`] keys, padded to a
///   power of two so that a statement cache holds few shapes.
#[async_trait]
pub trait SqlTokenTable: Send + Sync + fmt::Debug {
    /// The statements of the store's table (and the table:
    /// [`StoreStatements::users_table`]).
    fn statements(&self) -> &StoreStatements;

    /// How keys are bound.
    const KEY_POLICY: KeyPolicy;

    /// Runs a write (doing `what`, for errors).
    async fn write(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Written, StoreError>;

    /// Runs a read of the statements' records: the key as text, and the
    /// record.
    async fn read(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<(String, TokenRecord)>, StoreError>;

    /// Runs a read of keys (as text).
    async fn read_keys(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<String>, StoreError>;
}

/// A write of one user's row: what it does (for errors), the statement,
/// its parameters but the key, where the key goes among them, and the
/// Mattermost user id it links, if any.
struct Write<'a> {
    what: &'static str,
    statement: &'a str,
    values: Vec<Value>,
    key_at: usize,
    linking: Option<&'a UserId>,
}

impl<'a> Write<'a> {
    fn new(
        what: &'static str,
        statement: &'a str,
        values: Vec<Value>,
        key_at: usize,
        linking: Option<&'a UserId>,
    ) -> Self {
        Write {
            what,
            statement,
            values,
            key_at,
            linking,
        }
    }
}

/// Whether `rec` holds `t` (a write of the same values matched).
fn holds(rec: &TokenRecord, t: &NewToken) -> bool {
    rec.mattermost_user_id.as_ref() == Some(&t.mattermost_user_id)
        && rec.token_id.as_ref() == Some(&t.token_id)
        && rec.token_expires_at == t.expires_at
        && rec.token.as_ref().is_some_and(|v| v.ct_eq(&t.token))
}

/// The helpers of the [`TokenStore`] implementation.
trait Rows: SqlTokenTable {
    fn key(&self, user: &HostUserId) -> Result<Option<KeyValue>, StoreError> {
        let policy = Self::KEY_POLICY;
        let uuid = match self.statements().dialect().native_uuid() {
            true => UuidKeys::Native,
            false => policy.text_uuids,
        };
        match key_value(self.statements().users_table().key_type(), uuid, user) {
            Err(e) if policy.strict => Err(e),
            Err(_) => Ok(None),
            Ok(k) => Ok(k),
        }
    }

    /// The keys of `users` that can name a row, in `IN` lists of at most
    /// [`IN_LIST_MAX`], each padded to a power of two with its last key (a
    /// repeated `IN` value changes nothing) so that a statement cache holds
    /// few shapes; and how to map the keys read back to the users asked.
    fn key_lists(&self, users: &[HostUserId]) -> (Wanted, Vec<Vec<Value>>) {
        let mut wanted = Wanted::new(self.statements().users_table().key_type());
        let mut keys = Vec::new();
        for u in users {
            if let Ok(Some(k)) = self.key(u)
                && wanted.insert(&k, u)
            {
                keys.push(Value::from(k));
            }
        }
        let lists = keys
            .chunks(IN_LIST_MAX)
            .map(|chunk| {
                let mut list = chunk.to_vec();
                list.resize(
                    chunk.len().next_power_of_two(),
                    chunk[chunk.len() - 1].clone(),
                );
                list
            })
            .collect();
        (wanted, lists)
    }

    /// The key a write binds: a user that cannot exist is unknown.
    fn write_key(&self, user: &HostUserId) -> Result<KeyValue, StoreError> {
        self.key(user)?
            .ok_or_else(|| StoreError::UnknownUser(user.clone()))
    }

    async fn row(
        &self,
        what: &'static str,
        key: KeyValue,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let rows = self
            .read(what, &self.statements().get, &[key.into()])
            .await?;
        Ok(rows.into_iter().next().map(|(_, r)| r))
    }

    /// Runs `w` on `user`'s row; `true` when it matched. When it matched no
    /// row, tells a missing user ([`StoreError::UnknownUser`]) from a row
    /// the condition excluded, which `decide` judges (and which is
    /// returned).
    async fn update(
        &self,
        user: &HostUserId,
        w: Write<'_>,
        decide: impl FnOnce(&TokenRecord) -> bool + Send,
    ) -> Result<(bool, TokenRecord), StoreError> {
        let key = self.write_key(user)?;
        let mut values = w.values;
        values.insert(w.key_at, key.clone().into());
        match self.write(w.what, w.statement, &values).await? {
            Written::Rows(0) => match self.row(w.what, key).await? {
                None => Err(StoreError::UnknownUser(user.clone())),
                Some(rec) => Ok((decide(&rec), rec)),
            },
            Written::Rows(_) => Ok((true, TokenRecord::default())),
            Written::UniqueViolation(named) => match w.linking {
                Some(mm) if self.linked_elsewhere(w.what, named, mm, key).await? => {
                    Err(StoreError::AlreadyLinked {
                        user: user.clone(),
                        mattermost_user_id: mm.clone(),
                    })
                }
                _ => Err(StoreError::Database {
                    message: format!("{}: a unique index refused the write", w.what),
                    source: None,
                }),
            },
        }
    }

    /// Writes `token` to `user`'s row with `statement` (and `expected`, the
    /// token id it must hold): `true` when it matched, or when `decide`
    /// says so of the row it did not match.
    async fn write_token(
        &self,
        what: &'static str,
        user: &HostUserId,
        (statement, token, expected): (&str, &NewToken, Option<&TokenId>),
        decide: impl FnOnce(&TokenRecord) -> bool + Send,
    ) -> Result<bool, StoreError> {
        let mut values = vec![
            Value::Text(token.mattermost_user_id.as_str().to_owned()),
            Value::Text(token.token.expose_secret().to_owned()),
            Value::Text(token.token_id.as_str().to_owned()),
            token.expires_at.map_or(Value::NullInt, Value::Int),
        ];
        values.extend(expected.map(|t| Value::Text(t.as_str().to_owned())));
        // The key goes after the four values.
        let linking = Some(&token.mattermost_user_id);
        let w = Write::new(what, statement, values, 4, linking);
        Ok(self.update(user, w, decide).await?.0)
    }

    /// Whether a write of `mm` to the row of `key` was refused because
    /// another row holds `mm`: a violation the database attributes to the
    /// store's index (or, on SQLite, to the `mattermost_user_id` column
    /// alone); one it attributes to something else (the host's own unique
    /// index on the column) counts when another row does hold `mm`.
    async fn linked_elsewhere(
        &self,
        what: &'static str,
        named: Option<String>,
        mm: &UserId,
        key: KeyValue,
    ) -> Result<bool, StoreError> {
        let named = named.unwrap_or_default();
        // MySQL 8 names the key `table.index`, SQLite the columns
        // `table.column, ...`.
        let last = named.rsplit('.').next().unwrap_or_default();
        let index = self.statements().user_id_index_name();
        if !named.contains(',')
            && (last.eq_ignore_ascii_case(index) || last.eq_ignore_ascii_case(USER_ID_COLUMN))
        {
            return Ok(true);
        }
        let values = [Value::Text(mm.as_str().to_owned()), key.into()];
        let sql = &self.statements().linked_elsewhere;
        Ok(!self.read_keys(what, sql, &values).await?.is_empty())
    }
}

impl<S: SqlTokenTable + ?Sized> Rows for S {}

#[async_trait]
impl<S: SqlTokenTable> TokenStore for S {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        match self.key(user)? {
            Some(key) => self.row("reading a user's token", key).await,
            None => Ok(None),
        }
    }

    /// One query per 512 users. Ids of the wrong kind for the key column
    /// (and, for a PostgreSQL `uuid` key, strings that are not UUIDs) cannot
    /// name a row, so they are simply absent from the result, like any user
    /// the host does not have.
    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        let (wanted, lists) = self.key_lists(users);
        let mut out = HashMap::with_capacity(users.len());
        for values in lists {
            let sql = self.statements().get_in(values.len());
            for (key, record) in self.read("reading users' tokens", &sql, &values).await? {
                for asked in wanted.matches(&key) {
                    out.entry(asked).or_insert_with(|| record.clone());
                }
            }
        }
        Ok(out)
    }

    async fn set_mattermost_user_id(
        &self,
        user: &HostUserId,
        mattermost_user_id: &UserId,
    ) -> Result<(), StoreError> {
        let values = vec![Value::Text(mattermost_user_id.as_str().to_owned())];
        let sql = &self.statements().set_user_id;
        let w = Write::new(
            "storing a Mattermost user id",
            sql,
            values,
            1,
            Some(mattermost_user_id),
        );
        self.update(user, w, |_| true).await.map(|_| ())
    }

    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        // A row it did not match has a token.
        let write = (self.statements().put_if_absent.as_str(), token, None);
        self.write_token("storing a token", user, write, |_| false)
            .await
    }

    async fn put_token(&self, user: &HostUserId, token: &NewToken) -> Result<(), StoreError> {
        let write = (self.statements().put.as_str(), token, None);
        self.write_token("replacing a token", user, write, |_| true)
            .await
            .map(|_| ())
    }

    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        // Matched but unchanged: the same values written again.
        let same = |rec: &TokenRecord| rec.token_id.as_ref() == Some(expected) && holds(rec, token);
        let write = (self.statements().replace.as_str(), token, Some(expected));
        self.write_token("rotating a token", user, write, same)
            .await
    }

    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError> {
        let what = "clearing a token";
        let w = Write::new(what, &self.statements().clear, Vec::new(), 0, None);
        let (cleared, rec) = self.update(user, w, |_| false).await?;
        if !cleared && (rec.token_id.is_some() || rec.token_expires_at.is_some()) {
            // A token id or expiry without a token (written by another
            // tool): cleared too, as they go with the token.
            let key = self.write_key(user)?;
            let sql = &self.statements().clear_orphan;
            self.write(what, sql, &[key.into()]).await?;
        }
        Ok(cleared)
    }

    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        const WHAT: &str = "listing users without a token";
        let limit = limit.max(1);
        let t = self.statements().users_table();
        let (sql, mut values) = match after {
            None => (&self.statements().missing_first, Vec::new()),
            Some(a) => {
                let key = self.key(a)?.ok_or_else(|| {
                    StoreError::Config(format!(
                        "list_missing: {a:?} is not a key of the {:?} column {}.{}",
                        t.key_type(),
                        t.table(),
                        t.key_column()
                    ))
                })?;
                (&self.statements().missing_after, vec![key.into()])
            }
        };
        values.push(Value::Int(i64::from(limit)));
        let users = self
            .read_keys(WHAT, sql, &values)
            .await?
            .into_iter()
            .map(|k| parse_key(t, k))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MissingPage::of(users, limit))
    }

    async fn claim(&self, users: &[HostUserId], lease: &Lease) -> Result<Vec<Claimed>, StoreError> {
        const WHAT: &str = "claiming users";
        let (wanted, lists) = self.key_lists(users);
        let mut out = Vec::with_capacity(users.len());
        let now = Value::Int(unix_now_ms());
        let owner = Value::Text(lease.owner.clone());
        for list in lists {
            let n = list.len();
            let mut values = vec![
                owner.clone(),
                Value::Int(lease.until_ms),
                now.clone(),
                owner.clone(),
            ];
            values.extend(list.iter().cloned());
            let sql = self.statements().claim_in(n);
            self.write(WHAT, &sql, &values).await?;
            let mut values = vec![owner.clone()];
            values.extend(list);
            let held = self.statements().held_in(n, false);
            let pending = self.statements().held_in(n, true);
            let pending: HashSet<String> = self
                .read_keys(WHAT, &pending, &values)
                .await?
                .into_iter()
                .collect();
            for key in self.read_keys(WHAT, &held, &values).await? {
                for user in wanted.matches(&key) {
                    out.push(Claimed {
                        user,
                        pending_intent: pending.contains(&key),
                    });
                }
            }
        }
        Ok(out)
    }

    fn claims_shared(&self) -> bool {
        true
    }

    async fn record_intent(
        &self,
        user: &HostUserId,
        lease: &Lease,
        nonce: &str,
    ) -> Result<bool, StoreError> {
        let Some(key) = self.key(user)? else {
            return Ok(false);
        };
        let values = [
            Value::Text(nonce.to_owned()),
            Value::Int(lease.until_ms),
            key.into(),
            Value::Text(lease.owner.clone()),
        ];
        let sql = &self.statements().intent;
        match self.write("recording a mint intent", sql, &values).await? {
            Written::Rows(n) => Ok(n > 0),
            Written::UniqueViolation(_) => Ok(false),
        }
    }

    async fn release(
        &self,
        user: &HostUserId,
        lease: &Lease,
        settled: bool,
    ) -> Result<(), StoreError> {
        let Some(key) = self.key(user)? else {
            return Ok(());
        };
        let st = self.statements();
        let sql = if settled {
            &st.release
        } else {
            &st.release_keep_intent
        };
        let values = [key.into(), Value::Text(lease.owner.clone())];
        self.write("releasing a claim", sql, &values).await?;
        Ok(())
    }
}

/// A code store over a magic-link code table, as an adapter provides it:
/// the table's statements, and running them. [`CodeStore`] is
/// implemented for every such store.
///
/// # The table
///
/// | column           | type                       | holds                                 |
/// |------------------|----------------------------|---------------------------------------|
/// | `code_hash`      | `VARCHAR(64)`, primary key | the code's SHA-256, lowercase hex     |
/// | `host_user_id`   | `VARCHAR(255)`             | the host user key as text             |
/// | `host_user_kind` | `CHAR(1)`                  | `i` (integer key) or `t` (text key)   |
/// | `expires_at`     | `BIGINT`, indexed          | Unix time in seconds                  |
///
/// Only the hash of a code is stored ([`CodeHash`](crate::magic_link::CodeHash)):
/// whoever reads the table cannot log anyone in. A consumed code is
/// deleted; expired codes stay until
/// [`purge_expired`](CodeStore::purge_expired) runs. The table does not
/// refer to the users table: a text key is kept as given, an integer key in
/// decimal, and the kind column brings each back as it went in. Text keys
/// longer than 255 characters are refused with [`StoreError::Config`].
/// Expiry times are kept in whole seconds, rounded down, so a code never
/// works past its `expires_at`.
///
/// # Consuming exactly once
///
/// However many requests race for a code, one gets it: on PostgreSQL and
/// SQLite ([`Dialect::delete_returning`](super::Dialect::delete_returning))
/// by one `DELETE ... WHERE code_hash = ? AND expires_at > ? RETURNING ...`;
/// on MySQL and MariaDB by [`take_locked`](SqlCodeTable::take_locked), a
/// transaction that reads the row `FOR UPDATE` (the others wait for its
/// lock, then find the row gone) and deletes it, run again when chosen as
/// a deadlock victim.
#[async_trait]
pub trait SqlCodeTable: Send + Sync + fmt::Debug {
    /// The statements of the store's code table (and the table:
    /// [`CodeStatements::table`]).
    fn code_statements(&self) -> &CodeStatements;

    /// Runs a write, returning the rows it matched.
    async fn code_write(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, StoreError>;

    /// Runs a read of users (`host_user_id`, `host_user_kind`).
    async fn code_users(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<(Option<String>, Option<String>)>, StoreError>;

    /// In one transaction, reads the user of the live code with `params`
    /// (hash, now) with [`CodeStatements::lock`], which locks its row, and
    /// deletes it with [`CodeStatements::delete`]; concurrent calls wait for
    /// the lock and then find no row. A transaction the database rolled back
    /// as a deadlock victim (nothing consumed) is [`Take::Deadlock`]: the
    /// caller runs it again, a few times.
    async fn take_locked(&self, what: &'static str, params: &[Value]) -> Result<Take, StoreError>;
}

/// What one [`SqlCodeTable::take_locked`] transaction did.
#[derive(Debug)]
pub enum Take {
    /// It committed: the code's user (`host_user_id`, `host_user_kind`),
    /// now consumed, or `None` when no live code matched.
    Done(Option<(Option<String>, Option<String>)>),
    /// The database chose it as a deadlock victim and rolled it back.
    Deadlock,
}

/// How many times a consuming transaction chosen as a deadlock victim is
/// run again (MySQL/MariaDB).
const DEADLOCK_RETRIES: u32 = 3;

#[async_trait]
impl<S: SqlCodeTable> CodeStore for S {
    async fn insert(
        &self,
        hash: &CodeHash,
        user: &HostUserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (id, kind) = encode_code_user(user)?;
        let values = [
            Value::Text(hash.to_hex()),
            Value::Text(id),
            Value::Text(kind.to_owned()),
            Value::Int(unix_secs(expires_at)),
        ];
        let sql = &self.code_statements().insert;
        self.code_write("storing a magic-link code", sql, &values)
            .await?;
        Ok(())
    }

    async fn consume(
        &self,
        hash: &CodeHash,
        now: DateTime<Utc>,
    ) -> Result<Option<HostUserId>, StoreError> {
        const WHAT: &str = "redeeming a magic-link code";
        let values = [Value::Text(hash.to_hex()), Value::Int(unix_secs(now))];
        let row = if self.code_statements().dialect().delete_returning() {
            let sql = &self.code_statements().consume;
            self.code_users(WHAT, sql, &values).await?.pop()
        } else {
            let mut attempt = 0;
            loop {
                match self.take_locked(WHAT, &values).await? {
                    Take::Done(row) => break row,
                    Take::Deadlock if attempt < DEADLOCK_RETRIES => {
                        attempt += 1;
                        tracing::debug!(
                            attempt,
                            "magic-link code consumption hit a deadlock; retrying"
                        );
                    }
                    Take::Deadlock => {
                        let statements = self.code_statements();
                        let (backend, table) = (statements.dialect().name(), statements.table());
                        let times = DriverMessage(format!("deadlock victim {} times", attempt + 1));
                        return Err(ErrorClass::Deadlock.error(WHAT, backend, table, "", times));
                    }
                }
            }
        };
        let table = self.code_statements().table();
        row.map(|(id, kind)| decode_code_user(table, id, kind.as_deref()))
            .transpose()
    }

    async fn peek(&self, hash: &CodeHash, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let values = [Value::Text(hash.to_hex()), Value::Int(unix_secs(now))];
        let sql = &self.code_statements().peek;
        let rows = self
            .code_users("checking a magic-link code", sql, &values)
            .await?;
        Ok(!rows.is_empty())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = &self.code_statements().purge;
        let values = [Value::Int(unix_secs(now))];
        self.code_write("purging expired magic-link codes", sql, &values)
            .await
    }
}
