//! The active-user limit, as `app/limits.go` enforces it: at the cap, new
//! users (`POST /users`) and reactivations are refused; deactivating always
//! works and frees a place; bots do not count. `GET /limits/server`
//! reports it (camelCase; 0 means no limit).

use serde::Serialize;

use super::Data;
use crate::error::AppError;

/// `GET /limits/server`'s answer.
#[derive(Clone, Copy, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerLimits {
    pub max_users_limit: u64,
    pub max_users_hard_limit: u64,
    pub active_user_count: u64,
}

impl Data {
    /// Active users that count against the limit (bots do not).
    pub fn active_user_count(&self) -> u64 {
        self.users
            .values()
            .filter(|u| u.is_active() && !u.is_bot)
            .count() as u64
    }

    pub fn server_limits(&self) -> ServerLimits {
        let limit = u64::from(self.user_limit.unwrap_or(0));
        ServerLimits {
            max_users_limit: limit,
            max_users_hard_limit: limit,
            active_user_count: self.active_user_count(),
        }
    }

    fn at_user_limit(&self) -> bool {
        self.user_limit
            .is_some_and(|l| self.active_user_count() >= u64::from(l))
    }

    /// `createUserOrGuest`: the limit is checked before anything else.
    pub fn check_room_for_new_user(&self) -> Result<(), AppError> {
        if self.at_user_limit() {
            return Err(AppError::new(
                400,
                "api.user.create_user.user_limits.exceeded",
                "This server has reached its limit of active users.",
            ));
        }
        Ok(())
    }

    /// `UpdateActive` with `active: true` on a deactivated user.
    pub fn check_room_for_reactivation(&self) -> Result<(), AppError> {
        if self.at_user_limit() {
            return Err(AppError::new(
                400,
                "app.user.update_active.user_limit.exceeded",
                "This server has reached its limit of active users.",
            ));
        }
        Ok(())
    }
}
