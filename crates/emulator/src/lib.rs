//! weauth-emulator: one HTTP server that emulates the outside services weauth talks to, so that
//! weauth's tests and local development run without them. All state is in memory.
//!
//! Today that is WeChat's server API ([`wechat`]: `api.weixin.qq.com`'s paths, bodies and
//! errcodes, plus the `/emulator/*` control routes that play the phone's part and inject
//! failures) and Aliyun's and Tencent Cloud's SMS `SendSms` ([`sms`]: both at `/`, told apart by
//! their action headers, with `/emulator/sms*` to read messages and inject failures). Each
//! further service gets a module of its own beside them, mounted by [`start`].
//!
//! [`config`] reads the emulator's settings from the variables weauth reads for the same
//! services. [`start`] serves on an already-bound listener (weauth's tests run the emulator
//! in-process this way); the `weauth-emulator` binary binds a port and serves until
//! SIGINT/SIGTERM. This crate never depends on `weauth`, so the server binary does not link it.

pub mod config;
mod control;
pub mod sms;
pub mod wechat;

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::http::StatusCode;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde_json::json;
use tracing_actix_web::TracingLogger;

pub use config::{ConfigError, EmulatorConfig, Secret};

/// Starts the emulator on an already-bound listener (tests bind 127.0.0.1:0), serving exactly
/// the apps in `config`. The returned server must be awaited or spawned on an actix/tokio
/// runtime.
pub fn start(config: EmulatorConfig, listener: TcpListener) -> std::io::Result<Server> {
    let wechat = web::Data::new(wechat::WechatEmulator::new(config.wechat_apps));
    let sms = web::Data::new(sms::SmsEmulator::new(config.sms_aliyun, config.sms_tencent));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(wechat.clone())
            .app_data(sms.clone())
            .wrap(TracingLogger::default())
            .configure(wechat::configure)
            .configure(sms::configure)
            .default_service(web::to(not_found))
    })
    // A development tool: two workers are plenty, and tests should stop quickly.
    .workers(2)
    .shutdown_timeout(5)
    .listen(listener)?
    .run();
    Ok(server)
}

async fn not_found(req: HttpRequest) -> HttpResponse {
    control_error(
        StatusCode::NOT_FOUND,
        format!(
            "the emulator has no endpoint {} {}",
            req.method(),
            req.path()
        ),
    )
}

/// A wrong method on a control route: JSON too, not actix's empty 405.
pub(crate) async fn method_not_allowed(req: HttpRequest) -> HttpResponse {
    control_error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{} is not allowed on {}", req.method(), req.path()),
    )
}

/// A control API error: `{"error": "..."}`.
pub(crate) fn control_error(status: StatusCode, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(json!({ "error": message.into() }))
}
