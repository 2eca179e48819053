//! Hostile client text: NUL characters and overlong values in every field that reaches
//! PostgreSQL are refused with a GoTrue-style 4xx, never a 500, and write nothing.

use serde_json::{json, Value};

use crate::support::{expect_json, TestApp, APP_ID};

const NUL: &str = "a\u{0}b@x.co";

/// Records `what` in `failures` unless the answer is a GoTrue-style JSON 4xx.
async fn refused(res: reqwest::Response, what: &str, failures: &mut Vec<String>) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if !(400..500).contains(&status) || !body["error_code"].is_string() {
        failures.push(format!("{what}: {status} {body}"));
    }
}

#[tokio::test]
async fn nul_and_overlong_text_is_refused_everywhere() {
    let app = TestApp::builder().wechat().spawn();
    let me = app.signup_email("nul@example.com", "secret123").await;
    let token = me["access_token"].as_str().unwrap().to_string();
    let id = me["user"]["id"].as_str().unwrap().to_string();
    let admin_key = app.service_role_key();
    let long = "r".repeat(300);
    let before = app.db.snapshot();
    let mut failures = Vec::new();

    // (method, path, body, bearer) for every JSON field a route stores or searches.
    let mut cases: Vec<(reqwest::Method, String, Value, Option<String>)> = Vec::new();
    use reqwest::Method as M;
    for body in [
        json!({"email": NUL, "password": "secret123"}),
        json!({"phone": "86138\u{0}0013800", "password": "secret123"}),
        json!({"email": "nul@example.com", "password": "secret\u{0}123"}),
    ] {
        cases.push((M::POST, "/token?grant_type=password".into(), body, None));
    }
    cases.push((
        M::POST,
        "/token?grant_type=refresh_token".into(),
        json!({"refresh_token": "abcdefghij\u{0}k"}),
        None,
    ));
    for body in [
        json!({"email": NUL, "password": "secret123"}),
        json!({"phone": "86138\u{0}0013801", "password": "secret123"}),
        json!({"email": "n2@example.com", "password": "secret123", "data": {"k": "a\u{0}"}}),
        json!({"email": "n3@example.com", "password": "secret123", "data": {"a\u{0}": 1}}),
    ] {
        cases.push((M::POST, "/signup".into(), body, None));
    }
    for body in [
        json!({"email": NUL}),
        json!({"phone": "86138\u{0}0013802"}),
        json!({"data": {"k": ["x", {"y": "a\u{0}"}]}}),
    ] {
        cases.push((M::PUT, "/user".into(), body, Some(token.clone())));
    }
    for body in [
        json!({"email": NUL}),
        json!({"email": "n4@example.com", "role": "a\u{0}"}),
        json!({"email": "n5@example.com", "aud": "a\u{0}"}),
        json!({"email": "n6@example.com", "role": long}),
        json!({"email": "n7@example.com", "aud": long}),
        json!({"email": "n8@example.com", "user_metadata": {"k": "a\u{0}"}}),
        json!({"email": "n9@example.com", "app_metadata": {"k": "a\u{0}"}}),
        json!({"email": "n10@example.com", "password_hash": "$2a$\u{0}"}),
    ] {
        cases.push((
            M::POST,
            "/admin/users".into(),
            body.clone(),
            Some(admin_key.clone()),
        ));
        cases.push((
            M::PUT,
            format!("/admin/users/{id}"),
            body,
            Some(admin_key.clone()),
        ));
    }
    for (method, path, body, bearer) in cases {
        let mut req = app
            .client
            .request(method.clone(), app.url(&path))
            .json(&body);
        if let Some(b) = bearer {
            req = req.bearer_auth(b);
        }
        refused(
            req.send().await.unwrap(),
            &format!("{method} {path} {body}"),
            &mut failures,
        )
        .await;
    }

    // Query strings.
    for path in [
        "/admin/users?filter=a%00b".to_string(),
        "/admin/users?page=1%00".to_string(),
        "/logout?scope=glo%00bal".to_string(),
    ] {
        let res = app
            .client
            .request(
                if path.starts_with("/logout") {
                    M::POST
                } else {
                    M::GET
                },
                app.url(&path),
            )
            .bearer_auth(if path.starts_with("/logout") {
                &token
            } else {
                &admin_key
            })
            .send()
            .await
            .unwrap();
        refused(res, &path, &mut failures).await;
    }
    // WeChat parameters, in the query and in the body.
    for path in [
        "/wechat_mini/login?code=a%00b".to_string(),
        format!("/wechat_mini/login?code=abc&appid={APP_ID}%00"),
    ] {
        let res = app.client.get(app.url(&path)).send().await.unwrap();
        refused(res, &path, &mut failures).await;
    }
    let res = app
        .client
        .post(app.url("/wechat_mini/login"))
        .json(&json!({"code": "a\u{0}b"}))
        .send()
        .await
        .unwrap();
    refused(res, "wechat login body", &mut failures).await;
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(
        app.db.snapshot(),
        before,
        "a refused request wrote something"
    );

    // The account still works.
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "nul@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
}

/// E-mail addresses are judged as GoTrue judges them (checkmail's pattern) on every route that
/// takes one, and `page` is parsed as GoTrue parses it.
#[tokio::test]
async fn email_validation_and_pagination_follow_gotrue() {
    let app = TestApp::spawn();
    let me = app.signup_email("val@example.com", "secret123").await;
    let token = me["access_token"].as_str().unwrap().to_string();
    let admin_key = app.service_role_key();
    let refused = [
        "xx:;x@x.x",
        "a(b)c;e@x.x",
        "x<y>z@x.x",
        "a\u{200b}b@x.co",
        "a\u{202e}b@x.co",
        "a@b..co",
    ];
    let before = app.db.snapshot();
    for email in refused {
        let answers = [
            app.post("/signup", json!({"email": email, "password": "secret123"}))
                .await,
            app.client
                .post(app.url("/admin/users"))
                .bearer_auth(&admin_key)
                .json(&json!({"email": email}))
                .send()
                .await
                .unwrap(),
            app.client
                .put(app.url("/user"))
                .bearer_auth(&token)
                .json(&json!({"email": email}))
                .send()
                .await
                .unwrap(),
        ];
        for res in answers {
            let status = res.status().as_u16();
            let body: Value = res.json().await.unwrap();
            assert_eq!(status, 400, "{email:?}: {body}");
            assert_eq!(body["error_code"], "validation_failed", "{email:?}: {body}");
        }
    }
    assert_eq!(app.db.snapshot(), before);
    // GoTrue accepts a host without a dot.
    let s = expect_json(
        app.post(
            "/signup",
            json!({"email": "user@localhost", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(s["user"]["email"], "user@localhost");

    for page in ["-1", "x", "1.5"] {
        let res = app
            .client
            .get(app.url(&format!("/admin/users?page={page}")))
            .bearer_auth(&admin_key)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "page={page}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error_code"], "validation_failed");
        assert_eq!(
            body["msg"],
            format!(
                "Bad Pagination Parameters: strconv.ParseUint: parsing \"{page}\": invalid syntax"
            )
        );
    }
}
