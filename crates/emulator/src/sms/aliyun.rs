//! Aliyun SMS `SendSms` (dysmsapi, 2017-05-25) behind the V3 signature `ACS3-HMAC-SHA256`
//! (help.aliyun.com/zh/sdk/product-overview/v3-request-structure-and-signature).
//!
//! Checked in the gateway's order: the `Authorization` header's form, action and version, the
//! `x-acs-date` (15 minutes either way), the AccessKeyId, the nonce (single use), then the
//! signature recomputed from the request as received. Gateway errors are HTTP 4xx with
//! `{"RequestId","Message","Recommend","HostId","Code"}`; business errors (`isv.*`) are HTTP 200
//! with `{"RequestId","Message","Code"}`, and success is `{"Code":"OK","Message":"OK","BizId",
//! "RequestId"}`.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use serde_json::{json, Map, Value};

use super::{
    digits, e164_digits, hmac_sha256, now_rfc3339, parse_authorization, same, sha256_hex, uuid,
    Message, Provider, SmsEmulator,
};

const ALGORITHM: &str = "ACS3-HMAC-SHA256";
const ACTION: &str = "SendSms";
const VERSION: &str = "2017-05-25";
const HOST_ID: &str = "dysmsapi.aliyuncs.com";
/// Aliyun refuses an `x-acs-date` more than 15 minutes from its clock, and a nonce reused
/// within that window.
const MAX_SKEW_SECONDS: i64 = 15 * 60;

/// RFC 3986 percent-encoding of everything but `A-Z a-z 0-9 - _ . ~`, upper-case hex.
fn encode(value: &[u8]) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-decoding of a query component (`+` stays `+`: RFC 3986 query, not a form).
fn decode(value: &str) -> Vec<u8> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
            if let Some(b) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The decoded `name=value` pairs of a raw query string, in order.
fn query_pairs(raw: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The canonical query string of a raw query string: every pair decoded, re-encoded per RFC
/// 3986, sorted by name (then value), `name=value` joined by `&` (an empty value keeps its `=`).
pub fn canonical_query(raw: &str) -> String {
    let mut pairs: Vec<(String, String)> = query_pairs(raw)
        .iter()
        .map(|(k, v)| (encode(k), encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical request: `headers` are (lower-case name, values) for exactly the signed
/// headers; values are trimmed, sorted and joined by `,`.
pub fn canonical_request(
    method: &str,
    path: &str,
    raw_query: &str,
    headers: &BTreeMap<String, Vec<String>>,
    hashed_payload: &str,
) -> String {
    let mut canonical_headers = String::new();
    for (name, values) in headers {
        let mut values: Vec<&str> = values.iter().map(|v| v.trim()).collect();
        values.sort_unstable();
        canonical_headers.push_str(&format!("{name}:{}\n", values.join(",")));
    }
    let signed: Vec<&str> = headers.keys().map(String::as_str).collect();
    format!(
        "{method}\n{path}\n{}\n{canonical_headers}\n{}\n{hashed_payload}",
        canonical_query(raw_query),
        signed.join(";")
    )
}

/// `ACS3-HMAC-SHA256\n` + hex SHA-256 of the canonical request.
fn string_to_sign(canonical_request: &str) -> String {
    format!("{ALGORITHM}\n{}", sha256_hex(canonical_request.as_bytes()))
}

/// The hex signature of a canonical request.
pub fn signature(canonical_request: &str, access_key_secret: &str) -> String {
    hex::encode(hmac_sha256(
        access_key_secret.as_bytes(),
        string_to_sign(canonical_request).as_bytes(),
    ))
}

/// An Aliyun error answer: the gateway's full shape for 4xx/5xx, the business shape for 200.
fn error(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let request_id = uuid().to_ascii_uppercase();
    let body = if status == StatusCode::OK {
        json!({ "RequestId": request_id, "Message": message, "Code": code })
    } else {
        json!({
            "RequestId": request_id,
            "Message": message,
            "Recommend": format!("https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi&requestId={request_id}"),
            "HostId": HOST_ID,
            "Code": code,
        })
    };
    answer(status, body)
}

fn answer(status: StatusCode, body: Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json;charset=utf-8")
        .body(body.to_string())
}

/// The status and message Aliyun answers a code with (for injected failures too).
fn known(code: &str) -> (StatusCode, &'static str) {
    match code {
        "isv.BUSINESS_LIMIT_CONTROL" => (StatusCode::OK, "触发号码天级流控Permits:10"),
        "isv.DAY_LIMIT_CONTROL" => (StatusCode::OK, "触发日发送限额"),
        "isv.MOBILE_NUMBER_ILLEGAL" => (StatusCode::OK, "非法手机号"),
        "isv.SMS_SIGNATURE_ILLEGAL" => (StatusCode::OK, "该账号下找不到对应签名"),
        "isv.SMS_TEMPLATE_ILLEGAL" => (StatusCode::OK, "该账号下找不到对应模板"),
        "isv.AMOUNT_NOT_ENOUGH" => (StatusCode::OK, "账户余额不足"),
        "isv.INVALID_JSON_PARAM" => (StatusCode::OK, "JSON参数不合法，只接受字符串值"),
        "isv.OUT_OF_SERVICE" => (StatusCode::OK, "业务停机"),
        "isp.SYSTEM_ERROR" => (StatusCode::OK, "系统出现错误，请重新调用"),
        "SignatureDoesNotMatch" => (
            StatusCode::BAD_REQUEST,
            "Specified signature does not match our calculation.",
        ),
        "IncompleteSignature" => (
            StatusCode::BAD_REQUEST,
            "The request signature does not conform to Aliyun standards.",
        ),
        "InvalidAccessKeyId.NotFound" => {
            (StatusCode::NOT_FOUND, "Specified access key is not found.")
        }
        "InvalidTimeStamp.Expired" => (
            StatusCode::BAD_REQUEST,
            "Specified time stamp or date value is expired.",
        ),
        "InvalidTimeStamp.Format" => (
            StatusCode::BAD_REQUEST,
            "Specified time stamp or date value is not well formatted.",
        ),
        "SignatureNonceUsed" => (
            StatusCode::BAD_REQUEST,
            "Specified signature nonce was used already.",
        ),
        "MissingSignatureNonce" => (
            StatusCode::BAD_REQUEST,
            "SignatureNonce is mandatory for this action.",
        ),
        "InvalidVersion" => (
            StatusCode::BAD_REQUEST,
            "Specified parameter Version is not valid.",
        ),
        "InvalidAction.NotFound" => (
            StatusCode::NOT_FOUND,
            "Specified api is not found, please check your url and method.",
        ),
        "Throttling.User" => (
            StatusCode::BAD_REQUEST,
            "Request was denied due to user flow control.",
        ),
        "ServiceUnavailable" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "The request has failed due to a temporary failure of the server.",
        ),
        "InternalError" => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "The request processing has failed due to some unknown error, exception or failure.",
        ),
        c if c.starts_with("isv.") || c.starts_with("isp.") => (StatusCode::OK, "emulated failure"),
        _ => (StatusCode::BAD_REQUEST, "emulated failure"),
    }
}

fn fail(code: &str) -> HttpResponse {
    let (status, message) = known(code);
    error(status, code, message)
}

/// All values of a request header, as strings.
fn header_values(req: &HttpRequest, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect()
}

fn header<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Parses `2023-10-26T10:22:32Z` (ISO 8601 UTC, as the V3 signature requires).
fn parse_date(value: &str) -> Option<i64> {
    chrono::NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%SZ")
        .ok()
        .map(|d| d.and_utc().timestamp())
}

/// `POST /` (or GET) with `x-acs-action`.
pub fn send_sms(req: &HttpRequest, body: &[u8], em: &SmsEmulator) -> HttpResponse {
    let Some(account) = &em.aliyun else {
        return fail("InvalidAccessKeyId.NotFound");
    };
    let Some(auth) = header(req, "authorization").and_then(|v| parse_authorization(v, ALGORITHM))
    else {
        return fail("IncompleteSignature");
    };
    if header(req, "x-acs-action") != Some(ACTION) {
        return fail("InvalidAction.NotFound");
    }
    if header(req, "x-acs-version") != Some(VERSION) {
        return fail("InvalidVersion");
    }
    let Some(date) = header(req, "x-acs-date") else {
        return fail("InvalidTimeStamp.Format");
    };
    let Some(timestamp) = parse_date(date) else {
        return fail("InvalidTimeStamp.Format");
    };
    let now = chrono::Utc::now().timestamp();
    if (now - timestamp).abs() > MAX_SKEW_SECONDS {
        return fail("InvalidTimeStamp.Expired");
    }
    if auth.credential != account.access_key_id {
        return fail("InvalidAccessKeyId.NotFound");
    }
    // Every `x-acs-*` header sent, and `host`, must be signed.
    let signed = &auth.signed_headers;
    let unsigned = req.headers().keys().any(|name| {
        let name = name.as_str();
        (name == "host" || name.starts_with("x-acs-")) && !signed.iter().any(|s| s == name)
    });
    if unsigned || signed.windows(2).any(|w| w[0] >= w[1]) {
        return fail("IncompleteSignature");
    }
    let headers: BTreeMap<String, Vec<String>> = signed
        .iter()
        .map(|name| (name.clone(), header_values(req, name)))
        .collect();
    let canonical = canonical_request(
        req.method().as_str(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
        &headers,
        &sha256_hex(body),
    );
    let expected = signature(&canonical, account.access_key_secret.expose());
    if !same(&expected, &auth.signature.to_ascii_lowercase()) {
        let message = format!(
            "Specified signature does not match our calculation. The server string to sign is:{}",
            string_to_sign(&canonical)
        );
        return error(StatusCode::BAD_REQUEST, "SignatureDoesNotMatch", &message);
    }
    let Some(nonce) = header(req, "x-acs-signature-nonce").filter(|n| !n.is_empty()) else {
        return fail("MissingSignatureNonce");
    };
    {
        let mut state = em.lock();
        state
            .nonces
            .retain(|_, seen| now - *seen <= MAX_SKEW_SECONDS);
        if state.nonces.insert(nonce.to_string(), now).is_some() {
            return fail("SignatureNonceUsed");
        }
    }
    send(req, body, em, account)
}

/// The business part, once the request is authenticated.
fn send(
    req: &HttpRequest,
    body: &[u8],
    em: &SmsEmulator,
    account: &crate::config::AliyunSmsAccount,
) -> HttpResponse {
    // RPC parameters arrive in the query string, or as a form body.
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    let form = header(req, "content-type")
        .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"));
    let form_body = if form {
        String::from_utf8_lossy(body).replace('+', "%20")
    } else {
        String::new()
    };
    for (k, v) in query_pairs(req.uri().query().unwrap_or(""))
        .into_iter()
        .chain(query_pairs(&form_body))
    {
        params.insert(
            String::from_utf8_lossy(&k).into_owned(),
            String::from_utf8_lossy(&v).into_owned(),
        );
    }
    for name in ["PhoneNumbers", "SignName", "TemplateCode"] {
        if params.get(name).is_none_or(|v| v.is_empty()) {
            return error(
                StatusCode::BAD_REQUEST,
                &format!("Missing{name}"),
                &format!("{name} is mandatory for this action."),
            );
        }
    }
    if let Some(failure) = em.take_failure(Provider::Aliyun) {
        let (status, message) = known(&failure.code);
        return error(
            status,
            &failure.code,
            failure.message.as_deref().unwrap_or(message),
        );
    }
    if params["SignName"] != account.sign_name {
        return fail("isv.SMS_SIGNATURE_ILLEGAL");
    }
    if params["TemplateCode"] != account.template_code {
        return fail("isv.SMS_TEMPLATE_ILLEGAL");
    }
    let template_params = match params
        .get("TemplateParam")
        .map(|p| serde_json::from_str::<Value>(p))
    {
        None => Value::Object(Map::new()),
        Some(Ok(Value::Object(map))) if map.values().all(Value::is_string) => Value::Object(map),
        Some(_) => return fail("isv.INVALID_JSON_PARAM"),
    };
    let phones: Vec<&str> = params["PhoneNumbers"].split(',').collect();
    let mut numbers = Vec::new();
    for phone in &phones {
        match e164_digits(phone) {
            Some(digits) => numbers.push((phone.to_string(), format!("+{digits}"))),
            None => return fail("isv.MOBILE_NUMBER_ILLEGAL"),
        }
    }
    let otp = template_params
        .get("code")
        .or_else(|| template_params.as_object().and_then(|m| m.values().next()))
        .and_then(Value::as_str)
        .map(str::to_string);
    let biz_id = format!("{}^0", digits(18));
    for (phone, e164) in numbers {
        em.record(Message {
            provider: Provider::Aliyun,
            phone,
            e164,
            sign_name: params["SignName"].clone(),
            template: params["TemplateCode"].clone(),
            params: template_params.clone(),
            otp: otp.clone(),
            message_id: biz_id.clone(),
            time: now_rfc3339(),
        });
    }
    answer(
        StatusCode::OK,
        json!({
            "Message": "OK",
            "RequestId": uuid().to_ascii_uppercase(),
            "Code": "OK",
            "BizId": biz_id,
        }),
    )
}
