//! The claim columns ([`Step::ClaimColumns`]): how syncs in several
//! processes keep out of each other's way on one user.

use super::{ColumnGroup, ExistingColumn, expiry_fits};
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

impl ColumnGroup {
    /// The claim columns ([`Step::ClaimColumns`]).
    pub fn claims(dialect: Dialect) -> Self {
        let names = [CLAIMED_BY_COLUMN, CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN];
        ColumnGroup {
            step: Step::ClaimColumns,
            dialect,
            columns: names.map(|n| (n, claim_type(dialect, n))).to_vec(),
            misfit: |dialect, name, found| {
                (!fits(dialect, name, found)).then_some(match name {
                    CLAIMED_UNTIL_COLUMN => {
                        "a signed 64-bit integer column (BIGINT; on SQLite, INTEGER)"
                    }
                    _ => "a text column of at least 64 characters, such as VARCHAR(64)",
                })
            },
            remedies: ("Rename or drop that column", "drop it"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::store::schema::plan::Direction;

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
        let up = ColumnGroup::claims(d)
            .plan(Direction::Up, "users", &[], false)
            .unwrap();
        assert_eq!(
            up.names,
            [CLAIMED_BY_COLUMN, CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN]
        );
        assert!(up.statements[0].contains("mattermost_claimed_until BIGINT NULL"));
        let have = [col(CLAIMED_BY_COLUMN, "character varying(64)", true)];
        let up = ColumnGroup::claims(d)
            .plan(Direction::Up, "users", &have, false)
            .unwrap();
        assert_eq!(up.names, [CLAIMED_UNTIL_COLUMN, MINT_INTENT_COLUMN]);
        let short = [col(MINT_INTENT_COLUMN, "character varying(10)", true)];
        let e = ColumnGroup::claims(d)
            .plan(Direction::Up, "users", &short, false)
            .unwrap_err();
        assert!(matches!(e, StoreError::Schema { .. }), "{e}");
        let strict = [col(CLAIMED_UNTIL_COLUMN, "bigint", false)];
        assert!(
            ColumnGroup::claims(d)
                .plan(Direction::Up, "users", &strict, false)
                .is_err()
        );
        let down = ColumnGroup::claims(d)
            .plan(Direction::Down, "users", &have, false)
            .unwrap();
        assert_eq!(down.names, [CLAIMED_BY_COLUMN]);
    }
}
