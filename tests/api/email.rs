//! The e-mail family over a real SMTP server (the shared aiosmtpd sink): sign-up confirmation,
//! magic links and codes, recovery, invitations, generate_link, e-mail change, resend,
//! reauthentication, the mail link's redirects, and failures.

use serde_json::{json, Value};

use crate::support::*;

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Opens a mail link against this app (the link names `API_EXTERNAL_URL`) and returns the
/// `Location` it redirects to.
async fn open_link(app: &TestApp, link: &str) -> String {
    let url = url::Url::parse(link).unwrap();
    let local = format!("{}?{}", app.url(url.path()), url.query().unwrap_or(""));
    let res = no_redirects().get(local).send().await.unwrap();
    assert_eq!(res.status(), 303, "{}", res.text().await.unwrap());
    res.headers()["location"].to_str().unwrap().to_string()
}

/// The fragment of a redirect as sorted (key, value) pairs.
fn fragment(location: &str) -> Vec<(String, String)> {
    let (_, frag) = location.split_once('#').expect("a fragment");
    url::form_urlencoded::parse(frag.as_bytes())
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn verify(app: &TestApp, body: Value) -> reqwest::Response {
    app.post("/verify", body).await
}

/// A successful `POST /verify`'s body.
async fn verified(app: &TestApp, body: Value) -> Value {
    expect_json(verify(app, body).await, 200).await
}

async fn signup_unconfirmed(app: &TestApp, email: &str) -> Value {
    expect_json(
        app.post(
            "/signup",
            json!({"email": email, "password": "secret-pw-1"}),
        )
        .await,
        200,
    )
    .await
}

/// A confirmed user (signed up, then confirmed with the mailed code).
async fn confirmed_user(app: &TestApp, email: &str) -> Value {
    signup_unconfirmed(app, email).await;
    let code = last_mail_to(email).await.code();
    verified(
        app,
        json!({"type": "signup", "email": email, "token": code}),
    )
    .await
}

#[tokio::test]
async fn signup_sends_a_confirmation_and_the_code_confirms_once() {
    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("signup");
    let user = signup_unconfirmed(&app, &email).await;
    assert!(user.get("access_token").is_none(), "{user}");
    assert_eq!(user["email"], json!(email));
    assert!(user["confirmation_sent_at"].is_string());
    let mails = mails_to(&email).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.to, vec![email.to_string()]);
    assert_eq!(mail.subject, "Confirm your email address");
    assert!(mail.from.contains("noreply@weauth.test"));
    assert!(mail.headers["From"]
        .as_str()
        .unwrap()
        .contains("weauth tests"));
    let code = mail.code();
    assert_eq!(code.len(), 6);
    assert_eq!(mail.link_param("type"), "signup");
    assert_eq!(mail.link_param("redirect_to"), "http://localhost:3000");
    assert!(mail
        .link()
        .starts_with("http://localhost:9999/verify?token="));
    // Stored as GoTrue stores it: the hash in the user's column and in one_time_tokens.
    let hash = mail.link_param("token");
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM auth.users WHERE confirmation_token = '{hash}'"
        )),
        1
    );
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM auth.one_time_tokens WHERE token_hash = '{hash}' \
             AND token_type = 'confirmation_token' AND relates_to = '{email}'"
        )),
        1
    );
    // Unconfirmed: no password sign-in.
    let res = app
        .post(
            "/token?grant_type=password",
            json!({"email": email, "password": "secret-pw-1"}),
        )
        .await;
    expect_error(res, 400, "email_not_confirmed").await;

    let wrong = verify(
        &app,
        json!({"type": "signup", "email": email, "token": "000000"}),
    )
    .await;
    expect_error(wrong, 403, "otp_expired").await;
    let session = verified(
        &app,
        json!({"type": "signup", "email": email, "token": code}),
    )
    .await;
    assert!(session["access_token"].is_string());
    assert!(session["user"]["email_confirmed_at"].is_string());
    let again = verify(
        &app,
        json!({"type": "signup", "email": email, "token": code}),
    )
    .await;
    expect_error(again, 403, "otp_expired").await;
    // Password sign-in works now.
    let res = app
        .post(
            "/token?grant_type=password",
            json!({"email": email, "password": "secret-pw-1"}),
        )
        .await;
    expect_json(res, 200).await;
}

#[tokio::test]
async fn the_mail_link_redirects_with_the_session_in_the_fragment() {
    let app = TestApp::builder()
        .smtp()
        .env("GOTRUE_URI_ALLOW_LIST", "https://app.example.com/**")
        .spawn();
    let email = fresh_email("link");
    let res = app
        .client
        .post(app.url("/signup?redirect_to=https://app.example.com/welcome"))
        .json(&json!({"email": email, "password": "secret-pw-1"}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    let mail = last_mail_to(&email).await;
    assert_eq!(
        mail.link_param("redirect_to"),
        "https://app.example.com/welcome"
    );
    let location = open_link(&app, &mail.link()).await;
    assert!(
        location.starts_with("https://app.example.com/welcome#"),
        "{location}"
    );
    let pairs = fragment(&location);
    let keys: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_at",
            "expires_in",
            "refresh_token",
            "sb",
            "token_type",
            "type"
        ]
    );
    assert_eq!(pairs[5].1, "bearer");
    assert_eq!(pairs[6].1, "signup");
    let access = &pairs[0].1;
    let me = expect_json(app.get_auth("/user", access).await, 200).await;
    assert_eq!(me["email"], json!(email));
    assert!(me["email_confirmed_at"].is_string());

    // Used once: the same link now carries the error.
    let location = open_link(&app, &mail.link()).await;
    assert!(
        location.starts_with("https://app.example.com/welcome#"),
        "{location}"
    );
    let pairs = fragment(&location);
    assert_eq!(
        pairs,
        [
            ("error".to_string(), "access_denied".to_string()),
            ("error_code".to_string(), "otp_expired".to_string()),
            (
                "error_description".to_string(),
                "Email link is invalid or has expired".to_string()
            ),
            ("sb".to_string(), String::new()),
        ]
    );
}

#[tokio::test]
async fn a_foreign_redirect_to_lands_on_the_site_url() {
    let app = TestApp::builder()
        .smtp()
        .env("GOTRUE_URI_ALLOW_LIST", "https://app.example.com/**")
        .spawn();
    let email = fresh_email("evil");
    confirmed_user(&app, &email).await;
    for evil in [
        "https://evil.example.net/steal",
        "https://app.example.com.evil.net/",
        "https://app.example.com@evil.net/",
        "//evil.net",
        "javascript:alert(1)",
    ] {
        let res = app
            .client
            .post(app.url("/magiclink"))
            .query(&[("redirect_to", evil)])
            .json(&json!({"email": email}))
            .send()
            .await
            .unwrap();
        expect_json(res, 200).await;
        let mail = last_mail_to(&email).await;
        assert_eq!(
            mail.link_param("redirect_to"),
            "http://localhost:3000",
            "{evil}"
        );
        // The link itself, with a foreign redirect_to added by hand, also lands on the site.
        let tampered = format!(
            "{}&redirect_to={}",
            mail.link().split("&redirect_to=").next().unwrap(),
            url::form_urlencoded::byte_serialize(evil.as_bytes()).collect::<String>()
        );
        let location = open_link(&app, &tampered).await;
        assert!(
            location.starts_with("http://localhost:3000#access_token="),
            "{evil}: {location}"
        );
    }
}

#[tokio::test]
async fn magic_links_and_email_codes_sign_in() {
    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("magic");
    confirmed_user(&app, &email).await;

    expect_json(app.post("/otp", json!({"email": email})).await, 200).await;
    let mail = last_mail_to(&email).await;
    assert_eq!(mail.subject, "Your sign-in link");
    assert_eq!(mail.link_param("type"), "magiclink");
    let session = verified(
        &app,
        json!({"type": "email", "email": email, "token": mail.code()}),
    )
    .await;
    assert!(session["access_token"].is_string());

    expect_json(app.post("/magiclink", json!({"email": email})).await, 200).await;
    let mail = last_mail_to(&email).await;
    let session = verified(
        &app,
        json!({"type": "magiclink", "token_hash": mail.link_param("token")}),
    )
    .await;
    assert_eq!(session["user"]["email"], json!(email));
}

#[tokio::test]
async fn otp_signs_up_new_addresses_unless_create_user_is_false() {
    let app = TestApp::builder().smtp().spawn();
    let stranger = fresh_email("stranger");
    let res = app
        .post("/otp", json!({"email": stranger, "create_user": false}))
        .await;
    expect_error(res, 422, "otp_disabled").await;
    assert!(mails_to(&stranger).await.is_empty());
    assert_eq!(app.db.count("auth.users"), 0);

    let newcomer = fresh_email("newcomer");
    let res = app
        .post("/otp", json!({"email": newcomer, "data": {"name": "Ada"}}))
        .await;
    assert_eq!(expect_json(res, 200).await, json!({}));
    let mail = last_mail_to(&newcomer).await;
    assert_eq!(mail.subject, "Confirm your email address");
    assert!(mail.html.contains("name Ada"), "{}", mail.html);
    let session = verified(
        &app,
        json!({"type": "email", "email": newcomer, "token": mail.code()}),
    )
    .await;
    assert!(session["user"]["email_confirmed_at"].is_string());
    assert_eq!(session["user"]["user_metadata"]["name"], json!("Ada"));
    let res = app
        .post(
            "/otp",
            json!({"email": "not-an-email", "create_user": true}),
        )
        .await;
    expect_error(res, 400, "validation_failed").await;
}

#[tokio::test]
async fn recovery_by_code_then_a_new_password() {
    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("recover");
    confirmed_user(&app, &email).await;

    let unknown = fresh_email("nobody");
    let res = app.post("/recover", json!({"email": unknown})).await;
    assert_eq!(expect_json(res, 200).await, json!({}));
    assert!(mails_to(&unknown).await.is_empty());
    expect_error(
        app.post("/recover", json!({})).await,
        400,
        "validation_failed",
    )
    .await;

    let res = app
        .post("/recover", json!({"email": email.to_uppercase()}))
        .await;
    assert_eq!(expect_json(res, 200).await, json!({}));
    let mail = last_mail_to(&email).await;
    assert_eq!(mail.subject, "Reset your password");
    assert_eq!(mail.link_param("type"), "recovery");
    let session = verified(
        &app,
        json!({"type": "recovery", "email": email, "token": mail.code()}),
    )
    .await;
    let access = session["access_token"].as_str().unwrap();
    let res = app
        .client
        .put(app.url("/user"))
        .bearer_auth(access)
        .json(&json!({"password": "brand-new-pw-2"}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    let res = app
        .post(
            "/token?grant_type=password",
            json!({"email": email, "password": "brand-new-pw-2"}),
        )
        .await;
    expect_json(res, 200).await;
}

#[tokio::test]
async fn invitations_need_the_service_role_and_confirm_by_link() {
    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("invitee");
    let res = app.post("/invite", json!({"email": email})).await;
    expect_error(res, 401, "no_authorization").await;
    let res = app
        .client
        .post(app.url("/invite"))
        .bearer_auth(app.service_role_key())
        .json(&json!({"email": email, "data": {"name": "Grace"}}))
        .send()
        .await
        .unwrap();
    let user = expect_json(res, 200).await;
    assert_eq!(user["email"], json!(email));
    assert!(user["invited_at"].is_string(), "{user}");
    let mail = last_mail_to(&email).await;
    assert_eq!(mail.subject, "You've been invited");
    assert_eq!(mail.link_param("type"), "invite");
    let location = open_link(&app, &mail.link()).await;
    let pairs = fragment(&location);
    assert!(
        pairs.iter().any(|(k, v)| k == "type" && v == "invite"),
        "{location}"
    );
    // Confirmed now: a second invitation is refused.
    let res = app
        .client
        .post(app.url("/invite"))
        .bearer_auth(app.service_role_key())
        .json(&json!({"email": email}))
        .send()
        .await
        .unwrap();
    expect_error(res, 422, "email_exists").await;
}

async fn generate(app: &TestApp, body: Value) -> reqwest::Response {
    app.client
        .post(app.url("/admin/generate_link"))
        .bearer_auth(app.service_role_key())
        .json(&body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn generate_link_answers_every_type_without_sending() {
    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("generated");
    // magiclink for an unknown address becomes a sign-up.
    let link = expect_json(
        generate(
            &app,
            json!({"type": "magiclink", "email": email, "data": {"name": "Lin"}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(link["verification_type"], json!("signup"));
    assert_eq!(
        link["user_metadata"],
        json!({"name": "Lin"}),
        "as GoTrue: data only"
    );
    assert_eq!(link["email"], json!(email));
    assert_eq!(link["redirect_to"], json!("http://localhost:3000"));
    let otp = link["email_otp"].as_str().unwrap();
    let hashed = link["hashed_token"].as_str().unwrap();
    assert_eq!(otp.len(), 6);
    assert_eq!(
        link["action_link"],
        json!(format!(
            "http://localhost:9999/verify?token={hashed}&type=signup&redirect_to=http://localhost:3000"
        ))
    );
    let session = verified(
        &app,
        json!({"type": "signup", "email": email, "token": otp}),
    )
    .await;
    assert_eq!(session["user"]["user_metadata"]["name"], json!("Lin"));

    for kind in ["magiclink", "recovery"] {
        let link = expect_json(
            generate(&app, json!({"type": kind, "email": email})).await,
            200,
        )
        .await;
        assert_eq!(link["verification_type"], json!(kind));
        let location = open_link(&app, link["action_link"].as_str().unwrap()).await;
        assert!(location.contains("access_token="), "{kind}: {location}");
    }
    let new_email = fresh_email("generated-new");
    let link = expect_json(
        generate(
            &app,
            json!({"type": "email_change_new", "email": email, "new_email": new_email}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(link["new_email"], json!(new_email));
    let location = open_link(&app, link["action_link"].as_str().unwrap()).await;
    assert!(location.contains("access_token="), "{location}");
    assert_eq!(
        app.db.scalar(&format!(
            "SELECT count(*) FROM auth.users WHERE email = '{new_email}'"
        )),
        1
    );

    let invitee = fresh_email("generated-invite");
    let link = expect_json(
        generate(&app, json!({"type": "invite", "email": invitee})).await,
        200,
    )
    .await;
    assert!(link["invited_at"].is_string());
    let res = generate(
        &app,
        json!({"type": "recovery", "email": fresh_email("ghost")}),
    )
    .await;
    expect_error(res, 404, "user_not_found").await;
    let res = generate(&app, json!({"type": "bogus", "email": email})).await;
    expect_error(res, 400, "validation_failed").await;
    let res = generate(&app, json!({"type": "signup", "email": new_email})).await;
    expect_error(res, 422, "email_exists").await;
    assert!(
        mails_to(&email).await.is_empty(),
        "generate_link sends nothing"
    );
    assert!(mails_to(&invitee).await.is_empty());
}

#[tokio::test]
async fn a_secure_email_change_needs_both_addresses() {
    let app = TestApp::builder().smtp().spawn();
    let old = fresh_email("old");
    let session = confirmed_user(&app, &old).await;
    let access = session["access_token"].as_str().unwrap();
    let new = fresh_email("new");
    let res = app
        .client
        .put(app.url("/user"))
        .bearer_auth(access)
        .json(&json!({"email": new}))
        .send()
        .await
        .unwrap();
    let user = expect_json(res, 200).await;
    assert_eq!(user["email"], json!(old));
    assert_eq!(user["new_email"], json!(new));
    let to_new = last_mail_to(&new).await;
    let to_old = last_mail_to(&old).await;
    assert_eq!(to_new.subject, "Confirm your new email address");
    assert_eq!(to_old.subject, "Confirm your new email address");
    assert!(to_old.html.contains(&format!("sent to {old}")));
    assert_ne!(to_new.code(), to_old.code());

    let first = verified(
        &app,
        json!({"type": "email_change", "email": new, "token": to_new.code()}),
    )
    .await;
    assert_eq!(
        first,
        json!({"msg": "Confirmation link accepted. Please proceed to confirm link sent to the other email", "code": "200"})
    );
    let location = open_link(&app, &to_old.link()).await;
    let pairs = fragment(&location);
    let access = &pairs.iter().find(|(k, _)| k == "access_token").unwrap().1;
    let me = expect_json(app.get_auth("/user", access).await, 200).await;
    assert_eq!(me["email"], json!(new));
    assert!(me.get("new_email").is_none(), "{me}");
}

#[tokio::test]
async fn without_secure_change_only_the_new_address_confirms() {
    let app = TestApp::builder()
        .smtp()
        .env("GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED", "false")
        .spawn();
    let old = fresh_email("old1");
    let session = confirmed_user(&app, &old).await;
    let new = fresh_email("new1");
    let res = app
        .client
        .put(app.url("/user"))
        .bearer_auth(session["access_token"].as_str().unwrap())
        .json(&json!({"email": new}))
        .send()
        .await
        .unwrap();
    expect_json(res, 200).await;
    assert_eq!(mails_to(&old).await.len(), 1, "only the sign-up mail");
    let to_new = last_mail_to(&new).await;
    let session = verified(
        &app,
        json!({"type": "email_change", "email": new, "token": to_new.code()}),
    )
    .await;
    assert_eq!(session["user"]["email"], json!(new));
}

#[tokio::test]
async fn resend_and_the_resend_interval() {
    let app = TestApp::builder()
        .smtp()
        .env("GOTRUE_SMTP_MAX_FREQUENCY", "60s")
        .spawn();
    let email = fresh_email("resend");
    signup_unconfirmed(&app, &email).await;
    let res = app
        .post("/resend", json!({"type": "signup", "email": email}))
        .await;
    let body = expect_error(res, 429, "over_email_send_rate_limit").await;
    assert!(
        body["msg"]
            .as_str()
            .unwrap()
            .starts_with("For security purposes, you can only request this after"),
        "{body}"
    );
    assert_eq!(mails_to(&email).await.len(), 1);
    // Unknown address: nothing to resend, same answer as a send.
    let res = app
        .post(
            "/resend",
            json!({"type": "signup", "email": fresh_email("x")}),
        )
        .await;
    assert_eq!(expect_json(res, 200).await, json!({}));

    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("resend2");
    signup_unconfirmed(&app, &email).await;
    let first = last_mail_to(&email).await.code();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let res = app
        .post("/resend", json!({"type": "signup", "email": email}))
        .await;
    assert_eq!(expect_json(res, 200).await, json!({}));
    let second = last_mail_to(&email).await.code();
    // The new code replaced the old one.
    if first != second {
        let res = verify(
            &app,
            json!({"type": "signup", "email": email, "token": first}),
        )
        .await;
        expect_error(res, 403, "otp_expired").await;
    }
    verified(
        &app,
        json!({"type": "signup", "email": email, "token": second}),
    )
    .await;
}

#[tokio::test]
async fn reauthentication_by_email() {
    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("reauth");
    let session = confirmed_user(&app, &email).await;
    let res = app
        .get_auth("/reauthenticate", session["access_token"].as_str().unwrap())
        .await;
    assert_eq!(expect_json(res, 200).await, json!({}));
    let mail = last_mail_to(&email).await;
    assert_eq!(
        mail.subject,
        format!("{} is your verification code", mail.code())
    );
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM auth.one_time_tokens WHERE token_type = 'reauthentication_token'"
        ),
        1
    );
}

#[tokio::test]
async fn expired_codes_are_refused() {
    let app = TestApp::builder()
        .smtp()
        .env("GOTRUE_MAILER_OTP_EXP", "1")
        .spawn();
    let email = fresh_email("expired");
    signup_unconfirmed(&app, &email).await;
    let code = last_mail_to(&email).await.code();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let res = verify(
        &app,
        json!({"type": "signup", "email": email, "token": code}),
    )
    .await;
    expect_error(res, 403, "otp_expired").await;
}

#[tokio::test]
async fn a_refused_mail_leaves_no_user_and_no_code() {
    let app = TestApp::builder().smtp().spawn();
    let email = fresh_email("user+reject");
    let before = app.db.snapshot();
    let res = app
        .post(
            "/signup",
            json!({"email": email, "password": "secret-pw-1"}),
        )
        .await;
    let body = expect_error(res, 500, "unexpected_failure").await;
    assert_eq!(body["msg"], json!("Error sending confirmation email"));
    assert_eq!(app.db.snapshot(), before);
    assert_eq!(app.db.count("auth.one_time_tokens"), 0);

    let res = app
        .post("/otp", json!({"email": fresh_email("x+tempfail")}))
        .await;
    let body = expect_error(res, 500, "unexpected_failure").await;
    assert_eq!(body["msg"], json!("Error sending confirmation email"));
    assert_eq!(app.db.count("auth.users"), 0);
}

#[tokio::test]
async fn an_unreachable_smtp_server_is_a_bounded_failure() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port().to_string();
    drop(closed);
    let app = TestApp::builder()
        .smtp()
        .env("GOTRUE_SMTP_PORT", &port)
        .env("GOTRUE_SMTP_PASS", "smtp-secret-password")
        .env("GOTRUE_SMTP_USER", "user")
        .spawn();
    let res = app
        .post("/recover", json!({"email": fresh_email("x")}))
        .await;
    // Unknown address: nothing is sent, so nothing fails.
    expect_json(res, 200).await;
    let res = app
        .post(
            "/signup",
            json!({"email": fresh_email("y"), "password": "secret-pw-1"}),
        )
        .await;
    let body = expect_error(res, 500, "unexpected_failure").await;
    assert!(!body.to_string().contains("smtp-secret-password"));
    assert_eq!(app.db.count("auth.users"), 0);
}

#[tokio::test]
async fn the_global_mail_cap_and_gotrues_default_templates() {
    let app = TestApp::builder()
        .smtp()
        .env("GOTRUE_RATE_LIMIT_EMAIL_SENT", "2")
        .env("GOTRUE_MAILER_TEMPLATES_RECOVERY", "")
        .spawn();
    let email = fresh_email("cap");
    signup_unconfirmed(&app, &email).await;
    let code = last_mail_to(&email).await.code();
    verified(
        &app,
        json!({"type": "signup", "email": email, "token": code}),
    )
    .await;
    expect_json(app.post("/recover", json!({"email": email})).await, 200).await;
    let mail = last_mail_to(&email).await;
    // GoTrue's built-in recovery body.
    assert!(
        mail.html.contains("<h2>Reset your password</h2>"),
        "{}",
        mail.html
    );
    assert!(mail.html.contains("Reset password</a>"));
    let res = app.post("/recover", json!({"email": email})).await;
    let body = expect_error(res, 429, "over_email_send_rate_limit").await;
    assert_eq!(body["msg"], json!("email rate limit exceeded"));
}
