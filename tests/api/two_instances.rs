//! Two weauth instances on one database, as behind a load balancer: PostgreSQL is the one
//! shared state, so what one instance does the other sees at once; rate limits are shared
//! only through Redis (`WEAUTH_RATE_LIMIT_REDIS_URL`).

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{expect_error, expect_json, TestApp, TestDb, APP_ID};

const REDIS_URL: &str = "redis://127.0.0.1:6379";

async fn get(client: &reqwest::Client, url: String, token: Option<&str>) -> reqwest::Response {
    let mut req = client.get(url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn concurrent_first_wechat_logins_through_both_make_one_user() {
    let app = TestApp::builder().wechat().spawn();
    let (second, _server) = app.second_instance();
    let emu = app.emulator();
    for round in 0..4 {
        let person = format!("twin{round}");
        let codes = [
            emu.login_code(APP_ID, &person).await,
            emu.login_code(APP_ID, &person).await,
        ];
        let urls = [app.url(""), second.clone()];
        let calls = codes.iter().zip(urls).map(|(code, base)| {
            get(
                &app.client,
                format!("{base}/auth/v1/wechat_mini/login?code={code}"),
                None,
            )
        });
        let mut ids = Vec::new();
        for res in futures_util::future::join_all(calls).await {
            let body = expect_json(res, 200).await;
            ids.push(body["user"]["id"].as_str().unwrap().to_string());
        }
        assert_eq!(ids[0], ids[1], "one person, one user");
    }
    assert_eq!(app.db.count("auth.users"), 4);
    assert_eq!(app.db.count("auth.identities"), 4);
}

#[tokio::test]
async fn one_refresh_token_on_both_at_once_leaves_one_live_chain() {
    let app = TestApp::spawn();
    let (second, _server) = app.second_instance();
    for round in 0..4 {
        let session = app
            .signup_email(&format!("chain{round}@example.com"), "secret123")
            .await;
        let refresh = session["refresh_token"].as_str().unwrap().to_string();
        let calls = [app.url(""), second.clone()].map(|base| {
            app.client
                .post(format!("{base}/token?grant_type=refresh_token"))
                .json(&json!({ "refresh_token": refresh }))
                .send()
        });
        let mut tokens = Vec::new();
        for res in futures_util::future::join_all(calls).await {
            let body = expect_json(res.unwrap(), 200).await;
            tokens.push(body["refresh_token"].as_str().unwrap().to_string());
        }
        assert_eq!(
            tokens[0], tokens[1],
            "both got the session's one current token"
        );
        assert_ne!(tokens[0], refresh);
        let session_id = app.db.scalar(&format!(
            "SELECT count(*) FROM auth.refresh_tokens WHERE token = '{}'",
            tokens[0]
        ));
        assert_eq!(session_id, 1);
        assert_eq!(
            app.db.scalar(&format!(
                "SELECT count(*) FROM auth.refresh_tokens r JOIN auth.refresh_tokens o \
                 ON o.session_id = r.session_id WHERE o.token = '{refresh}' AND NOT r.revoked"
            )),
            1,
            "exactly one live token in the chain"
        );
    }
}

#[tokio::test]
async fn logout_on_one_instance_is_seen_by_the_other_at_once() {
    let app = TestApp::spawn();
    let (second, _server) = app.second_instance();
    let session = app.signup_email("leave@example.com", "secret123").await;
    let token = session["access_token"].as_str().unwrap();
    let refresh = session["refresh_token"].as_str().unwrap();
    expect_json(
        get(&app.client, format!("{second}/user"), Some(token)).await,
        200,
    )
    .await;
    let res = app
        .client
        .post(app.url("/logout"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    expect_error(
        get(&app.client, format!("{second}/user"), Some(token)).await,
        403,
        "session_not_found",
    )
    .await;
    let res = app
        .client
        .post(format!("{second}/token?grant_type=refresh_token"))
        .json(&json!({ "refresh_token": refresh }))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_client_error(), "{}", res.status());
}

#[tokio::test]
async fn the_wechat_access_token_is_fetched_once_for_both() {
    let app = TestApp::builder().wechat().spawn();
    let (second, _server) = app.second_instance();
    let emu = app.emulator();
    let mut tokens = Vec::new();
    for user in ["p1", "p2", "p3", "p4"] {
        let code = emu.login_code(APP_ID, user).await;
        let res = get(
            &app.client,
            app.url(&format!("/wechat_mini/login?code={code}")),
            None,
        )
        .await;
        tokens.push(
            expect_json(res, 200).await["access_token"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    // Both instances need the token at the same moment, with none cached anywhere.
    let mut calls = Vec::new();
    for (i, token) in tokens.iter().enumerate() {
        let base = if i % 2 == 0 {
            app.url("")
        } else {
            second.clone()
        };
        let code = emu.phone_code(APP_ID, &format!("+8613700000{i:03}")).await;
        calls.push(get(
            &app.client,
            format!("{base}/wechat_mini/bind_phone?code={code}"),
            Some(token),
        ));
    }
    for res in futures_util::future::join_all(calls).await {
        expect_json(res, 200).await;
    }
    assert_eq!(emu.stats().await["stable_token_calls"], json!(1));
}

#[test]
fn migrations_started_by_both_at_once_take_turns() {
    let db = TestDb::empty();
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let url = db.url.clone();
            std::thread::spawn(move || weauth::db::run_migrations(&url).map_err(|e| e.to_string()))
        })
        .collect();
    let applied: Vec<Vec<String>> = runs
        .into_iter()
        .map(|r| r.join().unwrap().expect("both runs succeed"))
        .collect();
    let total = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().is_dir())
        .count();
    // One run applied everything, the other found nothing left to do.
    let mut counts: Vec<usize> = applied.iter().map(Vec::len).collect();
    counts.sort();
    assert_eq!(counts, vec![0, total], "{applied:?}");
    assert_eq!(
        db.scalar("SELECT count(*) FROM __diesel_schema_migrations") as usize,
        total
    );
}

/// A unique key prefix per test: the tests share one Redis.
fn redis_prefix() -> String {
    format!("weauth-test:{}:", uuid::Uuid::new_v4().simple())
}

async fn signup_status(client: &reqwest::Client, base: &str, n: usize) -> u16 {
    client
        .post(format!("{base}/signup"))
        .json(&json!({"email": format!("budget{n}@example.com"), "password": "secret123"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn rate_limits_are_one_budget_across_instances_with_redis() {
    let prefix = redis_prefix();
    let app = TestApp::builder()
        .env("GOTRUE_RATE_LIMIT_OTP", "4")
        .env("WEAUTH_RATE_LIMIT_REDIS_URL", REDIS_URL)
        .env("WEAUTH_RATE_LIMIT_REDIS_PREFIX", &prefix)
        .spawn();
    let (second, _server) = app.second_instance();
    let bases = [app.url(""), second.clone()];
    // Four in all (the burst), alternating instances, then both refuse.
    for n in 0..4 {
        assert_eq!(
            signup_status(&app.client, &bases[n % 2], n).await,
            200,
            "request {n}"
        );
    }
    for (n, base) in bases.iter().enumerate() {
        let res = app
            .client
            .post(format!("{base}/signup"))
            .json(&json!({"email": format!("over{n}@example.com"), "password": "secret123"}))
            .send()
            .await
            .unwrap();
        expect_error(res, 429, "over_request_rate_limit").await;
    }
    // Other limits and other deployments (prefixes) have budgets of their own.
    let (third, _other) =
        app.second_instance_with(&[("WEAUTH_RATE_LIMIT_REDIS_PREFIX", &redis_prefix())]);
    assert_eq!(signup_status(&app.client, &third, 10).await, 200);
}

#[tokio::test]
async fn an_unreachable_redis_falls_back_to_per_instance_limits() {
    // Nothing listens on port 1: every attempt is refused at once.
    let app = TestApp::builder()
        .env("GOTRUE_RATE_LIMIT_OTP", "2")
        .env("WEAUTH_RATE_LIMIT_REDIS_URL", "redis://127.0.0.1:1")
        .env("WEAUTH_RATE_LIMIT_REDIS_PREFIX", &redis_prefix())
        .spawn();
    let base = app.url("");
    let started = Instant::now();
    for n in 0..2 {
        assert_eq!(signup_status(&app.client, &base, n).await, 200);
    }
    let res = app
        .client
        .post(app.url("/signup"))
        .json(&json!({"email": "third@example.com", "password": "secret123"}))
        .send()
        .await
        .unwrap();
    expect_error(res, 429, "over_request_rate_limit").await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}
