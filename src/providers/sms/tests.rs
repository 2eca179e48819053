//! End-to-end tests of the SMS clients against real HTTP servers. The servers check each
//! request's signature with their own code (straight from the providers' documents, sharing
//! nothing with the clients' signers), so a signing bug fails here.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::*;
use crate::config::{AliyunSmsConfig, Secret, TencentSmsConfig};
use crate::providers::hooks::HookEndpoint;
use crate::providers::testing::{header, serve, Reply, TestServer};

const OTP: &str = "493817";
const ALIYUN_ID: &str = "LTAI5tTestKeyId";
const ALIYUN_SECRET: &str = "aliyun-access-key-secret-42";
const TENCENT_ID: &str = "AKIDtestsecretid";
const TENCENT_SECRET: &str = "tencent-secret-key-42";
const HOOK_SECRET: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn user() -> Value {
    json!({"id": "9d0e7b7e-2f4c-4a49-9d6c-3b7f3c1c9a10", "phone": "8613800138000", "aud": "authenticated"})
}

fn message<'a>(phone: &'a str, user: &'a Value) -> SmsMessage<'a> {
    SmsMessage {
        phone,
        otp: OTP,
        text: "Your code is 493817",
        user,
    }
}

fn json_reply(status: u16, body: Value) -> Reply {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body.to_string())
        .into()
}

/// Nothing secret in an error or a provider's `Debug`.
fn assert_clean(shown: &str) {
    for secret in [OTP, ALIYUN_SECRET, TENCENT_SECRET, "MfKQ9r8GKYqr"] {
        assert!(!shown.contains(secret), "{secret} leaked: {shown}");
    }
}

// ---------------------------------------------------------------------------------------------
// Aliyun

/// Aliyun's encoding as its older SDKs spell it: form encoding, then `+`→`%20`, `*`→`%2A`,
/// `%7E`→`~`.
fn aliyun_encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
        .replace('*', "%2A")
        .replace("%7E", "~")
}

/// Checks an ACS3-HMAC-SHA256 request as Aliyun's gateway does; on success returns the query
/// parameters, else the gateway's error answer.
fn aliyun_check(req: &HttpRequest, body: &[u8]) -> Result<BTreeMap<String, String>, (u16, Value)> {
    let fail = |status: u16, code: &str| {
        Err((
            status,
            json!({"Code": code, "Message": format!("{code} (test gateway)"), "RequestId": "R1"}),
        ))
    };
    let auth = header(req, "authorization");
    let Some(rest) = auth.strip_prefix("ACS3-HMAC-SHA256 ") else {
        return fail(400, "IncompleteSignature");
    };
    let fields: BTreeMap<&str, &str> = rest.split(',').filter_map(|f| f.split_once('=')).collect();
    if fields.get("Credential") != Some(&ALIYUN_ID) {
        return fail(404, "InvalidAccessKeyId.NotFound");
    }
    let signed = fields.get("SignedHeaders").copied().unwrap_or("");
    for needed in [
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    ] {
        if !signed.split(';').any(|h| h == needed) {
            return fail(400, "IncompleteSignature");
        }
    }
    if header(req, "x-acs-content-sha256") != sha_hex(body) {
        return fail(400, "ContentSHA256NotMatched");
    }
    let date = chrono::DateTime::parse_from_rfc3339(header(req, "x-acs-date"));
    match date {
        Ok(d) if (chrono::Utc::now().timestamp() - d.timestamp()).abs() < 900 => {}
        _ => return fail(400, "InvalidTimeStamp.Expired"),
    }
    let params: BTreeMap<String, String> =
        url::form_urlencoded::parse(req.query_string().as_bytes())
            .into_owned()
            .collect();
    let query = params
        .iter()
        .map(|(k, v)| format!("{}={}", aliyun_encode(k), aliyun_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let headers: String = signed
        .split(';')
        .map(|h| format!("{h}:{}\n", header(req, h).trim()))
        .collect();
    let canonical = format!(
        "{}\n{}\n{query}\n{headers}\n{signed}\n{}",
        req.method(),
        req.path(),
        sha_hex(body)
    );
    let string_to_sign = format!("ACS3-HMAC-SHA256\n{}", sha_hex(canonical.as_bytes()));
    let expected = hex::encode(hmac(ALIYUN_SECRET.as_bytes(), string_to_sign.as_bytes()));
    if fields.get("Signature") != Some(&expected.as_str()) {
        return fail(400, "SignatureDoesNotMatch");
    }
    if header(req, "x-acs-action") != "SendSms" || header(req, "x-acs-version") != "2017-05-25" {
        return fail(400, "InvalidAction.NotFound");
    }
    Ok(params)
}

/// A scripted answer of a fake server.
type Answer = Box<dyn Fn() -> Reply + Send + Sync>;

type Seen = Arc<Mutex<Vec<BTreeMap<String, String>>>>;

/// A fake dysmsapi that checks signatures, records the accepted requests' parameters and answers
/// `answer` to them.
fn aliyun_server(
    answer: impl Fn() -> Reply + Send + Sync + 'static,
) -> (TestServer, Seen, Arc<AtomicUsize>) {
    let seen: Seen = Default::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (log, count) = (seen.clone(), calls.clone());
    let server = serve(move |req, body| {
        count.fetch_add(1, Ordering::SeqCst);
        match aliyun_check(req, body) {
            Ok(params) => {
                log.lock().unwrap().push(params);
                answer()
            }
            Err((status, body)) => json_reply(status, body),
        }
    });
    (server, seen, calls)
}

fn aliyun(url: &str, secret: &str, timeout_ms: u64) -> SmsProvider {
    SmsProvider::Aliyun(
        AliyunSms::new(
            &AliyunSmsConfig {
                access_key_id: ALIYUN_ID.into(),
                access_key_secret: Secret::new(secret),
                sign_name: "微认证".into(),
                template_code: "SMS_154950909".into(),
                template_param: "code".into(),
                endpoint: url.into(),
            },
            Duration::from_millis(timeout_ms),
        )
        .unwrap(),
    )
}

fn aliyun_code(code: &str, message: &str) -> impl Fn() -> Reply + Send + Sync + 'static {
    let body = json!({"Code": code, "Message": message, "RequestId": "R2"});
    move || json_reply(200, body.clone())
}

#[actix_web::test]
async fn aliyun_sends_a_signed_request() {
    let (server, seen, _) = aliyun_server(|| {
        json_reply(
            200,
            json!({"Code": "OK", "Message": "OK", "BizId": "9006197469364984400", "RequestId": "R"}),
        )
    });
    let provider = aliyun(&server.url, ALIYUN_SECRET, 2000);
    assert_eq!(provider.name(), "aliyun");
    let u = user();
    let sent = provider.send(&message("8613800138000", &u)).await.unwrap();
    assert_eq!(sent.message_id.as_deref(), Some("9006197469364984400"));
    sent_international(&provider, &u).await;
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["PhoneNumbers"], "13800138000");
    assert_eq!(seen[0]["SignName"], "微认证");
    assert_eq!(seen[0]["TemplateCode"], "SMS_154950909");
    assert_eq!(
        serde_json::from_str::<Value>(&seen[0]["TemplateParam"]).unwrap(),
        json!({"code": OTP})
    );
    assert_eq!(seen[1]["PhoneNumbers"], "85268326366");
    assert_clean(&format!("{provider:?}"));
}

async fn sent_international(provider: &SmsProvider, u: &Value) {
    provider.send(&message("85268326366", u)).await.unwrap();
}

#[actix_web::test]
async fn aliyun_errors_are_classified() {
    let u = user();
    // A wrong secret is refused by the fake gateway's own signature check.
    let (server, _, _) = aliyun_server(aliyun_code("OK", "OK"));
    let err = aliyun(&server.url, "not-the-secret", 2000)
        .send(&message("8613800138000", &u))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SmsError::Rejected { code, .. } if code == "SignatureDoesNotMatch"),
        "{err:?}"
    );

    let cases: Vec<(Answer, &str)> = vec![
        (
            Box::new(aliyun_code(
                "isv.BUSINESS_LIMIT_CONTROL",
                "触发分钟级流控Permits:1",
            )),
            "rate isv.BUSINESS_LIMIT_CONTROL",
        ),
        (
            Box::new(aliyun_code("isv.DAY_LIMIT_CONTROL", "触发日发送限额")),
            "rate isv.DAY_LIMIT_CONTROL",
        ),
        (
            Box::new(aliyun_code("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")),
            "number isv.MOBILE_NUMBER_ILLEGAL",
        ),
        (
            Box::new(aliyun_code(
                "isv.SMS_TEMPLATE_ILLEGAL",
                "模板不合法 TemplateParam={\"code\":\"493817\"}",
            )),
            "rejected isv.SMS_TEMPLATE_ILLEGAL",
        ),
        (
            Box::new(aliyun_code("isv.SMS_SIGNATURE_ILLEGAL", "签名不合法")),
            "rejected isv.SMS_SIGNATURE_ILLEGAL",
        ),
        (
            Box::new(aliyun_code("isv.AMOUNT_NOT_ENOUGH", "账户余额不足")),
            "rejected isv.AMOUNT_NOT_ENOUGH",
        ),
        (
            Box::new(aliyun_code("isp.SYSTEM_ERROR", "系统错误")),
            "unavailable",
        ),
        (
            Box::new(|| {
                json_reply(
                    503,
                    json!({"Code": "ServiceUnavailable", "Message": "busy"}),
                )
            }),
            "unavailable",
        ),
        (
            Box::new(|| {
                HttpResponse::BadGateway()
                    .content_type("text/html")
                    .body("<html>502</html>")
                    .into()
            }),
            "unavailable",
        ),
        (
            Box::new(|| HttpResponse::Ok().body("not json").into()),
            "unavailable",
        ),
        (
            Box::new(|| json_reply(200, json!({"Message": "no code"}))),
            "unavailable",
        ),
    ];
    for (answer, expected) in cases {
        let (server, _, calls) = aliyun_server(answer);
        let err = aliyun(&server.url, ALIYUN_SECRET, 2000)
            .send(&message("8613800138000", &u))
            .await
            .unwrap_err();
        assert_eq!(class(&err), expected, "{err:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry: {err:?}");
        assert_clean(&format!("{err} {err:?}"));
    }

    // An unknown AccessKey id.
    let (server, _, _) = aliyun_server(aliyun_code("OK", "OK"));
    let other = SmsProvider::Aliyun(
        AliyunSms::new(
            &AliyunSmsConfig {
                access_key_id: "LTAIunknown".into(),
                access_key_secret: Secret::new(ALIYUN_SECRET),
                sign_name: "s".into(),
                template_code: "t".into(),
                template_param: "code".into(),
                endpoint: server.url.clone(),
            },
            Duration::from_secs(2),
        )
        .unwrap(),
    );
    let err = other.send(&message("8613800138000", &u)).await.unwrap_err();
    assert_eq!(class(&err), "rejected InvalidAccessKeyId.NotFound");
}

/// A short name for an error's class and code.
fn class(err: &SmsError) -> String {
    match err {
        SmsError::RateLimited { code, .. } => format!("rate {code}"),
        SmsError::InvalidNumber { code, .. } => format!("number {code}"),
        SmsError::Rejected { code, .. } => format!("rejected {code}"),
        SmsError::Unavailable { .. } => "unavailable".into(),
        SmsError::Hook(e) => format!("hook {e}"),
    }
}

#[actix_web::test]
async fn slow_unreachable_and_malformed_sends_fail_once() {
    let u = user();
    let (server, _, calls) = aliyun_server(|| Reply {
        delay: Some(Duration::from_millis(1500)),
        response: HttpResponse::Ok().finish(),
    });
    let started = std::time::Instant::now();
    let err = aliyun(&server.url, ALIYUN_SECRET, 300)
        .send(&message("8613800138000", &u))
        .await
        .unwrap_err();
    assert_eq!(class(&err), "unavailable", "{err:?}");
    assert!(started.elapsed() < Duration::from_millis(1200));
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let closed = format!("http://127.0.0.1:{port}");
    for provider in [
        aliyun(&closed, ALIYUN_SECRET, 1000),
        tencent(&closed, TENCENT_SECRET, 1000),
    ] {
        let err = provider
            .send(&message("8613800138000", &u))
            .await
            .unwrap_err();
        assert_eq!(class(&err), "unavailable", "{err:?}");
        let shown = format!("{err} {err:?}");
        assert_clean(&shown);
        assert!(!shown.contains("13800138000"), "{shown}");
    }

    let (server, _, calls) = aliyun_server(aliyun_code("OK", "OK"));
    for bad in [
        "",
        "+",
        "86 138 0013 8000",
        "1234",
        "8613800138000123",
        "86138OO138000",
    ] {
        let err = aliyun(&server.url, ALIYUN_SECRET, 1000)
            .send(&message(bad, &u))
            .await
            .unwrap_err();
        assert_eq!(class(&err), "number weauth.phone_format", "{bad}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

// ---------------------------------------------------------------------------------------------
// Tencent

/// Checks a TC3-HMAC-SHA256 request as Tencent's API does; on success returns the JSON body,
/// else the API's error answer (HTTP 200, as Tencent answers).
fn tencent_check(req: &HttpRequest, body: &[u8]) -> Result<Value, (u16, Value)> {
    let fail = |code: &str| {
        Err((
            200,
            json!({"Response": {"Error": {"Code": code, "Message": format!("{code} (test API)")}, "RequestId": "T1"}}),
        ))
    };
    let auth = header(req, "authorization");
    let Some(rest) = auth.strip_prefix("TC3-HMAC-SHA256 ") else {
        return fail("AuthFailure.InvalidAuthorization");
    };
    let fields: BTreeMap<&str, &str> = rest.split(", ").filter_map(|f| f.split_once('=')).collect();
    let credential: Vec<&str> = fields
        .get("Credential")
        .copied()
        .unwrap_or("")
        .split('/')
        .collect();
    let [id, date, "sms", "tc3_request"] = credential.as_slice() else {
        return fail("AuthFailure.InvalidAuthorization");
    };
    if *id != TENCENT_ID {
        return fail("AuthFailure.SecretIdNotFound");
    }
    let timestamp: i64 = header(req, "x-tc-timestamp").parse().unwrap_or(0);
    if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
        return fail("AuthFailure.SignatureExpire");
    }
    let utc_date = chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap()
        .format("%Y-%m-%d")
        .to_string();
    let signed = fields.get("SignedHeaders").copied().unwrap_or("");
    if *date != utc_date
        || !signed.split(';').any(|h| h == "content-type")
        || !signed.split(';').any(|h| h == "host")
    {
        return fail("AuthFailure.InvalidAuthorization");
    }
    let headers: String = signed
        .split(';')
        .map(|h| format!("{h}:{}\n", header(req, h).trim().to_lowercase()))
        .collect();
    let canonical = format!(
        "POST\n/\n{}\n{headers}\n{signed}\n{}",
        req.query_string(),
        sha_hex(body)
    );
    let string_to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{utc_date}/sms/tc3_request\n{}",
        sha_hex(canonical.as_bytes())
    );
    let key = hmac(
        &hmac(
            &hmac(
                format!("TC3{TENCENT_SECRET}").as_bytes(),
                utc_date.as_bytes(),
            ),
            b"sms",
        ),
        b"tc3_request",
    );
    if fields.get("Signature") != Some(&hex::encode(hmac(&key, string_to_sign.as_bytes())).as_str())
    {
        return fail("AuthFailure.SignatureFailure");
    }
    if header(req, "x-tc-action") != "SendSms" || header(req, "x-tc-version") != "2021-01-11" {
        return fail("InvalidAction");
    }
    if header(req, "x-tc-region") != "ap-guangzhou" {
        return fail("InvalidParameterValue.RegionError");
    }
    serde_json::from_slice(body).map_err(|_| {
        (
            200,
            json!({"Response": {"Error": {"Code": "InvalidParameter", "Message": "bad json"}}}),
        )
    })
}

type SeenJson = Arc<Mutex<Vec<Value>>>;

fn tencent_server(
    answer: impl Fn() -> Reply + Send + Sync + 'static,
) -> (TestServer, SeenJson, Arc<AtomicUsize>) {
    let seen: SeenJson = Default::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (log, count) = (seen.clone(), calls.clone());
    let server = serve(move |req, body| {
        count.fetch_add(1, Ordering::SeqCst);
        match tencent_check(req, body) {
            Ok(body) => {
                log.lock().unwrap().push(body);
                answer()
            }
            Err((status, body)) => json_reply(status, body),
        }
    });
    (server, seen, calls)
}

fn tencent(url: &str, secret: &str, timeout_ms: u64) -> SmsProvider {
    SmsProvider::Tencent(
        TencentSms::new(
            &TencentSmsConfig {
                secret_id: TENCENT_ID.into(),
                secret_key: Secret::new(secret),
                sdk_app_id: "1400006666".into(),
                sign_name: "腾讯云".into(),
                template_id: "1110".into(),
                region: "ap-guangzhou".into(),
                endpoint: url.into(),
            },
            Duration::from_millis(timeout_ms),
        )
        .unwrap(),
    )
}

fn tencent_status(code: &str) -> impl Fn() -> Reply + Send + Sync + 'static {
    let body = json!({"Response": {"SendStatusSet": [{
        "SerialNo": "2028:f825e6b16e23f73f4123", "PhoneNumber": "+8613800138000", "Fee": 1,
        "SessionContext": "", "Code": code, "Message": format!("{code} message"), "IsoCode": "CN"
    }], "RequestId": "T2"}});
    move || json_reply(200, body.clone())
}

fn tencent_error(code: &str) -> impl Fn() -> Reply + Send + Sync + 'static {
    let body = json!({"Response": {"Error": {"Code": code, "Message": "code 493817 refused"}, "RequestId": "T3"}});
    move || json_reply(200, body.clone())
}

#[actix_web::test]
async fn tencent_sends_a_signed_request() {
    let (server, seen, _) = tencent_server(tencent_status("Ok"));
    let provider = tencent(&server.url, TENCENT_SECRET, 2000);
    assert_eq!(provider.name(), "tencent");
    let u = user();
    let sent = provider.send(&message("8613800138000", &u)).await.unwrap();
    assert_eq!(
        sent.message_id.as_deref(),
        Some("2028:f825e6b16e23f73f4123")
    );
    provider.send(&message("+85268326366", &u)).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen[0],
        json!({
            "PhoneNumberSet": ["+8613800138000"], "SmsSdkAppId": "1400006666", "SignName": "腾讯云",
            "TemplateId": "1110", "TemplateParamSet": [OTP]
        })
    );
    assert_eq!(seen[1]["PhoneNumberSet"], json!(["+85268326366"]));
    assert_clean(&format!("{provider:?}"));
}

#[actix_web::test]
async fn tencent_errors_are_classified() {
    let u = user();
    let (server, _, _) = tencent_server(tencent_status("Ok"));
    let err = tencent(&server.url, "not-the-secret", 2000)
        .send(&message("8613800138000", &u))
        .await
        .unwrap_err();
    assert_eq!(
        class(&err),
        "rejected AuthFailure.SignatureFailure",
        "{err:?}"
    );

    let cases: Vec<(Answer, &str)> = vec![
        (
            Box::new(tencent_status("LimitExceeded.PhoneNumberThirtySecondLimit")),
            "rate LimitExceeded.PhoneNumberThirtySecondLimit",
        ),
        (
            Box::new(tencent_status("LimitExceeded.PhoneNumberDailyLimit")),
            "rate LimitExceeded.PhoneNumberDailyLimit",
        ),
        (
            Box::new(tencent_error("RequestLimitExceeded")),
            "rate RequestLimitExceeded",
        ),
        (
            Box::new(tencent_status("InvalidParameterValue.IncorrectPhoneNumber")),
            "number InvalidParameterValue.IncorrectPhoneNumber",
        ),
        (
            Box::new(tencent_error("InvalidParameterValue.IncorrectPhoneNumber")),
            "number InvalidParameterValue.IncorrectPhoneNumber",
        ),
        (
            Box::new(tencent_error(
                "FailedOperation.SignatureIncorrectOrUnapproved",
            )),
            "rejected FailedOperation.SignatureIncorrectOrUnapproved",
        ),
        (
            Box::new(tencent_status(
                "FailedOperation.InsufficientBalanceInSmsPackage",
            )),
            "rejected FailedOperation.InsufficientBalanceInSmsPackage",
        ),
        (
            Box::new(tencent_error("AuthFailure.SecretIdNotFound")),
            "rejected AuthFailure.SecretIdNotFound",
        ),
        (
            Box::new(tencent_error("InternalError.Timeout")),
            "unavailable",
        ),
        (
            Box::new(|| json_reply(200, json!({"Response": {"RequestId": "T4"}}))),
            "unavailable",
        ),
        (
            Box::new(|| HttpResponse::InternalServerError().body("oops").into()),
            "unavailable",
        ),
        (
            Box::new(|| json_reply(502, json!({"Response": {"SendStatusSet": []}}))),
            "unavailable",
        ),
    ];
    for (answer, expected) in cases {
        let (server, _, calls) = tencent_server(answer);
        let err = tencent(&server.url, TENCENT_SECRET, 2000)
            .send(&message("8613800138000", &u))
            .await
            .unwrap_err();
        assert_eq!(class(&err), expected, "{err:?}");
        assert_eq!(calls.load(Ordering::SeqCst), 1, "no retry");
        assert_clean(&format!("{err} {err:?}"));
    }
}

// ---------------------------------------------------------------------------------------------
// The Send SMS hook

fn hook_provider(url: &str) -> SmsProvider {
    SmsProvider::Hook(SmsHook::new(
        Hook::new(
            "send_sms",
            HookEndpoint::parse(url, Some(HOOK_SECRET)).unwrap(),
            Duration::from_secs(2),
        )
        .unwrap(),
    ))
}

/// A Send SMS hook receiver: checks the Standard Webhooks signature with its own code, records
/// the payload and answers `answer`.
fn hook_server(answer: impl Fn() -> Reply + Send + Sync + 'static) -> (TestServer, SeenJson) {
    let seen: SeenJson = Default::default();
    let log = seen.clone();
    let server = serve(move |req, body| {
        let key = base64::engine::general_purpose::STANDARD
            .decode(HOOK_SECRET.trim_start_matches("v1,whsec_"))
            .unwrap();
        let signed = [
            header(req, "webhook-id").as_bytes(),
            b".",
            header(req, "webhook-timestamp").as_bytes(),
            b".",
            body,
        ]
        .concat();
        let expected = format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(hmac(&key, &signed))
        );
        if header(req, "webhook-signature") != expected {
            return HttpResponse::Unauthorized().finish().into();
        }
        log.lock()
            .unwrap()
            .push(serde_json::from_slice(body).unwrap());
        answer()
    });
    (server, seen)
}

#[actix_web::test]
async fn the_hook_gets_gotrues_payload() {
    let (server, seen) = hook_server(|| json_reply(200, json!({})));
    let provider = hook_provider(&server.url);
    assert_eq!(provider.name(), "hook");
    assert!(!provider.runs_in_database());
    let u = user();
    let sent = provider.send(&message("8613800138000", &u)).await.unwrap();
    assert_eq!(sent, SmsSent { message_id: None });
    let payload = seen.lock().unwrap().pop().unwrap();
    assert_eq!(payload["user"], u);
    assert_eq!(
        payload["sms"],
        json!({"otp": OTP, "phone": "8613800138000"})
    );
    assert_eq!(payload["metadata"]["name"], "send-sms");
    assert!(uuid::Uuid::parse_str(payload["metadata"]["uuid"].as_str().unwrap()).is_ok());
    assert!(
        chrono::DateTime::parse_from_rfc3339(payload["metadata"]["time"].as_str().unwrap()).is_ok()
    );
    assert_clean(&format!("{provider:?}"));

    let (server, _) = hook_server(|| {
        json_reply(
            200,
            json!({"error": {"http_code": 400, "message": "Number blocked"}}),
        )
    });
    let err = hook_provider(&server.url)
        .send(&message("8613800138000", &u))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SmsError::Hook(HookError::Answered { http_code: 400, message }) if message == "Number blocked"),
        "{err:?}"
    );
    assert_clean(&format!("{err} {err:?}"));
}

#[actix_web::test]
async fn a_pg_function_hook_is_sent_on_the_callers_connection() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;
    let provider = SmsProvider::Hook(SmsHook::new(
        Hook::new(
            "send_sms",
            HookEndpoint::parse("pg-functions://postgres/pg_temp/send_sms", None).unwrap(),
            Duration::from_secs(2),
        )
        .unwrap(),
    ));
    assert!(provider.runs_in_database());
    let u = user();
    let err = provider
        .send(&message("8613800138000", &u))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SmsError::Hook(HookError::WrongTarget(_))),
        "{err:?}"
    );

    let url = std::env::var("WEAUTH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut conn = diesel::PgConnection::establish(&format!("{url}{sep}sslmode=disable")).unwrap();
    conn.begin_test_transaction().unwrap();
    conn.batch_execute(
        "create table pg_temp.sent (payload jsonb);
         create function pg_temp.send_sms(event jsonb) returns jsonb language sql
           as $$ insert into pg_temp.sent values (event); select '{}'::jsonb $$;",
    )
    .unwrap();
    provider
        .send_sql(&mut conn, &message("8613800138000", &u))
        .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Sent {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let sent: Sent = diesel::RunQueryDsl::get_result(
        diesel::sql_query("select payload from pg_temp.sent"),
        &mut conn,
    )
    .unwrap();
    assert_eq!(sent.payload["sms"]["otp"], OTP);
    assert_eq!(sent.payload["user"], u);

    let aliyun = aliyun("http://127.0.0.1:9", ALIYUN_SECRET, 1000);
    assert!(matches!(
        aliyun.send_sql(&mut conn, &message("8613800138000", &u)),
        Err(SmsError::Hook(HookError::WrongTarget("aliyun")))
    ));
}

#[test]
fn providers_are_built_from_the_configuration() {
    let build = |pairs: &[(&str, &str)]| {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let config =
            crate::config::Config::from_lookup(&move |name| map.get(name).cloned()).unwrap();
        SmsProvider::from_config(&config.sms, &config.hooks).unwrap()
    };
    assert!(build(&[]).is_none());
    let aliyun = build(&[
        ("GOTRUE_SMS_PROVIDER", "aliyun"),
        ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID", ALIYUN_ID),
        ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET", ALIYUN_SECRET),
        ("WEAUTH_SMS_ALIYUN_SIGN_NAME", "s"),
        ("WEAUTH_SMS_ALIYUN_TEMPLATE_CODE", "t"),
    ])
    .unwrap();
    assert_eq!(aliyun.name(), "aliyun");
    assert_clean(&format!("{aliyun:?}"));
    let tencent = build(&[
        ("GOTRUE_SMS_PROVIDER", "tencent"),
        ("WEAUTH_SMS_TENCENT_SECRET_ID", TENCENT_ID),
        ("WEAUTH_SMS_TENCENT_SECRET_KEY", TENCENT_SECRET),
        ("WEAUTH_SMS_TENCENT_SDK_APP_ID", "1400006666"),
        ("WEAUTH_SMS_TENCENT_SIGN_NAME", "s"),
        ("WEAUTH_SMS_TENCENT_TEMPLATE_ID", "1"),
    ])
    .unwrap();
    assert_eq!(tencent.name(), "tencent");
    assert_clean(&format!("{tencent:?}"));
    let hook = build(&[
        ("GOTRUE_SMS_PROVIDER", "aliyun"),
        ("GOTRUE_HOOK_SEND_SMS_ENABLED", "true"),
        ("GOTRUE_HOOK_SEND_SMS_URI", "https://hooks.example.com/sms"),
        ("GOTRUE_HOOK_SEND_SMS_SECRETS", HOOK_SECRET),
    ])
    .unwrap();
    assert_eq!(hook.name(), "hook");
    assert_clean(&format!("{hook:?}"));
}

#[test]
fn messages_and_scrubbing_hide_the_code() {
    let u = user();
    assert_clean(&format!("{:?}", message("8613800138000", &u)));
    assert_eq!(
        crate::providers::scrub("code 493817 bad", OTP),
        "code *** bad"
    );
    assert_eq!(
        crate::providers::scrub(&"é".repeat(400), OTP)
            .chars()
            .count(),
        301
    );
}
