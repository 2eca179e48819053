//! GoTrue's custom access-token hook (issue 15): a PL/pgSQL function adding a claim from a
//! table, an HTTP hook signed per Standard Webhooks, and hooks that fail or answer garbage.

use serde_json::{json, Value};

use crate::hook_receiver::HookReceiver;
use crate::support::{expect_error, expect_json, TestApp, TestDb};

fn claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap()
}

/// weauth with `public.<function>` as the hook.
fn app_with_function(function_sql: &str, name: &str) -> TestApp {
    let db = TestDb::migrated();
    db.execute("CREATE TABLE public.plans (user_id uuid PRIMARY KEY, plan text NOT NULL)");
    db.execute(function_sql);
    TestApp::builder()
        .database(db)
        .env("GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_ENABLED", "true")
        .env(
            "GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_URI",
            &format!("pg-functions://postgres/public/{name}"),
        )
        .env("WEAUTH_HOOK_TIMEOUT_MS", "1000")
        .spawn()
}

const ADD_PLAN: &str = "CREATE FUNCTION public.add_plan(event jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
DECLARE
  claims jsonb := event->'claims';
  plan text;
BEGIN
  SELECT p.plan INTO plan FROM public.plans p WHERE p.user_id = (event->>'user_id')::uuid;
  claims := jsonb_set(claims, '{plan}', to_jsonb(coalesce(plan, 'free')));
  claims := jsonb_set(claims, '{method}', to_jsonb(event->>'authentication_method'));
  RETURN jsonb_build_object('claims', claims);
END $$";

#[tokio::test]
async fn a_plpgsql_hook_adds_a_claim_from_a_table_on_sign_in_and_refresh() {
    let app = app_with_function(ADD_PLAN, "add_plan");
    let session = app.signup_email("hook@example.com", "secret123").await;
    let first = claims(session["access_token"].as_str().unwrap());
    assert_eq!(first["plan"], "free");
    assert_eq!(first["method"], "password");
    assert_eq!(first["sub"], session["user"]["id"]);
    app.db.execute(&format!(
        "INSERT INTO public.plans VALUES ('{}', 'pro')",
        session["user"]["id"].as_str().unwrap()
    ));
    let refreshed = expect_json(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": session["refresh_token"]}),
        )
        .await,
        200,
    )
    .await;
    let second = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!(second["plan"], "pro");
    assert_eq!(second["method"], "token_refresh");
    // The token still verifies against weauth itself.
    expect_json(
        app.get_auth("/user", refreshed["access_token"].as_str().unwrap())
            .await,
        200,
    )
    .await;
}

#[tokio::test]
async fn garbage_from_the_hook_fails_the_sign_in_and_signs_nothing() {
    let app = app_with_function(
        "CREATE FUNCTION public.garbage(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
           SELECT jsonb_build_object('claims', (event->'claims') - 'session_id' || '{\"exp\": \"later\"}'::jsonb)
         $$",
        "garbage",
    );
    let res = app
        .post(
            "/signup",
            json!({"email": "g@example.com", "password": "secret123"}),
        )
        .await;
    let body = expect_error(res, 500, "unexpected_failure").await;
    let msg = body["msg"].as_str().unwrap();
    assert!(msg.contains("session_id is required"), "{msg}");
    assert!(msg.contains("exp: invalid type"), "{msg}");
    // The sign-up rolled back with the session: nothing was created.
    assert_eq!(app.db.count("auth.users"), 0);
    assert_eq!(app.db.count("auth.sessions"), 0);
}

#[tokio::test]
async fn a_slow_or_raising_hook_gives_gotrues_errors() {
    let slow = app_with_function(
        "CREATE FUNCTION public.slow(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
           SELECT pg_sleep(5); SELECT jsonb_build_object('claims', event->'claims')
         $$",
        "slow",
    );
    let started = std::time::Instant::now();
    expect_error(
        slow.post(
            "/signup",
            json!({"email": "s@example.com", "password": "secret123"}),
        )
        .await,
        422,
        "hook_timeout",
    )
    .await;
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    assert_eq!(slow.db.count("auth.users"), 0);

    let refusing = app_with_function(
        "CREATE FUNCTION public.refuse(event jsonb) RETURNS jsonb LANGUAGE sql AS $$
           SELECT '{\"error\": {\"http_code\": 403, \"message\": \"plan expired\"}}'::jsonb
         $$",
        "refuse",
    );
    let body = expect_json(
        refusing
            .post(
                "/signup",
                json!({"email": "r@example.com", "password": "secret123"}),
            )
            .await,
        403,
    )
    .await;
    assert_eq!(body["msg"], "plan expired");
    assert_eq!(refusing.db.count("auth.users"), 0);
}

#[tokio::test]
async fn an_http_hook_is_signed_and_its_claims_are_used() {
    let receiver = HookReceiver::start();
    let app = TestApp::builder()
        .env("GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_ENABLED", "true")
        .env("GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_URI", &receiver.url)
        .env("GOTRUE_HOOK_CUSTOM_ACCESS_TOKEN_SECRETS", &receiver.secret)
        .spawn();
    let now = chrono::Utc::now().timestamp();
    receiver.answer_next(
        200,
        &json!({"claims": {
            "aud": "authenticated", "exp": now + 600, "iat": now, "sub": "from-hook",
            "email": "h@example.com", "phone": "", "role": "authenticated", "aal": "aal1",
            "session_id": "s", "is_anonymous": false, "tenant": "acme",
        }})
        .to_string(),
    );
    let session = expect_json(
        app.post(
            "/signup",
            json!({"email": "h@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    let c = claims(session["access_token"].as_str().unwrap());
    assert_eq!(c["tenant"], "acme");
    assert_eq!(session["expires_at"], json!(now + 600));
    let payload = receiver.payloads().pop().expect("the hook was called, signed");
    assert_eq!(payload["user_id"], session["user"]["id"]);
    assert_eq!(payload["authentication_method"], "password");
    assert_eq!(payload["claims"]["email"], "h@example.com");
    assert_eq!(receiver.rejected(), 0);
}
