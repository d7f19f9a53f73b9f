//! What a host compiles: the adapters' database features reach the drivers,
//! so a PostgreSQL-only host builds neither SQLite nor a MySQL driver, and
//! the whole graph carries one rustls crypto provider (aws-lc-rs, the one
//! reqwest uses), so a host's own `rustls::ClientConfig::builder()` finds
//! exactly one and does not panic.

use std::process::Command;

/// The package names `cargo tree` prints with `args` (one per line, no
/// tree drawing), run on this workspace without touching the network.
fn cargo_tree(args: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["tree", "--offline", "--prefix", "none", "--format", "{p}"])
        .args(args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// The packages in the normal (non-dev, non-build) graph of `package` with
/// `features` and no default features.
fn graph(package: &str, features: &str) -> Vec<String> {
    cargo_tree(&[
        "-p",
        package,
        "--no-default-features",
        "--features",
        features,
        "-e",
        "normal",
    ])
}

fn assert_lean(package: &str, features: &str, absent: &[&str]) {
    let g = graph(package, features);
    assert!(g.iter().any(|p| p == package), "{package} in its own graph");
    for name in absent {
        assert!(
            !g.iter().any(|p| p == name),
            "{package} --features {features} builds {name}"
        );
    }
    assert!(
        !g.iter().any(|p| p == "ring"),
        "{package} --features {features}: a second crypto provider (ring)"
    );
}

#[test]
fn a_postgres_only_host_builds_no_sqlite_no_mysql_and_one_crypto_provider() {
    for package in ["mattermost-tokens-sqlx", "mattermost-tokens-diesel"] {
        let features = if package.ends_with("sqlx") {
            "postgres,tls-rustls"
        } else {
            "postgres"
        };
        assert_lean(
            package,
            features,
            &["libsqlite3-sys", "sqlx-mysql", "mysql_async", "sqlx-sqlite"],
        );
    }
}

#[test]
fn mysql_only_and_sqlite_only_hosts_build_only_their_driver() {
    assert_lean(
        "mattermost-tokens-sqlx",
        "mysql",
        &["libsqlite3-sys", "sqlx-postgres", "sqlx-sqlite"],
    );
    assert_lean(
        "mattermost-tokens-sqlx",
        "sqlite",
        &["sqlx-postgres", "sqlx-mysql"],
    );
    assert_lean(
        "mattermost-tokens-diesel",
        "sqlite",
        &["tokio-postgres", "mysql_async"],
    );
}

#[test]
fn the_core_builds_one_crypto_provider_and_no_database() {
    let g = graph("mattermost-tokens", "axum");
    assert!(g.iter().any(|p| p == "aws-lc-rs"), "reqwest's provider");
    for name in ["ring", "sqlx-core", "diesel", "libsqlite3-sys"] {
        assert!(!g.iter().any(|p| p == name), "the core builds {name}");
    }
}

#[test]
fn metrics_are_compiled_only_with_the_feature() {
    assert!(
        graph("mattermost-tokens", "metrics")
            .iter()
            .any(|p| p == "metrics")
    );
    assert_lean("mattermost-tokens", "axum", &["metrics"]);
    // The adapters do not turn it on for a host that turned it off.
    assert_lean("mattermost-tokens-sqlx", "sqlite", &["metrics"]);
    assert_lean("mattermost-tokens-diesel", "sqlite", &["metrics"]);
}

/// One generation of each crate in the core's normal graph (proc-macro
/// crates such as `syn` aside, which only run at build time).
#[test]
fn the_core_builds_one_version_of_each_crate() {
    let twice: Vec<String> = cargo_tree(&[
        "-d",
        "-e",
        "normal",
        "-p",
        "mattermost-tokens",
        "--depth",
        "0",
    ])
    .into_iter()
    .filter(|name| !["syn", "proc-macro2", "quote"].contains(&name.as_str()))
    .collect();
    assert!(twice.is_empty(), "built in two versions: {twice:?}");
}
