//! Encryption at rest for stored tokens: [`EncryptedStore`] wraps any
//! [`TokenStore`] and encrypts the token value column with AES-256-GCM.
//!
//! A personal access token never expires, so a database dump or a read-only
//! SQL injection that reaches `users.mattermost_token` hands out working
//! Mattermost credentials for every user. With the wrapper the column holds
//! `mmt1:<kid>:<base64url(nonce || ciphertext)>` and the key lives outside the
//! database (an environment variable, a secret manager).
//!
//! Design choices:
//! - **AES-256-GCM, a fresh random 96-bit nonce per write.** Nonces are never
//!   derived from the data, so writing the same token twice gives two
//!   different values.
//! - **The host user id is associated data.** A value copied into another
//!   user's row does not decrypt there ([`StoreError::DecryptionFailed`]):
//!   someone who can write the table but not read the key cannot make user B
//!   act with user A's token.
//! - **Key ids in the value** let keys rotate: [`EncryptionKeys`] is a keyring
//!   whose first key encrypts and whose every key decrypts;
//!   [`EncryptedStore::reencrypt_all`] moves old rows to the newest key.
//! - **Only the token value is encrypted.** The token id and Mattermost user
//!   id stay plain: they are not secrets, and the database adapters
//!   compare-and-set on them.
//! - **Plaintext rows are refused** ([`StoreError::PlaintextNotAllowed`]):
//!   whoever can write the table could otherwise plant a token of their own
//!   in a victim's row. Rows written before encryption was turned on (or by
//!   the Laravel integration this library ports) are read during a
//!   migration window the host opens with
//!   [`EncryptedStore::allow_plaintext`], and sealed by
//!   [`EncryptedStore::reencrypt_all`] only when
//!   [`seal_plaintext`](EncryptedStore::seal_plaintext) says so; otherwise
//!   re-encryption reports them (`ReencryptReport::plaintext`).

use std::collections::HashMap;
use std::fmt;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::{DecodePaddingMode, general_purpose};
use futures::stream::{Stream, StreamExt};
use secrecy::{ExposeSecret, SecretSlice};
use sha2::{Digest, Sha256};

use crate::ids::{AccessToken, HostUserId, TokenId, UserId};
use crate::store::{Claimed, Lease, MissingPage, NewToken, StoreError, TokenRecord, TokenStore};
use crate::sync::push_bounded;

/// The environment variable the examples read the keyring from
/// (`MATTERMOST_TOKENS_KEY`); see [`EncryptionKeys::from_env`].
pub const KEY_ENV_VAR: &str = "MATTERMOST_TOKENS_KEY";

/// The prefix of every encrypted value (format version 1).
pub const ENCRYPTED_PREFIX: &str = "mmt1:";

/// Domain separation for the associated data: a value encrypted by this
/// library for another purpose can never pass as a token.
const AAD_PREFIX: &[u8] = b"mattermost-tokens/token/v1\0";
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const KEY_LEN: usize = 32;
const MAX_KID_LEN: usize = 16;
/// Rows read per store query by [`EncryptedStore::reencrypt_all`].
const REENCRYPT_BATCH: usize = 200;

const STANDARD_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);
const URL_SAFE_ANY_PAD: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a keyring configuration was refused. No variant holds key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No key was configured.
    #[error("no encryption key configured")]
    Empty,
    /// The environment variable is not set (or not unicode).
    #[error("environment variable {var} is not set; put a base64 32-byte key in it")]
    MissingEnv {
        /// The variable's name.
        var: String,
    },
    /// A key id is not 1 to 16 characters of `[A-Za-z0-9_-]`.
    #[error("encryption key id {kid:?} is invalid: use 1 to 16 letters, digits, '_' or '-'")]
    InvalidKeyId {
        /// The key id.
        kid: String,
    },
    /// A key is not valid base64.
    #[error("encryption key {} is not valid base64", describe(*entry, kid.as_deref()))]
    InvalidBase64 {
        /// Position of the key in the configuration, from 1.
        entry: usize,
        /// Its key id, when one was given.
        kid: Option<String>,
    },
    /// A key does not decode to 32 bytes.
    #[error(
        "encryption key {} decodes to {len} bytes; AES-256 needs 32 (generate one with `openssl rand -base64 32`)",
        describe(*entry, kid.as_deref())
    )]
    WrongLength {
        /// Position of the key in the configuration, from 1.
        entry: usize,
        /// Its key id, when one was given.
        kid: Option<String>,
        /// The decoded length.
        len: usize,
    },
    /// Two keys have the same key id.
    #[error("encryption key id {kid:?} is configured twice")]
    DuplicateKeyId {
        /// The key id.
        kid: String,
    },
}

fn describe(entry: usize, kid: Option<&str>) -> String {
    match kid {
        Some(k) => format!("#{entry} (key id {k:?})"),
        None => format!("#{entry}"),
    }
}

fn valid_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[derive(Clone)]
struct Key {
    kid: String,
    cipher: Aes256Gcm,
}

/// A keyring for [`EncryptedStore`]: the first (newest) key encrypts, every
/// key decrypts values that name its key id.
///
/// Keys are 32 random bytes, configured as base64 (`openssl rand -base64 32`,
/// or [`EncryptionKeys::generate_key`]). Their bytes are never shown: `Debug`
/// lists the key ids only.
///
/// Rotating: prepend a new key (`k2:NEW,k1:OLD`), deploy, run
/// [`EncryptedStore::reencrypt_all`], then drop the old key.
///
/// ```
/// use mattermost_tokens::EncryptionKeys;
///
/// let k2 = EncryptionKeys::generate_key();
/// let k1 = EncryptionKeys::generate_key();
/// let keys = EncryptionKeys::from_config(&format!("k2:{k2},k1:{k1}")).unwrap();
/// assert_eq!(keys.current_kid(), "k2");
/// assert!(!format!("{keys:?}").contains(&k2));
/// ```
///
/// `Clone`: each clone holds the same keys (the key schedule is zeroed when
/// a clone is dropped).
#[derive(Clone)]
pub struct EncryptionKeys {
    /// Newest first.
    keys: Vec<Key>,
}

impl fmt::Debug for EncryptionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKeys")
            .field("kids", &self.kids().collect::<Vec<_>>())
            .finish()
    }
}

impl EncryptionKeys {
    /// A keyring whose newest (encrypting) key is `key`, named `kid`.
    pub fn new(kid: &str, key: [u8; 32]) -> Result<Self, KeyError> {
        EncryptionKeys { keys: Vec::new() }.with_key(kid, key)
    }

    /// Adds an older key: it decrypts values naming `kid` but encrypts
    /// nothing while a key added before it is present.
    pub fn with_key(mut self, kid: &str, key: [u8; 32]) -> Result<Self, KeyError> {
        let key = SecretSlice::from(key.to_vec());
        self.push(Some(kid), key.expose_secret())?;
        Ok(self)
    }

    /// Parses a keyring from configuration: comma-separated entries, newest
    /// first, each `kid:BASE64` or a bare `BASE64` key. A bare key gets a key
    /// id derived from a hash of the key (8 hex characters), so a single
    /// key from `MATTERMOST_TOKENS_KEY` can be rotated later: name it by that
    /// id (shown by `Debug` and [`kids`](Self::kids)) next to the new key.
    /// Standard and URL-safe base64 are accepted, with or without padding.
    pub fn from_config(config: &str) -> Result<Self, KeyError> {
        let mut ring = EncryptionKeys { keys: Vec::new() };
        for (i, entry) in config
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let entry_no = i + 1;
            let (kid, b64) = match entry.split_once(':') {
                Some((kid, b64)) => (Some(kid.trim()), b64.trim()),
                None => (None, entry),
            };
            if let Some(kid) = kid
                && !valid_kid(kid)
            {
                return Err(KeyError::InvalidKeyId {
                    kid: kid.to_owned(),
                });
            }
            let decoded = STANDARD_ANY_PAD
                .decode(b64)
                .or_else(|_| URL_SAFE_ANY_PAD.decode(b64))
                .map(SecretSlice::from)
                .map_err(|_| KeyError::InvalidBase64 {
                    entry: entry_no,
                    kid: kid.map(str::to_owned),
                })?;
            let bytes = decoded.expose_secret();
            if bytes.len() != KEY_LEN {
                return Err(KeyError::WrongLength {
                    entry: entry_no,
                    kid: kid.map(str::to_owned),
                    len: bytes.len(),
                });
            }
            ring.push(kid, bytes)?;
        }
        if ring.keys.is_empty() {
            return Err(KeyError::Empty);
        }
        Ok(ring)
    }

    /// Reads the keyring from the environment variable `var` (see
    /// [`KEY_ENV_VAR`]) in the format of [`from_config`](Self::from_config).
    pub fn from_env(var: &str) -> Result<Self, KeyError> {
        let value = std::env::var(var).map_err(|_| KeyError::MissingEnv {
            var: var.to_owned(),
        })?;
        Self::from_config(&value)
    }

    /// A new random 32-byte key as standard base64, for configuration.
    pub fn generate_key() -> String {
        let key: [u8; KEY_LEN] = rand::random();
        let key = SecretSlice::from(key.to_vec());
        general_purpose::STANDARD.encode(key.expose_secret())
    }

    /// The key id values are encrypted under.
    pub fn current_kid(&self) -> &str {
        &self.keys[0].kid
    }

    /// All key ids, newest first.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|k| k.kid.as_str())
    }

    fn push(&mut self, kid: Option<&str>, key: &[u8]) -> Result<(), KeyError> {
        let kid = match kid {
            Some(k) if valid_kid(k) => k.to_owned(),
            Some(k) => return Err(KeyError::InvalidKeyId { kid: k.to_owned() }),
            None => derived_kid(key),
        };
        if self.keys.iter().any(|k| k.kid == kid) {
            return Err(KeyError::DuplicateKeyId { kid });
        }
        let cipher = Aes256Gcm::new_from_slice(key).map_err(|_| KeyError::WrongLength {
            entry: self.keys.len() + 1,
            kid: Some(kid.clone()),
            len: key.len(),
        })?;
        self.keys.push(Key { kid, cipher });
        Ok(())
    }

    fn key(&self, kid: &str) -> Option<&Key> {
        self.keys.iter().find(|k| k.kid == kid)
    }

    /// `mmt1:<kid>:<base64url(nonce || ciphertext)>` under the newest key.
    fn seal(&self, user: &HostUserId, token: &AccessToken) -> Result<AccessToken, StoreError> {
        let key = &self.keys[0];
        let nonce: [u8; NONCE_LEN] = rand::random();
        let aad = aad(&key.kid, user);
        let ct = key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: token.expose_secret().as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| StoreError::Corrupt {
                user: user.clone(),
                message: "encryption failed".into(),
            })?;
        let mut blob = Vec::with_capacity(NONCE_LEN + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        Ok(AccessToken::new(format!(
            "{ENCRYPTED_PREFIX}{}:{}",
            key.kid,
            URL_SAFE_NO_PAD.encode(blob)
        )))
    }

    /// Decrypts a value in the encrypted format (the caller checked the
    /// prefix).
    fn open(&self, user: &HostUserId, stored: &str) -> Result<AccessToken, StoreError> {
        let corrupt = |message: &str| StoreError::Corrupt {
            user: user.clone(),
            message: message.to_owned(),
        };
        let rest = &stored[ENCRYPTED_PREFIX.len()..];
        let (kid, payload) = rest
            .split_once(':')
            .ok_or_else(|| corrupt("encrypted value has no key id"))?;
        if !valid_kid(kid) {
            return Err(corrupt("encrypted value has a malformed key id"));
        }
        let key = self.key(kid).ok_or_else(|| StoreError::UnknownKeyId {
            user: user.clone(),
            kid: kid.to_owned(),
        })?;
        let blob = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| corrupt("encrypted value is not valid base64url"))?;
        if blob.len() < NONCE_LEN + TAG_LEN {
            return Err(corrupt("encrypted value is too short"));
        }
        let (nonce, ct) = blob.split_at(NONCE_LEN);
        let aad = aad(kid, user);
        let plain = key
            .cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| StoreError::DecryptionFailed {
                user: user.clone(),
                kid: kid.to_owned(),
            })?;
        let plain = SecretSlice::from(plain);
        let text = std::str::from_utf8(plain.expose_secret())
            .map_err(|_| corrupt("decrypted value is not UTF-8"))?;
        Ok(AccessToken::new(text))
    }
}

/// `prefix || kid || 0 || host user key`: binds the value to its row and to
/// the key id it names.
fn aad(kid: &str, user: &HostUserId) -> Vec<u8> {
    let user = user.to_key_string();
    let mut aad = Vec::with_capacity(AAD_PREFIX.len() + kid.len() + 1 + user.len());
    aad.extend_from_slice(AAD_PREFIX);
    aad.extend_from_slice(kid.as_bytes());
    aad.push(0);
    aad.extend_from_slice(user.as_bytes());
    aad
}

fn derived_kid(key: &[u8]) -> String {
    let digest = Sha256::new()
        .chain_update(b"mattermost-tokens/key-id/v1\0")
        .chain_update(key)
        .finalize();
    crate::ids::hex_lower(&digest[..4])
}

/// What a stored value is, judged from its prefix alone.
enum Form<'a> {
    Encrypted {
        kid: Option<&'a str>,
    },
    /// Another format version of this library (`mmt2:` ...).
    FutureVersion,
    Plaintext,
}

fn form(stored: &str) -> Form<'_> {
    if let Some(rest) = stored.strip_prefix(ENCRYPTED_PREFIX) {
        return Form::Encrypted {
            kid: rest.split_once(':').map(|(k, _)| k),
        };
    }
    if let Some(rest) = stored.strip_prefix("mmt")
        && let Some((version, _)) = rest.split_once(':')
        && !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
    {
        return Form::FutureVersion;
    }
    Form::Plaintext
}

/// A [`TokenStore`] that encrypts token values before they reach `S` and
/// decrypts them on the way back (see the [module docs](self) for the
/// format and the reasoning).
///
/// Works over any store, including `Arc<dyn TokenStore>`. Put it in front of
/// the store every part of the app uses: a component that reads the inner
/// store directly sees ciphertext.
///
/// A row that does not decrypt fails the read with a typed error
/// ([`StoreError::UnknownKeyId`], [`StoreError::DecryptionFailed`],
/// [`StoreError::Corrupt`], [`StoreError::PlaintextNotAllowed`]) naming the
/// user and key id, never the value; in `get_many` it fails the whole call
/// (`UserSync` then reads the batch's users one by one).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use mattermost_tokens::{EncryptedStore, EncryptionKeys, MemoryStore, NewToken, TokenStore};
///
/// // In production: EncryptionKeys::from_env(mattermost_tokens::KEY_ENV_VAR)?
/// let keys = EncryptionKeys::from_config(&EncryptionKeys::generate_key())?;
/// let inner = Arc::new(MemoryStore::with_users([7.into()]));
/// let store = EncryptedStore::new(inner.clone(), keys);
///
/// let token = NewToken {
///     mattermost_user_id: "u".repeat(26).into(),
///     token: "t".repeat(26).into(),
///     token_id: "i".repeat(26).into(),
///     expires_at: None,
/// };
/// store.put_token(&7.into(), &token).await?;
/// let raw = inner.get(&7.into()).await?.unwrap().token.unwrap();
/// assert!(raw.expose_secret().starts_with("mmt1:"));
/// let read = store.get(&7.into()).await?.unwrap().token.unwrap();
/// assert_eq!(read.expose_secret(), "t".repeat(26));
/// # Ok(()) }
/// ```
pub struct EncryptedStore<S: TokenStore> {
    inner: S,
    keys: EncryptionKeys,
    allow_plaintext: bool,
    seal_plaintext: bool,
    report_limit: usize,
}

impl<S: TokenStore> fmt::Debug for EncryptedStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedStore")
            .field("inner", &self.inner)
            .field("keys", &self.keys)
            .field("allow_plaintext", &self.allow_plaintext)
            .field("seal_plaintext", &self.seal_plaintext)
            .field("report_limit", &self.report_limit)
            .finish()
    }
}

/// What [`EncryptedStore::reencrypt`] did for one user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReencryptOutcome {
    /// The value was plaintext or under an older key and is now under the
    /// newest key.
    Reencrypted,
    /// The value was already under the newest key (and decrypts).
    AlreadyCurrent,
    /// Nothing was written; see the reason.
    Skipped(SkipReason),
}

/// Why [`EncryptedStore::reencrypt`] left a row alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkipReason {
    /// The user has no stored token.
    NoToken,
    /// The row holds a token without its token id (rows written by the
    /// Laravel integration). The store can only write a token together with
    /// its id, so the row stays as it is (still readable); rotating the
    /// user's token (`UserSync::rotate`) stores a new one, encrypted, with
    /// its id.
    NoTokenId,
    /// The row holds a token id but no Mattermost user id, which a write
    /// needs; a sync fills it in.
    NoMattermostUserId,
    /// The token changed between the read and the write (a rotation ran
    /// meanwhile); the newer value was left in place.
    ChangedConcurrently,
    /// The value is plaintext and [`EncryptedStore::seal_plaintext`] is
    /// off: it may have been planted by someone who can write the table.
    /// Check the row, then seal it on purpose (or rotate the user's token).
    Plaintext,
}

/// Totals of [`EncryptedStore::reencrypt_all`].
#[derive(Debug, Default)]
pub struct ReencryptReport {
    /// Rows moved to the newest key.
    pub reencrypted: u64,
    /// Rows already under the newest key.
    pub already_current: u64,
    /// Rows left alone (no token, no token id, changed meanwhile).
    pub skipped: u64,
    /// Rows that could not be read or written.
    pub failed: u64,
    /// Rows found holding a plaintext token (sealed, with
    /// [`EncryptedStore::seal_plaintext`]; otherwise also counted in
    /// `skipped`).
    pub plaintext: u64,
    /// The first failures, by user (errors never hold token values), up
    /// to [`DEFAULT_REPORT_LIMIT`](crate::DEFAULT_REPORT_LIMIT) or the
    /// store's [`with_report_limit`](EncryptedStore::with_report_limit);
    /// `failed` counts them all.
    pub failures: Vec<(HostUserId, StoreError)>,
    /// The first skipped rows, by user and reason, up to the same limit;
    /// `skipped` counts them all.
    pub skips: Vec<(HostUserId, SkipReason)>,
}

impl<S: TokenStore> EncryptedStore<S> {
    /// Wraps `inner`, encrypting with the newest key of `keys`. Plaintext
    /// rows are refused unless [`allow_plaintext`](Self::allow_plaintext)
    /// opens a migration window.
    pub fn new(inner: S, keys: EncryptionKeys) -> Self {
        EncryptedStore {
            inner,
            keys,
            allow_plaintext: false,
            seal_plaintext: false,
            report_limit: crate::DEFAULT_REPORT_LIMIT,
        }
    }

    /// How many failures and skips a [`ReencryptReport`] keeps with their
    /// details (default [`DEFAULT_REPORT_LIMIT`](crate::DEFAULT_REPORT_LIMIT));
    /// the rest are counted only.
    pub fn with_report_limit(mut self, limit: usize) -> Self {
        self.report_limit = limit;
        self
    }

    /// Whether values without the `mmt1:` prefix are returned as plaintext
    /// tokens (`true`) or refused with [`StoreError::PlaintextNotAllowed`]
    /// (`false`, the default). Open it only for the migration window after
    /// turning encryption on over existing rows, and close it once
    /// [`reencrypt_all`](Self::reencrypt_all) (with
    /// [`seal_plaintext`](Self::seal_plaintext)) has run: while it is open,
    /// a plaintext value written into the table by someone without the key
    /// is used as the user's token.
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// Whether [`reencrypt`](Self::reencrypt) and
    /// [`reencrypt_all`](Self::reencrypt_all) encrypt plaintext rows
    /// (`true`) or only report them (`false`, the default:
    /// [`SkipReason::Plaintext`], counted in `ReencryptReport::plaintext`).
    /// Sealing a planted value would make it look genuine: seal only rows
    /// known to come from before encryption was turned on.
    pub fn seal_plaintext(mut self, seal: bool) -> Self {
        self.seal_plaintext = seal;
        self
    }

    /// The wrapped store (its reads return ciphertext).
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The keyring.
    pub fn keys(&self) -> &EncryptionKeys {
        &self.keys
    }

    /// Unwraps the store.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn decrypt(&self, user: &HostUserId, stored: &AccessToken) -> Result<AccessToken, StoreError> {
        let value = stored.expose_secret();
        match form(value) {
            Form::Encrypted { .. } => self.keys.open(user, value).inspect_err(|e| {
                tracing::warn!(host_user = %user, error = %e, "stored token does not decrypt");
            }),
            Form::FutureVersion => Err(StoreError::Corrupt {
                user: user.clone(),
                message: "encrypted with a newer format version than this library reads".into(),
            }),
            Form::Plaintext if self.allow_plaintext => {
                tracing::trace!(host_user = %user, "stored token is plaintext");
                Ok(stored.clone())
            }
            Form::Plaintext => Err(StoreError::PlaintextNotAllowed { user: user.clone() }),
        }
    }

    fn decrypt_record(
        &self,
        user: &HostUserId,
        mut record: TokenRecord,
    ) -> Result<TokenRecord, StoreError> {
        if let Some(t) = &record.token {
            record.token = Some(self.decrypt(user, t)?);
        }
        Ok(record)
    }

    fn encrypt(&self, user: &HostUserId, token: &NewToken) -> Result<NewToken, StoreError> {
        Ok(NewToken {
            mattermost_user_id: token.mattermost_user_id.clone(),
            token: self.keys.seal(user, &token.token)?,
            token_id: token.token_id.clone(),
            expires_at: token.expires_at,
        })
    }

    /// Re-encrypts one user's token under the newest key if it is plaintext
    /// or under an older key. The write is a compare-and-set on the token id
    /// ([`TokenStore::replace_token`]), so a rotation running at the same
    /// time is never overwritten.
    pub async fn reencrypt(&self, user: &HostUserId) -> Result<ReencryptOutcome, StoreError> {
        let raw = self
            .inner
            .get(user)
            .await?
            .ok_or_else(|| StoreError::UnknownUser(user.clone()))?;
        self.reencrypt_record(user, raw).await
    }

    async fn reencrypt_record(
        &self,
        user: &HostUserId,
        raw: TokenRecord,
    ) -> Result<ReencryptOutcome, StoreError> {
        let Some(stored) = &raw.token else {
            return Ok(ReencryptOutcome::Skipped(SkipReason::NoToken));
        };
        // Decrypting first proves the value is readable (and authentic)
        // before anything is written. A plaintext value is sealed only when
        // asked to.
        let token = match form(stored.expose_secret()) {
            Form::Plaintext if !self.seal_plaintext => {
                return Ok(ReencryptOutcome::Skipped(SkipReason::Plaintext));
            }
            Form::Plaintext => stored.clone(),
            _ => self.decrypt(user, stored)?,
        };
        if let Form::Encrypted { kid: Some(kid) } = form(stored.expose_secret())
            && kid == self.keys.current_kid()
        {
            return Ok(ReencryptOutcome::AlreadyCurrent);
        }
        let Some(token_id) = raw.token_id.clone() else {
            return Ok(ReencryptOutcome::Skipped(SkipReason::NoTokenId));
        };
        let Some(mattermost_user_id) = raw.mattermost_user_id.clone() else {
            return Ok(ReencryptOutcome::Skipped(SkipReason::NoMattermostUserId));
        };
        let new = self.encrypt(
            user,
            &NewToken {
                mattermost_user_id,
                token,
                token_id: token_id.clone(),
                expires_at: raw.token_expires_at,
            },
        )?;
        if self.inner.replace_token(user, &token_id, &new).await? {
            tracing::debug!(host_user = %user, kid = self.keys.current_kid(), "re-encrypted stored token");
            Ok(ReencryptOutcome::Reencrypted)
        } else {
            Ok(ReencryptOutcome::Skipped(SkipReason::ChangedConcurrently))
        }
    }

    /// Re-encrypts the tokens of every user of `users` (see
    /// [`reencrypt`](Self::reencrypt)). The store cannot list its users, so
    /// the caller supplies them, for example from its `users` table, or
    /// `futures::stream::iter(ids)`. Rows are read in batches; a failing row
    /// is counted and does not stop the run.
    pub async fn reencrypt_all<U>(&self, users: U) -> ReencryptReport
    where
        U: Stream<Item = HostUserId> + Send,
    {
        let mut report = ReencryptReport::default();
        let mut batches = std::pin::pin!(users.chunks(REENCRYPT_BATCH));
        while let Some(batch) = batches.next().await {
            let mut rows = match self.inner.get_many(&batch).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "batch read failed; reading users one by one");
                    HashMap::new()
                }
            };
            for user in batch {
                let raw = match rows.remove(&user) {
                    Some(raw) => Ok(raw),
                    None => self
                        .inner
                        .get(&user)
                        .await
                        .and_then(|r| r.ok_or_else(|| StoreError::UnknownUser(user.clone()))),
                };
                let result = match raw {
                    Ok(raw) => {
                        let plain = raw
                            .token
                            .as_ref()
                            .is_some_and(|t| matches!(form(t.expose_secret()), Form::Plaintext));
                        report.plaintext += u64::from(plain);
                        self.reencrypt_record(&user, raw).await
                    }
                    Err(e) => Err(e),
                };
                match result {
                    Ok(ReencryptOutcome::Reencrypted) => report.reencrypted += 1,
                    Ok(ReencryptOutcome::AlreadyCurrent) => report.already_current += 1,
                    Ok(ReencryptOutcome::Skipped(why)) => {
                        report.skipped += 1;
                        push_bounded(&mut report.skips, (user, why), self.report_limit);
                    }
                    Err(e) => {
                        tracing::warn!(host_user = %user, error = %e, "re-encryption failed");
                        report.failed += 1;
                        push_bounded(&mut report.failures, (user, e), self.report_limit);
                    }
                }
            }
        }
        tracing::info!(
            reencrypted = report.reencrypted,
            already_current = report.already_current,
            skipped = report.skipped,
            failed = report.failed,
            plaintext = report.plaintext,
            kid = self.keys.current_kid(),
            "re-encryption finished"
        );
        report
    }
}

#[async_trait]
impl<S: TokenStore> TokenStore for EncryptedStore<S> {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        match self.inner.get(user).await? {
            Some(r) => self.decrypt_record(user, r).map(Some),
            None => Ok(None),
        }
    }

    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        self.inner
            .get_many(users)
            .await?
            .into_iter()
            .map(|(u, r)| {
                let r = self.decrypt_record(&u, r)?;
                Ok((u, r))
            })
            .collect()
    }

    async fn set_mattermost_user_id(
        &self,
        user: &HostUserId,
        mattermost_user_id: &UserId,
    ) -> Result<(), StoreError> {
        self.inner
            .set_mattermost_user_id(user, mattermost_user_id)
            .await
    }

    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        let sealed = self.encrypt(user, token)?;
        self.inner.put_token_if_absent(user, &sealed).await
    }

    async fn put_token(&self, user: &HostUserId, token: &NewToken) -> Result<(), StoreError> {
        let sealed = self.encrypt(user, token)?;
        self.inner.put_token(user, &sealed).await
    }

    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        let sealed = self.encrypt(user, token)?;
        self.inner.replace_token(user, expected, &sealed).await
    }

    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError> {
        self.inner.clear_token(user).await
    }

    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        self.inner.list_missing(after, limit).await
    }

    async fn claim(&self, users: &[HostUserId], lease: &Lease) -> Result<Vec<Claimed>, StoreError> {
        self.inner.claim(users, lease).await
    }

    async fn record_intent(&self, u: &HostUserId, l: &Lease, n: &str) -> Result<bool, StoreError> {
        self.inner.record_intent(u, l, n).await
    }

    async fn release(&self, u: &HostUserId, l: &Lease, settled: bool) -> Result<(), StoreError> {
        self.inner.release(u, l, settled).await
    }

    fn claims_shared(&self) -> bool {
        self.inner.claims_shared()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_kid_is_eight_hex() {
        let k = derived_kid(&[7u8; 32]);
        assert_eq!(k.len(), 8);
        assert!(k.bytes().all(|b| b.is_ascii_hexdigit()));
        assert!(valid_kid(&k));
    }

    #[test]
    fn forms() {
        assert!(matches!(
            form("mmt1:k:abc"),
            Form::Encrypted { kid: Some("k") }
        ));
        assert!(matches!(form("mmt2:k:abc"), Form::FutureVersion));
        assert!(matches!(
            form("abcdefghijklmnopqrstuvwxyz"),
            Form::Plaintext
        ));
        assert!(matches!(form("mmtx:"), Form::Plaintext));
    }

    #[test]
    fn aad_differs_per_user_and_kid() {
        assert_ne!(aad("k1", &1.into()), aad("k1", &2.into()));
        assert_ne!(aad("k1", &1.into()), aad("k2", &1.into()));
    }
}
