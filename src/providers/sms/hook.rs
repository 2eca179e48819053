//! GoTrue's Send SMS hook: the code goes to the operator's own endpoint or database function,
//! which sends it through any vendor. The payload is GoTrue's `SendSMSInput`
//! (`internal/hooks/v0hooks/v0hooks.go`, built in `sendPhoneConfirmation`, `internal/api/phone.go`):
//!
//! ```json
//! {"metadata": {"uuid": "…", "time": "…", "name": "send-sms"},
//!  "user": { …the GoTrue user… },
//!  "sms": {"otp": "123456", "phone": "8613800138000"}}
//! ```
//!
//! GoTrue also sends `metadata.ip_address` when it knows the client's address; [`SmsMessage`]
//! does not carry it, so it is left out, as GoTrue leaves it out when empty. Any answer without
//! GoTrue's error object means sent.

use serde_json::{json, Value};

use super::{SmsError, SmsMessage, SmsSent};
use crate::providers::hooks::Hook;

pub const NAME: &str = "hook";

/// The Send SMS hook.
#[derive(Debug, Clone)]
pub struct SmsHook {
    hook: Hook,
}

impl SmsHook {
    pub fn new(hook: Hook) -> SmsHook {
        SmsHook { hook }
    }

    pub fn hook(&self) -> &Hook {
        &self.hook
    }

    /// GoTrue's `SendSMSInput` for `msg`.
    pub fn payload(msg: &SmsMessage<'_>) -> Value {
        json!({
            "metadata": {
                "uuid": uuid::Uuid::new_v4(),
                "time": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                "name": "send-sms",
            },
            "user": msg.user,
            "sms": { "otp": msg.otp, "phone": msg.phone },
        })
    }

    /// Calls an HTTP hook once.
    pub async fn send(&self, msg: &SmsMessage<'_>) -> Result<SmsSent, SmsError> {
        self.hook.call_http(&Self::payload(msg)).await?;
        Ok(SmsSent { message_id: None })
    }

    /// Calls a `pg-functions` hook on `conn`, normally the request's transaction.
    pub fn send_sql(
        &self,
        conn: &mut diesel::PgConnection,
        msg: &SmsMessage<'_>,
    ) -> Result<SmsSent, SmsError> {
        self.hook.call_sql(conn, &Self::payload(msg))?;
        Ok(SmsSent { message_id: None })
    }
}
