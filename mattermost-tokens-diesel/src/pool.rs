//! Where a store gets its connections: [`ConnectionPool`].

use std::future::Future;
use std::ops::DerefMut;

use mattermost_tokens::StoreError;

/// A source of connections of type `C` for a store.
///
/// Implemented for diesel-async's deadpool pool
/// (`diesel_async::pooled_connection::deadpool::Pool<C>`) and, with the
/// `bb8` feature, its bb8 pool, for each supported connection type. For
/// another pool (mobc, a host's own), implement it on a newtype around the
/// pool. Errors are [`StoreError`]s: a pool that cannot hand out a
/// connection should say [`StoreError::Unavailable`]. The store bounds every
/// call with its own acquire timeout.
pub trait ConnectionPool<C>: Send + Sync + 'static {
    /// A connection checked out of the pool; returned to it when dropped.
    type Connection: DerefMut<Target = C> + Send + 'static;

    /// Checks a connection out.
    fn connection(&self) -> impl Future<Output = Result<Self::Connection, StoreError>> + Send;

    /// A connection the caller owns (used by the migrations, which hand it to
    /// diesel's blocking migration harness and drop it afterwards).
    fn dedicated(&self) -> impl Future<Output = Result<C, StoreError>> + Send;
}

/// Implements [`ConnectionPool`] for diesel-async's pools (deadpool, and
/// bb8 with the `bb8` feature) of one connection type.
macro_rules! deadpool_pool {
    ($conn:ty, $backend:expr) => {
        impl $crate::pool::ConnectionPool<$conn>
            for diesel_async::pooled_connection::deadpool::Pool<$conn>
        {
            type Connection = diesel_async::pooled_connection::deadpool::Object<$conn>;

            async fn connection(&self) -> Result<Self::Connection, mattermost_tokens::StoreError> {
                self.get()
                    .await
                    .map_err(|e| $crate::pool::deadpool_error(e, $backend))
            }

            async fn dedicated(&self) -> Result<$conn, mattermost_tokens::StoreError> {
                let object = self.connection().await?;
                Ok(diesel_async::pooled_connection::deadpool::Object::take(
                    object,
                ))
            }
        }
    };
}
pub(crate) use deadpool_pool;

#[cfg(feature = "bb8")]
macro_rules! bb8_pool {
    ($conn:ty, $backend:expr) => {
        impl $crate::pool::ConnectionPool<$conn>
            for diesel_async::pooled_connection::bb8::Pool<$conn>
        {
            type Connection =
                diesel_async::pooled_connection::bb8::PooledConnection<'static, $conn>;

            async fn connection(&self) -> Result<Self::Connection, mattermost_tokens::StoreError> {
                self.get_owned().await.map_err(|e| match e {
                    diesel_async::pooled_connection::bb8::RunError::User(e) => {
                        $crate::pool::manager_error(e, $backend)
                    }
                    diesel_async::pooled_connection::bb8::RunError::TimedOut => {
                        mattermost_tokens::StoreError::Unavailable {
                            message: format!(
                                "{}: timed out waiting for a pooled connection",
                                $backend
                            ),
                            source: None,
                        }
                    }
                })
            }

            async fn dedicated(&self) -> Result<$conn, mattermost_tokens::StoreError> {
                self.dedicated_connection()
                    .await
                    .map_err(|e| $crate::pool::manager_error(e, $backend))
            }
        }
    };
}
#[cfg(feature = "bb8")]
pub(crate) use bb8_pool;

/// Maps deadpool's error: a connection that could not be made, a timeout or
/// a closed pool all mean the store is unavailable.
pub(crate) fn deadpool_error(
    e: diesel_async::pooled_connection::deadpool::PoolError,
    backend: &'static str,
) -> StoreError {
    use diesel_async::pooled_connection::deadpool::PoolError as P;
    match e {
        P::Backend(e) => manager_error(e, backend),
        P::Timeout(t) => StoreError::unavailable(
            format!("{backend}: timed out waiting for a pooled connection ({t:?})"),
            crate::error::Internal(format!("{t:?}")),
        ),
        other => StoreError::unavailable(
            format!("{backend}: connection pool error: {other}"),
            crate::error::Internal(other.to_string()),
        ),
    }
}

/// Maps the error of diesel-async's connection manager (shared by its pools).
pub(crate) fn manager_error(
    e: diesel_async::pooled_connection::PoolError,
    backend: &'static str,
) -> StoreError {
    use diesel_async::pooled_connection::PoolError as M;
    match e {
        M::ConnectionError(c) => crate::error::connection_error(&c, backend),
        M::QueryError(q) => StoreError::unavailable(
            format!("{backend}: a pooled connection failed its health check"),
            q,
        ),
    }
}

/// `fut` (getting a connection), failing with [`StoreError::Unavailable`]
/// after `timeout`.
pub(crate) async fn timed<T>(
    timeout: std::time::Duration,
    backend: &str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unavailable {
            message: format!("{backend}: no database connection within {timeout:?}"),
            source: None,
        }),
    }
}

/// The methods a store over a [`ConnectionPool`] has, whatever it stores:
/// `migrate` and `undo_migration` (documented as given) and the pool's
/// accessors. Expands inside the inherent `impl` of a store with fields
/// `pool` and `acquire_timeout`, a `table_name()` and `migrations()`.
macro_rules! pooled_store_methods {
    ($(#[$migrate:meta])* migrate, $(#[$undo:meta])* undo) => {
        $(#[$migrate])*
        pub async fn migrate(&self) -> Result<(), StoreError> {
            self.run_migrations(false).await
        }

        $(#[$undo])*
        pub async fn undo_migration(&self) -> Result<(), StoreError> {
            self.run_migrations(true).await
        }

        /// How long an operation waits for a connection before failing with
        /// [`StoreError::Unavailable`] (default
        /// [`DEFAULT_ACQUIRE_TIMEOUT`](crate::DEFAULT_ACQUIRE_TIMEOUT)).
        pub fn with_acquire_timeout(mut self, timeout: std::time::Duration) -> Self {
            self.acquire_timeout = timeout;
            self
        }

        /// The pool the store takes its connections from.
        pub fn pool(&self) -> &P {
            &self.pool
        }

        /// Runs (or reverts) the store's migrations with a connection of
        /// their own, on tokio's blocking pool (diesel's migration harness
        /// blocks).
        async fn run_migrations(&self, revert: bool) -> Result<(), StoreError> {
            let job = self.migrations().into_steps();
            let conn = self.timed(self.pool.dedicated()).await?;
            let backend = C::DIALECT.name();
            tokio::task::spawn_blocking(move || conn.run_migrations(job, revert))
                .await
                .map_err(|e| {
                    StoreError::database(
                        format!("{backend}: the migration task failed"),
                        $crate::error::Internal(e.to_string()),
                    )
                })?
        }

        fn cx(&self) -> $crate::error::ErrorContext<'_> {
            $crate::error::ErrorContext {
                backend: C::DIALECT.name(),
                table: self.table_name(),
            }
        }

        async fn connection(&self) -> Result<P::Connection, StoreError> {
            self.timed(self.pool.connection()).await
        }

        async fn timed<T>(
            &self,
            fut: impl Future<Output = Result<T, StoreError>>,
        ) -> Result<T, StoreError> {
            $crate::pool::timed(self.acquire_timeout, C::DIALECT.name(), fut).await
        }
    };
}
pub(crate) use pooled_store_methods;
