//! weauth's SMS providers against the emulator over real HTTP: weauth's Aliyun (ACS3) and
//! Tencent (TC3) signers meet the emulator's independent verifiers (both checked against the
//! providers' documented examples), and each provider error code lands in the right `SmsError`.
//! The Send SMS hook goes to a real receiver that checks the Standard Webhooks signature.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use weauth::config::Config;
use weauth::providers::hooks::HookError;
use weauth::providers::sms::{SmsError, SmsMessage, SmsProvider};

use crate::hook_receiver::HookReceiver;
use crate::support::{sms_provider_env, Emulator, TestApp, JWT_SECRET, SMS_ALIYUN_SIGN_NAME};

/// weauth's provider as the server builds it from its variables.
fn provider_from(mut env: BTreeMap<String, String>) -> SmsProvider {
    env.insert(
        "DATABASE_URL".into(),
        "postgres://unused@127.0.0.1:1/unused".into(),
    );
    env.insert("GOTRUE_JWT_SECRET".into(), JWT_SECRET.into());
    let config = Config::from_lookup(&|name| env.get(name).cloned()).expect("valid config");
    SmsProvider::from_config(&config.sms, &config.hooks)
        .unwrap()
        .expect("an SMS provider is configured")
}

fn provider(emu: &Emulator, name: &str, overrides: &[(&str, &str)]) -> SmsProvider {
    let mut env = sms_provider_env(name, &emu.url);
    env.extend(
        overrides
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    provider_from(env)
}

async fn send(p: &SmsProvider, phone: &str, otp: &str) -> Result<Option<String>, SmsError> {
    let user = json!({"id": "00000000-0000-0000-0000-000000000001", "phone": phone});
    let text = format!("Your code is {otp}");
    p.send(&SmsMessage {
        phone,
        otp,
        text: &text,
        user: &user,
    })
    .await
    .map(|sent| sent.message_id)
}

const PHONE: &str = "8613800138000";

#[tokio::test]
async fn aliyun_send_arrives_signed_and_as_aliyun_wants_the_number() {
    let emu = Emulator::start();
    let aliyun = provider(&emu, "aliyun", &[]);
    assert_eq!(aliyun.name(), "aliyun");
    let id = send(&aliyun, PHONE, "246810").await.expect("sent");
    let got = emu.sms_messages(PHONE).await;
    assert_eq!(got.len(), 1, "{got:?}");
    let m = &got[0];
    assert_eq!(m["provider"], "aliyun");
    assert_eq!(
        m["phone"], "13800138000",
        "a mainland number loses its 86 for Aliyun"
    );
    assert_eq!(m["params"], json!({"code": "246810"}));
    assert_eq!(m["otp"], "246810");
    assert_eq!(
        m["sign_name"], SMS_ALIYUN_SIGN_NAME,
        "a non-ASCII sign name survives signing"
    );
    assert_eq!(
        id.as_deref(),
        m["message_id"].as_str(),
        "BizId is the message id"
    );

    // An international number keeps its country code; a second send is a second message.
    send(&aliyun, "85268326366", "111222").await.expect("sent");
    let hk = emu.sms_messages("+85268326366").await;
    assert_eq!(hk.len(), 1);
    assert_eq!(hk[0]["phone"], "85268326366");
    send(&aliyun, PHONE, "135790").await.expect("sent");
    let got = emu.sms_messages("13800138000").await;
    assert_eq!(got.len(), 2, "newest last: {got:?}");
    assert_eq!(got[1]["otp"], "135790");
}

#[tokio::test]
async fn tencent_send_arrives_signed_with_the_e164_number() {
    let emu = Emulator::start();
    let tencent = provider(&emu, "tencent", &[]);
    assert_eq!(tencent.name(), "tencent");
    let id = send(&tencent, PHONE, "864209").await.expect("sent");
    let got = emu.sms_messages(PHONE).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["provider"], "tencent");
    assert_eq!(got[0]["phone"], "+8613800138000");
    assert_eq!(got[0]["params"], json!(["864209"]));
    assert_eq!(
        id.as_deref(),
        got[0]["message_id"].as_str(),
        "SerialNo is the message id"
    );
}

fn rejected_code(result: Result<Option<String>, SmsError>) -> String {
    match result {
        Err(SmsError::Rejected { code, message, .. }) => {
            assert!(!message.is_empty());
            code
        }
        other => panic!("expected Rejected, got {other:?}"),
    }
}

#[tokio::test]
async fn wrong_credentials_and_unapproved_signatures_or_templates_are_rejected() {
    let emu = Emulator::start();
    let cases: [(&str, (&str, &str), &str); 8] = [
        (
            "aliyun",
            ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET", "not-the-secret"),
            "SignatureDoesNotMatch",
        ),
        (
            "aliyun",
            ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID", "LTAIunknown"),
            "InvalidAccessKeyId.NotFound",
        ),
        (
            "aliyun",
            ("WEAUTH_SMS_ALIYUN_SIGN_NAME", "别的签名"),
            "isv.SMS_SIGNATURE_ILLEGAL",
        ),
        (
            "aliyun",
            ("WEAUTH_SMS_ALIYUN_TEMPLATE_CODE", "SMS_1"),
            "isv.SMS_TEMPLATE_ILLEGAL",
        ),
        (
            "tencent",
            ("WEAUTH_SMS_TENCENT_SECRET_KEY", "not-the-key"),
            "AuthFailure.SignatureFailure",
        ),
        (
            "tencent",
            ("WEAUTH_SMS_TENCENT_SECRET_ID", "AKIDunknown"),
            "AuthFailure.SecretIdNotFound",
        ),
        (
            "tencent",
            ("WEAUTH_SMS_TENCENT_SIGN_NAME", "别的签名"),
            "FailedOperation.SignatureIncorrectOrUnapproved",
        ),
        (
            "tencent",
            ("WEAUTH_SMS_TENCENT_TEMPLATE_ID", "1"),
            "FailedOperation.TemplateIncorrectOrUnapproved",
        ),
    ];
    for (name, var, want) in cases {
        let p = provider(&emu, name, &[var]);
        assert_eq!(
            rejected_code(send(&p, PHONE, "000111").await),
            want,
            "{name} {var:?}"
        );
    }
    assert!(emu.sms_messages(PHONE).await.is_empty(), "nothing was sent");
}

#[tokio::test]
async fn provider_rate_limits_and_bad_numbers_map_to_their_errors() {
    let emu = Emulator::start();
    let aliyun = provider(&emu, "aliyun", &[]);
    let tencent = provider(&emu, "tencent", &[]);

    emu.sms_fail_next("aliyun", "isv.BUSINESS_LIMIT_CONTROL")
        .await;
    match send(&aliyun, PHONE, "1").await {
        Err(SmsError::RateLimited { provider, code }) => {
            assert_eq!(
                (provider, code.as_str()),
                ("aliyun", "isv.BUSINESS_LIMIT_CONTROL")
            )
        }
        other => panic!("{other:?}"),
    }
    emu.sms_fail_next("tencent", "LimitExceeded.PhoneNumberDailyLimit")
        .await;
    match send(&tencent, PHONE, "1").await {
        Err(SmsError::RateLimited { provider, code }) => {
            assert_eq!(
                (provider, code.as_str()),
                ("tencent", "LimitExceeded.PhoneNumberDailyLimit")
            )
        }
        other => panic!("{other:?}"),
    }
    emu.sms_fail_next("aliyun", "isv.MOBILE_NUMBER_ILLEGAL")
        .await;
    emu.sms_fail_next("tencent", "InvalidParameterValue.IncorrectPhoneNumber")
        .await;
    for p in [&aliyun, &tencent] {
        match send(p, PHONE, "1").await {
            Err(SmsError::InvalidNumber { code, .. }) => assert_ne!(code, "weauth.phone_format"),
            other => panic!("{}: {other:?}", p.name()),
        }
    }
    // Numbers the providers themselves refuse (86 + 8 digits is no mainland number), not
    // injected: each provider's real answer.
    for (p, want) in [
        (&aliyun, "isv.MOBILE_NUMBER_ILLEGAL"),
        (&tencent, "InvalidParameterValue.IncorrectPhoneNumber"),
    ] {
        match send(p, "8612345678", "1").await {
            Err(SmsError::InvalidNumber { code, .. }) => assert_eq!(code, want),
            other => panic!("{}: {other:?}", p.name()),
        }
    }
    // A provider outage is Unavailable, and the injected failures are used up.
    emu.sms_fail_next("aliyun", "ServiceUnavailable").await;
    assert!(matches!(
        send(&aliyun, PHONE, "1").await,
        Err(SmsError::Unavailable { .. })
    ));
    assert!(emu.sms_messages(PHONE).await.is_empty());
    send(&aliyun, PHONE, "2").await.expect("sent");
    send(&tencent, PHONE, "3").await.expect("sent");
    let otps: Vec<Value> = emu
        .sms_messages(PHONE)
        .await
        .iter()
        .map(|m| m["otp"].clone())
        .collect();
    assert_eq!(otps, [json!("2"), json!("3")]);
}

fn hook_env(url: &str, secret: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "GOTRUE_HOOK_SEND_SMS_ENABLED".to_string(),
            "true".to_string(),
        ),
        ("GOTRUE_HOOK_SEND_SMS_URI".to_string(), url.to_string()),
        (
            "GOTRUE_HOOK_SEND_SMS_SECRETS".to_string(),
            secret.to_string(),
        ),
    ])
}

#[tokio::test]
async fn send_sms_hook_reaches_a_receiver_that_checks_the_signature() {
    let receiver = HookReceiver::start();
    let hook = provider_from(hook_env(&receiver.url, &receiver.secret));
    assert_eq!(hook.name(), "hook");
    assert_eq!(send(&hook, PHONE, "424242").await.unwrap(), None);
    let payloads = receiver.payloads();
    assert_eq!(payloads.len(), 1);
    assert_eq!(payloads[0]["sms"]["otp"], "424242");
    assert_eq!(payloads[0]["user"]["phone"], PHONE);
    assert_eq!(receiver.last_otp(PHONE).as_deref(), Some("424242"));
    assert_eq!(receiver.rejected(), 0);

    // The receiver's error answer is GoTrue's hook error.
    receiver.answer_next(
        200,
        r#"{"error": {"http_code": 429, "message": "slow down"}}"#,
    );
    match send(&hook, PHONE, "1").await {
        Err(SmsError::Hook(HookError::Answered { http_code, message })) => {
            assert_eq!((http_code, message.as_str()), (429, "slow down"))
        }
        other => panic!("{other:?}"),
    }
    receiver.answer_next(503, "{}");
    assert!(matches!(
        send(&hook, PHONE, "1").await,
        Err(SmsError::Hook(HookError::Status(503)))
    ));

    // Signed with another key: the receiver refuses it, weauth sees the 401.
    let other = provider_from(hook_env(
        &receiver.url,
        "v1,whsec_b3RoZXIta2V5LW5vdC10aGUtcmVjZWl2ZXJzLWtleQ==",
    ));
    assert!(matches!(
        send(&other, PHONE, "1").await,
        Err(SmsError::Hook(HookError::Status(401)))
    ));
    assert_eq!(receiver.rejected(), 1);
    assert_eq!(
        receiver.payloads().len(),
        3,
        "only verified calls are recorded"
    );
}

/// The harness wiring the phone-route tests use: `Builder::sms` gives weauth variables it
/// accepts (the spawn fails otherwise) and the same emulator; `Builder::sms_hook` the receiver.
#[tokio::test]
async fn builders_wire_weauth_to_the_emulator_and_the_receiver() {
    for name in ["aliyun", "tencent"] {
        let app = TestApp::builder().sms(name).spawn();
        let emu = app.emulator();
        assert_eq!(emu.last_sms_otp(PHONE).await, None);
        send(&provider(emu, name, &[]), PHONE, "97531")
            .await
            .expect("sent");
        assert_eq!(emu.last_sms_otp(PHONE).await.as_deref(), Some("97531"));
        assert_eq!(emu.sms_messages(PHONE).await[0]["provider"], name);
    }
    let receiver = HookReceiver::start();
    let app = TestApp::builder().sms("aliyun").sms_hook(&receiver).spawn();
    let res = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(receiver.payloads().is_empty());
}

async fn otp(app: &TestApp, phone: &str) -> reqwest::Response {
    app.post("/auth/v1/otp", json!({ "phone": phone })).await
}

async fn verify(app: &TestApp, token: &str) -> reqwest::Response {
    app.post(
        "/auth/v1/verify",
        json!({"phone": PHONE, "token": token, "type": "sms"}),
    )
    .await
}

/// The phone routes end to end through each real send path: `/otp` → the provider (emulator)
/// or the HTTP hook (receiver) → the code read there → `/verify` → a session; provider errors
/// become GoTrue's errors and leave no user behind.
#[tokio::test]
async fn phone_sign_in_works_through_each_provider_and_the_http_hook() {
    use crate::support::{expect_error, expect_json};
    for (name, rate_limit, bad_number) in [
        (
            "aliyun",
            "isv.BUSINESS_LIMIT_CONTROL",
            "isv.MOBILE_NUMBER_ILLEGAL",
        ),
        (
            "tencent",
            "LimitExceeded.PhoneNumberDailyLimit",
            "InvalidParameterValue.IncorrectPhoneNumber",
        ),
    ] {
        let app = TestApp::builder()
            .sms(name)
            .env("WEAUTH_PHONE_DEFAULT_COUNTRY_CODE", "86")
            .spawn();
        let emu = app.emulator();
        expect_json(otp(&app, "13800138000").await, 200).await;
        let code = emu.last_sms_otp(PHONE).await.expect("the code was sent");
        let session = expect_json(verify(&app, &code).await, 200).await;
        assert_eq!(session["user"]["phone"], PHONE, "{name}");

        emu.sms_fail_next(name, rate_limit).await;
        expect_error(
            otp(&app, "13900139000").await,
            429,
            "over_sms_send_rate_limit",
        )
        .await;
        emu.sms_fail_next(name, bad_number).await;
        expect_error(otp(&app, "13900139000").await, 400, "validation_failed").await;
        assert_eq!(
            app.db.count("auth.users"),
            1,
            "{name}: failed sends create no user"
        );
        assert!(emu.sms_messages("13900139000").await.is_empty());
    }

    let receiver = HookReceiver::start();
    let app = TestApp::builder()
        .sms_hook(&receiver)
        .env("WEAUTH_PHONE_DEFAULT_COUNTRY_CODE", "86")
        .spawn();
    expect_json(otp(&app, "+86 138 0013 8000").await, 200).await;
    let code = receiver.last_otp(PHONE).expect("the hook got the code");
    let session = expect_json(verify(&app, &code).await, 200).await;
    assert_eq!(session["user"]["phone"], PHONE);
    assert_eq!(receiver.payloads()[0]["user"]["phone"], PHONE);
    receiver.answer_next(
        200,
        r#"{"error": {"http_code": 400, "message": "vendor refused"}}"#,
    );
    let res = otp(&app, "13900139000").await;
    assert_ne!(res.status(), 200);
    assert_eq!(
        app.db.count("auth.users"),
        1,
        "a refused hook send creates no user"
    );
}
