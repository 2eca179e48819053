//! Authentication primitives: the key set access tokens are signed with ([`jwt`]), password
//! hashes ([`password`]), opaque refresh tokens and constant-time comparison.

pub mod jwt;
pub mod password;
pub mod webauthn;

use rand::Rng;

/// GoTrue's v1 refresh-token alphabet: lower-case RFC 4648 base32.
const REFRESH_TOKEN_ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A new opaque refresh token in GoTrue's v1 format (12 characters), so tokens stay valid if
/// GoTrue takes the database over again.
pub fn new_refresh_token() -> String {
    let mut rng = rand::rngs::OsRng;
    (0..12)
        .map(|_| REFRESH_TOKEN_ALPHABET[rng.gen_range(0..REFRESH_TOKEN_ALPHABET.len())] as char)
        .collect()
}

/// Compares two secrets in constant time.
pub fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    #[test]
    fn refresh_tokens_match_gotrue_v1_format() {
        let t = super::new_refresh_token();
        assert_eq!(t.len(), 12);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_lowercase() || ('2'..='7').contains(&c)),
            "{t}"
        );
        assert_ne!(t, super::new_refresh_token());
    }
}
