//! The control API (`/emulator/*`): plays the phone's part and steers the emulator.
//!
//! Every endpoint answers JSON; bad input is HTTP 400 `{"error": "..."}`.

use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::crypto;
use super::phone::{split_e164, Phone};
use super::state::{openid, unionid, unix_now, Api, Failure, Session, WechatEmulator};
use crate::control::{bad_request, parse, ControlError, Reply};

/// `delay_ms` above this is surely a mistake (and would tie up a connection for ages).
const MAX_DELAY_MS: u64 = 600_000;

fn default_true() -> bool {
    true
}

fn default_times() -> u32 {
    1
}

fn default_status() -> u16 {
    200
}

#[derive(Deserialize)]
pub struct LoginCodeRequest {
    appid: String,
    user: String,
    #[serde(default = "default_true")]
    unionid: bool,
}

/// `POST /emulator/login-code` `{"appid","user","unionid"?}` → `{"code"}`.
pub async fn login_code(body: web::Bytes, em: web::Data<WechatEmulator>) -> Reply {
    let req: LoginCodeRequest = parse(&body)?;
    known_app(&em, &req.appid)?;
    if req.user.trim().is_empty() {
        return Err(bad_request("user must not be empty"));
    }
    let code = em
        .lock()
        .issue_login_code(&req.appid, &req.user, req.unionid, Instant::now());
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

#[derive(Deserialize)]
pub struct PhoneCodeRequest {
    appid: String,
    phone: String,
}

/// `POST /emulator/phone-code` `{"appid","phone":"+8613800138000"}` → `{"code"}`.
pub async fn phone_code(body: web::Bytes, em: web::Data<WechatEmulator>) -> Reply {
    let req: PhoneCodeRequest = parse(&body)?;
    known_app(&em, &req.appid)?;
    let phone = split_e164(&req.phone).map_err(bad_request)?;
    let code = em
        .lock()
        .issue_phone_code(&req.appid, phone, Instant::now());
    Ok(HttpResponse::Ok().json(json!({ "code": code })))
}

#[derive(Deserialize)]
pub struct UserInfoRequest {
    appid: String,
    user: String,
    #[serde(rename = "userInfo")]
    user_info: Option<Map<String, Value>>,
}

/// `POST /emulator/user-info` `{"appid","user","userInfo"?}` → what legacy `wx.getUserInfo` gives:
/// `{"errMsg","userInfo","rawData","signature","encryptedData","iv"}`.
pub async fn user_info(body: web::Bytes, em: web::Data<WechatEmulator>) -> Reply {
    let req: UserInfoRequest = parse(&body)?;
    let session = current_session(&em, &req.appid, &req.user)?;
    // A profile like the ones WeChat returned before profiles were anonymised.
    let user_info = req.user_info.unwrap_or_else(|| {
        let mut m = Map::new();
        for (k, v) in [
            ("nickName", json!(req.user)),
            ("gender", json!(0)),
            ("language", json!("zh_CN")),
            ("city", json!("")),
            ("province", json!("")),
            ("country", json!("")),
            ("avatarUrl", json!("")),
        ] {
            m.insert(k.to_string(), v);
        }
        m
    });
    let raw_data = Value::Object(user_info.clone()).to_string();
    let signature = crypto::signature(&raw_data, &session.session_key);

    let mut payload = Map::new();
    payload.insert("openId".into(), json!(openid(&req.appid, &req.user)));
    payload.extend(user_info.clone());
    if session.with_unionid {
        payload.insert("unionId".into(), json!(unionid(&req.user)));
    }
    payload.insert(
        "watermark".into(),
        json!({ "timestamp": unix_now(), "appid": req.appid }),
    );
    let (encrypted_data, iv) = crypto::encrypt(
        &session.session_key,
        Value::Object(payload).to_string().as_bytes(),
    )
    .map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "errMsg": "getUserInfo:ok",
        "userInfo": user_info,
        "rawData": raw_data,
        "signature": signature,
        "encryptedData": encrypted_data,
        "iv": iv,
    })))
}

#[derive(Deserialize)]
pub struct PhoneEncryptedRequest {
    appid: String,
    user: String,
    phone: String,
}

/// `POST /emulator/phone-encrypted` `{"appid","user","phone"}` → legacy getPhoneNumber
/// `{"errMsg","encryptedData","iv"}`.
pub async fn phone_encrypted(body: web::Bytes, em: web::Data<WechatEmulator>) -> Reply {
    let req: PhoneEncryptedRequest = parse(&body)?;
    let session = current_session(&em, &req.appid, &req.user)?;
    let phone: Phone = split_e164(&req.phone).map_err(bad_request)?;
    let payload = json!({
        "phoneNumber": phone.phone_number(),
        "purePhoneNumber": phone.pure,
        "countryCode": phone.country_code,
        "watermark": { "appid": req.appid, "timestamp": unix_now() },
    });
    let (encrypted_data, iv) =
        crypto::encrypt(&session.session_key, payload.to_string().as_bytes()).map_err(internal)?;
    Ok(HttpResponse::Ok().json(json!({
        "errMsg": "getPhoneNumber:ok",
        "encryptedData": encrypted_data,
        "iv": iv,
    })))
}

#[derive(Deserialize)]
pub struct FailNextRequest {
    api: String,
    errcode: Option<i64>,
    #[serde(default = "default_times")]
    times: u32,
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    garbage: bool,
    #[serde(default = "default_status")]
    http_status: u16,
}

/// `POST /emulator/fail-next` `{"api","errcode"?,"times"?,"delay_ms"?,"garbage"?,"http_status"?}`
/// → `{}`. Queued behind earlier instructions for the same API.
pub async fn fail_next(body: web::Bytes, em: web::Data<WechatEmulator>) -> Reply {
    let req: FailNextRequest = parse(&body)?;
    let Some(api) = Api::from_name(&req.api) else {
        let names: Vec<&str> = Api::ALL.iter().map(|a| a.name()).collect();
        return Err(bad_request(format!(
            "unknown api {:?}; one of {names:?}",
            req.api
        )));
    };
    if req.times == 0 {
        return Err(bad_request("times must be at least 1"));
    }
    if !(200..=599).contains(&req.http_status) {
        return Err(bad_request("http_status must be between 200 and 599"));
    }
    if req.delay_ms > MAX_DELAY_MS {
        return Err(bad_request(format!(
            "delay_ms must be at most {MAX_DELAY_MS}"
        )));
    }
    if req.errcode.is_none() && !req.garbage && req.http_status == 200 && req.delay_ms == 0 {
        return Err(bad_request(
            "give errcode, garbage, http_status or delay_ms",
        ));
    }
    let failure = Failure {
        errcode: req.errcode,
        times: req.times,
        delay: Duration::from_millis(req.delay_ms),
        garbage: req.garbage,
        http_status: req.http_status,
    };
    em.lock().push_failure(api, failure);
    Ok(HttpResponse::Ok().json(json!({})))
}

#[derive(Deserialize)]
pub struct ExpireRequest {
    appid: Option<String>,
}

/// `POST /emulator/expire-access-tokens` `{"appid"?}` → `{"expired": n}`.
pub async fn expire_access_tokens(body: web::Bytes, em: web::Data<WechatEmulator>) -> Reply {
    let req: ExpireRequest = parse(&body)?;
    if let Some(app_id) = &req.appid {
        known_app(&em, app_id)?;
    }
    let expired = em
        .lock()
        .expire_tokens(req.appid.as_deref(), Instant::now());
    Ok(HttpResponse::Ok().json(json!({ "expired": expired })))
}

/// `GET /emulator/stats` → the counters.
pub async fn stats(em: web::Data<WechatEmulator>) -> Reply {
    let stats = em.lock().stats.clone();
    Ok(HttpResponse::Ok().json(stats))
}

/// `POST /emulator/reset` → `{}`: forgets codes, tokens, session keys, counters and failures.
pub async fn reset(em: web::Data<WechatEmulator>) -> Reply {
    em.lock().reset();
    em.oauth().reset();
    Ok(HttpResponse::Ok().json(json!({})))
}

fn internal(message: String) -> ControlError {
    ControlError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message,
    }
}

fn known_app(em: &WechatEmulator, app_id: &str) -> Result<(), ControlError> {
    if em.has_app(app_id) {
        Ok(())
    } else {
        Err(bad_request(format!(
            "unknown appid {app_id:?}; the emulator serves {:?}",
            em.app_ids()
        )))
    }
}

/// The user's current session key in the app, which legacy encrypted data is keyed with.
fn current_session(em: &WechatEmulator, app_id: &str, user: &str) -> Result<Session, ControlError> {
    known_app(em, app_id)?;
    em.lock().session(app_id, user).cloned().ok_or_else(|| {
        bad_request(format!(
            "{user:?} has no session in {app_id}: exchange a login code with /sns/jscode2session first"
        ))
    })
}
