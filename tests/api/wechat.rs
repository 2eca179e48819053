//! WeChat mini-program routes against the WeChat emulator over HTTP.

use serde_json::{json, Value};

use crate::signup::{assert_token_response, assert_user_shape};
use crate::support::{expect_error, expect_json, TestApp, APP_ID, APP_ID_2};

fn referer(appid: &str) -> String {
    format!("https://servicewechat.com/{appid}/0/page-frame.html")
}

/// Every session_key weauth stored must be absent from every response a client saw.
fn assert_no_session_key(app: &TestApp, bodies: &[&Value]) {
    #[derive(diesel::QueryableByName)]
    struct Key {
        #[diesel(sql_type = diesel::sql_types::Text)]
        session_key: String,
    }
    use diesel::RunQueryDsl;
    let keys: Vec<Key> = diesel::sql_query("SELECT session_key FROM weauth.wechat_session_keys")
        .load(&mut app.db.conn())
        .unwrap();
    assert!(!keys.is_empty());
    for body in bodies {
        let text = body.to_string();
        for key in &keys {
            assert!(
                !text.contains(&key.session_key),
                "session_key leaked in {text}"
            );
        }
        assert!(!text.contains("session_key"), "{text}");
    }
}

async fn login(app: &TestApp, code: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/auth/v1/wechat_mini/login?code={code}")))
        .send()
        .await
        .unwrap()
}

async fn wechat_session(app: &TestApp, user: &str) -> Value {
    let code = app.emulator().login_code(APP_ID, user).await;
    expect_json(login(app, &code).await, 200).await
}

#[tokio::test]
async fn first_and_returning_login_profile_and_phone() {
    let app = TestApp::builder().wechat().spawn();
    let first = wechat_session(&app, "alice").await;
    assert_token_response(&first);
    let user = &first["user"];
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "wechat", "providers": ["wechat"]})
    );
    assert_eq!(user["email"], "");
    assert_eq!(user["phone"], "");
    let identity = &user["identities"][0];
    assert_eq!(identity["provider"], "wechat");
    assert_eq!(identity["identity_data"]["appid"], APP_ID);
    assert!(identity["identity_data"]["unionid"].is_string());
    let openid = identity["id"].as_str().unwrap().to_string();
    assert_eq!(openid.len(), 28);

    // Returning user: a fresh code, same user, same identity.
    let again = wechat_session(&app, "alice").await;
    assert_eq!(again["user"]["id"], user["id"]);
    assert_eq!(app.db.count("auth.users"), 1);
    assert_eq!(app.db.count("auth.identities"), 1);
    assert_eq!(app.db.count("auth.sessions"), 2);

    // A banned user cannot log in with WeChat either.
    app.db
        .execute("UPDATE auth.users SET banned_until = now() + interval '1 hour'");
    let code = app.emulator().login_code(APP_ID, "alice").await;
    expect_error(login(&app, &code).await, 400, "user_banned").await;
    assert_eq!(app.db.count("auth.sessions"), 2);
    app.db.execute("UPDATE auth.users SET banned_until = NULL");

    // Profile: updateUser({data}) then getUser().
    let token = again["access_token"].as_str().unwrap();
    let put = app
        .client
        .put(app.url("/auth/v1/user"))
        .bearer_auth(token)
        .json(&json!({"data": {"nickname": "爱丽丝", "avatar": "https://cdn.example/a.png"}}))
        .send()
        .await
        .unwrap();
    expect_json(put, 200).await;
    let me = expect_json(app.get_auth("/auth/v1/user", token).await, 200).await;
    assert_eq!(me["user_metadata"]["nickname"], "爱丽丝");

    // wechatBindPhone({code: e.detail.code})
    let phone_code = app.emulator().phone_code(APP_ID, "+8613800138000").await;
    let bound = expect_json(
        app.get_auth(
            &format!("/auth/v1/wechat_mini/bind_phone?code={phone_code}"),
            token,
        )
        .await,
        200,
    )
    .await;
    assert_user_shape(&bound);
    assert_eq!(bound["phone"], "8613800138000");
    assert!(bound["phone_confirmed_at"].is_string());
    assert_eq!(bound["user_metadata"]["nickname"], "爱丽丝");
    assert_eq!(bound["id"], user["id"]);
    let me = expect_json(app.get_auth("/auth/v1/user", token).await, 200).await;
    assert_eq!(me["phone"], "8613800138000");
    assert_no_session_key(&app, &[&first, &again, &bound, &me]);
}

#[tokio::test]
async fn phone_already_owned_by_another_user_changes_nothing() {
    let app = TestApp::builder().wechat().spawn();
    app.post(
        "/signup",
        json!({"phone": "+8613900002222", "password": "secret123"}),
    )
    .await;
    let session = wechat_session(&app, "bob").await;
    let token = session["access_token"].as_str().unwrap();
    let before = app.db.snapshot();
    let code = app.emulator().phone_code(APP_ID, "+8613900002222").await;
    expect_error(
        app.get_auth(&format!("/wechat_mini/bind_phone?code={code}"), token)
            .await,
        422,
        "phone_exists",
    )
    .await;
    assert_eq!(app.db.snapshot(), before);
    // POST with a JSON body works too.
    let code = app.emulator().phone_code(APP_ID, "+14155550100").await;
    let res = app
        .client
        .post(app.url("/wechat_mini/bind_phone"))
        .bearer_auth(token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(res, 200).await["phone"], "14155550100");
    // A used phone code is an invalid code.
    let res = app
        .client
        .post(app.url("/wechat_mini/bind_phone"))
        .bearer_auth(token)
        .json(&json!({"code": code}))
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "wechat_code_invalid").await;
    // Without a session: the SDK's AuthSessionMissingError case.
    expect_error(
        app.client
            .get(app.url("/wechat_mini/bind_phone?code=x"))
            .send()
            .await
            .unwrap(),
        401,
        "no_authorization",
    )
    .await;
}

#[tokio::test]
async fn bind_account_links_wechat_to_a_phone_user() {
    let app = TestApp::builder().wechat().spawn();
    let phone_user = expect_json(
        app.post(
            "/signup",
            json!({"phone": "+8613700001234", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    let token = phone_user["access_token"].as_str().unwrap();
    let code = app.emulator().login_code(APP_ID, "carol").await;
    let linked = expect_json(
        app.get_auth(&format!("/wechat_mini/bind_account?code={code}"), token)
            .await,
        200,
    )
    .await;
    assert_eq!(
        linked["app_metadata"]["providers"],
        json!(["phone", "wechat"])
    );
    assert_eq!(linked["identities"].as_array().unwrap().len(), 2);
    // Logging in with WeChat now lands on the phone user, in this app and (by unionid) in the other.
    let via_wechat = wechat_session(&app, "carol").await;
    assert_eq!(via_wechat["user"]["id"], phone_user["user"]["id"]);
    let code2 = app.emulator().login_code(APP_ID_2, "carol").await;
    let res = app
        .client
        .get(app.url(&format!("/wechat_mini/login?code={code2}")))
        .header("Referer", referer(APP_ID_2))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(res, 200).await["user"]["id"],
        phone_user["user"]["id"]
    );

    // The same WeChat account cannot be linked to someone else.
    let other = app.signup_email("dan@example.com", "secret123").await;
    let before = app.db.snapshot();
    let code = app.emulator().login_code(APP_ID, "carol").await;
    let res = app
        .get_auth(
            &format!("/wechat_mini/bind_account?code={code}"),
            other["access_token"].as_str().unwrap(),
        )
        .await;
    expect_error(res, 422, "identity_already_exists").await;
    assert_eq!(app.db.snapshot(), before);
}

#[tokio::test]
async fn unionid_joins_the_same_person_across_mini_programs() {
    let app = TestApp::builder().wechat().spawn();
    let in_app1 = wechat_session(&app, "erin").await;
    let code = app.emulator().login_code(APP_ID_2, "erin").await;
    let res = app
        .client
        .get(app.url(&format!("/wechat_mini/login?code={code}")))
        .header("Referer", referer(APP_ID_2))
        .send()
        .await
        .unwrap();
    let in_app2 = expect_json(res, 200).await;
    assert_eq!(in_app1["user"]["id"], in_app2["user"]["id"]);
    let identities = in_app2["user"]["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 2);
    assert_ne!(
        identities[0]["id"], identities[1]["id"],
        "one openid per app"
    );
    // An explicit appid works as well; an unknown one is refused.
    let code = app.emulator().login_code(APP_ID_2, "frank").await;
    expect_json(
        app.client
            .get(app.url(&format!("/wechat_mini/login?code={code}&appid={APP_ID_2}")))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let res = app
        .client
        .get(app.url("/wechat_mini/login?code=abc"))
        .header("Referer", referer("wxunknown"))
        .send()
        .await
        .unwrap();
    expect_error(res, 400, "validation_failed").await;
    // A code from app 2 sent to app 1 is invalid there.
    let code = app.emulator().login_code(APP_ID_2, "gina").await;
    expect_error(login(&app, &code).await, 400, "wechat_code_invalid").await;
}

#[tokio::test]
async fn fifty_simultaneous_first_logins_create_one_user() {
    let app = TestApp::builder().wechat().spawn();
    let mut codes = Vec::new();
    for _ in 0..50 {
        codes.push(app.emulator().login_code(APP_ID, "henry").await);
    }
    let calls = codes.iter().map(|code| login(&app, code));
    let results = futures_util::future::join_all(calls).await;
    let mut ids = std::collections::BTreeSet::new();
    for res in results {
        ids.insert(
            expect_json(res, 200).await["user"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(app.db.count("auth.users"), 1);
    assert_eq!(app.db.count("auth.identities"), 1);
    assert_eq!(app.db.count("auth.sessions"), 50);
}

#[tokio::test]
async fn wechat_errors_map_to_clear_errors_and_write_nothing() {
    let app = TestApp::builder()
        .wechat()
        .env("WEAUTH_WECHAT_TIMEOUT_MS", "700")
        .spawn();
    let emu = app.emulator();
    let before = app.db.snapshot();

    expect_error(
        login(&app, "not-a-real-code").await,
        400,
        "wechat_code_invalid",
    )
    .await;
    expect_error(
        app.client
            .get(app.url("/wechat_mini/login"))
            .send()
            .await
            .unwrap(),
        400,
        "validation_failed",
    )
    .await;

    let cases: [(&str, Value, u16, &str); 6] = [
        (
            "40029",
            json!({"errcode": 40029}),
            400,
            "wechat_code_invalid",
        ),
        ("40163", json!({"errcode": 40163}), 400, "wechat_code_used"),
        (
            "40226",
            json!({"errcode": 40226}),
            403,
            "wechat_user_blocked",
        ),
        (
            "45011",
            json!({"errcode": 45011}),
            429,
            "wechat_rate_limited",
        ),
        (
            "busy twice",
            json!({"errcode": -1, "times": 2}),
            503,
            "wechat_unavailable",
        ),
        (
            "garbage",
            json!({"garbage": true}),
            502,
            "wechat_unavailable",
        ),
    ];
    for (name, failure, status, code) in cases {
        let login_code = emu.login_code(APP_ID, "ivan").await;
        let mut body = failure.clone();
        body["api"] = json!("jscode2session");
        emu.post("/emulator/fail-next", body).await;
        let err = expect_error(login(&app, &login_code).await, status, code).await;
        assert!(!err["msg"].as_str().unwrap().is_empty(), "{name}");
        assert_eq!(app.db.snapshot(), before, "{name} wrote something");
    }
    // Slow WeChat: bounded by the timeout.
    let login_code = emu.login_code(APP_ID, "ivan").await;
    emu.post(
        "/emulator/fail-next",
        json!({"api": "jscode2session", "delay_ms": 2000}),
    )
    .await;
    let started = std::time::Instant::now();
    expect_error(login(&app, &login_code).await, 503, "wechat_unavailable").await;
    assert!(
        started.elapsed() < std::time::Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.db.snapshot(), before);

    // One `-1` is retried once and the login succeeds with the same code.
    let login_code = emu.login_code(APP_ID, "ivan").await;
    emu.fail_next("jscode2session", -1).await;
    expect_json(login(&app, &login_code).await, 200).await;
    // A code used twice: the second exchange is refused.
    expect_error(login(&app, &login_code).await, 400, "wechat_code_used").await;
}

#[tokio::test]
async fn wrong_app_secret_is_a_gateway_error_not_a_500() {
    let app = TestApp::builder()
        .wechat()
        .env("GOTRUE_EXTERNAL_WECHAT_SECRET", "wrong-secret")
        .spawn();
    assert_eq!(
        app.emulator().stats().await["codes_exchanged"],
        serde_json::json!(0)
    );
    let code = app.emulator().login_code(APP_ID, "jane").await;
    expect_error(login(&app, &code).await, 502, "wechat_misconfigured").await;
    assert_eq!(app.db.count("auth.users"), 0);
}

#[tokio::test]
async fn wechat_routes_without_configuration_answer_provider_disabled() {
    let app = TestApp::spawn();
    expect_error(
        app.client
            .get(app.url("/auth/v1/wechat_mini/login?code=x"))
            .send()
            .await
            .unwrap(),
        400,
        "provider_disabled",
    )
    .await;
    let user = app.signup_email("kim@example.com", "secret123").await;
    let token = user["access_token"].as_str().unwrap();
    expect_error(
        app.get_auth("/wechat_mini/bind_phone?code=x", token).await,
        400,
        "provider_disabled",
    )
    .await;
    expect_error(
        app.get_auth("/wechat_mini/bind_account?code=x", token)
            .await,
        400,
        "provider_disabled",
    )
    .await;
}

#[tokio::test]
async fn access_token_is_fetched_once_shared_and_refreshed_after_expiry() {
    let app = TestApp::builder().wechat().spawn();
    let emu = app.emulator();
    let mut tokens = Vec::new();
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        tokens.push(
            wechat_session(&app, user).await["access_token"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    for (i, token) in tokens.iter().enumerate() {
        let code = emu.phone_code(APP_ID, &format!("+86139000000{i:02}")).await;
        expect_json(
            app.get_auth(&format!("/wechat_mini/bind_phone?code={code}"), token)
                .await,
            200,
        )
        .await;
    }
    assert_eq!(emu.stats().await["stable_token_calls"], json!(1));

    // A second weauth instance on the same database uses the same token.
    let (second, _server) = app.second_instance();
    let token = wechat_session(&app, "u6").await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let code = emu.phone_code(APP_ID, "+8613900000099").await;
    let res = app
        .client
        .get(format!("{second}/wechat_mini/bind_phone?code={code}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    assert_eq!(emu.stats().await["stable_token_calls"], json!(1));

    // WeChat expires it: the next call sees 42001, fetches once more and succeeds.
    emu.post("/emulator/expire-access-tokens", json!({})).await;
    let code = emu.phone_code(APP_ID, "+8613900000098").await;
    let res = app
        .client
        .get(format!("{second}/wechat_mini/bind_phone?code={code}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    let code = emu.phone_code(APP_ID, "+8613900000097").await;
    expect_json(
        app.get_auth(&format!("/wechat_mini/bind_phone?code={code}"), &token)
            .await,
        200,
    )
    .await;
    assert_eq!(emu.stats().await["stable_token_calls"], json!(2));
}

/// WeChat kills the token a fresh instance finds in the database while requests keep arriving
/// (the benchmark's bind_phone cell hit this): every request still succeeds, and the token is
/// fetched once per kill. A request whose retry was handed the same dead token again (another
/// request had just read it from the database and cached it) used to fail with 502. The race
/// is timing-dependent, so the scenario runs three times.
#[tokio::test]
async fn a_dead_cached_token_under_load_is_replaced_once_and_no_call_fails() {
    let app = TestApp::builder().wechat().spawn();
    let emu = app.emulator();
    let mut tokens = Vec::new();
    for i in 0..8 {
        let session = wechat_session(&app, &format!("load{i}")).await;
        tokens.push(session["access_token"].as_str().unwrap().to_string());
    }
    let code = emu.phone_code(APP_ID, "+8613700000000").await;
    expect_json(
        app.get_auth(&format!("/wechat_mini/bind_phone?code={code}"), &tokens[0])
            .await,
        200,
    )
    .await;
    assert_eq!(emu.stats().await["stable_token_calls"], json!(1));

    for round in 0..3 {
        emu.post("/emulator/expire-access-tokens", json!({})).await;
        // A fresh instance (empty in-memory cache) reads the dead token from the database.
        let (second, _server) = app.second_instance();
        let mut calls = Vec::new();
        for i in 0..64 {
            let phone = format!("+86137{round}{i:07}");
            let code = emu.phone_code(APP_ID, &phone).await;
            let (client, url, token) = (
                app.client.clone(),
                format!("{second}/wechat_mini/bind_phone?code={code}"),
                tokens[i % tokens.len()].clone(),
            );
            calls.push(tokio::spawn(async move {
                // Staggered, so new requests keep arriving while the token is being replaced.
                tokio::time::sleep(std::time::Duration::from_micros(i as u64 * 500)).await;
                let res = client.get(url).bearer_auth(token).send().await.unwrap();
                (res.status().as_u16(), res.text().await.unwrap())
            }));
        }
        for call in calls {
            let (status, body) = call.await.unwrap();
            assert_eq!(status, 200, "round {round}: {body}");
        }
        assert_eq!(emu.stats().await["stable_token_calls"], json!(2 + round));
    }
}

#[tokio::test]
async fn unlimited_qrcode_returns_a_png_and_validates_before_spending_quota() {
    let app = TestApp::builder().wechat().spawn();
    let anon = app.sign(
        json!({"role": "anon", "iss": "supabase-demo", "exp": chrono::Utc::now().timestamp() + 60}),
    );
    let qr = |body: Value| {
        app.client
            .post(app.url("/auth/v1/wechat_mini/unlimited_qrcode"))
            .bearer_auth(&anon)
            .json(&body)
            .send()
    };
    let body = expect_json(
        qr(json!({"page": "pages/index/index", "scene": "id=42&from=share", "check_path": false, "env_version": "develop", "width": 430,
                   "auto_color": false, "line_color": {"r": 0, "g": 0, "b": 0}, "is_hyaline": false}))
        .await
        .unwrap(),
        200,
    )
    .await;
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(body["imgBase64"].as_str().unwrap())
        .unwrap();
    assert!(png.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]));
    let calls = app.emulator().stats().await["getwxacodeunlimit_calls"].clone();

    for bad in [
        json!({}),
        json!({"scene": ""}),
        json!({"scene": "x".repeat(33)}),
        json!({"scene": "中文"}),
        json!({"scene": "a", "page": "/pages/index"}),
        json!({"scene": "a", "env_version": "prod"}),
        json!({"scene": "a", "width": 100}),
        json!({"scene": "a", "line_color": {"r": 300, "g": 0, "b": 0}}),
    ] {
        let res = qr(bad.clone()).await.unwrap();
        assert_eq!(res.status(), 400, "{bad}");
    }
    assert_eq!(
        app.emulator().stats().await["getwxacodeunlimit_calls"],
        calls,
        "invalid requests must not reach WeChat"
    );
    let res = app
        .client
        .post(app.url("/wechat_mini/unlimited_qrcode"))
        .json(&json!({"scene": "a"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 401, "no_authorization").await;
    // WeChat's own refusal maps to a clear 400.
    app.emulator().fail_next("getwxacodeunlimit", 41030).await;
    expect_error(
        qr(json!({"scene": "a", "page": "pages/missing/index"}))
            .await
            .unwrap(),
        400,
        "wechat_invalid_request",
    )
    .await;
}

#[tokio::test]
async fn legacy_encrypted_user_info_and_phone() {
    let app = TestApp::builder().wechat().spawn();
    let emu = app.emulator();
    let first = wechat_session(&app, "lily").await;
    let token = first["access_token"].as_str().unwrap().to_string();
    // The user set a nickname themselves; WeChat's profile must not overwrite it.
    app.client
        .put(app.url("/user"))
        .bearer_auth(&token)
        .json(&json!({"data": {"nickname": "自己的名字"}}))
        .send()
        .await
        .unwrap();
    let info = emu
        .post("/emulator/user-info", json!({"appid": APP_ID, "user": "lily", "userInfo": {"nickName": "微信昵称", "avatarUrl": "https://wx.qlogo.cn/a/0", "gender": 2}}))
        .await;
    let code = emu.login_code(APP_ID, "lily").await;
    let body = json!({"code": code, "encryptedData": info["encryptedData"], "iv": info["iv"], "rawData": info["rawData"], "signature": info["signature"]});
    let res = app
        .client
        .post(app.url("/wechat_mini/login"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let session = expect_json(res, 200).await;
    assert_eq!(session["user"]["user_metadata"]["nickname"], "自己的名字");
    assert_eq!(
        session["user"]["user_metadata"]["avatar"],
        "https://wx.qlogo.cn/a/0"
    );
    assert_eq!(session["user"]["user_metadata"]["gender"], json!(2));

    // A tampered signature is refused and writes nothing.
    let before = app.db.snapshot();
    let code = emu.login_code(APP_ID, "lily").await;
    let tampered = json!({"code": code, "encryptedData": info["encryptedData"], "iv": info["iv"], "rawData": info["rawData"], "signature": "0".repeat(40)});
    expect_error(
        app.client
            .post(app.url("/wechat_mini/login"))
            .json(&tampered)
            .send()
            .await
            .unwrap(),
        400,
        "wechat_decrypt_failed",
    )
    .await;
    assert_eq!(app.db.snapshot(), before);

    // Legacy getPhoneNumber: {encryptedData, iv} decrypted with the stored session_key.
    let phone = emu
        .post(
            "/emulator/phone-encrypted",
            json!({"appid": APP_ID, "user": "lily", "phone": "+8613600001111"}),
        )
        .await;
    let res = app
        .client
        .post(app.url("/wechat_mini/bind_phone"))
        .bearer_auth(session["access_token"].as_str().unwrap())
        .json(&json!({"encryptedData": phone["encryptedData"], "iv": phone["iv"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(res, 200).await["phone"], "8613600001111");
    assert_no_session_key(&app, &[&first, &session]);
}

/// The legacy `wx.getUserInfo` profile gets the limits of every other metadata source: a NUL
/// or an oversized nickname is refused (400, nothing written), and the account stays usable.
#[tokio::test]
async fn legacy_user_info_is_validated_like_any_metadata() {
    let app = TestApp::builder().wechat().spawn();
    let emu = app.emulator();
    let first = wechat_session(&app, "mallory").await;
    let token = first["access_token"].as_str().unwrap().to_string();
    for nickname in ["a\u{0}b".to_string(), "n".repeat(200 * 1024)] {
        let info = emu
            .post(
                "/emulator/user-info",
                json!({"appid": APP_ID, "user": "mallory", "userInfo": {"nickName": nickname}}),
            )
            .await;
        let code = emu.login_code(APP_ID, "mallory").await;
        let before = app.db.snapshot();
        let body = json!({"code": code, "encryptedData": info["encryptedData"], "iv": info["iv"], "rawData": info["rawData"], "signature": info["signature"]});
        let res = app
            .client
            .post(app.url("/wechat_mini/login"))
            .json(&body)
            .send()
            .await
            .unwrap();
        expect_error(res, 400, "validation_failed").await;
        assert_eq!(app.db.snapshot(), before);
    }
    let user = expect_json(app.get_auth("/user", &token).await, 200).await;
    assert!(user["user_metadata"].get("nickname").is_none());
}
