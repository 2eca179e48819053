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
pub fn optional_phone(raw: Option<&str>, default_cc: Option<&str>) -> ApiResult<Option<String>> {
    raw.filter(|p| !p.is_empty())
        .map(|p| phone(p, default_cc))
        .transpose()
}

/// GoTrue's `validatePhone` (`internal/api/phone.go`): a leading `+` and every space
/// removed, then E.164 digits, `^[1-9][0-9]{1,14}$`.
///
/// With `WEAUTH_PHONE_DEFAULT_COUNTRY_CODE` (`default_cc`), a number typed the national way
/// gets the country code in front, so that every route stores and finds one form of a number:
/// `-` and `()` are dropped too, a `00` international prefix counts as `+`, and then a number
/// with a trunk `0` (`013800138000`) loses it and gains the code; for `86`, 11 digits starting
/// with `1` are a mainland mobile number (`13800138000` → `8613800138000`). Anything else is
/// taken as already international.
pub fn phone(raw: &str, default_cc: Option<&str>) -> ApiResult<String> {
    let invalid = || ApiError::validation("Invalid phone number format (E.164 required)");
    let mut phone = raw.strip_prefix('+').unwrap_or(raw).replace(' ', "");
    if let Some(cc) = default_cc {
        phone = raw.replace([' ', '-', '(', ')'], "");
        let international = phone.starts_with('+');
        phone = phone.trim_start_matches('+').to_string();
        if !international {
            if let Some(rest) = phone.strip_prefix("00") {
                phone = rest.to_string();
            } else if let Some(national) = phone.strip_prefix('0').filter(|n| n.len() >= 5) {
                phone = format!("{cc}{national}");
            } else if cc == "86" && phone.len() == 11 && phone.starts_with('1') {
                phone = format!("{cc}{phone}");
            }
        }
    }
    let ok = (2..=15).contains(&phone.len())
        && phone.bytes().all(|b| b.is_ascii_digit())
        && !phone.starts_with('0');
    if ok {
        Ok(phone)
    } else {
        Err(invalid())
    }
}

#[cfg(test)]
mod phone_tests {
    use super::phone;

    #[test]
    fn without_a_default_country_code_it_is_gotrues_rule() {
        assert_eq!(phone("+86 138 0013 8000", None).unwrap(), "8613800138000");
        assert_eq!(phone("13800138000", None).unwrap(), "13800138000");
        assert!(phone("013800138000", None).is_err());
        assert!(phone("138-0013-8000", None).is_err());
        assert!(phone("+", None).is_err());
    }

    #[test]
    fn with_86_every_way_of_typing_a_mainland_number_is_one_number() {
        for typed in [
            "13800138000",
            "+86 138 0013 8000",
            "8613800138000",
            "+8613800138000",
            "013800138000",
            "008613800138000",
            "138-0013-8000",
            "(+86) 138 0013 8000",
        ] {
            assert_eq!(
                phone(typed, Some("86")).unwrap(),
                "8613800138000",
                "{typed}"
            );
        }
        // Other countries' numbers stay as they are.
        assert_eq!(phone("+852 6832 6366", Some("86")).unwrap(), "85268326366");
        assert_eq!(phone("85268326366", Some("86")).unwrap(), "85268326366");
        assert!(phone("abc", Some("86")).is_err());
        assert!(phone("0", Some("86")).is_err());
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
        assert_eq!(
            super::phone("+86 138 0013 8000", None).unwrap(),
            "8613800138000"
        );
        // GoTrue's regex takes 2 to 15 digits; only a leading `+` is removed.
        assert_eq!(super::phone("12", None).unwrap(), "12");
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
            assert!(super::phone(bad, None).is_err(), "{bad}");
        }
    }
}
