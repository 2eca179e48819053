//! The soak of issue #6: a mixed workload at concurrency 64 for a long time, RSS sampled along
//! the way, and afterwards the database's row counts checked against what the successful
//! requests imply.
//!
//! Each worker acts as one device: it signs in a WeChat user of its own, then loops over a
//! weighted mix of getUser, updateUser, refresh, bind phone, WeChat login of one of its own
//! returning users, and WeChat login of a brand-new user (after a login it continues with the new
//! session). Workers never share a user, so every expectation below is exact. Codes are fetched
//! from the emulator's control API right before each login/bind (only the weauth call is timed).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use hyper::Method;
use rand::Rng;
use serde_json::{json, Value};

use crate::bench::{phone_for, Prep, Target};
use crate::http::Conn;
use crate::report::{meta_map, splice};
use crate::sys;

#[derive(clap::Args)]
pub struct SoakArgs {
    #[arg(long)]
    pub weauth: String,
    #[arg(long)]
    pub emulator: String,
    #[arg(long)]
    pub appid: String,
    #[arg(long)]
    pub secret: String,
    #[arg(long)]
    pub server_pid: u32,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Seconds.
    #[arg(long, default_value_t = 600.0)]
    pub duration: f64,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 15.0)]
    pub sample: f64,
    /// Database name, for the checks (psql, with PGHOST/PGUSER from the environment).
    #[arg(long)]
    pub database: String,
    #[arg(long)]
    pub meta: String,
    #[arg(long)]
    pub pool_size: u32,
    #[arg(long)]
    pub command: String,
    #[arg(long, default_value = "")]
    pub env: String,
    /// BENCHMARKS.md: its Soak section is replaced.
    #[arg(long)]
    pub out: String,
}

const RETURNING_PER_WORKER: usize = 4;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Op {
    GetUser,
    UpdateUser,
    Refresh,
    BindPhone,
    LoginReturning,
    LoginNew,
}

const MIX: [(Op, u32); 6] = [
    (Op::GetUser, 35),
    (Op::UpdateUser, 15),
    (Op::Refresh, 20),
    (Op::BindPhone, 10),
    (Op::LoginReturning, 15),
    (Op::LoginNew, 5),
];

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::GetUser => "getUser (`GET /user`)",
            Op::UpdateUser => "updateUser (`PUT /user` data)",
            Op::Refresh => "refresh",
            Op::BindPhone => "bind phone",
            Op::LoginReturning => "WeChat login, returning",
            Op::LoginNew => "WeChat login, new user",
        }
    }
}

#[derive(Default)]
struct OpStats {
    ok: u64,
    non2xx: u64,
    transport: u64,
    hist: Option<Histogram<u64>>,
}

#[derive(Default)]
struct Totals {
    ops: BTreeMap<Op, OpStats>,
    errors: Vec<String>,
    /// Prepared sign-ins (all new users).
    prep_logins: u64,
    users_with_phone: HashSet<String>,
    users_updated: HashSet<String>,
    sessions_refreshed: u64,
}

struct Session {
    user_id: String,
    access: String,
    refresh: String,
    refreshed: bool,
}

fn parse_session(body: &[u8]) -> Option<Session> {
    let v: Value = serde_json::from_slice(body).ok()?;
    Some(Session {
        user_id: v["user"]["id"].as_str()?.to_string(),
        access: v["access_token"].as_str()?.to_string(),
        refresh: v["refresh_token"].as_str()?.to_string(),
        refreshed: false,
    })
}

fn pick(rng: &mut impl Rng) -> Op {
    let total: u32 = MIX.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (op, w) in MIX {
        if x < w {
            return op;
        }
        x -= w;
    }
    Op::GetUser
}

async fn worker(
    k: usize,
    t: Target,
    deadline: Instant,
    totals: Arc<Mutex<Totals>>,
    requests: Arc<AtomicU64>,
    phones: Arc<AtomicU64>,
) -> Result<(), String> {
    let mut conn = Conn::new(&t.weauth);
    let mut new_users = 0u64;
    // Preparation: the worker's own user and its returning users, all signed in once.
    let mut sessions = Vec::new();
    for j in 0..=RETURNING_PER_WORKER {
        let (access, refresh, user_id) = Prep::wechat_login(&t, &format!("s{k}-r{j}")).await?;
        sessions.push(Session {
            user_id,
            access,
            refresh,
            refreshed: false,
        });
    }
    totals.lock().unwrap().prep_logins += sessions.len() as u64;
    let mut cur = sessions.remove(0);
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let mut updates = 0u64;
    while Instant::now() < deadline {
        let op = pick(&mut rng);
        // Codes come from the emulator's control API, outside the timed part.
        let code = match op {
            Op::LoginReturning => {
                let j = rng.gen_range(0..=RETURNING_PER_WORKER);
                Some(Prep::login_code(&t, &format!("s{k}-r{j}")).await?)
            }
            Op::LoginNew => {
                new_users += 1;
                Some(Prep::login_code(&t, &format!("s{k}-n{new_users}")).await?)
            }
            Op::BindPhone => {
                let n = phones.fetch_add(1, Ordering::Relaxed);
                Some(Prep::phone_code(&t, &phone_for(t.tag, n)).await?)
            }
            _ => None,
        };
        let bearer = format!("Bearer {}", cur.access);
        let t0 = Instant::now();
        let resp = match op {
            Op::GetUser => {
                conn.send(
                    Method::GET,
                    "/auth/v1/user",
                    &[("authorization", &bearer)],
                    None,
                )
                .await
            }
            Op::UpdateUser => {
                updates += 1;
                let body =
                    json!({"data": {"nickname": format!("soak-{k}-{updates}"), "soak": true}});
                conn.send(
                    Method::PUT,
                    "/auth/v1/user",
                    &[("authorization", &bearer)],
                    Some(Bytes::from(body.to_string())),
                )
                .await
            }
            Op::Refresh => {
                let body = json!({"refresh_token": cur.refresh});
                conn.send(
                    Method::POST,
                    "/auth/v1/token?grant_type=refresh_token",
                    &[],
                    Some(Bytes::from(body.to_string())),
                )
                .await
            }
            Op::BindPhone => {
                let path = format!(
                    "/auth/v1/wechat_mini/bind_phone?code={}",
                    code.as_deref().unwrap_or("")
                );
                conn.send(Method::GET, &path, &[("authorization", &bearer)], None)
                    .await
            }
            Op::LoginReturning | Op::LoginNew => {
                let path = format!(
                    "/auth/v1/wechat_mini/login?code={}",
                    code.as_deref().unwrap_or("")
                );
                conn.send(Method::GET, &path, &[], None).await
            }
        };
        let micros = t0.elapsed().as_micros() as u64;
        requests.fetch_add(1, Ordering::Relaxed);
        let mut g = totals.lock().unwrap();
        match resp {
            Ok(r) if (200..300).contains(&r.status) => {
                let s = g.ops.entry(op).or_default();
                s.ok += 1;
                let _ = s
                    .hist
                    .get_or_insert_with(|| Histogram::new_with_bounds(1, 60_000_000, 3).unwrap())
                    .record(micros.max(1));
                match op {
                    Op::Refresh => {
                        match serde_json::from_slice::<Value>(&r.body).ok().and_then(|v| {
                            Some((
                                v["refresh_token"].as_str()?.to_string(),
                                v["access_token"].as_str()?.to_string(),
                            ))
                        }) {
                            Some((rt, at)) => {
                                cur.refresh = rt;
                                cur.access = at;
                                if !cur.refreshed {
                                    cur.refreshed = true;
                                    g.sessions_refreshed += 1;
                                }
                            }
                            None => g.errors.push("refresh: no tokens in the response".into()),
                        }
                    }
                    Op::LoginReturning | Op::LoginNew => match parse_session(&r.body) {
                        Some(s) => cur = s,
                        None => g.errors.push("login: no session in the response".into()),
                    },
                    Op::BindPhone => {
                        g.users_with_phone.insert(cur.user_id.clone());
                    }
                    Op::UpdateUser => {
                        g.users_updated.insert(cur.user_id.clone());
                    }
                    Op::GetUser => {}
                }
            }
            Ok(r) => {
                g.ops.entry(op).or_default().non2xx += 1;
                if g.errors.len() < 10 {
                    let msg = format!(
                        "{:?}: HTTP {}: {}",
                        op,
                        r.status,
                        String::from_utf8_lossy(&r.body)
                            .chars()
                            .take(300)
                            .collect::<String>()
                    );
                    g.errors.push(msg);
                }
            }
            Err(e) => {
                g.ops.entry(op).or_default().transport += 1;
                if g.errors.len() < 10 {
                    g.errors.push(format!("{op:?}: transport: {e}"));
                }
            }
        }
    }
    Ok(())
}

fn psql(db: &str, sql: &str) -> Result<i64, String> {
    let out = std::process::Command::new("psql")
        .args(["-qAt", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
        .output()
        .map_err(|e| format!("psql: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("psql {sql}: {e}"))
}

fn sparkline(values: &[f64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let lo = values.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = values.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    values
        .iter()
        .map(|v| {
            let i = if hi > lo {
                ((v - lo) / (hi - lo) * 7.0).round() as usize
            } else {
                0
            };
            BARS[i.min(7)]
        })
        .collect()
}

pub async fn soak(a: SoakArgs) -> Result<bool, String> {
    let t = Target {
        weauth: a.weauth.clone(),
        emulator: a.emulator.clone(),
        appid: a.appid.clone(),
        secret: a.secret.clone(),
        tag: 1,
        qr_appid: String::new(),
    };
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(a.duration);
    let totals = Arc::new(Mutex::new(Totals::default()));
    let requests = Arc::new(AtomicU64::new(0));
    let phones = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    // RSS sampler: every `sample` seconds, plus one at the end.
    let samples = Arc::new(Mutex::new(Vec::<(f64, u64, f64)>::new()));
    let sampler = {
        let (samples, done, requests) = (samples.clone(), done.clone(), requests.clone());
        let (pid, every) = (a.server_pid, a.sample);
        tokio::spawn(async move {
            let mut last_n = 0u64;
            let mut last_t = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs_f64(every)).await;
                if done.load(Ordering::Relaxed) {
                    break;
                }
                let now = Instant::now();
                let n = requests.load(Ordering::Relaxed);
                let rps = (n - last_n) as f64 / (now - last_t).as_secs_f64();
                let rss = sys::rss_kb(pid).unwrap_or(0);
                samples
                    .lock()
                    .unwrap()
                    .push(((now - start).as_secs_f64(), rss, rps));
                eprintln!(
                    "[soak] t={:.0}s RSS {:.1} MiB, {rps:.0} req/s",
                    (now - start).as_secs_f64(),
                    rss as f64 / 1024.0
                );
                last_n = n;
                last_t = now;
            }
        })
    };
    let handles: Vec<_> = (0..a.concurrency)
        .map(|k| {
            tokio::spawn(worker(
                k,
                t.clone(),
                deadline,
                totals.clone(),
                requests.clone(),
                phones.clone(),
            ))
        })
        .collect();
    let mut worker_failures = Vec::new();
    for h in handles {
        match h.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => worker_failures.push(e),
            Err(e) => worker_failures.push(e.to_string()),
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let _ = sampler.await;
    let hwm = sys::hwm_kb(a.server_pid);

    let g = totals.lock().unwrap();
    let ok = |op: Op| g.ops.get(&op).map_or(0, |s| s.ok);
    let logins_new = g.prep_logins + ok(Op::LoginNew);
    let logins = logins_new + ok(Op::LoginReturning);
    let refreshes = ok(Op::Refresh);
    let errors: u64 = g.ops.values().map(|s| s.non2xx + s.transport).sum();
    let db = &a.database;
    let q = |sql: &str| psql(db, sql);
    let checks: Vec<(&str, String, i64, i64, bool)> = vec![
        ("auth.users", "new WeChat users (prepared + first-time logins)".into(), logins_new as i64, q("select count(*) from auth.users")?, true),
        ("auth.identities", "one `wechat` identity per user + one `phone` identity per user who bound a phone".into(), (logins_new + g.users_with_phone.len() as u64) as i64, q("select count(*) from auth.identities")?, true),
        ("auth.identities (provider phone)", "users who bound a phone".into(), g.users_with_phone.len() as i64, q("select count(*) from auth.identities where provider = 'phone'")?, true),
        ("auth.users with a phone", "users who bound a phone".into(), g.users_with_phone.len() as i64, q("select count(*) from auth.users where phone is not null")?, true),
        ("auth.users with user_metadata.soak", "users updated through `PUT /user`".into(), g.users_updated.len() as i64, q("select count(*) from auth.users where raw_user_meta_data ? 'soak'")?, true),
        ("auth.sessions", "all successful logins (prepared + returning + new)".into(), logins as i64, q("select count(*) from auth.sessions")?, true),
        ("auth.sessions refreshed", "sessions refreshed at least once".into(), g.sessions_refreshed as i64, q("select count(*) from auth.sessions where refreshed_at is not null")?, true),
        ("auth.mfa_amr_claims", "one per session".into(), logins as i64, q("select count(*) from auth.mfa_amr_claims")?, true),
        ("auth.refresh_tokens", "logins + refreshes".into(), (logins + refreshes) as i64, q("select count(*) from auth.refresh_tokens")?, true),
        ("auth.refresh_tokens revoked", "refreshes (each revokes its parent)".into(), refreshes as i64, q("select count(*) from auth.refresh_tokens where revoked")?, true),
        ("weauth.wechat_session_keys", "distinct WeChat users (one app)".into(), logins_new as i64, q("select count(*) from weauth.wechat_session_keys")?, true),
        ("auth.audit_log_entries", "logins + refreshes (informational: weauth writes no audit entry for updateUser or bind phone today)".into(), (logins + refreshes) as i64, q("select count(*) from auth.audit_log_entries")?, false),
    ];
    let checks_ok = checks
        .iter()
        .all(|(_, _, e, got, strict)| !strict || e == got);

    // RSS flatness after warm-up: the first quarter of the run (at most 60 s) is warm-up; the
    // later half may not exceed the earlier half by more than 10% + 2 MiB.
    let s = samples.lock().unwrap().clone();
    let warm = (a.duration * 0.25).min(60.0);
    let after: Vec<&(f64, u64, f64)> = s.iter().filter(|x| x.0 >= warm).collect();
    let (first, second) = after.split_at(after.len() / 2);
    let max_of = |v: &[&(f64, u64, f64)]| v.iter().map(|x| x.1).max().unwrap_or(0);
    let (m1, m2) = (max_of(first), max_of(second));
    let rss_ok = !first.is_empty() && m2 as f64 <= m1 as f64 * 1.10 + 2048.0;
    let slope = if after.len() >= 2 {
        let n = after.len() as f64;
        let mx = after.iter().map(|x| x.0).sum::<f64>() / n;
        let my = after.iter().map(|x| x.1 as f64).sum::<f64>() / n;
        let cov: f64 = after.iter().map(|x| (x.0 - mx) * (x.1 as f64 - my)).sum();
        let var: f64 = after.iter().map(|x| (x.0 - mx).powi(2)).sum();
        if var > 0.0 {
            cov / var * 60.0
        } else {
            0.0
        }
    } else {
        0.0
    };
    let pass =
        errors == 0 && worker_failures.is_empty() && checks_ok && rss_ok && g.errors.is_empty();

    // ---- markdown
    let meta = meta_map(&a.meta);
    let m = |k: &str| meta.get(k).cloned().unwrap_or_else(|| "?".into());
    let mut o = String::new();
    let _ = writeln!(o, "## Soak (issue #6)\n");
    let reduced = if a.duration < 600.0 {
        format!(" **This is a reduced run of {:.0} s** (the full soak is 10 minutes: `bench/run.sh soak`).", a.duration)
    } else {
        String::new()
    };
    let _ = writeln!(
        o,
        "**Result: {}.**{reduced} Command `{}` (`{}`), {}, weauth commit `{}`{}, `GOTRUE_DB_MAX_POOL_SIZE={}`, concurrency {}, {:.0} s, {} requests ({:.0} req/s). Load before: `{}`; other processes may have been running on the machine.\n",
        if pass { "PASS" } else { "FAIL" },
        a.command,
        a.env,
        m("date"),
        m("commit"),
        if m("dirty") != "0" { format!(" (+{} uncommitted changes)", m("dirty")) } else { String::new() },
        a.pool_size,
        a.concurrency,
        elapsed,
        requests.load(Ordering::Relaxed),
        requests.load(Ordering::Relaxed) as f64 / elapsed,
        m("uptime_before"),
    );
    let _ = writeln!(
        o,
        "Each of the {} workers is one device with its own WeChat users (its user plus {RETURNING_PER_WORKER} returning ones, all signed in during preparation), choosing per request: {}. A login switches the worker to the new session. Login and phone codes are fetched from the emulator right before the call; only the weauth call is timed.\n",
        a.concurrency,
        MIX.iter().map(|(op, w)| format!("{} {w}%", op.name())).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(o, "| Operation | ok | non-2xx | transport | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: | ---: | ---: |");
    for (op, st) in g.ops.iter() {
        let (p50, p99) = st
            .hist
            .as_ref()
            .map(|h| {
                (
                    h.value_at_quantile(0.5) as f64 / 1000.0,
                    h.value_at_quantile(0.99) as f64 / 1000.0,
                )
            })
            .unwrap_or((0.0, 0.0));
        let _ = writeln!(
            o,
            "| {} | {} | {} | {} | {p50:.2} | {p99:.2} |",
            op.name(),
            st.ok,
            st.non2xx,
            st.transport
        );
    }
    let _ = writeln!(
        o,
        "| prepared WeChat sign-ins | {} | | | | |",
        g.prep_logins
    );
    if !g.errors.is_empty() || !worker_failures.is_empty() {
        let _ = writeln!(o, "\nErrors: {:?} {:?}", g.errors, worker_failures);
    }
    let _ = writeln!(
        o,
        "\n**weauth RSS** (VmRSS every {:.0} s; peak VmHWM {:.1} MiB): {} → {}. After the warm-up ({warm:.0} s) the later half peaks at {:.1} MiB against {:.1} MiB in the earlier half (limit +10% + 2 MiB), slope {slope:+.0} KiB/min.\n",
        a.sample,
        hwm.unwrap_or(0) as f64 / 1024.0,
        if rss_ok { "flat" } else { "**growing**" },
        sparkline(&s.iter().map(|x| x.1 as f64).collect::<Vec<_>>()),
        m2 as f64 / 1024.0,
        m1 as f64 / 1024.0,
    );
    let _ = writeln!(o, "| t (s) | RSS MiB | req/s |\n| ---: | ---: | ---: |");
    for (ts, rss, rps) in &s {
        let _ = writeln!(o, "| {ts:.0} | {:.1} | {rps:.0} |", *rss as f64 / 1024.0);
    }
    let _ = writeln!(o, "\n**Database after the run** (expected from the successful requests counted by the load generator; the database was created empty for the soak):\n");
    let _ = writeln!(
        o,
        "| Rows | Expected from | Expected | Actual | |\n| --- | --- | ---: | ---: | --- |"
    );
    for (name, why, exp, got, strict) in &checks {
        let _ = writeln!(
            o,
            "| {name} | {why} | {exp} | {got} | {} |",
            if exp == got {
                "ok"
            } else if *strict {
                "**MISMATCH**"
            } else {
                "differs (informational)"
            }
        );
    }
    let existing = std::fs::read_to_string(&a.out).unwrap_or_default();
    std::fs::write(&a.out, splice(&existing, None, Some(&o)))
        .map_err(|e| format!("{}: {e}", a.out))?;
    eprintln!("{o}");
    Ok(pass)
}
