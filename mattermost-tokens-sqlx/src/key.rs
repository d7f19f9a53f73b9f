//! Turning a [`HostUserId`] into the value bound for the key column, and
//! matching rows read back to the ids a caller asked for.

use std::collections::HashMap;

use mattermost_tokens::{HostUserId, StoreError};

use crate::backend::Bind;
use crate::config::KeyType;

/// A host user key in the form the key column compares against.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyValue {
    Int(i64),
    Text(String),
}

impl KeyValue {
    pub(crate) fn bind(&self) -> Bind<'_> {
        match self {
            KeyValue::Int(i) => Bind::Int(*i),
            KeyValue::Text(s) => Bind::Text(s),
        }
    }

    /// The key as text, as it is matched against keys read back.
    fn lookup(&self) -> String {
        match self {
            KeyValue::Int(i) => i.to_string(),
            KeyValue::Text(s) => s.clone(),
        }
    }
}

/// The value to bind for `user`.
///
/// `Ok(None)` when `user` is of the right kind but cannot name a row (a
/// string that is not a UUID, for a native UUID column): reads treat it as an
/// unknown user. A key of the wrong kind for `key_type` is a configuration
/// error, so that a host passing integer ids to a store set up for text keys
/// (or the reverse) hears about it instead of silently finding nobody.
pub(crate) fn key_value(
    key_type: KeyType,
    native_uuid: bool,
    user: &HostUserId,
) -> Result<Option<KeyValue>, StoreError> {
    match (key_type, user) {
        (KeyType::Integer, HostUserId::Int(i)) => Ok(Some(KeyValue::Int(*i))),
        (KeyType::Text, HostUserId::Text(s)) => Ok(Some(KeyValue::Text(s.clone()))),
        (KeyType::Uuid, HostUserId::Text(s)) if native_uuid => {
            Ok(canonical_uuid(s).map(KeyValue::Text))
        }
        (KeyType::Uuid, HostUserId::Text(s)) => Ok(Some(KeyValue::Text(s.clone()))),
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
/// hyphenated), for any spelling PostgreSQL accepts as input (upper case,
/// without hyphens, in braces). `None` when `s` is not a UUID.
pub(crate) fn canonical_uuid(s: &str) -> Option<String> {
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

/// The ids a `get_many` call asked for, by the key text the database will
/// return, so that rows can be handed back under the caller's own ids.
#[derive(Default)]
pub(crate) struct Wanted {
    exact: HashMap<String, Vec<HostUserId>>,
}

impl Wanted {
    pub(crate) fn insert(&mut self, key: &KeyValue, asked: &HostUserId) {
        self.exact
            .entry(key.lookup())
            .or_default()
            .push(asked.clone());
    }

    /// The ids asked for that a row with `key` answers. A text key the
    /// database matched only case-insensitively (MySQL's default `_ci`
    /// collations) is found by a case-folded comparison.
    pub(crate) fn matches(&self, key: &HostUserId) -> Vec<HostUserId> {
        let text = key.to_key_string();
        if let Some(ids) = self.exact.get(&text) {
            return ids.clone();
        }
        let folded = text.to_lowercase();
        self.exact
            .iter()
            .filter(|(k, _)| k.to_lowercase() == folded)
            .flat_map(|(_, ids)| ids.iter().cloned())
            .collect()
    }
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
        ] {
            assert_eq!(canonical_uuid(s).as_deref(), Some(canon), "{s}");
        }
        for s in [
            "no-such-user",
            "",
            "7f1c2a9e-0000-4000-8000-00000000000g",
            "7f1c2a9e",
        ] {
            assert_eq!(canonical_uuid(s), None, "{s}");
        }
    }

    #[test]
    fn wrong_kind_is_a_config_error() {
        let text = HostUserId::Text("abc".into());
        assert!(matches!(
            key_value(KeyType::Integer, false, &text),
            Err(StoreError::Config(_))
        ));
        for kt in [KeyType::Text, KeyType::Uuid] {
            assert!(matches!(
                key_value(kt, true, &HostUserId::Int(1)),
                Err(StoreError::Config(_))
            ));
        }
        assert_eq!(key_value(KeyType::Uuid, true, &text).unwrap(), None);
        assert_eq!(
            key_value(KeyType::Uuid, false, &text).unwrap(),
            Some(KeyValue::Text("abc".into()))
        );
    }

    #[test]
    fn wanted_falls_back_to_case_folding() {
        let mut w = Wanted::default();
        let asked = HostUserId::Text("ABC".into());
        w.insert(&KeyValue::Text("ABC".into()), &asked);
        assert_eq!(
            w.matches(&HostUserId::Text("abc".into())),
            vec![asked.clone()]
        );
        assert_eq!(w.matches(&HostUserId::Text("ABC".into())), vec![asked]);
        assert!(w.matches(&HostUserId::Text("abd".into())).is_empty());
    }
}
