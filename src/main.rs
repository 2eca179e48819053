//! The `weauth` command: `serve` (default), `migrate`, `rate-limits` and `keys`.

use std::io::IsTerminal;
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
    /// Signing keys: generate a key for GOTRUE_JWT_KEYS, or mint an API key (anon, service_role).
    #[command(subcommand)]
    Keys(KeysCommand),
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Print a new private signing key as a GOTRUE_JWT_KEYS array (one key, key_ops sign+verify).
    Generate {
        /// ES256 (P-256, the default) or RS256 (RSA 2048).
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "RS256"])]
        alg: String,
    },
    /// Print a long-lived JWT for `role` (no sub), signed with the configured signing key: the
    /// anon and service_role API keys supabase-js and PostgREST are given.
    Token {
        /// The `role` claim: anon, service_role, ...
        #[arg(long)]
        role: String,
        /// Lifetime in days.
        #[arg(long, default_value_t = 3650)]
        days: i64,
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
    let json = std::env::var("WEAUTH_LOG_FORMAT").as_deref() == Ok("json");
    // Colour only on a terminal: a file or a pipe gets plain text (and JSON never has colour).
    let ansi = !json && std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(CappedStdout { json });
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Longest log line written as is. Every event is bounded, so a request's share of the log is
/// too, whatever it carried (a megabyte of metadata, a giant header).
const MAX_LOG_LINE: usize = 4096;
/// Longest string field kept when a JSON line has to be shortened.
const MAX_LOG_STRING: usize = 512;

/// Standard output, one event per write (tracing-subscriber formats an event into one buffer
/// and writes it at once), each cut to [`MAX_LOG_LINE`].
struct CappedStdout {
    json: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for CappedStdout {
    type Writer = CappedLine;
    fn make_writer(&'a self) -> CappedLine {
        CappedLine { json: self.json }
    }
}

struct CappedLine {
    json: bool,
}

impl std::io::Write for CappedLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        if buf.len() <= MAX_LOG_LINE {
            out.write_all(buf)?;
        } else {
            out.write_all(&cap_line(buf, self.json))?;
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

/// Shortens one over-long log line. Text is cut at a character boundary and says how much was
/// dropped; a JSON line stays one valid object, with its long strings cut.
fn cap_line(line: &[u8], json: bool) -> Vec<u8> {
    fn cut(s: &str, max: usize) -> &str {
        let mut end = max.min(s.len());
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        &s[..end]
    }
    fn shorten(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.len() > MAX_LOG_STRING => {
                let dropped = s.len() - MAX_LOG_STRING;
                *s = format!("{}… [{dropped} bytes cut]", cut(s, MAX_LOG_STRING));
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(shorten),
            serde_json::Value::Object(map) => map.values_mut().for_each(shorten),
            _ => {}
        }
    }
    if json {
        if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(line) {
            shorten(&mut value);
            let mut out = serde_json::to_vec(&value).unwrap_or_default();
            if out.len() <= MAX_LOG_LINE {
                out.push(b'\n');
                return out;
            }
        }
        let level = serde_json::from_slice::<serde_json::Value>(line)
            .ok()
            .and_then(|v| v.get("level").cloned())
            .unwrap_or(serde_json::Value::Null);
        let mut out = serde_json::to_vec(&serde_json::json!({
            "level": level,
            "fields": {"message": "log line too long, dropped", "bytes": line.len()},
        }))
        .unwrap_or_default();
        out.push(b'\n');
        return out;
    }
    let text = String::from_utf8_lossy(line);
    let kept = cut(text.trim_end_matches('\n'), MAX_LOG_LINE);
    format!("{kept}… [{} bytes cut]\n", line.len() - kept.len()).into_bytes()
}

fn main() -> ExitCode {
    // Load .env before anything reads the environment (logging included); Config reads it too.
    let _ = dotenvy::dotenv();
    init_logging();
    let cli = Cli::parse();
    // A new key needs no configuration (and is what a new configuration starts from).
    if let Some(Command::Keys(KeysCommand::Generate { alg })) = &cli.command {
        return generate_key(alg);
    }
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
        Command::Keys(KeysCommand::Token { role, days }) => mint_api_key(&config, &role, days),
        Command::Keys(KeysCommand::Generate { .. }) => Ok(()),
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

fn generate_key(alg: &str) -> ExitCode {
    use weauth::config::KeyAlgorithm;
    let alg = if alg == "RS256" {
        KeyAlgorithm::Rs256
    } else {
        KeyAlgorithm::Es256
    };
    match weauth::config::generate_key(alg) {
        Ok(jwk) => {
            println!("{}", serde_json::Value::Array(vec![jwk]));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("weauth: cannot generate a key: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Supabase's API keys are JWTs with a `role` and no `sub`: `anon` for the public key,
/// `service_role` for the admin key.
fn mint_api_key(
    config: &Config,
    role: &str,
    days: i64,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let keys = weauth::auth::jwt::KeySet::from_config(&config.jwt)?;
    let now = chrono::Utc::now().timestamp();
    let mut claims = serde_json::json!({"role": role, "iat": now, "exp": now + days * 86_400});
    if let Some(iss) = &config.jwt.issuer {
        claims["iss"] = serde_json::json!(iss);
    }
    let token = keys
        .sign(&claims)
        .map_err(|_| "cannot sign with the configured signing key")?;
    println!("{token}");
    Ok(())
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
