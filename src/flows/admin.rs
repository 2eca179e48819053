//! User management with the service role (GoTrue `internal/api/admin.go`).

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::account::{self, user_not_found, AccountChanges};
use super::validate;
use crate::auth::password;
use crate::db;
use crate::error::{ApiError, ApiResult};
use crate::models::db_now;
use crate::models::identity::{self, Identity, IdentityData, NewIdentity};
use crate::models::session;
use crate::models::user::{self, NewUser, User};
use crate::state::AppState;

/// GoTrue's admin message for a phone another user has.
const PHONE_TAKEN: &str = "Phone number already registered by another user";

/// `AdminUserParams`: the body of create and update.
#[derive(Deserialize, Default)]
pub struct AdminUserParams {
    pub id: Option<String>,
    pub aud: Option<String>,
    pub role: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub password_hash: Option<String>,
    pub email_confirm: Option<bool>,
    pub phone_confirm: Option<bool>,
    pub user_metadata: Option<Map<String, Value>>,
    pub app_metadata: Option<Map<String, Value>>,
    pub ban_duration: Option<String>,
}

impl AdminUserParams {
    /// Normalised e-mail and phone, with the metadata size checked.
    fn validate(&self, default_cc: Option<&str>) -> ApiResult<(Option<String>, Option<String>)> {
        for (name, value) in [
            ("role", &self.role),
            ("aud", &self.aud),
            ("password_hash", &self.password_hash),
        ] {
            validate::varchar(name, value.as_deref().unwrap_or(""), validate::MAX_VARCHAR)?;
        }
        for m in self.user_metadata.iter().chain(self.app_metadata.iter()) {
            validate::metadata(m)?;
        }
        Ok((
            validate::optional_email(self.email.as_deref())?,
            validate::optional_phone(self.phone.as_deref(), default_cc)?,
        ))
    }
}

/// A page of users (newest first) and the total, for `GET /admin/users`.
pub async fn list(
    state: &Arc<AppState>,
    page: i64,
    per_page: i64,
    filter: Option<String>,
) -> ApiResult<(Vec<User>, i64)> {
    if !(1..=1000).contains(&per_page) {
        return Err(ApiError::validation("per_page must be between 1 and 1000"));
    }
    if let Some(filter) = &filter {
        validate::no_nul("filter", filter)?;
    }
    let aud = state.config.jwt.aud.clone();
    db::run(&state.pool, move |conn| {
        Ok(user::list(conn, &aud, filter.as_deref(), page, per_page)?)
    })
    .await
}

pub async fn get(state: &Arc<AppState>, id: Uuid) -> ApiResult<(User, Vec<Identity>)> {
    db::run(&state.pool, move |conn| {
        user::find_with_identities(conn, id)?.ok_or_else(user_not_found)
    })
    .await
}

pub async fn create(state: &Arc<AppState>, p: AdminUserParams) -> ApiResult<(User, Vec<Identity>)> {
    let (email, phone) = p.validate(state.config.accounts.phone_default_country_code.as_deref())?;
    if email.is_none() && phone.is_none() {
        return Err(ApiError::validation(
            "Cannot create a user without either an email or phone",
        ));
    }
    let id = match p.id.as_deref() {
        Some(raw) => Uuid::parse_str(raw)
            .map_err(|_| ApiError::validation("ID must conform to the uuid v4 format"))?,
        None => Uuid::new_v4(),
    };
    let banned_until = p
        .ban_duration
        .as_deref()
        .map(parse_ban)
        .transpose()?
        .flatten();
    let hash = password_for(state, p.password, p.password_hash).await?;

    let jwt = state.config.jwt.clone();
    db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let aud = p.aud.filter(|a| !a.is_empty()).unwrap_or(jwt.aud);
        if let Some(email) = &email {
            account::ensure_email_free(conn, &aud, email, None)?;
        }
        if let Some(phone) = &phone {
            account::ensure_phone_free(conn, phone, None, PHONE_TAKEN)?;
        }
        let role = p
            .role
            .filter(|r| !r.is_empty())
            .unwrap_or(jwt.default_group_name);
        let mut new = NewUser::new(id, &aud, &role, now);
        new.email = email.clone();
        new.phone = phone.clone();
        new.encrypted_password = hash.unwrap_or_default();
        new.email_confirmed_at =
            (email.is_some() && p.email_confirm.unwrap_or(false)).then_some(now);
        new.phone_confirmed_at =
            (phone.is_some() && p.phone_confirm.unwrap_or(false)).then_some(now);
        new.banned_until = banned_until;
        let providers: Vec<&str> = [
            email.as_ref().map(|_| "email"),
            phone.as_ref().map(|_| "phone"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let mut app_meta = Map::new();
        app_meta.insert("provider".into(), json!(providers[0]));
        app_meta.insert("providers".into(), json!(providers));
        app_meta.extend(p.app_metadata.unwrap_or_default());
        new.raw_app_meta_data = Value::Object(app_meta);
        new.raw_user_meta_data = Value::Object(p.user_metadata.unwrap_or_default());
        let user =
            user::insert(conn, &new).map_err(|e| account::user_write_error(e, PHONE_TAKEN))?;
        let verified = (
            new.email_confirmed_at.is_some(),
            new.phone_confirmed_at.is_some(),
        );
        let sub = id.to_string();
        if let Some(email) = &email {
            let data = IdentityData::new(id)
                .email(email)
                .email_verified(verified.0)
                .phone_verified(false);
            identity::insert(
                conn,
                &NewIdentity::new(id, "email", &sub, data.into_map(), now),
            )?;
        }
        if let Some(phone) = &phone {
            let data = IdentityData::new(id)
                .phone(phone)
                .email_verified(false)
                .phone_verified(verified.1);
            identity::insert(
                conn,
                &NewIdentity::new(id, "phone", &sub, data.into_map(), now),
            )?;
        }
        let identities = identity::for_user(conn, id)?;
        Ok((user, identities))
    })
    .await
}

pub async fn update(
    state: &Arc<AppState>,
    id: Uuid,
    p: AdminUserParams,
) -> ApiResult<(User, Vec<Identity>)> {
    let (email, phone) = p.validate(state.config.accounts.phone_default_country_code.as_deref())?;
    let ban = p.ban_duration.as_deref().map(parse_ban).transpose()?;
    if let Some(pw) = p.password.as_deref() {
        password::check_strength(pw, state.config.password.min_length)?;
    }
    let hash = password_for(state, p.password, p.password_hash).await?;

    let default_aud = state.config.jwt.aud.clone();
    db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let current = user::find_by_id(conn, id)?.ok_or_else(user_not_found)?;
        let mut changes = AccountChanges::new(&current).phone_taken_message(PHONE_TAKEN);
        if let Some(role) = p.role.filter(|r| !r.is_empty()) {
            changes.role(role);
        }
        if let Some(meta) = p.user_metadata {
            changes.user_metadata(meta);
        }
        if let Some(meta) = p.app_metadata {
            changes.app_metadata(meta);
        }
        if let Some(hash) = hash {
            changes.password_hash(hash);
            session::delete_for_user(conn, id, None)?;
        }
        if let Some(email) = email {
            let aud = current.aud.clone().unwrap_or_else(|| default_aud.clone());
            account::ensure_email_free(conn, &aud, &email, Some(id))?;
            changes.email(&email, IdentityData::new(id));
        }
        if let Some(phone) = phone {
            account::ensure_phone_free(conn, &phone, Some(id), PHONE_TAKEN)?;
            changes.phone(&phone, IdentityData::new(id));
        }
        if p.email_confirm == Some(true) && current.email_confirmed_at.is_none() {
            changes.confirm_email_now(now);
        }
        if p.phone_confirm == Some(true) && current.phone_confirmed_at.is_none() {
            changes.confirm_phone_now(now);
        }
        if let Some(ban) = ban {
            changes.banned_until(ban);
        }
        changes.write(conn, now)?;
        user::find_with_identities(conn, id)?.ok_or_else(user_not_found)
    })
    .await
}

/// Hard delete (cascading, as GoTrue's `DELETE FROM users`) or soft delete. Like a logout, it
/// must win over the user's own requests running at the same time: aborted by deadlock
/// detection, it runs again.
pub async fn delete(state: &Arc<AppState>, id: Uuid, soft: bool) -> ApiResult<()> {
    db::transaction_retrying(&state.pool, move |conn| {
        if soft {
            account::soft_delete(conn, id)
        } else if user::delete(conn, id)? {
            Ok(())
        } else {
            Err(user_not_found())
        }
    })
    .await
}

/// Hashes `password` or accepts an imported bcrypt/argon2 `password_hash` (never both).
async fn password_for(
    state: &AppState,
    password: Option<String>,
    imported: Option<String>,
) -> ApiResult<Option<String>> {
    match (
        password.filter(|p| !p.is_empty()),
        imported.filter(|h| !h.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "Only a password or a password hash should be provided",
        )),
        (Some(pw), None) => {
            let cfg = state.config.password.hash.clone();
            Ok(Some(
                state
                    .hashing
                    .run(move || password::hash(&pw, &cfg))
                    .await??,
            ))
        }
        (None, Some(hash)) => {
            let known = hash.starts_with("$argon2")
                || ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
            if !known || hash.len() > 255 {
                return Err(ApiError::validation(
                    "Invalid password hash: only bcrypt and argon2 hashes are supported",
                ));
            }
            Ok(Some(hash))
        }
        (None, None) => Ok(None),
    }
}

/// `ban_duration`: `"none"` lifts a ban; otherwise a Go duration such as `"24h"` or `"1h30m"`.
fn parse_ban(raw: &str) -> ApiResult<Option<DateTime<Utc>>> {
    if raw == "none" {
        return Ok(None);
    }
    let invalid = || ApiError::validation("invalid format for ban duration");
    let (mut total_ms, mut number) = (0i64, String::new());
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number.parse().map_err(|_| invalid())?;
        number.clear();
        let unit_ms = match c {
            'h' => 3_600_000,
            's' => 1000,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1
            }
            'm' => 60_000,
            _ => return Err(invalid()),
        };
        total_ms = total_ms
            .checked_add(n.checked_mul(unit_ms).ok_or_else(invalid)?)
            .ok_or_else(invalid)?;
    }
    if !number.is_empty() || raw.is_empty() {
        return Err(invalid());
    }
    Ok(Some(Utc::now() + Duration::milliseconds(total_ms)))
}
