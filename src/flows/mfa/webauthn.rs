//! WebAuthn factors (GoTrue `enrollWebAuthnFactor`, `challengeWebAuthnFactor`,
//! `verifyWebAuthnFactor`), the ceremonies themselves in [`crate::auth::webauthn`].
//!
//! A challenge of an unverified factor is a registration (`webauthn.type: "create"`, options
//! for `navigator.credentials.create`, the user's verified WebAuthn credentials excluded); of a
//! verified factor an assertion (`"request"`, the factor's credential allowed). The relying
//! party is `GOTRUE_WEBAUTHN_RP_*`; `rpId`/`rpOrigins` in the bodies are ignored, as GoTrue has
//! ignored them since it took them from its configuration.
//!
//! Verification consumes the challenge, passed or failed (GoTrue deletes it on success and
//! keeps it after a failure): a replay is GoTrue's 422 `mfa_factor_not_found`. Failed relying
//! party checks are 400 `webauthn_verification_failed` (GoTrue answers 500 for those on its
//! MFA routes and 400 `webauthn_verification_failed` on its passkey routes), an unparseable
//! response GoTrue's 400 `validation_failed` "Invalid credential_response". After an assertion
//! the new sign count is stored, so a counter that does not increase is refused next time.

use diesel::PgConnection;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{
    create_factor, raise_session, ClientInfo, EnrollParams, Enrolled, Verified, WEBAUTHN_TYPE,
};
use crate::auth::webauthn::{self as ceremony, Credential, Failure, RelyingParty, SessionData};
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::flows::authenticate::AuthenticatedUser;
use crate::models::db_now;
use crate::models::mfa::{self, Challenge, Factor, NewFactor};
use crate::models::user::User;
use crate::state::AppState;
use std::sync::Arc;

fn relying_party(state: &AppState) -> RelyingParty<'_> {
    let rp = &state.config.mfa.webauthn_rp;
    RelyingParty {
        id: &rp.rp_id,
        name: &rp.rp_display_name,
        origins: &rp.rp_origins,
    }
}

/// GoTrue's `User.WebAuthnID`: the user id's text.
fn webauthn_user_id(user: &User) -> Vec<u8> {
    user.id.to_string().into_bytes()
}

/// The stored credential of a factor (`None` before its registration).
fn credential_of(factor: &Factor) -> ApiResult<Option<Credential>> {
    factor
        .web_authn_credential
        .as_ref()
        .filter(|v| !v.is_null())
        .map(|v| {
            serde_json::from_value(v.clone()).map_err(|e| {
                ApiError::internal(format!(
                    "mfa_factors.web_authn_credential is unreadable: {e}"
                ))
            })
        })
        .transpose()
}

/// `POST /factors` with `factor_type: webauthn`: an unverified factor, no secret.
pub(super) async fn enroll(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    session_id: Uuid,
    params: EnrollParams,
    client: ClientInfo,
) -> ApiResult<Enrolled> {
    let friendly_name = params.friendly_name.unwrap_or_default();
    crate::flows::validate::no_nul("friendly_name", &friendly_name)?;
    let user = auth.user;
    let factor_id = Uuid::new_v4();
    let tx_state = state.clone();
    let name = friendly_name.clone();
    db::transaction(&state.pool, move |conn| {
        let factor = NewFactor {
            id: factor_id,
            user_id: user.id,
            friendly_name: &name,
            factor_type: WEBAUTHN_TYPE,
            secret: None,
            phone: None,
            now: db_now(),
        };
        create_factor(conn, &tx_state, &user, session_id, &factor, &client)
    })
    .await?;
    Ok(Enrolled {
        id: factor_id,
        factor_type: WEBAUTHN_TYPE,
        friendly_name,
        totp: None,
        phone: String::new(),
    })
}

/// The session data to store with a new challenge of `factor` and the `webauthn` member of
/// the challenge response.
pub(super) fn begin(
    conn: &mut PgConnection,
    state: &AppState,
    user: &User,
    factor: &Factor,
) -> ApiResult<(Value, Value)> {
    let rp = relying_party(state);
    let user_id = webauthn_user_id(user);
    let (kind, begun) = if factor.is_verified() {
        let credential = credential_of(factor)?
            .ok_or_else(|| ApiError::internal("a verified WebAuthn factor has no credential"))?;
        (
            "request",
            ceremony::begin_login(&rp, &user_id, &[credential]),
        )
    } else {
        let mut exclude = Vec::new();
        for other in mfa::for_user(conn, user.id)? {
            if other.factor_type == WEBAUTHN_TYPE && other.is_verified() {
                exclude.extend(credential_of(&other)?);
            }
        }
        // GoTrue names the WebAuthn user by e-mail; a phone-only user by the phone here (an
        // empty name makes browsers refuse; auth-js fills one in, other clients may not).
        let name = user
            .email
            .clone()
            .filter(|e| !e.is_empty())
            .or_else(|| user.phone.clone())
            .unwrap_or_default();
        let begun = ceremony::begin_registration(&rp, &user_id, &name, &exclude);
        ("create", begun)
    };
    let session = serde_json::to_value(&begun.session).map_err(ApiError::internal)?;
    Ok((
        session,
        json!({"type": kind, "credential_options": begun.options}),
    ))
}

/// The `webauthn` member of a verify body: `type` and `credential_response` (GoTrue's checks,
/// before the challenge is looked up).
pub(super) struct VerifyParams {
    kind: String,
    credential_response: Value,
}

pub(super) fn params(raw: Option<Value>) -> ApiResult<VerifyParams> {
    let Some(Value::Object(raw)) = raw else {
        return Err(ApiError::validation("WebAuthn config required"));
    };
    let kind = raw.get("type").and_then(Value::as_str).unwrap_or("");
    if kind != "create" && kind != "request" {
        return Err(ApiError::validation(
            "WebAuthn type must be create or request",
        ));
    }
    let credential_response = match raw.get("credential_response") {
        Some(v) if !v.is_null() => v.clone(),
        _ => return Err(ApiError::validation("credential_response required")),
    };
    Ok(VerifyParams {
        kind: kind.to_string(),
        credential_response,
    })
}

fn refusal(failure: Failure) -> ApiError {
    match failure {
        Failure::Malformed(_) => ApiError::validation("Invalid credential_response"),
        Failure::Rejected(why) => ApiError::bad_request(
            ErrorCode::WebauthnVerificationFailed,
            format!("WebAuthn verification failed: {why}"),
        ),
        Failure::UnknownCredential => ApiError::bad_request(
            ErrorCode::WebauthnCredentialNotFound,
            "The credential is not this factor's",
        ),
    }
}

/// GoTrue's `Challenge` JSON, as `last_webauthn_challenge_data.challenge` holds it.
fn challenge_json(challenge: &Challenge, factor_id: Uuid) -> Value {
    json!({
        "challenge_id": challenge.id,
        "factor_id": factor_id,
        "created_at": challenge.created_at,
        "ip_address": challenge.ip_address,
        "web_authn_session_data": challenge.web_authn_session_data,
    })
}

/// Checks the response against the challenge; on success stores the credential (a
/// registration) or its new sign count (an assertion) and raises the session.
#[expect(
    clippy::too_many_arguments,
    reason = "the verification's transaction state, as in the parent's verify_in"
)]
pub(super) fn verify(
    conn: &mut PgConnection,
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    factor: &Factor,
    challenge: &Challenge,
    params: VerifyParams,
    client: &ClientInfo,
) -> ApiResult<Verified> {
    let session: Option<SessionData> = challenge
        .web_authn_session_data
        .as_ref()
        .and_then(|v| serde_json::from_value(v.clone()).ok());
    // Passed or failed, the challenge is spent.
    mfa::delete_challenge(conn, challenge.id)?;
    let Some(session) = session else {
        return Ok(Verified::Refused(ApiError::bad_request(
            ErrorCode::WebauthnChallengeNotFound,
            "The challenge has no WebAuthn session",
        )));
    };
    let rp = relying_party(state);
    let expected = if session.is_registration() {
        "create"
    } else {
        "request"
    };
    if params.kind != expected {
        return Ok(Verified::Refused(refusal(Failure::Rejected(
            "webauthn.type is not the challenge's",
        ))));
    }
    let outcome = if factor.is_verified() {
        let Some(stored) = credential_of(factor)? else {
            return Err(ApiError::internal(
                "a verified WebAuthn factor has no credential",
            ));
        };
        ceremony::finish_login(&rp, &session, &stored, &params.credential_response)
    } else {
        ceremony::finish_registration(&rp, &session, &params.credential_response)
    };
    let credential = match outcome {
        Ok(c) => c,
        Err(failure) => return Ok(Verified::Refused(refusal(failure))),
    };
    if !factor.is_verified() {
        let id = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &credential.id);
        if mfa::webauthn_credential_taken(conn, &id, factor.id)? {
            return Ok(Verified::Refused(ApiError::unprocessable(
                ErrorCode::WebauthnCredentialExists,
                "This credential is already registered",
            )));
        }
    }
    let aaguid = Uuid::from_slice(&credential.authenticator.aaguid).ok();
    let stored = serde_json::to_value(&credential).map_err(ApiError::internal)?;
    let last = json!({
        "challenge": challenge_json(challenge, factor.id),
        "type": params.kind,
        "credential_response": params.credential_response,
    });
    mfa::save_webauthn(conn, factor.id, &stored, aaguid, &last, db_now())?;
    let session = raise_session(
        conn,
        state,
        user_id,
        session_id,
        factor,
        challenge.id,
        client,
    )?;
    Ok(Verified::Session(Box::new(session)))
}
