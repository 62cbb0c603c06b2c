//! The well-behaved client: the project's load generator, open loop at a
//! modest fixed rate over HTTPS with keep-alive, run beside every attack
//! and fault so its latency and its failures say what a visitor saw.

use std::collections::BTreeMap;
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Parser as _;
use serde::{Deserialize, Serialize};

use crate::blog::Blog;
use crate::ScenarioError;

/// What the well-behaved client does.
#[derive(Debug, Clone)]
pub struct ProbeSpec {
    /// Requests per second, over all its connections (open loop).
    pub rate: u32,
    /// Connections.
    pub connections: u32,
    /// How long it runs.
    pub duration: Duration,
    /// HTTP/2 instead of HTTP/1.1.
    pub http2: bool,
    /// A new connection (and TLS handshake) for every request.
    pub new_connection: bool,
}

impl ProbeSpec {
    /// 100 requests/s over 2 keep-alive HTTPS connections for `duration`.
    pub fn steady(duration: Duration) -> ProbeSpec {
        ProbeSpec {
            rate: 100,
            connections: 2,
            duration,
            http2: false,
            new_connection: false,
        }
    }
}

/// The well-behaved client's results for one scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProbeStats {
    /// Requests due (open loop schedule).
    pub sent: u64,
    /// Requests answered 2xx/3xx in full.
    pub completed: u64,
    /// Requests failed, by kind (`refused`, `reset`, `timeout`, ...).
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Requests in flight at the end of the run.
    pub unfinished: u64,
    /// Median latency, µs, corrected for coordinated omission.
    pub p50_us: u64,
    /// 99th percentile latency, µs, corrected for coordinated omission.
    pub p99_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// The rate asked for, requests/s.
    pub rate: u32,
    /// Connections it used.
    pub connections: u32,
    /// A new connection (and handshake) per request.
    #[serde(default)]
    pub new_connection: bool,
    /// The measured window, s.
    pub duration_s: f64,
    /// The generator fell behind its schedule (its own CPU limited it).
    pub fell_behind: bool,
}

impl ProbeStats {
    /// Failed requests that reached the server or were cut off: every
    /// error but a refused connection (which never left the client).
    pub fn lost(&self) -> u64 {
        self.errors_by_kind
            .iter()
            .filter(|(kind, _)| kind.as_str() != "refused")
            .map(|(_, n)| n)
            .sum()
    }

    /// Served throughout: nothing lost, and no more left unanswered at
    /// the end than the one request each connection may have in flight.
    pub fn served_throughout(&self) -> bool {
        self.lost() == 0 && self.completed > 0 && self.unfinished <= u64::from(self.connections)
    }

    /// Refused connections (nothing listening).
    pub fn refused(&self) -> u64 {
        self.errors_by_kind.get("refused").copied().unwrap_or(0)
    }
}

/// Runs the well-behaved client against `blog` and waits for it.
pub fn run(blog: &Blog, spec: &ProbeSpec) -> Result<ProbeStats, ScenarioError> {
    run_url(&blog.https_url("/"), blog.ca_path(), spec)
}

/// Runs the well-behaved client in a thread; join the handle for its
/// results.
pub fn spawn(blog: &Blog, spec: &ProbeSpec) -> JoinHandle<Result<ProbeStats, ScenarioError>> {
    let (url, ca, spec) = (
        blog.https_url("/"),
        blog.ca_path().to_path_buf(),
        spec.clone(),
    );
    std::thread::spawn(move || run_url(&url, &ca, &spec))
}

/// Joins a probe thread.
pub fn join(
    handle: JoinHandle<Result<ProbeStats, ScenarioError>>,
) -> Result<ProbeStats, ScenarioError> {
    handle
        .join()
        .map_err(|_| ScenarioError::Loadgen("the probe thread panicked".into()))?
}

/// Runs the well-behaved client against `url`, trusting the CA in `ca`.
pub fn run_url(
    url: &str,
    ca: &std::path::Path,
    spec: &ProbeSpec,
) -> Result<ProbeStats, ScenarioError> {
    let mut args: Vec<String> = [
        "loadgen",
        url,
        "-q",
        "-t",
        "1",
        "--timeout",
        "2s",
        "--cacert",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.push(ca.display().to_string());
    args.extend([
        "-c".into(),
        spec.connections.to_string(),
        "-R".into(),
        spec.rate.to_string(),
        "-d".into(),
        format!("{}ms", spec.duration.as_millis()),
    ]);
    if spec.http2 {
        args.push("--http2".into());
    }
    if spec.new_connection {
        args.push("--new-connection".into());
    }
    let cli = loadgen::cli::Cli::try_parse_from(&args)
        .map_err(|e| ScenarioError::Loadgen(e.to_string()))?;
    let config = cli
        .run
        .to_config()
        .map_err(|e| ScenarioError::Loadgen(e.to_string()))?;
    let report =
        loadgen::run::run(&config, false).map_err(|e| ScenarioError::Loadgen(e.to_string()))?;
    let s = &report.summary;
    Ok(ProbeStats {
        sent: s.requests_sent,
        completed: s.requests_completed,
        errors_by_kind: s.errors_by_kind.clone(),
        unfinished: s.unfinished,
        p50_us: s.latency_corrected.p50_us,
        p99_us: s.latency_corrected.p99_us,
        max_us: s.latency_corrected.max_us,
        rate: spec.rate,
        connections: spec.connections,
        new_connection: spec.new_connection,
        duration_s: s.duration_s,
        fell_behind: report.fell_behind,
    })
}
