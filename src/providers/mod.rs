//! Outside services weauth calls; each returns its own error type, mapped to API errors in one
//! place.
//!
//! [`hooks`] are GoTrue's auth hooks (an HTTP endpoint signed per Standard Webhooks, or a
//! PostgreSQL function); [`sms`] sends one-time codes through Aliyun, Tencent Cloud or the Send
//! SMS hook. None of them retries a call on its own: a send that timed out may still have been
//! delivered, and a second SMS costs money and confuses the user.

pub mod hooks;

#[cfg(test)]
pub(crate) mod testing;
