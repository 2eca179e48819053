//! Sessions and the token response (GoTrue `internal/tokens/service.go`): every successful
//! sign-in creates a session with its first refresh token; every refresh rotates the token.

use actix_web::HttpResponse;
use chrono::{DateTime, Duration, Utc};
use diesel::PgConnection;
use serde::Serialize;
use uuid::Uuid;

use crate::auth::extract::ClientInfo;
use crate::auth::jwt::{self, Amr};
use crate::auth::new_refresh_token;
use crate::config::Config;
use crate::db::models::identity::{self, Identity};
use crate::db::models::session::{self, AuditEntry, NewSession};
use crate::db::models::user::{self, User, UserJson};
use crate::db::models::{audit_log, refresh_token};
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::state::AppState;

/// GoTrue's amr methods weauth issues.
pub const AMR_PASSWORD: &str = "password";
/// WeChat mini-program login is an external (OAuth-like) provider sign-in.
pub const AMR_OAUTH: &str = "oauth";

/// A signed-in session, ready to be turned into a token response.
pub struct Grant {
    pub user: User,
    pub identities: Vec<Identity>,
    pub session_id: Uuid,
    pub refresh_token: String,
    pub amr: Vec<Amr>,
}

/// GoTrue's `AccessTokenResponse`, in its key order.
#[derive(Serialize)]
pub struct TokenResponse<'a> {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    pub expires_at: i64,
    pub refresh_token: &'a str,
    pub user: UserJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weak_password: Option<serde_json::Value>,
}

/// Creates a session for `user` (inside the caller's transaction or on its own: it is one
/// statement) and returns the grant. `action` names the audit entry (`login`, `user_signedup`).
pub fn issue_session(
    conn: &mut PgConnection,
    config: &Config,
    mut user: User,
    method: &str,
    action: &str,
    client: &ClientInfo,
) -> ApiResult<Grant> {
    let now = db_now();
    let refresh_token = new_refresh_token();
    let audit = (!config.security.audit_log_disable_postgres).then(|| AuditEntry {
        action,
        payload: audit_payload(&user, action),
    });
    let session_id = session::create(
        conn,
        &NewSession {
            user_id: user.id,
            method,
            refresh_token: &refresh_token,
            user_agent: client.user_agent.as_deref(),
            ip: client.ip.clone(),
            now,
            audit,
        },
    )?;
    user.last_sign_in_at = Some(now);
    user.updated_at = Some(now);
    let identities = identity::for_user(conn, user.id)?;
    Ok(Grant {
        user,
        identities,
        session_id,
        refresh_token,
        amr: vec![Amr {
            method: method.to_string(),
            timestamp: now.timestamp(),
        }],
    })
}

/// What a refresh did. A replayed token outside the reuse interval revokes its session; that
/// must be committed, so it is an outcome here and becomes an error after the transaction.
pub enum RefreshOutcome {
    Issued(Grant),
    Reused,
}

/// GoTrue's refresh-token grant for v1 tokens, run inside a transaction by the caller.
pub fn refresh(conn: &mut PgConnection, config: &Config, token: &str) -> ApiResult<RefreshOutcome> {
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
    let (user, identities) = user::find_with_identities(conn, user_id)?.ok_or_else(not_found)?;
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
        let within =
            now <= revoked_at + Duration::seconds(config.security.refresh_token_reuse_interval);
        match refresh_token::active_for_session(conn, session_id)? {
            Some(active) if within => active.token.unwrap_or_default(),
            _ => {
                if config.security.refresh_token_rotation_enabled {
                    session::delete(conn, session_id)?;
                    audit(conn, config, &user, "token_revoked")?;
                }
                return Ok(RefreshOutcome::Reused);
            }
        }
    } else {
        let next = new_refresh_token();
        let audit = (!config.security.audit_log_disable_postgres)
            .then(|| audit_payload(&user, "token_refreshed"));
        refresh_token::rotate(conn, &current, &next, now, audit.as_ref())?;
        next
    };
    let amr = session::amr(conn, session_id)?
        .into_iter()
        .map(|(method, timestamp)| Amr { method, timestamp })
        .collect();
    Ok(RefreshOutcome::Issued(Grant {
        user,
        identities,
        session_id,
        refresh_token: issued,
        amr,
    }))
}

fn audit(conn: &mut PgConnection, config: &Config, user: &User, action: &str) -> ApiResult<()> {
    if !config.security.audit_log_disable_postgres {
        audit_log::insert(conn, audit_payload(user, action), None)?;
    }
    Ok(())
}

/// GoTrue's audit payload for `user` doing `action`.
fn audit_payload(user: &User, action: &str) -> serde_json::Value {
    let name = user
        .email
        .as_deref()
        .or(user.phone.as_deref())
        .unwrap_or("");
    audit_log::payload(user.id, name, action, None)
}

/// Signs the access token and renders GoTrue's token response (never cached).
pub fn token_response(
    state: &AppState,
    grant: &Grant,
    weak_password: Option<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    let now = Utc::now().timestamp();
    let claims = jwt::claims_for(
        &state.config,
        &grant.user,
        grant.session_id,
        grant.amr.clone(),
        now,
    );
    let access_token = state.jwt.sign(&claims)?;
    let body = TokenResponse {
        access_token,
        token_type: "bearer",
        expires_in: claims.exp - now,
        expires_at: claims.exp,
        refresh_token: &grant.refresh_token,
        user: grant.user.to_json(Some(&grant.identities)),
        weak_password,
    };
    Ok(HttpResponse::Ok().insert_header(no_store()).json(body))
}

/// Renders a user (with identities) as GoTrue does, never cached.
pub fn user_response(user: &User, identities: &[Identity]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(no_store())
        .json(user.to_json(Some(identities)))
}

/// `now` rounded to what Postgres stores (microseconds), so in-memory copies match re-reads.
pub fn db_now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
