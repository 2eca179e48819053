use serde_json::json;

use crate::support::{expect_error, expect_json, TestApp};

#[tokio::test]
async fn malformed_bodies_get_gotrue_errors_and_change_nothing() {
    let app = TestApp::spawn();
    let before = app.db.snapshot();
    let raw = |path: &str, content_type: &str, body: Vec<u8>| {
        app.client
            .post(app.url(path))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    expect_error(
        raw("/signup", "application/json", b"{not json".to_vec())
            .await
            .unwrap(),
        400,
        "bad_json",
    )
    .await;
    expect_error(
        raw("/signup", "application/json", Vec::new())
            .await
            .unwrap(),
        400,
        "bad_json",
    )
    .await;
    expect_error(
        raw(
            "/token?grant_type=password",
            "application/json",
            b"[1,2]".to_vec(),
        )
        .await
        .unwrap(),
        400,
        "bad_json",
    )
    .await;
    expect_error(
        raw(
            "/signup",
            "text/plain",
            br#"{"email":"a@b.co","password":"secret123"}"#.to_vec(),
        )
        .await
        .unwrap(),
        400,
        "bad_json",
    )
    .await;
    expect_error(
        raw(
            "/signup",
            "application/x-www-form-urlencoded",
            b"email=a@b.co&password=secret123".to_vec(),
        )
        .await
        .unwrap(),
        400,
        "bad_json",
    )
    .await;
    let mut big = br#"{"email":"a@b.co","password":"secret123","data":{"x":""#.to_vec();
    big.extend(std::iter::repeat_n(b'a', 1_100_000));
    big.extend(br#""}}"#);
    expect_error(
        raw("/signup", "application/json", big).await.unwrap(),
        413,
        "request_entity_too_large",
    )
    .await;
    let huge_meta =
        json!({"email": "a@b.co", "password": "secret123", "data": {"x": "a".repeat(70_000)}});
    expect_error(
        app.post("/signup", huge_meta).await,
        400,
        "validation_failed",
    )
    .await;
    // Routes that read raw bodies are capped the same way, with the same JSON error.
    let res = app
        .client
        .delete(app.url(&format!("/admin/users/{}", uuid::Uuid::new_v4())))
        .bearer_auth(app.service_role_key())
        .body(vec![b' '; 1_100_000])
        .send()
        .await
        .unwrap();
    expect_error(res, 413, "request_entity_too_large").await;
    // PostgreSQL cannot store NUL characters: refused up front, not a 500.
    let nul =
        json!({"email": "nul@example.com", "password": "secret123", "data": {"nick": "a\u{0}b"}});
    expect_error(app.post("/signup", nul).await, 400, "validation_failed").await;
    let admin = |path: &str| {
        app.client
            .get(app.url(path))
            .bearer_auth(app.service_role_key())
            .send()
    };
    expect_error(
        admin("/admin/users?filter=%00").await.unwrap(),
        400,
        "validation_failed",
    )
    .await;
    let res = app
        .client
        .post(app.url("/admin/users"))
        .bearer_auth(app.service_role_key())
        .json(&json!({"email": "r@example.com", "role": "x\u{0}"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "validation_failed").await;
    // A page far past the end is an empty page, not an overflow.
    let far = expect_json(
        admin("/admin/users?page=9223372036854775806")
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(far["users"], json!([]));
    assert_eq!(app.db.snapshot(), before);
    // The charset suffix supabase-js and wx.request send is fine.
    let ok = raw(
        "/signup",
        "application/json;charset=UTF-8",
        br#"{"email":"a@b.co","password":"secret123"}"#.to_vec(),
    );
    expect_json(ok.await.unwrap(), 200).await;
}

#[tokio::test]
async fn api_version_2024_switches_the_error_format() {
    let app = TestApp::spawn();
    let res = app
        .client
        .post(app.url("/auth/v1/token?grant_type=password"))
        .header("X-Supabase-Api-Version", "2024-01-01")
        .json(&json!({"email": "x@example.com", "password": "whatever"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(
        res.headers().get("x-supabase-api-version").unwrap(),
        "2024-01-01"
    );
    assert_eq!(
        res.headers().get("x-sb-error-code").unwrap(),
        "invalid_credentials"
    );
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body,
        json!({"code": "invalid_credentials", "message": "Invalid login credentials"})
    );

    // Extractor errors (bad JSON) and weak passwords follow the same switch.
    let res = app
        .client
        .post(app.url("/signup"))
        .header("X-Supabase-Api-Version", "2024-01-01")
        .json(&json!({"email": "x@example.com", "password": "1"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "weak_password");
    assert_eq!(body["weak_password"]["reasons"], json!(["length"]));
    let res = app
        .client
        .post(app.url("/signup"))
        .header("X-Supabase-Api-Version", "2024-01-01")
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "bad_json");
    assert!(body["message"].is_string() && body.get("msg").is_none());
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = TestApp::spawn();
    expect_error(
        app.client.get(app.url("/nope")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        app.client
            .get(app.url("/auth/v1/nope"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    expect_error(
        app.client.delete(app.url("/signup")).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    expect_error(
        app.client
            .patch(app.url("/auth/v1/user"))
            .send()
            .await
            .unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
}

#[tokio::test]
async fn unicode_and_sql_looking_input_round_trips() {
    let app = TestApp::spawn();
    let data = json!({"nickname": "微信用户🙂", "quote": "O'Brien \"x\" \\ ;--", "nested": {"数组": [1, "二", null]}});
    let body = expect_json(
        app.post(
            "/signup",
            json!({"email": "o'brien+tag@example.com", "password": "pässwörd-密码", "data": data}),
        )
        .await,
        200,
    )
    .await;
    for key in ["nickname", "quote", "nested"] {
        assert_eq!(body["user"]["user_metadata"][key], data[key], "{key}");
    }
    assert_eq!(body["user"]["email"], "o'brien+tag@example.com");
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "o'brien+tag@example.com", "password": "pässwörd-密码"}),
        )
        .await,
        200,
    )
    .await;
}
