//! Shared set-up for the runnable examples: configuration from the
//! environment, the host's demo database, the token store of the chosen
//! backend, and the Mattermost server (a real one, or the stand-in).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod demo_db;
pub mod setup;
