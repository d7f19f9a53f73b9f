//! The stand-in's state: users, personal access tokens, sessions, teams,
//! channels and memberships, with the indexes that keep lookups O(1), and
//! the rules Mattermost applies when they change. One file per entity holds
//! its records and the operations on [`Data`] that change it.

mod channels;
mod limits;
mod state_file;
mod teams;
mod tokens;
mod users;

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use mattermost_tokens::ids::{ChannelId, TeamId, TokenId, UserId};
use rand::Rng;

pub(crate) use channels::{Channel, ChannelDraft, ChannelMember, channel_member_json};
pub(crate) use teams::{Team, TeamMember, team_member_json};
pub use tokens::TokenExpiry;
pub(crate) use tokens::{Token, TokenView};
pub(crate) use users::{User, UserDraft, UserPatch};

/// The stand-in's maps: keys are ids and names the stand-in serves, so a
/// fast hash is enough (it is a test server on the loopback interface).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Mattermost's id alphabet (`model.NewId`: base32 with its own encoding).
const ID_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// A new 26-character id, as `model.NewId()` makes.
pub(crate) fn new_id() -> String {
    let mut rng = rand::rng();
    (0..26)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

/// The stand-in's whole state. Held behind one mutex; never across an await.
pub(crate) struct Data {
    pub users: FastMap<UserId, User>,
    by_email: FastMap<String, UserId>,
    by_username: BTreeMap<String, UserId>,
    pub tokens: FastMap<TokenId, Token>,
    token_by_value: FastMap<String, TokenId>,
    tokens_by_user: FastMap<UserId, Vec<TokenId>>,
    token_order: BTreeMap<u64, TokenId>,
    next_seq: u64,
    sessions: FastMap<String, UserId>,
    pub teams: FastMap<TeamId, Team>,
    team_by_name: FastMap<String, TeamId>,
    pub team_members: FastMap<(TeamId, UserId), TeamMember>,
    pub channels: FastMap<ChannelId, Channel>,
    channel_by_name: FastMap<(TeamId, String), ChannelId>,
    pub channel_members: FastMap<(ChannelId, UserId), ChannelMember>,
    pub tokens_enabled: bool,
    pub token_expiry: TokenExpiry,
    /// Active (non-bot) users allowed; `None`: no limit.
    pub user_limit: Option<u32>,
    /// `ServiceSettings.ExperimentalStrictCSRFEnforcement`.
    pub strict_csrf: bool,
    /// Permissions taken out of the `system_admin` role (as a role patch
    /// does on a real server).
    pub admin_lacks: std::collections::BTreeSet<String>,
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data")
            .field("users", &self.users.len())
            .field("tokens", &self.tokens.len())
            .field("teams", &self.teams.len())
            .field("channels", &self.channels.len())
            .field("tokens_enabled", &self.tokens_enabled)
            .finish_non_exhaustive()
    }
}

/// Clamps page parameters as the server does: bad values fall back to the
/// defaults, `per_page` above 200 is cut to 200.
pub(crate) fn paging(page: Option<&str>, per_page: Option<&str>) -> (usize, usize) {
    let page = page.and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
    let per_page = per_page
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(60)
        .min(200);
    (page, per_page)
}

impl Data {
    pub fn new(tokens_enabled: bool) -> Self {
        Self {
            users: FastMap::default(),
            by_email: FastMap::default(),
            by_username: BTreeMap::new(),
            tokens: FastMap::default(),
            token_by_value: FastMap::default(),
            tokens_by_user: FastMap::default(),
            token_order: BTreeMap::new(),
            next_seq: 0,
            sessions: FastMap::default(),
            teams: FastMap::default(),
            team_by_name: FastMap::default(),
            team_members: FastMap::default(),
            channels: FastMap::default(),
            channel_by_name: FastMap::default(),
            channel_members: FastMap::default(),
            tokens_enabled,
            token_expiry: TokenExpiry::Optional,
            user_limit: None,
            strict_csrf: false,
            admin_lacks: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_mattermost_shape() {
        assert!(mattermost_tokens::ids::is_valid_mattermost_id(&new_id()));
    }
}
