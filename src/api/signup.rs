//! `POST /signup` (GoTrue `internal/api/signup.go`): e-mail or phone plus password.

use actix_web::{web, HttpResponse};
use chrono::Utc;
use diesel::prelude::*;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::validate;
use crate::auth::extract::ClientInfo;
use crate::auth::password;
use crate::db::models::identity::{self, NewIdentity};
use crate::db::models::user::{self, NewUser, User};
use crate::db::schema::users;
use crate::db::{self, is_unique_violation};
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::rate_limit::Limit;
use crate::state::AppState;
use crate::tokens::{self, db_now, AMR_PASSWORD};

#[derive(Deserialize)]
pub struct SignupParams {
    pub email: Option<String>,
    pub phone: Option<String>,
    pub password: Option<String>,
    pub data: Option<Map<String, Value>>,
}

/// How the account is reached: by e-mail or by phone, already normalised.
#[derive(Clone)]
enum Contact {
    Email(String),
    Phone(String),
}

impl Contact {
    fn provider(&self) -> &'static str {
        match self {
            Contact::Email(_) => "email",
            Contact::Phone(_) => "phone",
        }
    }
}

enum Outcome {
    Session(tokens::Grant),
    Unconfirmed(User, Vec<identity::Identity>),
    /// An already-confirmed address without autoconfirm: answer with a fake user so the
    /// response does not reveal that the account exists (supabase-js checks `identities: []`).
    Obfuscated,
}

pub async fn signup(
    state: web::Data<AppState>,
    client: ClientInfo,
    params: web::Json<SignupParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Otp, &client).await?;
    let config = state.config.clone();
    if config.accounts.disable_signup {
        return Err(ApiError::unprocessable(
            ErrorCode::SignupDisabled,
            "Signups not allowed for this instance",
        ));
    }
    let params = params.into_inner();
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
    password::check_strength(&password, config.password.min_length)?;
    let contact = match (email, phone) {
        (Some(_), Some(_)) => {
            return Err(ApiError::validation(
                "Only an email address or phone number should be provided on signup.",
            ))
        }
        (Some(email), None) => {
            if !config.accounts.email_enabled {
                return Err(ApiError::bad_request(
                    ErrorCode::EmailProviderDisabled,
                    "Email signups are disabled",
                ));
            }
            Contact::Email(validate::email(&email)?)
        }
        (None, Some(phone)) => {
            if !config.accounts.phone_enabled {
                return Err(ApiError::bad_request(
                    ErrorCode::PhoneProviderDisabled,
                    "Phone signups are disabled",
                ));
            }
            Contact::Phone(validate::phone(&phone)?)
        }
        (None, None) => unreachable!("checked above"),
    };
    let data = params.data.unwrap_or_default();
    validate::metadata(&data)?;
    let autoconfirm = match contact {
        Contact::Email(_) => config.accounts.mailer_autoconfirm,
        Contact::Phone(_) => config.accounts.sms_autoconfirm,
    };

    let hash_cfg = config.password.hash.clone();
    let hash = state
        .hashing
        .run(move || password::hash(&password, &hash_cfg))
        .await??;

    let fake_data = data.clone();
    let fake_contact = contact.clone();
    let outcome = db::transaction(&state.pool, move |conn| {
        let now = db_now();
        let existing = match &contact {
            Contact::Email(email) => user::find_by_email(conn, &config.jwt.aud, email)?,
            Contact::Phone(phone) => user::find_by_phone(conn, phone)?,
        };
        let confirmed_now = autoconfirm.then_some(now);
        let user = match existing {
            Some(existing) if is_confirmed(&existing, &contact) => {
                return if config.accounts.mailer_autoconfirm || config.accounts.sms_autoconfirm {
                    Err(ApiError::unprocessable(
                        ErrorCode::UserAlreadyExists,
                        "User already registered",
                    ))
                } else {
                    Ok(Outcome::Obfuscated)
                };
            }
            // Signed up before but never confirmed: the new password and data replace the old.
            Some(existing) => {
                let metadata = user::merge_metadata(existing.user_metadata(), data);
                let (email_at, phone_at) = match contact {
                    Contact::Email(_) => (confirmed_now, None),
                    Contact::Phone(_) => (None, confirmed_now),
                };
                diesel::update(users::table.find(existing.id))
                    .set((
                        users::encrypted_password.eq(&hash),
                        users::raw_user_meta_data.eq(Value::Object(metadata)),
                        users::confirmation_sent_at.eq(now),
                        users::email_confirmed_at.eq(existing.email_confirmed_at.or(email_at)),
                        users::phone_confirmed_at.eq(existing.phone_confirmed_at.or(phone_at)),
                        users::updated_at.eq(now),
                    ))
                    .returning(User::as_returning())
                    .get_result(conn)?
            }
            None => create_user(conn, &config, &contact, &hash, data, confirmed_now, now)?,
        };
        if autoconfirm {
            Ok(Outcome::Session(tokens::issue_session(
                conn,
                &config,
                user,
                AMR_PASSWORD,
                "user_signedup",
                &client,
            )?))
        } else {
            let identities = identity::for_user(conn, user.id)?;
            Ok(Outcome::Unconfirmed(user, identities))
        }
    })
    .await?;

    match outcome {
        Outcome::Session(grant) => tokens::token_response(&state, &grant, None),
        Outcome::Unconfirmed(user, identities) => Ok(tokens::user_response(&user, &identities)),
        Outcome::Obfuscated => Ok(obfuscated_user(
            &state.config.jwt.aud,
            &fake_contact,
            fake_data,
        )),
    }
}

fn is_confirmed(user: &User, contact: &Contact) -> bool {
    match contact {
        Contact::Email(_) => user.email_confirmed_at.is_some(),
        Contact::Phone(_) => user.phone_confirmed_at.is_some(),
    }
}

/// Inserts the user and its e-mail or phone identity. A concurrent signup for the same address
/// loses on the unique index and gets GoTrue's "already registered" answer.
fn create_user(
    conn: &mut PgConnection,
    config: &crate::config::Config,
    contact: &Contact,
    hash: &str,
    data: Map<String, Value>,
    confirmed_at: Option<chrono::DateTime<Utc>>,
    now: chrono::DateTime<Utc>,
) -> ApiResult<User> {
    let id = Uuid::new_v4();
    let mut new = NewUser::new(id, &config.jwt.aud, &config.jwt.default_group_name, now);
    new.encrypted_password = hash.to_string();
    new.confirmation_sent_at = confirmed_at.is_none().then_some(now);
    let mut identity_data = Map::new();
    identity_data.insert("sub".into(), json!(id.to_string()));
    match contact {
        Contact::Email(email) => {
            new.email = Some(email.clone());
            new.email_confirmed_at = confirmed_at;
            identity_data.insert("email".into(), json!(email));
        }
        Contact::Phone(phone) => {
            new.phone = Some(phone.clone());
            new.phone_confirmed_at = confirmed_at;
        }
    }
    let email_verified = matches!(contact, Contact::Email(_)) && confirmed_at.is_some();
    let phone_verified = matches!(contact, Contact::Phone(_)) && confirmed_at.is_some();
    identity_data.insert("email_verified".into(), json!(email_verified));
    identity_data.insert("phone_verified".into(), json!(phone_verified));
    for (k, v) in data {
        identity_data.entry(k).or_insert(v);
    }
    let provider = contact.provider();
    new.raw_app_meta_data = json!({"provider": provider, "providers": [provider]});
    new.raw_user_meta_data = Value::Object(identity_data.clone());
    let user = user::insert(conn, &new).map_err(|e| {
        if is_unique_violation(&e, "users_email_partial_key")
            || is_unique_violation(&e, "users_phone_key")
        {
            ApiError::unprocessable(ErrorCode::UserAlreadyExists, "User already registered")
        } else {
            e.into()
        }
    })?;
    identity::insert(
        conn,
        &NewIdentity::new(id, provider, &id.to_string(), identity_data, now),
    )?;
    Ok(user)
}

fn obfuscated_user(aud: &str, contact: &Contact, data: Map<String, Value>) -> HttpResponse {
    let now = db_now();
    let (email, phone) = match contact {
        Contact::Email(e) => (e.as_str(), ""),
        Contact::Phone(p) => ("", p.as_str()),
    };
    let provider = contact.provider();
    HttpResponse::Ok().insert_header(no_store()).json(json!({
        "id": Uuid::new_v4(), "aud": aud, "role": "", "email": email, "phone": phone,
        "confirmation_sent_at": now,
        "app_metadata": {"provider": provider, "providers": [provider]},
        "user_metadata": data, "identities": [],
        "created_at": now, "updated_at": now, "is_anonymous": false,
    }))
}
