//! Input checks shared by the handlers (GoTrue `internal/api/mail.go` `validateEmail`,
//! `internal/api/phone.go` `validatePhone`).

use crate::error::{ApiError, ApiResult};

/// Longest e-mail GoTrue accepts (`users.email` is varchar(255)).
const MAX_EMAIL_LEN: usize = 255;

/// Lower-cases and checks an e-mail address: one `@`, a dotted domain, no spaces or controls.
pub fn email(raw: &str) -> ApiResult<String> {
    let email = raw.trim().to_lowercase();
    let invalid = || ApiError::validation("Unable to validate email address: invalid format");
    if email.len() > MAX_EMAIL_LEN {
        return Err(ApiError::validation("An email address is too long"));
    }
    let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
    let ok = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(email)
    } else {
        Err(invalid())
    }
}

/// [`email`] for an optional field; an empty string counts as absent.
pub fn optional_email(raw: Option<&str>) -> ApiResult<Option<String>> {
    raw.filter(|e| !e.is_empty()).map(email).transpose()
}

/// [`phone`] for an optional field; an empty string counts as absent.
pub fn optional_phone(raw: Option<&str>) -> ApiResult<Option<String>> {
    raw.filter(|p| !p.is_empty()).map(phone).transpose()
}

/// GoTrue's phone format: `+` and spaces stripped, then E.164 digits `^[1-9][0-9]{1,14}$`.
pub fn phone(raw: &str) -> ApiResult<String> {
    let phone: String = raw.chars().filter(|c| *c != '+' && *c != ' ').collect();
    let ok = (2..=15).contains(&phone.len())
        && phone.chars().all(|c| c.is_ascii_digit())
        && !phone.starts_with('0');
    if ok {
        Ok(phone)
    } else {
        Err(ApiError::validation(
            "Invalid phone number format (E.164 required)",
        ))
    }
}

/// Largest `user_metadata`/`app_metadata` object accepted, serialized (weauth's limit; GoTrue
/// is bounded only by its 1 MiB body limit).
pub const MAX_METADATA_BYTES: usize = 64 * 1024;

/// Checks a metadata object before it is stored as `jsonb`: at most [`MAX_METADATA_BYTES`], and
/// no NUL character anywhere (PostgreSQL text and jsonb cannot hold `\u0000`).
pub fn metadata(map: &serde_json::Map<String, serde_json::Value>) -> ApiResult<()> {
    let size = serde_json::to_vec(map)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > MAX_METADATA_BYTES {
        return Err(ApiError::validation(format!(
            "Metadata must be at most {MAX_METADATA_BYTES} bytes"
        )));
    }
    fn has_nul(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::String(s) => s.contains('\0'),
            serde_json::Value::Array(a) => a.iter().any(has_nul),
            serde_json::Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
            _ => false,
        }
    }
    if map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)) {
        return Err(ApiError::validation(
            "Metadata must not contain NUL characters",
        ));
    }
    Ok(())
}

/// Text stored or searched in PostgreSQL must not contain NUL characters.
pub fn no_nul(name: &str, value: &str) -> ApiResult<()> {
    if value.contains('\0') {
        return Err(ApiError::validation(format!(
            "{name} must not contain NUL characters"
        )));
    }
    Ok(())
}

/// Longest value of GoTrue's `varchar(255)` columns (`role`, `aud`, `email`, ...).
pub const MAX_VARCHAR: usize = 255;

/// Text stored in a `varchar(max)` column: no NUL characters and at most `max` characters.
pub fn varchar(name: &str, value: &str, max: usize) -> ApiResult<()> {
    no_nul(name, value)?;
    if value.chars().count() > max {
        return Err(ApiError::validation(format!(
            "{name} must be at most {max} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails() {
        assert_eq!(
            super::email(" Foo@Example.COM ").unwrap(),
            "foo@example.com"
        );
        for bad in [
            "",
            "foo",
            "foo@bar",
            "@bar.com",
            "a b@c.com",
            "a@b@c.com",
            "a@.com",
        ] {
            assert!(super::email(bad).is_err(), "{bad}");
        }
        assert!(super::email(&format!("{}@x.com", "a".repeat(260))).is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(super::phone("+86 138 0013 8000").unwrap(), "8613800138000");
        for bad in ["", "0123", "+", "12a45", "1234567890123456"] {
            assert!(super::phone(bad).is_err(), "{bad}");
        }
    }
}
