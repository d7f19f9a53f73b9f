//! Put a Rust app's users into Mattermost and act there on their behalf, each
//! with their own personal access token.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod api;
mod client;
mod error;
pub mod ids;
pub mod models;
mod pacing;
mod rate_limit;
mod retry;
pub mod store;

pub use client::{Acting, ClientBuilder, DEFAULT_MAX_RESPONSE_BYTES, Identity, MattermostClient};
pub use error::{ApiError, Error};
pub use ids::{AccessToken, ChannelId, HostUserId, TeamId, TokenId, UserId};
pub use rate_limit::{RateLimitStatus, ServerVersion};
pub use retry::RetryPolicy;
pub use store::{MemoryStore, MissingPage, NewToken, StoreError, TokenRecord, TokenStore};

#[cfg(feature = "stand-in")]
pub mod stand_in;
