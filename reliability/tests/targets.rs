//! The real `loadgen` binary against a target that dies (the blog,
//! SIGKILLed mid-run), hangs or resets: it ends on time, exits 0 and
//! counts the errors by kind.

mod support;

use reliability::targets;

#[test]
fn loadgen_against_a_dying_target_ends_on_time() {
    support::run(targets::target_dies);
}

#[test]
fn loadgen_against_a_hanging_target_counts_timeouts() {
    support::run(targets::target_hangs);
}

#[test]
fn loadgen_against_a_resetting_target_counts_resets() {
    support::run(targets::target_resets);
}
