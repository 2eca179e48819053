//! HTTP calls to WeChat's server API (`api.weixin.qq.com`, or the emulator). WeChat answers
//! errors as HTTP 200 with `{"errcode", "errmsg"}`, so every body is parsed, whatever the
//! status or content type says (`reference/wechat-api.md` §0).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::WechatApp;

/// Why a WeChat call failed.
#[derive(Debug, thiserror::Error)]
pub enum WechatError {
    /// WeChat answered with an error code.
    #[error("WeChat error {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    /// No answer in time.
    #[error("WeChat did not answer in time")]
    Timeout,
    /// The request could not be delivered (connection refused, DNS, TLS).
    #[error("WeChat is unreachable: {0}")]
    Unreachable(String),
    /// An answer that is not what the API returns (HTML error page, empty body, wrong JSON).
    #[error("WeChat answered something unexpected: {0}")]
    Garbage(String),
}

impl WechatError {
    /// `-1` ("system busy") and transport failures: worth one retry.
    fn is_transient(&self) -> bool {
        matches!(
            self,
            WechatError::Api { errcode: -1, .. }
                | WechatError::Timeout
                | WechatError::Unreachable(_)
                | WechatError::Garbage(_)
        )
    }

    /// Errors that say the access token must be fetched again.
    pub fn is_bad_access_token(&self) -> bool {
        matches!(
            self,
            WechatError::Api {
                errcode: 40001 | 40014 | 42001,
                ..
            }
        )
    }
}

/// `jscode2session`'s answer. `session_key` is a secret: never log or return it.
#[derive(Deserialize, Clone)]
pub struct CodeSession {
    pub openid: String,
    pub session_key: String,
    #[serde(default)]
    pub unionid: Option<String>,
}

impl std::fmt::Debug for CodeSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeSession")
            .field("openid", &self.openid)
            .field("unionid", &self.unionid)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize, Debug)]
pub struct AccessToken {
    pub access_token: String,
    pub expires_in: i64,
}

/// `phone_info` of `getuserphonenumber` (and of the legacy decrypted phone payload).
#[derive(Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct PhoneInfo {
    #[serde(default)]
    pub phone_number: String,
    pub pure_phone_number: String,
    /// A string in practice, a number in WeChat's own doc example: accept both.
    #[serde(deserialize_with = "string_or_number")]
    pub country_code: String,
}

fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    match Value::deserialize(d)? {
        Value::String(s) => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a country code, got {other}"
        ))),
    }
}

/// The body of `getwxacodeunlimit`, as validated by weauth.
#[derive(Serialize, Debug, Clone)]
pub struct QrCodeRequest {
    pub scene: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check_path: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub env_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_color: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_color: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_hyaline: Option<bool>,
}

/// One shared HTTP client with timeouts, pointed at WeChat or the emulator.
#[derive(Clone)]
pub struct WechatClient {
    pub(super) http: reqwest::Client,
    pub(super) base_url: String,
    pub(super) timeout: Duration,
    qrcode_timeout: Duration,
}

impl WechatClient {
    pub fn new(
        base_url: &str,
        timeout: Duration,
        qrcode_timeout: Duration,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3).min(timeout))
            // Drop idle connections before servers close them (the emulator after 5 s), so a
            // request is never sent on a connection the other side has just closed.
            .pool_idle_timeout(Duration::from_secs(4))
            .user_agent(concat!("weauth/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(WechatClient {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            timeout,
            qrcode_timeout,
        })
    }

    /// `GET /sns/jscode2session`. The code is single-use, so only failures that certainly did
    /// not consume it are retried: `-1` and a connection that was never made.
    pub async fn code2session(
        &self,
        app: &WechatApp,
        code: &str,
    ) -> Result<CodeSession, WechatError> {
        let send = || {
            self.http
                .get(format!("{}/sns/jscode2session", self.base_url))
                .query(&[
                    ("appid", app.app_id.as_str()),
                    ("secret", app.secret.expose()),
                    ("js_code", code),
                    ("grant_type", "authorization_code"),
                ])
                .timeout(self.timeout)
                .send()
        };
        unless_consumed(send).await
    }

    /// `POST /cgi-bin/stable_token` in normal mode (never `force_refresh`: it is capped at 20/day).
    pub async fn stable_token(&self, app: &WechatApp) -> Result<AccessToken, WechatError> {
        let body = serde_json::json!({
            "grant_type": "client_credential", "appid": app.app_id, "secret": app.secret.expose(), "force_refresh": false,
        });
        retry_once(|| {
            json_call(
                self.http
                    .post(format!("{}/cgi-bin/stable_token", self.base_url))
                    .json(&body)
                    .timeout(self.timeout)
                    .send(),
            )
        })
        .await
    }

    /// `POST /wxa/business/getuserphonenumber`. Retried only on `-1` (the code is single-use).
    pub async fn phone_number(
        &self,
        access_token: &str,
        code: &str,
    ) -> Result<PhoneInfo, WechatError> {
        #[derive(Deserialize)]
        struct Answer {
            phone_info: PhoneInfo,
        }
        let send = || {
            self.http
                .post(format!("{}/wxa/business/getuserphonenumber", self.base_url))
                .query(&[("access_token", access_token)])
                .json(&serde_json::json!({ "code": code }))
                .timeout(self.timeout)
                .send()
        };
        let answer: Answer = unless_consumed(send).await?;
        Ok(answer.phone_info)
    }

    /// `POST /wxa/getwxacodeunlimit`: image bytes on success, a JSON error otherwise.
    pub async fn unlimited_qrcode(
        &self,
        access_token: &str,
        request: &QrCodeRequest,
    ) -> Result<Vec<u8>, WechatError> {
        retry_once(|| async {
            let res = self
                .http
                .post(format!("{}/wxa/getwxacodeunlimit", self.base_url))
                .query(&[("access_token", access_token)])
                .json(request)
                .timeout(self.qrcode_timeout)
                .send()
                .await
                .map_err(transport)?;
            let is_image = res
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|ct| ct.starts_with("image/"));
            let bytes = res.bytes().await.map_err(transport)?;
            let signature_ok = bytes.starts_with(&[0x89, b'P', b'N', b'G'])
                || bytes.starts_with(&[0xFF, 0xD8, 0xFF]);
            if is_image && signature_ok {
                Ok(bytes.to_vec())
            } else {
                Err(parse_error(&bytes))
            }
        })
        .await
    }
}

/// Classifies a transport failure. The URL is stripped first: WeChat's API carries the app
/// secret and access tokens in query strings, and these errors end up in the log.
fn transport(e: reqwest::Error) -> WechatError {
    let e = e.without_url();
    if e.is_timeout() {
        WechatError::Timeout
    } else if e.is_connect() {
        WechatError::Unreachable(e.to_string())
    } else {
        WechatError::Garbage(e.to_string())
    }
}

/// Sends a request that spends a single-use code, once more only when the first attempt
/// certainly did not spend it: a `-1` answer or a connection that was never made.
pub(super) async fn unless_consumed<T, F, Fut>(send: F) -> Result<T, WechatError>
where
    T: DeserializeOwned,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
{
    match json_call(send()).await {
        Err(WechatError::Api { errcode: -1, .. }) | Err(WechatError::Unreachable(_)) => {
            json_call(send()).await
        }
        other => other,
    }
}

/// Retries a call that consumes nothing once, on `-1` or a transport failure.
async fn retry_once<T, F, Fut>(call: F) -> Result<T, WechatError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<T, WechatError>>,
{
    match call().await {
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "WeChat call failed, retrying once");
            call().await
        }
        other => other,
    }
}

/// Sends, reads the whole body and parses it: errcode ≠ 0 is an error whatever the status.
pub(super) async fn json_call<T: DeserializeOwned>(
    request: impl std::future::Future<Output = Result<reqwest::Response, reqwest::Error>>,
) -> Result<T, WechatError> {
    let res = request.await.map_err(transport)?;
    let bytes = res.bytes().await.map_err(transport)?;
    let value: Value = serde_json::from_slice(&bytes).map_err(|_| garbage(&bytes))?;
    match value.get("errcode").and_then(Value::as_i64) {
        Some(errcode) if errcode != 0 => Err(WechatError::Api {
            errcode,
            errmsg: value
                .get("errmsg")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        }),
        _ => serde_json::from_value(value)
            .map_err(|e| WechatError::Garbage(format!("unexpected answer shape: {e}"))),
    }
}

fn parse_error(bytes: &[u8]) -> WechatError {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => match v.get("errcode").and_then(Value::as_i64) {
            Some(errcode) => WechatError::Api {
                errcode,
                errmsg: v
                    .get("errmsg")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
            },
            None => garbage(bytes),
        },
        Err(_) => garbage(bytes),
    }
}

fn garbage(bytes: &[u8]) -> WechatError {
    let preview: String = String::from_utf8_lossy(&bytes[..bytes.len().min(80)])
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    WechatError::Garbage(format!("{} bytes starting {preview:?}", bytes.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Secret, WechatApp};

    /// Transport errors are logged; WeChat URLs carry the app secret, so it must not be in them.
    #[actix_web::test]
    async fn transport_errors_never_carry_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = WechatClient::new(
            &format!("http://127.0.0.1:{port}"),
            Duration::from_secs(2),
            Duration::from_secs(2),
        )
        .unwrap();
        let app = WechatApp {
            app_id: "wxsecretcheck".into(),
            secret: Secret::new("the-app-secret-123"),
        };
        let err = client
            .code2session(&app, "the-login-code")
            .await
            .unwrap_err();
        assert!(matches!(err, WechatError::Unreachable(_)), "{err:?}");
        let shown = format!("{err} {err:?}");
        assert!(
            !shown.contains("the-app-secret-123") && !shown.contains("the-login-code"),
            "{shown}"
        );
        let err = client
            .phone_number("the-access-token", "the-phone-code")
            .await
            .unwrap_err();
        assert!(!format!("{err} {err:?}").contains("the-access-token"));
    }
}
