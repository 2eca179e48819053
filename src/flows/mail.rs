//! Mails weauth sends, rendered as GoTrue renders them (`internal/mailer/templatemailer`):
//! GoTrue's default subjects and bodies (or Chinese ones, `WEAUTH_MAILER_LOCALE=zh-CN`), or the
//! operator's (`GOTRUE_MAILER_SUBJECTS_*`, `GOTRUE_MAILER_TEMPLATES_*`), with GoTrue's template
//! variables, and the link `<API_EXTERNAL_URL><path>?token=<token_hash>&type=<type>&redirect_to=<…>`.
//!
//! Templates use Go's `{{ .Name }}` syntax. weauth understands the variables GoTrue passes
//! (`.ConfirmationURL`, `.Token`, `.TokenHash`, `.SiteURL`, `.RedirectTo`, `.Email`,
//! `.NewEmail`, `.SendingTo`, `.Data` and `.Data.<key>`), HTML-escaped as Go's `html/template`
//! escapes them; any other action (`{{ if … }}`) is copied into the mail as written.
//!
//! [`Outbox::send`] applies the process-wide cap (`GOTRUE_RATE_LIMIT_EMAIL_SENT`), renders and
//! delivers one mail; what failed becomes GoTrue's answer in `error.rs`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{Config, MailLocale, MailTemplate};
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::providers::mail::{Mail, Mailer};

/// What a mail is for: its template, the `type` in its link and GoTrue's failure message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EmailAction {
    Signup,
    Invite,
    MagicLink,
    Recovery,
    EmailChange,
    Reauthentication,
}

impl EmailAction {
    pub fn template(self) -> MailTemplate {
        match self {
            EmailAction::Signup => MailTemplate::Confirmation,
            EmailAction::Invite => MailTemplate::Invite,
            EmailAction::MagicLink => MailTemplate::MagicLink,
            EmailAction::Recovery => MailTemplate::Recovery,
            EmailAction::EmailChange => MailTemplate::EmailChange,
            EmailAction::Reauthentication => MailTemplate::Reauthentication,
        }
    }

    /// The verification `type` the link carries (GoTrue's `mail.*Verification`).
    pub fn link_type(self) -> &'static str {
        match self {
            EmailAction::Signup => "signup",
            EmailAction::Invite => "invite",
            EmailAction::MagicLink => "magiclink",
            EmailAction::Recovery => "recovery",
            EmailAction::EmailChange => "email_change",
            EmailAction::Reauthentication => "reauthentication",
        }
    }

    /// GoTrue's 500 message when the mail cannot be sent.
    pub fn failure_message(self) -> &'static str {
        match self {
            EmailAction::Signup => "Error sending confirmation email",
            EmailAction::Invite => "Error sending invite email",
            EmailAction::MagicLink => "Error sending magic link email",
            EmailAction::Recovery => "Error sending recovery email",
            EmailAction::EmailChange => "Error sending email change email",
            EmailAction::Reauthentication => "Error sending reauthentication email",
        }
    }
}

/// The values a template sees. `confirmation_url` is built by [`action_link`].
#[derive(Clone, Debug, Default)]
pub struct MailData {
    /// The user's current address (`.Email`).
    pub email: String,
    /// The address being changed to (`.NewEmail`).
    pub new_email: String,
    /// Where this copy goes (`.SendingTo`; both e-mail change mails differ only here).
    pub sending_to: String,
    /// The one-time code (`.Token`).
    pub token: String,
    /// The stored hash, as in the link (`.TokenHash`).
    pub token_hash: String,
    /// The validated redirect target (`.RedirectTo`).
    pub redirect_to: String,
    pub confirmation_url: String,
    /// The user's `user_metadata` (`.Data`).
    pub data: Value,
}

/// GoTrue's link: `getPath` + `ResolveReference` against `API_EXTERNAL_URL`.
pub fn action_link(
    config: &Config,
    template: MailTemplate,
    token_hash: &str,
    link_type: &str,
    redirect_to: &str,
) -> String {
    let path = config.mail.url_path(template);
    let base = url::Url::parse(&config.server.api_external_url).ok();
    let mut link = match base.as_ref().and_then(|b| b.join(path).ok()) {
        Some(url) => url,
        None => return format!("{path}?token={}", query_escape(token_hash)),
    };
    link.set_query(None);
    link.set_fragment(None);
    format!(
        "{link}?token={}&type={}&redirect_to={}",
        query_escape(token_hash),
        query_escape(link_type),
        encode_redirect_url(redirect_to)
    )
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// GoTrue's `encodeRedirectURL`: escaped only when it holds `&`, `=` or `#` (otherwise it is
/// taken to be escaped already).
fn encode_redirect_url(url: &str) -> String {
    if url.contains(['&', '=', '#']) {
        query_escape(url)
    } else {
        url.to_string()
    }
}

/// Mail state shared by every request: the sender, the template cache and the global cap.
pub struct Outbox {
    mailer: Mailer,
    cache: Mutex<HashMap<MailTemplate, (Instant, String)>>,
    http: reqwest::Client,
    limiter: Option<governor::DefaultDirectRateLimiter>,
}

/// How long a fetched template is kept before it is fetched again.
const TEMPLATE_TTL: Duration = Duration::from_secs(600);
/// The largest template accepted from a URL or file.
const MAX_TEMPLATE_BYTES: usize = 1 << 20;

impl Outbox {
    pub fn new(config: &Config) -> Result<Outbox, String> {
        let (events, per) = config.mail.rate_limit;
        let limiter = match std::num::NonZeroU32::new(events) {
            None => None,
            Some(n) => {
                let quota = governor::Quota::with_period(per / n.get())
                    .ok_or("GOTRUE_RATE_LIMIT_EMAIL_SENT is too high")?
                    .allow_burst(n);
                Some(governor::RateLimiter::direct(quota))
            }
        };
        Ok(Outbox {
            mailer: Mailer::new(&config.mail)?,
            cache: Mutex::default(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .map_err(|e| e.to_string())?,
            limiter,
        })
    }

    /// GoTrue's `sendEmail` cap: 429 `over_email_send_rate_limit` when
    /// `GOTRUE_RATE_LIMIT_EMAIL_SENT` is 0, or used up while autoconfirm is off. Spends one mail.
    pub fn check_send_cap(&self, config: &Config) -> ApiResult<()> {
        let exceeded = || {
            ApiError::too_many_requests(
                ErrorCode::OverEmailSendRateLimit,
                "email rate limit exceeded",
            )
        };
        match &self.limiter {
            None => Err(exceeded()),
            Some(_) if config.accounts.mailer_autoconfirm => Ok(()),
            Some(l) => l.check().map_err(|_| exceeded()),
        }
    }

    /// Renders `action`'s mail for `data` and sends it to `to`. The caller checked the cap
    /// ([`Outbox::check_send_cap`]) for this request.
    pub async fn send(
        &self,
        config: &Config,
        action: EmailAction,
        to: &str,
        data: &MailData,
    ) -> ApiResult<()> {
        let mail = self.render(config, action.template(), to, data).await;
        self.mailer
            .send(&mail)
            .await
            .map_err(|e| ApiError::mail_not_sent(action.failure_message(), e))
    }

    /// The subject and body of `template` for `data`.
    pub async fn render(
        &self,
        config: &Config,
        template: MailTemplate,
        to: &str,
        data: &MailData,
    ) -> Mail {
        let (default_subject, default_body) = defaults(config.mail.locale, template);
        let subject = config.mail.subject(template).unwrap_or(default_subject);
        let body = match config.mail.template_source(template) {
            Some(source) => self.custom_body(template, source).await,
            None => None,
        };
        let site_url = &config.server.site_url;
        Mail {
            to: to.to_string(),
            subject: render(subject, data, site_url),
            html: render(body.as_deref().unwrap_or(default_body), data, site_url),
        }
    }

    /// The operator's template from a URL or a file, cached for [`TEMPLATE_TTL`]; on failure the
    /// last good copy, or `None` (the built-in one is used), as GoTrue's cache falls back.
    async fn custom_body(&self, template: MailTemplate, source: &str) -> Option<String> {
        let cached = self.cache.lock().unwrap().get(&template).cloned();
        if let Some((at, body)) = &cached {
            if at.elapsed() < TEMPLATE_TTL {
                return Some(body.clone());
            }
        }
        match self.load(source).await {
            Ok(body) => {
                self.cache
                    .lock()
                    .unwrap()
                    .insert(template, (Instant::now(), body.clone()));
                Some(body)
            }
            Err(e) => {
                tracing::warn!(
                    template = template.name(),
                    error = %e,
                    "cannot load the mail template, using the previous or the built-in one"
                );
                cached.map(|(_, body)| body)
            }
        }
    }

    async fn load(&self, source: &str) -> Result<String, String> {
        if source.starts_with("http://") || source.starts_with("https://") {
            let res = self
                .http
                .get(source)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            if !res.status().is_success() {
                return Err(format!("the template URL answered {}", res.status()));
            }
            let bytes = res.bytes().await.map_err(|e| e.to_string())?;
            if bytes.len() > MAX_TEMPLATE_BYTES {
                return Err("the template is larger than 1 MiB".into());
            }
            String::from_utf8(bytes.to_vec()).map_err(|_| "the template is not UTF-8".into())
        } else {
            let path = source.strip_prefix("file://").unwrap_or(source).to_string();
            let read = path.clone();
            let text = tokio::task::spawn_blocking(move || std::fs::read_to_string(read))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("{path}: {e}"))?;
            if text.len() > MAX_TEMPLATE_BYTES {
                return Err("the template is larger than 1 MiB".into());
            }
            Ok(text)
        }
    }
}

/// Go's `{{ .Name }}` substitution, HTML-escaped (`html/template`'s escaper).
pub fn render(template: &str, data: &MailData, site_url: &str) -> String {
    let mut out = String::with_capacity(template.len() + 256);
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start..].find("}}") else {
            break;
        };
        let mut before = &rest[..start];
        let mut inner = &rest[start + 2..start + len];
        let mut after = &rest[start + len + 2..];
        // `{{-` and `-}}` trim the whitespace beside the action, as in Go.
        if let Some(i) = inner.strip_prefix('-') {
            before = before.trim_end();
            inner = i;
        }
        if let Some(i) = inner.strip_suffix('-') {
            after = after.trim_start();
            inner = i;
        }
        out.push_str(before);
        match lookup(inner.trim(), data, site_url) {
            Some(value) => out.push_str(&html_escape(&value)),
            None => out.push_str(&rest[start..start + len + 2]),
        }
        rest = after;
    }
    out.push_str(rest);
    out
}

fn lookup(action: &str, data: &MailData, site_url: &str) -> Option<String> {
    let path = action.strip_prefix('.')?;
    if path.contains(char::is_whitespace) {
        return None;
    }
    let mut parts = path.split('.');
    let value = match parts.next()? {
        "ConfirmationURL" => data.confirmation_url.clone(),
        "Token" => data.token.clone(),
        "TokenHash" => data.token_hash.clone(),
        "SiteURL" => site_url.to_string(),
        "RedirectTo" => data.redirect_to.clone(),
        "Email" => data.email.clone(),
        "NewEmail" => data.new_email.clone(),
        "SendingTo" => data.sending_to.clone(),
        "Data" => {
            let mut v = &data.data;
            for key in parts.by_ref() {
                v = v.get(key).unwrap_or(&Value::Null);
            }
            return Some(match v {
                // Go prints a missing map key as "<no value>"; an empty string reads better.
                Value::Null => String::new(),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            });
        }
        _ => return None,
    };
    parts.next().is_none().then_some(value)
}

/// `html/template`'s `htmlEscaper`.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '+' => out.push_str("&#43;"),
            '\0' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The built-in subject and body: GoTrue's, or their Chinese translation.
fn defaults(locale: MailLocale, t: MailTemplate) -> (&'static str, &'static str) {
    use MailTemplate::*;
    match (locale, t) {
        (MailLocale::En, Invite) => ("You've been invited", "<h2>You've been invited</h2>\n\n<p>You've been invited to create an account. Follow the link below to accept.</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Accept invitation</a></p>"),
        (MailLocale::En, Confirmation) => ("Confirm your email address", "<h2>Confirm your email address</h2>\n\n<p>Follow the link below to confirm this email address and finish signing up.</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Confirm email address</a></p>\n"),
        (MailLocale::En, Recovery) => ("Reset your password", "<h2>Reset your password</h2>\n\n<p>We received a request to reset your password. Follow the link below to choose a new one.</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Reset password</a></p>\n<p>If you didn't request this, you can safely ignore this email.</p>"),
        (MailLocale::En, MagicLink) => ("Your sign-in link", "<h2>Your sign-in link</h2>\n\n<p>Follow the link below to sign in. This link expires shortly and can only be used once.</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Sign in</a></p>"),
        (MailLocale::En, EmailChange) => ("Confirm your new email address", "<h2>Confirm your new email address</h2>\n\n<p>Follow the link below to confirm {{ .NewEmail }} as your new email address.</p>\n<p><a href=\"{{ .ConfirmationURL }}\">Confirm new email address</a></p>\n<p>If you didn't request this change, you can safely ignore this email.</p>"),
        (MailLocale::En, Reauthentication) => ("{{ .Token }} is your verification code", "<h2>Your verification code</h2>\n\n<p>Use the code below to verify your identity. It expires shortly.</p>\n<p>{{ .Token }}</p>"),
        (MailLocale::ZhCn, Invite) => ("您收到了一份邀请", "<h2>您收到了一份邀请</h2>\n\n<p>有人邀请您创建账号，请点击下面的链接接受邀请。</p>\n<p><a href=\"{{ .ConfirmationURL }}\">接受邀请</a></p>"),
        (MailLocale::ZhCn, Confirmation) => ("请确认您的邮箱地址", "<h2>请确认您的邮箱地址</h2>\n\n<p>请点击下面的链接确认此邮箱地址并完成注册。</p>\n<p><a href=\"{{ .ConfirmationURL }}\">确认邮箱地址</a></p>\n<p>或输入验证码：{{ .Token }}</p>"),
        (MailLocale::ZhCn, Recovery) => ("重置您的密码", "<h2>重置您的密码</h2>\n\n<p>我们收到了重置您密码的请求，请点击下面的链接设置新密码。</p>\n<p><a href=\"{{ .ConfirmationURL }}\">重置密码</a></p>\n<p>如果这不是您本人的操作，请忽略此邮件。</p>"),
        (MailLocale::ZhCn, MagicLink) => ("您的登录链接", "<h2>您的登录链接</h2>\n\n<p>请点击下面的链接登录。此链接很快会过期，且只能使用一次。</p>\n<p><a href=\"{{ .ConfirmationURL }}\">登录</a></p>\n<p>或输入验证码：{{ .Token }}</p>"),
        (MailLocale::ZhCn, EmailChange) => ("请确认您的新邮箱地址", "<h2>请确认您的新邮箱地址</h2>\n\n<p>请点击下面的链接，确认将 {{ .NewEmail }} 设为您的新邮箱地址。</p>\n<p><a href=\"{{ .ConfirmationURL }}\">确认新邮箱地址</a></p>\n<p>如果这不是您本人的操作，请忽略此邮件。</p>"),
        (MailLocale::ZhCn, Reauthentication) => ("您的验证码是 {{ .Token }}", "<h2>您的验证码</h2>\n\n<p>请使用下面的验证码验证您的身份，验证码很快会过期。</p>\n<p>{{ .Token }}</p>"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(pairs: &[(&str, &str)]) -> Config {
        let map: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(&move |n| map.get(n).cloned()).unwrap()
    }

    #[test]
    fn links_are_built_as_gotrue_builds_them() {
        let c = config(&[("API_EXTERNAL_URL", "https://auth.example.com/auth/v1")]);
        assert_eq!(
            action_link(&c, MailTemplate::Recovery, "pkce_abc", "recovery", "https://app.example.com/cb"),
            "https://auth.example.com/verify?token=pkce_abc&type=recovery&redirect_to=https://app.example.com/cb"
        );
        let c = config(&[
            ("API_EXTERNAL_URL", "https://auth.example.com/auth/v1"),
            ("GOTRUE_MAILER_URLPATHS_CONFIRMATION", "/auth/v1/verify"),
        ]);
        assert_eq!(
            action_link(&c, MailTemplate::Confirmation, "ab12", "signup", "https://app.example.com/?a=1&b=2"),
            "https://auth.example.com/auth/v1/verify?token=ab12&type=signup&redirect_to=https%3A%2F%2Fapp.example.com%2F%3Fa%3D1%26b%3D2"
        );
    }

    #[test]
    fn templates_substitute_and_escape() {
        let data = MailData {
            email: "o'neil+x@example.com".into(),
            token: "123456".into(),
            confirmation_url: "https://a.example.com/verify?token=t&type=signup".into(),
            data: json!({"name": "<b>Li</b>", "plan": {"tier": 2}}),
            ..Default::default()
        };
        let out = render(
            "Hi {{ .Data.name }} ({{.Email}}), tier {{ .Data.plan.tier }}, missing '{{ .Data.nope }}' \
             <a href=\"{{ .ConfirmationURL }}\">go</a> {{ .Token }} {{ .SiteURL }} \
             {{ if .Data.x }}kept{{ end }} {{ .Unknown }}",
            &data,
            "https://site.example.com",
        );
        assert_eq!(
            out,
            "Hi &lt;b&gt;Li&lt;/b&gt; (o&#39;neil&#43;x@example.com), tier 2, missing '' \
             <a href=\"https://a.example.com/verify?token=t&amp;type=signup\">go</a> 123456 https://site.example.com \
             {{ if .Data.x }}kept{{ end }} {{ .Unknown }}"
        );
        assert_eq!(render("a {{- .Token -}} b", &data, ""), "a123456b");
    }
}
