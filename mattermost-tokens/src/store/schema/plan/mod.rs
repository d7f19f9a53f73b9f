//! What each migration step does to a table as it is, decided before
//! anything changes: the statements to run, or a [`StoreError::Schema`]
//! saying what is in the way and what to do about it.
//!
//! An adapter reads the table ([`sql::columns`],
//! [`sql::indexes`]), asks the step's function here,
//! and runs what it answers. An adapter that marks what it adds (diesel's,
//! with comments: pass the step's [`marker`](super::Step::marker)) undoes
//! only what carries its mark; one that does not (sqlx's) undoes what has
//! the step's names and types.
//!
//! # The rules
//!
//! - The token columns: a column of one of the names that exists already
//!   is kept when it is nullable text that holds the value (an id needs at
//!   least 26 characters; `CHAR(26)` holds an id exactly; SQLite ignores
//!   lengths, and keeps text as given in an untyped or `BLOB` column).
//! - The unique index: a unique index on exactly `mattermost_user_id`
//!   (complete: no expression or predicate, no prefix shorter than an id,
//!   and valid) of any name is kept, and none is made; otherwise
//!   [`user_id_index_name`] must be free and no two rows may share a
//!   non-NULL id. Undoing drops the index of that name (or the name earlier
//!   releases gave it) when it is unique on the column (or, for a marking
//!   adapter, carries the mark).
//! - The expiry column: one of its name is kept when it is a nullable
//!   signed 64-bit integer (`BIGINT`; any integer type on SQLite, whose
//!   integers are all 64-bit).
//! - The claim columns: ones of their names are kept when nullable and of
//!   a type that holds the value (text of 64 characters or more; a signed
//!   64-bit integer for the time).
//! - The code table: a table of its name is kept when it has the code
//!   table's columns, and is otherwise neither taken over nor dropped.

use super::types::{ColumnKind, Dialect, SqlType};
use super::{
    KeyType, Step, TOKEN_COLUMN, TOKEN_ID_COLUMN, USER_ID_COLUMN, UsersTable,
    is_user_id_index_name, sql, user_id_index_name,
};
use crate::store::{StoreError, validate_identifier};

mod claims;
mod index;
mod step;
pub use claims::CLAIM_TEXT_LEN;
pub use index::{
    IndexPlan, check_room_for_index, duplicate_links, index_name_taken, user_id_index,
};
pub use step::{Catalog, step_change};

/// Whether a run applies the steps or undoes them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `migrate()`.
    Up,
    /// `undo_migration()`.
    Down,
}

impl Direction {
    /// The operation, as messages name it.
    pub const fn what(self) -> &'static str {
        match self {
            Direction::Up => "migrate",
            Direction::Down => "undo_migration",
        }
    }
}

/// One of the three token columns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ColumnSpec {
    /// Its name.
    pub name: &'static str,
    /// What it holds.
    pub kind: ColumnKind,
}

/// The token columns, in the order they are added.
pub const COLUMNS: [ColumnSpec; 3] = [
    ColumnSpec {
        name: USER_ID_COLUMN,
        kind: ColumnKind::Id,
    },
    ColumnSpec {
        name: TOKEN_COLUMN,
        kind: ColumnKind::Token,
    },
    ColumnSpec {
        name: TOKEN_ID_COLUMN,
        kind: ColumnKind::Id,
    },
];

/// The code table's columns.
pub const CODE_COLUMNS: [&str; 4] = ["code_hash", "host_user_id", "host_user_kind", "expires_at"];

/// The shortest text an id column may hold (Mattermost ids are 26
/// characters); a token value is at least as long.
const ID_LEN: u32 = 26;

/// Below this length an encrypted token envelope (`mmt1:<kid>:<base64>`,
/// about 100 characters) may not fit: such a column works for plain tokens
/// and draws a warning.
const ENVELOPE_LEN: u32 = 128;

/// A column as the database describes it ([`sql::columns`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingColumn {
    /// Its name.
    pub name: String,
    /// Its declared type, as the database spells it.
    pub sql_type: String,
    /// Whether it takes NULL.
    pub nullable: bool,
    /// Its comment (PostgreSQL, MySQL); on SQLite, its table's
    /// `CREATE TABLE` statement.
    pub comment: Option<String>,
}

impl ExistingColumn {
    /// A row of [`sql::columns`]: name, type, `1` when nullable, comment.
    pub fn from_row(row: [Option<String>; 4]) -> Self {
        let [name, sql_type, nullable, comment] = row;
        ExistingColumn {
            name: name.unwrap_or_default(),
            sql_type: sql_type.unwrap_or_default(),
            nullable: nullable.as_deref().map(str::trim) == Some("1"),
            comment: comment.filter(|c| !c.is_empty()),
        }
    }

    /// Whether its comment is `marker` (an SQLite column: whether its
    /// table's definition gives it as `definition`, marker included).
    pub fn carries(&self, marker: &str, definition: impl FnOnce(&str) -> String) -> bool {
        match &self.comment {
            Some(c) if c == marker => true,
            Some(create) => defines(create, &definition(&self.name)),
            None => false,
        }
    }
}

/// Whether `create` (a `CREATE TABLE` statement) holds the column
/// definition `definition` (which starts with the column's name).
fn defines(create: &str, definition: &str) -> bool {
    create.match_indices(definition).any(|(at, _)| {
        !create[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// An index of a table, as the database describes it ([`sql::indexes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExistingIndex {
    /// Its name.
    pub name: String,
    /// Whether it is unique.
    pub unique: bool,
    /// Its key columns, in order.
    pub columns: Vec<String>,
    /// No expression, predicate or prefix shorter than an id, and usable.
    pub complete: bool,
    /// Owned by a constraint (dropped with the constraint).
    pub constraint: bool,
    /// The schema it is in, where the database says (PostgreSQL).
    pub schema: Option<String>,
    /// Its comment (PostgreSQL, MySQL); on SQLite its `CREATE INDEX`
    /// statement.
    pub comment: Option<String>,
}

impl ExistingIndex {
    /// A row of [`sql::indexes`].
    pub fn from_row(row: [Option<String>; 7]) -> Self {
        let [name, unique, columns, complete, constraint, schema, comment] = row;
        let flag = |v: Option<String>| v.as_deref().map(str::trim) == Some("1");
        let columns = columns.unwrap_or_default();
        ExistingIndex {
            name: name.unwrap_or_default(),
            unique: flag(unique),
            columns: columns
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            complete: flag(complete),
            constraint: flag(constraint),
            schema: schema.filter(|s| !s.is_empty()),
            comment: comment.filter(|c| !c.is_empty()),
        }
    }

    /// Whether the index makes `column` unique on its own.
    pub fn is_unique_on(&self, column: &str) -> bool {
        self.unique
            && self.complete
            && self.columns.len() == 1
            && self.columns[0].eq_ignore_ascii_case(column)
    }

    /// Whether its comment or definition carries `marker`.
    pub fn carries(&self, marker: &str) -> bool {
        self.comment.as_deref().is_some_and(|c| c.contains(marker))
    }
}

/// The column of `name` (compared without regard to case).
pub fn find<'a>(columns: &'a [ExistingColumn], name: &str) -> Option<&'a ExistingColumn> {
    columns.iter().find(|c| c.name.eq_ignore_ascii_case(name))
}

/// The users table does not exist.
pub fn missing_table(dir: Direction, table: &str) -> StoreError {
    schema_error(format!(
        "{}: table `{table}` does not exist. The store keeps tokens in the host's own users table: \
         create it first (the app's own migrations), or name it with with_table_name()",
        dir.what()
    ))
}

fn schema_error(message: String) -> StoreError {
    StoreError::Schema {
        message,
        source: None,
    }
}

/// Checks the key column against the configured [`KeyType`].
pub fn check_key_column(
    dialect: Dialect,
    t: &UsersTable,
    columns: &[ExistingColumn],
) -> Result<(), StoreError> {
    let (table, key, key_type) = (t.table(), t.key_column(), t.key_type());
    let Some(column) = find(columns, key) else {
        return Err(schema_error(format!(
            "migrate: table `{table}` has no column `{key}` to use as the user key; name the key \
             column with with_key_column()"
        )));
    };
    let ty = SqlType::parse(&column.sql_type, dialect.type_affinity());
    let native = dialect.native_uuid();
    use SqlType::*;
    let fits = match key_type {
        KeyType::Integer => matches!(ty, Integer | Untyped),
        KeyType::Text if native => matches!(ty, Text(_) | Fixed(_)),
        KeyType::Uuid if native => ty == Uuid,
        _ => matches!(ty, Text(_) | Fixed(_) | Uuid | Untyped),
    };
    if fits {
        return Ok(());
    }
    let hint = match ty {
        Integer => "KeyType::Integer",
        Uuid if native => "KeyType::Uuid",
        Text(_) | Fixed(_) | Uuid => "KeyType::Text",
        _ => "an integer or text key column",
    };
    Err(schema_error(format!(
        "migrate: key column `{table}.{key}` has type `{}`, which does not suit {key_type:?}; \
         use with_key_type({hint})",
        column.sql_type
    )))
}

/// What the token columns step changes: the columns, and the statements.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Change {
    /// The columns (or index, or table) it adds or drops.
    pub names: Vec<String>,
    /// The statements doing it, in order.
    pub statements: Vec<String>,
}

impl Change {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.statements.is_empty()
    }
}

/// The columns a step adds together ([`Step::TokenColumns`],
/// [`Step::ClaimColumns`]), each with the SQL type it is added with, and
/// what an existing column of such a name must be.
#[derive(Clone, Debug)]
pub struct ColumnGroup {
    step: Step,
    dialect: Dialect,
    columns: Vec<(&'static str, &'static str)>,
    /// What an existing column of that name would have to be, when it
    /// cannot serve.
    misfit: fn(Dialect, &str, &ExistingColumn) -> Option<&'static str>,
    /// What to do about a column that cannot serve, and about one that is
    /// `NOT NULL`.
    remedies: (&'static str, &'static str),
}

impl ColumnGroup {
    /// The token columns ([`COLUMNS`]).
    pub fn tokens(dialect: Dialect) -> Self {
        ColumnGroup {
            step: Step::TokenColumns,
            dialect,
            columns: COLUMNS
                .map(|c| (c.name, sql::column_type(dialect, c.kind)))
                .to_vec(),
            misfit: |dialect, name, found| {
                let kind = COLUMNS.iter().find(|c| c.name == name)?.kind;
                let ty = SqlType::parse(&found.sql_type, dialect.type_affinity());
                (!token_column_fits(kind, ty)).then_some(match kind {
                    ColumnKind::Id => {
                        "a text column of at least 26 characters, such as VARCHAR(26)"
                    }
                    ColumnKind::Token => "a text column of at least 26 characters, such as TEXT",
                })
            },
            remedies: (
                "Rename or convert that column, or use another table",
                "use another table",
            ),
        }
    }

    /// Going up, the columns the table lacks are added (those it has are
    /// checked: nullable, of a type that holds the value); going down, the
    /// ones the step added are dropped (`marked`: the adapter marks what it
    /// adds, and only what carries the step's mark is dropped).
    pub fn plan(
        &self,
        dir: Direction,
        table: &str,
        columns: &[ExistingColumn],
        marked: bool,
    ) -> Result<Change, StoreError> {
        let (dialect, marker) = (self.dialect, self.step.marker());
        let mut change = Vec::new();
        for &(name, ty) in &self.columns {
            let Some(found) = find(columns, name) else {
                if dir == Direction::Up {
                    change.push((name, ty));
                }
                continue;
            };
            if dir == Direction::Down && marked {
                if found.carries(marker, |n| format!("{n} {ty} /* {marker} */")) {
                    change.push((name, ty));
                }
                continue;
            }
            if let Some(wanted) = (self.misfit)(dialect, name, found) {
                return Err(clash(dir, table, found, wanted, self.remedies.0));
            }
            match dir {
                Direction::Down => change.push((name, ty)),
                Direction::Up => {
                    not_null(table, found, self.remedies.1)?;
                    if name == TOKEN_COLUMN {
                        warn_if_short(dialect, table, found);
                    }
                }
            }
        }
        let names: Vec<String> = change.iter().map(|(n, _)| (*n).to_owned()).collect();
        let statements = match dir {
            Direction::Up => sql::add_columns(dialect, table, &change, marked.then_some(marker)),
            Direction::Down => sql::drop_columns(dialect, table, &names),
        };
        Ok(Change { names, statements })
    }
}

/// Warns when the host's token column holds plain tokens but not
/// encrypted ones.
fn warn_if_short(dialect: Dialect, table: &str, found: &ExistingColumn) {
    if let SqlType::Text(Some(n)) = SqlType::parse(&found.sql_type, dialect.type_affinity())
        && n < ENVELOPE_LEN
    {
        tracing::warn!(
            table,
            "column {TOKEN_COLUMN} is {}: plain tokens fit, encrypted ones (about 100 characters) may not",
            found.sql_type
        );
    }
}

fn token_column_fits(kind: ColumnKind, ty: SqlType) -> bool {
    match (kind, ty) {
        (_, SqlType::Untyped | SqlType::Blob | SqlType::Text(None)) => true,
        (_, SqlType::Text(Some(n))) => n >= ID_LEN,
        // CHAR(n) pads shorter values with blanks: only an id of exactly n
        // characters comes back unchanged.
        (ColumnKind::Id, SqlType::Fixed(n)) => n == ID_LEN,
        _ => false,
    }
}

/// Column `found` exists with a type that is not `wanted`; `remedy` says
/// what to do about it when migrating.
fn clash(
    dir: Direction,
    table: &str,
    found: &ExistingColumn,
    wanted: &str,
    remedy: &str,
) -> StoreError {
    let (column, raw) = (format!("`{table}.{}`", found.name), &found.sql_type);
    schema_error(match dir {
        Direction::Up => format!(
            "migrate: column {column} already exists with type `{raw}`, but the store needs {wanted}; \
             nothing was changed. {remedy}"
        ),
        Direction::Down => format!(
            "undo_migration: column {column} has type `{raw}`, so this migration did not add it; \
             nothing was dropped"
        ),
    })
}

fn not_null(table: &str, found: &ExistingColumn, remedy: &str) -> Result<(), StoreError> {
    if found.nullable {
        return Ok(());
    }
    Err(schema_error(format!(
        "migrate: column `{table}.{}` already exists but is NOT NULL, and the store writes NULL \
         into it; nothing was changed. Make it nullable, or {remedy}",
        found.name
    )))
}

/// [`Step::ExpiryColumn`] for column `name`, of which `found` exists. With
/// `marked`, an undo drops only a column that carries the step's mark.
pub fn expiry_column(
    dialect: Dialect,
    dir: Direction,
    table: &str,
    name: &str,
    found: Option<&ExistingColumn>,
    marked: bool,
) -> Result<Change, StoreError> {
    let marker = Step::ExpiryColumn.marker();
    let expiry_type = sql::expiry_type(dialect);
    let changed = |statements: Vec<String>| Change {
        names: vec![name.to_owned()],
        statements,
    };
    let Some(found) = found else {
        return Ok(match dir {
            Direction::Up => changed(sql::add_columns(
                dialect,
                table,
                &[(name, expiry_type)],
                marked.then_some(marker),
            )),
            Direction::Down => Change::default(),
        });
    };
    if dir == Direction::Down && marked {
        let ours = found.carries(marker, |n| format!("{n} {expiry_type} /* {marker} */"));
        return Ok(match ours {
            true => changed(sql::drop_columns(dialect, table, &[name.to_owned()])),
            false => Change::default(),
        });
    }
    if !expiry_fits(&found.sql_type, dialect.type_affinity()) {
        let wanted = "a signed 64-bit integer column (BIGINT; on SQLite, INTEGER) for milliseconds \
                      since the Unix epoch";
        let remedy = "Rename or convert that column, or name another expiry column with \
                      with_expiry_column()";
        return Err(clash(dir, table, found, wanted, remedy));
    }
    match dir {
        // Added by an earlier run, or by hand.
        Direction::Up => {
            not_null(
                table,
                found,
                "name another expiry column with with_expiry_column()",
            )?;
            Ok(Change::default())
        }
        Direction::Down => Ok(changed(sql::drop_columns(
            dialect,
            table,
            &[name.to_owned()],
        ))),
    }
}

/// Whether a declared type fits the expiry column: a signed 64-bit integer
/// (`BIGINT`, `int8`; a smaller integer could not hold a time in
/// milliseconds, an unsigned one does not read back as `i64`). On SQLite
/// every integer is 64-bit: any integer type fits, as does a column
/// declared without a type.
fn expiry_fits(raw: &str, type_affinity: bool) -> bool {
    if type_affinity {
        return matches!(
            SqlType::parse(raw, true),
            SqlType::Integer | SqlType::Untyped
        );
    }
    let t = raw.trim().to_ascii_lowercase();
    let mut words = t.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
    let base = words.next().unwrap_or_default();
    matches!(base, "bigint" | "int8") && !words.any(|w| w == "unsigned")
}

/// [`Step::CodeTable`] on code table `table`, whose columns are `columns`
/// (none: no such table). A table of that name without the code table's
/// columns is refused, both ways.
pub fn code_table(
    dialect: Dialect,
    dir: Direction,
    table: &str,
    columns: &[ExistingColumn],
) -> Result<Change, StoreError> {
    let exists = !columns.is_empty();
    for name in CODE_COLUMNS.iter().filter(|_| exists) {
        let found = find(columns, name);
        // A declared length counts even where it is not enforced (SQLite):
        // such a table was not made by this step.
        let fits = |c: &ExistingColumn| {
            code_column_fits(name, SqlType::parse(&c.sql_type, dialect.type_affinity()))
                && (*name != "code_hash" || declared_len(&c.sql_type).is_none_or(|n| n >= 64))
        };
        if found.is_some_and(fits) {
            continue;
        }
        let what = match found {
            Some(c) => format!("its column `{name}` has type `{}`", c.sql_type),
            None => format!("it has no column `{name}`"),
        };
        let consequence = match dir {
            Direction::Up => "nothing was changed; name another table with with_table_name()",
            Direction::Down => "nothing was dropped",
        };
        return Err(schema_error(format!(
            "{}: table `{table}` exists but is not a magic-link code table ({what}); {consequence}",
            dir.what()
        )));
    }
    let statements = match (dir, exists) {
        (Direction::Up, false) => sql::create_code_table(dialect, table),
        (Direction::Down, true) => vec![format!("DROP TABLE {table}")],
        _ => Vec::new(),
    };
    Ok(Change {
        names: if statements.is_empty() {
            Vec::new()
        } else {
            vec![table.to_owned()]
        },
        statements,
    })
}

/// The length in a declared type such as `varchar(26)`.
fn declared_len(sql_type: &str) -> Option<u32> {
    let (_, rest) = sql_type.split_once('(')?;
    rest.split([')', ',']).next()?.trim().parse().ok()
}

fn code_column_fits(name: &str, ty: SqlType) -> bool {
    use SqlType::*;
    match name {
        "code_hash" => match ty {
            Text(n) => n.is_none_or(|n| n >= 64),
            Fixed(n) => n >= 64,
            Untyped => true,
            _ => false,
        },
        "expires_at" => matches!(ty, Integer | Untyped),
        _ => matches!(ty, Text(_) | Fixed(_) | Untyped),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, sql_type: &str, nullable: bool) -> ExistingColumn {
        ExistingColumn {
            name: name.into(),
            sql_type: sql_type.into(),
            nullable,
            comment: None,
        }
    }

    #[test]
    fn expiry_column_fit() {
        for raw in ["bigint", "BIGINT", "bigint(20)", "int8"] {
            assert!(expiry_fits(raw, false), "{raw}");
        }
        for raw in [
            "integer",
            "int(11)",
            "smallint",
            "bigint(20) unsigned",
            "bigint unsigned zerofill",
            "numeric(20,0)",
            "text",
            "character varying(26)",
            "timestamp without time zone",
            "",
        ] {
            assert!(!expiry_fits(raw, false), "{raw}");
        }
        for raw in ["INTEGER", "BIGINT", "int", "BIGINT UNSIGNED", ""] {
            assert!(expiry_fits(raw, true), "{raw}");
        }
        for raw in ["TEXT", "REAL", "NUMERIC", "VARCHAR(26)", "BLOB"] {
            assert!(!expiry_fits(raw, true), "{raw}");
        }
    }

    #[test]
    fn column_fit() {
        use SqlType::*;
        assert!(token_column_fits(ColumnKind::Token, Text(Some(255))));
        assert!(token_column_fits(ColumnKind::Id, Fixed(26)));
        assert!(token_column_fits(ColumnKind::Token, Blob));
        assert!(!token_column_fits(ColumnKind::Token, Fixed(26)));
        assert!(!token_column_fits(ColumnKind::Id, Text(Some(20))));
        assert!(!token_column_fits(ColumnKind::Token, Integer));
        assert!(code_column_fits("code_hash", Text(Some(64))));
        assert!(code_column_fits("code_hash", Fixed(64)));
        assert!(code_column_fits("code_hash", Text(None)));
        assert!(!code_column_fits("code_hash", Text(Some(32))));
        assert!(!code_column_fits("code_hash", Integer));
        assert!(code_column_fits("expires_at", Integer));
        assert!(!code_column_fits("expires_at", Other));
        assert!(code_column_fits("host_user_kind", Fixed(1)));
    }

    #[test]
    fn key_columns() {
        let t = |kt| UsersTable::default().with_key_type(kt);
        let cols = |ty: &str| vec![col("id", ty, false)];
        let ok = |d, kt, ty: &str| check_key_column(d, &t(kt), &cols(ty)).is_ok();
        assert!(ok(Dialect::Postgres, KeyType::Uuid, "uuid"));
        assert!(!ok(Dialect::Postgres, KeyType::Text, "uuid"));
        assert!(ok(Dialect::MySql, KeyType::Uuid, "char(36)"));
        assert!(!ok(Dialect::MySql, KeyType::Integer, "text"));
        assert!(ok(Dialect::Sqlite, KeyType::Integer, "INTEGER"));
        let e = check_key_column(Dialect::Sqlite, &t(KeyType::Integer), &cols("TEXT"));
        assert!(format!("{e:?}").contains("KeyType::Text"));
        let e = check_key_column(Dialect::Sqlite, &t(KeyType::Integer), &[]);
        assert!(format!("{e:?}").contains("with_key_column"));
    }

    #[test]
    fn columns_step() {
        let d = Dialect::Postgres;
        let present = [col("id", "bigint", false), col(TOKEN_COLUMN, "text", true)];
        let up = ColumnGroup::tokens(d)
            .plan(Direction::Up, "users", &present, false)
            .unwrap();
        assert_eq!(up.names, [USER_ID_COLUMN, TOKEN_ID_COLUMN]);
        assert_eq!(up.statements.len(), 1);
        let down = ColumnGroup::tokens(d)
            .plan(Direction::Down, "users", &present, false)
            .unwrap();
        assert_eq!(down.names, [TOKEN_COLUMN]);
        // Marked: only what carries the mark goes.
        let down = ColumnGroup::tokens(d)
            .plan(Direction::Down, "users", &present, true)
            .unwrap();
        assert!(down.is_empty());
        let not_null = [col(TOKEN_COLUMN, "text", false)];
        let e = ColumnGroup::tokens(d)
            .plan(Direction::Up, "users", &not_null, false)
            .unwrap_err();
        assert!(e.to_string().contains("NOT NULL"), "{e}");
        let clash = [col(TOKEN_COLUMN, "integer", true)];
        let e = ColumnGroup::tokens(d)
            .plan(Direction::Down, "users", &clash, false)
            .unwrap_err();
        assert!(e.to_string().contains("nothing was dropped"), "{e}");
        // SQLite: the mark is in the table's definition.
        let create = format!(
            "CREATE TABLE users (id INTEGER, {TOKEN_COLUMN} TEXT /* {} */)",
            Step::TokenColumns.marker()
        );
        let marked = [ExistingColumn {
            comment: Some(create),
            ..col(TOKEN_COLUMN, "TEXT", true)
        }];
        let down = ColumnGroup::tokens(Dialect::Sqlite)
            .plan(Direction::Down, "users", &marked, true)
            .unwrap();
        assert_eq!(down.names, [TOKEN_COLUMN]);
    }

    #[test]
    fn index_step() {
        let d = Dialect::Sqlite;
        let column = col(USER_ID_COLUMN, "VARCHAR(26)", true);
        let index = |name: &str, unique, comment: Option<&str>| ExistingIndex {
            name: name.into(),
            unique,
            columns: vec![USER_ID_COLUMN.into()],
            complete: true,
            constraint: false,
            schema: None,
            comment: comment.map(Into::into),
        };
        let plan = |dir, ix: &[ExistingIndex], marked| {
            user_id_index(d, dir, "users", ix, Some(&column), false, marked)
        };
        let host = index("host_idx", true, None);
        assert_eq!(
            plan(Direction::Up, std::slice::from_ref(&host), false).unwrap(),
            IndexPlan::Keep
        );
        assert_eq!(
            plan(Direction::Down, &[host], false).unwrap(),
            IndexPlan::Keep
        );
        let clash = index("users_mattermost_user_id_unique", false, None);
        assert!(plan(Direction::Up, &[clash], false).is_err());
        let created = plan(Direction::Up, &[], true).unwrap();
        let IndexPlan::Create {
            duplicates: Some(_),
            statements,
            ..
        } = created
        else {
            panic!("{created:?}")
        };
        assert!(statements[0].contains(Step::UserIdIndex.marker()));
        let ours = index(
            "users_mattermost_user_id_unique",
            true,
            Some(&statements[0]),
        );
        assert!(matches!(
            plan(Direction::Down, std::slice::from_ref(&ours), true).unwrap(),
            IndexPlan::Drop { .. }
        ));
        let unmarked = ExistingIndex {
            comment: None,
            ..ours
        };
        assert_eq!(
            plan(Direction::Down, std::slice::from_ref(&unmarked), true).unwrap(),
            IndexPlan::Keep
        );
        assert!(matches!(
            plan(Direction::Down, &[unmarked], false).unwrap(),
            IndexPlan::Drop { .. }
        ));
        let e = user_id_index(d, Direction::Up, "users", &[], None, false, true).unwrap_err();
        assert!(e.to_string().contains(Step::TokenColumns.name()), "{e}");
    }

    #[test]
    fn lengths() {
        assert_eq!(declared_len("varchar(26)"), Some(26));
        assert_eq!(declared_len("character varying(255)"), Some(255));
        assert_eq!(declared_len("numeric(20,0)"), Some(20));
        assert_eq!(declared_len("text"), None);
        let d = Dialect::Sqlite;
        let code = |ty: &str| {
            let cols: Vec<ExistingColumn> = CODE_COLUMNS
                .iter()
                .map(|n| col(n, if *n == "code_hash" { ty } else { "TEXT" }, false))
                .map(|c| match c.name.as_str() {
                    "expires_at" => ExistingColumn {
                        sql_type: "BIGINT".into(),
                        ..c
                    },
                    _ => c,
                })
                .collect();
            code_table(d, Direction::Up, "codes", &cols)
        };
        assert!(code("CHAR(64)").unwrap().is_empty());
        assert!(
            code("VARCHAR(32)").is_err(),
            "a declared length counts on SQLite too"
        );
    }

    #[test]
    fn duplicates_message() {
        let t = UsersTable::default();
        let m = duplicate_links(&t, Some((2, 5)), None).to_string();
        for part in [
            "2 Mattermost user ids",
            "5 rows",
            "GROUP BY mattermost_user_id HAVING COUNT(*) > 1",
            "nothing was changed",
            "migrate() again",
            "users_mattermost_user_id_unique",
        ] {
            assert!(m.contains(part), "{part}: {m}");
        }
        let m = duplicate_links(&t, Some((1, 2)), None).to_string();
        assert!(m.contains("1 Mattermost user id is held by 2 rows"), "{m}");
    }
}
