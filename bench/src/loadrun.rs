//! Runs the load generator as a process for one cell: pinned to the client
//! core, inside the client namespace for external paths, bounded in time,
//! stopped early on an interrupt; and finds or builds its binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use loadgen::report::Report;

use crate::cleanup::Interrupt;
use crate::matrix::Workload;

/// The core the load generator is pinned to.
pub const CLIENT_CORE: u32 = 1;

/// One invocation of the generator.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The generator binary.
    pub binary: PathBuf,
    /// Namespace to run in (external paths), or `None` for the host.
    pub netns: Option<String>,
    /// The `weight URL` mix file.
    pub mix: PathBuf,
    /// `ADDR:PORT` every connection goes to.
    pub connect_to: String,
    /// CA the server's certificate chains to.
    pub cacert: PathBuf,
    /// Traffic kind.
    pub workload: Workload,
    /// Open-loop rate, requests/s; `None` = closed loop.
    pub rate: Option<f64>,
    /// Measured seconds.
    pub duration_s: f64,
    /// Where the JSON report goes (`None`: a warm-up, nothing kept).
    pub json: Option<PathBuf>,
}

impl LoadSpec {
    /// The full command line.
    pub fn command(&self) -> Command {
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args([
                    "netns",
                    "exec",
                    ns,
                    "taskset",
                    "-c",
                    &CLIENT_CORE.to_string(),
                ]);
                c
            }
            None => {
                let mut c = Command::new("taskset");
                c.args(["-c", &CLIENT_CORE.to_string()]);
                c
            }
        };
        cmd.arg(&self.binary)
            .args([
                "-c",
                &self.workload.connections().to_string(),
                "-t",
                "1",
                "--quiet",
            ])
            .args([
                "-d",
                &format!("{}ms", (self.duration_s * 1000.0).round() as u64),
            ])
            .args(["--timeout", "2s", "--connect-to", &self.connect_to])
            .arg("--mix")
            .arg(&self.mix)
            .arg("--cacert")
            .arg(&self.cacert);
        if self.workload == Workload::H2 {
            cmd.arg("--http2");
        }
        if self.workload.new_connection() {
            cmd.arg("--new-connection");
        }
        if let Some(rate) = self.rate {
            cmd.args(["-R", &format!("{rate:.1}")]);
        }
        if let Some(json) = &self.json {
            cmd.arg("--json").arg(json);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs it to the end (bounded: duration + 30 s), returning the report
    /// when `json` was set; an interrupt kills it and returns an error.
    pub fn run(&self, interrupt: &Interrupt) -> Result<Option<Report>, String> {
        let mut child = self
            .command()
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs_f64(self.duration_s + 30.0);
        let status = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                break status;
            }
            if interrupt.is_set() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(if interrupt.is_set() {
                    "interrupted".to_string()
                } else {
                    format!(
                        "loadgen did not finish within {:.0} s",
                        self.duration_s + 30.0
                    )
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = child
            .stderr
            .take()
            .map(|mut s| {
                let mut text = String::new();
                let _ = std::io::Read::read_to_string(&mut s, &mut text);
                text
            })
            .unwrap_or_default();
        if !status.success() {
            return Err(format!("loadgen exited with {status}: {}", stderr.trim()));
        }
        match &self.json {
            Some(json) => Report::from_json_file(json)
                .map(Some)
                .map_err(|e| e.to_string()),
            None => Ok(None),
        }
    }
}

/// Finds the generator: `explicit`, else `loadgen` beside this executable
/// or in target/release, else builds it with `cargo build --release -p
/// loadgen` from the workspace.
pub fn find_or_build(explicit: Option<&Path>) -> Result<PathBuf, String> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_path_buf())
        } else {
            Err(format!(
                "--loadgen {} is not a file (build it: cargo build --release -p loadgen)",
                path.display()
            ))
        };
    }
    let workspace = testbed::image::workspace_root();
    let release = workspace.join("target/release/loadgen");
    let status = Command::new("cargo")
        .args(["build", "--release", "-p", "loadgen"])
        .current_dir(&workspace)
        .stdout(Stdio::null())
        .status();
    match status {
        Ok(s) if s.success() && release.is_file() => return Ok(release),
        _ => {}
    }
    if let Some(beside) = std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.join("loadgen")))
    {
        if beside.is_file() {
            return Ok(beside);
        }
    }
    Err(format!(
        "no loadgen binary: `cargo build --release -p loadgen` in {} failed; build it and pass --loadgen PATH",
        workspace.display()
    ))
}
