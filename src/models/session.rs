//! `auth.sessions` and `auth.mfa_amr_claims` (GoTrue `internal/models/sessions.go`, `amr.go`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::db::schema::sessions;

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
