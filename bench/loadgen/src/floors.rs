//! The floors: pgbench results turned into JSON lines, and the argon2id hashing floor.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub struct FloorResult {
    /// `floor` (pgbench replay of the endpoint's SQL) or `hash_floor` (argon2id verifications).
    pub label: String,
    pub scenario: String,
    pub concurrency: usize,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub transactions: u64,
    pub failed: u64,
    pub mode: String,
    pub statements: Option<usize>,
    pub detail: String,
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.trim_start().starts_with(key))?;
    let rest = &line[line.find(key)? + key.len()..];
    rest.split_whitespace()
        .next()?
        .trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
        .parse()
        .ok()
}

/// Statements per transaction of a pgbench script: non-comment lines ending in `;`.
pub fn statements_in(script: &str) -> usize {
    script
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.starts_with("--")
                && !l.starts_with('\\')
                && (l.ends_with(';') || l.ends_with("\\gset"))
        })
        .count()
}

pub fn pgbench_result(
    scenario: &str,
    concurrency: usize,
    mode: &str,
    stdout: &str,
    logs_dir: &str,
    log_prefix: &str,
    script: Option<&str>,
) -> Result<FloorResult, String> {
    let text = std::fs::read_to_string(stdout).map_err(|e| format!("{stdout}: {e}"))?;
    let tps = number_after(&text, "tps =").ok_or_else(|| format!("no tps in {stdout}:\n{text}"))?;
    let processed =
        number_after(&text, "number of transactions actually processed:").unwrap_or(0.0);
    let failed = number_after(&text, "number of failed transactions:").unwrap_or(0.0);
    let mut hist =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?;
    let mut log_failed = 0u64;
    for entry in std::fs::read_dir(logs_dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let name = entry.file_name().to_string_lossy().to_string();
        if !name.starts_with(log_prefix) {
            continue;
        }
        let body = std::fs::read_to_string(entry.path()).map_err(|e| e.to_string())?;
        for line in body.lines() {
            match line.split_whitespace().nth(2).map(str::parse::<u64>) {
                Some(Ok(us)) => {
                    let _ = hist.record(us.max(1));
                }
                _ => log_failed += 1,
            }
        }
    }
    let statements = script
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| statements_in(&s));
    Ok(FloorResult {
        label: "floor".into(),
        scenario: scenario.into(),
        concurrency,
        rps: tps,
        p50_ms: (!hist.is_empty()).then(|| hist.value_at_quantile(0.5) as f64 / 1000.0),
        p99_ms: (!hist.is_empty()).then(|| hist.value_at_quantile(0.99) as f64 / 1000.0),
        transactions: processed as u64,
        failed: failed as u64 + log_failed,
        mode: mode.into(),
        statements,
        detail: text
            .lines()
            .filter(|l| l.starts_with("tps") || l.starts_with("latency average"))
            .collect::<Vec<_>>()
            .join("; "),
    })
}

/// Which argon2 code `loadgen argon2` measures.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Argon2Impl {
    /// weauth's own path: `weauth::auth::password::verify` on weauth's `HashPool` threads
    /// (argon2-rust, run-time SIMD, memory kept per thread): what the password grant runs.
    Weauth,
    /// The path weauth had before (RustCrypto `argon2` 0.5, its block buffer kept per thread),
    /// for the side-by-side in bench/argon2/compare.sh.
    Rustcrypto,
}

/// argon2id verifications per second on `threads` threads with the given parameters: the most
/// password sign-ins this machine can answer, whatever the server does around the hash. With
/// `count`, every thread runs exactly that many verifications instead (for instruction counts).
pub fn argon2_floor(
    imp: Argon2Impl,
    threads: usize,
    secs: f64,
    count: Option<u64>,
    (m, t, p): (u32, u32, u32),
) -> Result<FloorResult, String> {
    const PASSWORD: &str = "bench-password-123";
    let cfg = weauth::config::PasswordHashConfig {
        memory_kib: m,
        iterations: t,
        parallelism: p,
    };
    let hash = weauth::auth::password::hash(PASSWORD, &cfg).map_err(|e| format!("{e:?}"))?;
    // One verification, on the calling thread (a worker of `pool` for `weauth`).
    let verify: Arc<dyn Fn() -> bool + Send + Sync> = match imp {
        Argon2Impl::Weauth => {
            let hash = hash.clone();
            Arc::new(move || weauth::auth::password::verify(PASSWORD, &hash))
        }
        Argon2Impl::Rustcrypto => {
            let hash = hash.clone();
            Arc::new(move || rustcrypto_verify(PASSWORD, &hash))
        }
    };
    // weauth's verifications run on its hashing threads; a client thread per hashing thread
    // keeps each of them busy (the hand-off costs microseconds against milliseconds of hashing).
    let pool = match imp {
        Argon2Impl::Weauth => Some(Arc::new(
            weauth::auth::password::HashPool::new(threads).map_err(|e| e.to_string())?,
        )),
        Argon2Impl::Rustcrypto => None,
    };
    let runtime = tokio::runtime::Handle::current();
    let count_done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let (start, cpu0) = (Instant::now(), crate::sys::self_cpu_ticks());
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (done, stop, lat) = (count_done.clone(), stop.clone(), lat.clone());
            let (verify, pool, runtime) = (verify.clone(), pool.clone(), runtime.clone());
            std::thread::spawn(move || {
                let mut mine = 0u64;
                while !stop.load(Ordering::Relaxed) && count.is_none_or(|c| mine < c) {
                    let t0 = Instant::now();
                    let ok = match &pool {
                        Some(pool) => {
                            let verify = verify.clone();
                            runtime
                                .block_on(pool.run(move || verify()))
                                .unwrap_or(false)
                        }
                        None => verify(),
                    };
                    assert!(ok, "the benchmark password must verify");
                    let _ = lat.lock().unwrap().record(t0.elapsed().as_micros() as u64);
                    done.fetch_add(1, Ordering::Relaxed);
                    mine += 1;
                }
            })
        })
        .collect();
    if count.is_none() {
        std::thread::sleep(Duration::from_secs_f64(secs));
        stop.store(true, Ordering::Relaxed);
    }
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (crate::sys::self_cpu_ticks() - cpu0) as f64 / crate::sys::TICKS_PER_SEC;
    let n = count_done.load(Ordering::Relaxed);
    let hist = lat.lock().unwrap();
    let name = match imp {
        Argon2Impl::Weauth => "weauth (argon2-rust, HashPool)",
        Argon2Impl::Rustcrypto => "RustCrypto argon2 0.5 (weauth before)",
    };
    Ok(FloorResult {
        label: match imp {
            Argon2Impl::Weauth => "hash_floor".into(),
            Argon2Impl::Rustcrypto => "hash_floor_ref".into(),
        },
        scenario: "password".into(),
        concurrency: threads,
        rps: n as f64 / elapsed,
        p50_ms: Some(hist.value_at_quantile(0.5) as f64 / 1000.0),
        p99_ms: Some(hist.value_at_quantile(0.99) as f64 / 1000.0),
        transactions: n,
        failed: 0,
        mode: format!("{name}: argon2id m={m} KiB t={t} p={p}, {threads} threads"),
        statements: None,
        // CPU seconds of the whole process over the measured interval (other load on the
        // machine stretches the wall clock, much less the CPU time of a verification).
        detail: format!("cpu_s={cpu:.2}"),
    })
}

thread_local! {
    /// The RustCrypto path's block buffer, kept per thread as weauth kept it.
    static RUSTCRYPTO_MEMORY: std::cell::RefCell<Vec<argon2::Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// weauth's verification before argon2-rust: the PHC string parsed by `password-hash`, the
/// output computed by RustCrypto's `argon2` 0.5 on a block buffer kept per thread, compared.
fn rustcrypto_verify(password: &str, hash: &str) -> bool {
    use argon2::password_hash::PasswordHash;
    use argon2::{Algorithm, Argon2, Block, Params, Version};
    let parsed = PasswordHash::new(hash).expect("PHC string");
    let params = Params::try_from(&parsed).expect("argon2 parameters");
    let argon = Argon2::new(
        Algorithm::try_from(parsed.algorithm).expect("algorithm"),
        parsed
            .version
            .map(|v| Version::try_from(v).expect("version"))
            .unwrap_or_default(),
        params.clone(),
    );
    let (salt, expected) = (parsed.salt.expect("salt"), parsed.hash.expect("hash"));
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).expect("salt");
    let mut out = vec![0u8; expected.len()];
    RUSTCRYPTO_MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < params.block_count() {
            *memory = vec![Block::default(); params.block_count()];
        }
        let blocks = params.block_count();
        argon
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt_bytes,
                &mut out,
                &mut memory[..blocks],
            )
            .expect("argon2");
    });
    out == expected.as_bytes()
}

pub fn append_json<T: Serialize>(out: &str, v: &T) -> Result<(), String> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .map_err(|e| format!("{out}: {e}"))?;
    writeln!(
        f,
        "{}",
        serde_json::to_string(v).map_err(|e| e.to_string())?
    )
    .map_err(|e| e.to_string())
}
