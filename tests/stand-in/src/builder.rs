//! [`StandInBuilder`]: the settings a stand-in starts with, and the start.

use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use mattermost_tokens::ids::{AccessToken, TeamId};
use tokio::net::TcpListener;

use crate::model::{ChannelDraft, Data, UserDraft, new_id};
use crate::rate_limit::Limiter;
use crate::server::{self, Control, Shared};
use crate::{DEFAULT_TEAM, DEFAULT_VERSION, FaultRule, Handle, RateLimit, StandIn, TokenExpiry};
use crate::{routes, state};

/// What kind of credential the stand-in's admin token is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdminCredential {
    /// A personal access token of the admin (the default): like a real
    /// deployment's, it answers 401 while personal access tokens are
    /// disabled on the server, and it shows in token listings.
    #[default]
    PersonalAccessToken,
    /// A session token (a login): works whatever the token settings.
    Session,
}

/// Configures a [`StandIn`] before it starts.
#[derive(Clone)]
pub struct StandInBuilder {
    addr: SocketAddr,
    admin_token: Option<AccessToken>,
    admin_credential: AdminCredential,
    admin_username: String,
    admin_email: String,
    version: String,
    latency: Duration,
    rate_limit: Option<RateLimit>,
    /// `None`: on for a fresh state, as saved for a restored one.
    tokens_enabled: Option<bool>,
    user_limit: Option<u32>,
    strict_csrf: bool,
    admin_lacks: Vec<String>,
    token_expiry: TokenExpiry,
    faults: Vec<FaultRule>,
    teams: Vec<(String, String, bool)>,
    state_file: Option<PathBuf>,
}

impl fmt::Debug for StandInBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandInBuilder")
            .field("addr", &self.addr)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("admin_username", &self.admin_username)
            .field("version", &self.version)
            .field("latency", &self.latency)
            .field("rate_limit", &self.rate_limit)
            .field("tokens_enabled", &self.tokens_enabled)
            .field("token_expiry", &self.token_expiry)
            .field("faults", &self.faults.len())
            .field("teams", &self.teams)
            .field("state_file", &self.state_file)
            .finish()
    }
}

impl Default for StandInBuilder {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            admin_token: None,
            admin_credential: AdminCredential::PersonalAccessToken,
            admin_username: "sysadmin".to_owned(),
            admin_email: "sysadmin@stand-in.example".to_owned(),
            version: DEFAULT_VERSION.to_owned(),
            latency: Duration::ZERO,
            rate_limit: None,
            tokens_enabled: None,
            user_limit: None,
            strict_csrf: false,
            admin_lacks: Vec::new(),
            token_expiry: TokenExpiry::Optional,
            faults: Vec::new(),
            teams: Vec::new(),
            state_file: None,
        }
    }
}

impl StandInBuilder {
    /// Listen on this address instead of `127.0.0.1:0` (a free port).
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Use this admin token instead of a random 26-character one (or,
    /// with a [`state_file`](Self::state_file), instead of the one saved in
    /// it, which it then replaces).
    pub fn admin_token(mut self, token: impl Into<AccessToken>) -> Self {
        self.admin_token = Some(token.into());
        self
    }

    /// What kind of credential the admin token is (default
    /// [`AdminCredential::PersonalAccessToken`], as in a real deployment).
    pub fn admin_credential(mut self, kind: AdminCredential) -> Self {
        self.admin_credential = kind;
        self
    }

    /// The admin's username and email (default `sysadmin`).
    pub fn admin_user(mut self, username: impl Into<String>, email: impl Into<String>) -> Self {
        self.admin_username = username.into();
        self.admin_email = email.into();
        self
    }

    /// The server version to report, e.g. `"10.6.0"` (default
    /// [`DEFAULT_VERSION`]). `X-Version-Id` becomes
    /// `{version}.{build}.{confighash}.true`.
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// A fixed delay added to every request.
    pub fn latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Switch the rate limiter on: `per_sec` requests per second, bursts of
    /// `max_burst` (`X-RateLimit-Limit` is `max_burst + 1`). Off by default,
    /// as on a real server.
    pub fn rate_limit(mut self, per_sec: u32, max_burst: u32) -> Self {
        self.rate_limit = Some(RateLimit::new(per_sec, max_burst));
        self
    }

    /// Caps active users (bots aside), as
    /// [`StandIn::set_user_limit`](crate::StandIn::set_user_limit).
    pub fn user_limit(mut self, limit: u32) -> Self {
        self.user_limit = Some(limit);
        self
    }

    /// Turns on `ServiceSettings.ExperimentalStrictCSRFEnforcement`, as
    /// [`StandIn::set_strict_csrf`](crate::StandIn::set_strict_csrf).
    pub fn strict_csrf(mut self, strict: bool) -> Self {
        self.strict_csrf = strict;
        self
    }

    /// Takes `permission` (`manage_system`, `edit_other_users`,
    /// `create_user_access_token`) out of the `system_admin` role, as
    /// patching the role does on a real server: admins then lack it, and
    /// `POST /roles/names` no longer lists it.
    pub fn admin_without(mut self, permission: impl Into<String>) -> Self {
        self.admin_lacks.push(permission.into());
        self
    }

    /// Whether personal access tokens are enabled (default `true`, the
    /// usual setting of a server this library is used with; a fresh real
    /// server ships with them off). A state restored from a
    /// [`state_file`](Self::state_file) keeps its saved setting unless this
    /// is called.
    pub fn tokens_enabled(mut self, enabled: bool) -> Self {
        self.tokens_enabled = Some(enabled);
        self
    }

    /// How the server treats `expires_at` on new tokens (default
    /// [`TokenExpiry::Optional`]).
    pub fn token_expiry(mut self, expiry: TokenExpiry) -> Self {
        self.token_expiry = expiry;
        self
    }

    /// Keep the state in this JSON file between runs.
    ///
    /// At [`start`](Self::start), if the file exists, the server comes back
    /// as it was saved: users, personal access tokens (same ids, secret
    /// values, descriptions, active flags and listing order), teams,
    /// channels, team and channel memberships, `tokens_enabled`, the admin
    /// user and the admin token. An explicit [`admin_token`](Self::admin_token)
    /// that differs from the saved one replaces it; [`admin_user`](Self::admin_user)
    /// only names the admin of a fresh state. Teams added with
    /// [`team`](Self::team) (and [`DEFAULT_TEAM`]) that the file lacks are
    /// created. A missing file means a fresh state; a file that cannot be
    /// read or is not a valid state file makes `start` fail with
    /// [`io::ErrorKind::InvalidData`].
    ///
    /// Nothing is written until [`StandIn::save_state`] is called; requests
    /// never touch the file.
    ///
    /// **The file holds secrets**: the value of every personal access token
    /// and of the admin token, in plain text. It is meant for a test or demo
    /// server; keep it out of version control and shared places.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state_file = Some(path.into());
        self
    }

    /// Install a fault rule from the start.
    pub fn fault(mut self, rule: FaultRule) -> Self {
        self.faults.push(rule);
        self
    }

    /// Add an open team (besides [`DEFAULT_TEAM`]); the admin is its admin.
    pub fn team(mut self, name: impl Into<String>, display_name: impl Into<String>) -> Self {
        self.teams.push((name.into(), display_name.into(), true));
        self
    }

    /// Add an invite-only team; the admin is its admin.
    pub fn private_team(
        mut self,
        name: impl Into<String>,
        display_name: impl Into<String>,
    ) -> Self {
        self.teams.push((name.into(), display_name.into(), false));
        self
    }

    /// Loads the [`state_file`](Self::state_file) if there is one, binds
    /// the listener, seeds the state and starts serving on the current
    /// tokio runtime.
    ///
    /// Fails with [`io::ErrorKind::InvalidData`] if the state file exists
    /// but cannot be read or is not a valid state file (the message names
    /// the file and the problem, never its contents).
    pub async fn start(self) -> io::Result<StandIn> {
        let restored = match &self.state_file {
            Some(path) => state::load(path)?
                .map(|file| Data::from_state(file).map_err(|e| state::invalid(path, e)))
                .transpose()?,
            None => None,
        };

        let listener = TcpListener::bind(self.addr).await?;
        let addr = listener.local_addr()?;
        let url = format!("http://{addr}");

        let token_expiry = self.token_expiry;
        let (mut data, admin_user_id, admin_token) = match restored {
            Some((mut data, admin_user_id, saved_token)) => {
                if let Some(enabled) = self.tokens_enabled {
                    data.tokens_enabled = enabled;
                }
                let admin_token = self
                    .admin_token
                    .unwrap_or_else(|| AccessToken::new(saved_token));
                (data, admin_user_id, admin_token)
            }
            None => {
                let mut data = Data::new(self.tokens_enabled.unwrap_or(true));
                let admin_user_id = data
                    .create_user(UserDraft {
                        username: self.admin_username,
                        email: self.admin_email,
                        roles: Some("system_admin system_user".to_owned()),
                        email_verified: true,
                        skip_password_policy: true,
                        ..UserDraft::default()
                    })
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?
                    .id
                    .clone();
                let admin_token = self
                    .admin_token
                    .unwrap_or_else(|| AccessToken::new(new_id()));
                (data, admin_user_id, admin_token)
            }
        };
        data.token_expiry = token_expiry;
        if self.user_limit.is_some() {
            data.user_limit = self.user_limit;
        }
        data.strict_csrf = self.strict_csrf;
        data.admin_lacks = self.admin_lacks.into_iter().collect();
        match self.admin_credential {
            AdminCredential::PersonalAccessToken => {
                data.ensure_admin_pat(&admin_user_id, admin_token.expose_secret())
            }
            AdminCredential::Session => data.add_session(
                admin_token.expose_secret().to_owned(),
                admin_user_id.clone(),
            ),
        }
        let mut teams = vec![(DEFAULT_TEAM.to_owned(), "Demo".to_owned(), true)];
        teams.extend(self.teams);
        for (name, display_name, open) in teams {
            // A team that is already there (restored, or named twice) is
            // left as it is.
            if data.team_by_name(&name).is_some() {
                continue;
            }
            let team_id = data.add_team(&name, &display_name, open);
            data.add_team_member(&team_id, &admin_user_id, true);
            for (channel, display) in [("town-square", "Town Square"), ("off-topic", "Off-Topic")] {
                let _ = data.create_channel(
                    ChannelDraft {
                        team_id: &team_id,
                        name: channel,
                        display_name: display,
                        kind: 'O',
                        purpose: "",
                        header: "",
                    },
                    &admin_user_id,
                );
            }
        }
        let default_team_id = data
            .team_by_name(DEFAULT_TEAM)
            .map(|t| t.id.clone())
            .unwrap_or_else(|| TeamId::new(String::new()));

        let mut control = Control {
            latency: self.latency,
            limiter: self.rate_limit.map(Limiter::new),
            ..Control::default()
        };
        for rule in self.faults {
            control.faults.add(rule);
        }
        let shared = Arc::new(Shared::new(data, control, &self.version, url.clone()));
        let router = server::with_gate(routes::router(), shared.clone());
        let task = tokio::spawn(server::serve(listener, router)).abort_handle();
        Ok(StandIn {
            inner: Arc::new(Handle {
                shared,
                addr,
                url,
                admin_token,
                admin_user_id,
                default_team_id,
                state_file: self.state_file,
                task,
            }),
        })
    }
}
