//! Multi-factor authentication (GoTrue `internal/api/mfa.go`, `admin.go` factor routes):
//! enrolling TOTP and phone factors, challenging and verifying them (which raises the session
//! to `aal2` with a `totp` or `mfa/phone` amr claim), removing them, and the admin's factor
//! routes. A phone challenge sends its code through [`super::phone::deliver`] (the SMS
//! provider or the Send SMS hook) inside the transaction that stores the challenge, so a
//! failed send leaves no challenge; the code is stored in `mfa_challenges.otp_code` as GoTrue
//! stores it without database encryption. The lockout below covers phone codes too.
//!
//! TOTP is RFC 6238 as GoTrue runs it (`pquerna/otp`: SHA-1, 6 digits, 30 s, one step of skew
//! each way), computed by the `totp-rs` crate and compared in constant time. Beyond GoTrue:
//! each code is accepted once (a code of a step at or before the last accepted step is
//! refused, RFC 6238 section 5.2), and after `WEAUTH_MFA_MAX_FAILED_ATTEMPTS` consecutive wrong
//! codes the factor refuses verification for `WEAUTH_MFA_LOCKOUT_DURATION` (429); the next
//! wrong code after a lockout locks it again, a right one resets the count. Both live in
//! `weauth.mfa_factor_attempts`, which GoTrue ignores. The per-client rate limit is GoTrue's
//! `GOTRUE_MFA_RATE_LIMIT_CHALLENGE_AND_VERIFY` (applied by the handlers).
//!
//! Secrets are stored as GoTrue stores them without database encryption: the base32 secret in
//! `mfa_factors.secret`. A secret GoTrue encrypted (`GOTRUE_SECURITY_DB_ENCRYPTION_ENCRYPT`) is
//! not readable here and its factor cannot be verified (500, logged). The secret leaves the
//! server once, in the enrolment response.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use diesel::PgConnection;
use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use super::authenticate::AuthenticatedUser;
use super::session::{audit_entry, Aal, Session};
use super::ClientInfo;
use crate::auth::jwt::Amr;
use crate::auth::new_refresh_token;
use crate::db;
use crate::error::{ApiError, ApiResult, ErrorCode};
use crate::models::audit_log::{self, AuditEntry};
use crate::models::mfa::{self, Attempts, Factor, NewFactor, TOTP};
use crate::models::user::{self, User};
use crate::models::{db_now, refresh_token, session};
use crate::state::AppState;

mod webauthn;

const WEBAUTHN_TYPE: &str = mfa::WEBAUTHN;

/// TOTP as GoTrue validates it.
const TOTP_PERIOD: u64 = 30;
const TOTP_DIGITS: usize = 6;
const TOTP_SKEW: i64 = 1;
/// pquerna/otp's default secret size (160 bits, 32 base32 characters).
const TOTP_SECRET_BYTES: usize = 20;

/// The body of `POST /factors`.
#[derive(Deserialize, Default)]
pub struct EnrollParams {
    pub friendly_name: Option<String>,
    pub factor_type: Option<String>,
    pub issuer: Option<String>,
    pub phone: Option<String>,
}

/// GoTrue's `TOTPObject`.
#[derive(Serialize)]
pub struct TotpObject {
    pub qr_code: String,
    pub secret: String,
    pub uri: String,
}

/// GoTrue's `EnrollFactorResponse`.
#[derive(Serialize)]
pub struct Enrolled {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub factor_type: &'static str,
    pub friendly_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpObject>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub phone: String,
}

/// GoTrue's `ChallengeFactorResponse`.
#[derive(Serialize)]
pub struct Challenged {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub factor_type: String,
    pub expires_at: i64,
    /// WebAuthn factors: `{type: "create" | "request", credential_options: {publicKey}}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub webauthn: Option<serde_json::Value>,
}

/// The body of `POST /factors/{id}/verify`.
#[derive(Deserialize, Default)]
pub struct VerifyParams {
    pub challenge_id: Option<Uuid>,
    pub code: Option<String>,
    pub webauthn: Option<serde_json::Value>,
}

/// The body of `PUT /admin/users/{id}/factors/{factor_id}`.
#[derive(Deserialize, Default)]
pub struct AdminFactorUpdate {
    pub friendly_name: Option<String>,
    pub phone: Option<String>,
}

/// The amr method a verified factor of this type adds (GoTrue `amrMethodForFactorType`).
fn amr_method(factor_type: &str) -> &'static str {
    match factor_type {
        mfa::PHONE => "mfa/phone",
        mfa::WEBAUTHN => "mfa/webauthn",
        _ => "totp",
    }
}

/// The session of a non-anonymous user (GoTrue `requireNotAnonymous` + the session check).
fn caller_session(auth: &AuthenticatedUser) -> ApiResult<Uuid> {
    if auth.user.is_anonymous {
        return Err(ApiError::forbidden(
            ErrorCode::NoAuthorization,
            "Anonymous user not allowed to perform these actions",
        ));
    }
    auth.session_id.ok_or_else(|| {
        ApiError::forbidden(
            ErrorCode::SessionNotFound,
            "A valid session is required for multi-factor authentication",
        )
    })
}

/// `factor_id` from the path: a UUID or 404 (GoTrue `loadFactor`).
pub fn parse_factor_id(raw: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(raw)
        .map_err(|_| ApiError::not_found(ErrorCode::ValidationFailed, "factor_id must be an UUID"))
}

fn factor_not_found() -> ApiError {
    ApiError::not_found(ErrorCode::MfaFactorNotFound, "Factor not found")
}

fn owned_factor(conn: &mut PgConnection, user_id: Uuid, factor_id: Uuid) -> ApiResult<Factor> {
    mfa::find_owned_for_update(conn, user_id, factor_id)?.ok_or_else(factor_not_found)
}

fn session_is_aal2(conn: &mut PgConnection, session_id: Uuid) -> ApiResult<bool> {
    let (aal, _) = session::assurance(conn, session_id)?;
    Ok(aal.as_deref() == Some(Aal::Aal2.as_str()))
}

fn audit(
    conn: &mut PgConnection,
    state: &AppState,
    user: &User,
    action: &'static str,
    traits: serde_json::Value,
    client: &ClientInfo,
) -> ApiResult<()> {
    if let Some(entry) = audit_entry(state, user, action) {
        let entry = AuditEntry {
            traits: Some(traits),
            ..entry
        };
        audit_log::insert(conn, &entry, client.ip.as_deref())?;
    }
    Ok(())
}

/// `POST /factors`.
pub async fn enroll(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    params: EnrollParams,
    client: ClientInfo,
) -> ApiResult<Enrolled> {
    let session_id = caller_session(&auth)?;
    let mfa_config = &state.config.mfa;
    match params.factor_type.as_deref().unwrap_or("") {
        mfa::TOTP if !mfa_config.totp.enroll_enabled => Err(ApiError::unprocessable(
            ErrorCode::MfaTotpEnrollNotEnabled,
            "MFA enroll is disabled for TOTP",
        )),
        mfa::TOTP => enroll_totp(state, auth, session_id, params, client).await,
        mfa::PHONE if !mfa_config.phone.switches.enroll_enabled => Err(ApiError::unprocessable(
            ErrorCode::MfaPhoneEnrollNotEnabled,
            "MFA enroll is disabled for Phone",
        )),
        mfa::PHONE => enroll_phone(state, auth, session_id, params, client).await,
        mfa::WEBAUTHN if !mfa_config.webauthn.enroll_enabled => Err(ApiError::unprocessable(
            ErrorCode::MfaWebauthnEnrollNotEnabled,
            "MFA enroll is disabled for WebAuthn",
        )),
        mfa::WEBAUTHN => webauthn::enroll(state, auth, session_id, params, client).await,
        _ => Err(ApiError::validation(
            "factor_type needs to be totp, phone, or webauthn",
        )),
    }
}

/// GoTrue's `validateFactors`: expired unverified factors go, then the name, count and aal
/// rules for one more factor.
fn check_room_for_factor(
    conn: &mut PgConnection,
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    friendly_name: &str,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let config = &state.config.mfa;
    mfa::delete_expired_unverified(conn, user_id, now, config.factor_expiry.as_secs_f64())?;
    let factors = mfa::for_user(conn, user_id)?;
    if factors.iter().any(|f| f.friendly_name == friendly_name) {
        return Err(name_conflict(friendly_name));
    }
    let verified = factors.iter().filter(|f| f.is_verified()).count();
    if factors.len() >= config.max_enrolled_factors as usize
        || verified >= config.max_verified_factors as usize
    {
        return Err(ApiError::unprocessable(
            ErrorCode::TooManyEnrolledMfaFactors,
            "Maximum number of verified factors reached, unenroll to continue",
        ));
    }
    if verified > 0 && !session_is_aal2(conn, session_id)? {
        return Err(ApiError::forbidden(
            ErrorCode::InsufficientAal,
            "AAL2 required to enroll a new factor",
        ));
    }
    Ok(())
}

fn name_conflict(friendly_name: &str) -> ApiError {
    let shown: String = friendly_name.chars().take(120).collect();
    ApiError::unprocessable(
        ErrorCode::MfaFactorNameConflict,
        format!("A factor with the friendly name {shown:?} for this user already exists"),
    )
}

async fn enroll_totp(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    session_id: Uuid,
    params: EnrollParams,
    client: ClientInfo,
) -> ApiResult<Enrolled> {
    let friendly_name = params.friendly_name.unwrap_or_default();
    super::validate::no_nul("friendly_name", &friendly_name)?;
    let issuer = match params.issuer.filter(|i| !i.is_empty()) {
        Some(issuer) => issuer,
        None => url::Url::parse(&state.config.server.site_url)
            .ok()
            .and_then(|u| {
                u.host_str()
                    .map(|h| u.port().map_or(h.to_string(), |p| format!("{h}:{p}")))
            })
            .ok_or_else(|| ApiError::internal("GOTRUE_SITE_URL has no host"))?,
    };
    super::validate::no_nul("issuer", &issuer)?;
    let user = auth.user;
    // GoTrue names the account by e-mail (and cannot enrol users without one); the phone is
    // the account's name for phone-only users here.
    let account = user
        .email
        .clone()
        .filter(|e| !e.is_empty())
        .or_else(|| user.phone.clone())
        .unwrap_or_default();
    let secret = new_totp_secret();
    let uri = totp_uri(&issuer, &account, &secret);
    let qr_code = qr_svg(&uri)?;
    let factor_id = Uuid::new_v4();
    let tx_state = state.clone();
    let name = friendly_name.clone();
    let stored_secret = secret.clone();
    db::transaction(&state.pool, move |conn| {
        let factor = NewFactor {
            id: factor_id,
            user_id: user.id,
            friendly_name: &name,
            factor_type: TOTP,
            secret: Some(&stored_secret),
            phone: None,
            now: db_now(),
        };
        create_factor(conn, &tx_state, &user, session_id, &factor, &client)
    })
    .await?;
    Ok(Enrolled {
        id: factor_id,
        factor_type: TOTP,
        friendly_name,
        totp: Some(TotpObject {
            qr_code,
            secret,
            uri,
        }),
        phone: String::new(),
    })
}

/// `POST /factors` with `factor_type: phone` (GoTrue `enrollPhoneFactor`): an unverified
/// phone factor; the same number's unverified factors are replaced, a verified one is 422.
async fn enroll_phone(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    session_id: Uuid,
    params: EnrollParams,
    client: ClientInfo,
) -> ApiResult<Enrolled> {
    let raw_phone = params.phone.unwrap_or_default();
    if raw_phone.is_empty() {
        return Err(ApiError::validation(
            "Phone number required to enroll Phone factor",
        ));
    }
    let default_cc = state.config.accounts.phone_default_country_code.as_deref();
    let phone = super::validate::phone(&raw_phone, default_cc)
        .map_err(|_| ApiError::validation("Invalid phone number format (E.164 required)"))?;
    let friendly_name = params.friendly_name.unwrap_or_default();
    super::validate::no_nul("friendly_name", &friendly_name)?;
    let user = auth.user;
    let factor_id = Uuid::new_v4();
    let tx_state = state.clone();
    let name = friendly_name.clone();
    db::transaction(&state.pool, move |conn| {
        let now = db_now();
        for f in mfa::for_user(conn, user.id)? {
            if f.factor_type == mfa::PHONE && f.phone == phone {
                if f.is_verified() {
                    return Err(ApiError::unprocessable(
                        ErrorCode::MfaVerifiedFactorExists,
                        "A verified phone factor already exists, unenroll the existing factor to continue",
                    ));
                }
                mfa::delete(conn, f.id)?;
            }
        }
        let factor = NewFactor {
            id: factor_id,
            user_id: user.id,
            friendly_name: &name,
            factor_type: mfa::PHONE,
            secret: None,
            phone: Some(&phone),
            now,
        };
        create_factor(conn, &tx_state, &user, session_id, &factor, &client)
    })
    .await?;
    Ok(Enrolled {
        id: factor_id,
        factor_type: mfa::PHONE,
        friendly_name,
        totp: None,
        phone: raw_phone,
    })
}

/// Checks there is room for one more factor, inserts it and writes the audit entry.
fn create_factor(
    conn: &mut PgConnection,
    state: &AppState,
    user: &User,
    session_id: Uuid,
    factor: &NewFactor<'_>,
    client: &ClientInfo,
) -> ApiResult<()> {
    check_room_for_factor(
        conn,
        state,
        user.id,
        session_id,
        factor.friendly_name,
        factor.now,
    )?;
    mfa::insert(conn, factor).map_err(|e| insert_error(e, factor.friendly_name))?;
    let traits = json!({"factor_id": factor.id, "factor_type": factor.factor_type});
    audit(conn, state, user, "factor_in_progress", traits, client)
}

fn insert_error(e: diesel::result::Error, name: &str) -> ApiError {
    if db::is_unique_violation(&e, "mfa_factors_user_friendly_name_unique") {
        name_conflict(name)
    } else {
        e.into()
    }
}

/// 160 random bits, base32 without padding (what GoTrue's `totp.Generate` makes).
fn new_totp_secret() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; TOTP_SECRET_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &bytes)
}

/// pquerna/otp's `Key.URL()`: `otpauth://totp/{issuer}:{account}?algorithm=SHA1&digits=6&
/// issuer=..&period=30&secret=..` (path escaped as Go's `url.URL`, query values with `%20`).
fn totp_uri(issuer: &str, account: &str, secret: &str) -> String {
    use url::form_urlencoded::byte_serialize;
    let path: String = format!("{issuer}:{account}")
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~$&+,/:;=@".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let q = |v: &str| {
        byte_serialize(v.as_bytes())
            .collect::<String>()
            .replace('+', "%20")
    };
    format!(
        "otpauth://totp/{path}?algorithm=SHA1&digits={TOTP_DIGITS}&issuer={}&period={TOTP_PERIOD}&secret={}",
        q(issuer),
        q(secret)
    )
}

/// The URI as a QR code (error correction H, as GoTrue's), an SVG document; supabase-js
/// turns it into a `data:image/svg+xml` URI.
fn qr_svg(uri: &str) -> ApiResult<String> {
    use qrcode::render::svg;
    let code = qrcode::QrCode::with_error_correction_level(uri.as_bytes(), qrcode::EcLevel::H)
        .map_err(|e| ApiError::internal(format!("QR code: {e}")))?;
    Ok(code
        .render::<svg::Color<'_>>()
        .module_dimensions(3, 3)
        .quiet_zone(false)
        .build())
}

/// The step (`unix time / 30`) whose code `code` is, among the steps around `now` and after
/// `last_step`; every candidate is computed and compared in constant time.
pub fn matching_totp_step(
    secret_base32: &str,
    code: &str,
    now_unix: i64,
    last_step: Option<i64>,
) -> Result<Option<i64>, String> {
    let normalized: String = secret_base32
        .trim_end_matches('=')
        .to_ascii_uppercase()
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let key = base32::decode(base32::Alphabet::Rfc4648 { padding: false }, &normalized)
        .filter(|k| !k.is_empty())
        .ok_or_else(|| "the factor's secret is not base32 (encrypted by GoTrue?)".to_string())?;
    let totp =
        totp_rs::TOTP::new_unchecked(totp_rs::Algorithm::SHA1, TOTP_DIGITS, 0, TOTP_PERIOD, key);
    let current = now_unix.div_euclid(TOTP_PERIOD as i64);
    let mut found = None;
    for step in current - TOTP_SKEW..=current + TOTP_SKEW {
        if step < 0 {
            continue;
        }
        let expected = totp.generate(step as u64 * TOTP_PERIOD);
        let equal = crate::auth::secure_eq(expected.as_bytes(), code.as_bytes());
        let fresh = last_step.is_none_or(|last| step > last);
        if equal && fresh && found.is_none() {
            found = Some(step);
        }
    }
    Ok(found)
}

/// `POST /factors/{id}/challenge`.
pub async fn challenge(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    factor_id: Uuid,
    channel: Option<String>,
    client: ClientInfo,
) -> ApiResult<Challenged> {
    caller_session(&auth)?;
    let user = auth.user;
    let user_id = user.id;
    let factor = db::run(&state.pool, move |conn| {
        mfa::find_owned(conn, user_id, factor_id)?.ok_or_else(factor_not_found)
    })
    .await?;
    verification_enabled(state, &factor.factor_type)?;
    let phone = factor.factor_type == mfa::PHONE;
    if phone {
        super::phone::ensure_sms_channel(channel.as_deref())?;
        ensure_phone_challenge_allowed(state, &factor, db_now())?;
        super::phone::spend_send_limits(state, &factor.phone).await?;
    }
    let rt = tokio::runtime::Handle::current();
    let tx_state = state.clone();
    let outside = if phone {
        state.config.sms.timeout
    } else {
        std::time::Duration::ZERO
    };
    db::transaction_calling_out(&state.pool, outside, move |conn| {
        let state = &tx_state;
        let factor = owned_factor(conn, user.id, factor_id)?;
        let now = db_now();
        let challenge_id = Uuid::new_v4();
        let code = if factor.factor_type == mfa::PHONE {
            ensure_phone_challenge_allowed(state, &factor, now)?;
            let phone_config = &state.config.mfa.phone;
            let code = super::otp::OneTimeCode::generate(&factor.phone, phone_config.otp_length);
            Some(code)
        } else {
            None
        };
        let (session_data, webauthn) = if factor.factor_type == mfa::WEBAUTHN {
            let (session, response) = webauthn::begin(conn, state, &user, &factor)?;
            (Some(session), Some(response))
        } else {
            (None, None)
        };
        // GoTrue stores a phone challenge's code as it was sent (without database encryption).
        let otp = code.as_ref().map(|c| c.otp.as_str());
        let ip = client_ip(&client);
        let challenge = mfa::NewChallenge {
            id: challenge_id,
            factor_id: factor.id,
            ip: &ip,
            otp_code: otp,
            web_authn_session_data: session_data.as_ref(),
            now,
        };
        mfa::insert_challenge(conn, &challenge)?;
        if let Some(otp) = otp {
            let text = state.config.mfa.phone.template.replace("{{ .Code }}", otp);
            super::phone::deliver(conn, state, &rt, &user, &factor.phone, otp, &text)?;
        }
        audit(
            conn,
            state,
            &user,
            "challenge_created",
            json!({"factor_id": factor.id, "factor_status": factor.status}),
            &client,
        )?;
        Ok(Challenged {
            id: challenge_id,
            factor_type: factor.factor_type,
            expires_at: (now + expiry(state)).timestamp(),
            webauthn,
        })
    })
    .await
}

/// 429 `over_sms_send_rate_limit` when the phone factor's last code went out less than
/// `GOTRUE_MFA_PHONE_MAX_FREQUENCY` ago.
fn ensure_phone_challenge_allowed(
    state: &AppState,
    factor: &Factor,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    super::otp::ensure_resend_allowed(
        factor.last_challenged_at,
        state.config.mfa.phone.max_frequency,
        now,
        ErrorCode::OverSmsSendRateLimit,
    )
}

/// GoTrue's `*_verify_enabled` switches, for challenges and verifications.
fn verification_enabled(state: &AppState, factor_type: &str) -> ApiResult<()> {
    let (code, name) = match factor_type {
        mfa::TOTP if state.config.mfa.totp.verify_enabled => return Ok(()),
        mfa::TOTP => (ErrorCode::MfaTotpVerifyNotEnabled, "TOTP"),
        mfa::PHONE if state.config.mfa.phone.switches.verify_enabled => return Ok(()),
        mfa::PHONE => (ErrorCode::MfaPhoneVerifyNotEnabled, "Phone"),
        mfa::WEBAUTHN if state.config.mfa.webauthn.verify_enabled => return Ok(()),
        _ => (ErrorCode::MfaWebauthnVerifyNotEnabled, "WebAuthn"),
    };
    Err(ApiError::unprocessable(
        code,
        format!("MFA verification is disabled for {name}"),
    ))
}

/// The address a challenge is bound to (GoTrue compares it on verification).
fn client_ip(client: &ClientInfo) -> String {
    client.ip.clone().unwrap_or_else(|| "0.0.0.0".into())
}

fn expiry(state: &AppState) -> Duration {
    Duration::from_std(state.config.mfa.challenge_expiry).unwrap_or(Duration::seconds(300))
}

/// A verification's result: refusals that must be committed (a deleted expired challenge, a
/// counted wrong code) come back as `Refused` and become errors after the commit.
enum Verified {
    Session(Box<Session>),
    Refused(ApiError),
}

/// `POST /factors/{id}/verify`: the token response of the session raised to `aal2`.
pub async fn verify(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    factor_id: Uuid,
    params: VerifyParams,
    client: ClientInfo,
) -> ApiResult<Session> {
    let session_id = caller_session(&auth)?;
    let tx_state = state.clone();
    let user_id = auth.user.id;
    let outcome = db::transaction(&state.pool, move |conn| {
        verify_in(
            conn, &tx_state, user_id, session_id, factor_id, params, &client,
        )
    })
    .await?;
    match outcome {
        Verified::Session(session) => Ok(*session),
        Verified::Refused(e) => Err(e),
    }
}

fn verify_in(
    conn: &mut PgConnection,
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    factor_id: Uuid,
    params: VerifyParams,
    client: &ClientInfo,
) -> ApiResult<Verified> {
    let factor = owned_factor(conn, user_id, factor_id)?;
    let code = params.code.unwrap_or_default();
    if code.is_empty() && factor.factor_type != mfa::WEBAUTHN {
        return Err(ApiError::validation("Code needs to be non-empty"));
    }
    verification_enabled(state, &factor.factor_type)?;
    let webauthn_params = if factor.factor_type == mfa::WEBAUTHN {
        Some(webauthn::params(params.webauthn)?)
    } else {
        None
    };
    let now = db_now();
    let challenge_id = params.challenge_id.unwrap_or_default();
    let challenge =
        mfa::find_challenge_for_update(conn, factor.id, challenge_id)?.ok_or_else(|| {
            ApiError::unprocessable(
                ErrorCode::MfaFactorNotFound,
                "MFA factor with the provided challenge ID not found",
            )
        })?;
    if challenge.verified_at.is_some() || challenge.ip_address != client_ip(client) {
        return Err(ApiError::unprocessable(
            ErrorCode::MfaIpAddressMismatch,
            "Challenge and verify IP addresses mismatch.",
        ));
    }
    if now > challenge.created_at + expiry(state) {
        mfa::delete_challenge(conn, challenge.id)?;
        return Ok(Verified::Refused(ApiError::unprocessable(
            ErrorCode::MfaChallengeExpired,
            format!(
                "MFA challenge {} has expired, verify against another challenge or create a new challenge.",
                challenge.id
            ),
        )));
    }
    if let Some(webauthn_params) = webauthn_params {
        return webauthn::verify(
            conn,
            state,
            user_id,
            session_id,
            &factor,
            &challenge,
            webauthn_params,
            client,
        );
    }
    let mut attempts = mfa::attempts(conn, factor.id)?;
    if let Some(until) = attempts.locked_until.filter(|u| *u > now) {
        let wait = (until - now).num_seconds().max(1);
        return Err(ApiError::too_many_requests(
            ErrorCode::OverRequestRateLimit,
            format!("Too many invalid MFA codes; try again in {wait} seconds"),
        ));
    }
    let (valid, last_totp_step, failure) = if factor.factor_type == mfa::PHONE {
        let sent = challenge.otp_code.as_deref().unwrap_or("");
        let valid = !sent.is_empty() && crate::auth::secure_eq(sent.as_bytes(), code.as_bytes());
        (
            valid,
            attempts.last_totp_step,
            "Invalid MFA Phone code entered",
        )
    } else {
        let secret = factor.secret.as_deref().unwrap_or("");
        let step = matching_totp_step(secret, &code, now.timestamp(), attempts.last_totp_step)
            .map_err(ApiError::internal)?;
        (step.is_some(), step, "Invalid TOTP code entered")
    };
    if !valid {
        record_failure(conn, state, &factor, &mut attempts, now)?;
        return Ok(Verified::Refused(ApiError::unprocessable(
            ErrorCode::MfaVerificationFailed,
            failure,
        )));
    }
    mfa::save_attempts(
        conn,
        factor.id,
        &Attempts {
            last_totp_step,
            failed_attempts: 0,
            locked_until: None,
        },
        now,
    )?;
    let session = raise_session(
        conn,
        state,
        user_id,
        session_id,
        &factor,
        challenge.id,
        client,
    )?;
    Ok(Verified::Session(Box::new(session)))
}

/// Counts a wrong code; at the limit the factor is locked for the lockout duration.
fn record_failure(
    conn: &mut PgConnection,
    state: &AppState,
    factor: &Factor,
    attempts: &mut Attempts,
    now: DateTime<Utc>,
) -> ApiResult<()> {
    let config = &state.config.mfa;
    attempts.failed_attempts = attempts.failed_attempts.saturating_add(1);
    if config.max_failed_attempts > 0
        && attempts.failed_attempts as u32 >= config.max_failed_attempts
    {
        let lockout = Duration::from_std(config.lockout).unwrap_or(Duration::seconds(300));
        attempts.locked_until = Some(now + lockout);
        tracing::warn!(factor_id = %factor.id, "MFA factor locked after repeated invalid codes");
    }
    mfa::save_attempts(conn, factor.id, attempts, now)?;
    Ok(())
}

/// The verified challenge raises the session (GoTrue `verifyTOTPFactor` after the code
/// check): the challenge is marked verified, the factor verified, the session gets the amr
/// claim and `aal2`, its refresh token is swapped, the user's `aal1` sessions and other
/// unverified factors of this type end, and the new tokens are signed.
fn raise_session(
    conn: &mut PgConnection,
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    factor: &Factor,
    challenge_id: Uuid,
    client: &ClientInfo,
) -> ApiResult<Session> {
    let now = db_now();
    let (user, identities) =
        user::find_with_identities(conn, user_id)?.ok_or_else(super::account::user_not_found)?;
    audit(
        conn,
        state,
        &user,
        "verification_attempted",
        json!({"factor_id": factor.id, "challenge_id": challenge_id, "factor_type": factor.factor_type}),
        client,
    )?;
    mfa::mark_challenge_verified(conn, challenge_id, now)?;
    if !factor.is_verified() {
        mfa::set_verified(conn, factor.id, now)?;
    }
    session::upgrade_to_aal2(
        conn,
        session_id,
        amr_method(&factor.factor_type),
        factor.id,
        now,
    )?;
    let current = refresh_token::active_for_session(conn, session_id)?.ok_or_else(|| {
        ApiError::forbidden(
            ErrorCode::SessionNotFound,
            "Session from session_id claim in JWT does not exist",
        )
    })?;
    let refresh = new_refresh_token();
    refresh_token::rotate(conn, &current, &refresh, now, None)?;
    session::delete_below_aal2(conn, user_id)?;
    mfa::delete_unverified(conn, user_id, &factor.factor_type)?;
    let (_, amr) = session::assurance(conn, session_id)?;
    let amr = amr
        .into_iter()
        .map(|(method, timestamp)| Amr { method, timestamp })
        .collect();
    let method = amr_method(&factor.factor_type);
    let access = super::session::sign_access_token(
        conn,
        state,
        &user,
        session_id,
        Aal::Aal2.as_str(),
        amr,
        method,
    )?;
    let factors = mfa::for_user(conn, user_id)?;
    Ok(Session {
        user,
        identities,
        factors,
        session_id,
        refresh_token: refresh,
        access,
    })
}

/// Deletes a factor and takes back what it gave the user's sessions (shared by the user's
/// and the admin's route).
fn remove_factor(
    conn: &mut PgConnection,
    state: &AppState,
    user: &User,
    factor: &Factor,
    action: &'static str,
    traits: serde_json::Value,
    client: &ClientInfo,
) -> ApiResult<()> {
    mfa::delete(conn, factor.id)?;
    audit(conn, state, user, action, traits, client)?;
    session::downgrade_for_factor(conn, user.id, factor.id, amr_method(&factor.factor_type))?;
    Ok(())
}

/// `DELETE /factors/{id}`: a verified factor needs an `aal2` session. Answers `{id}`.
pub async fn unenroll(
    state: &Arc<AppState>,
    auth: AuthenticatedUser,
    factor_id: Uuid,
    client: ClientInfo,
) -> ApiResult<Uuid> {
    let session_id = caller_session(&auth)?;
    let tx_state = state.clone();
    let user = auth.user;
    db::transaction(&state.pool, move |conn| {
        let factor = owned_factor(conn, user.id, factor_id)?;
        if factor.is_verified() && !session_is_aal2(conn, session_id)? {
            return Err(ApiError::unprocessable(
                ErrorCode::InsufficientAal,
                "AAL2 required to unenroll verified factor",
            ));
        }
        let traits = json!({"factor_id": factor.id, "factor_status": factor.status, "session_id": session_id});
        remove_factor(conn, &tx_state, &user, &factor, "factor_unenrolled", traits, &client)?;
        Ok(factor.id)
    })
    .await
}

fn admin_user(conn: &mut PgConnection, user_id: Uuid) -> ApiResult<User> {
    Ok(user::find_with_identities(conn, user_id)?
        .ok_or_else(super::account::user_not_found)?
        .0)
}

/// `GET /admin/users/{id}/factors`.
pub async fn admin_list(state: &Arc<AppState>, user_id: Uuid) -> ApiResult<Vec<Factor>> {
    db::run(&state.pool, move |conn| {
        admin_user(conn, user_id)?;
        Ok(mfa::for_user(conn, user_id)?)
    })
    .await
}

/// `DELETE /admin/users/{id}/factors/{factor_id}`: answers the deleted factor.
pub async fn admin_delete(
    state: &Arc<AppState>,
    user_id: Uuid,
    factor_id: Uuid,
    client: ClientInfo,
) -> ApiResult<Factor> {
    let tx_state = state.clone();
    db::transaction(&state.pool, move |conn| {
        let user = admin_user(conn, user_id)?;
        let factor = owned_factor(conn, user_id, factor_id)?;
        let traits = json!({"user_id": user_id, "factor_id": factor.id});
        remove_factor(
            conn,
            &tx_state,
            &user,
            &factor,
            "factor_deleted",
            traits,
            &client,
        )?;
        Ok(factor)
    })
    .await
}

/// `PUT /admin/users/{id}/factors/{factor_id}`: a new friendly name, and a new phone for
/// phone factors.
pub async fn admin_update(
    state: &Arc<AppState>,
    user_id: Uuid,
    factor_id: Uuid,
    params: AdminFactorUpdate,
    client: ClientInfo,
) -> ApiResult<Factor> {
    let friendly_name = params.friendly_name.filter(|n| !n.is_empty());
    if let Some(name) = &friendly_name {
        super::validate::no_nul("friendly_name", name)?;
    }
    let phone = params.phone.filter(|p| !p.is_empty());
    let tx_state = state.clone();
    db::transaction(&state.pool, move |conn| {
        let user = admin_user(conn, user_id)?;
        let factor = owned_factor(conn, user_id, factor_id)?;
        let phone = match phone {
            Some(p) if factor.factor_type == mfa::PHONE => Some(
                super::validate::phone(
                    &p,
                    tx_state
                        .config
                        .accounts
                        .phone_default_country_code
                        .as_deref(),
                )
                .map_err(|_| {
                    ApiError::validation("Invalid phone number format (E.164 required)")
                })?,
            ),
            _ => None,
        };
        let name = friendly_name.clone();
        let updated = mfa::update(conn, factor.id, name.as_deref(), phone.as_deref(), db_now())
            .map_err(|e| {
                if db::is_unique_violation(&e, "mfa_factors_user_friendly_name_unique") {
                    name_conflict(name.as_deref().unwrap_or(""))
                } else {
                    e.into()
                }
            })?;
        audit(
            conn,
            &tx_state,
            &user,
            "factor_updated",
            json!({"user_id": user_id, "factor_id": factor.id, "factor_type": factor.factor_type}),
            &client,
        )?;
        Ok(updated)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors_and_skew() {
        // RFC 6238 appendix B, SHA-1, truncated to 6 digits.
        let secret = base32::encode(
            base32::Alphabet::Rfc4648 { padding: false },
            b"12345678901234567890",
        );
        assert_eq!(matching_totp_step(&secret, "287082", 59, None), Ok(Some(1)));
        assert_eq!(
            matching_totp_step(&secret, "081804", 1111111109, None),
            Ok(Some(37037036))
        );
        // One step either side is accepted, two are not.
        assert_eq!(
            matching_totp_step(&secret, "081804", 1111111109 + 30, None),
            Ok(Some(37037036))
        );
        assert_eq!(
            matching_totp_step(&secret, "081804", 1111111109 + 60, None),
            Ok(None)
        );
        // A step at or before the last accepted one is refused.
        assert_eq!(
            matching_totp_step(&secret, "081804", 1111111109, Some(37037036)),
            Ok(None)
        );
        assert_eq!(matching_totp_step(&secret, "000000", 59, None), Ok(None));
        assert!(matching_totp_step("not base32!", "000000", 59, None).is_err());
    }

    #[test]
    fn otpauth_uri_is_pquerna_s() {
        assert_eq!(
            totp_uri("localhost:3000", "a b@example.com", "ABC"),
            "otpauth://totp/localhost:3000:a%20b@example.com?algorithm=SHA1&digits=6&issuer=localhost%3A3000&period=30&secret=ABC"
        );
        assert_eq!(new_totp_secret().len(), 32);
    }

    #[test]
    fn qr_code_is_svg() {
        let svg = qr_svg("otpauth://totp/x:y?secret=ABC").unwrap();
        assert!(svg.starts_with("<?xml") && svg.contains("<svg"), "{svg}");
    }
}
