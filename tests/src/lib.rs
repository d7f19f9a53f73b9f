//! Cross-crate test suites for the mattermost-tokens workspace.
//!
//! [`conformance`] is the one `TokenStore` suite, written once and run against
//! every store (memory, sqlx on PostgreSQL/MariaDB/SQLite, diesel on the same).
#![deny(missing_docs)]

pub mod conformance;
pub mod db;
pub mod pg_temp;
pub mod promise;

/// The README's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
