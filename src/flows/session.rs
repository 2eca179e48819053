//! Sessions (GoTrue `internal/tokens/service.go`): every successful sign-in creates a session
//! with its first refresh token and a signed access token; every refresh rotates the refresh
//! token and signs a new access token. What comes back is a value; the API layer renders it.

use std::sync::Arc;

use chrono::Duration;
use diesel::PgConnection;
use uuid::Uuid;

use super::ClientInfo;
use crate::auth::jwt::{AccessToken, Amr};
use crate::auth::new_refresh_token;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::audit_log::{self, AuditEntry};
use crate::models::identity::Identity;
use crate::models::mfa::Factor;
use crate::models::session;
use crate::models::sign_in::{self, NewSession, Opened};
use crate::models::user::{self, User, UserRecord};
use crate::models::{db_now, refresh_token};
use crate::state::AppState;

/// How the user proved who they are: GoTrue's `amr` method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Password,
    /// WeChat (and, later, any external identity provider).
    OAuth,
    /// An anonymous sign-in (`POST /signup` with neither e-mail nor phone).
    Anonymous,
    /// A one-time code sent by SMS or e-mail, or an e-mail link (`POST`/`GET /verify`).
    Otp,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Password => "password",
            AuthMethod::OAuth => "oauth",
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Otp => "otp",
        }
    }
}

/// GoTrue's authenticator assurance levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Aal {
    Aal1,
    Aal2,
}

impl Aal {
    pub fn as_str(self) -> &'static str {
        match self {
            Aal::Aal1 => "aal1",
            Aal::Aal2 => "aal2",
        }
    }
}

/// A sign-in to turn into a session: the method and the level it reaches.
#[derive(Clone, Copy, Debug)]
pub struct SignIn {
    pub method: AuthMethod,
    pub aal: Aal,
    /// The audit action: `login`, or `user_signedup` for a sign-up.
    pub action: &'static str,
}

impl SignIn {
    /// A first-factor sign-in (`aal1`).
    pub fn first_factor(method: AuthMethod, action: &'static str) -> SignIn {
        SignIn {
            method,
            aal: Aal::Aal1,
            action,
        }
    }
}

/// A signed-in session: the user, the new tokens and what the access token says.
pub struct Session {
    pub user: User,
    pub identities: Vec<Identity>,
    /// The user's MFA factors (GoTrue's token responses list them: supabase-js reads
    /// `session.user.factors` for `getAuthenticatorAssuranceLevel`).
    pub factors: Vec<Factor>,
    pub session_id: Uuid,
    pub refresh_token: String,
    pub access: AccessToken,
}

/// Creates a session for `user` (inside the caller's transaction or on its own: it is one
/// statement, which also returns the user's identities and factors) and signs its access token.
pub fn issue(
    conn: &mut PgConnection,
    state: &AppState,
    user: User,
    sign_in: SignIn,
    client: &ClientInfo,
) -> ApiResult<Session> {
    // `None`: deleted (or soft-deleted) by a concurrent request since the caller found the user.
    open(conn, state, user.id, sign_in, client, db::Deadline(None))?
        .ok_or_else(super::account::user_not_found)
}

/// [`issue`] for the user `user_id` as one statement committed on its own before `deadline`
/// (`db::fast_path`); `None`, with nothing written, when the user is gone.
pub fn open(
    conn: &mut PgConnection,
    state: &AppState,
    user_id: Uuid,
    sign_in: SignIn,
    client: &ClientInfo,
    deadline: db::Deadline,
) -> ApiResult<Option<Session>> {
    let refresh_token = new_refresh_token();
    let new = new_session(state, sign_in, &refresh_token, client).guarded(deadline);
    match sign_in::for_user(conn, user_id, &new)? {
        Some(opened) => Ok(Some(finish(conn, state, opened, sign_in, refresh_token)?)),
        None => Ok(None),
    }
}

/// What [`sign_in`]'s statements need to open a session for this sign-in.
pub fn new_session<'a>(
    state: &AppState,
    sign_in: SignIn,
    refresh_token: &'a str,
    client: &'a ClientInfo,
) -> NewSession<'a> {
    NewSession {
        aal: sign_in.aal.as_str(),
        method: sign_in.method.as_str(),
        refresh_token,
        user_agent: client.user_agent.as_deref(),
        ip: client.ip.clone(),
        now: db_now(),
        audit_action: (!state.config.security.audit_log_disable_postgres).then_some(sign_in.action),
        deadline: None,
    }
}

/// Signs the access token of a session one of [`sign_in`]'s statements opened.
pub fn finish(
    conn: &mut PgConnection,
    state: &AppState,
    opened: Opened,
    sign_in: SignIn,
    refresh_token: String,
) -> ApiResult<Session> {
    let Opened {
        session_id,
        at,
        record,
    } = opened;
    let UserRecord {
        user,
        identities,
        factors,
    } = record;
    let amr = vec![Amr {
        method: sign_in.method.as_str().to_string(),
        timestamp: at.timestamp(),
    }];
    let access = sign_access_token(
        conn,
        state,
        &user,
        session_id,
        sign_in.aal.as_str(),
        amr,
        sign_in.method.as_str(),
    )?;
    Ok(Session {
        user,
        identities,
        factors,
        session_id,
        refresh_token,
        access,
    })
}

/// Signs the session's access token: GoTrue's claims, passed through the custom access-token
/// hook when one is enabled (GoTrue `internal/tokens/service.go` `generateAccessToken`). A
/// `pg-functions` hook runs on this transaction; an HTTP hook is called from this blocking
/// thread. Claims the hook returns are checked before anything is signed.
pub fn sign_access_token(
    conn: &mut PgConnection,
    state: &AppState,
    user: &User,
    session_id: Uuid,
    aal: &str,
    amr: Vec<Amr>,
    method: &str,
) -> ApiResult<AccessToken> {
    let now = chrono::Utc::now().timestamp();
    let lifetime = token_lifetime(state, user);
    let Some(hook) = &state.access_token_hook else {
        return state.tokens.mint(user, session_id, aal, amr, now, lifetime);
    };
    let mut claims = state.tokens.claims_for(user, session_id, aal, amr, now);
    claims.exp = now + lifetime;
    let input = serde_json::json!({
        "user_id": user.id,
        "claims": claims,
        "authentication_method": method,
    });
    let output = if hook.is_pg_function() {
        hook.call_sql(conn, &input)?
    } else {
        let rt = tokio::runtime::Handle::try_current().map_err(ApiError::internal)?;
        rt.block_on(hook.call_http(&input))?
    };
    let claims = super::access_token_hook::checked_claims(output)?;
    state.tokens.sign_claims(&claims, now)
}

/// `GOTRUE_JWT_EXP`, or less for a WeChat account that may still be merged into another
/// (`flows::phone_merge`), so that a token naming it is soon refreshed into the other's.
fn token_lifetime(state: &AppState, user: &User) -> i64 {
    let normal = state.tokens.lifetime();
    match super::phone_merge::provisional_lifetime(state, user, chrono::Utc::now()) {
        Some(short) => short.min(normal),
        None => normal,
    }
}

/// What a refresh did. A replayed token outside the reuse interval revokes its session; that
/// must be committed, so it is an outcome here and becomes an error after the transaction.
pub enum RefreshOutcome {
    Issued(Box<Session>),
    Reused,
}

/// `POST /token?grant_type=refresh_token`: checks the token's shape, then [`refresh`] in one
/// transaction.
pub async fn refresh_grant(state: &Arc<AppState>, token: String) -> ApiResult<Session> {
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
    let (fast_state, slow_state) = (state.clone(), state.clone());
    let slow_token = token.clone();
    let outcome = db::fast_path(
        &state.pool,
        state.fast_commit(),
        move |conn, deadline| refresh_live(conn, &fast_state, &token, deadline),
        move |conn| refresh(conn, &slow_state, &slow_token),
    )
    .await?;
    match outcome {
        RefreshOutcome::Issued(session) => Ok(*session),
        RefreshOutcome::Reused => Err(ApiError::bad_request(
            ErrorCode::RefreshTokenAlreadyUsed,
            "Invalid Refresh Token: Already Used",
        )),
    }
}

/// The common refresh, one statement ([`refresh_token::rotate_live`]); `None` for every case
/// [`refresh`] handles (replays, reissued tokens, expired sessions, banned or unknown users).
fn refresh_live(
    conn: &mut PgConnection,
    state: &AppState,
    token: &str,
    deadline: db::Deadline,
) -> ApiResult<Option<RefreshOutcome>> {
    let next = new_refresh_token();
    let audit = (!state.config.security.audit_log_disable_postgres).then_some("token_refreshed");
    let Some(rotated) =
        refresh_token::rotate_live(conn, token, &next, db_now(), audit, deadline.0)?
    else {
        return Ok(None);
    };
    let UserRecord {
        user,
        identities,
        factors,
    } = rotated.record;
    let aal = rotated
        .aal
        .unwrap_or_else(|| Aal::Aal1.as_str().to_string());
    let amr = rotated
        .amr
        .into_iter()
        .map(|(method, timestamp)| Amr { method, timestamp })
        .collect();
    let access = sign_access_token(
        conn,
        state,
        &user,
        rotated.session_id,
        &aal,
        amr,
        "token_refresh",
    )?;
    Ok(Some(RefreshOutcome::Issued(Box::new(Session {
        user,
        identities,
        factors,
        session_id: rotated.session_id,
        refresh_token: next,
        access,
    }))))
}

/// GoTrue's refresh-token grant for v1 tokens, run inside a transaction by the caller.
pub fn refresh(
    conn: &mut PgConnection,
    state: &AppState,
    token: &str,
) -> ApiResult<RefreshOutcome> {
    let security = &state.config.security;
    let not_found = || {
        ApiError::bad_request(
            ErrorCode::RefreshTokenNotFound,
            "Invalid Refresh Token: Refresh Token Not Found",
        )
    };
    let now = db_now();
    let Some((current, not_after)) = refresh_token::find_with_session_for_update(conn, token)?
    else {
        // Not found with a session: either unknown, or a legacy row GoTrue left without one.
        return match refresh_token::find_for_update(conn, token)? {
            Some(orphan) if orphan.session_id.is_none() => {
                refresh_token::delete(conn, orphan.id)?;
                Err(ApiError::bad_request(
                    ErrorCode::SessionNotFound,
                    "Invalid Refresh Token: No Valid Session Found",
                ))
            }
            _ => Err(not_found()),
        };
    };
    let session_id = current.session_id.ok_or_else(not_found)?;
    if not_after.is_some_and(|t| t <= now) {
        return Err(ApiError::bad_request(
            ErrorCode::SessionExpired,
            "Invalid Refresh Token: Session Expired",
        ));
    }
    let user_id = current
        .user_id
        .as_deref()
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(not_found)?;
    let UserRecord {
        user,
        identities,
        factors,
    } = user::find_record(conn, user_id)?.ok_or_else(not_found)?;
    if user.is_banned(now) {
        return Err(ApiError::bad_request(
            ErrorCode::UserBanned,
            "User is banned",
        ));
    }

    let issued = if current.revoked.unwrap_or(false) {
        // A replay. Inside the reuse interval (a client that lost the response, or two tabs
        // refreshing at once) it gets the session's current token back; after it, the token
        // is treated as stolen and the whole session is revoked.
        let revoked_at = current.updated_at.unwrap_or(now);
        let within = now <= revoked_at + Duration::seconds(security.refresh_token_reuse_interval);
        match refresh_token::active_for_session(conn, session_id)? {
            Some(active) if within => {
                // The live token is now in two hands; see the reissued case below.
                refresh_token::mark_reissued(conn, active.id, now)?;
                active.token.unwrap_or_default()
            }
            _ => {
                if security.refresh_token_rotation_enabled {
                    session::delete(conn, session_id)?;
                    if let Some(entry) = audit_entry(state, &user, "token_revoked") {
                        audit_log::insert(conn, &entry, None)?;
                    }
                }
                return Ok(RefreshOutcome::Reused);
            }
        }
    } else if reissued_within(&current, now, security.refresh_token_reuse_interval) {
        // This live token was just handed to a client presenting its revoked parent (a request
        // racing this one, or a retry). Rotating it now would leave that client with a token
        // rotated away, later taken for a replay: inside the reuse interval it is answered
        // with itself, so every success returns the session's live token.
        current.token.clone().unwrap_or_default()
    } else {
        let next = new_refresh_token();
        let audit = audit_entry(state, &user, "token_refreshed");
        refresh_token::rotate(conn, &current, &next, now, audit.as_ref())?;
        next
    };
    let (aal, amr) = session::assurance(conn, session_id)?;
    let aal = aal.unwrap_or_else(|| Aal::Aal1.as_str().to_string());
    let amr = amr
        .into_iter()
        .map(|(method, timestamp)| Amr { method, timestamp })
        .collect();
    let access = sign_access_token(conn, state, &user, session_id, &aal, amr, "token_refresh")?;
    Ok(RefreshOutcome::Issued(Box::new(Session {
        user,
        identities,
        factors,
        session_id,
        refresh_token: issued,
        access,
    })))
}

/// True when the live token `current` was reissued (handed out again through the reuse
/// interval) less than `interval` seconds ago.
fn reissued_within(
    current: &refresh_token::RefreshToken,
    now: chrono::DateTime<chrono::Utc>,
    interval: i64,
) -> bool {
    match (current.created_at, current.updated_at) {
        (Some(created), Some(updated)) => {
            updated > created && now <= updated + Duration::seconds(interval)
        }
        _ => false,
    }
}

/// GoTrue's audit entry for `user` doing `action`, unless the audit log is off.
pub fn audit_entry<'a>(
    state: &AppState,
    user: &'a User,
    action: &'a str,
) -> Option<AuditEntry<'a>> {
    if state.config.security.audit_log_disable_postgres {
        return None;
    }
    Some(AuditEntry {
        actor_id: user.id,
        actor_username: user
            .email
            .as_deref()
            .or(user.phone.as_deref())
            .unwrap_or(""),
        action,
        traits: None,
    })
}
