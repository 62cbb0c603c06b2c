//! Totals of a run, summed exactly from worker recorders or from saved
//! reports (histograms added, counters summed), and turned into a
//! [`Report`]: the one place both a run and `loadgen merge` go through.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use crate::record::Recorder;
use crate::report::{
    decode_histogram, encode_histogram, new_histogram, Environment, Histograms, Percentiles,
    Phases, Report, ReportError, RunConfig, SecondSample, Summary, SCHEMA_VERSION,
};

/// Share of requests allowed to be sent late before a run is flagged
/// `fell_behind`.
pub const LATE_SHARE: f64 = 0.01;
/// Late sends that never flag a run, however short it is: a single
/// preemption on a busy machine is not a saturated generator.
pub const LATE_FLOOR: u64 = 5;
/// Share of the window a worker thread may spend on a CPU before the run
/// is flagged `fell_behind`.
pub const BUSY_SHARE: f64 = 0.9;

/// A run's (or several simultaneous runs') exact totals.
#[derive(Debug, Clone)]
pub struct Totals {
    /// Corrected latency, µs.
    pub corrected: Histogram<u64>,
    /// Corrected latency less the generator's own lag, µs.
    pub less_own_lag: Histogram<u64>,
    /// Uncorrected latency, µs.
    pub uncorrected: Histogram<u64>,
    /// Connect, µs.
    pub connect: Histogram<u64>,
    /// TLS handshake, µs.
    pub tls: Histogram<u64>,
    /// Time to first byte, µs.
    pub ttfb: Histogram<u64>,
    /// Requests sent (due, in open loop).
    pub sent: u64,
    /// Requests completed.
    pub completed: u64,
    /// Requests unfinished at the deadline.
    pub unfinished: u64,
    /// Errors by kind key.
    pub errors: BTreeMap<String, u64>,
    /// Bytes read.
    pub bytes_received: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Connections opened.
    pub connections_opened: u64,
    /// Largest send lag, µs.
    pub max_send_lag_us: u64,
    /// Late sends.
    pub late_sends: u64,
    /// CPU seconds of the busiest worker thread in the window.
    pub busiest_worker_s: f64,
    /// Per second: completed, errors, bytes received, corrected histogram.
    pub seconds: BTreeMap<u32, (u64, u64, u64, Histogram<u64>)>,
}

impl Default for Totals {
    fn default() -> Self {
        Totals {
            corrected: new_histogram(),
            less_own_lag: new_histogram(),
            uncorrected: new_histogram(),
            connect: new_histogram(),
            tls: new_histogram(),
            ttfb: new_histogram(),
            sent: 0,
            completed: 0,
            unfinished: 0,
            errors: BTreeMap::new(),
            bytes_received: 0,
            bytes_sent: 0,
            connections_opened: 0,
            max_send_lag_us: 0,
            late_sends: 0,
            busiest_worker_s: 0.0,
            seconds: BTreeMap::new(),
        }
    }
}

/// What a report says besides the totals.
#[derive(Debug, Clone)]
pub struct RunMeta {
    /// The configuration.
    pub config: RunConfig,
    /// The machine.
    pub environment: Environment,
    /// Start of the measured window, RFC 3339.
    pub started_at: String,
    /// Length of the measured window, s.
    pub duration_s: f64,
    /// Target rate, requests per second (open loop).
    pub rate_target: Option<f64>,
    /// CPU user and system seconds.
    pub cpu_s: (f64, f64),
}

impl Totals {
    /// Adds one worker's recorder.
    pub fn add_recorder(&mut self, r: &Recorder) -> Result<(), ReportError> {
        add(&mut self.corrected, &r.corrected);
        add(&mut self.less_own_lag, &r.less_own_lag);
        add(&mut self.uncorrected, &r.uncorrected);
        add(&mut self.connect, &r.connect);
        add(&mut self.tls, &r.tls);
        add(&mut self.ttfb, &r.ttfb);
        let errors = r.error_count();
        self.sent += r.sent;
        self.completed += r.completed;
        self.unfinished += r.sent.saturating_sub(r.completed + errors);
        for (kind, n) in &r.errors {
            *self.errors.entry(kind.key()).or_insert(0) += n;
        }
        self.bytes_received += r.bytes_received;
        self.bytes_sent += r.bytes_sent;
        self.connections_opened += r.connections_opened;
        self.max_send_lag_us = self.max_send_lag_us.max(r.max_send_lag_us);
        self.late_sends += r.late_sends;
        self.busiest_worker_s = self.busiest_worker_s.max(r.busy_s);
        for (second, s) in &r.seconds {
            let h = decode_histogram("second", &s.histogram)?;
            self.add_second(*second, s.completed, s.errors, s.bytes_received, &h);
        }
        Ok(())
    }

    /// Adds a saved report (its histograms decoded exactly).
    pub fn add_report(&mut self, r: &Report) -> Result<(), ReportError> {
        let h = &r.histograms;
        add(
            &mut self.corrected,
            &decode_histogram("corrected", &h.corrected)?,
        );
        add(
            &mut self.less_own_lag,
            &decode_histogram("less_own_lag", &h.less_own_lag)?,
        );
        add(
            &mut self.uncorrected,
            &decode_histogram("uncorrected", &h.uncorrected)?,
        );
        add(&mut self.connect, &decode_histogram("connect", &h.connect)?);
        add(&mut self.tls, &decode_histogram("tls", &h.tls)?);
        add(&mut self.ttfb, &decode_histogram("ttfb", &h.ttfb)?);
        let s = &r.summary;
        self.sent += s.requests_sent;
        self.completed += s.requests_completed;
        self.unfinished += s.unfinished;
        for (kind, n) in &s.errors_by_kind {
            *self.errors.entry(kind.clone()).or_insert(0) += n;
        }
        self.bytes_received += s.bytes_received;
        self.bytes_sent += s.bytes_sent;
        self.connections_opened += s.connections_opened;
        self.max_send_lag_us = self.max_send_lag_us.max(s.max_send_lag_us);
        self.late_sends += s.late_sends;
        let busiest = r.cpu.busiest_worker_share * s.duration_s;
        self.busiest_worker_s = self.busiest_worker_s.max(busiest);
        for row in &r.time_series {
            let h = decode_histogram(&format!("time_series[{}]", row.second), &row.histogram)?;
            self.add_second(
                row.second,
                row.completed,
                row.errors,
                row.bytes_received,
                &h,
            );
        }
        Ok(())
    }

    fn add_second(
        &mut self,
        second: u32,
        completed: u64,
        errors: u64,
        bytes: u64,
        h: &Histogram<u64>,
    ) {
        let slot = self
            .seconds
            .entry(second)
            .or_insert_with(|| (0, 0, 0, new_histogram()));
        slot.0 += completed;
        slot.1 += errors;
        slot.2 += bytes;
        add(&mut slot.3, h);
    }

    /// Total errors.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The report of these totals.
    pub fn into_report(self, meta: RunMeta) -> Report {
        let errors = self.error_count();
        let duration = meta.duration_s.max(1e-9);
        let rate_achieved = self.completed as f64 / duration;
        let below_target = meta.rate_target.is_some_and(|target| {
            let sent_rate = self.sent as f64 / duration;
            sent_rate < 0.99 * target || rate_achieved < 0.99 * target
        });
        let (user_s, system_s) = meta.cpu_s;
        let mut cpu = crate::env::cpu_usage(user_s, system_s, self.completed + errors);
        cpu.busiest_worker_share = self.busiest_worker_s / duration;
        let late = meta.rate_target.is_some()
            && self.late_sends > LATE_FLOOR
            && self.late_sends as f64 > LATE_SHARE * self.sent as f64;
        let fell_behind = late || cpu.busiest_worker_share > BUSY_SHARE;

        let seconds_in_window = duration.ceil() as u32;
        let last = self
            .seconds
            .keys()
            .next_back()
            .map_or(0, |s| s + 1)
            .max(seconds_in_window);
        let empty = new_histogram();
        let time_series = (0..last)
            .map(|second| {
                let (completed, errors, bytes, h) = self
                    .seconds
                    .get(&second)
                    .map_or((0, 0, 0, &empty), |(c, e, b, h)| (*c, *e, *b, h));
                SecondSample {
                    second,
                    completed,
                    errors,
                    bytes_received: bytes,
                    p50_us: h.value_at_quantile(0.5),
                    p99_us: h.value_at_quantile(0.99),
                    max_us: h.max(),
                    histogram: encode_histogram(h),
                }
            })
            .collect();

        Report {
            schema_version: SCHEMA_VERSION,
            tool: concat!("hopless-loadgen ", env!("CARGO_PKG_VERSION")).into(),
            started_at: meta.started_at,
            config: meta.config,
            environment: meta.environment,
            summary: Summary {
                requests_sent: self.sent,
                requests_completed: self.completed,
                errors,
                unfinished: self.unfinished,
                bytes_received: self.bytes_received,
                bytes_sent: self.bytes_sent,
                connections_opened: self.connections_opened,
                duration_s: meta.duration_s,
                rate_target: meta.rate_target,
                rate_achieved,
                below_target,
                latency_corrected: Percentiles::of(&self.corrected),
                latency_less_own_lag: Percentiles::of(&self.less_own_lag),
                latency_uncorrected: Percentiles::of(&self.uncorrected),
                phases: Phases {
                    connect: Percentiles::of(&self.connect),
                    tls: Percentiles::of(&self.tls),
                    ttfb: Percentiles::of(&self.ttfb),
                },
                errors_by_kind: self.errors,
                max_send_lag_us: self.max_send_lag_us,
                late_sends: self.late_sends,
            },
            time_series,
            histograms: Histograms {
                corrected: encode_histogram(&self.corrected),
                less_own_lag: encode_histogram(&self.less_own_lag),
                uncorrected: encode_histogram(&self.uncorrected),
                connect: encode_histogram(&self.connect),
                tls: encode_histogram(&self.tls),
                ttfb: encode_histogram(&self.ttfb),
            },
            cpu,
            fell_behind,
            sweep: None,
            merged_from: Vec::new(),
        }
    }
}

fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Both come from `new_histogram` (decoding re-homes), so bounds match.
    into.add(from)
        .expect("histograms share the project's bounds");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Environment, RunConfig};

    fn meta(rate: Option<f64>) -> RunMeta {
        RunMeta {
            config: RunConfig {
                targets: vec![],
                mode: "closed".into(),
                connections: 1,
                streams: 1,
                threads: 1,
                duration_s: 2.0,
                warmup_s: 0.0,
                rate,
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
            started_at: String::new(),
            duration_s: 2.0,
            rate_target: rate,
            cpu_s: (1.0, 0.5),
        }
    }

    #[test]
    fn a_worker_busy_most_of_the_window_flags_the_run() {
        let busy = Totals {
            busiest_worker_s: 1.9,
            ..Totals::default()
        };
        let r = busy.into_report(meta(None));
        assert!(r.fell_behind);
        assert!((r.cpu.busiest_worker_share - 0.95).abs() < 1e-9);
        let idle = Totals {
            busiest_worker_s: 0.6,
            ..Totals::default()
        };
        assert!(!idle.into_report(meta(None)).fell_behind);
    }

    #[test]
    fn late_sends_flag_an_open_loop_run_past_one_percent() {
        let late = Totals {
            sent: 1000,
            late_sends: 11,
            ..Totals::default()
        };
        assert!(late.into_report(meta(Some(500.0))).fell_behind);
        let few = Totals {
            sent: 1000,
            late_sends: 9,
            ..Totals::default()
        };
        assert!(!few.into_report(meta(Some(500.0))).fell_behind);
        let tiny_run = Totals {
            sent: 10,
            late_sends: 3,
            ..Totals::default()
        };
        assert!(!tiny_run.into_report(meta(Some(500.0))).fell_behind);
    }
}
