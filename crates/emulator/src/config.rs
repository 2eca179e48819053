//! The emulator's own configuration. It reads the variables weauth reads for the same services
//! (`GOTRUE_EXTERNAL_WECHAT_APP_ID`/`_SECRET`/`_APPS`), with weauth's parsing rules, so that one
//! `.env` or environment configures both and they agree on app ids and secrets.

use std::collections::BTreeMap;
use std::fmt;

/// A secret that never prints (`Debug` shows `Secret(***)`).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A configuration variable with a value the emulator cannot use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Everything the emulator serves, read once at start-up.
#[derive(Clone, Debug, Default)]
pub struct EmulatorConfig {
    /// The WeChat mini-programs the WeChat emulator knows, keyed by app id: the default app of
    /// `GOTRUE_EXTERNAL_WECHAT_APP_ID`/`_SECRET`, then those of `GOTRUE_EXTERNAL_WECHAT_APPS`.
    pub wechat_apps: BTreeMap<String, Secret>,
}

impl EmulatorConfig {
    /// Loads `.env` (if present), then reads the process environment.
    pub fn from_env() -> Result<EmulatorConfig, ConfigError> {
        // A missing .env file is normal; a malformed one is not silently ignored.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError(format!("cannot read .env: {e}"))),
        }
        Self::from_lookup(&|name| std::env::var(name).ok())
    }

    /// Reads the variables from any lookup (tests pass a map). A blank value counts as unset.
    pub fn from_lookup(
        get: &dyn Fn(&str) -> Option<String>,
    ) -> Result<EmulatorConfig, ConfigError> {
        let var = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let mut apps = BTreeMap::new();
        let mut add = |app_id: &str, secret: &str| -> Result<(), ConfigError> {
            let (app_id, secret) = (app_id.trim(), secret.trim());
            if app_id.is_empty() || secret.is_empty() {
                return Err(ConfigError(
                    "every WeChat app needs an app id and a secret".into(),
                ));
            }
            apps.insert(app_id.to_string(), Secret::new(secret));
            Ok(())
        };
        match (
            var("GOTRUE_EXTERNAL_WECHAT_APP_ID"),
            var("GOTRUE_EXTERNAL_WECHAT_SECRET"),
        ) {
            (Some(id), Some(secret)) => add(&id, &secret)?,
            (None, None) => {}
            _ => return Err(ConfigError(
                "GOTRUE_EXTERNAL_WECHAT_APP_ID and GOTRUE_EXTERNAL_WECHAT_SECRET must be set together"
                    .into(),
            )),
        }
        if let Some(list) = var("GOTRUE_EXTERNAL_WECHAT_APPS") {
            for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
                let (id, secret) = entry.split_once(':').ok_or_else(|| {
                    ConfigError(
                        "GOTRUE_EXTERNAL_WECHAT_APPS must look like appid:secret,appid:secret"
                            .into(),
                    )
                })?;
                add(id, secret)?;
            }
        }
        // The website (wechat_qr), official-account (wechat_mp) and native-app (wechat_app)
        // AppIDs weauth is configured with, under GoTrue's provider variable names.
        for name in ["WECHAT_QR", "WECHAT_MP", "WECHAT_APP"] {
            let id = var(&format!("GOTRUE_EXTERNAL_{name}_CLIENT_ID"));
            let secret = var(&format!("GOTRUE_EXTERNAL_{name}_SECRET"));
            if let (Some(id), Some(secret)) = (id, secret) {
                add(&id, &secret)?;
            }
        }
        Ok(EmulatorConfig { wechat_apps: apps })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<EmulatorConfig, ConfigError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        EmulatorConfig::from_lookup(&|name| map.get(name).cloned())
    }

    fn app_ids(config: &EmulatorConfig) -> Vec<&str> {
        config.wechat_apps.keys().map(String::as_str).collect()
    }

    #[test]
    fn reads_the_default_app_and_the_list_like_weauth() {
        let config = read(&[
            ("GOTRUE_EXTERNAL_WECHAT_APP_ID", " wxdefault "),
            ("GOTRUE_EXTERNAL_WECHAT_SECRET", "s0"),
            ("GOTRUE_EXTERNAL_WECHAT_APPS", "wxb:s2, wxa : s1 ,,"),
        ])
        .unwrap();
        assert_eq!(app_ids(&config), ["wxa", "wxb", "wxdefault"]);
        assert_eq!(config.wechat_apps["wxdefault"].expose(), "s0");
        assert_eq!(config.wechat_apps["wxa"].expose(), "s1");
        assert_eq!(
            format!("{:?}", config.wechat_apps["wxa"]),
            "Secret(***)",
            "secrets never print"
        );
    }

    #[test]
    fn empty_counts_as_unset_and_the_pair_goes_together() {
        assert!(read(&[]).unwrap().wechat_apps.is_empty());
        let blank = read(&[
            ("GOTRUE_EXTERNAL_WECHAT_APP_ID", ""),
            ("GOTRUE_EXTERNAL_WECHAT_SECRET", "  "),
            ("GOTRUE_EXTERNAL_WECHAT_APPS", ""),
        ]);
        assert!(blank.unwrap().wechat_apps.is_empty());
        let half = read(&[("GOTRUE_EXTERNAL_WECHAT_APP_ID", "wx1")]).unwrap_err();
        assert!(half.0.contains("GOTRUE_EXTERNAL_WECHAT_SECRET"), "{half}");
        let half = read(&[("GOTRUE_EXTERNAL_WECHAT_SECRET", "s")]).unwrap_err();
        assert!(half.0.contains("must be set together"), "{half}");
    }

    #[test]
    fn malformed_lists_are_refused() {
        for bad in ["wx1", "wx1:", ":secret", "wx1:s1,wx2"] {
            assert!(
                read(&[("GOTRUE_EXTERNAL_WECHAT_APPS", bad)]).is_err(),
                "{bad:?} should be refused"
            );
        }
    }
}
