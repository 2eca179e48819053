//! The client side of WeChat's legacy open-data crypto (what `wx.getUserInfo` and the old
//! `getPhoneNumber` produce), built on weauth's own [`crate::providers::wechat::crypto`].

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::state::random_bytes;
use crate::providers::wechat::crypto as wx;

pub use wx::signature;

/// Encrypts `plaintext` the way WeChat builds `encryptedData`; returns `(encryptedData, iv)`.
pub fn encrypt(session_key: &str, plaintext: &[u8]) -> Result<(String, String), String> {
    let iv = STANDARD.encode(random_bytes::<16>());
    let data = wx::encrypt(session_key, plaintext, &iv).map_err(|e| e.to_string())?;
    Ok((data, iv))
}
