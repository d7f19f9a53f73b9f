//! SQLite's writes, batched through the core's
//! [`GroupCommit`](mattermost_tokens::store::group_commit) (see there why).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use diesel::result::Error as DieselError;
use futures::future::BoxFuture;
use mattermost_tokens::StoreError;
use mattermost_tokens::store::group_commit::{Batch, BatchFuture, GroupCommit};
use mattermost_tokens::store::schema::Value;

use crate::pool::ConnectionPool;
use crate::store::{Sql, StoreConnection};

/// Why a grouped write failed.
pub(crate) enum Failure {
    /// The statement itself failed (the rest of the batch went on).
    Statement(DieselError),
    /// The batch failed as a whole (no connection, `BEGIN` or `COMMIT`
    /// refused): nothing of it was written. Whether the lock was the
    /// cause, and what was said (never a value).
    Batch { locked: bool, message: String },
}

impl Failure {
    /// The store's error for a write whose batch failed.
    pub(crate) fn into_store_error(
        self,
        backend: &str,
        table: &str,
    ) -> Result<DieselError, StoreError> {
        match self {
            Failure::Statement(e) => Ok(e),
            Failure::Batch {
                locked: true,
                message,
            } => Err(StoreError::locked(
                &format!("using table {table}"),
                backend,
                crate::error::Internal(message),
            )),
            Failure::Batch { message, .. } => Err(StoreError::Unavailable {
                message: format!("{backend}: {message}"),
                source: None,
            }),
        }
    }
}

/// Runs a batch on one pooled connection, in one `BEGIN IMMEDIATE`
/// transaction.
pub(crate) struct DieselBatch<C, P> {
    pub(crate) pool: Arc<P>,
    pub(crate) acquire_timeout: Duration,
    pub(crate) _conn: PhantomData<fn() -> C>,
}

/// Whether a `BEGIN` or `COMMIT` failed for the lock, and what was said.
fn batch_failure(e: &DieselError) -> (bool, String) {
    let message = e.to_string();
    let lower = message.to_ascii_lowercase();
    let locked = lower.contains("database is locked") || lower.contains("database is busy");
    (locked, message)
}

impl<C: StoreConnection, P: ConnectionPool<C>> Batch for DieselBatch<C, P> {
    type Write = (String, Vec<Value>);
    type Error = Failure;

    fn run(&self, writes: Vec<Self::Write>) -> BatchFuture<'_, Failure> {
        Box::pin(async move {
            let n = writes.len();
            let all = |f: &dyn Fn() -> Failure| (0..n).map(|_| Err(f())).collect::<Vec<_>>();
            let conn = tokio::time::timeout(self.acquire_timeout, self.pool.connection()).await;
            let mut conn = match conn {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    let message = e.to_string();
                    return all(&|| Failure::Batch {
                        locked: false,
                        message: message.clone(),
                    });
                }
                Err(_) => {
                    let message =
                        format!("no database connection within {:?}", self.acquire_timeout);
                    return all(&|| Failure::Batch {
                        locked: false,
                        message: message.clone(),
                    });
                }
            };
            if let Err(e) = C::execute_sql(&mut conn, Sql::new("BEGIN IMMEDIATE", &[])).await {
                let (locked, message) = batch_failure(&e);
                return all(&|| Failure::Batch {
                    locked,
                    message: message.clone(),
                });
            }
            let mut results = Vec::with_capacity(n);
            for (sql, values) in writes {
                let r = C::execute_sql(&mut conn, Sql::new(sql, &values)).await;
                results.push(r.map(|n| n as u64).map_err(Failure::Statement));
            }
            if let Err(e) = C::execute_sql(&mut conn, Sql::new("COMMIT", &[])).await {
                // A failed COMMIT leaves the transaction open: end it before
                // the connection goes back to the pool.
                let _ = C::execute_sql(&mut conn, Sql::new("ROLLBACK", &[])).await;
                let (locked, message) = batch_failure(&e);
                return all(&|| Failure::Batch {
                    locked,
                    message: message.clone(),
                });
            }
            results
        })
    }

    fn abandoned(&self) -> Failure {
        Failure::Batch {
            locked: false,
            message: "the write batch ended without an answer".into(),
        }
    }
}

/// A store's group commit, its types erased (the store names no bounds on
/// its pool type).
pub(crate) type Group =
    Arc<dyn Fn((String, Vec<Value>)) -> BoxFuture<'static, Result<u64, Failure>> + Send + Sync>;

/// Group commit over `batch`.
pub(crate) fn group<C: StoreConnection, P: ConnectionPool<C>>(batch: DieselBatch<C, P>) -> Group {
    let commit = GroupCommit::new(batch);
    Arc::new(move |write| {
        let commit = Arc::clone(&commit);
        Box::pin(async move { commit.execute(write).await })
    })
}
