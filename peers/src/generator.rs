//! Running one load generator pinned to a core (taskset), bounded in time,
//! with the CPU time it spent (getrusage of reaped children) and its
//! output kept for parsing.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::resource::{getrusage, UsageWho};
use serde::Serialize;

use crate::tools::{tail, Tools};
use crate::PeersError;

/// One of the compared load generators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GeneratorKind {
    /// The project's `loadgen`.
    Loadgen,
    /// wrk (C, epoll).
    Wrk,
    /// h2load from nghttp2, in HTTP/1.1 mode.
    H2load,
    /// oha (Rust, tokio).
    Oha,
}

impl GeneratorKind {
    /// Every generator, in the order repeats interleave them.
    pub const ALL: [GeneratorKind; 4] = [
        GeneratorKind::Loadgen,
        GeneratorKind::Wrk,
        GeneratorKind::H2load,
        GeneratorKind::Oha,
    ];

    /// Its short name in files, tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            GeneratorKind::Loadgen => "loadgen",
            GeneratorKind::Wrk => "wrk",
            GeneratorKind::H2load => "h2load",
            GeneratorKind::Oha => "oha",
        }
    }

    /// The program and arguments of a closed-loop keep-alive HTTP/1.1 run
    /// of `connections` connections for `duration_s` seconds on one
    /// thread; `json` is where loadgen and oha write their reports.
    pub fn closed_loop(
        self,
        tools: &Tools,
        url: &str,
        connections: u32,
        duration_s: u32,
        json: &Path,
    ) -> (PathBuf, Vec<String>) {
        let c = connections.to_string();
        let d = format!("{duration_s}s");
        let (program, args): (&Path, Vec<String>) = match self {
            GeneratorKind::Loadgen => (
                &tools.loadgen,
                strings(&[
                    "-t",
                    "1",
                    "-c",
                    &c,
                    "-d",
                    &d,
                    "-q",
                    "--json",
                    &path(json),
                    url,
                ]),
            ),
            GeneratorKind::Wrk => (&tools.wrk, strings(&["-t", "1", "-c", &c, "-d", &d, url])),
            GeneratorKind::H2load => (
                &tools.h2load,
                strings(&[
                    "--h1",
                    "-t",
                    "1",
                    "-c",
                    &c,
                    "-D",
                    &duration_s.to_string(),
                    url,
                ]),
            ),
            GeneratorKind::Oha => (
                &tools.oha,
                strings(&[
                    "--no-tui",
                    "--output-format",
                    "json",
                    "--worker-threads",
                    "1",
                    "-c",
                    &c,
                    "-z",
                    &d,
                    url,
                ]),
            ),
        };
        (program.to_path_buf(), args)
    }
}

/// What one pinned generator run cost.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorRun {
    /// Wall time from spawn to exit, in seconds.
    pub wall_s: f64,
    /// User CPU time, in seconds (getrusage RUSAGE_CHILDREN delta).
    pub user_s: f64,
    /// System CPU time, in seconds.
    pub system_s: f64,
    /// What it printed on stdout.
    #[serde(skip)]
    pub stdout: String,
}

/// Runs `program args` pinned to `core` (taskset -c), killing it if it is
/// still running `limit` after the start. Needs this process to have no
/// other child exiting meanwhile (the CPU time is a RUSAGE_CHILDREN delta).
pub fn run_pinned(
    name: &str,
    core: u32,
    program: &Path,
    args: &[String],
    limit: Duration,
    work_dir: &Path,
) -> Result<GeneratorRun, PeersError> {
    let err = |detail: String| PeersError::Generator {
        generator: name.to_string(),
        detail,
    };
    let out_path = work_dir.join(format!("{name}.stdout"));
    let err_path = work_dir.join(format!("{name}.stderr"));
    let stdout = File::create(&out_path).map_err(|e| PeersError::io("create", &out_path, e))?;
    let stderr = File::create(&err_path).map_err(|e| PeersError::io("create", &err_path, e))?;

    let before =
        getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|e| err(format!("getrusage: {e}")))?;
    let started = Instant::now();
    let mut child = Command::new("taskset")
        .arg("-c")
        .arg(core.to_string())
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|source| PeersError::Spawn {
            program: format!("taskset -c {core} {}", program.display()),
            source,
        })?;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| err(format!("wait: {e}")))? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(err(format!(
                "still running after {} s; killed (args: {})",
                limit.as_secs(),
                args.join(" ")
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let wall_s = started.elapsed().as_secs_f64();
    let after = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|e| err(format!("getrusage: {e}")))?;

    let stdout = fs::read_to_string(&out_path).unwrap_or_default();
    if !status.success() {
        let stderr = fs::read_to_string(&err_path).unwrap_or_default();
        return Err(err(format!(
            "exited with {status} (args: {}): {}",
            args.join(" "),
            tail(&format!("{stdout}\n{stderr}"), 6)
        )));
    }
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    Ok(GeneratorRun {
        wall_s,
        user_s: secs(after.user_time()) - secs(before.user_time()),
        system_s: secs(after.system_time()) - secs(before.system_time()),
        stdout,
    })
}

/// p50 and p99 latency in µs from oha's `--output-format json` report.
pub fn oha_percentiles_us(json: &str) -> Option<(f64, f64)> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    let p = value.get("latencyPercentiles")?;
    let at = |key: &str| p.get(key)?.as_f64().map(|s| s * 1e6);
    Some((at("p50")?, at("p99")?))
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oha_json_percentiles_are_read_in_microseconds() {
        let json = r#"{"summary":{},"latencyPercentiles":{"p50":0.00125,"p99":0.0042}}"#;
        let (p50, p99) = oha_percentiles_us(json).unwrap();
        assert!((p50 - 1250.0).abs() < 1e-6 && (p99 - 4200.0).abs() < 1e-6);
        assert_eq!(oha_percentiles_us("{}"), None);
    }
}
