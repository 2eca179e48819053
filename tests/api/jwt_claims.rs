//! Time claims that are not JSON numbers, and tokens without `exp`: refused with 403 `bad_jwt`
//! wherever a token is accepted (a user's `/user`, the service role's `/admin/*`).

use serde_json::{json, Value};

use crate::support::{expect_error, expect_json, TestApp};

#[tokio::test]
async fn non_numeric_or_missing_time_claims_are_refused() {
    let app = TestApp::spawn();
    let session = app.signup_email("claims@example.com", "secret123").await;
    let user_id = session["user"]["id"].as_str().unwrap().to_string();
    let now = chrono::Utc::now().timestamp();
    let user = |extra: Value| {
        let mut c = json!({"sub": user_id, "aud": "authenticated", "role": "authenticated", "iat": now, "exp": now + 600});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        app.sign(c)
    };
    let an_hour_ago = (now - 3600).to_string();
    let refused = [
        user(json!({"exp": an_hour_ago})),
        user(json!({"exp": (now + 600).to_string()})),
        user(json!({"exp": null})),
        user(json!({"exp": true})),
        user(json!({"exp": [now + 600]})),
        user(json!({"nbf": (now + 3600).to_string()})),
        user(json!({"iat": "yesterday"})),
        user(json!({"exp": (now - 10) as f64 + 0.5})),
        user(json!({"nbf": (now + 3600) as f64 + 0.5})),
    ];
    for token in &refused {
        expect_error(app.get_auth("/user", token).await, 403, "bad_jwt").await;
    }
    // Fractional numeric dates are numbers, as in golang-jwt.
    expect_json(
        app.get_auth("/user", &user(json!({"exp": (now + 600) as f64 + 0.5})))
            .await,
        200,
    )
    .await;

    let service = |extra: Value| {
        let mut c =
            json!({"iss": "supabase-demo", "role": "service_role", "iat": now, "exp": now + 600});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        app.sign(c)
    };
    for token in [
        service(json!({"exp": an_hour_ago})),
        service(json!({"nbf": "later"})),
        service(json!({"iat": {"t": now}})),
    ] {
        expect_error(app.get_auth("/admin/users", &token).await, 403, "bad_jwt").await;
    }
    // A key that names no user may omit `exp` (documented); with one, it is checked.
    expect_json(
        app.get_auth("/admin/users", &service(json!({"exp": null})))
            .await,
        200,
    )
    .await;
    expect_error(
        app.get_auth("/admin/users", &service(json!({"exp": now - 10})))
            .await,
        403,
        "bad_jwt",
    )
    .await;
}
