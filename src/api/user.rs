//! `GET /user` and `PUT /user` (GoTrue `internal/api/user.go`).

use actix_web::{web, HttpResponse};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::validate;
use crate::auth::extract::{AuthUser, ClientInfo};
use crate::auth::password;
use crate::db;
use crate::db::models::identity;
use crate::db::models::session;
use crate::db::models::user::{self, User};
use crate::db::schema::users;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::rate_limit::Limit;
use crate::state::AppState;
use crate::tokens::{self, db_now};

pub async fn user_get(auth: AuthUser) -> ApiResult<HttpResponse> {
    Ok(tokens::user_response(&auth.user, &auth.identities))
}

#[derive(Deserialize)]
pub struct UserUpdateParams {
    pub email: Option<String>,
    pub password: Option<String>,
    pub phone: Option<String>,
    pub data: Option<Map<String, Value>>,
    pub app_metadata: Option<Map<String, Value>>,
}

pub async fn user_update(
    state: web::Data<AppState>,
    auth: AuthUser,
    client: ClientInfo,
    params: web::Json<UserUpdateParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Otp, &client).await?;
    let config = state.config.clone();
    let params = params.into_inner();
    let current = auth.user;
    if params.app_metadata.is_some()
        && current.role.as_deref() != Some(config.jwt.admin_group_name.as_str())
    {
        return Err(ApiError::forbidden(
            ErrorCode::NotAdmin,
            "Updating app_metadata requires admin privileges",
        ));
    }
    let email = validate::optional_email(params.email.as_deref())?;
    let phone = validate::optional_phone(params.phone.as_deref())?;
    if email.is_some() && !config.accounts.email_enabled {
        return Err(ApiError::bad_request(
            ErrorCode::EmailProviderDisabled,
            "Email logins are disabled",
        ));
    }
    if phone.is_some() && !config.accounts.phone_enabled {
        return Err(ApiError::bad_request(
            ErrorCode::PhoneProviderDisabled,
            "Phone logins are disabled",
        ));
    }
    let user_metadata = params
        .data
        .map(|d| user::merge_metadata(current.user_metadata(), d));
    let app_metadata = params
        .app_metadata
        .map(|d| user::merge_metadata(current.app_metadata(), d));
    for m in user_metadata.iter().chain(app_metadata.iter()) {
        validate::metadata(m)?;
    }

    let new_hash = match params.password {
        Some(pw) => {
            password::check_strength(&pw, config.password.min_length)?;
            let old = current.encrypted_password.clone().unwrap_or_default();
            let hash_cfg = config.password.hash.clone();
            let hashed = state
                .hashing
                .run(move || -> ApiResult<Option<String>> {
                    if !old.is_empty() && password::verify(&pw, &old) {
                        return Ok(None);
                    }
                    password::hash(&pw, &hash_cfg).map(Some)
                })
                .await??;
            match hashed {
                Some(h) => Some(h),
                None => {
                    return Err(ApiError::unprocessable(
                        ErrorCode::SamePassword,
                        "New password should be different from the old password.",
                    ))
                }
            }
        }
        None => None,
    };

    let keep_session = auth.session_id;
    let (user, identities) = db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let id = current.id;
        if let Some(meta) = user_metadata {
            diesel::update(users::table.find(id))
                .set(users::raw_user_meta_data.eq(Value::Object(meta)))
                .execute(conn)?;
        }
        if let Some(meta) = app_metadata {
            diesel::update(users::table.find(id))
                .set(users::raw_app_meta_data.eq(Value::Object(meta)))
                .execute(conn)?;
        }
        if let Some(hash) = new_hash {
            diesel::update(users::table.find(id))
                .set(users::encrypted_password.eq(hash))
                .execute(conn)?;
            // A new password signs out every other session, as in GoTrue.
            session::delete_for_user(conn, id, keep_session)?;
        }
        if let Some(email) = email.filter(|e| Some(e) != current.email.as_ref()) {
            if user::email_taken(
                conn,
                current.aud.as_deref().unwrap_or(&config.jwt.aud),
                &email,
                Some(id),
            )? {
                return Err(ApiError::unprocessable(
                    ErrorCode::EmailExists,
                    "A user with this email address has already been registered",
                ));
            }
            if config.accounts.mailer_autoconfirm {
                diesel::update(users::table.find(id))
                    .set((
                        users::email.eq(&email),
                        users::email_confirmed_at.eq(now),
                        users::email_change.eq(""),
                    ))
                    .execute(conn)?;
                let data = json!({"sub": id.to_string(), "email": email, "email_verified": true});
                identity::upsert_data(conn, id, "email", into_map(data), now)?;
                add_provider(conn, id, "email")?;
            } else {
                // weauth sends no mail: the change stays pending, as GoTrue shows it.
                diesel::update(users::table.find(id))
                    .set((
                        users::email_change.eq(&email),
                        users::email_change_sent_at.eq(now),
                    ))
                    .execute(conn)?;
            }
        }
        if let Some(phone) = phone.filter(|p| Some(p) != current.phone.as_ref()) {
            set_phone(conn, id, &phone, config.accounts.sms_autoconfirm, now)?;
        }
        diesel::update(users::table.find(id))
            .set(users::updated_at.eq(now))
            .execute(conn)?;
        user::find_with_identities(conn, id)?
            .ok_or_else(|| ApiError::internal("user vanished during update"))
    })
    .await?;
    Ok(tokens::user_response(&user, &identities))
}

/// Sets a user's phone (confirmed now, or pending when `confirm` is off), keeping the phone
/// identity and `app_metadata.providers` in step, and touching `updated_at`. A phone owned by
/// another user is refused.
pub fn set_phone(
    conn: &mut PgConnection,
    user_id: uuid::Uuid,
    phone: &str,
    confirm: bool,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    let taken = || {
        ApiError::unprocessable(
            ErrorCode::PhoneExists,
            "A user with this phone number has already been registered",
        )
    };
    if user::phone_taken(conn, phone, Some(user_id))? {
        return Err(taken());
    }
    if !confirm {
        diesel::update(users::table.find(user_id))
            .set((
                users::phone_change.eq(phone),
                users::phone_change_sent_at.eq(now),
                users::updated_at.eq(now),
            ))
            .execute(conn)?;
        return Ok(());
    }
    diesel::update(users::table.find(user_id))
        .set((
            users::phone.eq(phone),
            users::phone_confirmed_at.eq(now),
            users::phone_change.eq(""),
            users::updated_at.eq(now),
        ))
        .execute(conn)
        .map_err(|e| {
            if db::is_unique_violation(&e, "users_phone_key") {
                taken()
            } else {
                e.into()
            }
        })?;
    let data = json!({"sub": user_id.to_string(), "phone": phone, "phone_verified": true});
    identity::upsert_data(conn, user_id, "phone", into_map(data), now)?;
    add_provider(conn, user_id, "phone")?;
    Ok(())
}

/// Appends `provider` to `app_metadata.providers` (and sets `provider` if it has none).
pub fn add_provider(conn: &mut PgConnection, user_id: uuid::Uuid, provider: &str) -> ApiResult<()> {
    let user: User =
        user::find_by_id(conn, user_id)?.ok_or_else(|| ApiError::internal("user vanished"))?;
    let mut meta = user.app_metadata();
    let mut providers: Vec<Value> = meta
        .get("providers")
        .and_then(|p| p.as_array().cloned())
        .unwrap_or_default();
    if !providers.iter().any(|p| p == provider) {
        providers.push(json!(provider));
    }
    meta.entry("provider").or_insert_with(|| json!(provider));
    meta.insert("providers".into(), Value::Array(providers));
    diesel::update(users::table.find(user_id))
        .set(users::raw_app_meta_data.eq(Value::Object(meta)))
        .execute(conn)?;
    Ok(())
}

pub fn into_map(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}
