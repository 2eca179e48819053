//! The WeChat server API emulator.
//!
//! Answers like `api.weixin.qq.com` (same paths, bodies, errcodes, HTTP 200 for errors) so
//! weauth's tests and local development run without WeChat. A control API under `/emulator/`
//! plays the phone's part (`wx.login` codes, phone-button codes, legacy encrypted data) and
//! injects failures. All state is in memory.
//!
//! Files: [`state`] the rules and memory, [`wechat_api`] the WeChat endpoints, [`control`] the
//! `/emulator/*` endpoints, [`wxacode`] QR validation/rendering, [`phone`] E.164 splitting and
//! [`crypto`] the legacy AES/sha1 open-data crypto.

mod control;
mod crypto;
mod oauth;
mod phone;
mod state;
mod wechat_api;
mod wxacode;

#[cfg(test)]
mod tests;

use actix_web::http::StatusCode;
use actix_web::{web, HttpResponse};
use serde_json::json;

use state::{errmsg, rid, WxError};

pub use state::WechatEmulator;

/// App id of the built-in development app the binary serves when no app is configured.
pub const DEV_APP_ID: &str = "wx0000000000000dev";
/// Its secret: public on purpose, like weauth's development JWT secret.
pub const DEV_APP_SECRET: &str = "weauth-dev-secret";

/// WeChat labels its JSON this way (and some endpoints even say text/plain).
const WX_JSON: &str = "application/json; encoding=utf-8";

/// Mounts the WeChat paths and the `/emulator/*` control routes; they read the
/// [`WechatEmulator`] from the app data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    // WeChat endpoints take every method: each handler answers a wrong one the way WeChat does.
    cfg.route(
        "/sns/jscode2session",
        web::route().to(wechat_api::jscode2session),
    )
    .route("/cgi-bin/token", web::route().to(wechat_api::token))
    .route(
        "/cgi-bin/stable_token",
        web::route().to(wechat_api::stable_token),
    )
    .route(
        "/wxa/business/getuserphonenumber",
        web::route().to(wechat_api::get_user_phone_number),
    )
    .route(
        "/wxa/getwxacodeunlimit",
        web::route().to(wechat_api::get_wxa_code_unlimit),
    )
    .route(
        "/sns/oauth2/access_token",
        web::route().to(oauth::access_token),
    )
    .route(
        "/sns/oauth2/refresh_token",
        web::route().to(oauth::refresh_token),
    )
    .route("/sns/userinfo", web::route().to(oauth::userinfo))
    .route("/sns/auth", web::route().to(oauth::auth))
    // open.weixin.qq.com's pages (WEAUTH_WECHAT_OPEN_URL points here in development).
    .route("/connect/qrconnect", web::get().to(oauth::qrconnect))
    .route(
        "/connect/oauth2/authorize",
        web::get().to(oauth::oauth2_authorize),
    )
    .route("/connect/confirm", web::post().to(oauth::confirm))
    .route("/connect/deny", web::post().to(oauth::deny));
    // Control endpoints answer a wrong method with JSON too, not actix's empty 405.
    for (path, route) in [
        ("/emulator/login-code", web::post().to(control::login_code)),
        ("/emulator/phone-code", web::post().to(control::phone_code)),
        ("/emulator/oauth-code", web::post().to(oauth::oauth_code)),
        ("/emulator/user-info", web::post().to(control::user_info)),
        (
            "/emulator/phone-encrypted",
            web::post().to(control::phone_encrypted),
        ),
        ("/emulator/fail-next", web::post().to(control::fail_next)),
        (
            "/emulator/expire-access-tokens",
            web::post().to(control::expire_access_tokens),
        ),
        ("/emulator/stats", web::get().to(control::stats)),
        ("/emulator/reset", web::post().to(control::reset)),
    ] {
        cfg.service(
            web::resource(path)
                .route(route)
                .default_service(web::to(crate::method_not_allowed)),
        );
    }
}

/// A WeChat error body, HTTP 200 like the real thing (clients must parse the body).
fn wx_error(err: WxError) -> HttpResponse {
    wx_error_with_status(err.code, StatusCode::OK)
}

fn wx_error_with_status(code: i64, status: StatusCode) -> HttpResponse {
    let body = json!({ "errcode": code, "errmsg": format!("{}, rid: {}", errmsg(code), rid()) });
    HttpResponse::build(status)
        .content_type(WX_JSON)
        .body(body.to_string())
}

/// A WeChat success body.
fn wx_json(body: serde_json::Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(WX_JSON)
        .body(body.to_string())
}
