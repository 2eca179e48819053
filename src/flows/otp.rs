//! The one one-time-code mechanism, shared by SMS and e-mail (GoTrue: `crypto.GenerateOtp`,
//! `crypto.GenerateTokenHash`, `isOtpValid` in `verify.go`, `generateFrequencyLimitErrorMessage`).
//!
//! A code is `length` random digits. Only its hash is stored: hex SHA-224 of the e-mail address
//! or phone number followed by the code, in the user's `*_token` column and in
//! `auth.one_time_tokens` ([`crate::models::one_time_token`]). A code is checked in constant
//! time, expires `exp` after it was sent, is used once (a successful verification clears every
//! pending code of the user), and dies after `max_attempts` wrong guesses. Senders are in
//! [`super::phone`] (SMS) and the mail module; nothing here knows how a code travels.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use rand::Rng;
use sha2::{Digest, Sha224};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::one_time_token;
pub use crate::models::one_time_token::TokenType;
use crate::models::user::User;

/// A fresh code and its hash. The code goes to the user and nowhere else: `Debug` hides it.
pub struct OneTimeCode {
    pub otp: String,
    pub token_hash: String,
}

impl std::fmt::Debug for OneTimeCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OneTimeCode(***)")
    }
}

impl OneTimeCode {
    /// `length` random digits for `relates_to` (the e-mail address or phone number).
    pub fn generate(relates_to: &str, length: usize) -> OneTimeCode {
        let mut rng = rand::rngs::OsRng;
        let otp: String = (0..length)
            .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
            .collect();
        OneTimeCode::fixed(relates_to, otp)
    }

    /// A given code (a `GOTRUE_SMS_TEST_OTP` number's).
    pub fn fixed(relates_to: &str, otp: impl Into<String>) -> OneTimeCode {
        let otp = otp.into();
        OneTimeCode {
            token_hash: token_hash(relates_to, &otp),
            otp,
        }
    }
}

/// GoTrue's `GenerateTokenHash`: hex SHA-224 of the address or number followed by the code.
pub fn token_hash(relates_to: &str, otp: &str) -> String {
    hex::encode(Sha224::digest(format!("{relates_to}{otp}").as_bytes()))
}

/// When the user's pending code of `kind` was sent.
pub fn sent_at(user: &User, kind: TokenType) -> Option<DateTime<Utc>> {
    match kind {
        TokenType::Confirmation => user.confirmation_sent_at,
        TokenType::Recovery => user.recovery_sent_at,
        TokenType::EmailChangeNew | TokenType::EmailChangeCurrent => user.email_change_sent_at,
        TokenType::PhoneChange => user.phone_change_sent_at,
        TokenType::Reauthentication => user.reauthentication_sent_at,
    }
}

/// 429 `code` with GoTrue's message when the last code went out less than `max_frequency` ago.
pub fn ensure_resend_allowed(
    last_sent: Option<DateTime<Utc>>,
    max_frequency: Duration,
    now: DateTime<Utc>,
    code: ErrorCode,
) -> ApiResult<()> {
    let Some(last_sent) = last_sent else {
        return Ok(());
    };
    let next = last_sent + chrono::Duration::from_std(max_frequency).unwrap_or_default();
    if next <= now {
        return Ok(());
    }
    let wait_ms = (next - now).num_milliseconds().max(0);
    let wait_secs = (wait_ms + 999) / 1000;
    Err(ApiError::too_many_requests(
        code,
        format!("For security purposes, you can only request this after {wait_secs} seconds."),
    ))
}

/// Stores `code` as the user's pending code of `kind` (replacing any older one).
pub fn store(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: TokenType,
    relates_to: &str,
    code: &OneTimeCode,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    if one_time_token::store(conn, user_id, kind, &code.token_hash, relates_to, now)? {
        Ok(())
    } else {
        Err(super::account::user_not_found())
    }
}

/// How long codes live and how many wrong guesses they survive.
#[derive(Clone, Copy, Debug)]
pub struct Rules {
    pub exp: Duration,
    pub max_attempts: u32,
}

/// The outcome of [`check`]. A wrong code is an `Ok` outcome, not an error, so the caller's
/// transaction commits the failure count before answering 403.
#[derive(Debug, PartialEq, Eq)]
pub enum Checked {
    Valid,
    Wrong,
}

/// Checks `token_hash` against the user's pending code of `kind`, locking the user's row: valid
/// when one is pending, it was sent less than `rules.exp` ago and the hashes are equal (also
/// with GoTrue's `pkce_` prefix). A wrong code counts against the pending one; the
/// `max_attempts`-th voids it.
pub fn check(
    conn: &mut PgConnection,
    user_id: Uuid,
    kind: TokenType,
    token_hash: &str,
    rules: Rules,
    now: DateTime<Utc>,
) -> ApiResult<Checked> {
    let Some(pending) = one_time_token::pending_for_update(conn, user_id, kind)? else {
        return Ok(Checked::Wrong);
    };
    let live = pending.sent_at.is_some_and(|sent| {
        now <= sent + chrono::Duration::from_std(rules.exp).unwrap_or_default()
    });
    let stored = pending.token_hash.as_bytes();
    let matches = |candidate: &[u8]| bool::from(candidate.ct_eq(stored));
    let equal = !stored.is_empty()
        && (matches(token_hash.as_bytes()) || matches(format!("pkce_{token_hash}").as_bytes()));
    if live && equal && pending.failures < rules.max_attempts as i32 {
        return Ok(Checked::Valid);
    }
    if !stored.is_empty() {
        let failures = one_time_token::count_failure(conn, user_id, kind)?;
        if failures >= rules.max_attempts as i32 {
            one_time_token::void(conn, user_id, kind)?;
        }
    }
    Ok(Checked::Wrong)
}

/// After a successful verification: no pending code of the user stays usable (GoTrue's
/// `ClearAllOneTimeTokensForUser`). The users' own token columns are emptied by the update
/// that applies the verification.
pub fn clear_all(conn: &mut PgConnection, user_id: Uuid) -> ApiResult<()> {
    Ok(one_time_token::clear_all(conn, user_id)?)
}

/// GoTrue's answer to a wrong, used or expired code.
pub fn invalid_code() -> ApiError {
    ApiError::forbidden(ErrorCode::OtpExpired, "Token has expired or is invalid")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_hash_is_gotrues() {
        // hex(SHA-224("8613800138000" + "123456")), as GoTrue's GenerateTokenHash computes it.
        let expected = hex::encode(Sha224::digest(b"8613800138000123456"));
        assert_eq!(token_hash("8613800138000", "123456"), expected);
        assert_eq!(expected.len(), 56);
        // SHA-224("abc"), FIPS 180-2's example: the digest really is SHA-224.
        assert_eq!(
            token_hash("ab", "c"),
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
    }

    #[test]
    fn codes_are_digits_of_the_length_asked() {
        for len in [6, 8, 10] {
            let code = OneTimeCode::generate("x", len);
            assert_eq!(code.otp.len(), len);
            assert!(code.otp.bytes().all(|b| b.is_ascii_digit()));
            assert_eq!(code.token_hash, token_hash("x", &code.otp));
            assert!(!format!("{code:?}").contains(&code.otp));
        }
    }

    #[test]
    fn resend_interval_message_counts_seconds_up() {
        let now = Utc::now();
        let err = ensure_resend_allowed(
            Some(now - chrono::Duration::milliseconds(20_500)),
            Duration::from_secs(60),
            now,
            ErrorCode::OverSmsSendRateLimit,
        )
        .unwrap_err();
        assert_eq!(err.status.as_u16(), 429);
        assert_eq!(
            err.msg,
            "For security purposes, you can only request this after 40 seconds."
        );
        assert!(ensure_resend_allowed(
            Some(now - chrono::Duration::seconds(61)),
            Duration::from_secs(60),
            now,
            ErrorCode::OverSmsSendRateLimit
        )
        .is_ok());
        assert!(ensure_resend_allowed(
            None,
            Duration::from_secs(60),
            now,
            ErrorCode::OverSmsSendRateLimit
        )
        .is_ok());
    }
}
