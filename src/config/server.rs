//! The HTTP side: where weauth listens and the public URLs it puts into links and redirects.

use super::{ConfigError, JwtConfig, Vars};

#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub host: String,
    pub port: u16,
    /// weauth's own public URL (`API_EXTERNAL_URL`), used in links it sends.
    pub api_external_url: String,
    /// The app's URL (`GOTRUE_SITE_URL`), the default redirect target.
    pub site_url: String,
    /// Further redirect targets (`GOTRUE_URI_ALLOW_LIST`, comma-separated globs with GoTrue's
    /// rules; see `flows::redirect`).
    pub uri_allow_list: Vec<String>,
    /// How long an idle keep-alive connection stays open (`WEAUTH_KEEP_ALIVE_SECS`), also
    /// advertised in a `Keep-Alive: timeout=` header so clients stop reusing it in time.
    pub keep_alive_secs: u64,
    /// Request headers browsers may send cross-origin besides the defaults
    /// (`GOTRUE_CORS_ALLOWED_HEADERS`, comma-separated).
    pub cors_allowed_headers: Vec<String>,
    /// Prometheus metrics (`GOTRUE_METRICS_ENABLED`), served on their own address.
    pub metrics: Option<MetricsAddress>,
}

/// Where `/metrics` is served (`OTEL_EXPORTER_PROMETHEUS_HOST`, `OTEL_EXPORTER_PROMETHEUS_PORT`).
#[derive(Clone, Debug)]
pub struct MetricsAddress {
    pub host: String,
    pub port: u16,
}

impl ServerConfig {
    pub fn read(v: &Vars<'_>, jwt: &JwtConfig) -> Result<ServerConfig, ConfigError> {
        let api_external_url = v.required(
            &["GOTRUE_API_API_EXTERNAL_URL", "API_EXTERNAL_URL"],
            "http://localhost:9999",
        );
        if !api_external_url.is_empty() {
            url::Url::parse(&api_external_url)
                .map_err(|e| ConfigError(format!("API_EXTERNAL_URL is not a valid URL: {e}")))?;
        }
        let cors_allowed_headers = v.list(&["GOTRUE_CORS_ALLOWED_HEADERS"], "");
        if let Some(bad) = cors_allowed_headers
            .iter()
            .find(|h| actix_web::http::header::HeaderName::from_bytes(h.as_bytes()).is_err())
        {
            return Err(ConfigError(format!(
                "GOTRUE_CORS_ALLOWED_HEADERS: {bad:?} is not a header name"
            )));
        }
        // With the public development secret, only this machine may reach the server.
        let host = v.str(&["GOTRUE_API_HOST"]).unwrap_or_else(|| {
            if jwt.uses_dev_secret() {
                "127.0.0.1"
            } else {
                "0.0.0.0"
            }
            .into()
        });
        let metrics = if v.bool(&["GOTRUE_METRICS_ENABLED"], false)? {
            match v.str(&["GOTRUE_METRICS_EXPORTER"]).as_deref() {
                None | Some("prometheus") => {}
                Some(other) => {
                    return Err(ConfigError(format!(
                    "GOTRUE_METRICS_EXPORTER {other:?} is not supported; weauth exports prometheus"
                )))
                }
            }
            Some(MetricsAddress {
                host: v.str_or(&["OTEL_EXPORTER_PROMETHEUS_HOST"], &host),
                port: v.parse(&["OTEL_EXPORTER_PROMETHEUS_PORT"], 9100u16)?,
            })
        } else {
            None
        };
        Ok(ServerConfig {
            host,
            port: v.parse(&["GOTRUE_API_PORT", "PORT"], 9999u16)?,
            api_external_url,
            site_url: v.required(&["GOTRUE_SITE_URL"], "http://localhost:3000"),
            uri_allow_list: v.list(&["GOTRUE_URI_ALLOW_LIST"], ""),
            keep_alive_secs: match v.parse(&["WEAUTH_KEEP_ALIVE_SECS"], 60u64)? {
                n @ 1..=3600 => n,
                _ => {
                    return Err(ConfigError(
                        "WEAUTH_KEEP_ALIVE_SECS must be between 1 and 3600".into(),
                    ))
                }
            },
            cors_allowed_headers,
            metrics,
        })
    }
}
