//! The library's promise after a sync, checked against the stand-in:
//! every host user has exactly one live token minted by the library, equal to
//! the stored one, and no other live library token exists anywhere.

use std::collections::{BTreeMap, BTreeSet};

use mattermost_tokens::{DESCRIPTION_PREFIX, HostUserId, TokenStore, UserId};
use mattermost_tokens_stand_in::StandIn;

/// Panics with a description of every broken part of the promise for
/// `users` in `store` against `server`.
pub async fn assert_promise(server: &StandIn, store: &dyn TokenStore, users: &[HostUserId]) {
    let mut problems = Vec::new();
    let live: Vec<_> = server
        .live_tokens()
        .into_iter()
        .filter(|t| t.description.starts_with(DESCRIPTION_PREFIX))
        .collect();
    let mut live_by_user: BTreeMap<UserId, BTreeSet<String>> = BTreeMap::new();
    for t in &live {
        live_by_user
            .entry(t.user_id.clone())
            .or_default()
            .insert(t.id.as_str().to_owned());
    }
    let mut expected_live = BTreeSet::new();
    let records = store.get_many(users).await.expect("store readable");
    for u in users {
        let Some(rec) = records.get(u) else {
            problems.push(format!("host user {u} missing from the store"));
            continue;
        };
        let (Some(mm), Some(token), Some(token_id)) =
            (&rec.mattermost_user_id, &rec.token, &rec.token_id)
        else {
            problems.push(format!("host user {u} has no complete record: {rec:?}"));
            continue;
        };
        if !server.token_is_live(token.expose_secret()) {
            problems.push(format!(
                "host user {u}: stored token {token_id} is not live"
            ));
        }
        if server.token_id_of(token.expose_secret()).as_ref() != Some(token_id) {
            problems.push(format!(
                "host user {u}: stored token id {token_id} does not match the value"
            ));
        }
        let on_user = live_by_user.get(mm).cloned().unwrap_or_default();
        let want: BTreeSet<String> = [token_id.as_str().to_owned()].into();
        if on_user != want {
            problems.push(format!(
                "host user {u}: live library tokens on {mm} are {on_user:?}, expected only {token_id}"
            ));
        }
        expected_live.insert(token_id.as_str().to_owned());
    }
    for t in &live {
        if !expected_live.contains(t.id.as_str()) {
            problems.push(format!(
                "live library token {} on {} is not stored for anyone",
                t.id, t.user_id
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "the promise is broken:\n{}",
        problems.join("\n")
    );
}

/// Each of the stand-in's accounts (the admin aside) has its own email,
/// there is one per host user `1..=n`, and each host user's stored
/// Mattermost id is the account of its email (`user{i}@example.com`): no
/// duplicate accounts.
pub async fn assert_one_account_per_user(server: &StandIn, store: &dyn TokenStore, n: i64) {
    let accounts: Vec<_> = server
        .users()
        .into_iter()
        .filter(|u| u.id != server.admin_user_id())
        .collect();
    assert_eq!(
        accounts.len() as i64,
        n,
        "expected one Mattermost account per host user"
    );
    let emails: BTreeSet<_> = accounts.iter().map(|u| u.email.clone()).collect();
    assert_eq!(emails.len(), accounts.len(), "two accounts share an email");
    let ids: Vec<HostUserId> = (1..=n).map(HostUserId::Int).collect();
    let records = store.get_many(&ids).await.expect("store readable");
    for i in 1..=n {
        let account = server
            .user_by_email(&format!("user{i}@example.com"))
            .unwrap_or_else(|| panic!("no account for user {i}"));
        assert_eq!(
            records[&HostUserId::Int(i)].mattermost_user_id.as_ref(),
            Some(&account.id),
            "user {i} is linked to another account than its email's"
        );
    }
}
