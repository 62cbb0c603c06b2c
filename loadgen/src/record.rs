//! Per-worker recording: HdrHistograms (corrected, corrected less the
//! generator's own lag, uncorrected, connect, TLS, time to first byte),
//! counters, errors by kind, and the per-second series, all owned by one
//! thread so the hot path shares nothing.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::report::{encode_histogram, new_histogram};

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The connection was refused (nothing listening).
    Refused,
    /// The connection was reset or broke mid-request.
    Reset,
    /// The server closed the connection before answering.
    Closed,
    /// No complete response within `--timeout`.
    Timeout,
    /// The TLS handshake or record layer failed.
    Tls,
    /// Connecting failed another way (unreachable, bind failed, ...).
    Connect,
    /// The response could not be parsed.
    Protocol,
    /// Another I/O error.
    Io,
    /// A response outside 2xx and 3xx.
    Status(u16),
}

impl ErrorKind {
    /// The key used in `errors_by_kind`.
    pub fn key(self) -> String {
        match self {
            ErrorKind::Refused => "refused".into(),
            ErrorKind::Reset => "reset".into(),
            ErrorKind::Closed => "closed".into(),
            ErrorKind::Timeout => "timeout".into(),
            ErrorKind::Tls => "tls".into(),
            ErrorKind::Connect => "connect".into(),
            ErrorKind::Protocol => "protocol".into(),
            ErrorKind::Io => "io".into(),
            ErrorKind::Status(s) => format!("status_{s}"),
        }
    }

    /// Classifies an I/O error from connecting or exchanging.
    pub fn of_io(e: &std::io::Error, connecting: bool) -> Self {
        use std::io::ErrorKind as K;
        match e.kind() {
            K::ConnectionRefused => ErrorKind::Refused,
            K::ConnectionReset | K::ConnectionAborted | K::BrokenPipe => ErrorKind::Reset,
            K::UnexpectedEof => ErrorKind::Closed,
            K::TimedOut => ErrorKind::Timeout,
            K::InvalidData if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
                ErrorKind::Tls
            }
            _ if connecting => ErrorKind::Connect,
            _ => ErrorKind::Io,
        }
    }
}

/// One finished request's timings, all measured on the monotonic clock.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When the request was due (open loop) or started (closed loop).
    pub intended: Instant,
    /// When its first byte was written.
    pub sent: Instant,
    /// How much later than it could have been the request was sent: after
    /// its due time and after its connection was free, the generator's own
    /// lateness (zero closed loop).
    pub own_lag: Duration,
    /// When the first response byte arrived.
    pub first_byte: Instant,
    /// When the response was complete.
    pub done: Instant,
    /// HTTP bytes read.
    pub bytes_received: u64,
    /// HTTP bytes written.
    pub bytes_sent: u64,
}

/// One second of one worker, kept compact: its histogram is encoded when
/// the second is over, so memory stays small however long the run.
#[derive(Debug, Clone, Default)]
pub struct SecondRecord {
    /// Completed requests.
    pub completed: u64,
    /// Errors.
    pub errors: u64,
    /// Bytes received.
    pub bytes_received: u64,
    /// The corrected-latency histogram, base64 V2 (empty until encoded).
    pub histogram: String,
}

/// A worker's recorder; everything a worker measured.
#[derive(Debug)]
pub struct Recorder {
    /// Start of the measured window.
    pub window_start: Instant,
    /// Latency from the intended start, µs.
    pub corrected: Histogram<u64>,
    /// Latency from the intended start less the generator's own lag, µs.
    pub less_own_lag: Histogram<u64>,
    /// Latency from the actual send, µs.
    pub uncorrected: Histogram<u64>,
    /// TCP connect, µs.
    pub connect: Histogram<u64>,
    /// TLS handshake, µs.
    pub tls: Histogram<u64>,
    /// Time to first byte, µs.
    pub ttfb: Histogram<u64>,
    /// Requests due (open loop) or started (closed loop) in the window.
    pub sent: u64,
    /// Requests answered 2xx/3xx.
    pub completed: u64,
    /// Errors by kind.
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Bytes read.
    pub bytes_received: u64,
    /// Bytes written.
    pub bytes_sent: u64,
    /// Connections opened in the window.
    pub connections_opened: u64,
    /// Largest intended-to-send lag, µs.
    pub max_send_lag_us: u64,
    /// Requests sent over [`LATE_SEND`] later than the connection could
    /// have sent them (the worker thread was busy).
    pub late_sends: u64,
    /// CPU seconds this worker's thread used in the measured window.
    pub busy_s: f64,
    /// Closed seconds of the series, by second index.
    pub seconds: BTreeMap<u32, SecondRecord>,
    current_second: u32,
    current: SecondRecord,
    current_hist: Histogram<u64>,
}

/// How much later a request was sent than it could have been: after its
/// due time `intended` and after `free_at`, when its connection's previous
/// response finished. A slow server makes `free_at` late and the send
/// waits for it, which is the server's doing (the coordinated omission the
/// corrected histogram puts back); whatever comes on top is the
/// generator's own lateness.
pub fn own_lag(intended: Instant, free_at: Instant, sent: Instant) -> Duration {
    sent.saturating_duration_since(intended.max(free_at))
}

/// Scheduling lag beyond which a send counts as late: 2 ms, twice the
/// 1 ms resolution of the runtime's timers.
pub const LATE_SEND: Duration = Duration::from_millis(2);

impl Recorder {
    /// An empty recorder for a window starting at `window_start`.
    pub fn new(window_start: Instant) -> Self {
        Recorder {
            window_start,
            corrected: new_histogram(),
            less_own_lag: new_histogram(),
            uncorrected: new_histogram(),
            connect: new_histogram(),
            tls: new_histogram(),
            ttfb: new_histogram(),
            sent: 0,
            completed: 0,
            errors: BTreeMap::new(),
            bytes_received: 0,
            bytes_sent: 0,
            connections_opened: 0,
            max_send_lag_us: 0,
            late_sends: 0,
            busy_s: 0.0,
            seconds: BTreeMap::new(),
            current_second: 0,
            current: SecondRecord::default(),
            current_hist: new_histogram(),
        }
    }

    /// Records a complete 2xx/3xx response.
    pub fn record_ok(&mut self, s: &Sample) {
        self.roll_to(s.done);
        let corrected = micros(s.done - s.intended);
        self.corrected.saturating_record(corrected);
        self.less_own_lag
            .saturating_record(micros((s.done - s.intended).saturating_sub(s.own_lag)));
        self.uncorrected.saturating_record(micros(s.done - s.sent));
        self.ttfb.saturating_record(micros(s.first_byte - s.sent));
        self.current_hist.saturating_record(corrected);
        self.completed += 1;
        self.current.completed += 1;
        self.record_bytes(s.bytes_sent, s.bytes_received);
    }

    /// Records a failed request at time `at`.
    pub fn record_error(&mut self, kind: ErrorKind, at: Instant) {
        self.roll_to(at);
        *self.errors.entry(kind).or_insert(0) += 1;
        self.current.errors += 1;
    }

    /// Adds traffic of a request that did not complete successfully.
    pub fn record_bytes(&mut self, sent: u64, received: u64) {
        self.bytes_sent += sent;
        self.bytes_received += received;
        self.current.bytes_received += received;
    }

    /// Records how late a send was: `lag` from the intended start, and
    /// `own_lag` beyond the moment the connection was free to send.
    pub fn record_send_lag(&mut self, lag: Duration, own_lag: Duration) {
        self.max_send_lag_us = self.max_send_lag_us.max(micros(lag));
        if own_lag > LATE_SEND {
            self.late_sends += 1;
        }
    }

    /// Records a TCP connect (and TLS handshake, when `tls` is given).
    pub fn record_connect(&mut self, connect: Duration, tls: Option<Duration>) {
        self.connections_opened += 1;
        self.connect.saturating_record(micros(connect));
        if let Some(t) = tls {
            self.tls.saturating_record(micros(t));
        }
    }

    /// Total errors of all kinds.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Closes the current second; call once the run is over.
    pub fn finish(&mut self) {
        self.close_second();
    }

    fn roll_to(&mut self, at: Instant) {
        let second = (at.saturating_duration_since(self.window_start).as_secs()) as u32;
        if second != self.current_second {
            self.close_second();
            self.current_second = second;
        }
    }

    fn close_second(&mut self) {
        if self.current.completed == 0 && self.current.errors == 0 {
            return;
        }
        let mut rec = std::mem::take(&mut self.current);
        rec.histogram = encode_histogram(&self.current_hist);
        self.current_hist.reset();
        let slot = self.seconds.entry(self.current_second).or_default();
        merge_second(slot, rec);
    }
}

/// Adds `from` into `into` (histograms decoded and re-encoded by the caller
/// when both carry one).
fn merge_second(into: &mut SecondRecord, from: SecondRecord) {
    if into.histogram.is_empty() {
        into.histogram = from.histogram;
    } else if !from.histogram.is_empty() {
        let mut a = crate::report::decode_histogram("second", &into.histogram)
            .expect("we encoded it ourselves");
        let b = crate::report::decode_histogram("second", &from.histogram)
            .expect("we encoded it ourselves");
        a.add(&b).expect("same bounds");
        into.histogram = encode_histogram(&a);
    }
    into.completed += from.completed;
    into.errors += from.errors;
    into.bytes_received += from.bytes_received;
}

/// A duration in whole µs, at least 1 (the histograms' lowest value).
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_land_in_their_second_and_totals_add_up() {
        let t0 = Instant::now();
        let mut r = Recorder::new(t0);
        for i in 0..30u64 {
            let at = t0 + Duration::from_millis(100 * i);
            let s = Sample {
                intended: at,
                sent: at,
                own_lag: Duration::ZERO,
                first_byte: at,
                done: at + Duration::from_micros(50),
                bytes_received: 10,
                bytes_sent: 5,
            };
            r.record_ok(&s);
        }
        r.record_error(ErrorKind::Refused, t0 + Duration::from_millis(2500));
        r.finish();
        assert_eq!(r.seconds.len(), 3);
        assert_eq!(r.seconds[&0].completed, 10);
        assert_eq!(r.seconds[&2].errors, 1);
        assert_eq!(r.corrected.len(), 30);
        assert_eq!((r.bytes_received, r.error_count()), (300, 1));
    }

    #[test]
    fn a_wait_for_the_server_stays_in_less_own_lag_and_the_generators_own_delay_does_not() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Recorder::new(t0);
        // Due at `due`, the connection free at `free_at`, sent 3 ms after
        // the due time and answered 1 ms after the send.
        let sample = |due: Instant, free_at: Instant| Sample {
            intended: due,
            sent: due + ms(3),
            own_lag: own_lag(due, free_at, due + ms(3)),
            first_byte: due + ms(4),
            done: due + ms(4),
            bytes_received: 1,
            bytes_sent: 1,
        };
        // The connection busy until the send: all 4 ms are the server's.
        let waited = sample(t0 + ms(10), t0 + ms(13));
        // The connection free before the due time, the generator late:
        // only the 1 ms answer is the server's.
        let late = sample(t0 + ms(20), t0 + ms(14));
        assert_eq!((waited.own_lag, late.own_lag), (Duration::ZERO, ms(3)));
        r.record_ok(&waited);
        r.record_ok(&late);
        // (smallest, largest) sample, to the histogram's precision.
        let spans = |h: &Histogram<u64>, low: u64, high: u64| {
            h.equivalent(h.min(), low) && h.equivalent(h.max(), high)
        };
        assert!(spans(&r.corrected, 4000, 4000));
        assert!(spans(&r.less_own_lag, 1000, 4000));
        assert!(spans(&r.uncorrected, 1000, 1000));
    }
}
