//! The migration conformance suite on every adapter and database: the
//! schema's steps through sqlx and diesel on PostgreSQL, MariaDB and
//! SQLite, and each case's tables opened through the other adapter too.
//!
//! PostgreSQL and MariaDB need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL` (skipped with a message otherwise, a
//! failure under CI); SQLite always runs, on a file per test. Each test
//! works in a namespace of its own (a PostgreSQL schema or a MariaDB
//! database named `mmt_mig_<pid>_...`), dropped at its end.

use mattermost_tokens_tests::migration_conformance::Adapter;
use mattermost_tokens_tests::migration_conformance_tests;
use mattermost_tokens_tests::scratch::Kind;

migration_conformance_tests!(sqlx_postgres, Adapter::Sqlx, Kind::Postgres);
migration_conformance_tests!(sqlx_mariadb, Adapter::Sqlx, Kind::MariaDb);
migration_conformance_tests!(sqlx_sqlite, Adapter::Sqlx, Kind::Sqlite);
migration_conformance_tests!(diesel_postgres, Adapter::Diesel, Kind::Postgres);
migration_conformance_tests!(diesel_mariadb, Adapter::Diesel, Kind::MariaDb);
migration_conformance_tests!(diesel_sqlite, Adapter::Diesel, Kind::Sqlite);
