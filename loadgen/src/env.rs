//! Facts about the generator's machine (host, kernel, CPU) and its own CPU
//! time from getrusage, both saved in the report.

use std::time::Duration;

use nix::sys::resource::{getrusage, UsageWho};

use crate::report::{CpuUsage, Environment};

/// Reads host name, kernel release, CPU model and available cores.
pub fn environment() -> Environment {
    let read = |p: &str| std::fs::read_to_string(p).map(|s| s.trim().to_string());
    let cpu_model = read("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    Environment {
        host: read("/proc/sys/kernel/hostname").unwrap_or_else(|_| "unknown".into()),
        kernel: read("/proc/sys/kernel/osrelease").unwrap_or_else(|_| "unknown".into()),
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
    }
}

/// The process's user and system CPU time so far (all threads).
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTimes {
    /// User CPU time.
    pub user: Duration,
    /// System CPU time.
    pub system: Duration,
}

impl CpuTimes {
    /// Reads getrusage(RUSAGE_SELF): the whole process; zero if it fails.
    pub fn now() -> Self {
        Self::of(UsageWho::RUSAGE_SELF)
    }

    /// Reads getrusage(RUSAGE_THREAD): the calling thread; zero if it fails.
    pub fn this_thread() -> Self {
        Self::of(UsageWho::RUSAGE_THREAD)
    }

    /// User plus system time.
    pub fn total(self) -> Duration {
        self.user + self.system
    }

    fn of(who: UsageWho) -> Self {
        let Ok(u) = getrusage(who) else {
            return Self::default();
        };
        let d = |tv: nix::sys::time::TimeVal| {
            Duration::from_secs(tv.tv_sec().max(0) as u64)
                + Duration::from_micros(tv.tv_usec().max(0) as u64)
        };
        CpuTimes {
            user: d(u.user_time()),
            system: d(u.system_time()),
        }
    }

    /// The CPU used between `self` (earlier) and `later`, per `requests`.
    pub fn usage_until(self, later: CpuTimes, requests: u64) -> CpuUsage {
        let user_s = later.user.saturating_sub(self.user).as_secs_f64();
        let system_s = later.system.saturating_sub(self.system).as_secs_f64();
        cpu_usage(user_s, system_s, requests)
    }
}

/// CPU seconds and their cost per request in µs (0 with no request).
pub fn cpu_usage(user_s: f64, system_s: f64, requests: u64) -> CpuUsage {
    let us_per_request = if requests == 0 {
        0.0
    } else {
        (user_s + system_s) * 1e6 / requests as f64
    };
    CpuUsage {
        user_s,
        system_s,
        us_per_request,
        busiest_worker_share: 0.0,
    }
}
