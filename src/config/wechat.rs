//! WeChat mini-program login (`GOTRUE_EXTERNAL_WECHAT_*`): the apps weauth serves and how it
//! reaches WeChat's server API.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{ConfigError, Secret, Vars};

/// One WeChat mini-program weauth serves (app id + app secret).
#[derive(Clone, Debug)]
pub struct WechatApp {
    pub app_id: String,
    pub secret: Secret,
}

#[derive(Clone, Debug)]
pub struct WechatConfig {
    pub enabled: bool,
    /// Base URL of WeChat's server API; point it at the emulator (`weauth-emulator`) for
    /// development.
    pub api_url: String,
    /// The app used when a request names none. Always the first entry of `apps`.
    pub default_app_id: Option<String>,
    /// All configured apps, keyed by app id.
    pub apps: BTreeMap<String, WechatApp>,
    /// Timeout for the login/phone/token calls.
    pub timeout: Duration,
    /// Timeout for `getwxacodeunlimit`, which WeChat often answers slowly.
    pub qrcode_timeout: Duration,
    /// Whether `wechatBindPhone` may merge a fresh WeChat-only account into the account that
    /// already has the number (`WEAUTH_WECHAT_PHONE_MERGE`: `auto`, `true`, `false`).
    pub phone_merge: PhoneMerge,
    /// How young the WeChat account must be to be merged (`WEAUTH_WECHAT_PHONE_MERGE_WINDOW`,
    /// default 10m).
    pub phone_merge_window: Duration,
    /// Access-token lifetime, in seconds, of a WeChat account that may still be merged
    /// (`WEAUTH_WECHAT_PROVISIONAL_JWT_EXP`, default 60): bounds how long a token naming the
    /// merged account stays in use.
    pub provisional_jwt_exp: i64,
}

/// `WEAUTH_WECHAT_PHONE_MERGE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PhoneMerge {
    /// Merge when phone sign-in by SMS code works on this server: whoever holds the number can
    /// sign into that account with a code anyway, so the merge grants nothing more.
    Auto,
    Always,
    Never,
}

impl WechatConfig {
    /// Reads the default app from `GOTRUE_EXTERNAL_WECHAT_APP_ID`/`_SECRET` and further apps from
    /// `GOTRUE_EXTERNAL_WECHAT_APPS` (`appid:secret,appid:secret`).
    pub fn read(v: &Vars<'_>) -> Result<WechatConfig, ConfigError> {
        let mut apps = BTreeMap::new();
        let mut default_app_id = None;
        let mut add = |app_id: &str, secret: &str| -> Result<(), ConfigError> {
            let (app_id, secret) = (app_id.trim(), secret.trim());
            if app_id.is_empty() || secret.is_empty() {
                return Err(ConfigError(
                    "every WeChat app needs an app id and a secret".into(),
                ));
            }
            default_app_id.get_or_insert_with(|| app_id.to_string());
            apps.insert(
                app_id.to_string(),
                WechatApp {
                    app_id: app_id.to_string(),
                    secret: Secret::new(secret),
                },
            );
            Ok(())
        };
        match (
            v.str(&["GOTRUE_EXTERNAL_WECHAT_APP_ID"]),
            v.str(&["GOTRUE_EXTERNAL_WECHAT_SECRET"]),
        ) {
            (Some(id), Some(secret)) => add(&id, &secret)?,
            (None, None) => {}
            _ => return Err(ConfigError(
                "GOTRUE_EXTERNAL_WECHAT_APP_ID and GOTRUE_EXTERNAL_WECHAT_SECRET must be set together"
                    .into(),
            )),
        }
        if let Some(list) = v.str(&["GOTRUE_EXTERNAL_WECHAT_APPS"]) {
            for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
                let (id, secret) = entry.split_once(':').ok_or_else(|| {
                    ConfigError(
                        "GOTRUE_EXTERNAL_WECHAT_APPS must look like appid:secret,appid:secret"
                            .into(),
                    )
                })?;
                add(id, secret)?;
            }
        }
        let enabled = v.bool(&["GOTRUE_EXTERNAL_WECHAT_ENABLED"], !apps.is_empty())?;
        if enabled && apps.is_empty() {
            return Err(ConfigError(
                "GOTRUE_EXTERNAL_WECHAT_ENABLED is true but no app is configured (GOTRUE_EXTERNAL_WECHAT_APP_ID/SECRET)".into(),
            ));
        }
        let api_url = v
            .str_or(
                &["GOTRUE_EXTERNAL_WECHAT_API_URL"],
                "https://api.weixin.qq.com",
            )
            .trim_end_matches('/')
            .to_string();
        url::Url::parse(&api_url)
            .map_err(|e| ConfigError(format!("GOTRUE_EXTERNAL_WECHAT_API_URL is invalid: {e}")))?;
        if v.production && enabled && !api_url.starts_with("https://") {
            tracing::warn!(
                api_url,
                "WeChat API URL is not https; is the emulator configured in production?"
            );
        }
        Ok(WechatConfig {
            enabled,
            api_url,
            default_app_id,
            apps,
            timeout: v.millis(&["WEAUTH_WECHAT_TIMEOUT_MS"], 5000)?,
            qrcode_timeout: v.millis(&["WEAUTH_WECHAT_QRCODE_TIMEOUT_MS"], 15000)?,
            phone_merge: match v
                .str(&["WEAUTH_WECHAT_PHONE_MERGE"])
                .map(|s| s.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("auto") => PhoneMerge::Auto,
                Some("true" | "1" | "on" | "yes") => PhoneMerge::Always,
                Some("false" | "0" | "off" | "no") => PhoneMerge::Never,
                Some(other) => {
                    return Err(ConfigError(format!(
                        "WEAUTH_WECHAT_PHONE_MERGE must be auto, true or false, got {other:?}"
                    )))
                }
            },
            phone_merge_window: v.go_duration(
                &["WEAUTH_WECHAT_PHONE_MERGE_WINDOW"],
                Duration::from_secs(600),
            )?,
            provisional_jwt_exp: match v.parse(&["WEAUTH_WECHAT_PROVISIONAL_JWT_EXP"], 60i64)? {
                n @ 20..=3600 => n,
                _ => {
                    return Err(ConfigError(
                        "WEAUTH_WECHAT_PROVISIONAL_JWT_EXP must be between 20 and 3600 seconds".into(),
                    ))
                }
            },
        })
    }
}
