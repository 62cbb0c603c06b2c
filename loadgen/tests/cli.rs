//! The `loadgen` binary: bad flags, URLs and files get clear errors and
//! exit status 2; a run writes a JSON report that reads back; `merge`
//! combines reports.

mod support;

use std::process::{Command, Output};

use loadgen::report::Report;
use support::{Behaviour, TestServer};

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs with `args`, expects exit status 2 and `needle` in stderr.
fn refused(args: &[&str], needle: &str) {
    let out = loadgen(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(
        stderr.contains(needle),
        "{args:?}: expected {needle:?} in {stderr}"
    );
}

#[test]
fn bad_flags_and_urls_get_clear_errors() {
    refused(&[], "no target");
    refused(&["ftp://127.0.0.1/"], "scheme \"ftp\" is not http or https");
    refused(&["127.0.0.1:8080"], "bad URL");
    refused(&["-c", "0", "http://127.0.0.1:1/"], "--connections");
    refused(&["-d", "10 parsecs", "http://127.0.0.1:1/"], "--duration");
    refused(&["-R", "fast", "http://127.0.0.1:1/"], "--rate");
    refused(&["-H", "NoColon", "http://127.0.0.1:1/"], "\"Name: value\"");
    refused(&["--bind", "not-an-ip", "http://127.0.0.1:1/"], "--bind");
    refused(
        &["--bind", "::1", "http://127.0.0.1:1/"],
        "another address family",
    );
    refused(
        &["--connect-to", "nowhere", "http://127.0.0.1:1/"],
        "ADDR:PORT",
    );
    refused(
        &["http://127.0.0.1:1/", "http://127.0.0.1:2/"],
        "different origins",
    );
    refused(&["--mix", "/nonexistent/mix.txt"], "/nonexistent/mix.txt");
    refused(&["--sweep", "http://127.0.0.1:1/"], "--slo-p99");
    refused(&["--no-such-flag", "http://127.0.0.1:1/"], "--no-such-flag");
    refused(&["--streams", "4", "http://127.0.0.1:1/"], "--http2");
    refused(
        &[
            "--http2",
            "--streams",
            "4",
            "--new-connection",
            "http://127.0.0.1:1/",
        ],
        "--streams",
    );
    refused(
        &[
            "-d",
            "100ms",
            "--cacert",
            "/nonexistent/ca.pem",
            "https://127.0.0.1:1/",
        ],
        "/nonexistent/ca.pem",
    );
    refused(&["merge", "/nonexistent/a.json"], "/nonexistent/a.json");
}

#[test]
fn json_report_reads_back_and_merge_combines_two() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let dir = tempfile::tempdir().unwrap();
    let (a, b, m) = (
        dir.path().join("a.json"),
        dir.path().join("b.json"),
        dir.path().join("m.json"),
    );
    for path in [&a, &b] {
        let out = loadgen(&[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "300ms",
            "-R",
            "300",
            "--json",
            path.to_str().unwrap(),
            &url,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let summary = String::from_utf8_lossy(&out.stdout);
        assert!(
            summary.contains("p99.99") && summary.contains("corrected"),
            "{summary}"
        );
    }
    let out = loadgen(&[
        "merge",
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        "--json",
        m.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let (ra, rb, rm) = [&a, &b, &m]
        .map(|p| Report::from_json_file(p).unwrap())
        .into();
    assert_eq!(
        rm.summary.requests_sent,
        ra.summary.requests_sent + rb.summary.requests_sent
    );
    assert_eq!(
        rm.summary.latency_corrected.count,
        ra.summary.latency_corrected.count + rb.summary.latency_corrected.count
    );
    assert_eq!(rm.summary.rate_target, Some(600.0));
    assert_eq!(rm.merged_from.len(), 2);
}

#[test]
fn json_to_stdout_is_the_report_alone() {
    let server = TestServer::start(Behaviour::default());
    let out = loadgen(&[
        "-c",
        "1",
        "-t",
        "1",
        "-d",
        "200ms",
        "--json",
        "-",
        &server.url("/"),
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let r = Report::from_json_str(&text, std::path::Path::new("stdout")).unwrap();
    assert!(r.summary.requests_completed > 0);
    assert!(String::from_utf8_lossy(&out.stderr).contains("throughput"));
}

#[test]
fn dead_target_exits_zero_with_errors_in_the_report() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = loadgen(&[
        "-c",
        "1",
        "-d",
        "200ms",
        "--json",
        "-",
        "-q",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let r = Report::from_json_str(&String::from_utf8(out.stdout).unwrap(), "x".as_ref()).unwrap();
    assert!(r.summary.errors_by_kind.contains_key("refused"));
}
