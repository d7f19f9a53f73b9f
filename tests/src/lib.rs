//! Cross-crate test suites for the mattermost-tokens workspace.
//!
//! [`conformance`] is the one `TokenStore` suite, written once and run against
//! every store (memory, sqlx on PostgreSQL/MariaDB/SQLite, diesel on the same).
//! [`migration_conformance`] is the one migration suite, run through both
//! adapters on every database, and across them. The adapter suites take
//! their per-test databases from [`scratch`], and the encryption suites
//! their keys and values from [`encryption`].
#![deny(missing_docs)]

pub mod claim_conformance;
pub mod code_conformance;
pub mod conformance;
pub mod db;
pub mod encryption;
pub mod laravel;
pub mod migration_conformance;
pub mod pg_temp;
pub mod promise;
pub mod scratch;

/// The README's code blocks, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
