//! The SMS control routes:
//!
//! - `GET /emulator/sms?phone=<number>` → `{"messages": [...]}`: what the emulator accepted for
//!   that number, oldest first (newest last). Any form of the number matches
//!   (`13800138000`, `8613800138000`, `+8613800138000`). Without `phone`: every message.
//! - `POST /emulator/sms/fail_next` `{"provider": "aliyun"|"tencent", "code", "message"?}` → `{}`:
//!   the provider's next authenticated `SendSms` fails with that code, in the provider's real
//!   shape (queued behind earlier ones). `/emulator/sms/fail-next` is the same route, spelled
//!   like the WeChat one.
//! - `POST /emulator/sms/reset` → `{}`: forgets messages, queued failures and nonces.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::{e164_digits, Failure, Provider, SmsEmulator};
use crate::control::{bad_request, parse, Reply};

pub fn configure(cfg: &mut web::ServiceConfig) {
    for (path, route) in [
        ("/emulator/sms", web::get().to(messages)),
        ("/emulator/sms/fail_next", web::post().to(fail_next)),
        ("/emulator/sms/fail-next", web::post().to(fail_next)),
        ("/emulator/sms/reset", web::post().to(reset)),
    ] {
        cfg.service(
            web::resource(path)
                .route(route)
                .default_service(web::to(crate::method_not_allowed)),
        );
    }
}

#[derive(Deserialize)]
struct MessagesQuery {
    phone: Option<String>,
}

/// Digits of a number in any form, for matching (E.164 when it parses as a number).
fn match_key(phone: &str) -> String {
    e164_digits(phone).unwrap_or_else(|| phone.chars().filter(char::is_ascii_digit).collect())
}

async fn messages(req: HttpRequest, em: web::Data<SmsEmulator>) -> Reply {
    let query = web::Query::<MessagesQuery>::from_query(req.query_string())
        .map_err(|e| bad_request(format!("invalid query: {e}")))?;
    let wanted = query.phone.as_deref().map(match_key);
    let messages: Vec<_> = em
        .lock()
        .messages
        .iter()
        .filter(|m| wanted.as_ref().is_none_or(|w| *w == match_key(&m.e164)))
        .cloned()
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "messages": messages })))
}

#[derive(Deserialize)]
struct FailNextRequest {
    provider: String,
    code: String,
    message: Option<String>,
}

async fn fail_next(body: web::Bytes, em: web::Data<SmsEmulator>) -> Reply {
    let req: FailNextRequest = parse(&body)?;
    let Some(provider) = Provider::from_name(&req.provider) else {
        return Err(bad_request(format!(
            "unknown provider {:?}; one of \"aliyun\", \"tencent\"",
            req.provider
        )));
    };
    let code = req.code.trim();
    if code.is_empty() || code == "OK" || code == "Ok" {
        return Err(bad_request("code must be a provider error code"));
    }
    em.lock()
        .failures
        .entry(provider)
        .or_default()
        .push_back(Failure {
            code: code.to_string(),
            message: req.message,
        });
    Ok(HttpResponse::Ok().json(json!({})))
}

async fn reset(em: web::Data<SmsEmulator>) -> Reply {
    let mut state = em.lock();
    state.messages.clear();
    state.failures.clear();
    state.nonces.clear();
    Ok(HttpResponse::Ok().json(json!({})))
}
