//! Tencent Cloud SMS: `SendSms`, API version 2021-01-11, signed with `TC3-HMAC-SHA256`
//! (cloud.tencent.com/document/api/213/30654 "签名方法 v3"; SendSms: cloud.tencent.com/document/
//! product/382/55981).
//!
//! The request is a JSON `POST /`. HTTP 200 is not success: an error is `Response.Error`, and
//! each number's result is in `Response.SendStatusSet[i].Code`, where only `"Ok"` is a sent
//! message (the per-number limits `LimitExceeded.PhoneNumber*Limit` arrive there).
//!
//! Phone numbers: `PhoneNumberSet` takes E.164 with `+` (`+8613800138000`), for mainland and
//! international numbers alike, so the stored digits are sent behind a `+`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{
    e164_digits, host_header, http_client, transport_error, SmsError, SmsMessage, SmsSent,
};
use crate::config::TencentSmsConfig;
use crate::providers::{hmac_sha256, scrub, sha256_hex};

pub const NAME: &str = "tencent";
const ALGORITHM: &str = "TC3-HMAC-SHA256";
const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
const CONTENT_TYPE: &str = "application/json; charset=utf-8";

/// The canonical request and the `SignedHeaders` list. Header names and values are lower-cased
/// and trimmed, sorted by name, as the document requires.
pub fn canonical_request(
    method: &str,
    path: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload: &[u8],
) -> (String, String) {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed_headers = headers
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{method}\n{path}\n{query}\n{canonical_headers}\n{signed_headers}\n{}",
        sha256_hex(payload)
    );
    (canonical, signed_headers)
}

/// The UTC date of `timestamp` (`2019-02-25`), part of the credential scope.
pub fn date_of(timestamp: i64) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// SecretSigning = HMAC(HMAC(HMAC("TC3" + SecretKey, date), service), "tc3_request").
pub fn signing_key(secret_key: &str, date: &str, service: &str) -> Vec<u8> {
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let secret_service = hmac_sha256(&secret_date, service.as_bytes());
    hmac_sha256(&secret_service, b"tc3_request")
}

/// The string to sign for `canonical_request` at `timestamp`.
pub fn string_to_sign(timestamp: i64, service: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{timestamp}\n{}/{service}/tc3_request\n{}",
        date_of(timestamp),
        sha256_hex(canonical_request.as_bytes())
    )
}

/// The hex signature of `canonical_request`.
pub fn signature(
    secret_key: &str,
    service: &str,
    timestamp: i64,
    canonical_request: &str,
) -> String {
    let key = signing_key(secret_key, &date_of(timestamp), service);
    hex::encode(hmac_sha256(
        &key,
        string_to_sign(timestamp, service, canonical_request).as_bytes(),
    ))
}

/// The `Authorization` header.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    timestamp: i64,
    signed_headers: &str,
    canonical_request: &str,
) -> String {
    format!(
        "{ALGORITHM} Credential={secret_id}/{}/{service}/tc3_request, SignedHeaders={signed_headers}, Signature={}",
        date_of(timestamp),
        signature(secret_key, service, timestamp, canonical_request)
    )
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: Answer,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    #[serde(default)]
    error: Option<ErrorAnswer>,
    #[serde(default)]
    send_status_set: Vec<SendStatus>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorAnswer {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    serial_no: Option<String>,
}

/// Sorts an error code (of `Response.Error` or of a `SendStatusSet` entry) into the classes.
fn classify(status: u16, code: &str, message: &str, otp: &str) -> SmsError {
    let code_owned = code.to_string();
    if code == "InvalidParameterValue.IncorrectPhoneNumber" {
        return SmsError::InvalidNumber {
            provider: NAME,
            code: code_owned,
        };
    }
    // LimitExceeded.PhoneNumberThirtySecondLimit / OneHourLimit / DailyLimit, the app's daily
    // limit, and the API's own RequestLimitExceeded.
    if code.starts_with("LimitExceeded") || code.starts_with("RequestLimitExceeded") {
        return SmsError::RateLimited {
            provider: NAME,
            code: code_owned,
        };
    }
    if status >= 500 || code.starts_with("InternalError") || code == "ResourceUnavailable" {
        return SmsError::Unavailable {
            provider: NAME,
            reason: format!("{code}: {}", scrub(message, otp)),
        };
    }
    // AuthFailure.*, unapproved signature or template, balance (FailedOperation.*), ...
    SmsError::Rejected {
        provider: NAME,
        code: code_owned,
        message: scrub(message, otp),
    }
}

/// The Tencent Cloud SMS client.
/// Holds its configuration as read (`Secret` fields print as `***`, so `Debug` is derived).
#[derive(Clone, Debug)]
pub struct TencentSms {
    http: reqwest::Client,
    /// The configured endpoint without a trailing `/`.
    endpoint: String,
    config: TencentSmsConfig,
}

impl TencentSms {
    pub fn new(config: &TencentSmsConfig, timeout: Duration) -> Result<TencentSms, reqwest::Error> {
        Ok(TencentSms {
            http: http_client(timeout)?,
            endpoint: config.endpoint.trim_end_matches('/').to_string(),
            config: config.clone(),
        })
    }

    /// Calls `SendSms` once for `msg`.
    pub async fn send(&self, msg: &SmsMessage<'_>) -> Result<SmsSent, SmsError> {
        let phone = format!("+{}", e164_digits(NAME, msg.phone)?);
        let body = json!({
            "PhoneNumberSet": [phone],
            "SmsSdkAppId": self.config.sdk_app_id,
            "SignName": self.config.sign_name,
            "TemplateId": self.config.template_id,
            "TemplateParamSet": [msg.otp],
        })
        .to_string();
        let url =
            url::Url::parse(&format!("{}/", self.endpoint)).map_err(|e| SmsError::Unavailable {
                provider: NAME,
                reason: format!("invalid endpoint: {e}"),
            })?;
        let host = host_header(&url);
        let timestamp = chrono::Utc::now().timestamp();
        let (canonical, signed_headers) = canonical_request(
            "POST",
            "/",
            "",
            &[
                ("content-type", CONTENT_TYPE),
                ("host", &host),
                ("x-tc-action", ACTION),
            ],
            body.as_bytes(),
        );
        let auth = authorization(
            &self.config.secret_id,
            self.config.secret_key.expose(),
            SERVICE,
            timestamp,
            &signed_headers,
            &canonical,
        );
        let response = self
            .http
            .post(url)
            .header("authorization", auth)
            .header("content-type", CONTENT_TYPE)
            .header("x-tc-action", ACTION)
            .header("x-tc-version", VERSION)
            .header("x-tc-timestamp", timestamp.to_string())
            .header("x-tc-region", &self.config.region)
            .body(body)
            .send()
            .await
            .map_err(|e| transport_error(NAME, e))?;
        let status = response.status().as_u16();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_error(NAME, e))?;
        let garbage = || SmsError::Unavailable {
            provider: NAME,
            reason: format!("HTTP {status} with a body that is not SendSms's answer"),
        };
        let answer = serde_json::from_slice::<Envelope>(&bytes)
            .map_err(|_| garbage())?
            .response;
        if let Some(error) = answer.error {
            return Err(classify(status, &error.code, &error.message, msg.otp));
        }
        let Some(result) = answer.send_status_set.into_iter().next() else {
            return Err(garbage());
        };
        if result.code == "Ok" && status < 300 {
            return Ok(SmsSent {
                message_id: result.serial_no.filter(|id| !id.is_empty()),
            });
        }
        Err(classify(status, &result.code, &result.message, msg.otp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str =
        r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

    /// Vector T1: the English "Signature v3" page (unmasked demo key).
    #[test]
    fn signs_the_english_documents_example() {
        let (canonical, signed) = canonical_request(
            "POST",
            "/",
            "",
            &[
                ("Content-Type", "application/json; charset=utf-8"),
                ("Host", "cvm.tencentcloudapi.com"),
            ],
            BODY.as_bytes(),
        );
        assert_eq!(
            sha256_hex(BODY.as_bytes()),
            "35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
        );
        assert_eq!(
            authorization(
                "AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE",
                "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
                "cvm",
                1551113065,
                &signed,
                &canonical
            ),
            "TC3-HMAC-SHA256 Credential=AKIDz8krbsJ5yKBZQpn74WFkmLPx3EXAMPLE/2019-02-25/cvm/tc3_request, SignedHeaders=content-type;host, Signature=72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
        );
    }

    /// Vector T2: the Chinese page, which also signs `x-tc-action` (its value lower-cased) and
    /// masks the key as 32 `*`, the value its printed derived keys and signature were computed
    /// with.
    #[test]
    fn signs_the_chinese_documents_example() {
        let (canonical, signed) = canonical_request(
            "POST",
            "/",
            "",
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("host", "cvm.tencentcloudapi.com"),
                ("x-tc-action", "DescribeInstances"),
            ],
            BODY.as_bytes(),
        );
        assert!(canonical.contains("x-tc-action:describeinstances\n"));
        assert_eq!(signed, "content-type;host;x-tc-action");
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
        );
        let key = "*".repeat(32);
        assert_eq!(
            hex::encode(signing_key(&key, "2019-02-25", "cvm")),
            "b596b923aad85185e2d1f6659d2a062e0a86731226e021e61bfe06f7ed05f5af"
        );
        assert_eq!(
            signature(&key, "cvm", 1551113065, &canonical),
            "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
        );
    }

    #[test]
    fn the_date_is_utc() {
        assert_eq!(date_of(1551113065), "2019-02-25");
        // Midnight UTC, not China's (UTC+8): the scope date must match Tencent's clock.
        assert_eq!(date_of(1551139199), "2019-02-25");
        assert_eq!(date_of(1551139200), "2019-02-26");
    }
}
