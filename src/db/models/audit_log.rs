//! `auth.audit_log_entries` (GoTrue `internal/models/audit_log_entry.go`).

use chrono::Utc;
use diesel::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

use super::INSTANCE_ID;
use crate::db::schema::audit_log_entries;

/// GoTrue's payload: who did what (`actor_*`, `action`, `log_type`, optional `traits`).
pub fn payload(actor_id: Uuid, actor_username: &str, action: &str, traits: Option<Value>) -> Value {
    let mut p = json!({
        "actor_id": actor_id.to_string(),
        "actor_via_sso": false,
        "actor_username": actor_username,
        "action": action,
        "log_type": log_type(action),
    });
    if let Some(traits) = traits {
        p["traits"] = traits;
    }
    p
}

fn log_type(action: &str) -> &'static str {
    match action {
        "login" | "logout" | "user_signedup" => "account",
        "token_refreshed" | "token_revoked" => "token",
        "user_modified" | "user_updated_password" | "identity_linked" => "user",
        _ => "team",
    }
}

pub fn insert(conn: &mut PgConnection, payload: Value, ip: Option<&str>) -> QueryResult<()> {
    diesel::insert_into(audit_log_entries::table)
        .values((
            audit_log_entries::instance_id.eq(INSTANCE_ID),
            audit_log_entries::id.eq(Uuid::new_v4()),
            audit_log_entries::payload.eq(payload),
            audit_log_entries::created_at.eq(Utc::now()),
            audit_log_entries::ip_address.eq(ip.unwrap_or("")),
        ))
        .execute(conn)?;
    Ok(())
}
