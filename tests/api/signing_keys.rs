//! `GOTRUE_JWT_KEYS` and `/.well-known/jwks.json`: tokens signed with ES256 and RS256 keys
//! verify through the published key set with an independent verifier (jsonwebtoken's
//! `DecodingKey::from_jwk`, as PostgREST-style verifiers do), old keys keep verifying after a
//! rotation, legacy HS256 tokens stay accepted, and unknown keys are refused.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use serde_json::{json, Value};
use weauth::config::{generate_key, parse_keys, KeyAlgorithm};

use crate::support::{expect_error, expect_json, TestApp};

const PRIVATE_MEMBERS: [&str; 7] = ["d", "p", "q", "dp", "dq", "qi", "k"];

/// `jwk` with `key_ops` replaced (`["verify"]` retires a signing key).
fn with_ops(mut jwk: Value, ops: &[&str]) -> Value {
    jwk["key_ops"] = json!(ops);
    jwk
}

/// An encoding key for a JWK the test made (to forge tokens weauth must refuse).
fn encoding_key(jwk: &Value) -> EncodingKey {
    let keys = parse_keys(&json!([jwk]).to_string()).unwrap();
    let der = &keys[0].private.as_ref().unwrap().0;
    match keys[0].alg {
        KeyAlgorithm::Es256 => EncodingKey::from_ec_der(der),
        KeyAlgorithm::Rs256 => EncodingKey::from_rsa_der(der),
        KeyAlgorithm::Hs256 => EncodingKey::from_secret(der),
    }
}

async fn published(app: &TestApp, url: &str) -> Value {
    let res = app.client.get(url).send().await.unwrap();
    assert_eq!(
        res.headers()["cache-control"].to_str().unwrap(),
        "public, max-age=600"
    );
    let body = expect_json(res, 200).await;
    for key in body["keys"].as_array().unwrap() {
        for member in PRIVATE_MEMBERS {
            assert!(key.get(member).is_none(), "{member} published: {key}");
        }
        assert_eq!(key["use"], "sig");
        assert_eq!(key["key_ops"], json!(["verify"]));
    }
    body
}

/// Verifies `token` the way PostgREST does: pick the JWK by `kid`, check signature and `aud`.
fn verify_with_jwks(jwks: &Value, token: &str) -> Value {
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let header = decode_header(token).unwrap();
    let jwk = set
        .find(header.kid.as_deref().expect("token has a kid"))
        .expect("kid is published");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(header.alg);
    validation.set_audience(&["authenticated"]);
    decode::<Value>(token, &key, &validation).unwrap().claims
}

#[tokio::test]
async fn es256_and_rs256_tokens_verify_through_the_published_jwks() {
    for (alg, name) in [
        (KeyAlgorithm::Es256, "ES256"),
        (KeyAlgorithm::Rs256, "RS256"),
    ] {
        let jwk = generate_key(alg).unwrap();
        let kid = jwk["kid"].as_str().unwrap().to_string();
        let app = TestApp::builder()
            .env("GOTRUE_JWT_KEYS", &json!([jwk]).to_string())
            .env("GOTRUE_JWT_ISSUER", "http://auth.test/auth/v1")
            .spawn();
        let session = app.signup_email("keys@example.com", "secret123").await;
        let token = session["access_token"].as_str().unwrap();
        let header = decode_header(token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid.as_str()), "{name}");
        assert_eq!(header.alg, name.parse::<Algorithm>().unwrap());

        for prefix in ["", "/auth/v1"] {
            let jwks = published(&app, &app.url(&format!("{prefix}/.well-known/jwks.json"))).await;
            assert_eq!(jwks["keys"].as_array().unwrap().len(), 1, "{jwks}");
            assert_eq!(jwks["keys"][0]["kid"], json!(kid));
            assert_eq!(jwks["keys"][0]["alg"], json!(name));
            let claims = verify_with_jwks(&jwks, token);
            assert_eq!(claims["sub"], session["user"]["id"]);
            assert_eq!(claims["iss"], "http://auth.test/auth/v1");

            let res = app
                .client
                .get(app.url(&format!("{prefix}/.well-known/openid-configuration")))
                .send()
                .await
                .unwrap();
            assert_eq!(res.headers()["cache-control"], "public, max-age=600");
            assert_eq!(
                expect_json(res, 200).await,
                json!({"issuer": "http://auth.test/auth/v1",
                       "jwks_uri": "http://auth.test/auth/v1/.well-known/jwks.json"})
            );
        }
        // weauth accepts its own token, and refreshing keeps signing with the same key.
        expect_json(app.get_auth("/user", token).await, 200).await;
        let refreshed = expect_json(
            app.post(
                "/token?grant_type=refresh_token",
                json!({"refresh_token": session["refresh_token"]}),
            )
            .await,
            200,
        )
        .await;
        let header = decode_header(refreshed["access_token"].as_str().unwrap()).unwrap();
        assert_eq!(header.kid.as_deref(), Some(kid.as_str()));
    }
}

#[tokio::test]
async fn only_hs256_keys_publish_an_empty_set() {
    let app = TestApp::builder()
        .env(
            "GOTRUE_JWT_KEYS",
            &json!([generate_key(KeyAlgorithm::Hs256).unwrap()]).to_string(),
        )
        .spawn();
    let jwks = published(&app, &app.url("/.well-known/jwks.json")).await;
    assert_eq!(jwks, json!({"keys": []}));
    let plain = TestApp::spawn();
    let jwks = published(&plain, &plain.url("/auth/v1/.well-known/jwks.json")).await;
    assert_eq!(jwks, json!({"keys": []}));
    // Tokens of an oct signing key carry its kid and still work.
    let session = app.signup_email("oct@example.com", "secret123").await;
    let token = session["access_token"].as_str().unwrap();
    assert!(decode_header(token).unwrap().kid.is_some());
    expect_json(app.get_auth("/user", token).await, 200).await;
}

#[tokio::test]
async fn rotation_keeps_old_and_legacy_tokens_valid() {
    // Before: only GOTRUE_JWT_SECRET (HS256, no kid).
    let app = TestApp::spawn();
    let legacy = app.signup_email("rotate@example.com", "secret123").await;
    let legacy_token = legacy["access_token"].as_str().unwrap().to_string();
    assert!(decode_header(&legacy_token).unwrap().kid.is_none());

    // Then key A signs.
    let a = generate_key(KeyAlgorithm::Es256).unwrap();
    let (url_a, _a) = app.second_instance_with(&[("GOTRUE_JWT_KEYS", &json!([a]).to_string())]);
    let token_a = sign_in(&app, &url_a).await;
    assert_eq!(
        decode_header(&token_a).unwrap().kid.as_deref(),
        a["kid"].as_str()
    );

    // Then key B (RS256) signs and A only verifies.
    let b = generate_key(KeyAlgorithm::Rs256).unwrap();
    let keys = json!([b, with_ops(a.clone(), &["verify"])]).to_string();
    let (url_b, _b) = app.second_instance_with(&[("GOTRUE_JWT_KEYS", &keys)]);
    let token_b = sign_in(&app, &url_b).await;
    assert_eq!(
        decode_header(&token_b).unwrap().kid.as_deref(),
        b["kid"].as_str()
    );
    for token in [&legacy_token, &token_a, &token_b] {
        let res = app
            .client
            .get(format!("{url_b}/user"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        expect_json(res, 200).await;
    }
    // The service-role key signed with the secret still works on admin routes.
    let res = app
        .client
        .get(format!("{url_b}/admin/users"))
        .bearer_auth(app.service_role_key())
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    let jwks = published(&app, &format!("{url_b}/.well-known/jwks.json")).await;
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(
        kids,
        [b["kid"].as_str().unwrap(), a["kid"].as_str().unwrap()]
    );
    verify_with_jwks(&jwks, &token_a);
    verify_with_jwks(&jwks, &token_b);
}

async fn sign_in(app: &TestApp, base: &str) -> String {
    let res = app
        .client
        .post(format!("{base}/token?grant_type=password"))
        .json(&json!({"email": "rotate@example.com", "password": "secret123"}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn unknown_kids_and_foreign_keys_are_refused() {
    let a = generate_key(KeyAlgorithm::Es256).unwrap();
    let app = TestApp::builder()
        .env("GOTRUE_JWT_KEYS", &json!([a]).to_string())
        .spawn();
    let session = app.signup_email("forge@example.com", "secret123").await;
    let real = session["access_token"].as_str().unwrap();
    let mut unchecked = jsonwebtoken::Validation::new(Algorithm::ES256);
    unchecked.insecure_disable_signature_validation();
    unchecked.validate_aud = false;
    let claims = decode::<Value>(real, &DecodingKey::from_secret(b""), &unchecked)
        .unwrap()
        .claims;

    let stranger = generate_key(KeyAlgorithm::Es256).unwrap();
    let forge = |alg: Algorithm, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_string);
        encode(&header, &claims, key).unwrap()
    };
    let cases = [
        // A kid weauth does not know.
        forge(
            Algorithm::ES256,
            stranger["kid"].as_str(),
            &encoding_key(&stranger),
        ),
        // A known kid, signed by another key.
        forge(
            Algorithm::ES256,
            a["kid"].as_str(),
            &encoding_key(&stranger),
        ),
        // No kid at all on an ES256 token.
        forge(Algorithm::ES256, None, &encoding_key(&a)),
        // HS256 with an unknown kid falls back to the secret, and this is not it.
        forge(
            Algorithm::HS256,
            Some("unknown"),
            &EncodingKey::from_secret(b"another-secret-0123456789abcdef"),
        ),
        // RS256 is not among the configured algorithms.
        forge(
            Algorithm::RS256,
            a["kid"].as_str(),
            &encoding_key(&generate_key(KeyAlgorithm::Rs256).unwrap()),
        ),
    ];
    for token in cases {
        let body = expect_error(app.get_auth("/user", &token).await, 403, "bad_jwt").await;
        assert!(
            body["msg"].as_str().unwrap().starts_with("invalid JWT"),
            "{body}"
        );
    }
    expect_json(app.get_auth("/user", real).await, 200).await;
}
