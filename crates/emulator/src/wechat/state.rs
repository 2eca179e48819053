//! The emulator's memory: configured apps, issued codes, access tokens, session keys, injected
//! failures and counters. Everything lives in one plain struct behind one `Mutex`; handlers never
//! hold the lock across an `.await`.
//!
//! Rule methods take `now` as an argument so unit tests can jump the clock forward.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::rngs::OsRng;
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::phone::Phone;
use crate::config::Secret;

/// `wx.login` codes and phone-button codes live 5 minutes.
pub const CODE_TTL: Duration = Duration::from_secs(300);
/// Access token lifetime (`expires_in` 7200).
pub const TOKEN_TTL: Duration = Duration::from_secs(7200);
/// After `/cgi-bin/token` issues a new token the previous one keeps working this long.
pub const TOKEN_OVERLAP: Duration = Duration::from_secs(300);
/// `stable_token` rotates this long before expiry, so callers always get `expires_in >= 300`.
pub const STABLE_ROTATE_BEFORE: Duration = Duration::from_secs(300);
/// Dead tokens are remembered this long so they keep answering 42001/40001 rather than "unknown".
const TOKEN_MEMORY: Duration = Duration::from_secs(24 * 3600);

/// A WeChat error: `{"errcode": code, "errmsg": "<msg>, rid: ..."}` with HTTP 200.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxError {
    pub code: i64,
}

impl WxError {
    pub fn new(code: i64) -> Self {
        WxError { code }
    }
}

/// The message WeChat sends with each errcode (as seen in the docs and in the wild).
pub fn errmsg(code: i64) -> &'static str {
    match code {
        -1 => "system error",
        0 => "ok",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40030 => "invalid refresh_token",
        40097 => "invalid args",
        40125 => "invalid appsecret",
        40129 => "invalid scene",
        40163 => "code been used",
        40164 => "invalid ip, not in whitelist",
        40169 => "invalid length for scene, or the data is not json string",
        40226 => "code blocked",
        41001 => "access_token missing",
        41002 => "appid missing",
        41004 => "appsecret missing",
        41008 => "missing code",
        41030 => "invalid page",
        42001 => "access_token expired",
        43002 => "require POST method",
        43003 => "require https",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit mustslower retry next minute",
        47001 => "data format error",
        48001 => "api unauthorized",
        87009 => "invalid signature",
        _ => "system error",
    }
}

/// The five WeChat APIs whose failures can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Jscode2session,
    Token,
    StableToken,
    GetUserPhoneNumber,
    GetWxaCodeUnlimit,
}

impl Api {
    pub const ALL: [Api; 5] = [
        Api::Jscode2session,
        Api::Token,
        Api::StableToken,
        Api::GetUserPhoneNumber,
        Api::GetWxaCodeUnlimit,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Api::Jscode2session => "jscode2session",
            Api::Token => "token",
            Api::StableToken => "stable_token",
            Api::GetUserPhoneNumber => "getuserphonenumber",
            Api::GetWxaCodeUnlimit => "getwxacodeunlimit",
        }
    }

    pub fn from_name(name: &str) -> Option<Api> {
        Api::ALL.into_iter().find(|api| api.name() == name)
    }
}

/// One `/emulator/fail-next` instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub errcode: Option<i64>,
    pub times: u32,
    pub delay: Duration,
    pub garbage: bool,
    pub http_status: u16,
}

impl Failure {
    /// False for a pure delay: the call is slowed down but then answered normally.
    pub fn fails(&self) -> bool {
        self.errcode.is_some() || self.garbage || self.http_status != 200
    }
}

/// Counters served by `GET /emulator/stats`.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub jscode2session_calls: u64,
    pub codes_exchanged: u64,
    pub token_calls: u64,
    pub stable_token_calls: u64,
    pub access_tokens_issued: u64,
    pub getuserphonenumber_calls: u64,
    pub phone_numbers_returned: u64,
    pub getwxacodeunlimit_calls: u64,
    pub qrcodes_generated: u64,
    pub failures_injected: u64,
}

impl Stats {
    fn count_call(&mut self, api: Api) {
        let counter = match api {
            Api::Jscode2session => &mut self.jscode2session_calls,
            Api::Token => &mut self.token_calls,
            Api::StableToken => &mut self.stable_token_calls,
            Api::GetUserPhoneNumber => &mut self.getuserphonenumber_calls,
            Api::GetWxaCodeUnlimit => &mut self.getwxacodeunlimit_calls,
        };
        *counter += 1;
    }
}

/// What a successful `jscode2session` returns.
#[derive(Debug, Clone)]
pub struct Login {
    pub openid: String,
    pub session_key: String,
    pub unionid: Option<String>,
}

/// A user's current session key in one app (replaced by every exchange).
#[derive(Debug, Clone)]
pub struct Session {
    pub session_key: String,
    /// Whether the login that produced it carried a unionid (the app is "bound").
    pub with_unionid: bool,
}

#[derive(Debug)]
struct LoginCode {
    app_id: String,
    user: String,
    with_unionid: bool,
    issued: Instant,
    used: bool,
}

#[derive(Debug)]
struct PhoneCode {
    app_id: String,
    phone: Phone,
    issued: Instant,
    issued_unix: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Token,
    Stable,
}

#[derive(Debug)]
struct AccessToken {
    app_id: String,
    kind: TokenKind,
    expires_at: Instant,
    /// Set when a newer token supersedes this one (after the overlap, or at once on force_refresh).
    revoked_at: Option<Instant>,
}

/// Everything that changes while the emulator runs.
#[derive(Debug, Default)]
pub struct State {
    login_codes: HashMap<String, LoginCode>,
    phone_codes: HashMap<String, PhoneCode>,
    sessions: HashMap<(String, String), Session>,
    tokens: HashMap<String, AccessToken>,
    /// Latest `/cgi-bin/token` token per app.
    latest_token: HashMap<String, String>,
    /// Current `/cgi-bin/stable_token` token per app (independent of `latest_token`).
    stable_token: HashMap<String, String>,
    failures: HashMap<Api, VecDeque<Failure>>,
    pub stats: Stats,
}

impl State {
    /// Counts a call and takes the next injected failure for it, if any.
    pub fn begin_call(&mut self, api: Api) -> Option<Failure> {
        self.stats.count_call(api);
        let queue = self.failures.get_mut(&api)?;
        let front = queue.front_mut()?;
        let failure = front.clone();
        front.times = front.times.saturating_sub(1);
        if front.times == 0 {
            queue.pop_front();
        }
        if failure.fails() {
            self.stats.failures_injected += 1;
        }
        Some(failure)
    }

    /// Queues a failure behind any earlier ones for the same API.
    pub fn push_failure(&mut self, api: Api, failure: Failure) {
        self.failures.entry(api).or_default().push_back(failure);
    }

    pub fn issue_login_code(
        &mut self,
        app_id: &str,
        user: &str,
        with_unionid: bool,
        now: Instant,
    ) -> String {
        self.prune(now);
        let code = random_hex(16);
        self.login_codes.insert(
            code.clone(),
            LoginCode {
                app_id: app_id.into(),
                user: user.into(),
                with_unionid,
                issued: now,
                used: false,
            },
        );
        code
    }

    /// `jscode2session` after the app credentials were checked: 40029 for unknown, expired or
    /// other-app codes, 40163 for a second use. Success issues the user's session key (kept across logins).
    pub fn exchange_login_code(
        &mut self,
        app_id: &str,
        code: &str,
        now: Instant,
    ) -> Result<Login, WxError> {
        let entry = self.login_codes.get_mut(code).ok_or(WxError::new(40029))?;
        if entry.app_id != app_id || now.saturating_duration_since(entry.issued) >= CODE_TTL {
            return Err(WxError::new(40029));
        }
        if entry.used {
            return Err(WxError::new(40163));
        }
        entry.used = true;
        let (user, with_unionid) = (entry.user.clone(), entry.with_unionid);
        // WeChat keeps a user's session_key while it is valid: a new wx.login does not
        // rotate it, so data encrypted before the login still decrypts after it.
        let session_key = self
            .sessions
            .get(&(app_id.to_string(), user.clone()))
            .map(|s| s.session_key.clone())
            .unwrap_or_else(|| STANDARD.encode(random_bytes::<16>()));
        self.sessions.insert(
            (app_id.to_string(), user.clone()),
            Session {
                session_key: session_key.clone(),
                with_unionid,
            },
        );
        self.stats.codes_exchanged += 1;
        Ok(Login {
            openid: openid(app_id, &user),
            session_key,
            unionid: with_unionid.then(|| unionid(&user)),
        })
    }

    pub fn session(&self, app_id: &str, user: &str) -> Option<&Session> {
        self.sessions.get(&(app_id.to_string(), user.to_string()))
    }

    pub fn issue_phone_code(&mut self, app_id: &str, phone: Phone, now: Instant) -> String {
        self.prune(now);
        let code = random_hex(16);
        self.phone_codes.insert(
            code.clone(),
            PhoneCode {
                app_id: app_id.into(),
                phone,
                issued: now,
                issued_unix: unix_now(),
            },
        );
        code
    }

    /// `getuserphonenumber` after the token check: returns the phone and the watermark time.
    /// A code for another app answers 40013 and is left unused (the caller's token is wrong).
    pub fn redeem_phone_code(
        &mut self,
        app_id: &str,
        code: &str,
        now: Instant,
    ) -> Result<(Phone, u64), WxError> {
        let entry = self.phone_codes.get(code).ok_or(WxError::new(40029))?;
        if now.saturating_duration_since(entry.issued) >= CODE_TTL {
            return Err(WxError::new(40029));
        }
        if entry.app_id != app_id {
            return Err(WxError::new(40013));
        }
        // Single use: once redeemed the code is simply unknown (40029), as WeChat answers.
        let entry = self.phone_codes.remove(code).ok_or(WxError::new(40029))?;
        self.stats.phone_numbers_returned += 1;
        Ok((entry.phone, entry.issued_unix))
    }

    /// `/cgi-bin/token`: always a new token; the previous one dies after the overlap.
    pub fn issue_token(&mut self, app_id: &str, now: Instant) -> (String, u64) {
        self.prune(now);
        if let Some(previous) = self
            .latest_token
            .get(app_id)
            .and_then(|t| self.tokens.get_mut(t))
        {
            let end = now + TOKEN_OVERLAP;
            previous.revoked_at = Some(previous.revoked_at.map_or(end, |r| r.min(end)));
        }
        let token = self.new_token(app_id, TokenKind::Token, now);
        self.latest_token.insert(app_id.to_string(), token.clone());
        (token, TOKEN_TTL.as_secs())
    }

    /// `/cgi-bin/stable_token`: the same token while it has more than 5 minutes left; a new one
    /// when it is (nearly) expired, or at once on `force_refresh`, which also kills the old one.
    pub fn stable_token(
        &mut self,
        app_id: &str,
        force_refresh: bool,
        now: Instant,
    ) -> (String, u64) {
        self.prune(now);
        let current = self
            .stable_token
            .get(app_id)
            .and_then(|t| self.tokens.get_mut(t).map(|rec| (t, rec)));
        if let Some((token, rec)) = current {
            let usable = rec.revoked_at.is_none_or(|r| r > now) && rec.expires_at > now;
            let remaining = rec.expires_at.saturating_duration_since(now);
            if usable && !force_refresh && remaining >= STABLE_ROTATE_BEFORE {
                return (token.clone(), remaining.as_secs());
            }
            if force_refresh {
                rec.revoked_at = Some(now);
            }
            // Otherwise a near-expiry token simply runs out on its own (the 5-minute overlap).
        }
        let token = self.new_token(app_id, TokenKind::Stable, now);
        self.stable_token.insert(app_id.to_string(), token.clone());
        (token, TOKEN_TTL.as_secs())
    }

    fn new_token(&mut self, app_id: &str, kind: TokenKind, now: Instant) -> String {
        let token = new_access_token();
        self.tokens.insert(
            token.clone(),
            AccessToken {
                app_id: app_id.into(),
                kind,
                expires_at: now + TOKEN_TTL,
                revoked_at: None,
            },
        );
        self.stats.access_tokens_issued += 1;
        token
    }

    /// The app a business call's access token belongs to, or 41001/40001/42001.
    pub fn check_token(&self, token: Option<&str>, now: Instant) -> Result<String, WxError> {
        let token = token.filter(|t| !t.is_empty()).ok_or(WxError::new(41001))?;
        let rec = self.tokens.get(token).ok_or(WxError::new(40001))?;
        if rec.expires_at <= now {
            return Err(WxError::new(42001));
        }
        if rec.revoked_at.is_some_and(|r| r <= now) {
            return Err(WxError::new(40001));
        }
        Ok(rec.app_id.clone())
    }

    /// Expires every still-live token of one app (or all apps); returns how many.
    pub fn expire_tokens(&mut self, app_id: Option<&str>, now: Instant) -> usize {
        let mut n = 0;
        for rec in self.tokens.values_mut() {
            if app_id.is_none_or(|a| a == rec.app_id) && rec.expires_at > now {
                rec.expires_at = now;
                // Count only tokens that were usable; revoked ones merely switch 40001 → 42001.
                if rec.revoked_at.is_none_or(|r| r > now) {
                    n += 1;
                }
            }
        }
        n
    }

    /// Forgets everything but the apps (which live outside `State`).
    pub fn reset(&mut self) {
        *self = State::default();
    }

    /// Drops long-dead codes and tokens so a long-running emulator does not grow without bound.
    fn prune(&mut self, now: Instant) {
        self.login_codes
            .retain(|_, c| now.saturating_duration_since(c.issued) < CODE_TTL);
        self.phone_codes
            .retain(|_, c| now.saturating_duration_since(c.issued) < CODE_TTL);
        let (latest, stable) = (&self.latest_token, &self.stable_token);
        self.tokens.retain(|token, rec| {
            let current = match rec.kind {
                TokenKind::Token => latest.get(&rec.app_id) == Some(token),
                TokenKind::Stable => stable.get(&rec.app_id) == Some(token),
            };
            let dead_since = rec
                .revoked_at
                .map_or(rec.expires_at, |r| r.min(rec.expires_at));
            current || now.saturating_duration_since(dead_since) < TOKEN_MEMORY
        });
    }
}

/// The configured apps plus the mutable state; shared by every worker.
pub struct WechatEmulator {
    apps: BTreeMap<String, Secret>,
    state: Mutex<State>,
    /// Website / official-account / native-app OAuth codes and user tokens.
    oauth: Mutex<super::oauth::OauthState>,
}

impl WechatEmulator {
    pub fn new(apps: BTreeMap<String, Secret>) -> Self {
        WechatEmulator {
            apps,
            state: Mutex::new(State::default()),
            oauth: Mutex::new(Default::default()),
        }
    }

    pub fn has_app(&self, app_id: &str) -> bool {
        self.apps.contains_key(app_id)
    }

    pub fn app_ids(&self) -> Vec<&str> {
        self.apps.keys().map(String::as_str).collect()
    }

    /// 40013 for an unknown app id, 40125 for a wrong secret. (Plain comparison: these are
    /// development secrets and the emulator is not a security boundary.)
    pub fn check_app(&self, app_id: &str, secret: &str) -> Result<(), WxError> {
        match self.apps.get(app_id) {
            None => Err(WxError::new(40013)),
            Some(s) if s.expose() != secret => Err(WxError::new(40125)),
            Some(_) => Ok(()),
        }
    }

    pub fn oauth(&self) -> MutexGuard<'_, super::oauth::OauthState> {
        self.oauth.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A poisoned lock only means another request panicked mid-update; the data is still usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A user's openid in one app: stable, different per app, shaped like WeChat's (28 chars, "o…").
pub fn openid(app_id: &str, user: &str) -> String {
    id_from(&format!("{app_id}\0{user}"))
}

/// A user's unionid: one per user, shared by every app (same Open Platform account).
pub fn unionid(user: &str) -> String {
    id_from(&format!("unionid\0{user}"))
}

fn id_from(input: &str) -> String {
    let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()));
    format!("o{}", &digest[..27])
}

/// Random bytes from the OS. Falls back to the thread-local CSPRNG instead of panicking.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    if OsRng.try_fill_bytes(&mut bytes).is_err() {
        rand::thread_rng().fill_bytes(&mut bytes);
    }
    bytes
}

pub fn random_hex(n_bytes: usize) -> String {
    let mut bytes = vec![0u8; n_bytes];
    if OsRng.try_fill_bytes(&mut bytes).is_err() {
        rand::thread_rng().fill_bytes(&mut bytes);
    }
    hex(&bytes)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `rid` WeChat puts in every errmsg (three groups of 8 hex digits).
pub fn rid() -> String {
    let h = random_hex(12);
    format!("{}-{}-{}", &h[..8], &h[8..16], &h[16..])
}

/// WeChat tokens look like `86_` followed by ~130 characters of `[A-Za-z0-9_-]`.
fn new_access_token() -> String {
    format!("86_{}", URL_SAFE_NO_PAD.encode(random_bytes::<99>()))
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
