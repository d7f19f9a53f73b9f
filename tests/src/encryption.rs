//! Keys, values and checks for the encryption-at-rest suites, which check the
//! same things over the sqlx and the diesel stores.
//!
//! Each adapter's suite implements [`Adapter`] (a migrated users table on a
//! fresh database, the plain store on it and raw SQL access to its rows) and
//! calls [`encryption_tests!`](crate::encryption_tests), which runs the
//! `TokenStore` conformance suite through [`EncryptedStore`] (SQLite,
//! PostgreSQL) and every check below on PostgreSQL, MariaDB and SQLite.

use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::{
    AccessToken, ENCRYPTED_PREFIX, EncryptedStore, EncryptionKeys, HostUserId, NewToken,
    ReencryptOutcome, SkipReason, StoreError, TokenId, TokenStore, UserId,
};

use crate::conformance::StoreFactory;
use crate::scratch::Kind;

/// The bytes of key `k1`.
pub const K1: [u8; 32] = [1; 32];
/// The bytes of key `k2`.
pub const K2: [u8; 32] = [2; 32];

/// Key `k1` alone.
pub fn keys_k1() -> EncryptionKeys {
    EncryptionKeys::new("k1", K1).unwrap()
}

/// Key `k2` current, `k1` kept to read what it encrypted.
pub fn keys_k2_k1() -> EncryptionKeys {
    EncryptionKeys::new("k2", K2)
        .unwrap()
        .with_key("k1", K1)
        .unwrap()
}

/// A Mattermost-shaped 26-character value, distinct per `(kind, i)`.
pub fn mm_value(kind: char, i: i64) -> String {
    format!("{kind}{i:0>25}")
}

/// The token of integer user `i`, its values all distinct from other users'.
pub fn new_token(i: i64) -> NewToken {
    NewToken {
        mattermost_user_id: UserId::new(mm_value('u', i)),
        token: AccessToken::new(mm_value('t', i)),
        token_id: TokenId::new(mm_value('i', i)),
        expires_at: None,
    }
}

/// Integer user `i`.
pub fn user(i: i64) -> HostUserId {
    HostUserId::Int(i)
}

/// The token `store` holds for `u` (panics when there is none).
pub async fn read_token<S: TokenStore + ?Sized>(
    store: &S,
    u: &HostUserId,
) -> Result<String, StoreError> {
    Ok(store
        .get(u)
        .await?
        .expect("a known user")
        .token
        .expect("a stored token")
        .expose_secret()
        .to_owned())
}

/// Asserts that neither the message nor the debug form of `e` shows any of
/// `secrets`.
pub fn assert_quiet(e: &StoreError, secrets: &[&str]) {
    let shown = format!("{e} / {e:?}");
    for s in secrets {
        assert!(!shown.contains(s), "error shows a secret: {shown}");
    }
}

// ---------------------------------------------------------------------------
// What a check needs of an adapter.

/// A migrated users table on a database of its own, seen through one
/// adapter: the plain store on it and raw SQL on its rows.
#[async_trait]
pub trait Table: Send + Sync {
    /// The table's name, for SQL.
    fn name(&self) -> &str;

    /// The adapter's plain (unencrypted) store on the table.
    fn store(&self) -> Arc<dyn TokenStore>;

    /// Runs `statement`; panics on failure.
    async fn exec(&self, statement: &str);

    /// The raw (token, token id, Mattermost user id) of integer user `id`.
    async fn raw_row(&self, id: i64) -> Vec<Option<String>>;

    /// The raw token column of integer user `id` (panics when it is NULL).
    async fn raw_token(&self, id: i64) -> String {
        self.raw_row(id).await[0].clone().expect("a stored token")
    }

    /// Drops the namespace (or file) the table lives in.
    async fn finish(self: Box<Self>);
}

/// Makes the [`Table`]s of one adapter.
#[async_trait]
pub trait Adapter: Send + Sync {
    /// A migrated users table holding `users` (all of one kind) on a fresh
    /// database of `kind`, or `None` after printing that `test` was skipped.
    async fn table(&self, kind: Kind, test: &str, users: &[HostUserId]) -> Option<Box<dyn Table>>;
}

/// A table of integer users 1 and 2, each holding [`new_token`], and the
/// store with key `k1` that wrote them; `None` when `test` was skipped.
pub async fn two_users_linked(
    adapter: &dyn Adapter,
    kind: Kind,
    test: &str,
) -> Option<(Box<dyn Table>, EncryptedStore<Arc<dyn TokenStore>>)> {
    let t = adapter.table(kind, test, &[user(1), user(2)]).await?;
    let store = EncryptedStore::new(t.store(), keys_k1());
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    store.put_token(&user(2), &new_token(2)).await.unwrap();
    Some((t, store))
}

/// The conformance suite's factory: `EncryptedStore` with key `k1` around
/// `adapter`'s store on a fresh database of `kind`.
#[derive(Debug, Clone, Copy)]
pub struct Encrypted<A> {
    /// The adapter whose stores are wrapped.
    pub adapter: A,
    /// The database the stores work on.
    pub kind: Kind,
}

#[async_trait]
impl<A: Adapter> StoreFactory for Encrypted<A> {
    async fn fresh(&self, users: &[HostUserId]) -> Option<Arc<dyn TokenStore>> {
        let table = self
            .adapter
            .table(self.kind, "encrypted conformance", users)
            .await?;
        // The namespace is dropped by a later run (a factory has no
        // teardown); so are SQLite files.
        Some(Arc::new(EncryptedStore::new(table.store(), keys_k1())))
    }
}

// ---------------------------------------------------------------------------
// What is in the database, checked with SQL.

/// The token column holds `mmt1:k1:...` and not the token; the token id and
/// Mattermost user id stay plain (the store compares and sets on them); the
/// plain store underneath sees only the encrypted value.
pub async fn stored_form(adapter: &dyn Adapter, kind: Kind) {
    let Some(t) = adapter
        .table(kind, "stored_form", &[user(1), user(2)])
        .await
    else {
        return;
    };
    let store = EncryptedStore::new(t.store(), keys_k1());
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    let unicode = NewToken {
        token: AccessToken::new("tøkén-✓-ü-用户"),
        ..new_token(2)
    };
    assert!(store.put_token_if_absent(&user(2), &unicode).await.unwrap());

    let row = t.raw_row(1).await;
    let raw = row[0].clone().unwrap();
    assert!(raw.starts_with(ENCRYPTED_PREFIX), "{raw}");
    assert!(raw.starts_with("mmt1:k1:"), "{raw}");
    assert!(!raw.contains(&mm_value('t', 1)), "{raw}");
    assert_eq!(row[1].as_deref(), Some(mm_value('i', 1).as_str()));
    assert_eq!(row[2].as_deref(), Some(mm_value('u', 1).as_str()));
    let raw2 = t.raw_token(2).await;
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
    // The plain store underneath sees only the encrypted value.
    assert_eq!(
        read_token(store.inner().as_ref(), &user(1)).await.unwrap(),
        raw
    );
    // The same token written again: a fresh nonce, another value.
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    assert_ne!(t.raw_token(1).await, raw);
    t.finish().await;
}

/// A value copied with SQL into another user's row fails authentication
/// there (`DecryptionFailed`), and shows neither the value nor the token;
/// the owner's row reads.
pub async fn copied_value_fails(adapter: &dyn Adapter, kind: Kind) {
    let Some((t, store)) = two_users_linked(adapter, kind, "copied_value_fails").await else {
        return;
    };
    let stolen = t.raw_token(1).await;
    // Copied by SQL, within the database (the derived table lets MariaDB
    // read the table it updates).
    let table = t.name();
    t.exec(&format!(
        "UPDATE {table} SET mattermost_token = \
         (SELECT c.mattermost_token FROM (SELECT mattermost_token FROM {table} WHERE id = 1) c) \
         WHERE id = 2"
    ))
    .await;
    assert_eq!(t.raw_token(2).await, stolen);
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
    t.finish().await;
}

/// Rows written with plain SQL, as the Laravel integration wrote them, read
/// through the wrapper; strict mode refuses them; re-encryption turns a row
/// with a token id into `mmt1:` and skips one without.
pub async fn plaintext_rows(adapter: &dyn Adapter, kind: Kind) {
    let Some(t) = adapter
        .table(kind, "plaintext_rows", &[user(1), user(2), user(3)])
        .await
    else {
        return;
    };
    let table = t.name();
    // Laravel wrote the token column only.
    t.exec(&format!(
        "UPDATE {table} SET mattermost_token = 'laravelplaintokenvalue0001' WHERE id = 1"
    ))
    .await;
    t.exec(&format!(
        "UPDATE {table} SET mattermost_token = 'laravelplaintokenvalue0002', \
         mattermost_token_id = '{}', mattermost_user_id = '{}' WHERE id = 2",
        mm_value('i', 2),
        mm_value('u', 2)
    ))
    .await;
    let inner = t.store();
    // By default plaintext is refused: a value planted by someone who can
    // write the table but not read the key is not used.
    let strict = EncryptedStore::new(inner.clone(), keys_k1());
    let err = strict.get(&user(2)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::PlaintextNotAllowed { .. }),
        "{err:?}"
    );
    assert_quiet(&err, &["laravelplaintokenvalue0002"]);
    assert_eq!(
        strict.reencrypt(&user(2)).await.unwrap(),
        ReencryptOutcome::Skipped(SkipReason::Plaintext),
        "reported, not sealed"
    );
    assert_eq!(t.raw_token(2).await, "laravelplaintokenvalue0002");

    // The migration window: the Laravel rows read as they are ...
    let window = EncryptedStore::new(inner.clone(), keys_k1()).allow_plaintext(true);
    assert_eq!(
        read_token(&window, &user(1)).await.unwrap(),
        "laravelplaintokenvalue0001"
    );
    let many = window.get_many(&[user(1), user(2), user(3)]).await.unwrap();
    assert_eq!(
        many[&user(2)].token.as_ref().unwrap().expose_secret(),
        "laravelplaintokenvalue0002"
    );
    assert!(many[&user(3)].token.is_none());

    // ... and are sealed on purpose.
    let sealing = EncryptedStore::new(inner.clone(), keys_k1()).seal_plaintext(true);
    assert_eq!(
        sealing.reencrypt(&user(2)).await.unwrap(),
        ReencryptOutcome::Reencrypted
    );
    let raw = t.raw_token(2).await;
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
        sealing.reencrypt(&user(1)).await.unwrap(),
        ReencryptOutcome::Skipped(SkipReason::NoTokenId)
    );
    assert_eq!(t.raw_token(1).await, "laravelplaintokenvalue0001");
    t.finish().await;
}

/// Written under k1; the keys `k2, k1` read it and re-encrypt every row to
/// k2; `k2` alone reads them; `k1` alone names the unknown key id.
pub async fn key_rotation(adapter: &dyn Adapter, kind: Kind) {
    let users: Vec<HostUserId> = (1..=4).map(user).collect();
    let Some(t) = adapter.table(kind, "key_rotation", &users).await else {
        return;
    };
    let inner = t.store();
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
        assert!(t.raw_token(i).await.starts_with("mmt1:k2:"));
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
    t.finish().await;
}

/// The encryption suite for one adapter: the conformance suite through
/// [`Encrypted`] (modules `encrypted_sqlite`, `encrypted_postgres`), and one
/// multi-threaded `#[tokio::test]` per shared check and database kind
/// (modules `sql_postgres`, `sql_mariadb`, `sql_sqlite`). `$adapter` is a
/// constant expression of a type implementing [`Adapter`]; the checks named
/// after `also:` are the suite's own functions of a [`Kind`], run in the
/// same modules.
#[macro_export]
macro_rules! encryption_tests {
    (@kind $adapter:expr, $module:ident, $kind:ident; $($local:ident),*) => {
        mod $module {
            $crate::encryption_tests!(
                @shared $adapter, $kind;
                stored_form, copied_value_fails, plaintext_rows, key_rotation
            );
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $local() {
                    super::$local($crate::scratch::Kind::$kind).await;
                }
            )*
        }
    };
    (@shared $adapter:expr, $kind:ident; $($check:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $check() {
                $crate::encryption::$check(&$adapter, $crate::scratch::Kind::$kind).await;
            }
        )*
    };
    ($adapter:expr $(; also: $($local:ident),+ $(,)?)?) => {
        $crate::conformance_tests!(
            encrypted_sqlite,
            $crate::encryption::Encrypted {
                adapter: $adapter,
                kind: $crate::scratch::Kind::Sqlite,
            }
        );
        $crate::conformance_tests!(
            encrypted_postgres,
            $crate::encryption::Encrypted {
                adapter: $adapter,
                kind: $crate::scratch::Kind::Postgres,
            }
        );
        $crate::encryption_tests!(@kind $adapter, sql_postgres, Postgres; $($($local),+)?);
        $crate::encryption_tests!(@kind $adapter, sql_mariadb, MariaDb; $($($local),+)?);
        $crate::encryption_tests!(@kind $adapter, sql_sqlite, Sqlite; $($($local),+)?);
    };
}
