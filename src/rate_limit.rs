//! Per-client request limits, like GoTrue's (`internal/api/middleware.go`, tollbooth): each
//! limit allows N requests per window (5 minutes; an hour for anonymous sign-ins, as in GoTrue)
//! per client, in bursts of up to 30. The client is the
//! first value of the header named by `GOTRUE_RATE_LIMIT_HEADER` (set it behind a proxy), else
//! the peer address. Built on the `governor` crate (GCRA, lock-free).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
}

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
        }
    }

    /// The window the limit counts in: GoTrue counts anonymous sign-ins per hour and the other
    /// limits per 5 minutes.
    pub fn window(self) -> Duration {
        match self {
            Limit::AnonymousUsers => Duration::from_secs(3600),
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
            | Limit::AnonymousUsers => 30,
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
        }
    }
}

pub struct RateLimits {
    /// One limiter per [`Limit`], in [`Limit::VARIANTS`] order; `None` when unlimited.
    limiters: Vec<Option<DefaultKeyedRateLimiter<String>>>,
    checks: AtomicU64,
}

fn limiter(per_window: u32, window: Duration) -> Option<DefaultKeyedRateLimiter<String>> {
    let per_window = NonZeroU32::new(per_window)?;
    let burst = NonZeroU32::new(per_window.get().min(MAX_BURST))?;
    let quota = Quota::with_period(window / per_window.get())?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> RateLimits {
        RateLimits {
            limiters: Limit::VARIANTS
                .iter()
                .map(|l| limiter(cfg.per_window(*l), l.window()))
                .collect(),
            checks: AtomicU64::new(0),
        }
    }

    /// Spends one request of `limit` for `client`; 429 `over_request_rate_limit` when none is left.
    pub fn check(&self, limit: Limit, client: &str) -> ApiResult<()> {
        let Some(limiter) = &self.limiters[limit as usize] else {
            return Ok(());
        };
        // Forget idle clients now and then so the table does not grow without bound.
        if self.checks.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            for l in self.limiters.iter().flatten() {
                l.retain_recent();
            }
        }
        limiter.check_key(&client.to_string()).map_err(|_| {
            tracing::info!(?limit, "rate limit reached");
            crate::metrics::METRICS.rate_limited(limit.env_var());
            ApiError::too_many_requests(
                ErrorCode::OverRequestRateLimit,
                "Request rate limit reached",
            )
        })
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
        RateLimits::new(&RateLimitConfig::read(&v).unwrap())
    }

    #[test]
    fn burst_then_429_per_client() {
        let l = limits(5);
        for _ in 0..5 {
            l.check(Limit::Token, "1.2.3.4").unwrap();
        }
        let err = l.check(Limit::Token, "1.2.3.4").unwrap_err();
        assert_eq!(err.status, actix_web::http::StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, ErrorCode::OverRequestRateLimit);
        // Other clients and other limits are unaffected; zero means unlimited.
        l.check(Limit::Token, "5.6.7.8").unwrap();
        l.check(Limit::Password, "1.2.3.4").unwrap();
        for _ in 0..100 {
            l.check(Limit::Otp, "1.2.3.4").unwrap();
        }
    }

    #[test]
    fn anonymous_sign_ins_count_per_hour() {
        assert_eq!(Limit::AnonymousUsers.window(), Duration::from_secs(3600));
        assert_eq!(Limit::Token.window(), WINDOW);
        let l = limits(2);
        l.check(Limit::AnonymousUsers, "k").unwrap();
        l.check(Limit::AnonymousUsers, "k").unwrap();
        assert!(l.check(Limit::AnonymousUsers, "k").is_err());
    }

    #[test]
    fn burst_is_capped_at_thirty_like_gotrue() {
        let l = limits(150);
        for _ in 0..30 {
            l.check(Limit::WechatLogin, "k").unwrap();
        }
        assert!(l.check(Limit::WechatLogin, "k").is_err());
    }
}
