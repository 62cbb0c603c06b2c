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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::assemble::{RunMeta, Totals};
    use crate::record::{ErrorKind, Recorder, Sample};
    use crate::report::{CpuUsage, Environment, RunConfig};

    fn meta() -> RunMeta {
        RunMeta {
            config: RunConfig {
                targets: vec![],
                mode: "open".into(),
                connections: 1,
                streams: 1,
                threads: 1,
                duration_s: 3.0,
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
                cores: 1,
            },
            started_at: "2026-01-01T00:00:00Z".into(),
            duration_s: 3.0,
            rate_target: Some(100.0),
            cpu_s: (0.0, 0.0),
        }
    }

    /// Records pseudo-random samples `seeds` into `rec`.
    fn record(rec: &mut Recorder, t0: Instant, seeds: std::ops::Range<u64>) {
        for i in seeds {
            let at = t0 + Duration::from_millis(i * 7 % 2900);
            let lat = Duration::from_micros(50 + (i * 7919) % 40_000);
            let s = Sample {
                intended: at,
                sent: at + lat / 3,
                own_lag: Duration::ZERO,
                first_byte: at + lat / 2,
                done: at + lat,
                bytes_received: 100,
                bytes_sent: 40,
            };
            rec.sent += 1;
            if i % 97 == 0 {
                rec.record_error(ErrorKind::Reset, at);
            } else {
                rec.record_ok(&s);
            }
            if i % 50 == 0 {
                rec.record_connect(lat / 10, Some(lat / 5));
            }
        }
        rec.finish();
    }

    fn report_of(recs: &[&Recorder]) -> Report {
        let mut t = Totals::default();
        for r in recs {
            t.add_recorder(r).unwrap();
        }
        t.into_report(meta())
    }

    #[test]
    fn merge_of_two_runs_equals_one_run_over_both_sample_sets() {
        let t0 = Instant::now();
        let (mut a, mut b, mut both) = (Recorder::new(t0), Recorder::new(t0), Recorder::new(t0));
        record(&mut a, t0, 0..3000);
        record(&mut b, t0, 3000..5000);
        record(&mut both, t0, 0..3000);
        record(&mut both, t0, 3000..5000);

        let reports = [
            ("a".to_string(), report_of(&[&a])),
            ("b".to_string(), report_of(&[&b])),
        ];
        let merged = merge(&reports).unwrap();
        let one = report_of(&[&both]);

        assert_eq!(
            merged.summary.latency_corrected,
            one.summary.latency_corrected
        );
        assert_eq!(
            merged.summary.latency_uncorrected,
            one.summary.latency_uncorrected
        );
        assert_eq!(merged.summary.phases, one.summary.phases);
        assert_eq!(merged.summary.errors_by_kind, one.summary.errors_by_kind);
        assert_eq!(merged.histograms, one.histograms);
        assert_eq!(merged.time_series, one.time_series);
        assert_eq!(
            (
                merged.summary.requests_sent,
                merged.summary.requests_completed
            ),
            (one.summary.requests_sent, one.summary.requests_completed)
        );
        assert_eq!(merged.summary.rate_target, Some(200.0));
        assert_eq!(merged.merged_from.len(), 2);
        assert_eq!(
            merged.cpu,
            CpuUsage {
                user_s: 0.0,
                system_s: 0.0,
                us_per_request: 0.0,
                busiest_worker_share: 0.0,
            }
        );
    }
}
