//! Put a Rust app's users into Mattermost and act there on their behalf, each
//! with their own personal access token.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod ids;
pub mod store;

pub use ids::{AccessToken, ChannelId, HostUserId, TeamId, TokenId, UserId};
pub use store::{MemoryStore, MissingPage, NewToken, StoreError, TokenRecord, TokenStore};
