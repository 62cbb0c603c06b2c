//! `--sweep` against a real server: a step passes only under the SLO,
//! rates double until a failure and then bisect, and the report carries
//! every step.

mod support;

use loadgen::sweep::sweep;
use support::{config, Behaviour, TestServer};

#[test]
fn sweep_doubles_then_bisects_and_reports_every_step() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    // A generous SLO: steps pass until the rate cannot be held.
    let cfg = config(&[
        "-c",
        "4",
        "-t",
        "1",
        "-d",
        "200ms",
        "-R",
        "500",
        "--sweep",
        "--slo-p99",
        "1s",
        &url,
    ]);
    let mut seen = 0;
    let r = sweep(&cfg, |_| seen += 1).unwrap();
    let s = r.sweep.as_ref().expect("a sweep report has its steps");
    assert_eq!(seen, s.steps.len());
    assert_eq!(s.steps[0].rate_target, 500.0);
    assert!(s.steps[0].passed, "{:?}", s.steps[0]);
    let best = s.best_rate.expect("500/s passes on loopback");
    assert!(s
        .steps
        .iter()
        .all(|st| !st.passed || st.rate_target <= best));
    assert_eq!(r.summary.rate_target, Some(best));
    for st in &s.steps {
        let should_pass = st.p99_corrected_us <= 1_000_000
            && st.errors == 0
            && st.rate_achieved >= 0.99 * st.rate_target;
        assert_eq!(st.passed, should_pass, "{st:?}");
    }
}

#[test]
fn sweep_with_an_impossible_slo_passes_no_step() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let cfg = config(&[
        "-c",
        "2",
        "-t",
        "1",
        "-d",
        "150ms",
        "-R",
        "400",
        "--sweep",
        "--slo-p99",
        "1us",
        &url,
    ]);
    let r = sweep(&cfg, |_| {}).unwrap();
    let s = r.sweep.unwrap();
    assert_eq!(s.best_rate, None);
    // One failing first step, then bisections below it.
    assert_eq!(s.steps.len(), 1 + loadgen::sweep::BISECTIONS as usize);
    assert!(s
        .steps
        .windows(2)
        .all(|w| w[1].rate_target < w[0].rate_target));
}
