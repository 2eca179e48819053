//! Replays, byte for byte, the requests `@supabase/supabase-js` (auth-js) sends for
//! signUp → signInWithPassword → getUser → updateUser({data}) → refreshSession → signOut, with
//! its headers, and checks every response the way auth-js reads it.

use serde_json::{json, Value};

use crate::signup::{assert_token_response, assert_user_shape};
use crate::support::TestApp;

const ANON_HEADERS: [(&str, &str); 3] = [
    ("X-Client-Info", "supabase-js-node/2.49.1"),
    ("X-Supabase-Api-Version", "2024-01-01"),
    ("Content-Type", "application/json;charset=UTF-8"),
];

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    bearer: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = app
        .client
        .request(method, app.url(path))
        .header("apikey", "anon-key")
        .bearer_auth(bearer);
    for (k, v) in ANON_HEADERS {
        req = req.header(k, v);
    }
    if let Some(body) = body {
        req = req.body(body.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

#[tokio::test]
async fn supabase_js_password_flow() {
    let app = TestApp::spawn();
    let anon = app.sign(json!({"iss": "supabase-demo", "role": "anon", "exp": chrono::Utc::now().timestamp() + 3600}));
    use reqwest::Method as M;

    // signUp({email, password, options: {data}}): gotrue_meta_security carries captcha_token (undefined → {}).
    let (status, signup) = call(
        &app,
        M::POST,
        "/auth/v1/signup",
        &anon,
        Some(json!({"email": "js@example.com", "password": "secret123", "data": {"plan": "free"}, "gotrue_meta_security": {}, "code_challenge": null, "code_challenge_method": null})),
    )
    .await;
    assert_eq!(status, 200, "{signup}");
    assert_token_response(&signup);

    // signInWithPassword({email, password})
    let (status, session) = call(
        &app,
        M::POST,
        "/auth/v1/token?grant_type=password",
        &anon,
        Some(
            json!({"email": "js@example.com", "password": "secret123", "gotrue_meta_security": {}}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{session}");
    assert_token_response(&session);
    let access = session["access_token"].as_str().unwrap().to_string();

    // getUser(): GET /user with the session's access token.
    let (status, user) = call(&app, M::GET, "/auth/v1/user", &access, None).await;
    assert_eq!(status, 200);
    assert_user_shape(&user);
    assert_eq!(user["user_metadata"]["plan"], "free");

    // updateUser({data}): PUT /user {data, email: undefined, ...}.
    let (status, updated) =
        call(&app, M::PUT, "/auth/v1/user", &access, Some(json!({"data": {"nickname": "js"}, "code_challenge": null, "code_challenge_method": null}))).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["user_metadata"]["nickname"], "js");
    assert_eq!(updated["user_metadata"]["plan"], "free");

    // refreshSession(): POST /token?grant_type=refresh_token {refresh_token}.
    let (status, refreshed) = call(
        &app,
        M::POST,
        "/auth/v1/token?grant_type=refresh_token",
        &anon,
        Some(json!({"refresh_token": session["refresh_token"]})),
    )
    .await;
    assert_eq!(status, 200, "{refreshed}");
    assert_token_response(&refreshed);
    assert_eq!(refreshed["user"]["user_metadata"]["nickname"], "js");
    let access = refreshed["access_token"].as_str().unwrap().to_string();

    // signOut(): POST /logout?scope=global, 204 with no body.
    let (status, body) = call(&app, M::POST, "/auth/v1/logout?scope=global", &access, None).await;
    assert_eq!((status, body), (204, Value::Null));

    // After sign-out the refresh token is dead, as auth-js expects (it then clears its storage).
    let (status, err) = call(
        &app,
        M::POST,
        "/auth/v1/token?grant_type=refresh_token",
        &anon,
        Some(json!({"refresh_token": refreshed["refresh_token"]})),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        err,
        json!({"code": "refresh_token_not_found", "message": "Invalid Refresh Token: Refresh Token Not Found"})
    );
    let (status, err) = call(&app, M::GET, "/auth/v1/user", &access, None).await;
    assert_eq!(status, 403);
    assert_eq!(err["code"], "session_not_found");
}
