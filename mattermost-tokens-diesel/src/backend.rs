//! What each backend module declares, written once: [`backend!`] gives a
//! connection type its pools, its place in the store and the code store,
//! and the migrations' way to read the catalog through it.

use diesel_async::pooled_connection::deadpool::BuildError;
use mattermost_tokens::StoreError;
use mattermost_tokens::store::schema::Dialect;

/// A pool as built, or why the builder refused.
pub(crate) fn built<P>(pool: Result<P, BuildError>, dialect: Dialect) -> Result<P, StoreError> {
    pool.map_err(|e| StoreError::Config(format!("cannot build the {} pool: {e}", dialect.name())))
}

/// Rows of nullable text columns, named as the core's queries name them,
/// and read back as an array in that order.
macro_rules! text_rows {
    ($($(#[$doc:meta])* $row:ident { $($column:ident),+ })+) => {$(
        $(#[$doc])*
        #[derive(diesel::QueryableByName, Debug)]
        pub struct $row {
            $(#[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
            $column: Option<String>,)+
        }

        impl $row {
            /// The columns, in order.
            pub fn into_array(self) -> [Option<String>; [$(stringify!($column)),+].len()] {
                [$(self.$column),+]
            }
        }
    )+};
}
pub(crate) use text_rows;

/// Declares a backend: `$db` (diesel's backend type), reached through
/// connections of type `$conn` speaking `$dialect`, whose store and code
/// store are `$store` and `$codes` over the deadpool pool `$pool`, made by
/// `pool(url, size)` from the connection manager `$manager` (`$size`
/// connections from `from_url`). A migration run through a harness reads
/// the catalog through the concrete connection behind diesel's
/// `&mut dyn BoxableConnection`: an `AsyncConnectionWrapper` over a
/// connection, a deadpool object or a bb8 one, or `$also`.
macro_rules! backend {
    (
        $db:ty, $conn:ty, $dialect:expr, $name:literal, size: $size:literal,
        store: $store:ident, codes: $codes:ident, users: $users:ident, pool: $pool:ident,
        url: $url_doc:literal, manager: |$url:ident| $manager:expr,
        $(also: $also:ty,)?
    ) => {
        #[doc = concat!("diesel-async's deadpool pool of ", $name, " connections.")]
        pub type $pool = diesel_async::pooled_connection::deadpool::Pool<$conn>;

        #[doc = concat!("A pool of up to `max_size` connections to `url` (", $url_doc, "),")]
        /// made lazily.
        pub fn pool(url: &str, max_size: usize) -> Result<$pool, mattermost_tokens::StoreError> {
            let $url = url;
            let pool = $pool::builder($manager).max_size(max_size).build();
            $crate::backend::built(pool, $dialect)
        }

        #[doc = concat!("A [`TokenStore`](mattermost_tokens::TokenStore) on ", $name, ". `P` is the")]
        #[doc = concat!("pool ([`", stringify!($pool), "`] unless the host brings another")]
        /// [`ConnectionPool`](crate::ConnectionPool)).
        pub type $store<P = $pool> = $crate::DieselTokenStore<$conn, P>;

        #[doc = concat!("A magic-link [`CodeStore`](mattermost_tokens::magic_link::CodeStore) on ", $name)]
        #[doc = concat!("(see [`DieselCodeStore`](crate::DieselCodeStore)). `P` is the pool ([`", stringify!($pool), "`]")]
        /// unless the host brings another [`ConnectionPool`](crate::ConnectionPool)).
        pub type $codes<P = $pool> = $crate::DieselCodeStore<$conn, P>;

        #[doc = concat!("The host's users in a ", $name, " table (see [`DieselHostUsers`](crate::DieselHostUsers)).")]
        pub type $users<P = $pool> = $crate::DieselHostUsers<$conn, P>;

        impl $store {
            #[doc = concat!("A store over a new pool of ", $size, " connections to `url` (see [`pool`]),")]
            /// made lazily: the first operation or
            /// [`migrate`](crate::DieselTokenStore::migrate) connects.
            pub fn from_url(url: &str) -> Result<Self, mattermost_tokens::StoreError> {
                Ok(Self::new(pool(url, $size)?))
            }
        }

        impl $codes {
            #[doc = concat!("A code store over a new pool of ", $size, " connections to `url`,")]
            /// made lazily. To share the token store's pool instead, pass
            /// `token_store.pool().clone()` to
            /// [`new`](crate::DieselCodeStore::new).
            pub fn from_url(url: &str) -> Result<Self, mattermost_tokens::StoreError> {
                Ok(Self::new(pool(url, $size)?))
            }
        }

        $crate::pool::deadpool_pool!($conn, $dialect.name());
        #[cfg(feature = "bb8")]
        $crate::pool::bb8_pool!($conn, $dialect.name());

        impl $crate::store::StoreConnection for $conn {}

        impl $crate::store::sealed::Connection for $conn {
            const DIALECT: mattermost_tokens::store::schema::Dialect = $dialect;

            async fn execute_sql(&mut self, sql: $crate::store::Sql) -> diesel::QueryResult<usize> {
                diesel_async::RunQueryDsl::execute(sql.into_query::<$db>(), self).await
            }

            async fn load_records(
                &mut self,
                sql: $crate::store::Sql,
            ) -> diesel::QueryResult<Vec<(String, mattermost_tokens::TokenRecord)>> {
                let q = sql.into_query::<$db>();
                let rows: Vec<$crate::store::RecordRow> =
                    diesel_async::RunQueryDsl::load(q, self).await?;
                Ok(rows.into_iter().map($crate::store::RecordRow::into_record).collect())
            }

            async fn load_keys(&mut self, sql: $crate::store::Sql) -> diesel::QueryResult<Vec<String>> {
                let q = sql.into_query::<$db>();
                let rows: Vec<$crate::store::KeyRow> = diesel_async::RunQueryDsl::load(q, self).await?;
                Ok(rows.into_iter().map(|r| { let [key] = r.into_array(); key.unwrap_or_default() }).collect())
            }

            async fn load_host_users(
                &mut self,
                sql: $crate::store::Sql,
            ) -> diesel::QueryResult<Vec<$crate::host_users::HostRow>> {
                diesel_async::RunQueryDsl::load(sql.into_query::<$db>(), self).await
            }

            async fn load_code_users(
                &mut self,
                sql: $crate::store::Sql,
            ) -> diesel::QueryResult<Vec<(Option<String>, Option<String>)>> {
                let q = sql.into_query::<$db>();
                let rows: Vec<$crate::code_store::CodeUserRow> =
                    diesel_async::RunQueryDsl::load(q, self).await?;
                Ok(rows.into_iter().map(|r| { let [id, kind] = r.into_array(); (id, kind) }).collect())
            }

            fn run_migrations(
                self,
                job: $crate::migration::TokenMigrations,
                revert: bool,
            ) -> Result<(), mattermost_tokens::StoreError> {
                job.apply_locked::<$db, _>(self, revert)
            }
        }

        impl $crate::migration::MigrationBackend for $db {}

        impl $crate::migration::sealed::Backend for $db {
            const DIALECT: mattermost_tokens::store::schema::Dialect = $dialect;

            fn columns(
                conn: &mut dyn diesel::connection::BoxableConnection<$db>,
                q: $crate::migration::sealed::Catalog,
            ) -> diesel::migration::Result<Vec<$crate::migration::sealed::ColumnRow>> {
                migration_rows(conn, q)
            }

            fn indexes(
                conn: &mut dyn diesel::connection::BoxableConnection<$db>,
                q: $crate::migration::sealed::Catalog,
            ) -> diesel::migration::Result<Vec<$crate::migration::sealed::IndexRow>> {
                migration_rows(conn, q)
            }

            fn counts(
                conn: &mut dyn diesel::connection::BoxableConnection<$db>,
                q: $crate::migration::sealed::Catalog,
            ) -> diesel::migration::Result<Vec<$crate::migration::sealed::Count>> {
                migration_rows(conn, q)
            }
        }

        /// The rows of `q` (on `table`, named in errors), through the
        /// concrete connection behind `conn`: diesel hands migrations a
        /// trait object, and reading needs the connection's type.
        fn migration_rows<R: diesel::QueryableByName<$db> + 'static>(
            conn: &mut dyn diesel::connection::BoxableConnection<$db>,
            (table, q): $crate::migration::sealed::Catalog,
        ) -> diesel::migration::Result<Vec<R>> {
            fn load<C, R>(
                conn: &mut C,
                q: &mattermost_tokens::store::schema::sql::Query,
            ) -> diesel::QueryResult<Vec<R>>
            where
                C: diesel::Connection<Backend = $db> + diesel::connection::LoadConnection,
                R: diesel::QueryableByName<$db> + 'static,
            {
                use diesel::sql_types::{Nullable, Text};
                let mut query = diesel::sql_query(q.sql.clone()).into_boxed::<$db>();
                for p in &q.params {
                    query = query.bind::<Nullable<Text>, _>(p.clone());
                }
                diesel::RunQueryDsl::load(query, conn)
            }
            use diesel_async::async_connection_wrapper::AsyncConnectionWrapper as Wrapper;
            type Object = diesel_async::pooled_connection::deadpool::Object<$conn>;
            #[cfg(feature = "bb8")]
            type Bb8 = diesel_async::pooled_connection::bb8::PooledConnection<'static, $conn>;
            #[allow(clippy::never_loop)]
            let loaded = loop {
                $(if let Some(c) = conn.downcast_mut::<$also>() {
                    break Some(load::<_, R>(c, q));
                })?
                if let Some(c) = conn.downcast_mut::<Wrapper<$conn>>() {
                    break Some(load::<_, R>(c, q));
                }
                if let Some(c) = conn.downcast_mut::<Wrapper<Object>>() {
                    break Some(load::<_, R>(c, q));
                }
                #[cfg(feature = "bb8")]
                if let Some(c) = conn.downcast_mut::<Wrapper<Bb8>>() {
                    break Some(load::<_, R>(c, q));
                }
                break None;
            };
            match loaded {
                Some(rows) => Ok(rows?),
                None => Err($crate::migration::unsupported_connection($dialect, table)),
            }
        }
    };
}
pub(crate) use backend;
