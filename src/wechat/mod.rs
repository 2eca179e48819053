//! Everything that talks to WeChat's server API lives here: the HTTP client, the shared access
//! token cache and the legacy `encryptedData` decryption.

use std::sync::Arc;

use crate::config::Config;
use crate::db::PgPool;

/// The one place weauth calls WeChat from.
pub struct WechatService {
    pub config: Arc<Config>,
    pub pool: PgPool,
}

impl WechatService {
    pub fn new(config: Arc<Config>, pool: PgPool) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(WechatService { config, pool })
    }
}
