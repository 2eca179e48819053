//! The relying party's side of WebAuthn for MFA factors, as GoTrue runs it through
//! go-webauthn (`webauthn.BeginRegistration`/`CreateCredential`, `BeginLogin`/`ValidateLogin`,
//! W3C WebAuthn level 3 sections 7.1 and 7.2), with go-webauthn's JSON for what is stored:
//! [`SessionData`] in `mfa_challenges.web_authn_session_data` and [`Credential`] in
//! `mfa_factors.web_authn_credential`, so a factor registered here verifies under GoTrue and
//! the other way round.
//!
//! Checked on every response: the ceremony type, the challenge (constant time), the origin
//! (scheme, host and port against `GOTRUE_WEBAUTHN_RP_ORIGINS`), the token binding status, the
//! rp id hash, the user-present flag (and user-verified when the challenge required it), the
//! backup flags. A registration's key algorithm must be one offered; attestation `none` must
//! carry no statement and a `packed` self-attestation must be signed by the new key. Other
//! attestation statements are kept but not checked: like GoTrue without a metadata service,
//! there are no trust anchors to check them against, so such a credential counts as attestation
//! `none`. An assertion must come from the factor's credential, be signed by its key over
//! `authenticatorData || SHA-256(clientDataJSON)`, and carry a sign counter above the stored one
//! (go-webauthn only flags a lower counter as a clone warning; weauth refuses it).
//!
//! Signatures: ES256, ES384, RS256/384/512, PS256/384/512 and EdDSA (Ed25519) through `ring`.
//! ES512 (P-521), which go-webauthn also offers, is not offered here.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ciborium::Value;
use ring::signature;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

/// Challenge bytes (go-webauthn `protocol.ChallengeLength`).
const CHALLENGE_BYTES: usize = 32;
/// go-webauthn's default ceremony timeout, sent to the browser (milliseconds).
const TIMEOUT_MS: u64 = 300_000;
/// The longest credential id WebAuthn allows.
const MAX_CREDENTIAL_ID: usize = 1023;
/// The COSE algorithms offered at registration, in go-webauthn's order (without ES512).
pub const OFFERED_ALGORITHMS: [i64; 9] = [-7, -35, -257, -258, -259, -37, -38, -39, -8];

const FLAG_UP: u8 = 0x01;
const FLAG_UV: u8 = 0x04;
const FLAG_BE: u8 = 0x08;
const FLAG_BS: u8 = 0x10;
const FLAG_AT: u8 = 0x40;
const FLAG_ED: u8 = 0x80;

/// The relying party (`GOTRUE_WEBAUTHN_RP_*`).
pub struct RelyingParty<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub origins: &'a [String],
}

/// Why a response was refused. The texts name the check, never the client's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Not a credential response at all (bad JSON shape, base64 or CBOR).
    Malformed(&'static str),
    /// A relying-party check failed.
    Rejected(&'static str),
    /// The assertion was made with a credential that is not the factor's.
    UnknownCredential,
}

/// `[]byte` as Go's encoding/json writes it: standard base64 with padding (`null` read as
/// empty).
mod go_bytes {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        match raw {
            None => Ok(Vec::new()),
            Some(s) => super::decode_std(&s).ok_or_else(|| serde::de::Error::custom("not base64")),
        }
    }
}

mod go_bytes_list {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[Vec<u8>], s: S) -> Result<S::Ok, S::Error> {
        let encoded: Vec<String> = list.iter().map(|b| STANDARD.encode(b)).collect();
        encoded.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Vec<u8>>, D::Error> {
        let raw: Option<Vec<String>> = Option::deserialize(d)?;
        raw.unwrap_or_default()
            .iter()
            .map(|s| super::decode_std(s).ok_or_else(|| serde::de::Error::custom("not base64")))
            .collect()
    }
}

fn decode_std(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(s.trim_end_matches('='))
        .ok()
}

/// base64url as WebAuthn's JSON carries it; go-webauthn also takes it padded.
fn decode_url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// go-webauthn's `protocol.CredentialParameter`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CredentialParameter {
    #[serde(rename = "type")]
    pub kind: String,
    pub alg: i64,
}

/// go-webauthn's `webauthn.SessionData`: what a challenge remembers until it is verified.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct SessionData {
    /// The challenge, base64url without padding.
    pub challenge: String,
    #[serde(rename = "rpId", default)]
    pub rp_id: String,
    #[serde(with = "go_bytes", default)]
    pub user_id: Vec<u8>,
    #[serde(with = "go_bytes_list", default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_credentials: Vec<Vec<u8>>,
    /// Go's zero `time.Time` unless go-webauthn enforced its timeout.
    #[serde(default = "go_zero_time")]
    pub expires: String,
    #[serde(rename = "userVerification", default)]
    pub user_verification: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<serde_json::Value>,
    #[serde(rename = "credParams", default, skip_serializing_if = "Vec::is_empty")]
    pub cred_params: Vec<CredentialParameter>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mediation: String,
}

fn go_zero_time() -> String {
    "0001-01-01T00:00:00Z".into()
}

impl SessionData {
    /// A registration session (non-empty `credParams`) or a login session.
    pub fn is_registration(&self) -> bool {
        !self.cred_params.is_empty()
    }

    fn expired(&self) -> bool {
        chrono::DateTime::parse_from_rfc3339(&self.expires)
            .is_ok_and(|t| t.timestamp() > 0 && t < chrono::Utc::now())
    }
}

/// go-webauthn's `webauthn.Credential`, the stored credential record.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Credential {
    #[serde(with = "go_bytes")]
    pub id: Vec<u8>,
    /// The COSE key, CBOR.
    #[serde(rename = "publicKey", with = "go_bytes")]
    pub public_key: Vec<u8>,
    /// The attestation format (go-webauthn's name for it).
    #[serde(rename = "attestationType", default)]
    pub attestation_type: String,
    #[serde(default)]
    pub transport: Option<Vec<String>>,
    #[serde(default)]
    pub flags: CredentialFlags,
    #[serde(default)]
    pub authenticator: Authenticator,
    #[serde(default)]
    pub attestation: CredentialAttestation,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialFlags {
    #[serde(rename = "userPresent", default)]
    pub user_present: bool,
    #[serde(rename = "userVerified", default)]
    pub user_verified: bool,
    #[serde(rename = "backupEligible", default)]
    pub backup_eligible: bool,
    #[serde(rename = "backupState", default)]
    pub backup_state: bool,
}

impl CredentialFlags {
    fn from_bits(flags: u8) -> CredentialFlags {
        CredentialFlags {
            user_present: flags & FLAG_UP != 0,
            user_verified: flags & FLAG_UV != 0,
            backup_eligible: flags & FLAG_BE != 0,
            backup_state: flags & FLAG_BS != 0,
        }
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Authenticator {
    #[serde(rename = "AAGUID", with = "go_bytes", default)]
    pub aaguid: Vec<u8>,
    #[serde(rename = "signCount", default)]
    pub sign_count: u32,
    #[serde(rename = "cloneWarning", default)]
    pub clone_warning: bool,
    #[serde(default)]
    pub attachment: String,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct CredentialAttestation {
    #[serde(rename = "clientDataJSON", with = "go_bytes", default)]
    pub client_data_json: Vec<u8>,
    #[serde(rename = "clientDataHash", with = "go_bytes", default)]
    pub client_data_hash: Vec<u8>,
    #[serde(rename = "authenticatorData", with = "go_bytes", default)]
    pub authenticator_data: Vec<u8>,
    #[serde(rename = "publicKeyAlgorithm", default)]
    pub public_key_algorithm: i64,
    #[serde(with = "go_bytes", default)]
    pub object: Vec<u8>,
}

/// Options for `navigator.credentials.create/get` (`credential_options`) and the session to
/// store with the challenge.
pub struct Begun {
    pub options: serde_json::Value,
    pub session: SessionData,
}

fn new_challenge() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; CHALLENGE_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn descriptor(c: &Credential) -> serde_json::Value {
    let mut d = json!({"type": "public-key", "id": URL_SAFE_NO_PAD.encode(&c.id)});
    if let Some(t) = c.transport.as_ref().filter(|t| !t.is_empty()) {
        d["transports"] = json!(t);
    }
    d
}

/// go-webauthn's `BeginRegistration` with GoTrue's exclusions (the user's credentials, with
/// transports `usb` and `nfc`).
pub fn begin_registration(
    rp: &RelyingParty<'_>,
    user_id: &[u8],
    user_name: &str,
    exclude: &[Credential],
) -> Begun {
    let challenge = new_challenge();
    let params: Vec<CredentialParameter> = OFFERED_ALGORITHMS
        .iter()
        .map(|&alg| CredentialParameter {
            kind: "public-key".into(),
            alg,
        })
        .collect();
    let mut public_key = json!({
        "rp": {"name": rp.name, "id": rp.id},
        "user": {"name": user_name, "displayName": user_name, "id": URL_SAFE_NO_PAD.encode(user_id)},
        "challenge": challenge,
        "pubKeyCredParams": params,
        "timeout": TIMEOUT_MS,
        "authenticatorSelection": {},
    });
    if !exclude.is_empty() {
        let list: Vec<_> = exclude
            .iter()
            .map(|c| json!({"type": "public-key", "id": URL_SAFE_NO_PAD.encode(&c.id), "transports": ["usb", "nfc"]}))
            .collect();
        public_key["excludeCredentials"] = json!(list);
    }
    Begun {
        options: json!({ "publicKey": public_key }),
        session: SessionData {
            challenge,
            rp_id: rp.id.to_string(),
            user_id: user_id.to_vec(),
            allowed_credentials: Vec::new(),
            expires: go_zero_time(),
            user_verification: String::new(),
            extensions: None,
            cred_params: params,
            mediation: String::new(),
        },
    }
}

/// go-webauthn's `BeginLogin` for the given credentials.
pub fn begin_login(rp: &RelyingParty<'_>, user_id: &[u8], credentials: &[Credential]) -> Begun {
    let challenge = new_challenge();
    let allow: Vec<_> = credentials.iter().map(descriptor).collect();
    Begun {
        options: json!({"publicKey": {
            "challenge": challenge,
            "timeout": TIMEOUT_MS,
            "rpId": rp.id,
            "allowCredentials": allow,
        }}),
        session: SessionData {
            challenge,
            rp_id: rp.id.to_string(),
            user_id: user_id.to_vec(),
            allowed_credentials: credentials.iter().map(|c| c.id.clone()).collect(),
            expires: go_zero_time(),
            user_verification: String::new(),
            extensions: None,
            cred_params: Vec::new(),
            mediation: String::new(),
        },
    }
}

#[derive(Deserialize)]
struct RegistrationResponse {
    id: String,
    #[serde(rename = "rawId")]
    raw_id: String,
    #[serde(rename = "type")]
    kind: String,
    response: AttestationResponse,
    #[serde(rename = "authenticatorAttachment", default)]
    attachment: Option<String>,
}

#[derive(Deserialize)]
struct AttestationResponse {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "attestationObject")]
    attestation_object: String,
    #[serde(default)]
    transports: Option<Vec<String>>,
    #[serde(rename = "publicKeyAlgorithm", default)]
    public_key_algorithm: Option<i64>,
}

#[derive(Deserialize)]
struct AssertionResponseJson {
    id: String,
    #[serde(rename = "rawId")]
    raw_id: String,
    #[serde(rename = "type")]
    kind: String,
    response: AssertionResponse,
}

#[derive(Deserialize)]
struct AssertionResponse {
    #[serde(rename = "clientDataJSON")]
    client_data_json: String,
    #[serde(rename = "authenticatorData")]
    authenticator_data: String,
    signature: String,
    #[serde(rename = "userHandle", default)]
    user_handle: Option<String>,
}

#[derive(Deserialize)]
struct ClientData {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
    origin: String,
    #[serde(rename = "tokenBinding", default)]
    token_binding: Option<TokenBinding>,
}

#[derive(Deserialize)]
struct TokenBinding {
    #[serde(default)]
    status: String,
}

/// The credential id of a response (`rawId`, which must equal `id`).
fn credential_id(id: &str, raw_id: &str, kind: &str) -> Result<Vec<u8>, Failure> {
    if kind != "public-key" {
        return Err(Failure::Malformed("type must be public-key"));
    }
    let raw = decode_url(raw_id).ok_or(Failure::Malformed("rawId is not base64url"))?;
    if raw.is_empty() || decode_url(id).as_deref() != Some(raw.as_slice()) {
        return Err(Failure::Malformed("id and rawId differ"));
    }
    Ok(raw)
}

/// Steps 7.1.5-10 / 7.2.10-14: the collected client data.
fn check_client_data(
    rp: &RelyingParty<'_>,
    session: &SessionData,
    raw: &[u8],
    ceremony: &str,
) -> Result<(), Failure> {
    let data: ClientData = serde_json::from_slice(raw)
        .map_err(|_| Failure::Malformed("clientDataJSON is not JSON"))?;
    if data.kind != ceremony {
        return Err(Failure::Rejected(
            "clientDataJSON.type is not this ceremony's",
        ));
    }
    if !crate::auth::secure_eq(data.challenge.as_bytes(), session.challenge.as_bytes()) {
        return Err(Failure::Rejected("the challenge does not match"));
    }
    if !origin_allowed(&data.origin, rp.origins) {
        return Err(Failure::Rejected(
            "the origin is not one of GOTRUE_WEBAUTHN_RP_ORIGINS",
        ));
    }
    if let Some(binding) = data.token_binding {
        if !matches!(
            binding.status.as_str(),
            "present" | "supported" | "not-supported"
        ) {
            return Err(Failure::Malformed("tokenBinding has an invalid status"));
        }
    }
    Ok(())
}

/// go-webauthn's `IsOriginInHaystack`: URLs compare by scheme, host and port; anything else
/// (e.g. `android:apk-key-hash:...`) must be equal.
fn origin_allowed(origin: &str, allowed: &[String]) -> bool {
    let parse = |s: &str| {
        url::Url::parse(s)
            .ok()
            .filter(|u| u.host_str().is_some())
            .map(|u| {
                (
                    u.scheme().to_ascii_lowercase(),
                    u.host_str().unwrap_or("").to_ascii_lowercase(),
                    u.port_or_known_default(),
                )
            })
    };
    match parse(origin) {
        Some(o) => allowed.iter().any(|a| parse(a).as_ref() == Some(&o)),
        None => allowed.iter().any(|a| a == origin),
    }
}

/// Parsed authenticator data (WebAuthn 6.1).
struct AuthData {
    rp_id_hash: [u8; 32],
    flags: u8,
    counter: u32,
    attested: Option<AttestedCredential>,
}

struct AttestedCredential {
    aaguid: Vec<u8>,
    id: Vec<u8>,
    /// The COSE key exactly as the authenticator encoded it.
    public_key: Vec<u8>,
}

fn parse_auth_data(raw: &[u8]) -> Result<AuthData, Failure> {
    let bad = Failure::Malformed("authenticatorData is malformed");
    if raw.len() < 37 {
        return Err(bad);
    }
    let mut rp_id_hash = [0u8; 32];
    rp_id_hash.copy_from_slice(&raw[..32]);
    let flags = raw[32];
    let counter = u32::from_be_bytes([raw[33], raw[34], raw[35], raw[36]]);
    let mut rest = &raw[37..];
    let attested = if flags & FLAG_AT != 0 {
        if rest.len() < 18 {
            return Err(bad);
        }
        let aaguid = rest[..16].to_vec();
        let id_len = u16::from_be_bytes([rest[16], rest[17]]) as usize;
        rest = &rest[18..];
        if id_len == 0 || id_len > MAX_CREDENTIAL_ID || rest.len() < id_len {
            return Err(bad);
        }
        let id = rest[..id_len].to_vec();
        rest = &rest[id_len..];
        let before = rest.len();
        let _: Value = ciborium::de::from_reader(&mut rest).map_err(|_| bad)?;
        let used = before - rest.len();
        let start = raw.len() - before;
        Some(AttestedCredential {
            aaguid,
            id,
            public_key: raw[start..start + used].to_vec(),
        })
    } else {
        None
    };
    if flags & FLAG_ED != 0 {
        if rest.is_empty() {
            return Err(Failure::Malformed("authenticatorData is malformed"));
        }
        let _: Value = ciborium::de::from_reader(&mut rest)
            .map_err(|_| Failure::Malformed("authenticatorData is malformed"))?;
    }
    if !rest.is_empty() {
        return Err(Failure::Malformed("authenticatorData is malformed"));
    }
    Ok(AuthData {
        rp_id_hash,
        flags,
        counter,
        attested,
    })
}

/// Steps 7.1.13-16 / 7.2.15-17 and the backup flags' consistency.
fn check_auth_data(
    rp: &RelyingParty<'_>,
    session: &SessionData,
    auth: &AuthData,
) -> Result<(), Failure> {
    let expected: [u8; 32] = Sha256::digest(rp.id.as_bytes()).into();
    if auth.rp_id_hash != expected {
        return Err(Failure::Rejected(
            "the rp id hash is not GOTRUE_WEBAUTHN_RP_ID's",
        ));
    }
    if auth.flags & FLAG_UP == 0 {
        return Err(Failure::Rejected("the user-present flag is not set"));
    }
    if session.user_verification == "required" && auth.flags & FLAG_UV == 0 {
        return Err(Failure::Rejected("the user-verified flag is not set"));
    }
    if auth.flags & FLAG_BE == 0 && auth.flags & FLAG_BS != 0 {
        return Err(Failure::Rejected(
            "backup state is set without backup eligibility",
        ));
    }
    Ok(())
}

fn cbor_int(v: &Value) -> Option<i128> {
    match v {
        Value::Integer(i) => Some(i128::from(*i)),
        _ => None,
    }
}

fn map_get(map: &[(Value, Value)], key: i128) -> Option<&Value> {
    map.iter()
        .find(|(k, _)| cbor_int(k) == Some(key))
        .map(|(_, v)| v)
}

fn text_get<'a>(map: &'a [(Value, Value)], key: &str) -> Option<&'a Value> {
    map.iter()
        .find(|(k, _)| matches!(k, Value::Text(t) if t == key))
        .map(|(_, v)| v)
}

fn bytes_of(v: Option<&Value>) -> Option<&[u8]> {
    match v {
        Some(Value::Bytes(b)) => Some(b),
        _ => None,
    }
}

/// A COSE public key (RFC 9053) this relying party can verify with.
enum PublicKey {
    Ec {
        alg: &'static signature::EcdsaVerificationAlgorithm,
        point: Vec<u8>,
    },
    Rsa {
        alg: &'static signature::RsaParameters,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ed25519(Vec<u8>),
}

/// The key's COSE algorithm and the key.
fn parse_cose_key(raw: &[u8]) -> Result<(i64, PublicKey), Failure> {
    let bad = Failure::Rejected("the credential public key is not a supported COSE key");
    let value: Value = ciborium::de::from_reader(raw).map_err(|_| bad)?;
    let Value::Map(map) = value else {
        return Err(Failure::Rejected(
            "the credential public key is not a supported COSE key",
        ));
    };
    let kty = map_get(&map, 1).and_then(cbor_int);
    let alg = map_get(&map, 3)
        .and_then(cbor_int)
        .and_then(|a| i64::try_from(a).ok())
        .ok_or(Failure::Rejected(
            "the credential public key has no algorithm",
        ))?;
    let crv = map_get(&map, -1).and_then(cbor_int);
    let key = match (kty, alg) {
        (Some(2), -7 | -35) => {
            let (want_crv, size, ring_alg) = if alg == -7 {
                (1, 32, &signature::ECDSA_P256_SHA256_ASN1)
            } else {
                (2, 48, &signature::ECDSA_P384_SHA384_ASN1)
            };
            let x = bytes_of(map_get(&map, -2));
            let y = bytes_of(map_get(&map, -3));
            match (crv, x, y) {
                (Some(c), Some(x), Some(y))
                    if c == want_crv && x.len() == size && y.len() == size =>
                {
                    let mut point = vec![0x04];
                    point.extend_from_slice(x);
                    point.extend_from_slice(y);
                    PublicKey::Ec {
                        alg: ring_alg,
                        point,
                    }
                }
                _ => return Err(bad),
            }
        }
        (Some(3), -257 | -258 | -259 | -37 | -38 | -39) => {
            let ring_alg: &'static signature::RsaParameters = match alg {
                -257 => &signature::RSA_PKCS1_2048_8192_SHA256,
                -258 => &signature::RSA_PKCS1_2048_8192_SHA384,
                -259 => &signature::RSA_PKCS1_2048_8192_SHA512,
                -37 => &signature::RSA_PSS_2048_8192_SHA256,
                -38 => &signature::RSA_PSS_2048_8192_SHA384,
                _ => &signature::RSA_PSS_2048_8192_SHA512,
            };
            match (bytes_of(map_get(&map, -1)), bytes_of(map_get(&map, -2))) {
                (Some(n), Some(e)) => PublicKey::Rsa {
                    alg: ring_alg,
                    n: n.to_vec(),
                    e: e.to_vec(),
                },
                _ => return Err(bad),
            }
        }
        (Some(1), -8) => match (crv, bytes_of(map_get(&map, -2))) {
            (Some(6), Some(x)) if x.len() == 32 => PublicKey::Ed25519(x.to_vec()),
            _ => return Err(bad),
        },
        _ => return Err(bad),
    };
    Ok((alg, key))
}

fn verify_signature(key: &PublicKey, message: &[u8], sig: &[u8]) -> Result<(), Failure> {
    let ok = match key {
        PublicKey::Ec { alg, point } => signature::UnparsedPublicKey::new(*alg, point)
            .verify(message, sig)
            .is_ok(),
        PublicKey::Rsa { alg, n, e } => signature::RsaPublicKeyComponents { n, e }
            .verify(alg, message, sig)
            .is_ok(),
        PublicKey::Ed25519(x) => signature::UnparsedPublicKey::new(&signature::ED25519, x)
            .verify(message, sig)
            .is_ok(),
    };
    if ok {
        Ok(())
    } else {
        Err(Failure::Rejected("the signature does not verify"))
    }
}

/// `CreateCredential` (WebAuthn 7.1): checks a `create` response against the session and
/// returns the credential record to store.
pub fn finish_registration(
    rp: &RelyingParty<'_>,
    session: &SessionData,
    response: &serde_json::Value,
) -> Result<Credential, Failure> {
    if !session.is_registration() {
        return Err(Failure::Rejected(
            "the challenge is not a registration challenge",
        ));
    }
    if session.expired() {
        return Err(Failure::Rejected("the session has expired"));
    }
    let parsed: RegistrationResponse = serde_json::from_value(response.clone())
        .map_err(|_| Failure::Malformed("not a registration response"))?;
    let id = credential_id(&parsed.id, &parsed.raw_id, &parsed.kind)?;
    let client_data_json = decode_url(&parsed.response.client_data_json)
        .ok_or(Failure::Malformed("clientDataJSON is not base64url"))?;
    check_client_data(rp, session, &client_data_json, "webauthn.create")?;
    let client_data_hash: [u8; 32] = Sha256::digest(&client_data_json).into();
    let object_raw = decode_url(&parsed.response.attestation_object)
        .ok_or(Failure::Malformed("attestationObject is not base64url"))?;
    let object: Value = ciborium::de::from_reader(object_raw.as_slice())
        .map_err(|_| Failure::Malformed("attestationObject is not CBOR"))?;
    let Value::Map(object) = object else {
        return Err(Failure::Malformed("attestationObject is not a map"));
    };
    let format = match text_get(&object, "fmt") {
        Some(Value::Text(f)) => f.clone(),
        _ => return Err(Failure::Malformed("attestationObject has no fmt")),
    };
    let statement = match text_get(&object, "attStmt") {
        Some(Value::Map(m)) => m.clone(),
        _ => return Err(Failure::Malformed("attestationObject has no attStmt")),
    };
    let auth_raw = bytes_of(text_get(&object, "authData"))
        .ok_or(Failure::Malformed("attestationObject has no authData"))?
        .to_vec();
    let auth = parse_auth_data(&auth_raw)?;
    check_auth_data(rp, session, &auth)?;
    let attested = auth.attested.as_ref().ok_or(Failure::Rejected(
        "authenticatorData has no attested credential",
    ))?;
    if attested.id != id {
        return Err(Failure::Rejected("the attested credential id is not rawId"));
    }
    let (alg, key) = parse_cose_key(&attested.public_key)?;
    if !session.cred_params.iter().any(|p| p.alg == alg) {
        return Err(Failure::Rejected("the key's algorithm was not offered"));
    }
    match format.as_str() {
        "none" if statement.is_empty() => {}
        "none" => return Err(Failure::Rejected("attestation none carries a statement")),
        "packed" if text_get(&statement, "x5c").is_none() => {
            let stmt_alg = text_get(&statement, "alg").and_then(cbor_int);
            if stmt_alg != Some(i128::from(alg)) {
                return Err(Failure::Rejected(
                    "the self-attestation algorithm is not the key's",
                ));
            }
            let sig = bytes_of(text_get(&statement, "sig"))
                .ok_or(Failure::Malformed("the self-attestation has no signature"))?;
            let mut signed = auth_raw.clone();
            signed.extend_from_slice(&client_data_hash);
            verify_signature(&key, &signed, sig)?;
        }
        // No trust anchors: as attestation none (see the module documentation).
        _ => {}
    }
    Ok(Credential {
        id,
        public_key: attested.public_key.clone(),
        attestation_type: format,
        transport: parsed.response.transports,
        flags: CredentialFlags::from_bits(auth.flags),
        authenticator: Authenticator {
            aaguid: attested.aaguid.clone(),
            sign_count: auth.counter,
            clone_warning: false,
            attachment: parsed.attachment.unwrap_or_default(),
        },
        attestation: CredentialAttestation {
            client_data_json,
            client_data_hash: client_data_hash.to_vec(),
            authenticator_data: auth_raw,
            public_key_algorithm: parsed.response.public_key_algorithm.unwrap_or(alg),
            object: object_raw,
        },
    })
}

/// `ValidateLogin` (WebAuthn 7.2): checks a `request` response made with `credential` and
/// returns the credential with its new sign count and flags.
pub fn finish_login(
    rp: &RelyingParty<'_>,
    session: &SessionData,
    credential: &Credential,
    response: &serde_json::Value,
) -> Result<Credential, Failure> {
    if session.is_registration() {
        return Err(Failure::Rejected(
            "the challenge is a registration challenge",
        ));
    }
    if session.expired() {
        return Err(Failure::Rejected("the session has expired"));
    }
    let parsed: AssertionResponseJson = serde_json::from_value(response.clone())
        .map_err(|_| Failure::Malformed("not an assertion response"))?;
    let id = credential_id(&parsed.id, &parsed.raw_id, &parsed.kind)?;
    if id != credential.id {
        return Err(Failure::UnknownCredential);
    }
    if !session.allowed_credentials.is_empty() && !session.allowed_credentials.contains(&id) {
        return Err(Failure::Rejected(
            "the credential was not allowed by the challenge",
        ));
    }
    if let Some(handle) = parsed
        .response
        .user_handle
        .as_deref()
        .filter(|h| !h.is_empty())
    {
        let handle = decode_url(handle).ok_or(Failure::Malformed("userHandle is not base64url"))?;
        if !handle.is_empty() && handle != session.user_id {
            return Err(Failure::Rejected("the user handle is not this user's"));
        }
    }
    let client_data_json = decode_url(&parsed.response.client_data_json)
        .ok_or(Failure::Malformed("clientDataJSON is not base64url"))?;
    check_client_data(rp, session, &client_data_json, "webauthn.get")?;
    let auth_raw = decode_url(&parsed.response.authenticator_data)
        .ok_or(Failure::Malformed("authenticatorData is not base64url"))?;
    let auth = parse_auth_data(&auth_raw)?;
    check_auth_data(rp, session, &auth)?;
    let sig = decode_url(&parsed.response.signature)
        .ok_or(Failure::Malformed("signature is not base64url"))?;
    let (_, key) = parse_cose_key(&credential.public_key)?;
    let mut signed = auth_raw;
    signed.extend_from_slice(&Sha256::digest(&client_data_json));
    verify_signature(&key, &signed, &sig)?;
    let flags = CredentialFlags::from_bits(auth.flags);
    if flags.backup_eligible != credential.flags.backup_eligible {
        return Err(Failure::Rejected("the backup-eligible flag changed"));
    }
    let stored = credential.authenticator.sign_count;
    if (auth.counter != 0 || stored != 0) && auth.counter <= stored {
        return Err(Failure::Rejected(
            "the sign counter did not increase (cloned authenticator?)",
        ));
    }
    let mut updated = credential.clone();
    updated.flags = flags;
    updated.authenticator.sign_count = auth.counter;
    Ok(updated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_compare_by_scheme_host_and_port() {
        let allowed = vec![
            "https://app.example".to_string(),
            "http://localhost:3000".into(),
        ];
        assert!(origin_allowed("https://app.example", &allowed));
        assert!(origin_allowed("https://APP.example:443", &allowed));
        assert!(origin_allowed("http://localhost:3000", &allowed));
        assert!(!origin_allowed("http://localhost:3001", &allowed));
        assert!(!origin_allowed("http://app.example", &allowed));
        assert!(!origin_allowed("https://evil.example", &allowed));
        assert!(!origin_allowed("android:apk-key-hash:abc", &allowed));
    }

    #[test]
    fn session_data_reads_go_webauthn_json() {
        // A login session as go-webauthn v0.16 marshals it (GoTrue's column).
        let go = r#"{"challenge":"q83vEjRWeJA","rpId":"example.com","user_id":"AAEC","allowed_credentials":["AQID"],"expires":"0001-01-01T00:00:00Z","userVerification":""}"#;
        let s: SessionData = serde_json::from_str(go).unwrap();
        assert_eq!(s.user_id, vec![0, 1, 2]);
        assert_eq!(s.allowed_credentials, vec![vec![1, 2, 3]]);
        assert!(!s.is_registration() && !s.expired());
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back, serde_json::from_str::<serde_json::Value>(go).unwrap());
    }

    #[test]
    fn credential_round_trips_go_webauthn_json() {
        let go = r#"{"id":"AQID","publicKey":"pQECAyYgASFYIA==","attestationType":"none","transport":null,"flags":{"userPresent":true,"userVerified":false,"backupEligible":false,"backupState":false},"authenticator":{"AAGUID":"AAAAAAAAAAAAAAAAAAAAAA==","signCount":3,"cloneWarning":false,"attachment":""},"attestation":{"clientDataJSON":"","clientDataHash":"","authenticatorData":"","publicKeyAlgorithm":-7,"object":""}}"#;
        let c: Credential = serde_json::from_str(go).unwrap();
        assert_eq!(c.id, vec![1, 2, 3]);
        assert_eq!(c.authenticator.sign_count, 3);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::from_str::<serde_json::Value>(go).unwrap()
        );
    }

    #[test]
    fn auth_data_measures_the_cose_key() {
        // rpIdHash, flags UP|AT, counter 1, AAGUID, id length 2, id, a small COSE map, no
        // trailing bytes; one trailing byte is refused.
        let mut raw = vec![0u8; 32];
        raw.push(FLAG_UP | FLAG_AT);
        raw.extend_from_slice(&1u32.to_be_bytes());
        raw.extend_from_slice(&[0u8; 16]);
        raw.extend_from_slice(&[0, 2, 9, 9]);
        let key = [0xa1, 0x01, 0x02]; // {1: 2}
        raw.extend_from_slice(&key);
        let parsed = parse_auth_data(&raw).unwrap();
        let attested = parsed.attested.unwrap();
        assert_eq!(attested.id, vec![9, 9]);
        assert_eq!(attested.public_key, key.to_vec());
        raw.push(0);
        assert!(parse_auth_data(&raw).is_err());
    }
}
