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
    /// Request headers browsers may send cross-origin besides the defaults
    /// (`GOTRUE_CORS_ALLOWED_HEADERS`, comma-separated).
    pub cors_allowed_headers: Vec<String>,
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
        Ok(ServerConfig {
            // With the public development secret, only this machine may reach the server.
            host: v.str(&["GOTRUE_API_HOST"]).unwrap_or_else(|| {
                if jwt.uses_dev_secret() {
                    "127.0.0.1"
                } else {
                    "0.0.0.0"
                }
                .into()
            }),
            port: v.parse(&["GOTRUE_API_PORT", "PORT"], 9999u16)?,
            api_external_url,
            site_url: v.required(&["GOTRUE_SITE_URL"], "http://localhost:3000"),
            cors_allowed_headers,
        })
    }
}
