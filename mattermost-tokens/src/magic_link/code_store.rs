//! Where one-time magic-link codes are kept: the [`CodeStore`] trait, the
//! [`CodeHash`] it is keyed by, and [`MemoryCodeStore`].

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::ids::HostUserId;
use crate::store::StoreError;

/// The SHA-256 hash of a one-time code: the only form in which a code is
/// stored.
///
/// A code is 256 random bits, so an unsalted hash is enough: nobody can find
/// a code from its hash, and whoever reads the code table learns nothing
/// that logs anyone in. Store it as 32 bytes ([`as_bytes`](Self::as_bytes))
/// or 64 hex characters ([`to_hex`](Self::to_hex)), with a unique index.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CodeHash([u8; 32]);

impl CodeHash {
    /// The hash of `code` (SHA-256 of its ASCII text).
    pub fn of_code(code: &str) -> Self {
        CodeHash(Sha256::digest(code.as_bytes()).into())
    }

    /// The hash of `code` bound to the browser that holds `binding` (see
    /// `MagicLinkConfig::browser_binding`): SHA-256 of the code, a `.` and
    /// the binding. Without the binding the stored hash cannot be found.
    pub fn of_bound_code(code: &str, binding: &str) -> Self {
        let mut h = Sha256::new();
        h.update(code.as_bytes());
        h.update(b".");
        h.update(binding.as_bytes());
        CodeHash(h.finalize().into())
    }

    /// A hash read back from storage.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        CodeHash(bytes)
    }

    /// A hash from its 64 lowercase or uppercase hex characters.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(CodeHash(out))
    }

    /// The 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        crate::ids::hex_lower(&self.0)
    }
}

impl fmt::Debug for CodeHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to tell hashes apart in a log.
        write!(f, "CodeHash({}…)", &self.to_hex()[..8])
    }
}

/// Storage for one-time magic-link codes, by hash.
///
/// Implementations: [`MemoryCodeStore`] here (one process only: a code issued
/// by one instance of the app cannot be redeemed on another); the sqlx and
/// diesel adapters for a table in the host's database. Object safe: used as
/// `Arc<dyn CodeStore>`.
///
/// Contract:
/// - [`consume`](CodeStore::consume) is atomic: of any number of concurrent
///   calls for one hash, at most one returns the user, and only while
///   `now < expires_at`. After that the code is gone or marked used (a store
///   may delete it or keep it until [`purge_expired`](CodeStore::purge_expired)).
/// - [`peek`](CodeStore::peek) changes nothing.
/// - A store never sees a code, only its hash.
#[async_trait]
pub trait CodeStore: Send + Sync + fmt::Debug {
    /// Stores a new code's hash for `user`, valid until `expires_at`.
    async fn insert(
        &self,
        hash: &CodeHash,
        user: &HostUserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Uses the code up: returns its user if it exists, is unused and
    /// `now < expires_at`, and makes every later call return `None`.
    async fn consume(
        &self,
        hash: &CodeHash,
        now: DateTime<Utc>,
    ) -> Result<Option<HostUserId>, StoreError>;

    /// Whether [`consume`](CodeStore::consume) would succeed now, without
    /// consuming anything.
    async fn peek(&self, hash: &CodeHash, now: DateTime<Utc>) -> Result<bool, StoreError>;

    /// Deletes codes with `expires_at <= now` (and used ones, for stores that
    /// keep them). Returns how many were deleted.
    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// A stored code as [`MemoryCodeStore::entries`] shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCode {
    /// The code's hash.
    pub hash: CodeHash,
    /// Whom it logs in.
    pub user: HostUserId,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A [`CodeStore`] in process memory, for tests, examples and single-process
/// apps. A consumed code is deleted; expired ones stay until
/// [`purge_expired`](CodeStore::purge_expired) (or
/// [`MagicLinks::purge_expired`](super::MagicLinks::purge_expired)) runs.
#[derive(Default)]
pub struct MemoryCodeStore {
    codes: Mutex<HashMap<CodeHash, (HostUserId, DateTime<Utc>)>>,
}

impl fmt::Debug for MemoryCodeStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryCodeStore")
            .field("codes", &self.len())
            .finish()
    }
}

impl MemoryCodeStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many codes are stored (expired ones included until purged).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no code is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything stored, for inspection in tests.
    pub fn entries(&self) -> Vec<StoredCode> {
        self.lock()
            .iter()
            .map(|(hash, (user, expires_at))| StoredCode {
                hash: *hash,
                user: user.clone(),
                expires_at: *expires_at,
            })
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<CodeHash, (HostUserId, DateTime<Utc>)>> {
        // Every critical section is a single map operation: a panic cannot
        // leave the map half-updated, so poisoning is ignored.
        self.codes.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl CodeStore for MemoryCodeStore {
    async fn insert(
        &self,
        hash: &CodeHash,
        user: &HostUserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.lock().insert(*hash, (user.clone(), expires_at));
        Ok(())
    }

    async fn consume(
        &self,
        hash: &CodeHash,
        now: DateTime<Utc>,
    ) -> Result<Option<HostUserId>, StoreError> {
        let mut codes = self.lock();
        match codes.get(hash) {
            Some((_, expires_at)) if now < *expires_at => {
                Ok(codes.remove(hash).map(|(user, _)| user))
            }
            _ => Ok(None),
        }
    }

    async fn peek(&self, hash: &CodeHash, now: DateTime<Utc>) -> Result<bool, StoreError> {
        Ok(self
            .lock()
            .get(hash)
            .is_some_and(|(_, expires_at)| now < *expires_at))
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut codes = self.lock();
        let before = codes.len();
        codes.retain(|_, (_, expires_at)| now < *expires_at);
        Ok((before - codes.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = CodeHash::of_code("abc");
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(CodeHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(CodeHash::from_hex("zz"), None);
        assert_eq!(format!("{h:?}"), "CodeHash(ba7816bf…)");
    }
}
