//! WeChat's OAuth 2.0 for websites (网站应用), official-account pages (公众号 网页授权) and
//! native apps (移动应用): the browser-facing authorize URLs on `open.weixin.qq.com`, and the
//! server calls `sns/oauth2/access_token` (code → openid, unionid and a per-user token) and
//! `sns/userinfo` (the profile). The per-user token is used once, for the profile, and then
//! dropped: it is never logged, stored or returned.

use serde::Deserialize;

use super::client::{json_call, unless_consumed, WechatError};
use super::{failure, record, Api, WechatFailure, WechatService};
use crate::config::WechatApp;

/// The scopes WeChat knows.
pub const SCOPE_LOGIN: &str = "snsapi_login";
pub const SCOPE_USERINFO: &str = "snsapi_userinfo";
pub const SCOPE_BASE: &str = "snsapi_base";

/// `sns/oauth2/access_token`'s answer. `access_token` and `refresh_token` are secrets.
#[derive(Deserialize)]
pub struct SnsToken {
    pub access_token: String,
    pub openid: String,
    #[serde(default)]
    pub scope: String,
    #[serde(default)]
    pub unionid: Option<String>,
    /// 1 when an official-account page was opened in WeChat's "snapshot" mode (朋友圈快照页),
    /// where the openid is a placeholder and the user has not really authorised anything.
    #[serde(default)]
    pub is_snapshotuser: Option<i64>,
}

impl std::fmt::Debug for SnsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnsToken")
            .field("openid", &self.openid)
            .field("scope", &self.scope)
            .field("unionid", &self.unionid)
            .finish_non_exhaustive()
    }
}

/// `sns/userinfo`'s answer (WeChat no longer fills in sex and region; they are not kept).
#[derive(Deserialize, Debug, Clone, Default)]
pub struct SnsUserInfo {
    #[serde(default)]
    pub nickname: Option<String>,
    #[serde(default)]
    pub headimgurl: Option<String>,
    #[serde(default)]
    pub unionid: Option<String>,
}

/// The URL a browser is sent to: `qrconnect` for `snsapi_login`, `oauth2/authorize` (inside
/// WeChat) for the official-account scopes. `state` must be at most 128 bytes of
/// `[a-zA-Z0-9]`, WeChat's rule.
pub fn authorize_url(
    open_url: &str,
    app_id: &str,
    redirect_uri: &str,
    scope: &str,
    state: &str,
) -> String {
    let page = if scope == SCOPE_LOGIN {
        "connect/qrconnect"
    } else {
        "connect/oauth2/authorize"
    };
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("appid", app_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("response_type", "code")
        .append_pair("scope", scope)
        .append_pair("state", state)
        .finish();
    format!("{open_url}/{page}?{query}#wechat_redirect")
}

impl WechatService {
    /// Exchanges an authorization code of `app` (website, official account or native app).
    /// The code is single-use: only a `-1` or a connection never made is retried.
    pub async fn sns_access_token(
        &self,
        app: &WechatApp,
        code: &str,
    ) -> Result<SnsToken, WechatFailure> {
        let c = &self.client;
        let send = || {
            c.http
                .get(format!("{}/sns/oauth2/access_token", c.base_url))
                .query(&[
                    ("appid", app.app_id.as_str()),
                    ("secret", app.secret.expose()),
                    ("code", code),
                    ("grant_type", "authorization_code"),
                ])
                .timeout(c.timeout)
                .send()
        };
        let started = std::time::Instant::now();
        let result = unless_consumed(send).await;
        record("oauth_code", &result, started);
        result.map_err(|e| failure(e, Api::OauthCode))
    }

    /// The profile behind a user token (`snsapi_login` / `snsapi_userinfo` scopes only).
    pub async fn sns_userinfo(&self, token: &SnsToken) -> Result<SnsUserInfo, WechatFailure> {
        let c = &self.client;
        let started = std::time::Instant::now();
        let call = || {
            json_call::<SnsUserInfo>(
                c.http
                    .get(format!("{}/sns/userinfo", c.base_url))
                    .query(&[
                        ("access_token", token.access_token.as_str()),
                        ("openid", token.openid.as_str()),
                        ("lang", "zh_CN"),
                    ])
                    .timeout(c.timeout)
                    .send(),
            )
        };
        let result = match call().await {
            Err(WechatError::Api { errcode: -1, .. }) => call().await,
            other => other,
        };
        record("userinfo", &result, started);
        result.map_err(|e| failure(e, Api::UserInfo))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_urls_are_wechats() {
        let url = authorize_url(
            "https://open.weixin.qq.com",
            "wxapp",
            "https://auth.example.com/auth/v1/callback",
            SCOPE_LOGIN,
            "abc123",
        );
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/qrconnect?appid=wxapp&redirect_uri=https%3A%2F%2Fauth.example.com%2Fauth%2Fv1%2Fcallback&response_type=code&scope=snsapi_login&state=abc123#wechat_redirect"
        );
        let mp = authorize_url("http://e", "wx", "http://cb", SCOPE_BASE, "s");
        assert!(mp.starts_with("http://e/connect/oauth2/authorize?"), "{mp}");
        assert!(mp.ends_with("#wechat_redirect"));
    }

    #[test]
    fn tokens_never_print() {
        let token: SnsToken = serde_json::from_value(serde_json::json!({
            "access_token": "the-user-token", "refresh_token": "the-refresh", "openid": "o1",
            "scope": "snsapi_login", "expires_in": 7200,
        }))
        .unwrap();
        assert!(!format!("{token:?}").contains("the-user-token"));
    }
}
