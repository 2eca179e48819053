//! The client side of WeChat's legacy open-data crypto (what `wx.getUserInfo` and the old
//! `getPhoneNumber` produce): AES-128-CBC with PKCS#7, key = base64-decoded session_key, and the
//! `sha1(rawData + session_key)` signature. weauth holds the other side (decrypt and verify).

use aes::cipher::{block_padding::Pkcs7, BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

use super::state::{hex, random_bytes};

type Encryptor = cbc::Encryptor<aes::Aes128>;

/// Encrypts `plaintext` the way WeChat builds `encryptedData`, with a fresh random iv; returns
/// `(encryptedData, iv)`, both base64.
pub fn encrypt(session_key: &str, plaintext: &[u8]) -> Result<(String, String), String> {
    let iv = random_bytes::<16>();
    let data = encrypt_with_iv(session_key, plaintext, &iv)?;
    Ok((data, STANDARD.encode(iv)))
}

/// [`encrypt`] with a given iv (tests reproduce WeChat's published vector with it).
pub fn encrypt_with_iv(
    session_key: &str,
    plaintext: &[u8],
    iv: &[u8; 16],
) -> Result<String, String> {
    let key: [u8; 16] = STANDARD
        .decode(session_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| "session key is not valid base64 of 16 bytes".to_string())?;
    Ok(STANDARD
        .encode(Encryptor::new(&key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plaintext)))
}

/// `hex(sha1(rawData + session_key))`, WeChat's signature over `rawData`.
pub fn signature(raw_data: &str, session_key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.as_bytes());
    hex(&hasher.finalize())
}
