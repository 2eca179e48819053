//! Configuration from the environment (and an optional `.env` file).
//!
//! Variable names follow GoTrue (`internal/conf/configuration.go`) wherever GoTrue has one, so an
//! existing Supabase/GoTrue deployment can switch to weauth without renaming anything. Options
//! that only weauth has use the `WEAUTH_` prefix. Every variable is listed in `.env.example`.
//!
//! Each area of the server has its own struct and module, which reads and validates that area's
//! variables; [`Config`] only composes them.

mod accounts;
mod database;
mod external;
mod hooks;
mod jwt;
mod mail;
mod mfa;
mod rate_limits;
mod security;
mod server;
mod sms;
mod vars;
mod wechat;

use std::env;
use std::fmt;

pub use accounts::{AccountsConfig, PasswordConfig, PasswordHashConfig};
pub use database::DatabaseConfig;
pub use external::{ExternalConfig, OauthApp};
pub use hooks::{HookConfig, HooksConfig};
pub use jwt::{
    generate_key, parse_keys, JwtConfig, JwtKey, KeyAlgorithm, PublicKey, DEV_JWT_SECRET,
};
pub use mail::{MailConfig, MailLocale, MailTemplate, SmtpConfig, SmtpTls};
pub use mfa::{FactorSwitches, MfaConfig, PhoneMfaConfig, WebAuthnRpConfig};
pub use rate_limits::RateLimitConfig;
pub use security::SecurityConfig;
pub use server::{MetricsAddress, ServerConfig};
pub use sms::{AliyunSmsConfig, SmsConfig, SmsProviderConfig, TencentSmsConfig};
pub use vars::Vars;
pub use wechat::{PhoneMerge, WechatApp, WechatConfig};

/// A configuration problem found at start-up; the process exits before binding a port.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// A string that must never be printed (JWT secret, WeChat app secrets, SMS provider keys).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Everything the server needs, read once at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// `development` (defaults allowed) or `production` (required variables enforced).
    pub production: bool,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub jwt: JwtConfig,
    pub accounts: AccountsConfig,
    pub password: PasswordConfig,
    pub security: SecurityConfig,
    pub rate_limits: RateLimitConfig,
    pub wechat: WechatConfig,
    /// OAuth flows and the WeChat website, official-account and native-app providers.
    pub external: ExternalConfig,
    pub hooks: HooksConfig,
    pub sms: SmsConfig,
    pub mail: MailConfig,
    pub mfa: MfaConfig,
}

impl Config {
    /// Loads `.env` (if present) and then the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        // A missing .env file is normal; a malformed one is not silently ignored.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError(format!("cannot read .env: {e}"))),
        }
        Config::from_lookup(&|name| env::var(name).ok())
    }

    /// Builds the configuration from any variable lookup (the environment, or a map in tests).
    pub fn from_lookup(get: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let v = Vars::new(get)?;
        let jwt = JwtConfig::read(&v)?;
        let hooks = HooksConfig::read(&v)?;
        let server = ServerConfig::read(&v, &jwt)?;
        let config = Config {
            production: v.production,
            external: ExternalConfig::read(&v, &server.api_external_url)?,
            server,
            database: DatabaseConfig::read(&v)?,
            accounts: AccountsConfig::read(&v)?,
            password: PasswordConfig::read(&v)?,
            security: SecurityConfig::read(&v)?,
            rate_limits: RateLimitConfig::read(&v)?,
            wechat: WechatConfig::read(&v)?,
            sms: SmsConfig::read(&v, &hooks)?,
            mail: MailConfig::read(&v)?,
            mfa: MfaConfig::read(&v)?,
            hooks,
            jwt,
        };
        v.finish()?;
        Ok(config)
    }

    /// True when the server signs tokens with the public development secret.
    pub fn uses_dev_secret(&self) -> bool {
        self.jwt.uses_dev_secret()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |name| map.get(name).cloned())
    }

    #[test]
    fn development_defaults_work() {
        let c = load(&[]).unwrap();
        assert!(c.uses_dev_secret());
        assert_eq!(c.server.port, 9999);
        assert_eq!(
            c.server.host, "127.0.0.1",
            "the public dev secret is never exposed to the network"
        );
        assert!(!c.wechat.enabled);
    }

    #[test]
    fn production_requires_secret_and_database() {
        let err = load(&[("WEAUTH_ENV", "production")]).unwrap_err();
        assert!(err.0.contains("GOTRUE_JWT_SECRET"), "{err}");
        let secret = "x".repeat(40);
        let mut vars = vec![
            ("WEAUTH_ENV", "production"),
            ("GOTRUE_JWT_SECRET", secret.as_str()),
        ];
        let err = load(&vars).unwrap_err();
        assert!(err.0.contains("API_EXTERNAL_URL"), "{err}");
        vars.push(("API_EXTERNAL_URL", "https://auth.example.com"));
        let err = load(&vars).unwrap_err();
        assert!(err.0.contains("DATABASE_URL"), "{err}");
        vars.push(("DATABASE_URL", "postgres://db/auth"));
        vars.push(("GOTRUE_SITE_URL", "https://app.example.com"));
        let c = load(&vars).unwrap();
        assert!(c.production && !c.uses_dev_secret());
        assert_eq!(c.server.host, "0.0.0.0");
    }

    #[test]
    fn wechat_apps_are_collected_default_first() {
        let c = load(&[
            ("GOTRUE_EXTERNAL_WECHAT_APP_ID", "wxdefault"),
            ("GOTRUE_EXTERNAL_WECHAT_SECRET", "s1"),
            ("GOTRUE_EXTERNAL_WECHAT_APPS", "wxsecond:s2, wxthird:s3"),
        ])
        .unwrap();
        assert!(c.wechat.enabled);
        assert_eq!(c.wechat.default_app_id.as_deref(), Some("wxdefault"));
        assert_eq!(c.wechat.apps.len(), 3);
        assert_eq!(c.wechat.apps["wxthird"].secret.expose(), "s3");
        assert!(!format!("{:?}", c.wechat).contains("s2"));
    }

    #[test]
    fn half_configured_wechat_is_an_error() {
        assert!(load(&[("GOTRUE_EXTERNAL_WECHAT_APP_ID", "wx1")]).is_err());
        assert!(load(&[("GOTRUE_EXTERNAL_WECHAT_ENABLED", "true")]).is_err());
    }

    #[test]
    fn every_rate_limit_has_its_variable_and_zero_disables_it() {
        use crate::rate_limit::Limit;
        use strum::VariantArray;
        let c = load(&[]).unwrap();
        for limit in Limit::VARIANTS {
            assert_eq!(c.rate_limits.per_window(*limit), limit.default_per_window());
        }
        let off: Vec<(&str, &str)> = Limit::VARIANTS.iter().map(|l| (l.env_var(), "0")).collect();
        let c = load(&off).unwrap();
        assert!(Limit::VARIANTS
            .iter()
            .all(|l| c.rate_limits.per_window(*l) == 0));
    }

    const HOOK_SECRET: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    const ALIYUN: &[(&str, &str)] = &[
        ("GOTRUE_SMS_PROVIDER", "aliyun"),
        ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID", "LTAIkeyid"),
        ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET", "aliyun-secret-value"),
        ("WEAUTH_SMS_ALIYUN_SIGN_NAME", "weauth"),
        ("WEAUTH_SMS_ALIYUN_TEMPLATE_CODE", "SMS_123456789"),
    ];

    #[test]
    fn sms_and_hooks_are_off_by_default() {
        let c = load(&[]).unwrap();
        assert!(c.sms.provider.is_none());
        assert_eq!(c.sms.timeout, std::time::Duration::from_secs(10));
        assert!(c.hooks.send_sms.active().is_none());
        assert_eq!(c.hooks.timeout, std::time::Duration::from_secs(5));
    }

    #[test]
    fn aliyun_sms_is_read_with_defaults() {
        let c = load(ALIYUN).unwrap();
        let Some(SmsProviderConfig::Aliyun(a)) = &c.sms.provider else {
            panic!("{:?}", c.sms)
        };
        assert_eq!(a.access_key_id, "LTAIkeyid");
        assert_eq!(a.access_key_secret.expose(), "aliyun-secret-value");
        assert_eq!(a.template_param, "code");
        assert_eq!(a.endpoint, "https://dysmsapi.aliyuncs.com");
        assert!(!format!("{c:?}").contains("aliyun-secret-value"));

        let mut vars = ALIYUN.to_vec();
        vars.push(("WEAUTH_SMS_ALIYUN_TEMPLATE_PARAM", "otp"));
        vars.push(("WEAUTH_SMS_ALIYUN_ENDPOINT", "http://127.0.0.1:9911/"));
        vars.push(("WEAUTH_SMS_TIMEOUT_MS", "2500"));
        let c = load(&vars).unwrap();
        let Some(SmsProviderConfig::Aliyun(a)) = &c.sms.provider else {
            panic!()
        };
        assert_eq!(
            (a.template_param.as_str(), a.endpoint.as_str()),
            ("otp", "http://127.0.0.1:9911")
        );
        assert_eq!(c.sms.timeout, std::time::Duration::from_millis(2500));
    }

    #[test]
    fn missing_provider_settings_are_named_together() {
        let err = load(&[
            ("GOTRUE_SMS_PROVIDER", "aliyun"),
            ("WEAUTH_SMS_ALIYUN_SIGN_NAME", "x"),
        ])
        .unwrap_err();
        for name in [
            "WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID",
            "WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET",
            "WEAUTH_SMS_ALIYUN_TEMPLATE_CODE",
        ] {
            assert!(err.0.contains(name), "{err}");
        }
        assert!(!err.0.contains("SIGN_NAME"), "{err}");
        let err = load(&[("GOTRUE_SMS_PROVIDER", "Tencent")]).unwrap_err();
        assert!(err.0.contains("WEAUTH_SMS_TENCENT_SDK_APP_ID"), "{err}");
        // A GoTrue setup's vendor is not built in: no provider, and the server still starts.
        let c = load(&[("GOTRUE_SMS_PROVIDER", "twilio")]).unwrap();
        assert!(c.sms.provider.is_none());
        let mut bad = ALIYUN.to_vec();
        bad.push((
            "WEAUTH_SMS_ALIYUN_ENDPOINT",
            "https://dysmsapi.aliyuncs.com/path",
        ));
        assert!(load(&bad).is_err());
    }

    #[test]
    fn tencent_sms_is_read_with_defaults() {
        let c = load(&[
            ("GOTRUE_SMS_PROVIDER", "tencent"),
            ("WEAUTH_SMS_TENCENT_SECRET_ID", "AKIDexample"),
            ("WEAUTH_SMS_TENCENT_SECRET_KEY", "tencent-secret-value"),
            ("WEAUTH_SMS_TENCENT_SDK_APP_ID", "1400006666"),
            ("WEAUTH_SMS_TENCENT_SIGN_NAME", "weauth"),
            ("WEAUTH_SMS_TENCENT_TEMPLATE_ID", "1110"),
        ])
        .unwrap();
        let Some(SmsProviderConfig::Tencent(t)) = &c.sms.provider else {
            panic!("{:?}", c.sms)
        };
        assert_eq!(t.region, "ap-guangzhou");
        assert_eq!(t.endpoint, "https://sms.tencentcloudapi.com");
        assert_eq!(t.secret_key.expose(), "tencent-secret-value");
        assert!(!format!("{c:?}").contains("tencent-secret-value"));
    }

    #[test]
    fn the_send_sms_hook_takes_precedence_over_the_provider() {
        let c = load(&[
            ("GOTRUE_SMS_PROVIDER", "twilio"),
            ("GOTRUE_HOOK_SEND_SMS_ENABLED", "true"),
            ("GOTRUE_HOOK_SEND_SMS_URI", "https://hooks.example.com/sms"),
            ("GOTRUE_HOOK_SEND_SMS_SECRETS", HOOK_SECRET),
        ])
        .unwrap();
        assert!(matches!(c.sms.provider, Some(SmsProviderConfig::Hook)));
        assert_eq!(c.hooks.send_sms.active().unwrap().secrets.len(), 1);
        assert!(!format!("{c:?}").contains("MfKQ9r8GKYqr"));
        // Configured but disabled: validated, not used.
        let mut vars = ALIYUN.to_vec();
        vars.push((
            "GOTRUE_HOOK_SEND_SMS_URI",
            "pg-functions://postgres/public/send_sms",
        ));
        let c = load(&vars).unwrap();
        assert!(matches!(c.sms.provider, Some(SmsProviderConfig::Aliyun(_))));
        assert!(c.hooks.send_sms.endpoint.is_some() && c.hooks.send_sms.active().is_none());
    }

    #[test]
    fn hook_variables_are_validated_at_start_up() {
        let bad: &[&[(&str, &str)]] = &[
            &[("GOTRUE_HOOK_SEND_SMS_ENABLED", "true")],
            &[("GOTRUE_HOOK_SEND_SMS_URI", "https://hooks.example.com/sms")],
            &[
                (
                    "GOTRUE_HOOK_SEND_EMAIL_URI",
                    "http://hooks.example.com/mail",
                ),
                ("GOTRUE_HOOK_SEND_EMAIL_SECRETS", HOOK_SECRET),
            ],
            &[(
                "GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_URI",
                "pg-functions://postgres/public/bad-name",
            )],
            &[
                ("GOTRUE_HOOK_SEND_SMS_URI", "https://h.example.com/"),
                ("GOTRUE_HOOK_SEND_SMS_SECRETS", "whsec_nope"),
            ],
            &[("GOTRUE_HOOK_SEND_SMS_ENABLED", "maybe")],
            &[("WEAUTH_HOOK_TIMEOUT_MS", "0")],
        ];
        for vars in bad {
            let err = load(vars).unwrap_err();
            assert!(!err.0.contains("MfKQ9r8GKYqr"), "{err}");
        }
        let c = load(&[
            ("GOTRUE_HOOK_SEND_EMAIL_ENABLED", "true"),
            (
                "GOTRUE_HOOK_SEND_EMAIL_URI",
                "http://localhost:54321/functions/v1/send-email",
            ),
            ("GOTRUE_HOOK_SEND_EMAIL_SECRETS", HOOK_SECRET),
            ("GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_ENABLED", "true"),
            (
                "GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_URI",
                "pg-functions://postgres/public/custom_access_token_hook",
            ),
            ("WEAUTH_HOOK_TIMEOUT_MS", "2000"),
        ])
        .unwrap();
        assert!(c.hooks.send_email.active().is_some());
        assert!(c.hooks.custom_access_token.active().is_some());
        assert!(c.sms.provider.is_none(), "only the SMS hook sends SMS");
        assert_eq!(c.hooks.timeout, std::time::Duration::from_secs(2));
    }
}
