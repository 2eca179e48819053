use serde_json::json;

use crate::support::{expect_json, TestApp};

#[tokio::test]
async fn health_and_settings_at_root_and_under_auth_v1() {
    let app = TestApp::spawn();
    for prefix in ["", "/auth/v1"] {
        let health = expect_json(
            app.client
                .get(app.url(&format!("{prefix}/health")))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(health["name"], "GoTrue");
        assert!(health["version"].is_string() && health["description"].is_string());

        let settings = expect_json(
            app.client
                .get(app.url(&format!("{prefix}/settings")))
                .send()
                .await
                .unwrap(),
            200,
        )
        .await;
        assert_eq!(settings["external"]["email"], json!(true));
        assert_eq!(settings["external"]["phone"], json!(true));
        assert_eq!(settings["external"]["wechat"], json!(false));
        assert_eq!(settings["disable_signup"], json!(false));
        assert_eq!(settings["mailer_autoconfirm"], json!(true));
        assert_eq!(settings["phone_autoconfirm"], json!(true));
        assert_eq!(settings["sms_provider"], json!(""));
        for key in [
            "saml_enabled",
            "saml_private_key_next_configured",
            "passkeys_enabled",
        ] {
            assert_eq!(settings[key], json!(false), "{key}");
        }
        for key in ["wechat_qr", "wechat_mp", "wechat_app"] {
            assert_eq!(settings["external"][key], json!(false), "{key}");
        }
        assert_eq!(settings["external"].as_object().unwrap().len(), 30);
    }
}

#[tokio::test]
async fn settings_reflect_configuration() {
    let app = TestApp::builder()
        .env("GOTRUE_DISABLE_SIGNUP", "true")
        .env("GOTRUE_MAILER_AUTOCONFIRM", "false")
        .env("GOTRUE_EXTERNAL_PHONE_ENABLED", "false")
        .spawn();
    let settings = expect_json(
        app.client.get(app.url("/settings")).send().await.unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["disable_signup"], json!(true));
    assert_eq!(settings["mailer_autoconfirm"], json!(false));
    assert_eq!(settings["external"]["phone"], json!(false));
}

/// An idle keep-alive connection outlives actix's 5-second default, and the timeout is
/// advertised (`Keep-Alive: timeout=…`), so a client reusing sockets (Node's agent) does not
/// send into a connection the server is closing.
#[tokio::test]
async fn idle_keep_alive_connections_stay_open_and_the_timeout_is_advertised() {
    use std::io::{Read, Write};
    let app = TestApp::builder()
        .env("WEAUTH_KEEP_ALIVE_SECS", "20")
        .spawn();
    let addr = app.url.trim_start_matches("http://").to_string();
    let response = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
        let read_one = |conn: &mut std::net::TcpStream| {
            let mut buf = vec![0u8; 4096];
            let n = conn.read(&mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).to_string()
        };
        conn.write_all(request).unwrap();
        let first = read_one(&mut conn);
        std::thread::sleep(std::time::Duration::from_secs(7));
        let _ = conn.write_all(request);
        (first, read_one(&mut conn))
    })
    .await
    .unwrap();
    let (first, second) = response;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        first
            .to_ascii_lowercase()
            .contains("keep-alive: timeout=20"),
        "{first}"
    );
    assert!(
        second.starts_with("HTTP/1.1 200"),
        "the idle connection was closed: {second:?}"
    );
}
