//! Codes and links by e-mail (GoTrue `internal/api/mail.go` `send*`, `recover.go`,
//! `magic_link.go`, `invite.go`, `resend.go`, `reauthenticate.go`, `adminGenerateLink`): who
//! gets which mail, the resend interval and the send cap, with the code stored by
//! [`super::otp`] and the mail rendered and sent by [`super::mail`].
//!
//! As for SMS, a mail is sent inside the transaction that stores its code: a failed send rolls
//! back the code and any user created for it, and no code is stored that was not sent. Sends
//! are not retried.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde_json::{Map, Value};

use super::mail::{action_link, EmailAction, MailData};
use super::otp::{self, OneTimeCode, TokenType};
use super::signup::{self, Contact};
use super::validate;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::db_now;
use crate::models::identity::Identity;
use crate::models::one_time_token;
use crate::models::user::{self, User, UserChanges};
use crate::state::AppState;

/// The code type an action's code is stored as.
fn token_type(action: EmailAction) -> TokenType {
    match action {
        EmailAction::Signup | EmailAction::Invite => TokenType::Confirmation,
        EmailAction::MagicLink | EmailAction::Recovery => TokenType::Recovery,
        EmailAction::EmailChange => TokenType::EmailChangeNew,
        EmailAction::Reauthentication => TokenType::Reauthentication,
    }
}

/// How long a transaction that sends mail may stay open beyond the usual deadline: two sends
/// (an e-mail change) and a template fetch.
pub(super) fn mail_time(state: &AppState) -> Duration {
    let smtp = state
        .config
        .mail
        .smtp
        .as_ref()
        .map_or(Duration::ZERO, |s| s.timeout);
    smtp * 2 + Duration::from_secs(10)
}

fn frequency_check(
    state: &AppState,
    last: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    otp::ensure_resend_allowed(
        last,
        state.config.mail.max_frequency,
        now,
        ErrorCode::OverEmailSendRateLimit,
    )
}

/// Sends the mail of `action` with a new code to the user's address and stores the code, on
/// the caller's transaction (`rt` runs the SMTP exchange from this blocking thread). 429 when
/// the last code of its kind went out less than `GOTRUE_SMTP_MAX_FREQUENCY` ago (invitations
/// have no interval, as in GoTrue). Returns the code.
pub fn send_code(
    conn: &mut PgConnection,
    state: &AppState,
    rt: &tokio::runtime::Handle,
    user: &User,
    action: EmailAction,
    redirect_to: &str,
) -> ApiResult<OneTimeCode> {
    let config = &state.config;
    let now = db_now();
    let kind = token_type(action);
    if action != EmailAction::Invite {
        frequency_check(state, otp::sent_at(user, kind), now)?;
    }
    let email = user
        .email
        .clone()
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::validation("An email address is required"))?;
    let code = OneTimeCode::generate(&email, config.mail.otp_length);
    state.mail.check_send_cap(config)?;
    let data = MailData {
        email: email.clone(),
        sending_to: email.clone(),
        token: code.otp.clone(),
        token_hash: code.token_hash.clone(),
        redirect_to: redirect_to.to_string(),
        confirmation_url: action_link(
            config,
            action.template(),
            &code.token_hash,
            action.link_type(),
            redirect_to,
        ),
        data: Value::Object(user.user_metadata()),
        ..Default::default()
    };
    deliver(conn, state, rt, user, action, &email, &data, None)?;
    otp::store(conn, user.id, kind, &email, &code, now)?;
    if action == EmailAction::Invite {
        mark_invited(conn, user.id, now)?;
    }
    Ok(code)
}

fn mark_invited(conn: &mut PgConnection, id: uuid::Uuid, now: DateTime<Utc>) -> ApiResult<()> {
    let changes = UserChanges {
        invited_at: Some(Some(now)),
        ..Default::default()
    };
    user::update(conn, id, changes, now)?.ok_or_else(super::account::user_not_found)?;
    Ok(())
}

/// Sends one mail: to GoTrue's Send Email hook when it is enabled (`pg-functions` on this
/// transaction, HTTP from this blocking thread), else over SMTP. `current` is, for an e-mail
/// change sent through the hook, the code of the current address, which GoTrue's payload
/// carries as `token` beside the new address's `token_new`.
#[allow(clippy::too_many_arguments)]
fn deliver(
    conn: &mut PgConnection,
    state: &AppState,
    rt: &tokio::runtime::Handle,
    user: &User,
    action: EmailAction,
    to: &str,
    data: &MailData,
    current: Option<&OneTimeCode>,
) -> ApiResult<()> {
    let config = &state.config;
    let Some(hook) = &state.send_email_hook else {
        return rt.block_on(state.mail.send(config, action, to, data));
    };
    let (token, token_hash, token_new, token_hash_new) = match current {
        Some(current) => (
            current.otp.as_str(),
            current.token_hash.as_str(),
            data.token.as_str(),
            data.token_hash.as_str(),
        ),
        None => (data.token.as_str(), data.token_hash.as_str(), "", ""),
    };
    let payload = serde_json::json!({
        "metadata": {
            "uuid": uuid::Uuid::new_v4(),
            "time": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
            "name": "send-email",
        },
        "user": user.to_json(None),
        "email_data": {
            "token": token,
            "token_hash": token_hash,
            "redirect_to": data.redirect_to,
            "email_action_type": action.link_type(),
            "site_url": config.server.site_url,
            "token_new": token_new,
            "token_hash_new": token_hash_new,
        },
    });
    if hook.is_pg_function() {
        hook.call_sql(conn, &payload)?;
    } else {
        rt.block_on(hook.call_http(&payload))?;
    }
    Ok(())
}

/// The two codes of an e-mail change (GoTrue `sendEmailChange`): one to the new address and,
/// with `GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED` and a current address, one to the current
/// address. Records the pending address (`new_email`). Returns (new, current) codes.
pub fn send_email_change(
    conn: &mut PgConnection,
    state: &AppState,
    rt: &tokio::runtime::Handle,
    user: &User,
    new_email: &str,
    redirect_to: &str,
) -> ApiResult<(OneTimeCode, Option<OneTimeCode>)> {
    let config = &state.config;
    let now = db_now();
    frequency_check(state, user.email_change_sent_at, now)?;
    let current = user.email.clone().filter(|e| !e.is_empty());
    let code_new = OneTimeCode::generate(new_email, config.mail.otp_length);
    let code_current = current
        .as_ref()
        .filter(|_| config.mail.secure_email_change)
        .map(|c| OneTimeCode::generate(c, config.mail.otp_length));
    state.mail.check_send_cap(config)?;
    let mut sends = vec![(new_email.to_string(), &code_new)];
    if let (Some(current), Some(code)) = (&current, &code_current) {
        sends.push((current.clone(), code));
    }
    // The Send Email hook gets one call with both codes, as GoTrue sends it.
    let hook_pair = state
        .send_email_hook
        .as_ref()
        .map(|_| (&code_new, code_current.as_ref()));
    for (to, code) in sends {
        if hook_pair.is_some() && to != new_email {
            continue;
        }
        let data = MailData {
            email: current.clone().unwrap_or_default(),
            new_email: new_email.to_string(),
            sending_to: to.clone(),
            token: code.otp.clone(),
            token_hash: code.token_hash.clone(),
            redirect_to: redirect_to.to_string(),
            confirmation_url: action_link(
                config,
                EmailAction::EmailChange.template(),
                &code.token_hash,
                "email_change",
                redirect_to,
            ),
            data: Value::Object(user.user_metadata()),
        };
        deliver(
            conn,
            state,
            rt,
            user,
            EmailAction::EmailChange,
            &to,
            &data,
            hook_pair.and_then(|(_, current)| current),
        )?;
    }
    record_email_change(conn, user, new_email, &code_new, code_current.as_ref(), now)?;
    Ok((code_new, code_current))
}

/// Stores the codes of an e-mail change and the pending address.
fn record_email_change(
    conn: &mut PgConnection,
    user: &User,
    new_email: &str,
    code_new: &OneTimeCode,
    code_current: Option<&OneTimeCode>,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let changes = UserChanges {
        email_change: Some(new_email.to_string()),
        email_change_sent_at: Some(Some(now)),
        ..Default::default()
    };
    user::update(conn, user.id, changes, now)?.ok_or_else(super::account::user_not_found)?;
    otp::store(
        conn,
        user.id,
        TokenType::EmailChangeNew,
        new_email,
        code_new,
        now,
    )?;
    match (code_current, user.email.as_deref()) {
        (Some(code), Some(current)) => otp::store(
            conn,
            user.id,
            TokenType::EmailChangeCurrent,
            current,
            code,
            now,
        )?,
        // Without secure change only the new address confirms; no older code for the current
        // address may stay pending.
        _ => one_time_token::void(conn, user.id, TokenType::EmailChangeCurrent)?,
    }
    Ok(())
}

fn ensure_email_enabled(state: &AppState) -> ApiResult<()> {
    if !state.config.accounts.email_enabled {
        return Err(ApiError::bad_request(
            ErrorCode::EmailProviderDisabled,
            "Email logins are disabled",
        ));
    }
    Ok(())
}

fn find_by_email(
    conn: &mut PgConnection,
    state: &AppState,
    email: &str,
) -> ApiResult<Option<User>> {
    Ok(user::find_by_email(conn, &state.config.jwt.aud, email)?)
}

/// `POST /recover`: a recovery mail to a known address; an unknown one answers the same, so the
/// route does not tell who has an account.
pub async fn recover(
    state: &Arc<AppState>,
    email: Option<String>,
    redirect_to: String,
) -> ApiResult<()> {
    ensure_email_enabled(state)?;
    let email = email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| ApiError::validation("Password recovery requires an email"))?;
    let email = validate::email(&email)?;
    for_known_address(state, email, move |conn, state, rt, user| {
        send_code(conn, state, rt, &user, EmailAction::Recovery, &redirect_to)?;
        Ok(())
    })
    .await
}

/// Runs `f` with the user of `email` in a transaction that may send mail; an unknown address
/// does nothing (the caller answers as if it had sent).
async fn for_known_address<F>(state: &Arc<AppState>, email: String, f: F) -> ApiResult<()>
where
    F: FnOnce(&mut PgConnection, &AppState, &tokio::runtime::Handle, User) -> ApiResult<()>
        + Send
        + 'static,
{
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    db::transaction_calling_out(
        &state.pool,
        mail_time(state),
        move |conn| match find_by_email(conn, &tx_state, &email)? {
            Some(user) => f(conn, &tx_state, &rt, user),
            None => Ok(()),
        },
    )
    .await
}

/// `POST /magiclink`, and `POST /otp` with an e-mail (GoTrue `MagicLink`): a confirmed user
/// gets a magic link with a code; an unknown or unconfirmed address is signed up (without a
/// password) and gets the sign-up confirmation mail, or, with `GOTRUE_MAILER_AUTOCONFIRM`, is
/// created confirmed and gets the magic link. `create_user: false` and no such user: 422
/// `otp_disabled`.
pub async fn magic_link(
    state: &Arc<AppState>,
    email: String,
    create_user: bool,
    data: Map<String, Value>,
    redirect_to: String,
) -> ApiResult<()> {
    let accounts = &state.config.accounts;
    if !accounts.email_enabled {
        return Err(ApiError::unprocessable(
            ErrorCode::EmailProviderDisabled,
            "Email logins are disabled",
        ));
    }
    if !state.config.mail.magic_link_enabled {
        return Err(ApiError::unprocessable(
            ErrorCode::EmailProviderDisabled,
            "Login with magic link is disabled",
        ));
    }
    let email = validate::email(&email)?;
    validate::metadata(&data)?;
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    db::transaction_calling_out(&state.pool, mail_time(state), move |conn| {
        let state = &tx_state;
        let accounts = &state.config.accounts;
        let now = db_now();
        let user = match find_by_email(conn, state, &email)? {
            Some(u) if u.email_confirmed_at.is_some() => u,
            found => {
                let user = match found {
                    Some(u) => u,
                    None => {
                        let confirmed = accounts.mailer_autoconfirm.then_some(now);
                        let contact = Contact::Email(email.clone());
                        let mut user = signup::create_for_otp(
                            conn,
                            state,
                            &contact,
                            create_user,
                            data,
                            confirmed,
                            now,
                        )?;
                        // Nothing was sent to the new user yet.
                        user.confirmation_sent_at = None;
                        user
                    }
                };
                if user.email_confirmed_at.is_none() {
                    if user.is_banned(now) {
                        return Err(ApiError::forbidden(ErrorCode::UserBanned, "User is banned"));
                    }
                    send_code(conn, state, &rt, &user, EmailAction::Signup, &redirect_to)?;
                    return Ok(());
                }
                user
            }
        };
        if user.is_banned(now) {
            return Err(ApiError::forbidden(ErrorCode::UserBanned, "User is banned"));
        }
        send_code(
            conn,
            state,
            &rt,
            &user,
            EmailAction::MagicLink,
            &redirect_to,
        )?;
        Ok(())
    })
    .await
}

/// `POST /invite` (service role, GoTrue `Invite`): creates the user if needed (no password)
/// and sends the invitation; an already confirmed address is 422 `email_exists`.
pub async fn invite(
    state: &Arc<AppState>,
    email: Option<String>,
    data: Option<Map<String, Value>>,
    redirect_to: String,
) -> ApiResult<(User, Vec<Identity>)> {
    let email = validate::email(&email.unwrap_or_default())?;
    let data = data.unwrap_or_default();
    validate::metadata(&data)?;
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    db::transaction_calling_out(&state.pool, mail_time(state), move |conn| {
        let state = &tx_state;
        let user = invitee(conn, state, &email, data)?;
        send_code(conn, state, &rt, &user, EmailAction::Invite, &redirect_to)?;
        user::find_with_identities(conn, user.id)?.ok_or_else(super::account::user_not_found)
    })
    .await
}

/// The user an invitation is for: an unconfirmed existing one or a new one.
fn invitee(
    conn: &mut PgConnection,
    state: &AppState,
    email: &str,
    data: Map<String, Value>,
) -> ApiResult<User> {
    match find_by_email(conn, state, email)? {
        Some(u) if u.email_confirmed_at.is_some() => Err(ApiError::unprocessable(
            ErrorCode::EmailExists,
            super::account::EMAIL_TAKEN,
        )),
        Some(u) => Ok(u),
        None => {
            let contact = Contact::Email(email.to_string());
            signup::create_user(conn, state, &contact, "", data, None, db_now())
        }
    }
}

/// `POST /resend` with an e-mail: `signup` sends the confirmation again to an unconfirmed
/// user, `email_change` the change mails of a pending change. Anything else (unknown address,
/// confirmed user, no pending change) answers `{}` without sending, as GoTrue does.
pub async fn resend(
    state: &Arc<AppState>,
    email: &str,
    change: bool,
    redirect_to: String,
) -> ApiResult<()> {
    ensure_email_enabled(state)?;
    let email = validate::email(email)?;
    for_known_address(state, email, move |conn, state, rt, user| {
        if change {
            let Some(new_email) = user.email_change.clone().filter(|e| !e.is_empty()) else {
                return Ok(());
            };
            send_email_change(conn, state, rt, &user, &new_email, &redirect_to)?;
        } else if user.email_confirmed_at.is_none() {
            send_code(conn, state, rt, &user, EmailAction::Signup, &redirect_to)?;
        }
        Ok(())
    })
    .await
}

/// `GET /reauthenticate` for a user with a confirmed e-mail: a code by mail.
pub async fn reauthenticate(state: &Arc<AppState>, user: User) -> ApiResult<()> {
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    db::transaction_calling_out(&state.pool, mail_time(state), move |conn| {
        send_code(
            conn,
            &tx_state,
            &rt,
            &user,
            EmailAction::Reauthentication,
            "",
        )?;
        Ok(())
    })
    .await
}

/// The body of `POST /admin/generate_link`.
#[derive(serde::Deserialize)]
pub struct GenerateLinkParams {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub email: Option<String>,
    pub new_email: Option<String>,
    pub password: Option<String>,
    pub data: Option<Map<String, Value>>,
    pub redirect_to: Option<String>,
}

/// What `generate_link` answers besides the user.
pub struct GeneratedLink {
    pub user: User,
    pub identities: Vec<Identity>,
    pub action_link: String,
    pub email_otp: String,
    pub hashed_token: String,
    pub verification_type: String,
    pub redirect_to: String,
}

/// `POST /admin/generate_link` (GoTrue `adminGenerateLink`): the link and code of any mail,
/// stored like a sent one, without sending anything.
pub async fn generate_link(
    state: &Arc<AppState>,
    p: GenerateLinkParams,
    redirect_to: String,
) -> ApiResult<GeneratedLink> {
    let email = validate::email(&p.email.unwrap_or_default())?;
    let mut kind = p.kind.unwrap_or_default();
    let data = p.data.unwrap_or_default();
    validate::metadata(&data)?;
    let new_email = match kind.as_str() {
        "email_change_current" | "email_change_new" => {
            Some(validate::email(&p.new_email.unwrap_or_default())?)
        }
        _ => None,
    };
    let hash = match p.password.filter(|pw| !pw.is_empty()) {
        Some(pw) if kind == "signup" => {
            crate::auth::password::check_strength(&pw, state.config.password.min_length)?;
            let cfg = state.config.password.hash.clone();
            state
                .hashing
                .run(move || crate::auth::password::hash(&pw, &cfg))
                .await??
        }
        _ => String::new(),
    };
    let tx_state = state.clone();
    db::transaction(&state.pool, move |conn| {
        let state = &tx_state;
        let config = &state.config;
        let now = db_now();
        let existing = find_by_email(conn, state, &email)?;
        if existing.is_none() {
            match kind.as_str() {
                "magiclink" => kind = "signup".into(),
                "recovery" | "email_change_current" | "email_change_new" => {
                    return Err(ApiError::not_found(
                        ErrorCode::UserNotFound,
                        "User with this email not found",
                    ))
                }
                _ => {}
            }
        }
        let code = OneTimeCode::generate(&email, config.mail.otp_length);
        let (user, stored, link_type, template) = match kind.as_str() {
            "magiclink" | "recovery" => {
                let user = existing.expect("checked above");
                otp::store(conn, user.id, TokenType::Recovery, &email, &code, now)?;
                let action = if kind == "magiclink" {
                    EmailAction::MagicLink
                } else {
                    EmailAction::Recovery
                };
                (
                    user,
                    code.token_hash.clone(),
                    action.link_type(),
                    action.template(),
                )
            }
            "invite" => {
                let user = invitee(conn, state, &email, data)?;
                otp::store(conn, user.id, TokenType::Confirmation, &email, &code, now)?;
                mark_invited(conn, user.id, now)?;
                (
                    user,
                    code.token_hash.clone(),
                    "invite",
                    EmailAction::Invite.template(),
                )
            }
            "signup" => {
                let user = match existing {
                    Some(u) if u.email_confirmed_at.is_some() => {
                        return Err(ApiError::unprocessable(
                            ErrorCode::EmailExists,
                            super::account::EMAIL_TAKEN,
                        ))
                    }
                    Some(u) => u,
                    None => {
                        let contact = Contact::Email(email.clone());
                        let meta = Value::Object(data.clone());
                        let user =
                            signup::create_user(conn, state, &contact, &hash, data, None, now)?;
                        // GoTrue's generated sign-up keeps `data` alone as user_metadata (the
                        // identity's claims stay in the identity).
                        let changes = UserChanges {
                            raw_user_meta_data: Some(meta),
                            ..Default::default()
                        };
                        user::update(conn, user.id, changes, now)?
                            .ok_or_else(super::account::user_not_found)?
                    }
                };
                otp::store(conn, user.id, TokenType::Confirmation, &email, &code, now)?;
                (
                    user,
                    code.token_hash.clone(),
                    "signup",
                    EmailAction::Signup.template(),
                )
            }
            "email_change_current" | "email_change_new" => {
                if kind == "email_change_current" && !config.mail.secure_email_change {
                    return Err(ApiError::validation(
                        "Enable secure email change to generate link for current email",
                    ));
                }
                let user = existing.expect("checked above");
                let new_email = new_email.clone().unwrap_or_default();
                let aud = user.aud.clone().unwrap_or_else(|| config.jwt.aud.clone());
                super::account::ensure_email_free(conn, &aud, &new_email, Some(user.id))?;
                let (new_code, current_code) = if kind == "email_change_new" {
                    (OneTimeCode::fixed(&new_email, code.otp.clone()), None)
                } else {
                    // GoTrue stores only the requested side's code.
                    (OneTimeCode::fixed(&new_email, String::new()), Some(&code))
                };
                let changes = UserChanges {
                    email_change: Some(new_email.clone()),
                    email_change_sent_at: Some(Some(now)),
                    ..Default::default()
                };
                user::update(conn, user.id, changes, now)?
                    .ok_or_else(super::account::user_not_found)?;
                let stored = match current_code {
                    Some(c) => {
                        otp::store(conn, user.id, TokenType::EmailChangeCurrent, &email, c, now)?;
                        c.token_hash.clone()
                    }
                    None => {
                        otp::store(
                            conn,
                            user.id,
                            TokenType::EmailChangeNew,
                            &new_email,
                            &new_code,
                            now,
                        )?;
                        new_code.token_hash.clone()
                    }
                };
                (
                    user,
                    stored,
                    "email_change",
                    EmailAction::EmailChange.template(),
                )
            }
            other => {
                return Err(ApiError::validation(format!(
                    "Invalid email action link type requested: {}",
                    other.chars().take(40).collect::<String>()
                )))
            }
        };
        let action_link = action_link(config, template, &stored, link_type, &redirect_to);
        let (user, identities) = user::find_with_identities(conn, user.id)?
            .ok_or_else(super::account::user_not_found)?;
        Ok(GeneratedLink {
            user,
            identities,
            action_link,
            email_otp: code.otp.clone(),
            hashed_token: code.token_hash.clone(),
            verification_type: kind,
            redirect_to,
        })
    })
    .await
}
