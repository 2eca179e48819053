//! PostgreSQL: where it is and how many connections weauth keeps.

use std::time::Duration;

use super::{ConfigError, Vars};

#[derive(Clone, Debug)]
pub struct DatabaseConfig {
    pub url: String,
    pub max_pool_size: u32,
    /// How long a request waits for a pooled connection (or a permit) before it gets a 503.
    pub connect_timeout: Duration,
    /// How long one unit of work may take on its connection before the request gets a 503
    /// (`WEAUTH_DB_QUERY_TIMEOUT_MS`, see `db::run`).
    pub query_timeout: Duration,
}

impl DatabaseConfig {
    pub fn read(v: &Vars<'_>) -> Result<DatabaseConfig, ConfigError> {
        let config = DatabaseConfig {
            url: v.required(
                &["GOTRUE_DB_DATABASE_URL", "DATABASE_URL"],
                "postgres://postgres@127.0.0.1:5432/postgres",
            ),
            max_pool_size: match v.parse(&["GOTRUE_DB_MAX_POOL_SIZE"], 0u32)? {
                0 => 16,
                n => n,
            },
            connect_timeout: v.millis(&["WEAUTH_DB_CONNECT_TIMEOUT_MS"], 3000)?,
            query_timeout: v.millis(&["WEAUTH_DB_QUERY_TIMEOUT_MS"], 5000)?,
        };
        if !(1..=256).contains(&config.max_pool_size) {
            return Err(ConfigError(
                "GOTRUE_DB_MAX_POOL_SIZE must be between 1 and 256".into(),
            ));
        }
        Ok(config)
    }
}
