//! Access tokens: the signing keys, lifetime, audience and roles (`GOTRUE_JWT_*`).
//!
//! Keys come from two places, as in GoTrue (`internal/conf/jwk.go`, `configuration.go`):
//! `GOTRUE_JWT_SECRET`, the legacy HS256 secret (its `kid` is `GOTRUE_JWT_KEY_ID`, usually none),
//! and `GOTRUE_JWT_KEYS`, a JSON array of JWKs: RS256 and ES256 private keys, HS256 `oct` keys,
//! and public keys kept only to verify. Exactly one listed key has `sign` in its `key_ops`, and
//! it signs; every listed key verifies. Without `GOTRUE_JWT_KEYS` the secret signs. The secret
//! always stays a verification key, so tokens issued before a switch to asymmetric keys keep
//! working until they expire.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{ConfigError, Secret, Vars};

/// The secret every development instance shares. Refused when `WEAUTH_ENV=production`.
pub const DEV_JWT_SECRET: &str = "weauth-development-secret-do-not-use-in-production";

#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// HS256 secret (`GOTRUE_JWT_SECRET`).
    pub secret: Secret,
    /// The `kid` of the secret (`GOTRUE_JWT_KEY_ID`); tokens it signs carry it.
    pub key_id: Option<String>,
    /// `GOTRUE_JWT_KEYS`, validated; empty when unset.
    pub keys: Vec<JwtKey>,
    /// Access-token lifetime in seconds.
    pub exp: i64,
    pub aud: String,
    pub issuer: Option<String>,
    /// Token roles allowed on `/admin/*`.
    pub admin_roles: Vec<String>,
    /// `role` of new users.
    pub default_group_name: String,
    /// Users with this role may change their own `app_metadata`.
    pub admin_group_name: String,
}

impl JwtConfig {
    pub fn read(v: &Vars<'_>) -> Result<JwtConfig, ConfigError> {
        let secret = v.required(&["GOTRUE_JWT_SECRET"], DEV_JWT_SECRET);
        if v.production && !secret.is_empty() && (secret == DEV_JWT_SECRET || secret.len() < 32) {
            return Err(ConfigError(
                "GOTRUE_JWT_SECRET must be a private value of at least 32 characters in production"
                    .into(),
            ));
        }
        let keys = match v.str(&["GOTRUE_JWT_KEYS"]) {
            Some(raw) => parse_keys(&raw)?,
            None => Vec::new(),
        };
        let config = JwtConfig {
            secret: Secret::new(secret),
            key_id: v.str(&["GOTRUE_JWT_KEY_ID"]),
            keys,
            exp: v.parse(&["GOTRUE_JWT_EXP"], 3600i64)?,
            aud: v.str_or(&["GOTRUE_JWT_AUD"], "authenticated"),
            issuer: v.str(&["GOTRUE_JWT_ISSUER"]),
            admin_roles: v.list(&["GOTRUE_JWT_ADMIN_ROLES"], "service_role,supabase_admin"),
            default_group_name: v.str_or(&["GOTRUE_JWT_DEFAULT_GROUP_NAME"], "authenticated"),
            admin_group_name: v.str_or(&["GOTRUE_JWT_ADMIN_GROUP_NAME"], "admin"),
        };
        if config.exp <= 0 {
            return Err(ConfigError(
                "GOTRUE_JWT_EXP must be a positive number of seconds".into(),
            ));
        }
        if let Some(kid) = &config.key_id {
            if config.keys.iter().any(|k| &k.kid == kid) {
                return Err(ConfigError(format!(
                    "GOTRUE_JWT_KEY_ID {kid:?} is also the kid of a key in GOTRUE_JWT_KEYS"
                )));
            }
        }
        Ok(config)
    }

    /// True when the public development secret is in the key set. It always verifies (as
    /// the legacy key), so this holds even when `GOTRUE_JWT_KEYS` signs.
    pub fn uses_dev_secret(&self) -> bool {
        self.secret.expose() == DEV_JWT_SECRET
    }
}

/// A signing algorithm weauth supports for `GOTRUE_JWT_KEYS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Hs256,
    Rs256,
    Es256,
}

impl KeyAlgorithm {
    pub fn name(self) -> &'static str {
        match self {
            KeyAlgorithm::Hs256 => "HS256",
            KeyAlgorithm::Rs256 => "RS256",
            KeyAlgorithm::Es256 => "ES256",
        }
    }
}

/// The public half of an asymmetric key, as base64url strings (what the JWKS publishes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Rsa { n: String, e: String },
    Ec { x: String, y: String },
}

/// Private key material, never printed: PKCS#1 DER (RSA), PKCS#8 DER (EC) or the raw bytes of
/// an `oct` key. These are the forms jsonwebtoken's `EncodingKey` takes.
#[derive(Clone)]
pub struct PrivateKey(pub Vec<u8>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey(***)")
    }
}

/// One validated entry of `GOTRUE_JWT_KEYS`.
#[derive(Clone, Debug)]
pub struct JwtKey {
    pub kid: String,
    pub alg: KeyAlgorithm,
    /// `key_ops` contains `sign`: this key signs new tokens.
    pub signs: bool,
    /// `None` for a public key kept only to verify.
    pub private: Option<PrivateKey>,
    /// `None` for `oct` keys, which have no public half.
    pub public: Option<PublicKey>,
}

impl JwtKey {
    /// The public JWK GoTrue publishes (`decodePublicKey`: `use: sig`, `key_ops: [verify]`).
    /// Built from the public components only, so no private member can ever slip through.
    pub fn public_jwk(&self) -> Option<Value> {
        let common = |mut v: Value| {
            v["kid"] = json!(self.kid);
            v["alg"] = json!(self.alg.name());
            v["use"] = json!("sig");
            v["key_ops"] = json!(["verify"]);
            v
        };
        match self.public.as_ref()? {
            PublicKey::Rsa { n, e } => Some(common(json!({"kty": "RSA", "n": n, "e": e}))),
            PublicKey::Ec { x, y } => {
                Some(common(json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})))
            }
        }
    }
}

/// The members of a JWK weauth reads. Values are strings; anything else fails to parse, and the
/// error message never repeats a value (it could be private key material).
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    key_ops: Option<Vec<String>>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    d: Option<String>,
    n: Option<String>,
    e: Option<String>,
    p: Option<String>,
    q: Option<String>,
    k: Option<String>,
}

/// Parses and validates `GOTRUE_JWT_KEYS`.
pub fn parse_keys(raw: &str) -> Result<Vec<JwtKey>, ConfigError> {
    let fail = |msg: String| ConfigError(format!("GOTRUE_JWT_KEYS: {msg}"));
    let entries: Vec<Value> = serde_json::from_str(raw)
        .map_err(|_| fail("must be a JSON array of JWK objects".into()))?;
    let mut keys: Vec<JwtKey> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.into_iter().enumerate() {
        let raw: RawJwk = serde_json::from_value(entry).map_err(|_| {
            fail(format!(
                "key {i} is not a JWK object (kty and string members expected)"
            ))
        })?;
        let key = parse_key(raw).map_err(|msg| fail(format!("key {i}: {msg}")))?;
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(fail(format!("key {i}: kid {:?} is used twice", key.kid)));
        }
        keys.push(key);
    }
    match keys.iter().filter(|k| k.signs).count() {
        0 if keys.is_empty() => {}
        0 => {
            return Err(fail(
                "no signing key detected (one key needs \"sign\" in key_ops)".into(),
            ))
        }
        1 => {}
        _ => {
            return Err(fail(
                "multiple signing keys detected, only 1 signing key is supported".into(),
            ))
        }
    }
    Ok(keys)
}

fn b64(name: &str, value: &Option<String>) -> Result<Vec<u8>, String> {
    let value = value
        .as_deref()
        .ok_or_else(|| format!("member {name:?} is missing"))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|_| format!("member {name:?} is not base64url"))
}

fn parse_key(raw: RawJwk) -> Result<JwtKey, String> {
    let kid = raw
        .kid
        .clone()
        .filter(|k| !k.trim().is_empty())
        .ok_or("kid is missing")?;
    let ops = raw.key_ops.clone().unwrap_or_default();
    if let Some(op) = ops
        .iter()
        .find(|op| !["sign", "verify"].contains(&op.as_str()))
    {
        return Err(format!("key_ops {op:?} is not supported (sign, verify)"));
    }
    let signs = ops.iter().any(|op| op == "sign");
    let (alg, private, public) = match raw.kty.as_str() {
        "RSA" => rsa_key(&raw)?,
        "EC" => ec_key(&raw)?,
        "oct" => {
            let k = b64("k", &raw.k)?;
            if k.len() < 16 {
                return Err("an oct key must have at least 16 bytes".into());
            }
            (KeyAlgorithm::Hs256, Some(PrivateKey(k)), None)
        }
        other => return Err(format!("kty {other:?} is not supported (RSA, EC, oct)")),
    };
    if let Some(named) = raw.alg.as_deref() {
        if named != alg.name() {
            return Err(format!(
                "alg {named:?} is not supported for kty {:?} (weauth signs RS256, ES256 and HS256)",
                raw.kty
            ));
        }
    }
    if signs && private.is_none() {
        return Err("a signing key needs its private part".into());
    }
    Ok(JwtKey {
        kid,
        alg,
        signs,
        private,
        public,
    })
}

type Parsed = (KeyAlgorithm, Option<PrivateKey>, Option<PublicKey>);

fn rsa_key(raw: &RawJwk) -> Result<Parsed, String> {
    use rsa::pkcs1::EncodeRsaPrivateKey;
    use rsa::BigUint;

    let n = BigUint::from_bytes_be(&b64("n", &raw.n)?);
    let e = BigUint::from_bytes_be(&b64("e", &raw.e)?);
    if n.bits() < 2048 {
        return Err("RSA keys must have at least 2048 bits".into());
    }
    let private = if raw.d.is_some() {
        let d = BigUint::from_bytes_be(&b64("d", &raw.d)?);
        let p = BigUint::from_bytes_be(&b64("p", &raw.p)?);
        let q = BigUint::from_bytes_be(&b64("q", &raw.q)?);
        let key = rsa::RsaPrivateKey::from_components(n.clone(), e.clone(), d, vec![p, q])
            .map_err(|_| "the RSA private key is not valid")?;
        key.validate()
            .map_err(|_| "the RSA private key is not valid")?;
        let der = key
            .to_pkcs1_der()
            .map_err(|_| "the RSA private key cannot be encoded")?;
        Some(PrivateKey(der.as_bytes().to_vec()))
    } else {
        rsa::RsaPublicKey::new(n.clone(), e.clone())
            .map_err(|_| "the RSA public key is not valid")?;
        None
    };
    let public = PublicKey::Rsa {
        n: URL_SAFE_NO_PAD.encode(n.to_bytes_be()),
        e: URL_SAFE_NO_PAD.encode(e.to_bytes_be()),
    };
    Ok((KeyAlgorithm::Rs256, private, Some(public)))
}

fn ec_key(raw: &RawJwk) -> Result<Parsed, String> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    use p256::pkcs8::EncodePrivateKey;

    if raw.crv.as_deref() != Some("P-256") {
        return Err("EC keys must use crv \"P-256\" (ES256)".into());
    }
    let x = b64("x", &raw.x)?;
    let y = b64("y", &raw.y)?;
    if x.len() != 32 || y.len() != 32 {
        return Err("x and y of a P-256 key are 32 bytes each".into());
    }
    let point = p256::EncodedPoint::from_affine_coordinates(
        p256::FieldBytes::from_slice(&x),
        p256::FieldBytes::from_slice(&y),
        false,
    );
    let public = p256::PublicKey::from_sec1_bytes(point.as_bytes())
        .map_err(|_| "x and y are not a point of P-256")?;
    let private = if raw.d.is_some() {
        let d = b64("d", &raw.d)?;
        let secret = p256::SecretKey::from_slice(&d).map_err(|_| "d is not a P-256 private key")?;
        if secret.public_key().to_encoded_point(false) != public.to_encoded_point(false) {
            return Err("x and y do not belong to d".into());
        }
        let der = secret
            .to_pkcs8_der()
            .map_err(|_| "the EC private key cannot be encoded")?;
        Some(PrivateKey(der.as_bytes().to_vec()))
    } else {
        None
    };
    let public = PublicKey::Ec {
        x: URL_SAFE_NO_PAD.encode(&x),
        y: URL_SAFE_NO_PAD.encode(&y),
    };
    Ok((KeyAlgorithm::Es256, private, Some(public)))
}

/// A new private JWK in the form `GOTRUE_JWT_KEYS` takes (`weauth keys generate`): a random
/// UUID `kid`, `key_ops: [sign, verify]`.
pub fn generate_key(alg: KeyAlgorithm) -> Result<Value, String> {
    use rsa::traits::{PrivateKeyParts, PublicKeyParts};

    let kid = uuid::Uuid::new_v4().to_string();
    let enc = |b: &[u8]| URL_SAFE_NO_PAD.encode(b);
    let mut rng = rand::rngs::OsRng;
    let mut jwk = match alg {
        KeyAlgorithm::Es256 => {
            use p256::elliptic_curve::sec1::ToEncodedPoint;
            let secret = p256::SecretKey::random(&mut rng);
            let point = secret.public_key().to_encoded_point(false);
            let (Some(x), Some(y)) = (point.x(), point.y()) else {
                return Err("cannot encode the new P-256 key".into());
            };
            json!({"kty": "EC", "crv": "P-256", "x": enc(x), "y": enc(y), "d": enc(&secret.to_bytes())})
        }
        KeyAlgorithm::Rs256 => {
            let key = rsa::RsaPrivateKey::new(&mut rng, 2048).map_err(|e| e.to_string())?;
            let primes = key.primes();
            let (Some(dp), Some(dq), Some(qi)) = (key.dp(), key.dq(), key.crt_coefficient()) else {
                return Err("cannot compute the CRT parameters of the new RSA key".into());
            };
            json!({
                "kty": "RSA",
                "n": enc(&key.n().to_bytes_be()),
                "e": enc(&key.e().to_bytes_be()),
                "d": enc(&key.d().to_bytes_be()),
                "p": enc(&primes[0].to_bytes_be()),
                "q": enc(&primes[1].to_bytes_be()),
                "dp": enc(&dp.to_bytes_be()),
                "dq": enc(&dq.to_bytes_be()),
                "qi": enc(&qi.to_bytes_be()),
            })
        }
        KeyAlgorithm::Hs256 => {
            use rand::RngCore;
            let mut k = [0u8; 32];
            rng.fill_bytes(&mut k);
            json!({"kty": "oct", "k": enc(&k)})
        }
    };
    jwk["kid"] = json!(kid);
    jwk["alg"] = json!(alg.name());
    jwk["use"] = json!("sig");
    jwk["key_ops"] = json!(["sign", "verify"]);
    Ok(jwk)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_sign() {
        for alg in [KeyAlgorithm::Es256, KeyAlgorithm::Hs256] {
            let jwk = generate_key(alg).unwrap();
            let keys = parse_keys(&json!([jwk]).to_string()).unwrap();
            assert_eq!(keys.len(), 1);
            assert!(keys[0].signs && keys[0].alg == alg && keys[0].private.is_some());
        }
    }

    #[test]
    fn bad_keys_are_refused_without_echoing_them() {
        let mut jwk = generate_key(KeyAlgorithm::Es256).unwrap();
        let d = jwk["d"].as_str().unwrap().to_string();
        let mut other = generate_key(KeyAlgorithm::Es256).unwrap();
        other["d"] = json!(d);
        let err = parse_keys(&json!([other]).to_string()).unwrap_err();
        assert!(err.0.contains("do not belong"), "{err}");
        assert!(!err.0.contains(&d));
        // Two signing keys, no signing key, a duplicate kid, an unsupported alg.
        let second = generate_key(KeyAlgorithm::Es256).unwrap();
        assert!(parse_keys(&json!([jwk, second]).to_string()).is_err());
        jwk["key_ops"] = json!(["verify"]);
        assert!(parse_keys(&json!([jwk]).to_string()).is_err());
        let mut es512 = second.clone();
        es512["alg"] = json!("ES512");
        assert!(parse_keys(&json!([es512]).to_string()).is_err());
        assert!(parse_keys(&json!([second, second]).to_string()).is_err());
        let mut numeric = generate_key(KeyAlgorithm::Es256).unwrap();
        numeric["d"] = json!(12345);
        let err = parse_keys(&json!([numeric]).to_string()).unwrap_err();
        assert!(!err.0.contains("12345"), "{err}");
        assert!(parse_keys("not json").is_err());
    }

    #[test]
    fn public_jwk_has_no_private_member_and_debug_hides_it() {
        let jwk = generate_key(KeyAlgorithm::Es256).unwrap();
        let keys = parse_keys(&json!([jwk]).to_string()).unwrap();
        let public = keys[0].public_jwk().unwrap();
        for member in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(public.get(member).is_none(), "{member} published");
        }
        assert_eq!(public["key_ops"], json!(["verify"]));
        assert!(!format!("{:?}", keys[0]).contains(jwk["d"].as_str().unwrap()));
    }
}
