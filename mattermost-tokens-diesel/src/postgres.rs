//! PostgreSQL: [`PgTokenStore`] on diesel-async's `AsyncPgConnection`
//! (tokio-postgres, pure Rust; no libpq).
//!
//! ```no_run
//! use mattermost_tokens::{HostUserId, TokenStore};
//! use mattermost_tokens_diesel::{KeyType, PgTokenStore};
//!
//! # async fn demo() -> Result<(), mattermost_tokens::StoreError> {
//! // A host whose users are keyed by a `uuid` column:
//! let store = PgTokenStore::from_url("postgres://app@localhost/app")?
//!     .with_key_type(KeyType::Uuid);
//! store.migrate().await?;
//! let user = HostUserId::Text("7f1c2a9e-0000-4000-8000-000000000001".into());
//! let record = store.get(&user).await?;
//! # Ok(()) }
//! ```
//!
//! Connections made by `AsyncPgConnection::establish` do not use TLS; for
//! TLS build the pool with a `ManagerConfig::custom_setup` that connects
//! through `tokio-postgres-rustls` and pass it to
//! [`DieselTokenStore::new`](crate::DieselTokenStore::new).

use diesel::pg::Pg;
use diesel_async::AsyncPgConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use mattermost_tokens::store::schema::Dialect;

crate::backend::backend!(
    Pg, AsyncPgConnection, Dialect::Postgres, "PostgreSQL", size: 10,
    store: PgTokenStore, codes: PgCodeStore, users: PgHostUsers, pool: PgPool,
    url: "`postgres://user:password@host:port/database`",
    manager: |url| AsyncDieselConnectionManager::<AsyncPgConnection>::new(url),
);
