//! `GET /user` and `PUT /user` (GoTrue `internal/api/user.go`).

use actix_web::{web, HttpResponse};

use super::email::Referrer;
use super::extract::{AuthUser, Client};
use super::render::user_response;
use crate::error::{no_store, ApiResult};
use crate::flows::account::{self, UserUpdate};
use crate::rate_limit::Limit;
use crate::state::AppState;

pub async fn user_get(auth: AuthUser) -> ApiResult<HttpResponse> {
    Ok(HttpResponse::Ok().insert_header(no_store()).json(
        auth.user
            .to_json(Some(&auth.identities))
            .with_factors(&auth.factors),
    ))
}

pub async fn user_update(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    Referrer(redirect_to): Referrer,
    params: web::Json<UserUpdate>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Otp, &client).await?;
    let mut params = params.into_inner();
    params.redirect_to = redirect_to;
    let (user, identities) = account::update_user(&state, auth, params).await?;
    Ok(user_response(&user, &identities))
}
