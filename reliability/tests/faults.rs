//! Faults under steady load against the real `blog` binary: the
//! certificate directory vanishing, becoming unreadable or holding a
//! broken pair (old certificate kept, reason logged, next renewal served),
//! a renewal with SIGHUP and a graceful stop with SIGTERM, losing nothing.

mod support;

use reliability::faults;

#[test]
fn vanished_cert_dir_keeps_the_old_certificate() {
    support::run(faults::cert_dir_vanishes);
}

#[test]
fn unreadable_renewed_key_keeps_the_old_certificate() {
    support::run(faults::cert_unreadable);
}

#[test]
fn broken_pair_keeps_the_old_certificate() {
    support::run(faults::cert_broken_pair);
}

#[test]
fn renewal_under_load_loses_no_request() {
    let o = support::run(faults::renewal_under_load);
    assert_eq!(o.requests_lost, 0, "{o}");
}

#[test]
fn graceful_stop_under_load_cuts_off_no_request() {
    let o = support::run(faults::graceful_stop_under_load);
    assert_eq!(o.requests_lost, 0, "{o}");
}

#[test]
fn metrics_check_sees_a_reload_failure_series() {
    assert!(faults::metrics_expose_reload_failure(
        "blog_certificate_reload_failures_total 1\n"
    ));
    assert!(!faults::metrics_expose_reload_failure(
        "# HELP blog_certificate_reload_failures_total x\nblog_open_connections 1\n"
    ));
}
