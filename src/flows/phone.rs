//! Codes by SMS (GoTrue `internal/api/phone.go` `sendPhoneConfirmation`, `otp.go` `SmsOtp`,
//! `resend.go`, `reauthenticate.go`): who gets a code, the send limits, and the send itself
//! through [`crate::providers::sms`], with the code stored by [`super::otp`].
//!
//! A send happens inside the transaction that stores its code (GoTrue does the same): a send
//! that fails rolls the code (and a user created for it) back, and a code is never stored
//! without having been sent. Sends are not retried.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde_json::{Map, Value};

use super::otp::{self, OneTimeCode, TokenType};
use super::signup::{self, Contact};
use super::validate;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::db_now;
use crate::models::user::{self, User};
use crate::providers::sms::SmsMessage;
use crate::rate_limit::{Limit, GLOBAL};
use crate::state::AppState;

/// What a send answers: the provider's message id (`"test-otp"` for a test number).
pub type MessageId = Option<String>;

/// The per-number and server-wide SMS budgets (`WEAUTH_RATE_LIMIT_SMS_PER_NUMBER`,
/// `GOTRUE_RATE_LIMIT_SMS_SENT`), spent before the send's transaction. Test numbers send
/// nothing and spend nothing.
pub async fn spend_send_limits(state: &AppState, phone: &str) -> ApiResult<()> {
    if state.config.sms.test_otp(phone, Utc::now()).is_some() {
        return Ok(());
    }
    state.limits.check(Limit::SmsPerNumber, phone).await?;
    state.limits.check(Limit::SmsSent, GLOBAL).await
}

/// Sends a new code of `kind` to `phone` for `user` and stores it, on the caller's transaction
/// (`rt` runs the provider's HTTP call from this blocking thread). 429 when the last code of
/// this kind went out less than `GOTRUE_SMS_MAX_FREQUENCY` ago.
pub fn send_code(
    conn: &mut PgConnection,
    state: &AppState,
    rt: &tokio::runtime::Handle,
    user: &User,
    kind: TokenType,
    phone: &str,
) -> ApiResult<MessageId> {
    let sms = &state.config.sms;
    let now = db_now();
    otp::ensure_resend_allowed(
        otp::sent_at(user, kind),
        sms.max_frequency,
        now,
        ErrorCode::OverSmsSendRateLimit,
    )?;
    let (code, message_id) = match sms.test_otp(phone, now) {
        Some(fixed) => (
            OneTimeCode::fixed(phone, fixed),
            Some("test-otp".to_string()),
        ),
        None => {
            let code = OneTimeCode::generate(phone, sms.otp_length);
            let text = state.config.sms.template.replace("{{ .Code }}", &code.otp);
            let message_id = deliver(conn, state, rt, user, phone, &code.otp, &text)?;
            (code, message_id)
        }
    };
    otp::store(conn, user.id, kind, phone, &code, now)?;
    Ok(message_id)
}

/// Sends `otp` (in `text`) to `phone` through the configured provider or the Send SMS hook;
/// also used by MFA phone challenges, with their own template.
pub fn deliver(
    conn: &mut PgConnection,
    state: &AppState,
    rt: &tokio::runtime::Handle,
    user: &User,
    phone: &str,
    otp: &str,
    text: &str,
) -> ApiResult<MessageId> {
    let Some(provider) = &state.sms else {
        return Err(ApiError::unprocessable(
            ErrorCode::SmsSendFailed,
            "Error sending sms OTP: no SMS provider is configured",
        ));
    };
    let user_json = serde_json::to_value(user.to_json(None)).map_err(ApiError::internal)?;
    let message = SmsMessage {
        phone,
        otp,
        text,
        user: &user_json,
    };
    let sent = if provider.runs_in_database() {
        provider.send_sql(conn, &message)?
    } else {
        rt.block_on(provider.send(&message))?
    };
    Ok(sent.message_id)
}

/// The body of `POST /otp` for a phone.
pub struct PhoneOtp {
    pub phone: String,
    pub create_user: bool,
    pub data: Map<String, Value>,
    pub channel: Option<String>,
}

/// What `POST /otp` answers: `{}` when a user was (re)signed up, else the message id.
pub enum OtpSent {
    SignedUp,
    Sent(MessageId),
}

/// `POST /otp` with a phone (GoTrue `SmsOtp`): a code to the number, creating the user when
/// it has none (unless `create_user` is false: 422 `otp_disabled`). A user created here has an
/// unconfirmed phone and no password until the code is verified, even with
/// `GOTRUE_SMS_AUTOCONFIRM` (GoTrue confirms it at once then; nothing is gained by that).
pub async fn send_otp(state: &Arc<AppState>, params: PhoneOtp) -> ApiResult<OtpSent> {
    let accounts = &state.config.accounts;
    if !accounts.phone_enabled {
        return Err(ApiError::bad_request(
            ErrorCode::PhoneProviderDisabled,
            "Unsupported phone provider",
        ));
    }
    ensure_sms_channel(params.channel.as_deref())?;
    let phone = validate::phone(
        &params.phone,
        accounts.phone_default_country_code.as_deref(),
    )?;
    validate::metadata(&params.data)?;
    spend_send_limits(state, &phone).await?;
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    db::transaction_calling_out(&state.pool, state.config.sms.timeout, move |conn| {
        let state = &tx_state;
        let existing = user::find_by_phone(conn, &phone)?;
        let (user, signed_up) = match existing {
            Some(u) if u.phone_confirmed_at.is_some() => (u, false),
            Some(u) => (u, true),
            None => {
                let contact = Contact::Phone(phone.clone());
                let user = signup::create_for_otp(
                    conn,
                    state,
                    &contact,
                    params.create_user,
                    params.data,
                    None,
                    db_now(),
                )?;
                (user, true)
            }
        };
        if user.is_banned(db_now()) {
            return Err(ApiError::forbidden(ErrorCode::UserBanned, "User is banned"));
        }
        let message_id = send_code(conn, state, &rt, &user, TokenType::Confirmation, &phone)?;
        Ok(if signed_up {
            OtpSent::SignedUp
        } else {
            OtpSent::Sent(message_id)
        })
    })
    .await
}

/// `sms` (the default) is the only channel: WhatsApp is a Twilio feature.
pub fn ensure_sms_channel(channel: Option<&str>) -> ApiResult<()> {
    match channel {
        None | Some("") | Some("sms") => Ok(()),
        Some(_) => Err(ApiError::validation(
            "Invalid channel, only 'sms' is supported by the configured SMS provider",
        )),
    }
}

/// `POST /resend` for `sms` and `phone_change`: a new code to the user's number (or the number
/// being changed to). An unknown number, a confirmed one (`sms`) or no pending change answers
/// `{}` without sending, as GoTrue does.
pub async fn resend(state: &Arc<AppState>, phone: &str, change: bool) -> ApiResult<MessageId> {
    let accounts = &state.config.accounts;
    if !accounts.phone_enabled {
        return Err(ApiError::bad_request(
            ErrorCode::PhoneProviderDisabled,
            "Phone logins are disabled",
        ));
    }
    let phone = validate::phone(phone, accounts.phone_default_country_code.as_deref())?;
    let target = {
        let phone = phone.clone();
        db::run(&state.pool, move |conn| {
            Ok(if change {
                match user::find_by_phone(conn, &phone)? {
                    Some(u) => Some(u),
                    None => user::find_by_phone_change(conn, &phone)?,
                }
            } else {
                user::find_by_phone(conn, &phone)?
            })
        })
        .await?
    };
    let Some(user) = target else {
        return Ok(None);
    };
    let to = if change {
        match user.phone_change.clone().filter(|p| !p.is_empty()) {
            Some(new_phone) => new_phone,
            None => return Ok(None),
        }
    } else if user.phone_confirmed_at.is_some() {
        return Ok(None);
    } else {
        phone
    };
    spend_send_limits(state, &to).await?;
    let kind = if change {
        TokenType::PhoneChange
    } else {
        TokenType::Confirmation
    };
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    db::transaction_calling_out(&state.pool, state.config.sms.timeout, move |conn| {
        // Re-read under the transaction: the pending change may have moved on meanwhile.
        let user = user::find_by_id(conn, user.id)?.ok_or_else(super::account::user_not_found)?;
        send_code(conn, &tx_state, &rt, &user, kind, &to)
    })
    .await
}

/// Sends the reauthentication code of `GET /reauthenticate` to the user's confirmed phone.
pub async fn reauthenticate(state: &Arc<AppState>, user: User) -> ApiResult<MessageId> {
    let phone = user.phone.clone().unwrap_or_default();
    if user.phone_confirmed_at.is_none() {
        return Err(ApiError::unprocessable(
            ErrorCode::PhoneNotConfirmed,
            "Please verify your phone first.",
        ));
    }
    spend_send_limits(state, &phone).await?;
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    db::transaction_calling_out(&state.pool, state.config.sms.timeout, move |conn| {
        send_code(
            conn,
            &tx_state,
            &rt,
            &user,
            TokenType::Reauthentication,
            &phone,
        )
    })
    .await
}

/// The code's lifetime and attempt rules for SMS codes.
pub fn rules(state: &AppState) -> otp::Rules {
    otp::Rules {
        exp: state.config.sms.otp_exp,
        max_attempts: state.config.sms.otp_max_attempts,
    }
}

/// True when `phone` is a `GOTRUE_SMS_TEST_OTP` number and `token` its code.
pub fn is_test_code(state: &AppState, phone: &str, token: &str, now: DateTime<Utc>) -> bool {
    state.config.sms.test_otp(phone, now).is_some_and(|code| {
        bool::from(subtle::ConstantTimeEq::ct_eq(
            code.as_bytes(),
            token.as_bytes(),
        ))
    })
}
