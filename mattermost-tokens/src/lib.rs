//! Put a Rust app's users into Mattermost and act there on their behalf, each
//! with their own personal access token.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
mod client;
pub mod encryption;
mod error;
mod host;
mod lifecycle;
pub mod ids;
pub mod magic_link;
pub mod models;
mod pacing;
mod rate_limit;
mod retry;
mod selector;
pub mod store;
mod sync;

pub use encryption::{
    ENCRYPTED_PREFIX, EncryptedStore, EncryptionKeys, KEY_ENV_VAR, KeyError, ReencryptOutcome,
    ReencryptReport, SkipReason,
};
pub use client::{Acting, ClientBuilder, DEFAULT_MAX_RESPONSE_BYTES, Identity, MattermostClient};
pub use error::{ApiError, Error};
pub use host::{HostUser, RESERVED_USERNAMES, validate_username};
pub use magic_link::{
    CodeStore, InvalidLinkReason, MagicLink, MagicLinkConfig, MagicLinks, MemoryCodeStore,
    Redemption,
};
pub use ids::{AccessToken, ChannelId, HostUserId, TeamId, TokenId, UserId};
pub use rate_limit::{RateLimitStatus, ServerVersion};
pub use retry::RetryPolicy;
pub use lifecycle::{Revoked, Verification};
pub use selector::{Actor, Operation, Policy, Selection, TokenSelector};
pub use store::{MemoryStore, MissingPage, NewToken, StoreError, TokenRecord, TokenStore};
pub use sync::{
    AccountOutcome, DESCRIPTION_PREFIX, ServerCheck, SyncOptions, SyncReport, SyncSummary,
    TokenOutcome, UserFailure, UserOutcome, UserResult, UserSync,
};

#[cfg(feature = "stand-in")]
pub mod stand_in;
