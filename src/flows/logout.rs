//! Ending sessions (GoTrue `internal/api/logout.go`).

use std::sync::Arc;

use super::authenticate::AuthenticatedUser;
use super::session::audit_entry;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::models::{audit_log, session};
use crate::state::AppState;

/// Which sessions a logout ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every session of the user (the default).
    Global,
    /// The token's own session.
    Local,
    /// Every session but the token's own.
    Others,
}

impl Scope {
    /// GoTrue's `scope` values; empty is global.
    pub fn parse(raw: &str) -> ApiResult<Scope> {
        match raw {
            "" | "global" => Ok(Scope::Global),
            "local" => Ok(Scope::Local),
            "others" => Ok(Scope::Others),
            other => Err(ApiError::validation(format!(
                "Unsupported logout scope {other:?}"
            ))),
        }
    }
}

/// Ends the sessions `scope` names. A logout must win over refreshes of the same sessions
/// running at the same time: were PostgreSQL to abort it to break a deadlock, it runs again.
pub async fn logout(state: &Arc<AppState>, auth: AuthenticatedUser, scope: Scope) -> ApiResult<()> {
    let tx_state = state.clone();
    db::transaction_retrying(&state.pool, move |conn| {
        let user_id = auth.user.id;
        // Deleting a session cascades to its refresh tokens; without a session id, always global.
        match (scope, auth.session_id) {
            (Scope::Local, Some(sid)) => session::delete(conn, sid)?,
            (Scope::Others, Some(sid)) => session::delete_for_user(conn, user_id, Some(sid))?,
            _ => session::delete_for_user(conn, user_id, None)?,
        };
        if let Some(entry) = audit_entry(&tx_state, &auth.user, "logout") {
            audit_log::insert(conn, &entry, None)?;
        }
        Ok(())
    })
    .await
}
