//! Where the app keeps each user's Mattermost token: the [`TokenStore`] trait,
//! its record type and error, and an in-memory implementation.
//!
//! A store maps the host app's user key ([`HostUserId`]) to four nullable
//! values, the columns the adapters add to the host's `users` table:
//! `mattermost_user_id`, `mattermost_token` (the seed's column),
//! `mattermost_token_id` and `mattermost_token_expires_at`. A store never
//! creates or deletes host users: it only reads and writes those values on
//! users the host already has.

mod claims;
pub mod group_commit;
mod memory;
pub mod schema;

use std::collections::HashMap;
use std::fmt;

use async_trait::async_trait;

pub use claims::{Claimed, Lease, mint_nonce};
pub use memory::MemoryStore;

use crate::ids::{AccessToken, HostUserId, TokenId, UserId};

/// What a store holds for one host user.
#[derive(Clone, Default)]
pub struct TokenRecord {
    /// The user's Mattermost id, once the user exists there.
    pub mattermost_user_id: Option<UserId>,
    /// The user's personal access token. `None` until one is minted and
    /// stored.
    pub token: Option<AccessToken>,
    /// The id of that token (needed to revoke it). Rows written by other
    /// tools (such as the Laravel integration this library ports) may hold a
    /// token without its id.
    pub token_id: Option<TokenId>,
    /// When that token expires, in milliseconds since the Unix epoch (the
    /// unit of Mattermost's `expires_at`); `None` for a token that does not
    /// expire. A sync replaces a token before it expires.
    pub token_expires_at: Option<i64>,
}

impl TokenRecord {
    /// Whether a token is stored and expires at or before `now_ms + margin_ms`
    /// (milliseconds since the epoch). A margin of 0 asks "has it expired?".
    pub fn expires_within(&self, now_ms: i64, margin_ms: i64) -> bool {
        self.token.is_some()
            && self
                .token_expires_at
                .is_some_and(|at| at <= now_ms.saturating_add(margin_ms))
    }
}

impl fmt::Debug for TokenRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRecord")
            .field("mattermost_user_id", &self.mattermost_user_id)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("token_id", &self.token_id)
            .field("token_expires_at", &self.token_expires_at)
            .finish()
    }
}

/// A token and its id, as written by [`TokenStore::put_token_if_absent`] and
/// [`TokenStore::put_token`].
#[derive(Clone, Debug)]
pub struct NewToken {
    /// The user's Mattermost id.
    pub mattermost_user_id: UserId,
    /// The token value.
    pub token: AccessToken,
    /// The token's id.
    pub token_id: TokenId,
    /// When the token expires, in milliseconds since the Unix epoch; `None`
    /// when it does not.
    pub expires_at: Option<i64>,
}

/// A page of host users that have no stored token, in key order.
#[derive(Clone, Debug, Default)]
pub struct MissingPage {
    /// The users on this page.
    pub users: Vec<HostUserId>,
    /// Pass this as `after` to read the next page; `None` when this was the
    /// last page.
    pub next: Option<HostUserId>,
}

impl MissingPage {
    /// A page of `users` read with `limit`: when it is full, the next page
    /// starts after its last user.
    pub fn of(users: Vec<HostUserId>, limit: u32) -> Self {
        let next = if users.len() == limit as usize {
            users.last().cloned()
        } else {
            None
        };
        MissingPage { users, next }
    }
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The host has no user with this key (no row in its `users` table).
    #[error("no host user with id {0}")]
    UnknownUser(HostUserId),
    /// The database could not be reached or the connection broke.
    #[error("token store unavailable: {message}")]
    Unavailable {
        /// What went wrong, without credentials.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The schema is not what the store expects (no `users` table, missing or
    /// clashing columns, migrations not applied).
    #[error("token store schema problem: {message}")]
    Schema {
        /// What is wrong and what to do about it.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The store's configuration is invalid (for example a table name that is
    /// not an identifier).
    #[error("invalid token store configuration: {0}")]
    Config(String),
    /// Another host user is already linked to this Mattermost user (the
    /// `mattermost_user_id` column is unique): two app users must never share
    /// one Mattermost account. Nothing was written.
    #[error(
        "Mattermost user {mattermost_user_id} is already linked to another host user than {user}"
    )]
    AlreadyLinked {
        /// The host user whose write was refused.
        user: HostUserId,
        /// The Mattermost user linked elsewhere.
        mattermost_user_id: UserId,
    },
    /// The database refuses writes (a read-only replica, a read-only file,
    /// a read-only transaction mode). Nothing was written.
    #[error("token store is read-only: {message}")]
    ReadOnly {
        /// What the database said, without credentials.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A stored value could not be decoded or decrypted.
    #[error("stored token for user {user} is unreadable: {message}")]
    Corrupt {
        /// The host user whose row holds the value.
        user: HostUserId,
        /// Why it is unreadable (never the value itself).
        message: String,
    },
    /// A stored token names an encryption key id the keyring does not hold
    /// (see [`crate::EncryptedStore`]): add that key to the configuration.
    #[error(
        "stored token for user {user} is encrypted with key id {kid:?}, which is not configured; add that key to the keyring"
    )]
    UnknownKeyId {
        /// The host user whose row holds the value.
        user: HostUserId,
        /// The key id named by the value.
        kid: String,
    },
    /// A stored token failed authenticated decryption: the key configured
    /// under its key id is not the one it was written with, the value was
    /// altered, or it was copied from another user's row.
    #[error(
        "stored token for user {user} (key id {kid:?}) does not decrypt: wrong key for that id, altered value, or a value copied from another user's row"
    )]
    DecryptionFailed {
        /// The host user whose row holds the value.
        user: HostUserId,
        /// The key id named by the value.
        kid: String,
    },
    /// A stored token is not encrypted and the encrypting store was told to
    /// refuse plaintext values.
    #[error("stored token for user {user} is not encrypted and plaintext tokens are refused")]
    PlaintextNotAllowed {
        /// The host user whose row holds the value.
        user: HostUserId,
    },
    /// Any other database error.
    #[error("token store error: {message}")]
    Database {
        /// What went wrong.
        message: String,
        /// The driver's error.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Constructors of the variants that carry a message and a driver error.
macro_rules! with_source {
    ($($(#[$doc:meta])* $name:ident => $variant:ident,)+) => {
        impl StoreError {$(
            $(#[$doc])*
            pub fn $name(
                message: impl Into<String>,
                source: impl std::error::Error + Send + Sync + 'static,
            ) -> Self {
                StoreError::$variant {
                    message: message.into(),
                    source: Some(Box::new(source)),
                }
            }
        )+}
    };
}

with_source! {
    /// A [`StoreError::Database`] from a message and a source error.
    database => Database,
    /// A [`StoreError::Unavailable`] from a message and a source error.
    unavailable => Unavailable,
    /// A [`StoreError::Schema`] from a message and a source error.
    schema => Schema,
}

impl StoreError {
    /// A [`StoreError::Unavailable`] for a write (or read) that could not
    /// get the database's lock within the connection's busy timeout: on
    /// SQLite, another connection held the write lock, or (in SQLite's
    /// default rollback-journal mode) an open read kept the writer from
    /// committing. `what` says what was being done, `database` which
    /// database. Nothing was written; the message says what helps.
    pub fn locked(
        what: &str,
        database: &str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::unavailable(
            format!(
                "{what}: the {database} database is locked: another connection held its lock for longer \
                 than the busy timeout, and nothing was written. Another process is writing to it or \
                 keeps a long read open (in SQLite's default rollback-journal mode a read blocks every \
                 writer; WAL mode, `PRAGMA journal_mode=WAL`, lets reads and a write go on together); \
                 run again once it is done, or raise the busy timeout"
            ),
            source,
        )
    }
}

/// Storage for each host user's Mattermost user id and personal access token.
///
/// Implementations: [`MemoryStore`] here; `mattermost-tokens-sqlx` and
/// `mattermost-tokens-diesel` for the host's own database; the encrypting
/// wrapper [`crate::EncryptedStore`] over any of them. The trait is object
/// safe: the library uses it as `Arc<dyn TokenStore>`.
///
/// Contract (checked by the conformance suite in the workspace's `tests`
/// crate):
/// - reads of an unknown host user return `Ok(None)`; writes to one return
///   [`StoreError::UnknownUser`];
/// - [`put_token_if_absent`](TokenStore::put_token_if_absent) is atomic: of
///   any number of concurrent callers for one user, exactly one sees `true`;
/// - token values are stored and returned byte for byte (unicode included);
/// - a Mattermost user id is linked to at most one host user: a write that
///   would link it to a second one fails with [`StoreError::AlreadyLinked`]
///   and changes nothing;
/// - a store that shares claims ([`claims_shared`](TokenStore::claims_shared))
///   gives each user to one live [`Lease`] at a time, however many claim it
///   at once, keeps a recorded mint intent until a release settles it, and
///   lets a lease that ran out be taken over.
#[async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// Reads one host user's record. `Ok(None)` when the host has no such user.
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError>;

    /// Reads several records at once; users the host does not have are absent
    /// from the map. The default calls [`get`](TokenStore::get) per user;
    /// database stores answer in one query.
    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        let mut out = HashMap::with_capacity(users.len());
        for u in users {
            if let Some(r) = self.get(u).await? {
                out.insert(u.clone(), r);
            }
        }
        Ok(out)
    }

    /// Records the user's Mattermost id, leaving the token columns as they are.
    async fn set_mattermost_user_id(
        &self,
        user: &HostUserId,
        mattermost_user_id: &UserId,
    ) -> Result<(), StoreError>;

    /// Compare-and-set: stores the token (and Mattermost user id) only while
    /// the user has no token stored. Returns `true` when this call stored it,
    /// `false` when a token was already there (nothing is changed then).
    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        token: &NewToken,
    ) -> Result<bool, StoreError>;

    /// Stores the token (and Mattermost user id) whatever was stored before.
    /// Used by rotation and by callers that explicitly replace a token.
    async fn put_token(&self, user: &HostUserId, token: &NewToken) -> Result<(), StoreError>;

    /// Compare-and-set replacement: stores `token` only while the stored token
    /// id equals `expected`. Returns `true` when replaced. Rotation uses it so
    /// that two rotations of one user cannot both win.
    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        token: &NewToken,
    ) -> Result<bool, StoreError>;

    /// Clears the token, its id and its expiry (the Mattermost user id stays). Returns
    /// `true` when a token was stored before.
    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError>;

    /// Lists host users without a stored token, in key order, starting after
    /// `after` (exclusive), at most `limit` of them. One query per page.
    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError>;

    /// Claims those of `users` that no other live lease holds, for
    /// `lease` (see [`Lease`]): one conditional write that only takes rows
    /// whose claim is absent, has run out, or is `lease`'s already (it is
    /// extended to `lease.until_ms`). Returns the users `lease` now holds,
    /// each with whether a previous holder left a mint intent unsettled.
    /// Users the host does not have are not returned.
    ///
    /// The default takes every user and reports no intent: a store that
    /// keeps it serves syncs in one process only. The database adapters
    /// and [`MemoryStore`] implement it.
    async fn claim(&self, users: &[HostUserId], lease: &Lease) -> Result<Vec<Claimed>, StoreError> {
        let _ = lease;
        Ok(users
            .iter()
            .map(|u| Claimed {
                user: u.clone(),
                pending_intent: false,
            })
            .collect())
    }

    /// Records, while `lease` still holds `user`, the nonce of the token its
    /// holder is about to mint, and extends the lease to `lease.until_ms`.
    /// `false` when the lease no longer holds the user (it ran out and
    /// another sync took the user over): the holder must not mint then.
    async fn record_intent(
        &self,
        user: &HostUserId,
        lease: &Lease,
        nonce: &str,
    ) -> Result<bool, StoreError> {
        let _ = (user, lease, nonce);
        Ok(true)
    }

    /// Ends `lease`'s claim on `user` (nothing when it no longer holds it).
    /// With `settled`, the mint intent is cleared too: the token it named
    /// was stored or revoked. Without, it stays for the next holder to
    /// settle.
    async fn release(
        &self,
        user: &HostUserId,
        lease: &Lease,
        settled: bool,
    ) -> Result<(), StoreError> {
        let _ = (user, lease, settled);
        Ok(())
    }

    /// Whether [`claim`](TokenStore::claim) keeps other processes out
    /// (`false` for the defaults above). A sync over a store that does not
    /// assumes other syncs may be minting at the same time, and leaves
    /// recent unstored tokens alone for [`SyncOptions::orphan_grace`](crate::SyncOptions::orphan_grace).
    fn claims_shared(&self) -> bool {
        false
    }
}

#[async_trait]
impl<S: TokenStore + ?Sized> TokenStore for std::sync::Arc<S> {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        (**self).get(user).await
    }
    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        (**self).get_many(users).await
    }
    async fn set_mattermost_user_id(
        &self,
        user: &HostUserId,
        mattermost_user_id: &UserId,
    ) -> Result<(), StoreError> {
        (**self)
            .set_mattermost_user_id(user, mattermost_user_id)
            .await
    }
    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        (**self).put_token_if_absent(user, token).await
    }
    async fn put_token(&self, user: &HostUserId, token: &NewToken) -> Result<(), StoreError> {
        (**self).put_token(user, token).await
    }
    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        (**self).replace_token(user, expected, token).await
    }
    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError> {
        (**self).clear_token(user).await
    }
    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        (**self).list_missing(after, limit).await
    }
    async fn claim(&self, users: &[HostUserId], lease: &Lease) -> Result<Vec<Claimed>, StoreError> {
        (**self).claim(users, lease).await
    }
    async fn record_intent(
        &self,
        user: &HostUserId,
        lease: &Lease,
        nonce: &str,
    ) -> Result<bool, StoreError> {
        (**self).record_intent(user, lease, nonce).await
    }
    async fn release(
        &self,
        user: &HostUserId,
        lease: &Lease,
        settled: bool,
    ) -> Result<(), StoreError> {
        (**self).release(user, lease, settled).await
    }
    fn claims_shared(&self) -> bool {
        (**self).claims_shared()
    }
}

/// Checks that `name` can be put into SQL as an identifier without quoting:
/// ASCII letters, digits and `_`, not starting with a digit, 1 to 63
/// characters, optionally one `schema.` prefix of the same form. Database
/// adapters call it on configured table and column names.
pub fn validate_identifier(name: &str) -> Result<(), StoreError> {
    fn part_ok(p: &str) -> bool {
        !p.is_empty()
            && p.len() <= 63
            && !p.as_bytes()[0].is_ascii_digit()
            && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    }
    let ok = match name.split_once('.') {
        Some((schema, table)) => part_ok(schema) && part_ok(table),
        None => part_ok(name),
    };
    if ok {
        Ok(())
    } else {
        Err(StoreError::Config(format!(
            "{name:?} is not a valid SQL identifier (letters, digits and _ only, not starting with a digit, at most 63 characters)"
        )))
    }
}

/// Checks that `name` is a plain column name: an identifier
/// ([`validate_identifier`]) without a `table.` or `schema.` prefix.
/// Database adapters call it on configured column names.
pub fn validate_column_name(name: &str) -> Result<(), StoreError> {
    validate_identifier(name)?;
    if name.contains('.') {
        return Err(StoreError::Config(format!(
            "{name:?} is not a column name (a column takes no table or schema prefix)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_names() {
        assert!(validate_column_name("mattermost_token_expires_at").is_ok());
        for bad in ["public.id", "1id", "id;"] {
            assert!(
                matches!(validate_column_name(bad), Err(StoreError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn expiry_is_checked_against_now_plus_margin() {
        let mut r = TokenRecord {
            token: Some(AccessToken::new("t")),
            token_expires_at: Some(1_000),
            ..TokenRecord::default()
        };
        assert!(r.expires_within(1_000, 0), "expired at the very ms");
        assert!(!r.expires_within(999, 0));
        assert!(r.expires_within(900, 100), "within the margin");
        assert!(!r.expires_within(899, 100));
        r.token_expires_at = None;
        assert!(!r.expires_within(i64::MAX, 0), "no expiry never expires");
        r.token_expires_at = Some(1_000);
        r.token = None;
        assert!(!r.expires_within(2_000, 0), "no token, nothing expires");
    }

    #[test]
    fn identifiers() {
        for ok in ["users", "app_users", "public.users", "_x1"] {
            assert!(validate_identifier(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1users",
            "users; drop table x",
            "us-ers",
            "a.b.c",
            "\"users\"",
            "users ",
        ] {
            assert!(
                matches!(validate_identifier(bad), Err(StoreError::Config(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn record_debug_hides_token() {
        let r = TokenRecord {
            mattermost_user_id: Some(UserId::new("u")),
            token: Some(AccessToken::new("supersecretvalue")),
            token_id: None,
            token_expires_at: Some(1_700_000_000_000),
        };
        let s = format!("{r:?}");
        assert!(!s.contains("supersecretvalue"));
        assert!(s.contains("REDACTED"));
    }
}
