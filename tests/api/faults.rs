//! Faults: the database going away mid-traffic, and SIGTERM with requests in flight.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::{expect_error, expect_json, DbProxy, TestApp, TestDb, APP_ID};

#[tokio::test]
async fn database_outage_fails_fast_with_503_writes_nothing_and_recovers() {
    let db = TestDb::migrated();
    let proxy = DbProxy::start();
    let url = proxy.url(&db);
    let app = TestApp::builder()
        .wechat()
        .env("DATABASE_URL", &url)
        .env("WEAUTH_DB_CONNECT_TIMEOUT_MS", "1000")
        .database(db)
        .spawn();
    let session = app.signup_email("outage@example.com", "secret123").await;
    let token = session["access_token"].as_str().unwrap().to_string();
    expect_json(app.get_auth("/user", &token).await, 200).await;
    let before = app.db.snapshot();

    proxy.cut();
    for _ in 0..3 {
        let started = Instant::now();
        let res = app.get_auth("/user", &token).await;
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
        let body = expect_error(res, 503, "unexpected_failure").await;
        assert!(body["error_id"].is_string(), "{body}");
    }
    // A WeChat login during the outage: WeChat is asked, but nothing is half-written.
    let code = app.emulator().login_code(APP_ID, "outage").await;
    let res = app
        .client
        .get(app.url(&format!("/wechat_mini/login?code={code}")))
        .send()
        .await
        .unwrap();
    expect_error(res, 503, "unexpected_failure").await;
    let res = app
        .post(
            "/token?grant_type=password",
            json!({"email": "outage@example.com", "password": "secret123"}),
        )
        .await;
    expect_error(res, 503, "unexpected_failure").await;

    proxy.restore();
    let started = Instant::now();
    loop {
        let res = app.get_auth("/user", &token).await;
        if res.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the pool did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        app.db.snapshot(),
        before,
        "no request during the outage left rows behind"
    );
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "outage@example.com", "password": "secret123"}),
        )
        .await,
        200,
    )
    .await;
}

/// Requests beyond the pool wait for a permit without a thread, and give up with a 503 after
/// `WEAUTH_DB_CONNECT_TIMEOUT_MS` instead of queueing forever; the permits come back afterwards.
#[tokio::test]
async fn a_full_pool_makes_waiters_time_out_with_503_then_recovers() {
    let db = TestDb::migrated();
    let pool = weauth::db::build_pool(&db.url, 2, Duration::from_millis(300));
    let hold = |pool: weauth::db::PgPool| async move {
        weauth::db::run(&pool, |_conn| {
            std::thread::sleep(Duration::from_millis(1500));
            Ok(())
        })
        .await
    };
    let holders = [
        tokio::spawn(hold(pool.clone())),
        tokio::spawn(hold(pool.clone())),
    ];
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let waiter = weauth::db::run(&pool, |_conn| Ok(())).await;
    let waited = started.elapsed();
    let err = waiter.expect_err("both connections are held");
    assert_eq!(err.status.as_u16(), 503);
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_millis(1200),
        "waited {waited:?}"
    );

    for holder in holders {
        holder.await.unwrap().expect("holders finish");
    }
    let one: i64 = weauth::db::run(&pool, |conn| {
        use diesel::RunQueryDsl;
        #[derive(diesel::QueryableByName)]
        struct One {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            one: i64,
        }
        let row: One = diesel::sql_query("SELECT 1::int8 AS one").get_result(conn)?;
        Ok(row.one)
    })
    .await
    .expect("the pool serves again once the connections are back");
    assert_eq!(one, 1);
}

/// The database stops answering without closing anything (a partition dropping packets):
/// requests holding a connection, and those queued behind them, get 503 within a few seconds;
/// when the network returns, the stalled work is rolled back, not committed late, and the pool
/// serves again.
#[tokio::test]
async fn a_stalled_database_answers_503_within_seconds_writes_nothing_and_recovers() {
    let db = TestDb::migrated();
    let proxy = DbProxy::start();
    let url = proxy.url(&db);
    let app = TestApp::builder()
        .env("DATABASE_URL", &url)
        .env("WEAUTH_DB_CONNECT_TIMEOUT_MS", "1000")
        .env("WEAUTH_DB_QUERY_TIMEOUT_MS", "1500")
        .env("GOTRUE_DB_MAX_POOL_SIZE", "3")
        .database(db)
        .spawn();
    let session = app.signup_email("stall@example.com", "secret123").await;
    let token = session["access_token"].as_str().unwrap().to_string();
    let refresh = session["refresh_token"].as_str().unwrap().to_string();
    expect_json(app.get_auth("/user", &token).await, 200).await;
    let before = app.db.snapshot();

    proxy.stall();
    let bounded = |req: reqwest::RequestBuilder| async move {
        let started = Instant::now();
        let res = req
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .expect("an answer, not a hang");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "took {:?}",
            started.elapsed()
        );
        res
    };
    // Writes in flight when the network goes silent, then more than the pool can hold.
    let mut calls = Vec::new();
    for i in 0..3 {
        calls.push(tokio::spawn(bounded(
            app.client.post(app.url("/signup")).json(
                &json!({"email": format!("stalled{i}@example.com"), "password": "secret123"}),
            ),
        )));
    }
    calls.push(tokio::spawn(bounded(
        app.client
            .post(app.url("/token?grant_type=refresh_token"))
            .json(&json!({ "refresh_token": refresh })),
    )));
    for _ in 0..3 {
        calls.push(tokio::spawn(bounded(
            app.client.get(app.url("/user")).bearer_auth(&token),
        )));
    }
    for call in calls {
        expect_error(call.await.unwrap(), 503, "unexpected_failure").await;
    }

    proxy.restore();
    let started = Instant::now();
    loop {
        let res = app.get_auth("/user", &token).await;
        if res.status() == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the pool did not recover"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give the stalled threads time to finish what they held.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        app.db.snapshot(),
        before,
        "work the client was told failed was committed after all"
    );
    // The refresh token was not rotated behind the client's back.
    expect_json(
        app.post(
            "/token?grant_type=refresh_token",
            json!({ "refresh_token": refresh }),
        )
        .await,
        200,
    )
    .await;
}
