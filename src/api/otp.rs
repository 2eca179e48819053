//! The one-time-code routes: `POST /otp`, `POST /verify`, `POST /resend`,
//! `GET /reauthenticate` (GoTrue `otp.go`, `verify.go`, `resend.go`, `reauthenticate.go`).

use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};

use super::extract::{AuthUser, Client};
use super::render::token_response;
use crate::error::{no_store, ApiError, ApiResult, ErrorCode};
use crate::flows::phone::{self, MessageId, OtpSent, PhoneOtp};
use crate::flows::verify::{self, Verified, VerifyParams};
use crate::rate_limit::Limit;
use crate::state::AppState;

/// The body of `POST /otp`.
#[derive(serde::Deserialize)]
pub struct OtpParams {
    email: Option<String>,
    phone: Option<String>,
    create_user: Option<bool>,
    data: Option<Map<String, Value>>,
    channel: Option<String>,
}

pub async fn otp(
    state: web::Data<AppState>,
    Client(client): Client,
    params: web::Json<OtpParams>,
) -> ApiResult<HttpResponse> {
    let p = params.into_inner();
    let email = p.email.filter(|e| !e.is_empty());
    let phone = p.phone.filter(|p| !p.is_empty());
    state.limit(Limit::Otp, &client).await?;
    match (email, phone) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "Only an email address or phone number should be provided",
        )),
        (None, None) => Err(ApiError::validation("One of email or phone must be set")),
        (None, Some(phone)) => {
            let sent = phone::send_otp(
                &state,
                PhoneOtp {
                    phone,
                    create_user: p.create_user.unwrap_or(true),
                    data: p.data.unwrap_or_default(),
                    channel: p.channel,
                },
            )
            .await?;
            Ok(match sent {
                OtpSent::SignedUp => sent_response(None),
                OtpSent::Sent(id) => sent_response(id),
            })
        }
        // The e-mail branch (magic link or code) belongs to the mail side (issue 12).
        (Some(_), None) => Err(ApiError::bad_request(
            ErrorCode::EmailProviderDisabled,
            "Email one-time codes are not available on this server",
        )),
    }
}

/// `{}`, or `{"message_id": …}` when the provider gave one.
fn sent_response(message_id: MessageId) -> HttpResponse {
    let body = match message_id {
        Some(id) => json!({ "message_id": id }),
        None => json!({}),
    };
    HttpResponse::Ok().insert_header(no_store()).json(body)
}

pub async fn verify_post(
    state: web::Data<AppState>,
    Client(client): Client,
    params: web::Json<VerifyParams>,
) -> ApiResult<HttpResponse> {
    state.limit(Limit::Verify, &client).await?;
    Ok(
        match verify::verify(&state, params.into_inner(), client).await? {
            Verified::Session(session) => token_response(&session, None),
            Verified::FirstOfTwoConfirmations => HttpResponse::Ok().insert_header(no_store()).json(json!({
                "msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email",
                "code": "200",
            })),
        },
    )
}

/// The body of `POST /resend`.
#[derive(serde::Deserialize)]
pub struct ResendParams {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    phone: Option<String>,
}

pub async fn resend(
    state: web::Data<AppState>,
    Client(client): Client,
    params: web::Json<ResendParams>,
) -> ApiResult<HttpResponse> {
    let p = params.into_inner();
    let kind = p.kind.unwrap_or_default();
    let email = p.email.filter(|e| !e.is_empty());
    let phone = p.phone.filter(|p| !p.is_empty());
    if !matches!(
        kind.as_str(),
        "signup" | "email_change" | "sms" | "phone_change"
    ) {
        return Err(ApiError::validation(
            "Missing one of these types: signup, email_change, sms, phone_change",
        ));
    }
    if email.is_none() && kind == "signup" {
        return Err(ApiError::validation(
            "Type provided requires an email address",
        ));
    }
    if phone.is_none() && kind == "sms" {
        return Err(ApiError::validation(
            "Type provided requires a phone number",
        ));
    }
    state.limit(Limit::Otp, &client).await?;
    match (email, phone) {
        (Some(_), Some(_)) => Err(ApiError::validation(
            "Only an email address or phone number should be provided.",
        )),
        (None, None) => Err(ApiError::validation(
            "Missing email address or phone number",
        )),
        (None, Some(phone)) if kind == "sms" || kind == "phone_change" => {
            let id = phone::resend(&state, &phone, kind == "phone_change").await?;
            Ok(sent_response(id))
        }
        // A phone with an e-mail type (or the reverse) has nothing to resend.
        (None, Some(_)) => Ok(sent_response(None)),
        (Some(_), None) if kind == "sms" || kind == "phone_change" => Ok(sent_response(None)),
        (Some(_), None) => Err(ApiError::bad_request(
            ErrorCode::EmailProviderDisabled,
            "Email one-time codes are not available on this server",
        )),
    }
}

pub async fn reauthenticate(
    state: web::Data<AppState>,
    AuthUser(auth): AuthUser,
) -> ApiResult<HttpResponse> {
    let user = auth.user;
    let has_email = user.email.as_deref().is_some_and(|e| !e.is_empty());
    let has_phone = user.phone.as_deref().is_some_and(|p| !p.is_empty());
    if has_email {
        if user.email_confirmed_at.is_none() {
            return Err(ApiError::unprocessable(
                ErrorCode::EmailNotConfirmed,
                "Please verify your email first.",
            ));
        }
        // Codes by e-mail belong to the mail side (issue 12).
        return Err(ApiError::bad_request(
            ErrorCode::EmailProviderDisabled,
            "Email one-time codes are not available on this server",
        ));
    }
    if !has_phone {
        return Err(ApiError::validation(
            "Reauthentication requires the user to have an email or a phone number",
        ));
    }
    Ok(sent_response(phone::reauthenticate(&state, user).await?))
}
