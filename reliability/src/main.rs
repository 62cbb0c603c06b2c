//! `reliability`: runs every scenario at full counts against real
//! processes (and containers) and writes `RELIABILITY.md` and
//! `reliability.json`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use reliability::outcome::Outcome;
use reliability::report::RunReport;
use reliability::scenario::{self, Scale};

/// Hostile clients, faults under load and a TLS scan against the blog
/// server, with figures.
#[derive(Debug, Parser)]
#[command(name = "reliability", version)]
struct Cli {
    /// Shorter timeouts and load windows (same counts).
    #[arg(long)]
    quick: bool,
    /// Where RELIABILITY.md and reliability.json go.
    #[arg(long, default_value = "results/reliability")]
    out: PathBuf,
    /// Run only the scenarios whose name contains this (repeatable); their
    /// outcomes replace the same scenarios' in an existing report.
    #[arg(long, value_name = "NAME")]
    only: Vec<String>,
    /// Skip the scenarios that need Docker.
    #[arg(long)]
    no_docker: bool,
}

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("reliability: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let scale = if cli.quick {
        Scale::quick()
    } else {
        Scale::full()
    };
    let started_at = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let mut outcomes = Vec::new();
    for s in scenario::all() {
        let wanted = cli.only.is_empty() || cli.only.iter().any(|o| s.name.contains(o.as_str()));
        if !wanted || (s.docker && cli.no_docker) {
            continue;
        }
        eprintln!("== {}", s.name);
        let outcome = (s.run)(&scale).unwrap_or_else(|e| {
            let mut o = Outcome::new(s.name, "(could not run)", 0);
            o.check("the scenario runs", false, e.to_string());
            o
        });
        eprint!("{outcome}");
        outcomes.push(outcome);
    }
    // A partial run (--only) updates the saved report in place.
    let previous = (!cli.only.is_empty())
        .then(|| RunReport::read(&cli.out).ok())
        .flatten();
    let report = match previous {
        Some(mut report) => {
            report.started_at = format!("{}, rerun in part {started_at}", report.started_at);
            if report.scale != scale.name {
                report.scale = format!("{}+{}", report.scale, scale.name);
            }
            report.replace(outcomes);
            report
        }
        None => RunReport {
            scale: scale.name.to_string(),
            started_at,
            machine: machine(),
            outcomes,
        },
    };
    report.write(&cli.out)?;
    eprintln!("wrote {}", cli.out.join("RELIABILITY.md").display());
    Ok(if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Kernel release, cores and load, for the report's header.
fn machine() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    format!(
        "Linux {}, {cores} cores, load average {} at the start (1, 5, 15 min; the machine is shared)",
        kernel.trim(),
        load.join(" ")
    )
}
