//! Keys and values for the encryption-at-rest suites, which check the same
//! things over the sqlx and the diesel stores.

use mattermost_tokens::{
    AccessToken, EncryptionKeys, HostUserId, NewToken, StoreError, TokenId, TokenStore, UserId,
};

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
