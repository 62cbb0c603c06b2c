//! `--sweep`: the highest open-loop rate whose corrected p99 stays under
//! the SLO, found by doubling the rate until a step fails, then bisecting
//! between the last pass and the first failure.

use crate::config::{Config, Load};
use crate::report::{Report, Sweep, SweepStep};
use crate::run::{run, RunError};

/// Most doubling steps before giving up on finding a failing rate.
pub const MAX_DOUBLINGS: u32 = 8;
/// Bisection steps after the first failure.
pub const BISECTIONS: u32 = 3;

/// Runs the sweep; `on_step` sees each step as it ends. Returns the report
/// of the highest passing step (the first step when none passed) with the
/// `sweep` field filled in.
///
/// # Panics
///
/// When the configuration has no `slo_p99` (the CLI requires it).
pub fn sweep(config: &Config, mut on_step: impl FnMut(&SweepStep)) -> Result<Report, RunError> {
    let slo_us = config
        .slo_p99
        .expect("--sweep requires --slo-p99")
        .as_micros() as u64;
    let start = match config.load {
        Load::Open { rate } => rate,
        Load::Closed => 1000.0,
    };
    let mut steps = Vec::new();
    let mut best: Option<(f64, Report)> = None;
    let mut first: Option<Report> = None;
    let mut step = |rate: f64, steps: &mut Vec<SweepStep>| -> Result<bool, RunError> {
        let mut c = config.clone();
        c.load = Load::Open { rate };
        let report = run(&c, false)?;
        let s = &report.summary;
        let passed = s.latency_corrected.p99_us <= slo_us && s.errors == 0 && !s.below_target;
        let row = SweepStep {
            rate_target: rate,
            rate_achieved: s.rate_achieved,
            p99_corrected_us: s.latency_corrected.p99_us,
            p99_uncorrected_us: s.latency_uncorrected.p99_us,
            errors: s.errors,
            passed,
        };
        on_step(&row);
        steps.push(row);
        if passed && best.as_ref().is_none_or(|(b, _)| rate > *b) {
            best = Some((rate, report));
        } else if first.is_none() {
            first = Some(report);
        }
        Ok(passed)
    };

    let (mut low, mut high) = (0.0, start);
    for _ in 0..MAX_DOUBLINGS {
        if !step(high, &mut steps)? {
            break;
        }
        low = high;
        high *= 2.0;
    }
    if steps.last().is_some_and(|s| !s.passed) {
        for _ in 0..BISECTIONS {
            let mid = (low + high) / 2.0;
            if step(mid, &mut steps)? {
                low = mid;
            } else {
                high = mid;
            }
        }
    }

    let best_rate = best.as_ref().map(|(r, _)| *r);
    let mut report = match (best, first) {
        (Some((_, r)), _) | (None, Some(r)) => r,
        (None, None) => unreachable!("at least one step ran"),
    };
    report.sweep = Some(Sweep {
        slo_p99_us: slo_us,
        steps,
        best_rate,
    });
    Ok(report)
}
