//! Refresh-token rotation and the audit log (`GOTRUE_SECURITY_*`, `GOTRUE_AUDIT_LOG_*`).

use super::{ConfigError, Vars};

#[derive(Clone, Debug)]
pub struct SecurityConfig {
    pub refresh_token_rotation_enabled: bool,
    /// Seconds during which a just-rotated refresh token still returns the current one.
    pub refresh_token_reuse_interval: i64,
    pub audit_log_disable_postgres: bool,
    /// A password change needs a reauthentication code (`nonce`) unless the session is less
    /// than 24 hours old (`GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION`).
    pub update_password_require_reauthentication: bool,
}

impl SecurityConfig {
    pub fn read(v: &Vars<'_>) -> Result<SecurityConfig, ConfigError> {
        let config = SecurityConfig {
            refresh_token_rotation_enabled: v
                .bool(&["GOTRUE_SECURITY_REFRESH_TOKEN_ROTATION_ENABLED"], true)?,
            refresh_token_reuse_interval: v
                .parse(&["GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL"], 10i64)?,
            audit_log_disable_postgres: v.bool(&["GOTRUE_AUDIT_LOG_DISABLE_POSTGRES"], false)?,
            update_password_require_reauthentication: v.bool(
                &["GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION"],
                false,
            )?,
        };
        if config.refresh_token_reuse_interval < 0 {
            return Err(ConfigError(
                "GOTRUE_SECURITY_REFRESH_TOKEN_REUSE_INTERVAL must not be negative".into(),
            ));
        }
        Ok(config)
    }
}
