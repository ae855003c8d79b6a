//! Timing statistics and process memory, without an instrumented allocator.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// Percentiles of a set of timed samples (nearest rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub n: usize,
    pub min: Duration,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub mean: Duration,
}

impl Stats {
    pub fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort_unstable();
        let n = samples.len();
        let rank = |p: f64| -> Duration {
            if n == 0 {
                return Duration::ZERO;
            }
            let r = ((p * n as f64).ceil() as usize).clamp(1, n);
            samples[r - 1]
        };
        let total: Duration = samples.iter().sum();
        Stats {
            n,
            min: samples.first().copied().unwrap_or_default(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples.last().copied().unwrap_or_default(),
            mean: if n == 0 {
                Duration::ZERO
            } else {
                total / n as u32
            },
        }
    }
}

/// What timing an empty interval costs: `Instant::now()` then `elapsed()`, as the
/// per-call measurements do around each call.
pub fn timer_overhead(n: usize) -> Stats {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        black_box(());
        samples.push(t.elapsed());
    }
    Stats::of(samples)
}

/// Resident memory of this process from `/proc/self/status`, in KiB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size since start or since [`reset_peak`].
    pub hwm_kib: u64,
}

/// `None` where `/proc` is not available (not Linux).
pub fn memory() -> Option<Memory> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let field = |name: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// Resets `VmHWM` to the current RSS (Linux 4.0+, writing 5 to `clear_refs`); returns
/// whether it worked.
pub fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A duration in the unit that reads best: ns, µs, ms or s.
pub fn fmt_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.2} µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.2} s", ns as f64 / 1e9)
    }
}

/// `a / b` as a ratio of durations (0 when `b` is zero).
pub fn ratio(a: Duration, b: Duration) -> f64 {
    if b.is_zero() {
        0.0
    } else {
        a.as_secs_f64() / b.as_secs_f64()
    }
}

/// The 1-, 5- and 15-minute load averages, to show whether something else was running.
pub fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

/// The CPU model and how many CPUs this process may use.
pub fn machine() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} CPUs")
}

/// CPU time used so far by this process's threads, split by whether the thread's name
/// starts with one of `prefixes` (so that one process can host the appliance beside its
/// simulated devices and tell their costs apart). From `/proc/self/task/*/schedstat`, in
/// nanoseconds; threads that have ended are not counted, so take readings around a window
/// in which the threads of interest live throughout.
pub fn thread_cpu(prefixes: &[&str]) -> (Duration, Duration) {
    let mut matching = Duration::ZERO;
    let mut others = Duration::ZERO;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (matching, others);
    };
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        let ns = std::fs::read_to_string(path.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        if prefixes.iter().any(|p| name.trim_end().starts_with(p)) {
            matching += Duration::from_nanos(ns);
        } else {
            others += Duration::from_nanos(ns);
        }
    }
    (matching, others)
}

/// CPU time used so far by another process (all its threads), from
/// `/proc/PID/task/*/schedstat`, in nanoseconds: for a broker that runs beside the
/// appliance as a process of its own. `None` when the process is gone or `/proc` is not
/// available.
pub fn process_cpu(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        let ns = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0);
        total += Duration::from_nanos(ns);
    }
    Some(total)
}
