//! `POST /token?grant_type=...` (GoTrue `internal/api/token.go`, `token_refresh.go`).

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::extract::Client;
use super::render::token_response;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::password::{self, Credentials};
use crate::flows::session;
use crate::rate_limit::Limit;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct TokenQuery {
    pub grant_type: Option<String>,
}

/// The union of the bodies of the grants weauth supports.
#[derive(Deserialize)]
pub struct TokenParams {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub refresh_token: Option<String>,
}

pub async fn token(
    state: web::Data<AppState>,
    Client(client): Client,
    query: web::Query<TokenQuery>,
    params: web::Json<TokenParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Token, &client).await?;
    let params = params.into_inner();
    match query.grant_type.as_deref() {
        Some("password") => {
            state.limit(Limit::Password, &client).await?;
            let credentials = Credentials {
                email: params.email,
                phone: params.phone,
                password: params.password.unwrap_or_default(),
            };
            let signed_in = password::sign_in(&state, credentials, client).await?;
            Ok(token_response(
                &signed_in.session,
                signed_in.weak_password.as_ref(),
            ))
        }
        Some("refresh_token") => {
            let token = params.refresh_token.unwrap_or_default();
            Ok(token_response(
                &session::refresh_grant(&state, token).await?,
                None,
            ))
        }
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidCredentials,
            "unsupported_grant_type",
        )),
    }
}
