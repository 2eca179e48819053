//! Phone sign-in by one-time code (issue 11): `/otp`, `/verify`, `/resend`, `/reauthenticate`,
//! phone sign-up and phone change, through GoTrue's Send SMS hook as a `pg-functions` hook
//! whose function writes every message into a table the test reads (a real send path: the
//! same call the SMS providers' tests make over HTTP).

use serde_json::{json, Value};

use crate::support::{expect_error, expect_json, TestApp, TestDb};

const PHONE: &str = "8613800138000";

/// weauth with the Send SMS hook pointing at `public.capture_sms`, which records the payload
/// (and fails when the number is `8613999999999`, like a vendor refusing it).
fn app(extra: &[(&str, &str)]) -> TestApp {
    let db = TestDb::migrated();
    db.execute(
        "CREATE TABLE public.sms_outbox (id serial PRIMARY KEY, phone text, otp text, payload jsonb)",
    );
    db.execute(
        "CREATE FUNCTION public.capture_sms(event jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
         BEGIN
           IF event->'sms'->>'phone' = '8613999999999' THEN
             RAISE EXCEPTION 'vendor refused the number';
           END IF;
           INSERT INTO public.sms_outbox (phone, otp, payload)
             VALUES (event->'sms'->>'phone', event->'sms'->>'otp', event);
           RETURN '{}'::jsonb;
         END $$;",
    );
    let mut b = TestApp::builder()
        .database(db)
        .env("GOTRUE_HOOK_SEND_SMS_ENABLED", "true")
        .env(
            "GOTRUE_HOOK_SEND_SMS_URI",
            "pg-functions://postgres/public/capture_sms",
        )
        .env("GOTRUE_SMS_AUTOCONFIRM", "false")
        .env("WEAUTH_PHONE_DEFAULT_COUNTRY_CODE", "86");
    for (k, v) in extra {
        b = b.env(k, v);
    }
    b.spawn()
}

/// The codes sent to `phone`, oldest first.
fn codes(app: &TestApp, phone: &str) -> Vec<String> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Text)]
        otp: String,
    }
    let mut conn = app.db.conn();
    diesel::sql_query("SELECT otp FROM public.sms_outbox WHERE phone = $1 ORDER BY id")
        .bind::<diesel::sql_types::Text, _>(phone)
        .load::<Row>(&mut conn)
        .unwrap()
        .into_iter()
        .map(|r| r.otp)
        .collect()
}

/// The access token's claims (signature checked with the test secret).
fn decode_claims(token: &str) -> Value {
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&["authenticated"]);
    decode::<Value>(
        token,
        &DecodingKey::from_secret(crate::support::JWT_SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims
}

fn last_code(app: &TestApp, phone: &str) -> String {
    codes(app, phone).pop().expect("a code was sent")
}

async fn verify(app: &TestApp, phone: &str, token: &str, kind: &str) -> reqwest::Response {
    app.post(
        "/auth/v1/verify",
        json!({"phone": phone, "token": token, "type": kind}),
    )
    .await
}

#[actix_web::test]
async fn sign_in_by_code_creates_and_confirms_the_user_once() {
    let app = app(&[]);
    // Typed the national way; stored with the country code.
    let body = expect_json(
        app.post(
            "/auth/v1/otp",
            json!({"phone": "138 0013 8000", "data": {"nick": "a"}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(body, json!({}));
    let code = last_code(&app, PHONE);
    assert_eq!(code.len(), 6);
    // The code is stored hashed, never in the clear.
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM auth.users WHERE confirmation_token = encode(sha224('{PHONE}{code}'), 'hex')"
        )),
        1
    );
    assert_eq!(
        app.db.scalar("SELECT count(*) FROM auth.one_time_tokens WHERE token_type = 'confirmation_token' AND relates_to = '8613800138000'"),
        1
    );
    let session = expect_json(verify(&app, "+86 138 0013 8000", &code, "sms").await, 200).await;
    assert_eq!(session["user"]["phone"], PHONE);
    assert!(session["user"]["phone_confirmed_at"].is_string());
    assert_eq!(session["user"]["user_metadata"]["nick"], "a");
    let claims = decode_claims(session["access_token"].as_str().unwrap());
    assert_eq!(claims["amr"][0]["method"], "otp");
    // Used once: a replay is refused, and nothing pending is left.
    expect_error(verify(&app, PHONE, &code, "sms").await, 403, "otp_expired").await;
    assert_eq!(app.db.count("auth.one_time_tokens"), 0);
    assert_eq!(app.db.count("auth.users"), 1);

    // A confirmed user asking again gets a new code (and `{}`: the hook has no message id).
    expect_json(app.post("/auth/v1/otp", json!({"phone": PHONE})).await, 429).await;
    app.db
        .execute("UPDATE auth.users SET confirmation_sent_at = now() - interval '2 minutes'");
    expect_json(
        app.post("/auth/v1/otp", json!({"phone": "013800138000"}))
            .await,
        200,
    )
    .await;
    let second = last_code(&app, PHONE);
    let again = expect_json(verify(&app, PHONE, &second, "sms").await, 200).await;
    assert_eq!(again["user"]["id"], session["user"]["id"]);
    assert_eq!(app.db.count("auth.users"), 1);
}

#[actix_web::test]
async fn resends_wait_for_the_interval_with_gotrues_message() {
    let app = app(&[]);
    expect_json(app.post("/auth/v1/otp", json!({"phone": PHONE})).await, 200).await;
    let err = expect_error(
        app.post("/auth/v1/otp", json!({"phone": PHONE})).await,
        429,
        "over_sms_send_rate_limit",
    )
    .await;
    let msg = err["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("For security purposes, you can only request this after "),
        "{msg}"
    );
    assert_eq!(codes(&app, PHONE).len(), 1, "no second SMS");
    // /resend for an unconfirmed number honours the same interval.
    expect_error(
        app.post("/auth/v1/resend", json!({"type": "sms", "phone": PHONE}))
            .await,
        429,
        "over_sms_send_rate_limit",
    )
    .await;
    app.db
        .execute("UPDATE auth.users SET confirmation_sent_at = now() - interval '61 seconds'");
    expect_json(
        app.post("/auth/v1/resend", json!({"type": "sms", "phone": PHONE}))
            .await,
        200,
    )
    .await;
    let sent = codes(&app, PHONE);
    assert_eq!(sent.len(), 2);
    // Only the newest code works.
    expect_error(
        verify(&app, PHONE, &sent[0], "sms").await,
        403,
        "otp_expired",
    )
    .await;
    expect_json(verify(&app, PHONE, &sent[1], "sms").await, 200).await;
    // Nothing to resend to a confirmed or unknown number: `{}` and no SMS.
    for phone in [PHONE, "8613700000000"] {
        let body = expect_json(
            app.post("/auth/v1/resend", json!({"type": "sms", "phone": phone}))
                .await,
            200,
        )
        .await;
        assert_eq!(body, json!({}));
    }
    assert_eq!(codes(&app, "8613700000000").len(), 0);
}

#[actix_web::test]
async fn wrong_codes_kill_the_code_and_expired_or_foreign_codes_fail() {
    let app = app(&[("WEAUTH_SMS_OTP_MAX_ATTEMPTS", "3")]);
    expect_json(app.post("/auth/v1/otp", json!({"phone": PHONE})).await, 200).await;
    let code = last_code(&app, PHONE);
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        expect_error(verify(&app, PHONE, wrong, "sms").await, 403, "otp_expired").await;
    }
    // The right code is dead now, too.
    expect_error(verify(&app, PHONE, &code, "sms").await, 403, "otp_expired").await;
    assert_eq!(app.db.count("auth.one_time_tokens"), 0);

    // A code for another number does not work for this one.
    expect_json(
        app.post("/auth/v1/otp", json!({"phone": "8613700000000"}))
            .await,
        200,
    )
    .await;
    let other = last_code(&app, "8613700000000");
    app.db.execute("UPDATE auth.users SET confirmation_sent_at = now() - interval '2 minutes' WHERE phone = '8613800138000'");
    expect_json(app.post("/auth/v1/otp", json!({"phone": PHONE})).await, 200).await;
    expect_error(verify(&app, PHONE, &other, "sms").await, 403, "otp_expired").await;

    // Expired: past GOTRUE_SMS_OTP_EXP (60 s) after it was sent.
    let fresh = last_code(&app, PHONE);
    app.db.execute("UPDATE auth.users SET confirmation_sent_at = now() - interval '61 seconds' WHERE phone = '8613800138000'");
    expect_error(verify(&app, PHONE, &fresh, "sms").await, 403, "otp_expired").await;
    // Unknown number: the same answer.
    expect_error(
        verify(&app, "8613600000000", "123456", "sms").await,
        403,
        "otp_expired",
    )
    .await;
}

#[actix_web::test]
async fn create_user_false_and_disabled_phone_logins_are_refused_without_a_trace() {
    let app = app(&[]);
    expect_error(
        app.post(
            "/auth/v1/otp",
            json!({"phone": PHONE, "create_user": false}),
        )
        .await,
        422,
        "otp_disabled",
    )
    .await;
    assert_eq!(app.db.count("auth.users"), 0);
    assert!(codes(&app, PHONE).is_empty());
    // A send the hook refuses leaves no user and no code.
    let res = app
        .post("/auth/v1/otp", json!({"phone": "8613999999999"}))
        .await;
    assert!(res.status().is_server_error() || res.status().is_client_error());
    assert_eq!(app.db.count("auth.users"), 0);
    assert_eq!(app.db.count("auth.one_time_tokens"), 0);

    for (body, code) in [
        (json!({"phone": "not a phone"}), "validation_failed"),
        (json!({"phone": "+0123"}), "validation_failed"),
        (json!({"phone": "1380013800012345"}), "validation_failed"),
        (
            json!({"phone": PHONE, "channel": "whatsapp"}),
            "validation_failed",
        ),
        (
            json!({"phone": PHONE, "email": "a@example.com"}),
            "validation_failed",
        ),
        (json!({}), "validation_failed"),
    ] {
        expect_error(app.post("/auth/v1/otp", body).await, 400, code).await;
    }
    for body in [
        json!({"phone": PHONE, "token": "123456"}),
        json!({"phone": PHONE, "type": "sms"}),
        json!({"phone": PHONE, "token": "1", "token_hash": "2", "type": "sms"}),
        json!({"phone": PHONE, "email": "a@example.com", "token": "1", "type": "sms"}),
        json!({"phone": PHONE, "token": "123456", "type": "nonsense"}),
        json!({"token_hash": "abc", "type": "sms"}),
    ] {
        expect_error(
            app.post("/auth/v1/verify", body).await,
            400,
            "validation_failed",
        )
        .await;
    }
    let off = TestApp::builder()
        .env("GOTRUE_EXTERNAL_PHONE_ENABLED", "false")
        .spawn();
    expect_error(
        off.post("/auth/v1/otp", json!({"phone": PHONE})).await,
        400,
        "phone_provider_disabled",
    )
    .await;
    // Without any SMS provider a send fails clearly, and creates nobody.
    let none = TestApp::builder().spawn();
    expect_error(
        none.post("/auth/v1/otp", json!({"phone": PHONE})).await,
        422,
        "sms_send_failed",
    )
    .await;
    assert_eq!(none.db.count("auth.users"), 0);
}

#[actix_web::test]
async fn phone_signup_without_autoconfirm_is_confirmed_by_its_code() {
    let app = app(&[]);
    let user = expect_json(
        app.post(
            "/auth/v1/signup",
            json!({"phone": "13800138000", "password": "secret-pw-1"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(user["phone"], PHONE);
    assert!(user["phone_confirmed_at"].is_null());
    assert!(user["confirmation_sent_at"].is_string());
    // Password sign-in waits for the confirmation.
    expect_error(
        app.post(
            "/auth/v1/token?grant_type=password",
            json!({"phone": PHONE, "password": "secret-pw-1"}),
        )
        .await,
        400,
        "phone_not_confirmed",
    )
    .await;
    let code = last_code(&app, PHONE);
    let session = expect_json(verify(&app, PHONE, &code, "sms").await, 200).await;
    assert_eq!(session["user"]["id"], user["id"]);
    expect_json(
        app.post(
            "/auth/v1/token?grant_type=password",
            json!({"phone": "+86 13800138000", "password": "secret-pw-1"}),
        )
        .await,
        200,
    )
    .await;
}

async fn signed_in(app: &TestApp, phone: &str) -> Value {
    expect_json(app.post("/auth/v1/otp", json!({"phone": phone})).await, 200).await;
    let code = last_code(app, phone);
    expect_json(verify(app, phone, &code, "sms").await, 200).await
}

#[actix_web::test]
async fn a_new_phone_is_confirmed_by_a_code_sent_to_it() {
    let app = app(&[]);
    let session = signed_in(&app, PHONE).await;
    let token = session["access_token"].as_str().unwrap();
    let res = app
        .client
        .put(app.url("/auth/v1/user"))
        .bearer_auth(token)
        .json(&json!({"phone": "13700000000"}))
        .send()
        .await
        .unwrap();
    let user = expect_json(res, 200).await;
    assert_eq!(user["phone"], PHONE, "unchanged until confirmed");
    assert_eq!(user["new_phone"], "8613700000000");
    assert!(user["phone_change_sent_at"].is_string());
    let code = last_code(&app, "8613700000000");
    assert!(codes(&app, PHONE).len() == 1, "nothing to the old number");
    // The code was sent to the new number: verifying it on the old one fails.
    expect_error(
        verify(&app, PHONE, &code, "phone_change").await,
        403,
        "otp_expired",
    )
    .await;
    let changed = expect_json(
        verify(&app, "13700000000", &code, "phone_change").await,
        200,
    )
    .await;
    assert_eq!(changed["user"]["phone"], "8613700000000");
    assert!(
        changed["user"].get("new_phone").is_none(),
        "no pending change"
    );
    let identities = changed["user"]["identities"].as_array().unwrap();
    let phone_identity = identities
        .iter()
        .find(|i| i["provider"] == "phone")
        .unwrap();
    assert_eq!(phone_identity["identity_data"]["phone"], "8613700000000");
}

#[actix_web::test]
async fn reauthentication_code_is_needed_for_a_password_change_on_an_old_session() {
    let app = app(&[(
        "GOTRUE_SECURITY_UPDATE_PASSWORD_REQUIRE_REAUTHENTICATION",
        "true",
    )]);
    let session = signed_in(&app, PHONE).await;
    let token = session["access_token"].as_str().unwrap();
    let put = |body: Value| {
        app.client
            .put(app.url("/auth/v1/user"))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    // A fresh session may change the password without a code.
    expect_json(put(json!({"password": "first-pw-123"})).await.unwrap(), 200).await;
    app.db
        .execute("UPDATE auth.sessions SET created_at = now() - interval '2 days'");
    expect_error(
        put(json!({"password": "second-pw-123"})).await.unwrap(),
        400,
        "reauthentication_needed",
    )
    .await;
    let sent = expect_json(app.get_auth("/auth/v1/reauthenticate", token).await, 200).await;
    assert_eq!(sent, json!({}));
    let nonce = last_code(&app, PHONE);
    expect_error(
        put(json!({"password": "second-pw-123", "nonce": "000000x"}))
            .await
            .unwrap(),
        422,
        "reauthentication_not_valid",
    )
    .await;
    expect_json(
        put(json!({"password": "second-pw-123", "nonce": nonce}))
            .await
            .unwrap(),
        200,
    )
    .await;
    // The nonce is used up.
    expect_error(
        put(json!({"password": "third-pw-1234", "nonce": nonce}))
            .await
            .unwrap(),
        422,
        "reauthentication_not_valid",
    )
    .await;
}

#[actix_web::test]
async fn test_numbers_get_their_fixed_code_and_no_sms() {
    let app = app(&[("GOTRUE_SMS_TEST_OTP", "8613800138000:246810")]);
    let sent = expect_json(
        app.post("/auth/v1/otp", json!({"phone": "13800138000"}))
            .await,
        200,
    )
    .await;
    assert_eq!(sent, json!({}));
    assert!(
        codes(&app, PHONE).is_empty(),
        "a test number is never sent an SMS"
    );
    expect_error(
        verify(&app, PHONE, "135790", "sms").await,
        403,
        "otp_expired",
    )
    .await;
    let session = expect_json(verify(&app, PHONE, "246810", "sms").await, 200).await;
    assert_eq!(session["user"]["phone"], PHONE);
    let settings = expect_json(
        app.client
            .get(app.url("/auth/v1/settings"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(settings["sms_provider"], "hook");
    assert_eq!(settings["external"]["phone"], true);
}

#[actix_web::test]
async fn the_hook_gets_gotrues_payload_and_the_code_never_reaches_a_response() {
    let app = app(&[]);
    let res = app.post("/auth/v1/otp", json!({"phone": PHONE})).await;
    let text = res.text().await.unwrap();
    let code = last_code(&app, PHONE);
    assert!(!text.contains(&code));
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    let row: Row = diesel::sql_query("SELECT payload FROM public.sms_outbox")
        .get_result(&mut app.db.conn())
        .unwrap();
    assert_eq!(row.payload["metadata"]["name"], "send-sms");
    assert_eq!(row.payload["sms"]["phone"], PHONE);
    assert_eq!(row.payload["user"]["phone"], PHONE);
    assert!(row.payload["user"].get("encrypted_password").is_none());
}
