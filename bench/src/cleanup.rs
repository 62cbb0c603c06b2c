//! Leaving nothing behind: the interrupt flag (SIGINT, SIGTERM), removal of
//! what a crashed run left (only hopless-owned names), and the bare server's
//! pid file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Prefix of the bench's temporary directories under the temp dir.
pub const TEMP_PREFIX: &str = "hopless-bench-";

/// Name of the server-side CPU budget cgroup.
pub const BUDGET_NAME: &str = "hopless-vps";

/// Set by SIGINT or SIGTERM; the run stops at the next check and cleans up.
#[derive(Debug, Clone)]
pub struct Interrupt(Arc<AtomicBool>);

impl Interrupt {
    /// Registers the flag for SIGINT and SIGTERM.
    pub fn install() -> std::io::Result<Self> {
        let flag = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGINT, flag.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGTERM, flag.clone())?;
        Ok(Interrupt(flag))
    }

    /// A flag no signal sets (for tests and library use).
    pub fn never() -> Self {
        Interrupt(Arc::new(AtomicBool::new(false)))
    }

    /// True once a signal came.
    pub fn is_set(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Where the bare server's pid is kept while it runs, so a crashed run's
/// server can be found and stopped by the next run.
pub fn bare_pid_file() -> PathBuf {
    std::env::temp_dir().join("hopless-bench-bare.pid")
}

/// Removes everything an earlier crashed run could have left: compose
/// project `hopless`, client namespaces `hopless-c*` and veths `hl-*` (their
/// qdiscs go with them), cgroups `hopless*`, the bare server recorded in
/// the pid file, and temp dirs `hopless-bench-*`. Returns what it removed.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    if let Some(pid) = stop_recorded_bare_server(&bare_pid_file()) {
        removed.push(format!("bare server pid {pid}"));
    }
    removed.extend(testbed::compose::remove_leftovers());
    removed.extend(testbed::netns::remove_leftovers());
    removed.extend(testbed::cgroup::remove_leftovers());
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) && entry.path().is_dir() {
                let _ = std::fs::remove_dir_all(entry.path());
                removed.push(format!("temp dir {}", entry.path().display()));
            }
        }
    }
    removed
}

/// Kills the process in the pid file when it is still the static `blog`
/// binary (its /proc/PID/exe ends in `/blog`), then removes the file.
fn stop_recorded_bare_server(pid_file: &Path) -> Option<u32> {
    let text = std::fs::read_to_string(pid_file).ok()?;
    let _ = std::fs::remove_file(pid_file);
    let pid: i32 = text.trim().parse().ok()?;
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok()?;
    if exe.file_name()? != "blog" {
        return None;
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .ok()?;
    Some(pid as u32)
}
