//! Access tokens: JWTs with GoTrue's claims (`internal/tokens/service.go`, `AccessTokenClaims`),
//! signed and checked with a [`KeySet`] the way GoTrue checks them (`internal/api/auth.go`).

use jsonwebtoken::{
    decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::JwtConfig;
use crate::error::{ApiError, ErrorCode};
use crate::models::user::User;

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

/// One signing or verification key: its `kid` (put into the header of tokens it signs) and
/// algorithm. Today the only kind is GoTrue's HS256 secret; asymmetric keys (RS256, ES256 from
/// `GOTRUE_JWT_KEYS`) are further entries of the same set.
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    /// `None` for keys that only verify (a retired key, or a public key).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
}

/// The keys tokens are signed and verified with: one signs, every one verifies. A token names
/// its key by `kid`; tokens without one (everything signed with `GOTRUE_JWT_SECRET`) are checked
/// against the keys without a `kid` of the token's algorithm. Algorithms not in the set are
/// refused before any signature is looked at, so `alg: none` can never pass.
pub struct KeySet {
    keys: Vec<Key>,
    /// Index into `keys` of the key that signs.
    signing: usize,
}

impl KeySet {
    /// The set GoTrue builds from its configuration: today the HS256 `GOTRUE_JWT_SECRET`.
    pub fn from_config(config: &JwtConfig) -> KeySet {
        let secret = config.secret.expose().as_bytes();
        KeySet {
            keys: vec![Key {
                kid: None,
                algorithm: Algorithm::HS256,
                encoding: Some(EncodingKey::from_secret(secret)),
                decoding: DecodingKey::from_secret(secret),
            }],
            signing: 0,
        }
    }

    /// Signs `claims` with the signing key (its `kid` in the header when it has one).
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, ApiError> {
        let key = &self.keys[self.signing];
        let encoding = key
            .encoding
            .as_ref()
            .ok_or_else(|| ApiError::internal("the signing key has no private part"))?;
        let mut header = Header::new(key.algorithm);
        header.kid = key.kid.clone();
        encode(&header, claims, encoding).map_err(ApiError::internal)
    }

    /// Verifies signature, algorithm and time claims; 403 `bad_jwt` otherwise. Like GoTrue:
    /// `exp`/`nbf` are checked when present, with no leeway; `aud` is not checked here.
    pub fn verify<T: serde::de::DeserializeOwned>(&self, token: &str) -> Result<T, ApiError> {
        let refused = |reason: &str| {
            ApiError::forbidden(
                ErrorCode::BadJwt,
                format!("invalid JWT: unable to parse or verify signature, {reason}"),
            )
        };
        check_time_claims(token, chrono::Utc::now().timestamp())?;
        let header = decode_header(token).map_err(|e| refused(describe(&e)))?;
        let key = self
            .keys
            .iter()
            .find(|k| k.algorithm == header.alg && k.kid == header.kid)
            .ok_or_else(|| {
                if self.keys.iter().any(|k| k.algorithm == header.alg) {
                    refused("token signature is invalid: signature is invalid")
                } else {
                    refused("token is unverifiable: signing method is invalid")
                }
            })?;
        let mut validation = Validation::new(key.algorithm);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        decode::<T>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| refused(describe(&e)))
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

/// Mints and checks access tokens: the key set plus GoTrue's claim rules from `GOTRUE_JWT_*`.
pub struct AccessTokens {
    pub keys: KeySet,
    config: JwtConfig,
}

/// A freshly signed access token.
pub struct AccessToken {
    pub token: String,
    /// Seconds since the epoch.
    pub expires_at: i64,
    pub expires_in: i64,
}

impl AccessTokens {
    pub fn new(config: &JwtConfig) -> AccessTokens {
        AccessTokens {
            keys: KeySet::from_config(config),
            config: config.clone(),
        }
    }

    /// Signs an access token for `user` in `session_id` at assurance level `aal`.
    pub fn mint(
        &self,
        user: &User,
        session_id: Uuid,
        aal: &str,
        amr: Vec<Amr>,
        now: i64,
    ) -> Result<AccessToken, ApiError> {
        let claims = self.claims_for(user, session_id, aal, amr, now);
        Ok(AccessToken {
            token: self.keys.sign(&claims)?,
            expires_at: claims.exp,
            expires_in: claims.exp - now,
        })
    }

    /// GoTrue's claims for a user's session. `exp` is `iat + GOTRUE_JWT_EXP`.
    pub fn claims_for(
        &self,
        user: &User,
        session_id: Uuid,
        aal: &str,
        amr: Vec<Amr>,
        now: i64,
    ) -> AccessClaims {
        AccessClaims {
            iss: self.config.issuer.clone(),
            sub: user.id.to_string(),
            aud: user
                .aud
                .clone()
                .filter(|a| !a.is_empty())
                .unwrap_or_else(|| self.config.aud.clone()),
            exp: now + self.config.exp,
            iat: now,
            email: user.email.clone().unwrap_or_default(),
            phone: user.phone.clone().unwrap_or_default(),
            app_metadata: user.app_metadata(),
            user_metadata: user.user_metadata(),
            role: user.role.clone().unwrap_or_default(),
            aal: aal.to_string(),
            amr,
            session_id: session_id.to_string(),
            is_anonymous: user.is_anonymous,
        }
    }

    /// Verifies an incoming token (see [`KeySet::verify`]).
    pub fn verify(&self, token: &str) -> Result<IncomingClaims, ApiError> {
        self.keys.verify(token)
    }
}
