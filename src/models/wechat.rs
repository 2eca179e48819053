//! weauth's own WeChat tables (`weauth.wechat_session_keys`, `weauth.wechat_access_tokens`).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Integer, Text};
use uuid::Uuid;

use crate::db::schema::{wechat_access_tokens, wechat_session_keys};

/// Remembers the user's latest session_key for this app (needed for legacy decryption).
pub fn save_session_key(
    conn: &mut PgConnection,
    app_id: &str,
    openid: &str,
    user_id: Uuid,
    session_key: &str,
) -> QueryResult<()> {
    diesel::insert_into(wechat_session_keys::table)
        .values((
            wechat_session_keys::app_id.eq(app_id),
            wechat_session_keys::openid.eq(openid),
            wechat_session_keys::user_id.eq(user_id),
            wechat_session_keys::session_key.eq(session_key),
            wechat_session_keys::updated_at.eq(Utc::now()),
        ))
        .on_conflict((wechat_session_keys::app_id, wechat_session_keys::openid))
        .do_update()
        .set((
            wechat_session_keys::user_id.eq(user_id),
            wechat_session_keys::session_key.eq(session_key),
            wechat_session_keys::updated_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The newest session_key of `user_id` in `app_id`.
pub fn session_key_for_user(
    conn: &mut PgConnection,
    app_id: &str,
    user_id: Uuid,
) -> QueryResult<Option<String>> {
    wechat_session_keys::table
        .filter(wechat_session_keys::app_id.eq(app_id))
        .filter(wechat_session_keys::user_id.eq(user_id))
        .order(wechat_session_keys::updated_at.desc())
        .select(wechat_session_keys::session_key)
        .first(conn)
        .optional()
}

/// A cached access token that is still good for at least `margin_secs`.
pub fn valid_access_token(
    conn: &mut PgConnection,
    app_id: &str,
    margin_secs: i64,
) -> QueryResult<Option<(String, DateTime<Utc>)>> {
    let row: Option<(Option<String>, Option<DateTime<Utc>>)> = wechat_access_tokens::table
        .find(app_id)
        .select((
            wechat_access_tokens::access_token,
            wechat_access_tokens::expires_at,
        ))
        .first(conn)
        .optional()?;
    let horizon = Utc::now() + chrono::Duration::seconds(margin_secs);
    Ok(match row {
        Some((Some(token), Some(expires_at))) if expires_at > horizon => Some((token, expires_at)),
        _ => None,
    })
}

/// Tries to become the one instance that refreshes the token: succeeds when no valid token is
/// cached and nobody else holds an unexpired lease.
pub fn try_lease(
    conn: &mut PgConnection,
    app_id: &str,
    lease_secs: i32,
    margin_secs: i32,
) -> QueryResult<bool> {
    let won = diesel::sql_query(
        "INSERT INTO weauth.wechat_access_tokens (app_id, lease_until, updated_at)
         VALUES ($1, now() + make_interval(secs => $2), now())
         ON CONFLICT (app_id) DO UPDATE SET lease_until = EXCLUDED.lease_until, updated_at = now()
         WHERE (weauth.wechat_access_tokens.lease_until IS NULL OR weauth.wechat_access_tokens.lease_until < now())
           AND (weauth.wechat_access_tokens.access_token IS NULL
                OR weauth.wechat_access_tokens.expires_at < now() + make_interval(secs => $3))",
    )
    .bind::<Text, _>(app_id)
    .bind::<Integer, _>(lease_secs)
    .bind::<Integer, _>(margin_secs)
    .execute(conn)?;
    Ok(won == 1)
}

/// Stores a fresh token and releases the lease.
pub fn store_access_token(
    conn: &mut PgConnection,
    app_id: &str,
    token: &str,
    expires_at: DateTime<Utc>,
) -> QueryResult<()> {
    diesel::update(wechat_access_tokens::table.find(app_id))
        .set((
            wechat_access_tokens::access_token.eq(token),
            wechat_access_tokens::expires_at.eq(expires_at),
            wechat_access_tokens::lease_until.eq(None::<DateTime<Utc>>),
            wechat_access_tokens::updated_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// Gives the lease back without a token (the refresh failed), so another caller can try.
pub fn release_lease(conn: &mut PgConnection, app_id: &str) -> QueryResult<()> {
    diesel::update(wechat_access_tokens::table.find(app_id))
        .set(wechat_access_tokens::lease_until.eq(None::<DateTime<Utc>>))
        .execute(conn)?;
    Ok(())
}

/// Forgets `token` if it is still the cached one (compare-and-delete: a newer token stays).
pub fn invalidate_access_token(
    conn: &mut PgConnection,
    app_id: &str,
    token: &str,
) -> QueryResult<()> {
    diesel::update(
        wechat_access_tokens::table
            .filter(wechat_access_tokens::app_id.eq(app_id))
            .filter(wechat_access_tokens::access_token.eq(token)),
    )
    .set((
        wechat_access_tokens::access_token.eq(None::<String>),
        wechat_access_tokens::expires_at.eq(None::<DateTime<Utc>>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Moves the session_keys of `from` to `into` (a merge).
pub fn reassign_session_keys(conn: &mut PgConnection, from: Uuid, into: Uuid) -> QueryResult<()> {
    diesel::update(wechat_session_keys::table.filter(wechat_session_keys::user_id.eq(from)))
        .set(wechat_session_keys::user_id.eq(into))
        .execute(conn)?;
    Ok(())
}

/// Records that `from` was merged into `into` through `app_id`.
pub fn record_merge(conn: &mut PgConnection, from: Uuid, into: Uuid, app_id: &str) -> QueryResult<()> {
    use crate::db::schema::merged_users;
    diesel::insert_into(merged_users::table)
        .values((
            merged_users::from_user_id.eq(from),
            merged_users::into_user_id.eq(into),
            merged_users::app_id.eq(app_id),
            merged_users::merged_at.eq(Utc::now()),
        ))
        .execute(conn)?;
    Ok(())
}

/// The account `from` was merged into, if it was.
pub fn merged_into(conn: &mut PgConnection, from: Uuid) -> QueryResult<Option<Uuid>> {
    use crate::db::schema::merged_users;
    merged_users::table
        .find(from)
        .select(merged_users::into_user_id)
        .first(conn)
        .optional()
}
