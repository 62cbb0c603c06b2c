//! A small real hyper server for the load generator's tests: HTTP/1.1 and
//! h2 (auto-detected), optional TLS from a certbot-shaped test directory,
//! accept counting, periodic stalls, and a kill switch.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

thread_local! {
    /// True on the test server's own threads, so a test can tell the
    /// generator's work from the server's.
    pub static SERVER_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The body every `/` response carries.
pub const BODY: &[u8] = &[b'x'; 1000];

/// How the test server behaves.
#[derive(Debug, Clone, Default)]
pub struct Behaviour {
    /// Every `period`, hold all responses for `length` (a GC-like pause).
    pub stall: Option<(Duration, Duration)>,
    /// Serve TLS with this certbot-shaped directory's live cert and key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

/// A running test server; stopped (as if killed) on drop or `kill`.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepts: Arc<AtomicU64>,
    /// Requests answered so far.
    pub requests: Arc<AtomicU64>,
    /// Source addresses of the accepted connections.
    pub peers: Arc<std::sync::Mutex<Vec<std::net::IpAddr>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Starts a plain-HTTP server that, every `period`, holds all
    /// responses for `length`.
    pub fn stalling(period: Duration, length: Duration) -> Self {
        Self::start(Behaviour {
            stall: Some((period, length)),
            ..Default::default()
        })
    }

    /// Starts a server on 127.0.0.1 on an ephemeral port.
    pub fn start(behaviour: Behaviour) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(|| SERVER_THREAD.with(|s| s.set(true)))
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let accepts = Arc::new(AtomicU64::new(0));
        let requests = Arc::new(AtomicU64::new(0));
        let tls = behaviour
            .tls
            .as_ref()
            .map(|(cert, key)| tls_acceptor(cert, key));
        let started = Instant::now();
        let peers = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (acc, req, seen) = (accepts.clone(), requests.clone(), peers.clone());
        let stall = behaviour.stall;
        runtime.spawn(async move {
            loop {
                let Ok((tcp, peer)) = listener.accept().await else {
                    continue;
                };
                acc.fetch_add(1, Ordering::SeqCst);
                seen.lock().unwrap().push(peer.ip());
                let _ = tcp.set_nodelay(true);
                let req = req.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |r| handle(r, req.clone(), started, stall));
                    let builder = auto::Builder::new(TokioExecutor::new());
                    match tls {
                        Some(acceptor) => {
                            if let Ok(s) = acceptor.accept(tcp).await {
                                let _ = builder.serve_connection(TokioIo::new(s), svc).await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), svc).await;
                        }
                    }
                });
            }
        });
        TestServer {
            addr,
            accepts,
            requests,
            peers,
            runtime: Some(runtime),
        }
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Stops the server at once: the listener closes and every connection
    /// is dropped mid-flight.
    pub fn kill(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    count: Arc<AtomicU64>,
    started: Instant,
    stall: Option<(Duration, Duration)>,
) -> Result<Response<BoxBody<Bytes, Infallible>>, Infallible> {
    if let Some((period, length)) = stall {
        let into = started.elapsed().as_nanos() % period.as_nanos();
        let into = Duration::from_nanos(into as u64);
        if into < length {
            tokio::time::sleep(length - into).await;
        }
    }
    count.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path();
    if let Some(code) = path.strip_prefix("/status/") {
        let code = code.parse().unwrap_or(500);
        let body = Full::new(Bytes::from_static(b"status")).boxed();
        return Ok(Response::builder().status(code).body(body).unwrap());
    }
    if path == "/chunked" {
        let chunks = (0..3).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"chunk"))));
        let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
        return Ok(Response::new(body));
    }
    Ok(Response::new(Full::new(Bytes::from_static(BODY)).boxed()))
}

fn tls_acceptor(cert: &Path, key: &Path) -> tokio_rustls::TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A loadgen `Config` from command-line style arguments.
pub fn config(args: &[&str]) -> loadgen::config::Config {
    use clap::Parser as _;
    let mut argv = vec!["loadgen"];
    argv.extend_from_slice(args);
    let cli = loadgen::cli::Cli::try_parse_from(argv).unwrap();
    cli.run.to_config().unwrap()
}

/// Asserts the report's counts add up: sent = completed + errors + unfinished.
pub fn assert_counts_add_up(r: &loadgen::report::Report) {
    let s = &r.summary;
    assert_eq!(
        s.requests_sent,
        s.requests_completed + s.errors + s.unfinished,
        "sent != completed + errors + unfinished: {s:#?}"
    );
    assert_eq!(s.errors, s.errors_by_kind.values().sum::<u64>());
}
