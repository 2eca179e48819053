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

/// A global logout racing many refreshes of the same session always wins: it answers 204, and
/// afterwards no session or refresh token of the user is left and no token refreshes.
#[tokio::test]
async fn global_logout_wins_over_concurrent_refreshes() {
    let app = TestApp::spawn();
    let first = app.signup_email("race@example.com", "secret123").await;
    let mut seen = vec![first["refresh_token"].as_str().unwrap().to_string()];
    for round in 0..6 {
        let s = expect_json(
            app.post(
                "/token?grant_type=password",
                json!({"email": "race@example.com", "password": "secret123"}),
            )
            .await,
            200,
        )
        .await;
        let start = s["refresh_token"].as_str().unwrap().to_string();
        let refreshers: Vec<_> = (0..8)
            .map(|_| {
                let (client, url, mut token) = (
                    app.client.clone(),
                    app.url("/token?grant_type=refresh_token"),
                    start.clone(),
                );
                tokio::spawn(async move {
                    let mut tokens = Vec::new();
                    for _ in 0..4 {
                        let res = client
                            .post(&url)
                            .json(&json!({"refresh_token": token}))
                            .send()
                            .await
                            .unwrap();
                        let status = res.status().as_u16();
                        let body: serde_json::Value = res.json().await.unwrap();
                        assert!(status < 500, "refresh answered {status}: {body}");
                        match body["refresh_token"].as_str() {
                            Some(t) => {
                                token = t.to_string();
                                tokens.push(token.clone());
                            }
                            None => break,
                        }
                    }
                    tokens
                })
            })
            .collect();
        tokio::time::sleep(std::time::Duration::from_millis(5 * (round % 3))).await;
        let res = logout(&app, &s, "").await;
        assert_eq!(
            res.status(),
            204,
            "round {round}: {}",
            res.text().await.unwrap()
        );
        for r in refreshers {
            seen.extend(r.await.unwrap());
        }
        seen.push(start);
        let user = "(SELECT id FROM auth.users WHERE email = 'race@example.com')";
        assert_eq!(
            app.db.scalar(&format!(
                "SELECT count(*) FROM auth.sessions WHERE user_id = {user}"
            )),
            0,
            "round {round}: a session survived the logout"
        );
        assert_eq!(
            app.db.scalar(&format!(
                "SELECT count(*) FROM auth.refresh_tokens WHERE user_id = {user}::text"
            )),
            0,
            "round {round}: a refresh token survived the logout"
        );
    }
    for token in seen {
        let res = app
            .post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": token}),
            )
            .await;
        expect_error(res, 400, "refresh_token_not_found").await;
    }
}
