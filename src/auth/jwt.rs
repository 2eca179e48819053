//! Access tokens: HS256 JWTs with GoTrue's claims (`internal/tokens/service.go`,
//! `AccessTokenClaims`), checked the way GoTrue checks them (`internal/api/auth.go`).

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Config;
use crate::error::{ApiError, ErrorCode};

/// One entry of the `amr` claim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Amr {
    pub method: String,
    pub timestamp: i64,
}

/// The claims weauth signs. `email`, `phone` and `is_anonymous` are always present, as in GoTrue.
#[derive(Serialize, Deserialize, Debug)]
pub struct AccessClaims {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub email: String,
    pub phone: String,
    pub app_metadata: Map<String, Value>,
    pub user_metadata: Map<String, Value>,
    pub role: String,
    pub aal: String,
    pub amr: Vec<Amr>,
    pub session_id: String,
    pub is_anonymous: bool,
}

/// What weauth reads from an incoming token. Everything is optional: service-role and anon
/// keys have no `sub`, `aud` or `session_id`.
#[derive(Deserialize, Debug, Clone, Default)]
pub struct IncomingClaims {
    pub sub: Option<String>,
    pub role: Option<String>,
    pub session_id: Option<String>,
    pub aud: Option<Value>,
}

/// Signing and verification keys, built once from `GOTRUE_JWT_SECRET`.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    pub fn new(secret: &str) -> JwtKeys {
        // Only HS256 is accepted: `alg: none` and every other algorithm fail before the
        // signature is looked at. Like GoTrue: `exp`/`nbf` are checked when present, with no
        // leeway; `aud` is not checked here.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        JwtKeys {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            validation,
        }
    }

    pub fn sign(&self, claims: &AccessClaims) -> Result<String, ApiError> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding).map_err(ApiError::internal)
    }

    /// Verifies signature, algorithm and time claims; 403 `bad_jwt` otherwise.
    pub fn verify(&self, token: &str) -> Result<IncomingClaims, ApiError> {
        check_time_claims(token, chrono::Utc::now().timestamp())?;
        decode::<IncomingClaims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| {
                ApiError::forbidden(
                    ErrorCode::BadJwt,
                    format!(
                        "invalid JWT: unable to parse or verify signature, {}",
                        describe(&e)
                    ),
                )
            })
    }
}

/// The time claims jsonwebtoken lets through: it skips `exp`/`nbf` that are not unsigned
/// integers (a string, a fraction) and, with no required claims, a missing `exp`. As golang-jwt
/// (GoTrue): `exp`, `nbf` and `iat` must be JSON numbers when present (fractions allowed), a
/// token is expired from `exp` on and not valid before `nbf`. A token that names a user
/// (`sub`) must carry `exp`; keys that name no user (anon, service role) may omit it, which
/// makes them valid until the JWT secret changes (Supabase's keys carry one). Tokens that do
/// not parse are left to `decode`, which refuses them with its own reason.
fn check_time_claims(token: &str, now: i64) -> Result<(), ApiError> {
    use base64::Engine;
    let refuse = |why: String| {
        Err(ApiError::forbidden(
            ErrorCode::BadJwt,
            format!("invalid JWT: unable to parse or verify signature, {why}"),
        ))
    };
    let Some(payload) = token.split('.').nth(1) else {
        return Ok(());
    };
    let Ok(bytes) =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('='))
    else {
        return Ok(());
    };
    let Ok(Value::Object(claims)) = serde_json::from_slice::<Value>(&bytes) else {
        return Ok(());
    };
    for name in ["exp", "nbf", "iat"] {
        if claims.get(name).is_some_and(|v| !v.is_number()) {
            return refuse(format!(
                "token is malformed: could not JSON decode claim: {name} is not a number"
            ));
        }
    }
    let number = |name: &str| claims.get(name).and_then(Value::as_f64);
    let names_user = claims.get("sub").is_some_and(|v| !v.is_null());
    match number("exp") {
        None if names_user => {
            return refuse(
                "token has invalid claims: token is missing required claim: exp claim is required"
                    .into(),
            )
        }
        Some(exp) if (now as f64) >= exp => {
            return refuse("token has invalid claims: token is expired".into())
        }
        _ => {}
    }
    if number("nbf").is_some_and(|nbf| (now as f64) < nbf) {
        return refuse("token has invalid claims: token is not valid yet".into());
    }
    Ok(())
}

/// GoTrue-like wording for the reason a token was refused (never echoes the token).
fn describe(e: &jsonwebtoken::errors::Error) -> &'static str {
    use jsonwebtoken::errors::ErrorKind;
    match e.kind() {
        ErrorKind::ExpiredSignature => "token has invalid claims: token is expired",
        ErrorKind::ImmatureSignature => "token has invalid claims: token is not valid yet",
        ErrorKind::InvalidSignature => "token signature is invalid: signature is invalid",
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            "token is unverifiable: signing method is invalid"
        }
        _ => "token is malformed: could not parse the token",
    }
}

/// Builds the claims for a user's session. `exp` is `iat + GOTRUE_JWT_EXP`.
pub fn claims_for(
    config: &Config,
    user: &crate::db::models::user::User,
    session_id: uuid::Uuid,
    amr: Vec<Amr>,
    now: i64,
) -> AccessClaims {
    AccessClaims {
        iss: config.jwt.issuer.clone(),
        sub: user.id.to_string(),
        aud: user
            .aud
            .clone()
            .filter(|a| !a.is_empty())
            .unwrap_or_else(|| config.jwt.aud.clone()),
        exp: now + config.jwt.exp,
        iat: now,
        email: user.email.clone().unwrap_or_default(),
        phone: user.phone.clone().unwrap_or_default(),
        app_metadata: user.app_metadata(),
        user_metadata: user.user_metadata(),
        role: user.role.clone().unwrap_or_default(),
        aal: "aal1".to_string(),
        amr,
        session_id: session_id.to_string(),
        is_anonymous: user.is_anonymous,
    }
}
