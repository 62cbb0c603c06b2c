//! The open-loop schedule (wrk2 style): request n of the whole run is due
//! at t0 + n / rate on an absolute clock, and connection i of C owns the
//! requests n = k·C + i, so a late reply never shifts later due times.

use std::time::{Duration, Instant};

/// One connection's share of the absolute schedule.
#[derive(Debug, Clone)]
pub struct Schedule {
    t0: Instant,
    interval_ns: f64,
    connections: u64,
    index: u64,
}

impl Schedule {
    /// The share of connection `index` of `connections` at a total `rate`
    /// (requests per second) starting at `t0`.
    pub fn new(t0: Instant, rate: f64, connections: u32, index: u32) -> Self {
        Schedule {
            t0,
            interval_ns: 1e9 / rate,
            connections: u64::from(connections.max(1)),
            index: u64::from(index),
        }
    }

    /// When this connection's `k`-th request is due.
    pub fn due(&self, k: u64) -> Instant {
        let n = k * self.connections + self.index;
        self.t0 + Duration::from_nanos((n as f64 * self.interval_ns) as u64)
    }

    /// How many of this connection's requests from the `k`-th on are due
    /// before `end` and at or after `from`: what remains unsent when the
    /// run stops at request `k`.
    pub fn due_between(&self, mut k: u64, from: Instant, end: Instant) -> u64 {
        let mut count = 0;
        loop {
            let due = self.due(k);
            if due >= end {
                return count;
            }
            if due >= from {
                count += 1;
            }
            k += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_interleave_on_one_absolute_schedule() {
        let t0 = Instant::now();
        let a = Schedule::new(t0, 1000.0, 2, 0);
        let b = Schedule::new(t0, 1000.0, 2, 1);
        assert_eq!(a.due(0) - t0, Duration::ZERO);
        assert_eq!(b.due(0) - t0, Duration::from_millis(1));
        assert_eq!(a.due(1) - t0, Duration::from_millis(2));
        assert_eq!(b.due(3) - t0, Duration::from_millis(7));
    }

    #[test]
    fn every_due_request_in_a_window_belongs_to_exactly_one_connection() {
        let t0 = Instant::now();
        let (from, end) = (t0 + Duration::from_millis(250), t0 + Duration::from_secs(2));
        let total: u64 = (0..3)
            .map(|i| Schedule::new(t0, 999.0, 3, i).due_between(0, from, end))
            .sum();
        let expected = (0..10_000u64)
            .map(|n| t0 + Duration::from_nanos((n as f64 * 1e9 / 999.0) as u64))
            .filter(|d| *d >= from && *d < end)
            .count() as u64;
        assert_eq!(total, expected);
    }
}
