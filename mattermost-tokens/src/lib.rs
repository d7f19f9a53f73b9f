//! Put a Rust app's users into Mattermost and act there on their behalf, each
//! with their own personal access token.
//!
//! - [`MattermostClient`]: a typed, rate-limit-aware client for the API v4
//!   endpoints this needs. The identity is chosen per call
//!   ([`as_admin`](MattermostClient::as_admin),
//!   [`as_user`](MattermostClient::as_user)) over one shared connection pool.
//! - [`TokenStore`]: where each host user's Mattermost id, token and token id
//!   live. [`MemoryStore`] here; the `mattermost-tokens-sqlx` and
//!   `mattermost-tokens-diesel` crates store them in the host's `users` table;
//!   [`EncryptedStore`] encrypts any of them at rest.
//! - [`UserSync`]: creates or updates users, mints ONE token per user with the
//!   admin token, stores it; revokes what it cannot store; finds orphans.
//!   Syncs in several processes coordinate through claims in the host's
//!   database ([`store::Lease`]): one mint per user however many run.
//!   [`UserSync::revoke`], [`UserSync::rotate`] and [`UserSync::verify`] cover
//!   the rest of a token's life; [`rotation`] replaces every token after a
//!   leak, as a campaign that survives being killed.
//! - [`TokenSelector`]: user-scoped calls with the user's token, admin calls
//!   with the admin token, and a [`Policy`] for users without a token.
//! - [`MagicLinks`]: one-click links into Mattermost for a signed-in app user.
//!
//! Secrets are [`AccessToken`]s (a `secrecy::SecretString` inside) from the
//! moment they enter the process; no `Debug`, `Display`, error or log line
//! shows one.
//!
//! ```no_run
//! use std::sync::Arc;
//! use futures::stream;
//! use mattermost_tokens::{
//!     HostUser, MattermostClient, MemoryStore, Operation, Policy, SyncOptions, TokenSelector,
//!     UserSync,
//! };
//!
//! # async fn demo() -> Result<(), mattermost_tokens::Error> {
//! let client = MattermostClient::new("https://chat.example.com", "admin-token")?;
//! let store = Arc::new(MemoryStore::with_users([1.into()]));
//!
//! // Sync: create the account, mint one token, store it.
//! let sync = UserSync::new(client.clone(), store.clone(), SyncOptions::new("shop"))?;
//! let users = vec![HostUser::new(1, "ana@example.com", "Ana López")];
//! let report = sync.sync_all(stream::iter(users), |_| {}).await?;
//! assert_eq!(report.summary.failed, 0);
//!
//! // Act as the user, with their own token.
//! let selector = TokenSelector::new(store, Policy::Strict);
//! let (actor, acting) = selector.acting_for(&client, Operation::UserScoped, &1.into()).await?;
//! let me = acting.me().await?;
//! println!("{actor} is {}", me.username);
//! # Ok(()) }
//! ```
//!
//! # Features
//! - `axum`: `MagicLinks::router`, the redeem route as an axum router.
//! - `metrics` (default): counters and latency histograms through the
//!   `metrics` facade ([`telemetry`] names them); without a recorder they
//!   cost nothing worth measuring, without the feature nothing is compiled.
#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs`: feature-gated items are labelled.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub mod api;
mod client;
pub mod encryption;
mod error;
mod host;
pub mod host_table;
pub mod ids;
mod lifecycle;
pub mod magic_link;
pub mod models;
mod pacing;
mod rate_limit;
mod refused;
mod retry;
pub mod rotation;
mod selector;
pub mod store;
mod sync;
pub mod telemetry;
mod time;

pub use client::{Acting, ClientBuilder, DEFAULT_MAX_RESPONSE_BYTES, Identity, MattermostClient};
pub use encryption::{
    ENCRYPTED_PREFIX, EncryptedStore, EncryptionKeys, KEY_ENV_VAR, KeyError, ReencryptOutcome,
    ReencryptReport, SkipReason,
};
pub use error::{ApiError, Error, ExpiryRule, LinkRefusal};
pub use host::{HostUser, RESERVED_USERNAMES, validate_username};
pub use host_table::{HostUserRow, HostUserSource, HostUserTable, InactiveWhen};
pub use ids::{AccessToken, ChannelId, HostUserId, TeamId, TokenId, UserId};
pub use lifecycle::{Revoked, Verification};
pub use magic_link::{
    CodeStore, InvalidLinkReason, MagicLink, MagicLinkConfig, MagicLinks, MemoryCodeStore,
    Redemption,
};
pub use rate_limit::{RateLimitStatus, ServerVersion};
pub use retry::RetryPolicy;
pub use selector::{Actor, Operation, Policy, Selection, TokenSelector};
pub use store::{MemoryStore, MissingPage, NewToken, StoreError, TokenRecord, TokenStore};
pub use sync::{
    AccountOutcome, DEFAULT_REPORT_LIMIT, DESCRIPTION_PREFIX, DeactivatedPolicy, DeadToken,
    LeaverPolicy, LinkPolicy, MARK_APP_PROP, MARK_USER_PROP, ReconcileReport, ReconcileSummary,
    Repair, ServerCheck, SyncOptions, SyncReport, SyncSummary, SyncWarning, TokenOutcome,
    UserFailure, UserLimitHit, UserOutcome, UserResult, UserSync,
};

/// The `chrono` version used in the public API (magic-link expiry times).
pub use chrono;
/// The `reqwest` version of [`ClientBuilder::http_client`], so a host builds
/// its client with the same one.
pub use reqwest;
