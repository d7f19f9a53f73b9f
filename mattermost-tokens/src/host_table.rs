//! Reading the host's own users table page by page: [`HostUserTable`]
//! describes the table (a Laravel-shaped `users` table by default), and
//! [`paged`] turns a "fetch the page after this key" function into the
//! stream of [`HostUser`]s that [`UserSync`](crate::UserSync) consumes.
//!
//! The adapters (`mattermost-tokens-sqlx`, `mattermost-tokens-diesel`) run
//! the queries; this module owns what they mean, so both read the same rows
//! the same way.
//!
//! # Why pages, and why keyset pages
//! A single `SELECT ... ORDER BY id` streamed over a whole sync keeps one
//! read open for as long as the sync runs. On a SQLite file in its default
//! rollback-journal mode an open read blocks every writer from committing,
//! and the sync's own writes wait behind it: each store write then waits
//! out the busy timeout and fails. On PostgreSQL and MySQL the open cursor
//! pins one snapshot for minutes, so rows added meanwhile are never seen.
//!
//! Each page here is one short statement, `WHERE key > last ORDER BY key
//! LIMIT n`, that holds no connection, cursor or lock once it returns. Rows
//! inserted during a sync with a key above the current page are read by the
//! same sync; rows inserted below it (text or UUID keys) are found by the
//! next `--missing` run, since they have no token.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::{self, Stream, StreamExt, TryStreamExt};

use crate::host::HostUser;
use crate::ids::HostUserId;
use crate::store::schema::{Dialect, KeyType, UuidKeys, Value, key_value};
use crate::store::{StoreError, validate_column_name, validate_identifier};

/// Rows read per page by default: small enough that a page is a short
/// statement, large enough that a million users cost a few thousand reads.
pub const DEFAULT_PAGE_SIZE: u32 = 500;

/// The largest page size accepted.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// Where the host keeps its users and which columns the library reads.
///
/// [`HostUserTable::laravel`] (also the [`Default`]) describes Laravel's
/// `users` table: key `id`, `name` (a full name, split into first and last
/// name at the first space), `email`, and `email_verified_at` (a non-NULL
/// value means the host verified the address). Every name is validated as
/// an SQL identifier, since the adapters write it into SQL.
///
/// ```
/// use mattermost_tokens::HostUserTable;
///
/// let table = HostUserTable::laravel()
///     .with_table_name("app.members")?
///     .with_split_name_columns("first_name", "last_name")?
///     .with_email_verified_column(None)?
///     .with_page_size(200)?;
/// assert_eq!(table.table(), "app.members");
/// # Ok::<(), mattermost_tokens::StoreError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostUserTable {
    table: String,
    key: String,
    email: String,
    names: NameColumns,
    email_verified: Option<String>,
    inactive: Option<(String, InactiveWhen)>,
    page_size: u32,
}

/// How a column says a host user has left (see
/// [`HostUserTable::with_inactive_column`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InactiveWhen {
    /// A non-NULL value means gone (Laravel's soft-delete `deleted_at`).
    NotNull,
    /// A false value means gone (an `active` flag; NULL counts as active).
    False,
    /// A true value means gone (a `banned` or `disabled` flag).
    True,
}

/// The text columns of one row of the host-user statements, in
/// select-list order: key, email, name, first name, last name, verified,
/// active.
pub type HostColumns = [Option<String>; 7];

/// How the host stores a user's name.
#[derive(Clone, Debug, PartialEq, Eq)]
enum NameColumns {
    /// One full-name column, split at the first space.
    Full(String),
    /// Separate first- and last-name columns.
    Split { first: String, last: String },
}

impl Default for HostUserTable {
    fn default() -> Self {
        Self::laravel()
    }
}

impl HostUserTable {
    /// Laravel's `users` table: `id`, `name`, `email`, `email_verified_at`.
    pub fn laravel() -> Self {
        HostUserTable {
            table: "users".into(),
            key: "id".into(),
            email: "email".into(),
            names: NameColumns::Full("name".into()),
            email_verified: Some("email_verified_at".into()),
            inactive: None,
            page_size: DEFAULT_PAGE_SIZE,
        }
    }

    /// The table (optionally `schema.table`).
    pub fn with_table_name(mut self, table: &str) -> Result<Self, StoreError> {
        validate_identifier(table)?;
        self.table = table.into();
        Ok(self)
    }

    /// The key column (the same key the token store uses).
    pub fn with_key_column(mut self, column: &str) -> Result<Self, StoreError> {
        self.key = checked(column)?;
        Ok(self)
    }

    /// The email column.
    pub fn with_email_column(mut self, column: &str) -> Result<Self, StoreError> {
        self.email = checked(column)?;
        Ok(self)
    }

    /// One full-name column, split into first and last name at the first
    /// space (Laravel's `name`).
    pub fn with_name_column(mut self, column: &str) -> Result<Self, StoreError> {
        self.names = NameColumns::Full(checked(column)?);
        Ok(self)
    }

    /// Separate first- and last-name columns.
    pub fn with_split_name_columns(mut self, first: &str, last: &str) -> Result<Self, StoreError> {
        self.names = NameColumns::Split {
            first: checked(first)?,
            last: checked(last)?,
        };
        Ok(self)
    }

    /// The column whose non-NULL value says the host verified the email
    /// (Laravel's `email_verified_at`); `None` when the host keeps none, and
    /// then every user reads as unverified.
    pub fn with_email_verified_column(mut self, column: Option<&str>) -> Result<Self, StoreError> {
        self.email_verified = column.map(checked).transpose()?;
        Ok(self)
    }

    /// The column that says a user has left the app (`None`, the default:
    /// every row is an active user). Leavers are read with
    /// [`HostUser::active`] false: a sync does not create or mint for them,
    /// and [`UserSync::reconcile`](crate::UserSync::reconcile) prunes them
    /// when [`SyncOptions::leavers`](crate::SyncOptions::leavers) says so.
    pub fn with_inactive_column(
        mut self,
        column: Option<(&str, InactiveWhen)>,
    ) -> Result<Self, StoreError> {
        self.inactive = column
            .map(|(c, when)| checked(c).map(|c| (c, when)))
            .transpose()?;
        Ok(self)
    }

    /// Rows per page, 1 to [`MAX_PAGE_SIZE`] (default [`DEFAULT_PAGE_SIZE`]).
    pub fn with_page_size(mut self, rows: u32) -> Result<Self, StoreError> {
        if !(1..=MAX_PAGE_SIZE).contains(&rows) {
            return Err(StoreError::Config(format!(
                "page size {rows} must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        self.page_size = rows;
        Ok(self)
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The key column.
    pub fn key_column(&self) -> &str {
        &self.key
    }

    /// Rows per page.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The select list an adapter puts after `SELECT`: `key_expr` (the key
    /// column as the adapter reads it, for example cast to text) as
    /// `mmt_id`, then `mmt_email`, `mmt_first`, `mmt_last` (NULL with a
    /// full-name column), `mmt_name` (NULL with split columns) and
    /// `mmt_verified` (the text `'1'` when the verified column is not NULL,
    /// else `'0'`: text reads the same way on every database) and
    /// `mmt_active` (`'1'` unless the inactive column says the user left).
    /// [`HostUserRow`] holds one row of it.
    pub fn select_list(&self, key_expr: &str) -> String {
        let (name, first, last) = match &self.names {
            NameColumns::Full(n) => (n.as_str(), "NULL", "NULL"),
            NameColumns::Split { first, last } => ("NULL", first.as_str(), last.as_str()),
        };
        let verified = match &self.email_verified {
            Some(c) => format!("CASE WHEN {c} IS NULL THEN '0' ELSE '1' END"),
            None => "'0'".into(),
        };
        let active = match &self.inactive {
            None => "'1'".into(),
            Some((c, InactiveWhen::NotNull)) => {
                format!("CASE WHEN {c} IS NULL THEN '1' ELSE '0' END")
            }
            Some((c, InactiveWhen::False)) => {
                format!("CASE WHEN {c} IS NULL OR {c} THEN '1' ELSE '0' END")
            }
            Some((c, InactiveWhen::True)) => format!("CASE WHEN {c} THEN '0' ELSE '1' END"),
        };
        format!(
            "{key_expr} AS mmt_id, {email} AS mmt_email, {name} AS mmt_name, \
             {first} AS mmt_first, {last} AS mmt_last, {verified} AS mmt_verified, \
             {active} AS mmt_active",
            email = self.email
        )
    }
}

/// The statements that read a [`HostUserTable`] in one database's dialect,
/// the key read as text. Every adapter runs these and nothing else, and
/// decodes each row's text columns with [`HostUserQueries::user`].
#[derive(Clone, Debug)]
pub struct HostUserQueries {
    /// The first page: one parameter, the limit.
    pub first: String,
    /// The page after a key: the key, then the limit.
    pub after: String,
    /// One user by key.
    pub by_id: String,
    dialect: Dialect,
    key_type: KeyType,
    table: String,
    key: String,
    page_size: u32,
}

impl HostUserTable {
    /// The statements for `dialect`, for a key column of `key_type`.
    pub fn queries(&self, dialect: Dialect, key_type: KeyType) -> HostUserQueries {
        let key = &self.key;
        let select = format!(
            "SELECT {} FROM {}",
            self.select_list(&dialect.as_text(key)),
            self.table
        );
        let kp = |n| dialect.key_param(n, key_type);
        HostUserQueries {
            first: format!("{select} ORDER BY {key} LIMIT {}", dialect.placeholder(1)),
            after: format!(
                "{select} WHERE {key} > {} ORDER BY {key} LIMIT {}",
                kp(1),
                dialect.placeholder(2)
            ),
            by_id: format!("{select} WHERE {key} = {}", kp(1)),
            dialect,
            key_type,
            table: self.table.clone(),
            key: key.clone(),
            page_size: self.page_size,
        }
    }
}

impl HostUserQueries {
    /// The key type the statements were made for.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The parameter for `user`'s key; `Ok(None)` when no row can have it
    /// (a string that is not a UUID, for a PostgreSQL `uuid` key).
    pub fn key(&self, user: &HostUserId) -> Result<Option<Value>, StoreError> {
        let uuids = if self.dialect.native_uuid() {
            UuidKeys::Native
        } else {
            UuidKeys::AsText
        };
        Ok(key_value(self.key_type, uuids, user)?.map(|k| match k {
            crate::store::schema::KeyValue::Int(i) => Value::Int(i),
            crate::store::schema::KeyValue::Text(t) => Value::Text(t),
        }))
    }

    /// Up to `limit` users after `after` (from the first when `None`): `run`
    /// executes a statement with its parameters and returns the rows' text
    /// columns. The adapters' [`HostUserSource::page`].
    pub async fn page<F, Fut>(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
        run: F,
    ) -> Result<Vec<HostUser>, StoreError>
    where
        F: Fn(String, Vec<Value>) -> Fut,
        Fut: Future<Output = Result<Vec<HostColumns>, StoreError>>,
    {
        let limit = Value::Int(i64::from(limit));
        let rows = match after {
            None => run(self.first.clone(), vec![limit]).await?,
            Some(a) => match self.key(a)? {
                Some(key) => run(self.after.clone(), vec![key, limit]).await?,
                None => return Ok(Vec::new()),
            },
        };
        rows.into_iter().map(|r| self.user(r)).collect()
    }

    /// The users with these keys that exist, one statement each, through
    /// `run` as for [`page`](Self::page).
    pub async fn by_ids<F, Fut>(
        &self,
        ids: &[HostUserId],
        run: F,
    ) -> Result<Vec<HostUser>, StoreError>
    where
        F: Fn(String, Vec<Value>) -> Fut,
        Fut: Future<Output = Result<Vec<HostColumns>, StoreError>>,
    {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(key) = self.key(id)? {
                for row in run(self.by_id.clone(), vec![key]).await? {
                    out.push(self.user(row)?);
                }
            }
        }
        Ok(out)
    }

    /// The user of one row: its columns, as text, in select-list order
    /// (key, email, name, first name, last name, verified, active).
    pub fn user(&self, columns: HostColumns) -> Result<HostUser, StoreError> {
        let [id, email, name, first_name, last_name, verified, active] = columns;
        let id = id.unwrap_or_default();
        let id = match self.key_type {
            KeyType::Integer => id.trim().parse().map(HostUserId::Int).map_err(|_| {
                StoreError::Config(format!(
                    "key column {}.{} holds a non-integer value; configure KeyType::Text",
                    self.table, self.key
                ))
            })?,
            _ => HostUserId::Text(id),
        };
        Ok(HostUserRow {
            id,
            email,
            name,
            first_name,
            last_name,
            email_verified: verified.as_deref() == Some("1"),
            active: active.as_deref() != Some("0"),
        }
        .into())
    }
}

fn checked(column: &str) -> Result<String, StoreError> {
    validate_column_name(column)?;
    Ok(column.into())
}

/// One row of [`HostUserTable::select_list`], as an adapter decoded it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostUserRow {
    /// The key.
    pub id: HostUserId,
    /// `mmt_email` (a NULL email reads as empty, and the sync reports that
    /// user as invalid instead of skipping it silently).
    pub email: Option<String>,
    /// `mmt_name`.
    pub name: Option<String>,
    /// `mmt_first`.
    pub first_name: Option<String>,
    /// `mmt_last`.
    pub last_name: Option<String>,
    /// `mmt_verified`.
    pub email_verified: bool,
    /// `mmt_active`.
    pub active: bool,
}

impl From<HostUserRow> for HostUser {
    fn from(row: HostUserRow) -> Self {
        let email = row.email.unwrap_or_default();
        let user = match (row.first_name, row.last_name) {
            (None, None) => HostUser::new(row.id, email, row.name.as_deref().unwrap_or("")),
            (first, last) => HostUser::with_names(
                row.id,
                email,
                first.unwrap_or_default(),
                last.unwrap_or_default(),
            ),
        };
        user.email_verified(row.email_verified).active(row.active)
    }
}

/// Where the host's users come from, a page at a time: implemented by the
/// adapters' `SqlxHostUsers` and `DieselHostUsers` over a
/// [`HostUserTable`], and by a host for any other shape. Object safe, so a
/// host can hold `Arc<dyn HostUserSource>` whatever the database.
#[async_trait]
pub trait HostUserSource: Send + Sync + fmt::Debug {
    /// Up to `limit` users with a key greater than `after` (from the first
    /// when `None`), in key order. One short statement: nothing is held
    /// when it returns.
    async fn page(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<Vec<HostUser>, StoreError>;

    /// The users with these keys that exist (unknown keys are left out).
    async fn by_ids(&self, ids: &[HostUserId]) -> Result<Vec<HostUser>, StoreError>;

    /// Rows per page for [`stream()`](fn@stream).
    fn page_size(&self) -> u32 {
        DEFAULT_PAGE_SIZE
    }
}

/// What a database adapter gives a [`HostUserTable`] to be a
/// [`HostUserSource`]: the table, its queries, and a way to run one; the
/// paging is the core's.
#[async_trait]
pub trait SqlHostUserTable: Send + Sync + fmt::Debug {
    /// The table's statements, for the adapter's dialect and key type.
    fn host_queries(&self) -> &HostUserQueries;

    /// The seven text columns of each row `sql` returns.
    async fn host_rows(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Vec<HostColumns>, StoreError>;
}

#[async_trait]
impl<T: SqlHostUserTable> HostUserSource for T {
    async fn page(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<Vec<HostUser>, StoreError> {
        let run = |sql, p| self.host_rows(sql, p);
        self.host_queries().page(after, limit, run).await
    }

    async fn by_ids(&self, ids: &[HostUserId]) -> Result<Vec<HostUser>, StoreError> {
        let run = |sql, p| self.host_rows(sql, p);
        self.host_queries().by_ids(ids, run).await
    }

    fn page_size(&self) -> u32 {
        self.host_queries().page_size
    }
}

/// The inherent methods of a SQL adapter's host-user reader, written once
/// so that both adapters have the same ones: `with_key_type`, `table` and
/// `stream`. Expands inside the `impl` of a `Clone` [`SqlHostUserTable`]
/// with fields `table: Arc<HostUserTable>` and `sql: Arc<HostUserQueries>`,
/// given its dialect.
#[doc(hidden)]
#[macro_export]
macro_rules! host_users_methods {
    ($dialect:expr) => {
        /// Sets the key column's type (integer by default), as for the token
        /// store.
        pub fn with_key_type(mut self, key_type: $crate::store::schema::KeyType) -> Self {
            self.sql = std::sync::Arc::new(self.table.queries($dialect, key_type));
            self
        }

        /// The table description.
        pub fn table(&self) -> &$crate::HostUserTable {
            &self.table
        }

        /// Every user, in key order, a page at a time (see
        /// [`paged`]($crate::host_table::paged)).
        pub fn stream(
            &self,
        ) -> impl futures::Stream<Item = Result<$crate::HostUser, $crate::StoreError>> + Send + 'static
        {
            $crate::host_table::stream(std::sync::Arc::new(self.clone()))
        }
    };
}

/// Every user of `source`, in key order, a page at a time (see [`paged`]).
pub fn stream(
    source: Arc<dyn HostUserSource>,
) -> impl Stream<Item = Result<HostUser, StoreError>> + Send + 'static {
    let size = source.page_size();
    paged(size, move |after, limit| {
        let source = Arc::clone(&source);
        async move { source.page(after.as_ref(), limit).await }
    })
}

/// The host users of a table, read in keyset pages: `fetch(after, limit)`
/// returns up to `limit` users with a key greater than `after` (all users
/// from the start when `None`), in key order. Pages are fetched as the
/// stream is consumed; nothing is held between them. The stream ends after
/// a short page, and after the first error (which it yields).
pub fn paged<F, Fut>(page_size: u32, fetch: F) -> impl Stream<Item = Result<HostUser, StoreError>>
where
    F: FnMut(Option<HostUserId>, u32) -> Fut,
    Fut: Future<Output = Result<Vec<HostUser>, StoreError>>,
{
    struct State<F> {
        fetch: F,
        after: Option<HostUserId>,
        done: bool,
    }
    let state = State {
        fetch,
        after: None,
        done: false,
    };
    stream::try_unfold(state, move |mut s| async move {
        if s.done {
            return Ok(None);
        }
        let page = (s.fetch)(s.after.clone(), page_size).await?;
        s.done = page.len() < page_size as usize;
        match page.last() {
            Some(last) => s.after = Some(last.id.clone()),
            None => s.done = true,
        }
        Ok(Some((page, s)))
    })
    .map_ok(|page| stream::iter(page.into_iter().map(Ok)))
    .try_flatten()
    .fuse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn names_are_validated() {
        let t = HostUserTable::laravel();
        assert!(matches!(
            t.clone().with_table_name("users; DROP"),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            t.clone().with_email_column("u.email"),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            t.clone().with_split_name_columns("first", "last name"),
            Err(StoreError::Config(_))
        ));
        assert!(matches!(
            t.clone().with_page_size(0),
            Err(StoreError::Config(_))
        ));
        assert!(t.with_page_size(MAX_PAGE_SIZE).is_ok());
    }

    #[test]
    fn select_list_reads_each_shape() {
        let l = HostUserTable::laravel().select_list("id");
        assert_eq!(
            l,
            "id AS mmt_id, email AS mmt_email, name AS mmt_name, NULL AS mmt_first, NULL AS mmt_last, \
             CASE WHEN email_verified_at IS NULL THEN '0' ELSE '1' END AS mmt_verified, \
             '1' AS mmt_active"
        );
        let s = HostUserTable::laravel()
            .with_split_name_columns("given", "family")
            .unwrap()
            .with_email_verified_column(None)
            .unwrap()
            .select_list("CAST(id AS TEXT)");
        assert!(s.contains(
            "NULL AS mmt_name, given AS mmt_first, family AS mmt_last, '0' AS mmt_verified"
        ));
    }

    #[test]
    fn rows_become_users() {
        let full: HostUser = HostUserRow {
            id: 7.into(),
            email: Some("ana@example.com".into()),
            name: Some("Ana María López".into()),
            first_name: None,
            last_name: None,
            email_verified: true,
            active: true,
        }
        .into();
        assert_eq!(
            (full.first_name.as_str(), full.last_name.as_str()),
            ("Ana", "María López")
        );
        assert_eq!(full.email_verified, Some(true));
        let split: HostUser = HostUserRow {
            id: "u-1".into(),
            email: None,
            first_name: Some("Bo".into()),
            last_name: None,
            name: None,
            email_verified: false,
            active: false,
        }
        .into();
        assert_eq!(
            (split.first_name.as_str(), split.last_name.as_str()),
            ("Bo", "")
        );
        assert_eq!(split.email, "");
        assert_eq!(split.email_verified, Some(false));
        assert!(full.active && !split.active);
    }

    #[test]
    fn the_inactive_column_reads_as_active() {
        let list = |when| {
            HostUserTable::laravel()
                .with_inactive_column(Some(("deleted_at", when)))
                .unwrap()
                .select_list("id")
        };
        assert!(
            list(InactiveWhen::NotNull)
                .ends_with("CASE WHEN deleted_at IS NULL THEN '1' ELSE '0' END AS mmt_active")
        );
        assert!(list(InactiveWhen::False).contains("deleted_at IS NULL OR deleted_at THEN '1'"));
        assert!(list(InactiveWhen::True).contains("CASE WHEN deleted_at THEN '0' ELSE '1' END"));
        assert!(
            HostUserTable::laravel()
                .select_list("id")
                .ends_with("'1' AS mmt_active")
        );
        assert!(
            HostUserTable::laravel()
                .with_inactive_column(Some(("bad name", InactiveWhen::NotNull)))
                .is_err()
        );
    }

    /// The pages asked for, and the users yielded, for a table of `n` users.
    async fn run(n: i64, page: u32) -> (Vec<Option<HostUserId>>, Vec<HostUserId>) {
        let asked = Arc::new(Mutex::new(Vec::new()));
        let log = asked.clone();
        let users: Vec<_> = paged(page, move |after, limit| {
            log.lock().unwrap().push(after.clone());
            let start = match after {
                Some(HostUserId::Int(i)) => i + 1,
                _ => 1,
            };
            let end = (start + i64::from(limit)).min(n + 1);
            async move {
                Ok((start..end)
                    .map(|i| HostUser::new(i, format!("u{i}@example.com"), "U"))
                    .collect())
            }
        })
        .map(|r| r.unwrap().id)
        .collect()
        .await;
        let asked = asked.lock().unwrap().clone();
        (asked, users)
    }

    #[tokio::test]
    async fn pages_follow_the_last_key() {
        let (asked, users) = run(7, 3).await;
        assert_eq!(asked, vec![None, Some(3.into()), Some(6.into())]);
        assert_eq!(users, (1..=7).map(HostUserId::from).collect::<Vec<_>>());
        // A full last page costs one more (empty) read, and no more.
        let (asked, users) = run(6, 3).await;
        assert_eq!(asked.len(), 3);
        assert_eq!(users.len(), 6);
        let (asked, users) = run(0, 3).await;
        assert_eq!((asked.len(), users.len()), (1, 0));
    }

    #[tokio::test]
    async fn an_error_ends_the_stream() {
        let mut calls = 0;
        let items: Vec<_> = paged(2, move |_, _| {
            calls += 1;
            let c = calls;
            async move {
                if c == 1 {
                    Ok(vec![
                        HostUser::new(1, "a@x.io", "A"),
                        HostUser::new(2, "b@x.io", "B"),
                    ])
                } else {
                    Err(StoreError::Config("boom".into()))
                }
            }
        })
        .collect()
        .await;
        assert_eq!(items.len(), 3);
        assert!(items[2].is_err());
    }
}
