//! Claims: how syncs running in several processes (replicas of a job, a
//! sign-up hook on every web server, an operator's run by hand) keep out of
//! each other's way, with the host's database as the only meeting point.
//!
//! Before a sync creates an account, mints or replaces a token for a user,
//! it **claims** the user: a conditional write that succeeds only where no
//! live claim of another sync holds the row ([`TokenStore::claim`]). A
//! claim is a lease: it names its holder ([`Lease::owner`]) and holds until
//! [`Lease::until_ms`], so the claim of a process that died runs out by
//! itself. A bulk sync skips the users it could not claim (another process
//! is working on them); a single-user sync waits briefly for the holder to
//! finish and then reads what it stored.
//!
//! Before a claim holder mints, it records its **mint intent**, a random
//! nonce that also goes into the token's description
//! ([`TokenStore::record_intent`]). Storing the token and releasing the
//! claim settles it ([`TokenStore::release`]). An intent still recorded
//! when the next sync claims the user says that a mint may have happened
//! and never been stored (the process died in between): the new holder
//! lists the user's tokens and revokes the ones of this app that the store
//! does not hold, whatever their age. No other sync can be minting for the
//! user meanwhile, since it holds the claim.
//!
//! Claims are conditional `UPDATE`s committed on their own, never a
//! transaction held open across the requests to Mattermost, so a claim
//! costs no connection while it lasts and no row lock is held across a
//! network call (which is why `SELECT ... FOR UPDATE SKIP LOCKED` is not
//! needed: no lock is left to skip). A bulk sync claims its batches of
//! users in one statement and reads back which it holds in another.

use std::time::Duration;

use crate::ids::HostUserId;
use crate::time::{millis, unix_now_ms};

/// A sync's hold on the users it claims: who holds it and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The holder: random, unique to this lease.
    pub owner: String,
    /// Until when the claim holds, in milliseconds since the Unix epoch.
    /// After that, another sync may take the user over.
    pub until_ms: i64,
}

impl Lease {
    /// A new lease for `ttl` from now, with a random owner.
    pub fn new(ttl: Duration) -> Self {
        Lease {
            owner: random_hex(),
            until_ms: unix_now_ms().saturating_add(millis(ttl)),
        }
    }

    /// Whether the lease has run out.
    pub fn expired(&self) -> bool {
        unix_now_ms() >= self.until_ms
    }
}

/// A user [`TokenStore::claim`](crate::TokenStore::claim) took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    /// The user, now held by the lease.
    pub user: HostUserId,
    /// Whether a previous holder recorded a mint intent and never settled
    /// it: a token of this app may be live on the user's account without
    /// being stored.
    pub pending_intent: bool,
}

/// A random nonce for a mint intent (32 hex digits).
pub fn mint_nonce() -> String {
    random_hex()
}

fn random_hex() -> String {
    let bytes: [u8; 16] = rand::random();
    crate::ids::hex_lower(&bytes)
}
