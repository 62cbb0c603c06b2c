//! `loadgen merge`: reports of runs taken at the same time (one per client
//! machine) combined into one, histograms and time series added exactly.

use std::path::PathBuf;

use crate::assemble::{RunMeta, Totals};
use crate::report::{MergedSource, Report, ReportError};

/// Reads and merges reports; the result's configuration is the first's
/// with connections and rate summed, its duration the longest.
pub fn merge_files(paths: &[PathBuf]) -> Result<Report, ReportError> {
    let reports = paths
        .iter()
        .map(|p| Report::from_json_file(p).map(|r| (p.display().to_string(), r)))
        .collect::<Result<Vec<_>, _>>()?;
    merge(&reports)
}

/// Merges reports, each named by where it came from.
///
/// # Panics
///
/// When `reports` is empty.
pub fn merge(reports: &[(String, Report)]) -> Result<Report, ReportError> {
    let first = &reports.first().expect("at least one report").1;
    let mut totals = Totals::default();
    let mut config = first.config.clone();
    config.connections = 0;
    let mut rate_target = Some(0.0);
    let (mut duration_s, mut user_s, mut system_s) = (0f64, 0f64, 0f64);
    let mut started_at = first.started_at.clone();
    let mut merged_from = Vec::new();
    for (name, r) in reports {
        totals.add_report(r)?;
        config.connections += r.config.connections;
        rate_target = rate_target.zip(r.summary.rate_target).map(|(a, b)| a + b);
        duration_s = duration_s.max(r.summary.duration_s);
        user_s += r.cpu.user_s;
        system_s += r.cpu.system_s;
        started_at = started_at.min(r.started_at.clone());
        merged_from.push(MergedSource {
            file: name.clone(),
            host: r.environment.host.clone(),
            requests_completed: r.summary.requests_completed,
        });
    }
    config.rate = rate_target;
    let meta = RunMeta {
        config,
        environment: first.environment.clone(),
        started_at,
        duration_s,
        rate_target,
        cpu_s: (user_s, system_s),
    };
    let mut report = totals.into_report(meta);
    report.fell_behind |= reports.iter().any(|(_, r)| r.fell_behind);
    report.merged_from = merged_from;
    Ok(report)
}
