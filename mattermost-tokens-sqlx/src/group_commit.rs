//! SQLite's writes, batched through the core's
//! [`GroupCommit`](mattermost_tokens::store::group_commit) (see there why).

use mattermost_tokens::store::group_commit::{Batch, BatchFuture};
use sqlx::{Pool, SqlStr};

use mattermost_tokens::store::schema::Value;

use crate::backend::{Backend, ErrorClass, binds, built_sql};

/// Why a grouped write failed.
pub(crate) enum Failure {
    /// The statement itself failed (the rest of the batch went on).
    Statement(sqlx::Error),
    /// The batch failed as a whole (no connection, `BEGIN` or `COMMIT`
    /// refused): nothing of it was written.
    Batch(ErrorClass, String),
}

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
            let n = writes.len();
            let all = |class, e: &sqlx::Error| {
                let text = e.to_string();
                (0..n)
                    .map(|_| Err(Failure::Batch(class, text.clone())))
                    .collect()
            };
            let mut conn = match self.pool.acquire().await {
                Ok(c) => c,
                Err(e) => return all(ErrorClass::Unavailable, &e),
            };
            if let Err(e) = DB::execute_on(&mut conn, SqlStr::from_static(self.begin), &[]).await {
                return all(class_of::<DB>(&e), &e);
            }
            let mut results = Vec::with_capacity(n);
            for (sql, values) in writes {
                let r = DB::execute_on(&mut conn, built_sql(sql), &binds(&values)).await;
                results.push(r.map(|r| DB::rows_affected(&r)).map_err(Failure::Statement));
            }
            if let Err(e) = DB::execute_on(&mut conn, SqlStr::from_static("COMMIT"), &[]).await {
                if DB::execute_on(&mut conn, SqlStr::from_static("ROLLBACK"), &[])
                    .await
                    .is_err()
                {
                    // A connection in an unknown transaction state must not
                    // go back to the pool.
                    drop(conn.detach());
                }
                return all(class_of::<DB>(&e), &e);
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

fn class_of<DB: Backend>(e: &sqlx::Error) -> ErrorClass {
    match e {
        sqlx::Error::Database(d) => DB::classify(d.as_ref()),
        _ => ErrorClass::Unavailable,
    }
}
