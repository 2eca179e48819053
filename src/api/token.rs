//! `POST /token?grant_type=...` (GoTrue `internal/api/token.go`, `token_refresh.go`).

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::json;

use super::validate;
use crate::auth::extract::ClientInfo;
use crate::auth::password;
use crate::db;
use crate::db::models::user;
use crate::db::schema::users;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::rate_limit::Limit;
use crate::state::AppState;
use crate::tokens::{self, RefreshOutcome, AMR_PASSWORD};

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
    client: ClientInfo,
    query: web::Query<TokenQuery>,
    params: web::Json<TokenParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Token, &client).await?;
    match query.grant_type.as_deref() {
        Some("password") => password_grant(state, client, params.into_inner()).await,
        Some("refresh_token") => refresh_token_grant(state, params.into_inner()).await,
        _ => Err(ApiError::bad_request(
            ErrorCode::InvalidCredentials,
            "unsupported_grant_type",
        )),
    }
}

async fn password_grant(
    state: web::Data<AppState>,
    client: ClientInfo,
    params: TokenParams,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Password, &client).await?;
    let config = state.config.clone();
    let email = params.email.filter(|e| !e.is_empty());
    let phone = params.phone.filter(|p| !p.is_empty());
    let password = params.password.unwrap_or_default();
    let by_email = match (&email, &phone) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "Only an email address or phone number should be provided on login.",
            ))
        }
        (None, None) => return Err(ApiError::validation("missing email or phone")),
        (Some(_), None) => true,
        (None, Some(_)) => false,
    };
    if by_email && !config.accounts.email_enabled {
        return Err(ApiError::unprocessable(
            ErrorCode::EmailProviderDisabled,
            "Email logins are disabled",
        ));
    }
    if !by_email && !config.accounts.phone_enabled {
        return Err(ApiError::unprocessable(
            ErrorCode::PhoneProviderDisabled,
            "Phone logins are disabled",
        ));
    }

    let aud = config.jwt.aud.clone();
    let found = db::run(&state.pool, move |conn| {
        Ok(match (email, phone) {
            (Some(email), _) => user::find_by_email(conn, &aud, &email)?,
            (_, Some(phone)) => match validate::phone(&phone) {
                Ok(phone) => user::find_by_phone(conn, &phone)?,
                Err(_) => None,
            },
            _ => None,
        })
    })
    .await?;

    // Always run one hash verification, so unknown users cost the same as wrong passwords.
    let stored = found
        .as_ref()
        .and_then(|u| u.encrypted_password.clone())
        .filter(|h| !h.is_empty());
    let hash = stored.clone().unwrap_or_else(|| state.dummy_hash.clone());
    let hash_cfg = config.password.hash.clone();
    let candidate = password.clone();
    let (matches, rehash) = state
        .hashing
        .run(move || -> ApiResult<(bool, Option<String>)> {
            let matches = password::verify(&candidate, &hash);
            let rehash = if matches && password::needs_rehash(&hash, &hash_cfg) {
                Some(password::hash(&candidate, &hash_cfg)?)
            } else {
                None
            };
            Ok((matches, rehash))
        })
        .await??;
    let user = match found {
        Some(user) if matches && stored.is_some() => user,
        _ => return Err(ApiError::invalid_credentials()),
    };
    if user.is_banned(chrono::Utc::now()) {
        return Err(ApiError::bad_request(
            ErrorCode::UserBanned,
            "User is banned",
        ));
    }
    if by_email && user.email_confirmed_at.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::EmailNotConfirmed,
            "Email not confirmed",
        ));
    }
    if !by_email && user.phone_confirmed_at.is_none() {
        return Err(ApiError::bad_request(
            ErrorCode::PhoneNotConfirmed,
            "Phone not confirmed",
        ));
    }

    let grant = db::transaction(&state.pool, move |conn| {
        // Old bcrypt (or weaker argon2) hashes are upgraded once the password is known good.
        if let Some(new_hash) = rehash {
            diesel::update(users::table.find(user.id))
                .set(users::encrypted_password.eq(new_hash))
                .execute(conn)?;
        }
        tokens::issue_session(conn, &config, user, AMR_PASSWORD, "login", &client)
    })
    .await?;
    let weak = password::check_strength(&password, state.config.password.min_length)
        .err()
        .filter(|e| !e.weak_password_reasons.is_empty())
        .map(|e| json!({"message": e.msg, "reasons": e.weak_password_reasons}));
    tokens::token_response(&state, &grant, weak)
}

async fn refresh_token_grant(
    state: web::Data<AppState>,
    params: TokenParams,
) -> ApiResult<HttpResponse> {
    let token = params.refresh_token.unwrap_or_default();
    // GoTrue's pre-validation: v1 tokens are exactly 12 lower-case alphanumerics.
    let v1_shape = token.len() == 12
        && token
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if token.len() < 12 || (token.len() == 12 && !v1_shape) {
        return Err(ApiError::validation("Refresh token is not valid"));
    }
    if token.len() > 12 {
        // GoTrue's v2 (signed) tokens are not issued by weauth.
        return Err(ApiError::bad_request(
            ErrorCode::RefreshTokenNotFound,
            "Invalid Refresh Token: Refresh Token Not Found",
        ));
    }
    let config = state.config.clone();
    let outcome = db::transaction(&state.pool, move |conn| {
        tokens::refresh(conn, &config, &token)
    })
    .await?;
    match outcome {
        RefreshOutcome::Issued(grant) => tokens::token_response(&state, &grant, None),
        RefreshOutcome::Reused => Err(ApiError::bad_request(
            ErrorCode::RefreshTokenAlreadyUsed,
            "Invalid Refresh Token: Already Used",
        )),
    }
}
