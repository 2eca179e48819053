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
