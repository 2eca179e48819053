//! The legacy open-data crypto: AES-128-CBC/PKCS#7 keyed by the session key, and the
//! `sha1(rawData + session_key)` signature.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockEncryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

use super::state::{hex, random_bytes};

type Aes128CbcEnc = cbc::Encryptor<aes::Aes128>;

/// Encrypts `plaintext` the way WeChat builds `encryptedData`; returns `(encryptedData, iv)`.
pub fn encrypt(session_key: &str, plaintext: &[u8]) -> Result<(String, String), String> {
    let key = STANDARD
        .decode(session_key)
        .map_err(|e| format!("session key is not base64: {e}"))?;
    let iv = random_bytes::<16>();
    let cipher = encrypt_with_iv(&key, &iv, plaintext)?;
    Ok((STANDARD.encode(cipher), STANDARD.encode(iv)))
}

pub fn encrypt_with_iv(key: &[u8], iv: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, String> {
    let enc = Aes128CbcEnc::new_from_slices(key, iv)
        .map_err(|_| "AES key and iv must be 16 bytes".to_string())?;
    Ok(enc.encrypt_padded_vec_mut::<Pkcs7>(plaintext))
}

/// What a server does with `encryptedData` (only the tests need it here).
#[cfg(test)]
pub fn decrypt(session_key: &str, encrypted_data: &str, iv: &str) -> Result<Vec<u8>, String> {
    use aes::cipher::BlockDecryptMut;
    let key = STANDARD.decode(session_key).map_err(|e| e.to_string())?;
    let iv = STANDARD.decode(iv).map_err(|e| e.to_string())?;
    let data = STANDARD.decode(encrypted_data).map_err(|e| e.to_string())?;
    let dec =
        cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv).map_err(|e| e.to_string())?;
    dec.decrypt_padded_vec_mut::<Pkcs7>(&data)
        .map_err(|e| e.to_string())
}

/// `signature = hex(sha1(rawData + session_key))`, the session key concatenated as text.
pub fn signature(raw_data: &str, session_key: &str) -> String {
    let mut h = Sha1::new();
    h.update(raw_data.as_bytes());
    h.update(session_key.as_bytes());
    hex(&h.finalize())
}
