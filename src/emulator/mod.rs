//! The WeChat API emulator (`weauth wechat-emulator`).
//!
//! An HTTP server that answers like `api.weixin.qq.com` (same paths, bodies, errcodes, HTTP 200
//! for errors) so weauth's tests and local development run without WeChat. A control API under
//! `/emulator/` plays the phone's part (`wx.login` codes, phone-button codes, legacy encrypted
//! data) and injects failures. All state is in memory.
//!
//! Files: [`state`] the rules and memory, [`wechat_api`] the WeChat endpoints, [`control`] the
//! `/emulator/*` endpoints, [`wxacode`] QR validation/rendering, [`phone`] E.164 splitting and
//! [`crypto`] the legacy AES/sha1 open-data crypto.

mod control;
mod crypto;
mod phone;
mod state;
mod wechat_api;
mod wxacode;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;
use tracing_actix_web::TracingLogger;

use crate::config::{Config, Secret, WechatApp, WechatConfig};
use state::{errmsg, rid, Emulator, WxError};

/// App id of the built-in development app served when no app is configured.
pub const DEV_APP_ID: &str = "wx0000000000000dev";
/// Its secret: public on purpose, like the development JWT secret.
pub const DEV_APP_SECRET: &str = "weauth-dev-secret";

/// WeChat labels its JSON this way (and some endpoints even say text/plain).
const WX_JSON: &str = "application/json; encoding=utf-8";

/// Starts the emulator on an already-bound listener (tests bind 127.0.0.1:0). Apps come from
/// weauth's own config. The returned server must be awaited or spawned on an actix/tokio runtime.
pub fn start(wechat: &WechatConfig, listener: TcpListener) -> std::io::Result<Server> {
    let apps: BTreeMap<String, Secret> = wechat
        .apps
        .values()
        .map(|app| (app.app_id.clone(), app.secret.clone()))
        .collect();
    let emulator = web::Data::new(Emulator::new(apps));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(emulator.clone())
            .wrap(TracingLogger::default())
            .configure(configure)
            .default_service(web::to(not_found))
    })
    // A development tool: two workers are plenty, and tests should stop quickly.
    .workers(2)
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(server)
}

/// `weauth wechat-emulator`: binds host:port, logs the address and the configured app ids
/// (never secrets), serves until SIGINT/SIGTERM.
pub fn run(
    config: &Config,
    host: &str,
    port: u16,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut wechat = config.wechat.clone();
    if wechat.apps.is_empty() {
        // Zero-config start: one app whose (public) credentials are documented here and logged.
        wechat.apps.insert(
            DEV_APP_ID.to_string(),
            WechatApp {
                app_id: DEV_APP_ID.to_string(),
                secret: Secret::new(DEV_APP_SECRET),
            },
        );
        tracing::warn!(
            app_id = DEV_APP_ID,
            secret = DEV_APP_SECRET,
            "no WeChat app configured (GOTRUE_EXTERNAL_WECHAT_APP_ID/SECRET): serving the built-in development app with its public secret"
        );
    }
    let listener = TcpListener::bind((host, port))?;
    let address = listener.local_addr()?;
    let app_ids: Vec<&str> = wechat.apps.keys().map(String::as_str).collect();
    tracing::info!(
        %address,
        apps = ?app_ids,
        "WeChat emulator listening; point weauth at it with GOTRUE_EXTERNAL_WECHAT_API_URL=http://{address}"
    );
    actix_web::rt::System::new().block_on(async move { start(&wechat, listener)?.await })?;
    Ok(())
}

fn configure(cfg: &mut web::ServiceConfig) {
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
    );
    // Control endpoints answer a wrong method with JSON too, not actix's empty 405.
    for (path, route) in [
        ("/emulator/login-code", web::post().to(control::login_code)),
        ("/emulator/phone-code", web::post().to(control::phone_code)),
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
                .default_service(web::to(method_not_allowed)),
        );
    }
}

async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    control_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    control_error(
        StatusCode::NOT_FOUND,
        format!(
            "the WeChat emulator has no endpoint {} {}",
            req.method(),
            req.path()
        ),
    )
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

/// A control API error: `{"error": "..."}`.
fn control_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}
