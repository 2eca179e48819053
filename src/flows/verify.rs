//! `POST /verify` (GoTrue `internal/api/verify.go` `verifyPost`): a one-time code sent by SMS
//! or e-mail, or an e-mail link's token hash, turned into a session. One flow for every type;
//! the code itself is checked by [`super::otp`].
//!
//! | type | looked up by | code | effect |
//! | --- | --- | --- | --- |
//! | `sms` | phone | confirmation | phone confirmed |
//! | `phone_change` | new phone | phone change | phone replaced, confirmed |
//! | `signup`, `invite` | e-mail / hash | confirmation | e-mail confirmed |
//! | `magiclink`, `recovery` | e-mail / hash | recovery | e-mail confirmed if it was not |
//! | `email` | e-mail / hash | confirmation, else recovery | as `signup`, else `magiclink` |
//! | `email_change` | e-mail (old or new) / hash | new and current | e-mail replaced once both (with `GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED`) are confirmed |

use std::sync::Arc;

use chrono::{DateTime, Utc};
use diesel::PgConnection;

use super::account::{user_not_found, AccountChanges};
use super::otp::{self, Checked, TokenType};
use super::session::{self, AuthMethod, Session, SignIn};
use super::{phone, validate, ClientInfo};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::db_now;
use crate::models::identity::IdentityData;
use crate::models::user::{self, User};
use crate::state::AppState;

/// The body of `POST /verify`.
#[derive(serde::Deserialize, Default)]
pub struct VerifyParams {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub token: Option<String>,
    pub token_hash: Option<String>,
    pub email: Option<String>,
    pub phone: Option<String>,
    pub redirect_to: Option<String>,
}

/// GoTrue's verification types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyType {
    Signup,
    Invite,
    Recovery,
    Magiclink,
    Email,
    EmailChange,
    Sms,
    PhoneChange,
}

impl VerifyType {
    pub fn parse(s: &str) -> Option<VerifyType> {
        Some(match s {
            "signup" => VerifyType::Signup,
            "invite" => VerifyType::Invite,
            "recovery" => VerifyType::Recovery,
            "magiclink" => VerifyType::Magiclink,
            "email" => VerifyType::Email,
            "email_change" => VerifyType::EmailChange,
            "sms" => VerifyType::Sms,
            "phone_change" => VerifyType::PhoneChange,
            _ => return None,
        })
    }

    fn is_phone(self) -> bool {
        matches!(self, VerifyType::Sms | VerifyType::PhoneChange)
    }

    /// The pending codes this type may match, in the order GoTrue tries them.
    fn token_types(self) -> &'static [TokenType] {
        match self {
            VerifyType::Signup | VerifyType::Invite | VerifyType::Sms => &[TokenType::Confirmation],
            VerifyType::Recovery | VerifyType::Magiclink => &[TokenType::Recovery],
            VerifyType::Email => &[TokenType::Confirmation, TokenType::Recovery],
            VerifyType::EmailChange => &[TokenType::EmailChangeCurrent, TokenType::EmailChangeNew],
            VerifyType::PhoneChange => &[TokenType::PhoneChange],
        }
    }
}

/// What a verification produced.
pub enum Verified {
    Session(Box<Session>),
    /// The first of the two e-mail change confirmations (GoTrue's `singleConfirmationAccepted`).
    FirstOfTwoConfirmations,
}

/// How the caller proved it: a code with the address it was sent to, or a link's hash.
enum Proof {
    Code {
        kind: VerifyType,
        /// The normalised phone or e-mail.
        to: String,
        token: String,
        token_hash: String,
    },
    Hash {
        kind: VerifyType,
        token_hash: String,
    },
}

/// Checks the body the way GoTrue's `VerifyParams.Validate` does.
fn proof(state: &AppState, p: VerifyParams) -> ApiResult<Proof> {
    let non_empty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let kind = non_empty(p.kind)
        .ok_or_else(|| ApiError::validation("Verify requires a verification type"))?;
    let (token, token_hash) = (non_empty(p.token), non_empty(p.token_hash));
    let (email, phone) = (non_empty(p.email), non_empty(p.phone));
    for (name, value) in [("token", &token), ("token_hash", &token_hash)] {
        validate::no_nul(name, value.as_deref().unwrap_or(""))?;
    }
    let kind = || {
        VerifyType::parse(&kind)
            .ok_or_else(|| ApiError::validation("Unsupported verification type"))
    };
    match (token, token_hash) {
        (Some(token), None) => {
            let (kind, to) = match (email, phone) {
                (None, Some(phone)) => (
                    kind()?,
                    validate::phone(
                        &phone,
                        state.config.accounts.phone_default_country_code.as_deref(),
                    )?,
                ),
                (Some(email), None) => {
                    let email = validate::email(&email).map_err(|_| {
                        ApiError::unprocessable(ErrorCode::ValidationFailed, "Invalid email format")
                    })?;
                    (kind()?, email)
                }
                _ => {
                    return Err(ApiError::validation(
                        "Only an email address or phone number should be provided on verify",
                    ))
                }
            };
            if kind.is_phone() != to.bytes().all(|b| b.is_ascii_digit()) {
                return Err(otp::invalid_code());
            }
            let token_hash = otp::token_hash(&to, &token);
            Ok(Proof::Code {
                kind,
                to,
                token,
                token_hash,
            })
        }
        (None, Some(token_hash)) => {
            if email.is_some() || phone.is_some() || non_empty(p.redirect_to).is_some() {
                return Err(ApiError::validation(
                    "Only the token_hash and type should be provided",
                ));
            }
            let kind = kind()?;
            if kind.is_phone() {
                return Err(ApiError::validation("Invalid email verification type"));
            }
            Ok(Proof::Hash { kind, token_hash })
        }
        _ => Err(ApiError::validation(
            "Verify requires either a token or a token hash",
        )),
    }
}

/// The outcome inside the transaction: a wrong code must commit its failure count, so it is
/// not an error there.
enum Outcome {
    Verified(Verified),
    Wrong(ApiError),
}

/// `POST /verify`.
pub async fn verify(
    state: &Arc<AppState>,
    params: VerifyParams,
    client: ClientInfo,
) -> ApiResult<Verified> {
    let proof = proof(state, params)?;
    let tx_state = state.clone();
    let outcome = db::transaction(&state.pool, move |conn| {
        verify_in(conn, &tx_state, proof, &client)
    })
    .await?;
    match outcome {
        Outcome::Verified(v) => Ok(v),
        Outcome::Wrong(e) => Err(e),
    }
}

fn verify_in(
    conn: &mut PgConnection,
    state: &AppState,
    proof: Proof,
    client: &ClientInfo,
) -> ApiResult<Outcome> {
    let now = db_now();
    let aud = state.config.jwt.aud.clone();
    let link_invalid = || {
        ApiError::forbidden(
            ErrorCode::OtpExpired,
            "Email link is invalid or has expired",
        )
    };
    let (kind, user, matched) = match proof {
        Proof::Hash { kind, token_hash } => {
            let Some((id, token_type)) =
                crate::models::one_time_token::find_by_hash(conn, kind.token_types(), &token_hash)?
            else {
                return Ok(Outcome::Wrong(link_invalid()));
            };
            let user = user::find_by_id(conn, id)?.ok_or_else(user_not_found)?;
            ensure_not_banned(&user, now)?;
            let rules = rules(state, kind);
            match otp::check(conn, id, token_type, &token_hash, rules, now)? {
                Checked::Valid => (kind, user, token_type),
                Checked::Wrong => return Ok(Outcome::Wrong(link_invalid())),
            }
        }
        Proof::Code {
            kind,
            to,
            token,
            token_hash,
        } => {
            let found = match kind {
                VerifyType::Sms => user::find_by_phone(conn, &to)?,
                VerifyType::PhoneChange => user::find_by_phone_change(conn, &to)?,
                VerifyType::EmailChange => user::find_by_email_change(conn, &aud, &to)?,
                _ => user::find_by_email(conn, &aud, &to)?,
            };
            let Some(user) = found else {
                return Ok(Outcome::Wrong(otp::invalid_code()));
            };
            ensure_not_banned(&user, now)?;
            let test_code = kind.is_phone() && phone::is_test_code(state, &to, &token, now);
            let mut matched = None;
            for token_type in kind.token_types() {
                if test_code {
                    matched = Some(*token_type);
                    break;
                }
                if otp::check(
                    conn,
                    user.id,
                    *token_type,
                    &token_hash,
                    rules(state, kind),
                    now,
                )? == Checked::Valid
                {
                    matched = Some(*token_type);
                    break;
                }
            }
            let Some(matched) = matched else {
                return Ok(Outcome::Wrong(otp::invalid_code()));
            };
            (kind, user, matched)
        }
    };
    apply(conn, state, kind, user, matched, now, client).map(Outcome::Verified)
}

fn ensure_not_banned(user: &User, now: DateTime<Utc>) -> ApiResult<()> {
    if user.is_banned(now) {
        return Err(ApiError::forbidden(ErrorCode::UserBanned, "User is banned"));
    }
    Ok(())
}

/// SMS codes live `GOTRUE_SMS_OTP_EXP`; e-mail codes and links `GOTRUE_MAILER_OTP_EXP`.
fn rules(state: &AppState, kind: VerifyType) -> otp::Rules {
    if kind.is_phone() {
        phone::rules(state)
    } else {
        email_rules(state)
    }
}

/// The code's lifetime (`GOTRUE_MAILER_OTP_EXP`) and attempt rules for e-mail codes.
pub(super) fn email_rules(state: &AppState) -> otp::Rules {
    otp::Rules {
        exp: state.config.mail.otp_exp,
        max_attempts: state.config.sms.otp_max_attempts,
    }
}

/// What a verified code does to the user, then the session it signs in.
fn apply(
    conn: &mut PgConnection,
    state: &AppState,
    kind: VerifyType,
    user: User,
    matched: TokenType,
    now: DateTime<Utc>,
    client: &ClientInfo,
) -> ApiResult<Verified> {
    let mut changes = AccountChanges::new(&user);
    changes.clear_token(matched);
    let mut action = "login";
    match (kind, matched) {
        (VerifyType::Sms, _) => {
            if user.phone_confirmed_at.is_none() {
                action = "user_signedup";
                if let Some(phone) = user.phone.as_deref() {
                    changes.confirmed_phone(phone, now);
                }
            }
        }
        (VerifyType::PhoneChange, _) => {
            let new_phone = user.phone_change.clone().unwrap_or_default();
            super::account::ensure_phone_free(
                conn,
                &new_phone,
                Some(user.id),
                super::account::PHONE_TAKEN,
            )?;
            changes.confirmed_phone(&new_phone, now);
            action = "user_modified";
        }
        (VerifyType::EmailChange, _) => {
            let other = match matched {
                TokenType::EmailChangeCurrent => TokenType::EmailChangeNew,
                _ => TokenType::EmailChangeCurrent,
            };
            let other_pending =
                crate::models::one_time_token::pending_for_update(conn, user.id, other)?
                    .is_some_and(|p| !p.token_hash.is_empty());
            if other_pending {
                changes.write(conn, now)?;
                return Ok(Verified::FirstOfTwoConfirmations);
            }
            let new_email = user.email_change.clone().unwrap_or_default();
            let aud = user
                .aud
                .clone()
                .unwrap_or_else(|| state.config.jwt.aud.clone());
            super::account::ensure_email_free(conn, &aud, &new_email, Some(user.id))?;
            changes.clear_token(other);
            changes.confirmed_email(&new_email, now);
            action = "user_modified";
        }
        (_, TokenType::Confirmation) => {
            // signup, invite, or `email` matching the confirmation code.
            if user.email_confirmed_at.is_none() {
                action = "user_signedup";
                if let Some(email) = user.email.as_deref() {
                    changes.email(email, IdentityData::new(user.id).email_verified(true));
                }
                changes.confirm_email_now(now);
                changes.user_metadata(
                    [("email_verified".to_string(), serde_json::Value::Bool(true))]
                        .into_iter()
                        .collect(),
                );
            }
        }
        _ => {
            // magiclink, recovery, or `email` matching the recovery code.
            if user.email_confirmed_at.is_none() {
                action = "user_signedup";
                if let Some(email) = user.email.as_deref() {
                    changes.email(email, IdentityData::new(user.id).email_verified(true));
                }
                changes.confirm_email_now(now);
            }
        }
    }
    let user = changes.write(conn, now)?;
    otp::clear_all(conn, user.id)?;
    let sign_in = SignIn::first_factor(AuthMethod::Otp, action);
    let session = session::issue(conn, state, user, sign_in, client)?;
    Ok(Verified::Session(Box::new(session)))
}
