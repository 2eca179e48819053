//! Per-client request limits, like GoTrue's (`internal/api/middleware.go`, tollbooth): each
//! limit allows N requests per window (5 minutes; an hour for anonymous sign-ins, as in GoTrue)
//! per client, in bursts of up to 30. The client is the
//! first value of the header named by `GOTRUE_RATE_LIMIT_HEADER` (set it behind a proxy), else
//! the peer address. Built on the `governor` crate (GCRA, lock-free).
//!
//! Limits are per process unless `WEAUTH_RATE_LIMIT_REDIS_URL` names a Redis server: then
//! every instance spends from one budget per client, kept in Redis by the same algorithm (GCRA
//! in a Lua script, so one round trip and atomic; Redis's clock, so instances' clocks do not
//! matter). When Redis does not answer within [`REDIS_TIMEOUT`], the request is counted
//! against this process's own limiter instead (fail over to per-instance limits, never open,
//! never closed), Redis is left alone for [`REDIS_RETRY`], and a warning is logged.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use strum::VariantArray;

use crate::config::RateLimitConfig;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// GoTrue's usual window, and its burst.
const WINDOW: Duration = Duration::from_secs(300);
const MAX_BURST: u32 = 30;

/// What a request spends. Adding a limit means adding a variant here and its arms below: the
/// configuration, `weauth rate-limits` and the tests' list of limits derive from
/// [`Limit::VARIANTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, strum::VariantArray)]
pub enum Limit {
    /// Every `/token` call.
    Token,
    /// Password sign-in attempts, on top of [`Limit::Token`].
    Password,
    /// Sign-ups and user updates.
    Otp,
    /// WeChat code exchanges: login and account binding.
    WechatLogin,
    /// WeChat phone number look-ups, which WeChat bills.
    WechatPhone,
    /// WeChat QR codes, which spend the app's quota.
    WechatQrcode,
    /// Anonymous sign-ins (`POST /signup` with neither e-mail nor phone), per hour.
    AnonymousUsers,
    /// `POST /verify` (and `GET`): guessing codes.
    Verify,
    /// SMS sent by the whole server, per hour (GoTrue's global counter; key [`GLOBAL`]).
    SmsSent,
    /// SMS sent to one number, per hour (key: the number), against SMS pumping (toll fraud
    /// through premium numbers), which a per-client limit does not stop.
    SmsPerNumber,
}

/// The key of limits that count for the whole server rather than per client.
pub const GLOBAL: &str = "global";

impl Limit {
    /// Every limit, in declaration order (derived by strum, so it cannot miss one).
    pub fn all() -> &'static [Limit] {
        Self::VARIANTS
    }

    /// The variable that sets this limit (requests per [`Limit::window`] per client, 0 =
    /// unlimited).
    pub fn env_var(self) -> &'static str {
        match self {
            Limit::Token => "GOTRUE_RATE_LIMIT_TOKEN_REFRESH",
            Limit::Password => "WEAUTH_RATE_LIMIT_PASSWORD",
            Limit::Otp => "GOTRUE_RATE_LIMIT_OTP",
            Limit::WechatLogin => "WEAUTH_RATE_LIMIT_WECHAT_LOGIN",
            Limit::WechatPhone => "WEAUTH_RATE_LIMIT_WECHAT_PHONE",
            Limit::WechatQrcode => "WEAUTH_RATE_LIMIT_WECHAT_QRCODE",
            Limit::AnonymousUsers => "GOTRUE_RATE_LIMIT_ANONYMOUS_USERS",
            Limit::Verify => "GOTRUE_RATE_LIMIT_VERIFY",
            Limit::SmsSent => "GOTRUE_RATE_LIMIT_SMS_SENT",
            Limit::SmsPerNumber => "WEAUTH_RATE_LIMIT_SMS_PER_NUMBER",
        }
    }

    /// The window the limit counts in: GoTrue counts anonymous sign-ins per hour and the other
    /// limits per 5 minutes.
    pub fn window(self) -> Duration {
        match self {
            Limit::AnonymousUsers | Limit::SmsSent | Limit::SmsPerNumber => {
                Duration::from_secs(3600)
            }
            _ => WINDOW,
        }
    }

    /// GoTrue's default where GoTrue has the limit.
    pub fn default_per_window(self) -> u32 {
        match self {
            Limit::Token | Limit::WechatLogin => 150,
            Limit::Password
            | Limit::Otp
            | Limit::WechatPhone
            | Limit::WechatQrcode
            | Limit::AnonymousUsers
            | Limit::Verify
            | Limit::SmsSent => 30,
            Limit::SmsPerNumber => 10,
        }
    }

    /// What the limit guards, for `weauth rate-limits`.
    pub fn guards(self) -> &'static str {
        match self {
            Limit::Token => "every POST /token",
            Limit::Password => "password sign-ins (on top of the /token limit)",
            Limit::Otp => "POST /signup and PUT /user",
            Limit::WechatLogin => "WeChat login and account binding",
            Limit::WechatPhone => "WeChat phone-number binding (billed by WeChat)",
            Limit::WechatQrcode => "WeChat QR codes (spend the app's quota)",
            Limit::AnonymousUsers => {
                "anonymous sign-ins (POST /signup without e-mail or phone), per hour"
            }
            Limit::Verify => "POST and GET /verify",
            Limit::SmsSent => "SMS sent by this server, per hour (all clients together)",
            Limit::SmsPerNumber => "SMS sent to one phone number, per hour",
        }
    }
}

pub struct RateLimits {
    /// One limiter per [`Limit`], in [`Limit::VARIANTS`] order; `None` when unlimited.
    limiters: Vec<Option<DefaultKeyedRateLimiter<String>>>,
    /// Requests per window, in the same order (for the shared store).
    per_window: Vec<u32>,
    checks: AtomicU64,
    shared: Option<SharedStore>,
}

/// How long a request waits for Redis before it is counted locally instead.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(300);
/// How long Redis is left alone after it failed to answer.
pub const REDIS_RETRY: Duration = Duration::from_secs(2);

/// GCRA on Redis: KEYS[1] holds the client's theoretical arrival time (ms, Redis clock).
/// ARGV: emission interval (ms), burst. Returns 1 when the request is allowed.
const GCRA_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
if next_tat - now > burst * interval then return 0 end
redis.call('SET', KEYS[1], next_tat, 'PX', next_tat - now)
return 1
";

/// The Redis budget shared by every instance (see the module docs).
struct SharedStore {
    client: redis::Client,
    prefix: String,
    script: redis::Script,
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
    /// Until when Redis is skipped after a failure, and when that was last logged.
    resting_until: Mutex<Option<Instant>>,
}

impl SharedStore {
    /// Spends one request; `Ok(false)` when the shared budget is exhausted.
    async fn spend(&self, limit: Limit, per_window: u32, client: &str) -> Result<bool, String> {
        if let Some(until) = *self.resting_until.lock().unwrap() {
            if Instant::now() < until {
                return Err(String::new());
            }
        }
        let result = tokio::time::timeout(REDIS_TIMEOUT, async {
            let mut conn = self
                .connection
                .get_or_try_init(|| async {
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(REDIS_TIMEOUT))
                        .set_response_timeout(Some(REDIS_TIMEOUT))
                        .set_number_of_retries(1);
                    redis::aio::ConnectionManager::new_with_config(self.client.clone(), config)
                        .await
                })
                .await?
                .clone();
            let burst = per_window.min(MAX_BURST);
            let interval_ms = (limit.window().as_millis() as u64 / u64::from(per_window)).max(1);
            self.script
                .key(self.key(limit, client))
                .arg(interval_ms)
                .arg(burst)
                .invoke_async::<i64>(&mut conn)
                .await
        })
        .await;
        let error = match result {
            Ok(Ok(allowed)) => return Ok(allowed == 1),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer in time".to_string(),
        };
        let mut resting = self.resting_until.lock().unwrap();
        *resting = Some(Instant::now() + REDIS_RETRY);
        Err(error)
    }

    /// `{prefix}{limit}:{sha256(client)}`: bounded keys whatever the client header holds.
    fn key(&self, limit: Limit, client: &str) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(client.as_bytes());
        let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{}{}:{hex}",
            self.prefix,
            limit.env_var().to_ascii_lowercase()
        )
    }
}

fn limiter(per_window: u32, window: Duration) -> Option<DefaultKeyedRateLimiter<String>> {
    let per_window = NonZeroU32::new(per_window)?;
    let burst = NonZeroU32::new(per_window.get().min(MAX_BURST))?;
    let quota = Quota::with_period(window / per_window.get())?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

impl RateLimits {
    /// Builds the limiters; connects to Redis (when configured) only when first needed.
    pub fn new(cfg: &RateLimitConfig) -> Result<RateLimits, String> {
        let shared = match &cfg.redis_url {
            None => None,
            Some(url) => Some(SharedStore {
                client: redis::Client::open(url.expose())
                    .map_err(|e| format!("WEAUTH_RATE_LIMIT_REDIS_URL: {e}"))?,
                prefix: cfg.redis_prefix.clone(),
                script: redis::Script::new(GCRA_SCRIPT),
                connection: tokio::sync::OnceCell::new(),
                resting_until: Mutex::new(None),
            }),
        };
        Ok(RateLimits {
            limiters: Limit::VARIANTS
                .iter()
                .map(|l| limiter(cfg.per_window(*l), l.window()))
                .collect(),
            per_window: Limit::VARIANTS.iter().map(|l| cfg.per_window(*l)).collect(),
            checks: AtomicU64::new(0),
            shared,
        })
    }

    /// Spends one request of `limit` for `client`; 429 `over_request_rate_limit` when none is
    /// left: from the shared budget when Redis is configured and answers, else from this
    /// process's own.
    pub async fn check(&self, limit: Limit, client: &str) -> ApiResult<()> {
        let Some(limiter) = &self.limiters[limit as usize] else {
            return Ok(());
        };
        if let Some(shared) = &self.shared {
            match shared
                .spend(limit, self.per_window[limit as usize], client)
                .await
            {
                Ok(true) => return Ok(()),
                Ok(false) => return Err(over_limit(limit)),
                // An empty reason: Redis is resting after a failure that was already logged.
                Err(reason) if reason.is_empty() => {}
                Err(reason) => tracing::warn!(
                    error = %reason,
                    "rate-limit store (Redis) unavailable; counting per instance for now"
                ),
            }
        }
        // Forget idle clients now and then so the table does not grow without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for l in self.limiters.iter().flatten() {
                l.retain_recent();
            }
        }
        limiter
            .check_key(&client.to_string())
            .map_err(|_| over_limit(limit))
    }
}

fn over_limit(limit: Limit) -> ApiError {
    tracing::info!(?limit, "rate limit reached");
    crate::metrics::METRICS.rate_limited(limit.env_var());
    match limit {
        Limit::SmsSent | Limit::SmsPerNumber => {
            ApiError::too_many_requests(ErrorCode::OverSmsSendRateLimit, "SMS rate limit exceeded")
        }
        _ => ApiError::too_many_requests(
            ErrorCode::OverRequestRateLimit,
            "Request rate limit reached",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(n: u32) -> RateLimits {
        let vars: Vec<(&str, String)> = Limit::VARIANTS
            .iter()
            .map(|l| {
                (
                    l.env_var(),
                    if *l == Limit::Otp { 0 } else { n }.to_string(),
                )
            })
            .collect();
        let lookup = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let v = crate::config::Vars::new(&lookup).unwrap();
        RateLimits::new(&RateLimitConfig::read(&v).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn burst_then_429_per_client() {
        let l = limits(5);
        for _ in 0..5 {
            l.check(Limit::Token, "1.2.3.4").await.unwrap();
        }
        let err = l.check(Limit::Token, "1.2.3.4").await.unwrap_err();
        assert_eq!(err.status, actix_web::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, ErrorCode::OverRequestRateLimit);
        // Other clients and other limits are unaffected; zero means unlimited.
        l.check(Limit::Token, "5.6.7.8").await.unwrap();
        l.check(Limit::Password, "1.2.3.4").await.unwrap();
        for _ in 0..100 {
            l.check(Limit::Otp, "1.2.3.4").await.unwrap();
        }
    }

    #[tokio::test]
    async fn anonymous_sign_ins_count_per_hour() {
        assert_eq!(Limit::AnonymousUsers.window(), Duration::from_secs(3600));
        assert_eq!(Limit::Token.window(), WINDOW);
        let l = limits(2);
        l.check(Limit::AnonymousUsers, "k").await.unwrap();
        l.check(Limit::AnonymousUsers, "k").await.unwrap();
        assert!(l.check(Limit::AnonymousUsers, "k").await.is_err());
    }

    #[tokio::test]
    async fn burst_is_capped_at_thirty_like_gotrue() {
        let l = limits(150);
        for _ in 0..30 {
            l.check(Limit::WechatLogin, "k").await.unwrap();
        }
        assert!(l.check(Limit::WechatLogin, "k").await.is_err());
    }
}
