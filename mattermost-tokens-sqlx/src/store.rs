//! [`SqlxTokenStore`]: the [`TokenStore`] over a host's users table, written
//! once for every [`Backend`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::{
    AccessToken, HostUserId, MissingPage, NewToken, StoreError, TokenId, TokenRecord, TokenStore,
    UserId,
};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, SqlStr};

use crate::backend::{Backend, Bind};
use crate::config::{KeyType, Target};
use crate::error::{from_batch, from_sqlx};
use crate::group_commit::{Failure, SqlxBatch, write};
use crate::key::{KeyValue, Wanted, key_value};
use crate::migration::{self, Direction, Job};
use crate::queries::{IN_LIST_MAX, Queries, USER_ID, sql};
use mattermost_tokens::store::group_commit::GroupCommit;

/// A [`TokenStore`] keeping each user's Mattermost user id, token, token
/// id and token expiry in four nullable columns of the host's own users
/// table, through the host's sqlx pool.
///
/// The columns are `mattermost_user_id`, `mattermost_token`,
/// `mattermost_token_id` and `mattermost_token_expires_at` (the expiry in
/// milliseconds since the Unix epoch, NULL for a token that does not
/// expire; its name is set by [`with_expiry_column`](Self::with_expiry_column)).
/// A token's value, id and expiry are always written together, by one
/// statement, and [`clear_token`](TokenStore::clear_token) sets all three
/// to NULL.
///
/// Use it through its per-database names, [`PgTokenStore`](crate::PgTokenStore),
/// [`MySqlTokenStore`](crate::MySqlTokenStore) and
/// [`SqliteTokenStore`](crate::SqliteTokenStore). It is cheap to clone (the
/// pool and the prepared SQL are shared).
///
/// Every method is one statement (two when an update matched no row and the
/// store must tell "no such user" from "nothing to change"), and the
/// compare-and-set methods are single `UPDATE ... WHERE` statements, so they
/// are atomic without transactions or locks.
///
/// A Mattermost user id is linked to one host user at most: the unique
/// index [`migrate`](Self::migrate) creates makes the database refuse a
/// write that would put a `mattermost_user_id` another row holds, however
/// many writers race, and the store returns that as
/// [`StoreError::AlreadyLinked`] (nothing is written). Writing the id a row
/// already holds is fine. A compare-and-set that does not apply writes no
/// row and so violates nothing: [`put_token_if_absent`](TokenStore::put_token_if_absent)
/// on a user that has a token, or [`replace_token`](TokenStore::replace_token)
/// with another token id, returns `Ok(false)` whatever the id.
pub struct SqlxTokenStore<DB: Backend> {
    pool: Pool<DB>,
    target: Target,
    sql: Arc<Queries>,
    /// SQLite's writes, batched (see `group_commit`); shared by clones.
    group: Option<Arc<GroupCommit<SqlxBatch<DB>>>>,
}

impl<DB: Backend> Clone for SqlxTokenStore<DB> {
    fn clone(&self) -> Self {
        SqlxTokenStore {
            pool: self.pool.clone(),
            target: self.target.clone(),
            sql: Arc::clone(&self.sql),
            group: self.group.clone(),
        }
    }
}

impl<DB: Backend> fmt::Debug for SqlxTokenStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool is shown by its size only: its options are the host's.
        f.debug_struct("SqlxTokenStore")
            .field("database", &DB::NAME)
            .field("table", &self.target.table())
            .field("key_column", &self.target.key())
            .field("key_type", &self.target.key_type())
            .field("expiry_column", &self.target.expiry())
            .field(
                "pool",
                &format_args!(
                    "Pool {{ size: {}, idle: {} }}",
                    self.pool.size(),
                    self.pool.num_idle()
                ),
            )
            .finish()
    }
}

impl<DB: Backend> SqlxTokenStore<DB> {
    /// A store over the host's `users` table with an integer key column
    /// `id`, using the host's pool.
    pub fn new(pool: Pool<DB>) -> Self {
        Self::build(pool, Target::default())
    }

    fn build(pool: Pool<DB>, target: Target) -> Self {
        let sql = Arc::new(Queries::new::<DB>(&target));
        let group = DB::GROUP_COMMIT_BEGIN.map(|begin| {
            GroupCommit::new(SqlxBatch {
                pool: pool.clone(),
                begin,
            })
        });
        SqlxTokenStore {
            pool,
            target,
            sql,
            group,
        }
    }

    /// Uses another users table (`app_users`, or `schema.users`). The name
    /// goes into SQL, so it must be an identifier: letters, digits and `_`,
    /// optionally one `schema.` prefix; anything else is
    /// [`StoreError::Config`].
    pub fn with_table_name(self, table: impl Into<String>) -> Result<Self, StoreError> {
        let target = self.target.with_table(table.into())?;
        Ok(Self::build(self.pool, target))
    }

    /// Uses another key column than `id` (validated like
    /// [`with_table_name`](Self::with_table_name), without a schema prefix;
    /// the token expiry column's name is refused with
    /// [`StoreError::Config`]).
    pub fn with_key_column(self, column: impl Into<String>) -> Result<Self, StoreError> {
        let target = self.target.with_key(column.into())?;
        Ok(Self::build(self.pool, target))
    }

    /// Uses another column than `mattermost_token_expires_at`
    /// ([`DEFAULT_EXPIRY_COLUMN`](crate::DEFAULT_EXPIRY_COLUMN)) for when
    /// the token expires; [`migrate`](Self::migrate) adds it under this
    /// name. Validated like [`with_key_column`](Self::with_key_column) (an
    /// identifier, without a table or schema prefix); a name that is the
    /// key column's or one of the store's other columns
    /// (`mattermost_user_id`, `mattermost_token`, `mattermost_token_id`;
    /// compared without regard to case) is [`StoreError::Config`] too.
    pub fn with_expiry_column(self, column: impl Into<String>) -> Result<Self, StoreError> {
        let target = self.target.with_expiry(column.into())?;
        Ok(Self::build(self.pool, target))
    }

    /// Sets the type of the key column (integer by default). A
    /// [`HostUserId`] of the other kind is then refused with
    /// [`StoreError::Config`].
    pub fn with_key_type(self, key_type: KeyType) -> Self {
        let target = self.target.with_key_type(key_type);
        Self::build(self.pool, target)
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The users table, as configured.
    pub fn table_name(&self) -> &str {
        self.target.table()
    }

    /// The key column.
    pub fn key_column(&self) -> &str {
        self.target.key()
    }

    /// The key column's type.
    pub fn key_type(&self) -> KeyType {
        self.target.key_type()
    }

    /// The token expiry column.
    pub fn expiry_column(&self) -> &str {
        self.target.expiry()
    }

    /// The name of the unique index [`migrate`](Self::migrate) creates on
    /// `mattermost_user_id`: `<table>_mattermost_user_id_unique` in lower
    /// case, for the table's name without its schema (the index lives in
    /// the table's schema); the name Laravel's `->unique()` gives it. When
    /// that would exceed 63 characters, the table's name is cut and a hash
    /// of all of it added: `<start>_<8 hex digits>_mattermost_user_id_unique`.
    pub fn user_id_index_name(&self) -> &str {
        &self.sql.user_id_index
    }

    /// Applies the users table's three migrations, recording each in
    /// [`MIGRATIONS_TABLE`](crate::MIGRATIONS_TABLE):
    ///
    /// 1. [`add_mattermost_token_to_users_table`](crate::MIGRATION_NAME)
    ///    adds the nullable columns `mattermost_user_id` (`VARCHAR(26)`),
    ///    `mattermost_token` (`TEXT`) and `mattermost_token_id`
    ///    (`VARCHAR(26)`) to the users table;
    /// 2. [`add_unique_mattermost_user_id_index`](crate::UNIQUE_INDEX_MIGRATION_NAME)
    ///    creates the unique index [`user_id_index_name`](Self::user_id_index_name)
    ///    on `mattermost_user_id` (NULLs may repeat), so that the database
    ///    itself refuses to link one Mattermost account to two users;
    /// 3. [`add_mattermost_token_expires_at_column`](crate::EXPIRY_MIGRATION_NAME)
    ///    adds the nullable column [`expiry_column`](Self::expiry_column)
    ///    (`BIGINT`; `INTEGER` on SQLite), the token's expiry in
    ///    milliseconds since the Unix epoch.
    ///
    /// Call it once at start-up; running it again, or over columns (and a
    /// unique index on `mattermost_user_id`, of any name) that a Laravel or
    /// hand-written migration already added with compatible types, is fine.
    /// A database migrated by an earlier version gets only the steps it
    /// lacks; its rows keep their values, with a NULL expiry until their
    /// token is next written. An expiry column that exists already must be
    /// a signed 64-bit integer (`BIGINT`; on SQLite, any integer type).
    /// On PostgreSQL the index is built inside the migration's transaction,
    /// which holds off writes to the table while it builds; on a very large
    /// table, create it beforehand with `CREATE UNIQUE INDEX CONCURRENTLY`
    /// and `migrate()` takes it as is.
    ///
    /// Fails with [`StoreError::Schema`], changing nothing, when the users
    /// table or its key column is missing, the key column does not suit the
    /// [`KeyType`], a column of one of those names has a clashing type, or
    /// rows already share a `mattermost_user_id` (the message says how many
    /// and how to find and fix them).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migration::run(&self.pool, Job::UsersColumns(&self.target), Direction::Up).await
    }

    /// Reverts [`migrate`](Self::migrate), in reverse order: drops the
    /// expiry column, then the unique index (when it is the one `migrate()`
    /// creates), then exactly the three other columns (and with them every
    /// stored token: revoke the tokens in Mattermost first), and removes
    /// the three records. Running it when they are gone is fine.
    pub async fn undo_migration(&self) -> Result<(), StoreError> {
        migration::run(&self.pool, Job::UsersColumns(&self.target), Direction::Down).await
    }

    fn err<'a>(&'a self, what: &'a str) -> impl Fn(sqlx::Error) -> StoreError + 'a {
        move |e| from_sqlx::<DB>(what, self.target.table(), e)
    }

    fn key(&self, user: &HostUserId) -> Result<Option<KeyValue>, StoreError> {
        key_value(self.target.key_type(), DB::NATIVE_UUID, user)
    }

    /// The key a write binds: a user that cannot exist is unknown.
    fn write_key(&self, user: &HostUserId) -> Result<KeyValue, StoreError> {
        self.key(user)?
            .ok_or_else(|| StoreError::UnknownUser(user.clone()))
    }

    async fn conn(&self, what: &str) -> Result<PoolConnection<DB>, StoreError> {
        self.pool.acquire().await.map_err(self.err(what))
    }

    /// Runs a write. `linking` is the Mattermost user id it writes: a unique
    /// violation on that column (another row holds the id) is
    /// [`StoreError::AlreadyLinked`].
    async fn execute(
        &self,
        what: &str,
        q: SqlStr,
        binds: &[Bind<'_>],
        user: &HostUserId,
        key: &KeyValue,
        linking: Option<&UserId>,
    ) -> Result<u64, StoreError> {
        let result = match &self.group {
            Some(group) => match group.execute(write(q, binds)).await {
                Ok(n) => Ok(n),
                Err(Failure::Statement(e)) => Err(e),
                Err(Failure::Batch(class, message)) => {
                    return Err(from_batch::<DB>(what, class, message));
                }
            },
            None => {
                let mut conn = self.conn(what).await?;
                DB::execute_on(&mut conn, q, binds)
                    .await
                    .map(|r| DB::rows_affected(&r))
            }
        };
        match result {
            Ok(n) => Ok(n),
            Err(e) => {
                if let Some(mm) = linking {
                    let mut conn = self.conn(what).await?;
                    if self.already_linked(&mut conn, &e, mm, key).await {
                        return Err(StoreError::AlreadyLinked {
                            user: user.clone(),
                            mattermost_user_id: mm.clone(),
                        });
                    }
                }
                Err(self.err(what)(e))
            }
        }
    }

    /// Whether a failed write of `mm` to the row of `key` failed because
    /// another row holds `mm`: a unique violation the database attributes
    /// to the store's index (or, on SQLite, to the `mattermost_user_id`
    /// column alone). A violation it attributes to something else (a unique
    /// index on the column that the host made under another name) counts
    /// when another row does hold `mm`.
    async fn already_linked(
        &self,
        conn: &mut DB::Connection,
        e: &sqlx::Error,
        mm: &UserId,
        key: &KeyValue,
    ) -> bool {
        let sqlx::Error::Database(d) = e else {
            return false;
        };
        let Some(named) = DB::unique_violation(d.as_ref()) else {
            return false;
        };
        // MySQL 8 names the key `table.index`, SQLite the columns
        // `table.column, ...`.
        let last = named.rsplit('.').next().unwrap_or_default();
        if !named.contains(',')
            && (last.eq_ignore_ascii_case(&self.sql.user_id_index)
                || last.eq_ignore_ascii_case(USER_ID))
        {
            return true;
        }
        let binds = [Bind::Text(mm.as_str()), key.bind()];
        DB::fetch_on(conn, sql(&self.sql.linked_elsewhere), &binds)
            .await
            .is_ok_and(|rows| !rows.is_empty())
    }

    async fn fetch(
        &self,
        what: &str,
        q: SqlStr,
        binds: &[Bind<'_>],
    ) -> Result<Vec<DB::Row>, StoreError> {
        let mut conn = self.conn(what).await?;
        DB::fetch_on(&mut conn, q, binds)
            .await
            .map_err(self.err(what))
    }

    /// Runs an update of one user's row; when it matched no row, tells a
    /// missing user ([`StoreError::UnknownUser`]) from a condition that did
    /// not hold (`Ok(false)`).
    ///
    /// "Matched" relies on the affected-rows count meaning matched rows. It
    /// does on PostgreSQL and SQLite; MySQL by default counts changed rows
    /// only, but sqlx always connects with `CLIENT_FOUND_ROWS`, which makes
    /// it count matched rows too, so an update writing the values a row
    /// already holds still reports its row.
    async fn update_user(
        &self,
        what: &str,
        user: &HostUserId,
        key: &KeyValue,
        q: &Arc<str>,
        binds: &[Bind<'_>],
        linking: Option<&UserId>,
    ) -> Result<bool, StoreError> {
        if self
            .execute(what, sql(q), binds, user, key, linking)
            .await?
            > 0
        {
            return Ok(true);
        }
        let known = !self
            .fetch(what, sql(&self.sql.exists), &[key.bind()])
            .await?
            .is_empty();
        if known {
            Ok(false)
        } else {
            Err(StoreError::UnknownUser(user.clone()))
        }
    }

    fn decode_key(&self, row: &DB::Row) -> Result<HostUserId, sqlx::Error> {
        Ok(match self.target.key_type() {
            KeyType::Integer => HostUserId::Int(DB::column_i64(row, 0)?),
            _ => HostUserId::Text(DB::column_text(row, 0)?.unwrap_or_default()),
        })
    }

    fn decode_record(&self, row: &DB::Row) -> Result<(HostUserId, TokenRecord), sqlx::Error> {
        let key = self.decode_key(row)?;
        let record = TokenRecord {
            mattermost_user_id: DB::column_text(row, 1)?.map(UserId::new),
            token: DB::column_text(row, 2)?.map(AccessToken::new),
            token_id: DB::column_text(row, 3)?.map(TokenId::new),
            token_expires_at: DB::column_opt_i64(row, 4)?,
        };
        Ok((key, record))
    }
}

/// The parameters of the token writes: id, token, token id, expiry (NULL
/// for a token that does not expire), key.
fn token_binds<'a>(key: &'a KeyValue, t: &'a NewToken) -> [Bind<'a>; 5] {
    [
        Bind::Text(t.mattermost_user_id.as_str()),
        Bind::Text(t.token.expose_secret()),
        Bind::Text(t.token_id.as_str()),
        t.expires_at.map_or(Bind::NullInt, Bind::Int),
        key.bind(),
    ]
}

#[async_trait]
impl<DB: Backend> TokenStore for SqlxTokenStore<DB> {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        const WHAT: &str = "reading a user's token";
        let Some(key) = self.key(user)? else {
            return Ok(None);
        };
        let rows = self.fetch(WHAT, sql(&self.sql.get), &[key.bind()]).await?;
        match rows.first() {
            Some(row) => Ok(Some(self.decode_record(row).map_err(self.err(WHAT))?.1)),
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
        const WHAT: &str = "reading users' tokens";
        let mut wanted = Wanted::default();
        let mut keys = Vec::with_capacity(users.len());
        for u in users {
            if let Ok(Some(k)) = self.key(u) {
                wanted.insert(&k, u);
                keys.push(k);
            }
        }
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(IN_LIST_MAX) {
            let n = chunk.len().next_power_of_two();
            let mut binds: Vec<Bind<'_>> = chunk.iter().map(KeyValue::bind).collect();
            // Pad with the last key: a repeated IN value changes nothing.
            binds.resize(n, chunk[chunk.len() - 1].bind());
            for row in self.fetch(WHAT, self.sql.get_in(n), &binds).await? {
                let (key, record) = self.decode_record(&row).map_err(self.err(WHAT))?;
                for asked in wanted.matches(&key) {
                    out.insert(asked, record.clone());
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
        let key = self.write_key(user)?;
        let binds = [Bind::Text(mattermost_user_id.as_str()), key.bind()];
        self.update_user(
            "storing a Mattermost user id",
            user,
            &key,
            &self.sql.set_user_id,
            &binds,
            Some(mattermost_user_id),
        )
        .await?;
        Ok(())
    }

    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        let key = self.write_key(user)?;
        let binds = token_binds(&key, token);
        self.update_user(
            "storing a token",
            user,
            &key,
            &self.sql.put_if_absent,
            &binds,
            Some(&token.mattermost_user_id),
        )
        .await
    }

    async fn put_token(&self, user: &HostUserId, token: &NewToken) -> Result<(), StoreError> {
        let key = self.write_key(user)?;
        let binds = token_binds(&key, token);
        self.update_user(
            "replacing a token",
            user,
            &key,
            &self.sql.put,
            &binds,
            Some(&token.mattermost_user_id),
        )
        .await?;
        Ok(())
    }

    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        let key = self.write_key(user)?;
        let [a, b, c, d, e] = token_binds(&key, token);
        let binds = [a, b, c, d, e, Bind::Text(expected.as_str())];
        self.update_user(
            "rotating a token",
            user,
            &key,
            &self.sql.replace,
            &binds,
            Some(&token.mattermost_user_id),
        )
        .await
    }

    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError> {
        let key = self.write_key(user)?;
        self.update_user(
            "clearing a token",
            user,
            &key,
            &self.sql.clear,
            &[key.bind()],
            None,
        )
        .await
    }

    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        const WHAT: &str = "listing users without a token";
        let limit = limit.max(1);
        let after = match after {
            Some(a) => Some(self.key(a)?.ok_or_else(|| {
                StoreError::Config(format!(
                    "list_missing: {a:?} is not a UUID (the key column is uuid)"
                ))
            })?),
            None => None,
        };
        let rows = match &after {
            Some(k) => {
                let binds = [k.bind(), Bind::Int(i64::from(limit))];
                self.fetch(WHAT, sql(&self.sql.missing_after), &binds)
                    .await?
            }
            None => {
                let binds = [Bind::Int(i64::from(limit))];
                self.fetch(WHAT, sql(&self.sql.missing_first), &binds)
                    .await?
            }
        };
        let users = rows
            .iter()
            .map(|r| self.decode_key(r))
            .collect::<Result<Vec<_>, _>>()
            .map_err(self.err(WHAT))?;
        let next = if users.len() == limit as usize {
            users.last().cloned()
        } else {
            None
        };
        Ok(MissingPage { users, next })
    }
}
