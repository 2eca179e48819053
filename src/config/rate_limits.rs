//! Per-client request limits: one value per [`Limit`], read from the variable the limit names.

use strum::VariantArray;

use super::{ConfigError, Vars};
use crate::rate_limit::Limit;

#[derive(Clone, Debug)]
pub struct RateLimitConfig {
    /// Header holding the client address (`GOTRUE_RATE_LIMIT_HEADER`, e.g. `X-Forwarded-For`
    /// behind a proxy); the peer address when unset.
    pub header: Option<String>,
    /// Requests per window ([`Limit::window`]) per client, in [`Limit::VARIANTS`] order; 0 is
    /// unlimited.
    per_window: Vec<u32>,
}

impl RateLimitConfig {
    pub fn read(v: &Vars<'_>) -> Result<RateLimitConfig, ConfigError> {
        Ok(RateLimitConfig {
            header: v.str(&["GOTRUE_RATE_LIMIT_HEADER"]),
            per_window: Limit::VARIANTS
                .iter()
                .map(|limit| v.parse(&[limit.env_var()], limit.default_per_window()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// Requests per window per client for `limit` (0: unlimited).
    pub fn per_window(&self, limit: Limit) -> u32 {
        self.per_window[limit as usize]
    }
}
