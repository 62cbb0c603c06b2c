//! Test support: one scenario at a time per test binary (they share two
//! cores and measure latency), and an assertion that prints the whole
//! outcome when a check fails.

#![allow(dead_code)]

use std::sync::{Mutex, MutexGuard};

use reliability::outcome::Outcome;
use reliability::scenario::Scale;
use reliability::ScenarioError;

static SERIAL: Mutex<()> = Mutex::new(());

/// Runs `scenario` at test scale, alone, and asserts every check held.
pub fn run(scenario: fn(&Scale) -> Result<Outcome, ScenarioError>) -> Outcome {
    let _one = serial();
    let outcome = scenario(&Scale::test()).unwrap_or_else(|e| panic!("scenario did not run: {e}"));
    eprint!("{outcome}");
    assert!(outcome.passed(), "a check failed:\n{outcome}");
    outcome
}

/// Holds the per-binary lock.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The outcome classes as `class=count` lines, for messages.
pub fn classes(o: &Outcome) -> String {
    o.happened_line()
}

/// True when every outcome class of `o` contains one of `needles`.
pub fn every_class_is(o: &Outcome, needles: &[&str]) -> bool {
    o.happened
        .keys()
        .all(|k| needles.iter().any(|n| k.contains(n)))
}
