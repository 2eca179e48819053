use serde_json::{json, Value};

use crate::support::{expect_error, expect_json, TestApp};

/// Checks every key of GoTrue's token response and of the user inside it.
pub fn assert_token_response(body: &Value) {
    let keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    for key in [
        "access_token",
        "token_type",
        "expires_in",
        "expires_at",
        "refresh_token",
        "user",
    ] {
        assert!(keys.contains(&key), "missing {key} in {body}");
    }
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], json!(3600));
    let now = chrono::Utc::now().timestamp();
    let expires_at = body["expires_at"].as_i64().unwrap();
    assert!(
        (now + 3590..=now + 3601).contains(&expires_at),
        "{expires_at}"
    );
    let rt = body["refresh_token"].as_str().unwrap();
    assert_eq!(rt.len(), 12);
    assert!(rt
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit()));
    assert_user_shape(&body["user"]);
}

/// GoTrue's user object: always-present keys and types.
pub fn assert_user_shape(user: &Value) {
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert!(
        user["email"].is_string(),
        "email must be a string, never null: {user}"
    );
    assert!(
        user["phone"].is_string(),
        "phone must be a string, never null: {user}"
    );
    assert!(user["app_metadata"]["provider"].is_string(), "{user}");
    assert!(user["app_metadata"]["providers"].is_array(), "{user}");
    assert!(user["user_metadata"].is_object());
    assert!(user["identities"].is_array() || user["identities"].is_null());
    for key in ["created_at", "updated_at"] {
        assert!(
            chrono::DateTime::parse_from_rfc3339(user[key].as_str().unwrap()).is_ok(),
            "{key}: {user}"
        );
    }
    assert_eq!(user["is_anonymous"], json!(false));
    for secret in [
        "encrypted_password",
        "confirmation_token",
        "recovery_token",
        "instance_id",
    ] {
        assert!(user.get(secret).is_none(), "{secret} leaked: {user}");
    }
}

#[tokio::test]
async fn email_signup_returns_a_session_and_fills_metadata() {
    let app = TestApp::spawn();
    let res = app
        .post("/auth/v1/signup", json!({"email": "Alice@Example.com", "password": "secret123", "data": {"nickname": "小明"}}))
        .await;
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    let body = expect_json(res, 200).await;
    assert_token_response(&body);
    let user = &body["user"];
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["phone"], "");
    assert!(user["email_confirmed_at"].is_string() && user["confirmed_at"].is_string());
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "email", "providers": ["email"]})
    );
    assert_eq!(user["user_metadata"]["nickname"], "小明");
    assert_eq!(user["user_metadata"]["email_verified"], json!(true));
    let identity = &user["identities"][0];
    assert_eq!(identity["provider"], "email");
    assert_eq!(identity["id"], user["id"]);
    assert_eq!(identity["user_id"], user["id"]);
    assert_eq!(identity["email"], "alice@example.com");
    assert_eq!(app.db.count("auth.users"), 1);
    assert_eq!(app.db.count("auth.sessions"), 1);
    assert_eq!(app.db.count("auth.refresh_tokens"), 1);
    assert_eq!(app.db.scalar("SELECT count(*) FROM auth.audit_log_entries WHERE payload->>'action' = 'user_signedup'"), 1);
    // New hashes are argon2id.
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM auth.users WHERE encrypted_password LIKE '$argon2id$%'"),
        1
    );
}

#[tokio::test]
async fn phone_signup_stores_digits_only() {
    let app = TestApp::spawn();
    let body = expect_json(
        app.post(
            "/signup",
            json!({"phone": "+86 138 0013 8000", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    assert_token_response(&body);
    assert_eq!(body["user"]["phone"], "8613800138000");
    assert_eq!(body["user"]["email"], "");
    assert!(body["user"]["phone_confirmed_at"].is_string());
    assert_eq!(body["user"]["app_metadata"]["provider"], "phone");
    // Signing in with the same phone in another spelling works.
    let login = app
        .post(
            "/token?grant_type=password",
            json!({"phone": "8613800138000", "password": "secret123"}),
        )
        .await;
    assert_eq!(
        expect_json(login, 200).await["user"]["id"],
        body["user"]["id"]
    );
}

#[tokio::test]
async fn duplicate_signup_is_refused_and_changes_nothing() {
    let app = TestApp::spawn();
    app.signup_email("dup@example.com", "secret123").await;
    let before = app.db.snapshot();
    let res = app
        .post(
            "/signup",
            json!({"email": "DUP@example.com", "password": "other-pass"}),
        )
        .await;
    expect_error(res, 422, "user_already_exists").await;
    assert_eq!(app.db.snapshot(), before);

    app.post(
        "/signup",
        json!({"phone": "8613800000001", "password": "secret123"}),
    )
    .await;
    let before = app.db.snapshot();
    expect_error(
        app.post(
            "/signup",
            json!({"phone": "+8613800000001", "password": "x-secret"}),
        )
        .await,
        422,
        "user_already_exists",
    )
    .await;
    assert_eq!(app.db.snapshot(), before);
}

#[tokio::test]
async fn signup_validation_errors() {
    let app = TestApp::spawn();
    let cases = [
        (json!({"email": "a@example.com"}), 400, "validation_failed"),
        (
            json!({"email": "a@example.com", "password": ""}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "a@example.com", "password": "12345"}),
            422,
            "weak_password",
        ),
        (
            json!({"email": "a@example.com", "password": "x".repeat(73)}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "a@example.com", "phone": "8613800000000", "password": "secret123"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": "not-an-email", "password": "secret123"}),
            400,
            "validation_failed",
        ),
        (
            json!({"email": format!("{}@example.com", "a".repeat(300)), "password": "secret123"}),
            400,
            "validation_failed",
        ),
        (
            json!({"phone": "abc", "password": "secret123"}),
            400,
            "validation_failed",
        ),
        (
            json!({"password": "secret123"}),
            422,
            "anonymous_provider_disabled",
        ),
        (
            json!({"email": "a@example.com", "password": "secret123", "data": "not-an-object"}),
            400,
            "bad_json",
        ),
    ];
    for (body, status, code) in cases {
        let res = app.post("/signup", body.clone()).await;
        let err = expect_error(res, status, code).await;
        if code == "weak_password" {
            assert_eq!(err["weak_password"]["reasons"], json!(["length"]), "{body}");
        }
    }
    assert_eq!(app.db.count("auth.users"), 0);
}

#[tokio::test]
async fn signups_can_be_disabled() {
    let app = TestApp::builder()
        .env("GOTRUE_DISABLE_SIGNUP", "true")
        .spawn();
    expect_error(
        app.post(
            "/signup",
            json!({"email": "a@example.com", "password": "secret123"}),
        )
        .await,
        422,
        "signup_disabled",
    )
    .await;
    assert_eq!(app.db.count("auth.users"), 0);
}

#[tokio::test]
async fn provider_switches_are_honoured() {
    let app = TestApp::builder()
        .env("GOTRUE_EXTERNAL_EMAIL_ENABLED", "false")
        .env("GOTRUE_EXTERNAL_PHONE_ENABLED", "false")
        .spawn();
    expect_error(
        app.post(
            "/signup",
            json!({"email": "a@example.com", "password": "secret123"}),
        )
        .await,
        400,
        "email_provider_disabled",
    )
    .await;
    expect_error(
        app.post(
            "/signup",
            json!({"phone": "8613800000000", "password": "secret123"}),
        )
        .await,
        400,
        "phone_provider_disabled",
    )
    .await;
    expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"email": "a@example.com", "password": "secret123"}),
        )
        .await,
        422,
        "email_provider_disabled",
    )
    .await;
}

#[tokio::test]
async fn without_autoconfirm_signup_returns_an_unconfirmed_user() {
    // No SMTP host: mails are dropped (GoTrue's no-op mailer); the short interval lets the
    // second sign-up below re-send the confirmation (GoTrue answers 429 within a minute).
    let app = TestApp::builder()
        .env("GOTRUE_MAILER_AUTOCONFIRM", "false")
        .env("GOTRUE_SMS_AUTOCONFIRM", "false")
        .env("GOTRUE_SMTP_MAX_FREQUENCY", "1ms")
        .spawn();
    let user = expect_json(
        app.post(
            "/signup",
            json!({"email": "late@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    assert!(user.get("access_token").is_none(), "{user}");
    assert_user_shape(&user);
    assert!(user["confirmation_sent_at"].is_string());
    assert!(user.get("email_confirmed_at").is_none());
    assert_eq!(app.db.count("auth.sessions"), 0);
    let login = app
        .post(
            "/token?grant_type=password",
            json!({"email": "late@example.com", "password": "secret123"}),
        )
        .await;
    expect_error(login, 400, "email_not_confirmed").await;

    // Signing up again for an unconfirmed address is allowed (the user is re-sent a confirmation).
    let again = expect_json(
        app.post(
            "/signup",
            json!({"email": "late@example.com", "password": "secret456"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(again["id"], user["id"]);
}

#[tokio::test]
async fn existing_confirmed_user_is_obfuscated_without_autoconfirm() {
    let app = TestApp::builder()
        .env("GOTRUE_MAILER_AUTOCONFIRM", "false")
        .env("GOTRUE_SMS_AUTOCONFIRM", "false")
        .spawn();
    app.post(
        "/signup",
        json!({"email": "known@example.com", "password": "secret123"}),
    )
    .await;
    app.db
        .execute("UPDATE auth.users SET email_confirmed_at = now()");
    let before = app.db.snapshot();
    let fake = expect_json(
        app.post(
            "/signup",
            json!({"email": "known@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(fake["identities"], json!([]));
    let real_id = app.db.scalar(
        "SELECT count(*) FROM auth.users WHERE id::text = '{}'"
            .replace("{}", fake["id"].as_str().unwrap())
            .as_str(),
    );
    assert_eq!(real_id, 0, "obfuscated user must not be the real one");
    assert_eq!(app.db.snapshot(), before);
}
