//! Encryption at rest over the sqlx stores: `EncryptedStore` around a sqlx
//! store passes the `TokenStore` conformance suite (SQLite, PostgreSQL), and
//! what lands in the database is checked with SQL (SQLite, PostgreSQL,
//! MariaDB): the column holds `mmt1:...` and never the token, a value copied
//! into another user's row by SQL does not decrypt, plaintext rows written by
//! SQL (as the Laravel integration wrote them) still read and can be
//! re-encrypted, and keys rotate. The checks are shared with the diesel
//! suite (`mattermost_tokens_tests::encryption`); this file gives them sqlx
//! tables, and adds what only it checks.
//!
//! PostgreSQL and MariaDB tests need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL`; without them they print SKIPPED. Each
//! test works in a namespace of its own (`mmt_enc_<pid>_...`) or a SQLite
//! file; namespaces left by processes that are gone are dropped the next
//! time the suite runs.

use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::{
    ENCRYPTED_PREFIX, HostUserId, NewToken, StoreError, TokenId, TokenStore, UserId,
};
use mattermost_tokens_sqlx::{
    Backend, KeyType, MySqlTokenStore, PgTokenStore, SqliteTokenStore, SqlxTokenStore,
};
use mattermost_tokens_tests::encryption::{
    Adapter, Table, assert_quiet, mm_value, new_token, read_token, two_users_linked, user,
};
use mattermost_tokens_tests::scratch::{Kind, Pool, ScratchDb};

// ---------------------------------------------------------------------------
// A sqlx table to test against, whatever its database.

/// A sqlx store with its migration, as a trait object.
#[async_trait]
trait Store: TokenStore {
    async fn migrate(&self) -> Result<(), StoreError>;
}

#[async_trait]
impl<DB: Backend> Store for SqlxTokenStore<DB> {
    async fn migrate(&self) -> Result<(), StoreError> {
        SqlxTokenStore::migrate(self).await
    }
}

const PREFIX: &str = "mmt_enc_";

/// The sqlx adapter.
#[derive(Debug, Clone, Copy)]
struct Sqlx;

const SQLX: Sqlx = Sqlx;

/// A migrated users table on a fresh namespace (or SQLite file).
struct SqlxTable {
    db: ScratchDb,
    name: String,
    key_type: KeyType,
}

impl SqlxTable {
    /// The plain sqlx store on the table.
    fn sqlx_store(&self) -> Arc<dyn Store> {
        fn on<DB: Backend>(s: SqlxTokenStore<DB>, t: &str, kt: KeyType) -> Arc<dyn Store> {
            Arc::new(s.with_table_name(t).unwrap().with_key_type(kt))
        }
        match &self.db.pool {
            Pool::Pg(p) => on(PgTokenStore::new(p.clone()), &self.name, self.key_type),
            Pool::My(p) => on(MySqlTokenStore::new(p.clone()), &self.name, self.key_type),
            Pool::Lite(p) => on(SqliteTokenStore::new(p.clone()), &self.name, self.key_type),
        }
    }
}

#[async_trait]
impl Adapter for Sqlx {
    async fn table(&self, kind: Kind, test: &str, users: &[HostUserId]) -> Option<Box<dyn Table>> {
        let db = ScratchDb::open(kind, PREFIX, &format!("sqlx {test}")).await?;
        let (name, key) = db.users_table(users, false).await;
        let table = SqlxTable {
            db,
            name,
            key_type: key.into(),
        };
        table.sqlx_store().migrate().await.unwrap();
        Some(Box::new(table))
    }
}

#[async_trait]
impl Table for SqlxTable {
    fn name(&self) -> &str {
        &self.name
    }

    fn store(&self) -> Arc<dyn TokenStore> {
        self.sqlx_store()
    }

    async fn exec(&self, statement: &str) {
        self.db.exec(statement).await
    }

    async fn raw_row(&self, id: i64) -> Vec<Option<String>> {
        let rows = self
            .db
            .rows(&format!(
                "SELECT mattermost_token, mattermost_token_id, mattermost_user_id \
                 FROM {} WHERE id = {id}",
                self.name
            ))
            .await;
        rows.into_iter().next().expect("a row")
    }

    async fn finish(self: Box<Self>) {
        self.db.finish().await
    }
}

// ---------------------------------------------------------------------------
// The shared suite, and what only the sqlx suite checks.

/// A write refused by the unique index on `mattermost_user_id` comes
/// through the wrapper as the inner store's `AlreadyLinked`, unchanged,
/// showing neither the token nor its ciphertext; nothing is written.
async fn already_linked_passes_through(kind: Kind) {
    let Some((t, store)) = two_users_linked(&SQLX, kind, "already_linked_passes_through").await
    else {
        return;
    };
    let row_before = t.raw_row(2).await;
    let taken = UserId::new(mm_value('u', 1));
    let stealing = NewToken {
        mattermost_user_id: taken.clone(),
        ..new_token(3)
    };
    let results = [
        store.put_token(&user(2), &stealing).await.map(|()| true),
        store
            .replace_token(&user(2), &TokenId::new(mm_value('i', 2)), &stealing)
            .await,
        store
            .set_mattermost_user_id(&user(2), &taken)
            .await
            .map(|()| true),
    ];
    for r in results {
        let err = r.unwrap_err();
        assert!(
            matches!(&err, StoreError::AlreadyLinked { user: u, mattermost_user_id: m }
                if *u == user(2) && *m == taken),
            "{err:?}"
        );
        assert_quiet(&err, &[&mm_value('t', 3), ENCRYPTED_PREFIX]);
    }
    assert_eq!(t.raw_row(2).await, row_before);
    // A compare-and-set that does not apply is still Ok(false).
    assert!(
        !store
            .put_token_if_absent(&user(2), &stealing)
            .await
            .unwrap()
    );
    assert_eq!(
        read_token(&store, &user(2)).await.unwrap(),
        mm_value('t', 2)
    );
    t.finish().await;
}

mattermost_tokens_tests::encryption_tests!(crate::SQLX; also: already_linked_passes_through);
