//! Which token a call goes out with: [`TokenSelector`].

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::client::{Acting, Identity, MattermostClient};
use crate::error::Error;
use crate::ids::{ChannelId, HostUserId};
use crate::models::{ChannelMember, ChannelType};
use crate::store::{StoreError, TokenStore};

/// What kind of operation a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// A system-level call: create users, mint tokens, create channels,
    /// manage team membership. Always the admin token.
    Admin,
    /// A call made for a user (join a channel, post, read as them): the
    /// user's own token, so Mattermost attributes it to them.
    UserScoped,
}

/// What to do for a user-scoped call when the user has no stored token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Policy {
    /// Use the admin token instead (the behaviour of the Laravel integration
    /// this library ports). The call then runs with admin rights and is
    /// attributed to the admin; every fallback is logged at warn and counted.
    #[default]
    FallbackToAdmin,
    /// Refuse with [`Error::NoUserToken`].
    Strict,
    /// Always use the admin token, even for user-scoped calls.
    AdminOnly,
}

/// Who a selected token acts as.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Actor {
    /// The admin, for an admin operation (or under [`Policy::AdminOnly`]).
    Admin,
    /// The user themself, with their own token.
    User(HostUserId),
    /// The admin standing in for this user, who has no token.
    AdminFallback(HostUserId),
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Admin => f.write_str("admin"),
            Actor::User(u) => write!(f, "user {u}"),
            Actor::AdminFallback(u) => write!(f, "admin on behalf of user {u}"),
        }
    }
}

/// The outcome of [`TokenSelector::select`]: the identity to call with, and
/// who that is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Selection {
    /// Who acts.
    pub actor: Actor,
    /// The identity (token) to send.
    pub identity: Identity,
}

/// Picks the token for each call: admin calls go out with the admin token,
/// user-scoped calls with the user's stored token, and the [`Policy`] decides
/// what happens when a user has none.
///
/// ```no_run
/// # async fn demo(client: mattermost_tokens::MattermostClient,
/// #               store: std::sync::Arc<dyn mattermost_tokens::TokenStore>,
/// #               channel: mattermost_tokens::ChannelId) -> Result<(), mattermost_tokens::Error> {
/// use mattermost_tokens::{HostUserId, Policy, TokenSelector};
///
/// let selector = TokenSelector::new(store, Policy::Strict);
/// let (actor, _member) = selector.join_channel(&client, &HostUserId::Int(42), &channel).await?;
/// println!("joined as {actor}");
/// # Ok(()) }
/// ```
///
/// Cheap to clone; clones share the store and the fallback count.
#[derive(Clone)]
pub struct TokenSelector {
    store: Arc<dyn TokenStore>,
    policy: Policy,
    fallbacks: Arc<AtomicU64>,
}

impl fmt::Debug for TokenSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSelector")
            .field("policy", &self.policy)
            .field("fallbacks", &self.fallback_count())
            .finish()
    }
}

impl TokenSelector {
    /// A selector reading tokens from `store` under `policy`.
    pub fn new(store: Arc<dyn TokenStore>, policy: Policy) -> Self {
        TokenSelector {
            store,
            policy,
            fallbacks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The policy in force.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// How many user-scoped calls fell back to the admin token so far.
    pub fn fallback_count(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// The token and actor for `op` on behalf of `user`. A user-scoped call
    /// for a host user the store does not know fails with
    /// [`StoreError::UnknownUser`](crate::StoreError::UnknownUser) (a wrong
    /// id must not turn into an admin call), whatever the policy.
    pub async fn select(&self, op: Operation, user: &HostUserId) -> Result<Selection, Error> {
        if op == Operation::Admin {
            return Ok(Selection {
                actor: Actor::Admin,
                identity: Identity::Admin,
            });
        }
        let record = self
            .store
            .get(user)
            .await?
            .ok_or_else(|| StoreError::UnknownUser(user.clone()))?;
        if self.policy == Policy::AdminOnly {
            return Ok(Selection {
                actor: Actor::Admin,
                identity: Identity::Admin,
            });
        }
        let expired = record.expires_within(crate::time::unix_now_ms(), 0);
        let token = record.token.filter(|_| !expired);
        match (token, self.policy) {
            (Some(t), _) => {
                tracing::debug!(host_user = %user, actor = "user", "using the user's token");
                Ok(Selection {
                    actor: Actor::User(user.clone()),
                    identity: Identity::User(t),
                })
            }
            (None, Policy::Strict) if expired => {
                Err(Error::UserTokenExpired { user: user.clone() })
            }
            (None, Policy::Strict) => Err(Error::NoUserToken { user: user.clone() }),
            (None, _) => {
                let n = self.fallbacks.fetch_add(1, Ordering::Relaxed) + 1;
                crate::telemetry::admin_fallback();
                tracing::warn!(
                    host_user = %user, fallbacks = n,
                    token = if expired { "expired" } else { "missing" },
                    "user has no usable Mattermost token; acting with the admin token instead"
                );
                Ok(Selection {
                    actor: Actor::AdminFallback(user.clone()),
                    identity: Identity::Admin,
                })
            }
        }
    }

    /// A client handle for `op` on behalf of `user`, and who it acts as.
    pub async fn acting_for(
        &self,
        client: &MattermostClient,
        op: Operation,
        user: &HostUserId,
    ) -> Result<(Actor, Acting), Error> {
        let s = self.select(op, user).await?;
        Ok((s.actor, client.acting(s.identity)))
    }

    /// Makes a call for `user` with the selected token: `f` gets the client
    /// handle and makes the request(s).
    ///
    /// When the user's own token is answered 401, the server is asked (with
    /// the admin token) whether that token is dead: revoked, disabled or
    /// expired. A dead token is cleared from the store, so later calls stop
    /// using it and the next sync or reconcile mints a new one. The call is
    /// then made once more with the admin token only under
    /// [`Policy::FallbackToAdmin`] (logged and counted as a fallback);
    /// otherwise, and whenever the token is not dead (the 401 has another
    /// cause), the 401 is returned.
    pub async fn call<T, F, Fut>(
        &self,
        client: &MattermostClient,
        op: Operation,
        user: &HostUserId,
        f: F,
    ) -> Result<(Actor, T), Error>
    where
        F: Fn(Acting) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let s = self.select(op, user).await?;
        let used = match &s.identity {
            Identity::User(t) => Some(t.clone()),
            _ => None,
        };
        match (f(client.acting(s.identity)).await, used) {
            (Err(Error::Unauthorized(e)), Some(token)) => {
                let cleared =
                    crate::refused::forget_if_dead(client, self.store.as_ref(), user, &token)
                        .await?;
                if !cleared || self.policy != Policy::FallbackToAdmin {
                    return Err(Error::Unauthorized(e));
                }
                let n = self.fallbacks.fetch_add(1, Ordering::Relaxed) + 1;
                crate::telemetry::admin_fallback();
                tracing::warn!(
                    host_user = %user, fallbacks = n,
                    "the user's token is dead; acting with the admin token instead"
                );
                let t = f(client.as_admin()).await?;
                Ok((Actor::AdminFallback(user.clone()), t))
            }
            (r, _) => r.map(|t| (s.actor, t)),
        }
    }

    /// The user joins `channel` (a user-scoped call: with their own token the
    /// server attributes the join to them; under the fallback policy the
    /// admin adds them to public channels only: a private channel is one the
    /// user could not join with their own token, so standing in for them
    /// there fails with [`Error::FallbackRefused`]).
    pub async fn join_channel(
        &self,
        client: &MattermostClient,
        user: &HostUserId,
        channel: &ChannelId,
    ) -> Result<(Actor, ChannelMember), Error> {
        let record = self.store.get(user).await?;
        let mm_id = record
            .and_then(|r| r.mattermost_user_id)
            .ok_or_else(|| Error::NotSynced { user: user.clone() })?;
        let (actor, member) = self
            .call(client, Operation::UserScoped, user, |acting| {
                let mm_id = mm_id.clone();
                async move {
                    if matches!(acting.identity(), Identity::Admin) {
                        // The admin standing in: only what the user could
                        // do themself (join a public channel).
                        let c = acting.channel(channel).await?;
                        if c.channel_type != ChannelType::Open {
                            return Err(Error::FallbackRefused {
                                user: user.clone(),
                                reason: format!(
                                    "channel {channel} is not public; the user could not join it with their own token"
                                ),
                            });
                        }
                    }
                    acting.add_channel_member(channel, &mm_id).await
                }
            })
            .await?;
        tracing::info!(host_user = %user, actor = %actor, channel = %channel, "joined channel");
        Ok((actor, member))
    }
}
