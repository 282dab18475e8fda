//! What the kernel says about each process of the run: CPU time
//! (`/proc/<pid>/stat` utime + stime, all threads) and peak resident memory
//! (`VmHWM` in `/proc/<pid>/status`), plus the whole box's busy time
//! (`/proc/stat`), so a step can name the process that saturates a core.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// One process the benchmark watches.
#[derive(Debug, Clone)]
pub struct Watched {
    /// Short name printed in the tables (`enricher`, `kafka`, …).
    pub label: String,
    /// Its process id.
    pub pid: u32,
}

/// CPU counters of every watched process and of the box at one instant.
#[derive(Debug, Clone)]
pub struct CpuSnapshot {
    at: Instant,
    /// Clock ticks of CPU time per label (missing: the process is gone).
    ticks: BTreeMap<String, u64>,
    /// Busy and total ticks of all CPUs.
    box_ticks: Option<(u64, u64)>,
}

/// CPU use over an interval, as a share of one core (1.0 = one core busy).
#[derive(Debug, Clone, Default)]
pub struct CpuUse {
    /// Per label, cores used on average.
    pub per_process: BTreeMap<String, f64>,
    /// The whole box: cores busy on average (of [`CpuUse::cores`]).
    pub box_busy: Option<f64>,
    /// CPUs of the box.
    pub cores: usize,
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on every Linux we run on).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// utime + stime of `pid` in clock ticks (fields 14 and 15 of its stat line,
/// counted after the parenthesised command name, which may hold spaces).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(") ")?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// Peak resident set size of `pid` in KiB (`VmHWM`).
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Busy and total ticks of all CPUs (first line of `/proc/stat`; idle and
/// iowait count as not busy).
fn box_ticks() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let values: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let total: u64 = values.iter().sum();
    let idle = values.get(3).copied().unwrap_or(0) + values.get(4).copied().unwrap_or(0);
    Some((total.saturating_sub(idle), total))
}

/// CPUs of the box (`cpuN` lines of `/proc/stat`).
pub fn cores() -> usize {
    std::fs::read_to_string("/proc/stat")
        .map(|s| {
            s.lines()
                .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
                .count()
        })
        .unwrap_or(1)
        .max(1)
}

/// The processes whose parent is `pid` (a scan of `/proc/<n>/stat`): the
/// JVM a `timeout` wrapper started, for one.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|n| {
            std::fs::read_to_string(format!("/proc/{n}/stat"))
                .ok()
                .and_then(|stat| {
                    let (_, rest) = stat.rsplit_once(") ")?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// The pid `dev/stack` recorded for a part of the shared stack
/// (`<stack dir>/run/<part>.pid`, first field), if it is running.
pub fn stack_pid(stack_dir: &Path, part: &str) -> Option<u32> {
    let recorded =
        std::fs::read_to_string(stack_dir.join("run").join(format!("{part}.pid"))).ok()?;
    let pid: u32 = recorded.split_whitespace().next()?.parse().ok()?;
    cpu_ticks(pid).map(|_| pid)
}

impl CpuSnapshot {
    /// Reads every watched process's CPU time now.
    pub fn take(watched: &[Watched]) -> CpuSnapshot {
        CpuSnapshot {
            at: Instant::now(),
            ticks: watched
                .iter()
                .filter_map(|w| cpu_ticks(w.pid).map(|t| (w.label.clone(), t)))
                .collect(),
            box_ticks: box_ticks(),
        }
    }

    /// CPU use from `self` to `later`.
    pub fn until(&self, later: &CpuSnapshot, ticks_per_sec: u64) -> CpuUse {
        let secs = later
            .at
            .duration_since(self.at)
            .max(Duration::from_millis(1))
            .as_secs_f64();
        let per_process = later
            .ticks
            .iter()
            .filter_map(|(label, t1)| {
                let t0 = self.ticks.get(label)?;
                Some((
                    label.clone(),
                    t1.saturating_sub(*t0) as f64 / ticks_per_sec as f64 / secs,
                ))
            })
            .collect();
        let cores = cores();
        let box_busy = match (self.box_ticks, later.box_ticks) {
            (Some((b0, t0)), Some((b1, t1))) if t1 > t0 => {
                Some(b1.saturating_sub(b0) as f64 / (t1 - t0) as f64 * cores as f64)
            }
            _ => None,
        };
        CpuUse {
            per_process,
            box_busy,
            cores,
        }
    }
}

impl CpuUse {
    /// Cores busy with processes not watched (other work on the box: builds,
    /// other tests), when the box's busy time is known.
    pub fn others(&self) -> Option<f64> {
        self.box_busy
            .map(|b| (b - self.per_process.values().sum::<f64>()).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_cpu_time_and_peak_memory() {
        let me = std::process::id();
        assert!(cpu_ticks(me).is_some());
        assert!(peak_rss_kib(me).is_some_and(|k| k > 0));
        assert!(box_ticks().is_some_and(|(busy, total)| busy <= total && total > 0));
    }

    #[test]
    fn finds_the_children_of_a_process() -> std::io::Result<()> {
        let mut child = Command::new("sleep").arg("5").spawn()?;
        let found = children(std::process::id());
        child.kill()?;
        child.wait()?;
        assert!(found.contains(&child.id()), "{found:?}");
        Ok(())
    }

    #[test]
    fn cpu_use_is_ticks_over_wall_time() {
        let t0 = Instant::now();
        let a = CpuSnapshot {
            at: t0,
            ticks: BTreeMap::from([("x".to_owned(), 100)]),
            box_ticks: None,
        };
        let b = CpuSnapshot {
            at: t0 + Duration::from_secs(2),
            ticks: BTreeMap::from([("x".to_owned(), 300), ("gone".to_owned(), 5)]),
            box_ticks: None,
        };
        let used = a.until(&b, 100);
        assert_eq!(used.per_process.get("x"), Some(&1.0));
        assert!(!used.per_process.contains_key("gone"));
    }
}
