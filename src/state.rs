//! What every flow shares: configuration, the database pool, the token keys, the outside
//! providers and the rate limiters. Built once at start-up; handlers reach it as `web::Data`.

use std::sync::Arc;

use crate::auth::jwt::AccessTokens;
use crate::auth::password;
use crate::config::Config;
use crate::db::{self, PgPool};
use crate::flows::mail::Outbox;
use crate::flows::ClientInfo;
use crate::providers::hooks::Hook;
use crate::providers::sms::SmsProvider;
use crate::providers::wechat::WechatService;
use crate::rate_limit::{Limit, RateLimits};

pub struct AppState {
    pub config: Arc<Config>,
    pub pool: PgPool,
    /// The key set access tokens are signed and verified with, and the claim rules.
    pub tokens: AccessTokens,
    /// Verified against when a sign-in names an unknown user (equal timing).
    pub dummy_hash: String,
    pub wechat: WechatService,
    /// Where SMS codes go (`GOTRUE_SMS_PROVIDER` or the Send SMS hook); `None`: nowhere.
    pub sms: Option<SmsProvider>,
    /// GoTrue's custom access-token hook, when enabled: it may change the claims of every
    /// access token before it is signed (`flows::session`).
    pub access_token_hook: Option<Hook>,
    /// GoTrue's Send Email hook, when enabled: mails go to it instead of SMTP (`flows::email`).
    pub send_email_hook: Option<Hook>,
    pub limits: RateLimits,
    /// Password hashing runs here, never on the executor or the general blocking pool.
    pub hashing: password::HashPool,
    /// The SMTP sender, mail templates and the global mail cap.
    pub mail: Outbox,
}

impl AppState {
    /// How a sign-in's one statement commits (`db::fast_path`): on its own, unless an
    /// access-token hook runs after it and must be able to undo the session by failing.
    pub fn fast_commit(&self) -> crate::db::FastCommit {
        match self.access_token_hook {
            Some(_) => crate::db::FastCommit::InTransaction,
            None => crate::db::FastCommit::Alone,
        }
    }

    /// Spends one request of `limit` for the caller (429 when the limit is reached).
    pub async fn limit(&self, limit: Limit, client: &ClientInfo) -> crate::error::ApiResult<()> {
        self.limits.check(limit, &client.rate_key).await
    }

    /// Builds the state for `config`; connects lazily, so this works while the database is down.
    pub fn new(config: Config) -> Result<AppState, Box<dyn std::error::Error + Send + Sync>> {
        let config = Arc::new(config);
        let pool = db::build_pool(
            &config.database.url,
            config.database.max_pool_size,
            config.database.connect_timeout,
        )
        .with_deadline(config.database.query_timeout);
        let dummy_hash =
            password::dummy_hash(&config.password.hash).map_err(|e| format!("{e:?}"))?;
        Ok(AppState {
            tokens: AccessTokens::new(&config.jwt)?,
            wechat: WechatService::new(&config.wechat, pool.clone())?,
            sms: SmsProvider::from_config(&config.sms, &config.hooks)?,
            send_email_hook: match config.hooks.send_email.active() {
                Some(endpoint) => Some(Hook::new(
                    "send_email",
                    endpoint.clone(),
                    config.hooks.timeout,
                )?),
                None => None,
            },
            access_token_hook: match config.hooks.custom_access_token.active() {
                Some(endpoint) => Some(Hook::new(
                    "custom_access_token",
                    endpoint.clone(),
                    config.hooks.timeout,
                )?),
                None => None,
            },
            dummy_hash,
            limits: RateLimits::new(&config.rate_limits)?,
            hashing: password::HashPool::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )?,
            mail: Outbox::new(&config)?,
            pool,
            config,
        })
    }
}
