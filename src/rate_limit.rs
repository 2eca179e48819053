//! Per-client request limits, like GoTrue's (`internal/api/middleware.go`, tollbooth): each
//! limit allows N requests per 5 minutes per client, in bursts of up to 30. The client is the
//! first value of the header named by `GOTRUE_RATE_LIMIT_HEADER` (set it behind a proxy), else
//! the peer address. Built on the `governor` crate (GCRA, lock-free).

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::RateLimitConfig;
use crate::error::{ApiError, ApiResult, ErrorCode};

/// GoTrue's window and burst.
const WINDOW: Duration = Duration::from_secs(300);
const MAX_BURST: u32 = 30;

/// What a request spends.
#[derive(Clone, Copy, Debug)]
pub enum Limit {
    /// Every `/token` call (`GOTRUE_RATE_LIMIT_TOKEN_REFRESH`).
    Token,
    /// Password sign-in attempts, on top of [`Limit::Token`] (`WEAUTH_RATE_LIMIT_PASSWORD`).
    Password,
    /// Sign-ups and user updates (`GOTRUE_RATE_LIMIT_OTP`).
    Otp,
    /// WeChat code exchanges: login and account binding (`WEAUTH_RATE_LIMIT_WECHAT_LOGIN`).
    WechatLogin,
    /// WeChat phone number look-ups, which WeChat bills (`WEAUTH_RATE_LIMIT_WECHAT_PHONE`).
    WechatPhone,
    /// WeChat QR codes, which spend the app's quota (`WEAUTH_RATE_LIMIT_WECHAT_QRCODE`).
    WechatQrcode,
}

const LIMITS: usize = 6;

pub struct RateLimits {
    limiters: [Option<DefaultKeyedRateLimiter<String>>; LIMITS],
    checks: AtomicU64,
}

fn limiter(per_window: u32) -> Option<DefaultKeyedRateLimiter<String>> {
    let per_window = NonZeroU32::new(per_window)?;
    let burst = NonZeroU32::new(per_window.get().min(MAX_BURST))?;
    let quota = Quota::with_period(WINDOW / per_window.get())?.allow_burst(burst);
    Some(RateLimiter::keyed(quota))
}

impl RateLimits {
    pub fn new(cfg: &RateLimitConfig) -> RateLimits {
        RateLimits {
            limiters: [
                limiter(cfg.token_refresh),
                limiter(cfg.password),
                limiter(cfg.otp),
                limiter(cfg.wechat_login),
                limiter(cfg.wechat_phone),
                limiter(cfg.wechat_qrcode),
            ],
            checks: AtomicU64::new(0),
        }
    }

    /// Spends one request of `limit` for `client`; 429 `over_request_rate_limit` when none is left.
    pub fn check(&self, limit: Limit, client: &str) -> ApiResult<()> {
        let index = limit as usize;
        let Some(limiter) = &self.limiters[index] else {
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
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
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
        RateLimits::new(&RateLimitConfig {
            header: None,
            token_refresh: n,
            password: n,
            otp: 0,
            wechat_login: n,
            wechat_phone: n,
            wechat_qrcode: n,
        })
    }

    #[test]
    fn burst_then_429_per_client() {
        let l = limits(5);
        for _ in 0..5 {
            l.check(Limit::Token, "1.2.3.4").unwrap();
        }
        let err = l.check(Limit::Token, "1.2.3.4").unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, ErrorCode::OverRequestRateLimit);
        // Other clients and other limits are unaffected; zero means unlimited.
        l.check(Limit::Token, "5.6.7.8").unwrap();
        l.check(Limit::Password, "1.2.3.4").unwrap();
        for _ in 0..100 {
            l.check(Limit::Otp, "1.2.3.4").unwrap();
        }
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
