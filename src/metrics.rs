//! Prometheus metrics (opt-in, `GOTRUE_METRICS_ENABLED`), served on their own port
//! (`OTEL_EXPORTER_PROMETHEUS_HOST`/`_PORT`, GoTrue's variables) by [`crate::server`].
//!
//! Labels never carry user data: routes are the matched route patterns (`/admin/users/{user_id}`,
//! or `unmatched`), never raw paths or query strings; WeChat calls are labelled by API and
//! outcome class, rate-limit rejections by limit.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

use crate::db::PoolStats;

/// The registry and every metric weauth records. Recording is cheap and always on; only
/// the HTTP middleware and the exporter depend on `GOTRUE_METRICS_ENABLED`.
pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    wechat_calls: IntCounterVec,
    wechat_duration: HistogramVec,
    sms_sends: IntCounterVec,
    sms_duration: HistogramVec,
    rate_limited: IntCounterVec,
    pool_in_use: IntGauge,
    pool_waiting: IntGauge,
    pool_open: IntGauge,
    pool_max: IntGauge,
}

/// The process-wide metrics (one registry, as Prometheus expects one set per process).
pub static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    #[expect(
        clippy::expect_used,
        reason = "fixed metric definitions: a failure is a programming error caught by the tests"
    )]
    fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid counter");
            registry
                .register(Box::new(c.clone()))
                .expect("unique counter");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                labels,
            )
            .expect("valid histogram");
            registry
                .register(Box::new(h.clone()))
                .expect("unique histogram");
            h
        };
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("valid gauge");
            registry
                .register(Box::new(g.clone()))
                .expect("unique gauge");
            g
        };
        Metrics {
            http_requests: counter(
                "weauth_http_requests_total",
                "HTTP requests by route pattern, method and status",
                &["route", "method", "status"],
            ),
            http_duration: histogram(
                "weauth_http_request_duration_seconds",
                "HTTP request latency by route pattern, method and status",
                &["route", "method", "status"],
            ),
            wechat_calls: counter(
                "weauth_wechat_calls_total",
                "Calls to WeChat's API by API and outcome",
                &["api", "outcome"],
            ),
            wechat_duration: histogram(
                "weauth_wechat_call_duration_seconds",
                "Latency of calls to WeChat's API by API and outcome",
                &["api", "outcome"],
            ),
            sms_sends: counter(
                "weauth_sms_sends_total",
                "SMS sends by provider (aliyun, tencent, hook) and outcome",
                &["provider", "outcome"],
            ),
            sms_duration: histogram(
                "weauth_sms_send_duration_seconds",
                "Latency of SMS sends by provider and outcome",
                &["provider", "outcome"],
            ),
            rate_limited: counter(
                "weauth_rate_limit_rejections_total",
                "Requests refused with 429 by weauth's per-client limits, by limit",
                &["limit"],
            ),
            pool_in_use: gauge(
                "weauth_db_pool_in_use",
                "Database connections held by requests",
            ),
            pool_waiting: gauge(
                "weauth_db_pool_waiting",
                "Requests waiting for a database connection",
            ),
            pool_open: gauge(
                "weauth_db_pool_open",
                "Database connections open (in use or idle)",
            ),
            pool_max: gauge("weauth_db_pool_max", "GOTRUE_DB_MAX_POOL_SIZE"),
            registry,
        }
    }

    /// One finished HTTP request.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        let status = status.to_string();
        let labels = [route, method, status.as_str()];
        self.http_requests.with_label_values(&labels).inc();
        self.http_duration
            .with_label_values(&labels)
            .observe(elapsed.as_secs_f64());
    }

    /// One call to WeChat (`api`: login, phone, qrcode, access_token; `outcome`: ok, or the
    /// class of failure).
    pub fn wechat_call(&self, api: &str, outcome: &str, elapsed: Duration) {
        self.wechat_calls.with_label_values(&[api, outcome]).inc();
        self.wechat_duration
            .with_label_values(&[api, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// One SMS send (`outcome`: ok, rate_limited, invalid_number, rejected, unavailable,
    /// hook_failed).
    pub fn sms_send(&self, provider: &str, outcome: &str, elapsed: Duration) {
        self.sms_sends.with_label_values(&[provider, outcome]).inc();
        self.sms_duration
            .with_label_values(&[provider, outcome])
            .observe(elapsed.as_secs_f64());
    }

    /// One request refused by a rate limit.
    pub fn rate_limited(&self, limit: &str) {
        self.rate_limited.with_label_values(&[limit]).inc();
    }

    /// The text exposition format, with the pool gauges read now.
    pub fn render(&self, pool: PoolStats) -> String {
        self.pool_in_use.set(pool.in_use as i64);
        self.pool_waiting.set(pool.waiting as i64);
        self.pool_open.set(pool.open as i64);
        self.pool_max.set(pool.max as i64);
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sms_sends_are_counted_by_provider_and_outcome() {
        METRICS.sms_send("aliyun", "ok", Duration::from_millis(120));
        METRICS.sms_send("tencent", "rate_limited", Duration::from_millis(80));
        let text = METRICS.render(PoolStats {
            in_use: 0,
            waiting: 0,
            open: 0,
            max: 1,
        });
        assert!(text.contains(r#"weauth_sms_sends_total{outcome="ok",provider="aliyun"}"#), "{text}");
        assert!(text.contains(r#"weauth_sms_sends_total{outcome="rate_limited",provider="tencent"}"#));
        assert!(text.contains(r#"weauth_sms_send_duration_seconds_bucket{outcome="ok",provider="aliyun",le="0.25"}"#), "{text}");
    }
}
