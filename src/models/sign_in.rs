//! The statements that sign someone in: each finds (or creates) the user, opens the session with
//! its amr claim, first refresh token and audit entry, and returns the [`UserRecord`] the
//! response shows, in **one statement**, committed on its own (`db::fast_path`, guarded by
//! the request's deadline) or inside the caller's transaction. When a statement finds
//! nothing to do (an unknown identity, a banned user, an address already taken) it writes
//! nothing and the caller continues on its general path (`flows::session`, `flows::linking`).
//!
//! The session's CTEs ([`session_ctes`]) are shared by every statement here: they open a
//! session for the one row of the CTE `u` (the user, as `RETURNING *` left it).

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Array, Jsonb, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use serde_json::Value;
use uuid::Uuid;

use super::identity::NewIdentity;
use super::user::{self, NewUser, RecordRow, UserRecord, IDENTITIES};
use crate::db::{prepared, PreparedSql};

/// What a new session needs.
pub struct NewSession<'a> {
    /// GoTrue's `aal_level` (`aal1`, `aal2`).
    pub aal: &'a str,
    /// The amr method of the sign-in (`password`, `otp`, `oauth`, ...).
    pub method: &'a str,
    pub refresh_token: &'a str,
    pub user_agent: Option<&'a str>,
    pub ip: Option<String>,
    pub now: DateTime<Utc>,
    /// The audit action to record (`login`, `user_signedup`), or `None` with the audit log off.
    pub audit_action: Option<&'a str>,
    /// Bound for `weauth.in_time` when the statement commits on its own (`db::fast_path`).
    pub deadline: Option<DateTime<Utc>>,
}

impl NewSession<'_> {
    /// The same session, written by a statement that commits on its own before `deadline`.
    pub fn guarded(self, deadline: crate::db::Deadline) -> Self {
        NewSession {
            deadline: deadline.0,
            ..self
        }
    }
}

/// The WeChat session_key to remember for legacy decryption (`weauth.wechat_session_keys`).
pub struct SessionKey<'a> {
    pub app_id: &'a str,
    pub openid: &'a str,
    pub session_key: &'a str,
}

/// A session opened by one of the statements here.
pub struct Opened {
    pub session_id: Uuid,
    /// When it was opened (the amr claim's time).
    pub at: DateTime<Utc>,
    pub record: UserRecord,
}

/// The CTEs `s` (session), `a` (amr claim), `l` (audit entry, when an action is bound) and `t`
/// (first refresh token) for the user row of CTE `u`, with their 10 placeholders from `$first`
/// on, bound by [`bind_session`] in the same order. `s` checks the deadline: every statement
/// here writes only when `u` has its row, and then `s` inserts, so a late statement aborts.
fn session_ctes(first: usize) -> String {
    let p = |k: usize| format!("${}", first + k);
    let (sid, now, aal, ua, ip, method, token, action, log_type, deadline) =
        (p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9));
    format!(
        "s AS (
           INSERT INTO auth.sessions (id, user_id, created_at, updated_at, aal, user_agent, ip)
           SELECT {sid}, u.id, {now}, {now}, {aal}::auth.aal_level, {ua}, {ip}::inet FROM u
           WHERE weauth.in_time({deadline}::timestamptz) RETURNING id
         ), a AS (
           INSERT INTO auth.mfa_amr_claims (id, session_id, created_at, updated_at, authentication_method)
           SELECT gen_random_uuid(), id, {now}, {now}, {method} FROM s
         ), l AS (
           INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address)
           SELECT '00000000-0000-0000-0000-000000000000', gen_random_uuid(),
             {}, {now}, coalesce({ip}, '') FROM u WHERE {action}::text IS NOT NULL
         ), t AS (
           INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, updated_at, session_id)
           SELECT '00000000-0000-0000-0000-000000000000', {token}, (SELECT id::text FROM u), false,
             {now}, {now}, s.id FROM s
         )",
        super::audit_log::payload_sql("u", &action, &log_type),
    )
}

fn bind_session(q: PreparedSql, new: &NewSession<'_>, session_id: Uuid) -> PreparedSql {
    q.bind::<SqlUuid, _>(session_id)
        .bind::<Timestamptz, _>(new.now)
        .bind::<Text, _>(new.aal.to_string())
        .bind::<Nullable<Text>, _>(new.user_agent.map(str::to_string))
        .bind::<Nullable<Text>, _>(new.ip.clone())
        .bind::<Text, _>(new.method.to_string())
        .bind::<Text, _>(new.refresh_token.to_string())
        .bind::<Nullable<Text>, _>(new.audit_action.map(str::to_string))
        .bind::<Nullable<Text>, _>(
            new.audit_action
                .map(|a| super::audit_log::log_type(a).to_string()),
        )
        .bind::<Nullable<Timestamptz>, _>(new.deadline)
}

/// The `k` CTE: remembers the WeChat session_key of the user of `u` when one is bound at
/// `$first` (app id, openid, key); nothing when they are NULL.
fn session_key_cte(first: usize, now: &str) -> String {
    let (app, openid, key) = (
        format!("${first}"),
        format!("${}", first + 1),
        format!("${}", first + 2),
    );
    format!(
        "k AS (
           INSERT INTO weauth.wechat_session_keys (app_id, openid, user_id, session_key, updated_at)
           SELECT {app}, {openid}, u.id, {key}, {now} FROM u WHERE {app}::text IS NOT NULL
           ON CONFLICT (app_id, openid) DO UPDATE
             SET user_id = EXCLUDED.user_id, session_key = EXCLUDED.session_key,
                 updated_at = EXCLUDED.updated_at
         )"
    )
}

fn bind_session_key(q: PreparedSql, key: Option<&SessionKey<'_>>) -> PreparedSql {
    q.bind::<Nullable<Text>, _>(key.map(|k| k.app_id.to_string()))
        .bind::<Nullable<Text>, _>(key.map(|k| k.openid.to_string()))
        .bind::<Nullable<Text>, _>(key.map(|k| k.session_key.to_string()))
}

#[derive(QueryableByName)]
struct OpenedRow {
    #[diesel(embed)]
    record: RecordRow,
    #[diesel(sql_type = SqlUuid)]
    session_id: Uuid,
}

fn opened(row: Option<OpenedRow>, new: &NewSession<'_>) -> QueryResult<Option<Opened>> {
    row.map(|r| {
        Ok(Opened {
            session_id: r.session_id,
            at: new.now,
            record: r.record.into_record()?,
        })
    })
    .transpose()
}

/// Opens a session for the user `user_id` already checked by the caller (password, code,
/// provider), bumping `last_sign_in_at`. `None` (nothing written) when the user is gone or
/// soft-deleted by now: the `UPDATE` waits for a concurrent delete to finish.
pub fn for_user(
    conn: &mut PgConnection,
    user_id: Uuid,
    new: &NewSession<'_>,
) -> QueryResult<Option<Opened>> {
    let session_id = Uuid::new_v4();
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH u AS (
           UPDATE auth.users SET last_sign_in_at = $2, updated_at = $2
           WHERE id = $1 AND deleted_at IS NULL RETURNING *
         ), {}
         SELECT {}, (SELECT id FROM s) AS session_id FROM u",
            session_ctes(3),
            user::record_columns(IDENTITIES),
        )
    });
    struct ForUser;
    let q = prepared(SQL.as_str())
        .bind::<SqlUuid, _>(user_id)
        .bind::<Timestamptz, _>(new.now);
    opened(
        bind_session(q, new, session_id)
            .same_text_as::<ForUser>()
            .get_result(conn)
            .optional()?,
        new,
    )
}

/// A returning user of an outside identity (`provider`, `provider_id`): locks the user and then
/// the identity (the order of `identity::find_with_user`, which the transactional path takes:
/// the other order deadlocked under concurrent first sign-ins; the later CTEs depend on `b`,
/// so they cannot run first), refreshes the identity
/// (`identity_data || data`, last sign-in), remembers the WeChat session_key, and opens the
/// session. `None` (nothing written) when there is no such identity, or its user is deleted
/// or banned: the caller's transactional path then decides.
pub fn by_identity(
    conn: &mut PgConnection,
    provider: &str,
    provider_id: &str,
    data: &serde_json::Map<String, Value>,
    session_key: Option<&SessionKey<'_>>,
    new: &NewSession<'_>,
) -> QueryResult<Option<Opened>> {
    let session_id = Uuid::new_v4();
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "WITH b AS (
           SELECT x.id AS identity_id, y.id AS user_id
           FROM auth.users y JOIN auth.identities x ON x.user_id = y.id
           WHERE x.provider = $1 AND x.provider_id = $2 AND y.deleted_at IS NULL
             AND (y.banned_until IS NULL OR y.banned_until <= $4)
           FOR NO KEY UPDATE
         ), i AS (
           UPDATE auth.identities SET
             identity_data = (CASE WHEN jsonb_typeof(identity_data) = 'object'
                              THEN identity_data ELSE '{{}}'::jsonb END) || $3::jsonb,
             last_sign_in_at = $4, updated_at = $4
           WHERE id = (SELECT identity_id FROM b)
           RETURNING *
         ), u AS (
           UPDATE auth.users SET last_sign_in_at = $4, updated_at = $4
           WHERE id = (SELECT user_id FROM i) RETURNING *
         ), {}, {}
         SELECT {}, (SELECT id FROM s) AS session_id FROM u",
            session_key_cte(5, "$4"),
            session_ctes(8),
            // The identity as this statement left it, with the user's others as they were.
            user::record_columns(
                "(SELECT * FROM i UNION ALL SELECT o.* FROM auth.identities o
              WHERE o.id <> (SELECT id FROM i))"
            ),
        )
    });
    struct ByIdentity;
    let q = prepared(SQL.as_str())
        .bind::<Text, _>(provider.to_string())
        .bind::<Text, _>(provider_id.to_string())
        .bind::<Jsonb, _>(Value::Object(data.clone()))
        .bind::<Timestamptz, _>(new.now);
    let q = bind_session_key(q, session_key);
    opened(
        bind_session(q, new, session_id)
            .same_text_as::<ByIdentity>()
            .get_result(conn)
            .optional()?,
        new,
    )
}

/// What must not exist for [`new_user`] to create its user.
pub enum Unless<'a> {
    /// Nothing: an anonymous user.
    Nothing,
    /// A user with this e-mail in this audience (GoTrue's sign-up look-up, SSO users aside).
    Email { aud: &'a str, email: &'a str },
    /// A user with this phone.
    Phone(&'a str),
    /// The identity itself, or (with a unionid) an identity of the same person among
    /// `providers`: the first sign-in of an outside identity.
    Identity {
        provider: &'a str,
        provider_id: &'a str,
        person: Option<(&'a [&'a str], &'a str)>,
    },
}

/// Creates `user` (signed in at `new.now`), its `identity`, the WeChat session_key and the
/// session, unless `unless` finds the account already there: then `None` and nothing written.
/// The look-up runs in the statement's snapshot, so a caller racing another creation still
/// needs what protected it before (the person lock, the unique indexes).
pub fn new_user(
    conn: &mut PgConnection,
    user: &NewUser,
    identity: Option<&NewIdentity>,
    unless: Unless<'_>,
    session_key: Option<&SessionKey<'_>>,
    new: &NewSession<'_>,
) -> QueryResult<Option<Opened>> {
    // $1 the user, $2 the identity (or NULL), $3..$6 the look-up, $7..$9 the session key,
    // $10.. the session ($11 its time, $19 the deadline).
    let guard = match unless {
        Unless::Nothing => "true",
        Unless::Email { .. } => {
            "NOT EXISTS (SELECT 1 FROM auth.users x
               WHERE x.instance_id = '00000000-0000-0000-0000-000000000000'
                 AND lower(x.email) = $3 AND x.aud = $4 AND x.is_sso_user = false)"
        }
        Unless::Phone(_) => "NOT EXISTS (SELECT 1 FROM auth.users x WHERE x.phone = $3)",
        Unless::Identity { .. } => {
            "NOT EXISTS (SELECT 1 FROM auth.identities x WHERE x.provider = $3 AND x.provider_id = $4)
             AND ($5::text IS NULL OR NOT EXISTS (SELECT 1 FROM auth.identities x
               WHERE x.provider = ANY($6::text[]) AND x.identity_data ? 'unionid'
                 AND x.identity_data->>'unionid' = $5))"
        }
    };
    let session_id = Uuid::new_v4();
    let sql = format!(
        "WITH u AS (
           {} WHERE {guard} RETURNING *
         ), i AS (
           INSERT INTO auth.identities (id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at)
           SELECT id, provider_id, user_id, identity_data, provider, last_sign_in_at, created_at, updated_at
           FROM jsonb_populate_record(NULL::auth.identities, $2::jsonb)
           WHERE $2::jsonb IS NOT NULL AND EXISTS (SELECT 1 FROM u)
           RETURNING *
         ), {}, {}
         SELECT {}, (SELECT id FROM s) AS session_id FROM u",
        user::new_user_sql("$1"),
        session_key_cte(7, "$11"),
        session_ctes(10),
        user::record_columns("i"),
    );
    let text = |v: &str| Some(v.to_string());
    let (a, b, c, providers) = match unless {
        Unless::Nothing => (None, None, None, None),
        Unless::Email { aud, email } => (Some(email.to_lowercase()), text(aud), None, None),
        Unless::Phone(phone) => (text(phone), None, None, None),
        Unless::Identity {
            provider,
            provider_id,
            person,
        } => (
            text(provider),
            text(provider_id),
            person.map(|(_, unionid)| unionid.to_string()),
            person
                .map(|(providers, _)| providers.iter().map(|p| p.to_string()).collect::<Vec<_>>()),
        ),
    };
    let json = |v: Result<Value, serde_json::Error>| {
        v.map_err(|e| diesel::result::Error::SerializationError(e.into()))
    };
    let user_json = json(serde_json::to_value(user))?;
    let identity_json = identity
        .map(|i| json(serde_json::to_value(i)))
        .transpose()?;
    let q = prepared(sql)
        .bind::<Jsonb, _>(user_json)
        .bind::<Nullable<Jsonb>, _>(identity_json)
        .bind::<Nullable<Text>, _>(a)
        .bind::<Nullable<Text>, _>(b)
        .bind::<Nullable<Text>, _>(c)
        .bind::<Nullable<Array<Text>>, _>(providers);
    let q = bind_session_key(q, session_key);
    opened(
        bind_session(q, new, session_id)
            .get_result(conn)
            .optional()?,
        new,
    )
}
