//! The `loadgen` binary: parses the command line, runs (or sweeps, or
//! merges), prints the human summary and writes the JSON report.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser as _;
use loadgen::cli::{Cli, Command};
use loadgen::report::Report;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("loadgen: error: {e:#}");
            let usage = e.downcast_ref::<loadgen::config::ConfigError>().is_some()
                || matches!(
                    e.downcast_ref::<loadgen::run::RunError>(),
                    Some(loadgen::run::RunError::Config(_))
                )
                || matches!(
                    e.downcast_ref::<loadgen::report::ReportError>(),
                    Some(r) if !matches!(r, loadgen::report::ReportError::Io { action: "write", .. })
                );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Merge(m)) = cli.command {
        let report = loadgen::merge::merge_files(&m.reports)?;
        output(&report, m.json.as_deref(), m.quiet)?;
        return Ok(ExitCode::SUCCESS);
    }

    let args = cli.run;
    let config = args.to_config()?;
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let report = if args.sweep {
        let quiet = args.quiet;
        loadgen::sweep::sweep(&config, |s| {
            if !quiet {
                eprintln!(
                    "sweep step: {:.0} req/s target, {:.1} achieved, corrected p99 {}, {} errors: {}",
                    s.rate_target,
                    s.rate_achieved,
                    loadgen::human::us(s.p99_corrected_us),
                    s.errors,
                    if s.passed { "pass" } else { "fail" }
                );
            }
        })?
    } else {
        loadgen::run::run(&config, progress)?
    };
    output(&report, args.json.as_deref(), args.quiet)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the JSON where asked and the summary to stdout (stderr when the
/// JSON goes to stdout).
fn output(report: &Report, json: Option<&str>, quiet: bool) -> anyhow::Result<()> {
    match json {
        Some("-") => {
            println!("{}", report.to_json());
            if !quiet {
                eprint!("{}", loadgen::human::summary(report));
            }
        }
        Some(path) => {
            report
                .write_json_file(std::path::Path::new(path))
                .with_context(|| "writing the --json report")?;
            if !quiet {
                print!("{}", loadgen::human::summary(report));
            }
        }
        None if !quiet => print!("{}", loadgen::human::summary(report)),
        None => {}
    }
    Ok(())
}
