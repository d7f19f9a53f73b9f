//! One step at a time: what a [`Step`] does to a table, read through a
//! [`Catalog`], for migrators that record and run the steps one by one
//! (diesel's `MigrationHarness`).

use super::{
    Change, ColumnGroup, Direction, ExistingColumn, ExistingIndex, IndexPlan, check_key_column,
    check_room_for_index, code_table, expiry_column, find, missing_table, user_id_index,
};
use crate::store::StoreError;
use crate::store::schema::types::Dialect;
use crate::store::schema::{Step, USER_ID_COLUMN, UsersTable, sql};

/// Reads a table's catalog: the rows of the schema's queries, every column
/// as text except the counts.
pub trait Catalog {
    /// What a failed read is; a step's refusal ([`StoreError`]) becomes one.
    type Error: From<StoreError>;

    /// The rows of [`sql::columns`].
    fn columns(&mut self, q: &sql::Query) -> Result<Vec<[Option<String>; 4]>, Self::Error>;

    /// The rows of [`sql::indexes`].
    fn indexes(&mut self, q: &sql::Query) -> Result<Vec<[Option<String>; 7]>, Self::Error>;

    /// The counts [`sql::duplicates`] or [`sql::index_name_taken`] return.
    fn counts(&mut self, q: &sql::Query) -> Result<Vec<i64>, Self::Error>;
}

/// What `step` does to `table` (the users table, or the code table for
/// [`Step::CodeTable`]) going `dir`, checked against what `catalog` reads:
/// the statements to run, or why the step is refused. `check_key`: check
/// the key column against the key type (a store's migrations, which know
/// it); `marked`: the migrator marks what it adds.
pub fn step_change<C: Catalog>(
    catalog: &mut C,
    step: Step,
    dialect: Dialect,
    dir: Direction,
    table: &UsersTable,
    check_key: bool,
    marked: bool,
) -> Result<Change, C::Error> {
    let name = table.table();
    let columns: Vec<ExistingColumn> = catalog
        .columns(&sql::columns(dialect, name))?
        .into_iter()
        .map(ExistingColumn::from_row)
        .collect();
    Ok(match step {
        Step::CodeTable => code_table(dialect, dir, name, &columns)?,
        _ if columns.is_empty() => return Err(missing_table(dir, name).into()),
        Step::TokenColumns => {
            if check_key && dir == Direction::Up {
                check_key_column(dialect, table, &columns)?;
            }
            ColumnGroup::tokens(dialect).plan(dir, name, &columns, marked)?
        }
        Step::ExpiryColumn => {
            let column = table.expiry_column();
            let found = find(&columns, column);
            expiry_column(dialect, dir, name, column, found, marked)?
        }
        Step::ClaimColumns => ColumnGroup::claims(dialect).plan(dir, name, &columns, marked)?,
        Step::UserIdIndex => {
            let indexes: Vec<ExistingIndex> = catalog
                .indexes(&sql::indexes(dialect, name))?
                .into_iter()
                .map(ExistingIndex::from_row)
                .collect();
            let column = find(&columns, USER_ID_COLUMN);
            match user_id_index(dialect, dir, name, &indexes, column, false, marked)? {
                IndexPlan::Keep => Change::default(),
                IndexPlan::Drop { index, statements } => Change {
                    names: vec![index],
                    statements,
                },
                IndexPlan::Create {
                    index,
                    taken,
                    duplicates,
                    statements,
                } => {
                    let mut count = |q: Option<sql::Query>| match q {
                        Some(q) => catalog.counts(&q),
                        None => Ok(Vec::new()),
                    };
                    let (taken, held) = (count(taken)?, count(duplicates)?);
                    check_room_for_index(table, &index, &taken, &held)?;
                    Change {
                        names: vec![index],
                        statements,
                    }
                }
            }
        }
    })
}
