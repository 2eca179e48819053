//! Everything that talks to WeChat's server API lives here: the HTTP client ([`client`]), the
//! access token shared by every weauth instance through PostgreSQL, and the legacy
//! `encryptedData` crypto ([`crypto`]). Failures are [`WechatFailure`]s (which API, what went
//! wrong); `error.rs` turns them into what the client sees.

pub mod client;
pub mod crypto;
pub mod oauth;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{WechatApp, WechatConfig};
use crate::db::{self, PgPool};
use crate::error::ApiError;
use crate::models::wechat as store;
pub use client::WechatError;
use client::{CodeSession, PhoneInfo, QrCodeRequest, WechatClient};

/// The identity provider name of WeChat mini-program identities.
pub const MINI_PROGRAM_PROVIDER: &str = "wechat";

/// WeChat website QR login (网站应用, `snsapi_login`).
pub const QR_PROVIDER: &str = "wechat_qr";
/// Official-account web pages inside WeChat (公众号 网页授权).
pub const MP_PROVIDER: &str = "wechat_mp";
/// Native apps through the OpenSDK (移动应用).
pub const APP_PROVIDER: &str = "wechat_app";

/// Every identity provider of WeChat's: their identities of one person share a unionid.
pub const PROVIDERS: &[&str] = &[
    MINI_PROGRAM_PROVIDER,
    QR_PROVIDER,
    MP_PROVIDER,
    APP_PROVIDER,
];

/// Which WeChat API failed; the same errcode means different things on different APIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Api {
    Login,
    Phone,
    QrCode,
    /// `sns/oauth2/access_token`: a website, official-account or app authorization code.
    OauthCode,
    /// `sns/userinfo`.
    UserInfo,
}

/// A failed WeChat call: which API and why.
#[derive(Debug)]
pub struct WechatFailure {
    pub api: Api,
    pub error: WechatError,
}

/// A cached token is refreshed this long before WeChat says it expires.
const TOKEN_MARGIN_SECS: i64 = 120;
/// How long one instance may hold the right to refresh before others may take over.
const TOKEN_LEASE_SECS: i32 = 15;

/// The one place weauth calls WeChat from.
pub struct WechatService {
    pool: PgPool,
    client: WechatClient,
    /// Per-app copy of the token cached in PostgreSQL, so most calls skip the database.
    local_tokens: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    /// Serialises refreshes inside this process; across processes the database lease does.
    refresh_locks: HashMap<String, tokio::sync::Mutex<()>>,
}

impl WechatService {
    pub fn new(
        wc: &WechatConfig,
        pool: PgPool,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let client = WechatClient::new(&wc.api_url, wc.timeout, wc.qrcode_timeout)?;
        let refresh_locks = wc
            .apps
            .keys()
            .map(|id| (id.clone(), tokio::sync::Mutex::new(())))
            .collect();
        Ok(WechatService {
            pool,
            client,
            local_tokens: Mutex::new(HashMap::new()),
            refresh_locks,
        })
    }

    /// Exchanges a `wx.login` code for the user's openid/unionid/session_key.
    pub async fn code2session(
        &self,
        app: &WechatApp,
        code: &str,
    ) -> Result<CodeSession, WechatFailure> {
        let started = std::time::Instant::now();
        let result = self.client.code2session(app, code).await;
        record("login", &result, started);
        result.map_err(|e| failure(e, Api::Login))
    }

    /// Reads the phone number behind a getPhoneNumber `code`.
    pub async fn phone_number(
        &self,
        app: &WechatApp,
        code: &str,
    ) -> Result<PhoneInfo, WechatFailure> {
        let started = std::time::Instant::now();
        let result = self
            .with_access_token(app, |token| async move {
                self.client.phone_number(&token, code).await
            })
            .await;
        record("phone", &result, started);
        result.map_err(|e| failure(e, Api::Phone))
    }

    /// Generates an unlimited mini-program code (image bytes).
    pub async fn unlimited_qrcode(
        &self,
        app: &WechatApp,
        request: &QrCodeRequest,
    ) -> Result<Vec<u8>, WechatFailure> {
        let started = std::time::Instant::now();
        let result = self
            .with_access_token(app, |token| async move {
                self.client.unlimited_qrcode(&token, request).await
            })
            .await;
        record("qrcode", &result, started);
        result.map_err(|e| failure(e, Api::QrCode))
    }

    /// Runs a business call with the app's access token; if WeChat says the token is bad, it is
    /// dropped from the caches (only where it is still the cached one), a different one is
    /// obtained and the call retried once.
    async fn with_access_token<T, F, Fut>(&self, app: &WechatApp, call: F) -> Result<T, WechatError>
    where
        F: Fn(String) -> Fut,
        Fut: std::future::Future<Output = Result<T, WechatError>>,
    {
        let token = self.access_token(app, None).await?;
        match call(token.clone()).await {
            Err(e) if e.is_bad_access_token() => {
                tracing::info!(app_id = %app.app_id, "WeChat rejected the cached access token; fetching a new one");
                call(self.access_token(app, Some(&token)).await?).await
            }
            other => other,
        }
    }

    fn local_token(&self, app_id: &str) -> Option<String> {
        let horizon = Utc::now() + chrono::Duration::seconds(TOKEN_MARGIN_SECS);
        let cache = self.local_tokens.lock().unwrap_or_else(|e| e.into_inner());
        cache
            .get(app_id)
            .filter(|(_, exp)| *exp > horizon)
            .map(|(t, _)| t.clone())
    }

    fn remember(&self, app_id: &str, token: &str, expires_at: DateTime<Utc>) {
        let mut cache = self.local_tokens.lock().unwrap_or_else(|e| e.into_inner());
        cache.insert(app_id.to_string(), (token.to_string(), expires_at));
    }

    /// The app's access token: from memory, else from PostgreSQL, else fetched from WeChat by
    /// exactly one instance (the holder of the database lease) while the others wait for it.
    ///
    /// `dead` is a token WeChat just refused. It is removed from both caches (compare-and-delete)
    /// and never returned, even if a concurrent request read it from the database a moment
    /// before and put it back into memory.
    async fn access_token(
        &self,
        app: &WechatApp,
        dead: Option<&str>,
    ) -> Result<String, WechatError> {
        let alive = |token: &String| Some(token.as_str()) != dead;
        if let Some(dead) = dead {
            let mut cache = self.local_tokens.lock().unwrap_or_else(|e| e.into_inner());
            if cache.get(&app.app_id).is_some_and(|(t, _)| t == dead) {
                cache.remove(&app.app_id);
            }
        }
        if let Some(token) = self.local_token(&app.app_id).filter(alive) {
            return Ok(token);
        }
        let _guard = match self.refresh_locks.get(&app.app_id) {
            Some(lock) => Some(lock.lock().await),
            None => None,
        };
        if let Some(token) = self.local_token(&app.app_id).filter(alive) {
            return Ok(token);
        }
        let deadline =
            tokio::time::Instant::now() + Duration::from_secs(TOKEN_LEASE_SECS as u64 + 5);
        loop {
            let app_id = app.app_id.clone();
            let dead = dead.map(str::to_string);
            let (cached, leased) = db::run(&self.pool, move |conn| {
                if let Some(dead) = &dead {
                    store::invalidate_access_token(conn, &app_id, dead)?;
                }
                if let Some(found) = store::valid_access_token(conn, &app_id, TOKEN_MARGIN_SECS)? {
                    return Ok((Some(found), false));
                }
                Ok((
                    None,
                    store::try_lease(conn, &app_id, TOKEN_LEASE_SECS, TOKEN_MARGIN_SECS as i32)?,
                ))
            })
            .await
            .map_err(db_unavailable)?;
            if let Some((token, expires_at)) = cached {
                self.remember(&app.app_id, &token, expires_at);
                return Ok(token);
            }
            if leased {
                return self.refresh_token(app).await;
            }
            // Another instance is refreshing: wait for its result.
            if tokio::time::Instant::now() > deadline {
                return Err(WechatError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn refresh_token(&self, app: &WechatApp) -> Result<String, WechatError> {
        let fetched = self.client.stable_token(app).await;
        let app_id = app.app_id.clone();
        match fetched {
            Ok(token) => {
                let expires_at = Utc::now() + chrono::Duration::seconds(token.expires_in.max(0));
                let (id, value) = (app_id.clone(), token.access_token.clone());
                db::run(&self.pool, move |conn| {
                    Ok(store::store_access_token(conn, &id, &value, expires_at)?)
                })
                .await
                .map_err(db_unavailable)?;
                self.remember(&app_id, &token.access_token, expires_at);
                tracing::info!(app_id = %app_id, expires_in = token.expires_in, "fetched a new WeChat access token");
                Ok(token.access_token)
            }
            Err(e) => {
                let _ = db::run(&self.pool, move |conn| {
                    Ok(store::release_lease(conn, &app_id)?)
                })
                .await;
                Err(e)
            }
        }
    }
}

fn db_unavailable(e: ApiError) -> WechatError {
    WechatError::Unreachable(format!("database: {e:?}"))
}

/// Logs a failed call once (errcodes and transport reasons, never URLs or secrets).
fn failure(error: WechatError, api: Api) -> WechatFailure {
    tracing::warn!(error = %error, ?api, "WeChat call failed");
    WechatFailure { api, error }
}

/// Counts a WeChat call in the metrics: `ok`, `errcode` (WeChat answered with an error code),
/// `timeout`, `unreachable` or `garbage`. No user data: neither codes nor app ids.
fn record<T>(api: &str, result: &Result<T, WechatError>, started: std::time::Instant) {
    let outcome = match result {
        Ok(_) => "ok",
        Err(WechatError::Api { .. }) => "errcode",
        Err(WechatError::Timeout) => "timeout",
        Err(WechatError::Unreachable(_)) => "unreachable",
        Err(WechatError::Garbage(_)) => "garbage",
    };
    crate::metrics::METRICS.wechat_call(api, outcome, started.elapsed());
}
