//! Pending one-time codes, stored the way GoTrue stores them (`internal/models/one_time_token.go`,
//! `internal/api/phone.go`, `mail.go`): the code's hash in the user's `*_token` column with its
//! `*_sent_at` time, and the same hash in `auth.one_time_tokens` (one row per user and type).
//! A database handed over from GoTrue keeps its pending codes working, and the other way round.
//! weauth adds `weauth.otp_attempts`, the wrong codes entered against each pending code.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

/// GoTrue's `auth.one_time_token_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    Confirmation,
    Reauthentication,
    Recovery,
    EmailChangeNew,
    EmailChangeCurrent,
    PhoneChange,
}

impl TokenType {
    /// The enum label in `auth.one_time_token_type`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenType::Confirmation => "confirmation_token",
            TokenType::Reauthentication => "reauthentication_token",
            TokenType::Recovery => "recovery_token",
            TokenType::EmailChangeNew => "email_change_token_new",
            TokenType::EmailChangeCurrent => "email_change_token_current",
            TokenType::PhoneChange => "phone_change_token",
        }
    }

    /// The `auth.users` column holding the hash (named like the enum label).
    fn token_column(self) -> &'static str {
        self.as_str()
    }

    /// The `auth.users` column holding when it was sent (both e-mail change codes share one).
    fn sent_at_column(self) -> &'static str {
        match self {
            TokenType::Confirmation => "confirmation_sent_at",
            TokenType::Reauthentication => "reauthentication_sent_at",
            TokenType::Recovery => "recovery_sent_at",
            TokenType::EmailChangeNew | TokenType::EmailChangeCurrent => "email_change_sent_at",
            TokenType::PhoneChange => "phone_change_sent_at",
        }
    }
}

/// A user's pending code of one type.
pub struct Pending {
    /// The stored hash (`''` when none is pending, as GoTrue writes it).
    pub token_hash: String,
    pub sent_at: Option<DateTime<Utc>>,
    /// Wrong codes entered against it so far.
    pub failures: i32,
}

#[derive(QueryableByName)]
struct PendingRow {
    #[diesel(sql_type = Nullable<Text>)]
    token_hash: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    sent_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    failures: i32,
}

/// Stores `token_hash` as the user's pending code of `kind`, sent `now`, in one statement: the
/// user's columns, the `one_time_tokens` row (replacing an older one of the type) and a reset
/// wrong-code count. `None` when the user is gone.
pub fn store(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: TokenType,
    token_hash: &str,
    relates_to: &str,
    now: DateTime<Utc>,
) -> QueryResult<bool> {
    let sql = format!(
        "WITH u AS (
           UPDATE auth.users SET {token} = $2, {sent} = $3, updated_at = $3
           WHERE id = $1 RETURNING id
         ), reset AS (
           DELETE FROM weauth.otp_attempts
           WHERE user_id = $1 AND token_type = $4::auth.one_time_token_type
         )
         INSERT INTO auth.one_time_tokens
           (id, user_id, token_type, token_hash, relates_to, created_at, updated_at)
         SELECT gen_random_uuid(), u.id, $4::auth.one_time_token_type, $2, $5, $3, $3 FROM u
         ON CONFLICT (user_id, token_type) DO UPDATE
           SET token_hash = EXCLUDED.token_hash, relates_to = EXCLUDED.relates_to,
               updated_at = EXCLUDED.updated_at",
        token = kind.token_column(),
        sent = kind.sent_at_column(),
    );
    let rows = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(token_hash)
        .bind::<Timestamptz, _>(now)
        .bind::<Text, _>(kind.as_str())
        .bind::<Text, _>(relates_to)
        .execute(conn)?;
    Ok(rows == 1)
}

/// The user's pending code of `kind`, locking the user's row so that two verifications of one
/// code cannot both succeed.
pub fn pending_for_update(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: TokenType,
) -> QueryResult<Option<Pending>> {
    let sql = format!(
        "SELECT u.{token}::text AS token_hash, u.{sent} AS sent_at,
                COALESCE(a.failures, 0) AS failures
         FROM auth.users u
         LEFT JOIN weauth.otp_attempts a
           ON a.user_id = u.id AND a.token_type = $2::auth.one_time_token_type
         WHERE u.id = $1
         FOR UPDATE OF u",
        token = kind.token_column(),
        sent = kind.sent_at_column(),
    );
    let row: Option<PendingRow> = diesel::sql_query(sql)
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(kind.as_str())
        .get_result(conn)
        .optional()?;
    Ok(row.map(|r| Pending {
        token_hash: r.token_hash.unwrap_or_default(),
        sent_at: r.sent_at,
        failures: r.failures,
    }))
}

/// The user whose pending code of one of `kinds` has this hash (GoTrue's `FindUserBy*Token`),
/// as (user id, the matching type). Looks in the users' columns, which GoTrue also keeps.
pub fn find_by_hash(
    conn: &mut PgConnection,
    kinds: &[TokenType],
    token_hash: &str,
) -> QueryResult<Option<(Uuid, TokenType)>> {
    for kind in kinds {
        #[derive(QueryableByName)]
        struct Id {
            #[diesel(sql_type = SqlUuid)]
            id: Uuid,
        }
        let sql = format!(
            "SELECT id FROM auth.users WHERE {token} IN ($1, 'pkce_' || $1) LIMIT 1",
            token = kind.token_column()
        );
        let found: Option<Id> = diesel::sql_query(sql)
            .bind::<Text, _>(token_hash)
            .get_result(conn)
            .optional()?;
        if let Some(found) = found {
            return Ok(Some((found.id, *kind)));
        }
    }
    Ok(None)
}

/// Counts a wrong code against the pending code of `kind`; returns the count now.
pub fn count_failure(conn: &mut PgConnection, user_id: Uuid, kind: TokenType) -> QueryResult<i32> {
    #[derive(QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::Integer)]
        failures: i32,
    }
    let row: Count = diesel::sql_query(
        "INSERT INTO weauth.otp_attempts (user_id, token_type, failures)
         VALUES ($1, $2::auth.one_time_token_type, 1)
         ON CONFLICT (user_id, token_type)
           DO UPDATE SET failures = weauth.otp_attempts.failures + 1
         RETURNING failures",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(kind.as_str())
    .get_result(conn)?;
    Ok(row.failures)
}

/// Voids the pending code of `kind` (too many wrong codes): the column emptied, its
/// `one_time_tokens` row and its count removed.
pub fn void(conn: &mut PgConnection, user_id: Uuid, kind: TokenType) -> QueryResult<()> {
    let sql = format!(
        "WITH t AS (
           DELETE FROM auth.one_time_tokens
           WHERE user_id = $1 AND token_type = $2::auth.one_time_token_type
         ), a AS (
           DELETE FROM weauth.otp_attempts
           WHERE user_id = $1 AND token_type = $2::auth.one_time_token_type
         )
         UPDATE auth.users SET {token} = '' WHERE id = $1",
        token = kind.token_column()
    );
    diesel::sql_query(sql)
        .bind::<SqlUuid, _>(user_id)
        .bind::<Text, _>(kind.as_str())
        .execute(conn)?;
    Ok(())
}

/// Removes every pending code of the user from `one_time_tokens` and the counts (GoTrue's
/// `ClearAllOneTimeTokensForUser`, after any successful verification). The users' columns are
/// cleared by the caller's update.
pub fn clear_all(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<()> {
    diesel::sql_query(
        "WITH a AS (DELETE FROM weauth.otp_attempts WHERE user_id = $1)
         DELETE FROM auth.one_time_tokens WHERE user_id = $1",
    )
    .bind::<SqlUuid, _>(user_id)
    .execute(conn)?;
    Ok(())
}
