//! The scenarios: preparation through weauth and the emulator's control API, a warm-up phase,
//! then a measured phase of closed-loop workers (one keep-alive connection each), with
//! per-request latencies in an HDR histogram, errors split into non-2xx and transport, the
//! server's RSS sampled every 100 ms, CPU time of every process involved, and (through the
//! counting proxy) SQL round trips.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::http::Conn;
use crate::proxy;
use crate::sys::{self, CpuSnap, TICKS_PER_SEC};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
pub enum Scenario {
    /// `GET /auth/v1/health`: the HTTP floor (no database).
    Health,
    /// `GET /auth/v1/user` with a valid access token.
    User,
    /// The same with `Accept-Encoding: gzip` (what browsers and wx.request send).
    UserGzip,
    /// `POST /token?grant_type=refresh_token`, each worker following its own rotation chain.
    Refresh,
    /// WeChat login of users who logged in before.
    LoginReturning,
    /// WeChat login of a new user per request.
    LoginNew,
    /// `GET /wechat_mini/bind_phone?code=` by signed-in WeChat users, a new number each time.
    BindPhone,
    /// `POST /token?grant_type=password` (argon2id verification).
    Password,
    /// `POST /signup` of a new e-mail address per request (autoconfirm: a session; argon2id hash).
    Signup,
    /// Phone sign-in by code: `POST /otp` (the SMS goes to the emulator's Aliyun API), the code
    /// read back from the emulator (not timed), `POST /verify` type `sms`. One request = both.
    Otp,
    /// WeChat website login: `GET /authorize?provider=wechat_qr` then `GET /callback` with a
    /// pre-generated code of a returning user. One request = both.
    OauthCallback,
    /// TOTP: `POST /factors/{id}/challenge` then `/verify` with the code computed here from the
    /// enrolled secret. One request = both.
    MfaVerify,
    /// The emulator alone: `POST /cgi-bin/stable_token` (needs no code).
    EmuStableToken,
    /// The emulator alone: `GET /sns/jscode2session` with pre-generated codes.
    EmuJscode2session,
    /// The emulator alone: `POST /wxa/business/getuserphonenumber` with pre-generated codes.
    EmuPhone,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Health => "health",
            Scenario::User => "user",
            Scenario::UserGzip => "user_gzip",
            Scenario::Refresh => "refresh",
            Scenario::LoginReturning => "login_returning",
            Scenario::LoginNew => "login_new",
            Scenario::BindPhone => "bind_phone",
            Scenario::Password => "password",
            Scenario::Signup => "signup",
            Scenario::Otp => "otp",
            Scenario::OauthCallback => "oauth_callback",
            Scenario::MfaVerify => "mfa_verify",
            Scenario::EmuStableToken => "emu_stable_token",
            Scenario::EmuJscode2session => "emu_jscode2session",
            Scenario::EmuPhone => "emu_phone",
        }
    }

    fn on_emulator(self) -> bool {
        matches!(
            self,
            Scenario::EmuStableToken | Scenario::EmuJscode2session | Scenario::EmuPhone
        )
    }

    fn code_kind(self) -> Option<CodeKind> {
        match self {
            Scenario::LoginReturning => Some(CodeKind::Returning),
            Scenario::LoginNew | Scenario::EmuJscode2session => Some(CodeKind::New),
            Scenario::BindPhone | Scenario::EmuPhone => Some(CodeKind::Phone),
            Scenario::OauthCallback => Some(CodeKind::OAuth),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum CodeKind {
    Returning,
    New,
    Phone,
    /// WeChat website (`wechat_qr`) codes of returning users.
    OAuth,
}

#[derive(Clone)]
pub struct Target {
    pub weauth: String,
    pub emulator: String,
    pub appid: String,
    pub secret: String,
    /// Makes user names and phone numbers unique across runs on one database.
    pub tag: u32,
    /// The website (`wechat_qr`) AppID weauth and the emulator are configured with.
    pub qr_appid: String,
}

#[derive(clap::Args, Clone)]
pub struct RunArgs {
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    #[arg(long)]
    pub concurrency: usize,
    /// Seconds of warm-up (not measured).
    #[arg(long, default_value_t = 5.0)]
    pub warmup: f64,
    /// Seconds measured.
    #[arg(long, default_value_t = 15.0)]
    pub duration: f64,
    #[arg(long, default_value = "http://127.0.0.1:9999")]
    pub weauth: String,
    #[arg(long, default_value = "http://127.0.0.1:9911")]
    pub emulator: String,
    #[arg(long, default_value = "wx0000000000000dev")]
    pub appid: String,
    #[arg(long, default_value = "weauth-dev-secret")]
    pub secret: String,
    #[arg(long, default_value_t = 0)]
    pub tag: u32,
    /// weauth's pid: RSS and CPU are read from /proc.
    #[arg(long)]
    pub server_pid: Option<u32>,
    #[arg(long)]
    pub emulator_pid: Option<u32>,
    /// The counting proxy's control address: round trips are counted in the measured phase.
    #[arg(long)]
    pub proxy_control: Option<String>,
    /// Write the SQL of one request (through the proxy) to this file (appended).
    #[arg(long)]
    pub capture: Option<String>,
    /// Pace all workers together at this many requests/s (latency from the scheduled start).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Take `--rate` from the rps of this scenario at the same concurrency in `--rate-file`.
    #[arg(long)]
    pub rate_from: Option<String>,
    #[arg(long)]
    pub rate_file: Option<String>,
    /// Returning WeChat users (their first login happens during preparation).
    #[arg(long, default_value_t = 256)]
    pub returning_users: usize,
    /// Append the result as one JSON line here.
    #[arg(long)]
    pub out: Option<String>,
    /// Free-form label stored with the result (e.g. `throughput`, `roundtrips`).
    #[arg(long, default_value = "throughput")]
    pub label: String,
    #[arg(long, default_value = "bench-password-123")]
    pub password: String,
    /// A fixed number of measured requests instead of `--duration` (the instruction counts of
    /// `bench/run.sh instructions`).
    #[arg(long)]
    pub requests: Option<u64>,
    /// With `--requests`: this many warm-up requests instead of `--warmup` seconds.
    #[arg(long)]
    pub warmup_requests: Option<u64>,
    /// A shell command run right before the measured phase (e.g. `callgrind_control --zero`).
    #[arg(long)]
    pub before_measure: Option<String>,
    /// A shell command run right after it (e.g. `callgrind_control --dump`).
    #[arg(long)]
    pub after_measure: Option<String>,
    /// The website (`wechat_qr`) AppID of the `oauth_callback` scenario.
    #[arg(long, default_value = "wxbenchqr000000001")]
    pub qr_appid: String,
}

/// What one worker carries between requests.
pub struct WorkerState {
    pub conn: Conn,
    pub access_token: String,
    pub refresh_token: String,
    /// 0..c, for the scenarios where each worker has its own users (`otp`).
    pub id: usize,
    pub iter: u64,
    /// A connection to the emulator's control API (`otp` reads its codes there).
    pub emu: Option<Conn>,
    /// Time spent in the last request on calls that are not part of it (reading the SMS).
    pub excluded: Duration,
}

impl WorkerState {
    pub fn new(base: &str, id: usize) -> WorkerState {
        WorkerState {
            conn: Conn::new(base),
            access_token: String::new(),
            refresh_token: String::new(),
            id,
            iter: 0,
            emu: None,
            excluded: Duration::ZERO,
        }
    }
}

/// An enrolled, verified TOTP factor of the `mfa_verify` scenario. Each time step's code is
/// accepted once per factor, and only the steps around now: a factor serves about two requests
/// and then one per 30 s, so there are many.
pub struct Factor {
    pub access_token: String,
    pub id: String,
    pub key: Vec<u8>,
    pub last_step: i64,
}

/// The factors of a run, shared by warm-up and measurement.
pub type Factors = Arc<Mutex<VecDeque<Factor>>>;

/// A factor with a step whose code it has not used yet, and that step.
fn take_factor(factors: &Factors) -> Option<(Factor, i64)> {
    let mut q = factors.lock().unwrap();
    let now = crate::totp::now_step();
    for _ in 0..q.len() {
        let f = q.pop_front()?;
        let step = (f.last_step + 1).max(now - 1);
        if step <= now + 1 {
            return Some((f, step));
        }
        q.push_back(f);
    }
    None
}

/// The `otp` scenario's phone numbers (away from `bind_phone`'s, which count from 0).
pub fn otp_phone(tag: u32, k: usize) -> String {
    phone_for(tag, 500_000 + k as u64)
}

/// What every worker of a phase shares.
struct PhaseCtx {
    scenario: Scenario,
    target: Target,
    codes: Vec<String>,
    next_code: AtomicUsize,
    codes_exhausted: AtomicBool,
    creds: Arc<Vec<String>>,
    next_cred: AtomicUsize,
    /// Unique across the phases of a run (new e-mail addresses of `signup`).
    seq: Arc<AtomicU64>,
    factors: Factors,
    concurrency: usize,
    phones_per_worker: usize,
    password: String,
    app_token: String,
    deadline: Instant,
    start: Instant,
    rate: Option<f64>,
    next_slot: AtomicU64,
    limit: Option<u64>,
    issued: AtomicU64,
}

pub struct WorkerResult {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub transport: u64,
    pub errors: Vec<String>,
    pub ended: Instant,
    pub state: WorkerState,
}

pub struct PhaseResult {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub statuses: BTreeMap<u16, u64>,
    pub transport: u64,
    pub errors: Vec<String>,
    pub elapsed: f64,
    pub codes_exhausted: bool,
    pub states: Vec<WorkerState>,
}

impl PhaseResult {
    pub fn non2xx(&self) -> u64 {
        self.statuses.values().sum()
    }
    pub fn requests(&self) -> u64 {
        self.ok + self.non2xx() + self.transport
    }
}

fn new_hist() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram")
}

fn find_str<'a>(body: &'a [u8], key: &str) -> Option<&'a str> {
    let pat = format!("\"{key}\":\"");
    let s = std::str::from_utf8(body).ok()?;
    let at = s.find(&pat)? + pat.len();
    let end = s[at..].find('"')? + at;
    Some(&s[at..end])
}

/// WeChat answers errors as HTTP 200 with a non-zero errcode.
fn wx_ok(body: &[u8]) -> bool {
    match serde_json::from_slice::<Value>(body) {
        Ok(v) => v.get("errcode").and_then(Value::as_i64).unwrap_or(0) == 0,
        Err(_) => false,
    }
}

async fn one_request(
    ctx: &PhaseCtx,
    st: &mut WorkerState,
) -> Result<Option<(bool, u16, Bytes)>, String> {
    let t = &ctx.target;
    let take_code = || {
        let i = ctx.next_code.fetch_add(1, Ordering::Relaxed);
        match ctx.codes.get(i) {
            Some(c) => Some(c.clone()),
            None => {
                ctx.codes_exhausted.store(true, Ordering::Relaxed);
                None
            }
        }
    };
    let bearer = format!("Bearer {}", st.access_token);
    let resp = match ctx.scenario {
        Scenario::Health => {
            st.conn
                .send(Method::GET, "/auth/v1/health", &[], None)
                .await?
        }
        Scenario::User => {
            st.conn
                .send(
                    Method::GET,
                    "/auth/v1/user",
                    &[("authorization", &bearer)],
                    None,
                )
                .await?
        }
        Scenario::UserGzip => {
            st.conn
                .send(
                    Method::GET,
                    "/auth/v1/user",
                    &[("authorization", &bearer), ("accept-encoding", "gzip")],
                    None,
                )
                .await?
        }
        Scenario::Refresh => {
            let body = json!({ "refresh_token": st.refresh_token }).to_string();
            let r = st
                .conn
                .send(
                    Method::POST,
                    "/auth/v1/token?grant_type=refresh_token",
                    &[],
                    Some(Bytes::from(body)),
                )
                .await?;
            if (200..300).contains(&r.status) {
                match find_str(&r.body, "refresh_token") {
                    Some(tok) => st.refresh_token = tok.to_string(),
                    None => return Ok(Some((false, 0, r.body))),
                }
            }
            r
        }
        Scenario::LoginReturning | Scenario::LoginNew => {
            let Some(code) = take_code() else {
                return Ok(None);
            };
            st.conn
                .send(
                    Method::GET,
                    &format!("/auth/v1/wechat_mini/login?code={code}"),
                    &[],
                    None,
                )
                .await?
        }
        Scenario::BindPhone => {
            let Some(code) = take_code() else {
                return Ok(None);
            };
            st.conn
                .send(
                    Method::GET,
                    &format!("/auth/v1/wechat_mini/bind_phone?code={code}"),
                    &[("authorization", &bearer)],
                    None,
                )
                .await?
        }
        Scenario::Password => {
            let i = ctx.next_cred.fetch_add(1, Ordering::Relaxed) % ctx.creds.len();
            let body = json!({ "email": ctx.creds[i], "password": ctx.password }).to_string();
            st.conn
                .send(
                    Method::POST,
                    "/auth/v1/token?grant_type=password",
                    &[],
                    Some(Bytes::from(body)),
                )
                .await?
        }
        Scenario::Signup => {
            let n = ctx.seq.fetch_add(1, Ordering::Relaxed);
            let body = json!({
                "email": format!("s{}-{n}@bench.example.com", t.tag),
                "password": ctx.password,
            })
            .to_string();
            st.conn
                .send(
                    Method::POST,
                    "/auth/v1/signup",
                    &[],
                    Some(Bytes::from(body)),
                )
                .await?
        }
        Scenario::Otp => {
            let k = st.id + ctx.concurrency * (st.iter as usize % ctx.phones_per_worker.max(1));
            st.iter += 1;
            let phone = otp_phone(t.tag, k);
            let r = st
                .conn
                .send(
                    Method::POST,
                    "/auth/v1/otp",
                    &[],
                    Some(Bytes::from(json!({ "phone": phone }).to_string())),
                )
                .await?;
            if !(200..300).contains(&r.status) {
                return Ok(Some((false, r.status, r.body)));
            }
            let t0 = Instant::now();
            let emu = st.emu.get_or_insert_with(|| Conn::new(&t.emulator));
            let code = Prep::last_sms_code(emu, &phone).await;
            st.excluded += t0.elapsed();
            let Some(code) = code? else {
                return Ok(Some((false, 0, Bytes::from(format!("no SMS for {phone}")))));
            };
            let body = json!({"type": "sms", "phone": phone, "token": code}).to_string();
            st.conn
                .send(
                    Method::POST,
                    "/auth/v1/verify",
                    &[],
                    Some(Bytes::from(body)),
                )
                .await?
        }
        Scenario::OauthCallback => {
            let Some(code) = take_code() else {
                return Ok(None);
            };
            let (ok, status, body) = Prep::oauth_round(&mut st.conn, &code).await?;
            return Ok(Some((ok, status, body)));
        }
        Scenario::MfaVerify => {
            let Some((mut f, step)) = take_factor(&ctx.factors) else {
                ctx.codes_exhausted.store(true, Ordering::Relaxed);
                return Ok(None);
            };
            let bearer = format!("Bearer {}", f.access_token);
            let r = Prep::challenge_verify(
                &mut st.conn,
                &bearer,
                &f.id,
                &crate::totp::code(&f.key, step),
            )
            .await;
            f.last_step = step;
            ctx.factors.lock().unwrap().push_back(f);
            let r = r?;
            return Ok(Some(((200..300).contains(&r.status), r.status, r.body)));
        }
        Scenario::EmuStableToken => {
            let body = json!({"grant_type": "client_credential", "appid": t.appid, "secret": t.secret, "force_refresh": false}).to_string();
            let r = st
                .conn
                .send(
                    Method::POST,
                    "/cgi-bin/stable_token",
                    &[],
                    Some(Bytes::from(body)),
                )
                .await?;
            return Ok(Some((wx_ok(&r.body), r.status, r.body)));
        }
        Scenario::EmuJscode2session => {
            let Some(code) = take_code() else {
                return Ok(None);
            };
            let path = format!(
                "/sns/jscode2session?appid={}&secret={}&js_code={code}&grant_type=authorization_code",
                t.appid, t.secret
            );
            let r = st.conn.send(Method::GET, &path, &[], None).await?;
            return Ok(Some((wx_ok(&r.body), r.status, r.body)));
        }
        Scenario::EmuPhone => {
            let Some(code) = take_code() else {
                return Ok(None);
            };
            let path = format!(
                "/wxa/business/getuserphonenumber?access_token={}",
                ctx.app_token
            );
            let r = st
                .conn
                .send(
                    Method::POST,
                    &path,
                    &[],
                    Some(Bytes::from(json!({ "code": code }).to_string())),
                )
                .await?;
            return Ok(Some((wx_ok(&r.body), r.status, r.body)));
        }
    };
    Ok(Some((
        (200..300).contains(&resp.status),
        resp.status,
        resp.body,
    )))
}

async fn worker(ctx: Arc<PhaseCtx>, mut st: WorkerState) -> WorkerResult {
    let mut res = WorkerResult {
        hist: new_hist(),
        ok: 0,
        statuses: BTreeMap::new(),
        transport: 0,
        errors: Vec::new(),
        ended: Instant::now(),
        state: WorkerState::new("", 0),
    };
    loop {
        if ctx.codes_exhausted.load(Ordering::Relaxed) {
            break;
        }
        if let Some(limit) = ctx.limit {
            if ctx.issued.fetch_add(1, Ordering::Relaxed) >= limit {
                break;
            }
        }
        let scheduled = match ctx.rate {
            Some(rate) => {
                let k = ctx.next_slot.fetch_add(1, Ordering::Relaxed);
                let at = ctx.start + Duration::from_secs_f64(k as f64 / rate);
                if at >= ctx.deadline {
                    break;
                }
                if Instant::now() < at {
                    // On time: latency counts from the send (the timer wakes up to 1 ms late,
                    // which is the load generator's delay, not the server's).
                    tokio::time::sleep_until(at.into()).await;
                    Instant::now()
                } else {
                    // Behind schedule because responses were slow: count from the scheduled
                    // start, so queueing is not hidden (coordinated omission).
                    at
                }
            }
            None => {
                let now = Instant::now();
                if now >= ctx.deadline {
                    break;
                }
                now
            }
        };
        st.excluded = Duration::ZERO;
        let outcome = one_request(&ctx, &mut st).await;
        let micros = scheduled.elapsed().saturating_sub(st.excluded).as_micros() as u64;
        match outcome {
            Ok(None) => break,
            Ok(Some((true, _, _))) => {
                res.ok += 1;
                let _ = res.hist.record(micros.max(1));
            }
            Ok(Some((false, status, body))) => {
                *res.statuses.entry(status).or_default() += 1;
                if res.errors.len() < 3 {
                    let text = String::from_utf8_lossy(&body);
                    res.errors.push(format!(
                        "HTTP {status}: {}",
                        text.chars().take(300).collect::<String>()
                    ));
                }
            }
            Err(e) => {
                res.transport += 1;
                if res.errors.len() < 3 {
                    res.errors.push(format!("transport: {e}"));
                }
            }
        }
    }
    res.ended = Instant::now();
    res.state = st;
    res
}

async fn run_phase(mut ctx: PhaseCtx, states: Vec<WorkerState>, duration: Duration) -> PhaseResult {
    let start = Instant::now();
    ctx.start = start;
    ctx.deadline = start + duration;
    let ctx = Arc::new(ctx);
    let handles: Vec<_> = states
        .into_iter()
        .map(|st| tokio::spawn(worker(ctx.clone(), st)))
        .collect();
    let mut out = PhaseResult {
        hist: new_hist(),
        ok: 0,
        statuses: BTreeMap::new(),
        transport: 0,
        errors: Vec::new(),
        elapsed: 0.0,
        codes_exhausted: false,
        states: Vec::new(),
    };
    let mut last_end = start;
    for h in handles {
        let r = h.await.expect("worker panicked");
        out.hist.add(&r.hist).expect("hist add");
        out.ok += r.ok;
        for (s, n) in r.statuses {
            *out.statuses.entry(s).or_default() += n;
        }
        out.transport += r.transport;
        if out.errors.len() < 5 {
            out.errors.extend(r.errors);
        }
        last_end = last_end.max(r.ended);
        out.states.push(r.state);
    }
    out.elapsed = (last_end - start).as_secs_f64();
    out.codes_exhausted = ctx.codes_exhausted.load(Ordering::Relaxed);
    out
}

// ---- preparation ----------------------------------------------------------------------------

async fn parallel<T, F, Fut>(n: usize, concurrency: usize, f: F) -> Result<Vec<T>, String>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<T, String>> + Send,
    T: Send + 'static,
{
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let results = Arc::new(std::sync::Mutex::new(Vec::<(usize, T)>::with_capacity(n)));
    let mut handles = Vec::new();
    for _ in 0..concurrency.min(n.max(1)) {
        let (f, next, results) = (f.clone(), next.clone(), results.clone());
        handles.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<(), String>(());
                }
                let v = f(i).await?;
                results.lock().unwrap().push((i, v));
            }
        }));
    }
    for h in handles {
        h.await.map_err(|e| e.to_string())??;
    }
    let mut v = std::mem::take(&mut *results.lock().unwrap());
    v.sort_by_key(|(i, _)| *i);
    Ok(v.into_iter().map(|(_, t)| t).collect())
}

/// Preparation helpers: a connection per call, errors are fatal.
pub struct Prep;

impl Prep {
    async fn post_json(base: &str, path: &str, body: Value) -> Result<Value, String> {
        let mut c = Conn::new(base);
        let r = c
            .send(Method::POST, path, &[], Some(Bytes::from(body.to_string())))
            .await?;
        if !(200..300).contains(&r.status) {
            return Err(format!(
                "POST {path}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        serde_json::from_slice(&r.body).map_err(|e| format!("POST {path}: {e}"))
    }

    pub async fn login_code(t: &Target, user: &str) -> Result<String, String> {
        let v = Self::post_json(
            &t.emulator,
            "/emulator/login-code",
            json!({"appid": t.appid, "user": user}),
        )
        .await?;
        v["code"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no code in {v}"))
    }

    pub async fn phone_code(t: &Target, phone: &str) -> Result<String, String> {
        let v = Self::post_json(
            &t.emulator,
            "/emulator/phone-code",
            json!({"appid": t.appid, "phone": phone}),
        )
        .await?;
        v["code"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no code in {v}"))
    }

    /// Signs `user` in through WeChat: (access_token, refresh_token, user id).
    pub async fn wechat_login(t: &Target, user: &str) -> Result<(String, String, String), String> {
        let code = Self::login_code(t, user).await?;
        let mut c = Conn::new(&t.weauth);
        let r = c
            .send(
                Method::GET,
                &format!("/auth/v1/wechat_mini/login?code={code}"),
                &[],
                None,
            )
            .await?;
        if r.status != 200 {
            return Err(format!(
                "login {user}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| e.to_string())?;
        Ok((
            v["access_token"].as_str().unwrap_or_default().to_string(),
            v["refresh_token"].as_str().unwrap_or_default().to_string(),
            v["user"]["id"].as_str().unwrap_or_default().to_string(),
        ))
    }

    pub async fn signup(t: &Target, email: &str, password: &str) -> Result<(), String> {
        Self::post_json(
            &t.weauth,
            "/auth/v1/signup",
            json!({"email": email, "password": password}),
        )
        .await
        .map(|_| ())
    }

    /// The code of the newest SMS the emulator accepted for `phone` (`None`: none yet).
    pub async fn last_sms_code(emu: &mut Conn, phone: &str) -> Result<Option<String>, String> {
        let digits: String = phone.chars().filter(char::is_ascii_digit).collect();
        let r = emu
            .send(
                Method::GET,
                &format!("/emulator/sms?phone={digits}"),
                &[],
                None,
            )
            .await?;
        let v: Value =
            serde_json::from_slice(&r.body).map_err(|e| format!("/emulator/sms: {e}"))?;
        Ok(v["messages"]
            .as_array()
            .and_then(|m| m.last())
            .and_then(|m| m["otp"].as_str())
            .map(str::to_string))
    }

    pub async fn sms_reset(t: &Target) -> Result<(), String> {
        Self::post_json(&t.emulator, "/emulator/sms/reset", json!({}))
            .await
            .map(|_| ())
    }

    /// Signs `phone` in by SMS code (creates and confirms the user the first time).
    pub async fn otp_sign_in(t: &Target, phone: &str) -> Result<(), String> {
        Self::post_json(&t.weauth, "/auth/v1/otp", json!({ "phone": phone })).await?;
        let mut emu = Conn::new(&t.emulator);
        let code = Self::last_sms_code(&mut emu, phone)
            .await?
            .ok_or_else(|| format!("no SMS for {phone}"))?;
        Self::post_json(
            &t.weauth,
            "/auth/v1/verify",
            json!({"type": "sms", "phone": phone, "token": code}),
        )
        .await
        .map(|_| ())
    }

    /// A website (`wechat_qr`) login code for `user`.
    pub async fn oauth_code(t: &Target, user: &str) -> Result<String, String> {
        let v = Self::post_json(
            &t.emulator,
            "/emulator/oauth-code",
            json!({"appid": t.qr_appid, "user": user, "scope": "snsapi_login"}),
        )
        .await?;
        v["code"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no code in {v}"))
    }

    /// `GET /authorize?provider=wechat_qr`, then weauth's `/callback` with the state it issued
    /// and `code`: (signed in, status, what to show on failure).
    pub async fn oauth_round(conn: &mut Conn, code: &str) -> Result<(bool, u16, Bytes), String> {
        let r = conn
            .send(
                Method::GET,
                "/auth/v1/authorize?provider=wechat_qr",
                &[],
                None,
            )
            .await?;
        let state = r.location.as_deref().and_then(|l| {
            l.split(['?', '&', '#'])
                .find_map(|kv| kv.strip_prefix("state="))
                .map(str::to_string)
        });
        let Some(state) = state.filter(|_| r.status == 302) else {
            return Ok((false, r.status, r.body));
        };
        let r = conn
            .send(
                Method::GET,
                &format!("/callback?state={state}&code={code}"),
                &[],
                None,
            )
            .await?;
        let to = r.location.unwrap_or_default();
        let ok = r.status == 302 && to.contains("access_token=");
        Ok((ok, r.status, Bytes::from(to)))
    }

    /// `POST /factors/{id}/challenge` and `/verify` with `code`: the verify's response.
    pub async fn challenge_verify(
        conn: &mut Conn,
        bearer: &str,
        factor: &str,
        code: &str,
    ) -> Result<crate::http::Response, String> {
        let auth = [("authorization", bearer)];
        let r = conn
            .send(
                Method::POST,
                &format!("/auth/v1/factors/{factor}/challenge"),
                &auth,
                Some(Bytes::from_static(b"{}")),
            )
            .await?;
        let Some(challenge) = (r.status == 200)
            .then(|| find_str(&r.body, "id").map(str::to_string))
            .flatten()
        else {
            return Ok(r);
        };
        conn.send(
            Method::POST,
            &format!("/auth/v1/factors/{factor}/verify"),
            &auth,
            Some(Bytes::from(
                json!({"challenge_id": challenge, "code": code}).to_string(),
            )),
        )
        .await
    }

    /// A new WeChat user with a verified TOTP factor (its code of the previous step spent).
    pub async fn factor(t: &Target, user: &str) -> Result<Factor, String> {
        let (access_token, _, _) = Self::wechat_login(t, user).await?;
        let mut c = Conn::new(&t.weauth);
        let bearer = format!("Bearer {access_token}");
        let r = c
            .send(
                Method::POST,
                "/auth/v1/factors",
                &[("authorization", &bearer)],
                Some(Bytes::from(
                    json!({"factor_type": "totp", "friendly_name": "bench"}).to_string(),
                )),
            )
            .await?;
        let v: Value = serde_json::from_slice(&r.body).map_err(|e| format!("enroll: {e}"))?;
        let (Some(id), Some(secret)) = (v["id"].as_str(), v["totp"]["secret"].as_str()) else {
            return Err(format!("enroll {user}: HTTP {}: {v}", r.status));
        };
        let key = crate::totp::base32_decode(secret).ok_or("enroll: secret is not base32")?;
        // The previous step's code, so that the next two remain for the measurement; if the
        // server's clock passed a step boundary meanwhile, the current one.
        let mut step = crate::totp::now_step() - 1;
        let mut r =
            Self::challenge_verify(&mut c, &bearer, id, &crate::totp::code(&key, step)).await?;
        if r.status == 422 {
            step = crate::totp::now_step();
            r = Self::challenge_verify(&mut c, &bearer, id, &crate::totp::code(&key, step)).await?;
        }
        if r.status != 200 {
            return Err(format!(
                "verify factor of {user}: HTTP {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            ));
        }
        Ok(Factor {
            access_token,
            id: id.to_string(),
            key,
            last_step: step,
        })
    }

    pub async fn app_token(t: &Target) -> Result<String, String> {
        let v = Self::post_json(
            &t.emulator,
            "/cgi-bin/stable_token",
            json!({"grant_type": "client_credential", "appid": t.appid, "secret": t.secret, "force_refresh": false}),
        )
        .await?;
        v["access_token"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("no access_token in {v}"))
    }

    pub async fn reset_emulator(t: &Target) -> Result<(), String> {
        Self::post_json(&t.emulator, "/emulator/reset", json!({}))
            .await
            .map(|_| ())
    }
}

/// A phone number unique per (tag, n): +86 138 TT NNNNNN.
pub fn phone_for(tag: u32, n: u64) -> String {
    format!("+86138{:02}{:06}", tag % 100, n % 1_000_000)
}

/// Generates `n` codes of `kind` through the emulator's control API (32 at a time).
async fn gen_codes(
    t: &Target,
    kind: CodeKind,
    n: usize,
    offset: &AtomicU64,
    returning: usize,
) -> Result<Vec<String>, String> {
    let base = offset.fetch_add(n as u64, Ordering::Relaxed);
    let t2 = t.clone();
    parallel(n, 32, move |i| {
        let t = t2.clone();
        let k = base + i as u64;
        async move {
            match kind {
                CodeKind::Returning => {
                    Prep::login_code(&t, &format!("r{}-{}", t.tag, k as usize % returning.max(1)))
                        .await
                }
                CodeKind::New => Prep::login_code(&t, &format!("n{}-{k}", t.tag)).await,
                CodeKind::Phone => Prep::phone_code(&t, &phone_for(t.tag, k)).await,
                CodeKind::OAuth => {
                    Prep::oauth_code(&t, &format!("o{}-{}", t.tag, k as usize % returning.max(1)))
                        .await
                }
            }
        }
    })
    .await
}

// ---- the run command ----------------------------------------------------------------------

#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub struct RunResult {
    pub label: String,
    pub scenario: String,
    pub concurrency: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub target_duration_s: f64,
    pub requests: u64,
    pub ok: u64,
    pub rps: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub non2xx: u64,
    pub statuses: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub warmup_errors: u64,
    pub errors_sample: Vec<String>,
    pub codes_exhausted: bool,
    pub rate: Option<f64>,
    pub rss_max_kb: Option<u64>,
    pub rss_end_kb: Option<u64>,
    pub hwm_kb: Option<u64>,
    pub server_cpu_us_per_req: Option<f64>,
    pub emulator_cpu_us_per_req: Option<f64>,
    pub postgres_cpu_us_per_req: f64,
    pub loadgen_cpu_us_per_req: f64,
    pub machine_busy_pct: f64,
    pub rt_per_req: Option<f64>,
    pub proxy: Option<Value>,
    pub returning_users: Option<usize>,
    pub unix_time: u64,
}

/// Runs `cmd` with `sh -c`; fails unless it exits 0.
fn shell(cmd: &str) -> Result<(), String> {
    let status = std::process::Command::new("sh")
        .args(["-c", cmd])
        .status()
        .map_err(|e| format!("{cmd}: {e}"))?;
    match status.success() {
        true => Ok(()),
        false => Err(format!("{cmd}: {status}")),
    }
}

fn rate_from_file(file: &str, scenario: &str, concurrency: usize) -> Result<f64, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{file}: {e}"))?;
    text.lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<RunResult>(l).ok())
        .find(|r| r.scenario == scenario && r.concurrency == concurrency && r.label == "throughput")
        .map(|r| r.rps)
        .ok_or_else(|| format!("no {scenario} c={concurrency} result in {file}"))
}

pub async fn run(args: RunArgs) -> Result<RunResult, String> {
    let t = Target {
        weauth: args.weauth.clone(),
        emulator: args.emulator.clone(),
        appid: args.appid.clone(),
        secret: args.secret.clone(),
        tag: args.tag,
        qr_appid: args.qr_appid.clone(),
    };
    let c = args.concurrency.max(1);
    let sc = args.scenario;
    let rate = match (&args.rate_from, &args.rate_file) {
        (Some(s), Some(f)) => Some(rate_from_file(f, s, c)?),
        _ => args.rate,
    };
    eprintln!(
        "[{}] c={c} preparing{}",
        sc.name(),
        rate.map(|r| format!(" (paced at {r:.0} req/s)"))
            .unwrap_or_default()
    );

    // Preparation.
    if sc.code_kind().is_some() {
        // Forget earlier codes: the emulator scans all live codes on each issue.
        Prep::reset_emulator(&t).await?;
    }
    let base = if sc.on_emulator() {
        &t.emulator
    } else {
        &t.weauth
    };
    let mut states: Vec<WorkerState> = (0..c).map(|id| WorkerState::new(base, id)).collect();
    let factors: Factors = Default::default();
    let mut phones_per_worker = 0;
    let mut creds = Vec::new();
    let mut app_token = String::new();
    match sc {
        Scenario::User | Scenario::UserGzip | Scenario::Refresh | Scenario::BindPhone => {
            let t2 = t.clone();
            let name = sc.name();
            let sessions = parallel(c, 16, move |k| {
                let t = t2.clone();
                async move { Prep::wechat_login(&t, &format!("w{}-{name}-{c}-{k}", t.tag)).await }
            })
            .await?;
            for (st, (at, rt, _)) in states.iter_mut().zip(sessions) {
                st.access_token = at;
                st.refresh_token = rt;
            }
        }
        Scenario::LoginReturning => {
            let t2 = t.clone();
            parallel(args.returning_users, 16, move |k| {
                let t = t2.clone();
                async move { Prep::wechat_login(&t, &format!("r{}-{k}", t.tag)).await }
            })
            .await?;
        }
        Scenario::Password => {
            let n = c.max(16);
            creds = (0..n)
                .map(|k| format!("p{}-{c}-{k}@bench.example.com", t.tag))
                .collect();
            let (t2, emails, pw) = (t.clone(), Arc::new(creds.clone()), args.password.clone());
            parallel(n, 4, move |k| {
                let (t, emails, pw) = (t2.clone(), emails.clone(), pw.clone());
                async move { Prep::signup(&t, &emails[k], &pw).await }
            })
            .await?;
        }
        Scenario::EmuPhone => {
            app_token = Prep::app_token(&t).await?;
        }
        Scenario::Otp => {
            // Returning phone users, each worker its own (the emulator lists a number's SMS).
            Prep::sms_reset(&t).await?;
            phones_per_worker = 256usize.div_ceil(c).max(4);
            let t2 = t.clone();
            parallel(c * phones_per_worker, 16, move |k| {
                let t = t2.clone();
                async move { Prep::otp_sign_in(&t, &otp_phone(t.tag, k)).await }
            })
            .await?;
        }
        Scenario::OauthCallback => {
            let t2 = t.clone();
            parallel(args.returning_users, 16, move |k| {
                let t = t2.clone();
                async move {
                    let code = Prep::oauth_code(&t, &format!("o{}-{k}", t.tag)).await?;
                    let (ok, status, body) =
                        Prep::oauth_round(&mut Conn::new(&t.weauth), &code).await?;
                    if ok {
                        Ok(())
                    } else {
                        Err(format!(
                            "oauth login: HTTP {status}: {}",
                            String::from_utf8_lossy(&body)
                        ))
                    }
                }
            })
            .await?;
        }
        _ => {}
    }
    let seq = Arc::new(AtomicU64::new(0));
    // Factors for `mfa_verify`: each serves about two requests (see [`Factor`]).
    let add_factors = |n: usize| {
        let (t2, factors, seq) = (t.clone(), factors.clone(), seq.clone());
        async move {
            let got = parallel(n, 16, move |_| {
                let t = t2.clone();
                let k = seq.fetch_add(1, Ordering::Relaxed);
                async move { Prep::factor(&t, &format!("m{}-{c}-{k}", t.tag)).await }
            })
            .await?;
            factors.lock().unwrap().extend(got);
            Ok::<(), String>(())
        }
    };
    let creds = Arc::new(creds);
    let code_offset = AtomicU64::new(0);
    let kind = sc.code_kind();
    // With a request count, the phases end on the count (the hour is only a bound).
    let counted = args.requests.is_some();
    let warm = match counted {
        true => Duration::from_secs(3600),
        false => Duration::from_secs_f64(args.warmup),
    };
    let measure = match counted {
        true => Duration::from_secs(3600),
        false => Duration::from_secs_f64(args.duration),
    };
    let warm_limit = args
        .requests
        .map(|n| args.warmup_requests.unwrap_or(n / 10));
    let guess = rate.unwrap_or(if c == 1 { 1500.0 } else { 3000.0 });
    let make_ctx = |codes: Vec<String>, rate: Option<f64>, limit: Option<u64>| PhaseCtx {
        scenario: sc,
        target: t.clone(),
        codes,
        next_code: AtomicUsize::new(0),
        codes_exhausted: AtomicBool::new(false),
        creds: creds.clone(),
        next_cred: AtomicUsize::new(0),
        seq: seq.clone(),
        factors: factors.clone(),
        concurrency: c,
        phones_per_worker,
        password: args.password.clone(),
        app_token: app_token.clone(),
        deadline: Instant::now(),
        start: Instant::now(),
        rate,
        next_slot: AtomicU64::new(0),
        limit,
        issued: AtomicU64::new(0),
    };

    // RSS sampler over warm-up and measurement.
    let rss_max = Arc::new(AtomicU64::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    if let Some(pid) = args.server_pid {
        let (rss_max, sampling) = (rss_max.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                if let Some(kb) = sys::rss_kb(pid) {
                    rss_max.fetch_max(kb, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
    }

    // Warm-up.
    let warm_codes = match kind {
        Some(k) => {
            let n = match warm_limit {
                Some(w) => w as usize + 4 * c,
                None => (guess * args.warmup * 1.2) as usize + 4 * c,
            };
            gen_codes(&t, k, n, &code_offset, args.returning_users).await?
        }
        None => Vec::new(),
    };
    if sc == Scenario::MfaVerify {
        let guess = if c == 1 { 150.0 } else { 300.0 };
        let n = match warm_limit {
            Some(w) => w as usize / 2 + 4 * c,
            None => ((guess * args.warmup * 0.6) as usize).clamp(4 * c, 2000),
        };
        add_factors(n).await?;
    }
    eprintln!("[{}] c={c} warm-up {:.0}s", sc.name(), args.warmup);
    let warm_res = run_phase(make_ctx(warm_codes, rate, warm_limit), states, warm).await;
    let warm_rps = warm_res.requests() as f64 / warm_res.elapsed.max(0.001);
    let warmup_errors = warm_res.non2xx() + warm_res.transport;
    if warmup_errors > 0 {
        eprintln!("[{}] warm-up errors: {:?}", sc.name(), warm_res.errors);
    }
    let mut states = warm_res.states;

    // One request with SQL logging, through the proxy.
    if let (Some(file), Some(ctl)) = (&args.capture, &args.proxy_control) {
        let codes = match kind {
            Some(k) => gen_codes(&t, k, 1, &code_offset, args.returning_users).await?,
            None => Vec::new(),
        };
        let first = states.remove(0);
        proxy::control(ctl, "log-start")
            .await
            .map_err(|e| e.to_string())?;
        let r = run_phase(
            make_ctx(codes, None, Some(1)),
            vec![first],
            Duration::from_secs(10),
        )
        .await;
        let lines: Vec<String> = serde_json::from_str(
            &proxy::control(ctl, "log-get")
                .await
                .map_err(|e| e.to_string())?,
        )
        .map_err(|e| e.to_string())?;
        let mut text = format!(
            "### {} ({} request, HTTP ok={} non-2xx={} transport={})\n\n```\n",
            sc.name(),
            r.requests(),
            r.ok,
            r.non2xx(),
            r.transport
        );
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        text.push_str("```\n\n");
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
            .map_err(|e| e.to_string())?;
        f.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
        let mut rest = r.states;
        rest.append(&mut states);
        states = rest;
    }

    // Measurement.
    let codes = match kind {
        Some(k) => {
            let per_s = rate.unwrap_or(warm_rps).max(1.0);
            let n = match args.requests {
                Some(r) => r as usize + 8 * c,
                None => (per_s * args.duration * 1.3) as usize + 8 * c,
            };
            eprintln!(
                "[{}] c={c} pre-generating {n} codes (warm-up ran at {warm_rps:.0}/s)",
                sc.name()
            );
            gen_codes(&t, k, n, &code_offset, args.returning_users).await?
        }
        None => Vec::new(),
    };
    match sc {
        Scenario::MfaVerify => {
            let n = match args.requests {
                Some(r) => r as usize / 2 + 16 * c,
                None => (rate.unwrap_or(warm_rps) * args.duration * 0.8) as usize + 16 * c,
            };
            eprintln!("[{}] c={c} enrolling {n} more factors", sc.name());
            add_factors(n).await?;
        }
        // Keep the emulator's list of messages (which it scans per read) short.
        Scenario::Otp => Prep::sms_reset(&t).await?,
        _ => {}
    }
    if let Some(ctl) = &args.proxy_control {
        proxy::control(ctl, "reset")
            .await
            .map_err(|e| e.to_string())?;
    }
    match args.requests {
        Some(n) => eprintln!("[{}] c={c} measuring {n} requests", sc.name()),
        None => eprintln!("[{}] c={c} measuring {:.0}s", sc.name(), args.duration),
    }
    if let Some(cmd) = &args.before_measure {
        shell(cmd)?;
    }
    let cpu0 = CpuSnap::take(args.server_pid, args.emulator_pid);
    let res = run_phase(make_ctx(codes, rate, args.requests), states, measure).await;
    let cpu1 = CpuSnap::take(args.server_pid, args.emulator_pid);
    if let Some(cmd) = &args.after_measure {
        shell(cmd)?;
    }
    sampling.store(false, Ordering::Relaxed);
    let proxy_counts = match &args.proxy_control {
        Some(ctl) => {
            let s = proxy::control(ctl, "get")
                .await
                .map_err(|e| e.to_string())?;
            Some(serde_json::from_str::<Value>(&s).map_err(|e| e.to_string())?)
        }
        None => None,
    };

    let requests = res.requests();
    let per_req = |ticks: u64| ticks as f64 / TICKS_PER_SEC * 1e6 / requests.max(1) as f64;
    let ms = |q: f64| res.hist.value_at_quantile(q) as f64 / 1000.0;
    let rt_per_req = proxy_counts.as_ref().map(|p| {
        (p["query"].as_u64().unwrap_or(0) + p["sync"].as_u64().unwrap_or(0)) as f64
            / requests.max(1) as f64
    });
    let rss_max_kb = args.server_pid.map(|_| rss_max.load(Ordering::Relaxed));
    let result = RunResult {
        label: args.label.clone(),
        scenario: sc.name().to_string(),
        concurrency: c,
        warmup_s: args.warmup,
        duration_s: res.elapsed,
        target_duration_s: args.duration,
        requests,
        ok: res.ok,
        rps: requests as f64 / res.elapsed.max(0.001),
        p50_ms: ms(0.5),
        p90_ms: ms(0.9),
        p99_ms: ms(0.99),
        p999_ms: ms(0.999),
        max_ms: res.hist.max() as f64 / 1000.0,
        mean_ms: res.hist.mean() / 1000.0,
        non2xx: res.non2xx(),
        statuses: res
            .statuses
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect(),
        transport_errors: res.transport,
        warmup_errors,
        errors_sample: res.errors.clone(),
        codes_exhausted: res.codes_exhausted,
        rate,
        rss_max_kb,
        rss_end_kb: args.server_pid.and_then(sys::rss_kb),
        hwm_kb: args.server_pid.and_then(sys::hwm_kb),
        server_cpu_us_per_req: args.server_pid.map(|_| per_req(cpu1.server - cpu0.server)),
        emulator_cpu_us_per_req: args
            .emulator_pid
            .map(|_| per_req(cpu1.emulator - cpu0.emulator)),
        postgres_cpu_us_per_req: per_req(cpu1.postgres.saturating_sub(cpu0.postgres)),
        loadgen_cpu_us_per_req: per_req(cpu1.loadgen - cpu0.loadgen),
        machine_busy_pct: 100.0 * (cpu1.busy - cpu0.busy) as f64
            / (cpu1.total - cpu0.total).max(1) as f64,
        rt_per_req,
        proxy: proxy_counts,
        returning_users: (sc == Scenario::LoginReturning).then_some(args.returning_users),
        unix_time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    eprintln!(
        "[{}] c={c}: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms, non-2xx {}, transport {}, RSS max {} KiB{}{}",
        sc.name(),
        result.rps,
        result.p50_ms,
        result.p99_ms,
        result.non2xx,
        result.transport_errors,
        result.rss_max_kb.unwrap_or(0),
        result
            .rt_per_req
            .map(|r| format!(", {r:.2} round trips/req"))
            .unwrap_or_default(),
        if result.codes_exhausted { " (codes ran out)" } else { "" }
    );
    if !res.errors.is_empty() {
        eprintln!("[{}] error samples: {:?}", sc.name(), res.errors);
    }
    if let Some(out) = &args.out {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .map_err(|e| e.to_string())?;
        writeln!(f, "{}", serde_json::to_string(&result).unwrap()).map_err(|e| e.to_string())?;
    }
    Ok(result)
}
