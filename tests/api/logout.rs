use serde_json::json;

use crate::support::{expect_error, expect_json, TestApp};

async fn sessions(app: &TestApp, n: usize) -> Vec<serde_json::Value> {
    let mut out = vec![app.signup_email("nina@example.com", "secret123").await];
    for _ in 1..n {
        let res = app
            .post(
                "/token?grant_type=password",
                json!({"email": "nina@example.com", "password": "secret123"}),
            )
            .await;
        out.push(expect_json(res, 200).await);
    }
    out
}

async fn logout(app: &TestApp, token: &serde_json::Value, scope: &str) -> reqwest::Response {
    app.client
        .post(app.url(&format!("/auth/v1/logout{scope}")))
        .bearer_auth(token["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn logout_scopes() {
    let app = TestApp::spawn();
    let s = sessions(&app, 4).await;
    expect_error(
        logout(&app, &s[0], "?scope=everything").await,
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(app.db.count("auth.sessions"), 4);

    let res = logout(&app, &s[0], "?scope=local").await;
    assert_eq!(res.status(), 204);
    assert_eq!(app.db.count("auth.sessions"), 3);
    expect_error(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": s[0]["refresh_token"]}),
        )
        .await,
        400,
        "refresh_token_not_found",
    )
    .await;
    expect_error(
        app.get_auth("/user", s[0]["access_token"].as_str().unwrap())
            .await,
        403,
        "session_not_found",
    )
    .await;

    assert_eq!(logout(&app, &s[1], "?scope=others").await.status(), 204);
    assert_eq!(app.db.count("auth.sessions"), 1);
    expect_json(
        app.get_auth("/user", s[1]["access_token"].as_str().unwrap())
            .await,
        200,
    )
    .await;

    assert_eq!(logout(&app, &s[1], "").await.status(), 204);
    assert_eq!(app.db.count("auth.sessions"), 0);
    assert_eq!(app.db.count("auth.refresh_tokens"), 0);
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM auth.audit_log_entries WHERE payload->>'action' = 'logout'"
        ),
        3
    );
}

#[tokio::test]
async fn logout_needs_a_token() {
    let app = TestApp::spawn();
    let res = app.client.post(app.url("/logout")).send().await.unwrap();
    expect_error(res, 401, "no_authorization").await;
}
