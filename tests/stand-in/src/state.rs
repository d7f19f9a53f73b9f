//! The stand-in's state file: what [`StandIn::save_state`] writes and
//! [`StandInBuilder::state_file`] reads back at start.
//!
//! One JSON object: a format marker and version, `tokens_enabled`, the admin
//! (user id and token value), then users, personal access tokens (with their
//! secret values, in creation order), teams, team members, channels and
//! channel members as arrays. The file holds secrets, so it is written with
//! mode `0600` on unix, atomically (a temp file next to it, then a rename),
//! and its contents never appear in an error message or a log line.
//!
//! [`StandIn::save_state`]: super::StandIn::save_state
//! [`StandInBuilder::state_file`]: super::StandInBuilder::state_file

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use mattermost_tokens::ids::{ChannelId, TeamId, TokenId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::error::Category;

use crate::model::{Channel, Team, User, new_id};

/// The `format` marker every state file carries.
pub(crate) const FORMAT: &str = "mattermost-tokens-stand-in-state";
/// The layout version this code writes and reads.
pub(crate) const VERSION: u32 = 1;

/// The whole file. Holds token values: no `Debug`, never logged.
#[derive(Serialize, Deserialize)]
pub(crate) struct StateFile {
    pub format: String,
    pub version: u32,
    pub tokens_enabled: bool,
    pub admin: AdminRecord,
    pub users: Vec<User>,
    /// In creation order (the order listings show).
    pub tokens: Vec<TokenRecord>,
    pub teams: Vec<Team>,
    pub team_members: Vec<TeamMemberRecord>,
    pub channels: Vec<Channel>,
    pub channel_members: Vec<ChannelMemberRecord>,
}

/// The admin user and the value of the admin token (a session).
#[derive(Serialize, Deserialize)]
pub(crate) struct AdminRecord {
    pub user_id: UserId,
    pub token: String,
}

/// A personal access token with its secret value.
#[derive(Serialize, Deserialize)]
pub(crate) struct TokenRecord {
    pub id: TokenId,
    pub token: String,
    pub user_id: UserId,
    pub description: String,
    pub is_active: bool,
    /// Ms since the epoch; absent for a token that does not expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TeamMemberRecord {
    pub team_id: TeamId,
    pub user_id: UserId,
    pub scheme_admin: bool,
    pub create_at: i64,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ChannelMemberRecord {
    pub channel_id: ChannelId,
    pub user_id: UserId,
    pub scheme_admin: bool,
    pub last_update_at: i64,
}

/// Read first, so a file of another kind or version gets a clear message
/// rather than a complaint about some field deep inside.
#[derive(Deserialize)]
struct Header {
    format: Option<String>,
    version: Option<u64>,
}

/// An `InvalidData` error naming the file (never quoting it).
pub(crate) fn invalid(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("stand-in state file {}: {what}", path.display()),
    )
}

/// Describes a parse error by its place only: serde's own message can quote
/// a value from the file, and the file holds secrets.
fn describe(e: &serde_json::Error) -> String {
    let at = format!("line {}, column {}", e.line(), e.column());
    match e.classify() {
        Category::Syntax => format!("is not valid JSON ({at})"),
        Category::Eof => format!("is truncated ({at})"),
        Category::Data => {
            let message = e.to_string();
            match message.strip_prefix("missing field ") {
                Some(rest) => {
                    let field = rest.split(' ').next().unwrap_or_default();
                    format!("lacks the field {field} ({at})")
                }
                None => format!("does not have the stand-in state layout ({at})"),
            }
        }
        Category::Io => format!("cannot be read ({at})"),
    }
}

/// Reads and parses the state file: `None` if it does not exist, an
/// `InvalidData` error if it cannot be read or is not a state file.
pub(crate) fn load(path: &Path) -> io::Result<Option<StateFile>> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(invalid(path, format_args!("cannot be read: {e}"))),
    };
    let header: Header = serde_json::from_slice(&bytes).map_err(|e| invalid(path, describe(&e)))?;
    if header.format.as_deref() != Some(FORMAT) {
        return Err(invalid(
            path,
            format_args!("is not a stand-in state file (no \"format\": \"{FORMAT}\")"),
        ));
    }
    match header.version {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => {
            return Err(invalid(
                path,
                format_args!("has version {v}; this build reads version {VERSION}"),
            ));
        }
        None => return Err(invalid(path, "has no \"version\"")),
    }
    let state = serde_json::from_slice(&bytes).map_err(|e| invalid(path, describe(&e)))?;
    Ok(Some(state))
}

/// Writes the state atomically: a new temp file next to `path` (mode `0600`
/// on unix), flushed to disk, then renamed over `path`.
pub(crate) fn save(path: &Path, state: &StateFile) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("stand-in state file {}: not a file path", path.display()),
        )
    })?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut temp_name = std::ffi::OsString::from(".");
    temp_name.push(name);
    temp_name.push(format!(".{}.tmp", new_id()));
    let temp = dir.join(temp_name);

    let result = write_new(&temp, &bytes).and_then(|()| fs::rename(&temp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&temp);
        return Err(io::Error::new(
            e.kind(),
            format!(
                "stand-in state file {}: cannot be written: {e}",
                path.display()
            ),
        ));
    }
    // Make the rename itself durable; not every platform lets a directory
    // be opened and synced, so this is best effort.
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Creates `path` (which must not exist) readable by its owner only, and
/// writes `bytes` to it.
fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
