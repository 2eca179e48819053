//! External OAuth providers (`GOTRUE_EXTERNAL_*`): GoTrue's flow-state lifetime and the WeChat
//! providers that sign in through `/authorize` and `/callback` (`wechat_qr`: 网站应用 QR login,
//! `wechat_mp`: 公众号 web pages) or through `/wechat_app/login` (`wechat_app`: 移动应用).
//! Each is configured with GoTrue's provider naming: `GOTRUE_EXTERNAL_<NAME>_ENABLED`,
//! `_CLIENT_ID` (the AppID), `_SECRET` (the AppSecret) and, for the browser ones,
//! `_REDIRECT_URI` (weauth's `/callback`, on the 授权回调域).

use std::time::Duration;

use super::{ConfigError, Secret, Vars, WechatApp};

/// A WeChat app that signs people in through the browser redirect.
#[derive(Clone, Debug)]
pub struct OauthApp {
    pub app: WechatApp,
    /// Where WeChat sends the browser back: weauth's `/callback`.
    pub redirect_uri: String,
}

#[derive(Clone, Debug)]
pub struct ExternalConfig {
    /// How long an OAuth flow (authorize → callback → PKCE exchange) may take
    /// (`GOTRUE_EXTERNAL_FLOW_STATE_EXPIRY_DURATION`, at least GoTrue's 300 s).
    pub flow_state_expiry: Duration,
    /// Base URL of WeChat's browser-facing pages (`WEAUTH_WECHAT_OPEN_URL`, default
    /// `https://open.weixin.qq.com`; the emulator in development).
    pub wechat_open_url: String,
    pub wechat_qr: Option<OauthApp>,
    pub wechat_mp: Option<OauthApp>,
    /// The native app (移动应用): its AppID and AppSecret from the Open Platform.
    pub wechat_app: Option<WechatApp>,
    /// `linkIdentity` (`GET /user/identities/authorize`) is allowed
    /// (`GOTRUE_SECURITY_MANUAL_LINKING_ENABLED`, off by default as in GoTrue).
    pub manual_linking_enabled: bool,
}

/// GoTrue's minimum (and default) flow-state lifetime.
const MIN_FLOW_STATE_EXPIRY: Duration = Duration::from_secs(300);

impl ExternalConfig {
    pub fn read(v: &Vars<'_>, api_external_url: &str) -> Result<ExternalConfig, ConfigError> {
        let expiry = match v.str(&["GOTRUE_EXTERNAL_FLOW_STATE_EXPIRY_DURATION"]) {
            Some(text) => go_duration(&text).ok_or_else(|| {
                ConfigError(
                    "GOTRUE_EXTERNAL_FLOW_STATE_EXPIRY_DURATION must be a duration like 300s or 10m"
                        .into(),
                )
            })?,
            None => MIN_FLOW_STATE_EXPIRY,
        };
        let wechat_open_url = v
            .str_or(&["WEAUTH_WECHAT_OPEN_URL"], "https://open.weixin.qq.com")
            .trim_end_matches('/')
            .to_string();
        url::Url::parse(&wechat_open_url)
            .map_err(|e| ConfigError(format!("WEAUTH_WECHAT_OPEN_URL is invalid: {e}")))?;
        let default_callback = format!("{}/callback", api_external_url.trim_end_matches('/'));
        let browser = |name: &str| -> Result<Option<OauthApp>, ConfigError> {
            let Some(app) = app(v, name)? else {
                return Ok(None);
            };
            let redirect_uri = v
                .str(&[&format!("GOTRUE_EXTERNAL_{name}_REDIRECT_URI")])
                .unwrap_or_else(|| default_callback.clone());
            url::Url::parse(&redirect_uri).map_err(|e| {
                ConfigError(format!(
                    "GOTRUE_EXTERNAL_{name}_REDIRECT_URI is invalid: {e}"
                ))
            })?;
            Ok(Some(OauthApp { app, redirect_uri }))
        };
        Ok(ExternalConfig {
            flow_state_expiry: expiry.max(MIN_FLOW_STATE_EXPIRY),
            wechat_open_url,
            wechat_qr: browser("WECHAT_QR")?,
            wechat_mp: browser("WECHAT_MP")?,
            wechat_app: app(v, "WECHAT_APP")?,
            manual_linking_enabled: v.bool(&["GOTRUE_SECURITY_MANUAL_LINKING_ENABLED"], false)?,
        })
    }
}

/// `GOTRUE_EXTERNAL_<name>_ENABLED` with its `_CLIENT_ID` and `_SECRET` (both required when
/// enabled).
fn app(v: &Vars<'_>, name: &str) -> Result<Option<WechatApp>, ConfigError> {
    if !v.bool(&[&format!("GOTRUE_EXTERNAL_{name}_ENABLED")], false)? {
        return Ok(None);
    }
    let id = v.str(&[&format!("GOTRUE_EXTERNAL_{name}_CLIENT_ID")]);
    let secret = v.str(&[&format!("GOTRUE_EXTERNAL_{name}_SECRET")]);
    match (id, secret) {
        (Some(id), Some(secret)) if !id.trim().is_empty() && !secret.trim().is_empty() => {
            Ok(Some(WechatApp {
                app_id: id.trim().to_string(),
                secret: Secret::new(secret.trim()),
            }))
        }
        _ => Err(ConfigError(format!(
            "GOTRUE_EXTERNAL_{name}_ENABLED is true: GOTRUE_EXTERNAL_{name}_CLIENT_ID and GOTRUE_EXTERNAL_{name}_SECRET are required"
        ))),
    }
}

/// A Go duration as GoTrue reads it (`300s`, `10m`, `1h30m`), or plain seconds.
fn go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|&i| i > 0)?;
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * factor;
        rest = &rest[unit_len..];
    }
    (total.is_finite() && total >= 0.0).then(|| Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn go_durations() {
        assert_eq!(go_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(go_duration("300s"), Some(Duration::from_secs(300)));
        assert_eq!(go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("10x"), None);
        assert_eq!(go_duration("s"), None);
    }
}
