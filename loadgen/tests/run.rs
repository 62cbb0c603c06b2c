//! Runs against a real hyper server started by each test, over HTTP/1.1,
//! HTTPS and h2: counts, open-loop rate, coordinated-omission correction,
//! one connection per request, dead and killed targets, status errors.

mod support;

use std::time::{Duration, Instant};

use loadgen::run::run;
use support::{assert_counts_add_up, config, Behaviour, TestServer};

#[test]
fn closed_loop_counts_add_up_and_bytes_are_counted() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let r = run(&config(&["-c", "4", "-t", "1", "-d", "700ms", &url]), false).unwrap();
    assert_counts_add_up(&r);
    let s = &r.summary;
    assert!(s.requests_completed > 100, "{s:#?}");
    assert_eq!(s.errors, 0, "{:?}", s.errors_by_kind);
    assert!(s.bytes_received >= s.requests_completed * support::BODY.len() as u64);
    assert_eq!(
        s.latency_corrected, s.latency_uncorrected,
        "closed loop has no schedule"
    );
    assert_eq!(s.connections_opened, 4);
    assert!(r.cpu.user_s + r.cpu.system_s > 0.0);
    let busy = r.cpu.busiest_worker_share;
    assert!(
        busy > 0.0 && busy <= 1.05,
        "busiest worker on a CPU {busy} of the window"
    );
    let series_total: u64 = r.time_series.iter().map(|row| row.completed).sum();
    assert_eq!(
        series_total, s.requests_completed,
        "the per-second series adds up"
    );
}

#[test]
fn stalls_show_in_corrected_percentiles_not_uncorrected() {
    let server = TestServer::stalling(Duration::from_secs(1), Duration::from_millis(250));
    let url = server.url("/");
    let r = run(
        &config(&["-c", "2", "-t", "1", "-d", "3s", "-R", "1000", &url]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    let s = &r.summary;
    // A quarter of every second is stalled: requests due then wait up to
    // 250 ms counted from their due time, but once sent they are quick.
    assert!(
        s.latency_corrected.p90_us >= 50_000,
        "corrected {:#?}",
        s.latency_corrected
    );
    assert!(
        s.latency_uncorrected.p99_us < 30_000,
        "uncorrected {:#?}",
        s.latency_uncorrected
    );
    assert!(s.latency_corrected.max_us >= 150_000);
    // The wait is for a connection the server holds, not the generator's
    // own lateness: it stays in the figure that leaves the latter out.
    assert!(
        s.latency_less_own_lag.p90_us >= 50_000,
        "less own lag {:#?}",
        s.latency_less_own_lag
    );
}

#[test]
fn new_connection_opens_one_connection_per_request() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let r = run(
        &config(&[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "500ms",
            "--new-connection",
            &url,
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    let accepts = server.accepts.load(std::sync::atomic::Ordering::SeqCst);
    let answered = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(r.summary.requests_completed > 20);
    // Every answered request came on its own connection; at most one per
    // connection slot was accepted but not yet answered at the deadline.
    assert!(
        accepts >= answered && accepts <= answered + 2,
        "{accepts} accepts, {answered} answered"
    );
    assert_eq!(r.summary.connections_opened, r.summary.requests_sent);
    assert!(r.summary.phases.connect.count >= r.summary.requests_completed);
}

#[test]
fn keep_alive_reuses_its_connections() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let r = run(&config(&["-c", "3", "-t", "1", "-d", "300ms", &url]), false).unwrap();
    assert!(r.summary.requests_completed > 30);
    assert_eq!(server.accepts.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[test]
fn killed_server_ends_the_run_on_time_with_errors_counted() {
    let mut server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let cfg = config(&[
        "-c",
        "4",
        "-t",
        "1",
        "-d",
        "2s",
        "-R",
        "500",
        "--timeout",
        "300ms",
        &url,
    ]);
    let started = Instant::now();
    let runner = std::thread::spawn(move || run(&cfg, false).unwrap());
    std::thread::sleep(Duration::from_millis(700));
    server.kill();
    let r = runner.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_counts_add_up(&r);
    let s = &r.summary;
    assert!(s.requests_completed > 100, "{s:#?}");
    assert!(s.errors > 100, "{s:#?}");
    assert!(
        s.errors_by_kind.contains_key("refused"),
        "{:?}",
        s.errors_by_kind
    );
}

#[test]
fn dead_target_is_counted_not_a_crash() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let started = Instant::now();
    let r = run(&config(&["-c", "2", "-t", "1", "-d", "500ms", &url]), false).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_counts_add_up(&r);
    assert_eq!(r.summary.requests_completed, 0);
    let refused = r
        .summary
        .errors_by_kind
        .get("refused")
        .copied()
        .unwrap_or(0);
    // Closed loop backs off 10 ms after a failed connect: bounded, not a spin.
    assert!(
        refused > 10 && refused < 200,
        "{:?}",
        r.summary.errors_by_kind
    );
}

#[test]
fn non_2xx_responses_are_errors_by_status_and_chunked_bodies_complete() {
    let server = TestServer::start(Behaviour::default());
    let bad = server.url("/status/503");
    let r = run(&config(&["-c", "1", "-t", "1", "-d", "200ms", &bad]), false).unwrap();
    assert_counts_add_up(&r);
    assert!(
        r.summary
            .errors_by_kind
            .get("status_503")
            .copied()
            .unwrap_or(0)
            > 5
    );
    assert_eq!(r.summary.requests_completed, 0);

    let chunked = server.url("/chunked");
    let r = run(
        &config(&["-c", "1", "-t", "1", "-d", "200ms", &chunked]),
        false,
    )
    .unwrap();
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed > 5);
}

#[test]
fn mix_file_spreads_requests_by_weight() {
    let server = TestServer::start(Behaviour::default());
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("mix.txt");
    let text = format!(
        "# index and an error page\n3 {}\n1 {}\n",
        server.url("/"),
        server.url("/status/404")
    );
    std::fs::write(&mix, text).unwrap();
    let r = run(
        &config(&[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "500ms",
            "--mix",
            mix.to_str().unwrap(),
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    let s = &r.summary;
    let share = s.errors_by_kind["status_404"] as f64 / (s.requests_completed + s.errors) as f64;
    assert!((share - 0.25).abs() < 0.05, "404 share {share}");
}

fn tls_server() -> (TestServer, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let certs = testbed::CertbotDir::create(&dir.path().join("le"), "blog.test").unwrap();
    let ca = certs.write_ca(&dir.path().join("ca.pem")).unwrap();
    let tls = Some((certs.fullchain_path(), certs.privkey_path()));
    let server = TestServer::start(Behaviour {
        tls,
        ..Default::default()
    });
    (server, dir, ca.display().to_string())
}

#[test]
fn https_verifies_with_cacert_and_times_the_handshake() {
    let (server, _dir, ca) = tls_server();
    let url = format!("https://blog.test:{}/", server.addr.port());
    let to = server.addr.to_string();
    let r = run(
        &config(&[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "400ms",
            "--cacert",
            &ca,
            "--connect-to",
            &to,
            &url,
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed > 20);
    assert_eq!(r.summary.phases.tls.count, 2);
}

#[test]
fn https_with_an_untrusted_ca_counts_tls_errors() {
    let (server, dir, _ca) = tls_server();
    let other = testbed::CertbotDir::create(&dir.path().join("other"), "blog.test").unwrap();
    let wrong_ca = other.write_ca(&dir.path().join("wrong.pem")).unwrap();
    let url = format!("https://localhost:{}/", server.addr.port());
    let r = run(
        &config(&[
            "-c",
            "1",
            "-t",
            "1",
            "-d",
            "300ms",
            "--cacert",
            wrong_ca.to_str().unwrap(),
            &url,
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.requests_completed, 0);
    assert!(
        r.summary.errors_by_kind.get("tls").copied().unwrap_or(0) > 0,
        "{:?}",
        r.summary.errors_by_kind
    );
}

#[test]
fn http2_works_over_tls_and_cleartext() {
    let (server, _dir, ca) = tls_server();
    let url = format!("https://localhost:{}/", server.addr.port());
    let r = run(
        &config(&[
            "-c", "2", "-t", "1", "-d", "400ms", "--http2", "--cacert", &ca, &url,
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed > 20);
    assert_eq!(r.summary.connections_opened, 2);

    let plain = TestServer::start(Behaviour::default());
    let url = plain.url("/");
    let r = run(
        &config(&[
            "-c", "2", "-t", "1", "-d", "300ms", "-R", "200", "--http2", &url,
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed >= 55);
}

#[test]
fn https_new_connection_handshakes_every_request() {
    let (server, _dir, _ca) = tls_server();
    let url = format!("https://localhost:{}/", server.addr.port());
    let r = run(
        &config(&[
            "-c",
            "1",
            "-t",
            "1",
            "-d",
            "300ms",
            "--insecure",
            "--new-connection",
            &url,
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert!(r.summary.requests_completed > 5);
    assert!(r.summary.phases.tls.count >= r.summary.requests_completed);
}

#[test]
fn bind_sets_the_source_address() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let r = run(
        &config(&[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "200ms",
            "--bind",
            "127.0.0.2",
            &url,
        ]),
        false,
    )
    .unwrap();
    assert!(
        r.summary.requests_completed > 0,
        "{:?}",
        r.summary.errors_by_kind
    );
    let peers = server.peers.lock().unwrap().clone();
    assert_eq!(peers, vec![std::net::IpAddr::from([127, 0, 0, 2]); 2]);
}

#[test]
fn warmup_requests_are_made_but_not_counted() {
    let server = TestServer::start(Behaviour::default());
    let url = server.url("/");
    let cfg = config(&[
        "-c", "2", "-t", "1", "-d", "500ms", "--warmup", "500ms", "-R", "400", &url,
    ]);
    let r = run(&cfg, false).unwrap();
    assert_counts_add_up(&r);
    assert_eq!(
        r.summary.requests_sent, 200,
        "400/s over the 500 ms measured"
    );
    let answered = server.requests.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        answered >= 395,
        "the warm-up's 200 requests were made too: {answered}"
    );
    assert_eq!(
        r.summary.connections_opened, 0,
        "connections opened during the warm-up"
    );
}

/// A raw HTTP/1.1 server that answers one request per connection with a
/// keep-alive response, then closes the connection without saying so: what
/// a server's idle keep-alive timeout looks like to a client reusing it.
fn start_one_shot_server() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let accepts = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = accepts.clone();
    // The thread ends with the test process; it only ever serves loopback.
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut buf = [0u8; 1024];
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        }
    });
    (addr, accepts)
}

#[test]
fn a_keep_alive_connection_closed_by_the_server_is_retried_not_an_error() {
    let (addr, accepts) = start_one_shot_server();
    let url = format!("http://{addr}/");
    let r = run(
        &config(&["-c", "1", "-t", "1", "-d", "300ms", "-R", "100", &url]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed >= 29);
    // Every request after the first found its connection closed and
    // reconnected once.
    assert!(accepts.load(std::sync::atomic::Ordering::SeqCst) >= r.summary.requests_completed);
}

#[test]
fn http2_streams_share_one_connection() {
    // Every response waits for the next 100 ms boundary: one request at a
    // time could finish at most 5 in 400 ms; four streams finish about 16.
    let server = TestServer::stalling(Duration::from_millis(100), Duration::from_millis(100));
    let url = server.url("/");
    let cfg = config(&[
        "-c",
        "1",
        "-t",
        "1",
        "-d",
        "400ms",
        "--http2",
        "--streams",
        "4",
        &url,
    ]);
    let r = run(&cfg, false).unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed >= 10, "{:#?}", r.summary);
    assert_eq!(r.summary.connections_opened, 1);
    assert_eq!(server.accepts.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(r.config.streams, 4);
}

#[test]
fn requests_held_past_the_timeout_are_timeouts_and_the_run_goes_on() {
    // Every second, responses are held for 500 ms: a request caught in
    // that hold outlives the 150 ms timeout, however many requests the
    // connection has carried before it.
    let server = TestServer::stalling(Duration::from_secs(1), Duration::from_millis(500));
    let url = server.url("/");
    let args = ["-c", "2", "-t", "1", "-d", "2500ms", "--timeout", "150ms"];
    let r = run(&config(&[&args[..], &[&url]].concat()), false).unwrap();
    assert_counts_add_up(&r);
    let s = &r.summary;
    assert!(
        s.errors_by_kind.get("timeout").copied().unwrap_or(0) >= 2,
        "{:?}",
        s.errors_by_kind
    );
    assert!(s.requests_completed > 100, "{s:#?}");
    // Nothing that completed took longer than the timeout allows.
    assert!(
        s.latency_uncorrected.max_us < 150_000,
        "{:?}",
        s.latency_uncorrected
    );
}
