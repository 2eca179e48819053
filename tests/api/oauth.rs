//! GoTrue's OAuth machinery with the WeChat providers, over HTTP against the emulator:
//! `/authorize` → WeChat's page → confirm → `/callback` → the app, implicit and PKCE;
//! state tampering, expiry and replay; open redirects; linkIdentity/unlinkIdentity; and one
//! person being one user across mini-program, website, official account and native app.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::support::*;

const SITE: &str = "http://localhost:3000";

fn app() -> TestApp {
    TestApp::builder()
        .oauth()
        .env("GOTRUE_SITE_URL", SITE)
        .env("GOTRUE_URI_ALLOW_LIST", "https://app.example.com/**")
        .env("GOTRUE_SECURITY_MANUAL_LINKING_ENABLED", "true")
        .spawn()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(res: &reqwest::Response) -> String {
    assert_eq!(res.status(), 302, "expected a redirect");
    res.headers()["location"].to_str().unwrap().to_string()
}

fn params(part: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(part.as_bytes())
        .into_owned()
        .collect()
}

/// The query and fragment parameters of a URL.
fn query_and_fragment(url: &str) -> (HashMap<String, String>, HashMap<String, String>) {
    let parsed = url::Url::parse(url).unwrap();
    (
        params(parsed.query().unwrap_or("")),
        params(parsed.fragment().unwrap_or("")),
    )
}

/// `GET /authorize?…`: WeChat's URL and the state in it.
async fn authorize(app: &TestApp, query: &str) -> (String, String) {
    let res = no_redirects()
        .get(app.url(&format!("/auth/v1/authorize?{query}")))
        .send()
        .await
        .unwrap();
    let to = location(&res);
    let (q, _) = query_and_fragment(&to);
    (to, q["state"].clone())
}

/// The emulator's page, the confirm button as `user`, and weauth's callback: where weauth
/// sends the browser in the end.
async fn browser_login(app: &TestApp, wechat_url: &str, user: &str) -> String {
    let client = no_redirects();
    let page = client.get(wechat_url).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("id=\"confirm\""), "{html}");
    let (q, _) = query_and_fragment(wechat_url);
    let page_path = url::Url::parse(wechat_url).unwrap();
    let confirm = format!(
        "{}://{}/connect/confirm",
        page_path.scheme(),
        page_path.host_str().unwrap().to_string() + &format!(":{}", page_path.port().unwrap())
    );
    let res = client
        .post(confirm)
        .form(&[
            ("appid", q["appid"].as_str()),
            ("redirect_uri", q["redirect_uri"].as_str()),
            ("scope", q["scope"].as_str()),
            ("state", q["state"].as_str()),
            ("user", user),
        ])
        .send()
        .await
        .unwrap();
    let back = location(&res);
    callback_at(app, &back).await
}

/// Calls weauth's callback with the query of `wechat_redirect` (the configured redirect_uri
/// names weauth's default external URL; the test server listens on another port).
async fn callback_at(app: &TestApp, wechat_redirect: &str) -> String {
    let parsed = url::Url::parse(wechat_redirect).unwrap();
    assert_eq!(parsed.path(), "/callback");
    let res = no_redirects()
        .get(app.url(&format!("/callback?{}", parsed.query().unwrap_or(""))))
        .send()
        .await
        .unwrap();
    location(&res)
}

async fn callback(app: &TestApp, state: &str, code: &str) -> String {
    let res = no_redirects()
        .get(app.url("/callback"))
        .query(&[("state", state), ("code", code)])
        .send()
        .await
        .unwrap();
    location(&res)
}

async fn oauth_code(app: &TestApp, appid: &str, user: &str, scope: &str) -> String {
    app.emulator()
        .post(
            "/emulator/oauth-code",
            json!({"appid": appid, "user": user, "scope": scope}),
        )
        .await["code"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn user_of(app: &TestApp, token: &str) -> Value {
    expect_json(app.get_auth("/user", token).await, 200).await
}

/// The access token in a redirect's fragment.
fn session_token(url: &str) -> String {
    let (_, fragment) = query_and_fragment(url);
    fragment
        .get("access_token")
        .unwrap_or_else(|| panic!("no session in {url}"))
        .clone()
}

/// The error a redirect carries, in the query and the fragment alike.
fn error_code(url: &str) -> String {
    let (q, f) = query_and_fragment(url);
    assert_eq!(q.get("error_code"), f.get("error_code"), "{url}");
    assert!(f.contains_key("sb"), "{url}");
    q.get("error_code")
        .unwrap_or_else(|| panic!("no error in {url}"))
        .clone()
}

#[actix_web::test]
async fn website_qr_login_puts_the_session_in_the_fragment() {
    let app = app();
    let (wechat, state) = authorize(
        &app,
        "provider=wechat_qr&redirect_to=https%3A%2F%2Fapp.example.com%2Fwelcome",
    )
    .await;
    assert!(
        wechat.starts_with(&format!("{}/connect/qrconnect?", app.emulator().url)),
        "{wechat}"
    );
    assert!(wechat.contains("scope=snsapi_login") && wechat.ends_with("#wechat_redirect"));
    assert!(state.len() <= 128 && state.bytes().all(|b| b.is_ascii_alphanumeric()));
    let back = browser_login(&app, &wechat, "alice").await;
    assert!(
        back.starts_with("https://app.example.com/welcome#"),
        "{back}"
    );
    let (_, f) = query_and_fragment(&back);
    assert_eq!(f["token_type"], "bearer");
    assert!(f.contains_key("refresh_token") && f.contains_key("expires_at"));
    assert!(
        !f.contains_key("provider_token"),
        "WeChat's token is never sent"
    );
    let user = user_of(&app, &f["access_token"]).await;
    assert_eq!(user["app_metadata"]["provider"], "wechat_qr");
    assert_eq!(user["identities"][0]["provider"], "wechat_qr");
    let data = &user["identities"][0]["identity_data"];
    assert_eq!(data["appid"], QR_APP_ID);
    assert!(data["unionid"].is_string());
    assert_eq!(user["user_metadata"]["name"], "alice");
    assert_eq!(app.db.count("auth.flow_state"), 0, "the flow is used up");
}

#[actix_web::test]
async fn one_person_is_one_user_across_every_wechat_channel() {
    let app = app();
    let code = app.emulator().login_code(APP_ID, "carol").await;
    let mini = expect_json(
        app.post("/wechat_mini/login", json!({ "code": code }))
            .await,
        200,
    )
    .await;
    let id = mini["user"]["id"].clone();

    let (wechat, _) = authorize(&app, "provider=wechat_qr").await;
    let web = user_of(
        &app,
        &session_token(&browser_login(&app, &wechat, "carol").await),
    )
    .await;
    assert_eq!(web["id"], id, "website login finds the mini-program user");

    let (wechat, _) = authorize(&app, "provider=wechat_mp").await;
    assert!(wechat.contains("/connect/oauth2/authorize?") && wechat.contains("snsapi_userinfo"));
    let mp = user_of(
        &app,
        &session_token(&browser_login(&app, &wechat, "carol").await),
    )
    .await;
    assert_eq!(mp["id"], id, "official-account login finds the same user");

    let code = oauth_code(&app, NATIVE_APP_ID, "carol", "snsapi_userinfo").await;
    let native = expect_json(
        app.client
            .get(app.url(&format!("/auth/v1/wechat_app/login?code={code}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(
        native["user"]["id"], id,
        "native-app login finds the same user"
    );
    let providers: Vec<&str> = native["user"]["app_metadata"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    for p in ["wechat", "wechat_qr", "wechat_mp", "wechat_app"] {
        assert!(providers.contains(&p), "{providers:?}");
    }
    assert_eq!(app.db.count("auth.users"), 1);
    assert_eq!(app.db.count("auth.identities"), 4);
}

#[actix_web::test]
async fn tampered_missing_and_unknown_states_are_refused_to_the_site_url() {
    let app = app();
    let (_, state) = authorize(
        &app,
        "provider=wechat_qr&redirect_to=https%3A%2F%2Fapp.example.com%2F",
    )
    .await;
    let code = oauth_code(&app, QR_APP_ID, "dave", "snsapi_login").await;
    let mut tampered = state.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == '0' { '1' } else { '0' });
    let back = callback(&app, &tampered, &code).await;
    assert!(back.starts_with(SITE), "{back}");
    assert_eq!(error_code(&back), "bad_oauth_state");
    let back = callback(&app, "not-a-state", &code).await;
    assert_eq!(error_code(&back), "bad_oauth_state");
    let res = no_redirects()
        .get(app.url(&format!("/callback?code={code}")))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(&location(&res)), "bad_oauth_callback");
    // The untouched state still works: nothing above spent it.
    let back = callback(&app, &state, &code).await;
    assert!(
        back.starts_with("https://app.example.com/#access_token="),
        "{back}"
    );
}

#[actix_web::test]
async fn expired_states_are_refused() {
    let app = app();
    let (_, state) = authorize(
        &app,
        "provider=wechat_qr&redirect_to=https%3A%2F%2Fapp.example.com%2F",
    )
    .await;
    app.db
        .execute("UPDATE auth.flow_state SET created_at = now() - interval '301 seconds'");
    let code = oauth_code(&app, QR_APP_ID, "erin", "snsapi_login").await;
    let back = callback(&app, &state, &code).await;
    assert!(
        back.starts_with(SITE),
        "an unusable state goes to the site URL: {back}"
    );
    let (q, _) = query_and_fragment(&back);
    assert_eq!(q["error_code"], "bad_oauth_state");
    assert_eq!(q["error_description"], "OAuth state has expired");
    assert_eq!(q["error"], "invalid_request");
    assert_eq!(app.db.count("auth.users"), 0);
}

#[actix_web::test]
async fn replayed_callbacks_and_codes_are_refused() {
    let app = app();
    let (_, state) = authorize(&app, "provider=wechat_qr").await;
    let code = oauth_code(&app, QR_APP_ID, "frank", "snsapi_login").await;
    let first = callback(&app, &state, &code).await;
    session_token(&first);
    let again = callback(&app, &state, &code).await;
    assert_eq!(
        error_code(&again),
        "bad_oauth_state",
        "the state is used once"
    );
    let (_, fresh) = authorize(&app, "provider=wechat_qr").await;
    let reused = callback(&app, &fresh, &code).await;
    assert_eq!(error_code(&reused), "wechat_code_used", "WeChat's 40163");
    let (_, fresh) = authorize(&app, "provider=wechat_qr").await;
    let invalid = callback(&app, &fresh, "made-up-code").await;
    assert_eq!(
        error_code(&invalid),
        "wechat_code_invalid",
        "WeChat's 40029"
    );
    assert_eq!(app.db.count("auth.sessions"), 1);
}

#[actix_web::test]
async fn foreign_redirect_targets_fall_back_to_the_site_url() {
    let app = app();
    for evil in [
        "https://evil.example.net/steal",
        "https://app.example.com.evil.net/",
        "//evil.example.net",
        "javascript:alert(1)",
    ] {
        let query = format!(
            "provider=wechat_qr&redirect_to={}",
            url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
        );
        let (_, state) = authorize(&app, &query).await;
        let code = oauth_code(&app, QR_APP_ID, "gina", "snsapi_login").await;
        let back = callback(&app, &state, &code).await;
        assert!(
            back.starts_with(&format!("{SITE}#access_token=")),
            "{evil} → {back}"
        );
    }
}

#[actix_web::test]
async fn pkce_flow_gives_a_code_exchanged_once_with_the_right_verifier() {
    use base64::Engine;
    use sha2::Digest;
    let app = app();
    let verifier = "a-verifier-that-is-long-enough-for-rfc-7636-0123456789";
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    let (_, state) = authorize(
        &app,
        &format!(
            "provider=wechat_qr&redirect_to=https%3A%2F%2Fapp.example.com%2Fcb%3Fx%3D1&code_challenge={challenge}&code_challenge_method=S256"
        ),
    )
    .await;
    let code = oauth_code(&app, QR_APP_ID, "hank", "snsapi_login").await;
    let back = callback(&app, &state, &code).await;
    assert!(
        back.starts_with("https://app.example.com/cb?x=1&code="),
        "{back}"
    );
    let (q, _) = query_and_fragment(&back);
    let auth_code = q["code"].clone();
    let again = callback(&app, &state, &code).await;
    assert_eq!(error_code(&again), "flow_state_already_used");

    let grant = |verifier: &str| {
        app.post(
            "/token?grant_type=pkce",
            json!({"auth_code": auth_code, "code_verifier": verifier}),
        )
    };
    expect_error(grant("the-wrong-verifier").await, 400, "bad_code_verifier").await;
    let session = expect_json(grant(verifier).await, 200).await;
    assert_eq!(session["user"]["identities"][0]["provider"], "wechat_qr");
    expect_error(grant(verifier).await, 404, "flow_state_not_found").await;
    expect_error(
        app.post("/token?grant_type=pkce", json!({"auth_code": auth_code}))
            .await,
        400,
        "validation_failed",
    )
    .await;
}

#[actix_web::test]
async fn authorize_refuses_bad_requests_with_gotrue_errors() {
    let app = app();
    for (query, code) in [
        ("provider=github", "validation_failed"),
        ("provider=", "validation_failed"),
        (
            "provider=wechat_qr&code_challenge=short&code_challenge_method=s256",
            "validation_failed",
        ),
        (
            "provider=wechat_qr&code_challenge=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "validation_failed",
        ),
    ] {
        let res = no_redirects()
            .get(app.url(&format!("/authorize?{query}")))
            .send()
            .await
            .unwrap();
        expect_error(res, 400, code).await;
    }
    let plain = TestApp::builder().wechat().spawn();
    let res = no_redirects()
        .get(plain.url("/authorize?provider=wechat_qr"))
        .send()
        .await
        .unwrap();
    let body = expect_error(res, 400, "validation_failed").await;
    assert!(
        body["msg"].as_str().unwrap().contains("not enabled"),
        "{body}"
    );
    expect_error(
        plain
            .client
            .get(plain.url("/wechat_app/login?code=x"))
            .send()
            .await
            .unwrap(),
        400,
        "provider_disabled",
    )
    .await;
    let settings = expect_json(
        plain
            .client
            .get(plain.url("/settings"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["external"]["wechat_qr"], false);
    let settings = expect_json(
        app.client.get(app.url("/settings")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["external"]["wechat_qr"], true);
    assert_eq!(settings["external"]["wechat_mp"], true);
    assert_eq!(settings["external"]["wechat_app"], true);
}

#[actix_web::test]
async fn official_account_base_scope_and_snapshot_pages() {
    let app = app();
    let (wechat, state) = authorize(&app, "provider=wechat_mp&scopes=snsapi_base").await;
    assert!(wechat.contains("scope=snsapi_base"), "{wechat}");
    let code = oauth_code(&app, MP_APP_ID, "ivy", "snsapi_base").await;
    let user = user_of(&app, &session_token(&callback(&app, &state, &code).await)).await;
    let data = &user["identities"][0]["identity_data"];
    assert_eq!(user["identities"][0]["provider"], "wechat_mp");
    assert!(
        data.get("unionid").is_none(),
        "snsapi_base carries no unionid"
    );

    let (_, state) = authorize(&app, "provider=wechat_mp").await;
    let snapshot = app
        .emulator()
        .post(
            "/emulator/oauth-code",
            json!({"appid": MP_APP_ID, "user": "jack", "scope": "snsapi_userinfo", "snapshot": true}),
        )
        .await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let back = callback(&app, &state, &snapshot).await;
    assert_eq!(error_code(&back), "wechat_snapshot_user");
    let (q, _) = query_and_fragment(&back);
    assert_eq!(q["error"], "access_denied");
}

#[actix_web::test]
async fn link_and_unlink_identities() {
    let app = app();
    let signed_up = app.signup_email("kate@example.com", "password-123").await;
    let token = signed_up["access_token"].as_str().unwrap().to_string();
    let res = app
        .get_auth(
            "/user/identities/authorize?provider=wechat_qr&skip_http_redirect=true&redirect_to=https%3A%2F%2Fapp.example.com%2Flinked",
            &token,
        )
        .await;
    let url = expect_json(res, 200).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let back = browser_login(&app, &url, "kate").await;
    assert!(
        back.starts_with("https://app.example.com/linked#access_token="),
        "{back}"
    );
    let user = user_of(&app, &token).await;
    let providers = user["app_metadata"]["providers"].clone();
    assert_eq!(providers, json!(["email", "wechat_qr"]), "{user}");
    assert_eq!(user["identities"].as_array().unwrap().len(), 2);

    // The same WeChat person cannot be linked to a second user.
    let other = app.signup_email("leo@example.com", "password-123").await;
    let other_token = other["access_token"].as_str().unwrap();
    let res = app
        .get_auth(
            "/user/identities/authorize?provider=wechat_mp&skip_http_redirect=true",
            other_token,
        )
        .await;
    let url = expect_json(res, 200).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let back = browser_login(&app, &url, "kate").await;
    assert_eq!(error_code(&back), "identity_already_exists");

    // Unlink: the WeChat identity goes, the last one stays.
    let wechat_id = user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["provider"] == "wechat_qr")
        .unwrap()["identity_id"]
        .as_str()
        .unwrap()
        .to_string();
    let email_id = user["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["provider"] == "email")
        .unwrap()["identity_id"]
        .as_str()
        .unwrap()
        .to_string();
    let delete = |id: String| {
        app.client
            .delete(app.url(&format!("/user/identities/{id}")))
            .bearer_auth(&token)
            .send()
    };
    expect_error(
        delete(uuid::Uuid::new_v4().to_string()).await.unwrap(),
        422,
        "identity_not_found",
    )
    .await;
    expect_json(delete(wechat_id).await.unwrap(), 200).await;
    let user = user_of(&app, &token).await;
    assert_eq!(user["app_metadata"]["providers"], json!(["email"]));
    assert_eq!(user["identities"].as_array().unwrap().len(), 1);
    expect_error(
        delete(email_id).await.unwrap(),
        422,
        "single_identity_not_deletable",
    )
    .await;
    expect_error(
        app.client
            .delete(app.url("/user/identities/not-a-uuid"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
        404,
        "validation_failed",
    )
    .await;

    let locked = TestApp::builder().oauth().spawn();
    let signed_up = locked.signup_email("mia@example.com", "password-123").await;
    let res = locked
        .get_auth(
            "/user/identities/authorize?provider=wechat_qr",
            signed_up["access_token"].as_str().unwrap(),
        )
        .await;
    expect_error(res, 404, "manual_linking_disabled").await;
    let me = user_of(&locked, signed_up["access_token"].as_str().unwrap()).await;
    let res = locked
        .client
        .delete(locked.url(&format!(
            "/user/identities/{}",
            me["identities"][0]["identity_id"].as_str().unwrap()
        )))
        .bearer_auth(signed_up["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    expect_error(res, 404, "manual_linking_disabled").await;
}

#[actix_web::test]
async fn concurrent_first_logins_of_one_person_make_one_user() {
    let app = app();
    let mut flows = Vec::new();
    for provider in ["wechat_qr", "wechat_mp", "wechat_qr", "wechat_mp"] {
        let (_, state) = authorize(&app, &format!("provider={provider}")).await;
        let (appid, scope) = if provider == "wechat_qr" {
            (QR_APP_ID, "snsapi_login")
        } else {
            (MP_APP_ID, "snsapi_userinfo")
        };
        flows.push((state, oauth_code(&app, appid, "nora", scope).await));
    }
    let results = futures_util::future::join_all(
        flows
            .iter()
            .map(|(state, code)| callback(&app, state, code)),
    )
    .await;
    for back in &results {
        session_token(back);
    }
    assert_eq!(app.db.count("auth.users"), 1);
    assert_eq!(app.db.count("auth.identities"), 2);
}

#[actix_web::test]
async fn wechat_app_login_maps_wechat_errors() {
    let app = app();
    let login = |code: String| {
        app.client
            .get(app.url(&format!("/wechat_app/login?code={code}")))
            .send()
    };
    expect_error(
        login("bogus".into()).await.unwrap(),
        400,
        "wechat_code_invalid",
    )
    .await;
    let code = oauth_code(&app, NATIVE_APP_ID, "olga", "snsapi_userinfo").await;
    let session = expect_json(login(code.clone()).await.unwrap(), 200).await;
    assert_eq!(session["user"]["identities"][0]["provider"], "wechat_app");
    expect_error(login(code).await.unwrap(), 400, "wechat_code_used").await;
    let code = oauth_code(&app, QR_APP_ID, "olga", "snsapi_login").await;
    expect_error(login(code).await.unwrap(), 400, "wechat_code_invalid").await;
    expect_error(
        app.client
            .get(app.url("/wechat_app/login"))
            .send()
            .await
            .unwrap(),
        400,
        "validation_failed",
    )
    .await;
}

#[actix_web::test]
async fn an_anonymous_user_linking_wechat_becomes_permanent() {
    let app = TestApp::builder()
        .oauth()
        .env("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED", "true")
        .env("GOTRUE_SECURITY_MANUAL_LINKING_ENABLED", "true")
        .spawn();
    let guest = expect_json(app.post("/signup", json!({})).await, 200).await;
    let token = guest["access_token"].as_str().unwrap().to_string();
    assert_eq!(guest["user"]["is_anonymous"], true);
    let res = app
        .get_auth(
            "/user/identities/authorize?provider=wechat_qr&skip_http_redirect=true",
            &token,
        )
        .await;
    let url = expect_json(res, 200).await["url"]
        .as_str()
        .unwrap()
        .to_string();
    let back = browser_login(&app, &url, "pete").await;
    let linked = user_of(&app, &session_token(&back)).await;
    assert_eq!(
        linked["id"], guest["user"]["id"],
        "the guest keeps their id"
    );
    assert_eq!(linked["is_anonymous"], false);
    assert_eq!(linked["identities"][0]["provider"], "wechat_qr");
}
