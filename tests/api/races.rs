//! Requests racing each other on the same rows: every answer is a GoTrue-style 2xx or 4xx,
//! never a 500, and nothing half-written is left behind.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::{expect_json, TestApp};

/// Sends the requests at once and returns `(status, body)` for each, in order.
pub async fn together(requests: Vec<reqwest::RequestBuilder>) -> Vec<(u16, Value)> {
    join_all(requests.into_iter().map(|r| async move {
        let res = r.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }))
    .await
}

fn admin(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(app.service_role_key())
}

fn post(app: &TestApp, path: &str, body: Value) -> reqwest::RequestBuilder {
    app.client.post(app.url(path)).json(&body)
}

/// Exactly one request won, and every other one got 422 `code`.
fn one_winner(answers: &[(u16, Value)], code: &str, what: &str) {
    let won = answers.iter().filter(|(s, _)| *s == 200).count();
    assert_eq!(won, 1, "{what}: {answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 422, "{what}: {body}");
        assert_eq!(body["error_code"], code, "{what}: {body}");
    }
}

#[tokio::test]
async fn concurrent_claims_of_one_email_or_phone_get_422() {
    let app = TestApp::spawn();
    const N: usize = 8;
    for round in 0..3 {
        // Admin create.
        let email = format!("claim{round}@example.com");
        let answers = together(
            (0..N)
                .map(|_| {
                    admin(&app, reqwest::Method::POST, "/admin/users")
                        .json(&json!({"email": email, "password": "secret123"}))
                })
                .collect(),
        )
        .await;
        one_winner(&answers, "email_exists", "admin create, e-mail");
        let phone = format!("861380000{round:04}");
        let answers = together(
            (0..N)
                .map(|_| {
                    admin(&app, reqwest::Method::POST, "/admin/users")
                        .json(&json!({"phone": phone, "password": "secret123"}))
                })
                .collect(),
        )
        .await;
        one_winner(&answers, "phone_exists", "admin create, phone");

        // Admin update and PUT /user: N existing users each claim the same new address.
        let mut users = Vec::new();
        for i in 0..N {
            users.push(
                app.signup_email(&format!("u{round}-{i}@example.com"), "secret123")
                    .await,
            );
        }
        let target = format!("admin-update{round}@example.com");
        let answers = together(
            users
                .iter()
                .map(|u| {
                    let id = u["user"]["id"].as_str().unwrap();
                    admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}"))
                        .json(&json!({"email": target}))
                })
                .collect(),
        )
        .await;
        one_winner(&answers, "email_exists", "admin update, e-mail");
        let target = format!("861390000{round:04}");
        let answers = together(
            users
                .iter()
                .map(|u| {
                    let id = u["user"]["id"].as_str().unwrap();
                    admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}"))
                        .json(&json!({"phone": target}))
                })
                .collect(),
        )
        .await;
        one_winner(&answers, "phone_exists", "admin update, phone");
        let target = format!("put-user{round}@example.com");
        let put = |body: Value| -> Vec<reqwest::RequestBuilder> {
            users
                .iter()
                .map(|u| {
                    app.client
                        .put(app.url("/user"))
                        .bearer_auth(u["access_token"].as_str().unwrap())
                        .json(&body)
                })
                .collect()
        };
        let answers = together(put(json!({"email": target}))).await;
        one_winner(&answers, "email_exists", "PUT /user, e-mail");
        let answers = together(put(json!({"phone": format!("861370000{round:04}")}))).await;
        one_winner(&answers, "phone_exists", "PUT /user, phone");
    }
    // Nothing half-written: each address belongs to one user, with one identity.
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM auth.identities i JOIN auth.users u ON u.id = i.user_id
             WHERE i.provider = 'email' AND i.identity_data->>'email' IS DISTINCT FROM u.email"
        ),
        0
    );
}

/// No answer in `answers` is a 5xx (or anything but 2xx/4xx JSON).
fn no_server_errors(answers: &[(u16, Value)], what: &str) {
    for (status, body) in answers {
        assert!(
            (200..300).contains(status) || (400..500).contains(status),
            "{what}: {status} {body}"
        );
        if *status >= 400 {
            assert!(body["error_code"].is_string(), "{what}: {status} {body}");
        }
    }
}

#[tokio::test]
async fn deleting_a_user_while_they_sign_in_refresh_or_update_gives_4xx() {
    let app = TestApp::builder().wechat().spawn();
    for round in 0..10 {
        // Hard and soft (`should_soft_delete`) deletions in turn.
        let soft = round % 2 == 1;
        let email = format!("gone{round}@example.com");
        let s = app.signup_email(&email, "secret123").await;
        let id = s["user"]["id"].as_str().unwrap().to_string();
        let access = s["access_token"].as_str().unwrap().to_string();
        let refresh = s["refresh_token"].as_str().unwrap().to_string();
        let wechat_user = format!("w{round}");
        let code = app
            .emulator()
            .login_code(crate::support::APP_ID, &wechat_user)
            .await;
        let w = expect_json(
            app.client
                .get(app.url(&format!("/wechat_mini/login?code={code}")))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        let wid = w["user"]["id"].as_str().unwrap().to_string();
        let mut codes = Vec::new();
        for _ in 0..3 {
            codes.push(
                app.emulator()
                    .login_code(crate::support::APP_ID, &wechat_user)
                    .await,
            );
        }
        let mut requests = Vec::new();
        for (i, code) in codes.iter().enumerate() {
            requests.push(post(
                &app,
                "/token?grant_type=password",
                json!({"email": email, "password": "secret123"}),
            ));
            requests.push(post(
                &app,
                "/token?grant_type=refresh_token",
                json!({"refresh_token": refresh}),
            ));
            requests.push(
                app.client
                    .put(app.url("/user"))
                    .bearer_auth(&access)
                    .json(&json!({"data": {"k": i}})),
            );
            requests.push(
                app.client
                    .get(app.url(&format!("/wechat_mini/login?code={code}"))),
            );
            if i == 1 {
                for uid in [&id, &wid] {
                    requests.push(
                        admin(
                            &app,
                            reqwest::Method::DELETE,
                            &format!("/admin/users/{uid}"),
                        )
                        .json(&json!({"should_soft_delete": soft})),
                    );
                }
            }
        }
        let answers = together(requests).await;
        no_server_errors(&answers, &format!("round {round}"));
        // The deletion won or lost as a whole: nothing of a deleted user was written after it.
        for uid in [&id, &wid] {
            let left = if soft {
                "SELECT count(*) FROM auth.users WHERE id = '{uid}' AND deleted_at IS NULL"
            } else {
                "SELECT count(*) FROM auth.users WHERE id = '{uid}'"
            };
            assert_eq!(
                app.db.scalar(&left.replace("{uid}", uid)),
                0,
                "round {round}: {answers:?}"
            );
            for table in ["auth.sessions", "auth.identities"] {
                assert_eq!(
                    app.db.scalar(&format!(
                        "SELECT count(*) FROM {table} WHERE user_id = '{uid}'"
                    )),
                    0,
                    "round {round} (soft: {soft}): {table} of a deleted user"
                );
            }
            assert_eq!(
                app.db.scalar(&format!(
                    "SELECT count(*) FROM auth.refresh_tokens WHERE user_id = '{uid}'"
                )),
                0,
                "round {round} (soft: {soft})"
            );
        }
    }
}

/// Concurrent metadata updates each merge into what the row holds when they are written: no
/// writer's key is lost, on `PUT /user` and on the admin update, for both metadata objects.
#[tokio::test]
async fn concurrent_metadata_updates_lose_no_key() {
    let app = TestApp::spawn();
    let s = app.signup_email("meta@example.com", "secret123").await;
    let id = s["user"]["id"].as_str().unwrap().to_string();
    let token = s["access_token"].as_str().unwrap().to_string();
    const N: usize = 30;
    let mut requests: Vec<reqwest::RequestBuilder> = (0..N)
        .map(|i| {
            app.client
                .put(app.url("/user"))
                .bearer_auth(&token)
                .json(&json!({"data": {format!("user{i}"): i}}))
        })
        .collect();
    requests.extend((0..N).map(|i| {
        admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}")).json(
            &json!({"user_metadata": {format!("admin{i}"): i}, "app_metadata": {format!("app{i}"): i}}),
        )
    }));
    let answers = together(requests).await;
    for (status, body) in &answers {
        assert_eq!(*status, 200, "{body}");
    }
    let user = expect_json(app.get_auth("/user", &token).await, 200).await;
    for i in 0..N {
        assert_eq!(
            user["user_metadata"][format!("user{i}")],
            json!(i),
            "{user}"
        );
        assert_eq!(
            user["user_metadata"][format!("admin{i}")],
            json!(i),
            "{user}"
        );
        assert_eq!(user["app_metadata"][format!("app{i}")], json!(i), "{user}");
    }
    assert_eq!(user["app_metadata"]["providers"], json!(["email"]));
    assert_eq!(user["user_metadata"]["email"], "meta@example.com");

    // A null still removes a key, and the cap applies to the merged object.
    let put = |body: Value| {
        app.client
            .put(app.url("/user"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let user = expect_json(put(json!({"data": {"user0": null}})).await.unwrap(), 200).await;
    assert!(user["user_metadata"].get("user0").is_none());
    let chunk = "x".repeat(40 * 1024);
    expect_json(put(json!({"data": {"big1": chunk}})).await.unwrap(), 200).await;
    let before = app.db.snapshot();
    let res = put(json!({"data": {"big2": chunk}})).await.unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(app.db.snapshot(), before);
}

/// The parent and the current refresh token presented at once: every success hands back the
/// session's live token (never one that is rotated away a moment later).
#[tokio::test]
async fn parent_and_current_token_raced_all_get_the_live_token() {
    let app = TestApp::spawn();
    app.signup_email("twice@example.com", "secret123").await;
    for round in 0..15 {
        let s = expect_json(
            app.post(
                "/token?grant_type=password",
                json!({"email": "twice@example.com", "password": "secret123"}),
            )
            .await,
            200,
        )
        .await;
        let parent = s["refresh_token"].as_str().unwrap().to_string();
        let current = expect_json(
            app.post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": parent}),
            )
            .await,
            200,
        )
        .await["refresh_token"]
            .as_str()
            .unwrap()
            .to_string();
        let answers = together(
            [&parent, &current, &parent, &current]
                .iter()
                .map(|t| {
                    post(
                        &app,
                        "/token?grant_type=refresh_token",
                        json!({"refresh_token": t}),
                    )
                })
                .collect(),
        )
        .await;
        let mut issued = Vec::new();
        for (status, body) in &answers {
            assert_eq!(*status, 200, "round {round}: {body}");
            issued.push(body["refresh_token"].as_str().unwrap().to_string());
        }
        for token in &issued {
            assert_eq!(
                app.db.scalar(&format!(
                    "SELECT count(*) FROM auth.refresh_tokens WHERE token = '{token}' AND NOT revoked"
                )),
                1,
                "round {round}: {token} was handed out but is not live ({issued:?})"
            );
        }
    }
}
