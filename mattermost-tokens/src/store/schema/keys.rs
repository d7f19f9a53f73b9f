//! Host user keys: the value bound for the key column, keys read back, and
//! the user a magic-link code logs in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::{KeyType, UsersTable};
use crate::ids::HostUserId;
use crate::store::StoreError;

/// A host user key in the form the key column compares against.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum KeyValue {
    /// An integer key.
    Int(i64),
    /// A text (or UUID) key.
    Text(String),
}

impl KeyValue {
    /// The key as text, as it is matched against keys read back.
    pub fn to_text(&self) -> String {
        match self {
            KeyValue::Int(i) => i.to_string(),
            KeyValue::Text(s) => s.clone(),
        }
    }
}

/// How a [`KeyType::Uuid`] key is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UuidKeys {
    /// A native `uuid` column (PostgreSQL): bound in canonical form; a
    /// string that is not a UUID names no row.
    Native,
    /// UUIDs kept as text: bound as given, but only when the string is a
    /// UUID.
    Checked,
    /// UUIDs kept as text: bound as given, like [`KeyType::Text`].
    AsText,
}

/// The value to bind for `user`'s key.
///
/// `Ok(None)` when `user` is of the right kind but cannot name a row (a
/// string that is not a UUID, for `Native` and `Checked`). A key of the
/// wrong kind for `key_type` is [`StoreError::Config`], so that a host
/// passing integer ids to a store set up for text keys (or the reverse)
/// can hear about it instead of silently finding nobody.
pub fn key_value(
    key_type: KeyType,
    uuid: UuidKeys,
    user: &HostUserId,
) -> Result<Option<KeyValue>, StoreError> {
    match (key_type, user) {
        (KeyType::Integer, HostUserId::Int(i)) => Ok(Some(KeyValue::Int(*i))),
        (KeyType::Text, HostUserId::Text(s)) => Ok(Some(KeyValue::Text(s.clone()))),
        (KeyType::Uuid, HostUserId::Text(s)) => Ok(match uuid {
            UuidKeys::Native => canonical_uuid(s).map(KeyValue::Text),
            UuidKeys::Checked => canonical_uuid(s).map(|_| KeyValue::Text(s.clone())),
            UuidKeys::AsText => Some(KeyValue::Text(s.clone())),
        }),
        (KeyType::Integer, HostUserId::Text(s)) => Err(StoreError::Config(format!(
            "this store is set up for integer user keys (KeyType::Integer) but was given the text key {s:?}; \
             use HostUserId::Int, or with_key_type(KeyType::Text / KeyType::Uuid) for a text key column"
        ))),
        (_, HostUserId::Int(i)) => Err(StoreError::Config(format!(
            "this store is set up for text user keys ({key_type:?}) but was given the integer key {i}; \
             use HostUserId::Text, or with_key_type(KeyType::Integer) for an integer key column"
        ))),
    }
}

/// The canonical text form PostgreSQL prints a UUID in (lower case,
/// hyphenated), for the spellings it reads (upper case, without hyphens, in
/// braces). `None` when `s` is not a UUID: 32 hex digits, with no hyphens
/// or four.
pub fn canonical_uuid(s: &str) -> Option<String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .unwrap_or(s);
    let hex: Vec<u8> = inner.bytes().filter(|b| *b != b'-').collect();
    let hyphens_ok = inner.len() == hex.len() || inner.len() == hex.len() + 4;
    if hex.len() != 32 || !hyphens_ok || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let hex = String::from_utf8(hex).ok()?.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

/// A key read back as text (the store statements read every key as text)
/// as the caller's kind of [`HostUserId`]; [`StoreError::Database`] for an
/// integer key column holding something else.
pub fn parse_key(table: &UsersTable, text: String) -> Result<HostUserId, StoreError> {
    match table.key_type() {
        KeyType::Integer => {
            text.trim()
                .parse()
                .map(HostUserId::Int)
                .map_err(|_| StoreError::Database {
                    message: format!(
                        "key column {}.{} holds a non-integer value; configure KeyType::Text",
                        table.table(),
                        table.key_column()
                    ),
                    source: None,
                })
        }
        KeyType::Text | KeyType::Uuid => Ok(HostUserId::Text(text)),
    }
}

/// The ids a `get_many` call asked for, by the key the database will
/// return, so that rows can be handed back under the caller's own ids.
#[derive(Debug)]
pub struct Wanted {
    key_type: KeyType,
    asked: HashMap<String, Vec<HostUserId>>,
}

impl Wanted {
    /// Nothing asked yet, for keys of `key_type`.
    pub fn new(key_type: KeyType) -> Self {
        Wanted {
            key_type,
            asked: HashMap::new(),
        }
    }

    fn lookup(&self, text: &str) -> String {
        match self.key_type {
            KeyType::Uuid => canonical_uuid(text).unwrap_or_else(|| text.to_owned()),
            _ => text.to_owned(),
        }
    }

    /// Records that a row with `key` answers `asked`. Returns whether the
    /// key is new (a key asked for twice need be bound once).
    pub fn insert(&mut self, key: &KeyValue, asked: &HostUserId) -> bool {
        let entry = self.asked.entry(self.lookup(&key.to_text())).or_default();
        entry.push(asked.clone());
        entry.len() == 1
    }

    /// The ids asked for that the row whose key reads back as `text`
    /// answers. A text key the database matched only case-insensitively
    /// (MySQL's default `_ci` collations) is found by a case-folded
    /// comparison.
    pub fn matches(&self, text: &str) -> Vec<HostUserId> {
        let text = self.lookup(text);
        if let Some(ids) = self.asked.get(&text) {
            return ids.clone();
        }
        let folded = text.to_lowercase();
        self.asked
            .iter()
            .filter(|(k, _)| k.to_lowercase() == folded)
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect()
    }
}

/// The longest text user key the code table's `host_user_id` column holds
/// (characters).
pub const CODE_USER_MAX_CHARS: usize = 255;

/// The code table's form of a user: the key as text (an integer in
/// decimal) and its kind, `i` or `t`, so that both come back as they went
/// in. A text key too long for the column is [`StoreError::Config`].
pub fn encode_code_user(user: &HostUserId) -> Result<(String, &'static str), StoreError> {
    match user {
        HostUserId::Int(i) => Ok((i.to_string(), "i")),
        HostUserId::Text(s) if s.chars().count() <= CODE_USER_MAX_CHARS => Ok((s.clone(), "t")),
        HostUserId::Text(s) => Err(StoreError::Config(format!(
            "a text host user id of {} characters does not fit the code table's host_user_id column \
             (at most {CODE_USER_MAX_CHARS})",
            s.chars().count()
        ))),
    }
}

/// The user of a code table row (`host_user_id`, `host_user_kind`), or
/// [`StoreError::Database`] for a row the code store cannot have written.
pub fn decode_code_user(
    table: &str,
    id: Option<String>,
    kind: Option<&str>,
) -> Result<HostUserId, StoreError> {
    let corrupt = |why: &str| StoreError::Database {
        message: format!("a row of the magic-link code table `{table}` {why}"),
        source: None,
    };
    let id = id.ok_or_else(|| corrupt("has no host user id"))?;
    match kind.map(str::trim) {
        Some("t") => Ok(HostUserId::Text(id)),
        Some("i") => id
            .trim()
            .parse()
            .map(HostUserId::Int)
            .map_err(|_| corrupt("has an integer host user id that is not an integer")),
        _ => Err(corrupt("has a host_user_kind other than 'i' or 't'")),
    }
}

/// Unix seconds, rounded down: the code table's expiry, so that a code
/// never works past its `expires_at`.
pub fn unix_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_spellings() {
        let canon = "7f1c2a9e-0000-4000-8000-000000000001";
        for s in [
            canon,
            "7F1C2A9E-0000-4000-8000-000000000001",
            "7f1c2a9e000040008000000000000001",
            "{7f1c2a9e-0000-4000-8000-000000000001}",
            "{7f1c2a9e000040008000000000000001}",
        ] {
            assert_eq!(canonical_uuid(s).as_deref(), Some(canon), "{s}");
        }
        for s in [
            "no-such-user",
            "",
            "7f1c2a9e-0000-4000-8000-00000000000g",
            "7f1c2a9e",
            // Hyphens are counted: none or four.
            "7f1c2a9e-0000-4000-8000-0000-00000001",
            "7f1c2a9e-00004000-8000-000000000001",
        ] {
            assert_eq!(canonical_uuid(s), None, "{s}");
        }
    }

    #[test]
    fn wrong_kind_is_a_config_error() {
        let text = HostUserId::Text("abc".into());
        assert!(matches!(
            key_value(KeyType::Integer, UuidKeys::AsText, &text),
            Err(StoreError::Config(_))
        ));
        for kt in [KeyType::Text, KeyType::Uuid] {
            assert!(matches!(
                key_value(kt, UuidKeys::Native, &HostUserId::Int(1)),
                Err(StoreError::Config(_))
            ));
        }
        assert_eq!(
            key_value(KeyType::Uuid, UuidKeys::Native, &text).unwrap(),
            None
        );
        assert_eq!(
            key_value(KeyType::Uuid, UuidKeys::Checked, &text).unwrap(),
            None
        );
        assert_eq!(
            key_value(KeyType::Uuid, UuidKeys::AsText, &text).unwrap(),
            Some(KeyValue::Text("abc".into()))
        );
        let upper = HostUserId::Text("7F1C2A9E-0000-4000-8000-000000000001".into());
        assert_eq!(
            key_value(KeyType::Uuid, UuidKeys::Native, &upper).unwrap(),
            Some(KeyValue::Text(
                "7f1c2a9e-0000-4000-8000-000000000001".into()
            ))
        );
        assert_eq!(
            key_value(KeyType::Uuid, UuidKeys::Checked, &upper).unwrap(),
            Some(KeyValue::Text(
                "7F1C2A9E-0000-4000-8000-000000000001".into()
            ))
        );
    }

    #[test]
    fn wanted_falls_back_to_case_folding() {
        let mut w = Wanted::new(KeyType::Text);
        let asked = HostUserId::Text("ABC".into());
        assert!(w.insert(&KeyValue::Text("ABC".into()), &asked));
        assert!(!w.insert(&KeyValue::Text("ABC".into()), &asked));
        assert_eq!(w.matches("abc"), vec![asked.clone(), asked.clone()]);
        assert!(w.matches("abd").is_empty());
        let mut w = Wanted::new(KeyType::Uuid);
        let asked = HostUserId::Text("{7F1C2A9E000040008000000000000001}".into());
        w.insert(
            &KeyValue::Text("{7F1C2A9E000040008000000000000001}".into()),
            &asked,
        );
        assert_eq!(
            w.matches("7f1c2a9e-0000-4000-8000-000000000001"),
            vec![asked]
        );
    }

    #[test]
    fn code_users() {
        assert_eq!(
            encode_code_user(&HostUserId::Int(-7)).unwrap(),
            ("-7".into(), "i")
        );
        assert_eq!(
            encode_code_user(&HostUserId::Text("ü".repeat(255)))
                .unwrap()
                .1,
            "t"
        );
        assert!(matches!(
            encode_code_user(&HostUserId::Text("x".repeat(256))),
            Err(StoreError::Config(_))
        ));
        assert_eq!(
            decode_code_user("c", Some(" 42".into()), Some("i ")).unwrap(),
            HostUserId::Int(42)
        );
        assert!(decode_code_user("c", Some("x".into()), Some("i")).is_err());
        assert!(decode_code_user("c", None, Some("t")).is_err());
        assert!(decode_code_user("c", Some("x".into()), Some("u")).is_err());
    }

    #[test]
    fn seconds_round_down() {
        let t = DateTime::from_timestamp(100, 999_000_000).unwrap();
        assert_eq!(unix_secs(t), 100);
    }
}
