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

/// `url` with its database name replaced by `db` (query string kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{db}", &base[..path_start]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn swaps_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u:p@h/test?sslmode=disable", "x"),
            "postgres://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
