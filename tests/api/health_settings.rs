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
        assert_eq!(settings["external"].as_object().unwrap().len(), 27);
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
