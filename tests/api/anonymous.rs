//! Anonymous sign-ins (GoTrue `internal/api/anonymous.go`, `anonymous_test.go`): `POST /signup`
//! with neither e-mail nor phone, the hourly rate limit, conversion to a permanent user through
//! `PUT /user` and the admin API, listing and deletion.

use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};

use crate::support::{expect_error, expect_json, TestApp, JWT_SECRET};

fn anonymous_app() -> TestApp {
    TestApp::builder()
        .env("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED", "true")
        .spawn()
}

fn claims(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["authenticated"]);
    decode::<Value>(
        token,
        &DecodingKey::from_secret(JWT_SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims
}

async fn sign_in_anonymously(app: &TestApp, body: Value) -> Value {
    expect_json(app.post("/auth/v1/signup", body).await, 200).await
}

#[tokio::test]
async fn disabled_by_default_like_gotrue() {
    let app = TestApp::spawn();
    let err = expect_error(
        app.post("/signup", json!({"data": {"a": 1}})).await,
        422,
        "anonymous_provider_disabled",
    )
    .await;
    assert_eq!(err["msg"], "Anonymous sign-ins are disabled");
    let settings = expect_json(
        app.client.get(app.url("/settings")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["external"]["anonymous_users"], json!(false));
    assert_eq!(app.db.count("auth.users"), 0);

    let off = TestApp::builder()
        .env("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED", "true")
        .env("GOTRUE_DISABLE_SIGNUP", "true")
        .spawn();
    expect_error(off.post("/signup", json!({})).await, 422, "signup_disabled").await;
}

#[tokio::test]
async fn sign_in_creates_an_anonymous_user_and_session() {
    let app = anonymous_app();
    let settings = expect_json(
        app.client.get(app.url("/settings")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["external"]["anonymous_users"], json!(true));

    // What supabase-js signInAnonymously({ options: { data } }) sends.
    let session = sign_in_anonymously(
        &app,
        json!({"data": {"field": "foo"}, "gotrue_meta_security": {}}),
    )
    .await;
    let user = &session["user"];
    assert_eq!(user["is_anonymous"], json!(true));
    assert_eq!(user["email"], json!(""));
    assert_eq!(user["phone"], json!(""));
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(user["user_metadata"], json!({"field": "foo"}));
    assert_eq!(user["app_metadata"], json!({}));
    assert_eq!(user["identities"], json!([]));
    let token = session["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(c["is_anonymous"], json!(true));
    assert_eq!(c["sub"], user["id"]);
    assert_eq!(c["amr"][0]["method"], "anonymous");
    assert_eq!(c["role"], "authenticated");

    let me = expect_json(app.get_auth("/user", token).await, 200).await;
    assert_eq!(me["id"], user["id"]);
    let refreshed = expect_json(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": session["refresh_token"]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(
        claims(refreshed["access_token"].as_str().unwrap())["is_anonymous"],
        json!(true)
    );
    // No identity, no password; an empty body works too.
    assert_eq!(app.db.count("auth.identities"), 0);
    sign_in_anonymously(&app, json!({})).await;
    assert_eq!(app.db.count("auth.users"), 2);
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM auth.users WHERE is_anonymous AND encrypted_password = ''"
        ),
        2
    );
}

#[tokio::test]
async fn conversion_keeps_the_id_and_makes_the_user_permanent() {
    let app = anonymous_app();
    for (body, provider) in [
        (json!({"email": "Convert@Example.com"}), "email"),
        (
            json!({"phone": "+86 138 0013 8000", "password": "secret123"}),
            "phone",
        ),
    ] {
        let session = sign_in_anonymously(&app, json!({})).await;
        let id = session["user"]["id"].clone();
        let token = session["access_token"].as_str().unwrap();
        // A password alone is refused, as in GoTrue.
        let err = expect_error(
            app.client
                .put(app.url("/user"))
                .bearer_auth(token)
                .json(&json!({"password": "secret123"}))
                .send()
                .await
                .unwrap(),
            422,
            "validation_failed",
        )
        .await;
        assert_eq!(
            err["msg"],
            "Updating password of an anonymous user without an email or phone is not allowed"
        );

        let user = expect_json(
            app.client
                .put(app.url("/user"))
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(user["id"], id);
        assert_eq!(user["is_anonymous"], json!(false), "{user}");
        assert_eq!(
            user["app_metadata"],
            json!({"provider": provider, "providers": [provider]})
        );
        assert_eq!(user["identities"].as_array().unwrap().len(), 1);
        assert_eq!(user["identities"][0]["provider"], provider);
        let refreshed = expect_json(
            app.post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await,
            200,
        )
        .await;
        let c = claims(refreshed["access_token"].as_str().unwrap());
        assert_eq!(c["is_anonymous"], json!(false));
        assert_eq!(c["sub"], id);
    }
    // The phone user set a password with its number: it can sign in with it now.
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"phone": "8613800138000", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn an_unconfirmed_address_leaves_the_user_anonymous() {
    let app = TestApp::builder()
        .env("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED", "true")
        .env("GOTRUE_MAILER_AUTOCONFIRM", "false")
        .spawn();
    let session = sign_in_anonymously(&app, json!({})).await;
    let user = expect_json(
        app.client
            .put(app.url("/user"))
            .bearer_auth(session["access_token"].as_str().unwrap())
            .json(&json!({"email": "later@example.com"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(user["is_anonymous"], json!(true));
    assert_eq!(user["new_email"], "later@example.com");
}

#[tokio::test]
async fn admin_lists_converts_and_deletes_anonymous_users() {
    let app = anonymous_app();
    let first = sign_in_anonymously(&app, json!({})).await["user"]["id"].clone();
    let second = sign_in_anonymously(&app, json!({})).await["user"]["id"].clone();
    let admin = app.service_role_key();
    let list = expect_json(app.get_auth("/admin/users", &admin).await, 200).await;
    let users = list["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert!(users.iter().all(|u| u["is_anonymous"] == json!(true)));

    // GoTrue's TestAdminUpdateAnonymousUser: a confirmed e-mail makes the user permanent, an
    // unconfirmed one does not; both get the e-mail identity.
    for (id, email, confirm, anonymous) in [
        (&first, "foo@example.com", true, false),
        (&second, "bar@example.com", false, true),
    ] {
        let user = expect_json(
            app.client
                .put(app.url(&format!("/admin/users/{}", id.as_str().unwrap())))
                .bearer_auth(&admin)
                .json(&json!({"email": email, "email_confirm": confirm}))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(user["email"], email);
        assert_eq!(user["is_anonymous"], json!(anonymous), "{user}");
        assert_eq!(user["identities"].as_array().unwrap().len(), 1);
    }
    let res = app
        .client
        .delete(app.url(&format!("/admin/users/{}", second.as_str().unwrap())))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    assert_eq!(app.db.count("auth.users"), 1);
}

#[tokio::test]
async fn anonymous_sign_ins_have_their_own_hourly_limit() {
    let app = TestApp::builder()
        .env("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED", "true")
        .env("GOTRUE_RATE_LIMIT_ANONYMOUS_USERS", "2")
        .env("GOTRUE_RATE_LIMIT_OTP", "5")
        .spawn();
    sign_in_anonymously(&app, json!({})).await;
    sign_in_anonymously(&app, json!({})).await;
    expect_error(
        app.post("/signup", json!({})).await,
        429,
        "over_request_rate_limit",
    )
    .await;
    // Sign-ups with an address count against their own limit.
    app.signup_email("someone@example.com", "secret123").await;
}

/// A mini-program guest who later binds WeChat (`wechatBindAccount`) keeps the guest's id and
/// becomes permanent; the next WeChat login signs into that same user.
#[tokio::test]
async fn a_guest_binding_wechat_keeps_the_id_and_becomes_permanent() {
    let app = TestApp::builder()
        .wechat()
        .env("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED", "true")
        .spawn();
    let guest = sign_in_anonymously(&app, json!({"data": {"cart": 3}})).await;
    let token = guest["access_token"].as_str().unwrap();
    let code = app.emulator().login_code(crate::support::APP_ID, "guest-dora").await;
    let bound = expect_json(
        app.get_auth(&format!("/wechat_mini/bind_account?code={code}"), token)
            .await,
        200,
    )
    .await;
    assert_eq!(bound["id"], guest["user"]["id"]);
    assert_eq!(bound["is_anonymous"], false);
    assert_eq!(bound["user_metadata"]["cart"], 3);
    let code = app.emulator().login_code(crate::support::APP_ID, "guest-dora").await;
    let login = expect_json(
        app.client
            .get(app.url(&format!("/wechat_mini/login?code={code}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(login["user"]["id"], guest["user"]["id"]);
    assert_eq!(claims(login["access_token"].as_str().unwrap())["is_anonymous"], false);
}
