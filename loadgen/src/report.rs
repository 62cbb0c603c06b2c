//! The versioned JSON report of a run (serde types), its histogram
//! encoding (HdrHistogram V2, base64) and reading it back from a file.
//!
//! The schema is documented field by field here and in `loadgen/SCHEMA.md`.
//! Compatibility rule: within one `schema_version`, fields are only ever
//! added, never renamed or removed; readers ignore fields they do not know.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer as _, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The schema version this build writes. Bumped only on an incompatible
/// change (a rename or a removal), never for an added field.
pub const SCHEMA_VERSION: u32 = 1;

/// Lowest value every latency histogram tracks: 1 µs.
pub const HIST_LOW_US: u64 = 1;
/// Highest value every latency histogram tracks: 60 s, in µs.
pub const HIST_HIGH_US: u64 = 60_000_000;
/// Significant decimal digits every latency histogram keeps.
pub const HIST_SIGFIG: u8 = 3;

/// What can go wrong while reading, writing or decoding a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The report file could not be read or written.
    #[error("cannot {action} report {path}: {source}")]
    Io {
        /// "read" or "write".
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not JSON of this schema.
    #[error("{path} is not a loadgen JSON report: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// What serde did not accept.
        source: serde_json::Error,
    },
    /// The report was written by an incompatible schema version.
    #[error(
        "{path} has schema_version {found}, this loadgen reads {SCHEMA_VERSION}; \
         re-run it with this loadgen or use a matching build"
    )]
    Version {
        /// The file.
        path: PathBuf,
        /// The version found in the file.
        found: u32,
    },
    /// A histogram field is not valid base64 HdrHistogram V2.
    #[error("histogram {name} is not base64 HdrHistogram V2: {detail}")]
    Histogram {
        /// Which histogram (for example `corrected`).
        name: String,
        /// What failed.
        detail: String,
    },
}

/// One run (or a merge of simultaneous runs, or a sweep) as saved with
/// `--json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Always [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The generator and its version, for example `hopless-loadgen 0.1.0`.
    pub tool: String,
    /// Wall-clock start of the measured part (after warm-up), RFC 3339 UTC.
    pub started_at: String,
    /// What the run was asked to do.
    pub config: RunConfig,
    /// The machine the generator ran on.
    pub environment: Environment,
    /// Totals, rates and latency percentiles of the measured part.
    pub summary: Summary,
    /// One row per second of the measured part, for charts.
    pub time_series: Vec<SecondSample>,
    /// The full histograms, lossless, for merging and re-analysis.
    pub histograms: Histograms,
    /// The generator's own CPU time over the measured part.
    pub cpu: CpuUsage,
    /// The generator may have limited the run: a worker thread was on a
    /// CPU for over 90% of the window (`cpu.busiest_worker_share`), or, in
    /// open loop, more than 1% (and more than 5) of the requests were sent
    /// over 2 ms later than their connection could have sent them (due
    /// and the connection free).
    pub fell_behind: bool,
    /// The steps of `--sweep`; absent for a single run. With a sweep the
    /// rest of the report describes the highest passing step (or the first
    /// step when none passed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<Sweep>,
    /// The files combined by `loadgen merge`; empty for a single run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub merged_from: Vec<MergedSource>,
}

/// The run's configuration as resolved from the command line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunConfig {
    /// The target URLs with their weights (weight 1 each without `--mix`).
    pub targets: Vec<Target>,
    /// `open` (a fixed rate, `-R`) or `closed` (as fast as replies come).
    pub mode: String,
    /// Concurrent connections (`-c`).
    pub connections: u32,
    /// Concurrent requests per HTTP/2 connection (`--streams`; 1 for
    /// HTTP/1.1). Added in v1; absent means 1.
    #[serde(default = "one")]
    pub streams: u32,
    /// Worker threads, each a current-thread runtime (`-t`).
    pub threads: u32,
    /// Measured duration asked for, in seconds (`-d`).
    pub duration_s: f64,
    /// Warm-up before measuring, in seconds (`--warmup`); not in any total.
    pub warmup_s: f64,
    /// Target rate over all connections, requests per second (`-R`).
    pub rate: Option<f64>,
    /// HTTP/2 (`--http2`) instead of HTTP/1.1.
    pub http2: bool,
    /// A new TCP (and TLS) connection per request (`--new-connection`).
    pub new_connection: bool,
    /// Per-request timeout in milliseconds (`--timeout`).
    pub timeout_ms: u64,
    /// Extra request headers as given (`-H "Name: value"`).
    pub headers: Vec<String>,
    /// Address every connection goes to, whatever the URL host (`--connect-to`).
    pub connect_to: Option<String>,
    /// Source address of every connection (`--bind`).
    pub bind: Option<String>,
    /// CA file trusted for HTTPS (`--cacert`).
    pub cacert: Option<String>,
    /// Certificate verification turned off (`--insecure`).
    pub insecure: bool,
    /// The `--mix` file the targets came from.
    pub mix_file: Option<String>,
    /// The p99 objective of `--sweep`, in µs (`--slo-p99`).
    pub slo_p99_us: Option<u64>,
}

fn one() -> u32 {
    1
}

/// One weighted target URL.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// Relative weight (share of requests = weight / sum of weights).
    pub weight: u32,
    /// The URL.
    pub url: String,
}

/// Where the generator ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    /// Host name (`uname -n`).
    pub host: String,
    /// Kernel release (`uname -r`).
    pub kernel: String,
    /// CPU model from /proc/cpuinfo, or "unknown".
    pub cpu_model: String,
    /// Cores available to the generator (`available_parallelism`).
    pub cores: u32,
}

/// Totals of the measured part. Invariant:
/// `requests_sent == requests_completed + errors + unfinished`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Requests due in the measured window (open loop: every scheduled
    /// request, sent late or not; closed loop: every request started).
    pub requests_sent: u64,
    /// Requests answered with a 2xx/3xx status in full.
    pub requests_completed: u64,
    /// Requests that failed (see `errors_by_kind`), non-2xx/3xx included.
    pub errors: u64,
    /// Requests still in flight (or never sent) at the deadline.
    pub unfinished: u64,
    /// Bytes read from the server (headers and bodies, before TLS framing
    /// is removed for HTTP/1.1: the plaintext HTTP bytes).
    pub bytes_received: u64,
    /// HTTP bytes written to the server.
    pub bytes_sent: u64,
    /// TCP connections opened in the measured window.
    pub connections_opened: u64,
    /// Length of the measured window, seconds (wall clock).
    pub duration_s: f64,
    /// Target rate, requests per second (open loop only).
    pub rate_target: Option<f64>,
    /// Completed requests per second over `duration_s`.
    pub rate_achieved: f64,
    /// Open loop: requests sent (on time or not) per second is under 99%
    /// of the target, or completed per second is. Always false closed loop.
    pub below_target: bool,
    /// Latency from the intended start (coordinated-omission corrected),
    /// µs. Closed loop: equals `latency_uncorrected`.
    pub latency_corrected: Percentiles,
    /// The corrected latency less the generator's own lag (how much later
    /// than its due time and its connection's previous response a request
    /// was sent), µs: the server's response time plus the wait for a
    /// connection it kept busy, without the generator's scheduling delays
    /// (an idle VM's CPU waking late). Closed loop: equals
    /// `latency_uncorrected`.
    pub latency_less_own_lag: Percentiles,
    /// Latency from the actual start of the request (its connect
    /// included when it needed a new connection), µs.
    pub latency_uncorrected: Percentiles,
    /// Phases: connect, TLS handshake, time to first byte.
    pub phases: Phases,
    /// Errors counted by kind: `refused`, `reset`, `closed`, `timeout`,
    /// `tls`, `connect`, `protocol`, `io`, `status_NNN`.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Largest lag between a request's intended and actual send, µs (a
    /// slow reply delays the next send on its connection, so this grows
    /// with server stalls too; the runtime's timers add up to ~1 ms).
    pub max_send_lag_us: u64,
    /// Requests sent over 2 ms later than their connection could have
    /// sent them: the generator's own lateness (see `fell_behind`).
    #[serde(default)]
    pub late_sends: u64,
}

/// Latency percentiles of one histogram, all in µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    /// Samples in the histogram.
    pub count: u64,
    /// Smallest sample.
    pub min_us: u64,
    /// Mean.
    pub mean_us: f64,
    /// Standard deviation.
    pub stdev_us: f64,
    /// 50th percentile.
    pub p50_us: u64,
    /// 90th percentile.
    pub p90_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// 99.9th percentile.
    pub p99_9_us: u64,
    /// 99.99th percentile.
    pub p99_99_us: u64,
    /// Largest sample.
    pub max_us: u64,
}

impl Percentiles {
    /// Reads the percentiles off a histogram of µs values.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Percentiles {
            count: h.len(),
            min_us: h.min(),
            mean_us: h.mean(),
            stdev_us: h.stdev(),
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p99_9_us: h.value_at_quantile(0.999),
            p99_99_us: h.value_at_quantile(0.9999),
            max_us: h.max(),
        }
    }
}

/// Phase latencies; a phase absent from the run (no TLS on http://, no
/// connect after the first with keep-alive) has `count == 0`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Phases {
    /// TCP connect, µs.
    pub connect: Percentiles,
    /// TLS handshake after connect, µs.
    pub tls: Percentiles,
    /// Time to first response byte from the actual send, µs.
    pub ttfb: Percentiles,
}

/// One second of the measured part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecondSample {
    /// Seconds since the start of the measured part (0 = first second).
    pub second: u32,
    /// Requests completed in this second.
    pub completed: u64,
    /// Errors in this second.
    pub errors: u64,
    /// Bytes received in this second.
    pub bytes_received: u64,
    /// Median corrected latency of the requests completed in it, µs.
    pub p50_us: u64,
    /// 99th percentile corrected latency, µs.
    pub p99_us: u64,
    /// Max corrected latency, µs.
    pub max_us: u64,
    /// The second's corrected-latency histogram (base64 V2), so a merge
    /// can recompute the percentiles exactly.
    pub histogram: String,
}

/// The full histograms of the measured part, each base64 HdrHistogram V2
/// (uncompressed, 1 µs .. 60 s, 3 significant digits).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histograms {
    /// Latency from the intended start, µs.
    pub corrected: String,
    /// Latency from the intended start less the generator's own lag, µs.
    pub less_own_lag: String,
    /// Latency from the actual send, µs.
    pub uncorrected: String,
    /// TCP connect, µs.
    pub connect: String,
    /// TLS handshake, µs.
    pub tls: String,
    /// Time to first byte, µs.
    pub ttfb: String,
}

/// The generator's own CPU time, from getrusage(RUSAGE_SELF) taken at the
/// start and the end of the measured part.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuUsage {
    /// User CPU seconds.
    pub user_s: f64,
    /// System CPU seconds.
    pub system_s: f64,
    /// (user + system) / finished requests (completed + errors), µs.
    pub us_per_request: f64,
    /// Share of the measured window the busiest worker thread spent on a
    /// CPU (user + system, getrusage RUSAGE_THREAD); near 1 the generator
    /// itself was saturated.
    #[serde(default)]
    pub busiest_worker_share: f64,
}

/// The result of `--sweep`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    /// The p99 objective, µs (corrected latency).
    pub slo_p99_us: u64,
    /// Every step in the order run.
    pub steps: Vec<SweepStep>,
    /// Highest target rate whose step passed, requests per second.
    pub best_rate: Option<f64>,
}

/// One step of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepStep {
    /// Target rate, requests per second.
    pub rate_target: f64,
    /// Completed per second.
    pub rate_achieved: f64,
    /// Corrected p99, µs.
    pub p99_corrected_us: u64,
    /// Uncorrected p99, µs.
    pub p99_uncorrected_us: u64,
    /// Errors in the step.
    pub errors: u64,
    /// p99 under the SLO, no errors, and not below target.
    pub passed: bool,
}

/// One input of `loadgen merge`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedSource {
    /// The file it was read from.
    pub file: String,
    /// The host it was measured on.
    pub host: String,
    /// Its completed requests.
    pub requests_completed: u64,
}

impl Report {
    /// Reads a report from a JSON file, refusing other schema versions.
    pub fn from_json_file(path: &Path) -> Result<Self, ReportError> {
        let text = std::fs::read_to_string(path).map_err(|source| ReportError::Io {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_json_str(&text, path)
    }

    /// Parses a report from JSON text; `path` only names it in errors.
    pub fn from_json_str(text: &str, path: &Path) -> Result<Self, ReportError> {
        #[derive(Deserialize)]
        struct VersionOnly {
            schema_version: u32,
        }
        let json_err = |source| ReportError::Json {
            path: path.to_path_buf(),
            source,
        };
        let v: VersionOnly = serde_json::from_str(text).map_err(json_err)?;
        if v.schema_version != SCHEMA_VERSION {
            return Err(ReportError::Version {
                path: path.to_path_buf(),
                found: v.schema_version,
            });
        }
        serde_json::from_str(text).map_err(json_err)
    }

    /// The report as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report always serializes")
    }

    /// Writes the report as JSON to `path`.
    pub fn write_json_file(&self, path: &Path) -> Result<(), ReportError> {
        let mut text = self.to_json();
        text.push('\n');
        std::fs::write(path, text).map_err(|source| ReportError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        })
    }
}

/// A new empty latency histogram with the project's bounds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(HIST_LOW_US, HIST_HIGH_US, HIST_SIGFIG)
        .expect("constant bounds are valid")
}

/// Encodes a histogram as base64 HdrHistogram V2 (uncompressed).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    let mut buf = Vec::new();
    V2Serializer::new()
        .serialize(h, &mut buf)
        .expect("writing into a Vec cannot fail");
    base64::engine::general_purpose::STANDARD.encode(buf)
}

/// Decodes a base64 HdrHistogram V2 (plain or deflate); `name` only names
/// it in errors.
pub fn decode_histogram(name: &str, b64: &str) -> Result<Histogram<u64>, ReportError> {
    let err = |detail: String| ReportError::Histogram {
        name: name.to_string(),
        detail,
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|e| err(e.to_string()))?;
    let h: Histogram<u64> = Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| err(format!("{e:?}")))?;
    // Re-home into the standard bounds so histograms from any source add.
    let mut out = new_histogram();
    out.add(&h).map_err(|e| err(format!("{e:?}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_report() -> Report {
        let mut h = new_histogram();
        for v in [10, 200, 3_000, 45_000] {
            h.record(v).unwrap();
        }
        let p = Percentiles::of(&h);
        Report {
            schema_version: SCHEMA_VERSION,
            tool: "hopless-loadgen test".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            config: RunConfig {
                targets: vec![Target {
                    weight: 1,
                    url: "http://127.0.0.1:1/".into(),
                }],
                mode: "open".into(),
                connections: 2,
                streams: 1,
                threads: 1,
                duration_s: 1.0,
                warmup_s: 0.0,
                rate: Some(100.0),
                http2: false,
                new_connection: false,
                timeout_ms: 1000,
                headers: vec![],
                connect_to: None,
                bind: None,
                cacert: None,
                insecure: false,
                mix_file: None,
                slo_p99_us: None,
            },
            environment: Environment {
                host: "h".into(),
                kernel: "k".into(),
                cpu_model: "c".into(),
                cores: 2,
            },
            summary: Summary {
                requests_sent: 5,
                requests_completed: 4,
                errors: 1,
                unfinished: 0,
                bytes_received: 10,
                bytes_sent: 10,
                connections_opened: 2,
                duration_s: 1.0,
                rate_target: Some(100.0),
                rate_achieved: 4.0,
                below_target: true,
                latency_corrected: p.clone(),
                latency_less_own_lag: p.clone(),
                latency_uncorrected: p.clone(),
                phases: Phases::default(),
                errors_by_kind: BTreeMap::from([("refused".to_string(), 1)]),
                max_send_lag_us: 0,
                late_sends: 0,
            },
            time_series: vec![],
            histograms: Histograms {
                corrected: encode_histogram(&h),
                less_own_lag: encode_histogram(&h),
                uncorrected: encode_histogram(&h),
                connect: encode_histogram(&new_histogram()),
                tls: encode_histogram(&new_histogram()),
                ttfb: encode_histogram(&h),
            },
            cpu: CpuUsage::default(),
            fell_behind: false,
            sweep: None,
            merged_from: vec![],
        }
    }

    #[test]
    fn report_survives_a_json_round_trip() {
        let r = sample_report();
        let back = Report::from_json_str(&r.to_json(), Path::new("x.json")).unwrap();
        assert_eq!(r, back);
    }

    #[test]
    fn histogram_survives_base64_v2_round_trip() {
        let r = sample_report();
        let h = decode_histogram("corrected", &r.histograms.corrected).unwrap();
        assert_eq!(Percentiles::of(&h), r.summary.latency_corrected);
    }

    #[test]
    fn other_schema_version_is_refused_with_its_number() {
        let text = r#"{"schema_version": 99}"#;
        let err = Report::from_json_str(text, Path::new("old.json")).unwrap_err();
        assert!(err.to_string().contains("schema_version 99"), "{err}");
    }
}
