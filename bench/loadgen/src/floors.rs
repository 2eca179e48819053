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

/// argon2id verifications per second on `threads` threads with the given parameters: the most
/// password sign-ins this machine can answer, whatever the server does around the hash.
pub fn argon2_floor(
    threads: usize,
    secs: f64,
    m: u32,
    t: u32,
    p: u32,
) -> Result<FloorResult, String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordVerifier, Version};
    let params = Params::new(m, t, p, None).map_err(|e| e.to_string())?;
    let hasher = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    let salt = SaltString::from_b64("YmVuY2hzYWx0YmVuY2hzYWx0").map_err(|e| e.to_string())?;
    let hash = hasher
        .hash_password(b"bench-password-123", &salt)
        .map_err(|e| e.to_string())?
        .to_string();
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let lat = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let start = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (count, stop, hash, lat) = (count.clone(), stop.clone(), hash.clone(), lat.clone());
            std::thread::spawn(move || {
                let parsed = PasswordHash::new(&hash).expect("hash");
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    let ok = Argon2::default()
                        .verify_password(b"bench-password-123", &parsed)
                        .is_ok();
                    assert!(ok);
                    let _ = lat.lock().unwrap().record(t0.elapsed().as_micros() as u64);
                    count.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        let _ = h.join();
    }
    let elapsed = start.elapsed().as_secs_f64();
    let n = count.load(Ordering::Relaxed);
    let hist = lat.lock().unwrap();
    Ok(FloorResult {
        label: "hash_floor".into(),
        scenario: "password".into(),
        concurrency: threads,
        rps: n as f64 / elapsed,
        p50_ms: Some(hist.value_at_quantile(0.5) as f64 / 1000.0),
        p99_ms: Some(hist.value_at_quantile(0.99) as f64 / 1000.0),
        transactions: n,
        failed: 0,
        mode: format!("argon2id m={m} KiB t={t} p={p}, {threads} threads"),
        statements: None,
        detail: String::new(),
    })
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
