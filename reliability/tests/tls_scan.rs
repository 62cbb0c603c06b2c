//! testssl.sh against the real server's HTTPS port: no protocol below TLS
//! 1.2, no weak cipher category, no HIGH or CRITICAL finding, HSTS
//! present, the chain of trust complete.

mod support;

#[test]
fn testssl_finds_only_modern_tls_hsts_and_a_complete_chain() {
    let o = support::run(reliability::tls_scan::scenario);
    assert!(o.count > 20, "too few findings to trust: {o}");
}
