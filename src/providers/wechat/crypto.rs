//! WeChat's legacy open-data crypto (`wx.getUserInfo` / old `getPhoneNumber`): AES-128-CBC with
//! PKCS#7, key = base64-decoded session_key, and the `sha1(rawData + session_key)` signature.

use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, KeyIvInit};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha1::{Digest, Sha1};

use crate::auth::secure_eq;

type Decryptor = cbc::Decryptor<aes::Aes128>;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CryptoError {
    #[error("session key, iv or data is not valid base64 of the right length")]
    Encoding,
    #[error("decryption failed (stale session key?)")]
    Decrypt,
    #[error("decrypted data is not JSON")]
    Json,
    #[error("watermark app id does not match")]
    Watermark,
    #[error("signature does not match")]
    Signature,
}

fn key_and_iv(session_key: &str, iv: &str) -> Result<([u8; 16], [u8; 16]), CryptoError> {
    let key: [u8; 16] = STANDARD
        .decode(session_key)
        .ok()
        .and_then(|k| k.try_into().ok())
        .ok_or(CryptoError::Encoding)?;
    let iv: [u8; 16] = STANDARD
        .decode(iv)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or(CryptoError::Encoding)?;
    Ok((key, iv))
}

/// Decrypts `encryptedData` and checks `watermark.appid == app_id`.
pub fn decrypt(
    session_key: &str,
    encrypted_data: &str,
    iv: &str,
    app_id: &str,
) -> Result<serde_json::Value, CryptoError> {
    let (key, iv) = key_and_iv(session_key, iv)?;
    let data = STANDARD
        .decode(encrypted_data)
        .map_err(|_| CryptoError::Encoding)?;
    let plain = Decryptor::new(&key.into(), &iv.into())
        .decrypt_padded_vec_mut::<Pkcs7>(&data)
        .map_err(|_| CryptoError::Decrypt)?;
    let value: serde_json::Value = serde_json::from_slice(&plain).map_err(|_| CryptoError::Json)?;
    if value["watermark"]["appid"].as_str() != Some(app_id) {
        return Err(CryptoError::Watermark);
    }
    Ok(value)
}

/// `hex(sha1(rawData + session_key))`, WeChat's signature over `rawData`.
pub fn signature(raw_data: &str, session_key: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(raw_data.as_bytes());
    hasher.update(session_key.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Checks the `rawData` signature in constant time.
pub fn verify_signature(
    raw_data: &str,
    session_key: &str,
    signature_hex: &str,
) -> Result<(), CryptoError> {
    let expected = signature(raw_data, session_key);
    if secure_eq(
        expected.as_bytes(),
        signature_hex.to_ascii_lowercase().as_bytes(),
    ) {
        Ok(())
    } else {
        Err(CryptoError::Signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // WeChat's public test vector (aes-sample.zip, reproduced in easywechat and WxJava tests).
    const APP_ID: &str = "wx4f4bc4dec97d474b";
    const SESSION_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const ENCRYPTED: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

    #[test]
    fn decrypts_the_public_wechat_test_vector() {
        let v = decrypt(SESSION_KEY, ENCRYPTED, IV, APP_ID).unwrap();
        assert_eq!(v["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(v["nickName"], "Band");
        assert_eq!(v["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert_eq!(v["watermark"]["timestamp"], 1477314187);
    }

    #[test]
    fn rejects_corruption_wrong_keys_and_foreign_watermarks() {
        assert_eq!(
            decrypt(SESSION_KEY, ENCRYPTED, IV, "wxsomeoneelse"),
            Err(CryptoError::Watermark)
        );
        assert!(decrypt(SESSION_KEY, &format!("aaaa{ENCRYPTED}"), IV, APP_ID).is_err());
        assert!(decrypt("HyVFkGl5F5OQWJZZaNzBBg==", ENCRYPTED, IV, APP_ID).is_err());
        assert_eq!(
            decrypt("short", ENCRYPTED, IV, APP_ID),
            Err(CryptoError::Encoding)
        );
        assert_eq!(
            decrypt(SESSION_KEY, "%%%", IV, APP_ID),
            Err(CryptoError::Encoding)
        );
    }

    #[test]
    fn signature_matches_the_documented_example() {
        let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
        assert_eq!(
            signature(raw, "HyVFkGl5F5OQWJZZaNzBBg=="),
            "75e81ceda165f4ffa64f4068af58c64b8f54b88c"
        );
        assert!(verify_signature(
            raw,
            "HyVFkGl5F5OQWJZZaNzBBg==",
            "75E81CEDA165F4FFA64F4068AF58C64B8F54B88C"
        )
        .is_ok());
        assert_eq!(
            verify_signature(raw, "HyVFkGl5F5OQWJZZaNzBBg==", "00"),
            Err(CryptoError::Signature)
        );
    }
}
