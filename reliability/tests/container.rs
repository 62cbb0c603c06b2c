//! The server in its container (compose host profile, the shipped restart
//! policy), under the machine-wide lock: a SIGKILL is followed by a
//! restart, and a 64 MiB memory limit holds a thousand connections
//! without an OOM kill.

mod support;

use reliability::docker;

#[test]
fn sigkilled_container_is_restarted_by_the_restart_policy() {
    let o = support::run(docker::sigkill_restart);
    assert!(o.figures.iter().any(|f| f.name == "downtime, max"), "{o}");
}

#[test]
fn memory_limited_container_holds_a_thousand_connections_without_oom() {
    support::run(docker::memory_limit);
}
