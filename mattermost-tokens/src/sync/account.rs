//! Accounts: finding, creating and patching a host user's Mattermost
//! account, and linking it.

use rand::Rng;
use secrecy::SecretString;

use crate::error::Error;
use crate::host::HostUser;
use crate::ids::{HostUserId, UserId, is_valid_mattermost_id};
use crate::models::{CreateUser, User, UserPatch};
use crate::store::{StoreError, TokenStore};

use super::{AccountOutcome, Prepared, TokenOutcome, UserOutcome, UserSync};

impl UserSync {
    pub(super) async fn sync_prepared(&self, p: Prepared) -> Result<UserOutcome, Error> {
        let user = &p.user;
        let invalid = |reason: String| Error::InvalidHostUser {
            user: user.id.clone(),
            reason,
        };
        let email = user.normalized_email().map_err(invalid)?;
        let record = match p.record {
            Some(r) => r,
            None => self.record(&user.id).await?,
        };
        let expiring = self.expiring(&record);
        if (record.token.is_none() || self.opts.replace_tokens || expiring)
            && !self.opts.dry_run
            && let Some(e) = self.expiry_refused()
        {
            // The server's lifetime policy refused an earlier mint of this
            // sync: this one would be refused too.
            return Err(e);
        }

        // 1. The account.
        let existing = match (&record.mattermost_user_id, p.account) {
            (None, _) => None,
            (Some(_), Some(fetched)) => fetched,
            (Some(id), None) => match self.admin().user(id).await {
                // The answer must be the account asked for: its id is
                // written to the store below.
                Ok(u) if u.id != *id => {
                    return Err(self.malformed("GET", &format!("users/{id}"), 200, &u.id));
                }
                Ok(u) => Some(u),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            },
        };
        // The Mattermost id the store holds for this user, as it changes below.
        let mut linked = record.mattermost_user_id.clone();
        let (account, outcome, created_now) = match existing {
            Some(u) => {
                let (u, o) = self.update_account(user, &email, u).await?;
                (Some(u), o, false)
            }
            None => match self.find_or_create(user, &email).await? {
                (Some(u), true) => (Some(u), AccountOutcome::Created, true),
                (Some(u), false) => {
                    // Found by email: link it first, so an account that is
                    // another host user's (same email) is refused by the
                    // store before anything of it is changed.
                    if !self.opts.dry_run && linked.as_ref() != Some(&u.id) {
                        match self.store.set_mattermost_user_id(&user.id, &u.id).await {
                            Ok(()) => linked = Some(u.id.clone()),
                            Err(StoreError::AlreadyLinked { .. }) => {
                                return Err(self.shared_account(&user.id, &u.id).await);
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    let (u, o) = self.update_account(user, &email, u).await?;
                    (Some(u), o, false)
                }
                (None, _) => (None, AccountOutcome::Created, true),
            },
        };
        let Some(account) = account else {
            // Dry run for a user that does not exist yet.
            return Ok(UserOutcome {
                user: user.id.clone(),
                mattermost_user_id: None,
                account: outcome,
                token: TokenOutcome::WouldMint,
                orphans_revoked: 0,
            });
        };
        if account.is_deactivated() {
            return Err(Error::UserDeactivated {
                user: user.id.clone(),
                mattermost_user_id: account.id,
            });
        }
        if !self.opts.dry_run && linked.as_ref() != Some(&account.id) {
            // Linked before the mint: a crash after this point leaves a
            // user the next run finds without a lookup.
            match self
                .store
                .set_mattermost_user_id(&user.id, &account.id)
                .await
            {
                Ok(()) => {}
                Err(StoreError::AlreadyLinked { .. }) => {
                    return Err(self.shared_account(&user.id, &account.id).await);
                }
                Err(e) => return Err(e.into()),
            }
        }

        // 2. The token.
        let replacing = record.token.is_some();
        let (token, orphans_revoked) = if replacing && !self.opts.replace_tokens && !expiring {
            (TokenOutcome::Kept, 0)
        } else if self.opts.dry_run {
            (TokenOutcome::WouldMint, 0)
        } else {
            let old = replacing.then_some(record.token_id.as_ref()).flatten();
            self.mint_and_store(&user.id, &account.id, created_now, replacing, old)
                .await?
        };
        Ok(UserOutcome {
            user: user.id.clone(),
            mattermost_user_id: Some(account.id),
            account: outcome,
            token,
            orphans_revoked,
        })
    }

    /// Creates the account, or finds it by email when it already exists.
    /// Returns the account (None in a dry run for a new user) and whether
    /// this call created it.
    pub(super) async fn find_or_create(
        &self,
        user: &HostUser,
        email: &str,
    ) -> Result<(Option<User>, bool), Error> {
        let admin = self.admin();
        if self.opts.dry_run {
            return match admin.user_by_email(email).await {
                Ok(u) => Ok((Some(u), false)),
                Err(e) if e.is_not_found() => Ok((None, true)),
                Err(e) => Err(e),
            };
        }
        let candidates = user
            .username_candidates()
            .map_err(|reason| Error::InvalidHostUser {
                user: user.id.clone(),
                reason,
            })?;
        if self.seen.lookup_first() {
            match admin.user_by_email(email).await {
                Ok(u) if !is_valid_mattermost_id(u.id.as_str()) => {
                    return Err(self.malformed("GET", &format!("users/email/{email}"), 200, &u.id));
                }
                Ok(u) => {
                    self.seen.record(true);
                    return Ok((Some(u), false));
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        for username in &candidates {
            let req = self.create_request(user, email, username);
            match admin.create_user(&req).await {
                Ok(u) if !is_valid_mattermost_id(u.id.as_str()) => {
                    return Err(self.malformed("POST", "users", 201, &u.id));
                }
                Ok(u) => {
                    tracing::info!(host_user = %user.id, mattermost_user = %u.id, "created Mattermost user");
                    self.seen.record(false);
                    return Ok((Some(u), true));
                }
                Err(e) if e.is_email_exists() => {
                    // Exists already (made by someone else, or by a sync
                    // racing with this one): carry on with it.
                    self.seen.record(true);
                    let u = admin.user_by_email(email).await?;
                    if !is_valid_mattermost_id(u.id.as_str()) {
                        return Err(self.malformed(
                            "GET",
                            &format!("users/email/{email}"),
                            200,
                            &u.id,
                        ));
                    }
                    return Ok((Some(u), false));
                }
                Err(e) if e.is_username_exists() => {
                    tracing::debug!(host_user = %user.id, username, "username taken; trying the next");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::InvalidHostUser {
            user: user.id.clone(),
            reason: format!(
                "every username tried is taken in Mattermost ({}); set an explicit username",
                candidates.join(", ")
            ),
        })
    }

    pub(super) fn create_request(
        &self,
        user: &HostUser,
        email: &str,
        username: &str,
    ) -> CreateUser {
        let (password, auth_service, auth_data) = match &self.opts.auth_service {
            Some(service) => (None, service.clone(), email.to_owned()),
            None => (Some(random_password()), String::new(), String::new()),
        };
        CreateUser {
            email: email.to_owned(),
            username: username.to_owned(),
            first_name: user.first_name_clamped(),
            last_name: user.last_name_clamped(),
            nickname: user.nickname_clamped().unwrap_or_default(),
            password,
            auth_service,
            auth_data,
            email_verified: true,
            locale: String::new(),
        }
    }

    /// Patches the fields that differ from the host's data.
    pub(super) async fn update_account(
        &self,
        user: &HostUser,
        email: &str,
        account: User,
    ) -> Result<(User, AccountOutcome), Error> {
        let mut patch = UserPatch::default();
        if account.email.to_lowercase() != email {
            patch.email = Some(email.to_owned());
        }
        let first = user.first_name_clamped();
        if account.first_name != first {
            patch.first_name = Some(first);
        }
        let last = user.last_name_clamped();
        if account.last_name != last {
            patch.last_name = Some(last);
        }
        if let Some(n) = user.nickname_clamped()
            && account.nickname != n
        {
            patch.nickname = Some(n);
        }
        if let Some(u) = &user.username {
            let u = u.trim().to_lowercase();
            if account.username != u {
                patch.username = Some(u);
            }
        }
        if patch.is_empty() {
            return Ok((account, AccountOutcome::Unchanged));
        }
        if self.opts.dry_run || account.is_deactivated() {
            return Ok((account, AccountOutcome::Updated));
        }
        let updated = self.admin().patch_user(&account.id, &patch).await?;
        tracing::info!(host_user = %user.id, mattermost_user = %updated.id, "updated Mattermost user");
        Ok((updated, AccountOutcome::Updated))
    }

    /// The error for a host user whose email leads to a Mattermost account
    /// another host user is linked to, naming that user when its token says
    /// who it is.
    pub(super) async fn shared_account(&self, user: &HostUserId, account: &UserId) -> Error {
        let other = match self.linked_tokens(user, account).await {
            Ok(tokens) => tokens.into_iter().find_map(|(_, owner, _)| owner),
            Err(_) => None,
        };
        shared_account_error(user, account, other.as_deref())
    }

    /// The error for a success answer whose user id is not a Mattermost id
    /// (`{"id": ""}`, a proxy's made-up JSON): such an id must not reach the
    /// store, where every later sync of the user would trip over it.
    pub(super) fn malformed(&self, method: &str, path: &str, status: u16, id: &UserId) -> Error {
        Error::BadResponse {
            status,
            method: method.into(),
            url: format!("{}api/v4/{path}", self.client.server_url()),
            reason: "the answer does not carry the user's Mattermost id".into(),
            snippet: format!("id {:?}", crate::error::snippet(id.as_str().as_bytes())),
        }
    }
}

/// Two app users would share one Mattermost account, each able to act as
/// the other: refused.
pub(super) fn shared_account_error(
    user: &HostUserId,
    account: &UserId,
    other: Option<&str>,
) -> Error {
    let other = other.map_or_else(
        || "another host user".to_owned(),
        |o| format!("host user {o}"),
    );
    Error::InvalidHostUser {
        user: user.clone(),
        reason: format!(
            "its Mattermost account {account} is already linked to {other} (same email?); \
             two app users cannot share one Mattermost account"
        ),
    }
}

pub(super) fn hex_sha256(s: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::ids::hex_lower(&Sha256::digest(s.as_bytes()))
}

/// 32 random characters with every class a password policy may ask for.
pub(super) fn random_password() -> SecretString {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!#%+-.:=?@^_~";
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].concat();
    let mut p: Vec<u8> = (0..28)
        .map(|_| all[rng.random_range(0..all.len())])
        .collect();
    for class in [LOWER, UPPER, DIGIT, SYMBOL] {
        let at = rng.random_range(0..=p.len());
        p.insert(at, class[rng.random_range(0..class.len())]);
    }
    SecretString::from(String::from_utf8(p).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn passwords_are_strong() {
        use secrecy::ExposeSecret;
        let p = random_password();
        let s = p.expose_secret();
        assert_eq!(s.len(), 32);
        assert!(s.chars().any(|c| c.is_ascii_lowercase()));
        assert!(s.chars().any(|c| c.is_ascii_uppercase()));
        assert!(s.chars().any(|c| c.is_ascii_digit()));
        assert!(s.chars().any(|c| !c.is_ascii_alphanumeric()));
        assert_ne!(s, random_password().expose_secret());
    }
}
