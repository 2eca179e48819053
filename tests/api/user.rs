use serde_json::json;

use crate::signup::assert_user_shape;
use crate::support::{expect_error, expect_json, TestApp};

#[tokio::test]
async fn get_user_returns_the_user_with_identities() {
    let app = TestApp::spawn();
    let session = app.signup_email("ivy@example.com", "secret123").await;
    let res = app
        .get_auth("/auth/v1/user", session["access_token"].as_str().unwrap())
        .await;
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    let user = expect_json(res, 200).await;
    assert_user_shape(&user);
    assert_eq!(user["id"], session["user"]["id"]);
    assert_eq!(user["identities"].as_array().unwrap().len(), 1);
    assert!(user["last_sign_in_at"].is_string());
}

#[tokio::test]
async fn update_merges_user_metadata_like_gotrue() {
    let app = TestApp::spawn();
    let session = app.signup_email("jack@example.com", "secret123").await;
    let token = session["access_token"].as_str().unwrap();
    let put = |body: serde_json::Value| {
        app.client
            .put(app.url("/auth/v1/user"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };

    let user = expect_json(
        put(json!({"data": {"nickname": "杰克", "avatar": "https://img/a.png", "level": 1}}))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(user["user_metadata"]["nickname"], "杰克");
    assert_eq!(
        user["user_metadata"]["email"], "jack@example.com",
        "existing keys are kept"
    );
    // A null deletes the key; other keys stay; strings that look like SQL are stored verbatim.
    let user = expect_json(
        put(json!({"data": {"avatar": null, "bio": "'; DROP TABLE auth.users; --"}}))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(user["user_metadata"].get("avatar").is_none());
    assert_eq!(user["user_metadata"]["level"], json!(1));
    assert_eq!(user["user_metadata"]["bio"], "'; DROP TABLE auth.users; --");
    let again = expect_json(app.get_auth("/user", token).await, 200).await;
    assert_eq!(again["user_metadata"], user["user_metadata"]);
    // Non-admins may not touch app_metadata.
    let before = app.db.snapshot();
    expect_error(
        put(json!({"app_metadata": {"plan": "pro"}})).await.unwrap(),
        403,
        "not_admin",
    )
    .await;
    assert_eq!(app.db.snapshot(), before);
}

#[tokio::test]
async fn password_change_signs_out_other_sessions() {
    let app = TestApp::spawn();
    let first = app.signup_email("kate@example.com", "secret123").await;
    let second = expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "kate@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    let token = second["access_token"].as_str().unwrap();
    let put = |body: serde_json::Value| {
        app.client
            .put(app.url("/user"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    expect_error(
        put(json!({"password": "secret123"})).await.unwrap(),
        422,
        "same_password",
    )
    .await;
    expect_error(
        put(json!({"password": "123"})).await.unwrap(),
        422,
        "weak_password",
    )
    .await;
    assert_eq!(app.db.count("auth.sessions"), 2);
    expect_json(
        put(json!({"password": "brand-new-pass"})).await.unwrap(),
        200,
    )
    .await;
    assert_eq!(
        app.db.count("auth.sessions"),
        1,
        "only the current session survives"
    );
    expect_error(
        app.get_auth("/user", first["access_token"].as_str().unwrap())
            .await,
        403,
        "session_not_found",
    )
    .await;
    expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"email": "kate@example.com", "password": "secret123"}),
        )
        .await,
        400,
        "invalid_credentials",
    )
    .await;
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "kate@example.com", "password": "brand-new-pass"}),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn email_and_phone_changes_check_for_duplicates() {
    let app = TestApp::spawn();
    app.signup_email("taken@example.com", "secret123").await;
    app.post(
        "/signup",
        json!({"phone": "8613811112222", "password": "secret123"}),
    )
    .await;
    let me = app.signup_email("leo@example.com", "secret123").await;
    let token = me["access_token"].as_str().unwrap();
    let put = |body: serde_json::Value| {
        app.client
            .put(app.url("/user"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let before = app.db.snapshot();
    expect_error(
        put(json!({"email": "TAKEN@example.com"})).await.unwrap(),
        422,
        "email_exists",
    )
    .await;
    expect_error(
        put(json!({"phone": "+86 138 1111 2222"})).await.unwrap(),
        422,
        "phone_exists",
    )
    .await;
    expect_error(
        put(json!({"email": "bad email"})).await.unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(app.db.snapshot(), before);

    let user = expect_json(
        put(json!({"email": "leo2@example.com", "phone": "+8613833334444"}))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(user["email"], "leo2@example.com");
    assert_eq!(user["phone"], "8613833334444");
    assert!(user["phone_confirmed_at"].is_string());
    assert_eq!(user["app_metadata"]["providers"], json!(["email", "phone"]));
    let providers: Vec<&str> = user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["provider"].as_str().unwrap())
        .collect();
    assert_eq!(providers, vec!["email", "phone"]);
    // The new e-mail and phone sign in.
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "leo2@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"phone": "8613833334444", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn bad_tokens_are_refused_the_way_gotrue_refuses_them() {
    let app = TestApp::spawn();
    let session = app.signup_email("mia@example.com", "secret123").await;
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp();
    let claims = |extra: serde_json::Value| {
        let mut c = json!({"sub": user_id, "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 60});
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        c
    };
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let alg_none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(claims(json!({})))
    );
    let hs512 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(crate::support::JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret"),
    )
    .unwrap();
    let cases: Vec<(Option<String>, u16, &str)> = vec![
        (None, 401, "no_authorization"),
        (Some("Basic abc".into()), 401, "no_authorization"),
        (Some("Bearer ".into()), 401, "no_authorization"),
        (Some(format!("Bearer {alg_none}")), 403, "bad_jwt"),
        (Some(format!("Bearer {hs512}")), 403, "bad_jwt"),
        (Some(format!("Bearer {forged}")), 403, "bad_jwt"),
        (Some("Bearer not.a.jwt".into()), 403, "bad_jwt"),
        (
            Some(format!(
                "Bearer {}",
                app.sign(claims(json!({"exp": now - 10})))
            )),
            403,
            "bad_jwt",
        ),
        (
            Some(format!(
                "Bearer {}",
                app.sign(claims(json!({"nbf": now + 3600})))
            )),
            403,
            "bad_jwt",
        ),
        (
            Some(format!(
                "Bearer {}",
                app.sign(claims(json!({"sub": "not-a-uuid"})))
            )),
            400,
            "bad_jwt",
        ),
        (
            Some(format!("Bearer {}", app.service_role_key())),
            403,
            "bad_jwt",
        ),
        (
            Some(format!(
                "Bearer {}",
                app.sign(claims(json!({"sub": uuid::Uuid::new_v4().to_string()})))
            )),
            403,
            "user_not_found",
        ),
        (
            Some(format!(
                "Bearer {}",
                app.sign(claims(
                    json!({"session_id": uuid::Uuid::new_v4().to_string()})
                ))
            )),
            403,
            "session_not_found",
        ),
    ];
    for (header, status, code) in cases {
        let mut req = app.client.get(app.url("/user"));
        if let Some(h) = &header {
            req = req.header("Authorization", h);
        }
        let body = expect_error(req.send().await.unwrap(), status, code).await;
        assert!(
            !body["msg"].as_str().unwrap().contains("ey"),
            "the token must not be echoed: {body}"
        );
    }
    // Lower-case scheme and a token without a session both work (GoTrue accepts them).
    let no_session = app.sign(claims(json!({})));
    let res = app
        .client
        .get(app.url("/user"))
        .header("Authorization", format!("bearer {no_session}"))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
}
