//! The e-mail sender: SMTP through `lettre` (async on tokio, TLS by rustls), or nothing at all
//! when `GOTRUE_SMTP_HOST` is unset (GoTrue's no-op mailer). The flows render the mail
//! (`flows::mail`); this module only delivers it:
//!
//! ```text
//! Mailer::new(&MailConfig) -> Mailer
//! Mailer::send(&self, &Mail) -> Result<(), MailError>
//! ```
//!
//! One send is one SMTP connection, bounded as a whole by `WEAUTH_SMTP_TIMEOUT_MS`, and never
//! retried: a server that timed out may still deliver, and a second code in the inbox confuses
//! the user. `MailError` says what failed without credentials or the message (which holds the
//! one-time code); `error.rs` maps it to GoTrue's answer.

use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{MailConfig, SmtpTls};

/// One rendered mail.
#[derive(Clone, Debug)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    /// The HTML body (GoTrue sends `text/html` only).
    pub html: String,
}

/// Why a mail was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum MailError {
    /// The recipient address cannot be written into a mail.
    #[error("invalid recipient address")]
    InvalidAddress,
    /// The server refused the mail for good (5xx).
    #[error("the SMTP server rejected the mail: {0}")]
    Rejected(String),
    /// The server is unreachable, refused temporarily (4xx), failed TLS or authentication.
    #[error("the SMTP server is unavailable: {0}")]
    Unavailable(String),
    /// No answer within `WEAUTH_SMTP_TIMEOUT_MS`.
    #[error("the SMTP server did not answer in time")]
    Timeout,
}

/// Sends mails; cheap to share (the transport holds only settings, each send connects anew).
pub struct Mailer {
    smtp: Option<Smtp>,
}

struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl Mailer {
    pub fn new(config: &MailConfig) -> Result<Mailer, String> {
        let Some(cfg) = &config.smtp else {
            return Ok(Mailer { smtp: None });
        };
        let tls_params = || {
            TlsParameters::new(cfg.host.clone())
                .map_err(|e| format!("SMTP TLS settings for {}: {e}", cfg.host))
        };
        let tls = match cfg.tls {
            SmtpTls::Implicit => Tls::Wrapper(tls_params()?),
            SmtpTls::Required => Tls::Required(tls_params()?),
            SmtpTls::Opportunistic => Tls::Opportunistic(tls_params()?),
            SmtpTls::None => Tls::None,
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(cfg.host.clone())
            .port(cfg.port)
            .tls(tls)
            .timeout(Some(cfg.timeout));
        if let Some(user) = &cfg.user {
            let pass = cfg.pass.as_ref().map(|p| p.expose().to_string());
            builder = builder.credentials(Credentials::new(user.clone(), pass.unwrap_or_default()));
        }
        let address = cfg
            .admin_email
            .parse()
            .map_err(|_| "GOTRUE_SMTP_ADMIN_EMAIL is not an e-mail address".to_string())?;
        Ok(Mailer {
            smtp: Some(Smtp {
                transport: builder.build(),
                from: Mailbox::new(cfg.sender_name.clone(), address),
                timeout: cfg.timeout,
            }),
        })
    }

    /// True when mails are really sent (`GOTRUE_SMTP_HOST` is set).
    pub fn is_configured(&self) -> bool {
        self.smtp.is_some()
    }

    /// Delivers `mail`, or does nothing without an SMTP server.
    pub async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        let Some(smtp) = &self.smtp else {
            return Ok(());
        };
        let to: Mailbox = Mailbox::new(
            None,
            mail.to.parse().map_err(|_| MailError::InvalidAddress)?,
        );
        // Header values are one line: a subject built from user data never adds headers.
        let subject: String = mail
            .subject
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let message = Message::builder()
            .from(smtp.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_HTML)
            .body(mail.html.clone())
            .map_err(|_| MailError::InvalidAddress)?;
        match tokio::time::timeout(smtp.timeout, smtp.transport.send(message)).await {
            Err(_) => Err(MailError::Timeout),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) if e.is_timeout() => Err(MailError::Timeout),
            Ok(Err(e)) if e.is_permanent() => Err(MailError::Rejected(describe(&e))),
            Ok(Err(e)) => Err(MailError::Unavailable(describe(&e))),
        }
    }
}

/// What failed, safe to log: the SMTP reply code only (a server's reply text may quote the
/// recipient's address), or lettre's connection/TLS error; never the credentials or the body.
fn describe(e: &lettre::transport::smtp::Error) -> String {
    match e.status() {
        Some(code) => format!("SMTP reply {code}"),
        None => crate::providers::scrub(&e.to_string(), ""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    fn mailer(pairs: &[(&str, &str)]) -> Mailer {
        let lookup = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        Mailer::new(&MailConfig::read(&Vars::new(&lookup).unwrap()).unwrap()).unwrap()
    }

    fn mail(to: &str) -> Mail {
        Mail {
            to: to.into(),
            subject: "Hi".into(),
            html: "<p>x</p>".into(),
        }
    }

    #[tokio::test]
    async fn without_a_host_nothing_is_sent() {
        let m = mailer(&[]);
        assert!(!m.is_configured());
        m.send(&mail("a@example.com")).await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable_and_a_silent_one_times_out() {
        // A port nobody listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port().to_string();
        drop(closed);
        let m = mailer(&[
            ("GOTRUE_SMTP_HOST", "127.0.0.1"),
            ("GOTRUE_SMTP_PORT", &port),
            ("GOTRUE_SMTP_ADMIN_EMAIL", "admin@example.com"),
        ]);
        let err = m.send(&mail("a@example.com")).await.unwrap_err();
        assert!(matches!(err, MailError::Unavailable(_)), "{err:?}");

        // Accepts the connection and never greets.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = silent.local_addr().unwrap().port().to_string();
        let _held = tokio::spawn(async move {
            let (_s, _) = silent.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(30)).await;
        });
        let m = mailer(&[
            ("GOTRUE_SMTP_HOST", "127.0.0.1"),
            ("GOTRUE_SMTP_PORT", &port),
            ("GOTRUE_SMTP_ADMIN_EMAIL", "admin@example.com"),
            ("WEAUTH_SMTP_TIMEOUT_MS", "300"),
        ]);
        let started = std::time::Instant::now();
        let err = m.send(&mail("a@example.com")).await.unwrap_err();
        assert!(matches!(err, MailError::Timeout), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(matches!(
            m.send(&mail("not an address")).await.unwrap_err(),
            MailError::InvalidAddress
        ));
    }
}
