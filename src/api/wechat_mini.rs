//! `/wechat_mini/*`: the routes MemFire's `supabase-wechat-stable-v2` SDK calls
//! (`signInWithWechat`, `wechatBindPhone`, `wechatBindAccount`, `getUnlimitedQRCode`).

use actix_web::dev::Payload;
use actix_web::http::header::REFERER;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use base64::Engine;
use diesel::prelude::*;
use diesel::sql_types::Text;
use futures_util::future::LocalBoxFuture;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::user::{add_provider, set_phone};
use crate::auth::extract::{AuthUser, ClientInfo, SignedToken};
use crate::config::WechatApp;
use crate::db;
use crate::db::models::identity::{self, Identity, NewIdentity};
use crate::db::models::user::{self, NewUser, User};
use crate::db::models::wechat as store;
use crate::db::schema::{identities, users};
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::rate_limit::Limit;
use crate::state::AppState;
use crate::tokens::{self, db_now, AMR_OAUTH};
use crate::wechat::client::{CodeSession, QrCodeRequest};
use crate::wechat::crypto;

/// The identity provider name of WeChat mini-program identities.
pub const PROVIDER: &str = "wechat";

/// Query and body parameters of the WeChat routes (`code`, optional `appid`, legacy payload).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct WechatParams {
    pub code: Option<String>,
    pub appid: Option<String>,
    pub encrypted_data: Option<String>,
    pub iv: Option<String>,
    pub raw_data: Option<String>,
    pub signature: Option<String>,
}

impl WechatParams {
    /// Body fields win over query fields (the SDK sends both for login).
    fn merge(query: WechatParams, body: Option<WechatParams>) -> WechatParams {
        let body = body.unwrap_or_default();
        WechatParams {
            code: body.code.or(query.code),
            appid: body.appid.or(query.appid),
            encrypted_data: body.encrypted_data.or(query.encrypted_data),
            iv: body.iv.or(query.iv),
            raw_data: body.raw_data.or(query.raw_data),
            signature: body.signature.or(query.signature),
        }
    }

    fn code(&self) -> ApiResult<&str> {
        match self.code.as_deref().map(str::trim) {
            Some(code) if !code.is_empty() && code.len() <= 256 => Ok(code),
            Some(code) if !code.is_empty() => Err(ApiError::validation("code is too long")),
            _ => Err(ApiError::validation("code is required")),
        }
    }
}

/// The mini-program a request is for: explicit `appid`, else `wx.request`'s `Referer`, else
/// the default app (see [`crate::wechat::WechatService::resolve_app`]).
fn request_app(state: &AppState, appid: Option<&str>, req: &HttpRequest) -> ApiResult<WechatApp> {
    let referer = req.headers().get(REFERER).and_then(|v| v.to_str().ok());
    state.wechat.resolve_app(appid, referer).cloned()
}

/// The parameters of a WeChat route: the query string and, on POST, a JSON body (the SDK sends
/// GET; both are accepted so plain `wx.request` POSTs work too).
pub struct WechatInput(WechatParams);

impl FromRequest for WechatInput {
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let query = web::Query::<WechatParams>::from_query(req.query_string())
            .map(web::Query::into_inner)
            .map_err(|e| {
                ApiError::validation(format!(
                    "Invalid query parameters: {}",
                    crate::error::redact_deserialize_message(&e.to_string())
                ))
            });
        let body = web::Bytes::from_request(req, payload);
        Box::pin(async move {
            let body = body.await?;
            Ok(WechatInput(WechatParams::merge(
                query?,
                optional_body(&body)?,
            )))
        })
    }
}

/// Reads an optional JSON body (GET requests and empty POSTs have none).
fn optional_body(body: &web::Bytes) -> ApiResult<Option<WechatParams>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    serde_json::from_slice(body).map(Some).map_err(|e| {
        ApiError::bad_request(
            ErrorCode::BadJson,
            format!(
                "Could not parse request body as JSON: {}",
                crate::error::redact_deserialize_message(&e.to_string())
            ),
        )
    })
}

// ---- login --------------------------------------------------------------------------------

pub async fn login(
    state: web::Data<AppState>,
    req: HttpRequest,
    client: ClientInfo,
    WechatInput(params): WechatInput,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatLogin, &client).await?;
    let app = request_app(&state, params.appid.as_deref(), &req)?;
    let code = params.code()?.to_string();
    let session = state.wechat.code2session(&app, &code).await?;
    // The optional legacy profile is checked before anything is written.
    let profile = match (&params.encrypted_data, &params.iv) {
        (Some(data), Some(iv)) => Some(legacy_profile(
            &app,
            &session,
            data,
            iv,
            params.raw_data.as_deref(),
            params.signature.as_deref(),
        )?),
        (None, None) => None,
        _ => {
            return Err(ApiError::validation(
                "encryptedData and iv must be sent together",
            ))
        }
    };
    let config = state.config.clone();
    let grant = db::transaction(&state.pool, move |conn| {
        let (user, created) = find_or_create_user(conn, &config, &app, &session)?;
        if user.is_banned(chrono::Utc::now()) {
            return Err(ApiError::bad_request(
                ErrorCode::UserBanned,
                "User is banned",
            ));
        }
        let user = match profile {
            Some(profile) => fill_profile(conn, user, profile)?,
            None => user,
        };
        store::save_session_key(
            conn,
            &app.app_id,
            &session.openid,
            user.id,
            &session.session_key,
        )?;
        let action = if created { "user_signedup" } else { "login" };
        tokens::issue_session(conn, &config, user, AMR_OAUTH, action, &client)
    })
    .await?;
    tokens::token_response(&state, &grant, None)
}

/// Verifies and decrypts the legacy `wx.getUserInfo` payload with the session_key just issued.
fn legacy_profile(
    app: &WechatApp,
    session: &CodeSession,
    encrypted_data: &str,
    iv: &str,
    raw_data: Option<&str>,
    signature: Option<&str>,
) -> ApiResult<Map<String, Value>> {
    let failed = |e: crypto::CryptoError| {
        ApiError::bad_request(
            ErrorCode::WechatDecryptFailed,
            format!("Could not verify the WeChat user info: {e}"),
        )
    };
    if let (Some(raw), Some(sig)) = (raw_data, signature) {
        crypto::verify_signature(raw, &session.session_key, sig).map_err(failed)?;
    }
    let info =
        crypto::decrypt(&session.session_key, encrypted_data, iv, &app.app_id).map_err(failed)?;
    if info["openId"]
        .as_str()
        .is_some_and(|id| id != session.openid)
    {
        return Err(ApiError::bad_request(
            ErrorCode::WechatDecryptFailed,
            "The WeChat user info belongs to another user",
        ));
    }
    // WeChat's camelCase profile fields, under the names mini-program apps use in user_metadata.
    let mut profile = Map::new();
    for (from, to) in [
        ("nickName", "nickname"),
        ("avatarUrl", "avatar"),
        ("gender", "gender"),
        ("city", "city"),
        ("province", "province"),
        ("country", "country"),
        ("language", "language"),
    ] {
        if let Some(value) = info
            .get(from)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
        {
            profile.insert(to.to_string(), value.clone());
        }
    }
    Ok(profile)
}

/// Adds profile keys the user has not set themselves.
fn fill_profile(
    conn: &mut PgConnection,
    user: User,
    profile: Map<String, Value>,
) -> ApiResult<User> {
    let mut metadata = user.user_metadata();
    let before = metadata.len();
    for (k, v) in profile {
        metadata.entry(k).or_insert(v);
    }
    if metadata.len() == before {
        return Ok(user);
    }
    Ok(diesel::update(users::table.find(user.id))
        .set(users::raw_user_meta_data.eq(Value::Object(metadata)))
        .returning(User::as_returning())
        .get_result(conn)?)
}

/// Serialises every request about one WeChat person (by unionid, else openid) until commit,
/// so simultaneous first logins create one user.
fn lock_person(conn: &mut PgConnection, session: &CodeSession) -> QueryResult<()> {
    let key = format!(
        "wechat:{}",
        session.unionid.as_deref().unwrap_or(&session.openid)
    );
    diesel::sql_query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind::<Text, _>(key)
        .execute(conn)?;
    Ok(())
}

fn identity_data(app: &WechatApp, session: &CodeSession) -> Map<String, Value> {
    let mut data = Map::new();
    data.insert("sub".into(), json!(session.openid));
    data.insert("openid".into(), json!(session.openid));
    data.insert("appid".into(), json!(app.app_id));
    if let Some(unionid) = &session.unionid {
        data.insert("unionid".into(), json!(unionid));
    }
    data
}

/// The user behind a WeChat identity of another app with the same unionid.
fn find_by_unionid(conn: &mut PgConnection, unionid: &str) -> QueryResult<Option<Identity>> {
    identities::table
        .filter(identities::provider.eq(PROVIDER))
        .filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>("identity_data->>'unionid' = ")
                .bind::<Text, _>(unionid),
        )
        .order(identities::created_at.asc())
        .select(Identity::as_select())
        .first(conn)
        .optional()
}

/// The user behind this app's openid, with the identity refreshed (last sign-in, and a unionid
/// that appears once the app is bound to WeChat Open Platform).
fn returning_user(
    conn: &mut PgConnection,
    app: &WechatApp,
    session: &CodeSession,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<Option<User>> {
    let found: Option<(Identity, User)> = identities::table
        .inner_join(users::table)
        .filter(identities::provider.eq(PROVIDER))
        .filter(identities::provider_id.eq(&session.openid))
        .select((Identity::as_select(), User::as_select()))
        .first(conn)
        .optional()?;
    let Some((existing, user)) = found else {
        return Ok(None);
    };
    let mut data = existing
        .identity_data
        .as_object()
        .cloned()
        .unwrap_or_default();
    data.extend(identity_data(app, session));
    diesel::update(identities::table.find(existing.id))
        .set((
            identities::identity_data.eq(Value::Object(data)),
            identities::last_sign_in_at.eq(now),
            identities::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(Some(user))
}

/// Finds the user by openid, then by unionid (linking this app's openid to them), else creates
/// one. Returns the user and whether it was created.
fn find_or_create_user(
    conn: &mut PgConnection,
    config: &crate::config::Config,
    app: &WechatApp,
    session: &CodeSession,
) -> ApiResult<(User, bool)> {
    let now = db_now();
    // Returning users, the common case, need no lock: their identity already exists.
    if let Some(user) = returning_user(conn, app, session, now)? {
        return Ok((user, false));
    }
    lock_person(conn, session)?;
    // Another request may have created the user while this one waited for the lock.
    if let Some(user) = returning_user(conn, app, session, now)? {
        return Ok((user, false));
    }
    if let Some(unionid) = &session.unionid {
        if let Some(sibling) = find_by_unionid(conn, unionid)? {
            identity::insert(
                conn,
                &NewIdentity::new(
                    sibling.user_id,
                    PROVIDER,
                    &session.openid,
                    identity_data(app, session),
                    now,
                ),
            )?;
            let user = user::find_by_id(conn, sibling.user_id)?
                .ok_or_else(|| ApiError::internal("identity without user"))?;
            return Ok((user, false));
        }
    }
    if config.accounts.disable_signup {
        return Err(ApiError::unprocessable(
            ErrorCode::SignupDisabled,
            "Signups not allowed for this instance",
        ));
    }
    let id = Uuid::new_v4();
    let mut new = NewUser::new(id, &config.jwt.aud, &config.jwt.default_group_name, now);
    new.raw_app_meta_data = json!({"provider": PROVIDER, "providers": [PROVIDER]});
    let user = user::insert(conn, &new)?;
    identity::insert(
        conn,
        &NewIdentity::new(
            id,
            PROVIDER,
            &session.openid,
            identity_data(app, session),
            now,
        ),
    )?;
    Ok((user, true))
}

// ---- bind_phone ---------------------------------------------------------------------------

pub async fn bind_phone(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AuthUser,
    client: ClientInfo,
    WechatInput(params): WechatInput,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatPhone, &client).await?;
    let app = request_app(&state, params.appid.as_deref(), &req)?;
    let user_id = auth.user.id;
    let (country_code, pure) = match (&params.code, &params.encrypted_data, &params.iv) {
        (Some(_), _, _) => {
            let info = state.wechat.phone_number(&app, params.code()?).await?;
            (info.country_code, info.pure_phone_number)
        }
        (None, Some(data), Some(iv)) => {
            // Legacy getPhoneNumber: decrypt with the session_key of the user's last login.
            let app_id = app.app_id.clone();
            let key = db::run(&state.pool, move |conn| {
                Ok(store::session_key_for_user(conn, &app_id, user_id)?)
            })
            .await?
            .ok_or_else(|| {
                ApiError::bad_request(
                    ErrorCode::WechatDecryptFailed,
                    "No WeChat session for this user, call signInWithWechat first",
                )
            })?;
            let info = crypto::decrypt(&key, data, iv, &app.app_id).map_err(|e| {
                ApiError::bad_request(
                    ErrorCode::WechatDecryptFailed,
                    format!("Could not decrypt the phone number: {e}"),
                )
            })?;
            let country = info["countryCode"]
                .as_str()
                .map(str::to_string)
                .or_else(|| info["countryCode"].as_i64().map(|n| n.to_string()));
            match (country, info["purePhoneNumber"].as_str()) {
                (Some(c), Some(p)) => (c, p.to_string()),
                _ => {
                    return Err(ApiError::bad_request(
                        ErrorCode::WechatDecryptFailed,
                        "The decrypted phone payload is incomplete",
                    ))
                }
            }
        }
        _ => {
            return Err(ApiError::validation(
                "code (or encryptedData and iv) is required",
            ))
        }
    };
    // GoTrue's phone format: country code + number, digits only.
    let digits: String = format!("{country_code}{pure}")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let phone = super::validate::phone(&digits).map_err(|_| {
        ApiError::new(
            actix_web::http::StatusCode::BAD_GATEWAY,
            ErrorCode::WechatUnavailable,
            "WeChat returned an invalid phone number",
        )
    })?;
    let (user, identities) = db::transaction(&state.pool, move |conn| {
        if auth.user.phone.as_deref() != Some(phone.as_str())
            || auth.user.phone_confirmed_at.is_none()
        {
            set_phone(conn, user_id, &phone, true, db_now())?;
        }
        user::find_with_identities(conn, user_id)?
            .ok_or_else(|| ApiError::internal("user vanished"))
    })
    .await?;
    Ok(tokens::user_response(&user, &identities))
}

// ---- bind_account -------------------------------------------------------------------------

pub async fn bind_account(
    state: web::Data<AppState>,
    req: HttpRequest,
    auth: AuthUser,
    client: ClientInfo,
    WechatInput(params): WechatInput,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatLogin, &client).await?;
    let app = request_app(&state, params.appid.as_deref(), &req)?;
    let session = state.wechat.code2session(&app, params.code()?).await?;
    let user_id = auth.user.id;
    let (user, identities) = db::transaction(&state.pool, move |conn| {
        lock_person(conn, &session)?;
        let taken = || {
            ApiError::unprocessable(
                ErrorCode::IdentityAlreadyExists,
                "This WeChat account is already linked to another user",
            )
        };
        let existing = identity::find(conn, PROVIDER, &session.openid)?;
        let sibling = match &session.unionid {
            Some(unionid) => find_by_unionid(conn, unionid)?,
            None => None,
        };
        if existing
            .iter()
            .chain(sibling.iter())
            .any(|i| i.user_id != user_id)
        {
            return Err(taken());
        }
        if existing.is_none() {
            identity::insert(
                conn,
                &NewIdentity::new(
                    user_id,
                    PROVIDER,
                    &session.openid,
                    identity_data(&app, &session),
                    db_now(),
                ),
            )?;
            add_provider(conn, user_id, PROVIDER)?;
        }
        store::save_session_key(
            conn,
            &app.app_id,
            &session.openid,
            user_id,
            &session.session_key,
        )?;
        user::find_with_identities(conn, user_id)?
            .ok_or_else(|| ApiError::internal("user vanished"))
    })
    .await?;
    Ok(tokens::user_response(&user, &identities))
}

// ---- unlimited_qrcode ---------------------------------------------------------------------

#[derive(Deserialize)]
pub struct QrCodeParams {
    pub scene: Option<String>,
    pub page: Option<String>,
    pub check_path: Option<bool>,
    pub env_version: Option<String>,
    pub width: Option<u32>,
    pub auto_color: Option<bool>,
    pub line_color: Option<LineColor>,
    pub is_hyaline: Option<bool>,
    pub appid: Option<String>,
}

#[derive(Deserialize, Clone, Copy)]
pub struct LineColor {
    pub r: u8,
    pub g: u8,
    pub b: u8,
}

/// Characters WeChat allows in `scene` (`getUnlimitedQRCode` doc).
fn valid_scene_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$&'()*+,/:;=?@-._~".contains(c)
}

/// Rejects what WeChat would reject, before spending the app's quota.
fn validate_qrcode(p: QrCodeParams) -> ApiResult<QrCodeRequest> {
    let scene = p.scene.unwrap_or_default();
    if scene.is_empty() || scene.chars().count() > 32 {
        return Err(ApiError::validation(
            "scene is required and must be at most 32 characters",
        ));
    }
    if !scene.chars().all(valid_scene_char) {
        return Err(ApiError::validation(
            "scene may only contain 0-9 A-Z a-z and !#$&'()*+,/:;=?@-._~",
        ));
    }
    if let Some(page) = p.page.as_deref().filter(|p| !p.is_empty()) {
        if page.starts_with('/')
            || page.contains('?')
            || page.len() > 256
            || page.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(ApiError::validation(
                "page must be a path like pages/index/index, without a leading / or a query",
            ));
        }
    }
    if let Some(env) = p.env_version.as_deref() {
        if !["release", "trial", "develop"].contains(&env) {
            return Err(ApiError::validation(
                "env_version must be release, trial or develop",
            ));
        }
    }
    if let Some(width) = p.width {
        if !(280..=1280).contains(&width) {
            return Err(ApiError::validation("width must be between 280 and 1280"));
        }
    }
    Ok(QrCodeRequest {
        scene,
        page: p.page.filter(|p| !p.is_empty()),
        check_path: p.check_path,
        env_version: p.env_version,
        width: p.width,
        auto_color: p.auto_color,
        line_color: p.line_color.map(|c| json!({"r": c.r, "g": c.g, "b": c.b})),
        is_hyaline: p.is_hyaline,
    })
}

/// Any token signed with the project's secret (the anon key the SDK sends, a user's token or
/// the service-role key): QR codes spend the app's WeChat quota, so anonymous callers are out.
pub async fn unlimited_qrcode(
    state: web::Data<AppState>,
    req: HttpRequest,
    _caller: SignedToken,
    client: ClientInfo,
    params: web::Json<QrCodeParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::WechatQrcode, &client).await?;
    let params = params.into_inner();
    let app = request_app(&state, params.appid.as_deref(), &req)?;
    let request = validate_qrcode(params)?;
    let image = state.wechat.unlimited_qrcode(&app, &request).await?;
    let encoded = base64::engine::general_purpose::STANDARD.encode(image);
    Ok(HttpResponse::Ok()
        .insert_header(no_store())
        .json(json!({ "imgBase64": encoded })))
}
