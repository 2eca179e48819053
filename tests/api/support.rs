//! Test harness: a fresh PostgreSQL database per test (cloned from a migrated template), weauth
//! served over real HTTP on a random port, and the emulator (WeChat, Aliyun and Tencent SMS)
//! beside it.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::Duration;

use diesel::prelude::*;
use diesel::sql_types::BigInt;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

use weauth::config::Config;
use weauth::state::AppState;

pub const JWT_SECRET: &str = "test-secret-that-is-long-enough-for-production-0123456789";
pub const APP_ID: &str = "wxtest00000000app1";
pub const APP_SECRET: &str = "test-app-secret-1";
pub const APP_ID_2: &str = "wxtest00000000app2";
pub const APP_SECRET_2: &str = "test-app-secret-2";
/// The website (wechat_qr), official-account (wechat_mp) and native-app (wechat_app) apps.
pub const QR_APP_ID: &str = "wxtest0000000qrweb";
pub const MP_APP_ID: &str = "wxtest00000000mpoa";
pub const NATIVE_APP_ID: &str = "wxtest000000native";

fn admin_url() -> String {
    std::env::var("WEAUTH_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

fn url_for(db: &str) -> String {
    let admin = admin_url();
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .unwrap_or(admin);
    // No TLS to the local test server: OpenSSL's exit-time cleanup can race a pool that is
    // still closing its connections in another thread, which once crashed the test binary
    // (SIGSEGV) after every test had passed.
    format!("{base}/{db}?sslmode=disable")
}

/// Name of the template database for the current migrations (a hash of their text).
fn template_name() -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut entries: Vec<_> = walk(&dir);
    entries.sort();
    for path in entries {
        hasher.update(path.to_string_lossy().as_bytes());
        hasher.update(std::fs::read(&path).unwrap_or_default());
    }
    format!("weauth_tpl_{}", &hex::encode(hasher.finalize())[..16])
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// A database of its own for one test, dropped when the test ends.
pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    /// A fresh database with weauth's migrations applied.
    pub fn migrated() -> TestDb {
        let template = template_name();
        let mut admin = PgConnection::establish(&admin_url())
            .expect("PostgreSQL on 127.0.0.1:5432 (user postgres)");
        // One process builds the template; the others wait on the lock.
        diesel::sql_query("SELECT pg_advisory_lock(4242001)")
            .execute(&mut admin)
            .unwrap();
        if !database_exists(&mut admin, &template) {
            let building = format!("{template}_build");
            diesel::sql_query(format!("DROP DATABASE IF EXISTS {building} WITH (FORCE)"))
                .execute(&mut admin)
                .unwrap();
            diesel::sql_query(format!("CREATE DATABASE {building}"))
                .execute(&mut admin)
                .unwrap();
            weauth::db::run_migrations(&url_for(&building))
                .expect("migrations apply to an empty database");
            diesel::sql_query(format!("ALTER DATABASE {building} RENAME TO {template}"))
                .execute(&mut admin)
                .unwrap();
        }
        diesel::sql_query("SELECT pg_advisory_unlock(4242001)")
            .execute(&mut admin)
            .unwrap();
        Self::create(&mut admin, Some(&template))
    }

    /// An empty database (no schema at all), for migration tests.
    pub fn empty() -> TestDb {
        let mut admin = PgConnection::establish(&admin_url())
            .expect("PostgreSQL on 127.0.0.1:5432 (user postgres)");
        Self::create(&mut admin, None)
    }

    fn create(admin: &mut PgConnection, template: Option<&str>) -> TestDb {
        let name = format!("weauth_test_{}", uuid::Uuid::new_v4().simple());
        let sql = match template {
            Some(t) => format!("CREATE DATABASE {name} TEMPLATE {t}"),
            None => format!("CREATE DATABASE {name}"),
        };
        // Cloning fails if another session is briefly connected to the template; retry.
        let mut attempts = 0;
        loop {
            match diesel::sql_query(&sql).execute(admin) {
                Ok(_) => break,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot create test database: {e}"),
            }
        }
        TestDb {
            url: url_for(&name),
            name,
        }
    }

    pub fn conn(&self) -> PgConnection {
        PgConnection::establish(&self.url).expect("connect to test database")
    }

    /// Runs a query returning one bigint (`SELECT count(*) ...`).
    pub fn scalar(&self, sql: &str) -> i64 {
        #[derive(QueryableByName)]
        struct Row {
            #[diesel(sql_type = BigInt)]
            n: i64,
        }
        let row: Row = diesel::sql_query(format!("SELECT ({sql})::bigint AS n"))
            .get_result(&mut self.conn())
            .unwrap();
        row.n
    }

    pub fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {table}"))
    }

    pub fn execute(&self, sql: &str) {
        diesel::sql_query(sql).execute(&mut self.conn()).unwrap();
    }

    /// Row counts of every table a request may write, to prove an error changed nothing.
    pub fn snapshot(&self) -> Vec<(String, i64)> {
        [
            "auth.users",
            "auth.identities",
            "auth.sessions",
            "auth.refresh_tokens",
            "auth.mfa_amr_claims",
            "weauth.wechat_session_keys",
        ]
        .iter()
        .map(|t| (t.to_string(), self.count(t)))
        .collect()
    }
}

fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    #[derive(QueryableByName)]
    struct Row {
        #[diesel(sql_type = BigInt)]
        n: i64,
    }
    let row: Row = diesel::sql_query(format!(
        "SELECT count(*) AS n FROM pg_database WHERE datname = '{name}'"
    ))
    .get_result(conn)
    .unwrap();
    row.n > 0
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Ok(mut admin) = PgConnection::establish(&admin_url()) {
            let _ = diesel::sql_query(format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&mut admin);
        }
    }
}

/// A server running on its own actix system thread; stopped on drop.
pub struct Running {
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        // Stop without waiting for the drain; the database is dropped right after.
        std::thread::spawn(move || actix_web::rt::System::new().block_on(handle.stop(false)));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub fn spawn_server<F>(make: F) -> (u16, Running)
where
    F: FnOnce(TcpListener) -> std::io::Result<actix_web::dev::Server> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = make(listener).expect("server starts");
            tx.send(server.handle()).unwrap();
            let _ = server.await;
        })
    });
    let handle = rx.recv().unwrap();
    (
        port,
        Running {
            handle,
            thread: Some(thread),
        },
    )
}

/// The WeChat emulator on a random port, configured with the two test apps.
pub struct Emulator {
    pub url: String,
    _server: Running,
}

impl Emulator {
    pub fn start() -> Emulator {
        let mut env = wechat_env();
        env.extend(sms_env());
        let config =
            weauth_emulator::EmulatorConfig::from_lookup(&|name| env.get(name).cloned()).unwrap();
        let (port, server) = spawn_server(move |l| weauth_emulator::start(config, l));
        Emulator {
            url: format!("http://127.0.0.1:{port}"),
            _server: server,
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let res = reqwest::Client::new()
            .post(format!("{}{path}", self.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "emulator {path} answered {}",
            res.status()
        );
        res.json().await.unwrap()
    }

    /// What `wx.login` gives `user` in `appid`.
    pub async fn login_code(&self, appid: &str, user: &str) -> String {
        self.post(
            "/emulator/login-code",
            json!({"appid": appid, "user": user}),
        )
        .await["code"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// What the getPhoneNumber button gives for `phone`.
    pub async fn phone_code(&self, appid: &str, phone: &str) -> String {
        self.post(
            "/emulator/phone-code",
            json!({"appid": appid, "phone": phone}),
        )
        .await["code"]
            .as_str()
            .unwrap()
            .to_string()
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/emulator/stats", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn fail_next(&self, api: &str, errcode: i64) {
        self.post(
            "/emulator/fail-next",
            json!({"api": api, "errcode": errcode}),
        )
        .await;
    }

    /// The SMS the emulator accepted for `phone` (any form: `13800138000`, `8613800138000`,
    /// `+8613800138000`), oldest first. Each is `{provider, phone (as sent), e164, sign_name,
    /// template, params, otp, message_id, time}`; `otp` is the code.
    pub async fn sms_messages(&self, phone: &str) -> Vec<Value> {
        let res = reqwest::Client::new()
            .get(format!("{}/emulator/sms", self.url))
            .query(&[("phone", phone)])
            .send()
            .await
            .unwrap();
        assert!(
            res.status().is_success(),
            "emulator /emulator/sms answered {}",
            res.status()
        );
        let body: Value = res.json().await.unwrap();
        body["messages"].as_array().cloned().unwrap_or_default()
    }

    /// The code of the last SMS sent to `phone`, if any.
    pub async fn last_sms_otp(&self, phone: &str) -> Option<String> {
        self.sms_messages(phone)
            .await
            .last()
            .and_then(|m| m["otp"].as_str().map(str::to_string))
    }

    /// Makes the next `SendSms` of `provider` (`aliyun` | `tencent`) fail with the provider's
    /// `code` (`isv.BUSINESS_LIMIT_CONTROL`, `LimitExceeded.PhoneNumberDailyLimit`, ...), in the
    /// provider's real error shape.
    pub async fn sms_fail_next(&self, provider: &str, code: &str) {
        self.post(
            "/emulator/sms/fail_next",
            json!({"provider": provider, "code": code}),
        )
        .await;
    }
}

/// The test SMS accounts: the emulator accepts exactly these, and `Builder::sms` gives weauth the
/// same (secrets too), so a signature mismatch is a signer/verifier disagreement.
pub const SMS_ALIYUN_ACCESS_KEY_ID: &str = "LTAItestAccessKey01";
pub const SMS_ALIYUN_ACCESS_KEY_SECRET: &str = "test-aliyun-access-key-secret";
pub const SMS_ALIYUN_SIGN_NAME: &str = "weauth测试";
pub const SMS_ALIYUN_TEMPLATE_CODE: &str = "SMS_465000001";
pub const SMS_TENCENT_SECRET_ID: &str = "AKIDtestSecretId0000000000000001";
pub const SMS_TENCENT_SECRET_KEY: &str = "test-tencent-secret-key";
pub const SMS_TENCENT_SDK_APP_ID: &str = "1400006666";
pub const SMS_TENCENT_SIGN_NAME: &str = "weauth测试";
pub const SMS_TENCENT_TEMPLATE_ID: &str = "2100001";

/// The `WEAUTH_SMS_*` account variables of both providers (endpoints not included).
pub fn sms_env() -> BTreeMap<String, String> {
    [
        ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID", SMS_ALIYUN_ACCESS_KEY_ID),
        (
            "WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET",
            SMS_ALIYUN_ACCESS_KEY_SECRET,
        ),
        ("WEAUTH_SMS_ALIYUN_SIGN_NAME", SMS_ALIYUN_SIGN_NAME),
        ("WEAUTH_SMS_ALIYUN_TEMPLATE_CODE", SMS_ALIYUN_TEMPLATE_CODE),
        ("WEAUTH_SMS_TENCENT_SECRET_ID", SMS_TENCENT_SECRET_ID),
        ("WEAUTH_SMS_TENCENT_SECRET_KEY", SMS_TENCENT_SECRET_KEY),
        ("WEAUTH_SMS_TENCENT_SDK_APP_ID", SMS_TENCENT_SDK_APP_ID),
        ("WEAUTH_SMS_TENCENT_SIGN_NAME", SMS_TENCENT_SIGN_NAME),
        ("WEAUTH_SMS_TENCENT_TEMPLATE_ID", SMS_TENCENT_TEMPLATE_ID),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// weauth's variables for sending SMS through `provider` (`aliyun` | `tencent`) of the emulator
/// at `emulator_url`.
pub fn sms_provider_env(provider: &str, emulator_url: &str) -> BTreeMap<String, String> {
    assert!(
        matches!(provider, "aliyun" | "tencent"),
        "SMS provider {provider:?}: aliyun or tencent"
    );
    let mut env = sms_env();
    env.insert("GOTRUE_SMS_PROVIDER".into(), provider.into());
    env.insert("WEAUTH_SMS_ALIYUN_ENDPOINT".into(), emulator_url.into());
    env.insert("WEAUTH_SMS_TENCENT_ENDPOINT".into(), emulator_url.into());
    env
}

fn wechat_env() -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "GOTRUE_EXTERNAL_WECHAT_APP_ID".to_string(),
            APP_ID.to_string(),
        ),
        (
            "GOTRUE_EXTERNAL_WECHAT_SECRET".to_string(),
            APP_SECRET.to_string(),
        ),
        (
            "GOTRUE_EXTERNAL_WECHAT_APPS".to_string(),
            format!("{APP_ID_2}:{APP_SECRET_2}"),
        ),
        // Known to the emulator always; weauth uses them when a test enables them (`oauth`).
        (
            "GOTRUE_EXTERNAL_WECHAT_QR_CLIENT_ID".into(),
            QR_APP_ID.into(),
        ),
        (
            "GOTRUE_EXTERNAL_WECHAT_QR_SECRET".into(),
            "test-qr-secret".into(),
        ),
        (
            "GOTRUE_EXTERNAL_WECHAT_MP_CLIENT_ID".into(),
            MP_APP_ID.into(),
        ),
        (
            "GOTRUE_EXTERNAL_WECHAT_MP_SECRET".into(),
            "test-mp-secret".into(),
        ),
        (
            "GOTRUE_EXTERNAL_WECHAT_APP_CLIENT_ID".into(),
            NATIVE_APP_ID.into(),
        ),
        (
            "GOTRUE_EXTERNAL_WECHAT_APP_SECRET".into(),
            "test-native-secret".into(),
        ),
    ])
}

/// weauth on a random port against its own database.
pub struct TestApp {
    pub url: String,
    pub db: TestDb,
    pub client: reqwest::Client,
    pub emulator: Option<Emulator>,
    _server: Running,
    env: BTreeMap<String, String>,
}

pub struct Builder {
    env: BTreeMap<String, String>,
    wechat: bool,
    db: Option<TestDb>,
    /// `Builder::sms`: the SMS provider to send through the emulator.
    sms: Option<String>,
}

impl Builder {
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.insert(key.to_string(), value.to_string());
        self
    }

    /// Starts the WeChat emulator and configures weauth's two test apps against it.
    pub fn wechat(mut self) -> Self {
        self.wechat = true;
        self
    }

    /// The WeChat emulator, with the website, official-account and native-app providers enabled.
    pub fn oauth(self) -> Self {
        self.wechat()
            .env("GOTRUE_EXTERNAL_WECHAT_QR_ENABLED", "true")
            .env("GOTRUE_EXTERNAL_WECHAT_MP_ENABLED", "true")
            .env("GOTRUE_EXTERNAL_WECHAT_APP_ENABLED", "true")
    }

    /// Starts the emulator and sends SMS through its `provider` (`"aliyun"` | `"tencent"`):
    /// sets `GOTRUE_SMS_PROVIDER` and the `WEAUTH_SMS_*` account and endpoint variables. Read
    /// the codes with `app.emulator().sms_messages(phone)` / `last_sms_otp(phone)`.
    pub fn sms(mut self, provider: &str) -> Self {
        assert!(
            matches!(provider, "aliyun" | "tencent"),
            "Builder::sms({provider:?}): aliyun or tencent"
        );
        self.sms = Some(provider.to_string());
        self
    }

    /// Sends SMS through GoTrue's Send SMS hook to `receiver` (`GOTRUE_HOOK_SEND_SMS_ENABLED`,
    /// `_URI`, `_SECRETS`); the hook takes precedence over any `GOTRUE_SMS_PROVIDER`.
    pub fn sms_hook(self, receiver: &crate::hook_receiver::HookReceiver) -> Self {
        self.env("GOTRUE_HOOK_SEND_SMS_ENABLED", "true")
            .env("GOTRUE_HOOK_SEND_SMS_URI", &receiver.url)
            .env("GOTRUE_HOOK_SEND_SMS_SECRETS", &receiver.secret)
    }

    /// Uses an existing database (for example one GoTrue created) instead of a fresh one.
    pub fn database(mut self, db: TestDb) -> Self {
        self.db = Some(db);
        self
    }

    pub fn spawn(self) -> TestApp {
        let db = self.db.unwrap_or_else(TestDb::migrated);
        let mut env = BTreeMap::from([
            ("DATABASE_URL".to_string(), db.url.clone()),
            ("GOTRUE_JWT_SECRET".to_string(), JWT_SECRET.to_string()),
            ("WEAUTH_ARGON2_MEMORY_KIB".to_string(), "1024".to_string()),
            ("WEAUTH_ARGON2_ITERATIONS".to_string(), "1".to_string()),
            ("GOTRUE_DB_MAX_POOL_SIZE".to_string(), "8".to_string()),
        ]);
        // Tests send many requests from one address; rate-limit tests lower these again.
        for limit in weauth::rate_limit::Limit::all() {
            env.insert(limit.env_var().to_string(), "0".to_string());
        }
        let emulator = (self.wechat || self.sms.is_some()).then(Emulator::start);
        if let (true, Some(emu)) = (self.wechat, &emulator) {
            env.extend(wechat_env());
            env.insert("GOTRUE_EXTERNAL_WECHAT_API_URL".into(), emu.url.clone());
            env.insert("WEAUTH_WECHAT_OPEN_URL".into(), emu.url.clone());
        }
        if let (Some(provider), Some(emu)) = (&self.sms, &emulator) {
            env.extend(sms_provider_env(provider, &emu.url));
        }
        env.extend(self.env);
        TestApp::start(db, env, emulator)
    }
}

impl TestApp {
    pub fn builder() -> Builder {
        Builder {
            env: BTreeMap::new(),
            wechat: false,
            db: None,
            sms: None,
        }
    }

    pub fn spawn() -> TestApp {
        Self::builder().spawn()
    }

    fn start(db: TestDb, env: BTreeMap<String, String>, emulator: Option<Emulator>) -> TestApp {
        let lookup = env.clone();
        let config = Config::from_lookup(&move |name| lookup.get(name).cloned())
            .expect("test config is valid");
        weauth::db::run_migrations(&config.database.url).expect("migrations apply");
        let (port, server) = spawn_server(move |l| {
            weauth::server::start(l, AppState::new(config).unwrap(), Some(2))
        });
        TestApp {
            url: format!("http://127.0.0.1:{port}"),
            db,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            emulator,
            _server: server,
            env,
        }
    }

    /// A second weauth instance on the same database and emulator settings.
    pub fn second_instance(&self) -> (String, impl Drop) {
        self.second_instance_with(&[])
    }

    /// A second instance on the same database with some variables changed.
    pub fn second_instance_with(&self, overrides: &[(&str, &str)]) -> (String, impl Drop) {
        let mut lookup = self.env.clone();
        lookup.extend(
            overrides
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        let config = Config::from_lookup(&move |name| lookup.get(name).cloned()).unwrap();
        let (port, server) = spawn_server(move |l| {
            weauth::server::start(l, AppState::new(config).unwrap(), Some(2))
        });
        (format!("http://127.0.0.1:{port}"), server)
    }

    pub fn emulator(&self) -> &Emulator {
        self.emulator
            .as_ref()
            .expect("spawned with .wechat() or .sms(provider)")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get_auth(&self, path: &str, token: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
    }

    /// An HS256 JWT with the given claims, signed with the test secret.
    pub fn sign(&self, claims: Value) -> String {
        encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
        )
        .unwrap()
    }

    /// Supabase's service-role key: no `sub`, no `aud`.
    pub fn service_role_key(&self) -> String {
        let now = chrono::Utc::now().timestamp();
        self.sign(
            json!({"iss": "supabase-demo", "role": "service_role", "iat": now, "exp": now + 3600}),
        )
    }

    /// Signs up `email` with autoconfirm (the default) and returns the token response.
    pub async fn signup_email(&self, email: &str, password: &str) -> Value {
        let res = self
            .post(
                "/auth/v1/signup",
                json!({"email": email, "password": password}),
            )
            .await;
        assert_eq!(res.status(), 200, "signup failed");
        res.json().await.unwrap()
    }
}

/// Reads a JSON body after checking the status, printing the body when it differs.
pub async fn expect_json(res: reqwest::Response, status: u16) -> Value {
    let got = res.status().as_u16();
    let text = res.text().await.unwrap();
    assert_eq!(got, status, "unexpected status, body: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Asserts a GoTrue legacy error body: `{code: status, error_code, msg}`.
pub async fn expect_error(res: reqwest::Response, status: u16, error_code: &str) -> Value {
    let header = res
        .headers()
        .get("x-sb-error-code")
        .map(|v| v.to_str().unwrap().to_string());
    let body = expect_json(res, status).await;
    assert_eq!(body["code"], json!(status), "{body}");
    assert_eq!(body["error_code"], json!(error_code), "{body}");
    assert!(
        body["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(header.as_deref(), Some(error_code));
    body
}

/// A TCP proxy in front of PostgreSQL that a test can cut and restore, to simulate the
/// database becoming unreachable mid-traffic (the real server keeps serving other tests), or
/// stall: stop forwarding without closing anything, as a network partition that drops packets
/// does (the kernel still acknowledges on loopback, so only weauth's own deadline helps).
pub struct DbProxy {
    pub port: u16,
    down: std::sync::Arc<std::sync::atomic::AtomicBool>,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

/// Copies `from` to `to` chunk by chunk, holding each chunk while the proxy is stalled.
fn pump(
    mut from: std::net::TcpStream,
    mut to: std::net::TcpStream,
    stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
) {
    use std::io::{Read, Write};
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while stalled.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

impl DbProxy {
    pub fn start() -> DbProxy {
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let down = Arc::new(AtomicBool::new(false));
        let stalled = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(std::sync::Mutex::new(Vec::<std::net::TcpStream>::new()));
        let (down2, stalled2, streams2) = (down.clone(), stalled.clone(), streams.clone());
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                if down2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let (stalled, streams) = (stalled2.clone(), streams2.clone());
                std::thread::spawn(move || {
                    // A connection opened during a stall is accepted, then left waiting.
                    while stalled.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    let Ok(server) = std::net::TcpStream::connect("127.0.0.1:5432") else {
                        return;
                    };
                    let mut tracked = streams.lock().unwrap();
                    tracked.push(client.try_clone().unwrap());
                    tracked.push(server.try_clone().unwrap());
                    drop(tracked);
                    for (from, to) in [
                        (client.try_clone().unwrap(), server.try_clone().unwrap()),
                        (server, client),
                    ] {
                        let stalled = stalled.clone();
                        std::thread::spawn(move || pump(from, to, stalled));
                    }
                });
            }
        });
        DbProxy {
            port,
            down,
            stalled,
            streams,
        }
    }

    /// The database URL of `db`, through this proxy.
    pub fn url(&self, db: &TestDb) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?sslmode=disable",
            self.port, db.name
        )
    }

    /// Cuts every open connection and refuses new ones.
    pub fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// Stops forwarding in both directions, closing nothing; new connections hang too.
    pub fn stall(&self) {
        self.stalled
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Ends a cut or a stall (what was held during a stall is delivered).
    pub fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
        self.stalled
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The tests' SMTP server (`scripts/smtp-sink.sh`: aiosmtpd from PyPI with a JSON API), one
/// process for the whole test run, started by the first test that needs it. Tests use their
/// own addresses, so they never see each other's mail.
pub struct SmtpSink {
    pub smtp_port: u16,
    pub api: String,
    _child: std::sync::Mutex<std::process::Child>,
}

static SMTP_SINK: std::sync::OnceLock<SmtpSink> = std::sync::OnceLock::new();

pub fn smtp_sink() -> &'static SmtpSink {
    SMTP_SINK.get_or_init(|| {
        use std::io::BufRead;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/smtp-sink.sh");
        // Stdin stays open as long as this process lives; the sink exits when it closes.
        let mut child = std::process::Command::new("bash")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("start scripts/smtp-sink.sh (python3 with venv)");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the SMTP sink prints its ports");
        let port = |key: &str| -> u16 {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .and_then(|p| p.parse().ok())
                .unwrap_or_else(|| panic!("SMTP sink said {line:?}"))
        };
        SmtpSink {
            smtp_port: port("smtp="),
            api: format!("http://127.0.0.1:{}", port("http=")),
            _child: std::sync::Mutex::new(child),
        }
    })
}

/// The test template (`tests/api/fixtures/mail-template.html`): the code and the link.
pub const MAIL_TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/api/fixtures/mail-template.html"
);

impl Builder {
    /// Sends mail to the shared SMTP sink with autoconfirm off, every template set to
    /// [`MAIL_TEMPLATE`] (so mails carry the code) and a 1 ms resend interval.
    pub fn smtp(self) -> Self {
        let sink = smtp_sink();
        let mut b = self
            .env("GOTRUE_SMTP_HOST", "127.0.0.1")
            .env("GOTRUE_SMTP_PORT", &sink.smtp_port.to_string())
            .env("GOTRUE_SMTP_ADMIN_EMAIL", "noreply@weauth.test")
            .env("GOTRUE_SMTP_SENDER_NAME", "weauth tests")
            .env("GOTRUE_SMTP_MAX_FREQUENCY", "1ms")
            .env("GOTRUE_MAILER_AUTOCONFIRM", "false")
            .env("GOTRUE_SITE_URL", "http://localhost:3000")
            .env("API_EXTERNAL_URL", "http://localhost:9999");
        for t in [
            "INVITE",
            "CONFIRMATION",
            "RECOVERY",
            "MAGIC_LINK",
            "EMAIL_CHANGE",
            "REAUTHENTICATION",
        ] {
            b = b.env(&format!("GOTRUE_MAILER_TEMPLATES_{t}"), MAIL_TEMPLATE);
        }
        b
    }
}

/// One mail the sink received.
pub struct ReceivedMail {
    pub to: Vec<String>,
    pub from: String,
    pub subject: String,
    pub html: String,
    pub headers: Value,
}

impl ReceivedMail {
    /// The first `href` of the body, HTML-unescaped.
    pub fn link(&self) -> String {
        let start = self.html.find("href=\"").expect("a link in the mail") + 6;
        let end = start + self.html[start..].find('"').unwrap();
        self.html[start..end]
            .replace("&amp;", "&")
            .replace("&#43;", "+")
            .replace("&#34;", "\"")
            .replace("&#39;", "'")
    }

    /// The code in the test template (`<b class="code">…</b>`).
    pub fn code(&self) -> String {
        let start = self
            .html
            .find("class=\"code\">")
            .expect("a code in the mail")
            + 13;
        let end = start + self.html[start..].find('<').unwrap();
        self.html[start..end].to_string()
    }

    /// A query parameter of [`ReceivedMail::link`].
    pub fn link_param(&self, name: &str) -> String {
        let link = url::Url::parse(&self.link()).unwrap();
        link.query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.to_string())
            .unwrap_or_default()
    }
}

/// Every mail the sink received for `address`, oldest first.
pub async fn mails_to(address: &str) -> Vec<ReceivedMail> {
    let sink = smtp_sink();
    let list: Vec<Value> = reqwest::Client::new()
        .get(format!("{}/messages", sink.api))
        .query(&[("to", address)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list.into_iter()
        .map(|m| ReceivedMail {
            to: serde_json::from_value(m["to"].clone()).unwrap_or_default(),
            from: m["from"].as_str().unwrap_or_default().to_string(),
            subject: m["subject"].as_str().unwrap_or_default().to_string(),
            html: m["html"].as_str().unwrap_or_default().to_string(),
            headers: m["headers"].clone(),
        })
        .collect()
}

/// The one latest mail to `address` (panics when there is none).
pub async fn last_mail_to(address: &str) -> ReceivedMail {
    mails_to(address)
        .await
        .pop()
        .unwrap_or_else(|| panic!("no mail to {address}"))
}

/// A fresh address for one test.
pub fn fresh_email(label: &str) -> String {
    format!("{label}-{}@weauth.test", uuid::Uuid::new_v4().simple())
}
