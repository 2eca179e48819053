//! `POST /token?grant_type=...` (GoTrue `internal/api/token.go`, `token_refresh.go`).

use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::extract::Client;
use super::render::token_response;
use crate::error::{ApiError, ErrorCode};
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
    pub auth_code: Option<String>,
    pub code_verifier: Option<String>,
}

/// As in GoTrue, the grant is checked first: an unsupported (or missing) grant is 400
/// `invalid_credentials` "unsupported_grant_type" whatever the body, and spends no rate limit.
/// The body is read only for the grants weauth serves, with the usual JSON rules.
pub async fn token(
    state: web::Data<AppState>,
    Client(client): Client,
    query: web::Query<TokenQuery>,
    req: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, actix_web::Error> {
    let grant = query.grant_type.as_deref();
    if !matches!(grant, Some("password" | "refresh_token" | "pkce")) {
        return Err(unsupported_grant().into());
    }
    state.limit(Limit::Token, &client).await?;
    // The JSON error handler (api::json_config) already turned failures into ApiErrors.
    let params = web::Json::<TokenParams>::from_request(&req, &mut payload.into_inner())
        .await?
        .into_inner();
    match grant {
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
        Some("pkce") => {
            let session = crate::flows::oauth::pkce_grant(
                &state,
                params.auth_code,
                params.code_verifier,
                client,
            )
            .await?;
            Ok(token_response(&session, None))
        }
        _ => Err(unsupported_grant().into()),
    }
}

/// GoTrue's answer for a grant it does not know (`internal/api/token.go`). weauth gives the same
/// answer for GoTrue's `id_token` and `web3` grants, which it does not implement.
fn unsupported_grant() -> ApiError {
    ApiError::bad_request(ErrorCode::InvalidCredentials, "unsupported_grant_type")
}
