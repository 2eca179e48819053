//! `POST /logout?scope=global|local|others` (GoTrue `internal/api/logout.go`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use crate::auth::extract::AuthUser;
use crate::db;
use crate::db::models::{audit_log, session};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct LogoutQuery {
    pub scope: Option<String>,
}

pub async fn logout(
    state: web::Data<AppState>,
    auth: AuthUser,
    query: web::Query<LogoutQuery>,
) -> ApiResult<HttpResponse> {
    let scope = query.into_inner().scope.unwrap_or_default();
    if !["", "global", "local", "others"].contains(&scope.as_str()) {
        return Err(ApiError::validation(format!(
            "Unsupported logout scope {scope:?}"
        )));
    }
    let user_id = auth.user.id;
    let name = auth
        .user
        .email
        .clone()
        .or(auth.user.phone.clone())
        .unwrap_or_default();
    let audit = !state.config.security.audit_log_disable_postgres;
    db::transaction(&state.pool, move |conn| {
        // Deleting a session cascades to its refresh tokens; without a session id, always global.
        match (scope.as_str(), auth.session_id) {
            ("local", Some(sid)) => session::delete(conn, sid)?,
            ("others", Some(sid)) => session::delete_for_user(conn, user_id, Some(sid))?,
            _ => session::delete_for_user(conn, user_id, None)?,
        };
        if audit {
            audit_log::insert(
                conn,
                audit_log::payload(user_id, &name, "logout", None),
                None,
            )?;
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::NoContent().finish())
}
