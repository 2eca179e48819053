//! GoTrue's response bodies for what flows return: the token response and the user object,
//! never cached.

use actix_web::HttpResponse;
use serde::Serialize;

use crate::error::no_store;
use crate::flows::session::Session;
use crate::models::identity::Identity;
use crate::models::user::{User, UserJson};

/// GoTrue's `AccessTokenResponse`, in its key order.
#[derive(Serialize)]
struct TokenResponse<'a> {
    access_token: &'a str,
    token_type: &'static str,
    expires_in: i64,
    expires_at: i64,
    refresh_token: &'a str,
    user: UserJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    weak_password: Option<&'a serde_json::Value>,
}

/// The token response for a new or refreshed session.
pub fn token_response(
    session: &Session,
    weak_password: Option<&serde_json::Value>,
) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(no_store())
        .json(TokenResponse {
            access_token: &session.access.token,
            token_type: "bearer",
            expires_in: session.access.expires_in,
            expires_at: session.access.expires_at,
            refresh_token: &session.refresh_token,
            user: session
                .user
                .to_json(Some(&session.identities))
                .with_factors(&session.factors),
            weak_password,
        })
}

/// A user with their identities.
pub fn user_response(user: &User, identities: &[Identity]) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header(no_store())
        .json(user.to_json(Some(identities)))
}
