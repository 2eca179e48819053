//! The SMS emulator: its verifiers against the providers' documented signing examples, then
//! both APIs and the control routes over HTTP, signed by a client written from the documents.

use std::collections::BTreeMap;
use std::net::TcpListener;

use serde_json::{json, Value};

use super::{aliyun, e164_digits, sha256_hex, tencent};
use crate::config::{AliyunSmsAccount, EmulatorConfig, Secret, TencentSmsAccount};
use crate::start;

// ---- the documented examples --------------------------------------------------------------

/// Aliyun's V3 signature document, fixed example (vector A1 of sms-signing.md).
#[test]
fn aliyun_verifier_reproduces_the_documented_example() {
    let empty = sha256_hex(b"");
    let headers: BTreeMap<String, Vec<String>> = [
        ("host", "ecs.cn-shanghai.aliyuncs.com"),
        ("x-acs-action", "RunInstances"),
        ("x-acs-content-sha256", empty.as_str()),
        ("x-acs-date", "2023-10-26T10:22:32Z"),
        ("x-acs-signature-nonce", "3156853299f313e23d1673dc12e1703d"),
        ("x-acs-version", "2014-05-26"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
    .collect();
    // The query as sent, in another order: the verifier sorts it.
    let canonical = aliyun::canonical_request(
        "POST",
        "/",
        "RegionId=cn-shanghai&ImageId=win2019_1809_x64_dtc_zh-cn_40G_alibase_20230811.vhd",
        &headers,
        &empty,
    );
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "7ea06492da5221eba5297e897ce16e55f964061054b7695beedaac1145b1e259"
    );
    assert_eq!(
        aliyun::signature(&canonical, "YourAccessKeySecret"),
        "06563a9e1b43f5dfe96b81484da74bceab24a1d853912eee15083a6f0f3283c0"
    );
}

/// The official SDK test (`aliyun/darabonba-openapi-util`, python `test_get_authorization`):
/// an empty value keeps its `=`, repeated headers merge as `http,https`. (sms-signing.md's
/// `da772425…` for it is the TypeScript test's old, wrong expectation.)
#[test]
fn aliyun_verifier_reproduces_the_sdk_test() {
    let headers = BTreeMap::from([(
        "x-acs-test".to_string(),
        vec!["https".to_string(), "http".to_string()],
    )]);
    let canonical = aliyun::canonical_request(
        "GET",
        "/",
        "test=ok&empty",
        &headers,
        "55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23",
    );
    assert_eq!(
        canonical,
        "GET\n/\nempty=&test=ok\nx-acs-test:http,https\n\nx-acs-test\n55e12e91650d2fec56ec74e1d3e4ddbfce2ef3a65890c2a19ecf88a307e76a23"
    );
    assert_eq!(
        aliyun::signature(&canonical, "secret"),
        "d16b30a7699ae9e43875b13195b2f81bcc3ed10c14a9b5eb780e51619aa50be1"
    );
}

#[test]
fn aliyun_query_is_re_encoded_per_rfc_3986() {
    assert_eq!(
        aliyun::canonical_query("b=%7b%22code%22%3a%221%22%7d&a=x%20y&c=*~"),
        "a=x%20y&b=%7B%22code%22%3A%221%22%7D&c=%2A~"
    );
}

const T_BODY: &str =
    r#"{"Limit": 1, "Filters": [{"Values": ["\u672a\u547d\u540d"], "Name": "instance-name"}]}"#;

/// Tencent's English "Signature v3" page (vector T1).
#[test]
fn tencent_verifier_reproduces_the_english_example() {
    let canonical = tencent::canonical_request(
        "POST",
        "/",
        "",
        &[
            (
                "Content-Type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("Host".into(), "cvm.tencentcloudapi.com".into()),
        ],
        T_BODY.as_bytes(),
    );
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    );
    assert_eq!(
        tencent::signature(
            "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE",
            "cvm",
            1551113065,
            &canonical
        ),
        "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    );
}

/// The Chinese page (vector T2): `x-tc-action` signed, its value lower-cased.
#[test]
fn tencent_verifier_reproduces_the_chinese_example() {
    let canonical = tencent::canonical_request(
        "POST",
        "/",
        "",
        &[
            (
                "content-type".into(),
                "application/json; charset=utf-8".into(),
            ),
            ("host".into(), "cvm.tencentcloudapi.com".into()),
            ("x-tc-action".into(), "DescribeInstances".into()),
        ],
        T_BODY.as_bytes(),
    );
    assert_eq!(
        sha256_hex(canonical.as_bytes()),
        "7019a55be8395899b900fb5564e4200d984910f34794a27cb3fb7d10ff6a1e84"
    );
    assert_eq!(
        tencent::signature(&"*".repeat(32), "cvm", 1551113065, &canonical),
        "10b1a37a7301a02ca19a647ad722d5e43b4b3cff309d421d85b46093f6ab6c4f"
    );
}

#[test]
fn numbers_are_read_as_both_providers_read_them() {
    for (input, want) in [
        ("13800138000", Some("8613800138000")),
        ("8613800138000", Some("8613800138000")),
        ("+8613800138000", Some("8613800138000")),
        ("008613800138000", Some("8613800138000")),
        ("85268326366", Some("85268326366")),
        ("+14155552671", Some("14155552671")),
        ("+861380013800", None),
        ("+8623800138000", None),
        ("1380013800a", None),
        ("1234", None),
        ("", None),
        ("+1234567890123456", None),
    ] {
        assert_eq!(e164_digits(input).as_deref(), want, "{input}");
    }
}

// ---- over HTTP ----------------------------------------------------------------------------

const ALI_ID: &str = "LTAItestkey";
const ALI_SECRET: &str = "ali-test-secret";
const TC_ID: &str = "AKIDtestsecretid";
const TC_KEY: &str = "tc-test-key";

fn test_config() -> EmulatorConfig {
    EmulatorConfig {
        wechat_apps: Default::default(),
        sms_aliyun: Some(AliyunSmsAccount {
            access_key_id: ALI_ID.into(),
            access_key_secret: Secret::new(ALI_SECRET),
            sign_name: "阿里测试".into(),
            template_code: "SMS_123".into(),
        }),
        sms_tencent: Some(TencentSmsAccount {
            secret_id: TC_ID.into(),
            secret_key: Secret::new(TC_KEY),
            sdk_app_id: "1400006666".into(),
            sign_name: "腾讯测试".into(),
            template_id: "1110".into(),
        }),
    }
}

struct Emu {
    base: String,
    host: String,
    http: reqwest::Client,
}

/// What to vary in a signed Aliyun request.
struct Ali<'a> {
    key_id: &'a str,
    secret: &'a str,
    date: String,
    nonce: String,
    phone: &'a str,
    sign_name: &'a str,
    template: &'a str,
}

impl Default for Ali<'_> {
    fn default() -> Self {
        Ali {
            key_id: ALI_ID,
            secret: ALI_SECRET,
            date: chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            nonce: super::uuid(),
            phone: "13800138000",
            sign_name: "阿里测试",
            template: "SMS_123",
        }
    }
}

/// What to vary in a signed Tencent request.
struct Tc<'a> {
    id: &'a str,
    key: &'a str,
    timestamp: i64,
    phones: Vec<&'a str>,
    sign_name: &'a str,
    template: &'a str,
}

impl Default for Tc<'_> {
    fn default() -> Self {
        Tc {
            id: TC_ID,
            key: TC_KEY,
            timestamp: chrono::Utc::now().timestamp(),
            phones: vec!["+8613800138000"],
            sign_name: "腾讯测试",
            template: "1110",
        }
    }
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

impl Emu {
    async fn start() -> (Emu, actix_web::dev::ServerHandle) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = start(test_config(), listener).unwrap();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        let emu = Emu {
            base: format!("http://{addr}"),
            host: addr.to_string(),
            http: reqwest::Client::new(),
        };
        (emu, handle)
    }

    /// A `SendSms` signed as the V3 document says (the query sent unsorted on purpose).
    async fn aliyun(&self, a: Ali<'_>) -> (u16, Value) {
        let params = r#"{"code":"123456"}"#;
        let query = format!(
            "TemplateParam={}&PhoneNumbers={}&SignName={}&TemplateCode={}",
            encode(params),
            encode(a.phone),
            encode(a.sign_name),
            encode(a.template)
        );
        let hashed = sha256_hex(b"");
        let headers: BTreeMap<String, Vec<String>> = [
            ("host", self.host.as_str()),
            ("x-acs-action", "SendSms"),
            ("x-acs-content-sha256", hashed.as_str()),
            ("x-acs-date", a.date.as_str()),
            ("x-acs-signature-nonce", a.nonce.as_str()),
            ("x-acs-version", "2017-05-25"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), vec![v.to_string()]))
        .collect();
        let canonical = aliyun::canonical_request("POST", "/", &query, &headers, &hashed);
        let signed = headers.keys().cloned().collect::<Vec<_>>().join(";");
        let mut req = self.http.post(format!("{}/?{query}", self.base)).header(
            "authorization",
            format!(
                "ACS3-HMAC-SHA256 Credential={},SignedHeaders={signed},Signature={}",
                a.key_id,
                aliyun::signature(&canonical, a.secret)
            ),
        );
        for (name, values) in headers.iter().skip(1) {
            req = req.header(name, &values[0]);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    /// A `SendSms` signed as the TC3 document says.
    async fn tencent(&self, t: Tc<'_>) -> Value {
        let body = json!({
            "PhoneNumberSet": t.phones, "SmsSdkAppId": "1400006666", "SignName": t.sign_name,
            "TemplateId": t.template, "TemplateParamSet": ["654321"],
        })
        .to_string();
        let content_type = "application/json; charset=utf-8";
        let canonical = tencent::canonical_request(
            "POST",
            "/",
            "",
            &[
                ("content-type".into(), content_type.into()),
                ("host".into(), self.host.clone()),
                ("x-tc-action".into(), "SendSms".into()),
            ],
            body.as_bytes(),
        );
        let date = chrono::DateTime::from_timestamp(t.timestamp, 0)
            .unwrap()
            .format("%Y-%m-%d");
        let auth = format!(
            "TC3-HMAC-SHA256 Credential={}/{date}/sms/tc3_request, SignedHeaders=content-type;host;x-tc-action, Signature={}",
            t.id,
            tencent::signature(t.key, "sms", t.timestamp, &canonical)
        );
        let resp = self
            .http
            .post(format!("{}/", self.base))
            .header("authorization", auth)
            .header("content-type", content_type)
            .header("x-tc-action", "SendSms")
            .header("x-tc-version", "2021-01-11")
            .header("x-tc-timestamp", t.timestamp.to_string())
            .header("x-tc-region", "ap-guangzhou")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "Tencent always answers 200");
        resp.json::<Value>().await.unwrap()["Response"].clone()
    }

    async fn messages(&self, phone: &str) -> Vec<Value> {
        let url = format!("{}/emulator/sms?phone={}", self.base, encode(phone));
        let body: Value = self
            .http
            .get(url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["messages"].as_array().unwrap().clone()
    }

    async fn fail_next(&self, body: Value) -> (u16, Value) {
        let resp = self
            .http
            .post(format!("{}/emulator/sms/fail_next", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
}

#[actix_web::test]
async fn aliyun_send_sms_verifies_and_answers_like_aliyun() {
    let (emu, handle) = Emu::start().await;

    let (status, body) = emu.aliyun(Ali::default()).await;
    assert_eq!((status, body["Code"].as_str()), (200, Some("OK")), "{body}");
    assert_eq!(body["Message"], "OK");
    assert!(body["BizId"].as_str().unwrap().ends_with("^0"), "{body}");
    assert_eq!(body["RequestId"].as_str().unwrap().len(), 36);
    for form in ["13800138000", "8613800138000", "+8613800138000"] {
        let got = emu.messages(form).await;
        assert_eq!(got.len(), 1, "{form}: {got:?}");
        assert_eq!(got[0]["provider"], "aliyun");
        assert_eq!(got[0]["phone"], "13800138000", "as sent");
        assert_eq!(got[0]["params"], json!({"code": "123456"}));
        assert_eq!(got[0]["otp"], "123456");
        assert_eq!(got[0]["template"], "SMS_123");
    }
    assert!(emu.messages("13900139000").await.is_empty());

    let cases = [
        (
            Ali {
                secret: "wrong",
                ..Ali::default()
            },
            400,
            "SignatureDoesNotMatch",
        ),
        (
            Ali {
                key_id: "LTAIother",
                ..Ali::default()
            },
            404,
            "InvalidAccessKeyId.NotFound",
        ),
        (
            Ali {
                date: (chrono::Utc::now() - chrono::Duration::minutes(16))
                    .format("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
                ..Ali::default()
            },
            400,
            "InvalidTimeStamp.Expired",
        ),
        (
            Ali {
                date: "yesterday".into(),
                ..Ali::default()
            },
            400,
            "InvalidTimeStamp.Format",
        ),
        (
            Ali {
                sign_name: "别的签名",
                ..Ali::default()
            },
            200,
            "isv.SMS_SIGNATURE_ILLEGAL",
        ),
        (
            Ali {
                template: "SMS_999",
                ..Ali::default()
            },
            200,
            "isv.SMS_TEMPLATE_ILLEGAL",
        ),
        (
            Ali {
                phone: "138001380001380000",
                ..Ali::default()
            },
            200,
            "isv.MOBILE_NUMBER_ILLEGAL",
        ),
    ];
    for (request, want_status, want_code) in cases {
        let (status, body) = emu.aliyun(request).await;
        assert_eq!(
            (status, body["Code"].as_str()),
            (want_status, Some(want_code)),
            "{body}"
        );
        assert!(
            body["RequestId"].is_string() && body["Message"].is_string(),
            "{body}"
        );
        if status != 200 {
            assert_eq!(body["HostId"], "dysmsapi.aliyuncs.com", "{body}");
        }
    }
    // The message text shows the server's string to sign, as Aliyun's does.
    let (_, body) = emu
        .aliyun(Ali {
            secret: "wrong",
            ..Ali::default()
        })
        .await;
    assert!(
        body["Message"]
            .as_str()
            .unwrap()
            .contains("ACS3-HMAC-SHA256\n"),
        "{body}"
    );

    let nonce = super::uuid();
    let (status, _) = emu
        .aliyun(Ali {
            nonce: nonce.clone(),
            ..Ali::default()
        })
        .await;
    assert_eq!(status, 200);
    let (status, body) = emu
        .aliyun(Ali {
            nonce,
            ..Ali::default()
        })
        .await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("SignatureNonceUsed"))
    );

    // fail_next: a business code arrives with HTTP 200, once, after authentication.
    let (status, _) = emu
        .fail_next(json!({"provider": "aliyun", "code": "isv.BUSINESS_LIMIT_CONTROL"}))
        .await;
    assert_eq!(status, 200);
    let (status, body) = emu
        .aliyun(Ali {
            secret: "wrong",
            ..Ali::default()
        })
        .await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (400, Some("SignatureDoesNotMatch"))
    );
    let before = emu.messages("13800138000").await.len();
    let (status, body) = emu.aliyun(Ali::default()).await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (200, Some("isv.BUSINESS_LIMIT_CONTROL"))
    );
    assert_eq!(
        emu.messages("13800138000").await.len(),
        before,
        "a failed send is not a message"
    );
    let (_, body) = emu.aliyun(Ali::default()).await;
    assert_eq!(body["Code"], "OK", "the failure is used up");
    // A gateway code keeps its gateway status.
    emu.fail_next(json!({"provider": "aliyun", "code": "ServiceUnavailable"}))
        .await;
    let (status, body) = emu.aliyun(Ali::default()).await;
    assert_eq!(
        (status, body["Code"].as_str()),
        (503, Some("ServiceUnavailable"))
    );

    handle.stop(false).await;
}

#[actix_web::test]
async fn tencent_send_sms_verifies_and_answers_like_tencent() {
    let (emu, handle) = Emu::start().await;

    let resp = emu.tencent(Tc::default()).await;
    let status = &resp["SendStatusSet"][0];
    assert_eq!(status["Code"], "Ok", "{resp}");
    assert_eq!(status["Message"], "send success");
    assert_eq!(status["Fee"], 1);
    assert_eq!(status["PhoneNumber"], "+8613800138000");
    assert!(resp["RequestId"].is_string());
    let got = emu.messages("13800138000").await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["provider"], "tencent");
    assert_eq!(got[0]["params"], json!(["654321"]));
    assert_eq!(got[0]["otp"], "654321");
    assert_eq!(got[0]["message_id"], status["SerialNo"]);

    let old = chrono::Utc::now().timestamp() - 301;
    for (request, want) in [
        (
            Tc {
                key: "wrong",
                ..Tc::default()
            },
            "AuthFailure.SignatureFailure",
        ),
        (
            Tc {
                id: "AKIDother",
                ..Tc::default()
            },
            "AuthFailure.SecretIdNotFound",
        ),
        (
            Tc {
                timestamp: old,
                ..Tc::default()
            },
            "AuthFailure.SignatureExpire",
        ),
        (
            Tc {
                sign_name: "别的",
                ..Tc::default()
            },
            "FailedOperation.SignatureIncorrectOrUnapproved",
        ),
        (
            Tc {
                template: "9",
                ..Tc::default()
            },
            "FailedOperation.TemplateIncorrectOrUnapproved",
        ),
    ] {
        let resp = emu.tencent(request).await;
        assert_eq!(resp["Error"]["Code"], want, "{resp}");
        assert!(resp["Error"]["Message"].is_string() && resp["RequestId"].is_string());
        assert!(resp.get("SendStatusSet").is_none(), "{resp}");
    }

    // A bad number fails on its own entry; the good one is sent.
    let resp = emu
        .tencent(Tc {
            phones: vec!["+86123", "+8613900139000"],
            ..Tc::default()
        })
        .await;
    assert_eq!(
        resp["SendStatusSet"][0]["Code"],
        "InvalidParameterValue.IncorrectPhoneNumber"
    );
    assert_eq!(resp["SendStatusSet"][0]["Fee"], 0);
    assert_eq!(resp["SendStatusSet"][1]["Code"], "Ok");
    assert_eq!(emu.messages("8613900139000").await.len(), 1);

    // Per-number limits arrive in SendStatusSet, other codes as the request's Error.
    emu.fail_next(json!({"provider": "tencent", "code": "LimitExceeded.PhoneNumberDailyLimit"}))
        .await;
    let resp = emu.tencent(Tc::default()).await;
    assert_eq!(
        resp["SendStatusSet"][0]["Code"], "LimitExceeded.PhoneNumberDailyLimit",
        "{resp}"
    );
    emu.fail_next(
        json!({"provider": "tencent", "code": "FailedOperation.InsufficientBalanceInSmsPackage"}),
    )
    .await;
    let resp = emu.tencent(Tc::default()).await;
    assert_eq!(
        resp["Error"]["Code"], "FailedOperation.InsufficientBalanceInSmsPackage",
        "{resp}"
    );
    assert_eq!(
        emu.messages("13800138000").await.len(),
        1,
        "failed sends are not messages"
    );
    assert_eq!(
        emu.tencent(Tc::default()).await["SendStatusSet"][0]["Code"],
        "Ok"
    );

    handle.stop(false).await;
}

#[actix_web::test]
async fn control_routes_check_their_input_and_wechat_routes_still_answer() {
    let (emu, handle) = Emu::start().await;
    for bad in [
        json!({"provider": "twilio", "code": "x"}),
        json!({"provider": "aliyun", "code": " "}),
        json!({"provider": "aliyun"}),
    ] {
        let (status, body) = emu.fail_next(bad.clone()).await;
        assert_eq!(status, 400, "{bad}");
        assert!(body["error"].is_string());
    }
    // `/` without an action header is neither provider.
    let resp = emu
        .http
        .post(format!("{}/", emu.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = emu
        .http
        .post(format!("{}/emulator/sms", emu.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    // WeChat's paths are still WeChat's (an unknown app gets WeChat's errcode, HTTP 200).
    let resp = emu
        .http
        .get(format!(
            "{}/sns/jscode2session?appid=wxnone&secret=s&js_code=c&grant_type=authorization_code",
            emu.base
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["errcode"].as_i64().unwrap() != 0, "{body}");
    // reset forgets messages.
    emu.aliyun(Ali::default()).await;
    assert_eq!(emu.messages("13800138000").await.len(), 1);
    emu.http
        .post(format!("{}/emulator/sms/reset", emu.base))
        .send()
        .await
        .unwrap();
    assert!(emu.messages("13800138000").await.is_empty());
    handle.stop(false).await;
}
