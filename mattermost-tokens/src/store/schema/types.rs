//! The databases, and declared column types as far as the schema cares.

use super::KeyType;

/// A database the adapters support: what the schema's SQL and rules depend
/// on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// The database's name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::MySql => "MySQL",
            Dialect::Sqlite => "SQLite",
        }
    }

    /// The placeholder of the `n`th (1-based) bound value.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Dialect::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        }
    }

    /// The placeholder of the `n`th bound value where it is compared with
    /// the key column: cast for a PostgreSQL `uuid` key (casting the value,
    /// not the column, keeps the key's index usable).
    pub fn key_param(self, n: usize, key_type: KeyType) -> String {
        match (self, key_type) {
            (Dialect::Postgres, KeyType::Uuid) => format!("CAST(${n} AS UUID)"),
            _ => self.placeholder(n),
        }
    }

    /// `expr` read as text (MySQL has no `CAST(... AS TEXT)`; binary strings
    /// and MariaDB's `UUID` type read back as text too).
    pub fn as_text(self, expr: &str) -> String {
        match self {
            Dialect::MySql => format!("CAST({expr} AS CHAR)"),
            _ => format!("CAST({expr} AS TEXT)"),
        }
    }

    /// Whether [`KeyType::Uuid`] means a native `uuid` column (PostgreSQL)
    /// rather than text.
    pub const fn native_uuid(self) -> bool {
        matches!(self, Dialect::Postgres)
    }

    /// Whether a code is consumed by one `DELETE ... RETURNING` (PostgreSQL,
    /// SQLite 3.35+); MySQL has none (MariaDB's is not used, so both behave
    /// alike), and locks the row with `SELECT ... FOR UPDATE` in a
    /// transaction instead.
    pub const fn delete_returning(self) -> bool {
        !matches!(self, Dialect::MySql)
    }

    /// Whether declared column types follow SQLite's affinity rules (any
    /// name; lengths not enforced).
    pub const fn type_affinity(self) -> bool {
        matches!(self, Dialect::Sqlite)
    }

    /// Whether one `ALTER TABLE` adds or drops several columns (not SQLite).
    pub const fn alters_many(self) -> bool {
        !matches!(self, Dialect::Sqlite)
    }

    /// Whether DDL runs inside transactions (not MySQL, which commits around
    /// each DDL statement).
    pub const fn transactional_ddl(self) -> bool {
        !matches!(self, Dialect::MySql)
    }
}

/// The two kinds of column the token columns step adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ColumnKind {
    /// A 26-character Mattermost id: `VARCHAR(26)`.
    Id,
    /// A token value (26 characters plain, about 100 as an encrypted
    /// envelope): `TEXT`.
    Token,
}

/// A declared column type, as far as the schema cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SqlType {
    /// Any integer type.
    Integer,
    /// Variable-length text, with its limit if it has one.
    Text(Option<u32>),
    /// Blank-padded `CHAR(n)`.
    Fixed(u32),
    /// A native `uuid` (PostgreSQL; on SQLite a column declared `UUID`).
    Uuid,
    /// A SQLite column declared without a type: holds what it is given.
    Untyped,
    /// A SQLite column of `BLOB` affinity: keeps text as given.
    Blob,
    /// Anything else.
    Other,
}

impl SqlType {
    /// Reads a declared type as the database reports it
    /// (`character varying(26)`, `bigint(20) unsigned`, `VARCHAR(26)`). On
    /// SQLite (`type_affinity`) by its affinity rules
    /// (<https://sqlite.org/datatype3.html#affinity_name_examples>), where
    /// lengths are not enforced.
    pub fn parse(raw: &str, type_affinity: bool) -> SqlType {
        let t = raw.trim().to_ascii_lowercase();
        if type_affinity {
            return if t.is_empty() {
                SqlType::Untyped
            } else if t.contains("int") {
                SqlType::Integer
            } else if ["char", "clob", "text"].iter().any(|w| t.contains(w)) {
                SqlType::Text(None)
            } else if t.contains("blob") {
                SqlType::Blob
            } else if t == "uuid" {
                SqlType::Uuid
            } else {
                SqlType::Other
            };
        }
        let (base, len) = match t.split_once('(') {
            Some((b, rest)) => (
                b,
                rest.split([')', ','])
                    .next()
                    .and_then(|n| n.trim().parse::<u32>().ok()),
            ),
            None => (t.as_str(), None),
        };
        let base = base
            .split_whitespace()
            .filter(|w| !matches!(*w, "unsigned" | "signed" | "zerofill"))
            .collect::<Vec<_>>()
            .join(" ");
        match base.as_str() {
            "smallint" | "integer" | "int" | "bigint" | "tinyint" | "mediumint" | "int2"
            | "int4" | "int8" | "serial" | "bigserial" | "smallserial" => SqlType::Integer,
            "text" | "mediumtext" | "longtext" | "clob" => SqlType::Text(None),
            "tinytext" => SqlType::Text(Some(255)),
            "character varying" | "varchar" | "nvarchar" => SqlType::Text(len),
            "character" | "char" | "bpchar" | "nchar" => SqlType::Fixed(len.unwrap_or(1)),
            "uuid" => SqlType::Uuid,
            _ => SqlType::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_types() {
        use SqlType::*;
        for (raw, ty) in [
            ("bigint", Integer),
            ("bigint(20) unsigned", Integer),
            ("int(11)", Integer),
            ("integer", Integer),
            ("text", Text(None)),
            ("longtext", Text(None)),
            ("character varying(26)", Text(Some(26))),
            ("varchar(255)", Text(Some(255))),
            ("character varying", Text(None)),
            ("character(26)", Fixed(26)),
            ("char(36)", Fixed(36)),
            ("uuid", Uuid),
            ("interval", Other),
            ("timestamp without time zone", Other),
        ] {
            assert_eq!(SqlType::parse(raw, false), ty, "{raw}");
        }
    }

    #[test]
    fn parses_sqlite_affinity() {
        use SqlType::*;
        for (raw, ty) in [
            ("INTEGER", Integer),
            ("BIGINT", Integer),
            ("VARCHAR(10)", Text(None)),
            ("TEXT", Text(None)),
            ("", Untyped),
            ("BLOB", Blob),
            ("REAL", Other),
            ("UUID", Uuid),
        ] {
            assert_eq!(SqlType::parse(raw, true), ty, "{raw}");
        }
    }

    #[test]
    fn placeholders() {
        assert_eq!(Dialect::Postgres.placeholder(3), "$3");
        assert_eq!(Dialect::MySql.placeholder(3), "?");
        assert_eq!(
            Dialect::Postgres.key_param(1, KeyType::Uuid),
            "CAST($1 AS UUID)"
        );
        assert_eq!(Dialect::Sqlite.key_param(1, KeyType::Uuid), "?");
        assert_eq!(Dialect::MySql.as_text("id"), "CAST(id AS CHAR)");
    }
}
