//! `auth.audit_log_entries` (GoTrue `internal/models/audit_log_entry.go`).
//!
//! Every entry is written by the SQL of [`insert_sql`]: on its own ([`insert`]) or as a CTE of
//! the statements that create a session or rotate a refresh token, so those stay one round trip.

use chrono::Utc;
use diesel::prelude::*;
use diesel::sql_types::{Nullable, Text, Timestamptz};
use serde_json::{json, Value};
use uuid::Uuid;

/// Who did what: GoTrue's payload is `actor_*`, `action`, `log_type` and optional `traits`.
pub struct AuditEntry<'a> {
    pub actor_id: Uuid,
    /// The actor's e-mail, else phone, else `""`.
    pub actor_username: &'a str,
    pub action: &'a str,
    pub traits: Option<Value>,
}

impl AuditEntry<'_> {
    /// GoTrue's payload JSON.
    pub fn payload(&self) -> Value {
        let mut p = json!({
            "actor_id": self.actor_id.to_string(),
            "actor_via_sso": false,
            "actor_username": self.actor_username,
            "action": self.action,
            "log_type": log_type(self.action),
        });
        if let Some(traits) = &self.traits {
            p["traits"] = traits.clone();
        }
        p
    }
}

pub fn log_type(action: &str) -> &'static str {
    match action {
        "login" | "logout" | "user_signedup" => "account",
        "token_refreshed" | "token_revoked" => "token",
        "user_modified" | "user_updated_password" | "identity_linked" => "user",
        "factor_in_progress"
        | "factor_unenrolled"
        | "challenge_created"
        | "verification_attempted"
        | "factor_deleted"
        | "factor_updated" => "factor",
        _ => "team",
    }
}

/// The one `INSERT` of an audit entry, with the placeholders that hold its payload (text cast to
/// json), its time and its client address (text, `''` when NULL).
pub fn insert_sql(payload: &str, at: &str, ip: &str) -> String {
    format!(
        "INSERT INTO auth.audit_log_entries (instance_id, id, payload, created_at, ip_address) \
         VALUES ('00000000-0000-0000-0000-000000000000', gen_random_uuid(), {payload}::json, {at}, coalesce({ip}, ''))"
    )
}

/// GoTrue's payload (as [`AuditEntry::payload`] writes it, keys in the same order) for the
/// user row aliased `user`, built by PostgreSQL: for statements that learn the user as they
/// run. `action` and `log_type` are placeholders.
pub fn payload_sql(user: &str, action: &str, log_type: &str) -> String {
    format!(
        "json_build_object('action', {action}::text, 'actor_id', {user}.id::text,
           'actor_username', coalesce({user}.email, {user}.phone, ''), 'actor_via_sso', false,
           'log_type', {log_type}::text)"
    )
}

/// Writes one entry on its own.
pub fn insert(
    conn: &mut PgConnection,
    entry: &AuditEntry<'_>,
    ip: Option<&str>,
) -> QueryResult<()> {
    crate::db::prepared(insert_sql("$1", "$2", "$3"))
        .bind::<Text, _>(entry.payload().to_string())
        .bind::<Timestamptz, _>(Utc::now())
        .bind::<Nullable<Text>, _>(ip.map(str::to_string))
        .execute(conn)?;
    Ok(())
}
