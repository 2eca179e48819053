//! The password grant (GoTrue `token.go` `ResourceOwnerPasswordGrant`): e-mail or phone plus
//! password, one message for every failure, equal timing for unknown users.

use std::sync::Arc;

use serde_json::{json, Value};

use super::session::{self, AuthMethod, Session, SignIn};
use super::{validate, ClientInfo};
use crate::auth::password;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::db_now;
use crate::models::user::{self, UserChanges};
use crate::state::AppState;

/// The credentials of a password sign-in.
pub struct Credentials {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: String,
}

/// A session, and GoTrue's `weak_password` warning when the (correct) password breaks today's
/// rules.
pub struct SignedIn {
    pub session: Session,
    pub weak_password: Option<Value>,
}

pub async fn sign_in(
    state: &Arc<AppState>,
    credentials: Credentials,
    client: ClientInfo,
) -> ApiResult<SignedIn> {
    let accounts = &state.config.accounts;
    let email = credentials.email.filter(|e| !e.is_empty());
    let phone = credentials.phone.filter(|p| !p.is_empty());
    let password = credentials.password;
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
    if by_email && !accounts.email_enabled {
        return Err(ApiError::unprocessable(
            ErrorCode::EmailProviderDisabled,
            "Email logins are disabled",
        ));
    }
    if !by_email && !accounts.phone_enabled {
        return Err(ApiError::unprocessable(
            ErrorCode::PhoneProviderDisabled,
            "Phone logins are disabled",
        ));
    }

    // The lookup's text goes to PostgreSQL, which cannot hold NUL characters.
    for (name, value) in [("email", &email), ("phone", &phone)] {
        validate::no_nul(name, value.as_deref().unwrap_or(""))?;
    }
    let aud = state.config.jwt.aud.clone();
    let default_cc = state.config.accounts.phone_default_country_code.clone();
    let found = db::run(&state.pool, move |conn| {
        Ok(match (email, phone) {
            (Some(email), _) => user::find_by_email(conn, &aud, &email)?,
            (_, Some(phone)) => match validate::phone(&phone, default_cc.as_deref()) {
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
    let hash_cfg = state.config.password.hash.clone();
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

    // The usual sign-in is one statement on its own; a hash upgrade takes a transaction.
    let upgrade = rehash.is_some();
    let commit = if upgrade {
        db::FastCommit::InTransaction
    } else {
        state.fast_commit()
    };
    let sign_in = SignIn::first_factor(AuthMethod::Password, "login");
    let (fast_state, tx_state, fast_client) = (state.clone(), state.clone(), client.clone());
    let user_id = user.id;
    let session = db::fast_path(
        &state.pool,
        commit,
        move |conn, deadline| {
            if upgrade {
                return Ok(None);
            }
            session::open(conn, &fast_state, user_id, sign_in, &fast_client, deadline)
        },
        move |conn| {
            // Old bcrypt (or weaker argon2) hashes are upgraded once the password is known good.
            let user = match rehash {
                Some(new_hash) => {
                    let changes = UserChanges {
                        encrypted_password: Some(new_hash),
                        ..Default::default()
                    };
                    user::update(conn, user.id, changes, db_now())?
                        .ok_or_else(ApiError::invalid_credentials)?
                }
                None => user,
            };
            session::issue(conn, &tx_state, user, sign_in, &client)
        },
    )
    .await
    // Deleted while signing in: the same answer as for an unknown user.
    .map_err(|e| match e.code {
        ErrorCode::UserNotFound => ApiError::invalid_credentials(),
        _ => e,
    })?;
    let weak_password = password::check_strength(&password, state.config.password.min_length)
        .err()
        .filter(|e| !e.weak_password_reasons.is_empty())
        .map(|e| json!({"message": e.msg, "reasons": e.weak_password_reasons}));
    Ok(SignedIn {
        session,
        weak_password,
    })
}
