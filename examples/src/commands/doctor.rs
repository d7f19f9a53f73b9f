//! `doctor`: the troubleshooting checklist, automated. One line per check,
//! with the fix when it fails; exit 0 only when every check holds.

use futures::TryStreamExt;
use mattermost_tokens::{Error, HostUserId, MattermostClient, SyncOptions, UserSync, Verification};
use serde_json::json;

use super::{Common, Setup, open};
use crate::cli::{Ended, Format, emit, print};
use crate::setup::{self, Fatal, Schema};

/// Check that everything the sync needs holds: the server, personal access
/// tokens, the admin's permissions, the schema, the key, and a sample of
/// stored tokens.
#[derive(Debug, Clone, clap::Args)]
pub struct DoctorArgs {
    /// Stored tokens to verify live (the first ones with a token).
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub sample: u32,
}

/// The permissions the sync needs of the admin credential, and what each
/// is for (`api4/user.go`, `api4/user_access_token.go` in the server).
pub const REQUIRED_PERMISSIONS: [(&str, &str); 3] = [
    (
        "manage_system",
        "create users as an admin, list every token, mint for system admins",
    ),
    (
        "edit_other_users",
        "act on other users' accounts and tokens",
    ),
    ("create_user_access_token", "mint personal access tokens"),
];

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Its name (stable: the JSON `name`).
    pub name: &'static str,
    /// Whether it holds.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do when it does not hold.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            ok: true,
            detail: detail.into(),
            fix: None,
        }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            ok: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Runs `doctor`.
pub async fn run(args: DoctorArgs, common: Common) -> Result<Ended, Fatal> {
    let setup = open(&common, Schema::Leave).await?;
    let server = setup::mattermost(&setup.env).await?;
    let checks = checks(&setup, &server.client, args.sample).await;
    server.save();
    let failed = checks.iter().filter(|c| !c.ok).count() as u64;
    match common.format {
        Format::Json => emit(&json!({
            "ok": failed == 0,
            "checks": checks.iter().map(|c| json!({
                "name": c.name,
                "ok": c.ok,
                "detail": c.detail,
                "fix": c.fix,
            })).collect::<Vec<_>>(),
        })),
        Format::Text => {
            let mut text = String::new();
            for c in &checks {
                let mark = if c.ok { "ok  " } else { "FAIL" };
                text.push_str(&format!("[{mark}] {:<24} {}\n", c.name, c.detail));
                if let Some(fix) = &c.fix {
                    text.push_str(&format!("       fix: {fix}\n"));
                }
            }
            text.push_str(&if failed == 0 {
                "All checks passed.\n".to_owned()
            } else {
                format!("{failed} check(s) failed.\n")
            });
            print(&text);
        }
    }
    Ok(Ended::failed(failed))
}

/// Every check, in order; later checks that depend on a failed one say so.
pub async fn checks(setup: &Setup, client: &MattermostClient, sample: u32) -> Vec<Check> {
    let mut out = Vec::new();
    let admin = client.as_admin();
    // The server.
    let reachable = match client.ping().await {
        Ok(()) => {
            let version = client
                .server_version()
                .map_or("version not reported".to_owned(), |v| {
                    format!("version {v}")
                });
            out.push(Check::pass(
                "server",
                format!("{} answers, {version}", client.server_url()),
            ));
            true
        }
        Err(e) => {
            out.push(Check::fail(
                "server",
                format!("{} does not answer: {e}", client.server_url()),
                "check MATTERMOST_URL and that the server runs and is reachable from here",
            ));
            false
        }
    };
    // The admin credential.
    let me = if reachable {
        admin.me().await
    } else {
        Err(Error::InvalidInput("server unreachable".into()))
    };
    let admin_valid = match &me {
        Ok(u) => {
            out.push(Check::pass(
                "admin_credential",
                format!("valid, user @{} ({})", u.username, u.roles),
            ));
            true
        }
        Err(Error::Unauthorized(_)) => {
            out.push(Check::fail(
                "admin_credential",
                "MATTERMOST_TOKEN is refused (401)",
                "set MATTERMOST_TOKEN to a valid personal access token of a system admin; a valid one is also refused while personal access tokens are disabled (see the next check)",
            ));
            false
        }
        Err(e) => {
            out.push(Check::fail(
                "admin_credential",
                format!("cannot be checked: {e}"),
                "fix the server check first",
            ));
            false
        }
    };
    // Personal access tokens.
    out.push(if !admin_valid {
        Check::fail(
            "personal_access_tokens",
            "unknown: the setting is only readable with a valid token",
            "if the admin token is a valid personal access token, enable personal access tokens: System Console > Integrations > Integration Management > Enable Personal Access Tokens",
        )
    } else {
        match admin.client_config().await {
            Ok(c) if c.user_access_tokens_enabled() == Some(true) => {
                Check::pass("personal_access_tokens", "enabled")
            }
            Ok(_) => Check::fail(
                "personal_access_tokens",
                "disabled on the server (EnableUserAccessTokens is false)",
                "System Console > Integrations > Integration Management > Enable Personal Access Tokens",
            ),
            Err(e) => Check::fail(
                "personal_access_tokens",
                format!("cannot read the client configuration: {e}"),
                "check the server's logs",
            ),
        }
    });
    // The admin's permissions.
    out.push(match &me {
        Ok(u) => permissions(&admin, &u.roles).await,
        Err(_) => Check::fail(
            "admin_permissions",
            "not checked: the admin credential is not valid",
            "fix the admin credential first",
        ),
    });
    // Listing tokens, for real.
    out.push(if admin_valid {
        match admin.all_tokens(1).try_next().await {
            Ok(_) => Check::pass("list_tokens", "GET /users/tokens answers"),
            Err(e) => Check::fail(
                "list_tokens",
                format!("GET /users/tokens fails: {e}"),
                "the admin needs manage_system (reconcile lists every token); Mattermost 4.7+",
            ),
        }
    } else {
        Check::fail(
            "list_tokens",
            "not checked: the admin credential is not valid",
            "fix the admin credential first",
        )
    });
    // The schema.
    let migrated = match setup::migration_sql(&setup.env, &setup.host, false).await {
        Ok(sql) if sql.is_empty() => {
            out.push(Check::pass("migrations", "applied"));
            true
        }
        Ok(sql) => {
            out.push(Check::fail(
                "migrations",
                format!("not applied: {} statement(s) pending", sql.len()),
                "run `mattermost-tokens migrate` (`migrate --dry-run` prints the SQL)",
            ));
            false
        }
        Err(e) => {
            out.push(Check::fail(
                "migrations",
                format!("cannot be checked: {:#}", e.0),
                "check DATABASE_URL and that the users table exists",
            ));
            false
        }
    };
    // The key, and a sample of stored tokens.
    let mut sampled = Vec::new();
    let mut encrypted_rows = 0u64;
    if migrated {
        match sample_rows(setup, sample).await {
            Ok((users, encrypted)) => {
                sampled = users;
                encrypted_rows = encrypted;
            }
            Err(e) => out.push(Check::fail(
                "stored_tokens",
                format!("cannot read the users table: {e}"),
                "check the database",
            )),
        }
    }
    out.push(match (&setup.env.encryption_key, encrypted_rows) {
        (Some(_), _) => Check::pass("encryption_key", "MATTERMOST_TOKENS_KEY is set"),
        (None, 0) => Check::pass(
            "encryption_key",
            "not set, and no sampled row is encrypted (tokens are stored in plaintext)",
        ),
        (None, n) => Check::fail(
            "encryption_key",
            format!("not set, but {n} sampled row(s) hold encrypted tokens"),
            "set MATTERMOST_TOKENS_KEY to the key the rows were encrypted with",
        ),
    });
    if migrated && admin_valid {
        out.push(verify_sample(setup, client, &sampled).await);
    } else if !out.iter().any(|c| c.name == "stored_tokens") {
        out.push(Check::fail(
            "stored_tokens",
            "not checked: the admin credential or the migrations fail",
            "fix the checks above first",
        ));
    }
    out
}

/// The permissions of the admin's roles, against [`REQUIRED_PERMISSIONS`].
async fn permissions(admin: &mattermost_tokens::Acting, roles: &str) -> Check {
    let names: Vec<&str> = roles.split_whitespace().collect();
    if names.is_empty() {
        return Check::fail(
            "admin_permissions",
            "the admin user has no roles",
            "use a system admin's token",
        );
    }
    match admin.roles_by_names(&names).await {
        Ok(found) => {
            let has = |p: &str| found.iter().any(|r| r.permissions.iter().any(|q| q == p));
            let missing: Vec<String> = REQUIRED_PERMISSIONS
                .iter()
                .filter(|(p, _)| !has(p))
                .map(|(p, why)| format!("{p} ({why})"))
                .collect();
            if missing.is_empty() {
                Check::pass(
                    "admin_permissions",
                    format!(
                        "{} (roles: {roles})",
                        REQUIRED_PERMISSIONS.map(|(p, _)| p).join(", ")
                    ),
                )
            } else {
                Check::fail(
                    "admin_permissions",
                    format!("missing: {}", missing.join("; ")),
                    "give the admin user these permissions (System Console > User Management > System Roles), or use a system admin's token",
                )
            }
        }
        Err(e) => Check::fail(
            "admin_permissions",
            format!("cannot read the roles: {e}"),
            "check the server's version and logs",
        ),
    }
}

/// Up to `n` users with a stored token, and how many rows of those read are
/// encrypted.
async fn sample_rows(
    setup: &Setup,
    n: u32,
) -> Result<(Vec<HostUserId>, u64), mattermost_tokens::StoreError> {
    let mut pages = std::pin::pin!(super::stored_rows(setup, 200));
    let (mut out, mut encrypted) = (Vec::new(), 0);
    while out.len() < n as usize {
        let Some(page) = pages.try_next().await? else {
            break;
        };
        for (user, rec) in page {
            let Some(token) = &rec.token else { continue };
            if out.len() < n as usize {
                encrypted += u64::from(
                    token
                        .expose_secret()
                        .starts_with(mattermost_tokens::encryption::ENCRYPTED_PREFIX),
                );
                out.push(user);
            }
        }
    }
    Ok((out, encrypted))
}

/// Verifies the sampled users' tokens live.
async fn verify_sample(setup: &Setup, client: &MattermostClient, users: &[HostUserId]) -> Check {
    if users.is_empty() {
        return Check::pass("stored_tokens", "no stored token to verify yet");
    }
    let sync = match UserSync::new(
        client.clone(),
        setup.stores.tokens.clone(),
        SyncOptions::new("doctor"),
    ) {
        Ok(s) => s,
        Err(e) => return Check::fail("stored_tokens", e.to_string(), "fix the checks above"),
    };
    let mut bad = Vec::new();
    for u in users {
        match sync.verify(u, false).await {
            Ok(Verification::Valid) => {}
            Ok(v) => bad.push(format!("user {u}: {}", v.name())),
            Err(e) => bad.push(format!("user {u}: {e}")),
        }
    }
    if bad.is_empty() {
        Check::pass(
            "stored_tokens",
            format!("{} sampled token(s) work", users.len()),
        )
    } else {
        Check::fail(
            "stored_tokens",
            format!(
                "{} of {} sampled token(s) do not work: {}",
                bad.len(),
                users.len(),
                bad.join("; ")
            ),
            "run `mattermost-tokens verify --all` for every user, then `mattermost-tokens sync --reconcile` to repair",
        )
    }
}
