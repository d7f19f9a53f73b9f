//! SQLite's writes, batched through the core's
//! [`GroupCommit`](mattermost_tokens::store::group_commit) (see there why).

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use diesel::result::Error as DieselError;
use futures::future::BoxFuture;
use mattermost_tokens::store::group_commit::{
    Batch, BatchConnection, BatchFuture, GroupCommit, all_failed, in_transaction,
};
use mattermost_tokens::store::schema::Value;
use mattermost_tokens::store::schema::errors::ErrorClass;

use crate::pool::{ConnectionPool, timed};
use crate::store::{Sql, StoreConnection};

/// Why a grouped write failed.
pub(crate) type Failure = mattermost_tokens::store::group_commit::Failure<DieselError>;

/// Runs a batch on one pooled connection, in one `BEGIN IMMEDIATE`
/// transaction.
pub(crate) struct DieselBatch<C, P> {
    pub(crate) pool: Arc<P>,
    pub(crate) acquire_timeout: Duration,
    pub(crate) _conn: PhantomData<fn() -> C>,
}

impl<C: StoreConnection, P: ConnectionPool<C>> Batch for DieselBatch<C, P> {
    type Write = (String, Vec<Value>);
    type Error = Failure;

    fn run(&self, writes: Vec<Self::Write>) -> BatchFuture<'_, Failure> {
        Box::pin(async move {
            let timeout = self.acquire_timeout;
            let backend = C::DIALECT.name();
            let mut conn = match timed(timeout, backend, self.pool.connection()).await {
                Ok(c) => c,
                Err(e) => return all_failed(writes.len(), ErrorClass::Unavailable, &e.to_string()),
            };
            // After a failed COMMIT the core rolls back; on SQLite that
            // ROLLBACK fails only when no transaction is left open.
            in_transaction(&mut Conn(&mut *conn), "BEGIN IMMEDIATE", writes)
                .await
                .0
        })
    }

    fn abandoned(&self) -> Failure {
        Failure::Batch(
            ErrorClass::Unavailable,
            "the write batch ended without an answer".into(),
        )
    }
}

/// A checked-out connection, as the core's batch runs on it.
struct Conn<'a, C>(&'a mut C);

impl<C: StoreConnection> BatchConnection for Conn<'_, C> {
    type Error = DieselError;

    async fn exec(&mut self, sql: String, values: Vec<Value>) -> Result<u64, DieselError> {
        Ok(C::execute_sql(self.0, Sql::new(sql, &values)).await? as u64)
    }

    fn class(e: &DieselError) -> ErrorClass {
        ErrorClass::of_message(&e.to_string())
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
