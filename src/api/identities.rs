//! `GET /user/identities/authorize` (`linkIdentity`) and `DELETE /user/identities/{identity_id}`
//! (`unlinkIdentity`), GoTrue `identity.go`.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::json;

use super::extract::{AuthUser, Client};
use super::oauth::{redirect, AuthorizeQuery};
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::flows::oauth;
use crate::state::AppState;

/// GoTrue's `requireManualLinkingEnabled`, on both identity routes.
fn manual_linking(state: &AppState) -> ApiResult<()> {
    if state.config.external.manual_linking_enabled {
        Ok(())
    } else {
        Err(ApiError::not_found(
            ErrorCode::ManualLinkingDisabled,
            "Manual linking is disabled",
        ))
    }
}

pub async fn link(
    state: web::Data<AppState>,
    req: HttpRequest,
    AuthUser(auth): AuthUser,
    query: web::Query<AuthorizeQuery>,
) -> ApiResult<HttpResponse> {
    manual_linking(&state)?;
    let query = query.into_inner();
    let skip = query.skip_http_redirect.as_deref() == Some("true");
    let url = oauth::authorize(&state, query.into_request(&req, Some(auth.user.id))).await?;
    Ok(if skip {
        HttpResponse::Ok()
            .insert_header(no_store())
            .json(json!({ "url": url }))
    } else {
        redirect(&url)
    })
}

pub async fn unlink(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    manual_linking(&state)?;
    oauth::unlink(&state, auth.user.id, &path.into_inner(), client).await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(json!({})))
}
