//! Encryption at rest: `EncryptedStore` over a `TokenStore`.
//!
//! The checks are written once as async fns over a store factory
//! ([`encryption_suite`] runs them all), so the sqlx and diesel stores can run
//! the same ones; here they run over `MemoryStore`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::{
    EncryptedStore, EncryptionKeys, HostUserId, KeyError, MemoryStore, MissingPage, NewToken,
    ReencryptOutcome, SkipReason, StoreError, TokenId, TokenRecord, TokenStore, UserId,
};

// Fixed test keys (32 bytes each, standard base64).
const K1: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
const K1_OTHER: &str = "CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=";
const K2: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";

fn keys(config: &str) -> EncryptionKeys {
    EncryptionKeys::from_config(config).expect("valid test keys")
}

fn encrypted(inner: &Arc<dyn TokenStore>, config: &str) -> EncryptedStore<Arc<dyn TokenStore>> {
    EncryptedStore::new(inner.clone(), keys(config))
}

fn user(i: i64) -> HostUserId {
    HostUserId::Int(i)
}

/// A Mattermost-shaped 26-character value, distinct per `(kind, i)`.
fn mm_value(kind: char, i: usize) -> String {
    format!("{kind}{i:0>25}")
}

fn new_token(i: usize) -> NewToken {
    NewToken {
        mattermost_user_id: UserId::new(mm_value('u', i)),
        token: mm_value('t', i).into(),
        token_id: TokenId::new(mm_value('i', i)),
        expires_at: None,
    }
}

async fn raw_token(inner: &Arc<dyn TokenStore>, u: &HostUserId) -> String {
    inner
        .get(u)
        .await
        .unwrap()
        .unwrap()
        .token
        .expect("a stored token")
        .expose_secret()
        .to_owned()
}

async fn read_token<S: TokenStore + ?Sized>(
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

fn assert_quiet(e: &StoreError, secrets: &[&str]) {
    let shown = format!("{e} / {e:?}");
    for s in secrets {
        assert!(!shown.contains(s), "error shows a secret: {shown}");
    }
}

/// Writes `raw` as the stored token value of `u` in the inner store, keeping
/// the other columns (the way someone with write access to the table would).
async fn write_raw(inner: &Arc<dyn TokenStore>, u: &HostUserId, raw: &str) {
    let rec = inner.get(u).await.unwrap().unwrap();
    let t = NewToken {
        mattermost_user_id: rec
            .mattermost_user_id
            .unwrap_or_else(|| UserId::new(mm_value('u', 0))),
        token: raw.into(),
        token_id: rec
            .token_id
            .unwrap_or_else(|| TokenId::new(mm_value('i', 0))),
        expires_at: None,
    };
    inner.put_token(u, &t).await.unwrap();
}

/// Every check of this file over stores made by `make`. `make(users)` must
/// return a fresh, empty store that knows the host users `users` (integer
/// keys), none of them with a token.
pub async fn encryption_suite<F, Fut>(make: F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    check_round_trip(&make).await;
    check_stored_form(&make).await;
    check_moved_value_fails(&make).await;
    check_rotation(&make).await;
    check_plaintext_rows(&make).await;
    check_wrong_key_and_tampering(&make).await;
    check_fresh_nonces(&make).await;
    check_concurrent_put_if_absent(&make).await;
}

/// Tokens written through the wrapper read back byte for byte (unicode
/// included), through `get` and `get_many`; the other columns and the CAS
/// operations pass through.
pub async fn check_round_trip<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let inner = make(vec![user(1), user(2), user(3)]).await;
    let store = encrypted(&inner, &format!("k1:{K1}"));
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    let unicode = NewToken {
        token: "tøkén-✓-ü".into(),
        ..new_token(2)
    };
    assert!(store.put_token_if_absent(&user(2), &unicode).await.unwrap());
    assert!(
        !store
            .put_token_if_absent(&user(2), &new_token(9))
            .await
            .unwrap()
    );

    let r1 = store.get(&user(1)).await.unwrap().unwrap();
    assert_eq!(r1.token.unwrap().expose_secret(), mm_value('t', 1));
    assert_eq!(r1.token_id, Some(TokenId::new(mm_value('i', 1))));
    assert_eq!(r1.mattermost_user_id, Some(UserId::new(mm_value('u', 1))));
    assert_eq!(read_token(&store, &user(2)).await.unwrap(), "tøkén-✓-ü");

    let many = store
        .get_many(&[user(1), user(2), user(3), user(99)])
        .await
        .unwrap();
    assert_eq!(many.len(), 3);
    assert_eq!(
        many[&user(2)].token.as_ref().unwrap().expose_secret(),
        "tøkén-✓-ü"
    );
    assert!(many[&user(3)].token.is_none());
    assert!(store.get(&user(99)).await.unwrap().is_none());

    // replace_token: CAS on the plain token id.
    let wrong = TokenId::new(mm_value('x', 1));
    assert!(
        !store
            .replace_token(&user(1), &wrong, &new_token(5))
            .await
            .unwrap()
    );
    let current = TokenId::new(mm_value('i', 1));
    assert!(
        store
            .replace_token(&user(1), &current, &new_token(5))
            .await
            .unwrap()
    );
    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        mm_value('t', 5)
    );

    let missing = store.list_missing(None, 10).await.unwrap();
    assert_eq!(missing.users, vec![user(3)]);
    store
        .set_mattermost_user_id(&user(3), &UserId::new(mm_value('u', 3)))
        .await
        .unwrap();
    assert!(store.clear_token(&user(1)).await.unwrap());
    assert!(store.get(&user(1)).await.unwrap().unwrap().token.is_none());
    assert!(matches!(
        store.put_token(&user(99), &new_token(1)).await,
        Err(StoreError::UnknownUser(_))
    ));
}

/// The inner store holds `mmt1:<kid>:...`, never the token; token id and
/// Mattermost user id stay plain.
pub async fn check_stored_form<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let inner = make(vec![user(1)]).await;
    let store = encrypted(&inner, &format!("k1:{K1}"));
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    let raw = inner.get(&user(1)).await.unwrap().unwrap();
    let value = raw.token.unwrap().expose_secret().to_owned();
    assert!(value.starts_with("mmt1:k1:"), "{value}");
    assert!(!value.contains(&mm_value('t', 1)));
    assert_eq!(raw.token_id, Some(TokenId::new(mm_value('i', 1))));
    assert_eq!(raw.mattermost_user_id, Some(UserId::new(mm_value('u', 1))));
    let payload = value.rsplit(':').next().unwrap();
    assert!(
        payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "base64url without padding: {payload}"
    );
}

/// A value copied into another user's row does not decrypt there.
pub async fn check_moved_value_fails<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let inner = make(vec![user(1), user(2)]).await;
    let store = encrypted(&inner, &format!("k1:{K1}"));
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    store.put_token(&user(2), &new_token(2)).await.unwrap();
    let stolen = raw_token(&inner, &user(1)).await;
    write_raw(&inner, &user(2), &stolen).await;
    let err = store.get(&user(2)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::DecryptionFailed { user: u, kid } if *u == user(2) && kid == "k1"),
        "{err:?}"
    );
    assert_quiet(&err, &[&stolen, &mm_value('t', 1)]);
    // get_many fails the same way.
    assert!(matches!(
        store.get_many(&[user(2)]).await,
        Err(StoreError::DecryptionFailed { .. })
    ));
    // The owner's row is unaffected.
    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        mm_value('t', 1)
    );
}

/// Written with k1; [k2, k1] reads it; re-encryption moves it to k2; [k2]
/// alone reads it; [k1] alone then fails with an unknown key id.
pub async fn check_rotation<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let users: Vec<HostUserId> = (1..=4).map(user).collect();
    let inner = make(users.clone()).await;
    let old = encrypted(&inner, &format!("k1:{K1}"));
    // Expiries in 2100, one per user: re-encryption must keep them.
    let expiry = |i: i64| Some(4_102_444_800_000 + i);
    for i in 1..=3 {
        let token = NewToken {
            expires_at: expiry(i),
            ..new_token(i as usize)
        };
        old.put_token(&user(i), &token).await.unwrap();
    }

    let rotated = encrypted(&inner, &format!("k2:{K2},k1:{K1}"));
    for i in 1..=3 {
        assert_eq!(
            read_token(&rotated, &user(i)).await.unwrap(),
            mm_value('t', i as usize)
        );
    }
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
    assert_eq!(report.skips, vec![(user(4), SkipReason::NoToken)]);
    for i in 1..=3 {
        assert!(raw_token(&inner, &user(i)).await.starts_with("mmt1:k2:"));
        let rec = inner.get(&user(i)).await.unwrap().unwrap();
        assert_eq!(
            rec.token_expires_at,
            expiry(i),
            "re-encryption kept the expiry"
        );
    }
    let again = rotated
        .reencrypt_all(futures::stream::iter(users.clone()))
        .await;
    assert_eq!((again.reencrypted, again.already_current), (0, 3));
    assert_eq!(
        rotated.reencrypt(&user(1)).await.unwrap(),
        ReencryptOutcome::AlreadyCurrent
    );

    let newest_only = encrypted(&inner, &format!("k2:{K2}"));
    for i in 1..=3 {
        assert_eq!(
            read_token(&newest_only, &user(i)).await.unwrap(),
            mm_value('t', i as usize)
        );
    }
    let oldest_only = encrypted(&inner, &format!("k1:{K1}"));
    let err = read_token(&oldest_only, &user(1)).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::UnknownKeyId { user: u, kid } if *u == user(1) && kid == "k2"),
        "{err:?}"
    );
    assert!(err.to_string().contains("\"k2\""), "{err}");
    assert_quiet(
        &err,
        &[&raw_token(&inner, &user(1)).await, &mm_value('t', 1)],
    );
}

/// Plaintext rows (written before encryption was turned on, by the Laravel
/// integration, or planted by someone who can write the table but not read
/// the key): refused by default, reported and not sealed by re-encryption;
/// read in a migration window and sealed only on purpose.
pub async fn check_plaintext_rows<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let inner = make(vec![user(1), user(2)]).await;
    inner.put_token(&user(1), &new_token(1)).await.unwrap();
    let store = encrypted(&inner, &format!("k1:{K1}"));
    let err = store.get(&user(1)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::PlaintextNotAllowed { .. }),
        "{err:?}"
    );
    assert_quiet(&err, &[&mm_value('t', 1)]);
    // Re-encryption reports the row and does not seal it: sealing a planted
    // value would make it look genuine.
    assert_eq!(
        store.reencrypt(&user(1)).await.unwrap(),
        ReencryptOutcome::Skipped(SkipReason::Plaintext)
    );
    let report = store
        .reencrypt_all(futures::stream::iter([user(1), user(2)]))
        .await;
    assert_eq!(
        (report.plaintext, report.reencrypted, report.skipped),
        (1, 0, 2),
        "{report:?}"
    );
    assert_eq!(report.skips[0], (user(1), SkipReason::Plaintext));
    assert_eq!(raw_token(&inner, &user(1)).await, mm_value('t', 1));

    // The migration window reads it; sealing is asked for explicitly.
    let window = encrypted(&inner, &format!("k1:{K1}")).allow_plaintext(true);
    assert_eq!(
        read_token(&window, &user(1)).await.unwrap(),
        mm_value('t', 1)
    );
    let sealing = encrypted(&inner, &format!("k1:{K1}")).seal_plaintext(true);
    assert_eq!(
        sealing.reencrypt(&user(1)).await.unwrap(),
        ReencryptOutcome::Reencrypted
    );
    let raw = raw_token(&inner, &user(1)).await;
    assert!(raw.starts_with("mmt1:k1:") && !raw.contains(&mm_value('t', 1)));
    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        mm_value('t', 1)
    );
    assert_eq!(
        store.reencrypt(&user(2)).await.unwrap(),
        ReencryptOutcome::Skipped(SkipReason::NoToken)
    );
    assert!(matches!(
        store.reencrypt(&user(99)).await,
        Err(StoreError::UnknownUser(_))
    ));
}

/// The same key id with other key bytes, a flipped character, and malformed
/// values each give their own error, none showing the value.
pub async fn check_wrong_key_and_tampering<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let inner = make(vec![user(1)]).await;
    let store = encrypted(&inner, &format!("k1:{K1}"));
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    let good = raw_token(&inner, &user(1)).await;

    let wrong_key = encrypted(&inner, &format!("k1:{K1_OTHER}"));
    let err = wrong_key.get(&user(1)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DecryptionFailed { .. }),
        "{err:?}"
    );
    assert_quiet(&err, &[&good, &mm_value('t', 1)]);

    // Flip one character in the middle of the payload.
    let mut bytes = good.clone().into_bytes();
    let i = "mmt1:k1:".len() + 20;
    bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    write_raw(&inner, &user(1), &tampered).await;
    let err = store.get(&user(1)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DecryptionFailed { .. }),
        "{err:?}"
    );
    assert_quiet(&err, &[&tampered, &mm_value('t', 1)]);

    // Truncated tag: still a value that fails authentication or is too
    // short, never a panic.
    let truncated = &good[..good.len() - 4];
    write_raw(&inner, &user(1), truncated).await;
    let err = store.get(&user(1)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::DecryptionFailed { .. } | StoreError::Corrupt { .. }
        ),
        "{err:?}"
    );

    for malformed in [
        "mmt1:k1:!!!not-base64!!!",
        "mmt1:k1:AAAA",
        "mmt1:k1",
        "mmt1::AAAA",
        "mmt1:k1/x:AAAA",
        "mmt9:k1:AAAA",
    ] {
        write_raw(&inner, &user(1), malformed).await;
        let err = store.get(&user(1)).await.unwrap_err();
        assert!(
            matches!(err, StoreError::Corrupt { .. }),
            "{malformed}: {err:?}"
        );
        assert_quiet(&err, &[malformed]);
    }
}

/// Two writes of the same token store different values (fresh nonces).
pub async fn check_fresh_nonces<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let inner = make(vec![user(1)]).await;
    let store = encrypted(&inner, &format!("k1:{K1}"));
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    let first = raw_token(&inner, &user(1)).await;
    store.put_token(&user(1), &new_token(1)).await.unwrap();
    let second = raw_token(&inner, &user(1)).await;
    assert_ne!(first, second);
    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        mm_value('t', 1)
    );
}

/// `put_token_if_absent` stays a compare-and-set through the wrapper: of 20
/// concurrent writers exactly one wins, and its token is the one stored.
pub async fn check_concurrent_put_if_absent<F, Fut>(make: &F)
where
    F: Fn(Vec<HostUserId>) -> Fut,
    Fut: Future<Output = Arc<dyn TokenStore>>,
{
    let inner = make(vec![user(1)]).await;
    let store: Arc<dyn TokenStore> = Arc::new(encrypted(&inner, &format!("k1:{K1}")));
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let won = store
                    .put_token_if_absent(&user(1), &new_token(i))
                    .await
                    .unwrap();
                (i, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        read_token(&*store, &user(1)).await.unwrap(),
        mm_value('t', winners[0])
    );
}

async fn memory(users: Vec<HostUserId>) -> Arc<dyn TokenStore> {
    Arc::new(MemoryStore::with_users(users))
}

#[tokio::test]
async fn memory_round_trip() {
    check_round_trip(&memory).await;
}

#[tokio::test]
async fn memory_stored_form_is_mmt1_without_the_token() {
    check_stored_form(&memory).await;
}

#[tokio::test]
async fn memory_value_moved_to_another_row_fails_authentication() {
    check_moved_value_fails(&memory).await;
}

#[tokio::test]
async fn memory_key_rotation() {
    check_rotation(&memory).await;
}

#[tokio::test]
async fn memory_plaintext_rows() {
    check_plaintext_rows(&memory).await;
}

#[tokio::test]
async fn memory_wrong_key_and_tampering() {
    check_wrong_key_and_tampering(&memory).await;
}

#[tokio::test]
async fn memory_fresh_nonce_per_write() {
    check_fresh_nonces(&memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_concurrent_put_if_absent() {
    check_concurrent_put_if_absent(&memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_whole_suite() {
    encryption_suite(memory).await;
}

/// Hides token ids on reads, like rows the Laravel integration wrote.
#[derive(Debug)]
struct WithoutTokenIds(MemoryStore);

#[async_trait]
impl TokenStore for WithoutTokenIds {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.0.get(user).await?.map(|mut r| {
            r.token_id = None;
            r
        }))
    }
    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        let mut out = HashMap::new();
        for u in users {
            if let Some(r) = self.get(u).await? {
                out.insert(u.clone(), r);
            }
        }
        Ok(out)
    }
    async fn set_mattermost_user_id(
        &self,
        user: &HostUserId,
        id: &UserId,
    ) -> Result<(), StoreError> {
        self.0.set_mattermost_user_id(user, id).await
    }
    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        t: &NewToken,
    ) -> Result<bool, StoreError> {
        self.0.put_token_if_absent(user, t).await
    }
    async fn put_token(&self, user: &HostUserId, t: &NewToken) -> Result<(), StoreError> {
        self.0.put_token(user, t).await
    }
    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        t: &NewToken,
    ) -> Result<bool, StoreError> {
        self.0.replace_token(user, expected, t).await
    }
    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError> {
        self.0.clear_token(user).await
    }
    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        self.0.list_missing(after, limit).await
    }
}

#[tokio::test]
async fn rows_without_token_id_stay_readable_and_are_skipped() {
    let inner = WithoutTokenIds(MemoryStore::with_users([user(1)]));
    inner.0.put_token(&user(1), &new_token(1)).await.unwrap();
    // The Laravel integration's rows: plaintext, read in the migration
    // window and sealed on purpose, except that without an id they cannot be.
    let store = EncryptedStore::new(inner, keys(&format!("k1:{K1}")))
        .allow_plaintext(true)
        .seal_plaintext(true);
    assert_eq!(
        read_token(&store, &user(1)).await.unwrap(),
        mm_value('t', 1)
    );
    assert_eq!(
        store.reencrypt(&user(1)).await.unwrap(),
        ReencryptOutcome::Skipped(SkipReason::NoTokenId)
    );
    let report = store.reencrypt_all(futures::stream::iter([user(1)])).await;
    assert_eq!((report.skipped, report.reencrypted), (1, 0));
    assert_eq!(report.skips, vec![(user(1), SkipReason::NoTokenId)]);
}

/// A re-encryption of many rows keeps a bounded report: the first skips
/// with their details, all of them counted.
#[tokio::test]
async fn reencryption_reports_stay_bounded() {
    let ids: Vec<HostUserId> = (1..=7).map(user).collect();
    let inner = WithoutTokenIds(MemoryStore::with_users(ids.clone()));
    for (i, u) in ids.iter().enumerate() {
        inner.0.put_token(u, &new_token(i + 1)).await.unwrap();
    }
    let store = EncryptedStore::new(inner, keys(&format!("k1:{K1}")))
        .seal_plaintext(true)
        .with_report_limit(3);
    let report = store.reencrypt_all(futures::stream::iter(ids)).await;
    assert_eq!(report.skipped, 7);
    assert_eq!(
        report.skips,
        (1..=3)
            .map(|i| (user(i), SkipReason::NoTokenId))
            .collect::<Vec<_>>()
    );
}

#[test]
fn keyring_configuration() {
    let ring = keys(&format!(" k2:{K2} , k1:{K1} "));
    assert_eq!(ring.current_kid(), "k2");
    assert_eq!(ring.kids().collect::<Vec<_>>(), ["k2", "k1"]);

    // A bare key (as in MATTERMOST_TOKENS_KEY) gets a stable derived kid.
    let bare = keys(K1);
    let kid = bare.current_kid().to_owned();
    assert_eq!(kid.len(), 8);
    assert!(kid.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(keys(K1).current_kid(), kid);
    assert_ne!(keys(K2).current_kid(), kid);
    // ...and can be named by that kid next to a new key later.
    let later = keys(&format!("k2:{K2},{kid}:{K1}"));
    assert_eq!(later.kids().collect::<Vec<_>>(), ["k2", kid.as_str()]);

    // URL-safe and unpadded base64 are accepted.
    let unpadded = K1.trim_end_matches('=');
    assert_eq!(keys(unpadded).current_kid(), kid);

    // Builder.
    let built = EncryptionKeys::new("new", [2u8; 32])
        .unwrap()
        .with_key("old", [1u8; 32])
        .unwrap();
    assert_eq!(built.kids().collect::<Vec<_>>(), ["new", "old"]);
    assert!(matches!(
        EncryptionKeys::new("a", [1u8; 32])
            .unwrap()
            .with_key("a", [2u8; 32]),
        Err(KeyError::DuplicateKeyId { .. })
    ));

    let generated = EncryptionKeys::generate_key();
    assert!(EncryptionKeys::from_config(&generated).is_ok());
    assert_ne!(generated, EncryptionKeys::generate_key());
}

#[test]
fn keyring_errors_are_typed_and_hold_no_key() {
    let err = |c: &str| EncryptionKeys::from_config(c).unwrap_err();
    assert_eq!(err(""), KeyError::Empty);
    assert_eq!(err(" , "), KeyError::Empty);
    assert!(matches!(
        err("k1:!!notbase64!!"),
        KeyError::InvalidBase64 { entry: 1, .. }
    ));
    assert!(matches!(
        err("k1:AAAA"),
        KeyError::WrongLength {
            entry: 1,
            len: 3,
            ..
        }
    ));
    assert!(matches!(
        err(&format!("k1:{K1},k1:{K2}")),
        KeyError::DuplicateKeyId { .. }
    ));
    assert!(matches!(
        err(&format!("{K1},{K1}")),
        KeyError::DuplicateKeyId { .. }
    ));
    assert!(matches!(
        err(&format!("this-kid-is-far-too-long:{K1}")),
        KeyError::InvalidKeyId { .. }
    ));
    assert!(matches!(
        err(&format!("bad kid:{K1}")),
        KeyError::InvalidKeyId { .. }
    ));
    assert!(matches!(
        EncryptionKeys::from_env("MATTERMOST_TOKENS_TEST_UNSET_VARIABLE"),
        Err(KeyError::MissingEnv { .. })
    ));
    // A 31-byte key, valid base64: the message names the entry, not the key.
    let short = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQ==";
    let e = err(&format!("k2:{K2},{short}"));
    assert!(
        matches!(
            e,
            KeyError::WrongLength {
                entry: 2,
                kid: None,
                len: 31
            }
        ),
        "{e:?}"
    );
    for shown in [e.to_string(), format!("{e:?}")] {
        assert!(!shown.contains(short) && !shown.contains(K2), "{shown}");
    }
    let e = err("k1:!!notbase64!!");
    assert!(!e.to_string().contains("notbase64"), "{e}");
}

#[test]
fn debug_shows_kids_but_no_key_material() {
    let ring = keys(&format!("k2:{K2},k1:{K1}"));
    let store = EncryptedStore::new(MemoryStore::new(), keys(&format!("k2:{K2},k1:{K1}")));
    for shown in [
        format!("{ring:?}"),
        format!("{ring:#?}"),
        format!("{store:?}"),
    ] {
        assert!(shown.contains("k2") && shown.contains("k1"), "{shown}");
        for key in [K1, K2] {
            assert!(!shown.contains(key), "{shown}");
            assert!(!shown.contains(&key[..12]), "{shown}");
        }
        // Key bytes as a Rust array would print them.
        assert!(
            !shown.contains("[1, 1, 1") && !shown.contains("[2, 2, 2"),
            "{shown}"
        );
    }
}
