//! CORS as GoTrue answers it (rs/cors in `internal/api/api.go`): any origin, the headers
//! supabase-js sends, GoTrue's exposed headers plus `x-sb-error-code`, and
//! `GOTRUE_CORS_ALLOWED_HEADERS` for more.

use reqwest::Method;

use crate::support::TestApp;

const ORIGIN: &str = "http://app.example.test:5173";

fn header(res: &reqwest::Response, name: &str) -> String {
    res.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default()
}

async fn preflight(app: &TestApp, path: &str, method: &str, headers: &str) -> reqwest::Response {
    app.client
        .request(Method::OPTIONS, app.url(path))
        .header("origin", ORIGIN)
        .header("access-control-request-method", method)
        .header("access-control-request-headers", headers)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn preflights_and_responses_carry_gotrue_s_cors_headers() {
    let app = TestApp::builder()
        .env("GOTRUE_CORS_ALLOWED_HEADERS", "X-Custom-One, x-custom-two")
        .spawn();
    let sdk_headers = "apikey, authorization, x-client-info, x-supabase-api-version, content-type";
    for (path, method) in [
        ("/auth/v1/signup", "POST"),
        ("/auth/v1/user", "PUT"),
        ("/auth/v1/token", "POST"),
        (
            "/auth/v1/admin/users/00000000-0000-0000-0000-000000000000",
            "DELETE",
        ),
    ] {
        let res = preflight(&app, path, method, sdk_headers).await;
        assert!(res.status().is_success(), "{path}: {}", res.status());
        assert_eq!(header(&res, "access-control-allow-origin"), ORIGIN);
        assert_eq!(header(&res, "access-control-allow-credentials"), "true");
        let allowed = header(&res, "access-control-allow-headers");
        for h in [
            "apikey",
            "authorization",
            "x-client-info",
            "x-supabase-api-version",
            "content-type",
        ] {
            assert!(allowed.contains(h), "{h} not in {allowed}");
        }
        assert!(header(&res, "access-control-allow-methods").contains(&method.to_ascii_lowercase()));
    }
    // GOTRUE_CORS_ALLOWED_HEADERS adds headers; others are refused (no allow-origin).
    let res = preflight(&app, "/auth/v1/user", "GET", "x-custom-one, X-Custom-Two").await;
    assert_eq!(header(&res, "access-control-allow-origin"), ORIGIN);
    let res = preflight(&app, "/auth/v1/user", "GET", "x-not-allowed").await;
    assert_eq!(header(&res, "access-control-allow-origin"), "");

    // Actual requests: successes and GoTrue errors alike, with the exposed headers.
    for (path, status) in [
        ("/auth/v1/settings", 200),
        ("/auth/v1/user", 401),
        ("/nowhere", 404),
    ] {
        let res = app
            .client
            .get(app.url(path))
            .header("origin", ORIGIN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), status, "{path}");
        assert_eq!(
            header(&res, "access-control-allow-origin"),
            ORIGIN,
            "{path}"
        );
        let exposed = header(&res, "access-control-expose-headers");
        for h in [
            "x-sb-error-code",
            "x-supabase-api-version",
            "x-total-count",
            "link",
        ] {
            assert!(exposed.contains(h), "{h} not in {exposed}");
        }
    }
    // Without an Origin (servers, mini-programs) nothing changes.
    let res = app.client.get(app.url("/settings")).send().await.unwrap();
    assert_eq!(header(&res, "access-control-allow-origin"), "");
}
