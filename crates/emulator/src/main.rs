//! The `weauth-emulator` command: serves the emulator on host:port until SIGINT/SIGTERM.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use weauth_emulator::sms;
use weauth_emulator::wechat::{DEV_APP_ID, DEV_APP_SECRET};
use weauth_emulator::{EmulatorConfig, Secret};

#[derive(Parser)]
#[command(
    name = "weauth-emulator",
    version,
    about = "Emulator of the outside services weauth talks to (WeChat's server API, Aliyun and Tencent Cloud SMS), for development and tests"
)]
struct Cli {
    /// Port to listen on (also `WEAUTH_EMULATOR_PORT`).
    #[arg(long, env = "WEAUTH_EMULATOR_PORT", default_value_t = 9911)]
    port: u16,
    /// Address to bind (also `WEAUTH_EMULATOR_HOST`).
    #[arg(long, env = "WEAUTH_EMULATOR_HOST", default_value = "127.0.0.1")]
    host: String,
}

/// Logging as weauth does it: `GOTRUE_LOG_LEVEL`, else `RUST_LOG`, else info; JSON lines when
/// `WEAUTH_LOG_FORMAT=json`.
fn init_logging() {
    let level = std::env::var("GOTRUE_LOG_LEVEL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    if std::env::var("WEAUTH_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    // Load .env before anything reads the environment (logging and --port/--host included).
    let _ = dotenvy::dotenv();
    init_logging();
    let cli = Cli::parse();
    let config = match EmulatorConfig::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("weauth-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    match run(config, &cli.host, cli.port) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("weauth-emulator: {e}");
            eprintln!("weauth-emulator: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds host:port, logs the address and the app ids (never their secrets), serves until
/// SIGINT/SIGTERM.
fn run(mut config: EmulatorConfig, host: &str, port: u16) -> std::io::Result<()> {
    if config.wechat_apps.is_empty() {
        // Zero-config start: one app whose (public) credentials are documented here and logged.
        config
            .wechat_apps
            .insert(DEV_APP_ID.to_string(), Secret::new(DEV_APP_SECRET));
        tracing::warn!(
            app_id = DEV_APP_ID,
            secret = DEV_APP_SECRET,
            "no WeChat app configured (GOTRUE_EXTERNAL_WECHAT_APP_ID/SECRET): serving the built-in development app with its public secret"
        );
    }
    if config.sms_aliyun.is_none() {
        config.sms_aliyun = Some(sms::dev_aliyun_account());
        tracing::warn!(
            access_key_id = sms::DEV_ALIYUN_ACCESS_KEY_ID,
            access_key_secret = sms::DEV_ALIYUN_ACCESS_KEY_SECRET,
            sign_name = sms::DEV_ALIYUN_SIGN_NAME,
            template_code = sms::DEV_ALIYUN_TEMPLATE_CODE,
            "no Aliyun SMS account configured (WEAUTH_SMS_ALIYUN_*): serving the built-in development account with its public secret"
        );
    }
    if config.sms_tencent.is_none() {
        config.sms_tencent = Some(sms::dev_tencent_account());
        tracing::warn!(
            secret_id = sms::DEV_TENCENT_SECRET_ID,
            secret_key = sms::DEV_TENCENT_SECRET_KEY,
            sdk_app_id = sms::DEV_TENCENT_SDK_APP_ID,
            sign_name = sms::DEV_TENCENT_SIGN_NAME,
            template_id = sms::DEV_TENCENT_TEMPLATE_ID,
            "no Tencent Cloud SMS account configured (WEAUTH_SMS_TENCENT_*): serving the built-in development account with its public secret"
        );
    }
    let listener = TcpListener::bind((host, port))?;
    let address = listener.local_addr()?;
    let app_ids: Vec<&str> = config.wechat_apps.keys().map(String::as_str).collect();
    tracing::info!(
        %address,
        apps = ?app_ids,
        "emulator listening; point weauth at it with GOTRUE_EXTERNAL_WECHAT_API_URL, WEAUTH_SMS_ALIYUN_ENDPOINT and WEAUTH_SMS_TENCENT_ENDPOINT = http://{address}"
    );
    actix_web::rt::System::new()
        .block_on(async move { weauth_emulator::start(config, listener)?.await })
}
