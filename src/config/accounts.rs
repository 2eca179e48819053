//! Who may sign up and how: the e-mail and phone providers, autoconfirm, password rules and the
//! argon2id cost of new password hashes.

use super::{ConfigError, Vars};

#[derive(Clone, Debug)]
pub struct AccountsConfig {
    pub disable_signup: bool,
    pub email_enabled: bool,
    pub phone_enabled: bool,
    pub mailer_autoconfirm: bool,
    pub sms_autoconfirm: bool,
    /// `POST /signup` with neither e-mail nor phone creates an anonymous user.
    pub anonymous_users_enabled: bool,
    /// `WEAUTH_PHONE_DEFAULT_COUNTRY_CODE` (digits, e.g. `86`): national numbers are stored and
    /// looked up with this country code in front (`flows::validate::phone`). `None`: GoTrue's
    /// behaviour, the number as typed without `+` and spaces.
    pub phone_default_country_code: Option<String>,
}

impl AccountsConfig {
    pub fn read(v: &Vars<'_>) -> Result<AccountsConfig, ConfigError> {
        Ok(AccountsConfig {
            disable_signup: v.bool(&["GOTRUE_DISABLE_SIGNUP"], false)?,
            email_enabled: v.bool(&["GOTRUE_EXTERNAL_EMAIL_ENABLED"], true)?,
            phone_enabled: v.bool(&["GOTRUE_EXTERNAL_PHONE_ENABLED"], true)?,
            mailer_autoconfirm: v.bool(&["GOTRUE_MAILER_AUTOCONFIRM"], true)?,
            sms_autoconfirm: v.bool(&["GOTRUE_SMS_AUTOCONFIRM"], true)?,
            anonymous_users_enabled: v.bool(&["GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED"], false)?,
            phone_default_country_code: match v.str(&["WEAUTH_PHONE_DEFAULT_COUNTRY_CODE"]) {
                None => None,
                Some(raw) => {
                    let cc = raw.trim().trim_start_matches('+');
                    if cc.is_empty()
                        || cc.len() > 3
                        || !cc.bytes().all(|b| b.is_ascii_digit())
                        || cc.starts_with('0')
                    {
                        return Err(ConfigError(format!(
                            "WEAUTH_PHONE_DEFAULT_COUNTRY_CODE must be a country calling code such as 86, got {raw:?}"
                        )));
                    }
                    Some(cc.to_string())
                }
            },
        })
    }
}

#[derive(Clone, Debug)]
pub struct PasswordConfig {
    /// At least 6, as in GoTrue.
    pub min_length: usize,
    pub hash: PasswordHashConfig,
}

/// Argon2id cost parameters for newly written password hashes.
#[derive(Clone, Debug)]
pub struct PasswordHashConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl PasswordConfig {
    pub fn read(v: &Vars<'_>) -> Result<PasswordConfig, ConfigError> {
        let hash = PasswordHashConfig {
            memory_kib: v.parse(&["WEAUTH_ARGON2_MEMORY_KIB"], 19456u32)?,
            iterations: v.parse(&["WEAUTH_ARGON2_ITERATIONS"], 2u32)?,
            parallelism: v.parse(&["WEAUTH_ARGON2_PARALLELISM"], 1u32)?,
        };
        argon2::Params::new(hash.memory_kib, hash.iterations, hash.parallelism, None)
            .map_err(|e| ConfigError(format!("invalid WEAUTH_ARGON2_* parameters: {e}")))?;
        Ok(PasswordConfig {
            min_length: v.parse(&["GOTRUE_PASSWORD_MIN_LENGTH"], 6usize)?.max(6),
            hash,
        })
    }
}
