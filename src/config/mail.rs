//! E-mail: the SMTP server (`GOTRUE_SMTP_*`), GoTrue's mailer settings (`GOTRUE_MAILER_*`: code
//! length and lifetime, secure e-mail change, link paths, subjects, templates) and the global
//! send cap (`GOTRUE_RATE_LIMIT_EMAIL_SENT`). Names and defaults are GoTrue's
//! (`internal/conf/configuration.go` `SMTPConfiguration`, `MailerConfiguration`, `ApplyDefaults`).
//!
//! Without `GOTRUE_SMTP_HOST` no mail is sent and every send succeeds, as GoTrue's no-op mailer
//! does (codes and links are still written, so `POST /admin/generate_link` and autoconfirm
//! set-ups work without a mail server).

use std::time::Duration;

use super::{ConfigError, Secret, Vars};

/// GoTrue's mail templates (`templatemailer`), each with its variable suffix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, strum::VariantArray)]
pub enum MailTemplate {
    Invite,
    Confirmation,
    Recovery,
    MagicLink,
    EmailChange,
    Reauthentication,
}

impl MailTemplate {
    /// `GOTRUE_MAILER_SUBJECTS_<suffix>`, `GOTRUE_MAILER_TEMPLATES_<suffix>`.
    pub fn env_suffix(self) -> &'static str {
        match self {
            MailTemplate::Invite => "INVITE",
            MailTemplate::Confirmation => "CONFIRMATION",
            MailTemplate::Recovery => "RECOVERY",
            MailTemplate::MagicLink => "MAGIC_LINK",
            MailTemplate::EmailChange => "EMAIL_CHANGE",
            MailTemplate::Reauthentication => "REAUTHENTICATION",
        }
    }

    /// GoTrue's template name (also the Send Email hook's `email_action_type` family).
    pub fn name(self) -> &'static str {
        match self {
            MailTemplate::Invite => "invite",
            MailTemplate::Confirmation => "confirmation",
            MailTemplate::Recovery => "recovery",
            MailTemplate::MagicLink => "magic_link",
            MailTemplate::EmailChange => "email_change",
            MailTemplate::Reauthentication => "reauthentication",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// How the SMTP connection is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// TLS from the first byte (port 465, "SMTPS").
    Implicit,
    /// STARTTLS, refusing to go on without it.
    Required,
    /// STARTTLS when the server offers it, plain otherwise (GoTrue's gomail behaviour; the
    /// default for a local mail catcher).
    Opportunistic,
    /// Never TLS (`WEAUTH_SMTP_TLS=none`, for a catcher that advertises a broken STARTTLS).
    None,
}

#[derive(Clone, Debug)]
pub struct SmtpConfig {
    pub host: String,
    /// `GOTRUE_SMTP_PORT`, default 587 as GoTrue.
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<Secret>,
    /// `GOTRUE_SMTP_ADMIN_EMAIL`: the sender address.
    pub admin_email: String,
    /// `GOTRUE_SMTP_SENDER_NAME`: the sender's display name.
    pub sender_name: Option<String>,
    /// `WEAUTH_SMTP_TLS` (`implicit`, `starttls`, `opportunistic`, `none`); by default implicit
    /// on port 465, else STARTTLS when offered, and STARTTLS required when a password would
    /// otherwise cross the network in the clear (a host that is not loopback).
    pub tls: SmtpTls,
    /// `WEAUTH_SMTP_TIMEOUT_MS` (default 10000): the bound of one whole send (connect, TLS,
    /// auth, the message); a send past it fails and is not retried.
    pub timeout: Duration,
}

/// The Chinese or English built-in templates (`WEAUTH_MAILER_LOCALE`, `en` or `zh-CN`), used
/// where no `GOTRUE_MAILER_SUBJECTS_*`/`_TEMPLATES_*` is set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MailLocale {
    En,
    ZhCn,
}

#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `None` without `GOTRUE_SMTP_HOST`: nothing is sent (GoTrue's no-op mailer).
    pub smtp: Option<SmtpConfig>,
    /// `GOTRUE_SMTP_MAX_FREQUENCY` (default 1m): how soon the same mail may be sent again to a
    /// user.
    pub max_frequency: Duration,
    /// `GOTRUE_MAILER_OTP_EXP` (seconds, default 86400): how long e-mailed codes and links work.
    pub otp_exp: Duration,
    /// `GOTRUE_MAILER_OTP_LENGTH` (6 to 10; anything else becomes 6, as GoTrue does).
    pub otp_length: usize,
    /// `GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED` (default true): an e-mail change needs the
    /// old and the new address to confirm.
    pub secure_email_change: bool,
    /// `GOTRUE_EXTERNAL_EMAIL_MAGIC_LINK_ENABLED` (default true).
    pub magic_link_enabled: bool,
    /// `GOTRUE_RATE_LIMIT_EMAIL_SENT`: mails per hour for the whole process (`N` or `N/1h`
    /// style `N/<duration>`); 0 refuses every send, as in GoTrue. Not applied while
    /// `GOTRUE_MAILER_AUTOCONFIRM` is on (GoTrue's rule).
    pub rate_limit: (u32, Duration),
    pub locale: MailLocale,
    /// Per template, in [`MailTemplate`] order.
    subjects: Vec<Option<String>>,
    templates: Vec<Option<String>>,
    url_paths: Vec<String>,
}

impl MailConfig {
    pub fn read(v: &Vars<'_>) -> Result<MailConfig, ConfigError> {
        use strum::VariantArray;
        let smtp = match v.str(&["GOTRUE_SMTP_HOST"]) {
            None => None,
            Some(host) => Some(read_smtp(v, host.trim().to_string())?),
        };
        let otp_length = v.parse(&["GOTRUE_MAILER_OTP_LENGTH"], 6usize)?;
        let locale = match v.str_or(&["WEAUTH_MAILER_LOCALE"], "en").as_str() {
            "en" => MailLocale::En,
            "zh-CN" | "zh_CN" | "zh" => MailLocale::ZhCn,
            other => {
                return Err(ConfigError(format!(
                    "WEAUTH_MAILER_LOCALE must be en or zh-CN, got {other:?}"
                )))
            }
        };
        let each = |prefix: &str| -> Vec<Option<String>> {
            MailTemplate::VARIANTS
                .iter()
                .map(|t| v.str(&[&format!("{prefix}{}", t.env_suffix())]))
                .collect()
        };
        // GoTrue has link paths for four of the templates; the magic link uses the recovery path.
        let path =
            |suffix: &str| v.str_or(&[&format!("GOTRUE_MAILER_URLPATHS_{suffix}")], "/verify");
        let url_paths = MailTemplate::VARIANTS
            .iter()
            .map(|t| match t {
                MailTemplate::MagicLink | MailTemplate::Reauthentication => path("RECOVERY"),
                t => path(t.env_suffix()),
            })
            .collect();
        Ok(MailConfig {
            smtp,
            max_frequency: v
                .go_duration(&["GOTRUE_SMTP_MAX_FREQUENCY"], Duration::from_secs(60))?,
            otp_exp: Duration::from_secs(match v.parse(&["GOTRUE_MAILER_OTP_EXP"], 86400u64)? {
                0 => 86400,
                n => n,
            }),
            otp_length: if (6..=10).contains(&otp_length) {
                otp_length
            } else {
                6
            },
            secure_email_change: v.bool(&["GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED"], true)?,
            magic_link_enabled: v.bool(&["GOTRUE_EXTERNAL_EMAIL_MAGIC_LINK_ENABLED"], true)?,
            rate_limit: parse_rate(v, "GOTRUE_RATE_LIMIT_EMAIL_SENT", 30)?,
            locale,
            subjects: each("GOTRUE_MAILER_SUBJECTS_"),
            templates: each("GOTRUE_MAILER_TEMPLATES_"),
            url_paths,
        })
    }

    /// `GOTRUE_MAILER_SUBJECTS_<template>`, if set.
    pub fn subject(&self, t: MailTemplate) -> Option<&str> {
        self.subjects[t.index()].as_deref()
    }

    /// `GOTRUE_MAILER_TEMPLATES_<template>`: an `http(s)://` URL (fetched and cached, as
    /// GoTrue does) or a file path, if set.
    pub fn template_source(&self, t: MailTemplate) -> Option<&str> {
        self.templates[t.index()].as_deref()
    }

    /// `GOTRUE_MAILER_URLPATHS_<template>` (default `/verify`), resolved against
    /// `API_EXTERNAL_URL` like a link in a page.
    pub fn url_path(&self, t: MailTemplate) -> &str {
        &self.url_paths[t.index()]
    }
}

fn read_smtp(v: &Vars<'_>, host: String) -> Result<SmtpConfig, ConfigError> {
    if host.contains(['/', ' ', '\r', '\n']) {
        return Err(ConfigError(format!(
            "GOTRUE_SMTP_HOST must be a host name, got {host:?}"
        )));
    }
    let port = v.parse(&["GOTRUE_SMTP_PORT"], 587u16)?;
    let user = v.str(&["GOTRUE_SMTP_USER"]);
    let pass = v.str(&["GOTRUE_SMTP_PASS"]).map(Secret::new);
    let admin_email = v.str(&["GOTRUE_SMTP_ADMIN_EMAIL"]).ok_or_else(|| {
        ConfigError(
            "GOTRUE_SMTP_HOST is set but GOTRUE_SMTP_ADMIN_EMAIL (the sender) is not".into(),
        )
    })?;
    if admin_email.parse::<lettre::Address>().is_err() {
        return Err(ConfigError(
            "GOTRUE_SMTP_ADMIN_EMAIL must be an e-mail address".into(),
        ));
    }
    let sender_name = v.str(&["GOTRUE_SMTP_SENDER_NAME"]);
    if sender_name
        .as_deref()
        .is_some_and(|n| n.contains(['\r', '\n']))
    {
        return Err(ConfigError(
            "GOTRUE_SMTP_SENDER_NAME must be one line".into(),
        ));
    }
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let tls = match v.str(&["WEAUTH_SMTP_TLS"]).as_deref() {
        None if port == 465 => SmtpTls::Implicit,
        None if pass.is_some() && !loopback => SmtpTls::Required,
        None => SmtpTls::Opportunistic,
        Some("implicit") => SmtpTls::Implicit,
        Some("starttls") => SmtpTls::Required,
        Some("opportunistic") => SmtpTls::Opportunistic,
        Some("none") => SmtpTls::None,
        Some(other) => {
            return Err(ConfigError(format!(
                "WEAUTH_SMTP_TLS must be implicit, starttls, opportunistic or none, got {other:?}"
            )))
        }
    };
    let timeout = v.millis(&["WEAUTH_SMTP_TIMEOUT_MS"], 10_000)?;
    if timeout.is_zero() {
        return Err(ConfigError(
            "WEAUTH_SMTP_TIMEOUT_MS must be greater than 0".into(),
        ));
    }
    Ok(SmtpConfig {
        host,
        port,
        user,
        pass,
        admin_email,
        sender_name,
        tls,
        timeout,
    })
}

/// GoTrue's `Rate`: `"N"` per hour or `"N/<duration>"`.
fn parse_rate(v: &Vars<'_>, name: &str, default: u32) -> Result<(u32, Duration), ConfigError> {
    let hour = Duration::from_secs(3600);
    let Some(raw) = v.str(&[name]) else {
        return Ok((default, hour));
    };
    let bad = || {
        ConfigError(format!(
            "{name} must be N or N/<duration> (e.g. 30/1h), got {raw:?}"
        ))
    };
    let (n, per) = match raw.trim().split_once('/') {
        None => (raw.trim(), None),
        Some((n, per)) => (n.trim(), Some(per.trim())),
    };
    // GoTrue accepts fractional counts; weauth counts whole mails.
    let n = n.parse::<f64>().map_err(|_| bad())?;
    if !(0.0..=u32::MAX as f64).contains(&n) {
        return Err(bad());
    }
    let per = match per {
        None => hour,
        Some(p) => super::vars::parse_go_duration(p)
            .filter(|d| !d.is_zero())
            .ok_or_else(bad)?,
    };
    Ok((n as u32, per))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<MailConfig, ConfigError> {
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        MailConfig::read(&Vars::new(&lookup).unwrap())
    }

    #[test]
    fn gotrue_defaults() {
        let c = read(&[]).unwrap();
        assert!(c.smtp.is_none());
        assert_eq!(c.max_frequency, Duration::from_secs(60));
        assert_eq!(c.otp_exp, Duration::from_secs(86400));
        assert_eq!(c.otp_length, 6);
        assert!(c.secure_email_change && c.magic_link_enabled);
        assert_eq!(c.rate_limit, (30, Duration::from_secs(3600)));
        assert_eq!(c.url_path(MailTemplate::MagicLink), "/verify");
        assert!(c.subject(MailTemplate::Invite).is_none());
    }

    #[test]
    fn smtp_settings_and_secrets() {
        let c = read(&[
            ("GOTRUE_SMTP_HOST", "smtp.example.com"),
            ("GOTRUE_SMTP_USER", "apikey"),
            ("GOTRUE_SMTP_PASS", "smtp-password-value"),
            ("GOTRUE_SMTP_ADMIN_EMAIL", "noreply@example.com"),
            ("GOTRUE_SMTP_SENDER_NAME", "Example"),
            ("GOTRUE_SMTP_MAX_FREQUENCY", "1m30s"),
            ("GOTRUE_MAILER_OTP_LENGTH", "12"),
            ("GOTRUE_MAILER_URLPATHS_RECOVERY", "/auth/v1/verify"),
            (
                "GOTRUE_MAILER_SUBJECTS_MAGIC_LINK",
                "Sign in to {{ .SiteURL }}",
            ),
            ("GOTRUE_RATE_LIMIT_EMAIL_SENT", "5/10m"),
        ])
        .unwrap();
        let smtp = c.smtp.as_ref().unwrap();
        assert_eq!((smtp.port, smtp.tls), (587, SmtpTls::Required));
        assert_eq!(c.max_frequency, Duration::from_secs(90));
        assert_eq!(c.otp_length, 6, "GoTrue resets lengths outside 6-10");
        assert_eq!(c.url_path(MailTemplate::MagicLink), "/auth/v1/verify");
        assert_eq!(c.url_path(MailTemplate::Confirmation), "/verify");
        assert_eq!(
            c.subject(MailTemplate::MagicLink),
            Some("Sign in to {{ .SiteURL }}")
        );
        assert_eq!(c.rate_limit, (5, Duration::from_secs(600)));
        assert!(!format!("{c:?}").contains("smtp-password-value"));

        let local = read(&[
            ("GOTRUE_SMTP_HOST", "127.0.0.1"),
            ("GOTRUE_SMTP_PORT", "1025"),
            ("GOTRUE_SMTP_ADMIN_EMAIL", "admin@example.com"),
        ])
        .unwrap();
        assert_eq!(local.smtp.unwrap().tls, SmtpTls::Opportunistic);
        let smtps = read(&[
            ("GOTRUE_SMTP_HOST", "smtp.example.com"),
            ("GOTRUE_SMTP_PORT", "465"),
            ("GOTRUE_SMTP_ADMIN_EMAIL", "admin@example.com"),
        ])
        .unwrap();
        assert_eq!(smtps.smtp.unwrap().tls, SmtpTls::Implicit);
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            &[("GOTRUE_SMTP_HOST", "smtp.example.com")][..],
            &[
                ("GOTRUE_SMTP_HOST", "smtp.example.com"),
                ("GOTRUE_SMTP_ADMIN_EMAIL", "not an address"),
            ],
            &[
                ("GOTRUE_SMTP_HOST", "smtp.example.com"),
                ("GOTRUE_SMTP_ADMIN_EMAIL", "a@example.com"),
                ("GOTRUE_SMTP_SENDER_NAME", "Evil\r\nBcc: x@example.com"),
            ],
            &[("GOTRUE_SMTP_MAX_FREQUENCY", "soon")],
            &[("GOTRUE_RATE_LIMIT_EMAIL_SENT", "lots")],
            &[("WEAUTH_MAILER_LOCALE", "fr")],
        ] {
            assert!(read(bad).is_err(), "{bad:?}");
        }
    }
}
