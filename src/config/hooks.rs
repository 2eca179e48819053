//! GoTrue's auth hooks (`GOTRUE_HOOK_<NAME>_ENABLED`, `_URI`, `_SECRETS`; GoTrue's
//! `HookConfiguration` in `internal/conf/configuration.go`). Every configured URI is validated at
//! start-up, enabled or not, as GoTrue does; an enabled hook without a URI is an error here
//! (GoTrue would fail each call instead).

use std::time::Duration;

use super::{ConfigError, Vars};
use crate::providers::hooks::HookEndpoint;

/// One hook point.
#[derive(Clone, Debug, Default)]
pub struct HookConfig {
    pub enabled: bool,
    /// The validated URI and secrets, when `_URI` is set.
    pub endpoint: Option<HookEndpoint>,
}

impl HookConfig {
    /// The endpoint to call: set only when the hook is enabled.
    pub fn active(&self) -> Option<&HookEndpoint> {
        self.endpoint.as_ref().filter(|_| self.enabled)
    }

    fn read(v: &Vars<'_>, name: &str) -> Result<HookConfig, ConfigError> {
        let var = |suffix: &str| format!("GOTRUE_HOOK_{name}_{suffix}");
        let enabled = v.bool(&[&var("ENABLED")], false)?;
        let endpoint = match v.str(&[&var("URI")]) {
            Some(uri) => Some(
                HookEndpoint::parse(&uri, v.str(&[&var("SECRETS")]).as_deref())
                    .map_err(|e| ConfigError(format!("{}: {e}", var("URI"))))?,
            ),
            None => None,
        };
        if enabled && endpoint.is_none() {
            return Err(ConfigError(format!(
                "{} is true but {} is not set",
                var("ENABLED"),
                var("URI")
            )));
        }
        Ok(HookConfig { enabled, endpoint })
    }
}

/// The hooks weauth calls: `send_sms`, `send_email` and `custom_access_token`.
#[derive(Clone, Debug)]
pub struct HooksConfig {
    pub send_sms: HookConfig,
    pub send_email: HookConfig,
    pub custom_access_token: HookConfig,
    /// Bound of one hook call (`WEAUTH_HOOK_TIMEOUT_MS`, default 5000 as GoTrue's HTTP hooks):
    /// the whole HTTP exchange, or the function's `statement_timeout`.
    pub timeout: Duration,
}

impl HooksConfig {
    pub fn read(v: &Vars<'_>) -> Result<HooksConfig, ConfigError> {
        let timeout = v.millis(&["WEAUTH_HOOK_TIMEOUT_MS"], 5000)?;
        if timeout.is_zero() {
            return Err(ConfigError(
                "WEAUTH_HOOK_TIMEOUT_MS must be greater than 0".into(),
            ));
        }
        Ok(HooksConfig {
            send_sms: HookConfig::read(v, "SEND_SMS")?,
            send_email: HookConfig::read(v, "SEND_EMAIL")?,
            custom_access_token: HookConfig::read(v, "CUSTOM_ACCESS_TOKEN")?,
            timeout,
        })
    }
}
