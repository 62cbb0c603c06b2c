//! HTTPS against the real binary with a certbot-shaped directory and a
//! throwaway CA: ALPN h2 and http/1.1, HSTS, resumption, renewal on SIGHUP
//! and on file change, and a broken renewal that must not be picked up.

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;

const H2: &[u8] = b"h2";
const H1: &[u8] = b"http/1.1";

fn tls_server(tmp: &tempfile::TempDir, extra: &[&str]) -> (testbed::CertbotDir, Blog) {
    let certs = certbot(tmp.path());
    let site = write_site(tmp.path());
    let mut args = vec![
        "--letsencrypt-dir",
        certs.root().to_str().unwrap(),
        "--domain",
        "blog.test",
        "--site",
        site.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let blog = Blog::start(&args);
    (certs, blog)
}

#[tokio::test(flavor = "multi_thread")]
async fn h2_is_negotiated_by_alpn_and_serves_get_and_head() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, blog) = tls_server(&tmp, &[]);
    let client = tls_client(&certs.ca_pem(), &[H2, H1]);
    let stream = tls_connect(&client, blog.https, "blog.test").await;
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(H2));
    assert_eq!(peer_serial(&stream), certs.serial());

    let mut h2 = h2(stream).await;
    let url = "https://blog.test/posts/first-post/";
    let resp = h2.send_request(request("GET", url, &[])).await.unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_2);
    let (status, headers, body) = collect(resp).await;
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("First post"));
    assert_eq!(headers["strict-transport-security"], "max-age=31536000");
    assert_eq!(headers["x-content-type-options"], "nosniff");

    let resp = h2.send_request(request("HEAD", url, &[])).await.unwrap();
    let (status, head_headers, head_body) = collect(resp).await;
    assert_eq!(status, 200);
    assert!(head_body.is_empty());
    assert_eq!(
        head_headers["content-length"],
        body.len().to_string().as_str()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn http1_over_tls_and_session_resumption() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, blog) = tls_server(&tmp, &["--metrics", "127.0.0.1:0"]);
    let client = tls_client(&certs.ca_pem(), &[H1]);
    let first = tls_connect(&client, blog.https, "blog.test").await;
    assert_eq!(first.get_ref().1.alpn_protocol(), Some(H1));
    let mut h1 = h1(first).await;
    let resp = h1
        .send_request(request("GET", "/", &[("host", "blog.test")]))
        .await
        .unwrap();
    assert_eq!(resp.version(), http::Version::HTTP_11);
    assert_eq!(resp.status(), 200);
    drop(h1);

    // The client keeps the session ticket from the first connection.
    let second = tls_connect(&client, blog.https, "blog.test").await;
    assert_eq!(
        second.get_ref().1.handshake_kind(),
        Some(rustls::HandshakeKind::Resumed)
    );

    let line = blog.wait_log("metrics on http://", Duration::from_secs(10));
    let addr = line
        .split("metrics on http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/metrics");
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    // The server counts a handshake when its side completes, a moment
    // after the client's: poll.
    let want = "blog_tls_handshakes_total{result=\"ok\"} 2\n";
    let mut text = String::new();
    for _ in 0..100 {
        text = tokio::task::spawn_blocking(move || get(addr, "/metrics", "x", ""))
            .await
            .unwrap();
        if text.contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(text.contains(want), "{text}");
}

/// Opens a new connection until it presents `serial`, for up to 20 s.
async fn wait_for_serial(connector: &tokio_rustls::TlsConnector, blog: &Blog, serial: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if peer_serial(&tls_connect(connector, blog.https, "blog.test").await) == serial {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn renewed_cert_is_served_after_sighup_while_an_open_connection_keeps_working() {
    let tmp = tempfile::tempdir().unwrap();
    // A long check interval: only SIGHUP can explain the switch.
    let (mut certs, blog) = tls_server(&tmp, &["--cert-check-interval", "3600"]);
    let client = tls_client(&certs.ca_pem(), &[H1]);
    let old_serial = certs.serial();
    let kept = tls_connect(&client, blog.https, "blog.test").await;
    assert_eq!(peer_serial(&kept), old_serial);
    let mut kept = h1(kept).await;
    let resp = kept
        .send_request(request("GET", "/", &[("host", "blog.test")]))
        .await
        .unwrap();
    assert_eq!(collect(resp).await.0, 200);

    certs.renew().unwrap();
    assert_ne!(certs.serial(), old_serial);
    blog.signal(Signal::SIGHUP);
    assert!(
        wait_for_serial(&client, &blog, certs.serial()).await,
        "log:\n{}",
        blog.log()
    );
    // The log line may reach the test a moment after the new certificate.
    blog.wait_log("certificate reloaded (SIGHUP)", Duration::from_secs(10));

    let resp = kept
        .send_request(request("GET", "/feed.xml", &[("host", "blog.test")]))
        .await
        .unwrap();
    assert_eq!(
        collect(resp).await.0,
        200,
        "the connection opened before the renewal still works"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn renewed_cert_is_picked_up_when_the_links_move_without_a_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut certs, blog) = tls_server(&tmp, &["--cert-check-interval", "1"]);
    let client = tls_client(&certs.ca_pem(), &[H1]);
    certs.renew().unwrap();
    assert!(
        wait_for_serial(&client, &blog, certs.serial()).await,
        "log:\n{}",
        blog.log()
    );
    blog.wait_log("certificate files changed", Duration::from_secs(10));
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_new_key_keeps_the_old_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut certs, blog) = tls_server(&tmp, &["--cert-check-interval", "3600"]);
    let client = tls_client(&certs.ca_pem(), &[H1]);
    let good = certs.serial();
    certs.renew_with_mismatched_key().unwrap();
    blog.signal(Signal::SIGHUP);
    let line = blog.wait_log("reload (SIGHUP) failed", Duration::from_secs(20));
    assert!(line.contains("does not match"), "{line}");
    assert!(
        line.contains("privkey.pem"),
        "the log names the key file: {line}"
    );
    let stream = tls_connect(&client, blog.https, "blog.test").await;
    assert_eq!(peer_serial(&stream), good);
    let mut h1 = h1(stream).await;
    let resp = h1
        .send_request(request("GET", "/", &[("host", "blog.test")]))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn tls_1_0_and_1_1_are_refused_and_1_2_accepted() {
    let tmp = tempfile::tempdir().unwrap();
    let (certs, blog) = tls_server(&tmp, &[]);
    let ca = certs.write_ca(&tmp.path().join("ca.pem")).unwrap();
    let addr = blog.https.to_string();
    let run = |version: &str| {
        std::process::Command::new("openssl")
            .args([
                "s_client",
                "-connect",
                &addr,
                "-servername",
                "blog.test",
                version,
            ])
            .args(["-CAfile", ca.to_str().unwrap(), "-verify_return_error"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl s_client")
    };
    assert!(run("-tls1_2").status.success());
    assert!(run("-tls1_3").status.success());
    assert!(!run("-tls1_1").status.success());
}

#[test]
fn demo_mode_serves_https_with_a_self_signed_certificate() {
    let blog = Blog::start(&[]);
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .arg(format!("https://{}/", blog.https))
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 2");
    assert!(blog.log().contains("self-signed certificate: subject"));
}
