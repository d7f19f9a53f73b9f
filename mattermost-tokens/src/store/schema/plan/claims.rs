//! The claim columns ([`Step::ClaimColumns`]): how syncs in several
//! processes keep out of each other's way on one user.

use super::{Change, Direction, ExistingColumn, clash, expiry_fits, find, not_null};
use crate::store::StoreError;
use crate::store::schema::types::{Dialect, SqlType};
use crate::store::schema::{
    CLAIMED_BY_COLUMN, CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN, Step, sql,
};

/// The longest owner or nonce the store writes (they are 32 hex digits).
pub const CLAIM_TEXT_LEN: u32 = 64;

/// The SQL type of a claim column.
fn claim_type(dialect: Dialect, column: &str) -> &'static str {
    match (column, dialect) {
        (CLAIMED_UNTIL_COLUMN, _) => sql::expiry_type(dialect),
        (_, Dialect::MySql) => "VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin",
        _ => "VARCHAR(64)",
    }
}

/// Whether an existing column of that name can serve.
fn fits(dialect: Dialect, column: &str, found: &ExistingColumn) -> bool {
    if column == CLAIMED_UNTIL_COLUMN {
        return expiry_fits(&found.sql_type, dialect.type_affinity());
    }
    match SqlType::parse(&found.sql_type, dialect.type_affinity()) {
        SqlType::Untyped | SqlType::Blob | SqlType::Text(None) => true,
        SqlType::Text(Some(n)) => n >= CLAIM_TEXT_LEN,
        _ => false,
    }
}

/// [`Step::ClaimColumns`] on a table with `columns`: going up, the claim
/// columns it lacks are added (those it has are checked: nullable, of a
/// type that holds the value); going down, the ones the step added are
/// dropped (`marked`: only those carrying the step's mark).
pub fn claim_columns(
    dialect: Dialect,
    dir: Direction,
    table: &str,
    columns: &[ExistingColumn],
    marked: bool,
) -> Result<Change, StoreError> {
    let marker = Step::ClaimColumns.marker();
    let mut change: Vec<&str> = Vec::new();
    for name in [CLAIMED_BY_COLUMN, CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN] {
        let ty = claim_type(dialect, name);
        let Some(found) = find(columns, name) else {
            if dir == Direction::Up {
                change.push(name);
            }
            continue;
        };
        if dir == Direction::Down && marked {
            if found.carries(marker, |n| format!("{n} {ty} /* {marker} */")) {
                change.push(name);
            }
            continue;
        }
        if !fits(dialect, name, found) {
            let wanted = match name {
                CLAIMED_UNTIL_COLUMN => {
                    "a signed 64-bit integer column (BIGINT; on SQLite, INTEGER)"
                }
                _ => "a text column of at least 64 characters, such as VARCHAR(64)",
            };
            return Err(clash(
                dir,
                table,
                found,
                wanted,
                "Rename or drop that column",
            ));
        }
        match dir {
            Direction::Down => change.push(name),
            Direction::Up => not_null(table, found, "drop it")?,
        }
    }
    let names: Vec<String> = change.iter().map(|n| (*n).to_owned()).collect();
    let statements = match dir {
        Direction::Up => {
            let add: Vec<(&str, &str)> = change
                .iter()
                .map(|n| (*n, claim_type(dialect, n)))
                .collect();
            sql::add_columns(dialect, table, &add, marked.then_some(marker))
        }
        Direction::Down => sql::drop_columns(dialect, table, &names),
    };
    Ok(Change { names, statements })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, ty: &str, nullable: bool) -> ExistingColumn {
        ExistingColumn::from_row([
            Some(name.into()),
            Some(ty.into()),
            Some(if nullable { "1" } else { "0" }.into()),
            None,
        ])
    }

    #[test]
    fn adds_what_is_missing_and_checks_what_is_there() {
        let d = Dialect::Postgres;
        let up = claim_columns(d, Direction::Up, "users", &[], false).unwrap();
        assert_eq!(
            up.names,
            [CLAIMED_BY_COLUMN, CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN]
        );
        assert!(up.statements[0].contains("mattermost_claimed_until BIGINT NULL"));
        let have = [col(CLAIMED_BY_COLUMN, "character varying(64)", true)];
        let up = claim_columns(d, Direction::Up, "users", &have, false).unwrap();
        assert_eq!(up.names, [CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN]);
        let short = [col(MINT_INTENT_COLUMN, "character varying(10)", true)];
        let e = claim_columns(d, Direction::Up, "users", &short, false).unwrap_err();
        assert!(matches!(e, StoreError::Schema { .. }), "{e}");
        let strict = [col(CLAIMED_UNTIL_COLUMN, "bigint", false)];
        assert!(claim_columns(d, Direction::Up, "users", &strict, false).is_err());
        let down = claim_columns(d, Direction::Down, "users", &have, false).unwrap();
        assert_eq!(down.names, [CLAIMED_BY_COLUMN]);
    }
}
