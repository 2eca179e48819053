//! The outside services weauth calls. Each lives in one module here and returns its own error
//! type (what failed, never an HTTP status); `error.rs` maps those to what clients see, in one
//! place. Flows call providers; providers never call flows or the API.
//!
//! * [`wechat`]: WeChat's server API (mini-program login, phone numbers, QR codes) and the
//!   access token shared by every instance.
//! * [`sms`]: SMS senders for phone one-time codes (Aliyun, Tencent Cloud, GoTrue's Send SMS hook).
//! * [`mail`]: e-mail senders (SMTP, GoTrue's Send Email hook).

pub mod mail;
pub mod sms;
pub mod wechat;
