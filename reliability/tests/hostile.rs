//! Hostile clients against the real `blog` binary, small counts: each
//! attack connection must be refused or closed cleanly while the
//! well-behaved client keeps being served and the server's memory stays
//! bounded (the same scenarios as `RELIABILITY.md`, fewer connections).

mod support;

use reliability::scenario::{self, Scale};

fn by_name(
    name: &str,
) -> fn(&Scale) -> Result<reliability::outcome::Outcome, reliability::ScenarioError> {
    scenario::all()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"))
        .run
}

#[test]
fn slowloris_connections_are_closed_at_the_header_timeout() {
    for name in ["slowloris-http", "slowloris-https"] {
        let o = support::run(by_name(name));
        assert!(
            support::every_class_is(
                &o,
                &["closed without a response", "reset without a response"]
            ),
            "{o}"
        );
        let latest = o
            .figures
            .iter()
            .find(|f| f.name.ends_with("latest"))
            .unwrap();
        assert!(
            latest.value < (Scale::test().header_timeout + 3) as f64,
            "{o}"
        );
    }
}

#[test]
fn oversized_heads_get_431_and_a_close() {
    let o = support::run(by_name("oversized-heads"));
    assert!(support::every_class_is(&o, &["431 then closed"]), "{o}");
}

#[test]
fn malformed_heads_get_400_and_a_close() {
    let o = support::run(by_name("malformed-heads"));
    assert!(support::every_class_is(&o, &["400 then closed"]), "{o}");
}

#[test]
fn invalid_methods_and_versions_are_refused() {
    let o = support::run(by_name("invalid-methods-versions"));
    let brew = o
        .happened
        .keys()
        .find(|k| k.starts_with("unknown method BREW"))
        .unwrap();
    assert!(brew.contains("405 then closed"), "{o}");
}

#[test]
fn smuggling_shapes_are_never_answered_twice() {
    let o = support::run(by_name("smuggling-shapes"));
    assert!(!o.happened.keys().any(|k| k.contains("responses")), "{o}");
}

#[test]
fn pipelined_requests_are_all_answered() {
    let o = support::run(by_name("pipelining-flood"));
    assert!(
        support::every_class_is(&o, &["answered 200, then closed"]),
        "{o}"
    );
}

#[test]
fn h2_rapid_reset_ends_in_goaway() {
    let o = support::run(by_name("h2-rapid-reset"));
    assert!(support::every_class_is(&o, &["GOAWAY"]), "{o}");
}

#[test]
fn h2_stream_flood_is_refused_beyond_the_stream_limit() {
    let o = support::run(by_name("h2-stream-flood"));
    let answered = o
        .figures
        .iter()
        .find(|f| f.name.ends_with("responses"))
        .unwrap();
    let conns = 2 * Scale::test().h2_conns;
    assert!(answered.value <= f64::from(256 * conns), "{o}");
}

#[test]
fn tls_garbage_and_stalled_handshakes_are_closed() {
    let o = support::run(by_name("tls-garbage"));
    assert!(!o.happened.keys().any(|k| k.contains("still open")), "{o}");
    let o = support::run(by_name("tls-stalled-handshakes"));
    let latest = o
        .figures
        .iter()
        .find(|f| f.name.ends_with("latest"))
        .unwrap();
    assert!(
        latest.value >= Scale::test().handshake_timeout as f64 - 0.5,
        "closed before the timeout: {o}"
    );
}

#[test]
fn quiet_baseline_serves_every_request() {
    let o = support::run(scenario::quiet_baseline);
    assert_eq!(o.requests_lost, 0, "{o}");
}
