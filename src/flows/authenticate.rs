//! Who the bearer of a token is (GoTrue `requireAuthentication`, `requireAdminCredentials`,
//! `internal/api/auth.go`). The API's extractors call these.

use std::sync::Arc;

use uuid::Uuid;

use crate::auth::jwt::IncomingClaims;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::identity::Identity;
use crate::models::mfa::Factor;
use crate::models::user::{self, User};
use crate::models::{session, wechat};
use crate::state::AppState;

/// A signed-in user whose token, user row and session all check out.
pub struct AuthenticatedUser {
    pub user: User,
    /// The user's identities, loaded in the same database call (GET /user answers with them;
    /// a second trip to the blocking pool cost more than the query itself).
    pub identities: Vec<Identity>,
    /// The user's MFA factors, from the same query (`GET /user` lists them).
    pub factors: Vec<Factor>,
    /// `None` for tokens without a session (GoTrue then treats logout as global).
    pub session_id: Option<Uuid>,
    pub claims: IncomingClaims,
}

/// A user's token: verified, its user existing and not banned, its session (if it names one)
/// still alive; all in one query.
pub async fn user(state: &Arc<AppState>, token: &str) -> ApiResult<AuthenticatedUser> {
    let claims = state.tokens.verify(token)?;
    let sub = claims
        .sub
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            ApiError::forbidden(ErrorCode::BadJwt, "invalid claim: missing sub claim")
        })?;
    let user_id = Uuid::parse_str(sub).map_err(|_| {
        ApiError::bad_request(ErrorCode::BadJwt, "invalid claim: sub claim must be a UUID")
    })?;
    let session_id = session_claim(&claims)?;
    let found = db::run(&state.pool, move |conn| {
        match user::find_for_token(conn, user_id, session_id)? {
            // A WeChat account merged into another (`flows::phone_merge`): its token, until it
            // expires, is served as the account its session now belongs to.
            None if session_id.is_some() => match wechat::merged_into(conn, user_id)? {
                Some(into) => Ok(user::find_for_token(conn, into, session_id)?),
                None => Ok(None),
            },
            found => Ok(found),
        }
    })
    .await?;
    let (record, session_found) = found.ok_or_else(|| {
        ApiError::forbidden(
            ErrorCode::UserNotFound,
            "User from sub claim in JWT does not exist",
        )
    })?;
    if session_id.is_some() && session_found.is_none() {
        return Err(ApiError::forbidden(
            ErrorCode::SessionNotFound,
            "Session from session_id claim in JWT does not exist",
        ));
    }
    let user::UserRecord {
        user,
        identities,
        factors,
    } = record;
    if user.is_banned(chrono::Utc::now()) {
        return Err(ApiError::forbidden(ErrorCode::UserBanned, "User is banned"));
    }
    Ok(AuthenticatedUser {
        user,
        identities,
        factors,
        session_id,
        claims,
    })
}

/// A token carrying one of `GOTRUE_JWT_ADMIN_ROLES` (the service-role key). An admin token
/// minted for a session must still have that session.
pub async fn admin(state: &Arc<AppState>, token: &str) -> ApiResult<IncomingClaims> {
    let claims = state.tokens.verify(token)?;
    let role = claims.role.as_deref().unwrap_or("");
    if !state.config.jwt.admin_roles.iter().any(|r| r == role) {
        return Err(ApiError::forbidden(ErrorCode::NotAdmin, "User not allowed"));
    }
    if let Some(session_id) = session_claim(&claims)? {
        let exists = db::run(&state.pool, move |conn| {
            Ok(session::exists(conn, session_id)?)
        })
        .await?;
        if !exists {
            return Err(ApiError::forbidden(
                ErrorCode::SessionExpired,
                "Session is no longer valid",
            ));
        }
    }
    Ok(claims)
}

/// Any token signed with the project's keys (the anon key, a user's token or the service-role
/// key); nothing beyond the signature and time claims is checked.
pub fn signed(state: &AppState, token: &str) -> ApiResult<IncomingClaims> {
    state.tokens.verify(token)
}

/// `session_id` claim: absent, empty or nil means no session; anything else must be a UUID.
fn session_claim(claims: &IncomingClaims) -> ApiResult<Option<Uuid>> {
    match claims.session_id.as_deref() {
        None | Some("") => Ok(None),
        Some(raw) => match Uuid::parse_str(raw) {
            Ok(id) if id.is_nil() => Ok(None),
            Ok(id) => Ok(Some(id)),
            Err(_) => Err(ApiError::forbidden(
                ErrorCode::BadJwt,
                "invalid claim: session_id claim must be a UUID",
            )),
        },
    }
}
