//! GoTrue's Send Email hook (issue 12): mails go to the hook instead of SMTP, with GoTrue's
//! payload, as a `pg-functions` hook and as an HTTP hook signed per Standard Webhooks.

use serde_json::{json, Value};

use crate::hook_receiver::HookReceiver;
use crate::support::{expect_json, TestApp, TestDb};

fn outbox(app: &TestApp) -> Vec<Value> {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = diesel::sql_types::Jsonb)]
        payload: Value,
    }
    diesel::sql_query("SELECT payload FROM public.mail_outbox ORDER BY id")
        .load::<Row>(&mut app.db.conn())
        .unwrap()
        .into_iter()
        .map(|r| r.payload)
        .collect()
}

fn app_with_function() -> TestApp {
    let db = TestDb::migrated();
    db.execute("CREATE TABLE public.mail_outbox (id serial PRIMARY KEY, payload jsonb)");
    db.execute(
        "CREATE FUNCTION public.send_mail(event jsonb) RETURNS jsonb LANGUAGE plpgsql AS $$
         BEGIN
           IF event->'user'->>'email' LIKE 'refused%' THEN
             RETURN '{\"error\": {\"http_code\": 422, \"message\": \"mailbox refused\"}}'::jsonb;
           END IF;
           INSERT INTO public.mail_outbox (payload) VALUES (event);
           RETURN '{}'::jsonb;
         END $$",
    );
    TestApp::builder()
        .database(db)
        .env("GOTRUE_MAILER_AUTOCONFIRM", "false")
        .env("GOTRUE_HOOK_SEND_EMAIL_ENABLED", "true")
        .env(
            "GOTRUE_HOOK_SEND_EMAIL_URI",
            "pg-functions://postgres/public/send_mail",
        )
        .spawn()
}

#[tokio::test]
async fn a_plpgsql_send_email_hook_gets_the_code_and_the_user_confirms_with_it() {
    let app = app_with_function();
    let user = expect_json(
        app.post(
            "/signup",
            json!({"email": "hooked@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
    assert!(user["email_confirmed_at"].is_null());
    let sent = outbox(&app);
    assert_eq!(sent.len(), 1);
    let data = &sent[0]["email_data"];
    assert_eq!(sent[0]["metadata"]["name"], "send-email");
    assert_eq!(sent[0]["user"]["email"], "hooked@example.com");
    assert_eq!(data["email_action_type"], "signup");
    assert_eq!(data["token"].as_str().unwrap().len(), 6);
    assert_eq!(data["token_hash"].as_str().unwrap().len(), 56);
    let session = expect_json(
        app.post(
            "/verify",
            json!({"email": "hooked@example.com", "token": data["token"], "type": "signup"}),
        )
        .await,
        200,
    )
    .await;
    assert!(session["user"]["email_confirmed_at"].is_string());
    // A hook that refuses: its status and message, and no user left behind.
    let res = app
        .post(
            "/signup",
            json!({"email": "refused@example.com", "password": "secret123"}),
        )
        .await;
    let body = expect_json(res, 422).await;
    assert_eq!(body["msg"], "mailbox refused");
    assert_eq!(app.db.count("auth.users"), 1);
}

#[tokio::test]
async fn an_http_send_email_hook_is_signed_and_recovery_works_through_it() {
    let receiver = HookReceiver::start();
    let app = TestApp::builder()
        .env("GOTRUE_HOOK_SEND_EMAIL_ENABLED", "true")
        .env("GOTRUE_HOOK_SEND_EMAIL_URI", &receiver.url)
        .env("GOTRUE_HOOK_SEND_EMAIL_SECRETS", &receiver.secret)
        .env("GOTRUE_SMTP_MAX_FREQUENCY", "1ms")
        .spawn();
    app.signup_email("reset@example.com", "secret123").await;
    expect_json(
        app.post("/recover", json!({"email": "reset@example.com"}))
            .await,
        200,
    )
    .await;
    let payload = receiver.payloads().pop().expect("a signed call");
    assert_eq!(receiver.rejected(), 0);
    assert_eq!(payload["email_data"]["email_action_type"], "recovery");
    let token = payload["email_data"]["token"].as_str().unwrap();
    expect_json(
        app.post(
            "/verify",
            json!({"email": "reset@example.com", "token": token, "type": "recovery"}),
        )
        .await,
        200,
    )
    .await;
    // The hook failing is GoTrue's error, not a silent success.
    receiver.answer_next(
        500,
        r#"{"error":{"http_code":503,"message":"provider down"}}"#,
    );
    let res = app
        .post("/recover", json!({"email": "reset@example.com"}))
        .await;
    assert!(res.status().is_server_error(), "{}", res.status());
}
