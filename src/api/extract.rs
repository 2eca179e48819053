//! Extractors that authenticate the caller: the HTTP half of GoTrue's `requireAuthentication`
//! and `requireAdminCredentials` (the checks themselves are [`crate::flows::authenticate`]).
//! Handlers name what they need in their signature.

use actix_web::dev::Payload;
use actix_web::http::header::{AUTHORIZATION, USER_AGENT};
use actix_web::{web, FromRequest, HttpRequest};
use futures_util::future::{ready, LocalBoxFuture, Ready};

use crate::auth::jwt::IncomingClaims;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::authenticate::{self, AuthenticatedUser};
use crate::flows::ClientInfo;
use crate::state::AppState;

/// A signed-in user whose token, user row and session all check out.
pub struct AuthUser(pub AuthenticatedUser);

impl std::ops::Deref for AuthUser {
    type Target = AuthenticatedUser;
    fn deref(&self) -> &AuthenticatedUser {
        &self.0
    }
}

/// A caller whose token carries one of `GOTRUE_JWT_ADMIN_ROLES` (the service-role key).
pub struct AdminAuth {
    pub claims: IncomingClaims,
}

/// Any token signed with the project's keys: the anon key, a user's token or the service-role
/// key. Nothing beyond the signature and time claims is checked.
pub struct SignedToken {
    pub claims: IncomingClaims,
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
    // One pass over the raw bytes: visible ASCII without spaces is what `to_str` and the
    // pattern's `\S+` allow together.
    let value = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or_else(missing)?
        .as_bytes();
    let (scheme, token) = value.split_at_checked(7).ok_or_else(missing)?;
    if !scheme.eq_ignore_ascii_case(b"bearer ")
        || token.is_empty()
        || !token.iter().all(u8::is_ascii_graphic)
    {
        return Err(missing());
    }
    let token = std::str::from_utf8(token).map_err(|_| missing())?;
    Ok(token.to_string())
}

impl FromRequest for AuthUser {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let prepared = state(req).and_then(|s| Ok((s, bearer_token(req)?)));
        Box::pin(async move {
            let (state, token) = prepared?;
            Ok(AuthUser(authenticate::user(&state, &token).await?))
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
            Ok(AdminAuth {
                claims: authenticate::admin(&state, &token).await?,
            })
        })
    }
}

impl FromRequest for SignedToken {
    type Error = ApiError;
    type Future = Ready<ApiResult<Self>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let verified = state(req).and_then(|s| authenticate::signed(&s, &bearer_token(req)?));
        ready(verified.map(|claims| SignedToken { claims }))
    }
}

/// The caller's user agent, address and rate-limit key.
pub struct Client(pub ClientInfo);

impl FromRequest for Client {
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
        ready(Ok(Client(ClientInfo {
            user_agent,
            ip,
            rate_key,
        })))
    }
}
