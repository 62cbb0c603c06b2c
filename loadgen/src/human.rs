//! The human summary of a report, in the spirit of wrk and oha: rates,
//! bytes, latency percentiles, phases, errors, and the generator's own
//! CPU, with a warning when the run did not hold its target.

use std::fmt::Write as _;

use crate::report::{Percentiles, Report};

/// Formats the summary of `r` as text (several lines, ending in a newline).
pub fn summary(r: &Report) -> String {
    let s = &r.summary;
    let c = &r.config;
    let mut out = String::new();
    let target = c
        .targets
        .iter()
        .map(|t| t.url.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let shape = match s.rate_target {
        Some(rate) => format!("open loop at {rate:.0} req/s"),
        None => "closed loop".to_string(),
    };
    let proto = if c.http2 {
        format!("HTTP/2 ({} streams per connection)", c.streams)
    } else {
        "HTTP/1.1".to_string()
    };
    let conns = if c.new_connection {
        "a new connection per request"
    } else {
        "keep-alive"
    };
    let _ = writeln!(
        out,
        "{shape}, {:.2} s, {} connections on {} worker threads, {proto}, {conns}",
        s.duration_s, c.connections, c.threads
    );
    let _ = writeln!(out, "  target      {target}");
    let _ = writeln!(
        out,
        "  requests    {} sent = {} completed + {} errors + {} unfinished",
        s.requests_sent, s.requests_completed, s.errors, s.unfinished
    );
    let mut rate_line = format!("  throughput  {:.1} req/s completed", s.rate_achieved);
    if let Some(t) = s.rate_target {
        let _ = write!(
            rate_line,
            " ({:.2}% of target)",
            100.0 * s.rate_achieved / t
        );
    }
    let _ = writeln!(out, "{rate_line}");
    let _ = writeln!(
        out,
        "  transfer    {} received ({}/s), {} sent, {} connections opened",
        bytes(s.bytes_received),
        bytes((s.bytes_received as f64 / s.duration_s.max(1e-9)) as u64),
        bytes(s.bytes_sent),
        s.connections_opened
    );
    let _ = writeln!(
        out,
        "  latency     {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "p50", "p90", "p99", "p99.9", "p99.99", "max", "count"
    );
    let rows: [(&str, &Percentiles); 6] = [
        ("corrected", &s.latency_corrected),
        ("less lag", &s.latency_less_own_lag),
        ("uncorrected", &s.latency_uncorrected),
        ("connect", &s.phases.connect),
        ("tls", &s.phases.tls),
        ("ttfb", &s.phases.ttfb),
    ];
    for (name, p) in rows {
        if p.count == 0 {
            continue;
        }
        let _ = writeln!(
            out,
            "  {name:<11} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
            us(p.p50_us),
            us(p.p90_us),
            us(p.p99_us),
            us(p.p99_9_us),
            us(p.p99_99_us),
            us(p.max_us),
            p.count
        );
    }
    let _ = writeln!(out, "              (corrected: from the intended start on the schedule; less lag: corrected less loadgen's own send lag; uncorrected: from the actual send)");
    if !s.errors_by_kind.is_empty() {
        let kinds: Vec<String> = s
            .errors_by_kind
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        let _ = writeln!(out, "  errors      {}", kinds.join(", "));
    }
    let _ = writeln!(
        out,
        "  generator   {:.3} s user + {:.3} s system CPU = {:.1} µs per finished request, busiest worker on a CPU {:.0}% of the window (getrusage over the measured window)",
        r.cpu.user_s, r.cpu.system_s, r.cpu.us_per_request, 100.0 * r.cpu.busiest_worker_share
    );
    if let Some(sweep) = &r.sweep {
        let _ = writeln!(
            out,
            "  sweep (SLO corrected p99 <= {})",
            us(sweep.slo_p99_us)
        );
        for step in &sweep.steps {
            let _ = writeln!(
                out,
                "    {:>10.0} req/s target: {:>10.1} achieved, p99 {} corrected / {} uncorrected, {} errors: {}",
                step.rate_target, step.rate_achieved, us(step.p99_corrected_us), us(step.p99_uncorrected_us),
                step.errors, if step.passed { "pass" } else { "FAIL" }
            );
        }
        match sweep.best_rate {
            Some(b) => {
                let _ = writeln!(out, "  highest passing rate: {b:.0} req/s");
            }
            None => {
                let _ = writeln!(out, "  no rate passed");
            }
        }
    }
    if s.requests_completed == 0 && s.errors > 0 {
        let (kind, n) = s
            .errors_by_kind
            .iter()
            .max_by_key(|(_, n)| **n)
            .expect("errors > 0");
        let _ = writeln!(
            out,
            "  WARNING: no request succeeded ({n} {kind}): is the target up and the URL right?"
        );
    }
    if s.below_target {
        let _ = writeln!(
            out,
            "  WARNING: under 99% of the target rate was sent or completed"
        );
    }
    if r.fell_behind {
        let _ = writeln!(
            out,
            "  WARNING: the generator may be the bottleneck: busiest worker on a CPU {:.0}% of the window, {} requests sent over 2 ms late",
            100.0 * r.cpu.busiest_worker_share, s.late_sends
        );
    }
    out
}

/// A latency in µs, scaled: `85µs`, `1.23ms`, `2.10s`.
pub fn us(v: u64) -> String {
    match v {
        0..=999 => format!("{v}µs"),
        1_000..=999_999 => format!("{:.2}ms", v as f64 / 1e3),
        _ => format!("{:.2}s", v as f64 / 1e6),
    }
}

fn bytes(b: u64) -> String {
    match b {
        0..=9_999 => format!("{b} B"),
        10_000..=9_999_999 => format!("{:.1} kB", b as f64 / 1e3),
        _ => format!("{:.1} MB", b as f64 / 1e6),
    }
}
