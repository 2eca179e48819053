//! Sending SMS (`GOTRUE_SMS_PROVIDER` and the `WEAUTH_SMS_*` provider settings). GoTrue's own
//! providers (Twilio, MessageBird, Textlocal, Vonage) are not offered; Aliyun and Tencent Cloud
//! are, and GoTrue's Send SMS hook reaches any other vendor. As in GoTrue, an enabled Send SMS
//! hook takes precedence over `GOTRUE_SMS_PROVIDER` (`internal/api/phone.go`).

use std::time::Duration;

use super::{ConfigError, HooksConfig, Secret, Vars};

/// Aliyun SMS (dysmsapi `SendSms`).
#[derive(Clone, Debug)]
pub struct AliyunSmsConfig {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// An approved signature (签名), e.g. the app's name.
    pub sign_name: String,
    /// An approved verification-code template, e.g. `SMS_123456789`.
    pub template_code: String,
    /// The template variable that receives the code (`${code}` in the template → `code`).
    pub template_param: String,
    /// Base URL, `https://dysmsapi.aliyuncs.com` (or the emulator).
    pub endpoint: String,
}

/// Tencent Cloud SMS (`SendSms`, 2021-01-11).
#[derive(Clone, Debug)]
pub struct TencentSmsConfig {
    pub secret_id: String,
    pub secret_key: Secret,
    /// The SMS application's SdkAppId, e.g. `1400006666`.
    pub sdk_app_id: String,
    /// An approved signature (required for mainland numbers).
    pub sign_name: String,
    /// An approved template whose first parameter `{1}` is the code.
    pub template_id: String,
    pub region: String,
    /// Base URL, `https://sms.tencentcloudapi.com` (or the emulator).
    pub endpoint: String,
}

/// Who sends the codes.
#[derive(Clone, Debug)]
pub enum SmsProviderConfig {
    Aliyun(AliyunSmsConfig),
    Tencent(TencentSmsConfig),
    /// The Send SMS hook (`HooksConfig::send_sms`).
    Hook,
}

#[derive(Clone, Debug)]
pub struct SmsConfig {
    /// `None`: no provider configured, phone codes cannot be sent.
    pub provider: Option<SmsProviderConfig>,
    /// Bound of one provider call (`WEAUTH_SMS_TIMEOUT_MS`, default 10000 as GoTrue's
    /// `GOTRUE_INTERNAL_HTTP_TIMEOUT`).
    pub timeout: Duration,
    /// How long a code is valid (`GOTRUE_SMS_OTP_EXP`, seconds, default 60).
    pub otp_exp: Duration,
    /// Digits in a code (`GOTRUE_SMS_OTP_LENGTH`, 6 to 10, default 6).
    pub otp_length: usize,
    /// Least time between two codes to one user (`GOTRUE_SMS_MAX_FREQUENCY`, default 1m).
    pub max_frequency: Duration,
    /// The message (`GOTRUE_SMS_TEMPLATE`, `{{ .Code }}` is the code). Only the hook could use
    /// it: Aliyun and Tencent send their approved templates.
    pub template: String,
    /// Numbers that get a fixed code and no SMS (`GOTRUE_SMS_TEST_OTP`, `phone:code,…`), until
    /// `GOTRUE_SMS_TEST_OTP_VALID_UNTIL` (RFC 3339) when that is set.
    pub test_otps: Vec<(String, String)>,
    pub test_otp_valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// Wrong codes a pending code survives (`WEAUTH_SMS_OTP_MAX_ATTEMPTS`, default 5); then it is
    /// void and a new one must be requested. GoTrue has only the per-client verify rate limit.
    pub otp_max_attempts: u32,
}

impl SmsConfig {
    /// The fixed code of a `GOTRUE_SMS_TEST_OTP` number, while those are valid.
    pub fn test_otp(&self, phone: &str, now: chrono::DateTime<chrono::Utc>) -> Option<&str> {
        if self.test_otp_valid_until.is_some_and(|until| now > until) {
            return None;
        }
        self.test_otps
            .iter()
            .find(|(p, _)| p == phone)
            .map(|(_, code)| code.as_str())
    }
}

fn read_test_otps(v: &Vars<'_>) -> Result<Vec<(String, String)>, ConfigError> {
    v.list(&["GOTRUE_SMS_TEST_OTP"], "")
        .iter()
        .map(|pair| {
            let (phone, code) = pair.split_once(':').ok_or_else(|| {
                ConfigError(
                    "GOTRUE_SMS_TEST_OTP must be phone:code pairs separated by commas".into(),
                )
            })?;
            let phone = phone.trim().trim_start_matches('+').replace(' ', "");
            let code = code.trim();
            if phone.is_empty() || code.is_empty() {
                return Err(ConfigError(
                    "GOTRUE_SMS_TEST_OTP must be phone:code pairs separated by commas".into(),
                ));
            }
            Ok((phone, code.to_string()))
        })
        .collect()
}

impl SmsConfig {
    pub fn read(v: &Vars<'_>, hooks: &HooksConfig) -> Result<SmsConfig, ConfigError> {
        let timeout = v.millis(&["WEAUTH_SMS_TIMEOUT_MS"], 10_000)?;
        if timeout.is_zero() {
            return Err(ConfigError(
                "WEAUTH_SMS_TIMEOUT_MS must be greater than 0".into(),
            ));
        }
        let choice = v
            .str(&["GOTRUE_SMS_PROVIDER"])
            .map(|p| p.trim().to_ascii_lowercase());
        let provider = if hooks.send_sms.active().is_some() {
            // GoTrue never looks at the provider then, so neither do we (not even its name).
            Some(SmsProviderConfig::Hook)
        } else {
            match choice.as_deref() {
                None => None,
                Some("aliyun") => Some(SmsProviderConfig::Aliyun(read_aliyun(v)?)),
                Some("tencent") => Some(SmsProviderConfig::Tencent(read_tencent(v)?)),
                // A GoTrue configuration carried over (twilio, vonage, ...) must not stop the
                // server: those vendors are not built in, so there is no SMS provider, and a
                // warning says how to reach them.
                Some(_) => {
                    tracing::warn!(
                        "GOTRUE_SMS_PROVIDER names a provider weauth does not have (it has aliyun and tencent); no SMS will be sent. Use GoTrue's Send SMS hook (GOTRUE_HOOK_SEND_SMS_ENABLED/_URI) for any other vendor"
                    );
                    None
                }
            }
        };
        let otp_length = v.parse(&["GOTRUE_SMS_OTP_LENGTH"], 6usize)?;
        if !(6..=10).contains(&otp_length) {
            return Err(ConfigError(
                "GOTRUE_SMS_OTP_LENGTH must be between 6 and 10".into(),
            ));
        }
        let test_otp_valid_until = match v.str(&["GOTRUE_SMS_TEST_OTP_VALID_UNTIL"]) {
            None => None,
            Some(raw) => Some(
                chrono::DateTime::parse_from_rfc3339(raw.trim())
                    .map_err(|_| {
                        ConfigError(
                            "GOTRUE_SMS_TEST_OTP_VALID_UNTIL must be an RFC 3339 time".into(),
                        )
                    })?
                    .with_timezone(&chrono::Utc),
            ),
        };
        Ok(SmsConfig {
            provider,
            timeout,
            otp_exp: Duration::from_secs(v.parse(&["GOTRUE_SMS_OTP_EXP"], 60u64)?),
            otp_length,
            max_frequency: v.go_duration(&["GOTRUE_SMS_MAX_FREQUENCY"], Duration::from_secs(60))?,
            template: v.str_or(&["GOTRUE_SMS_TEMPLATE"], "Your code is {{ .Code }}"),
            test_otps: read_test_otps(v)?,
            test_otp_valid_until,
            otp_max_attempts: v.parse(&["WEAUTH_SMS_OTP_MAX_ATTEMPTS"], 5u32)?.max(1),
        })
    }
}

/// Collects the required variables of one provider, so that all missing ones are named at once.
struct Required<'v, 'a> {
    v: &'v Vars<'a>,
    provider: &'static str,
    missing: Vec<&'static str>,
}

impl Required<'_, '_> {
    fn get(&mut self, name: &'static str) -> String {
        self.v
            .str(&[name])
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| {
                self.missing.push(name);
                String::new()
            })
    }

    fn finish(self) -> Result<(), ConfigError> {
        if self.missing.is_empty() {
            return Ok(());
        }
        Err(ConfigError(format!(
            "GOTRUE_SMS_PROVIDER={} needs {}",
            self.provider,
            self.missing.join(", ")
        )))
    }
}

fn endpoint(v: &Vars<'_>, name: &str, default: &str) -> Result<String, ConfigError> {
    let endpoint = v
        .str_or(&[name], default)
        .trim()
        .trim_end_matches('/')
        .to_string();
    let url =
        url::Url::parse(&endpoint).map_err(|e| ConfigError(format!("{name} is invalid: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError(format!("{name} must be an http(s) URL")));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(ConfigError(format!(
            "{name} must be a base URL without path or query, like {default}"
        )));
    }
    if v.production && url.scheme() != "https" {
        tracing::warn!(
            name,
            "SMS endpoint is not https; is the emulator configured in production?"
        );
    }
    Ok(endpoint)
}

fn read_aliyun(v: &Vars<'_>) -> Result<AliyunSmsConfig, ConfigError> {
    let mut req = Required {
        v,
        provider: "aliyun",
        missing: Vec::new(),
    };
    let access_key_id = req.get("WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID");
    let access_key_secret = Secret::new(req.get("WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET"));
    let sign_name = req.get("WEAUTH_SMS_ALIYUN_SIGN_NAME");
    let template_code = req.get("WEAUTH_SMS_ALIYUN_TEMPLATE_CODE");
    req.finish()?;
    Ok(AliyunSmsConfig {
        access_key_id,
        access_key_secret,
        sign_name,
        template_code,
        template_param: v
            .str_or(&["WEAUTH_SMS_ALIYUN_TEMPLATE_PARAM"], "code")
            .trim()
            .to_string(),
        endpoint: endpoint(
            v,
            "WEAUTH_SMS_ALIYUN_ENDPOINT",
            "https://dysmsapi.aliyuncs.com",
        )?,
    })
}

fn read_tencent(v: &Vars<'_>) -> Result<TencentSmsConfig, ConfigError> {
    let mut req = Required {
        v,
        provider: "tencent",
        missing: Vec::new(),
    };
    let secret_id = req.get("WEAUTH_SMS_TENCENT_SECRET_ID");
    let secret_key = Secret::new(req.get("WEAUTH_SMS_TENCENT_SECRET_KEY"));
    let sdk_app_id = req.get("WEAUTH_SMS_TENCENT_SDK_APP_ID");
    let sign_name = req.get("WEAUTH_SMS_TENCENT_SIGN_NAME");
    let template_id = req.get("WEAUTH_SMS_TENCENT_TEMPLATE_ID");
    req.finish()?;
    Ok(TencentSmsConfig {
        secret_id,
        secret_key,
        sdk_app_id,
        sign_name,
        template_id,
        region: v
            .str_or(&["WEAUTH_SMS_TENCENT_REGION"], "ap-guangzhou")
            .trim()
            .to_string(),
        endpoint: endpoint(
            v,
            "WEAUTH_SMS_TENCENT_ENDPOINT",
            "https://sms.tencentcloudapi.com",
        )?,
    })
}
