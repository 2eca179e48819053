//! `auth.sessions` and `auth.mfa_amr_claims` (GoTrue `internal/models/sessions.go`, `amr.go`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::audit_log::{self, AuditEntry};
use crate::db::schema::sessions;

/// What a new session needs; written with [`create`].
pub struct NewSession<'a> {
    pub user_id: Uuid,
    /// GoTrue's `aal_level` (`aal1`, `aal2`).
    pub aal: &'a str,
    /// The amr method of the sign-in (`password`, `otp`, `oauth`, ...).
    pub method: &'a str,
    pub refresh_token: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<String>,
    pub now: DateTime<Utc>,
    /// Also record this audit entry in the same statement.
    pub audit: Option<AuditEntry<'a>>,
}

/// Creates a session with its amr claim and first refresh token, bumps the user's
/// `last_sign_in_at` and (optionally) writes the audit entry: one statement, one round trip,
/// all or nothing. Returns the session id, or `None` (and writes nothing) when the user is
/// gone or soft-deleted by now: the session is inserted only for the row the `UPDATE` of
/// `last_sign_in_at` found, and that `UPDATE` waits for a concurrent delete to finish.
pub fn create(conn: &mut PgConnection, new: &NewSession<'_>) -> QueryResult<Option<Uuid>> {
    let session_id = Uuid::new_v4();
    let audit_cte = match new.audit {
        Some(_) => format!(", l AS ({})", audit_log::insert_sql("$8", "$3", "$5")),
        None => String::new(),
    };
    let sql = format!(
        "WITH u AS (
           UPDATE auth.users SET last_sign_in_at = $3, updated_at = $3
           WHERE id = $2 AND deleted_at IS NULL RETURNING id
         ), s AS (
           INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)
           SELECT $1, u.id, $3, $3, $9::auth.aal_level, $4, $5::inet FROM u RETURNING id
         ), a AS (
           INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
           SELECT gen_random_uuid(), id, $3, $3, $6 FROM s
         ){audit_cte}
         INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
         SELECT '00000000-0000-0000-0000-000000000000', $7, $2::text, false, $3, $3, id FROM s"
    );
    let audit_payload = new.audit.as_ref().map(|a| a.payload().to_string());
    let created = crate::db::prepared(sql)
        .bind::<SqlUuid, _>(session_id)
        .bind::<SqlUuid, _>(new.user_id)
        .bind::<Timestamptz, _>(new.now)
        .bind::<Nullable<Text>, _>(new.user_agent.map(str::to_string))
        .bind::<Nullable<Text>, _>(new.ip.clone())
        .bind::<Text, _>(new.method.to_string())
        .bind::<Text, _>(new.refresh_token.to_string())
        .bind::<Nullable<Text>, _>(audit_payload)
        .bind::<Text, _>(new.aal.to_string())
        .execute(conn)?;
    Ok((created == 1).then_some(session_id))
}

/// Moves every session of `from`, with its refresh tokens, to `into` (a merge): the sessions
/// keep their ids and refresh tokens, so the client's next refresh yields `into`'s tokens.
pub fn reassign(conn: &mut PgConnection, from: Uuid, into: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "WITH s AS (UPDATE auth.sessions SET user_id = $2, updated_at = now() WHERE user_id = $1)
         UPDATE auth.refresh_tokens SET user_id = $2::text WHERE user_id = $1::text",
    )
    .bind::<diesel::sql_types::Uuid, _>(from)
    .bind::<diesel::sql_types::Uuid, _>(into)
    .execute(conn)?;
    Ok(())
}

/// When the session was created (`None`: no such session).
pub fn created_at(
    conn: &mut PgConnection,
    session_id: Uuid,
) -> QueryResult<Option<chrono::DateTime<chrono::Utc>>> {
    sessions::table
        .find(session_id)
        .select(sessions::created_at)
        .first::<Option<chrono::DateTime<chrono::Utc>>>(conn)
        .optional()
        .map(Option::flatten)
}

/// True when the session still exists.
pub fn exists(conn: &mut PgConnection, session_id: Uuid) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(sessions::table.find(session_id))).get_result(conn)
}

/// A session's aal and its amr claims as `(method, unix timestamp)`.
pub type Assurance = (Option<String>, Vec<(String, i64)>);

/// The session's assurance level (`None` where GoTrue left it NULL) and its amr claims, newest
/// first, as `(method, unix timestamp)`: one round trip.
pub fn assurance(conn: &mut PgConnection, session_id: Uuid) -> QueryResult<Assurance> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = Nullable<Text>)]
        aal: Option<String>,
        #[diesel(sql_type = Nullable<Text>)]
        method: Option<String>,
        #[diesel(sql_type = Nullable<Timestamptz>)]
        at: Option<DateTime<Utc>>,
    }
    let rows: Vec<Row> = crate::db::prepared(
        "SELECT s.aal::text AS aal, a.authentication_method AS method, a.updated_at AS at
         FROM auth.sessions s LEFT JOIN auth.mfa_amr_claims a ON a.session_id = s.id
         WHERE s.id = $1 ORDER BY a.updated_at DESC",
    )
    .bind::<SqlUuid, _>(session_id)
    .load(conn)?;
    let aal = rows.first().and_then(|r| r.aal.clone());
    let amr = rows
        .into_iter()
        .filter_map(|r| Some((r.method?, r.at?.timestamp())))
        .collect();
    Ok((aal, amr))
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

/// An MFA verification on the session (GoTrue `AddClaimToSession`,
/// `UpdateAALAndAssociatedFactor`): upserts the amr claim `method` and sets the session to
/// `aal2` with the factor that got it there. One statement.
pub fn upgrade_to_aal2(
    conn: &mut PgConnection,
    session_id: Uuid,
    method: &str,
    factor_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::prepared(
        "WITH a AS (
           INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
           VALUES (gen_random_uuid(), $1, $3, $3, $2)
           ON CONFLICT ON CONSTRAINT mfa_amr_claims_session_id_authentication_method_pkey
           DO UPDATE SET updated_at = $3
         )
         UPDATE auth.sessions SET aal = 'aal2', factor_id = $4, updated_at = $3 WHERE id = $1",
    )
    .bind::<SqlUuid, _>(session_id)
    .bind::<Text, _>(method.to_string())
    .bind::<Timestamptz, _>(now)
    .bind::<SqlUuid, _>(factor_id)
    .execute(conn)?;
    Ok(())
}

/// GoTrue's `InvalidateSessionsWithAALLessThan(aal2)`: the user's `aal1` sessions end once a
/// factor is verified.
pub fn delete_below_aal2(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    crate::db::prepared("DELETE FROM auth.sessions WHERE user_id = $1 AND aal < 'aal2'")
        .bind::<SqlUuid, _>(user_id)
        .execute(conn)
}

/// GoTrue's `DowngradeSessionsToAAL1` for a removed factor: the sessions it raised lose its
/// amr claim `method` and go back to `aal1`.
pub fn downgrade_for_factor(
    conn: &mut PgConnection,
    user_id: Uuid,
    factor_id: Uuid,
    method: &str,
) -> QueryResult<()> {
    crate::db::prepared(
        "WITH d AS (
           DELETE FROM auth.mfa_amr_claims WHERE authentication_method = $3 AND session_id IN
             (SELECT id FROM auth.sessions WHERE user_id = $1 AND factor_id = $2)
         )
         UPDATE auth.sessions SET aal = 'aal1', factor_id = NULL WHERE user_id = $1 AND factor_id = $2",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<SqlUuid, _>(factor_id)
    .bind::<Text, _>(method.to_string())
    .execute(conn)?;
    Ok(())
}
