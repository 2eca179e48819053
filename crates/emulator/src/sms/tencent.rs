//! Tencent Cloud SMS `SendSms` (2021-01-11) behind `TC3-HMAC-SHA256`
//! (cloud.tencent.com/document/api/213/30654; SendSms: /document/api/382/55981; error codes:
//! /document/api/382/52075 and /382/59177).
//!
//! Tencent answers HTTP 200 for everything. Request-level errors are
//! `{"Response":{"Error":{"Code","Message"},"RequestId"}}`; each number's own result is an entry
//! of `Response.SendStatusSet`, whose `Code` is `"Ok"` only for a sent message (a malformed
//! number and the per-number frequency limits fail there, not in `Error`).

use actix_web::{HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    digits, e164_digits, hmac_sha256, now_rfc3339, same, sha256_hex, uuid, Failure, Message,
    Provider, SmsEmulator,
};

const ALGORITHM: &str = "TC3-HMAC-SHA256";
const SERVICE: &str = "sms";
const ACTION: &str = "SendSms";
const VERSION: &str = "2021-01-11";
/// Tencent refuses a timestamp more than five minutes from its clock.
const MAX_SKEW_SECONDS: i64 = 300;

/// The canonical request: `headers` are (name, value) of exactly the signed headers; names and
/// values are lower-cased and trimmed, sorted by name.
pub fn canonical_request(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &[(String, String)],
    payload: &[u8],
) -> String {
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(n, v)| format!("{n}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
    format!(
        "{method}\n{path}\n{raw_query}\n{canonical_headers}\n{}\n{}",
        signed.join(";"),
        sha256_hex(payload)
    )
}

/// The UTC date of a unix timestamp, `2019-02-25`.
fn date_of(timestamp: i64) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The hex signature of `canonical_request` at `timestamp` for `service`.
pub fn signature(
    secret_key: &str,
    service: &str,
    timestamp: i64,
    canonical_request: &str,
) -> String {
    let date = date_of(timestamp);
    let string_to_sign = format!(
        "{ALGORITHM}\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let secret_date = hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let secret_service = hmac_sha256(&secret_date, service.as_bytes());
    let secret_signing = hmac_sha256(&secret_service, b"tc3_request");
    hex::encode(hmac_sha256(&secret_signing, string_to_sign.as_bytes()))
}

/// `TC3-HMAC-SHA256 Credential=<id>/<date>/<service>/tc3_request, SignedHeaders=…, Signature=…`.
struct Authorization {
    secret_id: String,
    date: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

fn parse_tc3_authorization(value: &str) -> Option<Authorization> {
    let auth = super::parse_authorization(value, ALGORITHM)?;
    let mut credential = auth.credential.split('/');
    let (secret_id, date, service, terminator) = (
        credential.next()?,
        credential.next()?,
        credential.next()?,
        credential.next()?,
    );
    if terminator != "tc3_request" || credential.next().is_some() {
        return None;
    }
    Some(Authorization {
        secret_id: secret_id.to_string(),
        date: date.to_string(),
        service: service.to_string(),
        signed_headers: auth.signed_headers,
        signature: auth.signature,
    })
}

/// The message Tencent sends with a code (English API; for injected failures too).
fn message_of(code: &str) -> &'static str {
    match code {
        "AuthFailure.SignatureFailure" => {
            "The provided credentials could not be validated. Please check your signature is correct."
        }
        "AuthFailure.SecretIdNotFound" => {
            "The SecretId is not found, please ensure that your SecretId is correct."
        }
        "AuthFailure.SignatureExpire" => {
            "Signature expired. Timestamp and server time cannot differ by more than five minutes."
        }
        "AuthFailure.InvalidAuthorization" => "Authorization in the request header is invalid.",
        "InvalidAction" => "The requested action does not exist.",
        "NoSuchVersion" => "The requested API version does not exist.",
        "FailedOperation.SignatureIncorrectOrUnapproved" => {
            "signature format error or signature not approved"
        }
        "FailedOperation.TemplateIncorrectOrUnapproved" => {
            "template format error or template not approved"
        }
        "FailedOperation.InsufficientBalanceInSmsPackage" => "insufficient balance in SMS package",
        "InvalidParameterValue.SdkAppIdNotExist" => "the SdkAppId does not exist",
        "InvalidParameterValue.IncorrectPhoneNumber" => "incorrect number format",
        "LimitExceeded.PhoneNumberDailyLimit" => {
            "the number of SMS messages sent to a single mobile number every day exceeds the upper limit"
        }
        "LimitExceeded.PhoneNumberOneHourLimit" => {
            "the number of SMS messages sent to a single mobile number within 1 hour exceeds the upper limit"
        }
        "LimitExceeded.PhoneNumberThirtySecondLimit" => {
            "the number of SMS messages sent to a single mobile number within 30 seconds exceeds the upper limit"
        }
        "FailedOperation.PhoneNumberInBlacklist" => "the mobile number is in the blocklist",
        "InternalError" => "An internal error has occurred. Retry your request.",
        _ => "emulated failure",
    }
}

/// Codes that are one number's result (in `SendStatusSet`) rather than the request's `Error`.
fn is_per_number(code: &str) -> bool {
    code.starts_with("LimitExceeded.PhoneNumber")
        || matches!(
            code,
            "LimitExceeded.DeliveryFrequencyLimit"
                | "InvalidParameterValue.IncorrectPhoneNumber"
                | "FailedOperation.PhoneNumberInBlacklist"
        )
}

fn answer(response: Value) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .body(json!({ "Response": response }).to_string())
}

fn error(code: &str, message: &str) -> HttpResponse {
    answer(json!({
        "Error": { "Code": code, "Message": message },
        "RequestId": uuid(),
    }))
}

fn fail(code: &str) -> HttpResponse {
    error(code, message_of(code))
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendSmsBody {
    #[serde(default)]
    phone_number_set: Vec<String>,
    #[serde(default)]
    sms_sdk_app_id: String,
    #[serde(default)]
    sign_name: String,
    #[serde(default)]
    template_id: String,
    #[serde(default)]
    template_param_set: Vec<String>,
    #[serde(default)]
    session_context: String,
}

/// `POST /` with `X-TC-Action`.
pub fn send_sms(req: &HttpRequest, body: &[u8], em: &SmsEmulator) -> HttpResponse {
    let Some(auth) = header(req, "authorization").and_then(parse_tc3_authorization) else {
        return fail("AuthFailure.InvalidAuthorization");
    };
    if header(req, "x-tc-action") != Some(ACTION) {
        return fail("InvalidAction");
    }
    if header(req, "x-tc-version") != Some(VERSION) {
        return fail("NoSuchVersion");
    }
    let Some(timestamp) = header(req, "x-tc-timestamp").and_then(|t| t.parse::<i64>().ok()) else {
        return error(
            "MissingParameter",
            "The request is missing a required parameter `Timestamp`.",
        );
    };
    if (chrono::Utc::now().timestamp() - timestamp).abs() > MAX_SKEW_SECONDS {
        return fail("AuthFailure.SignatureExpire");
    }
    let Some(account) = em
        .tencent
        .as_ref()
        .filter(|a| a.secret_id == auth.secret_id)
    else {
        return fail("AuthFailure.SecretIdNotFound");
    };
    // The scope must be this request's date and service, and host and content-type signed.
    let covers = |name: &str| auth.signed_headers.iter().any(|h| h == name);
    if auth.date != date_of(timestamp)
        || auth.service != SERVICE
        || !covers("host")
        || !covers("content-type")
    {
        return fail("AuthFailure.SignatureFailure");
    }
    let headers: Vec<(String, String)> = auth
        .signed_headers
        .iter()
        .map(|name| (name.clone(), header(req, name).unwrap_or("").to_string()))
        .collect();
    let canonical = canonical_request(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
        &headers,
        body,
    );
    let expected = signature(account.secret_key.expose(), SERVICE, timestamp, &canonical);
    if !same(&expected, &auth.signature.to_ascii_lowercase()) {
        return fail("AuthFailure.SignatureFailure");
    }
    let Ok(body) = serde_json::from_slice::<SendSmsBody>(body) else {
        return error(
            "InvalidParameter",
            "The request body is not a valid JSON object.",
        );
    };
    if body.phone_number_set.is_empty() {
        return error(
            "MissingParameter",
            "The request is missing a required parameter `PhoneNumberSet`.",
        );
    }
    if body.sms_sdk_app_id != account.sdk_app_id {
        return fail("InvalidParameterValue.SdkAppIdNotExist");
    }
    let failure = em.take_failure(Provider::Tencent);
    if let Some(Failure { code, message }) = failure.as_ref().filter(|f| !is_per_number(&f.code)) {
        return error(code, message.as_deref().unwrap_or(message_of(code)));
    }
    if body.sign_name != account.sign_name {
        return fail("FailedOperation.SignatureIncorrectOrUnapproved");
    }
    if body.template_id != account.template_id {
        return fail("FailedOperation.TemplateIncorrectOrUnapproved");
    }
    let statuses: Vec<Value> = body
        .phone_number_set
        .iter()
        .map(|phone| {
            let digits_of = e164_digits(phone);
            let code = match (&failure, &digits_of) {
                (Some(f), _) => f.code.as_str(),
                (None, None) => "InvalidParameterValue.IncorrectPhoneNumber",
                (None, Some(_)) => "Ok",
            };
            let iso = match &digits_of {
                Some(d) if d.starts_with("86") => "CN",
                _ => "",
            };
            if code != "Ok" {
                let message = failure
                    .as_ref()
                    .and_then(|f| f.message.clone())
                    .unwrap_or_else(|| message_of(code).to_string());
                return json!({
                    "SerialNo": "", "PhoneNumber": phone, "Fee": 0,
                    "SessionContext": body.session_context, "Code": code,
                    "Message": message, "IsoCode": iso,
                });
            }
            let serial_no = format!("2433:{}", digits(28));
            em.record(Message {
                provider: Provider::Tencent,
                phone: phone.clone(),
                e164: format!("+{}", digits_of.unwrap_or_default()),
                sign_name: body.sign_name.clone(),
                template: body.template_id.clone(),
                params: json!(body.template_param_set),
                otp: body.template_param_set.first().cloned(),
                message_id: serial_no.clone(),
                time: now_rfc3339(),
            });
            json!({
                "SerialNo": serial_no, "PhoneNumber": phone, "Fee": 1,
                "SessionContext": body.session_context, "Code": "Ok",
                "Message": "send success", "IsoCode": iso,
            })
        })
        .collect();
    answer(json!({ "SendStatusSet": statuses, "RequestId": uuid() }))
}
