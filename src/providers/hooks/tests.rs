use std::sync::{Arc, Mutex};

use actix_web::HttpResponse;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::*;
use crate::providers::testing::{header, serve, Reply};

const SECRET_A: &str = "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SECRET_B: &str = "v1,whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tdGVzdHM=";

/// Vector W1 (standard-webhooks `libraries/python/tests/test_webhooks.py`).
#[test]
fn sign_matches_the_standard_webhooks_vector() {
    let secret = HookSecret::parse(SECRET_A).unwrap();
    assert_eq!(
        sign(
            secret.key(),
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn secrets_are_parsed_from_gotrue_format() {
    let secrets = parse_secrets(&format!("{SECRET_A}|{SECRET_B}|")).unwrap();
    assert_eq!(secrets.len(), 2);
    assert_eq!(secrets[1].key(), b"second-secret-for-rotation-tests");
    assert!(parse_secrets("").unwrap().is_empty());
    for bad in [
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "v1,MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "v1,whsec_short",
        "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!",
        "v1,whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwX",
        "v1a,whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA:whsk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let err = HookSecret::parse(bad).unwrap_err();
        assert!(!err.contains("MfKQ9r8GKYqr"), "{err}");
    }
    assert_eq!(
        format!("{:?}", HookSecret::parse(SECRET_A).unwrap()),
        "HookSecret(***)"
    );
}

#[test]
fn http_targets_follow_gotrue_rules() {
    assert!(matches!(
        HookTarget::parse("https://hooks.example.com/sms").unwrap(),
        HookTarget::Http(_)
    ));
    for local in [
        "http://localhost:8000/hook",
        "http://127.0.0.1/hook",
        "http://[::1]:9000/",
        "http://host.docker.internal/x",
    ] {
        assert!(HookTarget::parse(local).is_ok(), "{local}");
    }
    assert!(HookTarget::parse("http://hooks.example.com/sms").is_err());
    assert!(HookTarget::parse("ftp://example.com/").is_err());
    assert!(HookTarget::parse("not a uri").is_err());
    let err = HookEndpoint::parse("https://hooks.example.com/sms", None).unwrap_err();
    assert!(err.contains("secret"), "{err}");
    assert!(HookEndpoint::parse("https://hooks.example.com/sms", Some(SECRET_A)).is_ok());
}

#[test]
fn pg_function_uris_are_validated_and_quoted() {
    let target = HookTarget::parse("pg-functions://postgres/public/custom_SMS_hook").unwrap();
    assert_eq!(
        target,
        HookTarget::PgFunction {
            schema: "public".into(),
            function: "custom_SMS_hook".into()
        }
    );
    assert_eq!(target.sql_name().unwrap(), r#""public"."custom_SMS_hook""#);
    // No secret needed for a database function.
    assert!(HookEndpoint::parse("pg-functions://postgres/auth/hook", None).is_ok());
    let long = "a".repeat(64);
    for bad in [
        "pg-functions://postgres/public",
        "pg-functions://postgres/public/",
        "pg-functions://postgres/public/fn/extra",
        "pg-functions://postgres/1public/fn",
        "pg-functions://postgres/public/fn-name",
        "pg-functions://postgres/public/fn%22%3B%20drop%20table%20x",
        "pg-functions://postgres/public/fn\";drop table x;--",
        "pg-functions://postgres/public/f n",
        "pg-functions://postgres/public/fün",
        &format!("pg-functions://postgres/public/{long}"),
    ] {
        assert!(HookTarget::parse(bad).is_err(), "{bad}");
    }
    assert!(HookTarget::parse(&format!("pg-functions://postgres/public/{}", &long[..63])).is_ok());
    assert_eq!(quote_identifier(r#"a"b"#), r#""a""b""#);
}

#[test]
fn debug_output_hides_secrets_and_url_credentials() {
    let endpoint = HookEndpoint::parse(
        "https://user:pass@hooks.example.com/sms?token=tok123",
        Some(SECRET_A),
    )
    .unwrap();
    let hook = Hook::new("send_sms", endpoint, Duration::from_secs(1)).unwrap();
    let shown = format!("{hook:?}");
    assert!(shown.contains("hooks.example.com/sms"), "{shown}");
    for secret in ["MfKQ9r8GKYqr", "pass", "tok123"] {
        assert!(!shown.contains(secret), "{shown}");
    }
}

/// What the test server saw of one call.
struct Seen {
    body: Vec<u8>,
    signatures_ok: usize,
}

/// Verifies a Standard Webhooks request with its own HMAC code (not `sign`), counting how
/// many of the keys have a matching signature in the header.
fn verify(req: &actix_web::HttpRequest, body: &[u8], keys: &[&str]) -> usize {
    let id = header(req, "webhook-id");
    let timestamp = header(req, "webhook-timestamp");
    let now = chrono::Utc::now().timestamp();
    let ts: i64 = timestamp.parse().unwrap_or(0);
    if id.is_empty() || (now - ts).abs() > 300 {
        return 0;
    }
    let signed = [id.as_bytes(), b".", timestamp.as_bytes(), b".", body].concat();
    let given: Vec<&str> = header(req, "webhook-signature").split(' ').collect();
    keys.iter()
        .filter(|key| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(key.trim_start_matches("v1,whsec_"))
                .unwrap();
            let mut mac = Hmac::<Sha256>::new_from_slice(&raw).unwrap();
            mac.update(&signed);
            let expected = format!(
                "v1,{}",
                base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
            );
            given.contains(&expected.as_str())
        })
        .count()
}

/// A hook server that checks signatures against SECRET_A and SECRET_B and answers `answer`.
fn hook_server(
    answer: impl Fn() -> Reply + Send + Sync + 'static,
) -> (crate::providers::testing::TestServer, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let server = serve(move |req, body| {
        let signatures_ok = verify(req, body, &[SECRET_A, SECRET_B]);
        log.lock().unwrap().push(Seen {
            body: body.to_vec(),
            signatures_ok,
        });
        if signatures_ok == 0 || header(req, "content-type") != "application/json" {
            return HttpResponse::Unauthorized().finish().into();
        }
        answer()
    });
    (server, seen)
}

fn http_hook(url: &str, secrets: &str, timeout_ms: u64) -> Hook {
    Hook::new(
        "send_sms",
        HookEndpoint::parse(url, Some(secrets)).unwrap(),
        Duration::from_millis(timeout_ms),
    )
    .unwrap()
}

fn json_reply(status: u16, body: Value) -> Reply {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .content_type("application/json")
        .body(body.to_string())
        .into()
}

#[actix_web::test]
async fn http_hook_success_is_signed_with_every_secret() {
    let (server, seen) = hook_server(|| json_reply(200, json!({"ok": true})));
    let hook = http_hook(&server.url, &format!("{SECRET_A}|{SECRET_B}"), 2000);
    let payload = json!({"sms": {"otp": "123456"}});
    assert_eq!(hook.call_http(&payload).await.unwrap(), json!({"ok": true}));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].signatures_ok, 2);
    assert_eq!(
        serde_json::from_slice::<Value>(&seen[0].body).unwrap(),
        payload
    );
}

#[actix_web::test]
async fn http_hook_with_a_wrong_secret_is_refused_by_the_receiver() {
    let (server, _) = hook_server(|| json_reply(200, json!({})));
    let other = "v1,whsec_d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZw==";
    let err = http_hook(&server.url, other, 2000)
        .call_http(&json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Status(401)), "{err:?}");
    assert!(!err.is_unavailable());
}

#[actix_web::test]
async fn http_hook_answers_are_classified() {
    type Answer = Box<dyn Fn() -> Reply + Send + Sync>;
    let cases: Vec<(Answer, &str)> = vec![
        (
            Box::new(|| HttpResponse::NoContent().finish().into()),
            "null",
        ),
        (
            Box::new(|| {
                json_reply(
                    200,
                    json!({"error": {"http_code": 429, "message": "slow down"}}),
                )
            }),
            "answered 429 slow down",
        ),
        (
            Box::new(|| json_reply(200, json!({"error": {"message": "no code"}}))),
            "answered 500 no code",
        ),
        (
            Box::new(|| json_reply(200, json!({"error": "plain text"}))),
            "answered 500 plain text",
        ),
        (
            // GoTrue: an error without a message is no error.
            Box::new(|| json_reply(200, json!({"error": {"http_code": 400}}))),
            "ok",
        ),
        (
            Box::new(|| {
                HttpResponse::Ok()
                    .content_type("text/html")
                    .body("<html>oops</html>")
                    .into()
            }),
            "invalid",
        ),
        (
            Box::new(|| {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body("{not json")
                    .into()
            }),
            "invalid",
        ),
        (
            Box::new(|| {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(format!("\"{}\"", "x".repeat(RESPONSE_LIMIT)))
                    .into()
            }),
            "invalid",
        ),
        (
            Box::new(|| json_reply(500, json!({}))),
            "status 500 unavailable",
        ),
        (
            Box::new(|| json_reply(503, json!({}))),
            "status 503 unavailable",
        ),
        (
            Box::new(|| json_reply(429, json!({}))),
            "status 429 unavailable",
        ),
        (Box::new(|| json_reply(400, json!({}))), "status 400"),
    ];
    for (answer, expected) in cases {
        let (server, _) = hook_server(answer);
        let result = http_hook(&server.url, SECRET_A, 2000)
            .call_http(&json!({"user": {}}))
            .await;
        let got = match &result {
            Ok(Value::Null) => "null".to_string(),
            Ok(_) => "ok".to_string(),
            Err(HookError::Answered { http_code, message }) => {
                format!("answered {http_code} {message}")
            }
            Err(HookError::InvalidResponse(_)) => "invalid".to_string(),
            Err(e @ HookError::Status(s)) if e.is_unavailable() => {
                format!("status {s} unavailable")
            }
            Err(HookError::Status(s)) => format!("status {s}"),
            Err(other) => format!("{other:?}"),
        };
        assert_eq!(got, expected, "{result:?}");
    }
}

#[actix_web::test]
async fn slow_and_unreachable_hooks_fail_without_retry() {
    let (server, seen) = hook_server(|| Reply {
        delay: Some(Duration::from_millis(1500)),
        response: HttpResponse::NoContent().finish(),
    });
    let started = std::time::Instant::now();
    let err = http_hook(&server.url, SECRET_A, 300)
        .call_http(&json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Timeout), "{err:?}");
    assert!(err.is_unavailable());
    assert!(started.elapsed() < Duration::from_millis(1200));
    assert_eq!(seen.lock().unwrap().len(), 1, "called exactly once");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = http_hook(
        &format!("http://127.0.0.1:{port}/hook?token=tok123"),
        SECRET_A,
        1000,
    )
    .call_http(&json!({"sms": {"otp": "987654"}}))
    .await
    .unwrap_err();
    assert!(matches!(err, HookError::Unreachable(_)), "{err:?}");
    let shown = format!("{err} {err:?}");
    assert!(
        !shown.contains("tok123") && !shown.contains("987654"),
        "{shown}"
    );
}

#[actix_web::test]
async fn redirects_are_not_followed() {
    let (target, target_seen) = hook_server(|| json_reply(200, json!({})));
    let location = format!("{}/elsewhere", target.url);
    let redirector = serve(move |_, _| {
        HttpResponse::TemporaryRedirect()
            .insert_header(("location", location.clone()))
            .finish()
            .into()
    });
    let err = http_hook(&redirector.url, SECRET_A, 2000)
        .call_http(&json!({}))
        .await
        .unwrap_err();
    assert!(matches!(err, HookError::Status(307)), "{err:?}");
    assert!(target_seen.lock().unwrap().is_empty());
}

#[actix_web::test]
async fn an_http_hook_is_not_called_as_sql_and_vice_versa() {
    let hook = Hook::new(
        "send_sms",
        HookEndpoint::parse("pg-functions://postgres/public/hook", None).unwrap(),
        Duration::from_secs(1),
    )
    .unwrap();
    assert!(hook.is_pg_function());
    assert!(matches!(
        hook.call_http(&json!({})).await,
        Err(HookError::WrongTarget("send_sms"))
    ));
}

/// The test PostgreSQL (`WEAUTH_TEST_DATABASE_URL`, default 127.0.0.1:5432), in a test
/// transaction: the `pg_temp` functions below vanish with it.
fn test_connection() -> PgConnection {
    let url = std::env::var("WEAUTH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let sep = if url.contains('?') { '&' } else { '?' };
    let mut conn = PgConnection::establish(&format!("{url}{sep}sslmode=disable")).unwrap();
    conn.begin_test_transaction().unwrap();
    use diesel::connection::SimpleConnection;
    conn.batch_execute(
        r#"
        create function pg_temp.hook_echo(event jsonb) returns jsonb language sql
          as $$ select jsonb_build_object('otp', event->'sms'->'otp') $$;
        create function pg_temp.hook_error(event jsonb) returns jsonb language sql
          as $$ select '{"error": {"http_code": 422, "message": "number blocked"}}'::jsonb $$;
        create function pg_temp.hook_raise(event jsonb) returns jsonb language plpgsql
          as $$ begin raise exception 'provider down'; end $$;
        create function pg_temp.hook_slow(event jsonb) returns jsonb language sql
          as $$ select pg_sleep(2); select '{}'::jsonb $$;
        create function pg_temp.hook_void(event jsonb) returns void language sql as $$ $$;
        create function pg_temp.hook_text(event jsonb) returns text language sql
          as $$ select 'sent'::text $$;
        "#,
    )
    .unwrap();
    conn
}

fn sql_hook(function: &str, timeout_ms: u64) -> Hook {
    Hook::new(
        "send_sms",
        HookEndpoint::parse(&format!("pg-functions://postgres/pg_temp/{function}"), None).unwrap(),
        Duration::from_millis(timeout_ms),
    )
    .unwrap()
}

#[test]
fn pg_function_hooks_run_in_the_callers_transaction() {
    let mut conn = test_connection();
    let payload = json!({"sms": {"otp": "246810"}});
    assert_eq!(
        sql_hook("hook_echo", 2000)
            .call_sql(&mut conn, &payload)
            .unwrap(),
        json!({"otp": "246810"})
    );
    match sql_hook("hook_error", 2000).call_sql(&mut conn, &payload) {
        Err(HookError::Answered { http_code, message }) => {
            assert_eq!((http_code, message.as_str()), (422, "number blocked"))
        }
        other => panic!("{other:?}"),
    }
    let err = sql_hook("hook_raise", 2000)
        .call_sql(&mut conn, &payload)
        .unwrap_err();
    assert!(
        matches!(&err, HookError::Database(m) if m.contains("provider down")),
        "{err:?}"
    );
    let err = sql_hook("hook_slow", 200)
        .call_sql(&mut conn, &payload)
        .unwrap_err();
    assert!(matches!(err, HookError::Timeout), "{err:?}");
    assert_eq!(
        sql_hook("hook_void", 2000)
            .call_sql(&mut conn, &payload)
            .unwrap(),
        Value::Null
    );
    assert!(matches!(
        sql_hook("hook_text", 2000).call_sql(&mut conn, &payload),
        Err(HookError::InvalidResponse(_))
    ));
    assert!(matches!(
        sql_hook("missing_function", 2000).call_sql(&mut conn, &payload),
        Err(HookError::Database(_))
    ));
    // After all those failures the caller's transaction still works, with its own timeout.
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = Text)]
        statement_timeout: String,
    }
    let setting: Setting = diesel::sql_query("show statement_timeout")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(setting.statement_timeout, "0");
}

#[test]
fn an_sql_hook_refuses_http_targets() {
    let hook = http_hook("https://hooks.example.com/", SECRET_A, 1000);
    let mut conn = test_connection();
    assert!(matches!(
        hook.call_sql(&mut conn, &json!({})),
        Err(HookError::WrongTarget(_))
    ));
}
