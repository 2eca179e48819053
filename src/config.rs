//! Configuration from the environment (and an optional `.env` file).
//!
//! Variable names follow GoTrue (`internal/conf/configuration.go`) wherever GoTrue has one, so an
//! existing Supabase/GoTrue deployment can switch to weauth without renaming anything. Options
//! that only weauth has use the `WEAUTH_` prefix. Every variable is listed in `.env.example`.

use std::collections::BTreeMap;
use std::env;
use std::fmt;
use std::time::Duration;

/// The secret every development instance shares. Refused when `WEAUTH_ENV=production`.
pub const DEV_JWT_SECRET: &str = "weauth-development-secret-do-not-use-in-production";

/// A configuration problem found at start-up; the process exits before binding a port.
#[derive(Debug, thiserror::Error)]
#[error("configuration error: {0}")]
pub struct ConfigError(pub String);

/// A string that must never be printed (JWT secret, WeChat app secrets).
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

/// One WeChat mini-program weauth serves (app id + app secret).
#[derive(Clone, Debug)]
pub struct WechatApp {
    pub app_id: String,
    pub secret: Secret,
}

/// WeChat mini-program login settings (`GOTRUE_EXTERNAL_WECHAT_*`).
#[derive(Clone, Debug)]
pub struct WechatConfig {
    pub enabled: bool,
    /// Base URL of WeChat's server API; point it at `weauth wechat-emulator` for development.
    pub api_url: String,
    /// The app used when a request names none. Always the first entry of `apps`.
    pub default_app_id: Option<String>,
    /// All configured apps, keyed by app id.
    pub apps: BTreeMap<String, WechatApp>,
    /// Timeout for the login/phone/token calls.
    pub timeout: Duration,
    /// Timeout for `getwxacodeunlimit`, which WeChat often answers slowly.
    pub qrcode_timeout: Duration,
}

/// Argon2id cost parameters for newly written password hashes.
#[derive(Clone, Debug)]
pub struct PasswordHashConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

/// Per-client request limits: requests per 5 minutes per client, 0 for unlimited.
#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Header holding the client address (`GOTRUE_RATE_LIMIT_HEADER`, e.g. `X-Forwarded-For`
    /// behind a proxy); the peer address when unset.
    pub header: Option<String>,
    pub token_refresh: u32,
    pub password: u32,
    pub otp: u32,
    pub wechat_login: u32,
    pub wechat_phone: u32,
    pub wechat_qrcode: u32,
}

/// Everything the server needs, read once at start-up.
#[derive(Clone, Debug)]
pub struct Config {
    /// `development` (defaults allowed) or `production` (required variables enforced).
    pub production: bool,
    pub database_url: String,
    pub db_max_pool_size: u32,
    pub db_connect_timeout: Duration,
    pub host: String,
    pub port: u16,
    pub api_external_url: String,
    pub site_url: String,
    pub jwt_secret: Secret,
    pub jwt_exp: i64,
    pub jwt_aud: String,
    pub jwt_issuer: Option<String>,
    pub jwt_admin_roles: Vec<String>,
    pub jwt_default_group_name: String,
    pub jwt_admin_group_name: String,
    pub disable_signup: bool,
    pub external_email_enabled: bool,
    pub external_phone_enabled: bool,
    pub mailer_autoconfirm: bool,
    pub sms_autoconfirm: bool,
    pub password_min_length: usize,
    pub refresh_token_rotation_enabled: bool,
    pub refresh_token_reuse_interval: i64,
    pub audit_log_disable_postgres: bool,
    pub password_hash: PasswordHashConfig,
    pub rate_limits: RateLimitConfig,
    pub wechat: WechatConfig,
}

/// Reads variables from a map, so tests can build a `Config` without touching the process env.
struct Vars<'a> {
    get: &'a dyn Fn(&str) -> Option<String>,
}

impl Vars<'_> {
    fn str(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|name| (self.get)(name).filter(|v| !v.trim().is_empty()))
    }

    fn parse<T: std::str::FromStr>(&self, names: &[&str], default: T) -> Result<T, ConfigError> {
        match self.str(names) {
            None => Ok(default),
            Some(raw) => raw.trim().parse().map_err(|_| {
                ConfigError(format!("{} must be a valid value, got {raw:?}", names[0]))
            }),
        }
    }

    fn bool(&self, names: &[&str], default: bool) -> Result<bool, ConfigError> {
        match self.str(names).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(ConfigError(format!(
                "{} must be true or false, got {v:?}",
                names[0]
            ))),
        }
    }
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
        let v = Vars { get };
        let production = match v.str(&["WEAUTH_ENV"]).as_deref() {
            None | Some("development") | Some("dev") => false,
            Some("production") | Some("prod") => true,
            Some(other) => {
                return Err(ConfigError(format!(
                    "WEAUTH_ENV must be development or production, got {other:?}"
                )))
            }
        };
        let required = |names: &[&str], dev_default: &str| -> Result<String, ConfigError> {
            match v.str(names) {
                Some(value) => Ok(value),
                None if !production => Ok(dev_default.to_string()),
                None => Err(ConfigError(format!(
                    "{} is required in production",
                    names.join(" or ")
                ))),
            }
        };

        let jwt_secret = required(&["GOTRUE_JWT_SECRET"], DEV_JWT_SECRET)?;
        if production && (jwt_secret == DEV_JWT_SECRET || jwt_secret.len() < 32) {
            return Err(ConfigError(
                "GOTRUE_JWT_SECRET must be a private value of at least 32 characters in production"
                    .into(),
            ));
        }
        let api_external_url = required(
            &["GOTRUE_API_API_EXTERNAL_URL", "API_EXTERNAL_URL"],
            "http://localhost:9999",
        )?;
        url::Url::parse(&api_external_url)
            .map_err(|e| ConfigError(format!("API_EXTERNAL_URL is not a valid URL: {e}")))?;

        let config = Config {
            production,
            database_url: required(
                &["GOTRUE_DB_DATABASE_URL", "DATABASE_URL"],
                "postgres://postgres@127.0.0.1:5432/postgres",
            )?,
            db_max_pool_size: match v.parse(&["GOTRUE_DB_MAX_POOL_SIZE"], 0u32)? {
                0 => 16,
                n => n,
            },
            db_connect_timeout: Duration::from_millis(
                v.parse(&["WEAUTH_DB_CONNECT_TIMEOUT_MS"], 3000u64)?,
            ),
            // With the public development secret, only this machine may reach the server.
            host: v.str(&["GOTRUE_API_HOST"]).unwrap_or_else(|| {
                if jwt_secret == DEV_JWT_SECRET {
                    "127.0.0.1"
                } else {
                    "0.0.0.0"
                }
                .into()
            }),
            port: v.parse(&["GOTRUE_API_PORT", "PORT"], 9999u16)?,
            api_external_url,
            site_url: required(&["GOTRUE_SITE_URL"], "http://localhost:3000")?,
            jwt_issuer: v.str(&["GOTRUE_JWT_ISSUER"]),
            jwt_secret: Secret::new(jwt_secret.clone()),
            jwt_exp: v.parse(&["GOTRUE_JWT_EXP"], 3600i64)?,
            jwt_aud: v
                .str(&["GOTRUE_JWT_AUD"])
                .unwrap_or_else(|| "authenticated".into()),
            jwt_admin_roles: v
                .str(&["GOTRUE_JWT_ADMIN_ROLES"])
                .unwrap_or_else(|| "service_role,supabase_admin".into())
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            jwt_default_group_name: v
                .str(&["GOTRUE_JWT_DEFAULT_GROUP_NAME"])
                .unwrap_or_else(|| "authenticated".into()),
            jwt_admin_group_name: v
                .str(&["GOTRUE_JWT_ADMIN_GROUP_NAME"])
                .unwrap_or_else(|| "admin".into()),
            disable_signup: v.bool(&["GOTRUE_DISABLE_SIGNUP"], false)?,
            external_email_enabled: v.bool(&["GOTRUE_EXTERNAL_EMAIL_ENABLED"], true)?,
            external_phone_enabled: v.bool(&["GOTRUE_EXTERNAL_PHONE_ENABLED"], true)?,
            mailer_autoconfirm: v.bool(&["GOTRUE_MAILER_AUTOCONFIRM"], true)?,
            sms_autoconfirm: v.bool(&["GOTRUE_SMS_AUTOCONFIRM"], true)?,
            password_min_length: v.parse(&["GOTRUE_PASSWORD_MIN_LENGTH"], 6usize)?.max(6),
            refresh_token_rotation_enabled: v
                .bool(&["GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED"], true)?,
            refresh_token_reuse_interval: v
                .parse(&["GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL"], 10i64)?,
            audit_log_disable_postgres: v.bool(&["GOTRUE_AUDIT_LOG_DISABLE_POSTGRES"], false)?,
            password_hash: PasswordHashConfig {
                memory_kib: v.parse(&["WEAUTH_ARGON2_MEMORY_KIB"], 19456u32)?,
                iterations: v.parse(&["WEAUTH_ARGON2_ITERATIONS"], 2u32)?,
                parallelism: v.parse(&["WEAUTH_ARGON2_PARALLELISM"], 1u32)?,
            },
            rate_limits: RateLimitConfig {
                header: v.str(&["GOTRUE_RATE_LIMIT_HEADER"]),
                token_refresh: v.parse(&["GOTRUE_RATE_LIMIT_TOKEN_REFRESH"], 150u32)?,
                password: v.parse(&["WEAUTH_RATE_LIMIT_PASSWORD"], 30u32)?,
                otp: v.parse(&["GOTRUE_RATE_LIMIT_OTP"], 30u32)?,
                wechat_login: v.parse(&["WEAUTH_RATE_LIMIT_WECHAT_LOGIN"], 150u32)?,
                wechat_phone: v.parse(&["WEAUTH_RATE_LIMIT_WECHAT_PHONE"], 30u32)?,
                wechat_qrcode: v.parse(&["WEAUTH_RATE_LIMIT_WECHAT_QRCODE"], 30u32)?,
            },
            wechat: wechat_config(&v, production)?,
        };
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.jwt_exp <= 0 {
            return Err(ConfigError(
                "GOTRUE_JWT_EXP must be a positive number of seconds".into(),
            ));
        }
        if !(1..=256).contains(&self.db_max_pool_size) {
            return Err(ConfigError(
                "GOTRUE_DB_MAX_POOL_SIZE must be between 1 and 256".into(),
            ));
        }
        if self.refresh_token_reuse_interval < 0 {
            return Err(ConfigError(
                "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL must not be negative".into(),
            ));
        }
        let ph = &self.password_hash;
        argon2::Params::new(ph.memory_kib, ph.iterations, ph.parallelism, None)
            .map_err(|e| ConfigError(format!("invalid WEAUTH_ARGON2_* parameters: {e}")))?;
        Ok(())
    }

    /// True when the server signs tokens with the public development secret.
    pub fn uses_dev_secret(&self) -> bool {
        self.jwt_secret.expose() == DEV_JWT_SECRET
    }
}

/// Reads the default app from `GOTRUE_EXTERNAL_WECHAT_APP_ID`/`_SECRET` and further apps from
/// `GOTRUE_EXTERNAL_WECHAT_APPS` (`appid:secret,appid:secret`).
fn wechat_config(v: &Vars<'_>, production: bool) -> Result<WechatConfig, ConfigError> {
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
                    "GOTRUE_EXTERNAL_WECHAT_APPS must look like appid:secret,appid:secret".into(),
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
        .str(&["GOTRUE_EXTERNAL_WECHAT_API_URL"])
        .unwrap_or_else(|| "https://api.weixin.qq.com".into())
        .trim_end_matches('/')
        .to_string();
    url::Url::parse(&api_url)
        .map_err(|e| ConfigError(format!("GOTRUE_EXTERNAL_WECHAT_API_URL is invalid: {e}")))?;
    if production && enabled && !api_url.starts_with("https://") {
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
        timeout: Duration::from_millis(v.parse(&["WEAUTH_WECHAT_TIMEOUT_MS"], 5000u64)?),
        qrcode_timeout: Duration::from_millis(
            v.parse(&["WEAUTH_WECHAT_QRCODE_TIMEOUT_MS"], 15000u64)?,
        ),
    })
}

#[cfg(test)]
mod tests {
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
        assert_eq!(c.port, 9999);
        assert_eq!(
            c.host, "127.0.0.1",
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
        assert_eq!(c.host, "0.0.0.0");
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
}
