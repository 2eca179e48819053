//! Everything that talks to WeChat's server API lives here: the HTTP client ([`client`]), the
//! access token shared by every weauth instance through PostgreSQL, the mapping of WeChat's
//! errors to API errors, and the legacy `encryptedData` crypto ([`crypto`]).

pub mod client;
pub mod crypto;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::http::StatusCode;
use chrono::{DateTime, Utc};

use crate::config::{Config, WechatApp};
use crate::db::models::wechat as store;
use crate::db::{self, PgPool};
use crate::error::{ApiError, ApiResult, ErrorCode};
use client::{CodeSession, PhoneInfo, QrCodeRequest, WechatClient, WechatError};

/// A cached token is refreshed this long before WeChat says it expires.
const TOKEN_MARGIN_SECS: i64 = 120;
/// How long one instance may hold the right to refresh before others may take over.
const TOKEN_LEASE_SECS: i32 = 15;

/// The one place weauth calls WeChat from.
pub struct WechatService {
    config: Arc<Config>,
    pool: PgPool,
    client: WechatClient,
    /// Per-app copy of the token cached in PostgreSQL, so most calls skip the database.
    local_tokens: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    /// Serialises refreshes inside this process; across processes the database lease does.
    refresh_locks: HashMap<String, tokio::sync::Mutex<()>>,
}

impl WechatService {
    pub fn new(
        config: Arc<Config>,
        pool: PgPool,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let wc = &config.wechat;
        let client = WechatClient::new(&wc.api_url, wc.timeout, wc.qrcode_timeout)?;
        let refresh_locks = wc
            .apps
            .keys()
            .map(|id| (id.clone(), tokio::sync::Mutex::new(())))
            .collect();
        Ok(WechatService {
            config,
            pool,
            client,
            local_tokens: Mutex::new(HashMap::new()),
            refresh_locks,
        })
    }

    /// Picks the app of a request: an explicit `appid`, else the app id in the `Referer` that
    /// `wx.request` sends (`https://servicewechat.com/{appid}/{version}/page-frame.html`), else
    /// the default app.
    pub fn resolve_app(
        &self,
        explicit: Option<&str>,
        referer: Option<&str>,
    ) -> ApiResult<&WechatApp> {
        let wc = &self.config.wechat;
        if !wc.enabled {
            return Err(ApiError::bad_request(
                ErrorCode::ProviderDisabled,
                "WeChat login is not enabled",
            ));
        }
        let from_referer = referer
            .and_then(|r| r.strip_prefix("https://servicewechat.com/"))
            .and_then(|rest| rest.split('/').next());
        let app_id = explicit
            .filter(|a| !a.is_empty())
            .or(from_referer.filter(|a| !a.is_empty()))
            .or(wc.default_app_id.as_deref())
            .ok_or_else(|| {
                ApiError::bad_request(ErrorCode::ProviderDisabled, "WeChat login is not enabled")
            })?;
        wc.apps.get(app_id).ok_or_else(|| {
            let shown: String = app_id.chars().take(64).collect();
            ApiError::validation(format!("Unknown WeChat app id: {shown}"))
        })
    }

    /// Exchanges a `wx.login` code for the user's openid/unionid/session_key.
    pub async fn code2session(&self, app: &WechatApp, code: &str) -> ApiResult<CodeSession> {
        self.client
            .code2session(app, code)
            .await
            .map_err(|e| map_error(e, Api::Login))
    }

    /// Reads the phone number behind a getPhoneNumber `code`.
    pub async fn phone_number(&self, app: &WechatApp, code: &str) -> ApiResult<PhoneInfo> {
        self.with_access_token(app, |token| async move {
            self.client.phone_number(&token, code).await
        })
        .await
        .map_err(|e| map_error(e, Api::Phone))
    }

    /// Generates an unlimited mini-program code (image bytes).
    pub async fn unlimited_qrcode(
        &self,
        app: &WechatApp,
        request: &QrCodeRequest,
    ) -> ApiResult<Vec<u8>> {
        self.with_access_token(app, |token| async move {
            self.client.unlimited_qrcode(&token, request).await
        })
        .await
        .map_err(|e| map_error(e, Api::QrCode))
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

/// Which WeChat API failed; the same errcode means different things on different APIs.
#[derive(Clone, Copy)]
enum Api {
    Login,
    Phone,
    QrCode,
}

/// Maps a WeChat failure to the error the client sees. Client mistakes are 4xx; WeChat being
/// down or rejecting weauth's own credentials is 502/503, so the SDK may retry.
fn map_error(e: WechatError, api: Api) -> ApiError {
    use ErrorCode::*;
    let err = match (&e, api) {
        (WechatError::Api { errcode: 40029, .. }, Api::Login) => {
            ApiError::bad_request(WechatCodeInvalid, "Invalid or expired WeChat code, call wx.login again")
        }
        (WechatError::Api { errcode: 40163, .. }, Api::Login) => {
            ApiError::bad_request(WechatCodeUsed, "This WeChat code was already used, call wx.login again")
        }
        (WechatError::Api { errcode: 40029 | 40163, .. }, Api::Phone) => {
            ApiError::bad_request(WechatCodeInvalid, "Invalid or expired phone number code, ask the user to tap the button again")
        }
        (WechatError::Api { errcode: 40226, .. }, _) => {
            ApiError::forbidden(WechatUserBlocked, "WeChat blocked this login as high-risk")
        }
        (WechatError::Api { errcode: 45011 | 45009 | 45033, .. }, _) => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            WechatRateLimited,
            "WeChat rate limit reached, please retry in a minute",
        ),
        (WechatError::Api { errcode: 40169 | 40129 | 40097 | 41030 | 47001 | 40159, errmsg }, Api::QrCode) => {
            ApiError::bad_request(WechatInvalidRequest, format!("WeChat rejected the QR code request: {errmsg}"))
        }
        (WechatError::Api { errcode: -1, .. }, _) | (WechatError::Timeout, _) | (WechatError::Unreachable(_), _) => {
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, WechatUnavailable, "WeChat is temporarily unavailable, please retry")
        }
        (WechatError::Garbage(_), _) => {
            ApiError::new(StatusCode::BAD_GATEWAY, WechatUnavailable, "WeChat answered unexpectedly, please retry")
        }
        (WechatError::Api { errcode, .. }, _) => ApiError::new(
            StatusCode::BAD_GATEWAY,
            WechatMisconfigured,
            format!("WeChat rejected the server's request (errcode {errcode}); check the app id and secret"),
        ),
    };
    tracing::warn!(error = %e, "WeChat call failed");
    err
}
