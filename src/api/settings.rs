//! `GET /settings` (GoTrue `internal/api/settings.go`): every key always present.

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::state::AppState;

pub async fn settings(state: web::Data<AppState>) -> HttpResponse {
    let c = &state.config;
    HttpResponse::Ok().json(json!({
        "external": {
            "anonymous_users": c.accounts.anonymous_users_enabled, "apple": false, "azure": false, "bitbucket": false,
            "discord": false, "facebook": false, "snapchat": false, "figma": false, "fly": false,
            "github": false, "gitlab": false, "google": false, "keycloak": false, "kakao": false,
            "linkedin": false, "linkedin_oidc": false, "notion": false, "spotify": false,
            "slack": false, "slack_oidc": false, "workos": false, "twitch": false, "twitter": false,
            "email": c.accounts.email_enabled, "phone": c.accounts.phone_enabled, "zoom": false,
            "wechat": c.wechat.enabled,
            "wechat_qr": c.external.wechat_qr.is_some(),
            "wechat_mp": c.external.wechat_mp.is_some(),
            "wechat_app": c.external.wechat_app.is_some(),
        },
        "disable_signup": c.accounts.disable_signup,
        "mailer_autoconfirm": c.accounts.mailer_autoconfirm,
        "phone_autoconfirm": c.accounts.sms_autoconfirm,
        "sms_provider": state.sms.as_ref().map_or("", |p| p.name()),
        "saml_enabled": false,
        "saml_private_key_next_configured": false,
        "passkeys_enabled": false,
    }))
}
