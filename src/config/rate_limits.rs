//! Per-client request limits: one value per [`Limit`], read from the variable the limit names.

use strum::VariantArray;

use super::{ConfigError, Secret, Vars};
use crate::rate_limit::Limit;

#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Header holding the client address (`GOTRUE_RATE_LIMIT_HEADER`, e.g. `X-Forwarded-For`
    /// behind a proxy); the peer address when unset.
    pub header: Option<String>,
    /// Requests per window ([`Limit::window`]) per client, in [`Limit::VARIANTS`] order; 0 is
    /// unlimited.
    per_window: Vec<u32>,
    /// Redis holding the budgets every instance shares (`WEAUTH_RATE_LIMIT_REDIS_URL`,
    /// `redis://[user:password@]host[:port][/db]`); unset: each process counts on its own.
    pub redis_url: Option<Secret>,
    /// Prefix of weauth's keys in that Redis (`WEAUTH_RATE_LIMIT_REDIS_PREFIX`), so several
    /// deployments can share one server.
    pub redis_prefix: String,
}

impl RateLimitConfig {
    pub fn read(v: &Vars<'_>) -> Result<RateLimitConfig, ConfigError> {
        Ok(RateLimitConfig {
            header: v.str(&["GOTRUE_RATE_LIMIT_HEADER"]),
            per_window: Limit::VARIANTS
                .iter()
                .map(|limit| v.parse(&[limit.env_var()], limit.default_per_window()))
                .collect::<Result<_, _>>()?,
            redis_url: match v.str(&["WEAUTH_RATE_LIMIT_REDIS_URL"]) {
                Some(url) if !url.starts_with("redis://") && !url.starts_with("redis+unix://") => {
                    return Err(ConfigError(
                        "WEAUTH_RATE_LIMIT_REDIS_URL must be a redis:// or redis+unix:// URL"
                            .into(),
                    ))
                }
                url => url.map(Secret::new),
            },
            redis_prefix: v.str_or(&["WEAUTH_RATE_LIMIT_REDIS_PREFIX"], "weauth:rate-limit:"),
        })
    }

    /// Requests per window per client for `limit` (0: unlimited).
    pub fn per_window(&self, limit: Limit) -> u32 {
        self.per_window[limit as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<RateLimitConfig, ConfigError> {
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        RateLimitConfig::read(&Vars::new(&lookup).unwrap())
    }

    #[test]
    fn redis_url_is_optional_checked_and_never_printed() {
        let none = read(&[]).unwrap();
        assert!(none.redis_url.is_none());
        assert_eq!(none.redis_prefix, "weauth:rate-limit:");
        assert!(read(&[("WEAUTH_RATE_LIMIT_REDIS_URL", "http://cache:6379")]).is_err());
        let set = read(&[(
            "WEAUTH_RATE_LIMIT_REDIS_URL",
            "redis://:hunter2-redis@cache:6379/2",
        )])
        .unwrap();
        assert_eq!(
            set.redis_url.as_ref().map(|s| s.expose()),
            Some("redis://:hunter2-redis@cache:6379/2")
        );
        assert!(!format!("{set:?}").contains("hunter2"));
    }
}
