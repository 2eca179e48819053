//! GoTrue-style per-client rate limits (429 `over_request_rate_limit`).

use serde_json::json;

use crate::support::{expect_error, TestApp};

#[tokio::test]
async fn password_sign_in_is_limited_per_client_address() {
    let app = TestApp::builder()
        .env("WEAUTH_RATE_LIMIT_PASSWORD", "3")
        .env("GOTRUE_RATE_LIMIT_HEADER", "X-Real-IP")
        .spawn();
    let attempt = |ip: &'static str| {
        app.client
            .post(app.url("/auth/v1/token?grant_type=password"))
            .header("X-Real-IP", ip)
            .json(&json!({"email": "victim@example.com", "password": "guess"}))
            .send()
    };
    for _ in 0..3 {
        expect_error(
            attempt("203.0.113.7").await.unwrap(),
            400,
            "invalid_credentials",
        )
        .await;
    }
    let body = expect_error(
        attempt("203.0.113.7").await.unwrap(),
        429,
        "over_request_rate_limit",
    )
    .await;
    assert_eq!(body["msg"], "Request rate limit reached");
    // Another client is not affected.
    expect_error(
        attempt("198.51.100.1").await.unwrap(),
        400,
        "invalid_credentials",
    )
    .await;
    // The 2024 format applies to 429s too.
    let res = app
        .client
        .post(app.url("/token?grant_type=password"))
        .header("X-Real-IP", "203.0.113.7")
        .header("X-Supabase-Api-Version", "2024-01-01")
        .json(&json!({"email": "victim@example.com", "password": "guess"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.json::<serde_json::Value>().await.unwrap()["code"],
        "over_request_rate_limit"
    );
}

#[tokio::test]
async fn qr_codes_are_limited_before_spending_wechat_quota() {
    let app = TestApp::builder()
        .wechat()
        .env("WEAUTH_RATE_LIMIT_WECHAT_QRCODE", "2")
        .spawn();
    let anon = app.sign(json!({"role": "anon", "exp": chrono::Utc::now().timestamp() + 60}));
    let qr = || {
        app.client
            .post(app.url("/wechat_mini/unlimited_qrcode"))
            .bearer_auth(&anon)
            .json(&json!({"scene": "a=1"}))
            .send()
    };
    for _ in 0..2 {
        assert_eq!(qr().await.unwrap().status(), 200);
    }
    expect_error(qr().await.unwrap(), 429, "over_request_rate_limit").await;
    assert_eq!(
        app.emulator().stats().await["getwxacodeunlimit_calls"],
        json!(2)
    );
}

#[tokio::test]
async fn signups_and_wechat_logins_have_their_own_limits() {
    let app = TestApp::builder()
        .wechat()
        .env("GOTRUE_RATE_LIMIT_OTP", "2")
        .env("WEAUTH_RATE_LIMIT_WECHAT_LOGIN", "1")
        .spawn();
    for i in 0..2 {
        app.signup_email(&format!("s{i}@example.com"), "secret123")
            .await;
    }
    let res = app
        .post(
            "/signup",
            json!({"email": "s3@example.com", "password": "secret123"}),
        )
        .await;
    expect_error(res, 429, "over_request_rate_limit").await;
    let code = app
        .emulator()
        .login_code(crate::support::APP_ID, "rl")
        .await;
    assert_eq!(
        app.client
            .get(app.url(&format!("/wechat_mini/login?code={code}")))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let code = app
        .emulator()
        .login_code(crate::support::APP_ID, "rl")
        .await;
    let res = app
        .client
        .get(app.url(&format!("/wechat_mini/login?code={code}")))
        .send()
        .await
        .unwrap();
    expect_error(res, 429, "over_request_rate_limit").await;
    assert_eq!(
        app.emulator().stats().await["codes_exchanged"],
        json!(1),
        "a limited login never reaches WeChat"
    );
    assert_eq!(app.db.count("auth.users"), 3);
}
