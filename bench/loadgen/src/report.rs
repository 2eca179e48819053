//! Writes BENCHMARKS.md from the JSON lines of a run (and keeps or replaces its Soak section).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use crate::bench::RunResult;
use crate::floors::FloorResult;

pub const SOAK_BEGIN: &str = "<!-- soak:begin -->";
pub const SOAK_END: &str = "<!-- soak:end -->";

#[derive(clap::Args)]
pub struct ReportArgs {
    #[arg(long)]
    pub results: String,
    #[arg(long)]
    pub meta: String,
    #[arg(long)]
    pub capture: Option<String>,
    #[arg(long)]
    pub analysis: Option<String>,
    #[arg(long)]
    pub command: String,
    #[arg(long, default_value = "")]
    pub env: String,
    #[arg(long)]
    pub pool_size: u32,
    #[arg(long)]
    pub argon2: String,
    #[arg(long)]
    pub out: String,
    /// Instructions per request (`bench/run.sh instructions`: instructions.jsonl).
    #[arg(long)]
    pub instructions: Option<String>,
    /// Hand-written "compared with" section (bench/compared.md).
    #[arg(long)]
    pub compared: Option<String>,
}

/// One line of instructions.jsonl.
#[derive(serde::Deserialize)]
struct Instructions {
    scenario: String,
    requests: u64,
    ok: u64,
    per_request: Option<f64>,
}

pub const SCENARIOS: [(&str, &str); 11] = [
    ("health", "`GET /health` (HTTP floor, no database)"),
    ("user", "`GET /user`"),
    ("refresh", "`POST /token?grant_type=refresh_token`"),
    ("login_returning", "WeChat login, returning user"),
    ("login_new", "WeChat login, first-time user"),
    ("bind_phone", "`GET /wechat_mini/bind_phone`"),
    ("password", "`POST /token?grant_type=password`"),
    ("signup", "`POST /signup` (autoconfirm)"),
    ("otp", "`POST /otp` + `POST /verify` (SMS)"),
    (
        "oauth_callback",
        "`GET /authorize` + `/callback` (WeChat website)",
    ),
    ("mfa_verify", "TOTP `challenge` + `verify`"),
];

pub fn meta_map(path: &str) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Replaces (or appends) the soak section of `existing` with `soak`; with `soak` None, keeps
/// the soak section of `existing` (if any) after `main`.
pub fn splice(existing: &str, main: Option<&str>, soak: Option<&str>) -> String {
    let old_soak = match (existing.find(SOAK_BEGIN), existing.find(SOAK_END)) {
        (Some(a), Some(b)) if b > a => Some(existing[a..b + SOAK_END.len()].to_string()),
        _ => None,
    };
    let old_main = match existing.find(SOAK_BEGIN) {
        Some(a) => existing[..a].trim_end().to_string(),
        None => existing.trim_end().to_string(),
    };
    let main = main.map(str::to_string).unwrap_or(old_main);
    let soak = soak
        .map(|s| format!("{SOAK_BEGIN}\n{}\n{SOAK_END}", s.trim_end()))
        .or(old_soak)
        .unwrap_or_else(|| {
            format!(
                "{SOAK_BEGIN}\n## Soak (issue #6)\n\nNot run yet: `bench/run.sh soak`.\n{SOAK_END}"
            )
        });
    format!("{}\n\n{}\n", main.trim_end(), soak)
}

fn f0(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn mib(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1}", k as f64 / 1024.0))
        .unwrap_or_else(|| "–".into())
}

/// Shortens diesel's long column lists in the SQL capture.
fn shorten_sql(text: &str) -> String {
    let users: Vec<String> = "id aud role email encrypted_password email_confirmed_at invited_at confirmation_sent_at recovery_sent_at email_change email_change_sent_at last_sign_in_at raw_app_meta_data raw_user_meta_data created_at updated_at phone phone_confirmed_at phone_change phone_change_sent_at confirmed_at reauthentication_sent_at banned_until deleted_at is_anonymous"
        .split_whitespace()
        .map(|c| format!("\"auth\".\"users\".\"{c}\""))
        .collect();
    let idents: Vec<String> =
        "id provider_id user_id identity_data provider last_sign_in_at created_at updated_at email"
            .split_whitespace()
            .map(|c| format!("\"auth\".\"identities\".\"{c}\""))
            .collect();
    let short = text
        .replace(&users.join(", "), "<users: 25 columns>")
        .replace(&idents.join(", "), "<identities: 9 columns>");
    // An unnamed statement is parsed and bound in the same round trip: show its SQL once.
    let mut out = Vec::new();
    let mut last_parse: Option<(String, String)> = None;
    for line in short.lines() {
        let (conn, rest) = line.split_once(' ').unwrap_or(("", ""));
        if let Some(sql) = rest.strip_prefix("P  [unnamed] ") {
            last_parse = Some((conn.to_string(), sql.to_string()));
            out.push(line.to_string());
            continue;
        }
        if let (Some(sql), Some((c, p))) = (rest.strip_prefix("B  [unnamed] "), &last_parse) {
            if c == conn && p == sql {
                out.push(format!("{conn} B  [unnamed] (the statement just parsed)"));
                continue;
            }
        }
        out.push(line.to_string());
    }
    out.join("\n")
}

pub fn report(a: ReportArgs) -> Result<(), String> {
    let text = std::fs::read_to_string(&a.results).map_err(|e| format!("{}: {e}", a.results))?;
    let mut runs: Vec<RunResult> = Vec::new();
    let mut floors: Vec<FloorResult> = Vec::new();
    for line in text.lines() {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        match v["label"].as_str() {
            Some("floor") | Some("floor_pool") | Some("hash_floor") | Some("hash_floor_ref") => {
                floors.push(serde_json::from_value(v).map_err(|e| e.to_string())?)
            }
            Some(l) if l.starts_with("hash_") => {
                if let Ok(f) = serde_json::from_value(v) {
                    floors.push(f);
                }
            }
            _ => runs.push(serde_json::from_value(v).map_err(|e| e.to_string())?),
        }
    }
    let meta = meta_map(&a.meta);
    let m = |k: &str| meta.get(k).cloned().unwrap_or_else(|| "?".into());
    let find = |label: &str, sc: &str, c: usize| {
        runs.iter()
            .rev()
            .find(|r| r.label == label && r.scenario == sc && r.concurrency == c)
    };
    let floor = |sc: &str, c: usize| {
        floors
            .iter()
            .rev()
            .find(|f| f.label == "floor" && f.scenario == sc && f.concurrency == c)
    };
    let floor_pool = |sc: &str, c: usize| {
        floors
            .iter()
            .rev()
            .find(|f| f.label == "floor_pool" && f.scenario == sc && f.concurrency == c)
    };
    let hash_floor = floors.iter().rev().find(|f| f.label == "hash_floor");
    let mut concurrencies: Vec<usize> = runs
        .iter()
        .filter(|r| r.label == "throughput" && !r.scenario.starts_with("emu_"))
        .map(|r| r.concurrency)
        .collect();
    concurrencies.sort();
    concurrencies.dedup();
    let cmax = concurrencies.last().copied().unwrap_or(64);

    let mut o = String::new();
    let _ = writeln!(o, "# weauth benchmarks\n");
    let _ = writeln!(
        o,
        "Reproduce with one command each (PostgreSQL on 127.0.0.1:5432, user `postgres`, trust; `pgbench`, `psql`, cargo):\n\n\
         * `bench/run.sh`: the scenarios below with their floors (about 30 minutes); rewrites this file above the Soak section.\n\
         * `bench/run.sh soak`: the mixed-workload soak (10 minutes by default); replaces the Soak section, exits non-zero if a check fails.\n\
         * Quick look: `BENCH_WARMUP=1 BENCH_DURATION=3 BENCH_RT_DURATION=1 bench/run.sh`, `SOAK_DURATION=60 bench/run.sh soak`.\n\n\
         How it works, and every knob: [`bench/README.md`](bench/README.md).\n"
    );

    // ---- setup
    let _ = writeln!(o, "## This run\n");
    let _ = writeln!(o, "| | |\n| --- | --- |");
    let _ = writeln!(o, "| Command | `{}` (`{}`) |", a.command, a.env);
    let dirty = m("dirty");
    let _ = writeln!(
        o,
        "| weauth | commit `{}`{}, release build (`cargo build --release --locked`) |",
        m("commit"),
        if dirty != "0" && dirty != "?" {
            format!(" plus {dirty} uncommitted changes in `src/` or `migrations/` (other engineers were editing the tree; the binary was built from the working tree at the start of the run)")
        } else {
            String::new()
        }
    );
    let _ = writeln!(o, "| Date | {} |", m("date"));
    let _ = writeln!(
        o,
        "| Machine | {} vCPU ({}), {} RAM, Linux {} |",
        m("nproc"),
        m("cpu"),
        m("mem"),
        m("kernel")
    );
    let _ = writeln!(
        o,
        "| PostgreSQL | {} on the same machine; {} |",
        m("postgres"),
        m("pg_settings")
    );
    let _ = writeln!(
        o,
        "| Load on the machine | before: `{}`; busiest processes before: {}; after: `{}`. **Other processes (other engineers' builds and tests) may have been running during this run**; the load average above includes them. |",
        m("uptime_before"),
        m("top_before"),
        m("uptime_after")
    );
    let _ = writeln!(
        o,
        "| weauth configuration | `GOTRUE_DB_MAX_POOL_SIZE={}` (see [Pool size](#pool-size)), argon2id {} (the defaults), every rate limit disabled, `GOTRUE_LOG_LEVEL=warn`, `GOTRUE_API_HOST=127.0.0.1`, `DATABASE_URL=…?sslmode=disable` (plain TCP on loopback; the counting proxy needs plaintext and pgbench uses the same), clean environment, empty working directory |",
        a.pool_size, a.argon2
    );
    let _ = writeln!(
        o,
        "| Load generator | `bench/loadgen` (Rust, tokio + hyper): closed-loop workers, one keep-alive HTTP/1.1 connection each, no `Accept-Encoding`; latency of every request in an HDR histogram; warm-up, then the measured phase; requests are counted if they started inside it. Runs on the same 2 cores as weauth, PostgreSQL and the emulator (its CPU cost is in the CPU table). |"
    );
    let _ = writeln!(
        o,
        "| Each cell | a fresh `weauth serve` process (so RSS is per cell), its own users/sessions prepared through weauth itself, then its pgbench floor right after it in the same run |\n"
    );

    // ---- main table
    let _ = writeln!(o, "## Results\n");
    let _ = writeln!(
        o,
        "Throughput and latency without the proxy. **RT/req**: SQL round trips per request (PostgreSQL `Query` + `Sync` messages counted by the proxy in a separate short pass through it, divided by the requests of that pass). **Floor**: pgbench replaying the same SQL statements at the same concurrency (`-M prepared`, `-j 2`, same duration; statements per transaction in brackets, each one round trip); for the password grant also the argon2id hashing floor, and the ratio is to the lower of the two. weauth serves c clients over its pool of {} connections, while pgbench at `-c c` opens c backends on the 2 cores; the last two columns therefore also give the floor at `-c {}` (weauth's own database concurrency) for the cells above it. The targets are judged against the floor at the same concurrency, as the issue defines it. **Errors**: non-2xx / transport errors in the measured phase (warm-up errors are listed below the table if there were any).\n",
        a.pool_size,
        a.pool_size    );
    let _ = writeln!(
        o,
        "| Scenario | c | req/s | p50 ms | p99 ms | p99/p50 | errors | RSS max MiB | RT/req | floor req/s [stmts] | floor p50 / p99 ms | ratio | floor at -c {} req/s | ratio to it |",
        a.pool_size
    );
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut pool_ratios: BTreeMap<(String, usize), f64> = BTreeMap::new();
    let mut warm_errors = Vec::new();
    let mut ratios: BTreeMap<(String, usize), f64> = BTreeMap::new();
    for (sc, title) in SCENARIOS {
        for &c in &concurrencies {
            let Some(r) = find("throughput", sc, c) else {
                continue;
            };
            if r.warmup_errors > 0 {
                warm_errors.push(format!("{sc} c={c}: {} warm-up errors", r.warmup_errors));
            }
            let rt = find("roundtrips", sc, c)
                .and_then(|x| x.rt_per_req)
                .map(|x| format!("{x:.2}"))
                .unwrap_or_else(|| {
                    if sc == "health" {
                        "0".into()
                    } else {
                        "–".into()
                    }
                });
            let fl = floor(sc, c);
            let (floor_cell, floor_lat, ratio) = match (fl, sc) {
                (Some(f), "password" | "signup") => {
                    let h = hash_floor.map(|h| h.rps).unwrap_or(f64::INFINITY);
                    let lo = f.rps.min(h);
                    (
                        format!(
                            "SQL {} [{}], hash {}",
                            f0(f.rps),
                            f.statements.unwrap_or(0),
                            hash_floor.map(|h| f0(h.rps)).unwrap_or("–".into())
                        ),
                        format!(
                            "{} / {}",
                            f.p50_ms.map(f0).unwrap_or_default(),
                            f.p99_ms.map(f0).unwrap_or_default()
                        ),
                        Some(r.rps / lo),
                    )
                }
                (Some(f), _) => (
                    format!("{} [{}]", f0(f.rps), f.statements.unwrap_or(0)),
                    format!(
                        "{} / {}",
                        f.p50_ms.map(f0).unwrap_or_default(),
                        f.p99_ms.map(f0).unwrap_or_default()
                    ),
                    Some(r.rps / f.rps),
                ),
                (None, _) => ("–".into(), "–".into(), None),
            };
            if let Some(x) = ratio {
                ratios.insert((sc.to_string(), c), x);
            }
            let fail_note = fl
                .filter(|f| f.failed > 0)
                .map(|f| format!(" ({} failed)", f.failed))
                .unwrap_or_default();
            let (pool_cell, pool_ratio) = match floor_pool(sc, c) {
                Some(f) => {
                    let lo = if sc == "password" || sc == "signup" {
                        f.rps
                            .min(hash_floor.map(|h| h.rps).unwrap_or(f64::INFINITY))
                    } else {
                        f.rps
                    };
                    pool_ratios.insert((sc.to_string(), c), r.rps / lo);
                    (f0(f.rps), format!("{:.2}", r.rps / lo))
                }
                None => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                o,
                "| {title} | {c} | {} | {} | {} | {} | {} / {} | {} | {rt} | {floor_cell}{fail_note} | {floor_lat} | {} | {pool_cell} | {pool_ratio} |",
                f0(r.rps),
                f0(r.p50_ms),
                f0(r.p99_ms),
                if r.p50_ms > 0.0 { format!("{:.1}", r.p99_ms / r.p50_ms) } else { "–".into() },
                r.non2xx,
                r.transport_errors,
                mib(r.rss_max_kb),
                ratio.map(|x| format!("**{x:.2}**")).unwrap_or_else(|| "–".into()),
            );
        }
    }
    if !warm_errors.is_empty() {
        let _ = writeln!(o, "\nWarm-up errors: {}.", warm_errors.join("; "));
    }
    if let Some(h) = hash_floor {
        let p50 = h
            .p50_ms
            .map(|p| format!(" (p50 {p:.1} ms per verification)"))
            .unwrap_or_default();
        let _ = write!(
            o,
            "\nHash floor: {} → {:.1} verifications/s{p50}, weauth's own verification (`loadgen argon2`).",
            h.mode, h.rps
        );
        // The other implementations bench/argon2/compare.sh ran in the same step (same
        // parameters and threads, interleaved rounds, median round).
        let refs: Vec<&FloorResult> = floors
            .iter()
            .filter(|f| f.label == "hash_floor_ref" && f.concurrency == h.concurrency)
            .collect();
        if let Some(best) = refs.iter().max_by(|a, b| a.rps.total_cmp(&b.rps)) {
            let list: Vec<String> = refs
                .iter()
                .map(|f| {
                    format!(
                        "{} → {:.1}/s",
                        f.mode.split(':').next().unwrap_or(&f.mode),
                        f.rps
                    )
                })
                .collect();
            let _ = write!(
                o,
                " Same step, same parameters (`bench/argon2/compare.sh`): {}. **weauth / fastest other = {:.2}**",
                list.join("; "),
                h.rps / best.rps
            );
            // Verifications per CPU second: less stretched by other load on the machine.
            let per_cpu = |f: &FloorResult| {
                f.detail
                    .strip_prefix("per_cpu=")
                    .and_then(|v| v.parse::<f64>().ok())
            };
            let best_cpu = refs.iter().filter_map(|f| per_cpu(f)).fold(0.0, f64::max);
            match per_cpu(h) {
                Some(w) if best_cpu > 0.0 => {
                    let _ = write!(o, " (per CPU second: {:.2}).", w / best_cpu);
                }
                _ => o.push('.'),
            }
        }
        let _ = writeln!(o);
    }
    let notes: Vec<String> = runs
        .iter()
        .filter(|r| r.label == "throughput" && r.codes_exhausted)
        .map(|r| {
            format!(
                "{} c={} ran out of pre-generated codes after {:.1} s",
                r.scenario, r.concurrency, r.duration_s
            )
        })
        .collect();
    if !notes.is_empty() {
        let _ = writeln!(o, "\nShortened cells: {}.", notes.join("; "));
    }

    // ---- CPU table
    let _ = writeln!(o, "\n### Where the CPU goes\n");
    let _ = writeln!(
        o,
        "CPU time per request during the measured phase (from `/proc/<pid>/stat`; PostgreSQL is the sum over all `postgres` processes), and how busy the 2 cores were. This is the cost side of \"fast and cheap\": at saturation the four processes share 2 cores, so every µs the load generator or the emulator spends is taken from weauth and PostgreSQL.\n"
    );
    let _ = writeln!(o, "| Scenario | c | weauth µs | PostgreSQL µs | emulator µs | load generator µs | cores busy |");
    let _ = writeln!(o, "| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (sc, title) in SCENARIOS {
        for &c in &concurrencies {
            let Some(r) = find("throughput", sc, c) else {
                continue;
            };
            let _ = writeln!(
                o,
                "| {title} | {c} | {} | {} | {} | {} | {:.0}% |",
                r.server_cpu_us_per_req.map(f0).unwrap_or_default(),
                f0(r.postgres_cpu_us_per_req),
                r.emulator_cpu_us_per_req.map(f0).unwrap_or_default(),
                f0(r.loadgen_cpu_us_per_req),
                r.machine_busy_pct
            );
        }
    }

    // ---- pool size sweep
    let mut pools: Vec<u32> = runs
        .iter()
        .filter_map(|r| r.label.strip_prefix("pool:").and_then(|p| p.parse().ok()))
        .collect();
    pools.sort();
    pools.dedup();
    let _ = writeln!(o, "\n### Pool size\n");
    if pools.is_empty() {
        let _ = writeln!(
            o,
            "No pool-size sweep in this run (`BENCH_POOL_SWEEP` was empty)."
        );
    } else {
        let mut scs: Vec<String> = runs
            .iter()
            .filter(|r| r.label.starts_with("pool:"))
            .map(|r| r.scenario.clone())
            .collect();
        scs.dedup();
        scs.sort();
        scs.dedup();
        let _ = writeln!(
            o,
            "`GOTRUE_DB_MAX_POOL_SIZE` decides how many requests run SQL at once. The same cells at c={cmax} with other pool sizes (fresh weauth each; req/s and p99 ms):\n"
        );
        let _ = writeln!(o, "| pool | {} |", scs.join(" | "));
        let _ = writeln!(o, "| ---: |{}", " ---: |".repeat(scs.len()));
        for p in &pools {
            let cells: Vec<String> = scs
                .iter()
                .map(|sc| {
                    runs.iter()
                        .rev()
                        .find(|r| r.label == format!("pool:{p}") && &r.scenario == sc)
                        .map(|r| format!("{} req/s, p99 {}", f0(r.rps), f0(r.p99_ms)))
                        .unwrap_or("–".into())
                })
                .collect();
            let mark = if *p == a.pool_size {
                " (used above)"
            } else {
                ""
            };
            let _ = writeln!(o, "| {p}{mark} | {} |", cells.join(" | "));
        }
    }

    // ---- emulator
    let _ = writeln!(o, "\n## The WeChat emulator alone\n");
    let _ = writeln!(
        o,
        "Its ceiling (`POST /cgi-bin/stable_token` closed-loop, no code needed), and the two calls weauth makes, paced at the rate weauth's login / phone binding just reached at the same concurrency, with pre-generated codes (latency from the send; from the scheduled start when the generator fell behind). \"Share\" is the emulator's p50 over the weauth request's p50: the part of a login's latency spent waiting for \"WeChat\". The CPU columns compare the emulator's CPU per call when called alone with its CPU per request inside the weauth run.\n"
    );
    let _ = writeln!(
        o,
        "| c | stable_token req/s, p50 ms | jscode2session at login rate: req/s, p50 / p99 ms | share of returning-login p50 | emulator CPU per login µs | getuserphonenumber at bind rate: req/s, p50 / p99 ms | share of bind_phone p50 |"
    );
    let _ = writeln!(o, "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for &c in &concurrencies {
        let st = find("throughput", "emu_stable_token", c);
        let js = find("throughput", "emu_jscode2session", c);
        let ph = find("throughput", "emu_phone", c);
        let login = find("throughput", "login_returning", c);
        let bind = find("throughput", "bind_phone", c);
        let share = |e: Option<&RunResult>, w: Option<&RunResult>| match (e, w) {
            (Some(e), Some(w)) if w.p50_ms > 0.0 => format!("{:.0}%", 100.0 * e.p50_ms / w.p50_ms),
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            "| {c} | {} | {} | {} | {} | {} | {} |",
            st.map(|r| format!("{}, {}", f0(r.rps), f0(r.p50_ms)))
                .unwrap_or("–".into()),
            js.map(|r| format!("{}, {} / {}", f0(r.rps), f0(r.p50_ms), f0(r.p99_ms)))
                .unwrap_or("–".into()),
            share(js, login),
            login
                .and_then(|l| l.emulator_cpu_us_per_req)
                .map(f0)
                .unwrap_or("–".into()),
            ph.map(|r| format!("{}, {} / {}", f0(r.rps), f0(r.p50_ms), f0(r.p99_ms)))
                .unwrap_or("–".into()),
            share(ph, bind),
        );
    }

    // ---- instructions per request
    let instr: Vec<Instructions> = a
        .instructions
        .as_deref()
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| {
            t.lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect()
        })
        .unwrap_or_default();
    let instr_of = |sc: &str| {
        instr
            .iter()
            .rev()
            .find(|i| i.scenario == sc)
            .and_then(|i| i.per_request)
    };
    let _ = writeln!(o, "\n### Instructions per request\n");
    if instr.is_empty() {
        let _ = writeln!(
            o,
            "Not measured in this run (`bench/run.sh instructions`, needs valgrind)."
        );
    } else {
        let _ = writeln!(
            o,
            "weauth (release build) under `valgrind --tool=callgrind`, concurrency 1, a fixed number of requests after a warm-up of a tenth as many (excluded: `callgrind_control --zero` before the measured phase, `--dump` after it). Instructions of every thread of the weauth process, not of PostgreSQL or the load generator; unlike the µs above this does not depend on what else runs on the machine. Per-function inclusive profiles: [`bench/results/callgrind-*.txt`](bench/results/).\n"
        );
        let health = instr_of("health");
        let _ = writeln!(
            o,
            "| Scenario | requests (ok) | instructions per request | minus `/health` |"
        );
        let _ = writeln!(o, "| --- | ---: | ---: | ---: |");
        for (sc, title) in SCENARIOS {
            let Some(i) = instr.iter().rev().find(|i| i.scenario == sc) else {
                continue;
            };
            let per = i.per_request.unwrap_or(0.0);
            let _ = writeln!(
                o,
                "| {title} | {} ({}) | {} | {} |",
                i.requests,
                i.ok,
                thousands(per),
                match (health, sc) {
                    (_, "health") | (None, _) => "–".into(),
                    (Some(h), _) => thousands(per - h),
                }
            );
        }
    }

    // ---- targets
    targets(&mut o, &a, &runs, &floors, &ratios, &pool_ratios, cmax);

    // ---- analysis
    if let Some(path) = &a.analysis {
        if let Ok(text) = std::fs::read_to_string(path) {
            let _ = writeln!(o, "\n{}", text.trim_end());
        }
    }

    // ---- compared with
    if let Some(path) = &a.compared {
        if let Ok(text) = std::fs::read_to_string(path) {
            let _ = writeln!(o, "\n{}", text.trim_end());
        }
    }

    // ---- capture
    if let Some(path) = &a.capture {
        if let Ok(text) = std::fs::read_to_string(path) {
            let _ = writeln!(
                o,
                "\n## Appendix: the SQL of one request\n\nCaptured by the counting proxy during this run (one request per scenario at c=1, after warm-up; `Q` simple query, `P` parse, `B` bind/execute of the named statement, `S` sync = end of a round trip). diesel caches its query-builder statements per connection (`__diesel_stmt_N`, parsed once); raw `sql_query` statements and inserts/updates are parsed again on every request (`[unnamed]`), in the same round trip. The pgbench floors in `bench/pgbench/*.sql` replay exactly these statements.\n\n<details><summary>SQL per scenario</summary>\n\n{}\n</details>",
                shorten_sql(text.trim_end())
            );
        }
    }

    let existing = std::fs::read_to_string(&a.out).unwrap_or_default();
    std::fs::write(&a.out, splice(&existing, Some(&o), None))
        .map_err(|e| format!("{}: {e}", a.out))?;
    Ok(())
}

/// 12345678.9 → "12,345,679".
fn thousands(x: f64) -> String {
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "–",
    }
}

/// The targets of issue #17 (and #5's zero errors), each with the value this run measured.
fn targets(
    o: &mut String,
    a: &ReportArgs,
    runs: &[RunResult],
    floors: &[FloorResult],
    ratios: &BTreeMap<(String, usize), f64>,
    pool_ratios: &BTreeMap<(String, usize), f64>,
    cmax: usize,
) {
    let _ = writeln!(o, "\n## Targets (issues #5 and #17)\n");
    let _ = writeln!(
        o,
        "Every target with what this run measured. Round trips: the highest of the concurrencies of the round-trip pass; CPU, ratios: at c={cmax}.\n"
    );
    let _ = writeln!(o, "| Target | Measured | |");
    let _ = writeln!(o, "| --- | --- | --- |");
    let find = |label: &str, sc: &str, c: usize| {
        runs.iter()
            .rev()
            .find(|r| r.label == label && r.scenario == sc && r.concurrency == c)
    };
    // Round trips.
    for (sc, name, want, exact) in [
        ("password", "Password sign-in", 3.0, false),
        ("refresh", "Refresh", 3.0, false),
        ("login_returning", "Returning WeChat login", 3.0, false),
        ("login_new", "First-time WeChat login", 5.0, false),
        ("bind_phone", "`bind_phone`", 4.0, false),
        ("signup", "Sign-up", 4.0, false),
        ("user", "`GET /user`", 1.0, true),
    ] {
        let got = runs
            .iter()
            .filter(|r| r.label == "roundtrips" && r.scenario == sc)
            .filter_map(|r| r.rt_per_req)
            .fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        let _ = writeln!(
            o,
            "| {name}: SQL round trips per request {} {want} | {} | {} |",
            if exact { "=" } else { "≤" },
            got.map(|x| format!("{x:.2}"))
                .unwrap_or("not measured".into()),
            verdict(got.map(|x| if exact {
                (x - want).abs() < 0.01
            } else {
                x <= want + 0.005
            })),
        );
    }
    // CPU per request.
    for (sc, name, want) in [("user", "`GET /user`", 50.0), ("refresh", "Refresh", 150.0)] {
        let got = find("throughput", sc, cmax).and_then(|r| r.server_cpu_us_per_req);
        let _ = writeln!(
            o,
            "| {name}: weauth CPU per request at c={cmax} ≤ {want} µs | {} | {} |",
            got.map(|x| format!("{x:.0} µs"))
                .unwrap_or("not measured".into()),
            verdict(got.map(|x| x <= want)),
        );
    }
    // Floor ratios.
    for (sc, name, want) in [
        ("user", "`GET /user`", 0.8),
        ("login_returning", "Returning WeChat login", 0.8),
        ("refresh", "Refresh", 0.9),
    ] {
        let got = ratios.get(&(sc.to_string(), cmax)).copied();
        let pool = pool_ratios.get(&(sc.to_string(), cmax)).copied();
        let _ = writeln!(
            o,
            "| {name} ≥ {want}× its floor at c={cmax} | {}{} | {} |",
            got.map(|x| format!("{x:.2}×"))
                .unwrap_or("not measured".into()),
            pool.map(|x| format!(" (against the floor at -c {}: {x:.2}×)", a.pool_size))
                .unwrap_or_default(),
            verdict(got.map(|x| x >= want)),
        );
    }
    // Hashing: weauth's floor against the fastest other implementation of the run.
    let own = floors.iter().rev().find(|f| f.label == "hash_floor");
    let best = floors
        .iter()
        .filter(|f| f.label.starts_with("hash_") && f.label != "hash_floor")
        .max_by(|x, y| x.rps.total_cmp(&y.rps));
    let _ = writeln!(
        o,
        "| argon2id hash floor within 10% of the fastest same-parameter implementation | {} | {} |",
        match (own, best) {
            (Some(w), Some(b)) => format!(
                "weauth {:.1}/s, fastest {} {:.1}/s: {:.0}%",
                w.rps,
                b.mode,
                b.rps,
                100.0 * w.rps / b.rps
            ),
            (Some(w), None) => format!(
                "weauth {:.1}/s; no other implementation measured in this run",
                w.rps
            ),
            _ => "not measured".into(),
        },
        verdict(match (own, best) {
            (Some(w), Some(b)) => Some(w.rps >= 0.9 * b.rps),
            _ => None,
        }),
    );
    // Tail latency.
    let u16 = find("throughput", "user", 16);
    let _ = writeln!(
        o,
        "| `GET /user` at c=16: p99 ≤ 5 × p50 | {} | {} |",
        u16.map(|r| format!(
            "p50 {} ms, p99 {} ms: {:.1}×",
            f0(r.p50_ms),
            f0(r.p99_ms),
            r.p99_ms / r.p50_ms.max(1e-9)
        ))
        .unwrap_or("not measured".into()),
        verdict(u16.map(|r| r.p99_ms <= 5.0 * r.p50_ms)),
    );
    // Errors and memory, every weauth cell.
    let tp: Vec<&RunResult> = runs
        .iter()
        .filter(|r| r.label == "throughput" && !r.scenario.starts_with("emu_"))
        .collect();
    let errs: u64 = tp
        .iter()
        .map(|r| r.non2xx + r.transport_errors + r.warmup_errors)
        .sum();
    let floor_fail: u64 = floors.iter().map(|f| f.failed).sum();
    let _ = writeln!(
        o,
        "| Zero errors | {errs} errors in {} weauth cells (measured + warm-up), {floor_fail} failed pgbench transactions | {} |",
        tp.len(),
        verdict(Some(errs == 0 && floor_fail == 0))
    );
    let over: Vec<String> = tp
        .iter()
        .filter(|r| r.rss_max_kb.unwrap_or(0) >= 100 * 1000 * 1000 / 1024)
        .map(|r| {
            format!(
                "{} c={}: {} MiB",
                r.scenario,
                r.concurrency,
                mib(r.rss_max_kb)
            )
        })
        .collect();
    let max = tp.iter().max_by_key(|r| r.rss_max_kb.unwrap_or(0));
    let _ = writeln!(
        o,
        "| RSS under 100 MB in every cell | {}max {} MiB ({}) | {} |",
        if over.is_empty() {
            String::new()
        } else {
            format!("over: {}; ", over.join(", "))
        },
        mib(max.and_then(|r| r.rss_max_kb)),
        max.map(|r| format!("{} c={}", r.scenario, r.concurrency))
            .unwrap_or_default(),
        verdict((!tp.is_empty()).then_some(over.is_empty())),
    );
}
