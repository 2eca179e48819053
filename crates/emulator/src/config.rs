//! The emulator's own configuration. It reads the variables weauth reads for the same services
//! (`GOTRUE_EXTERNAL_WECHAT_APP_ID`/`_SECRET`/`_APPS`, and the `WEAUTH_SMS_ALIYUN_*` /
//! `WEAUTH_SMS_TENCENT_*` accounts), with weauth's parsing rules, so that one `.env` or
//! environment configures both and they agree on app ids, keys and secrets.

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
    /// The Aliyun SMS account the SMS emulator accepts (`WEAUTH_SMS_ALIYUN_*`).
    pub sms_aliyun: Option<AliyunSmsAccount>,
    /// The Tencent Cloud SMS account the SMS emulator accepts (`WEAUTH_SMS_TENCENT_*`).
    pub sms_tencent: Option<TencentSmsAccount>,
}

/// An Aliyun account with one approved signature and one approved template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AliyunSmsAccount {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    pub sign_name: String,
    pub template_code: String,
}

/// A Tencent Cloud account with one SMS application, one approved signature and one template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TencentSmsAccount {
    pub secret_id: String,
    pub secret_key: Secret,
    pub sdk_app_id: String,
    pub sign_name: String,
    pub template_id: String,
}

/// Reads a group of variables that go together: all set gives `Some(values)`, none `None`, some
/// an error naming the missing ones.
fn group<const N: usize>(
    var: &dyn Fn(&str) -> Option<String>,
    names: [&str; N],
) -> Result<Option<[String; N]>, ConfigError> {
    let values = names.map(|name| var(name).map(|v| v.trim().to_string()));
    if values.iter().all(Option::is_none) {
        return Ok(None);
    }
    let missing: Vec<&str> = names
        .iter()
        .zip(&values)
        .filter(|(_, v)| v.is_none())
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(ConfigError(format!(
            "{} must be set together (missing {})",
            names.join(", "),
            missing.join(", ")
        )));
    }
    Ok(Some(values.map(Option::unwrap_or_default)))
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
        let sms_aliyun = group(
            &var,
            [
                "WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID",
                "WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET",
                "WEAUTH_SMS_ALIYUN_SIGN_NAME",
                "WEAUTH_SMS_ALIYUN_TEMPLATE_CODE",
            ],
        )?
        .map(|[id, secret, sign_name, template_code]| AliyunSmsAccount {
            access_key_id: id,
            access_key_secret: Secret::new(secret),
            sign_name,
            template_code,
        });
        let sms_tencent = group(
            &var,
            [
                "WEAUTH_SMS_TENCENT_SECRET_ID",
                "WEAUTH_SMS_TENCENT_SECRET_KEY",
                "WEAUTH_SMS_TENCENT_SDK_APP_ID",
                "WEAUTH_SMS_TENCENT_SIGN_NAME",
                "WEAUTH_SMS_TENCENT_TEMPLATE_ID",
            ],
        )?
        .map(
            |[secret_id, key, sdk_app_id, sign_name, template_id]| TencentSmsAccount {
                secret_id,
                secret_key: Secret::new(key),
                sdk_app_id,
                sign_name,
                template_id,
            },
        );
        Ok(EmulatorConfig {
            wechat_apps: apps,
            sms_aliyun,
            sms_tencent,
        })
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
    fn reads_the_sms_accounts_weauth_uses() {
        let config = read(&[
            ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_ID", " LTAIkey "),
            ("WEAUTH_SMS_ALIYUN_ACCESS_KEY_SECRET", "alisecret"),
            ("WEAUTH_SMS_ALIYUN_SIGN_NAME", "weauth"),
            ("WEAUTH_SMS_ALIYUN_TEMPLATE_CODE", "SMS_1"),
        ])
        .unwrap();
        let aliyun = config.sms_aliyun.unwrap();
        assert_eq!(aliyun.access_key_id, "LTAIkey");
        assert_eq!(aliyun.access_key_secret.expose(), "alisecret");
        assert_eq!(
            (aliyun.sign_name.as_str(), aliyun.template_code.as_str()),
            ("weauth", "SMS_1")
        );
        assert!(config.sms_tencent.is_none());
        assert!(!format!("{aliyun:?}").contains("alisecret"));

        let half = read(&[
            ("WEAUTH_SMS_TENCENT_SECRET_ID", "AKID1"),
            ("WEAUTH_SMS_TENCENT_SECRET_KEY", " "),
        ])
        .unwrap_err();
        assert!(
            half.0
                .contains("missing WEAUTH_SMS_TENCENT_SECRET_KEY, WEAUTH_SMS_TENCENT_SDK_APP_ID"),
            "{half}"
        );
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
