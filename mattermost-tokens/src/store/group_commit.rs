//! Group commit, for database adapters: writes that arrive while a batch
//! is being committed wait, and then run together in the next batch, in
//! one transaction, committed once.
//!
//! SQLite has one writer at a time, and in its default rollback-journal
//! mode (`journal_mode=delete`, the mode a host's file is usually in) every
//! commit creates, syncs and deletes a journal file: milliseconds of disk
//! time each. A sync writes twice per user. With one commit per write, and
//! the store's connections queueing for the lock in SQLite's sleeping busy
//! handler, a 2,000-user sync over such a file took six times as long as
//! over the same file in WAL mode. Batching the writes that pile up while a
//! commit runs (up to the sync's concurrency) takes most of that back,
//! without changing the host's journal mode or any other setting of its
//! database.
//!
//! The adapter's [`Batch::run`] keeps each write's own result: it runs the
//! statements one by one inside the transaction (SQLite undoes a failing
//! statement, a unique violation say, without ending the transaction), and
//! when `BEGIN` or `COMMIT` fails it answers every write of the batch with
//! that failure and makes none of them. Batches run in a task of their
//! own, so a caller that stops waiting cannot leave one half done: each
//! write is either committed, and reported so to whoever still listens, or
//! not made.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::store::StoreError;
use crate::store::schema::Value;
use crate::store::schema::errors::{DriverMessage, ErrorClass};

/// Why a grouped write failed.
#[derive(Debug)]
pub enum Failure<E> {
    /// The statement itself failed (the rest of the batch went on).
    Statement(E),
    /// The batch failed as a whole (no connection, `BEGIN` or `COMMIT`
    /// refused): nothing of it was written. How, and what the driver said
    /// (never a value: no statement of the batch had run, or all had).
    Batch(ErrorClass, String),
}

impl<E> Failure<E> {
    /// The statement's own error, or the store's error for a batch that
    /// failed as a whole while doing `what` on `table` of a `backend`
    /// database.
    pub fn statement_error(self, what: &str, backend: &str, table: &str) -> Result<E, StoreError> {
        match self {
            Failure::Statement(e) => Ok(e),
            Failure::Batch(class, message) => {
                let source = DriverMessage(message.clone());
                Err(class.error(what, backend, table, &message, source))
            }
        }
    }
}

/// What [`Batch::run`] returns: one result per write, in order.
pub type BatchFuture<'a, E> = Pin<Box<dyn Future<Output = Vec<Result<u64, E>>> + Send + 'a>>;

/// An adapter's way of running a batch of writes in one transaction.
pub trait Batch: Send + Sync + 'static {
    /// One write (a statement and its bound values).
    type Write: Send + 'static;
    /// What a write that failed gets.
    type Error: Send + 'static;

    /// Runs `writes` in one transaction: one result per write, in order
    /// (rows matched, or the error).
    fn run(&self, writes: Vec<Self::Write>) -> BatchFuture<'_, Self::Error>;

    /// The error for a write whose batch ended without answering it (the
    /// runtime was shutting down).
    fn abandoned(&self) -> Self::Error;
}

type Answer<B> = oneshot::Sender<Result<u64, <B as Batch>::Error>>;

/// Writes queued for the next batch, and whether a batch task runs.
pub struct GroupCommit<B: Batch> {
    batch: B,
    state: Mutex<State<B>>,
}

struct State<B: Batch> {
    queue: Vec<(B::Write, Answer<B>)>,
    running: bool,
}

impl<B: Batch> std::fmt::Debug for GroupCommit<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Queued writes may hold tokens: only their number is shown.
        f.debug_struct("GroupCommit")
            .field("queued", &self.lock().queue.len())
            .finish_non_exhaustive()
    }
}

impl<B: Batch> GroupCommit<B> {
    /// Group commit through `batch`.
    pub fn new(batch: B) -> Arc<Self> {
        Arc::new(GroupCommit {
            batch,
            state: Mutex::new(State {
                queue: Vec::new(),
                running: false,
            }),
        })
    }

    /// Runs `write` in the next batch (starting one when none runs) and
    /// returns its result. Needs a tokio runtime.
    pub async fn execute(self: &Arc<Self>, write: B::Write) -> Result<u64, B::Error> {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut s = self.lock();
            s.queue.push((write, tx));
            !std::mem::replace(&mut s.running, true)
        };
        if start {
            tokio::spawn(Arc::clone(self).drain());
        }
        rx.await.unwrap_or_else(|_| Err(self.batch.abandoned()))
    }

    fn lock(&self) -> MutexGuard<'_, State<B>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs batches until the queue is empty.
    async fn drain(self: Arc<Self>) {
        loop {
            let queued = {
                let mut s = self.lock();
                if s.queue.is_empty() {
                    s.running = false;
                    return;
                }
                std::mem::take(&mut s.queue)
            };
            let (writes, answers): (Vec<_>, Vec<_>) = queued.into_iter().unzip();
            let n = writes.len();
            let mut results = self.batch.run(writes).await.into_iter();
            for answer in answers.into_iter().take(n) {
                let r = results
                    .next()
                    .unwrap_or_else(|| Err(self.batch.abandoned()));
                let _ = answer.send(r);
            }
        }
    }
}

/// A connection a batch runs on, for [`in_transaction`].
pub trait BatchConnection: Send {
    /// A statement's failure.
    type Error: std::fmt::Display + Send;

    /// Runs a statement with its values, returning the rows it matched.
    fn exec(
        &mut self,
        sql: String,
        values: Vec<Value>,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// How a failed `BEGIN` or `COMMIT` is surfaced.
    fn class(e: &Self::Error) -> ErrorClass;
}

/// The writes of a batch, run in one transaction on `conn`: `begin`, each
/// write (keeping its own result), `COMMIT`. When `BEGIN` or `COMMIT`
/// fails, every write gets that failure and none is made: a failed
/// `COMMIT` is followed by `ROLLBACK`. The flag says whether that
/// `ROLLBACK` failed too, leaving the connection in a transaction: it must
/// not go back to a pool.
pub async fn in_transaction<C: BatchConnection>(
    conn: &mut C,
    begin: &str,
    writes: Vec<(String, Vec<Value>)>,
) -> (Vec<Result<u64, Failure<C::Error>>>, bool) {
    let n = writes.len();
    let all = |e: &C::Error| all_failed(n, C::class(e), &e.to_string());
    if let Err(e) = conn.exec(begin.to_owned(), Vec::new()).await {
        return (all(&e), false);
    }
    let mut results = Vec::with_capacity(n);
    for (sql, values) in writes {
        results.push(conn.exec(sql, values).await.map_err(Failure::Statement));
    }
    if let Err(e) = conn.exec("COMMIT".into(), Vec::new()).await {
        let broken = conn.exec("ROLLBACK".into(), Vec::new()).await.is_err();
        return (all(&e), broken);
    }
    (results, false)
}

/// Every write of a batch failing with `class` and `message` (no
/// connection for it, say).
pub fn all_failed<E>(n: usize, class: ErrorClass, message: &str) -> Vec<Result<u64, Failure<E>>> {
    (0..n)
        .map(|_| Err(Failure::Batch(class, message.to_owned())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Records batch sizes; write `0` fails on its own.
    struct Recorder {
        batches: Arc<Mutex<Vec<usize>>>,
        started: Arc<AtomicUsize>,
    }

    impl Batch for Recorder {
        type Write = u64;
        type Error = String;

        fn run(&self, writes: Vec<u64>) -> BatchFuture<'_, String> {
            Box::pin(async move {
                self.started.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                self.batches.lock().unwrap().push(writes.len());
                writes
                    .into_iter()
                    .map(|w| if w == 0 { Err("bad".into()) } else { Ok(w) })
                    .collect()
            })
        }

        fn abandoned(&self) -> String {
            "abandoned".into()
        }
    }

    #[tokio::test]
    async fn writes_that_wait_share_a_batch_and_keep_their_results() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let g = GroupCommit::new(Recorder {
            batches: batches.clone(),
            started: Arc::default(),
        });
        let first = tokio::spawn({
            let g = g.clone();
            async move { g.execute(7).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        // These arrive while the first batch commits: one batch of 5.
        let rest: Vec<_> = (0..5)
            .map(|i| {
                let g = g.clone();
                tokio::spawn(async move { g.execute(i).await })
            })
            .collect();
        assert_eq!(first.await.unwrap(), Ok(7));
        let mut got = Vec::new();
        for r in rest {
            got.push(r.await.unwrap());
        }
        assert_eq!(got[0], Err("bad".to_owned()));
        assert_eq!(&got[1..], &[Ok(1), Ok(2), Ok(3), Ok(4)]);
        assert_eq!(*batches.lock().unwrap(), vec![1, 5]);
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_does_not_stop_the_batch() {
        let batches = Arc::new(Mutex::new(Vec::new()));
        let g = GroupCommit::new(Recorder {
            batches: batches.clone(),
            started: Arc::default(),
        });
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(2), g.execute(3)).await;
        assert!(waiting.is_err(), "gave up before the commit");
        tokio::time::sleep(std::time::Duration::from_millis(60)).await;
        assert_eq!(
            *batches.lock().unwrap(),
            vec![1],
            "the write was still made"
        );
        assert_eq!(g.execute(4).await, Ok(4));
    }
}
