//! The `weauth` command: `serve` (default), `migrate` and `rate-limits`.

use std::net::TcpListener;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use weauth::config::Config;
use weauth::state::AppState;
use weauth::{db, server};

#[derive(Parser)]
#[command(
    name = "weauth",
    version,
    about = "GoTrue-compatible auth server with WeChat mini-program login"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Apply migrations, then serve the API (default port 9999).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// List the per-client rate limits: variable, default, current value, what each guards.
    RateLimits {
        /// Print only the variable names, one per line (for scripts).
        #[arg(long)]
        names: bool,
    },
}

fn init_logging() {
    // GoTrue's variable first, then the usual RUST_LOG; JSON when WEAUTH_LOG_FORMAT=json.
    // The HTTP client crates stay at warn whatever is asked: WeChat's API puts the app secret
    // and one-time codes in URLs, which their debug logs would print.
    let level = std::env::var("GOTRUE_LOG_LEVEL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| std::env::var("RUST_LOG").ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "info".to_string());
    let filter = EnvFilter::try_new(format!(
        "{level},h2=warn,hyper=warn,hyper_util=warn,reqwest=warn,rustls=warn"
    ))
    .unwrap_or_else(|_| EnvFilter::new("info"));
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
    // Load .env before anything reads the environment (logging included); Config reads it too.
    let _ = dotenvy::dotenv();
    init_logging();
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("weauth: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config),
        Command::Migrate => migrate(&config).map(|_| ()),
        Command::RateLimits { names } => {
            print_rate_limits(&config, names);
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("weauth: {e}");
            eprintln!("weauth: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_rate_limits(config: &Config, names_only: bool) {
    use weauth::rate_limit::Limit;
    for limit in Limit::all() {
        if names_only {
            println!("{}", limit.env_var());
        } else {
            println!(
                "{:<34} default {:>4}  now {:>4}  {}",
                limit.env_var(),
                limit.default_per_window(),
                config.rate_limits.per_window(*limit),
                limit.guards()
            );
        }
    }
}

/// Applies migrations, waiting up to about a minute for the database to come up (containers
/// often start before PostgreSQL accepts connections).
fn migrate(config: &Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut delay = std::time::Duration::from_millis(500);
    let mut attempt = 1;
    loop {
        match db::run_migrations(&config.database.url) {
            Ok(applied) => {
                tracing::info!(count = applied.len(), versions = ?applied, "migrations applied");
                return Ok(());
            }
            Err(e) if attempt < 8 => {
                tracing::warn!(attempt, error = %e, "database not ready, retrying in {delay:?}");
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_secs(15));
                attempt += 1;
            }
            Err(e) => return Err(format!("cannot apply migrations: {e}").into()),
        }
    }
}

fn serve(config: Config) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    if config.uses_dev_secret() {
        tracing::warn!("!!! GOTRUE_JWT_SECRET is not set: using the PUBLIC development secret. Anyone can forge tokens. Never run this in production. !!!");
    }
    migrate(&config)?;
    let listener = TcpListener::bind((config.server.host.as_str(), config.server.port))?;
    tracing::info!(address = %listener.local_addr()?, wechat = config.wechat.enabled, "weauth listening");
    let state = AppState::new(config)?;
    actix_web::rt::System::new()
        .block_on(async move { server::start(listener, state, None)?.await })?;
    Ok(())
}
