//! Accounts: finding, creating and patching a host user's Mattermost
//! account, and linking it.

use std::collections::HashMap;

use rand::Rng;
use secrecy::SecretString;

use crate::error::{Error, LinkRefusal};
use crate::host::HostUser;
use crate::ids::{HostUserId, UserId, is_valid_mattermost_id};
use crate::models::{CreateUser, User, UserPatch};
use crate::store::{StoreError, TokenRecord, TokenStore};

use super::tokens::Replacing;
use super::{
    AccountOutcome, LinkPolicy, MARK_APP_PROP, MARK_USER_PROP, Prepared, RunState, SyncWarning,
    TokenOutcome, UserOutcome, UserSync,
};

impl UserSync {
    pub(super) async fn sync_prepared(
        &self,
        p: Prepared,
        run: &RunState,
    ) -> Result<UserOutcome, Error> {
        let user = &p.user;
        let invalid = |reason: String| Error::InvalidHostUser {
            user: user.id.clone(),
            reason,
        };
        let record = match p.record {
            Some(r) => r,
            None => self.record(&user.id).await?,
        };
        if !user.active {
            return self.leave(user, &record).await;
        }
        let email = user.normalized_email().map_err(invalid)?;
        if self.opts.auth_service.is_some()
            && user
                .auth_data
                .as_deref()
                .is_none_or(|d| d.trim().is_empty())
        {
            // Never derived from the email: an SSO account whose auth_data
            // is someone else's id would let that person sign in as it.
            return Err(invalid(
                "single sign-on is configured (SyncOptions::auth_service) but the user has no auth_data (HostUser::auth_data)".into(),
            ));
        }
        let expiring = self.expiring(&record);
        if (record.token.is_none() || self.opts.replace_tokens || expiring)
            && !self.opts.dry_run
            && let Some(e) = run.expiry_refused()
        {
            // The server's lifetime policy refused an earlier mint of this
            // run: this one would be refused too.
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
        let mut link = Link {
            record: &record,
            linked: record.mattermost_user_id.clone(),
            previous: None,
        };
        let mut warnings = Vec::new();
        let (account, mut outcome, created_now) = match existing {
            Some(u) => {
                let (u, o) = self.update_account(user, &email, u, &mut warnings).await?;
                (Some(u), o, false)
            }
            None => match self.find_or_create(user, &email, run).await? {
                (Some(u), true) => (Some(u), AccountOutcome::Created, true),
                (Some(u), false) => {
                    // Found by email: an account this app did not create for
                    // this user. Linking it gives the host user its power.
                    if link.linked.as_ref() != Some(&u.id)
                        && let Some(reason) = self.link_refusal(user, &u)
                    {
                        return Err(Error::LinkRefused {
                            user: user.id.clone(),
                            mattermost_user_id: u.id,
                            reason,
                        });
                    }
                    // Link it first, so an account that is another host
                    // user's (same email) is refused by the store before
                    // anything of it is changed.
                    self.link(&user.id, &u.id, &mut link).await?;
                    let (u, o) = self.update_account(user, &email, u, &mut warnings).await?;
                    (Some(u), o, false)
                }
                (None, _) => (None, AccountOutcome::Created, true),
            },
        };
        let Some(account) = account else {
            // Dry run for a user that does not exist yet.
            let mut o = UserOutcome::new(user.id.clone(), None, outcome, TokenOutcome::WouldMint);
            o.previous_mattermost_user_id = record.mattermost_user_id.clone();
            return Ok(o);
        };
        if account.is_deactivated() {
            outcome = self
                .deactivated_account(user, &record, &account, run)
                .await?;
        }
        // Linked before the mint: a crash after this point leaves a user the
        // next run finds without a lookup.
        self.link(&user.id, &account.id, &mut link).await?;
        let relinked = record
            .mattermost_user_id
            .as_ref()
            .is_some_and(|prev| *prev != account.id);

        // 2. The token. A token of the previous account is never kept.
        let replacing = record.token.is_some() && !relinked;
        // A dead sync's mint on this account that was never stored.
        let settled = match &p.hold {
            Some(h) if !self.opts.dry_run => {
                let stored = record.token_id.as_ref().filter(|_| !relinked);
                self.settle_dead_intent(h, &account.id, stored).await?
            }
            _ => 0,
        };
        let mut o = UserOutcome::new(
            user.id.clone(),
            Some(account.id.clone()),
            outcome,
            TokenOutcome::Kept,
        );
        if relinked {
            o.previous_mattermost_user_id = record.mattermost_user_id.clone();
        }
        if replacing && !self.opts.replace_tokens && !expiring {
            o.token = TokenOutcome::Kept;
        } else if self.opts.dry_run {
            o.token = TokenOutcome::WouldMint;
        } else {
            let prior = match (replacing, &record.token_id) {
                (false, _) => Replacing::Nothing,
                (true, Some(old)) => Replacing::Token(old),
                (true, None) => Replacing::UnknownId,
            };
            let minted = self
                .mint_and_store(
                    &user.id,
                    &account.id,
                    created_now,
                    prior,
                    run,
                    p.hold.as_deref(),
                )
                .await?;
            o.token = minted.outcome;
            o.orphans_revoked = minted.orphans;
            warnings.extend(minted.warnings);
        }
        o.orphans_revoked += settled;
        o.warnings = warnings;
        Ok(o)
    }

    /// Stores `account` as the user's Mattermost account unless it already
    /// is. When the user was linked to another account (deleted and
    /// recreated, or found anew by email), that account's token is revoked
    /// (best effort) and cleared first: it is never kept for the new one.
    async fn link(
        &self,
        user: &HostUserId,
        account: &UserId,
        link: &mut Link<'_>,
    ) -> Result<(), Error> {
        if self.opts.dry_run || link.linked.as_ref() == Some(account) {
            return Ok(());
        }
        if let (Some(prev), Some(_)) = (&link.record.mattermost_user_id, &link.record.token)
            && link.previous.is_none()
        {
            if let Some(id) = &link.record.token_id
                && let Err(e) = self.revoke_quietly(id).await
            {
                tracing::warn!(
                    host_user = %user, token_id = %id, mattermost_user = %prev, error = %e,
                    "could not revoke the token of the previously linked account"
                );
            }
            self.store.clear_token(user).await?;
            tracing::info!(host_user = %user, previous = %prev, now = %account, "relinking to another Mattermost account");
            link.previous = Some(prev.clone());
        }
        match self.store.set_mattermost_user_id(user, account).await {
            Ok(()) => {
                link.linked = Some(account.clone());
                Ok(())
            }
            Err(StoreError::AlreadyLinked { .. }) => Err(self.shared_account(user, account).await),
            Err(e) => Err(e.into()),
        }
    }

    /// Why an existing account found by the user's email must not be linked
    /// to them, if it must not.
    pub(super) fn link_refusal(&self, user: &HostUser, account: &User) -> Option<LinkRefusal> {
        if !self.opts.link_privileged.contains(&account.id) {
            if account.is_bot {
                return Some(LinkRefusal::Bot);
            }
            if let Some(role) = account
                .roles()
                .find(|r| !self.opts.allowed_roles.iter().any(|a| a == r))
            {
                return Some(LinkRefusal::Role(role.to_owned()));
            }
        }
        if self.is_own_account(user, account) {
            // Created by this app for this very user (a create whose answer
            // was lost, or a concurrent sync): whatever the policy.
            return None;
        }
        match self.opts.link_policy {
            LinkPolicy::Always => None,
            LinkPolicy::VerifiedEmail if user.email_verified == Some(true) => None,
            LinkPolicy::VerifiedEmail => Some(LinkRefusal::EmailNotVerified),
            // Future policies refuse until they are taught here.
            _ => Some(LinkRefusal::PolicyNever),
        }
    }

    /// Whether the account carries this app's mark for this host user. The
    /// mark is not a secret and grants nothing alone: roles and bots are
    /// checked before it.
    fn is_own_account(&self, user: &HostUser, account: &User) -> bool {
        account.props.get(MARK_APP_PROP).map(String::as_str) == Some(self.opts.app_name.as_str())
            && account.props.get(MARK_USER_PROP) == Some(&self.host_key(&user.id))
    }

    /// Creates the account, or finds it by email when it already exists.
    /// Returns the account (None in a dry run for a new user) and whether
    /// this call created it.
    pub(super) async fn find_or_create(
        &self,
        user: &HostUser,
        email: &str,
        run: &RunState,
    ) -> Result<(Option<User>, bool), Error> {
        let admin = self.admin();
        if self.opts.dry_run {
            return match admin.user_by_email(email).await {
                Ok(u) => Ok((Some(u), false)),
                Err(e) if e.is_not_found() => {
                    self.plan_create(run).await;
                    Ok((None, true))
                }
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
            if let Err(full) = self.check_room(run).await {
                // No room for a new account: one that exists already is
                // still linked and given a token.
                return match admin.user_by_email(email).await {
                    Ok(u) if is_valid_mattermost_id(u.id.as_str()) => Ok((Some(u), false)),
                    Ok(_) => Err(full),
                    Err(e) if e.is_not_found() => Err(full),
                    Err(e) => Err(e),
                };
            }
            let req = self.create_request(user, email, username);
            match admin.create_user(&req).await {
                Ok(u) if !is_valid_mattermost_id(u.id.as_str()) => {
                    return Err(self.malformed("POST", "users", 201, &u.id));
                }
                Ok(u) => {
                    tracing::info!(host_user = %user.id, mattermost_user = %u.id, "created Mattermost user");
                    self.seen.record(false);
                    self.created(run);
                    return Ok((Some(u), true));
                }
                Err(e @ Error::UserLimitReached { .. }) => {
                    let full = self.on_user_limit(run, e);
                    return match admin.user_by_email(email).await {
                        Ok(u) if is_valid_mattermost_id(u.id.as_str()) => Ok((Some(u), false)),
                        Ok(_) => Err(full),
                        Err(e) if e.is_not_found() => Err(full),
                        Err(e) => Err(e),
                    };
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
            // sync_prepared refused users without auth_data before any request.
            Some(service) => (
                None,
                service.clone(),
                user.auth_data.clone().unwrap_or_default().trim().to_owned(),
            ),
            None => (Some(random_password()), String::new(), String::new()),
        };
        let props = HashMap::from([
            (MARK_APP_PROP.to_owned(), self.opts.app_name.clone()),
            (MARK_USER_PROP.to_owned(), self.host_key(&user.id)),
        ]);
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
            props,
        }
    }

    /// Patches the fields that differ from the host's data, leaving out the
    /// fields the account's login provider manages. A patch Mattermost
    /// refuses becomes a warning: it never blocks the token.
    pub(super) async fn update_account(
        &self,
        user: &HostUser,
        email: &str,
        account: User,
        warnings: &mut Vec<SyncWarning>,
    ) -> Result<(User, AccountOutcome), Error> {
        let managed = ProviderFields::of(&account.auth_service);
        let mut patch = UserPatch::default();
        if !managed.profile && account.email.to_lowercase() != email {
            patch.email = Some(email.to_owned());
        }
        let first = user.first_name_clamped();
        if !managed.names && account.first_name != first {
            patch.first_name = Some(first);
        }
        let last = user.last_name_clamped();
        if !managed.names && account.last_name != last {
            patch.last_name = Some(last);
        }
        if let Some(n) = user.nickname_clamped()
            && !managed.profile
            && account.nickname != n
        {
            patch.nickname = Some(n);
        }
        if let Some(u) = &user.username {
            let u = u.trim().to_lowercase();
            if !managed.username && account.username != u {
                patch.username = Some(u);
            }
        }
        if patch.is_empty() {
            return Ok((account, AccountOutcome::Unchanged));
        }
        if self.opts.dry_run || account.is_deactivated() {
            return Ok((account, AccountOutcome::Updated));
        }
        match self.admin().patch_user(&account.id, &patch).await {
            Ok(updated) => {
                tracing::info!(host_user = %user.id, mattermost_user = %updated.id, "updated Mattermost user");
                Ok((updated, AccountOutcome::Updated))
            }
            Err(e) => {
                // 409 api.user.patch_user.login_provider_attribute_set.app_error
                // (a field LDAP or SAML manages, configured on the server),
                // 400 for an email another account has, or anything else:
                // the account keeps its details and the token goes ahead.
                tracing::warn!(
                    host_user = %user.id, mattermost_user = %account.id, error = %e,
                    "Mattermost refused the profile update; the token is handled anyway"
                );
                warnings.push(SyncWarning::PatchRefused {
                    status: e.status().unwrap_or(0),
                    id: e.api_error().map(|a| a.id.clone()).unwrap_or_default(),
                });
                Ok((account, AccountOutcome::Unchanged))
            }
        }
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

/// The profile fields an account's login provider manages, after
/// Mattermost's `App.CheckProviderAttributes` (`app/user.go`): any provider
/// owns the username; LDAP and SAML own the attributes they are configured
/// to sync (the email always; names, nickname and position when mapped,
/// which the server's configuration says and the library cannot see, so all
/// are left alone); OAuth providers (GitLab, Google, Office 365, OpenID)
/// own the first and last names. Patching them answers 409
/// `api.user.patch_user.login_provider_attribute_set.app_error`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct ProviderFields {
    pub username: bool,
    pub names: bool,
    /// Email and nickname.
    pub profile: bool,
}

impl ProviderFields {
    pub(super) fn of(auth_service: &str) -> Self {
        match auth_service {
            "" => ProviderFields::default(),
            "ldap" | "saml" => ProviderFields {
                username: true,
                names: true,
                profile: true,
            },
            "gitlab" | "google" | "office365" | "openid" => ProviderFields {
                username: true,
                names: true,
                profile: false,
            },
            _ => ProviderFields {
                username: true,
                names: false,
                profile: false,
            },
        }
    }
}

/// The user's link as it changes during one sync.
struct Link<'r> {
    record: &'r TokenRecord,
    /// The Mattermost id the store holds for the user now.
    linked: Option<UserId>,
    /// The account the user was linked to before this sync relinked them.
    previous: Option<UserId>,
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
