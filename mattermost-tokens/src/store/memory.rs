use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{Claimed, Lease, MissingPage, NewToken, StoreError, TokenRecord, TokenStore};
use crate::ids::{HostUserId, TokenId, UserId};
use crate::time::unix_now_ms;

/// A [`TokenStore`] in process memory: for tests, examples and hosts that keep
/// their users in memory. Users must be added with [`MemoryStore::add_user`]
/// (it stands for the host's `users` table).
#[derive(Default)]
pub struct MemoryStore {
    inner: Mutex<Rows>,
}

#[derive(Default)]
struct Rows {
    by_user: BTreeMap<HostUserId, TokenRecord>,
    /// Which host user each Mattermost id is linked to: the unique index of
    /// the database stores, without a scan per write.
    links: HashMap<UserId, HostUserId>,
    /// The claim columns: (owner, until) per claimed user, and the users
    /// with an unsettled mint intent.
    claims: HashMap<HostUserId, (String, i64)>,
    intents: HashMap<HostUserId, String>,
}

impl Rows {
    fn get(&self, user: &HostUserId) -> Option<&TokenRecord> {
        self.by_user.get(user)
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.inner.lock().map(|r| r.by_user.len()).unwrap_or(0);
        f.debug_struct("MemoryStore").field("users", &n).finish()
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding these host users, none of them with a token yet.
    pub fn with_users(users: impl IntoIterator<Item = HostUserId>) -> Self {
        let s = Self::new();
        for u in users {
            s.add_user(u);
        }
        s
    }

    /// Adds a host user (no-op when present).
    pub fn add_user(&self, user: HostUserId) {
        self.lock().by_user.entry(user).or_default();
    }

    /// Puts a row as another tool would have written it, for example a
    /// token without its id (the Laravel integration this library ports
    /// stored none). Adds the user when absent; keeps the link index.
    pub fn insert_record(&self, user: HostUserId, record: TokenRecord) {
        let mut rows = self.lock();
        if let Some(old) = rows
            .by_user
            .get(&user)
            .and_then(|r| r.mattermost_user_id.clone())
        {
            rows.links.remove(&old);
        }
        if let Some(id) = &record.mattermost_user_id {
            rows.links.insert(id.clone(), user.clone());
        }
        rows.by_user.insert(user, record);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rows> {
        // A panic while holding the lock cannot leave a row half-written (each
        // critical section is a single assignment), so poisoning is ignored.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn with_row<T>(
        &self,
        user: &HostUserId,
        f: impl FnOnce(&mut TokenRecord) -> T,
    ) -> Result<T, StoreError> {
        self.with_linked_row(user, None, f)
    }

    /// Like `with_row`, refusing to link `mattermost_user_id` to `user` when
    /// another row holds it (the unique index of the database stores).
    fn with_linked_row<T>(
        &self,
        user: &HostUserId,
        mattermost_user_id: Option<&UserId>,
        f: impl FnOnce(&mut TokenRecord) -> T,
    ) -> Result<T, StoreError> {
        let mut rows = self.lock();
        let Rows { by_user, links, .. } = &mut *rows;
        let Some(row) = by_user.get_mut(user) else {
            return Err(StoreError::UnknownUser(user.clone()));
        };
        if let Some(mm) = mattermost_user_id
            && links.get(mm).is_some_and(|owner| owner != user)
        {
            return Err(StoreError::AlreadyLinked {
                user: user.clone(),
                mattermost_user_id: mm.clone(),
            });
        }
        let before = row.mattermost_user_id.clone();
        let out = f(row);
        if row.mattermost_user_id != before {
            if let Some(old) = before {
                links.remove(&old);
            }
            if let Some(new) = &row.mattermost_user_id {
                links.insert(new.clone(), user.clone());
            }
        }
        Ok(out)
    }
}

fn write(row: &mut TokenRecord, t: &NewToken) {
    row.mattermost_user_id = Some(t.mattermost_user_id.clone());
    row.token = Some(t.token.clone());
    row.token_id = Some(t.token_id.clone());
    row.token_expires_at = t.expires_at;
}

#[async_trait]
impl TokenStore for MemoryStore {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        Ok(self.lock().get(user).cloned())
    }

    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        let rows = self.lock();
        Ok(users
            .iter()
            .filter_map(|u| rows.get(u).map(|r| (u.clone(), r.clone())))
            .collect())
    }

    async fn set_mattermost_user_id(
        &self,
        user: &HostUserId,
        mattermost_user_id: &UserId,
    ) -> Result<(), StoreError> {
        self.with_linked_row(user, Some(mattermost_user_id), |r| {
            r.mattermost_user_id = Some(mattermost_user_id.clone())
        })
    }

    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        self.with_linked_row(user, Some(&token.mattermost_user_id), |r| {
            if r.token.is_some() {
                false
            } else {
                write(r, token);
                true
            }
        })
    }

    async fn put_token(&self, user: &HostUserId, token: &NewToken) -> Result<(), StoreError> {
        self.with_linked_row(user, Some(&token.mattermost_user_id), |r| write(r, token))
    }

    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        self.with_linked_row(user, Some(&token.mattermost_user_id), |r| {
            if r.token_id.as_ref() == Some(expected) {
                write(r, token);
                true
            } else {
                false
            }
        })
    }

    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError> {
        self.with_row(user, |r| {
            let had = r.token.is_some();
            r.token = None;
            r.token_id = None;
            r.token_expires_at = None;
            had
        })
    }

    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        let rows = self.lock();
        let limit = limit.max(1);
        let range: Box<dyn Iterator<Item = (&HostUserId, &TokenRecord)>> = match after {
            Some(a) => Box::new(rows.by_user.range((
                std::ops::Bound::Excluded(a.clone()),
                std::ops::Bound::Unbounded,
            ))),
            None => Box::new(rows.by_user.iter()),
        };
        let users: Vec<HostUserId> = range
            .filter(|(_, r)| r.token.is_none())
            .take(limit as usize)
            .map(|(k, _)| k.clone())
            .collect();
        Ok(MissingPage::of(users, limit))
    }

    async fn claim(&self, users: &[HostUserId], lease: &Lease) -> Result<Vec<Claimed>, StoreError> {
        let now = unix_now_ms();
        let mut rows = self.lock();
        let mut out = Vec::new();
        for user in users {
            if !rows.by_user.contains_key(user) {
                continue;
            }
            let free = rows
                .claims
                .get(user)
                .is_none_or(|(owner, until)| *until < now || *owner == lease.owner);
            if free {
                rows.claims
                    .insert(user.clone(), (lease.owner.clone(), lease.until_ms));
                out.push(Claimed {
                    user: user.clone(),
                    pending_intent: rows.intents.contains_key(user),
                });
            }
        }
        Ok(out)
    }

    fn claims_shared(&self) -> bool {
        true
    }

    async fn record_intent(
        &self,
        user: &HostUserId,
        lease: &Lease,
        nonce: &str,
    ) -> Result<bool, StoreError> {
        let mut rows = self.lock();
        match rows.claims.get_mut(user) {
            Some((owner, until)) if *owner == lease.owner => {
                *until = lease.until_ms;
                rows.intents.insert(user.clone(), nonce.to_owned());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(
        &self,
        user: &HostUserId,
        lease: &Lease,
        settled: bool,
    ) -> Result<(), StoreError> {
        let mut rows = self.lock();
        if rows
            .claims
            .get(user)
            .is_some_and(|(o, _)| *o == lease.owner)
        {
            rows.claims.remove(user);
            if settled {
                rows.intents.remove(user);
            }
        }
        Ok(())
    }
}
