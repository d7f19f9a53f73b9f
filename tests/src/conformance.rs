//! The `TokenStore` conformance suite.
//!
//! A backend provides a [`StoreFactory`] and instantiates every case with
//! [`conformance_tests!`](crate::conformance_tests):
//!
//! ```ignore
//! mattermost_tokens_tests::conformance_tests!(memory, MemoryFactory);
//! ```

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

pub use crate::claim_conformance::{claims_exclude, concurrent_claims, dead_claims_and_intents};
use mattermost_tokens::{
    AccessToken, HostUserId, NewToken, StoreError, TokenId, TokenRecord, TokenStore, UserId,
};

/// Makes fresh stores for the suite.
#[async_trait]
pub trait StoreFactory: Send + Sync {
    /// A fresh store over a host `users` table that holds exactly `users`
    /// (all of one kind: all integer or all text keys), none with a token.
    /// Returns `None` when the backend is unavailable and the test should be
    /// skipped (the factory has printed why).
    async fn fresh(&self, users: &[HostUserId]) -> Option<Arc<dyn TokenStore>>;
}

fn mm_id(n: usize) -> UserId {
    UserId::new(format!("{:0>26}", format!("u{n}")))
}

fn tok_id(n: usize) -> TokenId {
    TokenId::new(format!("{:0>26}", format!("t{n}")))
}

fn new_token(n: usize, value: &str) -> NewToken {
    NewToken {
        mattermost_user_id: mm_id(n),
        token: AccessToken::new(value),
        token_id: tok_id(n),
        expires_at: None,
    }
}

fn int_users(n: i64) -> Vec<HostUserId> {
    (1..=n).map(HostUserId::Int).collect()
}

fn text_users(n: usize) -> Vec<HostUserId> {
    (0..n)
        .map(|i| HostUserId::Text(format!("7f1c2a9e-0000-4000-8000-{i:012}")))
        .collect()
}

/// Write, read back, and check every field.
pub async fn round_trip(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let u = &users[0];
    let rec = s.get(u).await.unwrap().expect("known user");
    assert!(rec.token.is_none() && rec.token_id.is_none() && rec.mattermost_user_id.is_none());

    s.set_mattermost_user_id(u, &mm_id(1)).await.unwrap();
    let rec = s.get(u).await.unwrap().unwrap();
    assert_eq!(rec.mattermost_user_id, Some(mm_id(1)));
    assert!(rec.token.is_none());

    let t = new_token(1, "abcdefghijklmnopqrstuvwxy1");
    assert!(s.put_token_if_absent(u, &t).await.unwrap());
    let rec = s.get(u).await.unwrap().unwrap();
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        "abcdefghijklmnopqrstuvwxy1"
    );
    assert_eq!(rec.token_id, Some(tok_id(1)));
    assert_eq!(rec.mattermost_user_id, Some(mm_id(1)));

    // Other users untouched.
    let other = s.get(&users[1]).await.unwrap().unwrap();
    assert!(other.token.is_none() && other.mattermost_user_id.is_none());

    // get_many returns known users only.
    let mut ask = users.clone();
    ask.push(HostUserId::Int(987_654_321));
    ask.push(HostUserId::Text("no-such-user".into()));
    let many = s.get_many(&ask).await.unwrap();
    assert_eq!(many.len(), users.len());
    assert_eq!(
        many[u].token.as_ref().unwrap().expose_secret(),
        "abcdefghijklmnopqrstuvwxy1"
    );
}

/// 20 concurrent compare-and-set writers: exactly one wins and its token is
/// the stored one.
pub async fn cas_concurrent(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let u = users[0].clone();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let s = s.clone();
        let u = u.clone();
        tasks.push(tokio::spawn(async move {
            let t = new_token(i, &format!("token-of-writer-{i:02}-xxxxxxxx"));
            (i, s.put_token_if_absent(&u, &t).await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(
        winners.len(),
        1,
        "exactly one writer must win, got {winners:?}"
    );
    let w = winners[0];
    let rec = s.get(&u).await.unwrap().unwrap();
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        format!("token-of-writer-{w:02}-xxxxxxxx")
    );
    assert_eq!(rec.token_id, Some(tok_id(w)));
    // A later CAS still loses and changes nothing.
    assert!(
        !s.put_token_if_absent(&u, &new_token(99, "late"))
            .await
            .unwrap()
    );
    assert_eq!(s.get(&u).await.unwrap().unwrap().token_id, Some(tok_id(w)));
}

/// Unicode and exact 26-character values come back byte for byte.
pub async fn unicode_and_26_chars(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let values = ["h9x3k1m8p2q7w4e6r5t0y1u2i3", "tök€n-ünïcødé-ß-日本語-🙂"];
    assert_eq!(values[0].len(), 26);
    for (i, v) in values.iter().enumerate() {
        let u = &users[i];
        assert!(s.put_token_if_absent(u, &new_token(i, v)).await.unwrap());
        let got = s.get(u).await.unwrap().unwrap().token.unwrap();
        assert_eq!(got.expose_secret(), *v);
    }
}

/// Clearing removes token and id, keeps the Mattermost id, and allows a new
/// compare-and-set.
pub async fn clear(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let u = &users[0];
    assert!(!s.clear_token(u).await.unwrap(), "nothing to clear yet");
    assert!(
        s.put_token_if_absent(u, &new_token(1, "first-token"))
            .await
            .unwrap()
    );
    assert!(s.clear_token(u).await.unwrap());
    let rec = s.get(u).await.unwrap().unwrap();
    assert!(rec.token.is_none() && rec.token_id.is_none());
    assert_eq!(rec.mattermost_user_id, Some(mm_id(1)));
    assert!(!s.clear_token(u).await.unwrap());
    assert!(
        s.put_token_if_absent(u, &new_token(2, "second-token"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get(u)
            .await
            .unwrap()
            .unwrap()
            .token
            .unwrap()
            .expose_secret(),
        "second-token"
    );
}

/// Unconditional put and compare-and-set replace.
pub async fn put_and_replace(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let u = &users[0];
    s.put_token(u, &new_token(1, "one")).await.unwrap();
    s.put_token(u, &new_token(2, "two")).await.unwrap();
    let rec = s.get(u).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "two");
    assert_eq!(rec.token_id, Some(tok_id(2)));

    assert!(
        !s.replace_token(u, &tok_id(1), &new_token(3, "three"))
            .await
            .unwrap()
    );
    assert_eq!(s.get(u).await.unwrap().unwrap().token_id, Some(tok_id(2)));
    assert!(
        s.replace_token(u, &tok_id(2), &new_token(3, "three"))
            .await
            .unwrap()
    );
    let rec = s.get(u).await.unwrap().unwrap();
    assert_eq!(rec.token.unwrap().expose_secret(), "three");
    assert_eq!(rec.token_id, Some(tok_id(3)));
}

/// A token's expiry is stored with it by every write, read back by `get` and
/// `get_many`, and cleared with the token; a token without one reads back
/// `None`. Millisecond timestamps past 2^31 seconds must survive (BIGINT).
pub async fn token_expiry(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let (u, v) = (&users[0], &users[1]);
    let at = |n: usize, ms: Option<i64>| NewToken {
        expires_at: ms,
        ..new_token(n, &format!("expiring-{n}"))
    };
    let expiry = |rec: Option<TokenRecord>| rec.unwrap().token_expires_at;
    // 2100-01-01 and 2300-01-01 in milliseconds.
    let (soon, later) = (4_102_444_800_000_i64, 10_413_792_000_000_i64);

    assert!(s.put_token_if_absent(u, &at(1, Some(soon))).await.unwrap());
    assert_eq!(expiry(s.get(u).await.unwrap()), Some(soon));
    // A refused compare-and-set changes nothing, expiry included.
    assert!(!s.put_token_if_absent(u, &at(2, Some(later))).await.unwrap());
    assert_eq!(expiry(s.get(u).await.unwrap()), Some(soon));
    assert!(!s.replace_token(u, &tok_id(9), &at(2, None)).await.unwrap());
    assert_eq!(expiry(s.get(u).await.unwrap()), Some(soon));
    assert!(
        s.replace_token(u, &tok_id(1), &at(2, Some(later)))
            .await
            .unwrap()
    );
    assert_eq!(expiry(s.get(u).await.unwrap()), Some(later));
    // Replacing with a token that does not expire clears it.
    s.put_token(u, &at(3, None)).await.unwrap();
    assert_eq!(expiry(s.get(u).await.unwrap()), None);
    s.put_token(u, &at(4, Some(soon))).await.unwrap();
    assert!(s.clear_token(u).await.unwrap());
    assert_eq!(expiry(s.get(u).await.unwrap()), None);

    s.put_token(v, &at(5, Some(later))).await.unwrap();
    let many = s.get_many(&users).await.unwrap();
    assert_eq!(many[v].token_expires_at, Some(later));
    assert_eq!(many[u].token_expires_at, None);
}

/// Listing users without a token pages through all of them, in order, and
/// leaves out users with a token.
pub async fn missing_across_pages(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let mut expected = BTreeSet::new();
    for (i, u) in users.iter().enumerate() {
        if i % 3 == 0 {
            assert!(s.put_token_if_absent(u, &new_token(i, "x")).await.unwrap());
        } else {
            expected.insert(u.clone());
        }
    }
    let mut seen = Vec::new();
    let mut after: Option<HostUserId> = None;
    let mut pages = 0;
    loop {
        let page = s.list_missing(after.as_ref(), 4).await.unwrap();
        assert!(page.users.len() <= 4);
        pages += 1;
        assert!(pages < 100, "paging does not end");
        seen.extend(page.users.iter().cloned());
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    let seen_set: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen_set.len(), seen.len(), "a user was listed twice");
    assert_eq!(seen_set, expected);
    assert!(
        pages >= expected.len() / 4,
        "expected several pages, got {pages}"
    );
}

/// Unknown users read as `None` and fail writes with `UnknownUser`.
pub async fn unknown_user(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let ghost = match &users[0] {
        HostUserId::Int(_) => HostUserId::Int(424_242_424),
        HostUserId::Text(_) => HostUserId::Text("00000000-dead-4000-8000-000000000000".into()),
    };
    assert!(s.get(&ghost).await.unwrap().is_none());
    let t = new_token(1, "t");
    assert!(matches!(
        s.put_token_if_absent(&ghost, &t).await,
        Err(StoreError::UnknownUser(_))
    ));
    assert!(matches!(
        s.put_token(&ghost, &t).await,
        Err(StoreError::UnknownUser(_))
    ));
    assert!(matches!(
        s.set_mattermost_user_id(&ghost, &mm_id(1)).await,
        Err(StoreError::UnknownUser(_))
    ));
    assert!(matches!(
        s.clear_token(&ghost).await,
        Err(StoreError::UnknownUser(_))
    ));
    assert!(matches!(
        s.replace_token(&ghost, &tok_id(1), &t).await,
        Err(StoreError::UnknownUser(_))
    ));
}

/// A Mattermost user is linked to at most one host user.
pub async fn one_account_per_user(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let (a, b) = (&users[0], &users[1]);
    s.set_mattermost_user_id(a, &mm_id(1)).await.unwrap();
    s.set_mattermost_user_id(a, &mm_id(1)).await.unwrap(); // idempotent
    assert!(matches!(
        s.set_mattermost_user_id(b, &mm_id(1)).await,
        Err(StoreError::AlreadyLinked { .. })
    ));
    assert!(matches!(
        s.put_token_if_absent(b, &new_token(1, "second-owner"))
            .await,
        Err(StoreError::AlreadyLinked { .. })
    ));
    assert!(matches!(
        s.put_token(b, &new_token(1, "second-owner")).await,
        Err(StoreError::AlreadyLinked { .. })
    ));
    let rec = s.get(b).await.unwrap().unwrap();
    assert!(
        rec.mattermost_user_id.is_none() && rec.token.is_none(),
        "{rec:?}"
    );
    // Once the first user is linked elsewhere, the account is free.
    s.set_mattermost_user_id(a, &mm_id(2)).await.unwrap();
    assert!(
        s.put_token_if_absent(b, &new_token(1, "now-mine"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get(b).await.unwrap().unwrap().mattermost_user_id,
        Some(mm_id(1))
    );
}

/// Integer-keyed users for the suite.
pub fn int_keys(n: i64) -> Vec<HostUserId> {
    int_users(n)
}

/// Text-keyed (UUID-shaped) users for the suite.
pub fn text_keys(n: usize) -> Vec<HostUserId> {
    text_users(n)
}

/// Instantiates every conformance case as a test for one backend.
/// `$factory` is an expression of a type implementing [`StoreFactory`].
#[macro_export]
macro_rules! conformance_tests {
    ($name:ident, $factory:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as c;

            macro_rules! case {
                ($case:ident, $test:ident, $users:expr) => {
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $test() {
                        let f = $factory;
                        c::$case(&f, $users).await;
                    }
                };
            }

            case!(round_trip, round_trip_int, c::int_keys(3));
            case!(round_trip, round_trip_text, c::text_keys(3));
            case!(cas_concurrent, cas_20_writers_int, c::int_keys(2));
            case!(cas_concurrent, cas_20_writers_text, c::text_keys(2));
            case!(unicode_and_26_chars, unicode_and_26_chars, c::int_keys(2));
            case!(clear, clear_int, c::int_keys(2));
            case!(clear, clear_text, c::text_keys(2));
            case!(put_and_replace, put_and_replace, c::int_keys(2));
            case!(token_expiry, token_expiry_int, c::int_keys(2));
            case!(token_expiry, token_expiry_text, c::text_keys(2));
            case!(missing_across_pages, missing_pages_int, c::int_keys(25));
            case!(missing_across_pages, missing_pages_text, c::text_keys(25));
            case!(unknown_user, unknown_user_int, c::int_keys(2));
            case!(unknown_user, unknown_user_text, c::text_keys(2));
            case!(
                one_account_per_user,
                one_account_per_user_int,
                c::int_keys(2)
            );
            case!(
                one_account_per_user,
                one_account_per_user_text,
                c::text_keys(2)
            );
            case!(claims_exclude, claims_exclude_int, c::int_keys(3));
            case!(claims_exclude, claims_exclude_text, c::text_keys(3));
            case!(dead_claims_and_intents, dead_claims_int, c::int_keys(2));
            case!(dead_claims_and_intents, dead_claims_text, c::text_keys(2));
            case!(concurrent_claims, concurrent_claims, c::int_keys(40));
        }
    };
}
