//! Input checks shared by the handlers (GoTrue `internal/api/mail.go` `validateEmail`,
//! `internal/api/phone.go` `validatePhone`).

use crate::error::{ApiError, ApiResult};

/// Longest e-mail GoTrue accepts (`users.email` is varchar(255)).
const MAX_EMAIL_LEN: usize = 255;

/// Checks an e-mail address as GoTrue's `validateEmail` does (`internal/api/mail.go`): at most
/// 255 bytes, then the pattern of `github.com/badoux/checkmail` `ValidateFormat` at the version
/// GoTrue pins (d0a7596), then lower-cased. Only ASCII passes, so invisible and right-to-left
/// characters (and NUL) are refused; `user@localhost` is accepted, as in GoTrue.
pub fn email(raw: &str) -> ApiResult<String> {
    if raw.len() > MAX_EMAIL_LEN {
        return Err(ApiError::validation("An email address is too long"));
    }
    if !checkmail_format(raw) {
        return Err(ApiError::validation(
            "Unable to validate email address: invalid format",
        ));
    }
    Ok(raw.to_lowercase())
}

/// checkmail's `^[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$`.
fn checkmail_format(email: &str) -> bool {
    // The local part cannot contain `@`, so the first `@` is the separator.
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b));
    // Labels of 1 to 63 letters, digits and inner hyphens, separated by single dots.
    let label_ok = |label: &str| {
        let bytes = label.as_bytes();
        (1..=63).contains(&bytes.len())
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    };
    local_ok && domain.split('.').all(label_ok)
}

/// [`email`] for an optional field; an empty string counts as absent.
pub fn optional_email(raw: Option<&str>) -> ApiResult<Option<String>> {
    raw.filter(|e| !e.is_empty()).map(email).transpose()
}

/// [`phone`] for an optional field; an empty string counts as absent.
pub fn optional_phone(raw: Option<&str>) -> ApiResult<Option<String>> {
    raw.filter(|p| !p.is_empty()).map(phone).transpose()
}

/// GoTrue's `validatePhone` (`internal/api/phone.go`): a leading `+` and every space
/// removed, then E.164 digits, `^[1-9][0-9]{1,14}$`.
pub fn phone(raw: &str) -> ApiResult<String> {
    let phone = raw.strip_prefix('+').unwrap_or(raw).replace(' ', "");
    let ok = (2..=15).contains(&phone.len())
        && phone.bytes().all(|b| b.is_ascii_digit())
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
        assert_eq!(super::email("Foo@Example.COM").unwrap(), "foo@example.com");
        // GoTrue (checkmail) accepts these.
        for good in [
            "user@localhost",
            "a.b+c@x.co",
            "o'brien@x.io",
            "x@a-b.c-d.e",
            "!#$%&'*+/=?^_`{|}~-@x.x",
        ] {
            assert!(super::email(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "foo",
            " foo@bar.com",
            "@bar.com",
            "a b@c.com",
            "a@b@c.com",
            "a@.com",
            "a@b..co",
            "a@b.co.",
            "a@-b.co",
            "a@b-.co",
            "xx:;x@x.x",
            "a(b)c;e@x.x",
            "x<y>z@x.x",
            "a\u{200b}b@x.co",
            "a\u{202e}b@x.co",
            "a\u{0}b@x.co",
            "jos\u{e9}@x.co",
        ] {
            assert!(super::email(bad).is_err(), "{bad:?}");
        }
        assert!(super::email(&format!("a@{}.co", "b".repeat(64))).is_err());
        assert!(super::email(&format!("{}@x.com", "a".repeat(260))).is_err());
    }

    #[test]
    fn phones() {
        assert_eq!(super::phone("+86 138 0013 8000").unwrap(), "8613800138000");
        // GoTrue's regex takes 2 to 15 digits; only a leading `+` is removed.
        assert_eq!(super::phone("12").unwrap(), "12");
        for bad in [
            "",
            "1",
            "0123",
            "+",
            "12a45",
            "1234567890123456",
            "1+2345",
            "++12345",
        ] {
            assert!(super::phone(bad).is_err(), "{bad}");
        }
    }
}
