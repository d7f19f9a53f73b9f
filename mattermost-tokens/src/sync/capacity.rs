//! Servers at their user limit: a run stops creating (and reactivating)
//! once the server is full, and says so once.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ApiError, Error};
use crate::models::ServerLimits;

use super::{RunState, UserSync};

/// What a run knows of the server's capacity.
#[derive(Debug, Default)]
pub(crate) struct Capacity {
    /// The limits, read once at the run's first create (bulk runs only).
    limits: tokio::sync::OnceCell<Option<ServerLimits>>,
    /// Accounts this run created (or, in a dry run, would create).
    created: AtomicU64,
    /// Set when the server is known full: the error's parts.
    full: std::sync::OnceLock<(Option<u64>, Option<u64>, Option<ApiError>)>,
}

impl Capacity {
    /// The limits read by this run, if it read them.
    pub(crate) fn limits(&self) -> Option<ServerLimits> {
        self.limits.get().copied().flatten()
    }

    /// Accounts created (or planned, in a dry run).
    pub(crate) fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }

    /// The error for a user left out because the server is full, once it is.
    pub(crate) fn full(&self) -> Option<Error> {
        self.full
            .get()
            .map(|(active, limit, error)| Error::UserLimitReached {
                active: *active,
                limit: *limit,
                error: error.clone().map(Box::new),
            })
    }
}

impl UserSync {
    /// Before a create or a reactivation: the error when this run knows the
    /// server has no room, so no request is sent for it. A bulk run reads
    /// the server's limits once, at its first create.
    pub(super) async fn check_room(&self, run: &RunState) -> Result<(), Error> {
        if let Some(e) = run.capacity.full() {
            return Err(e);
        }
        if !run.bulk {
            return Ok(());
        }
        let limits = run
            .capacity
            .limits
            .get_or_init(|| async {
                match self.admin().server_limits().await {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the server's user limit; creating until it refuses");
                        None
                    }
                }
            })
            .await;
        if let Some(l) = limits
            && let Some(room) = l.room()
            && run.capacity.created() >= room
        {
            let active = l.active_user_count + run.capacity.created();
            self.mark_full(run, Some(active), l.limit(), None);
            return Err(run.capacity.full().unwrap_or(Error::UserLimitReached {
                active: None,
                limit: None,
                error: None,
            }));
        }
        Ok(())
    }

    /// A dry run's planned create: counted, and (in a bulk run) the
    /// server's limits read once, so the report can say how many fit.
    pub(super) async fn plan_create(&self, run: &RunState) {
        if run.bulk {
            run.capacity
                .limits
                .get_or_init(|| async { self.admin().server_limits().await.ok().flatten() })
                .await;
        }
        self.created(run);
    }

    /// After a create: counts it.
    pub(super) fn created(&self, run: &RunState) {
        run.capacity.created.fetch_add(1, Ordering::Relaxed);
    }

    /// A create or reactivation answered with a user-limit id: the run stops
    /// creating; the error carries the counts the run knows.
    pub(super) fn on_user_limit(&self, run: &RunState, e: Error) -> Error {
        let Error::UserLimitReached { error, .. } = e else {
            return e;
        };
        // The server refused because it is full: as many users are active
        // as its limit allows (the run's own count may lag behind answers
        // still in flight).
        let limit = run.capacity.limits().and_then(|l| l.limit());
        self.mark_full(run, limit, limit, error.map(|b| *b));
        run.capacity.full().unwrap_or(Error::UserLimitReached {
            active: limit,
            limit,
            error: None,
        })
    }

    fn mark_full(
        &self,
        run: &RunState,
        active: Option<u64>,
        limit: Option<u64>,
        error: Option<ApiError>,
    ) {
        if run.capacity.full.set((active, limit, error)).is_ok() {
            tracing::warn!(
                active,
                limit,
                "the Mattermost server is at its user limit: no more accounts are created (or reactivated) in this run"
            );
        }
    }
}
