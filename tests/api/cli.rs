//! The `weauth` binary itself: `migrate`, `serve` (with graceful SIGTERM) and start-up
//! configuration errors. (The `weauth-emulator` binary is tested in crates/emulator/tests/cli.rs.)

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{expect_json, TestDb, JWT_SECRET};

fn weauth(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weauth"));
    // A clean environment in an empty directory: no developer .env, no stray GOTRUE_* values.
    cmd.args(args)
        .env_clear()
        .current_dir(std::env::temp_dir())
        .envs(env.iter().copied());
    cmd
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_until_up(url: &str, child: &mut Child) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(res) = reqwest::get(url).await {
            if res.status().is_success() || res.status().is_client_error() {
                return;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "process exited early");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} did not come up");
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn migrate_applies_the_schema_and_bad_config_fails_clearly() {
    let db = TestDb::empty();
    let out = weauth(&["migrate"], &[("DATABASE_URL", &db.url)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(db.count("auth.users"), 0);
    assert_eq!(db.count("weauth.wechat_access_tokens"), 0);

    let out = weauth(&["serve"], &[("WEAUTH_ENV", "production")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GOTRUE_JWT_SECRET"), "{stderr}");

    let out = weauth(&["serve"], &[("GOTRUE_EXTERNAL_WECHAT_APP_ID", "wx1")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GOTRUE_EXTERNAL_WECHAT_SECRET"));
}

#[tokio::test]
async fn serve_answers_and_drains_on_sigterm() {
    let db = TestDb::empty();
    let port = free_port().to_string();
    let mut child = weauth(
        &["serve"],
        &[
            ("DATABASE_URL", &db.url),
            ("GOTRUE_JWT_SECRET", JWT_SECRET),
            ("GOTRUE_API_PORT", &port),
            ("GOTRUE_API_HOST", "127.0.0.1"),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/health"), &mut child).await;
    let res = reqwest::Client::new()
        .post(format!("{base}/auth/v1/signup"))
        .json(&json!({"email": "bin@example.com", "password": "secret123"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(res, 200).await["user"]["email"],
        "bin@example.com"
    );
    sigterm(&child);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "serve did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
}

/// A full password + refresh + WeChat scenario with debug logging: no secret reaches the log.
#[tokio::test]
async fn debug_logs_contain_no_secrets() {
    use crate::support::{Emulator, APP_ID, APP_SECRET};
    let db = TestDb::migrated();
    let emulator = Emulator::start();
    let port = free_port().to_string();
    let log_path = std::env::temp_dir().join(format!("weauth-log-{}.txt", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    // A signing key too: its private part must never reach the log.
    let signing_key = weauth::config::generate_key(weauth::config::KeyAlgorithm::Es256).unwrap();
    let jwt_keys = json!([signing_key]).to_string();
    let mut child = weauth(
        &["serve"],
        &[
            ("DATABASE_URL", &db.url),
            ("GOTRUE_JWT_SECRET", JWT_SECRET),
            ("GOTRUE_JWT_KEYS", &jwt_keys),
            ("GOTRUE_API_PORT", &port),
            ("GOTRUE_LOG_LEVEL", "debug"),
            ("WEAUTH_WECHAT_TIMEOUT_MS", "600"),
            ("GOTRUE_EXTERNAL_WECHAT_APP_ID", APP_ID),
            ("GOTRUE_EXTERNAL_WECHAT_SECRET", APP_SECRET),
            ("GOTRUE_EXTERNAL_WECHAT_API_URL", &emulator.url),
            ("WEAUTH_ARGON2_MEMORY_KIB", "1024"),
        ],
    )
    .stdout(Stdio::from(log.try_clone().unwrap()))
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/health"), &mut child).await;
    let client = reqwest::Client::new();
    let mut secrets: Vec<String> = vec![
        APP_SECRET.into(),
        JWT_SECRET.into(),
        "first-Passw0rd".into(),
        "second-Passw0rd".into(),
        signing_key["d"].as_str().unwrap().into(),
    ];
    let jwks = expect_json(
        client
            .get(format!("{base}/.well-known/jwks.json"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);

    let post = |path: &str, body: serde_json::Value| {
        client.post(format!("{base}{path}")).json(&body).send()
    };
    let signup = expect_json(
        post(
            "/auth/v1/signup",
            json!({"email": "log@example.com", "password": "first-Passw0rd"}),
        )
        .await
        .unwrap(),
        200,
    )
    .await;
    let login = expect_json(
        post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "log@example.com", "password": "first-Passw0rd"}),
        )
        .await
        .unwrap(),
        200,
    )
    .await;
    let refreshed = expect_json(
        post(
            "/auth/v1/token?grant_type=refresh_token",
            json!({"refresh_token": login["refresh_token"]}),
        )
        .await
        .unwrap(),
        200,
    )
    .await;
    // A failed login and a replayed token log their rejection, still without secrets.
    post(
        "/auth/v1/token?grant_type=password",
        json!({"email": "log@example.com", "password": "wrong-Passw0rd"}),
    )
    .await
    .unwrap();
    secrets.push("wrong-Passw0rd".into());
    let code = emulator.login_code(APP_ID, "logger").await;
    let wechat = expect_json(
        client
            .get(format!("{base}/auth/v1/wechat_mini/login?code={code}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let phone_code = emulator.phone_code(APP_ID, "+8613800001234").await;
    let res = client
        .get(format!(
            "{base}/auth/v1/wechat_mini/bind_phone?code={phone_code}"
        ))
        .bearer_auth(wechat["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    let res = client
        .put(format!("{base}/auth/v1/user"))
        .bearer_auth(refreshed["access_token"].as_str().unwrap())
        .json(&json!({"password": "second-Passw0rd"}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    // WeChat timing out: transport errors are logged, and their URLs carry the app secret
    // (jscode2session) and the access token (getuserphonenumber).
    let slow_code = emulator.login_code(APP_ID, "logger").await;
    emulator
        .post(
            "/emulator/fail-next",
            json!({"api": "jscode2session", "delay_ms": 1500}),
        )
        .await;
    let res = client
        .get(format!("{base}/auth/v1/wechat_mini/login?code={slow_code}"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    let slow_phone = emulator.phone_code(APP_ID, "+8613800005678").await;
    emulator
        .post(
            "/emulator/fail-next",
            json!({"api": "getuserphonenumber", "delay_ms": 1500, "times": 2}),
        )
        .await;
    let res = client
        .get(format!(
            "{base}/auth/v1/wechat_mini/bind_phone?code={slow_phone}"
        ))
        .bearer_auth(wechat["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    secrets.push(slow_code);
    secrets.push(slow_phone);
    for body in [&signup, &login, &refreshed, &wechat] {
        secrets.push(body["access_token"].as_str().unwrap().to_string());
        secrets.push(body["refresh_token"].as_str().unwrap().to_string());
    }
    secrets.push(code);
    secrets.push(phone_code);
    #[derive(diesel::QueryableByName)]
    struct Secret {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    use diesel::RunQueryDsl;
    let stored: Vec<Secret> = diesel::sql_query(
        "SELECT session_key AS value FROM weauth.wechat_session_keys
         UNION ALL SELECT encrypted_password FROM auth.users WHERE encrypted_password <> ''
         UNION ALL SELECT access_token FROM weauth.wechat_access_tokens WHERE access_token IS NOT NULL",
    )
    .load(&mut db.conn())
    .unwrap();
    assert!(
        stored.len() >= 3,
        "session key, password hash and WeChat access token expected"
    );
    secrets.extend(stored.into_iter().map(|s| s.value));

    sigterm(&child);
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        text.contains("request finished") && text.contains("DEBUG"),
        "debug logging was on:\n{text}"
    );
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "a secret ({} chars) appears in the log:\n{text}",
            secret.len()
        );
    }
}

/// SIGTERM while a slow WeChat login is in flight: the login completes, then the process exits.
#[tokio::test]
async fn sigterm_drains_in_flight_requests() {
    use crate::support::{Emulator, APP_ID, APP_SECRET};
    let db = TestDb::migrated();
    let emulator = Emulator::start();
    let port = free_port().to_string();
    let mut child = weauth(
        &["serve"],
        &[
            ("DATABASE_URL", &db.url),
            ("GOTRUE_JWT_SECRET", JWT_SECRET),
            ("GOTRUE_API_PORT", &port),
            ("GOTRUE_EXTERNAL_WECHAT_APP_ID", APP_ID),
            ("GOTRUE_EXTERNAL_WECHAT_SECRET", APP_SECRET),
            ("GOTRUE_EXTERNAL_WECHAT_API_URL", &emulator.url),
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/health"), &mut child).await;
    let code = emulator.login_code(APP_ID, "slow").await;
    emulator
        .post(
            "/emulator/fail-next",
            json!({"api": "jscode2session", "delay_ms": 1500}),
        )
        .await;
    let login = tokio::spawn(async move {
        reqwest::get(format!("{base}/auth/v1/wechat_mini/login?code={code}")).await
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    sigterm(&child);
    let res = login.await.unwrap().unwrap();
    assert_eq!(res.status(), 200, "the in-flight login must complete");
    assert!(res.json::<serde_json::Value>().await.unwrap()["access_token"].is_string());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    assert_eq!(db.count("auth.users"), 1);
}

/// Client errors at trace level: the log names the error code, never the values the client
/// sent (serde quotes them), stays small however large the bodies, and has no colour codes
/// when written to a file.
#[tokio::test]
async fn client_errors_log_codes_not_values_and_stay_small() {
    let db = TestDb::migrated();
    let port = free_port().to_string();
    let log_path = std::env::temp_dir().join(format!("weauth-log-{}.txt", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = weauth(
        &["serve"],
        &[
            ("DATABASE_URL", &db.url),
            ("GOTRUE_JWT_SECRET", JWT_SECRET),
            ("GOTRUE_API_PORT", &port),
            ("GOTRUE_LOG_LEVEL", "trace"),
            ("GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED", "true"),
            ("GOTRUE_RATE_LIMIT_OTP", "0"),
        ],
    )
    .stdout(Stdio::from(log.try_clone().unwrap()))
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/health"), &mut child).await;
    let client = reqwest::Client::new();
    let send = |path: &str, body: String| {
        client
            .post(format!("{base}{path}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let res = send(
        "/auth/v1/token?grant_type=password",
        r#"{"email":"a@b.co","password":13572468024}"#.into(),
    )
    .await
    .unwrap();
    let body = expect_json(res, 400).await;
    assert_eq!(body["error_code"], "bad_json", "{body}");
    assert!(
        !body.to_string().contains("13572468024"),
        "the value is echoed: {body}"
    );
    let res = send(
        "/auth/v1/signup",
        r#"{"email":"leaky-value-7f3a@example.com","password":"Passw0rd-leak-7f3a","data":[1]}"#
            .into(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 400);
    // Forty anonymous sign-ups, each with a megabyte string where an object belongs.
    let big = format!("\"{}\"", "big-value-7f3a ".repeat(1_000_000 / 15));
    for _ in 0..40 {
        let res = send("/auth/v1/signup", format!(r#"{{"data":{big}}}"#))
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 400, "{}", &text[..text.len().min(300)]);
        assert!(text.len() < 1000, "the error body echoes the value");
    }

    sigterm(&child);
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        text.contains("TRACE") && text.contains("bad_json"),
        "trace logging was on and the rejections were logged:\n{}",
        &text[..text.len().min(5000)]
    );
    for value in [
        "13572468024",
        "leaky-value-7f3a",
        "Passw0rd-leak-7f3a",
        "big-value-7f3a",
    ] {
        assert!(
            !text.contains(value),
            "a request value ({value}) appears in the log:\n{}",
            &text[..text.len().min(20000)]
        );
    }
    // Trace level logs a few kilobytes per request (the I/O crates' events); a request's
    // body must not add to that.
    assert!(
        text.len() < 42 * 16_384,
        "42 requests wrote {} bytes of log",
        text.len()
    );
    assert!(!text.contains('\u{1b}'), "colour codes in a log file");
}

/// `WEAUTH_LOG_FORMAT=json` to a file: every line is one JSON object, without colour codes,
/// even when an event carried more than a line's worth of text.
#[tokio::test]
async fn json_logs_are_one_clean_object_per_line() {
    let db = TestDb::migrated();
    let port = free_port().to_string();
    let log_path = std::env::temp_dir().join(format!("weauth-log-{}.txt", uuid::Uuid::new_v4()));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = weauth(
        &["serve"],
        &[
            ("DATABASE_URL", &db.url),
            ("GOTRUE_JWT_SECRET", JWT_SECRET),
            ("GOTRUE_API_PORT", &port),
            ("GOTRUE_LOG_LEVEL", "debug"),
            ("WEAUTH_LOG_FORMAT", "json"),
        ],
    )
    .stdout(Stdio::from(log.try_clone().unwrap()))
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/health"), &mut child).await;
    // A path far longer than a log line: it is recorded in the request span.
    let long_path = format!("/auth/v1/{}", "p".repeat(6000));
    let res = reqwest::get(format!("{base}{long_path}")).await.unwrap();
    assert_eq!(res.status(), 404);
    sigterm(&child);
    child.wait().unwrap();
    let text = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a JSON log:\n{text}"
    );
    let mut requests = 0;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {line}"));
        assert!(value.is_object(), "{line}");
        assert!(line.len() <= 4096, "a {} byte line", line.len());
        if line.contains("request finished") {
            requests += 1;
        }
    }
    assert!(requests >= 2, "the requests were logged:\n{text}");
}

#[test]
fn keys_generate_prints_what_gotrue_jwt_keys_takes_and_token_signs_with_it() {
    for alg in ["ES256", "RS256"] {
        let out = weauth(&["keys", "generate", "--alg", alg], &[])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let keys = weauth::config::parse_keys(text.trim()).expect("GOTRUE_JWT_KEYS accepts it");
        assert!(keys.len() == 1 && keys[0].signs && keys[0].alg.name() == alg);

        // `keys token` signs an API key with it.
        let out = weauth(
            &["keys", "token", "--role", "anon"],
            &[
                ("GOTRUE_JWT_KEYS", text.trim()),
                ("GOTRUE_JWT_SECRET", JWT_SECRET),
            ],
        )
        .output()
        .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let token = String::from_utf8(out.stdout).unwrap();
        let header = jsonwebtoken::decode_header(token.trim()).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys[0].kid.as_str()));
        let jwks: jsonwebtoken::jwk::JwkSet =
            serde_json::from_value(json!({"keys": [keys[0].public_jwk().unwrap()]})).unwrap();
        let key = jsonwebtoken::DecodingKey::from_jwk(&jwks.keys[0]).unwrap();
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            token.trim(),
            &key,
            &jsonwebtoken::Validation::new(header.alg),
        )
        .unwrap()
        .claims;
        assert_eq!(claims["role"], "anon");
    }
    let out = weauth(&["keys", "generate", "--alg", "HS512"], &[])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn a_bad_gotrue_jwt_keys_stops_the_start_without_printing_the_key() {
    let db = TestDb::empty();
    let key = r#"[{"kty":"EC","crv":"P-256","kid":"k1","key_ops":["sign"],"x":"AAAA","y":"AAAA","d":"c2VjcmV0LXByaXZhdGUtcGFydA"}]"#;
    let out = weauth(
        &["serve"],
        &[("DATABASE_URL", &db.url), ("GOTRUE_JWT_KEYS", key)],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("GOTRUE_JWT_KEYS"), "{stderr}");
    assert!(!stderr.contains("c2VjcmV0"), "{stderr}");
}
