//! `POST /signup` (GoTrue `internal/api/signup.go`).

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::email::Referrer;
use super::extract::Client;
use super::render::{token_response, user_response};
use crate::error::{no_store, ApiResult};
use crate::flows::signup::{self, Contact, SignupOutcome, SignupParams};
use crate::models::db_now;
use crate::rate_limit::Limit;
use crate::state::AppState;

/// Like GoTrue's router: a body with neither e-mail nor phone is an anonymous sign-in, with its
/// own (hourly) rate limit; everything else is a sign-up.
pub async fn signup(
    state: web::Data<AppState>,
    Client(client): Client,
    Referrer(redirect_to): Referrer,
    params: web::Json<SignupParams>,
) -> ApiResult<HttpResponse> {
    let mut params = params.into_inner();
    params.redirect_to = redirect_to;
    if params.is_anonymous() {
        signup::ensure_anonymous_enabled(&state)?;
        state.limit(Limit::AnonymousUsers, &client).await?;
        let data = params.data.unwrap_or_default();
        return Ok(token_response(
            &signup::anonymous(&state, data, client).await?,
            None,
        ));
    }
    state.limit(Limit::Otp, &client).await?;
    Ok(match signup::signup(&state, params, client).await? {
        SignupOutcome::Session(session) => token_response(&session, None),
        SignupOutcome::Unconfirmed(user, identities) => user_response(&user, &identities),
        SignupOutcome::Obfuscated { contact, data } => {
            obfuscated_user(&state.config.jwt.aud, &contact, data)
        }
    })
}

/// A made-up user in the shape of a real one, with no identities.
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
