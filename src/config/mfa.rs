//! Multi-factor authentication (`GOTRUE_MFA_*`, `GOTRUE_WEBAUTHN_*`), with GoTrue's names and
//! defaults (`internal/conf/configuration.go` `MFAConfiguration`), plus weauth's lockout after
//! repeated wrong codes (`WEAUTH_MFA_*`), which GoTrue does not have.

use std::time::Duration;

use super::{ConfigError, Vars};

/// Enrolment and verification switches of one factor type.
#[derive(Clone, Copy, Debug)]
pub struct FactorSwitches {
    pub enroll_enabled: bool,
    pub verify_enabled: bool,
}

#[derive(Clone, Debug)]
pub struct PhoneMfaConfig {
    pub switches: FactorSwitches,
    /// Digits of the code (`GOTRUE_MFA_PHONE_OTP_LENGTH`, 6 to 10, default 6).
    pub otp_length: usize,
    /// Minimum time between two codes for one factor (`GOTRUE_MFA_PHONE_MAX_FREQUENCY`).
    pub max_frequency: Duration,
    /// The message, `{{ .Code }}` replaced by the code (`GOTRUE_MFA_PHONE_TEMPLATE`).
    pub template: String,
}

/// The WebAuthn relying party (`GOTRUE_WEBAUTHN_RP_ID`, `_RP_DISPLAY_NAME`, `_RP_ORIGINS`).
#[derive(Clone, Debug)]
pub struct WebAuthnRpConfig {
    pub rp_id: String,
    pub rp_display_name: String,
    pub rp_origins: Vec<String>,
}

impl WebAuthnRpConfig {
    /// GoTrue's `WebAuthnConfiguration.Validate`: all three are needed once WebAuthn factors
    /// are on. GoTrue only logs this and then fails every WebAuthn challenge; weauth refuses
    /// to start. The origins must be URLs with a host (`https://app.example`,
    /// `http://localhost:3000`), compared by scheme, host and port.
    fn validate(&self) -> Result<(), ConfigError> {
        let missing = |name: &str| {
            ConfigError(format!(
                "{name} is required when GOTRUE_MFA_WEB_AUTHN_ENROLL_ENABLED or _VERIFY_ENABLED is on"
            ))
        };
        if self.rp_id.is_empty() {
            return Err(missing("GOTRUE_WEBAUTHN_RP_ID"));
        }
        if self.rp_display_name.is_empty() {
            return Err(missing("GOTRUE_WEBAUTHN_RP_DISPLAY_NAME"));
        }
        if self.rp_origins.is_empty() {
            return Err(missing("GOTRUE_WEBAUTHN_RP_ORIGINS"));
        }
        if self.rp_id.contains(['/', ':', ' ']) {
            return Err(ConfigError(format!(
                "GOTRUE_WEBAUTHN_RP_ID must be a domain (example.com), got {:?}",
                self.rp_id
            )));
        }
        for origin in &self.rp_origins {
            let ok = url::Url::parse(origin).is_ok_and(|u| u.host_str().is_some());
            if !ok {
                return Err(ConfigError(format!(
                    "GOTRUE_WEBAUTHN_RP_ORIGINS has {origin:?}, which is not an origin (https://app.example)"
                )));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug)]
pub struct MfaConfig {
    /// How long a challenge can be verified (`GOTRUE_MFA_CHALLENGE_EXPIRY_DURATION`, seconds,
    /// default 300).
    pub challenge_expiry: Duration,
    /// Unverified factors without a challenge older than this are removed when the user enrols
    /// another (`GOTRUE_MFA_FACTOR_EXPIRY_DURATION`, default 300s).
    pub factor_expiry: Duration,
    /// `GOTRUE_MFA_MAX_ENROLLED_FACTORS` (default 10).
    pub max_enrolled_factors: u32,
    /// `GOTRUE_MFA_MAX_VERIFIED_FACTORS` (default 10).
    pub max_verified_factors: u32,
    /// `GOTRUE_MFA_TOTP_ENROLL_ENABLED` / `_VERIFY_ENABLED` (default on).
    pub totp: FactorSwitches,
    /// `GOTRUE_MFA_PHONE_*` (default off).
    pub phone: PhoneMfaConfig,
    /// `GOTRUE_MFA_WEB_AUTHN_ENROLL_ENABLED` / `_VERIFY_ENABLED` (default off).
    pub webauthn: FactorSwitches,
    pub webauthn_rp: WebAuthnRpConfig,
    /// Consecutive wrong codes for one factor before it is locked
    /// (`WEAUTH_MFA_MAX_FAILED_ATTEMPTS`, default 5; 0 turns the lockout off).
    pub max_failed_attempts: u32,
    /// How long a locked factor refuses verification (`WEAUTH_MFA_LOCKOUT_DURATION`, default
    /// 300s).
    pub lockout: Duration,
}

impl MfaConfig {
    pub fn read(v: &Vars<'_>) -> Result<MfaConfig, ConfigError> {
        let switches = |prefix: &str, default: bool| -> Result<FactorSwitches, ConfigError> {
            Ok(FactorSwitches {
                enroll_enabled: v.bool(&[&format!("{prefix}_ENROLL_ENABLED")], default)?,
                verify_enabled: v.bool(&[&format!("{prefix}_VERIFY_ENABLED")], default)?,
            })
        };
        let otp_length: usize = v.parse(&["GOTRUE_MFA_PHONE_OTP_LENGTH"], 6)?;
        let config = MfaConfig {
            challenge_expiry: duration(v, "GOTRUE_MFA_CHALLENGE_EXPIRY_DURATION", 300)?,
            factor_expiry: duration(v, "GOTRUE_MFA_FACTOR_EXPIRY_DURATION", 300)?,
            max_enrolled_factors: v.parse(&["GOTRUE_MFA_MAX_ENROLLED_FACTORS"], 10)?,
            max_verified_factors: v.parse(&["GOTRUE_MFA_MAX_VERIFIED_FACTORS"], 10)?,
            totp: switches("GOTRUE_MFA_TOTP", true)?,
            phone: PhoneMfaConfig {
                switches: switches("GOTRUE_MFA_PHONE", false)?,
                // GoTrue's ApplyDefaults: out of 6..=10 becomes 6.
                otp_length: if (6..=10).contains(&otp_length) {
                    otp_length
                } else {
                    6
                },
                max_frequency: duration(v, "GOTRUE_MFA_PHONE_MAX_FREQUENCY", 60)?,
                template: v.str_or(&["GOTRUE_MFA_PHONE_TEMPLATE"], "Your code is {{ .Code }}"),
            },
            webauthn: switches("GOTRUE_MFA_WEB_AUTHN", false)?,
            webauthn_rp: WebAuthnRpConfig {
                rp_id: v.str_or(&["GOTRUE_WEBAUTHN_RP_ID"], ""),
                rp_display_name: v.str_or(&["GOTRUE_WEBAUTHN_RP_DISPLAY_NAME"], ""),
                rp_origins: v.list(&["GOTRUE_WEBAUTHN_RP_ORIGINS"], ""),
            },
            max_failed_attempts: v.parse(&["WEAUTH_MFA_MAX_FAILED_ATTEMPTS"], 5)?,
            lockout: duration(v, "WEAUTH_MFA_LOCKOUT_DURATION", 300)?,
        };
        if config.webauthn.enroll_enabled || config.webauthn.verify_enabled {
            config.webauthn_rp.validate()?;
        }
        Ok(config)
    }
}

/// A duration as GoTrue reads them: plain seconds (`300`, `0.5`) or Go's `300s`, `5m`, `1h`,
/// `500ms`.
fn duration(v: &Vars<'_>, name: &str, default_secs: u64) -> Result<Duration, ConfigError> {
    let Some(raw) = v.str(&[name]) else {
        return Ok(Duration::from_secs(default_secs));
    };
    parse_duration(raw.trim()).ok_or_else(|| {
        ConfigError(format!(
            "{name} must be a duration (300, 300s, 5m), got {raw:?}"
        ))
    })
}

fn parse_duration(raw: &str) -> Option<Duration> {
    let (number, unit) = match raw.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => raw.split_at(i),
        None => (raw, "s"),
    };
    let n: f64 = number.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations_read_like_gotrue() {
        assert_eq!(parse_duration("300"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("300s"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_duration("-1"), None);
        assert_eq!(parse_duration("5d"), None);
    }
}
