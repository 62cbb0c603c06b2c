//! What a run saves: one JSON per cell (the loadgen report plus the cell's
//! coordinates, CPU figures, hop evidence and the machine) and reading a
//! results directory back.

use std::path::{Path, PathBuf};

use loadgen::report::Report;
use serde::{Deserialize, Serialize};

use crate::matrix::{CellKey, Hop, Plan};
use crate::presets::VpsPreset;
use crate::procfs::Machine;

/// Version of the cell JSON this build writes (fields are only ever added).
pub const CELL_SCHEMA_VERSION: u32 = 1;

/// A results directory could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// A file could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cell file is not cell JSON.
    #[error("{path} is not a bench cell JSON: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde said.
        source: serde_json::Error,
    },
    /// The directory holds no cell files.
    #[error("{0} holds no cells/*.json: give the directory a run wrote (results/<date>-<host>)")]
    Empty(PathBuf),
}

/// CPU used during a cell's measured window, from /proc and cgroups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuFigures {
    /// The server process (user + system of all threads, /proc/PID/stat), s.
    pub server_s: f64,
    /// Every docker-proxy process together (/proc/PID/stat), s.
    pub docker_proxy_s: f64,
    /// The load generator (its getrusage, from its JSON), s.
    pub loadgen_s: f64,
    /// Softirq time on the server's core (/proc/stat), s.
    pub softirq_s: f64,
    /// Everything in the server-side cgroup budget (cpuacct.usage), s.
    pub budget_s: Option<f64>,
    /// Time the budget was throttled by its CFS quota (cpu.stat), ms.
    pub throttled_ms: Option<f64>,
    /// Requests the figures are divided by (completed + errors).
    pub requests: u64,
    /// `server_s` per request, µs.
    pub server_us_per_request: f64,
    /// `docker_proxy_s` per request, µs.
    pub docker_proxy_us_per_request: f64,
    /// `loadgen_s` per request, µs.
    pub loadgen_us_per_request: f64,
    /// `softirq_s` per request, µs.
    pub softirq_us_per_request: f64,
    /// The generator's CPU as a share of one core over the window, percent.
    pub loadgen_core_pct: f64,
    /// CPU time on the server's core not accounted to the server,
    /// docker-proxy or softirq (other processes of the machine), s: noise.
    #[serde(default)]
    pub foreign_server_core_s: f64,
    /// CPU time on the generator's core not accounted to the generator, s.
    #[serde(default)]
    pub foreign_client_core_s: f64,
}

impl CpuFigures {
    /// Fills the per-request figures from the totals.
    pub fn finish(&mut self, window_s: f64) {
        let per = |s: f64| {
            if self.requests == 0 {
                0.0
            } else {
                s * 1e6 / self.requests as f64
            }
        };
        self.server_us_per_request = per(self.server_s);
        self.docker_proxy_us_per_request = per(self.docker_proxy_s);
        self.loadgen_us_per_request = per(self.loadgen_s);
        self.softirq_us_per_request = per(self.softirq_s);
        self.loadgen_core_pct = if window_s > 0.0 {
            self.loadgen_s / window_s * 100.0
        } else {
            0.0
        };
    }

    /// Server-side CPU per request (server, docker-proxy, softirq), µs.
    pub fn server_side_us_per_request(&self) -> f64 {
        self.server_us_per_request + self.docker_proxy_us_per_request + self.softirq_us_per_request
    }
}

/// What the cell shows about the hop its connections took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HopEvidence {
    /// docker-proxy CPU over the window, s.
    pub docker_proxy_cpu_s: f64,
    /// Packets that matched Docker's DNAT rules for the ports, over the window.
    pub dnat_packets: Option<u64>,
    /// What the evidence says the connections went through.
    pub observed: Hop,
    /// The hop this profile and path is expected to take (see
    /// [`crate::matrix::ClientPath::expected_bridge_hop`]).
    pub expected: Hop,
}

/// Whether the bandwidth cap (not the hop) bounded the cell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BandwidthCheck {
    /// The tc cap on the path, Mbit/s per direction.
    pub cap_mbit: f64,
    /// HTTP bytes the client received per second (without TCP/IP and TLS
    /// framing), Mbit/s.
    pub achieved_mbit: f64,
    /// `achieved_mbit` reached 75% of the cap or more (the framing makes up
    /// most of the rest).
    pub bound: bool,
}

/// One cell as saved in `cells/<id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CellRecord {
    /// Always [`CELL_SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// Profile, path, workload, load point and repeat.
    #[serde(flatten)]
    pub key: CellKey,
    /// `ok` or `failed`.
    pub status: String,
    /// Why the cell failed, when it did.
    pub reason: Option<String>,
    /// Offered rate of an open-loop cell, requests/s.
    pub offered_rate: Option<f64>,
    /// The load generator's report (absent when the cell failed before it).
    pub report: Option<Report>,
    /// CPU figures.
    pub cpu: Option<CpuFigures>,
    /// Hop evidence.
    pub hop: Option<HopEvidence>,
    /// Reasons the generator may have been the bottleneck; empty when not.
    pub generator_limited: Vec<String>,
    /// Other processes of the machine that competed with the cell (CPU on
    /// the server's or the generator's core not accounted to the run);
    /// empty when quiet.
    #[serde(default)]
    pub disturbed: Vec<String>,
    /// Bandwidth cap check on capped external paths.
    pub bandwidth: Option<BandwidthCheck>,
    /// CPU quota of the server side, cores.
    pub server_cpus: f64,
    /// Memory limit of the server side, bytes.
    pub server_mem_limit_bytes: Option<u64>,
    /// The emulated VPS, with `--vps`.
    pub vps: Option<VpsPreset>,
    /// Where it ran.
    pub machine: Machine,
    /// When the cell finished, RFC 3339 UTC.
    pub finished_at: String,
}

impl CellRecord {
    /// Completed requests per second, when the cell succeeded.
    pub fn throughput(&self) -> Option<f64> {
        self.ok_report().map(|r| r.summary.rate_achieved)
    }

    /// The report of a successful cell.
    pub fn ok_report(&self) -> Option<&Report> {
        if self.status == "ok" {
            self.report.as_ref()
        } else {
            None
        }
    }
}

/// The whole run as saved in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    /// Always [`CELL_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The plan that ran.
    pub plan: Plan,
    /// Where it ran.
    pub machine: Machine,
    /// The emulated VPS, with `--vps`.
    pub vps: Option<VpsPreset>,
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC.
    pub finished_at: String,
    /// Wall-clock length, s.
    pub duration_s: f64,
    /// Cells run.
    pub cells: usize,
    /// Cells that failed.
    pub failed_cells: usize,
    /// Cells whose generator may have been the bottleneck.
    pub generator_limited_cells: usize,
    /// Cells other processes of the machine competed with.
    #[serde(default)]
    pub disturbed_cells: usize,
    /// The headline comparisons (see [`crate::analysis`]).
    pub headline: Vec<crate::analysis::HeadlineRow>,
    /// Medians per profile, path, workload and load point.
    pub groups: Vec<crate::analysis::Group>,
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RecordError> {
    let mut text = serde_json::to_string_pretty(value).expect("bench records always serialize");
    text.push('\n');
    std::fs::write(path, text).map_err(|source| RecordError::Io {
        action: "write",
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every `cells/*.json` of a results directory, in file-name order.
pub fn read_cells(dir: &Path) -> Result<Vec<CellRecord>, RecordError> {
    let cells_dir = dir.join("cells");
    let io = |source, path: &Path| RecordError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let entries = std::fs::read_dir(&cells_dir).map_err(|e| io(e, &cells_dir))?;
    let mut paths: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(RecordError::Empty(dir.to_path_buf()));
    }
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).map_err(|e| io(e, p))?;
            serde_json::from_str(&text).map_err(|source| RecordError::Json {
                path: p.clone(),
                source,
            })
        })
        .collect()
}

/// Synthetic cells for unit tests only: figures made up to exercise the
/// analysis and rendering code, never published.
#[cfg(test)]
pub(crate) mod fixtures {
    use loadgen::report::*;

    use super::*;
    use crate::matrix::{ClientPath, LoadPoint, Profile, Workload};

    /// A successful cell with the given rate, latency spread and CPU.
    pub fn cell(
        profile: Profile,
        path: ClientPath,
        workload: Workload,
        load: LoadPoint,
        repeat: u32,
        rate: f64,
        server_us: f64,
    ) -> CellRecord {
        let mut h = new_histogram();
        for i in 1..=1000u64 {
            h.record(100 + i * (1 + repeat as u64)).unwrap();
        }
        let p = Percentiles::of(&h);
        let requests = (rate * 2.0) as u64;
        // Built through JSON so fields loadgen adds later (with serde
        // defaults) do not break the fixture.
        let report: Report = serde_json::from_value(serde_json::json!({
            "schema_version": SCHEMA_VERSION,
            "tool": "fixture",
            "started_at": "2026-01-01T00:00:00Z",
            "config": {
                "targets": [{"weight": 1, "url": "http://127.0.0.1/"}],
                "mode": "closed", "connections": 8, "threads": 1, "duration_s": 2.0,
                "warmup_s": 0.0, "rate": null, "http2": false, "new_connection": false,
                "timeout_ms": 1000, "headers": [], "connect_to": null, "bind": null,
                "cacert": null, "insecure": false, "mix_file": null, "slo_p99_us": null
            },
            "environment": {"host": "h", "kernel": "k", "cpu_model": "c", "cores": 2},
            "summary": {
                "requests_sent": requests, "requests_completed": requests, "errors": 0,
                "unfinished": 0, "bytes_received": requests * 5000, "bytes_sent": requests * 100,
                "connections_opened": 8, "duration_s": 2.0, "rate_target": null,
                "rate_achieved": rate, "below_target": false,
                "latency_corrected": p, "latency_less_own_lag": p, "latency_uncorrected": p,
                "phases": Phases::default(), "errors_by_kind": {}, "max_send_lag_us": 0
            },
            "time_series": [],
            "histograms": {
                "corrected": encode_histogram(&h), "less_own_lag": encode_histogram(&h),
                "uncorrected": encode_histogram(&h),
                "connect": encode_histogram(&new_histogram()),
                "tls": encode_histogram(&new_histogram()), "ttfb": encode_histogram(&h)
            },
            "cpu": {"user_s": 0.1, "system_s": 0.2, "us_per_request": 10.0},
            "fell_behind": false
        }))
        .expect("fixture report matches the loadgen schema");
        let proxy = if profile == Profile::Bridge && path != ClientPath::ExternalV4 {
            8.0
        } else {
            0.0
        };
        let mut cpu = CpuFigures {
            server_s: server_us * requests as f64 / 1e6,
            docker_proxy_s: proxy * requests as f64 / 1e6,
            loadgen_s: 0.3,
            softirq_s: 0.05,
            requests,
            ..CpuFigures::default()
        };
        cpu.finish(2.0);
        let expected = match profile {
            Profile::Bridge => path.expected_bridge_hop(),
            _ => Hop::None,
        };
        CellRecord {
            schema_version: CELL_SCHEMA_VERSION,
            key: CellKey {
                profile,
                path,
                workload,
                load,
                repeat,
            },
            status: "ok".into(),
            reason: None,
            offered_rate: match load {
                LoadPoint::Max => None,
                LoadPoint::Fraction { .. } => Some(rate),
            },
            report: Some(report),
            cpu: Some(cpu),
            hop: Some(HopEvidence {
                docker_proxy_cpu_s: 0.0,
                dnat_packets: Some(0),
                observed: expected,
                expected,
            }),
            generator_limited: vec![],
            disturbed: vec![],
            bandwidth: None,
            server_cpus: 0.5,
            server_mem_limit_bytes: None,
            vps: None,
            machine: Machine {
                host: "fixture".into(),
                cpu_model: "c".into(),
                cores: 2,
                kernel: "k".into(),
                docker: "d".into(),
                compose: "c".into(),
                memory_mib: 1,
            },
            finished_at: "2026-01-01T00:00:02Z".into(),
        }
    }

    /// A small run: 2 repeats, every profile, two paths, one workload at max
    /// and at 50%; bridge at 60% of host on loopback.
    pub fn small_run() -> Vec<CellRecord> {
        let mut cells = Vec::new();
        for repeat in 0..2 {
            for profile in Profile::ALL {
                for path in [ClientPath::Loopback, ClientPath::ExternalV4] {
                    let factor = match (profile, path) {
                        (Profile::Bridge, ClientPath::Loopback) => 0.6,
                        (Profile::Host, _) => 0.95,
                        _ => 1.0,
                    };
                    let rate = 10_000.0 * factor + repeat as f64 * 100.0;
                    let w = Workload::HttpsKeepalive;
                    cells.push(cell(profile, path, w, LoadPoint::Max, repeat, rate, 40.0));
                    let half = LoadPoint::Fraction { fraction: 0.5 };
                    cells.push(cell(profile, path, w, half, repeat, 5_000.0, 40.0));
                }
            }
        }
        cells
    }
}
