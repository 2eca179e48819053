//! `POST /logout?scope=global|local|others` (GoTrue `internal/api/logout.go`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::extract::AuthUser;
use crate::error::ApiResult;
use crate::flows::logout::{self, Scope};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct LogoutQuery {
    pub scope: Option<String>,
}

pub async fn logout(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
    query: web::Query<LogoutQuery>,
) -> ApiResult<HttpResponse> {
    let scope = Scope::parse(query.scope.as_deref().unwrap_or_default())?;
    logout::logout(&state, auth, scope).await?;
    Ok(HttpResponse::NoContent().finish())
}
