//! The outside services weauth calls. Each lives in one module here and returns its own error
//! type (what failed, never an HTTP status); `error.rs` maps those to what clients see, in one
//! place. Flows call providers; providers never call flows or the API.
//!
//! * [`wechat`]: WeChat's server API (mini-program login, phone numbers, QR codes) and the
//!   access token shared by every instance.
//! * [`sms`]: SMS senders for phone one-time codes (Aliyun, Tencent Cloud, GoTrue's Send SMS hook).
//! * [`mail`]: e-mail senders (SMTP, GoTrue's Send Email hook).
//! * [`hooks`]: GoTrue's auth hooks (an HTTP endpoint signed per Standard Webhooks, or a
//!   PostgreSQL function).
//!
//! None of them retries a call on its own: a send that timed out may still have been delivered,
//! and a second SMS costs money and confuses the user.

pub mod hooks;
pub mod mail;
pub mod sms;
pub mod wechat;

#[cfg(test)]
pub(crate) mod testing;

/// Replaces every occurrence of `secret` in `text` (a provider's error message may echo request
/// parameters, such as the template variables that carry the one-time code) and caps the length,
/// so the result is safe to log.
pub(crate) fn scrub(text: &str, secret: &str) -> String {
    const MAX: usize = 300;
    let cleaned = if secret.is_empty() {
        text.to_string()
    } else {
        text.replace(secret, "***")
    };
    match cleaned.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &cleaned[..cut]),
        None => cleaned,
    }
}

/// Hex SHA-256, as both cloud signatures hash payloads and canonical requests.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// HMAC-SHA256 of `data` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    use hmac::Mac;
    // HMAC takes keys of any length, so new_from_slice never fails.
    let mut mac = match hmac::Hmac::<sha2::Sha256>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}
