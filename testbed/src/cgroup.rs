//! One CPU and memory budget for the whole server side (cgroup v1): a
//! parent group with a CFS quota, a cpuset and a memory limit that the
//! container (through `cgroup_parent`), the docker-proxy processes and a
//! bare server are all put under, as on a small VPS.

use std::fs;
use std::path::{Path, PathBuf};

/// Prefix of every cgroup this module makes.
pub const CGROUP_PREFIX: &str = "hopless";

/// Where cgroup v1 controllers are mounted.
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// CFS period used with every quota: 10 ms, in µs. With the default 100 ms
/// a half-core quota stalls the server for up to 50 ms at a time, which
/// would show up as a p99 no real VPS vCPU has.
const CFS_PERIOD_US: u64 = 10_000;

/// What can go wrong while making, filling or removing a budget.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The machine has no cgroup v1 controller of that name.
    #[error(
        "no cgroup v1 `{controller}` controller at {path} (this bench needs cgroup v1 with \
         cpu, cpuacct, cpuset and memory mounted under /sys/fs/cgroup; on a cgroup v2 host \
         boot with systemd.unified_cgroup_hierarchy=0)"
    )]
    NoController {
        /// The controller, for example `cpu`.
        controller: &'static str,
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A cgroup file could not be written or a group made.
    #[error("cannot write {path}: {source} (needs root)")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The budget name does not carry the project prefix.
    #[error("cgroup name {0:?} must start with {CGROUP_PREFIX:?} so leftovers can be found")]
    Name(String),
}

/// The limits of one budget.
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetLimits {
    /// CPU time per period, in CPUs (1.0 = one whole core); `None` = no quota.
    pub cpus: Option<f64>,
    /// Cores allowed, in cpuset syntax (`"0"`, `"0-1"`); `None` = all.
    pub cpuset: Option<String>,
    /// Memory limit in bytes; `None` = no limit.
    pub mem_limit_bytes: Option<u64>,
}

/// A cgroup v1 group of the same name under `cpu`, `cpuacct`, `cpuset` and
/// `memory`. Removed on drop (its processes are first moved back to the
/// root group).
#[derive(Debug)]
pub struct CpuBudget {
    name: String,
}

/// The controllers a budget spans.
const CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "cpuset", "memory"];

impl CpuBudget {
    /// Makes (or re-makes, after a leftover) the group `name` with `limits`.
    pub fn create(name: &str, limits: &BudgetLimits) -> Result<Self, CgroupError> {
        if !name.starts_with(CGROUP_PREFIX) || name.contains('/') {
            return Err(CgroupError::Name(name.to_string()));
        }
        for controller in CONTROLLERS {
            let root = Path::new(CGROUP_ROOT).join(controller);
            if !root.join("cgroup.procs").exists() {
                return Err(CgroupError::NoController {
                    controller,
                    path: root,
                });
            }
        }
        remove_group(name);
        let budget = CpuBudget {
            name: name.to_string(),
        };
        for controller in CONTROLLERS {
            let dir = budget.dir(controller);
            fs::create_dir_all(&dir).map_err(|source| CgroupError::Io { path: dir, source })?;
        }

        // A cpuset child is unusable until cpus and mems are set.
        let root_cpuset = Path::new(CGROUP_ROOT).join("cpuset");
        let mems = read_trimmed(&root_cpuset.join("cpuset.mems")).unwrap_or_else(|| "0".into());
        let all_cpus = read_trimmed(&root_cpuset.join("cpuset.cpus")).unwrap_or_else(|| "0".into());
        budget.write("cpuset", "cpuset.mems", &mems)?;
        budget.write(
            "cpuset",
            "cpuset.cpus",
            limits.cpuset.as_deref().unwrap_or(&all_cpus),
        )?;

        budget.write("cpu", "cpu.cfs_period_us", &CFS_PERIOD_US.to_string())?;
        let quota = match limits.cpus {
            // The kernel refuses quotas under 1 ms.
            Some(cpus) => ((cpus * CFS_PERIOD_US as f64).round() as i64).max(1_000),
            None => -1,
        };
        budget.write("cpu", "cpu.cfs_quota_us", &quota.to_string())?;
        if let Some(bytes) = limits.mem_limit_bytes {
            budget.write("memory", "memory.limit_in_bytes", &bytes.to_string())?;
        }
        Ok(budget)
    }

    /// The group's name, also the `cgroup_parent` to give Docker (`/NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/NAME`, the value for compose's `cgroup_parent` / `--cgroup-parent`.
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.name)
    }

    /// The group's directory under `controller`.
    pub fn dir(&self, controller: &str) -> PathBuf {
        Path::new(CGROUP_ROOT).join(controller).join(&self.name)
    }

    /// Moves the whole process `pid` (every thread) into the budget under
    /// every controller.
    pub fn add_process(&self, pid: u32) -> Result<(), CgroupError> {
        for controller in CONTROLLERS {
            self.write(controller, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// CPU time used by everything in the budget so far, in ns (cpuacct).
    pub fn cpu_usage_ns(&self) -> Option<u64> {
        read_trimmed(&self.dir("cpuacct").join("cpuacct.usage"))?
            .parse()
            .ok()
    }

    /// CFS throttling so far: (periods throttled, time throttled in ns).
    pub fn throttling(&self) -> Option<(u64, u64)> {
        let text = fs::read_to_string(self.dir("cpu").join("cpu.stat")).ok()?;
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        Some((field("nr_throttled "), field("throttled_time ")))
    }

    fn write(&self, controller: &str, file: &str, value: &str) -> Result<(), CgroupError> {
        let path = self.dir(controller).join(file);
        fs::write(&path, value).map_err(|source| CgroupError::Io { path, source })
    }
}

impl Drop for CpuBudget {
    fn drop(&mut self) {
        remove_group(&self.name);
    }
}

/// Removes every group named with [`CGROUP_PREFIX`] that a crashed run left
/// (moving any process still in one back to the root group). Returns what
/// it removed.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    for controller in CONTROLLERS {
        let Ok(entries) = fs::read_dir(Path::new(CGROUP_ROOT).join(controller)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(CGROUP_PREFIX) && entry.path().is_dir() {
                remove_group(&name);
                removed.push(format!("cgroup {controller}/{name}"));
            }
        }
    }
    removed.dedup();
    removed
}

/// Empties and removes `name` under every controller, children first
/// (Docker makes one per container). Errors are ignored: this is cleanup.
fn remove_group(name: &str) {
    for controller in CONTROLLERS {
        let root = Path::new(CGROUP_ROOT).join(controller);
        remove_tree(&root, &root.join(name));
    }
}

fn remove_tree(root: &Path, dir: &Path) {
    if !dir.is_dir() {
        return;
    }
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.path().is_dir() {
                remove_tree(root, &entry.path());
            }
        }
    }
    if let Ok(procs) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in procs.split_whitespace() {
            let _ = fs::write(root.join("cgroup.procs"), pid);
        }
    }
    let _ = fs::remove_dir(dir);
}

fn read_trimmed(path: &Path) -> Option<String> {
    let text = fs::read_to_string(path).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_holds_a_process_and_is_removed_on_drop() {
        let limits = BudgetLimits {
            cpus: Some(0.5),
            cpuset: Some("0".into()),
            mem_limit_bytes: Some(256 << 20),
        };
        let budget = CpuBudget::create("hopless-test-budget", &limits).unwrap();
        let quota = fs::read_to_string(budget.dir("cpu").join("cpu.cfs_quota_us")).unwrap();
        assert_eq!(quota.trim(), "5000");

        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        budget.add_process(child.id()).unwrap();
        let procs = fs::read_to_string(budget.dir("cpu").join("cgroup.procs")).unwrap();
        assert!(
            procs
                .split_whitespace()
                .any(|p| p == child.id().to_string()),
            "{procs}"
        );

        let dirs: Vec<PathBuf> = CONTROLLERS.iter().map(|c| budget.dir(c)).collect();
        drop(budget);
        for dir in dirs {
            assert!(!dir.exists(), "{} is still there", dir.display());
        }
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_name_without_the_prefix_is_refused() {
        let limits = BudgetLimits {
            cpus: None,
            cpuset: None,
            mem_limit_bytes: None,
        };
        let err = CpuBudget::create("vps", &limits).unwrap_err();
        assert!(err.to_string().contains("must start with"), "{err}");
    }
}
