//! The command line (wrk/wrk2/oha-like flags, the `merge` subcommand) and
//! its translation into a validated [`Config`].

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{check_header, parse_duration, parse_rate, Config, ConfigError, Load, Url};

/// Most connections one run may open at once.
pub const MAX_CONNECTIONS: u32 = 100_000;

/// `loadgen [OPTIONS] <URL>...` or `loadgen merge A.json B.json ...`.
///
/// Exit status: 0 when the run took place (a dead or failing target is
/// counted in the report's errors, not an exit status), 2 for a bad flag,
/// URL or input file, 1 when the run or its output failed otherwise.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "HTTP load generator: closed and open loop, coordinated-omission corrected latency, \
             HdrHistogram, versioned JSON",
    after_help = "Exit status: 0 when the run took place (errors from the target are counted in \
                  the report, not turned into a status), 2 for bad flags, URLs or files, 1 for \
                  other failures.",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    /// A subcommand instead of a run.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The run's options.
    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Combine reports of runs taken at the same time (from several client
    /// machines) into one, histograms merged exactly.
    Merge(MergeArgs),
}

/// `loadgen merge` arguments.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Reports written with --json.
    #[arg(required = true, value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Write the merged report here (`-` for stdout).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<String>,
    /// Print no human summary.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// The options of a run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Target URLs (http:// or https://), all on one origin; requests are
    /// spread over them evenly.
    #[arg(value_name = "URL")]
    pub urls: Vec<String>,
    /// Concurrent connections (each one request in flight at a time).
    #[arg(short = 'c', long, default_value_t = 10)]
    pub connections: u32,
    /// Measured duration: 10s, 500ms, 2m.
    #[arg(short = 'd', long, default_value = "10s")]
    pub duration: String,
    /// Open loop at this total rate (requests per second, e.g. 2000 or
    /// 2.5k); absent: closed loop, as fast as the connections go.
    #[arg(short = 'R', long)]
    pub rate: Option<String>,
    /// Extra request header "Name: value" (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// HTTP/2 (ALPN h2 over TLS, prior knowledge over http://).
    #[arg(long)]
    pub http2: bool,
    /// With --http2: concurrent requests (streams) per connection, so
    /// connections × streams requests are in flight.
    #[arg(long, default_value_t = 1, requires = "http2", value_name = "N")]
    pub streams: u32,
    /// A request not answered in full within this time is an error.
    #[arg(long, default_value = "2s")]
    pub timeout: String,
    /// Run this long before measuring (not in any total).
    #[arg(long, default_value = "0s")]
    pub warmup: String,
    /// Write the JSON report to FILE (`-`: stdout, the summary then goes
    /// to stderr).
    #[arg(long, value_name = "FILE|-")]
    pub json: Option<String>,
    /// A new TCP (and TLS) connection for every request.
    #[arg(long)]
    pub new_connection: bool,
    /// Connect to ADDR:PORT whatever the URL's host (Host and SNI kept).
    #[arg(long, value_name = "ADDR:PORT")]
    pub connect_to: Option<String>,
    /// Source address of every connection.
    #[arg(long, value_name = "IP")]
    pub bind: Option<String>,
    /// Trust this CA file (PEM) for https:// targets.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Accept any server certificate (test servers only).
    #[arg(long)]
    pub insecure: bool,
    /// Weighted URL mix: lines "WEIGHT URL", # comments.
    #[arg(long, value_name = "FILE")]
    pub mix: Option<PathBuf>,
    /// Find the highest open-loop rate whose corrected p99 stays under
    /// --slo-p99: doubling from -R (default 1000/s), then bisecting.
    #[arg(long, requires = "slo_p99")]
    pub sweep: bool,
    /// The p99 objective of --sweep, e.g. 20ms.
    #[arg(long, value_name = "DURATION")]
    pub slo_p99: Option<String>,
    /// Worker threads, each a single-threaded runtime (default: the cores
    /// this process may run on).
    #[arg(short = 't', long)]
    pub threads: Option<u32>,
    /// No progress bar and no human summary.
    #[arg(short = 'q', long)]
    pub quiet: bool,
}

impl RunArgs {
    /// Validates the options into a [`Config`] (reads the mix file,
    /// resolves the host).
    pub fn to_config(&self) -> Result<Config, ConfigError> {
        let mut targets = self
            .urls
            .iter()
            .map(|u| Url::parse(u).map(|u| (1, u)))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(mix) = &self.mix {
            targets.extend(crate::mix::read_mix(mix)?);
        }
        let (targets, addr) = Config::resolve_targets(targets, self.connect_to.as_deref())?;

        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return Err(ConfigError::Value {
                flag: "--connections",
                value: self.connections.to_string(),
                why: format!("expected 1 to {MAX_CONNECTIONS}"),
            });
        }
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get() as u32));
        if threads == 0 || threads > 1024 {
            return Err(ConfigError::Value {
                flag: "--threads",
                value: threads.to_string(),
                why: "expected 1 to 1024".into(),
            });
        }
        let duration = positive("--duration", &self.duration)?;
        let timeout = positive("--timeout", &self.timeout)?;
        let warmup = parse_duration("--warmup", &self.warmup)?;
        let load = match &self.rate {
            Some(r) => Load::Open {
                rate: parse_rate(r)?,
            },
            None if self.sweep => Load::Open { rate: 1000.0 },
            None => Load::Closed,
        };
        for h in &self.headers {
            check_header(h)?;
        }
        let bind = self
            .bind
            .as_deref()
            .map(|b| {
                b.parse::<IpAddr>().map_err(|_| ConfigError::Value {
                    flag: "--bind",
                    value: b.to_string(),
                    why: "expected an IP address, like 127.0.0.2 or ::1".into(),
                })
            })
            .transpose()?;
        if self.streams == 0 || self.streams > 1000 {
            return Err(ConfigError::Value {
                flag: "--streams",
                value: self.streams.to_string(),
                why: "expected 1 to 1000".into(),
            });
        }
        if self.streams > 1 && self.new_connection {
            return Err(ConfigError::Value {
                flag: "--streams",
                value: self.streams.to_string(),
                why: "a new connection per request leaves nothing to share; drop one of --streams and --new-connection".into(),
            });
        }
        if let Some(ip) = bind {
            if ip.is_ipv4() != addr.is_ipv4() {
                return Err(ConfigError::Value {
                    flag: "--bind",
                    value: ip.to_string(),
                    why: format!("the target {addr} is another address family; bind an address of its family"),
                });
            }
        }
        let slo_p99 = self
            .slo_p99
            .as_deref()
            .map(|s| positive("--slo-p99", s))
            .transpose()?;
        if self.cacert.is_some() && self.insecure {
            return Err(ConfigError::Value {
                flag: "--insecure",
                value: "with --cacert".into(),
                why: "give one: --cacert FILE to verify, or --insecure to not verify".into(),
            });
        }

        Ok(Config {
            targets,
            addr,
            load,
            connections: self.connections,
            streams: self.streams,
            threads,
            duration,
            warmup,
            timeout,
            headers: self.headers.clone(),
            http2: self.http2,
            new_connection: self.new_connection,
            bind,
            connect_to: self.connect_to.clone(),
            cacert: self.cacert.clone(),
            insecure: self.insecure,
            mix_file: self.mix.clone(),
            slo_p99,
        })
    }
}

fn positive(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let d = parse_duration(flag, value)?;
    if d.is_zero() {
        return Err(ConfigError::Value {
            flag,
            value: value.into(),
            why: "must be above 0".into(),
        });
    }
    Ok(d)
}
