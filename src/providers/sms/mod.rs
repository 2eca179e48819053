//! SMS senders (the phone issue fills this in): one enum over the configured provider, each
//! variant its own module (`aliyun`, `tencent`, the Send SMS hook), all behind one call:
//!
//! ```text
//! pub enum SmsProvider { Aliyun(..), Tencent(..), Hook(..) }
//! impl SmsProvider { pub async fn send(&self, msg: &SmsMessage<'_>) -> Result<SmsSent, SmsError> }
//! ```
//!
//! `SmsError` says what failed (rate limited by the provider, invalid number, rejected
//! configuration, unavailable), with the provider's code and never a secret or the code sent;
//! `error.rs` maps it to GoTrue's answers (`over_sms_send_rate_limit`, `sms_send_failed`, ...).
//! The one-time code itself (generation, hashing, expiry) is not the sender's business.
