//! `POST /signup` (GoTrue `internal/api/signup.go`): e-mail or phone plus password, or, with
//! neither, an anonymous sign-in (`internal/api/anonymous.go`).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::account::{user_write_error, Taken, PHONE_TAKEN};
use super::otp::TokenType;
use super::session::{self, AuthMethod, Session, SignIn};
use super::{validate, ClientInfo};
use crate::auth::password;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::db_now;
use crate::models::identity::{self, Identity, IdentityData, NewIdentity};
use crate::models::sign_in::{self, Unless};
use crate::models::user::{self, MetadataPatch, NewUser, User, UserChanges};
use crate::state::AppState;

/// The body of `POST /signup`.
#[derive(serde::Deserialize)]
pub struct SignupParams {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub data: Option<Map<String, Value>>,
    /// Where the confirmation mail's link leads (the validated `redirect_to`; set by the API).
    #[serde(skip)]
    pub redirect_to: String,
}

impl SignupParams {
    /// Neither e-mail nor phone: GoTrue's router sends these to the anonymous sign-in.
    pub fn is_anonymous(&self) -> bool {
        self.email.as_deref().unwrap_or_default().is_empty()
            && self.phone.as_deref().unwrap_or_default().is_empty()
    }
}

/// 422 `anonymous_provider_disabled` unless `GOTRUE_EXTERNAL_ANONYMOUS_USERS_ENABLED`; GoTrue
/// checks this before the anonymous rate limit.
pub fn ensure_anonymous_enabled(state: &AppState) -> ApiResult<()> {
    if !state.config.accounts.anonymous_users_enabled {
        return Err(ApiError::unprocessable(
            ErrorCode::AnonymousProviderDisabled,
            "Anonymous sign-ins are disabled",
        ));
    }
    Ok(())
}

/// An anonymous sign-in (GoTrue `SignupAnonymously`): a user with no e-mail, phone, password or
/// identity, `is_anonymous` true, `user_metadata` = `data` and an empty `app_metadata`, signed
/// in at once (amr `anonymous`). The id stays when the user later adds an e-mail or phone
/// (`flows::account`).
pub async fn anonymous(
    state: &Arc<AppState>,
    data: Map<String, Value>,
    client: ClientInfo,
) -> ApiResult<Session> {
    ensure_anonymous_enabled(state)?;
    if state.config.accounts.disable_signup {
        return Err(ApiError::unprocessable(
            ErrorCode::SignupDisabled,
            "Signups not allowed for this instance",
        ));
    }
    validate::metadata(&data)?;
    let tx_state = state.clone();
    db::transaction(&state.pool, move |conn| {
        let state = &tx_state;
        let jwt = &state.config.jwt;
        let now = db_now();
        let mut new = NewUser::new(Uuid::new_v4(), &jwt.aud, &jwt.default_group_name, now);
        new.is_anonymous = true;
        new.raw_user_meta_data = Value::Object(data);
        let user = user::insert(conn, &new)?;
        let sign_in = SignIn::first_factor(AuthMethod::Anonymous, "login");
        session::issue(conn, state, user, sign_in, &client)
    })
    .await
}

/// How the account is reached: by e-mail or by phone, already normalised.
#[derive(Clone)]
pub enum Contact {
    Email(String),
    Phone(String),
}

impl Contact {
    pub fn provider(&self) -> &'static str {
        match self {
            Contact::Email(_) => "email",
            Contact::Phone(_) => "phone",
        }
    }
}

pub enum SignupOutcome {
    /// Autoconfirm is on: the user is signed in.
    Session(Session),
    /// The user must confirm first.
    Unconfirmed(User, Vec<Identity>),
    /// An already-confirmed address without autoconfirm: the API answers with a made-up user so
    /// the response does not reveal that the account exists (supabase-js checks `identities: []`).
    Obfuscated {
        contact: Contact,
        data: Map<String, Value>,
    },
}

pub async fn signup(
    state: &Arc<AppState>,
    params: SignupParams,
    client: ClientInfo,
) -> ApiResult<SignupOutcome> {
    let accounts = &state.config.accounts;
    if accounts.disable_signup {
        return Err(ApiError::unprocessable(
            ErrorCode::SignupDisabled,
            "Signups not allowed for this instance",
        ));
    }
    let email = params.email.filter(|e| !e.is_empty());
    let phone = params.phone.filter(|p| !p.is_empty());
    if email.is_none() && phone.is_none() {
        return Err(ApiError::unprocessable(
            ErrorCode::AnonymousProviderDisabled,
            "Anonymous sign-ins are disabled",
        ));
    }
    let password = params.password.unwrap_or_default();
    if password.is_empty() {
        return Err(ApiError::validation("Signup requires a valid password"));
    }
    password::check_strength(&password, state.config.password.min_length)?;
    let contact = match (email, phone) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "Only an email address or phone number should be provided on signup.",
            ))
        }
        (Some(email), None) => {
            if !accounts.email_enabled {
                return Err(ApiError::bad_request(
                    ErrorCode::EmailProviderDisabled,
                    "Email signups are disabled",
                ));
            }
            Contact::Email(validate::email(&email)?)
        }
        (None, Some(phone)) => {
            if !accounts.phone_enabled {
                return Err(ApiError::bad_request(
                    ErrorCode::PhoneProviderDisabled,
                    "Phone signups are disabled",
                ));
            }
            Contact::Phone(validate::phone(
                &phone,
                accounts.phone_default_country_code.as_deref(),
            )?)
        }
        (None, None) => unreachable!("checked above"),
    };
    let data = params.data.unwrap_or_default();
    validate::metadata(&data)?;
    let autoconfirm = match contact {
        Contact::Email(_) => accounts.mailer_autoconfirm,
        Contact::Phone(_) => accounts.sms_autoconfirm,
    };

    let hash_cfg = state.config.password.hash.clone();
    let hash = state
        .hashing
        .run(move || password::hash(&password, &hash_cfg))
        .await??;

    let redirect_to = params.redirect_to;
    // Without autoconfirm a phone gets its confirmation code by SMS, sent inside the
    // transaction that creates the user: a failed send creates nobody.
    let sms_to = match &contact {
        Contact::Phone(phone) if !autoconfirm => Some(phone.clone()),
        _ => None,
    };
    if let Some(phone) = &sms_to {
        super::phone::spend_send_limits(state, phone).await?;
    }
    let rt = tokio::runtime::Handle::current();
    let send_bound = match &contact {
        Contact::Email(_) if !autoconfirm => super::email::mail_time(state),
        _ => sms_to
            .as_ref()
            .map_or(Duration::ZERO, |_| state.config.sms.timeout),
    };
    let tx_state = state.clone();
    let fast = (
        state.clone(),
        contact.clone(),
        hash.clone(),
        data.clone(),
        client.clone(),
    );
    let slow = move |conn: &mut PgConnection| {
        let state = &tx_state;
        let accounts = &state.config.accounts;
        let now = db_now();
        let existing = match &contact {
            Contact::Email(email) => user::find_by_email(conn, &state.config.jwt.aud, email)?,
            Contact::Phone(phone) => user::find_by_phone(conn, phone)?,
        };
        let confirmed_now = autoconfirm.then_some(now);
        // The resend interval counts from the previous confirmation mail, not this request.
        let previous_sent = existing.as_ref().and_then(|u| u.confirmation_sent_at);
        let user = match existing {
            Some(existing) if is_confirmed(&existing, &contact) => {
                return if accounts.mailer_autoconfirm || accounts.sms_autoconfirm {
                    Err(ApiError::unprocessable(
                        ErrorCode::UserAlreadyExists,
                        "User already registered",
                    ))
                } else {
                    Ok(SignupOutcome::Obfuscated { contact, data })
                };
            }
            // Signed up before but never confirmed: the new password and data replace the old.
            Some(existing) => {
                let patch = MetadataPatch::merge(data);
                let (email_at, phone_at) = match contact {
                    Contact::Email(_) => (confirmed_now, None),
                    Contact::Phone(_) => (None, confirmed_now),
                };
                let changes = UserChanges {
                    encrypted_password: Some(hash),
                    // A phone's code sets its own time when it is sent.
                    confirmation_sent_at: matches!(contact, Contact::Email(_)).then_some(Some(now)),
                    email_confirmed_at: Some(existing.email_confirmed_at.or(email_at)),
                    phone_confirmed_at: Some(existing.phone_confirmed_at.or(phone_at)),
                    ..Default::default()
                };
                let user = user::update_with_metadata(
                    conn,
                    existing.id,
                    changes,
                    Some(&patch),
                    None,
                    now,
                )?
                .ok_or_else(super::account::user_not_found)?;
                validate::metadata(&user.user_metadata())?;
                user
            }
            None => create_user(conn, state, &contact, &hash, data, confirmed_now, now)?,
        };
        if autoconfirm {
            let sign_in = SignIn::first_factor(AuthMethod::Password, "user_signedup");
            Ok(SignupOutcome::Session(session::issue(
                conn, state, user, sign_in, &client,
            )?))
        } else {
            if let Contact::Email(_) = contact {
                let mut to_mail = user.clone();
                to_mail.confirmation_sent_at = previous_sent;
                let action = super::mail::EmailAction::Signup;
                super::email::send_code(conn, state, &rt, &to_mail, action, &redirect_to)?;
            }
            let user = match &sms_to {
                Some(phone) => {
                    super::phone::send_code(
                        conn,
                        state,
                        &rt,
                        &user,
                        TokenType::Confirmation,
                        phone,
                    )?;
                    user::find_by_id(conn, user.id)?.ok_or_else(super::account::user_not_found)?
                }
                None => user,
            };
            let identities = identity::for_user(conn, user.id)?;
            Ok(SignupOutcome::Unconfirmed(user, identities))
        }
    };
    if !autoconfirm {
        return db::transaction_calling_out(&state.pool, send_bound, slow).await;
    }
    // Autoconfirmed: a new address is one statement; an existing one the transactional path.
    db::fast_path(
        &state.pool,
        state.fast_commit(),
        move |conn, deadline| {
            let (state, contact, hash, data, client) = fast;
            Ok(
                create_signed_in(conn, &state, &contact, &hash, data, &client, deadline)?
                    .map(SignupOutcome::Session),
            )
        },
        slow,
    )
    .await
}

fn is_confirmed(user: &User, contact: &Contact) -> bool {
    match contact {
        Contact::Email(_) => user.email_confirmed_at.is_some(),
        Contact::Phone(_) => user.phone_confirmed_at.is_some(),
    }
}

/// The user `POST /otp` creates for an address that has none (GoTrue `shouldCreateUser` and
/// the sign-up it runs): 422 `otp_disabled` when the caller asked not to create one, 422
/// `signup_disabled` when sign-ups are off; else a user without a password.
pub(super) fn create_for_otp(
    conn: &mut PgConnection,
    state: &AppState,
    contact: &Contact,
    allowed: bool,
    data: Map<String, Value>,
    confirmed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ApiResult<User> {
    if !allowed {
        return Err(ApiError::unprocessable(
            ErrorCode::OtpDisabled,
            "Signups not allowed for otp",
        ));
    }
    if state.config.accounts.disable_signup {
        return Err(ApiError::unprocessable(
            ErrorCode::SignupDisabled,
            "Signups not allowed for this instance",
        ));
    }
    create_user(conn, state, contact, "", data, confirmed_at, now)
}

/// The user and identity a sign-up of `contact` creates (GoTrue's `signupNewUser`).
fn new_account(
    state: &AppState,
    contact: &Contact,
    hash: &str,
    data: Map<String, Value>,
    confirmed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> (NewUser, NewIdentity) {
    let jwt = &state.config.jwt;
    let id = Uuid::new_v4();
    let mut new = NewUser::new(id, &jwt.aud, &jwt.default_group_name, now);
    new.encrypted_password = hash.to_string();
    // A phone's confirmation code records its own send time (`flows::phone::send_code`).
    new.confirmation_sent_at =
        (confirmed_at.is_none() && matches!(contact, Contact::Email(_))).then_some(now);
    let verified = confirmed_at.is_some();
    let identity_data = match contact {
        Contact::Email(email) => {
            new.email = Some(email.clone());
            new.email_confirmed_at = confirmed_at;
            IdentityData::new(id)
                .email(email)
                .email_verified(verified)
                .phone_verified(false)
        }
        Contact::Phone(phone) => {
            new.phone = Some(phone.clone());
            new.phone_confirmed_at = confirmed_at;
            IdentityData::new(id)
                .email_verified(false)
                .phone_verified(verified)
        }
    }
    .with_missing(&data)
    .into_map();
    let provider = contact.provider();
    new.raw_app_meta_data = json!({"provider": provider, "providers": [provider]});
    new.raw_user_meta_data = Value::Object(identity_data.clone());
    let identity = NewIdentity::new(id, provider, &id.to_string(), identity_data, now);
    (new, identity)
}

/// GoTrue's answer when the address turned out to be taken by a concurrent sign-up.
fn insert_error(e: diesel::result::Error) -> ApiError {
    match Taken::of(&e) {
        Some(Taken::Email | Taken::Phone) => {
            ApiError::unprocessable(ErrorCode::UserAlreadyExists, "User already registered")
        }
        _ => user_write_error(e, PHONE_TAKEN),
    }
}

/// Creates the user and identity of a sign-up of `contact`.
pub(super) fn create_user(
    conn: &mut PgConnection,
    state: &AppState,
    contact: &Contact,
    hash: &str,
    data: Map<String, Value>,
    confirmed_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> ApiResult<User> {
    let (new, identity) = new_account(state, contact, hash, data, confirmed_at, now);
    let user = user::insert(conn, &new).map_err(insert_error)?;
    identity::insert(conn, &identity)?;
    Ok(user)
}

/// An autoconfirmed sign-up of an address nobody has, in one statement: the user, the identity
/// and the session ([`sign_in::new_user`]). `None`, with nothing written, when the address has
/// a user already: the transactional path answers that case.
fn create_signed_in(
    conn: &mut PgConnection,
    state: &AppState,
    contact: &Contact,
    hash: &str,
    data: Map<String, Value>,
    client: &ClientInfo,
    deadline: db::Deadline,
) -> ApiResult<Option<Session>> {
    let sign_in = SignIn::first_factor(AuthMethod::Password, "user_signedup");
    let token = crate::auth::new_refresh_token();
    let new_session = session::new_session(state, sign_in, &token, client).guarded(deadline);
    let now = new_session.now;
    let (mut user, identity) = new_account(state, contact, hash, data, Some(now), now);
    user.last_sign_in_at = Some(now);
    let aud = &state.config.jwt.aud;
    let unless = match contact {
        Contact::Email(email) => Unless::Email { aud, email },
        Contact::Phone(phone) => Unless::Phone(phone),
    };
    let opened = sign_in::new_user(conn, &user, Some(&identity), unless, None, &new_session)
        .map_err(insert_error)?;
    opened
        .map(|opened| session::finish(conn, state, opened, sign_in, token))
        .transpose()
}
