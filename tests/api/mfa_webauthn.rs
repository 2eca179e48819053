//! WebAuthn MFA factors over HTTP, driven by a software authenticator written here (P-256
//! ECDSA keys, attestation `none`, CBOR attestation objects and COSE keys built by hand):
//! enrolment, the registration challenge and its verification (aal2), assertions, and what a
//! relying party must refuse (wrong origin, rp id, signature, flags, counter, replayed and
//! expired challenges, another credential, another user's factor, switches off).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ciborium::Value as Cbor;
use p256::ecdsa::signature::Signer;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::support::{expect_error, expect_json, TestApp};

const PASSWORD: &str = "secret123";
const RP_ID: &str = "localhost";
const ORIGIN: &str = "http://localhost:3000";

fn app() -> TestApp {
    webauthn_app(&[])
}

fn webauthn_app(extra: &[(&str, &str)]) -> TestApp {
    let mut b = TestApp::builder()
        .env("GOTRUE_MFA_WEB_AUTHN_ENROLL_ENABLED", "true")
        .env("GOTRUE_MFA_WEB_AUTHN_VERIFY_ENABLED", "true")
        .env("GOTRUE_WEBAUTHN_RP_ID", RP_ID)
        .env("GOTRUE_WEBAUTHN_RP_DISPLAY_NAME", "weauth tests")
        .env("GOTRUE_WEBAUTHN_RP_ORIGINS", ORIGIN);
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.spawn()
}

fn b64url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn int(i: i64) -> Cbor {
    Cbor::Integer(i.into())
}

fn cbor(v: &Cbor) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).unwrap();
    out
}

/// A software authenticator: one P-256 credential, a sign counter, and knobs to misbehave.
struct SoftAuthenticator {
    key: p256::ecdsa::SigningKey,
    id: Vec<u8>,
    counter: u32,
    rp_id: String,
    origin: String,
    flags: u8,
}

impl SoftAuthenticator {
    fn new() -> SoftAuthenticator {
        use rand::RngCore;
        let mut id = vec![0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id);
        SoftAuthenticator {
            key: p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng),
            id,
            counter: 0,
            rp_id: RP_ID.into(),
            origin: ORIGIN.into(),
            flags: 0x01 | 0x04, // UP, UV
        }
    }

    /// The COSE_Key of the credential (EC2, ES256, P-256), CTAP2 canonical order.
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.verifying_key().to_encoded_point(false);
        cbor(&Cbor::Map(vec![
            (int(1), int(2)),
            (int(3), int(-7)),
            (int(-1), int(1)),
            (int(-2), Cbor::Bytes(point.x().unwrap().to_vec())),
            (int(-3), Cbor::Bytes(point.y().unwrap().to_vec())),
        ]))
    }

    fn auth_data(&self, attested: bool) -> Vec<u8> {
        let mut data = Sha256::digest(self.rp_id.as_bytes()).to_vec();
        data.push(self.flags | if attested { 0x40 } else { 0 });
        data.extend_from_slice(&self.counter.to_be_bytes());
        if attested {
            data.extend_from_slice(&[0u8; 16]); // AAGUID: none
            data.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            data.extend_from_slice(&self.id);
            data.extend_from_slice(&self.cose_key());
        }
        data
    }

    fn client_data(&self, kind: &str, challenge: &str) -> Vec<u8> {
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": false})
            .to_string()
            .into_bytes()
    }

    /// `navigator.credentials.create` with attestation `none`, serialised as auth-js does.
    fn create(&mut self, options: &Value) -> Value {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        let client_data = self.client_data("webauthn.create", challenge);
        let object = cbor(&Cbor::Map(vec![
            (Cbor::Text("fmt".into()), Cbor::Text("none".into())),
            (Cbor::Text("attStmt".into()), Cbor::Map(vec![])),
            (
                Cbor::Text("authData".into()),
                Cbor::Bytes(self.auth_data(true)),
            ),
        ]));
        json!({
            "id": b64url(&self.id),
            "rawId": b64url(&self.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(&client_data),
                "attestationObject": b64url(&object),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        })
    }

    /// `navigator.credentials.get`: the counter goes up first.
    fn get(&mut self, options: &Value, user_handle: Option<&[u8]>) -> Value {
        self.counter += 1;
        self.assert_now(options, user_handle)
    }

    /// An assertion with the current counter (no increment).
    fn assert_now(&self, options: &Value, user_handle: Option<&[u8]>) -> Value {
        let challenge = options["publicKey"]["challenge"].as_str().unwrap();
        let client_data = self.client_data("webauthn.get", challenge);
        let auth_data = self.auth_data(false);
        let mut signed = auth_data.clone();
        signed.extend_from_slice(&Sha256::digest(&client_data));
        let sig: p256::ecdsa::Signature = self.key.sign(&signed);
        json!({
            "id": b64url(&self.id),
            "rawId": b64url(&self.id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(&client_data),
                "authenticatorData": b64url(&auth_data),
                "signature": b64url(sig.to_der().as_bytes()),
                "userHandle": user_handle.map(b64url),
            },
            "clientExtensionResults": {},
        })
    }
}

/// What a misbehaving authenticator changes before it answers.
type Spoil = fn(&mut SoftAuthenticator);

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn amr_methods(token: &str) -> Vec<String> {
    claims(token)["amr"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["method"].as_str().unwrap().to_string())
        .collect()
}

fn access(session: &Value) -> &str {
    session["access_token"].as_str().unwrap()
}

async fn call(app: &TestApp, path: &str, token: &str, body: Value) -> reqwest::Response {
    app.client
        .request(Method::POST, app.url(path))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn enroll(app: &TestApp, token: &str, name: &str) -> reqwest::Response {
    call(
        app,
        "/auth/v1/factors",
        token,
        json!({"factor_type": "webauthn", "friendly_name": name}),
    )
    .await
}

/// The challenge body auth-js's `mfa.webauthn.challenge` sends (rpId/rpOrigins are ignored).
async fn challenge(app: &TestApp, token: &str, factor: &str) -> reqwest::Response {
    call(
        app,
        &format!("/auth/v1/factors/{factor}/challenge"),
        token,
        json!({"factorId": factor, "webauthn": {"rpId": "evil.example", "rpOrigins": ["https://evil.example"]}}),
    )
    .await
}

async fn verify(
    app: &TestApp,
    token: &str,
    factor: &str,
    challenge_id: &str,
    kind: &str,
    response: Value,
) -> reqwest::Response {
    call(
        app,
        &format!("/auth/v1/factors/{factor}/verify"),
        token,
        json!({"challenge_id": challenge_id, "webauthn": {
            "type": kind, "rpId": RP_ID, "rpOrigins": [ORIGIN], "credential_response": response}}),
    )
    .await
}

/// Challenges `factor`, lets `authenticator` answer, verifies; the verify response.
async fn ceremony(
    app: &TestApp,
    token: &str,
    factor: &str,
    authenticator: &mut SoftAuthenticator,
) -> reqwest::Response {
    let c = expect_json(challenge(app, token, factor).await, 200).await;
    let options = &c["webauthn"]["credential_options"];
    let (kind, response) = match c["webauthn"]["type"].as_str().unwrap() {
        "create" => ("create", authenticator.create(options)),
        _ => ("request", authenticator.get(options, None)),
    };
    verify(
        app,
        token,
        factor,
        c["id"].as_str().unwrap(),
        kind,
        response,
    )
    .await
}

/// A signed-up user with a registered WebAuthn factor: (aal2 session, factor id).
async fn user_with_factor(
    app: &TestApp,
    email: &str,
    authenticator: &mut SoftAuthenticator,
) -> (Value, String) {
    let session = app.signup_email(email, PASSWORD).await;
    let enrolled = expect_json(enroll(app, access(&session), "key").await, 200).await;
    let factor = enrolled["id"].as_str().unwrap().to_string();
    let aal2 = expect_json(
        ceremony(app, access(&session), &factor, authenticator).await,
        200,
    )
    .await;
    (aal2, factor)
}

async fn sign_in(app: &TestApp, email: &str) -> Value {
    expect_json(
        app.post(
            "/auth/v1/token?grant_type=password",
            json!({"email": email, "password": PASSWORD}),
        )
        .await,
        200,
    )
    .await
}

#[tokio::test]
async fn webauthn_registration_then_assertion_give_aal2() {
    let app = app();
    let session = app.signup_email("wa@example.com", PASSWORD).await;
    let token = access(&session);
    let user_id = session["user"]["id"].as_str().unwrap().to_string();

    let enrolled = expect_json(enroll(&app, token, "YubiKey").await, 200).await;
    let factor = enrolled["id"].as_str().unwrap();
    assert_eq!(
        enrolled,
        json!({"id": factor, "type": "webauthn", "friendly_name": "YubiKey"})
    );

    // The registration challenge: go-webauthn's creation options.
    let c = expect_json(challenge(&app, token, factor).await, 200).await;
    assert_eq!(c["type"], "webauthn");
    assert_eq!(c["webauthn"]["type"], "create");
    let now = chrono::Utc::now().timestamp();
    let expires_at = c["expires_at"].as_i64().unwrap();
    assert!((now + 295..=now + 305).contains(&expires_at), "{c}");
    let pk = &c["webauthn"]["credential_options"]["publicKey"];
    assert_eq!(
        pk["rp"],
        json!({"id": RP_ID, "name": "weauth tests"}),
        "the configured rp, not the body's"
    );
    assert_eq!(
        pk["user"],
        json!({"id": b64url(user_id.as_bytes()), "name": "wa@example.com", "displayName": "wa@example.com"})
    );
    assert_eq!(
        pk["pubKeyCredParams"][0],
        json!({"type": "public-key", "alg": -7})
    );
    assert_eq!(pk["timeout"], 300000);
    assert_eq!(pk["challenge"].as_str().unwrap().len(), 43, "32 bytes");
    assert!(pk.get("excludeCredentials").is_none());
    // The session is stored in go-webauthn's SessionData layout.
    let stored_session = app.db.scalar(&format!(
        "SELECT count(*) FROM auth.mfa_challenges WHERE factor_id = '{factor}'
           AND web_authn_session_data->>'challenge' = '{}'
           AND web_authn_session_data->>'rpId' = 'localhost'
           AND web_authn_session_data->>'user_id' = '{}'
           AND jsonb_array_length(web_authn_session_data->'credParams') = 9",
        pk["challenge"].as_str().unwrap(),
        STANDARD.encode(user_id.as_bytes()),
    ));
    assert_eq!(stored_session, 1);

    let mut key = SoftAuthenticator::new();
    let response = key.create(&c["webauthn"]["credential_options"]);
    let challenge_id = c["id"].as_str().unwrap();
    let verified = expect_json(
        verify(
            &app,
            token,
            factor,
            challenge_id,
            "create",
            response.clone(),
        )
        .await,
        200,
    )
    .await;
    let aal2 = access(&verified);
    assert_eq!(claims(aal2)["aal"], "aal2");
    assert_eq!(amr_methods(aal2), ["mfa/webauthn", "password"]);
    assert_eq!(claims(aal2)["session_id"], claims(token)["session_id"]);
    let listed = &verified["user"]["factors"][0];
    assert_eq!(listed["status"], "verified");
    assert_eq!(listed["factor_type"], "webauthn");
    assert_eq!(
        listed["web_authn_aaguid"],
        "00000000-0000-0000-0000-000000000000"
    );
    assert_eq!(listed["last_webauthn_challenge_data"]["type"], "create");
    assert_eq!(
        listed["last_webauthn_challenge_data"]["challenge"]["challenge_id"],
        challenge_id
    );
    assert!(listed.get("web_authn_credential").is_none(), "never listed");
    // The credential in go-webauthn's Credential layout (standard base64 byte fields).
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM auth.mfa_factors WHERE id = '{factor}'
               AND web_authn_credential->>'id' = '{}'
               AND web_authn_credential->>'publicKey' = '{}'
               AND web_authn_credential->>'attestationType' = 'none'
               AND web_authn_credential->'transport' = '[\"internal\"]'
               AND (web_authn_credential->'flags'->>'userPresent')::bool
               AND (web_authn_credential->'authenticator'->>'signCount')::int = 0
               AND web_authn_credential->'authenticator'->>'attachment' = 'platform'
               AND web_authn_credential->'attestation'->>'publicKeyAlgorithm' = '-7'",
            STANDARD.encode(&key.id),
            STANDARD.encode(key.cose_key()),
        )),
        1
    );

    // The challenge was used: a replay is GoTrue's "not found".
    expect_error(
        verify(&app, token, factor, challenge_id, "create", response).await,
        422,
        "mfa_factor_not_found",
    )
    .await;

    // A new sign-in is aal1; an assertion raises it.
    let again = sign_in(&app, "wa@example.com").await;
    let token2 = access(&again);
    assert_eq!(claims(token2)["aal"], "aal1");
    let c = expect_json(challenge(&app, token2, factor).await, 200).await;
    assert_eq!(c["webauthn"]["type"], "request");
    let pk = &c["webauthn"]["credential_options"]["publicKey"];
    assert_eq!(pk["rpId"], RP_ID);
    assert_eq!(
        pk["allowCredentials"],
        json!([{"type": "public-key", "id": b64url(&key.id), "transports": ["internal"]}])
    );
    let response = key.get(
        &c["webauthn"]["credential_options"],
        Some(user_id.as_bytes()),
    );
    let verified = expect_json(
        verify(
            &app,
            token2,
            factor,
            c["id"].as_str().unwrap(),
            "request",
            response,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(claims(access(&verified))["aal"], "aal2");
    assert_eq!(amr_methods(access(&verified))[0], "mfa/webauthn");
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT (web_authn_credential->'authenticator'->>'signCount')::int8 FROM auth.mfa_factors WHERE id = '{factor}'"
        )),
        1,
        "the new sign count is stored"
    );

    // A counter that does not go up (a cloned authenticator) is refused.
    let c = expect_json(challenge(&app, token2, factor).await, 200).await;
    let stale = key.assert_now(&c["webauthn"]["credential_options"], None);
    expect_error(
        verify(
            &app,
            token2,
            factor,
            c["id"].as_str().unwrap(),
            "request",
            stale,
        )
        .await,
        400,
        "webauthn_verification_failed",
    )
    .await;
    // Still works with a fresh counter.
    expect_json(ceremony(&app, token2, factor, &mut key).await, 200).await;
}

#[tokio::test]
async fn webauthn_refuses_what_a_relying_party_must() {
    let app = app();
    let session = app.signup_email("checks@example.com", PASSWORD).await;
    let token = access(&session);
    let enrolled = expect_json(enroll(&app, token, "key").await, 200).await;
    let factor = enrolled["id"].as_str().unwrap();

    // Each bad registration is refused and spends its challenge.
    let bad_create: [(&str, Spoil); 4] = [
        ("wrong origin", |a| a.origin = "https://evil.example".into()),
        ("origin on another port", |a| {
            a.origin = "http://localhost:3001".into()
        }),
        ("rp id hash of another site", |a| {
            a.rp_id = "evil.example".into()
        }),
        ("no user presence", |a| a.flags = 0x04),
    ];
    for (what, spoil) in bad_create {
        let c = expect_json(challenge(&app, token, factor).await, 200).await;
        let mut key = SoftAuthenticator::new();
        spoil(&mut key);
        let response = key.create(&c["webauthn"]["credential_options"]);
        let res = verify(
            &app,
            token,
            factor,
            c["id"].as_str().unwrap(),
            "create",
            response,
        )
        .await;
        let body = expect_error(res, 400, "webauthn_verification_failed").await;
        assert_eq!(app.db.count("auth.mfa_challenges"), 0, "{what}: {body}");
    }
    // A response to another challenge.
    let c1 = expect_json(challenge(&app, token, factor).await, 200).await;
    let c2 = expect_json(challenge(&app, token, factor).await, 200).await;
    let mut key = SoftAuthenticator::new();
    let response = key.create(&c1["webauthn"]["credential_options"]);
    expect_error(
        verify(
            &app,
            token,
            factor,
            c2["id"].as_str().unwrap(),
            "create",
            response,
        )
        .await,
        400,
        "webauthn_verification_failed",
    )
    .await;
    // Shapes GoTrue refuses before looking at the challenge.
    let c = expect_json(challenge(&app, token, factor).await, 200).await;
    let id = c["id"].as_str().unwrap();
    let path = format!("/auth/v1/factors/{factor}/verify");
    for body in [
        json!({"challenge_id": id}),
        json!({"challenge_id": id, "webauthn": {"type": "sign"}}),
        json!({"challenge_id": id, "webauthn": {"type": "create"}}),
    ] {
        expect_error(
            call(&app, &path, token, body).await,
            400,
            "validation_failed",
        )
        .await;
    }
    // A credential_response that is not one.
    expect_error(
        verify(&app, token, factor, id, "create", json!({"id": "x"})).await,
        400,
        "validation_failed",
    )
    .await;
    // An expired challenge is deleted (GOTRUE_MFA_CHALLENGE_EXPIRY_DURATION).
    app.db.execute("DELETE FROM auth.mfa_challenges");
    let c = expect_json(challenge(&app, token, factor).await, 200).await;
    let id = c["id"].as_str().unwrap();
    app.db.execute(&format!(
        "UPDATE auth.mfa_challenges SET created_at = now() - interval '301 seconds' WHERE id = '{id}'"
    ));
    let response = key.create(&c["webauthn"]["credential_options"]);
    expect_error(
        verify(&app, token, factor, id, "create", response).await,
        422,
        "mfa_challenge_expired",
    )
    .await;
    assert_eq!(app.db.count("auth.mfa_challenges"), 0);
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM auth.mfa_factors WHERE status = 'verified'"),
        0
    );

    // Registered, the factor refuses assertions that fail a check.
    let mut key = SoftAuthenticator::new();
    expect_json(ceremony(&app, token, factor, &mut key).await, 200).await;
    let c = expect_json(challenge(&app, token, factor).await, 200).await;
    let mut response = key.get(&c["webauthn"]["credential_options"], None);
    let sig = response["response"]["signature"].as_str().unwrap();
    let mut raw = URL_SAFE_NO_PAD.decode(sig).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0x01;
    response["response"]["signature"] = json!(b64url(&raw));
    expect_error(
        verify(
            &app,
            token,
            factor,
            c["id"].as_str().unwrap(),
            "request",
            response,
        )
        .await,
        400,
        "webauthn_verification_failed",
    )
    .await;
    // Another user handle.
    let c = expect_json(challenge(&app, token, factor).await, 200).await;
    let response = key.get(&c["webauthn"]["credential_options"], Some(b"someone else"));
    expect_error(
        verify(
            &app,
            token,
            factor,
            c["id"].as_str().unwrap(),
            "request",
            response,
        )
        .await,
        400,
        "webauthn_verification_failed",
    )
    .await;
    // Another authenticator's credential.
    let c = expect_json(challenge(&app, token, factor).await, 200).await;
    let mut other = SoftAuthenticator::new();
    let response = other.get(&c["webauthn"]["credential_options"], None);
    expect_error(
        verify(
            &app,
            token,
            factor,
            c["id"].as_str().unwrap(),
            "request",
            response,
        )
        .await,
        400,
        "webauthn_credential_not_found",
    )
    .await;
    // A registration response to an assertion challenge.
    let c = expect_json(challenge(&app, token, factor).await, 200).await;
    let response = other.create(&json!({"publicKey": {"challenge": c["webauthn"]["credential_options"]["publicKey"]["challenge"]}}));
    expect_error(
        verify(
            &app,
            token,
            factor,
            c["id"].as_str().unwrap(),
            "create",
            response,
        )
        .await,
        400,
        "webauthn_verification_failed",
    )
    .await;
    // And the right one still passes.
    expect_json(ceremony(&app, token, factor, &mut key).await, 200).await;
}

#[tokio::test]
async fn another_users_factor_and_credential() {
    let app = app();
    let mut key = SoftAuthenticator::new();
    let (_, factor) = user_with_factor(&app, "owner@example.com", &mut key).await;
    let intruder = app.signup_email("intruder@example.com", PASSWORD).await;
    let token = access(&intruder);
    expect_error(
        challenge(&app, token, &factor).await,
        404,
        "mfa_factor_not_found",
    )
    .await;
    expect_error(
        verify(
            &app,
            token,
            &factor,
            &uuid::Uuid::new_v4().to_string(),
            "request",
            json!({}),
        )
        .await,
        404,
        "mfa_factor_not_found",
    )
    .await;

    // The same authenticator credential cannot be registered to a second factor.
    let enrolled = expect_json(enroll(&app, token, "stolen").await, 200).await;
    let theirs = enrolled["id"].as_str().unwrap();
    expect_error(
        ceremony(&app, token, theirs, &mut key).await,
        422,
        "webauthn_credential_exists",
    )
    .await;
    // The owner's other factors exclude it at registration.
    let owner = sign_in(&app, "owner@example.com").await;
    let owner_aal2 =
        expect_json(ceremony(&app, access(&owner), &factor, &mut key).await, 200).await;
    let second = expect_json(enroll(&app, access(&owner_aal2), "second").await, 200).await;
    let c = expect_json(
        challenge(&app, access(&owner_aal2), second["id"].as_str().unwrap()).await,
        200,
    )
    .await;
    assert_eq!(
        c["webauthn"]["credential_options"]["publicKey"]["excludeCredentials"],
        json!([{"type": "public-key", "id": b64url(&key.id), "transports": ["usb", "nfc"]}])
    );
}

#[tokio::test]
async fn a_credential_gotrue_stored_verifies_here() {
    // A verified factor as GoTrue writes it: go-webauthn's Credential JSON, Go's nulls.
    let app = app();
    let session = app.signup_email("moved@example.com", PASSWORD).await;
    let user_id = session["user"]["id"].as_str().unwrap();
    let mut key = SoftAuthenticator::new();
    key.counter = 7;
    let credential = json!({
        "id": STANDARD.encode(&key.id),
        "publicKey": STANDARD.encode(key.cose_key()),
        "attestationType": "none",
        "transport": null,
        "flags": {"userPresent": true, "userVerified": true, "backupEligible": false, "backupState": false},
        "authenticator": {"AAGUID": STANDARD.encode([0u8; 16]), "signCount": 7, "cloneWarning": false, "attachment": "cross-platform"},
        "attestation": {"clientDataJSON": "", "clientDataHash": "", "authenticatorData": "", "publicKeyAlgorithm": -7, "object": ""},
    });
    let factor = uuid::Uuid::new_v4();
    app.db.execute(&format!(
        "INSERT INTO auth.mfa_factors (id, user_id, friendly_name, factor_type, status, created_at, updated_at, web_authn_credential, web_authn_aaguid)
         VALUES ('{factor}', '{user_id}', 'from gotrue', 'webauthn', 'verified', now(), now(), '{credential}', '00000000-0000-0000-0000-000000000000')"
    ));
    let token = sign_in(&app, "moved@example.com").await;
    let verified = expect_json(
        ceremony(&app, access(&token), &factor.to_string(), &mut key).await,
        200,
    )
    .await;
    assert_eq!(claims(access(&verified))["aal"], "aal2");
    // The other fields GoTrue wrote are kept; the count moved on.
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM auth.mfa_factors WHERE id = '{factor}'
               AND web_authn_credential->'authenticator'->>'attachment' = 'cross-platform'
               AND (web_authn_credential->'authenticator'->>'signCount')::int = 8"
        )),
        1
    );
}

#[tokio::test]
async fn webauthn_switches_and_relying_party_config() {
    // Off by default (tests/api/mfa.rs checks enrolment); verification off on its own.
    let app = TestApp::builder()
        .env("GOTRUE_MFA_WEB_AUTHN_ENROLL_ENABLED", "true")
        .env("GOTRUE_WEBAUTHN_RP_ID", RP_ID)
        .env("GOTRUE_WEBAUTHN_RP_DISPLAY_NAME", "weauth tests")
        .env("GOTRUE_WEBAUTHN_RP_ORIGINS", ORIGIN)
        .spawn();
    let session = app.signup_email("half@example.com", PASSWORD).await;
    let token = access(&session);
    let enrolled = expect_json(enroll(&app, token, "key").await, 200).await;
    let factor = enrolled["id"].as_str().unwrap();
    expect_error(
        challenge(&app, token, factor).await,
        422,
        "mfa_webauthn_verify_not_enabled",
    )
    .await;
    expect_error(
        verify(
            &app,
            token,
            factor,
            &uuid::Uuid::new_v4().to_string(),
            "create",
            json!({}),
        )
        .await,
        422,
        "mfa_webauthn_verify_not_enabled",
    )
    .await;

    // Switched on without a relying party, weauth does not start.
    let base = [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        ("GOTRUE_JWT_SECRET", "a-test-secret-that-is-long-enough-123"),
        ("GOTRUE_MFA_WEB_AUTHN_VERIFY_ENABLED", "true"),
    ];
    let read = |extra: &[(&'static str, &'static str)]| {
        let vars: std::collections::HashMap<&str, &str> =
            base.iter().chain(extra.iter()).copied().collect();
        weauth::config::Config::from_lookup(&move |name| vars.get(name).map(|v| v.to_string()))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let err = read(&[]).unwrap_err();
    assert!(err.contains("GOTRUE_WEBAUTHN_RP_ID"), "{err}");
    let err = read(&[
        ("GOTRUE_WEBAUTHN_RP_ID", "example.com"),
        ("GOTRUE_WEBAUTHN_RP_DISPLAY_NAME", "Example"),
        ("GOTRUE_WEBAUTHN_RP_ORIGINS", "example.com"),
    ])
    .unwrap_err();
    assert!(err.contains("GOTRUE_WEBAUTHN_RP_ORIGINS"), "{err}");
    read(&[
        ("GOTRUE_WEBAUTHN_RP_ID", "example.com"),
        ("GOTRUE_WEBAUTHN_RP_DISPLAY_NAME", "Example"),
        (
            "GOTRUE_WEBAUTHN_RP_ORIGINS",
            "https://example.com,https://app.example.com",
        ),
    ])
    .unwrap();
}
