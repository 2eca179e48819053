//! Access tokens: JWTs with GoTrue's claims (`internal/tokens/service.go`, `AccessTokenClaims`),
//! signed and checked with a [`KeySet`] the way GoTrue checks them (`internal/api/auth.go`).

use jsonwebtoken::{decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::config::{JwtConfig, JwtKey, KeyAlgorithm, PublicKey};
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
/// algorithm: GoTrue's HS256 secret, or an entry of `GOTRUE_JWT_KEYS` (RS256, ES256, HS256).
struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    /// `None` for keys that only verify (a retired key, or a public key).
    encoding: Option<EncodingKey>,
    decoding: DecodingKey,
    /// What `/.well-known/jwks.json` publishes for it (asymmetric keys only).
    public_jwk: Option<Value>,
}

/// The keys tokens are signed and verified with: one signs, every one verifies. A token names
/// its key by `kid`; tokens without one (everything signed with `GOTRUE_JWT_SECRET`) are checked
/// against the secret, and so are HS256 tokens whose `kid` is unknown (GoTrue's fallback in
/// `internal/api/auth.go`: the signature must still match the secret). Algorithms not in the
/// set are refused before any signature is looked at, so `alg: none` can never pass.
pub struct KeySet {
    keys: Vec<Key>,
    /// Index into `keys` of the key that signs.
    signing: usize,
    /// Index into `keys` of the legacy secret (`GOTRUE_JWT_SECRET`).
    legacy: usize,
}

impl KeySet {
    /// The set GoTrue builds from its configuration: the keys of `GOTRUE_JWT_KEYS` (the one
    /// with `sign` in `key_ops` signs), then the HS256 `GOTRUE_JWT_SECRET` (with
    /// `GOTRUE_JWT_KEY_ID` as its `kid`), which signs when `GOTRUE_JWT_KEYS` is unset. Every key
    /// that can sign is tried once here, so a key jsonwebtoken cannot use stops the start-up
    /// instead of failing the first sign-in.
    pub fn from_config(config: &JwtConfig) -> Result<KeySet, String> {
        let mut keys = Vec::with_capacity(config.keys.len() + 1);
        for key in &config.keys {
            keys.push(Key::from_jwk(key)?);
        }
        let secret = config.secret.expose().as_bytes();
        keys.push(Key {
            kid: config.key_id.clone(),
            algorithm: Algorithm::HS256,
            encoding: Some(EncodingKey::from_secret(secret)),
            decoding: DecodingKey::from_secret(secret),
            public_jwk: None,
        });
        let legacy = keys.len() - 1;
        let signing = config.keys.iter().position(|k| k.signs).unwrap_or(legacy);
        let set = KeySet {
            keys,
            signing,
            legacy,
        };
        set.self_test()?;
        Ok(set)
    }

    fn self_test(&self) -> Result<(), String> {
        // A token like those weauth issues: a user and an expiry (user tokens must carry `exp`).
        let probe = serde_json::json!({
            "sub": "weauth-key-self-test",
            "exp": chrono::Utc::now().timestamp() + 60,
        });
        for key in &self.keys {
            let Some(encoding) = &key.encoding else {
                continue;
            };
            let mut header = Header::new(key.algorithm);
            header.kid = key.kid.clone();
            let kid = key.kid.as_deref().unwrap_or("(GOTRUE_JWT_SECRET)");
            let token = encode(&header, &probe, encoding)
                .map_err(|_| format!("the JWT key {kid} cannot sign"))?;
            self.verify::<Value>(&token)
                .map_err(|_| format!("the JWT key {kid} cannot verify its own signature"))?;
        }
        Ok(())
    }

    /// `kid` and algorithm of the signing key.
    pub fn signing_key(&self) -> (Option<&str>, Algorithm) {
        let key = &self.keys[self.signing];
        (key.kid.as_deref(), key.algorithm)
    }

    /// The JWK Set of the public keys, as `/.well-known/jwks.json` serves it. Symmetric keys
    /// are never listed (GoTrue `internal/api/jwks.go`).
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .keys
            .iter()
            .filter_map(|k| k.public_jwk.clone())
            .collect();
        serde_json::json!({ "keys": keys })
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
        let malformed = || refused("token is malformed: could not parse the token");
        // header.payload.signature, split as jsonwebtoken splits it; the payload is decoded once
        // and serves both the time checks and the claims.
        let (message, signature) = token.rsplit_once('.').ok_or_else(malformed)?;
        let payload = message.rsplit_once('.').map(|(_, payload)| payload);
        let claims = payload.and_then(|p| {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p.trim_end_matches('='))
                .ok()
        });
        if let Some(claims) = &claims {
            check_time_claims(claims, chrono::Utc::now().timestamp())?;
        }
        let header = decode_header(token).map_err(|e| refused(describe(&e)))?;
        if !self.keys.iter().any(|k| k.algorithm == header.alg) {
            return Err(refused("token is unverifiable: signing method is invalid"));
        }
        let by_kid = header
            .kid
            .as_deref()
            .and_then(|kid| self.keys.iter().find(|k| k.kid.as_deref() == Some(kid)));
        let key =
            match by_kid {
                Some(key) => key,
                None if header.alg == Algorithm::HS256 => &self.keys[self.legacy],
                None => return Err(refused(
                    "token is unverifiable: error while executing keyfunc: unrecognized JWT kid",
                )),
            };
        if key.algorithm != header.alg {
            return Err(refused("token is unverifiable: signing method is invalid"));
        }
        let signed = jsonwebtoken::crypto::verify(
            signature,
            message.as_bytes(),
            &key.decoding,
            key.algorithm,
        )
        .map_err(|e| refused(describe(&e)))?;
        if !signed {
            return Err(refused("token signature is invalid: signature is invalid"));
        }
        // The time claims were checked above; jsonwebtoken's own checks are a subset of them.
        let claims = claims.ok_or_else(malformed)?;
        if !is_json_object(&claims) {
            return Err(malformed());
        }
        serde_json::from_slice(&claims).map_err(|_| malformed())
    }
}

/// The time claims of a decoded payload, checked as golang-jwt (GoTrue) checks them (these
/// checks cover jsonwebtoken's, which skip `exp`/`nbf` that are not unsigned integers). As golang-jwt
/// (GoTrue): `exp`, `nbf` and `iat` must be JSON numbers when present (fractions allowed), a
/// token is expired from `exp` on and not valid before `nbf`. A token that names a user
/// (`sub`) must carry `exp`; keys that name no user (anon, service role) may omit it, which
/// makes them valid until the JWT secret changes (Supabase's keys carry one). Tokens that do
/// not parse are left to the claims' own parse, which refuses them.
fn check_time_claims(payload: &[u8], now: i64) -> Result<(), ApiError> {
    let refuse = |why: String| {
        Err(ApiError::forbidden(
            ErrorCode::BadJwt,
            format!("invalid JWT: unable to parse or verify signature, {why}"),
        ))
    };
    // Only the four claims, skipping the rest unparsed; anything odd (duplicate keys, not an
    // object) takes the general parse below, which is what decides.
    #[derive(Deserialize)]
    struct TimeClaims {
        #[serde(default, deserialize_with = "present")]
        exp: Option<Value>,
        #[serde(default, deserialize_with = "present")]
        nbf: Option<Value>,
        #[serde(default, deserialize_with = "present")]
        iat: Option<Value>,
        #[serde(default, deserialize_with = "present")]
        sub: Option<Value>,
    }
    fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
        Value::deserialize(d).map(Some)
    }
    let time = match serde_json::from_slice::<TimeClaims>(payload) {
        Ok(time) if is_json_object(payload) => time,
        _ => match serde_json::from_slice::<Value>(payload) {
            Ok(Value::Object(mut all)) => TimeClaims {
                exp: all.remove("exp"),
                nbf: all.remove("nbf"),
                iat: all.remove("iat"),
                sub: all.remove("sub"),
            },
            _ => return Ok(()),
        },
    };
    for (name, value) in [("exp", &time.exp), ("nbf", &time.nbf), ("iat", &time.iat)] {
        if value.as_ref().is_some_and(|v| !v.is_number()) {
            return refuse(format!(
                "token is malformed: could not JSON decode claim: {name} is not a number"
            ));
        }
    }
    let number = |claim: &Option<Value>| claim.as_ref().and_then(Value::as_f64);
    let names_user = time.sub.as_ref().is_some_and(|v| !v.is_null());
    match number(&time.exp) {
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
    if number(&time.nbf).is_some_and(|nbf| (now as f64) < nbf) {
        return refuse("token has invalid claims: token is not valid yet".into());
    }
    Ok(())
}

/// A JSON text that is an object (serde would also read a struct from an array).
fn is_json_object(json: &[u8]) -> bool {
    json.trim_ascii_start().first() == Some(&b'{')
}

impl Key {
    fn from_jwk(key: &JwtKey) -> Result<Key, String> {
        let bad = |what: &str| format!("GOTRUE_JWT_KEYS: key {}: {what}", key.kid);
        let private = key.private.as_ref().map(|p| p.0.as_slice());
        let (algorithm, encoding, decoding) = match (key.alg, &key.public) {
            (KeyAlgorithm::Rs256, Some(PublicKey::Rsa { n, e })) => (
                Algorithm::RS256,
                private.map(EncodingKey::from_rsa_der),
                DecodingKey::from_rsa_components(n, e).map_err(|_| bad("bad public key"))?,
            ),
            (KeyAlgorithm::Es256, Some(PublicKey::Ec { x, y })) => (
                Algorithm::ES256,
                private.map(EncodingKey::from_ec_der),
                DecodingKey::from_ec_components(x, y).map_err(|_| bad("bad public key"))?,
            ),
            (KeyAlgorithm::Hs256, None) => {
                let secret = private.ok_or_else(|| bad("an oct key needs k"))?;
                (
                    Algorithm::HS256,
                    Some(EncodingKey::from_secret(secret)),
                    DecodingKey::from_secret(secret),
                )
            }
            _ => return Err(bad("key type and algorithm do not match")),
        };
        Ok(Key {
            kid: Some(key.kid.clone()),
            algorithm,
            // A verification-only key never signs, even if it holds its private part.
            encoding: if key.signs || key.alg == KeyAlgorithm::Hs256 {
                encoding
            } else {
                None
            },
            decoding,
            public_jwk: key.public_jwk(),
        })
    }
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
    pub fn new(config: &JwtConfig) -> Result<AccessTokens, String> {
        Ok(AccessTokens {
            keys: KeySet::from_config(config)?,
            config: config.clone(),
        })
    }

    /// Signs an access token for `user` in `session_id` at assurance level `aal`, valid for
    /// `lifetime` seconds (normally `GOTRUE_JWT_EXP`, see [`AccessTokens::lifetime`]).
    pub fn mint(
        &self,
        user: &User,
        session_id: Uuid,
        aal: &str,
        amr: Vec<Amr>,
        now: i64,
        lifetime: i64,
    ) -> Result<AccessToken, ApiError> {
        let mut claims = self.claims_for(user, session_id, aal, amr, now);
        claims.exp = now + lifetime;
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

    /// Signs claims a custom access-token hook returned (already checked by the caller).
    pub fn sign_claims(&self, claims: &Value, now: i64) -> Result<AccessToken, ApiError> {
        let exp = claims["exp"].as_i64().unwrap_or(now);
        Ok(AccessToken {
            token: self.keys.sign(claims)?,
            expires_at: exp,
            expires_in: exp - now,
        })
    }

    /// `GOTRUE_JWT_EXP`, in seconds.
    pub fn lifetime(&self) -> i64 {
        self.config.exp
    }

    /// Verifies an incoming token (see [`KeySet::verify`]).
    pub fn verify(&self, token: &str) -> Result<IncomingClaims, ApiError> {
        self.keys.verify(token)
    }
}
