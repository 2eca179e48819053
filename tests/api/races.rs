//! Requests racing each other on the same rows: every answer is a GoTrue-style 2xx or 4xx,
//! never a 500, and nothing half-written is left behind.

use futures_util::future::join_all;
use serde_json::{json, Value};

use crate::support::TestApp;

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
