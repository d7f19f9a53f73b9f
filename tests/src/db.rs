//! Database URLs for the suites that need a server.
//!
//! PostgreSQL and MariaDB tests read their URLs from `MATTERMOST_TOKENS_TEST_POSTGRES_URL`
//! and `MATTERMOST_TOKENS_TEST_MYSQL_URL`. When a URL is unset the test prints
//! that it was skipped and returns; when `CI` is set, an unset URL is a failure,
//! so a CI run can never pass by skipping.

/// Environment variable holding the PostgreSQL test URL.
pub const POSTGRES_ENV: &str = "MATTERMOST_TOKENS_TEST_POSTGRES_URL";
/// Environment variable holding the MariaDB/MySQL test URL.
pub const MYSQL_ENV: &str = "MATTERMOST_TOKENS_TEST_MYSQL_URL";

/// The URL in `var`, or `None` after printing a clear "skipped" line.
/// Panics when `CI` is set and the variable is not: CI must not skip.
pub fn url_or_skip(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if std::env::var_os("CI").is_some() {
                panic!("{var} is not set but CI is: database tests must run in CI");
            }
            eprintln!("SKIPPED {test}: set {var} to run it against a real database");
            None
        }
    }
}

/// A short random suffix for per-test table names, so tests sharing one
/// database do not see each other's rows.
pub fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}
