//! Splitting E.164 numbers into WeChat's `countryCode` + `purePhoneNumber`.

/// Real ITU calling codes (prefix-free, so longest match wins). Not exhaustive: enough for the
/// numbers developers test with; anything else is refused with a clear message.
const CALLING_CODES: &[&str] = &[
    // 3 digits
    "212", "233", "234", "254", "255", "256", "351", "352", "353", "358", "380", "852", "853",
    "855", "856", "880", "886", "960", "966", "971", "972", "974", "977", // 2 digits
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98", // 1 digit
    "1", "7",
];

/// A phone number as WeChat reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phone {
    /// Calling code without `+`, e.g. `"86"` (a string, as WeChat really sends it).
    pub country_code: String,
    /// The national number without the country code.
    pub pure: String,
}

impl Phone {
    /// `phoneNumber`: the bare number in mainland China, with the country code elsewhere.
    pub fn phone_number(&self) -> String {
        if self.country_code == "86" {
            self.pure.clone()
        } else {
            format!("+{} {}", self.country_code, self.pure)
        }
    }
}

/// Parses `+8613800138000` (spaces, dashes and parentheses are ignored).
pub fn split_e164(input: &str) -> Result<Phone, String> {
    let compact: String = input
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect();
    let digits = compact
        .strip_prefix('+')
        .ok_or_else(|| format!("phone {input:?} must be in E.164 form, e.g. +8613800138000"))?;
    if digits.is_empty()
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || !(7..=15).contains(&digits.len())
    {
        return Err(format!(
            "phone {input:?} must be + followed by 7 to 15 digits"
        ));
    }
    // Calling codes are prefix-free, but try 3 digits first, then 2, then 1, as the brief says.
    let code = (1..=3)
        .rev()
        .filter_map(|len| digits.get(..len))
        .find(|prefix| CALLING_CODES.contains(prefix))
        .ok_or_else(|| {
            format!("phone {input:?} has a country calling code the emulator does not know")
        })?;
    let pure = &digits[code.len()..];
    if pure.len() < 4 {
        return Err(format!("phone {input:?} is too short"));
    }
    // WeChat only binds mobile numbers; mainland mobiles are 11 digits starting with 1.
    if code == "86" && (pure.len() != 11 || !pure.starts_with('1')) {
        return Err(format!(
            "phone {input:?} is not a mainland China mobile number (11 digits starting with 1)"
        ));
    }
    Ok(Phone {
        country_code: code.to_string(),
        pure: pure.to_string(),
    })
}
