//! The claim cases of the `TokenStore` conformance suite: how syncs in
//! several processes share one users table ([`TokenStore::claim`],
//! [`TokenStore::record_intent`], [`TokenStore::release`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mattermost_tokens::store::Lease;
use mattermost_tokens::{HostUserId, TokenStore};

use crate::conformance::StoreFactory;

fn lease() -> Lease {
    Lease::new(Duration::from_secs(60))
}

/// A lease that ran out a second ago: what a dead process leaves.
fn dead_lease() -> Lease {
    let mut l = lease();
    l.until_ms -= 61_000;
    l
}

async fn claimed(s: &dyn TokenStore, users: &[HostUserId], l: &Lease) -> Vec<HostUserId> {
    let mut got: Vec<HostUserId> = s
        .claim(users, l)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.user)
        .collect();
    got.sort();
    got
}

/// A live claim keeps other leases off the user until it is released;
/// users the host does not have are never claimed.
pub async fn claims_exclude(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let (a, b) = (lease(), lease());
    assert_eq!(claimed(&*s, &users[..2], &a).await, users[..2]);
    assert_eq!(
        claimed(&*s, &users, &b).await,
        users[2..],
        "b gets only the free one"
    );
    s.release(&users[0], &a, true).await.unwrap();
    // What b holds: the released user and the one it had.
    assert_eq!(
        claimed(&*s, &users, &b).await,
        [users[0].clone(), users[2].clone()]
    );
    // Releasing with another lease changes nothing.
    s.release(&users[1], &b, true).await.unwrap();
    assert!(claimed(&*s, &users[1..2], &b).await.is_empty());
    let stranger = match &users[0] {
        HostUserId::Int(_) => HostUserId::Int(9_999_999),
        HostUserId::Text(_) => HostUserId::Text("7f1c2a9e-0000-4000-8000-999999999999".into()),
    };
    assert!(claimed(&*s, &[stranger], &lease()).await.is_empty());
}

/// A claim that ran out is taken over, and its holder can then no longer
/// record an intent; an unsettled intent is reported to the next holder
/// until a release settles it.
pub async fn dead_claims_and_intents(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let u = &users[0];
    let dead = dead_lease();
    let one = std::slice::from_ref(u);
    assert_eq!(claimed(&*s, one, &dead).await, one);
    assert!(
        s.record_intent(u, &dead, "0123456789abcdef0123456789abcdef")
            .await
            .unwrap()
    );
    // The process died here: minted, maybe, never stored.
    let next = lease();
    let got = s.claim(std::slice::from_ref(u), &next).await.unwrap();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].pending_intent,
        "the dead holder's intent is reported"
    );
    assert!(
        !s.record_intent(u, &dead, "ffffffffffffffffffffffffffffffff")
            .await
            .unwrap(),
        "a lease that was taken over records nothing"
    );
    // Released without settling: the intent stays.
    s.release(u, &next, false).await.unwrap();
    let third = lease();
    let got = s.claim(std::slice::from_ref(u), &third).await.unwrap();
    assert!(got[0].pending_intent);
    s.release(u, &third, true).await.unwrap();
    let got = s.claim(std::slice::from_ref(u), &lease()).await.unwrap();
    assert!(!got[0].pending_intent, "settled");
    // An intent on a user without a claim is refused.
    assert!(!s.record_intent(&users[1], &lease(), "00").await.unwrap());
}

/// Sixteen leases claiming the same users at once: each user goes to
/// exactly one of them.
pub async fn concurrent_claims(f: &dyn StoreFactory, users: Vec<HostUserId>) {
    let Some(s) = f.fresh(&users).await else {
        return;
    };
    let users = Arc::new(users);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (s, users) = (Arc::clone(&s), Arc::clone(&users));
            tokio::spawn(async move { claimed(&*s, &users, &lease()).await })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let distinct: BTreeSet<_> = all.iter().cloned().collect();
    assert_eq!(
        all.len(),
        users.len(),
        "every user claimed exactly once: {all:?}"
    );
    assert_eq!(distinct.len(), users.len());
}
