//! Admin user management with a service-role token (GoTrue `internal/api/admin.go`).

use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::user::{add_provider, into_map};
use super::validate;
use crate::auth::extract::AdminAuth;
use crate::auth::password;
use crate::db;
use crate::db::models::identity::{self, NewIdentity};
use crate::db::models::session;
use crate::db::models::user::{self, NewUser, User};
use crate::db::schema::users;
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::state::AppState;
use crate::tokens::{self, db_now};

/// supabase-js sends `?page=&per_page=` when no page is given: empty means the default.
#[derive(Deserialize)]
pub struct ListQuery {
    pub page: Option<String>,
    pub per_page: Option<String>,
    pub filter: Option<String>,
}

fn number(raw: Option<&str>, default: i64, name: &str) -> ApiResult<i64> {
    match raw.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(default),
        Some(s) => s
            .parse()
            .map_err(|_| ApiError::validation(format!("{name} must be a number"))),
    }
}

pub async fn admin_users(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    req: HttpRequest,
    query: web::Query<ListQuery>,
) -> ApiResult<HttpResponse> {
    // Pages past what an OFFSET can address are a client error, not an overflow.
    let page = number(query.page.as_deref(), 1, "page")?.clamp(1, 1_000_000_000);
    let per_page = number(query.per_page.as_deref(), 50, "per_page")?;
    if !(1..=1000).contains(&per_page) {
        return Err(ApiError::validation("per_page must be between 1 and 1000"));
    }
    if let Some(filter) = &query.filter {
        validate::no_nul("filter", filter)?;
    }
    let aud = state.config.jwt.aud.clone();
    let filter = query.filter.clone();
    let (rows, total) = db::run(&state.pool, move |conn| {
        Ok(user::list(conn, &aud, filter.as_deref(), page, per_page)?)
    })
    .await?;

    // GoTrue's pagination headers; supabase-js reads the page number right after the first `=`.
    let last = (total + per_page - 1) / per_page;
    let mut links = Vec::new();
    if page < last {
        links.push(format!("<{}>; rel=\"next\"", page_url(&req, page + 1)));
    }
    links.push(format!("<{}>; rel=\"last\"", page_url(&req, last)));
    let users: Vec<_> = rows.iter().map(|u| u.to_json(None)).collect();
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .insert_header((
            HeaderName::from_static("x-total-count"),
            HeaderValue::from(total),
        ))
        .insert_header((actix_web::http::header::LINK, links.join(", ")))
        .json(json!({"users": users, "aud": state.config.jwt.aud})))
}

/// The request URL with `page` replaced, query keys sorted (Go's `url.Values.Encode`).
fn page_url(req: &HttpRequest, page: i64) -> String {
    let mut pairs: Vec<(String, String)> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .filter(|(k, _)| k != "page")
            .collect();
    pairs.push(("page".into(), page.to_string()));
    pairs.sort();
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    format!("{}?{}", req.path(), query)
}

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
    fn validate(&self) -> ApiResult<(Option<String>, Option<String>)> {
        for (name, value) in [
            ("role", &self.role),
            ("aud", &self.aud),
            ("password_hash", &self.password_hash),
        ] {
            validate::no_nul(name, value.as_deref().unwrap_or(""))?;
        }
        for m in self.user_metadata.iter().chain(self.app_metadata.iter()) {
            validate::metadata(m)?;
        }
        Ok((
            validate::optional_email(self.email.as_deref())?,
            validate::optional_phone(self.phone.as_deref())?,
        ))
    }
}

/// 422 `email_exists` when another user of the audience has the address.
fn ensure_email_free(
    conn: &mut PgConnection,
    aud: &str,
    email: &str,
    except: Option<Uuid>,
) -> ApiResult<()> {
    if user::email_taken(conn, aud, email, except)? {
        return Err(ApiError::unprocessable(
            ErrorCode::EmailExists,
            "A user with this email address has already been registered",
        ));
    }
    Ok(())
}

/// 422 `phone_exists` when another user has the phone.
fn ensure_phone_free(conn: &mut PgConnection, phone: &str, except: Option<Uuid>) -> ApiResult<()> {
    if user::phone_taken(conn, phone, except)? {
        return Err(ApiError::unprocessable(
            ErrorCode::PhoneExists,
            "Phone number already registered by another user",
        ));
    }
    Ok(())
}

pub async fn admin_user_create(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    params: web::Json<AdminUserParams>,
) -> ApiResult<HttpResponse> {
    let config = state.config.clone();
    let p = params.into_inner();
    let (email, phone) = p.validate()?;
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
    let hash = password_for(&state, p.password, p.password_hash).await?;

    let (user, identities) = db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let aud = p.aud.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| config.jwt.aud.clone());
        if let Some(email) = &email {
            ensure_email_free(conn, &aud, email, None)?;
        }
        if let Some(phone) = &phone {
            ensure_phone_free(conn, phone, None)?;
        }
        let role = p.role.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| config.jwt.default_group_name.clone());
        let mut new = NewUser::new(id, &aud, &role, now);
        new.email = email.clone();
        new.phone = phone.clone();
        new.encrypted_password = hash.unwrap_or_default();
        new.email_confirmed_at = (email.is_some() && p.email_confirm.unwrap_or(false)).then_some(now);
        new.phone_confirmed_at = (phone.is_some() && p.phone_confirm.unwrap_or(false)).then_some(now);
        new.banned_until = banned_until;
        let mut providers = Vec::new();
        if email.is_some() {
            providers.push("email");
        }
        if phone.is_some() {
            providers.push("phone");
        }
        let mut app_meta = into_map(json!({"provider": providers[0], "providers": providers}));
        app_meta.extend(p.app_metadata.unwrap_or_default());
        new.raw_app_meta_data = Value::Object(app_meta);
        new.raw_user_meta_data = Value::Object(p.user_metadata.unwrap_or_default());
        let user = user::insert(conn, &new).map_err(|e| {
            if db::is_unique_violation(&e, "users_pkey") || db::is_unique_violation(&e, "users_id_key") {
                ApiError::unprocessable(ErrorCode::UserAlreadyExists, "A user with this ID already exists")
            } else {
                e.into()
            }
        })?;
        if let Some(email) = &email {
            let data = json!({"sub": id.to_string(), "email": email, "email_verified": new.email_confirmed_at.is_some(), "phone_verified": false});
            identity::insert(conn, &NewIdentity::new(id, "email", &id.to_string(), into_map(data), now))?;
        }
        if let Some(phone) = &phone {
            let data = json!({"sub": id.to_string(), "phone": phone, "email_verified": false, "phone_verified": new.phone_confirmed_at.is_some()});
            identity::insert(conn, &NewIdentity::new(id, "phone", &id.to_string(), into_map(data), now))?;
        }
        let identities = identity::for_user(conn, id)?;
        Ok((user, identities))
    })
    .await?;
    Ok(tokens::user_response(&user, &identities))
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

fn parse_user_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::not_found(ErrorCode::ValidationFailed, "user_id must be an UUID"))
}

fn user_not_found() -> ApiError {
    ApiError::not_found(ErrorCode::UserNotFound, "User not found")
}

pub async fn admin_user_get(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = parse_user_id(&path)?;
    let (user, identities) = db::run(&state.pool, move |conn| {
        user::find_with_identities(conn, id)?.ok_or_else(user_not_found)
    })
    .await?;
    Ok(tokens::user_response(&user, &identities))
}

pub async fn admin_user_update(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    params: web::Json<AdminUserParams>,
) -> ApiResult<HttpResponse> {
    let id = parse_user_id(&path)?;
    let config = state.config.clone();
    let p = params.into_inner();
    let (email, phone) = p.validate()?;
    let ban = p.ban_duration.as_deref().map(parse_ban).transpose()?;
    if let Some(pw) = p.password.as_deref() {
        password::check_strength(pw, config.password.min_length)?;
    }
    let hash = password_for(&state, p.password, p.password_hash).await?;

    let (user, identities) = db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let current: User = user::find_by_id(conn, id)?.ok_or_else(user_not_found)?;
        let target = users::table.find(id);
        if let Some(role) = p.role.filter(|r| !r.is_empty()) {
            diesel::update(target)
                .set(users::role.eq(role))
                .execute(conn)?;
        }
        if let Some(meta) = p.user_metadata {
            let merged = user::merge_metadata(current.user_metadata(), meta);
            diesel::update(target)
                .set(users::raw_user_meta_data.eq(Value::Object(merged)))
                .execute(conn)?;
        }
        if let Some(meta) = p.app_metadata {
            let merged = user::merge_metadata(current.app_metadata(), meta);
            diesel::update(target)
                .set(users::raw_app_meta_data.eq(Value::Object(merged)))
                .execute(conn)?;
        }
        if let Some(hash) = hash {
            diesel::update(target)
                .set(users::encrypted_password.eq(hash))
                .execute(conn)?;
            session::delete_for_user(conn, id, None)?;
        }
        if let Some(email) = email {
            let aud = current
                .aud
                .clone()
                .unwrap_or_else(|| config.jwt.aud.clone());
            ensure_email_free(conn, &aud, &email, Some(id))?;
            diesel::update(target)
                .set(users::email.eq(&email))
                .execute(conn)?;
            let data = json!({"sub": id.to_string(), "email": email});
            identity::upsert_data(conn, id, "email", into_map(data), now)?;
            add_provider(conn, id, "email")?;
        }
        if let Some(phone) = phone {
            ensure_phone_free(conn, &phone, Some(id))?;
            diesel::update(target)
                .set(users::phone.eq(&phone))
                .execute(conn)?;
            let data = json!({"sub": id.to_string(), "phone": phone});
            identity::upsert_data(conn, id, "phone", into_map(data), now)?;
            add_provider(conn, id, "phone")?;
        }
        if p.email_confirm == Some(true) && current.email_confirmed_at.is_none() {
            diesel::update(target)
                .set(users::email_confirmed_at.eq(now))
                .execute(conn)?;
        }
        if p.phone_confirm == Some(true) && current.phone_confirmed_at.is_none() {
            diesel::update(target)
                .set(users::phone_confirmed_at.eq(now))
                .execute(conn)?;
        }
        if let Some(ban) = ban {
            diesel::update(target)
                .set(users::banned_until.eq(ban))
                .execute(conn)?;
        }
        diesel::update(target)
            .set(users::updated_at.eq(now))
            .execute(conn)?;
        user::find_with_identities(conn, id)?.ok_or_else(user_not_found)
    })
    .await?;
    Ok(tokens::user_response(&user, &identities))
}

#[derive(Deserialize, Default)]
pub struct DeleteParams {
    pub should_soft_delete: Option<bool>,
}

pub async fn admin_user_delete(
    state: web::Data<AppState>,
    _admin: AdminAuth,
    path: web::Path<String>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let id = parse_user_id(&path)?;
    // The body is optional; when present it must be valid JSON.
    let params: DeleteParams = if body.iter().all(u8::is_ascii_whitespace) {
        DeleteParams::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                ErrorCode::BadJson,
                format!(
                    "Could not parse request body as JSON: {}",
                    crate::error::redact_deserialize_message(&e.to_string())
                ),
            )
        })?
    };
    let soft = params.should_soft_delete.unwrap_or(false);
    db::transaction(&state.pool, move |conn| {
        let target = users::table.find(id);
        if soft {
            // Soft delete keeps the row for audit but frees the e-mail/phone and ends all access.
            let now = db_now();
            let n = diesel::update(target)
                .set((
                    users::deleted_at.eq(now),
                    users::email.eq(None::<String>),
                    users::phone.eq(None::<String>),
                    users::encrypted_password.eq(""),
                    users::updated_at.eq(now),
                ))
                .execute(conn)?;
            if n == 0 {
                return Err(user_not_found());
            }
            session::delete_for_user(conn, id, None)?;
            diesel::delete(
                crate::db::schema::identities::table
                    .filter(crate::db::schema::identities::user_id.eq(id)),
            )
            .execute(conn)?;
        } else if diesel::delete(target).execute(conn)? == 0 {
            return Err(user_not_found());
        }
        Ok(())
    })
    .await?;
    Ok(HttpResponse::Ok().insert_header(no_store()).json(json!({})))
}
