//! `auth.mfa_factors`, `auth.mfa_challenges` (GoTrue `internal/models/factor.go`,
//! `challenge.go`) and weauth's `weauth.mfa_factor_attempts` (codes used, wrong codes). Factor
//! secrets are stored as GoTrue stores them without `GOTRUE_SECURITY_DB_ENCRYPTION_ENCRYPT`:
//! the plain base32 TOTP secret, so factors move between GoTrue and weauth.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Int4, Int8, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const TOTP: &str = "totp";
pub const PHONE: &str = "phone";
pub const WEBAUTHN: &str = "webauthn";

/// A factor, serialised as GoTrue's `models.Factor` (the secret and the WebAuthn credential
/// are never serialised).
#[derive(QueryableByName, Serialize, Deserialize, Clone, Debug)]
pub struct Factor {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[serde(skip_serializing)]
    #[diesel(sql_type = SqlUuid)]
    pub user_id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "super::timestamp::one")]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Timestamptz)]
    #[serde(serialize_with = "super::timestamp::one")]
    pub updated_at: DateTime<Utc>,
    #[diesel(sql_type = Text)]
    pub status: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    #[diesel(sql_type = Text)]
    pub friendly_name: String,
    #[diesel(sql_type = Text)]
    pub factor_type: String,
    /// Never serialised, and never part of [`FACTORS_JSON`] (so `None` in a user record).
    #[serde(skip_serializing, default)]
    #[diesel(sql_type = Nullable<Text>)]
    pub secret: Option<String>,
    /// `""` when NULL, as GoTrue's `storage.NullString`.
    #[diesel(sql_type = Text)]
    pub phone: String,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    #[serde(serialize_with = "super::timestamp::optional")]
    pub last_challenged_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub web_authn_aaguid: Option<Uuid>,
    /// go-webauthn's `Credential` JSON of a WebAuthn factor. Never serialised, and never part
    /// of [`FACTORS_JSON`].
    #[serde(skip_serializing, default)]
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub web_authn_credential: Option<serde_json::Value>,
    /// GoTrue's `LastWebAuthnChallengeData` (`{challenge, type, credential_response}`), which
    /// GoTrue lists with the factor.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub last_webauthn_challenge_data: Option<serde_json::Value>,
}

impl Factor {
    pub fn is_verified(&self) -> bool {
        self.status == "verified"
    }
}

const FACTOR_COLUMNS: &str = "id, user_id, created_at, updated_at, status::text AS status,
    coalesce(friendly_name, '') AS friendly_name, factor_type::text AS factor_type, secret,
    coalesce(phone, '') AS phone, last_challenged_at, web_authn_aaguid, web_authn_credential,
    last_webauthn_challenge_data";

/// The factors of the user row aliased `u`, oldest first, as one jsonb array of [`Factor`]s
/// without their secrets: the `factors` of a user record (`user::record_columns`).
pub const FACTORS_JSON: &str = "(SELECT coalesce(jsonb_agg(jsonb_build_object(
      'id', f.id, 'user_id', f.user_id, 'created_at', f.created_at, 'updated_at', f.updated_at,
      'status', f.status::text, 'friendly_name', coalesce(f.friendly_name, ''),
      'factor_type', f.factor_type::text, 'phone', coalesce(f.phone, ''),
      'last_challenged_at', f.last_challenged_at, 'web_authn_aaguid', f.web_authn_aaguid,
      'last_webauthn_challenge_data', f.last_webauthn_challenge_data)
    ORDER BY f.created_at), '[]') FROM auth.mfa_factors f WHERE f.user_id = u.id)";

/// The user's factors, oldest first (what `GET /user` lists).
pub fn for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<Vec<Factor>> {
    crate::db::prepared(format!(
        "SELECT {FACTOR_COLUMNS} FROM auth.mfa_factors WHERE user_id = $1 ORDER BY created_at"
    ))
    .bind::<SqlUuid, _>(user_id)
    .load(conn)
}

/// The factor if `user_id` owns it, its row locked (verifications of one factor queue).
pub fn find_owned_for_update(
    conn: &mut PgConnection,
    user_id: Uuid,
    factor_id: Uuid,
) -> QueryResult<Option<Factor>> {
    crate::db::prepared(format!(
        "SELECT {FACTOR_COLUMNS} FROM auth.mfa_factors WHERE id = $1 AND user_id = $2 FOR UPDATE"
    ))
    .bind::<SqlUuid, _>(factor_id)
    .bind::<SqlUuid, _>(user_id)
    .get_result(conn)
    .optional()
}

/// The factor if `user_id` owns it (no lock).
pub fn find_owned(
    conn: &mut PgConnection,
    user_id: Uuid,
    factor_id: Uuid,
) -> QueryResult<Option<Factor>> {
    crate::db::prepared(format!(
        "SELECT {FACTOR_COLUMNS} FROM auth.mfa_factors WHERE id = $1 AND user_id = $2"
    ))
    .bind::<SqlUuid, _>(factor_id)
    .bind::<SqlUuid, _>(user_id)
    .get_result(conn)
    .optional()
}

/// A new factor (always unverified).
pub struct NewFactor<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub friendly_name: &'a str,
    pub factor_type: &'a str,
    pub secret: Option<&'a str>,
    pub phone: Option<&'a str>,
    pub now: DateTime<Utc>,
}

pub fn insert(conn: &mut PgConnection, f: &NewFactor<'_>) -> QueryResult<()> {
    crate::db::prepared(
        "INSERT INTO auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at, secret, phone)
         VALUES ($1, $2, $3, $4::auth.factor_type, 'unverified', $5, $5, $6, $7)",
    )
    .bind::<SqlUuid, _>(f.id)
    .bind::<SqlUuid, _>(f.user_id)
    .bind::<Text, _>(f.friendly_name.to_string())
    .bind::<Text, _>(f.factor_type.to_string())
    .bind::<Timestamptz, _>(f.now)
    .bind::<Nullable<Text>, _>(f.secret.map(str::to_string))
    .bind::<Nullable<Text>, _>(f.phone.map(str::to_string))
    .execute(conn)?;
    Ok(())
}

/// GoTrue's `DeleteExpiredFactors`, for one user: unverified factors older than `expiry`
/// seconds that were never challenged.
pub fn delete_expired_unverified(
    conn: &mut PgConnection,
    user_id: Uuid,
    now: DateTime<Utc>,
    expiry_secs: f64,
) -> QueryResult<usize> {
    crate::db::prepared(
        "DELETE FROM auth.mfa_factors f WHERE f.user_id = $1 AND f.status <> 'verified'
           AND NOT EXISTS (SELECT 1 FROM auth.mfa_challenges c WHERE c.factor_id = f.id)
           AND f.created_at + make_interval(secs => $3) < $2",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Timestamptz, _>(now)
    .bind::<diesel::sql_types::Double, _>(expiry_secs)
    .execute(conn)
}

pub fn delete(conn: &mut PgConnection, factor_id: Uuid) -> QueryResult<usize> {
    crate::db::prepared("DELETE FROM auth.mfa_factors WHERE id = $1")
        .bind::<SqlUuid, _>(factor_id)
        .execute(conn)
}

/// Every factor of the user (GoTrue `DeleteFactorsByUserId`, for soft deletes).
pub fn delete_for_user(conn: &mut PgConnection, user_id: Uuid) -> QueryResult<usize> {
    crate::db::prepared("DELETE FROM auth.mfa_factors WHERE user_id = $1")
        .bind::<SqlUuid, _>(user_id)
        .execute(conn)
}

/// Marks the factor verified.
pub fn set_verified(
    conn: &mut PgConnection,
    factor_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::prepared(
        "UPDATE auth.mfa_factors SET status = 'verified', updated_at = $2 WHERE id = $1",
    )
    .bind::<SqlUuid, _>(factor_id)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(())
}

/// GoTrue's `DeleteUnverifiedFactors`: the user's other unverified factors of this type.
pub fn delete_unverified(
    conn: &mut PgConnection,
    user_id: Uuid,
    factor_type: &str,
) -> QueryResult<usize> {
    crate::db::prepared(
        "DELETE FROM auth.mfa_factors WHERE user_id = $1 AND status = 'unverified'
           AND factor_type = $2::auth.factor_type",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(factor_type.to_string())
    .execute(conn)
}

/// The admin's changes to a factor (`PUT /admin/users/{id}/factors/{factor_id}`); `None`
/// leaves a column alone. Returns the updated factor.
pub fn update(
    conn: &mut PgConnection,
    factor_id: Uuid,
    friendly_name: Option<&str>,
    phone: Option<&str>,
    now: DateTime<Utc>,
) -> QueryResult<Factor> {
    crate::db::prepared(format!(
        "UPDATE auth.mfa_factors SET friendly_name = coalesce($2, friendly_name),
           phone = coalesce($3, phone), updated_at = $4 WHERE id = $1 RETURNING {FACTOR_COLUMNS}"
    ))
    .bind::<SqlUuid, _>(factor_id)
    .bind::<Nullable<Text>, _>(friendly_name.map(str::to_string))
    .bind::<Nullable<Text>, _>(phone.map(str::to_string))
    .bind::<Timestamptz, _>(now)
    .get_result(conn)
}

/// A challenge (`auth.mfa_challenges`).
#[derive(QueryableByName, Debug)]
pub struct Challenge {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Timestamptz)]
    pub created_at: DateTime<Utc>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub verified_at: Option<DateTime<Utc>>,
    /// `host(ip_address)`: the address without its prefix length.
    #[diesel(sql_type = Text)]
    pub ip_address: String,
    #[diesel(sql_type = Nullable<Text>)]
    pub otp_code: Option<String>,
    /// go-webauthn's `SessionData` of a WebAuthn challenge.
    #[diesel(sql_type = Nullable<Jsonb>)]
    pub web_authn_session_data: Option<serde_json::Value>,
}

/// A new challenge: a phone factor's code or a WebAuthn factor's session data.
pub struct NewChallenge<'a> {
    pub id: Uuid,
    pub factor_id: Uuid,
    pub ip: &'a str,
    pub otp_code: Option<&'a str>,
    pub web_authn_session_data: Option<&'a serde_json::Value>,
    pub now: DateTime<Utc>,
}

/// Creates a challenge and stamps the factor's `last_challenged_at`, as GoTrue's
/// `WriteChallengeToDatabase`; a stamp another factor holds (the column is unique) is moved on
/// by a microsecond instead of failing (`weauth.stamp_last_challenged`).
pub fn insert_challenge(conn: &mut PgConnection, challenge: &NewChallenge<'_>) -> QueryResult<()> {
    crate::db::prepared(
        "WITH c AS (
           INSERT INTO auth.mfa_challenges (id, factor_id, created_at, ip_address, otp_code,
             web_authn_session_data)
           VALUES ($1, $2, $3, $4::inet, $5, $6)
         )
         -- last_challenged_at is UNIQUE in GoTrue's schema: the function finds a free stamp.
         SELECT weauth.stamp_last_challenged($2, $3)",
    )
    .bind::<SqlUuid, _>(challenge.id)
    .bind::<SqlUuid, _>(challenge.factor_id)
    .bind::<Timestamptz, _>(challenge.now)
    .bind::<Text, _>(challenge.ip.to_string())
    .bind::<Nullable<Text>, _>(challenge.otp_code.map(str::to_string))
    .bind::<Nullable<Jsonb>, _>(challenge.web_authn_session_data.cloned())
    .execute(conn)?;
    Ok(())
}

/// The factor's challenge `challenge_id`, locked.
pub fn find_challenge_for_update(
    conn: &mut PgConnection,
    factor_id: Uuid,
    challenge_id: Uuid,
) -> QueryResult<Option<Challenge>> {
    crate::db::prepared(
        "SELECT id, created_at, verified_at, host(ip_address) AS ip_address, otp_code,
           web_authn_session_data
         FROM auth.mfa_challenges WHERE id = $1 AND factor_id = $2 FOR UPDATE",
    )
    .bind::<SqlUuid, _>(challenge_id)
    .bind::<SqlUuid, _>(factor_id)
    .get_result(conn)
    .optional()
}

pub fn delete_challenge(conn: &mut PgConnection, challenge_id: Uuid) -> QueryResult<()> {
    crate::db::prepared("DELETE FROM auth.mfa_challenges WHERE id = $1")
        .bind::<SqlUuid, _>(challenge_id)
        .execute(conn)?;
    Ok(())
}

pub fn mark_challenge_verified(
    conn: &mut PgConnection,
    challenge_id: Uuid,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::prepared("UPDATE auth.mfa_challenges SET verified_at = $2 WHERE id = $1")
        .bind::<SqlUuid, _>(challenge_id)
        .bind::<Timestamptz, _>(now)
        .execute(conn)?;
    Ok(())
}

/// A WebAuthn factor's credential (go-webauthn JSON) and AAGUID after a verification, and
/// GoTrue's record of the last challenge.
pub fn save_webauthn(
    conn: &mut PgConnection,
    factor_id: Uuid,
    credential: &serde_json::Value,
    aaguid: Option<Uuid>,
    last_challenge: &serde_json::Value,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::prepared(
        "UPDATE auth.mfa_factors SET web_authn_credential = $2, web_authn_aaguid = $3,
           last_webauthn_challenge_data = $4, updated_at = $5
         WHERE id = $1",
    )
    .bind::<SqlUuid, _>(factor_id)
    .bind::<Jsonb, _>(credential.clone())
    .bind::<Nullable<SqlUuid>, _>(aaguid)
    .bind::<Jsonb, _>(last_challenge.clone())
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(())
}

/// Whether any WebAuthn factor holds the credential `id_base64` (go-webauthn's standard
/// base64 of the credential id), other than `except`.
pub fn webauthn_credential_taken(
    conn: &mut PgConnection,
    id_base64: &str,
    except: Uuid,
) -> QueryResult<bool> {
    #[derive(QueryableByName)]
    struct Taken {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        taken: bool,
    }
    Ok(crate::db::prepared(
        "SELECT EXISTS (SELECT 1 FROM auth.mfa_factors WHERE factor_type = 'webauthn'
           AND id <> $2 AND web_authn_credential->>'id' = $1) AS taken",
    )
    .bind::<Text, _>(id_base64.to_string())
    .bind::<SqlUuid, _>(except)
    .get_result::<Taken>(conn)?
    .taken)
}

/// What weauth remembers about a factor's verifications.
#[derive(QueryableByName, Debug, Default)]
pub struct Attempts {
    /// The last TOTP time step whose code was accepted.
    #[diesel(sql_type = Nullable<Int8>)]
    pub last_totp_step: Option<i64>,
    /// Consecutive wrong codes.
    #[diesel(sql_type = Int4)]
    pub failed_attempts: i32,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub locked_until: Option<DateTime<Utc>>,
}

/// The factor's attempts (none yet: the default). The factor row is locked by the caller.
pub fn attempts(conn: &mut PgConnection, factor_id: Uuid) -> QueryResult<Attempts> {
    Ok(crate::db::prepared(
        "SELECT last_totp_step, failed_attempts, locked_until
         FROM weauth.mfa_factor_attempts WHERE factor_id = $1",
    )
    .bind::<SqlUuid, _>(factor_id)
    .get_result(conn)
    .optional()?
    .unwrap_or_default())
}

/// Writes the factor's attempts.
pub fn save_attempts(
    conn: &mut PgConnection,
    factor_id: Uuid,
    attempts: &Attempts,
    now: DateTime<Utc>,
) -> QueryResult<()> {
    crate::db::prepared(
        "INSERT INTO weauth.mfa_factor_attempts (factor_id, last_totp_step, failed_attempts, locked_until, updated_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (factor_id) DO UPDATE SET last_totp_step = EXCLUDED.last_totp_step,
           failed_attempts = EXCLUDED.failed_attempts, locked_until = EXCLUDED.locked_until,
           updated_at = EXCLUDED.updated_at",
    )
    .bind::<SqlUuid, _>(factor_id)
    .bind::<Nullable<Int8>, _>(attempts.last_totp_step)
    .bind::<Int4, _>(attempts.failed_attempts)
    .bind::<Nullable<Timestamptz>, _>(attempts.locked_until)
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(())
}
