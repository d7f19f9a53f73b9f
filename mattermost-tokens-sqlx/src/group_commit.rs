//! SQLite's writes, batched through the core's
//! [`GroupCommit`](mattermost_tokens::store::group_commit) (see there why).

use mattermost_tokens::store::group_commit::{
    Batch, BatchConnection, BatchFuture, all_failed, in_transaction,
};
use sqlx::Pool;

use mattermost_tokens::store::schema::Value;

use mattermost_tokens::store::schema::errors::ErrorClass;

use crate::backend::{Backend, binds, built_sql};

/// Why a grouped write failed.
pub(crate) type Failure = mattermost_tokens::store::group_commit::Failure<sqlx::Error>;

/// Runs a batch on one connection of the pool, in one transaction opened
/// with `begin`.
pub(crate) struct SqlxBatch<DB: Backend> {
    pub(crate) pool: Pool<DB>,
    pub(crate) begin: &'static str,
}

impl<DB: Backend> Batch for SqlxBatch<DB> {
    type Write = (String, Vec<Value>);
    type Error = Failure;

    fn run(&self, writes: Vec<Self::Write>) -> BatchFuture<'_, Failure> {
        Box::pin(async move {
            let mut conn = match self.pool.acquire().await {
                Ok(c) => c,
                Err(e) => return all_failed(writes.len(), ErrorClass::Unavailable, &e.to_string()),
            };
            let (results, broken) =
                in_transaction(&mut Conn::<DB>(&mut conn), self.begin, writes).await;
            if broken {
                // A connection in an unknown transaction state must not go
                // back to the pool.
                drop(conn.detach());
            }
            results
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
struct Conn<'a, DB: Backend>(&'a mut DB::Connection);

impl<DB: Backend> BatchConnection for Conn<'_, DB> {
    type Error = sqlx::Error;

    async fn exec(&mut self, sql: String, values: Vec<Value>) -> Result<u64, sqlx::Error> {
        let r = DB::execute_on(self.0, built_sql(sql), &binds(&values)).await?;
        Ok(DB::rows_affected(&r))
    }

    fn class(e: &sqlx::Error) -> ErrorClass {
        match e {
            sqlx::Error::Database(d) => DB::classify(d.as_ref()),
            _ => ErrorClass::Unavailable,
        }
    }
}
