//! The `weauth-emulator` binary itself: the zero-config development app, configured apps, and
//! what it logs.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

fn emulator(args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_weauth-emulator"));
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

async fn expect_json(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status, body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// A `wx.login` code for `user`, exchanged through `/sns/jscode2session`.
async fn login(base: &str, appid: &str, secret: &str, user: &str) -> Value {
    let client = reqwest::Client::new();
    let code = expect_json(
        client
            .post(format!("{base}/emulator/login-code"))
            .json(&json!({"appid": appid, "user": user}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    expect_json(
        client
            .get(format!("{base}/sns/jscode2session"))
            .query(&[
                ("appid", appid),
                ("secret", secret),
                ("js_code", code["code"].as_str().unwrap()),
                ("grant_type", "authorization_code"),
            ])
            .send()
            .await
            .unwrap(),
        200,
    )
    .await
}

#[tokio::test]
async fn weauth_emulator_serves_the_dev_app() {
    let port = free_port().to_string();
    let mut child = emulator(&["--port", &port], &[])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/emulator/stats"), &mut child).await;
    let session = login(&base, "wx0000000000000dev", "weauth-dev-secret", "alice").await;
    assert_eq!(session["openid"].as_str().unwrap().len(), 28);
    sigterm(&child);
    child.wait().unwrap();
}

#[tokio::test]
async fn configured_apps_replace_the_dev_app_and_their_secrets_are_not_logged() {
    let port = free_port().to_string();
    let log_path = std::env::temp_dir().join(format!(
        "weauth-emulator-log-{}-{port}.txt",
        std::process::id()
    ));
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = emulator(
        &[],
        &[
            ("WEAUTH_EMULATOR_PORT", &port),
            ("WEAUTH_EMULATOR_HOST", "127.0.0.1"),
            ("GOTRUE_LOG_LEVEL", "debug"),
            ("GOTRUE_EXTERNAL_WECHAT_APP_ID", "wxcli0000000000001"),
            ("GOTRUE_EXTERNAL_WECHAT_SECRET", "cli-secret-one"),
            (
                "GOTRUE_EXTERNAL_WECHAT_APPS",
                "wxcli0000000000002:cli-secret-two",
            ),
        ],
    )
    .stdout(Stdio::from(log.try_clone().unwrap()))
    .stderr(Stdio::from(log))
    .spawn()
    .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_until_up(&format!("{base}/emulator/stats"), &mut child).await;
    let session = login(&base, "wxcli0000000000002", "cli-secret-two", "bob").await;
    assert_eq!(session["openid"].as_str().unwrap().len(), 28);
    let res = reqwest::Client::new()
        .post(format!("{base}/emulator/login-code"))
        .json(&json!({"appid": "wx0000000000000dev", "user": "alice"}))
        .send()
        .await
        .unwrap();
    let refused = expect_json(res, 400).await;
    assert!(
        refused["error"].as_str().unwrap().contains("unknown appid"),
        "{refused}"
    );
    sigterm(&child);
    child.wait().unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    assert!(log.contains("wxcli0000000000001"), "{log}");
    assert!(log.contains("wxcli0000000000002"), "{log}");
    for secret in ["cli-secret-one", "cli-secret-two", "weauth-dev-secret"] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

#[test]
fn half_configured_app_is_a_configuration_error() {
    let out = emulator(&[], &[("GOTRUE_EXTERNAL_WECHAT_APP_ID", "wx1")])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("GOTRUE_EXTERNAL_WECHAT_SECRET"));
}
