use serde_json::json;

use crate::signup::assert_token_response;
use crate::support::{expect_error, expect_json, TestApp};

#[tokio::test]
async fn password_grant_signs_in_and_creates_a_session() {
    let app = TestApp::spawn();
    let signup = app.signup_email("bob@example.com", "secret123").await;
    let res = app
        .post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "BOB@example.com", "password": "secret123"}),
        )
        .await;
    assert_eq!(res.headers().get("cache-control").unwrap(), "no-store");
    let body = expect_json(res, 200).await;
    assert_token_response(&body);
    assert_eq!(body["user"]["id"], signup["user"]["id"]);
    assert!(body.get("weak_password").is_none());
    assert_eq!(app.db.count("auth.sessions"), 2);
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM auth.audit_log_entries WHERE payload->>'action' = 'login'"
        ),
        1
    );
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_answer() {
    let app = TestApp::spawn();
    app.signup_email("carol@example.com", "secret123").await;
    let before = app.db.snapshot();
    let wrong = expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"email": "carol@example.com", "password": "nope-nope"}),
        )
        .await,
        400,
        "invalid_credentials",
    )
    .await;
    let unknown = expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"email": "nobody@example.com", "password": "nope-nope"}),
        )
        .await,
        400,
        "invalid_credentials",
    )
    .await;
    assert_eq!(wrong, unknown);
    assert_eq!(wrong["msg"], "Invalid login credentials");
    assert_eq!(app.db.snapshot(), before);
}

#[tokio::test]
async fn token_request_validation() {
    let app = TestApp::spawn();
    let cases = [
        (
            "/token?grant_type=password",
            json!({"password": "x"}),
            400,
            "validation_failed",
        ),
        (
            "/token?grant_type=password",
            json!({"email": "a@b.co", "phone": "861", "password": "x"}),
            400,
            "validation_failed",
        ),
        (
            "/token?grant_type=magic",
            json!({}),
            400,
            "invalid_credentials",
        ),
        ("/token", json!({}), 400, "invalid_credentials"),
        (
            "/token?grant_type=refresh_token",
            json!({}),
            400,
            "validation_failed",
        ),
        (
            "/token?grant_type=refresh_token",
            json!({"refresh_token": "short"}),
            400,
            "validation_failed",
        ),
        (
            "/token?grant_type=refresh_token",
            json!({"refresh_token": "ABCDEFGHIJKL"}),
            400,
            "validation_failed",
        ),
        (
            "/token?grant_type=refresh_token",
            json!({"refresh_token": "abcdefghijkl"}),
            400,
            "refresh_token_not_found",
        ),
        (
            "/token?grant_type=refresh_token",
            json!({"refresh_token": "a".repeat(60)}),
            400,
            "refresh_token_not_found",
        ),
    ];
    for (path, body, status, code) in cases {
        let err = expect_error(app.post(path, body).await, status, code).await;
        if path == "/token?grant_type=magic" {
            assert_eq!(err["msg"], "unsupported_grant_type");
        }
    }
}

#[tokio::test]
async fn refresh_rotates_and_a_replay_inside_the_interval_returns_the_current_token() {
    let app = TestApp::spawn();
    let session = app.signup_email("dave@example.com", "secret123").await;
    let first = session["refresh_token"].as_str().unwrap();
    let refreshed = expect_json(
        app.post(
            "/auth/v1/token?grant_type=refresh_token",
            json!({"refresh_token": first}),
        )
        .await,
        200,
    )
    .await;
    assert_token_response(&refreshed);
    let second = refreshed["refresh_token"].as_str().unwrap();
    assert_ne!(first, second);
    assert_eq!(refreshed["user"]["id"], session["user"]["id"]);
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM auth.refresh_tokens WHERE token = '{first}' AND revoked"
        )),
        1
    );
    assert_eq!(app.db.scalar(&format!("SELECT count(*) FROM auth.refresh_tokens WHERE token = '{second}' AND parent = '{first}'")), 1);

    assert_eq!(app.db.scalar("SELECT count(*) FROM auth.audit_log_entries WHERE payload->>'action' = 'token_refreshed'"), 1);
    // The client lost the answer and replays the parent: it gets the same child back.
    let replay = expect_json(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": first}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(replay["refresh_token"], json!(second));
    assert_eq!(app.db.count("auth.refresh_tokens"), 2);

    // The access token from a refresh works.
    let me = expect_json(
        app.get_auth("/user", refreshed["access_token"].as_str().unwrap())
            .await,
        200,
    )
    .await;
    assert_eq!(me["email"], "dave@example.com");
}

#[tokio::test]
async fn a_replay_after_the_interval_revokes_the_whole_session() {
    let app = TestApp::builder()
        .env("GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL", "0")
        .spawn();
    let session = app.signup_email("erin@example.com", "secret123").await;
    let first = session["refresh_token"].as_str().unwrap();
    let refreshed = expect_json(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": first}),
        )
        .await,
        200,
    )
    .await;
    std::thread::sleep(std::time::Duration::from_millis(1100));
    expect_error(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": first}),
        )
        .await,
        400,
        "refresh_token_already_used",
    )
    .await;
    assert_eq!(app.db.count("auth.sessions"), 0, "the session is revoked");
    // The stolen family is dead: the current child no longer works, nor the access token.
    let child = refreshed["refresh_token"].as_str().unwrap();
    expect_error(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": child}),
        )
        .await,
        400,
        "refresh_token_not_found",
    )
    .await;
    expect_error(
        app.get_auth("/user", refreshed["access_token"].as_str().unwrap())
            .await,
        403,
        "session_not_found",
    )
    .await;
}

#[tokio::test]
async fn concurrent_refreshes_of_one_token_all_succeed_with_one_child() {
    let app = TestApp::spawn();
    let session = app.signup_email("frank@example.com", "secret123").await;
    let token = session["refresh_token"].as_str().unwrap().to_string();
    let calls = (0..8).map(|_| {
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": token}),
        )
    });
    let results = futures_util::future::join_all(calls).await;
    let mut children = std::collections::BTreeSet::new();
    for res in results {
        children.insert(
            expect_json(res, 200).await["refresh_token"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(children.len(), 1, "{children:?}");
    assert_eq!(app.db.count("auth.refresh_tokens"), 2);
}

#[tokio::test]
async fn banned_users_cannot_sign_in_or_refresh() {
    let app = TestApp::spawn();
    let session = app.signup_email("gina@example.com", "secret123").await;
    app.db
        .execute("UPDATE auth.users SET banned_until = now() + interval '1 day'");
    expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"email": "gina@example.com", "password": "secret123"}),
        )
        .await,
        400,
        "user_banned",
    )
    .await;
    expect_error(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": session["refresh_token"]}),
        )
        .await,
        400,
        "user_banned",
    )
    .await;
    expect_error(
        app.get_auth("/user", session["access_token"].as_str().unwrap())
            .await,
        403,
        "user_banned",
    )
    .await;
}

#[tokio::test]
async fn weak_but_correct_passwords_sign_in_with_a_warning() {
    let app = TestApp::spawn();
    app.signup_email("hank@example.com", "secret123").await;
    // Raise the policy on the same database: the old password still signs in, with weak_password.
    let (strict, _server) = app.second_instance_with(&[("GOTRUE_PASSWORD_MIN_LENGTH", "12")]);
    let res = app
        .client
        .post(format!("{strict}/token?grant_type=password"))
        .json(&json!({"email": "hank@example.com", "password": "secret123"}))
        .send()
        .await
        .unwrap();
    let body = expect_json(res, 200).await;
    assert_eq!(body["weak_password"]["reasons"], json!(["length"]));
    assert!(body["weak_password"]["message"]
        .as_str()
        .unwrap()
        .contains("12"));
}

#[tokio::test]
async fn unsupported_grants_are_refused_like_gotrue_before_the_body_or_rate_limit() {
    let app = TestApp::builder()
        .env("GOTRUE_RATE_LIMIT_TOKEN_REFRESH", "1")
        .spawn();
    // GoTrue's switch in internal/api/token.go: unknown (and weauth's unimplemented id_token,
    // web3) grants are 400 invalid_credentials, whatever the body, rate limit untouched.
    for path in [
        "/token?grant_type=magic",
        "/token?grant_type=id_token",
        "/auth/v1/token?grant_type=web3",
        "/token",
    ] {
        for body in [None, Some("not json"), Some("{}")] {
            let mut req = app.client.post(app.url(path));
            if let Some(body) = body {
                req = req.header("content-type", "application/json").body(body);
            }
            let err = expect_error(req.send().await.unwrap(), 400, "invalid_credentials").await;
            assert_eq!(err["msg"], "unsupported_grant_type", "{path}");
        }
    }
    // The one /token request the limit allows is still there.
    expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"email": "nobody@example.com", "password": "secret123"}),
        )
        .await,
        400,
        "invalid_credentials",
    )
    .await;
    expect_error(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": "x"}),
        )
        .await,
        429,
        "over_request_rate_limit",
    )
    .await;
}
