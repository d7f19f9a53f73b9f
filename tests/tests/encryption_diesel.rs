//! Encryption at rest over the diesel stores: `EncryptedStore` around a
//! diesel store passes the `TokenStore` conformance suite (SQLite,
//! PostgreSQL), and what lands in the database is checked with SQL (SQLite,
//! PostgreSQL, MariaDB): the column holds `mmt1:...` and never the token, a
//! value copied into another user's row by SQL does not decrypt, plaintext
//! rows written by SQL (as the Laravel integration wrote them) still read
//! and can be re-encrypted, and keys rotate. The checks are shared with the
//! sqlx suite (`mattermost_tokens_tests::encryption`); this file gives them
//! diesel tables.
//!
//! PostgreSQL and MariaDB tests need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL`; without them they print SKIPPED (a
//! failure under CI). Each test works in a namespace of its own
//! (`mmt_denc_<pid>_...`) or a SQLite file; namespaces left by processes that
//! are gone are dropped the next time the suite runs.

use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::{HostUserId, TokenStore};
use mattermost_tokens_diesel::diesel::QueryableByName;
use mattermost_tokens_diesel::diesel::sql_types::{Nullable, Text};
use mattermost_tokens_diesel::{DieselTokenStore, KeyType};
use mattermost_tokens_tests::each_diesel_pool as each_pool;
use mattermost_tokens_tests::encryption::{Adapter, Table};
use mattermost_tokens_tests::scratch::{
    DieselPools as Pools, DieselScratch, Kind, Rows, users_table,
};

// ---------------------------------------------------------------------------
// A diesel table to test against, whatever its database.

/// One row of up to three text columns.
#[derive(QueryableByName, Debug, Clone, PartialEq, Eq)]
struct Row {
    #[diesel(sql_type = Nullable<Text>)]
    c0: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c1: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    c2: Option<String>,
}

const PREFIX: &str = "mmt_denc_";

/// The diesel adapter.
#[derive(Debug, Clone, Copy)]
struct Diesel;

const DIESEL: Diesel = Diesel;

/// A migrated users table on fresh pools (namespace or SQLite file).
struct DieselTable {
    db: DieselScratch,
    name: String,
    key_type: KeyType,
}

#[async_trait]
impl Adapter for Diesel {
    async fn table(&self, kind: Kind, test: &str, users: &[HostUserId]) -> Option<Box<dyn Table>> {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
        let db = DieselScratch::open(kind, PREFIX, &format!("diesel {test}"), 10, dir).await?;
        let t = users_table(kind, users, false);
        for statement in &t.statements {
            db.exec(statement).await;
        }
        let (name, key_type) = (t.name, KeyType::from(t.key));
        each_pool!(&db.pools, |p| DieselTokenStore::new(p.clone())
            .with_table_name(&name)
            .unwrap()
            .with_key_type(key_type)
            .migrate()
            .await
            .unwrap());
        Some(Box::new(DieselTable { db, name, key_type }))
    }
}

#[async_trait]
impl Table for DieselTable {
    fn name(&self) -> &str {
        &self.name
    }

    fn store(&self) -> Arc<dyn TokenStore> {
        each_pool!(&self.db.pools, |p| Arc::new(
            DieselTokenStore::new(p.clone())
                .with_table_name(&self.name)
                .unwrap()
                .with_key_type(self.key_type)
        ) as Arc<dyn TokenStore>)
    }

    async fn exec(&self, statement: &str) {
        self.db.exec(statement).await
    }

    async fn raw_row(&self, id: i64) -> Vec<Option<String>> {
        let rows = rows_on(
            &self.db.pools,
            &format!(
                "SELECT {} AS c0, {} AS c1, {} AS c2 FROM {} WHERE id = {id}",
                self.db.text("mattermost_token"),
                self.db.text("mattermost_token_id"),
                self.db.text("mattermost_user_id"),
                self.name,
            ),
        )
        .await;
        rows.into_iter().next().expect("a row")
    }

    async fn finish(self: Box<Self>) {
        self.db.finish().await
    }
}

/// Rows of a query selecting `c0`, `c1`, `c2` as text.
async fn rows_on(pools: &Pools, query: &str) -> Rows {
    each_pool!(pools, |p| {
        let mut conn = p.get().await.expect("a test connection");
        mattermost_tokens_diesel::diesel_async::RunQueryDsl::load::<Row>(
            mattermost_tokens_diesel::diesel::sql_query(query),
            &mut conn,
        )
        .await
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .into_iter()
        .map(|r| vec![r.c0, r.c1, r.c2])
        .collect()
    })
}

// ---------------------------------------------------------------------------
// The shared suite.

mattermost_tokens_tests::encryption_tests!(crate::DIESEL);
