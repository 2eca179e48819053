//! The SMS emulator: Aliyun SMS (dysmsapi `SendSms`, 2017-05-25) and Tencent Cloud SMS
//! (`SendSms`, 2021-01-11).
//!
//! Both real APIs are reached at `/` of their own host (`dysmsapi.aliyuncs.com`,
//! `sms.tencentcloudapi.com`), so the emulator serves both at its `/` and tells them apart by the
//! action header: `x-acs-action` is Aliyun's, `X-TC-Action` Tencent's. Each verifies the request
//! signature with the configured account's keys, independently of weauth's signer ([`aliyun`]:
//! ACS3-HMAC-SHA256, [`tencent`]: TC3-HMAC-SHA256), and answers in the provider's real shapes,
//! errors included. Accepted messages are kept in memory and read back, and failures injected,
//! through the control routes in [`control`].

mod aliyun;
mod control;
mod tencent;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::config::{AliyunSmsAccount, TencentSmsAccount};
use crate::control_error;

pub use aliyun::{
    canonical_query as aliyun_canonical_query, canonical_request as aliyun_canonical_request,
    signature as aliyun_signature,
};
pub use tencent::{canonical_request as tencent_canonical_request, signature as tencent_signature};

/// The built-in development accounts the binary serves when none is configured. Public on
/// purpose, like the WeChat development app's secret; docker-compose.yml gives weauth the same.
pub const DEV_ALIYUN_ACCESS_KEY_ID: &str = "LTAIweauthDevKey";
pub const DEV_ALIYUN_ACCESS_KEY_SECRET: &str = "weauth-dev-aliyun-secret";
pub const DEV_ALIYUN_SIGN_NAME: &str = "weauth";
pub const DEV_ALIYUN_TEMPLATE_CODE: &str = "SMS_000000001";
pub const DEV_TENCENT_SECRET_ID: &str = "AKIDweauthDevSecretId";
pub const DEV_TENCENT_SECRET_KEY: &str = "weauth-dev-tencent-key";
pub const DEV_TENCENT_SDK_APP_ID: &str = "1400000000";
pub const DEV_TENCENT_SIGN_NAME: &str = "weauth";
pub const DEV_TENCENT_TEMPLATE_ID: &str = "1000001";

/// The development Aliyun account.
pub fn dev_aliyun_account() -> AliyunSmsAccount {
    AliyunSmsAccount {
        access_key_id: DEV_ALIYUN_ACCESS_KEY_ID.into(),
        access_key_secret: crate::Secret::new(DEV_ALIYUN_ACCESS_KEY_SECRET),
        sign_name: DEV_ALIYUN_SIGN_NAME.into(),
        template_code: DEV_ALIYUN_TEMPLATE_CODE.into(),
    }
}

/// The development Tencent account.
pub fn dev_tencent_account() -> TencentSmsAccount {
    TencentSmsAccount {
        secret_id: DEV_TENCENT_SECRET_ID.into(),
        secret_key: crate::Secret::new(DEV_TENCENT_SECRET_KEY),
        sdk_app_id: DEV_TENCENT_SDK_APP_ID.into(),
        sign_name: DEV_TENCENT_SIGN_NAME.into(),
        template_id: DEV_TENCENT_TEMPLATE_ID.into(),
    }
}

/// The two providers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Aliyun,
    Tencent,
}

impl Provider {
    pub fn from_name(name: &str) -> Option<Provider> {
        match name {
            "aliyun" => Some(Provider::Aliyun),
            "tencent" => Some(Provider::Tencent),
            _ => None,
        }
    }
}

/// One message the emulator accepted, as `GET /emulator/sms` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct Message {
    pub provider: Provider,
    /// The number exactly as the request carried it (`13800138000`, `+8613800138000`).
    pub phone: String,
    /// The same number as E.164 (`+8613800138000`).
    pub e164: String,
    pub sign_name: String,
    /// Aliyun's `TemplateCode` or Tencent's `TemplateId`.
    pub template: String,
    /// The template parameters as sent: Aliyun's `TemplateParam` object, Tencent's
    /// `TemplateParamSet` array.
    pub params: Value,
    /// The code, for convenience: Aliyun's `code` parameter (else the first one), Tencent's
    /// first parameter.
    pub otp: Option<String>,
    /// Aliyun's `BizId`, Tencent's `SerialNo`.
    pub message_id: String,
    /// When it arrived, RFC 3339 UTC.
    pub time: String,
}

/// An injected failure: the provider's error code, and optionally its message.
#[derive(Debug, Clone)]
pub struct Failure {
    pub code: String,
    pub message: Option<String>,
}

#[derive(Default)]
pub struct State {
    pub messages: Vec<Message>,
    pub failures: HashMap<Provider, VecDeque<Failure>>,
    /// Aliyun `x-acs-signature-nonce` values seen, with their arrival time (unix seconds); a
    /// nonce is refused when reused within 15 minutes, as Aliyun does.
    pub nonces: HashMap<String, i64>,
}

/// The SMS emulator's configuration and memory.
pub struct SmsEmulator {
    pub aliyun: Option<AliyunSmsAccount>,
    pub tencent: Option<TencentSmsAccount>,
    state: Mutex<State>,
}

impl SmsEmulator {
    pub fn new(aliyun: Option<AliyunSmsAccount>, tencent: Option<TencentSmsAccount>) -> Self {
        SmsEmulator {
            aliyun,
            tencent,
            state: Mutex::new(State::default()),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes the next injected failure of `provider`, if any.
    fn take_failure(&self, provider: Provider) -> Option<Failure> {
        self.lock().failures.get_mut(&provider)?.pop_front()
    }

    fn record(&self, message: Message) {
        self.lock().messages.push(message);
    }
}

/// Mounts `/` (both providers' `SendSms`) and the `/emulator/sms*` control routes; they read the
/// [`SmsEmulator`] from the app data.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::route().to(provider_api));
    control::configure(cfg);
}

/// `/`: Aliyun when `x-acs-action` is present, Tencent when `X-TC-Action` is.
async fn provider_api(
    req: HttpRequest,
    body: web::Bytes,
    em: web::Data<SmsEmulator>,
) -> HttpResponse {
    if req.headers().contains_key("x-acs-action") {
        aliyun::send_sms(&req, &body, &em)
    } else if req.headers().contains_key("x-tc-action") {
        tencent::send_sms(&req, &body, &em)
    } else {
        control_error(
            StatusCode::NOT_FOUND,
            "the emulator serves SMS APIs at / only: send x-acs-action (Aliyun) or X-TC-Action (Tencent)",
        )
    }
}

// ---- shared pieces ------------------------------------------------------------------------

/// The parts of `Authorization: <ALGORITHM> Credential=…,SignedHeaders=…,Signature=…` (both
/// providers' form; Tencent puts a space after each comma).
pub(crate) struct Authorization {
    pub credential: String,
    /// Lower-cased, in the order given.
    pub signed_headers: Vec<String>,
    pub signature: String,
}

pub(crate) fn parse_authorization(value: &str, algorithm: &str) -> Option<Authorization> {
    let rest = value.trim().strip_prefix(algorithm)?.strip_prefix(' ')?;
    let mut fields = std::collections::BTreeMap::new();
    for part in rest.split(',') {
        let (k, v) = part.trim().split_once('=')?;
        fields.insert(k.trim(), v.trim());
    }
    Some(Authorization {
        credential: fields.get("Credential")?.to_string(),
        signed_headers: fields
            .get("SignedHeaders")?
            .split(';')
            .filter(|h| !h.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
        signature: fields.get("Signature")?.to_string(),
    })
}

pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Constant-time comparison of two signatures.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A random UUID (version 4 layout), as both providers' `RequestId`s look.
pub(crate) fn uuid() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// `n` random decimal digits.
pub(crate) fn digits(n: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    (0..n)
        .map(|_| char::from(b'0' + (rng.next_u32() % 10) as u8))
        .collect()
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A number as both providers accept it, as E.164 digits without `+`: `+<cc><number>`,
/// `00<cc><number>`, or a mainland number as its 11 digits (`1…`) with or without `86`. `None`
/// when it is no phone number (not 5 to 15 digits after the prefix, or a mainland `+86` number
/// that is not 11 digits starting with 1).
pub fn e164_digits(phone: &str) -> Option<String> {
    let phone = phone.trim();
    let digits = if let Some(rest) = phone.strip_prefix('+') {
        rest.to_string()
    } else if let Some(rest) = phone.strip_prefix("00") {
        rest.to_string()
    } else if phone.len() == 11 && phone.starts_with('1') {
        format!("86{phone}")
    } else {
        phone.to_string()
    };
    if !(5..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if let Some(national) = digits.strip_prefix("86") {
        if national.len() != 11 || !national.starts_with('1') {
            return None;
        }
    }
    Some(digits)
}
