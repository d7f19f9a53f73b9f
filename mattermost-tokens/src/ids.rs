//! Identifier and secret types.
//!
//! Mattermost user ids, token ids and token secrets are all 26-character
//! strings on the wire; giving each its own type keeps a token secret from
//! being passed where an id is expected (and from being logged as one).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a raw id string as received from Mattermost or a database.
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// Consumes the id, returning the string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({:?})"), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A Mattermost user id (26 characters).
    UserId
);
id_type!(
    /// The id of a personal access token (not the secret: it can be listed and
    /// logged, and is what revoking needs).
    TokenId
);
id_type!(
    /// A Mattermost team id.
    TeamId
);
id_type!(
    /// A Mattermost channel id.
    ChannelId
);

/// Whether a string has the shape of a Mattermost id: 26 characters of
/// `[a-z0-9]`. Used to refuse malformed ids before they reach a URL path.
pub fn is_valid_mattermost_id(s: &str) -> bool {
    s.len() == 26
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex_lower(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// The secret value of a personal access token (or of the admin token).
///
/// It never shows in `Debug` or `Display`; read it with
/// [`AccessToken::expose_secret`] only where it leaves the process (an HTTP
/// header, a database column, a cookie).
#[derive(Clone)]
pub struct AccessToken(SecretString);

impl AccessToken {
    /// Wraps a token value.
    pub fn new(token: impl Into<String>) -> Self {
        Self(SecretString::from(token.into()))
    }

    /// The token value. Handle the result with care: it is a credential.
    pub fn expose_secret(&self) -> &str {
        self.0.expose_secret()
    }

    /// Constant-time comparison of two token values.
    pub fn ct_eq(&self, other: &AccessToken) -> bool {
        use subtle::ConstantTimeEq;
        self.expose_secret()
            .as_bytes()
            .ct_eq(other.expose_secret().as_bytes())
            .into()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken([REDACTED])")
    }
}

impl From<SecretString> for AccessToken {
    fn from(s: SecretString) -> Self {
        Self(s)
    }
}

impl From<String> for AccessToken {
    fn from(s: String) -> Self {
        Self::new(s)
    }
}

impl From<&str> for AccessToken {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<AccessToken> for SecretString {
    fn from(t: AccessToken) -> Self {
        t.0
    }
}

impl<'de> Deserialize<'de> for AccessToken {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(AccessToken::new)
    }
}

/// The host application's own key for a user (the primary key of its `users`
/// table): an integer (`BIGINT` auto-increment, as in Laravel) or text (a
/// UUID or any string key).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HostUserId {
    /// An integer key.
    Int(i64),
    /// A text key, such as a UUID.
    Text(String),
}

impl HostUserId {
    /// The key as text (integers in decimal), e.g. for token descriptions and
    /// as associated data in encryption.
    pub fn to_key_string(&self) -> String {
        match self {
            HostUserId::Int(i) => i.to_string(),
            HostUserId::Text(s) => s.clone(),
        }
    }

    /// The key [`to_key_string`](Self::to_key_string) wrote: an integer when
    /// the text is one, else text.
    pub fn from_key_string(key: &str) -> Self {
        key.parse()
            .map_or_else(|_| HostUserId::Text(key.to_owned()), HostUserId::Int)
    }
}

impl fmt::Debug for HostUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostUserId::Int(i) => write!(f, "HostUserId({i})"),
            HostUserId::Text(s) => write!(f, "HostUserId({s:?})"),
        }
    }
}

impl fmt::Display for HostUserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostUserId::Int(i) => write!(f, "{i}"),
            HostUserId::Text(s) => f.write_str(s),
        }
    }
}

impl From<i64> for HostUserId {
    fn from(i: i64) -> Self {
        HostUserId::Int(i)
    }
}

impl From<i32> for HostUserId {
    fn from(i: i32) -> Self {
        HostUserId::Int(i64::from(i))
    }
}

impl From<String> for HostUserId {
    fn from(s: String) -> Self {
        HostUserId::Text(s)
    }
}

impl From<&str> for HostUserId {
    fn from(s: &str) -> Self {
        HostUserId::Text(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_debug_is_redacted() {
        let t = AccessToken::new("abcdefghijklmnopqrstuvwxyz");
        assert_eq!(format!("{t:?}"), "AccessToken([REDACTED])");
        assert!(t.ct_eq(&AccessToken::new("abcdefghijklmnopqrstuvwxyz")));
        assert!(!t.ct_eq(&AccessToken::new("abcdefghijklmnopqrstuvwxyZ")));
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex_lower(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex_lower(&[]), "");
    }

    #[test]
    fn id_shape() {
        assert!(is_valid_mattermost_id("abcdefghijklmnopqrstuvwxyz"));
        assert!(!is_valid_mattermost_id("../users"));
        assert!(!is_valid_mattermost_id("ABCDEFGHIJKLMNOPQRSTUVWXYZ"));
    }
}
