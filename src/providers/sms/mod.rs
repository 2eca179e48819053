//! Sending one-time codes by SMS: Aliyun ([`aliyun`]), Tencent Cloud ([`tencent`]) or GoTrue's
//! Send SMS hook ([`hook`]). GoTrue's counterpart is `internal/api/sms_provider/` plus the hook
//! branch of `sendPhoneConfirmation` in `internal/api/phone.go`.
//!
//! Sends are not idempotent, so nothing here retries: a timed-out send may have been delivered,
//! and a second one costs money and shows the user two codes. Provider errors keep the provider's
//! code (for the log and for the mapping to GoTrue's `over_sms_send_rate_limit`,
//! `validation_failed` and `sms_send_failed`); the one-time code and the credentials never appear
//! in an error, a `Debug` output or a log line.

pub mod aliyun;
pub mod hook;
pub mod tencent;

use std::time::Duration;

use crate::config::{HooksConfig, SmsConfig, SmsProviderConfig};
use crate::providers::hooks::{Hook, HookError};

pub use aliyun::AliyunSms;
pub use hook::SmsHook;
pub use tencent::TencentSms;

/// One code to send.
#[derive(Clone, Copy)]
pub struct SmsMessage<'a> {
    /// GoTrue's stored form: E.164 digits without `+`, e.g. `8613800138000`.
    pub phone: &'a str,
    /// The one-time code.
    pub otp: &'a str,
    /// The rendered `GOTRUE_SMS_TEMPLATE`. Aliyun and Tencent send their approved template
    /// instead (China requires one), so only the hook could use it; GoTrue's hook payload does
    /// not carry it either.
    pub text: &'a str,
    /// The GoTrue user JSON, for the hook payload.
    pub user: &'a serde_json::Value,
}

/// The OTP must not show up in logs through `{:?}`.
impl std::fmt::Debug for SmsMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsMessage")
            .field("phone", &self.phone)
            .finish_non_exhaustive()
    }
}

/// A send the provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsSent {
    /// Aliyun's `BizId`, Tencent's `SerialNo`; `None` for the hook.
    pub message_id: Option<String>,
}

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// The provider's rate limit for this number or account (Aliyun `isv.BUSINESS_LIMIT_CONTROL`,
    /// Tencent `LimitExceeded.*`). GoTrue: 429 `over_sms_send_rate_limit`.
    #[error("{provider} rate-limited the send ({code})")]
    RateLimited {
        provider: &'static str,
        code: String,
    },
    /// The provider refused the number (Aliyun `isv.MOBILE_NUMBER_ILLEGAL`, Tencent
    /// `InvalidParameterValue.IncorrectPhoneNumber`), or weauth did before sending
    /// (`weauth.phone_format`: not 5 to 15 digits). GoTrue: 400 `validation_failed`.
    #[error("{provider} refused the phone number ({code})")]
    InvalidNumber {
        provider: &'static str,
        code: String,
    },
    /// A configuration or account problem: signature or template not approved, balance, bad
    /// credentials, clock skew. `message` is the provider's, with the code scrubbed, safe to log.
    /// GoTrue: 422 `sms_send_failed`.
    #[error("{provider} rejected the send ({code}): {message}")]
    Rejected {
        provider: &'static str,
        code: String,
        message: String,
    },
    /// No usable answer: transport error, timeout, 5xx, the provider's own system errors, or a
    /// body that is not the API's. The message may or may not have been sent.
    #[error("{provider} is unavailable: {reason}")]
    Unavailable {
        provider: &'static str,
        reason: String,
    },
    /// The Send SMS hook failed.
    #[error("the send SMS hook failed: {0}")]
    Hook(#[from] HookError),
}

/// The configured sender.
#[derive(Debug, Clone)]
pub enum SmsProvider {
    Aliyun(AliyunSms),
    Tencent(TencentSms),
    Hook(SmsHook),
}

impl SmsProvider {
    /// Builds the sender `GOTRUE_SMS_PROVIDER` (or the enabled Send SMS hook) names; `None` when
    /// none is configured. Fails only if the HTTP client cannot be built.
    pub fn from_config(
        sms: &SmsConfig,
        hooks: &HooksConfig,
    ) -> Result<Option<SmsProvider>, reqwest::Error> {
        Ok(match &sms.provider {
            None => None,
            Some(SmsProviderConfig::Aliyun(c)) => {
                Some(SmsProvider::Aliyun(AliyunSms::new(c, sms.timeout)?))
            }
            Some(SmsProviderConfig::Tencent(c)) => {
                Some(SmsProvider::Tencent(TencentSms::new(c, sms.timeout)?))
            }
            Some(SmsProviderConfig::Hook) => match hooks.send_sms.active() {
                Some(endpoint) => Some(SmsProvider::Hook(SmsHook::new(Hook::new(
                    "send_sms",
                    endpoint.clone(),
                    hooks.timeout,
                )?))),
                None => None,
            },
        })
    }

    /// `aliyun`, `tencent` or `hook`, for logs and `/settings`.
    pub fn name(&self) -> &'static str {
        match self {
            SmsProvider::Aliyun(_) => aliyun::NAME,
            SmsProvider::Tencent(_) => tencent::NAME,
            SmsProvider::Hook(_) => hook::NAME,
        }
    }

    /// True for a `pg-functions` Send SMS hook: call [`SmsProvider::send_sql`] on the request's
    /// transaction instead of [`SmsProvider::send`].
    pub fn runs_in_database(&self) -> bool {
        matches!(self, SmsProvider::Hook(h) if h.hook().is_pg_function())
    }

    /// Sends `msg` once. A `pg-functions` hook answers `SmsError::Hook(HookError::WrongTarget)`:
    /// it needs [`SmsProvider::send_sql`].
    pub async fn send(&self, msg: &SmsMessage<'_>) -> Result<SmsSent, SmsError> {
        let started = std::time::Instant::now();
        let result = match self {
            SmsProvider::Aliyun(p) => p.send(msg).await,
            SmsProvider::Tencent(p) => p.send(msg).await,
            SmsProvider::Hook(p) => p.send(msg).await,
        };
        log_send(self.name(), started, &result);
        result
    }

    /// Sends `msg` through a `pg-functions` Send SMS hook on `conn` (the request's transaction).
    /// Any other provider answers `SmsError::Hook(HookError::WrongTarget)`.
    pub fn send_sql(
        &self,
        conn: &mut diesel::PgConnection,
        msg: &SmsMessage<'_>,
    ) -> Result<SmsSent, SmsError> {
        let started = std::time::Instant::now();
        let result = match self {
            SmsProvider::Hook(p) => p.send_sql(conn, msg),
            _ => Err(SmsError::Hook(HookError::WrongTarget(self.name()))),
        };
        log_send(self.name(), started, &result);
        result
    }
}

/// One line (and one metric sample) per send with the outcome and the provider's code; never
/// the number's code or credentials.
fn log_send(provider: &'static str, started: std::time::Instant, result: &Result<SmsSent, SmsError>) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(SmsError::RateLimited { .. }) => "rate_limited",
        Err(SmsError::InvalidNumber { .. }) => "invalid_number",
        Err(SmsError::Rejected { .. }) => "rejected",
        Err(SmsError::Unavailable { .. }) => "unavailable",
        Err(SmsError::Hook(_)) => "hook_failed",
    };
    crate::metrics::METRICS.sms_send(provider, outcome, started.elapsed());
    match result {
        Ok(sent) => tracing::info!(
            provider,
            message_id = sent.message_id.as_deref().unwrap_or(""),
            "SMS sent"
        ),
        Err(e) => tracing::warn!(provider, error = %e, "SMS send failed"),
    }
}

/// A stored number's digits, checked: E.164 allows at most 15, and fewer than 5 is no phone.
/// GoTrue stores numbers without `+`; a leading `+` is tolerated.
fn e164_digits<'a>(provider: &'static str, phone: &'a str) -> Result<&'a str, SmsError> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    if (5..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(SmsError::InvalidNumber {
            provider,
            code: "weauth.phone_format".into(),
        })
    }
}

/// The shared HTTP client of a provider: bounded, no redirects (a signed request goes only to
/// the configured endpoint).
fn http_client(timeout: Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(3).min(timeout))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("weauth/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// reqwest's error text includes the URL, whose query carries the number and, for Aliyun, the
/// code: it is dropped.
fn transport_error(provider: &'static str, e: reqwest::Error) -> SmsError {
    let reason = if e.is_timeout() {
        "no answer in time".to_string()
    } else {
        e.without_url().to_string()
    };
    SmsError::Unavailable { provider, reason }
}

/// The host (and port, when not the scheme's default) as reqwest sends it in `Host`; both
/// signatures cover it.
fn host_header(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests;
