use serde_json::json;

use crate::signup::assert_user_shape;
use crate::support::{expect_error, expect_json, TestApp};

fn admin(app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
    app.client
        .request(method, app.url(path))
        .bearer_auth(app.service_role_key())
}

#[tokio::test]
async fn admin_routes_need_an_admin_role() {
    let app = TestApp::spawn();
    let user = app.signup_email("olga@example.com", "secret123").await;
    expect_error(
        app.client
            .get(app.url("/admin/users"))
            .send()
            .await
            .unwrap(),
        401,
        "no_authorization",
    )
    .await;
    let res = app
        .get_auth("/admin/users", user["access_token"].as_str().unwrap())
        .await;
    expect_error(res, 403, "not_admin").await;
    let anon = app.sign(
        json!({"role": "anon", "iss": "supabase-demo", "exp": chrono::Utc::now().timestamp() + 60}),
    );
    expect_error(app.get_auth("/admin/users", &anon).await, 403, "not_admin").await;
}

#[tokio::test]
async fn list_users_paginates_like_gotrue() {
    let app = TestApp::spawn();
    for i in 0..3 {
        app.signup_email(&format!("user{i}@example.com"), "secret123")
            .await;
    }
    let res = admin(
        &app,
        reqwest::Method::GET,
        "/auth/v1/admin/users?page=1&per_page=2",
    )
    .send()
    .await
    .unwrap();
    assert_eq!(res.headers().get("x-total-count").unwrap(), "3");
    let link = res
        .headers()
        .get("link")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        link,
        "</auth/v1/admin/users?page=2&per_page=2>; rel=\"next\", </auth/v1/admin/users?page=2&per_page=2>; rel=\"last\""
    );
    let body = expect_json(res, 200).await;
    assert_eq!(body["aud"], "authenticated");
    let users = body["users"].as_array().unwrap();
    assert_eq!(users.len(), 2);
    assert_eq!(users[0]["email"], "user2@example.com", "newest first");
    assert!(users[0]["identities"].is_null());
    let page2 = expect_json(
        admin(&app, reqwest::Method::GET, "/admin/users?page=2&per_page=2")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(page2["users"].as_array().unwrap().len(), 1);
    // supabase-js `auth.admin.listUsers()` without arguments sends empty values.
    let all = expect_json(
        admin(&app, reqwest::Method::GET, "/admin/users?page=&per_page=")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(all["users"].as_array().unwrap().len(), 3);
    expect_error(
        admin(&app, reqwest::Method::GET, "/admin/users?page=x")
            .send()
            .await
            .unwrap(),
        400,
        "validation_failed",
    )
    .await;
    let filtered = expect_json(
        admin(&app, reqwest::Method::GET, "/admin/users?filter=user1")
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(filtered["users"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn create_get_update_delete_users() {
    let app = TestApp::spawn();
    let created = expect_json(
        admin(&app, reqwest::Method::POST, "/admin/users")
            .json(
                &json!({"email": "pia@example.com", "password": "secret123", "email_confirm": true,
                          "user_metadata": {"nickname": "皮亚"}, "app_metadata": {"plan": "pro"}}),
            )
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_user_shape(&created);
    assert_eq!(
        created["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "plan": "pro"})
    );
    assert_eq!(created["user_metadata"]["nickname"], "皮亚");
    let id = created["id"].as_str().unwrap().to_string();
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "pia@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;

    let before = app.db.snapshot();
    expect_error(
        admin(&app, reqwest::Method::POST, "/admin/users")
            .json(&json!({"email": "PIA@example.com"}))
            .send()
            .await
            .unwrap(),
        422,
        "email_exists",
    )
    .await;
    expect_error(
        admin(&app, reqwest::Method::POST, "/admin/users")
            .json(&json!({}))
            .send()
            .await
            .unwrap(),
        400,
        "validation_failed",
    )
    .await;
    expect_error(
        admin(&app, reqwest::Method::POST, "/admin/users")
            .json(&json!({"email": "q@example.com", "password": "secret123", "password_hash": "$2a$10$x"}))
            .send()
            .await
            .unwrap(),
        400,
        "validation_failed",
    )
    .await;
    assert_eq!(app.db.snapshot(), before);

    let got = expect_json(
        admin(&app, reqwest::Method::GET, &format!("/admin/users/{id}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(got["id"], json!(id));
    expect_error(
        admin(&app, reqwest::Method::GET, "/admin/users/not-a-uuid")
            .send()
            .await
            .unwrap(),
        404,
        "validation_failed",
    )
    .await;
    let missing = uuid::Uuid::new_v4();
    expect_error(
        admin(
            &app,
            reqwest::Method::GET,
            &format!("/admin/users/{missing}"),
        )
        .send()
        .await
        .unwrap(),
        404,
        "user_not_found",
    )
    .await;

    let updated = expect_json(
        admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}"))
            .json(&json!({"user_metadata": {"nickname": null, "city": "深圳"}, "ban_duration": "24h"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(updated["user_metadata"].get("nickname").is_none());
    assert_eq!(updated["user_metadata"]["city"], "深圳");
    assert!(updated["banned_until"].is_string());
    expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"email": "pia@example.com", "password": "secret123"}),
        )
        .await,
        400,
        "user_banned",
    )
    .await;
    let unbanned = expect_json(
        admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}"))
            .json(&json!({"ban_duration": "none", "password": "changed-pass"}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(unbanned.get("banned_until").is_none());
    assert_eq!(
        app.db.count("auth.sessions"),
        0,
        "setting a password signs out every session"
    );
    expect_error(
        admin(&app, reqwest::Method::PUT, &format!("/admin/users/{id}"))
            .json(&json!({"ban_duration": "forever"}))
            .send()
            .await
            .unwrap(),
        400,
        "validation_failed",
    )
    .await;

    let deleted = expect_json(
        admin(&app, reqwest::Method::DELETE, &format!("/admin/users/{id}"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(deleted, json!({}));
    assert_eq!(app.db.count("auth.users"), 0);
    assert_eq!(app.db.count("auth.identities"), 0);
    expect_error(
        admin(&app, reqwest::Method::DELETE, &format!("/admin/users/{id}"))
            .send()
            .await
            .unwrap(),
        404,
        "user_not_found",
    )
    .await;
}

#[tokio::test]
async fn imported_bcrypt_hashes_sign_in_and_soft_delete_ends_access() {
    let app = TestApp::spawn();
    let hash = bcrypt::hash("imported-pass", 4).unwrap();
    let created = expect_json(
        admin(&app, reqwest::Method::POST, "/admin/users")
            .json(&json!({"phone": "+8613955556666", "password_hash": hash, "phone_confirm": true}))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(created["phone"], "8613955556666");
    let session = expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"phone": "8613955556666", "password": "imported-pass"}),
        )
        .await,
        200,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let res = admin(&app, reqwest::Method::DELETE, &format!("/admin/users/{id}"))
        .json(&json!({"should_soft_delete": true}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM auth.users WHERE deleted_at IS NOT NULL AND phone IS NULL"
        ),
        1
    );
    expect_error(
        app.get_auth("/user", session["access_token"].as_str().unwrap())
            .await,
        403,
        "session_not_found",
    )
    .await;
    expect_error(
        app.post(
            "/token?grant_type=password",
            json!({"phone": "8613955556666", "password": "imported-pass"}),
        )
        .await,
        400,
        "invalid_credentials",
    )
    .await;
}
