//! MFA factors (GoTrue `internal/api/mfa.go` and the factor routes of `admin.go`):
//! `POST /factors`, `POST /factors/{id}/challenge`, `POST /factors/{id}/verify`,
//! `DELETE /factors/{id}`, and `GET`, `PUT`, `DELETE /admin/users/{id}/factors...`.

use actix_web::{web, HttpResponse};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::admin::parse_user_id;
use super::extract::{AdminAuth, AuthUser, Client};
use super::render::token_response;
use crate::error::{no_store, redact_deserialize_message, ApiError, ApiResult, ErrorCode};
use crate::flows::mfa::{self, parse_factor_id, AdminFactorUpdate, EnrollParams, VerifyParams};
use crate::rate_limit::Limit;
use crate::state::AppState;

/// The body of `POST /factors/{id}/challenge` (TOTP takes no parameters; WebAuthn's are not
/// served yet).
#[derive(serde::Deserialize, Default)]
struct ChallengeParams {
    channel: Option<String>,
}

fn json_ok(body: impl serde::Serialize) -> HttpResponse {
    HttpResponse::Ok().insert_header(no_store()).json(body)
}

/// An optional JSON body (supabase-js sends one to challenge; curl may send none).
fn optional_body<T: DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::BadJson,
            format!(
                "Could not parse request body as JSON: {}",
                redact_deserialize_message(&e.to_string())
            ),
        )
    })
}

pub async fn enroll(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    params: web::Json<EnrollParams>,
) -> ApiResult<HttpResponse> {
    let enrolled = mfa::enroll(&state, auth, params.into_inner(), client).await?;
    Ok(json_ok(enrolled))
}

pub async fn challenge(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let factor_id = parse_factor_id(&path)?;
    state.limit(Limit::MfaChallengeAndVerify, &client).await?;
    let params: ChallengeParams = optional_body(&body)?;
    let challenged = mfa::challenge(&state, auth, factor_id, params.channel, client).await?;
    Ok(json_ok(challenged))
}

pub async fn verify(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let factor_id = parse_factor_id(&path)?;
    state.limit(Limit::MfaChallengeAndVerify, &client).await?;
    let params: VerifyParams = optional_body(&body)?;
    let session = mfa::verify(&state, auth, factor_id, params, client).await?;
    Ok(token_response(&session, None))
}

pub async fn unenroll(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
    Client(client): Client,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let factor_id = parse_factor_id(&path)?;
    let id = mfa::unenroll(&state, auth, factor_id, client).await?;
    Ok(json_ok(json!({ "id": id })))
}

pub async fn admin_list(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let factors = mfa::admin_list(&state, parse_user_id(&path)?).await?;
    Ok(json_ok(factors))
}

pub async fn admin_update(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    Client(client): Client,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let user_id = parse_user_id(&path.0)?;
    let factor_id = parse_factor_id(&path.1)?;
    let params: AdminFactorUpdate = optional_body(&body)?;
    let factor = mfa::admin_update(&state, user_id, factor_id, params, client).await?;
    Ok(json_ok(factor))
}

pub async fn admin_delete(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    Client(client): Client,
    path: web::Path<(String, String)>,
) -> ApiResult<HttpResponse> {
    let user_id = parse_user_id(&path.0)?;
    let factor_id = parse_factor_id(&path.1)?;
    let factor = mfa::admin_delete(&state, user_id, factor_id, client).await?;
    Ok(json_ok(factor))
}
