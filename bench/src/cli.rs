//! The command line: `bench [OPTIONS]` runs the comparison, `bench report
//! [DIR]` renders a results directory again.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// Measure what Docker's network path costs a small blog: every profile
/// (bare, host, bridge) × path (loopback, external-v4, external-v6) ×
/// workload, with CPU per request and the hop each cell took.
#[derive(Debug, Parser)]
#[command(name = "bench", version)]
pub struct Args {
    /// `report [DIR]`: render results again; none: run the bench.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Run the reduced matrix (about two minutes) instead of the standard one.
    #[arg(long)]
    pub quick: bool,
    /// Where run directories go (`<out>/<date>-<host>/`).
    #[arg(long, global = true, default_value = "results")]
    pub out: PathBuf,
    /// Repeats of the whole matrix (default: 3 standard, 1 quick).
    #[arg(long)]
    pub repeats: Option<u32>,
    /// Measured seconds of every cell, e.g. `5` or `5s` (default: plan's).
    #[arg(long, value_parser = parse_seconds)]
    pub duration: Option<f64>,
    /// HTTP port of every profile.
    #[arg(long, default_value_t = 80)]
    pub http_port: u16,
    /// HTTPS port of every profile.
    #[arg(long, default_value_t = 443)]
    pub https_port: u16,
    /// Emulate a small VPS from the presets file (e.g. t3-nano, t4g-nano,
    /// t3-micro, lightsail-512mb): CPU, memory and a bandwidth cap.
    #[arg(long)]
    pub vps: Option<String>,
    /// Presets file (default: the built-in bench/vps-presets.toml).
    #[arg(long)]
    pub vps_presets: Option<PathBuf>,
    /// CPU quota of the server side in cores, without `--vps`.
    #[arg(long, default_value_t = 0.5)]
    pub server_cpus: f64,
    /// Server worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: u32,
    /// The loadgen binary (default: next to this one, else built with cargo).
    #[arg(long)]
    pub loadgen: Option<PathBuf>,
    /// Only run these profiles (comma separated: bare,host,bridge).
    #[arg(long, value_delimiter = ',')]
    pub profiles: Vec<String>,
    /// Only run these paths (comma separated: loopback,external-v4,external-v6).
    #[arg(long, value_delimiter = ',')]
    pub paths: Vec<String>,
    /// Do not rewrite results/README.md.
    #[arg(long, global = true)]
    pub no_readme: bool,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render summary.json, charts, report.md and index.html again from a
    /// run directory (default: the latest under --out).
    Report {
        /// The run directory.
        dir: Option<PathBuf>,
    },
}

fn parse_seconds(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches('s');
    match t.parse::<f64>() {
        Ok(v) if v > 0.0 && v <= 600.0 => Ok(v),
        _ => Err(format!(
            "{s:?} is not a duration in seconds between 0 and 600 (e.g. 5 or 5s)"
        )),
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BENCH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("bench: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<ExitCode> {
    match &args.command {
        Some(Command::Report { dir }) => {
            let dir = match dir {
                Some(d) => d.clone(),
                None => crate::report::latest_run(&args.out).with_context(|| {
                    format!(
                        "no run directory under {} (run the bench first, or give DIR)",
                        args.out.display()
                    )
                })?,
            };
            let readme = (!args.no_readme).then(|| args.out.join("README.md"));
            let summary = crate::report::render(&dir, readme.as_deref())
                .with_context(|| format!("rendering {}", dir.display()))?;
            eprintln!(
                "bench: rendered {} ({} cells, {} failed): {}",
                dir.display(),
                summary.cells,
                summary.failed_cells,
                dir.join("index.html").display()
            );
            Ok(ExitCode::SUCCESS)
        }
        None => crate::run::run(&args),
    }
}
