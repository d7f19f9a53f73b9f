//! Learning from a 401 on a user's own token: when the server says the
//! stored token is dead, the store forgets it, so the selector stops using
//! it and the next sync or reconcile mints a new one.

use crate::client::MattermostClient;
use crate::error::Error;
use crate::ids::{AccessToken, HostUserId};
use crate::store::TokenStore;

/// After `token` (the user's stored token) was answered 401: asks the
/// server with the admin token whether that token is dead (gone, disabled
/// or expired) and, if so, clears it from the store, only while it is still
/// the stored one. Returns whether it was cleared. A token that exists and
/// is enabled is left alone: the 401 then has another cause (tokens
/// disabled on the server, the user deactivated) that a new token would not
/// cure. A token stored without its id cannot be asked about and stays.
pub(crate) async fn forget_if_dead(
    client: &MattermostClient,
    store: &dyn TokenStore,
    user: &HostUserId,
    token: &AccessToken,
) -> Result<bool, Error> {
    let Some(record) = store.get(user).await? else {
        return Ok(false);
    };
    let same = record
        .token
        .as_ref()
        .is_some_and(|t| t.expose_secret() == token.expose_secret());
    let (true, Some(id)) = (same, record.token_id.clone()) else {
        return Ok(false);
    };
    let now = crate::time::unix_now_ms();
    let dead = match client.as_admin().token(&id).await {
        Ok(t) => !t.is_active || t.expires_at.is_some_and(|at| at <= now),
        Err(e) if e.is_not_found() => true,
        Err(e) => return Err(e),
    };
    if !dead {
        return Ok(false);
    }
    // Cleared only if a sync has not replaced it meanwhile.
    let still = store.get(user).await?.and_then(|r| r.token_id);
    if still.as_ref() != Some(&id) {
        return Ok(false);
    }
    store.clear_token(user).await?;
    tracing::warn!(
        host_user = %user, token_id = %id,
        "the user's stored token was refused and is dead on the server; cleared it (the next sync or reconcile mints a new one)"
    );
    Ok(true)
}
