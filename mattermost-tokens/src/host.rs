//! How the host app describes its users, and the Mattermost usernames derived
//! for hosts (like Laravel apps) that have none.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::ids::HostUserId;

/// Usernames Mattermost refuses for new users.
pub const RESERVED_USERNAMES: [&str; 4] = ["all", "channel", "matterbot", "system"];
/// Shortest username Mattermost accepts for new users.
pub const USERNAME_MIN: usize = 3;
/// Longest username Mattermost accepts for new users.
pub const USERNAME_MAX: usize = 22;
/// Longest email Mattermost accepts.
pub const EMAIL_MAX: usize = 128;

/// A user of the host app, as the library needs to know them.
///
/// ```
/// use mattermost_tokens::HostUser;
///
/// let u = HostUser::new(42, "Ana.Lopez+work@Example.com", "Ana López");
/// assert_eq!(u.normalized_email().unwrap(), "ana.lopez+work@example.com");
/// assert_eq!(u.username_candidates().unwrap()[0], "ana.lopez");
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HostUser {
    /// The host's key for the user.
    pub id: HostUserId,
    /// Email address (required; Mattermost matches users by it).
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Mattermost username, when the host has one; otherwise derived.
    pub username: Option<String>,
    /// Nickname.
    pub nickname: Option<String>,
    /// Whether the host verified the email address: `Some(true)` when it
    /// did, `Some(false)` when it did not (yet), `None` when the host does
    /// not say. [`HostUserTable`](crate::HostUserTable) reads it from
    /// Laravel's `email_verified_at`.
    pub email_verified: Option<bool>,
    /// For single sign-on: the user's id in the external service
    /// (`auth_data`: a GitLab user id, a SAML name id, an LDAP attribute).
    /// Required when [`SyncOptions::auth_service`](crate::SyncOptions::auth_service)
    /// is set; never derived from the email.
    pub auth_data: Option<String>,
    /// Whether the user is still a user of the app (default true). A sync
    /// does not create accounts or mint tokens for users who left;
    /// [`UserSync::reconcile`](crate::UserSync::reconcile) prunes their
    /// tokens when [`SyncOptions::leavers`](crate::SyncOptions::leavers)
    /// says so.
    pub active: bool,
}

impl fmt::Debug for HostUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostUser")
            .field("id", &self.id)
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("username", &self.username)
            .field("nickname", &self.nickname)
            .field("email_verified", &self.email_verified)
            .field("auth_data", &self.auth_data)
            .field("active", &self.active)
            .finish()
    }
}

impl HostUser {
    /// A user with a full name, split into first name (first word) and last
    /// name (the rest), as a Laravel `name` column holds it.
    pub fn new(id: impl Into<HostUserId>, email: impl Into<String>, full_name: &str) -> Self {
        let full_name = full_name.trim();
        let (first, last) = match full_name.split_once(char::is_whitespace) {
            Some((f, l)) => (f.to_owned(), l.trim().to_owned()),
            None => (full_name.to_owned(), String::new()),
        };
        HostUser {
            id: id.into(),
            email: email.into(),
            first_name: first,
            last_name: last,
            username: None,
            nickname: None,
            email_verified: None,
            auth_data: None,
            active: true,
        }
    }

    /// A user with separate first and last names.
    pub fn with_names(
        id: impl Into<HostUserId>,
        email: impl Into<String>,
        first_name: impl Into<String>,
        last_name: impl Into<String>,
    ) -> Self {
        HostUser {
            id: id.into(),
            email: email.into(),
            first_name: first_name.into(),
            last_name: last_name.into(),
            username: None,
            nickname: None,
            email_verified: None,
            auth_data: None,
            active: true,
        }
    }

    /// Sets the Mattermost username instead of deriving one.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// Sets the nickname.
    pub fn nickname(mut self, nickname: impl Into<String>) -> Self {
        self.nickname = Some(nickname.into());
        self
    }

    /// Says whether the host verified the email address.
    pub fn email_verified(mut self, verified: bool) -> Self {
        self.email_verified = Some(verified);
        self
    }

    /// Says whether the user is still a user of the app.
    pub fn active(mut self, active: bool) -> Self {
        self.active = active;
        self
    }

    /// Sets the user's id in the single sign-on service (`auth_data`).
    pub fn auth_data(mut self, auth_data: impl Into<String>) -> Self {
        self.auth_data = Some(auth_data.into());
        self
    }

    /// The email, trimmed and lowercased as Mattermost stores it, or why it
    /// cannot be used.
    pub fn normalized_email(&self) -> Result<String, String> {
        let e = self.email.trim().to_lowercase();
        if e.is_empty() {
            return Err("the email is empty".into());
        }
        if e.chars().count() > EMAIL_MAX {
            return Err(format!("the email is longer than {EMAIL_MAX} characters"));
        }
        let Some((local, domain)) = e.split_once('@') else {
            return Err("the email has no @".into());
        };
        if local.is_empty()
            || domain.is_empty()
            || domain.contains('@')
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || e.chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == ',' || c == '<' || c == '>')
        {
            return Err("the email is not a valid address".into());
        }
        Ok(e)
    }

    /// First name, at most 64 characters as Mattermost allows.
    pub(crate) fn first_name_clamped(&self) -> String {
        clamp_chars(self.first_name.trim(), 64)
    }

    /// Last name, at most 64 characters as Mattermost allows.
    pub(crate) fn last_name_clamped(&self) -> String {
        clamp_chars(self.last_name.trim(), 64)
    }

    /// Nickname, at most 64 characters.
    pub(crate) fn nickname_clamped(&self) -> Option<String> {
        self.nickname.as_deref().map(|n| clamp_chars(n.trim(), 64))
    }

    /// The usernames to try, in order, when creating this user: the host's
    /// own username if set (which must be valid), else one derived from the
    /// email's local part (or the name), then the same with a suffix made from
    /// the host user id, so a collision resolves the same way on every run.
    pub fn username_candidates(&self) -> Result<Vec<String>, String> {
        if let Some(u) = &self.username {
            let u = u.trim().to_lowercase();
            return match validate_username(&u) {
                Ok(()) => Ok(vec![u]),
                Err(why) => Err(format!(
                    "the username {u:?} is not valid for Mattermost: {why}"
                )),
            };
        }
        let email = self.normalized_email()?;
        let local = email.split('@').next().unwrap_or_default();
        let local = local.split('+').next().unwrap_or_default();
        let mut base = sanitize(local);
        if base.is_empty() {
            base = sanitize(&format!("{}.{}", self.first_name, self.last_name));
        }
        if base.is_empty() {
            base = "user".to_owned();
        }
        let h = hash_suffix(&self.id, &email);
        let mut out = Vec::with_capacity(3);
        let first = if base.len() < USERNAME_MIN || RESERVED_USERNAMES.contains(&base.as_str()) {
            with_suffix(&base, &h[..4])
        } else {
            base.clone()
        };
        out.push(first);
        for n in [4, 8] {
            let c = with_suffix(&base, &h[..n]);
            if !out.contains(&c) {
                out.push(c);
            }
        }
        debug_assert!(out.iter().all(|u| validate_username(u).is_ok()), "{out:?}");
        Ok(out)
    }
}

fn clamp_chars(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Checks Mattermost's rules for a new username.
pub fn validate_username(u: &str) -> Result<(), &'static str> {
    let len = u.chars().count();
    if !(USERNAME_MIN..=USERNAME_MAX).contains(&len) {
        return Err("it must be 3 to 22 characters long");
    }
    if !u.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err("it must start with a lowercase letter");
    }
    if !u
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
    {
        return Err("only a-z, 0-9, '.', '-' and '_' are allowed");
    }
    if RESERVED_USERNAMES.contains(&u) {
        return Err("it is reserved");
    }
    Ok(())
}

/// Transliterates letters of any script to ASCII (`deunicode`), keeps
/// `[a-z0-9._-]` (a space becomes `.`), drops the rest, trims to start with
/// a letter, and cuts to the maximum length.
fn sanitize(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    let mut keep = |c: char| {
        let c = c.to_ascii_lowercase();
        match c {
            'a'..='z' | '0'..='9' | '.' | '_' | '-' => s.push(c),
            ' ' => s.push('.'),
            _ => {}
        }
    };
    for c in raw.chars() {
        if c.is_ascii() {
            keep(c);
        } else if c.is_whitespace() {
            keep(' ');
        } else if c.is_alphabetic() {
            // Transliterated (Cyrillic, Greek, CJK, accented Latin...):
            // "Dmitri" from "Дмитрий", "zhang wei" from "张伟".
            deunicode::deunicode_char(c)
                .unwrap_or("")
                .chars()
                .for_each(&mut keep);
        }
    }
    // Collapse runs of separators and trim them from the ends.
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let sep = matches!(c, '.' | '_' | '-');
        if sep && out.ends_with(['.', '_', '-']) {
            continue;
        }
        out.push(c);
    }
    let out = out.trim_start_matches(|c: char| !c.is_ascii_lowercase());
    let out: String = out.chars().take(USERNAME_MAX).collect();
    out.trim_end_matches(['.', '_', '-']).to_owned()
}

fn with_suffix(base: &str, suffix: &str) -> String {
    let keep = USERNAME_MAX - suffix.len() - 1;
    let b: String = base.chars().take(keep).collect();
    let b = b.trim_end_matches(['.', '_', '-']);
    let b = if b.is_empty() { "user" } else { b };
    format!("{b}-{suffix}")
}

fn hash_suffix(id: &HostUserId, email: &str) -> String {
    let mut h = Sha256::new();
    h.update(id.to_key_string().as_bytes());
    h.update([0]);
    h.update(email.as_bytes());
    crate::ids::hex_lower(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(email: &str, name: &str) -> Vec<String> {
        HostUser::new(7, email, name).username_candidates().unwrap()
    }

    #[test]
    fn transliterates_letters_of_any_script() {
        assert_eq!(sanitize("Дмитрий Иванов"), "dmitrii.ivanov");
        assert_eq!(sanitize("Γιώργος"), "giorgos");
        assert_eq!(sanitize("张伟"), "zhang.wei");
        assert_eq!(sanitize("Chloé Dubois"), "chloe.dubois");
        assert_eq!(sanitize("Jürgen Weiß"), "jurgen.weiss");
        // Symbols are dropped, not spelt out.
        assert_eq!(sanitize("ana 😀 ♥"), "ana");
        // An email whose local part is all non-Latin still gives a name.
        assert_eq!(cands("дима@example.com", "")[0], "dima");
    }

    #[test]
    fn derives_from_email_local_part() {
        assert_eq!(
            cands("John.Smith@example.com", "John Smith")[0],
            "john.smith"
        );
        assert_eq!(cands("jo+tag@example.com", "Jo")[0].len(), 7); // "jo" is too short
        assert!(cands("jo+tag@example.com", "Jo")[0].starts_with("jo-"));
        assert_eq!(cands("123.élodie@example.com", "x")[0], "elodie");
        assert_eq!(cands("system@example.com", "x")[0].len(), 11);
        assert!(cands("system@example.com", "x")[0].starts_with("system-"));
    }

    #[test]
    fn falls_back_to_name_then_user() {
        assert_eq!(cands("123@example.com", "Zoë Ångström")[0], "zoe.angstrom");
        // Transliterated now (it was dropped, leaving only "user").
        assert_eq!(cands("123@example.com", "日本")[0], "ri.ben");
        assert!(cands("123@example.com", "☺ ♥")[0].starts_with("user"));
    }

    #[test]
    fn long_and_collisions_are_deterministic() {
        let a = cands("averyveryveryverylongemailaddress@example.com", "x");
        assert_eq!(a[0].len(), 22);
        assert_eq!(a.len(), 3);
        assert_ne!(a[1], a[2]);
        assert_eq!(
            a,
            cands("averyveryveryverylongemailaddress@example.com", "x")
        );
        for u in &a {
            validate_username(u).unwrap();
        }
        // Another host user with the same email local part gets other suffixes.
        let b = HostUser::new(8, "averyveryveryverylongemailaddress@example.com", "x")
            .username_candidates()
            .unwrap();
        assert_eq!(a[0], b[0]);
        assert_ne!(a[1], b[1]);
    }

    #[test]
    fn invalid_inputs_are_errors() {
        for bad in ["", "no-at-sign", "a@b", "a@@b.com", "a b@c.com", "@x.com"] {
            assert!(
                HostUser::new(1, bad, "x").username_candidates().is_err(),
                "{bad:?}"
            );
        }
        let long = format!("{}@example.com", "a".repeat(130));
        assert!(HostUser::new(1, long, "x").normalized_email().is_err());
        let explicit = HostUser::new(1, "a@b.com", "x").username("Not Valid!");
        assert!(
            explicit
                .username_candidates()
                .unwrap_err()
                .contains("not valid")
        );
        let ok = HostUser::new(1, "a@b.com", "x").username("Good.Name");
        assert_eq!(ok.username_candidates().unwrap(), vec!["good.name"]);
    }

    #[test]
    fn names_split() {
        let u = HostUser::new(1, "a@b.com", "  Ana María López ");
        assert_eq!(u.first_name, "Ana");
        assert_eq!(u.last_name, "María López");
        let long = HostUser::new(1, "a@b.com", &"x".repeat(300));
        assert_eq!(long.first_name_clamped().chars().count(), 64);
    }
}
