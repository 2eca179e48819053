//! Extractors that authenticate the caller (GoTrue `requireAuthentication`,
//! `requireAdminCredentials`). Handlers name what they need in their signature.

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, USER_AGENT};
use actix_web::{web, FromRequest, HttpRequest};
use diesel::prelude::*;
use futures_util::future::{ready, LocalBoxFuture, Ready};
use uuid::Uuid;

use super::jwt::IncomingClaims;
use crate::db;
use crate::db::models::identity::Identity;
use crate::db::models::user::{self, User};
use crate::db::schema::{identities, sessions, users};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// A signed-in user whose token, user row and session all check out.
pub struct AuthUser {
    pub user: User,
    /// The user's identities, loaded in the same database call (GET /user answers with them;
    /// a second trip to the blocking pool cost more than the query itself).
    pub identities: Vec<Identity>,
    /// `None` for tokens without a session (GoTrue then treats logout as global).
    pub session_id: Option<Uuid>,
    pub claims: IncomingClaims,
}

/// A caller whose token carries one of `GOTRUE_JWT_ADMIN_ROLES` (the service-role key).
pub struct AdminAuth {
    pub claims: IncomingClaims,
}

/// Any token signed with the project's secret: the anon key, a user's token or the service-role
/// key. Nothing beyond the signature and time claims is checked.
pub struct SignedToken {
    pub claims: IncomingClaims,
}

/// The caller's user agent and address, recorded on sessions and audit entries.
#[derive(Clone, Default)]
pub struct ClientInfo {
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Who rate limits count against: the first value of `GOTRUE_RATE_LIMIT_HEADER`, else the
    /// peer address.
    pub rate_key: String,
}

fn state(req: &HttpRequest) -> ApiResult<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("application state missing"))
}

/// `Authorization: Bearer <token>`, matched like GoTrue's `(?i)^bearer (\S+$)`.
fn bearer_token(req: &HttpRequest) -> ApiResult<String> {
    let missing = || {
        ApiError::unauthorized(
            ErrorCode::NoAuthorization,
            "This endpoint requires a valid Bearer token",
        )
    };
    let value = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(missing)?;
    let (scheme, token) = value.split_at_checked(7).ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case("bearer ")
        || token.is_empty()
        || token.contains(char::is_whitespace)
    {
        return Err(missing());
    }
    Ok(token.to_string())
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

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let prepared = state(req).and_then(|s| Ok((s, bearer_token(req)?)));
        Box::pin(async move {
            let (state, token) = prepared?;
            let claims = state.jwt.verify(&token)?;
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
            // One round trip: the user row, whether the session still exists, and the
            // user's identities (one row each, the user repeated).
            let rows = db::run(&state.pool, move |conn| {
                Ok(users::table
                    .find(user_id)
                    .left_join(
                        sessions::table.on(sessions::id
                            .eq(session_id.unwrap_or_default())
                            .and(sessions::user_id.eq(users::id))),
                    )
                    .left_join(identities::table.on(identities::user_id.eq(users::id)))
                    .order(identities::created_at.asc())
                    .select((
                        User::as_select(),
                        sessions::id.nullable(),
                        Option::<Identity>::as_select(),
                    ))
                    .load::<(User, Option<Uuid>, Option<Identity>)>(conn)?)
            })
            .await?;
            let (user, session_found, identities) =
                user::fold_identities(rows).ok_or_else(|| {
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
            if user.is_banned(chrono::Utc::now()) {
                return Err(ApiError::forbidden(ErrorCode::UserBanned, "User is banned"));
            }
            Ok(AuthUser {
                user,
                identities,
                session_id,
                claims,
            })
        })
    }
}

impl FromRequest for AdminAuth {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let prepared = state(req).and_then(|s| Ok((s, bearer_token(req)?)));
        Box::pin(async move {
            let (state, token) = prepared?;
            let claims = state.jwt.verify(&token)?;
            let role = claims.role.as_deref().unwrap_or("");
            if !state.config.jwt.admin_roles.iter().any(|r| r == role) {
                return Err(ApiError::forbidden(ErrorCode::NotAdmin, "User not allowed"));
            }
            // An admin token minted for a session must still have that session.
            if let Some(session_id) = session_claim(&claims)? {
                let exists = db::run(&state.pool, move |conn| {
                    Ok(
                        diesel::select(diesel::dsl::exists(sessions::table.find(session_id)))
                            .get_result::<bool>(conn)?,
                    )
                })
                .await?;
                if !exists {
                    return Err(ApiError::forbidden(
                        ErrorCode::SessionExpired,
                        "Session is no longer valid",
                    ));
                }
            }
            Ok(AdminAuth { claims })
        })
    }
}

impl FromRequest for SignedToken {
    type Error = ApiError;
    type Future = Ready<ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = state(req).and_then(|s| s.jwt.verify(&bearer_token(req)?));
        ready(verified.map(|claims| SignedToken { claims }))
    }
}

impl FromRequest for ClientInfo {
    type Error = ApiError;
    type Future = Ready<ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let user_agent = req
            .headers()
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        let ip = req.peer_addr().map(|addr| addr.ip().to_string());
        let from_header = state(req).ok().and_then(|s| {
            let name = s.config.rate_limits.header.as_deref()?;
            let value = req.headers().get(name)?.to_str().ok()?;
            value
                .split(',')
                .next()
                .map(|v| v.trim().chars().take(64).collect::<String>())
                .filter(|v| !v.is_empty())
        });
        let rate_key = from_header
            .or_else(|| ip.clone())
            .unwrap_or_else(|| "unknown".into());
        ready(Ok(ClientInfo {
            user_agent,
            ip,
            rate_key,
        }))
    }
}
