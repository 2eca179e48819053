//! `auth.refresh_tokens` (GoTrue `internal/models/refresh_token.go`, v1 opaque tokens).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use super::audit_log::{self, AuditEntry};
use crate::db::schema::{refresh_tokens, sessions};

#[derive(Queryable, Selectable, Clone)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshToken {
    pub id: i64,
    pub token: Option<String>,
    pub user_id: Option<String>,
    pub revoked: Option<bool>,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
    pub parent: Option<String>,
    pub session_id: Option<Uuid>,
}

/// Loads a token and locks its row, so concurrent refreshes of one token are serialised.
pub fn find_for_update(conn: &mut PgConnection, token: &str) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .filter(refresh_tokens::token.eq(token))
        .select(RefreshToken::as_select())
        .for_update()
        .first(conn)
        .optional()
}

/// Loads a token with its session's `not_after`, locking both rows (one round trip), so
/// concurrent refreshes of one token or session are serialised. Tokens without a live session
/// are not returned.
///
/// The session row is locked before the token row (PostgreSQL locks a join's rows in the order
/// of its `FROM` list), the order in which a logout or a user deletion takes them (the session,
/// then its tokens by cascade): taken the other way round, a refresh racing a logout deadlocked.
pub fn find_with_session_for_update(
    conn: &mut PgConnection,
    token: &str,
) -> QueryResult<Option<(RefreshToken, Option<DateTime<Utc>>)>> {
    sessions::table
        .inner_join(
            refresh_tokens::table.on(refresh_tokens::session_id.eq(sessions::id.nullable())),
        )
        .filter(refresh_tokens::token.eq(token))
        .select((RefreshToken::as_select(), sessions::not_after))
        .for_update()
        .first(conn)
        .optional()
}

/// The session's newest unrevoked token.
pub fn active_for_session(
    conn: &mut PgConnection,
    session_id: Uuid,
) -> QueryResult<Option<RefreshToken>> {
    refresh_tokens::table
        .filter(refresh_tokens::session_id.eq(session_id))
        .filter(refresh_tokens::revoked.eq(false))
        .order(refresh_tokens::id.desc())
        .select(RefreshToken::as_select())
        .first(conn)
        .optional()
}

/// Records that the live token `id` was handed out again to the holder of a revoked ancestor
/// (the reuse interval): its `updated_at` moves to `now`. A live token's `updated_at` is
/// otherwise its `created_at`, so the two differ exactly when the token was reissued.
pub fn mark_reissued(conn: &mut PgConnection, id: i64, now: DateTime<Utc>) -> QueryResult<()> {
    diesel::update(refresh_tokens::table.find(id))
        .set(refresh_tokens::updated_at.eq(now))
        .execute(conn)?;
    Ok(())
}

/// Revokes `old`, issues `new_token` as its child in the same session, marks the session
/// refreshed and (with `audit`) writes the audit entry: one statement.
pub fn rotate(
    conn: &mut PgConnection,
    old: &RefreshToken,
    new_token: &str,
    now: DateTime<Utc>,
    audit: Option<&AuditEntry<'_>>,
) -> QueryResult<()> {
    let audit_cte = match audit {
        Some(_) => format!(", l AS ({})", audit_log::insert_sql("$7", "$2", "NULL")),
        None => String::new(),
    };
    crate::db::prepared(format!(
        "WITH r AS (
           UPDATE auth.refresh_tokens SET revoked = true, updated_at = $2 WHERE id = $1
         ), s AS (
           UPDATE auth.sessions SET refreshed_at = ($2 AT TIME ZONE 'UTC'), updated_at = $2 WHERE id = $5
         ){audit_cte}
         INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
         VALUES ('00000000-0000-0000-0000-000000000000', $3, $4, false, $2, $2, $6, $5)"
    ))
    .bind::<BigInt, _>(old.id)
    .bind::<Timestamptz, _>(now)
    .bind::<Text, _>(new_token.to_string())
    .bind::<Text, _>(old.user_id.clone().unwrap_or_default())
    .bind::<SqlUuid, _>(old.session_id.unwrap_or_default())
    .bind::<Text, _>(old.token.clone().unwrap_or_default())
    .bind::<diesel::sql_types::Nullable<Text>, _>(audit.map(|a| a.payload().to_string()))
    .execute(conn)?;
    Ok(())
}

/// Removes a token that belongs to no session (legacy rows GoTrue may have left behind).
pub fn delete(conn: &mut PgConnection, id: i64) -> QueryResult<usize> {
    diesel::delete(refresh_tokens::table.find(id)).execute(conn)
}

/// A refresh done by [`rotate_live`].
pub struct Rotated {
    pub session_id: Uuid,
    /// The session's `aal` (`None` where GoTrue left it NULL).
    pub aal: Option<String>,
    /// Its amr claims, newest first, as `(method, unix time)`.
    pub amr: Vec<(String, i64)>,
    pub record: super::user::UserRecord,
}

/// The common refresh in one statement: `token` is live (not revoked, never handed out again
/// through the reuse interval), its session unexpired and its user not banned. Locks the
/// session and the token (in that order, see [`find_with_session_for_update`]), revokes the
/// token, issues `next` as its child, marks the session refreshed, writes the audit entry
/// when `audit_action` is set, and returns what the response needs. `None`, with nothing
/// written, for every other case, which [`crate::flows::session::refresh`] handles: a
/// concurrent refresh of the same token waits for the lock and then finds it revoked.
pub fn rotate_live(
    conn: &mut PgConnection,
    token: &str,
    next: &str,
    now: DateTime<Utc>,
    audit_action: Option<&str>,
    deadline: Option<DateTime<Utc>>,
) -> QueryResult<Option<Rotated>> {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(embed)]
        record: super::user::RecordRow,
        #[diesel(sql_type = SqlUuid)]
        session_id: Uuid,
        #[diesel(sql_type = diesel::sql_types::Nullable<Text>)]
        aal: Option<String>,
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        amr_json: serde_json::Value,
    }
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
        "WITH t AS (
           SELECT rt.id, rt.token, rt.user_id AS token_user_id, rt.session_id, s.user_id, s.aal
           FROM auth.sessions s JOIN auth.refresh_tokens rt ON rt.session_id = s.id
           WHERE rt.token = $1 AND coalesce(rt.revoked, false) = false
             AND coalesce(rt.updated_at <= rt.created_at, true)
             AND (s.not_after IS NULL OR s.not_after > $2)
           FOR UPDATE
         ), ok AS (
           SELECT t.* FROM t JOIN auth.users b ON b.id = t.user_id
           WHERE (b.banned_until IS NULL OR b.banned_until <= $2)
             -- every write below follows from this row: a late statement aborts here
             AND weauth.in_time($6::timestamptz)
         ), r AS (
           UPDATE auth.refresh_tokens SET revoked = true, updated_at = $2 WHERE id = (SELECT id FROM ok)
         ), s2 AS (
           UPDATE auth.sessions SET refreshed_at = ($2 AT TIME ZONE 'UTC'), updated_at = $2
           WHERE id = (SELECT session_id FROM ok)
         ), n AS (
           INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, parent, session_id)
           SELECT '00000000-0000-0000-0000-000000000000', $3, token_user_id, false, $2, $2, token, session_id FROM ok
         ), l AS (
           INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
           SELECT '00000000-0000-0000-0000-000000000000', gen_random_uuid(), {}, $2, ''
           FROM ok JOIN auth.users u ON u.id = ok.user_id WHERE $4::text IS NOT NULL
         )
         SELECT {}, ok.session_id, ok.aal::text AS aal,
           (SELECT coalesce(jsonb_agg(jsonb_build_array(a.authentication_method,
                      floor(extract(epoch FROM a.updated_at))::bigint) ORDER BY a.updated_at DESC), '[]')
            FROM auth.mfa_amr_claims a WHERE a.session_id = ok.session_id
              AND a.authentication_method IS NOT NULL AND a.updated_at IS NOT NULL) AS amr_json
         FROM ok JOIN auth.users u ON u.id = ok.user_id",
        audit_log::payload_sql("u", "$4", "$5"),
        super::user::record_columns(super::user::IDENTITIES),
    )
    });
    struct RotateLive;
    let row: Option<Row> = crate::db::prepared(SQL.as_str())
        .bind::<Text, _>(token.to_string())
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(next.to_string())
        .bind::<diesel::sql_types::Nullable<Text>, _>(audit_action.map(str::to_string))
        .bind::<diesel::sql_types::Nullable<Text>, _>(
            audit_action.map(|a| audit_log::log_type(a).to_string()),
        )
        .bind::<diesel::sql_types::Nullable<Timestamptz>, _>(deadline)
        .same_text_as::<RotateLive>()
        .get_result(conn)
        .optional()?;
    row.map(|r| {
        let amr = serde_json::from_value(r.amr_json)
            .map_err(|e| diesel::result::Error::DeserializationError(e.into()))?;
        Ok(Rotated {
            session_id: r.session_id,
            aal: r.aal,
            amr,
            record: r.record.into_record()?,
        })
    })
    .transpose()
}
