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
mod jwt;
mod rate_limits;
mod security;
mod server;
mod vars;
mod wechat;

use std::env;
use std::fmt;

pub use accounts::{AccountsConfig, PasswordConfig, PasswordHashConfig};
pub use database::DatabaseConfig;
pub use jwt::{
    generate_key, parse_keys, JwtConfig, JwtKey, KeyAlgorithm, PublicKey, DEV_JWT_SECRET,
};
pub use rate_limits::RateLimitConfig;
pub use security::SecurityConfig;
pub use server::{MetricsAddress, ServerConfig};
pub use vars::Vars;
pub use wechat::{WechatApp, WechatConfig};

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
        let config = Config {
            production: v.production,
            server: ServerConfig::read(&v, &jwt)?,
            database: DatabaseConfig::read(&v)?,
            accounts: AccountsConfig::read(&v)?,
            password: PasswordConfig::read(&v)?,
            security: SecurityConfig::read(&v)?,
            rate_limits: RateLimitConfig::read(&v)?,
            wechat: WechatConfig::read(&v)?,
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
}
