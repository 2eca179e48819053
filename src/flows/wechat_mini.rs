//! The mini-program routes MemFire's `supabase-wechat-stable-v2` SDK calls (`signInWithWechat`,
//! `wechatBindPhone`, `wechatBindAccount`, `getUnlimitedQRCode`): the app is chosen, WeChat is
//! asked (`providers::wechat`), and the identity goes through [`super::linking`].

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::account::{user_not_found, AccountChanges};
use super::linking::{self, ExternalIdentity, Person};
use super::session::{self, AuthMethod, Session, SignIn};
use super::{validate, ClientInfo};
use crate::auth::new_refresh_token;
use crate::config::WechatApp;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::db_now;
use crate::models::identity::Identity;
use crate::models::sign_in::SessionKey;
use crate::models::user::{self, MetadataPatch, User, UserChanges};
use crate::models::wechat as store;
use crate::providers::wechat::client::{CodeSession, QrCodeRequest};
use crate::providers::wechat::{crypto, MINI_PROGRAM_PROVIDER, PROVIDERS};
use crate::state::AppState;

/// Which mini-program a request is for: an explicit `appid`, else the app id in the `Referer`
/// that `wx.request` sends (`https://servicewechat.com/{appid}/{version}/page-frame.html`),
/// else the default app.
pub fn resolve_app(
    state: &AppState,
    explicit: Option<&str>,
    referer: Option<&str>,
) -> ApiResult<WechatApp> {
    let wc = &state.config.wechat;
    if !wc.enabled {
        return Err(ApiError::bad_request(
            ErrorCode::ProviderDisabled,
            "WeChat login is not enabled",
        ));
    }
    let from_referer = referer
        .and_then(|r| r.strip_prefix("https://servicewechat.com/"))
        .and_then(|rest| rest.split('/').next());
    let app_id = explicit
        .filter(|a| !a.is_empty())
        .or(from_referer.filter(|a| !a.is_empty()))
        .or(wc.default_app_id.as_deref())
        .ok_or_else(|| {
            ApiError::bad_request(ErrorCode::ProviderDisabled, "WeChat login is not enabled")
        })?;
    wc.apps.get(app_id).cloned().ok_or_else(|| {
        let shown: String = app_id.chars().take(64).collect();
        ApiError::validation(format!("Unknown WeChat app id: {shown}"))
    })
}

/// A `wx.login` code (or a phone-button code): present, and not absurdly long.
pub fn check_code(code: Option<&str>) -> ApiResult<&str> {
    match code.map(str::trim) {
        Some(code) if !code.is_empty() && code.len() <= 256 => Ok(code),
        Some(code) if !code.is_empty() => Err(ApiError::validation("code is too long")),
        _ => Err(ApiError::validation("code is required")),
    }
}

/// The legacy `wx.getUserInfo` payload sent with a login.
pub struct LegacyUserInfo {
    pub encrypted_data: String,
    pub iv: String,
    pub raw_data: Option<String>,
    pub signature: Option<String>,
}

/// The mini-program identity of `session` in `app`.
fn external_identity(app: &WechatApp, session: &CodeSession) -> ExternalIdentity {
    external_identity_of(&app.app_id, session)
}

fn external_identity_of(app_id: &str, session: &CodeSession) -> ExternalIdentity {
    let mut data = Map::new();
    data.insert("sub".into(), json!(session.openid));
    data.insert("openid".into(), json!(session.openid));
    data.insert("appid".into(), json!(app_id));
    if let Some(unionid) = &session.unionid {
        data.insert("unionid".into(), json!(unionid));
    }
    ExternalIdentity {
        provider: MINI_PROGRAM_PROVIDER,
        provider_id: session.openid.clone(),
        person: session.unionid.as_ref().map(|unionid| Person {
            family: "wechat",
            providers: PROVIDERS,
            unionid: unionid.clone(),
        }),
        data,
    }
}

/// `signInWithWechat`: exchanges the code, signs the person in (creating the user on first
/// login), keeps the session_key for legacy decryption and issues a session.
pub async fn login(
    state: &Arc<AppState>,
    app: WechatApp,
    code: &str,
    legacy: Option<LegacyUserInfo>,
    client: ClientInfo,
) -> ApiResult<Session> {
    let session = state.wechat.code2session(&app, code).await?;
    // The optional legacy profile is checked before anything is written.
    let profile = legacy
        .map(|info| legacy_profile(&app, &session, &info))
        .transpose()?;
    // Returning users without a legacy profile: one statement. First sign-ins (and the rest):
    // the person lock, then one statement creating the user with the session.
    let simple = profile.is_none();
    let ext = external_identity(&app, &session);
    let fast = (
        state.clone(),
        app.app_id.clone(),
        session.clone(),
        client.clone(),
    );
    let slow_state = state.clone();
    db::fast_path(
        &state.pool,
        state.fast_commit(),
        move |conn, deadline| {
            let (state, app_id, code_session, client) = fast;
            if !simple {
                return Ok(None);
            }
            let ext = external_identity_of(&app_id, &code_session);
            let key = session_key_of(&app_id, &code_session);
            let sign_in = SignIn::first_factor(AuthMethod::OAuth, "login");
            let token = new_refresh_token();
            let new = session::new_session(&state, sign_in, &token, &client).guarded(deadline);
            match linking::sign_in_returning(conn, &ext, Some(&key), &new)? {
                Some(opened) => Ok(Some(session::finish(conn, &state, opened, sign_in, token)?)),
                None => Ok(None),
            }
        },
        move |conn| {
            let state = &slow_state;
            let key = session_key_of(&app.app_id, &session);
            if simple {
                let sign_in = SignIn::first_factor(AuthMethod::OAuth, "user_signedup");
                let token = new_refresh_token();
                let new = session::new_session(state, sign_in, &token, &client);
                if let Some(opened) =
                    linking::sign_in_creating(conn, state, &ext, Some(&key), &new)?
                {
                    return session::finish(conn, state, opened, sign_in, token);
                }
            }
            let now = db_now();
            let linking::Linked { user, created } = linking::sign_in(conn, state, &ext, now)?;
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
            let sign_in = SignIn::first_factor(AuthMethod::OAuth, action);
            session::issue(conn, state, user, sign_in, &client)
        },
    )
    .await
}

fn session_key_of<'a>(app_id: &'a str, session: &'a CodeSession) -> SessionKey<'a> {
    SessionKey {
        app_id,
        openid: &session.openid,
        session_key: &session.session_key,
    }
}

/// Verifies and decrypts the legacy `wx.getUserInfo` payload with the session_key just issued.
fn legacy_profile(
    app: &WechatApp,
    session: &CodeSession,
    info: &LegacyUserInfo,
) -> ApiResult<Map<String, Value>> {
    let failed = |e: crypto::CryptoError| {
        ApiError::bad_request(
            ErrorCode::WechatDecryptFailed,
            format!("Could not verify the WeChat user info: {e}"),
        )
    };
    if let (Some(raw), Some(sig)) = (&info.raw_data, &info.signature) {
        crypto::verify_signature(raw, &session.session_key, sig).map_err(failed)?;
    }
    let decrypted = crypto::decrypt(
        &session.session_key,
        &info.encrypted_data,
        &info.iv,
        &app.app_id,
    )
    .map_err(failed)?;
    if decrypted["openId"]
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
        if let Some(value) = decrypted
            .get(from)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
        {
            profile.insert(to.to_string(), value.clone());
        }
    }
    // What WeChat vouches for is still text from outside: the limits of every other metadata.
    validate::metadata(&profile)?;
    Ok(profile)
}

/// Adds profile keys the user has not set themselves (merged by the `UPDATE`, so a concurrent
/// change of the user's metadata is kept).
fn fill_profile(
    conn: &mut diesel::PgConnection,
    user: User,
    profile: Map<String, Value>,
) -> ApiResult<User> {
    let current = user.user_metadata();
    if profile.keys().all(|k| current.contains_key(k)) {
        return Ok(user);
    }
    let patch = MetadataPatch::fill(profile);
    let user = user::update_with_metadata(
        conn,
        user.id,
        UserChanges::default(),
        Some(&patch),
        None,
        db_now(),
    )?
    .ok_or_else(user_not_found)?;
    // The merged object is what gets stored, so it is what the size cap applies to.
    validate::metadata(&user.user_metadata())?;
    Ok(user)
}

/// Where the phone number comes from: a getPhoneNumber `code`, or the legacy encrypted payload.
pub enum PhoneProof {
    Code(String),
    Legacy { encrypted_data: String, iv: String },
}

/// `wechatBindPhone`: the number WeChat vouches for becomes the user's confirmed phone.
pub async fn bind_phone(
    state: &Arc<AppState>,
    app: WechatApp,
    current: User,
    proof: PhoneProof,
) -> ApiResult<(User, Vec<Identity>)> {
    let user_id = current.id;
    let (country_code, pure) = match proof {
        PhoneProof::Code(code) => {
            let info = state.wechat.phone_number(&app, &code).await?;
            (info.country_code, info.pure_phone_number)
        }
        PhoneProof::Legacy { encrypted_data, iv } => {
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
            let info = crypto::decrypt(&key, &encrypted_data, &iv, &app.app_id).map_err(|e| {
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
    };
    // GoTrue's phone format: country code + number, digits only.
    let digits: String = format!("{country_code}{pure}")
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let phone = validate::phone(&digits, None).map_err(|_| {
        ApiError::bad_gateway(
            ErrorCode::WechatUnavailable,
            "WeChat returned an invalid phone number",
        )
    })?;
    // The common case in one statement: the number is new to this user and nobody else's.
    let needs_change =
        current.phone.as_deref() != Some(phone.as_str()) || current.phone_confirmed_at.is_none();
    let fast = (current.clone(), phone.clone());
    let tx_state = state.clone();
    db::fast_path(
        &state.pool,
        db::FastCommit::Alone,
        move |conn, deadline| {
            let (current, phone) = fast;
            if !needs_change {
                return Ok(user::find_record(conn, current.id)?.map(|r| (r.user, r.identities)));
            }
            let now = db_now();
            let mut changes = AccountChanges::new(&current);
            changes.confirmed_phone(&phone, now);
            Ok(changes
                .write_confirmed_phone(conn, &phone, now, deadline)?
                .map(|r| (r.user, r.identities)))
        },
        move |conn| {
            if needs_change {
                let now = db_now();
                // The number is another account's: flow ② merges this fresh WeChat account
                // into it when that is safe (`flows::phone_merge`), else 422 `phone_exists`.
                if let Some(owner) = user::find_by_phone(conn, &phone)?.filter(|o| o.id != user_id)
                {
                    let merged = super::phone_merge::merge(
                        conn,
                        &tx_state,
                        &app.app_id,
                        &current,
                        &owner,
                        now,
                    )?;
                    return user::find_with_identities(conn, merged.id)?.ok_or_else(user_not_found);
                }
                let mut changes = AccountChanges::new(&current);
                changes.confirmed_phone(&phone, now);
                changes.write(conn, now)?;
            }
            user::find_with_identities(conn, user_id)?.ok_or_else(user_not_found)
        },
    )
    .await
}

/// `wechatBindAccount`: links this WeChat identity to the signed-in user.
pub async fn bind_account(
    state: &Arc<AppState>,
    app: WechatApp,
    current: User,
    code: &str,
) -> ApiResult<(User, Vec<Identity>)> {
    let session = state.wechat.code2session(&app, code).await?;
    db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let ext = external_identity(&app, &session);
        let added = linking::link(
            conn,
            current.id,
            &ext,
            now,
            "This WeChat account is already linked to another user",
        )?;
        if added {
            let mut changes = AccountChanges::new(&current);
            changes.add_provider(MINI_PROGRAM_PROVIDER);
            // A mini-program guest (signInAnonymously) who binds WeChat keeps their id.
            changes.identity_linked();
            changes.write(conn, now)?;
        }
        store::save_session_key(
            conn,
            &app.app_id,
            &session.openid,
            current.id,
            &session.session_key,
        )?;
        user::find_with_identities(conn, current.id)?.ok_or_else(user_not_found)
    })
    .await
}

/// The parameters of `getUnlimitedQRCode`, before validation.
#[derive(serde::Deserialize)]
pub struct QrCodeParams {
    pub scene: Option<String>,
    pub page: Option<String>,
    pub check_path: Option<bool>,
    pub env_version: Option<String>,
    pub width: Option<u32>,
    pub auto_color: Option<bool>,
    pub line_color: Option<LineColor>,
    pub is_hyaline: Option<bool>,
}

#[derive(serde::Deserialize, Clone, Copy)]
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

/// `getUnlimitedQRCode`: the image bytes WeChat renders.
pub async fn unlimited_qrcode(
    state: &Arc<AppState>,
    app: WechatApp,
    params: QrCodeParams,
) -> ApiResult<Vec<u8>> {
    let request = validate_qrcode(params)?;
    Ok(state.wechat.unlimited_qrcode(&app, &request).await?)
}
