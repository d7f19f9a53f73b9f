//! Encryption at rest over the sqlx stores: `EncryptedStore` around a sqlx
//! store passes the `TokenStore` conformance suite (SQLite, PostgreSQL), and
//! what lands in the database is checked with SQL (SQLite, PostgreSQL,
//! MariaDB): the column holds `mmt1:...` and never the token, a value copied
//! into another user's row by SQL does not decrypt, plaintext rows written by
//! SQL (as the Laravel integration wrote them) still read and can be
//! re-encrypted, and keys rotate.
//!
//! PostgreSQL and MariaDB tests need `MATTERMOST_TOKENS_TEST_POSTGRES_URL` /
//! `MATTERMOST_TOKENS_TEST_MYSQL_URL`; without them they print SKIPPED. Each
//! test works in a namespace of its own (`mmt_enc_<pid>_...`) or a SQLite
//! file; namespaces left by processes that are gone are dropped the next
//! time the suite runs.

use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::{
    AccessToken, ENCRYPTED_PREFIX, EncryptedStore, EncryptionKeys, HostUserId, NewToken,
    ReencryptOutcome, SkipReason, StoreError, TokenId, TokenStore, UserId,
};
use mattermost_tokens_sqlx::{
    Backend, KeyType, MySqlTokenStore, PgTokenStore, SqliteTokenStore, SqlxTokenStore,
};
use mattermost_tokens_tests::conformance::StoreFactory;
use mattermost_tokens_tests::encryption::{
    K2, assert_quiet, keys_k1, keys_k2_k1, mm_value, new_token, read_token, user,
};
use mattermost_tokens_tests::scratch::{Kind, Pool, ScratchDb};

// ---------------------------------------------------------------------------
// A database to test against, whatever its kind.

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

/// A pool on a fresh namespace, with this suite's views of it.
struct Db(ScratchDb);

impl std::ops::Deref for Db {
    type Target = ScratchDb;
    fn deref(&self) -> &ScratchDb {
        &self.0
    }
}

impl Db {
    async fn open(kind: Kind, test: &str) -> Option<Db> {
        ScratchDb::open(kind, PREFIX, test).await.map(Db)
    }

    /// The plain sqlx store on `table`.
    fn store(&self, table: &str, key_type: KeyType) -> Arc<dyn Store> {
        fn on<DB: Backend>(s: SqlxTokenStore<DB>, t: &str, kt: KeyType) -> Arc<dyn Store> {
            Arc::new(s.with_table_name(t).unwrap().with_key_type(kt))
        }
        match &self.pool {
            Pool::Pg(p) => on(PgTokenStore::new(p.clone()), table, key_type),
            Pool::My(p) => on(MySqlTokenStore::new(p.clone()), table, key_type),
            Pool::Lite(p) => on(SqliteTokenStore::new(p.clone()), table, key_type),
        }
    }

    /// A migrated users table holding `users` (all of one kind).
    async fn users_table(&self, users: &[HostUserId]) -> (String, KeyType) {
        let (table, key) = self.0.users_table(users, false).await;
        let key_type = key.into();
        self.store(&table, key_type).migrate().await.unwrap();
        (table, key_type)
    }

    /// The raw (token, token id, Mattermost user id) of integer user `id`.
    async fn raw_row(&self, table: &str, id: i64) -> Vec<Option<String>> {
        let rows = self
            .rows(&format!(
                "SELECT mattermost_token, mattermost_token_id, mattermost_user_id \
                 FROM {table} WHERE id = {id}"
            ))
            .await;
        rows.into_iter().next().expect("a row")
    }

    async fn raw_token(&self, table: &str, id: i64) -> String {
        self.raw_row(table, id).await[0]
            .clone()
            .expect("a stored token")
    }

    async fn finish(self) {
        self.0.finish().await
    }
}

// ---------------------------------------------------------------------------
// The conformance suite through the wrapper.

struct Encrypted {
    kind: Kind,
}

#[async_trait]
impl StoreFactory for Encrypted {
    async fn fresh(&self, users: &[HostUserId]) -> Option<Arc<dyn TokenStore>> {
        let db = Db::open(self.kind, "encrypted sqlx conformance").await?;
        let (table, key_type) = db.users_table(users).await;
        let inner: Arc<dyn TokenStore> = db.store(&table, key_type);
        // The namespace is dropped by a later run (a factory has no
        // teardown); the SQLite file goes with the temporary directory.
        Some(Arc::new(EncryptedStore::new(inner, keys_k1())))
    }
}

const ENCRYPTED_SQLITE: Encrypted = Encrypted { kind: Kind::Sqlite };
const ENCRYPTED_POSTGRES: Encrypted = Encrypted {
    kind: Kind::Postgres,
};

mattermost_tokens_tests::conformance_tests!(encrypted_sqlite, crate::ENCRYPTED_SQLITE);
mattermost_tokens_tests::conformance_tests!(encrypted_postgres, crate::ENCRYPTED_POSTGRES);

// ---------------------------------------------------------------------------
// What is in the database, checked with SQL.

/// The token column holds `mmt1:k1:...` and not the token; the token id and
/// Mattermost user id stay plain (the store compares and sets on them).
async fn stored_form(kind: Kind) {
    let Some(db) = Db::open(kind, "stored_form").await else {
        return;
    };
    let (table, kt) = db.users_table(&[user(1), user(2)]).await;
    let store = EncryptedStore::new(db.store(&table, kt), keys_k1());
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    let unicode = NewToken {
        token: AccessToken::new("tøkén-✓-ü-用户"),
        ..new_token(2)
    };
    assert!(store.put_token_if_absent(&user(2), &unicode).await.unwrap());

    let row = db.raw_row(&table, 1).await;
    let raw = row[0].clone().unwrap();
    assert!(raw.starts_with(ENCRYPTED_PREFIX), "{raw}");
    assert!(raw.starts_with("mmt1:k1:"), "{raw}");
    assert!(!raw.contains(&mm_value('t', 1)), "{raw}");
    assert_eq!(row[1].as_deref(), Some(mm_value('i', 1).as_str()));
    assert_eq!(row[2].as_deref(), Some(mm_value('u', 1).as_str()));
    let raw2 = db.raw_token(&table, 2).await;
    assert!(
        raw2.starts_with("mmt1:k1:") && !raw2.contains("tøkén"),
        "{raw2}"
    );

    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        mm_value('t', 1)
    );
    assert_eq!(
        read_token(&store, &user(2)).await.unwrap(),
        "tøkén-✓-ü-用户"
    );
    // The same token written again: a fresh nonce, another value.
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    assert_ne!(db.raw_token(&table, 1).await, raw);
    db.finish().await;
}

/// A value copied with SQL into another user's row fails authentication
/// there, and shows neither the value nor the token; the owner's row reads.
async fn copied_value_fails(kind: Kind) {
    let Some(db) = Db::open(kind, "copied_value_fails").await else {
        return;
    };
    let (table, kt) = db.users_table(&[user(1), user(2)]).await;
    let store = EncryptedStore::new(db.store(&table, kt), keys_k1());
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    store.put_token(&user(2), &new_token(2)).await.unwrap();
    let stolen = db.raw_token(&table, 1).await;
    // Base64url and `mmt1:k1:`: nothing to quote.
    db.exec(&format!(
        "UPDATE {table} SET mattermost_token = '{stolen}' WHERE id = 2"
    ))
    .await;
    let err = store.get(&user(2)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::DecryptionFailed { user: u, kid } if *u == user(2) && kid == "k1"),
        "{err:?}"
    );
    assert_quiet(&err, &[&stolen, &mm_value('t', 1)]);
    assert!(matches!(
        store.get_many(&[user(1), user(2)]).await,
        Err(StoreError::DecryptionFailed { .. })
    ));
    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        mm_value('t', 1)
    );
    db.finish().await;
}

/// Rows written with plain SQL, as the Laravel integration wrote them, read
/// through the wrapper; strict mode refuses them; re-encryption turns a row
/// with a token id into `mmt1:` and skips one without.
async fn plaintext_rows(kind: Kind) {
    let Some(db) = Db::open(kind, "plaintext_rows").await else {
        return;
    };
    let (table, kt) = db.users_table(&[user(1), user(2), user(3)]).await;
    // Laravel wrote the token column only.
    db.exec(&format!(
        "UPDATE {table} SET mattermost_token = 'laravelplaintokenvalue0001' WHERE id = 1"
    ))
    .await;
    db.exec(&format!(
        "UPDATE {table} SET mattermost_token = 'laravelplaintokenvalue0002', \
         mattermost_token_id = '{}', mattermost_user_id = '{}' WHERE id = 2",
        mm_value('i', 2),
        mm_value('u', 2)
    ))
    .await;
    let inner: Arc<dyn TokenStore> = db.store(&table, kt);
    let store = EncryptedStore::new(inner.clone(), keys_k1());
    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        "laravelplaintokenvalue0001"
    );
    let many = store.get_many(&[user(1), user(2), user(3)]).await.unwrap();
    assert_eq!(
        many[&user(2)].token.as_ref().unwrap().expose_secret(),
        "laravelplaintokenvalue0002"
    );
    assert!(many[&user(3)].token.is_none());

    let strict = EncryptedStore::new(inner.clone(), keys_k1()).allow_plaintext(false);
    let err = strict.get(&user(2)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::PlaintextNotAllowed { .. }),
        "{err:?}"
    );
    assert_quiet(&err, &["laravelplaintokenvalue0002"]);

    assert_eq!(
        store.reencrypt(&user(2)).await.unwrap(),
        ReencryptOutcome::Reencrypted
    );
    let raw = db.raw_token(&table, 2).await;
    assert!(
        raw.starts_with("mmt1:k1:") && !raw.contains("laravel"),
        "{raw}"
    );
    assert_eq!(
        read_token(&strict, &user(2)).await.unwrap(),
        "laravelplaintokenvalue0002"
    );
    // No token id: left as it is (re-encrypting is a compare-and-set on it).
    assert_eq!(
        store.reencrypt(&user(1)).await.unwrap(),
        ReencryptOutcome::Skipped(SkipReason::NoTokenId)
    );
    assert_eq!(db.raw_token(&table, 1).await, "laravelplaintokenvalue0001");
    db.finish().await;
}

/// Written under k1; [k2, k1] reads it and re-encrypts every row to k2;
/// [k2] alone reads them; [k1] alone names the unknown key id.
async fn key_rotation(kind: Kind) {
    let Some(db) = Db::open(kind, "key_rotation").await else {
        return;
    };
    let users: Vec<HostUserId> = (1..=4).map(user).collect();
    let (table, kt) = db.users_table(&users).await;
    let inner: Arc<dyn TokenStore> = db.store(&table, kt);
    let old = EncryptedStore::new(inner.clone(), keys_k1());
    for i in 1..=3 {
        old.put_token(&user(i), &new_token(i)).await.unwrap();
    }
    let rotated = EncryptedStore::new(inner.clone(), keys_k2_k1());
    let report = rotated
        .reencrypt_all(futures::stream::iter(users.clone()))
        .await;
    assert_eq!(
        (
            report.reencrypted,
            report.already_current,
            report.skipped,
            report.failed
        ),
        (3, 0, 1, 0),
        "{report:?}"
    );
    for i in 1..=3 {
        assert!(db.raw_token(&table, i).await.starts_with("mmt1:k2:"));
    }
    let newest = EncryptedStore::new(inner.clone(), EncryptionKeys::new("k2", K2).unwrap());
    for i in 1..=3 {
        assert_eq!(
            read_token(&newest, &user(i)).await.unwrap(),
            mm_value('t', i)
        );
    }
    let oldest = EncryptedStore::new(inner, keys_k1());
    let err = read_token(&oldest, &user(1)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownKeyId { kid, .. } if kid == "k2"),
        "{err:?}"
    );
    db.finish().await;
}

/// A write refused by the unique index on `mattermost_user_id` comes
/// through the wrapper as the inner store's `AlreadyLinked`, unchanged,
/// showing neither the token nor its ciphertext; nothing is written.
async fn already_linked_passes_through(kind: Kind) {
    let Some(db) = Db::open(kind, "already_linked_passes_through").await else {
        return;
    };
    let (table, kt) = db.users_table(&[user(1), user(2)]).await;
    let store = EncryptedStore::new(db.store(&table, kt), keys_k1());
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    store.put_token(&user(2), &new_token(2)).await.unwrap();
    let row_before = db.raw_row(&table, 2).await;
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
    assert_eq!(db.raw_row(&table, 2).await, row_before);
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
    db.finish().await;
}

mattermost_tokens_tests::on_every_database!(
    workers = 2,
    postgres: sql_postgres,
    mariadb: sql_mariadb,
    sqlite: sql_sqlite;
    stored_form,
    copied_value_fails,
    plaintext_rows,
    key_rotation,
    already_linked_passes_through,
);
