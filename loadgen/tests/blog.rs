//! Runs against the project's own blog server (`server` crate, binary
//! `blog`), started by the test on ephemeral loopback ports: a visitor-like
//! URL mix over HTTP/1.1, h2 over TLS, and a connection per request.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use loadgen::run::run;
use support::{assert_counts_add_up, config};

/// The blog server process; killed on drop.
struct Blog {
    child: Child,
    http: SocketAddr,
    https: SocketAddr,
}

impl Drop for Blog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Builds `blog` (a no-op when it is up to date) and returns its path,
/// next to this crate's own binary in the target directory.
fn blog_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "-q", "-p", "server", "--bin", "blog"])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the blog server failed");
    PathBuf::from(env!("CARGO_BIN_EXE_loadgen")).with_file_name("blog")
}

/// Two distinct free ports (both held while choosing, so they differ).
fn free_ports() -> (u16, u16) {
    let a = TcpListener::bind("127.0.0.1:0").unwrap();
    let b = TcpListener::bind("127.0.0.1:0").unwrap();
    (
        a.local_addr().unwrap().port(),
        b.local_addr().unwrap().port(),
    )
}

fn start_blog() -> Blog {
    let (http, https) = free_ports();
    let child = Command::new(blog_binary())
        .args([
            "--http-serves-site",
            "--self-signed",
            "--listen",
            "127.0.0.1",
            "--log",
            "warn",
        ])
        .args([
            "--http-port",
            &http.to_string(),
            "--https-port",
            &https.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("blog starts");
    let blog = Blog {
        child,
        http: SocketAddr::from(([127, 0, 0, 1], http)),
        https: SocketAddr::from(([127, 0, 0, 1], https)),
    };
    // The listener may accept before the site is loaded, so wait for an
    // answer, not just a connection.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !answers(blog.http) || TcpStream::connect(blog.https).is_err() {
        assert!(
            Instant::now() < deadline,
            "blog did not answer on {} and {}",
            blog.http,
            blog.https
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    blog
}

/// Whether a plain GET / on `addr` gets an HTTP status line back.
fn answers(addr: SocketAddr) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = [0u8; 12];
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_ok()
        && s.read_exact(&mut head).is_ok()
        && head.starts_with(b"HTTP/1.1 200")
}

#[test]
fn blog_server_serves_a_visitor_mix_over_http1_h2_and_new_connections() {
    let blog = start_blog();
    let dir = tempfile::tempdir().unwrap();
    let mix = dir.path().join("visitors.mix");
    let base = format!("http://{}", blog.http);
    let text = format!(
        "# index, a post, the stylesheet, the feed\n\
         4 {base}/\n3 {base}/posts/hello-from-a-five-dollar-box/\n2 {base}/static/style.css\n1 {base}/feed.xml\n"
    );
    std::fs::write(&mix, text).unwrap();

    let r = run(
        &config(&[
            "-c",
            "4",
            "-t",
            "1",
            "-d",
            "1s",
            "-R",
            "400",
            "--mix",
            mix.to_str().unwrap(),
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed >= 390, "{:#?}", r.summary);

    let https = format!("https://localhost:{}/", blog.https.port());
    let r = run(
        &config(&[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "500ms",
            "--http2",
            "--insecure",
            &https,
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert!(r.summary.requests_completed > 20);
    assert_eq!(r.summary.phases.tls.count, 2);

    let r = run(
        &config(&[
            "-c",
            "2",
            "-t",
            "1",
            "-d",
            "500ms",
            "--new-connection",
            &format!("{base}/"),
        ]),
        false,
    )
    .unwrap();
    assert_counts_add_up(&r);
    assert_eq!(r.summary.errors, 0, "{:?}", r.summary.errors_by_kind);
    assert_eq!(r.summary.connections_opened, r.summary.requests_sent);
}
