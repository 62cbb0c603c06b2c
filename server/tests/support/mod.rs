//! Test support: starts the real `blog` binary on ephemeral loopback
//! ports and reads its log, writes small sites, and speaks HTTP/1.1 and
//! HTTP/2 over plain TCP and real TLS to it.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::ClientConfig;
use rustls_pki_types::pem::PemObject;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

/// The binary under test.
pub const BLOG: &str = env!("CARGO_BIN_EXE_blog");

/// Marker written into a file outside the test site; no response may
/// ever contain it.
pub const SECRET: &str = "TOP-SECRET-NOT-IN-SITE";

/// A running `blog`, killed on drop.
pub struct Blog {
    child: Option<Child>,
    log: Arc<(Mutex<Vec<String>>, Condvar)>,
    /// The first HTTP listener.
    pub http: SocketAddr,
    /// The first HTTPS listener.
    pub https: SocketAddr,
}

impl Blog {
    /// Starts `blog ARGS --listen 127.0.0.1 --http-port 0 --https-port 0`
    /// and waits for both "listening on" lines.
    pub fn start(args: &[&str]) -> Blog {
        let mut all: Vec<&str> = vec![
            "--listen",
            "127.0.0.1",
            "--http-port",
            "0",
            "--https-port",
            "0",
        ];
        all.extend_from_slice(args);
        Blog::spawn(Command::new(BLOG).args(&all))
    }

    /// Starts a prepared command and waits for both listeners.
    pub fn spawn(cmd: &mut Command) -> Blog {
        let mut child = cmd
            .env_remove("BLOG_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start blog");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap().push(line);
                sink.1.notify_all();
            }
            sink.0.lock().unwrap().push("<stderr closed>".into());
            sink.1.notify_all();
        });
        let mut blog = Blog {
            child: Some(child),
            log,
            http: any(),
            https: any(),
        };
        blog.https = blog.listening("https://");
        blog.http = blog.listening("http://");
        blog
    }

    fn listening(&self, scheme: &str) -> SocketAddr {
        let needle = format!("listening on {scheme}");
        let line = self.wait_log(&needle, Duration::from_secs(120));
        let addr = line
            .split(&needle)
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap();
        addr.parse()
            .unwrap_or_else(|e| panic!("bad address in {line:?}: {e}"))
    }

    /// Waits for a log line containing `needle` and returns it; panics
    /// with the whole log when it does not come.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.log;
        let mut lines = lock.lock().unwrap();
        loop {
            if let Some(line) = lines.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let now = Instant::now();
            if now >= deadline || lines.iter().any(|l| l == "<stderr closed>") {
                panic!("no log line with {needle:?}; log:\n{}", lines.join("\n"));
            }
            lines = cv.wait_timeout(lines, deadline - now).unwrap().0;
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        self.log.0.lock().unwrap().join("\n")
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), signal).unwrap();
    }

    /// Waits up to `timeout` for the server to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        while Instant::now() < deadline {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Blog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn any() -> SocketAddr {
    "0.0.0.0:0".parse().unwrap()
}

/// Runs `blog ARGS` as uid and gid `id` with no supplementary groups
/// (util-linux `setpriv`) until it exits or a listener comes up; returns
/// the exit status (None when it kept running) and the log.
pub fn run_as(id: u32, args: &[&str], timeout: Duration) -> (Option<ExitStatus>, String) {
    let id = id.to_string();
    let mut child = Command::new("setpriv")
        .args(["--reuid", &id, "--regid", &id, "--clear-groups", BLOG])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run setpriv (util-linux)");
    let mut stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + timeout;
    let mut log = Vec::new();
    let status = loop {
        while let Ok(chunk) = rx.try_recv() {
            log.extend(chunk);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if String::from_utf8_lossy(&log).contains("listening on https://")
            || Instant::now() > deadline
        {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    std::thread::sleep(Duration::from_millis(100));
    while let Ok(chunk) = rx.try_recv() {
        log.extend(chunk);
    }
    (status, String::from_utf8_lossy(&log).into_owned())
}

/// Writes a small site into `root/site` and a secret next to it, in
/// `root/secret.txt`; returns the site directory.
pub fn write_site(root: &Path) -> std::path::PathBuf {
    let site = root.join("site");
    std::fs::create_dir_all(site.join("posts")).unwrap();
    std::fs::create_dir_all(site.join("static/img")).unwrap();
    let body = "Some words about hops and proxies. ".repeat(80);
    for (file, title, date) in [
        ("2025-03-14-first-post.md", "First post", "2025-03-14"),
        (
            "2025-04-01-second-post.md",
            "Second: the sequel",
            "2025-04-01",
        ),
    ] {
        let text = format!(
            "---\ntitle: {title}\ndate: {date}\nsummary: About {title}.\ntags: [a, b]\n---\n\n# {title}\n\n{body}\n"
        );
        std::fs::write(site.join("posts").join(file), text).unwrap();
    }
    std::fs::write(
        site.join("static/style.css"),
        "body { margin: 0 auto; }\n".repeat(40),
    )
    .unwrap();
    // Pseudo-random bytes: incompressible, so no gzip or brotli variant.
    let mut x: u32 = 12345;
    let png: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    std::fs::write(site.join("static/img/pic.png"), png).unwrap();
    std::fs::write(root.join("secret.txt"), SECRET).unwrap();
    site
}

/// Sends raw bytes on a fresh TCP connection and reads the answer until
/// the server closes (send `Connection: close`).
pub fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// `GET path` with `Host: host` and extra header lines, Connection: close.
pub fn get(addr: SocketAddr, path: &str, host: &str, extra: &str) -> String {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n")
            .as_bytes(),
    )
}

/// The status code of a raw HTTP/1.1 answer.
pub fn status(answer: &str) -> u16 {
    answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"))
}

/// The value of header `name` in a raw answer.
pub fn header<'a>(answer: &'a str, name: &str) -> Option<&'a str> {
    let head = answer.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A rustls client trusting `ca_pem` and offering `alpn`.
pub fn tls_client(ca_pem: &str, alpn: &[&[u8]]) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    TlsConnector::from(Arc::new(config))
}

/// Opens a TLS connection to `addr` for the name `name`.
pub async fn tls_connect(
    connector: &TlsConnector,
    addr: SocketAddr,
    name: &str,
) -> TlsStream<tokio::net::TcpStream> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from(name.to_string()).unwrap();
    connector.connect(name, tcp).await.expect("TLS handshake")
}

/// The serial number of the certificate the server presented.
pub fn peer_serial(stream: &TlsStream<tokio::net::TcpStream>) -> u64 {
    let der = &stream.get_ref().1.peer_certificates().unwrap()[0];
    let (_, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    cert.raw_serial()
        .iter()
        .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// An HTTP/1.1 client connection over `io`.
pub async fn h1<IO>(io: IO) -> hyper::client::conn::http1::SendRequest<Empty<Bytes>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

/// An HTTP/2 client connection over `io`.
pub async fn h2<IO>(io: IO) -> hyper::client::conn::http2::SendRequest<Empty<Bytes>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// A request with no body.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)]) -> http::Request<Empty<Bytes>> {
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Empty::new()).unwrap()
}

/// Collects a response: status, headers and body.
pub async fn collect(
    resp: http::Response<hyper::body::Incoming>,
) -> (http::StatusCode, http::HeaderMap, Bytes) {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (parts.status, parts.headers, body)
}

/// A certbot-shaped directory for `blog.test` in `root/letsencrypt`.
pub fn certbot(root: &Path) -> testbed::CertbotDir {
    testbed::CertbotDir::create(&root.join("letsencrypt"), "blog.test").unwrap()
}
