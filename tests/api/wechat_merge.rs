//! Flow ② (issue 13): `wechatBindPhone` with a number that already has a web account merges the
//! fresh WeChat account into it, when that is safe.

use serde_json::{json, Value};

use crate::support::{expect_error, expect_json, TestApp, APP_ID};

const PHONE: &str = "+8613900002222";

fn app(merge: &str) -> TestApp {
    TestApp::builder()
        .wechat()
        .env("WEAUTH_WECHAT_PHONE_MERGE", merge)
        .spawn()
}

async fn login(app: &TestApp, user: &str) -> Value {
    let code = app.emulator().login_code(APP_ID, user).await;
    expect_json(
        app.client
            .get(app.url(&format!("/auth/v1/wechat_mini/login?code={code}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

async fn bind_phone(app: &TestApp, token: &str, phone: &str) -> reqwest::Response {
    let code = app.emulator().phone_code(APP_ID, phone).await;
    app.get_auth(&format!("/auth/v1/wechat_mini/bind_phone?code={code}"), token)
        .await
}

/// A web user with a confirmed phone, a password and metadata.
async fn web_user(app: &TestApp) -> Value {
    let session = expect_json(
        app.post(
            "/auth/v1/signup",
            json!({"phone": PHONE, "password": "web-password-1", "data": {"plan": "pro"}}),
        )
        .await,
        200,
    )
    .await;
    session["user"].clone()
}

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn a_fresh_wechat_account_lands_in_the_web_account_of_its_phone() {
    let app = app("true");
    let w = web_user(&app).await;
    let m = login(&app, "bob").await;
    let m_token = m["access_token"].as_str().unwrap();
    let m_claims = claims(m_token);
    // A provisional account's token is short-lived, so the SDK refreshes it soon.
    assert_eq!(
        m_claims["exp"].as_i64().unwrap() - m_claims["iat"].as_i64().unwrap(),
        60
    );
    assert_ne!(m["user"]["id"], w["id"]);

    let merged = expect_json(bind_phone(&app, m_token, PHONE).await, 200).await;
    assert_eq!(merged["id"], w["id"]);
    assert_eq!(merged["phone"], "8613900002222");
    assert_eq!(merged["user_metadata"]["plan"], "pro");
    let providers = merged["app_metadata"]["providers"].as_array().unwrap();
    assert!(providers.contains(&json!("phone")) && providers.contains(&json!("wechat")));
    let identities = merged["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 2, "{merged}");
    assert_eq!(app.db.count("auth.users"), 1, "the WeChat account is gone");
    assert_eq!(app.db.count("weauth.merged_users"), 1);

    // The token the SDK still holds is served as W, and its refresh yields W's tokens.
    let me = expect_json(app.get_auth("/auth/v1/user", m_token).await, 200).await;
    assert_eq!(me["id"], w["id"]);
    let refreshed = expect_json(
        app.post(
            "/auth/v1/token?grant_type=refresh_token",
            json!({"refresh_token": m["refresh_token"]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(refreshed["user"]["id"], w["id"]);
    let w_claims = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(w_claims["sub"], w["id"]);
    assert_eq!(w_claims["session_id"], m_claims["session_id"], "same session");
    assert_eq!(
        w_claims["exp"].as_i64().unwrap() - w_claims["iat"].as_i64().unwrap(),
        3600,
        "W is no provisional account"
    );

    // The next launch signs straight into W; the web user still signs in with the password.
    let again = login(&app, "bob").await;
    assert_eq!(again["user"]["id"], w["id"]);
    expect_json(
        app.post(
            "/auth/v1/token?grant_type=password",
            json!({"phone": PHONE, "password": "web-password-1"}),
        )
        .await,
        200,
    )
    .await;
    // Both ids are in the audit log.
    let audited = app.db.scalar(&format!(
        "SELECT count(*) FROM auth.audit_log_entries WHERE payload->'traits'->>'merged_user_id' = '{}' AND payload->'traits'->>'into_user_id' = '{}'",
        m["user"]["id"].as_str().unwrap(),
        w["id"].as_str().unwrap()
    ));
    assert_eq!(audited, 2);
}

#[tokio::test]
async fn no_merge_unless_every_condition_holds() {
    // Merging switched off.
    let off = app("false");
    web_user(&off).await;
    let m = login(&off, "bob").await;
    let before = off.db.snapshot();
    expect_error(
        bind_phone(&off, m["access_token"].as_str().unwrap(), PHONE).await,
        422,
        "phone_exists",
    )
    .await;
    assert_eq!(off.db.snapshot(), before);

    // The WeChat account is no longer fresh.
    let stale = app("true");
    web_user(&stale).await;
    let m = login(&stale, "bob").await;
    stale.db.execute(&format!(
        "UPDATE auth.users SET created_at = now() - interval '11 minutes' WHERE id = '{}'",
        m["user"]["id"].as_str().unwrap()
    ));
    expect_error(
        bind_phone(&stale, m["access_token"].as_str().unwrap(), PHONE).await,
        422,
        "phone_exists",
    )
    .await;
    assert_eq!(stale.db.count("auth.users"), 2);

    // The web account's phone is not confirmed.
    let unconfirmed = app("true");
    let key = unconfirmed.service_role_key();
    expect_json(
        unconfirmed
            .client
            .post(unconfirmed.url("/auth/v1/admin/users"))
            .bearer_auth(&key)
            .json(&json!({"phone": PHONE, "password": "web-password-1"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let m = login(&unconfirmed, "bob").await;
    expect_error(
        bind_phone(&unconfirmed, m["access_token"].as_str().unwrap(), PHONE).await,
        422,
        "phone_exists",
    )
    .await;
    assert_eq!(unconfirmed.db.count("auth.users"), 2);
}

#[tokio::test]
async fn an_account_with_its_own_wechat_login_is_not_merged_into() {
    let app = app("true");
    // carol's own WeChat account owns the number.
    let carol = login(&app, "carol").await;
    app.db.execute(&format!(
        "UPDATE auth.users SET created_at = now() - interval '1 day' WHERE id = '{}'",
        carol["user"]["id"].as_str().unwrap()
    ));
    expect_json(
        bind_phone(&app, carol["access_token"].as_str().unwrap(), PHONE).await,
        200,
    )
    .await;
    let bob = login(&app, "bob").await;
    let before = app.db.snapshot();
    expect_error(
        bind_phone(&app, bob["access_token"].as_str().unwrap(), PHONE).await,
        422,
        "identity_already_exists",
    )
    .await;
    assert_eq!(app.db.snapshot(), before);
}

#[tokio::test]
async fn a_failure_mid_merge_leaves_both_accounts_as_they_were() {
    let app = app("true");
    let w = web_user(&app).await;
    let m = login(&app, "bob").await;
    app.db.execute(
        "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$",
    );
    app.db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON weauth.merged_users FOR EACH ROW EXECUTE FUNCTION public.refuse()",
    );
    let before = app.db.snapshot();
    let res = bind_phone(&app, m["access_token"].as_str().unwrap(), PHONE).await;
    assert_eq!(res.status(), 500);
    assert_eq!(app.db.snapshot(), before);
    // Both still work as before.
    let me = expect_json(
        app.get_auth("/auth/v1/user", m["access_token"].as_str().unwrap())
            .await,
        200,
    )
    .await;
    assert_eq!(me["id"], m["user"]["id"]);
    assert_ne!(me["id"], w["id"]);
}

#[tokio::test]
async fn two_simultaneous_binds_merge_once_and_both_answer_the_web_account() {
    let app = app("true");
    let w = web_user(&app).await;
    let m = login(&app, "bob").await;
    let token = m["access_token"].as_str().unwrap().to_string();
    let (a, b) = tokio::join!(bind_phone(&app, &token, PHONE), bind_phone(&app, &token, PHONE));
    let a = expect_json(a, 200).await;
    let b = expect_json(b, 200).await;
    assert_eq!(a["id"], w["id"]);
    assert_eq!(b["id"], w["id"]);
    assert_eq!(app.db.count("auth.users"), 1);
    assert_eq!(app.db.count("auth.identities"), 2);
}

#[tokio::test]
async fn a_refresh_racing_the_merge_ends_up_as_the_web_account() {
    let app = app("true");
    let w = web_user(&app).await;
    let m = login(&app, "bob").await;
    let token = m["access_token"].as_str().unwrap().to_string();
    let refresh = app.post(
        "/auth/v1/token?grant_type=refresh_token",
        json!({"refresh_token": m["refresh_token"]}),
    );
    let (bound, refreshed) = tokio::join!(bind_phone(&app, &token, PHONE), refresh);
    assert_eq!(expect_json(bound, 200).await["id"], w["id"]);
    let refreshed = expect_json(refreshed, 200).await;
    // Whichever ran first, the session is W's now: the next refresh says so.
    let next = expect_json(
        app.post(
            "/auth/v1/token?grant_type=refresh_token",
            json!({"refresh_token": refreshed["refresh_token"]}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(next["user"]["id"], w["id"]);
    assert_eq!(app.db.count("auth.users"), 1);
}
