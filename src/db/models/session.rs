//! `auth.sessions` and `auth.mfa_amr_claims` (GoTrue `internal/models/sessions.go`, `amr.go`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::db::schema::{mfa_amr_claims, sessions};

/// What a new session needs; written with [`create`].
pub struct NewSession<'a> {
    pub user_id: Uuid,
    pub method: &'a str,
    pub refresh_token: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<String>,
    pub now: DateTime<Utc>,
    /// Also record GoTrue's `login` audit entry in the same statement.
    pub audit: Option<AuditEntry<'a>>,
}

pub struct AuditEntry<'a> {
    pub action: &'a str,
    pub payload: serde_json::Value,
}

/// Creates a session with its amr claim and first refresh token, bumps the user's
/// `last_sign_in_at` and (optionally) writes the audit entry: one statement, one round trip,
/// all or nothing. Returns the session id.
pub fn create(conn: &mut PgConnection, new: &NewSession<'_>) -> QueryResult<Uuid> {
    let session_id = Uuid::new_v4();
    let audit_cte = if new.audit.is_some() {
        ", l AS (INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
                 VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), $8::json, $3, coalesce($5, '')))"
    } else {
        ""
    };
    let sql = format!(
        "WITH s AS (
           INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)
           VALUES ($1, $2, $3, $3, 'aal1', $4, $5::inet) RETURNING id
         ), a AS (
           INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
           SELECT gen_random_uuid(), id, $3, $3, $6 FROM s
         ), u AS (
           UPDATE auth.users SET last_sign_in_at = $3, updated_at = $3 WHERE id = $2
         ){audit_cte}
         INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
         SELECT '00000000-0000-0000-0000-000000000000', $7, $2::text, false, $3, $3, id FROM s"
    );
    let audit_payload = new.audit.as_ref().map(|a| a.payload.to_string());
    crate::db::prepared(sql)
        .bind::<SqlUuid, _>(session_id)
        .bind::<SqlUuid, _>(new.user_id)
        .bind::<Timestamptz, _>(new.now)
        .bind::<Nullable<Text>, _>(new.user_agent.map(str::to_string))
        .bind::<Nullable<Text>, _>(new.ip.clone())
        .bind::<Text, _>(new.method.to_string())
        .bind::<Text, _>(new.refresh_token.to_string())
        .bind::<Nullable<Text>, _>(audit_payload)
        .execute(conn)?;
    Ok(session_id)
}

/// True when the session exists and belongs to the user.
pub fn exists(conn: &mut PgConnection, session_id: Uuid, user_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        sessions::table
            .filter(sessions::id.eq(session_id))
            .filter(sessions::user_id.eq(user_id)),
    ))
    .get_result(conn)
}

/// The session's amr claims, newest first, as `(method, unix timestamp)`.
pub fn amr(conn: &mut PgConnection, session_id: Uuid) -> QueryResult<Vec<(String, i64)>> {
    let rows: Vec<(String, DateTime<Utc>)> = mfa_amr_claims::table
        .filter(mfa_amr_claims::session_id.eq(session_id))
        .order(mfa_amr_claims::updated_at.desc())
        .select((
            mfa_amr_claims::authentication_method,
            mfa_amr_claims::updated_at,
        ))
        .load(conn)?;
    Ok(rows.into_iter().map(|(m, t)| (m, t.timestamp())).collect())
}

/// Deletes sessions (cascading to their refresh tokens and amr claims). `keep` spares one.
pub fn delete_for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    keep: Option<Uuid>,
) -> QueryResult<usize> {
    let mut q = diesel::delete(sessions::table)
        .filter(sessions::user_id.eq(user_id))
        .into_boxed();
    if let Some(keep) = keep {
        q = q.filter(sessions::id.ne(keep));
    }
    q.execute(conn)
}

pub fn delete(conn: &mut PgConnection, session_id: Uuid) -> QueryResult<usize> {
    diesel::delete(sessions::table.find(session_id)).execute(conn)
}
