//! PostgreSQL: [`PgTokenStore`].

use mattermost_tokens::store::schema::Dialect;
use sqlx::Postgres;
use sqlx::error::DatabaseError;
use sqlx::postgres::PgQueryResult;

use crate::backend::ErrorClass;

/// A [`TokenStore`](mattermost_tokens::TokenStore) in a PostgreSQL users
/// table, over the host's [`PgPool`](sqlx::PgPool).
///
/// Integer keys may be `BIGINT`, `INTEGER` or `SMALLINT`; text keys `TEXT`,
/// `VARCHAR` or `CHAR`; a native `uuid` key needs
/// [`KeyType::Uuid`](crate::KeyType::Uuid). The migration runs in one
/// transaction under an advisory lock.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mattermost_tokens_sqlx::{KeyType, PgTokenStore, sqlx::PgPool};
///
/// let pool = PgPool::connect("postgres://app@localhost/app").await?;
/// let store = PgTokenStore::new(pool)
///     .with_table_name("accounts")?
///     .with_key_column("uuid")?
///     .with_key_type(KeyType::Uuid);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
pub type PgTokenStore = crate::SqlxTokenStore<Postgres>;

/// A [`CodeStore`](mattermost_tokens::magic_link::CodeStore) for magic-link
/// codes in a PostgreSQL table, over the host's [`PgPool`](sqlx::PgPool); see
/// [`SqlxCodeStore`](crate::SqlxCodeStore).
///
/// Consuming a code is one `DELETE ... RETURNING` statement.
pub type PgCodeStore = crate::SqlxCodeStore<Postgres>;

crate::backend::backend!(Postgres, PgQueryResult, Dialect::Postgres, {
    fn classify(error: &dyn DatabaseError) -> ErrorClass {
        let code = error.code().unwrap_or_default();
        match &*code {
            // Connection exceptions, authentication failures, shutdown,
            // too many connections.
            c if c.starts_with("08") || c.starts_with("28") => ErrorClass::Unavailable,
            "57P01" | "57P02" | "57P03" | "53300" => ErrorClass::Unavailable,
            // read_only_sql_transaction (also what a hot standby answers).
            "25006" => ErrorClass::ReadOnly,
            // undefined table / column / schema / function or operator.
            "42P01" | "42703" | "3F000" | "42883" => ErrorClass::Schema,
            _ => ErrorClass::Other,
        }
    }

    fn unique_violation(error: &dyn DatabaseError) -> Option<String> {
        // unique_violation; the constraint is the index's name.
        (error.code().as_deref() == Some("23505"))
            .then(|| error.constraint().unwrap_or_default().to_owned())
    }
});
