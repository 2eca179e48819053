//! Access tokens: the signing secret, lifetime, audience and roles (`GOTRUE_JWT_*`).

use super::{ConfigError, Secret, Vars};

/// The secret every development instance shares. Refused when `WEAUTH_ENV=production`.
pub const DEV_JWT_SECRET: &str = "weauth-development-secret-do-not-use-in-production";

#[derive(Clone, Debug)]
pub struct JwtConfig {
    /// HS256 secret (`GOTRUE_JWT_SECRET`).
    pub secret: Secret,
    /// Access-token lifetime in seconds.
    pub exp: i64,
    pub aud: String,
    pub issuer: Option<String>,
    /// Token roles allowed on `/admin/*`.
    pub admin_roles: Vec<String>,
    /// `role` of new users.
    pub default_group_name: String,
    /// Users with this role may change their own `app_metadata`.
    pub admin_group_name: String,
}

impl JwtConfig {
    pub fn read(v: &Vars<'_>) -> Result<JwtConfig, ConfigError> {
        let secret = v.required(&["GOTRUE_JWT_SECRET"], DEV_JWT_SECRET);
        if v.production && !secret.is_empty() && (secret == DEV_JWT_SECRET || secret.len() < 32) {
            return Err(ConfigError(
                "GOTRUE_JWT_SECRET must be a private value of at least 32 characters in production"
                    .into(),
            ));
        }
        let config = JwtConfig {
            secret: Secret::new(secret),
            exp: v.parse(&["GOTRUE_JWT_EXP"], 3600i64)?,
            aud: v.str_or(&["GOTRUE_JWT_AUD"], "authenticated"),
            issuer: v.str(&["GOTRUE_JWT_ISSUER"]),
            admin_roles: v.list(&["GOTRUE_JWT_ADMIN_ROLES"], "service_role,supabase_admin"),
            default_group_name: v.str_or(&["GOTRUE_JWT_DEFAULT_GROUP_NAME"], "authenticated"),
            admin_group_name: v.str_or(&["GOTRUE_JWT_ADMIN_GROUP_NAME"], "admin"),
        };
        if config.exp <= 0 {
            return Err(ConfigError(
                "GOTRUE_JWT_EXP must be a positive number of seconds".into(),
            ));
        }
        Ok(config)
    }

    /// True when tokens are signed with the public development secret.
    pub fn uses_dev_secret(&self) -> bool {
        self.secret.expose() == DEV_JWT_SECRET
    }
}
