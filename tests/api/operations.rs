//! Operations: the readiness check (`GET /health/ready`, which touches the database, while
//! `/health` keeps GoTrue's shape) and the opt-in Prometheus metrics on their own port.

use std::net::TcpListener;

use serde_json::json;

use crate::support::{expect_error, expect_json, TestApp};

#[tokio::test]
async fn readiness_touches_the_database() {
    let app = TestApp::spawn();
    for prefix in ["", "/auth/v1"] {
        let res = app
            .client
            .get(app.url(&format!("{prefix}/health/ready")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            expect_json(res, 200).await,
            json!({"status": "ok", "database": "ok"})
        );
    }
    // The same instance with the database gone: /health still answers, /health/ready is 503.
    let (down, _server) = app.second_instance_with(&[
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/nowhere?sslmode=disable",
        ),
        ("WEAUTH_DB_CONNECT_TIMEOUT_MS", "500"),
    ]);
    let res = app
        .client
        .get(format!("{down}/health"))
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(res, 200).await["name"], "GoTrue");
    let res = app
        .client
        .get(format!("{down}/health/ready"))
        .send()
        .await
        .unwrap();
    expect_error(res, 503, "unexpected_failure").await;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn metrics_are_opt_in_on_their_own_port_without_user_data() {
    let port = free_port().to_string();
    let app = TestApp::builder()
        .wechat()
        .env("GOTRUE_METRICS_ENABLED", "true")
        .env("OTEL_EXPORTER_PROMETHEUS_HOST", "127.0.0.1")
        .env("OTEL_EXPORTER_PROMETHEUS_PORT", &port)
        .env("GOTRUE_RATE_LIMIT_OTP", "1")
        .spawn();
    let session = app
        .signup_email("metrics.user@example.com", "secret123")
        .await;
    let id = session["user"]["id"].as_str().unwrap().to_string();
    expect_error(
        app.post(
            "/signup",
            json!({"email": "again@example.com", "password": "secret123"}),
        )
        .await,
        429,
        "over_request_rate_limit",
    )
    .await;
    let admin = app.service_role_key();
    expect_json(
        app.get_auth(&format!("/auth/v1/admin/users/{id}"), &admin)
            .await,
        200,
    )
    .await;
    let code = app
        .emulator()
        .login_code(crate::support::APP_ID, "metrics")
        .await;
    let res = app
        .client
        .get(app.url(&format!("/auth/v1/wechat_mini/login?code={code}")))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    app.client
        .get(app.url(&format!("/no/such/{id}")))
        .send()
        .await
        .unwrap();

    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for expected in [
        r#"weauth_http_requests_total{method="POST",route="/auth/v1/signup",status="200"}"#,
        r#"weauth_http_requests_total{method="POST",route="/signup",status="429"}"#,
        r#"weauth_http_requests_total{method="GET",route="/auth/v1/admin/users/{user_id}",status="200"}"#,
        r#"weauth_http_requests_total{method="GET",route="unmatched",status="404"}"#,
        r#"weauth_http_request_duration_seconds_bucket{method="POST",route="/auth/v1/signup",status="200",le="0.005"}"#,
        r#"weauth_wechat_calls_total{api="login",outcome="ok"}"#,
        r#"weauth_rate_limit_rejections_total{limit="GOTRUE_RATE_LIMIT_OTP"}"#,
        "weauth_db_pool_in_use ",
        "weauth_db_pool_waiting ",
        "weauth_db_pool_max 8",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    for private in [id.as_str(), "metrics.user@example.com", code.as_str()] {
        assert!(!text.contains(private), "{private} leaked into the metrics");
    }
    // The API port does not serve them.
    let res = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404);
}
