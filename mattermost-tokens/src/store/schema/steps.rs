//! The migration steps, their names and versions, and the names of what
//! they create.

/// The name of the users table's first step: the three nullable token
/// columns (as in the Laravel migration it ports,
/// `2026_01_26_000003_add_mattermost_token_to_users_table.php`).
pub const MIGRATION_NAME: &str = "add_mattermost_token_to_users_table";

/// The version of [`MIGRATION_NAME`] in [`MIGRATIONS_TABLE`], as in the
/// Laravel migration file it ports.
pub const MIGRATION_VERSION: i64 = 20260126000003;

/// The name of the code table's step.
pub const CODES_MIGRATION_NAME: &str = "create_mattermost_magic_link_codes_table";

/// The version of [`CODES_MIGRATION_NAME`] in [`MIGRATIONS_TABLE`].
pub const CODES_MIGRATION_VERSION: i64 = 20260126000004;

/// The name of the users table's second step: a unique index on
/// `mattermost_user_id`, so that one Mattermost account is linked to one
/// host user at most.
pub const UNIQUE_INDEX_MIGRATION_NAME: &str = "add_unique_mattermost_user_id_index";

/// The version of [`UNIQUE_INDEX_MIGRATION_NAME`] in [`MIGRATIONS_TABLE`].
pub const UNIQUE_INDEX_MIGRATION_VERSION: i64 = 20260126000005;

/// The name of the users table's third step: the nullable column holding
/// when each user's token expires (milliseconds since the Unix epoch).
pub const EXPIRY_MIGRATION_NAME: &str = "add_mattermost_token_expires_at_column";

/// The version of [`EXPIRY_MIGRATION_NAME`] in [`MIGRATIONS_TABLE`].
pub const EXPIRY_MIGRATION_VERSION: i64 = 20260126000006;

/// The name of the users table's fourth step: the nullable columns with
/// which syncs running in several processes coordinate (a claim on each
/// user, and the token a claim holder is about to mint).
pub const CLAIM_MIGRATION_NAME: &str = "add_mattermost_claim_columns";

/// The version of [`CLAIM_MIGRATION_NAME`] in [`MIGRATIONS_TABLE`].
pub const CLAIM_MIGRATION_VERSION: i64 = 20260126000007;

/// The table in which an adapter without a migrator of its own (the sqlx
/// one) records which steps have been applied to which tables: one row per
/// (table, version). diesel records its steps in its own
/// `__diesel_schema_migrations` instead, under [`Step::tag`].
pub const MIGRATIONS_TABLE: &str = "_mattermost_tokens_migrations";

/// The key of the PostgreSQL advisory lock a migration holds (ASCII
/// "mmtokmig"), so that migrations started together, by any adapter, run
/// one after the other.
pub const MIGRATION_LOCK_ID: i64 = 7885631419488627047;

/// The name of the MySQL/MariaDB lock (`GET_LOCK`) a migration holds.
pub const MIGRATION_LOCK_NAME: &str = "mattermost_tokens_migrate";

/// One migration step. The users table's run in the order of
/// [`Step::USERS_TABLE`] and are undone in the reverse order; the code
/// table has one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// [`MIGRATION_NAME`]: the columns `mattermost_user_id`,
    /// `mattermost_token` and `mattermost_token_id`.
    TokenColumns,
    /// [`UNIQUE_INDEX_MIGRATION_NAME`]: the unique index on
    /// `mattermost_user_id`.
    UserIdIndex,
    /// [`EXPIRY_MIGRATION_NAME`]: the token expiry column.
    ExpiryColumn,
    /// [`CODES_MIGRATION_NAME`]: the magic-link code table.
    CodeTable,
    /// [`CLAIM_MIGRATION_NAME`]: the claim and mint intent columns
    /// ([`CLAIM_COLUMNS`](super::CLAIM_COLUMNS)).
    ClaimColumns,
}

impl Step {
    /// The users table's steps, in the order they run.
    pub const USERS_TABLE: [Step; 4] = [
        Step::TokenColumns,
        Step::UserIdIndex,
        Step::ExpiryColumn,
        Step::ClaimColumns,
    ];

    /// The step's name.
    pub const fn name(self) -> &'static str {
        match self {
            Step::TokenColumns => MIGRATION_NAME,
            Step::UserIdIndex => UNIQUE_INDEX_MIGRATION_NAME,
            Step::ExpiryColumn => EXPIRY_MIGRATION_NAME,
            Step::CodeTable => CODES_MIGRATION_NAME,
            Step::ClaimColumns => CLAIM_MIGRATION_NAME,
        }
    }

    /// The step's version in [`MIGRATIONS_TABLE`].
    pub const fn version(self) -> i64 {
        match self {
            Step::TokenColumns => MIGRATION_VERSION,
            Step::CodeTable => CODES_MIGRATION_VERSION,
            Step::UserIdIndex => UNIQUE_INDEX_MIGRATION_VERSION,
            Step::ExpiryColumn => EXPIRY_MIGRATION_VERSION,
            Step::ClaimColumns => CLAIM_MIGRATION_VERSION,
        }
    }

    /// The step with this version, if any.
    pub fn from_version(version: i64) -> Option<Step> {
        [
            Step::TokenColumns,
            Step::UserIdIndex,
            Step::ExpiryColumn,
            Step::CodeTable,
            Step::ClaimColumns,
        ]
        .into_iter()
        .find(|s| s.version() == version)
    }

    /// The mark an adapter that marks what it adds (diesel's: a column or
    /// index comment, an SQL comment in the definition on SQLite) gives
    /// what this step added, so that undoing it removes only that.
    pub const fn marker(self) -> &'static str {
        match self {
            Step::TokenColumns => "mattermost-tokens: added by add_mattermost_token_to_users_table",
            Step::UserIdIndex => "mattermost-tokens: added by add_unique_mattermost_user_id_index",
            Step::ExpiryColumn => {
                "mattermost-tokens: added by add_mattermost_token_expires_at_column"
            }
            Step::CodeTable => {
                "mattermost-tokens: added by create_mattermost_magic_link_codes_table"
            }
            Step::ClaimColumns => "mattermost-tokens: added by add_mattermost_claim_columns",
        }
    }

    /// The step's version for a migrator that keys versions alone (diesel's
    /// `__diesel_schema_migrations`, `VARCHAR(50)`), for `table`:
    /// `00000000000000_mattermost_tokens_<n>_<table>`, `n` numbering the
    /// steps in the order they were written (1 the token columns, 2 the
    /// code table, 3 the index, 4 the expiry column, 5 the claim columns). The table is
    /// lowercased; a name that would make it longer than 50 characters is
    /// replaced by `#` and a hash of it. The code table's step on the
    /// default table is `00000000000000_mattermost_tokens_2`.
    ///
    /// Such a version cannot collide with a host's (digits only), sorts
    /// before every timestamped one, and puts a table's steps in their
    /// order.
    pub fn tag(self, table: &str) -> String {
        let n = match self {
            Step::TokenColumns => 1,
            Step::CodeTable => 2,
            Step::UserIdIndex => 3,
            Step::ExpiryColumn => 4,
            Step::ClaimColumns => 5,
        };
        let prefix = format!("00000000000000_mattermost_tokens_{n}");
        if self == Step::CodeTable && table == super::DEFAULT_CODES_TABLE {
            return prefix;
        }
        let table = table.to_ascii_lowercase();
        let tag = format!("{prefix}_{table}");
        if tag.len() <= MAX_TAG_LEN {
            return tag;
        }
        // '#' cannot appear in a table name, so a hashed tag never equals a
        // literal one. (This hash is part of recorded versions: it stays.)
        format!("{prefix}_#{:012x}", fnv1a64(&table) & 0xffff_ffff_ffff)
    }
}

/// The width of diesel's `version` column on PostgreSQL and MySQL.
const MAX_TAG_LEN: usize = 50;

/// The longest identifier PostgreSQL keeps (MySQL allows 64).
const MAX_NAME_LEN: usize = 63;

const INDEX_SUFFIX: &str = "_mattermost_user_id_unique";

/// The name of the unique index on `mattermost_user_id` of `table`:
/// `<table>_mattermost_user_id_unique` in lower case (the name Laravel's
/// `->unique()` gives it), of the table's own name without its schema (the
/// index lives in the table's schema). A name that would be longer than 63
/// characters keeps the start of the table's name and gets a hash of all
/// of it: `<start>_<8 hex digits>_mattermost_user_id_unique`, 63
/// characters.
pub fn user_id_index_name(table: &str) -> String {
    index_name(table, fnv1a32)
}

/// Whether `name` is the name [`user_id_index_name`] gives the index of
/// `table`, or the one that earlier releases of the diesel adapter gave it
/// when the table's name is long (another hash).
pub fn is_user_id_index_name(table: &str, name: &str) -> bool {
    let former = |s: &str| (fnv1a64(s) & 0xffff_ffff) as u32;
    name.eq_ignore_ascii_case(&user_id_index_name(table))
        || name.eq_ignore_ascii_case(&index_name(table, former))
}

fn index_name(table: &str, hash: impl Fn(&str) -> u32) -> String {
    // Unquoted names are case-insensitive: `Users` and `users` are one
    // table and must give one index name.
    let name = own_name(table).to_ascii_lowercase();
    if name.len() + INDEX_SUFFIX.len() <= MAX_NAME_LEN {
        return format!("{name}{INDEX_SUFFIX}");
    }
    // `_` and 8 hex digits. Identifiers are ASCII.
    let keep = &name[..MAX_NAME_LEN - INDEX_SUFFIX.len() - 9];
    format!("{keep}_{:08x}{INDEX_SUFFIX}", hash(&name))
}

/// The name of the code table's index on `expires_at`: the table's own name
/// (cut to fit 63 characters) and `_expires_at_idx`.
pub fn code_index_name(table: &str) -> String {
    const SUFFIX: &str = "_expires_at_idx";
    let name: String = own_name(table)
        .chars()
        .take(MAX_NAME_LEN - SUFFIX.len())
        .collect();
    format!("{name}{SUFFIX}")
}

/// A table's name without its schema.
pub(crate) fn own_name(table: &str) -> &str {
    table.split_once('.').map_or(table, |(_, name)| name)
}

/// 32-bit FNV-1a: the same in every build and version (an index name
/// derived from it must not change).
fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// 64-bit FNV-1a, for [`Step::tag`] and the former index names.
fn fnv1a64(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h: u64, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::validate_identifier;

    #[test]
    fn index_names() {
        for table in ["users", "app.users", "Users", "APP.USERS"] {
            assert_eq!(
                user_id_index_name(table),
                "users_mattermost_user_id_unique",
                "{table}"
            );
        }
        // 37 characters fit as they are (37 + 26 = 63).
        let fits = "a".repeat(37);
        assert_eq!(
            user_id_index_name(&fits),
            format!("{fits}_mattermost_user_id_unique")
        );
        // Longer names are cut and hashed, to exactly 63 characters.
        let long = format!("{}_one", "t".repeat(59));
        let other = format!("{}_two", "t".repeat(59));
        let a = user_id_index_name(&long);
        assert_eq!(a.len(), 63, "{a}");
        assert_ne!(a, user_id_index_name(&other));
        assert!(a.starts_with(&"t".repeat(28)) && a.ends_with(INDEX_SUFFIX));
        assert_eq!(a, user_id_index_name(&format!("s.{}", long.to_uppercase())));
        assert_eq!(
            user_id_index_name(&"a".repeat(38)),
            format!(
                "{}_{:08x}_mattermost_user_id_unique",
                "a".repeat(28),
                fnv1a32(&"a".repeat(38))
            )
        );
        // Pinned: a hash that changed would orphan existing indexes.
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        for t in [&long, &other, &fits, "users", "x.users", &"a".repeat(63)] {
            assert!(validate_identifier(&user_id_index_name(t)).is_ok(), "{t}");
        }
    }

    #[test]
    fn former_index_names_are_recognised() {
        let long = "a_users_table_name_of_forty_characters_x";
        assert_eq!(long.len(), 40);
        let now = user_id_index_name(long);
        let before = format!(
            "{}_{:08x}{INDEX_SUFFIX}",
            &long[..28],
            fnv1a64(long) & 0xffff_ffff
        );
        assert_ne!(now, before);
        assert!(is_user_id_index_name(long, &now));
        assert!(is_user_id_index_name(long, &before.to_uppercase()));
        assert!(!is_user_id_index_name(long, "host_index"));
        assert!(is_user_id_index_name(
            "users",
            "users_mattermost_user_id_unique"
        ));
    }

    #[test]
    fn tags() {
        let tag = |s: Step, t: &str| s.tag(t);
        assert_eq!(
            tag(Step::TokenColumns, "Users"),
            "00000000000000_mattermost_tokens_1_users"
        );
        assert_eq!(
            tag(Step::UserIdIndex, "users"),
            "00000000000000_mattermost_tokens_3_users"
        );
        assert_eq!(
            tag(Step::ExpiryColumn, "users"),
            "00000000000000_mattermost_tokens_4_users"
        );
        assert_eq!(
            tag(Step::CodeTable, super::super::DEFAULT_CODES_TABLE),
            "00000000000000_mattermost_tokens_2"
        );
        assert_eq!(
            tag(Step::CodeTable, "login_codes"),
            "00000000000000_mattermost_tokens_2_login_codes"
        );
        let long = "a_rather_long_schema.with_a_long_users_table";
        let t = tag(Step::TokenColumns, long);
        assert!(t.len() <= MAX_TAG_LEN, "{t}");
        assert!(t.starts_with("00000000000000_mattermost_tokens_1_#"));
        // Pinned: recorded versions must not change.
        assert_eq!(t, "00000000000000_mattermost_tokens_1_#57a526401c85");
        assert_ne!(t, tag(Step::TokenColumns, &format!("{long}f")));
        // In step order, before timestamped versions, after diesel's setup.
        let users: Vec<String> = Step::USERS_TABLE.iter().map(|s| s.tag("users")).collect();
        assert!(users.windows(2).all(|w| w[0] < w[1]));
        assert!(users[2].as_str() < "00000000000001");
        assert!(users[0].as_str() > "00000000000000");
    }

    #[test]
    fn steps() {
        for s in [
            Step::TokenColumns,
            Step::UserIdIndex,
            Step::ExpiryColumn,
            Step::CodeTable,
        ] {
            assert_eq!(Step::from_version(s.version()), Some(s));
            assert!(s.marker().ends_with(s.name()));
        }
        assert_eq!(Step::from_version(1), None);
        assert_eq!(code_index_name("app.codes"), "codes_expires_at_idx");
        assert_eq!(code_index_name(&"c".repeat(63)).len(), 63);
    }
}
