//! Aliyun SMS: dysmsapi `SendSms`, API version 2017-05-25, signed with the V3 signature
//! `ACS3-HMAC-SHA256` (help.aliyun.com/zh/sdk/product-overview/v3-request-structure-and-signature;
//! reference implementation: `aliyun/darabonba-openapi-util`, `get_authorization`).
//!
//! The request is `POST /` with the parameters in the query string and an empty body, as
//! Aliyun's own SDK sends RPC-style APIs. Aliyun answers errors as JSON with a `Code`, HTTP 200
//! included: only `"Code": "OK"` is a sent message.
//!
//! Phone numbers: `PhoneNumbers` takes a mainland number as its 11 digits (Aliyun also accepts
//! `+86`/`0086`/`86` prefixes) and any other number as country code + number without `+`
//! (`85200000000`). weauth strips the `86` of a stored mainland number (`86` + 11 digits
//! starting with `1`) and sends everything else as stored. Checking the whole pattern, not just
//! the length, matters: an 11-digit Hong Kong number such as `85268326366` must keep its prefix
//! (logto-io/logto issue 5889 is that bug).

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::{
    e164_digits, host_header, http_client, transport_error, SmsError, SmsMessage, SmsSent,
};
use crate::config::AliyunSmsConfig;
use crate::providers::{hmac_sha256, scrub, sha256_hex};

pub const NAME: &str = "aliyun";
const ALGORITHM: &str = "ACS3-HMAC-SHA256";
const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";

/// Everything the V3 signature covers.
pub struct Acs3Request<'a> {
    pub method: &'a str,
    /// The canonical URI (`/` for RPC-style APIs).
    pub path: &'a str,
    /// Query parameters, unencoded; empty values are kept (`name=`).
    pub query: &'a [(&'a str, &'a str)],
    /// The headers to sign (`host`, `content-type` if sent, every `x-acs-*`), any case. Repeated
    /// names are merged: values trimmed, sorted, joined by `,`.
    pub headers: &'a [(&'a str, &'a str)],
    /// Hex SHA-256 of the body (also sent as `x-acs-content-sha256`).
    pub hashed_payload: &'a str,
}

/// RFC 3986 percent-encoding: everything but `A-Z a-z 0-9 - _ . ~`, as `%XX` upper-case.
pub fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The canonical query string: encoded `name=value` pairs sorted by name, joined by `&`. It is
/// also the query string sent, so the server sees exactly what was signed.
pub fn canonical_query(query: &[(&str, &str)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request and the `SignedHeaders` list.
pub fn canonical_request(req: &Acs3Request<'_>) -> (String, String) {
    let mut headers: std::collections::BTreeMap<String, Vec<&str>> = Default::default();
    for (name, value) in req.headers {
        headers
            .entry(name.trim().to_ascii_lowercase())
            .or_default()
            .push(value.trim());
    }
    let mut canonical_headers = String::new();
    for (name, values) in headers.iter_mut() {
        values.sort_unstable();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let signed_headers = headers.keys().cloned().collect::<Vec<_>>().join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{}\n{}\n{}",
        req.method,
        req.path,
        canonical_query(req.query),
        canonical_headers,
        signed_headers,
        req.hashed_payload
    );
    (canonical, signed_headers)
}

/// `hex(HMAC-SHA256(secret, "ACS3-HMAC-SHA256\n" + hex(SHA-256(canonical_request))))`.
pub fn signature(canonical_request: &str, access_key_secret: &str) -> String {
    let string_to_sign = format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()));
    hex::encode(hmac_sha256(
        access_key_secret.as_bytes(),
        string_to_sign.as_bytes(),
    ))
}

/// The `Authorization` header for `req`.
pub fn authorization(
    req: &Acs3Request<'_>,
    access_key_id: &str,
    access_key_secret: &str,
) -> String {
    let (canonical, signed_headers) = canonical_request(req);
    format!(
        "{ALGORITHM} Credential={access_key_id},SignedHeaders={signed_headers},Signature={}",
        signature(&canonical, access_key_secret)
    )
}

/// `PhoneNumbers` for a stored number (see the module comment).
pub fn phone_number(digits: &str) -> &str {
    match digits.strip_prefix("86") {
        Some(national) if national.len() == 11 && national.starts_with('1') => national,
        _ => digits,
    }
}

/// Aliyun's answer, success or error (`BizId` only on success).
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    biz_id: Option<String>,
}

/// Sorts a non-`OK` code into the error classes.
fn classify(status: u16, code: &str, message: &str, otp: &str) -> SmsError {
    let code_owned = code.to_string();
    if code == "isv.MOBILE_NUMBER_ILLEGAL" {
        return SmsError::InvalidNumber {
            provider: NAME,
            code: code_owned,
        };
    }
    // isv.BUSINESS_LIMIT_CONTROL (per number: 1/min, 5/h, 10/day by default), the account's own
    // isv.DAY_LIMIT_CONTROL/isv.MONTH_LIMIT_CONTROL, international BUSINESS_LIMIT_* and the
    // gateway's Throttling.*.
    if code.ends_with("LIMIT_CONTROL")
        || code.starts_with("isv.BUSINESS_LIMIT")
        || code.starts_with("BUSINESS_LIMIT_CONTROL")
        || code.starts_with("Throttling")
    {
        return SmsError::RateLimited {
            provider: NAME,
            code: code_owned,
        };
    }
    if status >= 500
        || code.starts_with("isp.")
        || code.starts_with("InternalError")
        || code.starts_with("ServiceUnavailable")
    {
        return SmsError::Unavailable {
            provider: NAME,
            reason: format!("{code}: {}", scrub(message, otp)),
        };
    }
    // Signature/template not approved, balance, AccessKey and signature errors
    // (SignatureDoesNotMatch, InvalidAccessKeyId.NotFound, InvalidTimeStamp.Expired, ...).
    SmsError::Rejected {
        provider: NAME,
        code: code_owned,
        message: scrub(message, otp),
    }
}

/// The Aliyun SMS client.
/// Holds its configuration as read (`Secret` fields print as `***`, so `Debug` is derived).
#[derive(Clone, Debug)]
pub struct AliyunSms {
    http: reqwest::Client,
    /// The configured endpoint without a trailing `/`.
    endpoint: String,
    config: AliyunSmsConfig,
}

impl AliyunSms {
    pub fn new(config: &AliyunSmsConfig, timeout: Duration) -> Result<AliyunSms, reqwest::Error> {
        Ok(AliyunSms {
            http: http_client(timeout)?,
            endpoint: config.endpoint.trim_end_matches('/').to_string(),
            config: config.clone(),
        })
    }

    /// Calls `SendSms` once for `msg`.
    pub async fn send(&self, msg: &SmsMessage<'_>) -> Result<SmsSent, SmsError> {
        let phone = phone_number(e164_digits(NAME, msg.phone)?);
        let template_param = json!({ self.config.template_param.as_str(): msg.otp }).to_string();
        let query = [
            ("PhoneNumbers", phone),
            ("SignName", self.config.sign_name.as_str()),
            ("TemplateCode", self.config.template_code.as_str()),
            ("TemplateParam", template_param.as_str()),
        ];
        let url = url::Url::parse(&format!("{}/?{}", self.endpoint, canonical_query(&query)))
            .map_err(|e| SmsError::Unavailable {
                provider: NAME,
                reason: format!("invalid endpoint: {e}"),
            })?;
        let host = host_header(&url);
        let date = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = uuid::Uuid::new_v4().simple().to_string();
        let hashed_payload = sha256_hex(b"");
        let headers = [
            ("host", host.as_str()),
            ("x-acs-action", ACTION),
            ("x-acs-content-sha256", hashed_payload.as_str()),
            ("x-acs-date", date.as_str()),
            ("x-acs-signature-nonce", nonce.as_str()),
            ("x-acs-version", VERSION),
        ];
        let auth = authorization(
            &Acs3Request {
                method: "POST",
                path: "/",
                query: &query,
                headers: &headers,
                hashed_payload: &hashed_payload,
            },
            &self.config.access_key_id,
            self.config.access_key_secret.expose(),
        );
        let mut request = self
            .http
            .post(url)
            .header("authorization", auth)
            .header("accept", "application/json");
        // `host` is set by reqwest from the URL, to the same value.
        for (name, value) in &headers[1..] {
            request = request.header(*name, *value);
        }
        let response = request.send().await.map_err(|e| transport_error(NAME, e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| transport_error(NAME, e))?;
        let answer: Answer = serde_json::from_slice(&body).map_err(|_| SmsError::Unavailable {
            provider: NAME,
            reason: format!("HTTP {status} with a body that is not SendSms's answer"),
        })?;
        if answer.code == "OK" && status < 300 {
            return Ok(SmsSent {
                message_id: answer.biz_id.filter(|id| !id.is_empty()),
            });
        }
        Err(classify(status, &answer.code, &answer.message, msg.otp))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Vector A1: the fixed example of Aliyun's V3 signature document.
    #[test]
    fn signs_the_documented_example() {
        let req = Acs3Request {
            method: "POST",
            path: "/",
            query: &[
                (
                    "ImageId",
                    "win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
                ),
                ("RegionId", "cn-shanghai"),
            ],
            headers: &[
                ("host", "ecs.cn-shanghai.aliyuncs.com"),
                ("x-acs-action", "RunInstances"),
                ("x-acs-version", "2014-05-26"),
                ("x-acs-date", "2023-10-26T10:22:32Z"),
                ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
                (
                    "x-acs-content-sha256",
                    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                ),
            ],
            hashed_payload: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        };
        let (canonical, signed) = canonical_request(&req);
        assert_eq!(
            signed,
            "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version"
        );
        assert_eq!(
            sha256_hex(canonical.as_bytes()),
            "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
        );
        assert_eq!(
            authorization(&req, "YourAccessKeyId", "YourAccessKeySecret"),
            "ACS3-HMAC-SHA256 Credential=YourAccessKeyId,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
        );
    }

    /// Vector A2: `aliyun/darabonba-openapi-util`, `python/tests/test_client.py`,
    /// `test_get_authorization` (an empty query value, and one header given twice in different
    /// case, merged as `http,https`).
    #[test]
    fn signs_the_sdk_test_example() {
        let req = Acs3Request {
            method: "GET",
            path: "/",
            query: &[("test", "ok"), ("empty", "")],
            headers: &[("x-acs-test", "http"), ("x-acs-TEST", "https")],
            hashed_payload: "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
        };
        assert_eq!(
            canonical_request(&req).0,
            "GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
        );
        assert_eq!(
            authorization(&req, "acesskey", "secret"),
            "ACS3-HMAC-SHA256 Credential=acesskey,SignedHeaders=x-acs-test,Signature=d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
        );
        // `da772425…` is what the same repository's TypeScript test expected until its
        // November 2021 fix ("修复了ts鉴权param为空时签名不匹配问题"): that code signed an empty
        // canonical URI and `empty` without `=`, which Aliyun's servers reject. Signing that
        // malformed canonical request reproduces it, so the hashing and HMAC steps match too.
        assert_eq!(
            signature(
                "GET\n\nempty&test=ok\nx-acs-test:http,https\n\nx-acs-test\n55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
                "secret"
            ),
            "da772425f29289d3460d5fc961455d40c5e8c6afd0888b78a910c991e6a14846"
        );
    }

    #[test]
    fn encodes_per_rfc_3986() {
        assert_eq!(percent_encode("a b+c*~/é"), "a%20b%2Bc%2A~%2F%C3%A9");
        assert_eq!(
            canonical_query(&[("b", "{\"code\":\"1\"}"), ("a", "x y")]),
            "a=x%20y&b=%7B%22code%22%3A%221%22%7D"
        );
    }

    #[test]
    fn mainland_numbers_lose_their_country_code() {
        assert_eq!(phone_number("8613800138000"), "13800138000");
        assert_eq!(phone_number("85268326366"), "85268326366");
        assert_eq!(phone_number("8602012345678"), "8602012345678");
        assert_eq!(phone_number("14155552671"), "14155552671");
        assert_eq!(phone_number("8612345"), "8612345");
    }
}
