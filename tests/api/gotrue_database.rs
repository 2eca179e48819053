//! weauth on a database GoTrue created: migrations apply on top, existing users keep their ids,
//! identities, sessions and bcrypt passwords.

use diesel::connection::SimpleConnection;
use diesel::RunQueryDsl;
use serde_json::json;

use crate::support::{expect_json, TestApp, TestDb};

const LEGACY_USER: &str = "11111111-1111-4111-8111-111111111111";

#[tokio::test]
async fn existing_gotrue_users_sign_in_after_weauth_migrates() {
    let db = TestDb::empty();
    db.conn()
        .batch_execute(include_str!("../fixtures/gotrue_existing_database.sql"))
        .unwrap();
    let before = db.snapshot_gotrue();
    let app = TestApp::builder().database(db).spawn();
    assert_eq!(
        app.db.snapshot_gotrue(),
        before,
        "migrations must not add or drop rows"
    );
    assert_eq!(
        app.db.count("auth.schema_migrations"),
        4,
        "GoTrue's own bookkeeping is untouched"
    );
    assert_eq!(app.db.count("auth.flow_state"), 0);
    assert_eq!(app.db.scalar("SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'auth' AND p.proname IN ('uid', 'role', 'email', 'jwt')"), 4);

    // A user GoTrue created signs in with the password GoTrue hashed (bcrypt).
    let session = expect_json(
        app.post(
            "/auth/v1/token?grant_type=password",
            json!({"email": "legacy@example.com", "password": "gotrue-password-1"}),
        )
        .await,
        200,
    )
    .await;
    let user = &session["user"];
    assert_eq!(user["id"], LEGACY_USER);
    assert_eq!(user["user_metadata"]["nickname"], "旧用户");
    assert_eq!(
        user["identities"][0]["identity_id"],
        "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
    );
    assert_eq!(user["created_at"], "2024-01-01T00:00:00Z");
    // ... and the hash was upgraded to argon2id, which still verifies.
    assert_eq!(app.db.scalar(&format!("SELECT count(*) FROM auth.users WHERE id = '{LEGACY_USER}' AND encrypted_password LIKE '$argon2id$%'")), 1);
    expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"email": "legacy@example.com", "password": "gotrue-password-1"}),
        )
        .await,
        200,
    )
    .await;
    // The phone user too.
    let phone = expect_json(
        app.post(
            "/token?grant_type=password",
            json!({"phone": "+8613900001111", "password": "phone-pass-2"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(phone["user"]["id"], "22222222-2222-4222-8222-222222222222");
    // A refresh token GoTrue issued keeps working and rotates.
    let refreshed = expect_json(
        app.post(
            "/token?grant_type=refresh_token",
            json!({"refresh_token": "legacytoken1"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(refreshed["user"]["id"], LEGACY_USER);
    assert_ne!(refreshed["refresh_token"], "legacytoken1");
    assert_eq!(
        app.db.scalar(
            "SELECT count(*) FROM auth.refresh_tokens WHERE token = 'legacytoken1' AND revoked"
        ),
        1
    );
    // Access tokens mean the same thing to PostgREST: auth.uid() reads `sub` from the claims.
    let claims =
        jsonwebtoken::dangerous_insecure_decode_claims(refreshed["access_token"].as_str().unwrap());
    let mut conn = app.db.conn();
    app.db.execute("SELECT 1");
    diesel::sql_query("SELECT set_config('request.jwt.claims', $1, false)")
        .bind::<diesel::sql_types::Text, _>(&claims)
        .execute(&mut conn)
        .unwrap();
    #[derive(diesel::QueryableByName)]
    struct Uid {
        #[diesel(sql_type = diesel::sql_types::Text)]
        uid: String,
    }
    let uid: Uid = diesel::sql_query("SELECT auth.uid()::text AS uid")
        .get_result(&mut conn)
        .unwrap();
    assert_eq!(uid.uid, LEGACY_USER);
}

#[test]
fn migrations_are_idempotent() {
    let db = TestDb::migrated();
    db.execute("DELETE FROM __diesel_schema_migrations");
    let applied = weauth::db::run_migrations(&db.url).unwrap();
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()))
        .count();
    assert!(migrations >= 3);
    assert_eq!(
        applied.len(),
        migrations,
        "every migration re-runs cleanly on its own output"
    );
}

trait GotrueSnapshot {
    fn snapshot_gotrue(&self) -> Vec<(String, i64)>;
}

impl GotrueSnapshot for TestDb {
    fn snapshot_gotrue(&self) -> Vec<(String, i64)> {
        [
            "auth.users",
            "auth.identities",
            "auth.sessions",
            "auth.refresh_tokens",
            "auth.mfa_amr_claims",
        ]
        .iter()
        .map(|t| (t.to_string(), self.count(t)))
        .collect()
    }
}

mod jsonwebtoken {
    /// The payload of a JWT as a JSON string (tests only; no verification).
    pub fn dangerous_insecure_decode_claims(token: &str) -> String {
        use base64::Engine;
        let payload = token.split('.').nth(1).unwrap();
        String::from_utf8(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(payload)
                .unwrap(),
        )
        .unwrap()
    }
}
