//! CPU accounting from /proc: a process's user + system time, per-CPU
//! softirq time, docker-proxy processes, and the machine description.

use std::fs;
use std::process::Command;

use serde::{Deserialize, Serialize};

/// Clock ticks per second of /proc times (`getconf CLK_TCK`, 100 if unknown).
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU seconds of process `pid` (all its threads), from
/// /proc/PID/stat; `None` when the process is gone.
pub fn process_cpu_s(pid: u32, ticks: f64) -> Option<f64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat_cpu_ticks(&text).map(|t| t as f64 / ticks)
}

/// utime + stime (fields 14 and 15) of a /proc/PID/stat line, in ticks. The
/// command name (field 2) may hold spaces and parentheses, so fields are
/// counted after its last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")" the fields start at field 3 (state): utime is field 14.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Softirq seconds spent so far on `cpu` (the `cpuN` line of /proc/stat).
pub fn softirq_s(cpu: u32, ticks: f64) -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    parse_softirq_ticks(&text, cpu).map(|t| t as f64 / ticks)
}

/// The softirq column (the 7th value) of the `cpuN` line, in ticks.
pub fn parse_softirq_ticks(proc_stat: &str, cpu: u32) -> Option<u64> {
    let label = format!("cpu{cpu}");
    let line = proc_stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    line.split_whitespace().nth(7)?.parse().ok()
}

/// Busy seconds of `cpu` so far: every /proc/stat column but idle and
/// iowait (user, nice, system, irq, softirq, steal).
pub fn cpu_busy_s(cpu: u32, ticks: f64) -> Option<f64> {
    let text = fs::read_to_string("/proc/stat").ok()?;
    parse_busy_ticks(&text, cpu).map(|t| t as f64 / ticks)
}

/// The busy ticks of the `cpuN` line (columns 1-3 and 6-8).
pub fn parse_busy_ticks(proc_stat: &str, cpu: u32) -> Option<u64> {
    let label = format!("cpu{cpu}");
    let line = proc_stat
        .lines()
        .find(|l| l.split_whitespace().next() == Some(label.as_str()))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap_or(0))
        .collect();
    if v.len() < 8 {
        return None;
    }
    Some(v[0] + v[1] + v[2] + v[5] + v[6] + v[7])
}

/// Process ids whose command name is exactly `comm` (from /proc/PID/comm).
pub fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .map(|c| c.trim() == comm)
                .unwrap_or(false)
        })
        .collect();
    pids.sort_unstable();
    pids
}

/// The machine a run measured on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// Host name.
    pub host: String,
    /// CPU model from /proc/cpuinfo.
    pub cpu_model: String,
    /// Online cores.
    pub cores: u32,
    /// Kernel release.
    pub kernel: String,
    /// `docker version` server version, or what went wrong.
    pub docker: String,
    /// `docker-compose version` / `docker compose version` first line.
    pub compose: String,
    /// Memory in MiB, from /proc/meminfo.
    pub memory_mib: u64,
}

impl Machine {
    /// Describes this machine.
    pub fn probe() -> Self {
        let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")?
                    .split_once(':')
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_mib = meminfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("MemTotal:")?
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .unwrap_or(0)
            / 1024;
        Machine {
            host: first_line(&["uname", "-n"]).unwrap_or_else(|| "unknown".into()),
            cpu_model,
            cores: std::thread::available_parallelism()
                .map(|n| n.get() as u32)
                .unwrap_or(1),
            kernel: first_line(&["uname", "-r"]).unwrap_or_else(|| "unknown".into()),
            docker: first_line(&["docker", "version", "--format", "{{.Server.Version}}"])
                .unwrap_or_else(|| "unreachable".into()),
            compose: first_line(&["docker-compose", "version", "--short"])
                .map(|v| format!("docker-compose {v}"))
                .or_else(|| {
                    first_line(&["docker", "compose", "version", "--short"])
                        .map(|v| format!("docker compose {v}"))
                })
                .unwrap_or_else(|| "missing".into()),
            memory_mib,
        }
    }
}

/// First line of a command's stdout when it succeeds.
pub fn first_line(argv: &[&str]) -> Option<String> {
    let out = Command::new(argv[0]).args(&argv[1..]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let line = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()?
        .trim()
        .to_string();
    (!line.is_empty()).then_some(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_cpu_is_read_past_a_command_name_with_spaces() {
        let stat = "1234 (docker (pr) x) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 8 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
    }

    #[test]
    fn softirq_of_one_cpu() {
        let text =
            "cpu  1 2 3 4 5 6 70 0 0 0\ncpu0 10 0 20 300 1 2 33 0 0 0\ncpu1 1 0 2 3 0 0 44 0 0 0\n";
        assert_eq!(parse_softirq_ticks(text, 0), Some(33));
        assert_eq!(parse_softirq_ticks(text, 1), Some(44));
        assert_eq!(parse_softirq_ticks(text, 2), None);
        // user 10 + nice 0 + system 20 + irq 1 + softirq 2 + steal 33... here
        // column 7 is softirq (33) and 8 steal (0): busy = 10+0+20+2+33+0.
        assert_eq!(parse_busy_ticks(text, 0), Some(65));
    }

    #[test]
    fn own_process_has_cpu_time() {
        let pid = std::process::id();
        assert!(process_cpu_s(pid, clock_ticks()).is_some());
        assert!(process_cpu_s(u32::MAX, 100.0).is_none());
    }
}
