//! A real HTTP receiver for GoTrue's Send SMS hook, as an operator would run one: it listens on
//! 127.0.0.1, checks the Standard Webhooks signature of every call (its own HMAC code, not
//! weauth's signer), records the JSON payloads it accepted (`{metadata, user, sms: {otp, phone}}`)
//! and answers `{}` with 200, or whatever it was told to answer next.
//!
//! A call whose signature does not verify (or whose timestamp is more than five minutes off, or
//! whose headers are missing) is answered 401 and counted in [`HookReceiver::rejected`], not
//! recorded.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::support::{spawn_server, Running};

/// The receiver's key, as GoTrue's `GOTRUE_HOOK_SEND_SMS_SECRETS` holds it.
pub const HOOK_SECRET: &str = "v1,whsec_dGVzdC1zZW5kLXNtcy1ob29rLXNlY3JldC0wMTIzNDU2Nzg5";

#[derive(Default)]
struct Inner {
    payloads: Vec<Value>,
    rejected: usize,
    answers: VecDeque<(u16, String)>,
}

pub struct HookReceiver {
    /// `http://127.0.0.1:<port>/hooks/send-sms`.
    pub url: String,
    /// `v1,whsec_<base64>`.
    pub secret: String,
    inner: Arc<Mutex<Inner>>,
    _server: Running,
}

/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
fn expected_signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

fn verified(req: &HttpRequest, body: &[u8], key: &[u8]) -> bool {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (id, timestamp, signatures) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if id.is_empty() || (chrono::Utc::now().timestamp() - ts).abs() > 300 {
        return false;
    }
    let expected = expected_signature(key, &id, &timestamp, body);
    signatures.split(' ').any(|s| s == expected)
}

impl HookReceiver {
    /// Starts a receiver keyed with [`HOOK_SECRET`].
    pub fn start() -> HookReceiver {
        Self::with_secret(HOOK_SECRET)
    }

    /// Starts a receiver keyed with `secret` (`v1,whsec_<base64>`).
    pub fn with_secret(secret: &str) -> HookReceiver {
        let key = STANDARD
            .decode(secret.strip_prefix("v1,whsec_").expect("v1,whsec_<base64>"))
            .expect("base64 key");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let shared = inner.clone();
        let (port, server) = spawn_server(move |listener| {
            let shared = shared.clone();
            let key = key.clone();
            Ok(HttpServer::new(move || {
                let (shared, key) = (shared.clone(), key.clone());
                App::new().route(
                    "/hooks/send-sms",
                    web::post().to(move |req: HttpRequest, body: web::Bytes| {
                        let (shared, key) = (shared.clone(), key.clone());
                        async move { receive(&req, &body, &key, &shared) }
                    }),
                )
            })
            .workers(1)
            .shutdown_timeout(1)
            .listen(listener)?
            .run())
        });
        HookReceiver {
            url: format!("http://127.0.0.1:{port}/hooks/send-sms"),
            secret: secret.to_string(),
            inner,
            _server: server,
        }
    }

    /// The payloads of every verified call, oldest first.
    pub fn payloads(&self) -> Vec<Value> {
        self.inner.lock().unwrap().payloads.clone()
    }

    /// The `sms.otp` of the last verified call for `phone` (as weauth stores it, e.g.
    /// `8613800138000`).
    pub fn last_otp(&self, phone: &str) -> Option<String> {
        self.payloads()
            .iter()
            .rev()
            .find(|p| p["sms"]["phone"] == phone)
            .and_then(|p| p["sms"]["otp"].as_str().map(str::to_string))
    }

    /// How many calls failed signature verification.
    pub fn rejected(&self) -> usize {
        self.inner.lock().unwrap().rejected
    }

    /// Makes the next verified call be answered with `status` and `body` (sent as
    /// `application/json`; GoTrue's hook error is `{"error": {"http_code": 429, "message": "..."}}`).
    /// Queued: each call takes one.
    pub fn answer_next(&self, status: u16, body: &str) {
        self.inner
            .lock()
            .unwrap()
            .answers
            .push_back((status, body.to_string()));
    }
}

fn receive(req: &HttpRequest, body: &[u8], key: &[u8], inner: &Mutex<Inner>) -> HttpResponse {
    let mut inner = inner.lock().unwrap();
    if !verified(req, body, key) {
        inner.rejected += 1;
        return HttpResponse::Unauthorized().body("bad webhook signature");
    }
    let Ok(payload) = serde_json::from_slice::<Value>(body) else {
        inner.rejected += 1;
        return HttpResponse::BadRequest().body("not JSON");
    };
    inner.payloads.push(payload);
    let (status, body) = inner.answers.pop_front().unwrap_or((200, "{}".to_string()));
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body)
}

#[test]
fn signature_check_reproduces_the_standard_webhooks_vector() {
    // Vector W1 (standard-webhooks, libraries/python/tests/test_webhooks.py).
    let key = STANDARD.decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    assert_eq!(
        expected_signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}
