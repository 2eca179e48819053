//! `loadgen`: weauth's benchmark tools (see bench/README.md).
//!
//! * `run`: one scenario at one concurrency (prepare, warm up, measure), one JSON line out.
//! * `proxy`: the PostgreSQL round-trip counting proxy.
//! * `soak`: the mixed workload of issue #6, with the database checks.
//! * `argon2`: the hashing floor of the password grant.
//! * `pgbench-result`: turns a pgbench run into a JSON line.
//! * `report`: writes BENCHMARKS.md from the JSON lines.

mod bench;
mod floors;
mod http;
mod proxy;
mod report;
mod soak;
mod sys;
mod totp;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadgen", about = "weauth benchmark tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one scenario at one concurrency.
    Run(bench::RunArgs),
    /// PostgreSQL wire-protocol proxy counting round trips.
    Proxy {
        #[arg(long)]
        listen: String,
        #[arg(long, default_value = "127.0.0.1:5432")]
        upstream: String,
        #[arg(long)]
        control: String,
    },
    /// Parse a pgbench run (stdout and per-transaction logs) into a JSON line.
    PgbenchResult {
        #[arg(long)]
        scenario: String,
        #[arg(long)]
        concurrency: usize,
        #[arg(long, default_value = "prepared")]
        mode: String,
        #[arg(long, default_value = "floor")]
        label: String,
        #[arg(long)]
        stdout: String,
        #[arg(long)]
        logs: String,
        #[arg(long)]
        log_prefix: String,
        #[arg(long)]
        script: Option<String>,
        #[arg(long)]
        out: String,
    },
    /// argon2id verifications per second (the password grant's hashing floor).
    Argon2 {
        /// weauth's own verification (the floor) or the RustCrypto path it had before.
        #[arg(long = "impl", value_enum, default_value = "weauth")]
        imp: floors::Argon2Impl,
        #[arg(long, default_value_t = 2)]
        threads: usize,
        #[arg(long, default_value_t = 10.0)]
        duration: f64,
        /// Run exactly this many verifications per thread instead of `duration` (callgrind).
        #[arg(long)]
        count: Option<u64>,
        #[arg(long, default_value_t = 19456)]
        m: u32,
        #[arg(long, default_value_t = 2)]
        t: u32,
        #[arg(long, default_value_t = 1)]
        p: u32,
        #[arg(long)]
        out: String,
    },
    /// Write BENCHMARKS.md from a run's JSON lines (keeps its Soak section).
    Report(report::ReportArgs),
    /// The soak: mixed workload, RSS curve, database checks; replaces the Soak section.
    Soak(soak::SoakArgs),
    /// Send one command to a proxy's control port (get, reset, log-start, log-get).
    ProxyCtl {
        #[arg(long)]
        control: String,
        command: String,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let result: Result<(), String> = rt.block_on(async move {
        match cli.command {
            Command::Run(args) => bench::run(args).await.map(|_| ()),
            Command::Proxy { listen, upstream, control } => {
                proxy::run(listen, upstream, control).await.map_err(|e| e.to_string())
            }
            Command::PgbenchResult { scenario, concurrency, mode, label, stdout, logs, log_prefix, script, out } => {
                let mut r = floors::pgbench_result(&scenario, concurrency, &mode, &stdout, &logs, &log_prefix, script.as_deref())?;
                r.label = label;
                eprintln!("[{} {scenario}] c={concurrency}: {}", r.label, r.mode);
                eprintln!("[floor {scenario}] c={concurrency}: {:.0} tps, p50 {:?} ms, p99 {:?} ms, failed {}", r.rps, r.p50_ms, r.p99_ms, r.failed);
                floors::append_json(&out, &r)
            }
            Command::Argon2 { imp, threads, duration, count, m, t, p, out } => {
                let r = tokio::task::spawn_blocking(move || floors::argon2_floor(imp, threads, duration, count, (m, t, p)))
                    .await
                    .map_err(|e| e.to_string())??;
                eprintln!("[argon2 floor] {}: {:.1} verifications/s, p50 {:?} ms", r.mode, r.rps, r.p50_ms);
                floors::append_json(&out, &r)
            }
            Command::Report(args) => report::report(args),
            Command::Soak(args) => match soak::soak(args).await? {
                true => Ok(()),
                false => Err("soak FAILED (see the Soak section)".into()),
            },
            Command::ProxyCtl { control, command } => {
                let reply = proxy::control(&control, &command).await.map_err(|e| e.to_string())?;
                println!("{reply}");
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
