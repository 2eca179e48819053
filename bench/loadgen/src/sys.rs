//! What the load generator reads from /proc: RSS and CPU time of processes, machine CPU.

use std::fs;

/// Linux reports utime/stime in USER_HZ, which is 100 on every architecture Linux supports.
pub const TICKS_PER_SEC: f64 = 100.0;

fn status_field_kb(pid: u32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Resident set size in KiB (`VmRSS`).
pub fn rss_kb(pid: u32) -> Option<u64> {
    status_field_kb(pid, "VmRSS:")
}

/// Peak resident set size in KiB since the process started (`VmHWM`).
pub fn hwm_kb(pid: u32) -> Option<u64> {
    status_field_kb(pid, "VmHWM:")
}

/// (comm, utime + stime in ticks) of a process.
fn stat(path: &str) -> Option<(String, u64)> {
    let s = fs::read_to_string(path).ok()?;
    let open = s.find('(')?;
    let close = s.rfind(')')?;
    let comm = s[open + 1..close].to_string();
    let rest: Vec<&str> = s[close + 2..].split_whitespace().collect();
    // Fields after comm start at field 3 (state); utime is field 14, stime 15.
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// CPU time of one process in ticks.
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    stat(&format!("/proc/{pid}/stat")).map(|(_, t)| t)
}

pub fn self_cpu_ticks() -> u64 {
    stat("/proc/self/stat").map(|(_, t)| t).unwrap_or(0)
}

/// Sum of the CPU time of every live process whose name starts with `prefix` (PostgreSQL's
/// postmaster and backends are all called `postgres`). Backends that exit in between are lost,
/// which is why the benchmark reads it around phases in which weauth's pool keeps its
/// connections.
pub fn cpu_ticks_by_name(prefix: &str) -> u64 {
    let Ok(dir) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        if let Some((comm, t)) = stat(&format!("/proc/{name}/stat")) {
            if comm.starts_with(prefix) {
                total += t;
            }
        }
    }
    total
}

/// (busy, total) ticks of the whole machine from /proc/stat.
pub fn machine_ticks() -> (u64, u64) {
    let Ok(s) = fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = s.lines().next() else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total.saturating_sub(idle), total)
}

/// A snapshot of the CPU counters the benchmark reports.
#[derive(Clone, Copy, Default)]
pub struct CpuSnap {
    pub server: u64,
    pub emulator: u64,
    pub postgres: u64,
    pub loadgen: u64,
    pub busy: u64,
    pub total: u64,
}

impl CpuSnap {
    pub fn take(server_pid: Option<u32>, emulator_pid: Option<u32>) -> CpuSnap {
        let (busy, total) = machine_ticks();
        CpuSnap {
            server: server_pid.and_then(cpu_ticks).unwrap_or(0),
            emulator: emulator_pid.and_then(cpu_ticks).unwrap_or(0),
            postgres: cpu_ticks_by_name("postgres"),
            loadgen: self_cpu_ticks(),
            busy,
            total,
        }
    }
}
