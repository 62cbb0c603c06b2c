//! The open-loop rate is held: at a few rates, requests sent and requests
//! completed per second are within 1% of the target. A test binary of its
//! own, so the other tests do not compete with it for the CPU.

mod support;

use loadgen::run::run;
use support::{assert_counts_add_up, config, Behaviour, TestServer};

#[test]
fn open_loop_rate_is_held_within_one_percent() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    for rate in ["200", "1000", "2500"] {
        let r = run(
            &config(&["-c", "8", "-t", "2", "-d", "2s", "-R", rate, &url]),
            false,
        )
        .unwrap();
        assert_counts_add_up(&r);
        let s = &r.summary;
        let target: f64 = rate.parse().unwrap();
        let sent_rate = s.requests_sent as f64 / s.duration_s;
        assert!(
            (sent_rate - target).abs() / target < 0.01,
            "rate {rate}: sent {sent_rate}/s"
        );
        assert!(
            (s.rate_achieved - target).abs() / target < 0.01,
            "rate {rate}: achieved {}/s",
            s.rate_achieved
        );
        assert!(!s.below_target, "rate {rate}");
        assert_eq!(r.time_series.len(), 2, "one row per second");
        let per_second: u64 = r.time_series.iter().map(|row| row.completed).sum();
        assert_eq!(per_second, s.requests_completed);
    }
}
