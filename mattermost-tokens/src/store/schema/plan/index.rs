//! The unique index on `mattermost_user_id` ([`Step::UserIdIndex`]): keep
//! one that exists, make one when its name is free and no two rows share a
//! linked account, or undo it.

use super::*;

/// What [`Step::UserIdIndex`] does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexPlan {
    /// Nothing: `mattermost_user_id` is unique already (going up), or the
    /// step's index is not there (going down).
    Keep,
    /// Create the index, once [`check_room_for_index`] has seen the counts
    /// of `taken` (where the database shares index names across a schema)
    /// and `duplicates` (when the column exists).
    Create {
        /// The index's name.
        index: String,
        /// Counts other objects of the index's name ([`sql::index_name_taken`]).
        taken: Option<sql::Query>,
        /// Counts the rows of each shared id ([`sql::duplicates`]).
        duplicates: Option<sql::Query>,
        /// The statements creating it.
        statements: Vec<String>,
    },
    /// Drop the index.
    Drop {
        /// The index's name.
        index: String,
        /// The statement dropping it.
        statements: Vec<String>,
    },
}

/// [`Step::UserIdIndex`] on a table with `indexes`. `column` is
/// `mattermost_user_id` as it exists; `column_added`: the token columns
/// step is about to add it. `marked`: the adapter marks what it adds.
pub fn user_id_index(
    dialect: Dialect,
    dir: Direction,
    table: &str,
    indexes: &[ExistingIndex],
    column: Option<&ExistingColumn>,
    column_added: bool,
    marked: bool,
) -> Result<IndexPlan, StoreError> {
    let marker = Step::UserIdIndex.marker();
    if dir == Direction::Down {
        let ours = indexes.iter().find(|i| {
            is_user_id_index_name(table, &i.name)
                && if marked {
                    i.carries(marker)
                } else {
                    column.is_some() && i.is_unique_on(USER_ID_COLUMN)
                }
        });
        return Ok(match ours {
            Some(i) => IndexPlan::Drop {
                index: i.name.clone(),
                statements: vec![sql::drop_index(dialect, table, i)],
            },
            None => IndexPlan::Keep,
        });
    }
    let index = user_id_index_name(table);
    validate_identifier(&index)?;
    if column.is_some()
        && let Some(same) = indexes.iter().find(|i| i.is_unique_on(USER_ID_COLUMN))
    {
        // Made by hand, by Laravel's `->unique()`, by either adapter.
        tracing::debug!(
            table,
            index = same.name,
            "{}: {USER_ID_COLUMN} already has a unique index",
            Step::UserIdIndex.name()
        );
        return Ok(IndexPlan::Keep);
    }
    if let Some(other) = indexes.iter().find(|i| i.name.eq_ignore_ascii_case(&index)) {
        return Err(schema_error(format!(
            "migrate: table `{table}` already has an index named `{}`, but it is not a unique index on \
             `{USER_ID_COLUMN}` alone; nothing was changed. Drop or rename that index, then run \
             migrate() again",
            other.name
        )));
    }
    if column.is_none() && !column_added {
        return Err(schema_error(format!(
            "migrate: column `{table}.{USER_ID_COLUMN}` does not exist: the step {} runs first",
            Step::TokenColumns.name()
        )));
    }
    let statements = sql::create_user_id_index(
        dialect,
        table,
        &index,
        column.map(|c| c.sql_type.as_str()),
        marked.then_some(marker),
    );
    Ok(IndexPlan::Create {
        taken: sql::index_name_taken(dialect, table, &index),
        duplicates: column.map(|_| sql::duplicates(table)),
        index,
        statements,
    })
}

/// Refuses to create the unique index `index` when `taken` (the counts of
/// [`IndexPlan::Create::taken`]) says another object of the schema has its
/// name, or rows share ids (`held`: the rows of
/// [`IndexPlan::Create::duplicates`], how many rows hold each).
pub fn check_room_for_index(
    t: &UsersTable,
    index: &str,
    taken: &[i64],
    held: &[i64],
) -> Result<(), StoreError> {
    if taken.iter().any(|n| *n > 0) {
        return Err(index_name_taken(t.table(), index));
    }
    if held.is_empty() {
        return Ok(());
    }
    Err(duplicate_links(
        t,
        Some((held.len(), held.iter().sum())),
        None,
    ))
}

/// Another object of the table's schema has the index's name.
pub fn index_name_taken(table: &str, index: &str) -> StoreError {
    schema_error(format!(
        "migrate: the unique index for `{table}.{USER_ID_COLUMN}` would be named `{index}`, but another \
         table or index of that schema already has that name; nothing was changed. Rename it, \
         or create a unique index on `{USER_ID_COLUMN}` yourself (any name), then run migrate() again"
    ))
}

/// The unique index cannot be made: rows share ids. `counted`: the ids
/// shared and the rows holding them, from [`sql::duplicates`]; `None` when
/// the database refused the index because rows written since the check
/// share one. Names no id, and no token: the query that finds them instead.
pub fn duplicate_links(
    t: &UsersTable,
    counted: Option<(usize, i64)>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
) -> StoreError {
    let (what, consequence) = match counted {
        Some((1, rows)) => (
            format!("1 Mattermost user id is held by {rows} rows"),
            "nothing was changed",
        ),
        Some((ids, rows)) => (
            format!(
                "{ids} Mattermost user ids are each held by more than one row ({rows} rows in all)"
            ),
            "nothing was changed",
        ),
        None => (
            "rows written while it ran share a Mattermost user id".to_owned(),
            "the index was not created",
        ),
    };
    let (table, expiry, index) = (t.table(), t.expiry_column(), t.user_id_index_name());
    let (id, token, token_id) = (USER_ID_COLUMN, TOKEN_COLUMN, TOKEN_ID_COLUMN);
    StoreError::Schema {
        message: format!(
            "migrate: cannot create the unique index `{index}` on `{table}.{id}`: {what}; \
             {consequence}. A Mattermost account must be linked to one user only, or each of its users \
             can act as the other. Find them with `SELECT {id}, COUNT(*) FROM {table} WHERE \
             {id} IS NOT NULL GROUP BY {id} HAVING COUNT(*) > 1`, keep each id on the one \
             user it belongs to, set {id}, {token} and {token_id} (and {expiry}, where it \
             exists) to NULL on the others (and revoke their tokens in Mattermost), then run \
             migrate() again"
        ),
        source,
    }
}
