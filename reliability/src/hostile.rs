//! Hostile HTTP/1.1 and TLS clients against a fresh server while the
//! well-behaved client runs: slowloris, oversized and malformed heads,
//! invalid methods and versions, smuggling shapes, pipelining floods, TLS
//! garbage and stalled handshakes. Each attack connection's fate is
//! tallied; the scenario passes when every one was refused or closed
//! cleanly, the good client kept being served, and memory stayed bounded.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::blog::Blog;
use crate::outcome::Outcome;
use crate::probe::{self, ProbeSpec};
use crate::scenario::Scale;
use crate::wire::{self, Dialer, End, Reply, Transport};
use crate::ScenarioError;

/// What an attack reports: its connections by outcome class and how many
/// of them the server handled cleanly.
#[derive(Debug, Default)]
pub struct Tally {
    /// Connections (or streams) by outcome class.
    pub classes: BTreeMap<String, u64>,
    /// How many were handled cleanly.
    pub clean: u64,
    /// How many were tried.
    pub total: u64,
    /// Extra figures: (name, value, unit, how).
    pub figures: Vec<(String, f64, String, String)>,
}

impl Tally {
    /// Counts one reply under `label`, clean or not by `clean`.
    pub fn add(&mut self, label: &str, reply: &Reply, clean: bool) {
        let class = if label.is_empty() {
            reply.class()
        } else {
            format!("{label}: {}", reply.class())
        };
        self.add_class(class, clean);
    }

    /// Counts one attempt in `class`.
    pub fn add_class(&mut self, class: String, clean: bool) {
        *self.classes.entry(class).or_default() += 1;
        self.total += 1;
        self.clean += u64::from(clean);
    }
}

/// Raises this process's open-files limit to the hard limit, so a
/// thousand attack connections fit.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// A multi-threaded runtime for the attackers (two threads: the machine
/// is shared).
pub fn runtime() -> Result<tokio::runtime::Runtime, ScenarioError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(ScenarioError::io("starting the attackers' runtime"))
}

/// Runs `attack` against a fresh server while the well-behaved client
/// runs for `window`, and checks the server's behaviour.
pub fn under_attack<F, Fut>(
    name: &str,
    tried: &str,
    scale: &Scale,
    window: Duration,
    attack: F,
) -> Result<Outcome, ScenarioError>
where
    F: FnOnce(Dialer) -> Fut,
    Fut: Future<Output = Tally>,
{
    raise_fd_limit();
    let mut blog = Blog::start(scale.blog_options())?;
    let dialer = Dialer::new(&blog)?;
    // Warm the server (first handshakes, page cache) before measuring.
    probe::run(&blog, &ProbeSpec::steady(Duration::from_millis(500)))?;

    let memory = blog.watch_memory();
    let probe = probe::spawn(&blog, &ProbeSpec::steady(window));
    std::thread::sleep(Duration::from_millis(300));
    let (cpu_before, started) = (blog.cpu_seconds(), std::time::Instant::now());
    let tally = runtime()?.block_on(attack(dialer));
    let (cpu, wall) = (
        blog.cpu_seconds() - cpu_before,
        started.elapsed().as_secs_f64(),
    );
    let probe = probe::join(probe)?;
    let memory = memory.finish();

    let mut out = Outcome::new(name, tried, tally.total);
    for (class, n) in &tally.classes {
        out.count_as(class.clone(), *n);
    }
    out.check(
        "every hostile connection is refused or closed cleanly",
        tally.clean == tally.total && tally.total > 0,
        format!("{} of {} clean", tally.clean, tally.total),
    );
    out.figure(
        "server CPU during the attack",
        (cpu / wall.max(0.001) * 100.0).round() / 100.0,
        "cores",
        format!(
            "(utime + stime from /proc/PID/stat) / wall time, {cpu:.2} s of CPU over {wall:.2} s; the machine has 2 cores shared with the attacker and the client"
        ),
    );
    for (name, value, unit, how) in tally.figures {
        out.figure(&name, value, &unit, how);
    }
    out.add_probe(probe);
    out.add_memory(memory, scale.rss_bound_kib);
    let alive = blog.running();
    out.check(
        "the server is still running",
        alive,
        if alive { "running".into() } else { blog.log() },
    );
    Ok(out)
}

/// Sends `request` on a fresh connection and reads what comes back for
/// up to `wait`.
pub async fn send_one(
    dialer: &Dialer,
    transport: Transport,
    request: &[u8],
    wait: Duration,
) -> Reply {
    let Ok(mut io) = dialer.connect(transport, false).await else {
        return failed_connect();
    };
    if let Err(e) = io.write_all(request).await {
        // The server may close on the first bad bytes, before all are sent.
        let end = if e.kind() == std::io::ErrorKind::ConnectionReset {
            End::Reset
        } else {
            End::Closed
        };
        let mut reply = wire::read_replies(&mut io, Duration::from_millis(200)).await;
        if reply.end == End::Open {
            reply.end = end;
        }
        return reply;
    }
    let _ = io.flush().await;
    wire::read_replies(&mut io, wait).await
}

fn failed_connect() -> Reply {
    Reply {
        statuses: Vec::new(),
        end: End::Reset,
        elapsed: Duration::ZERO,
    }
}

/// Sends every `(label, request, expect)` shape `per_shape` times over
/// both transports, a few connections at a time; `expect` judges a reply.
pub async fn send_shapes(
    dialer: Dialer,
    shapes: Vec<Shape>,
    per_shape: u32,
    wait: Duration,
) -> Tally {
    let mut tally = Tally::default();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(32));
    let mut tasks = Vec::new();
    for shape in shapes {
        let shape = std::sync::Arc::new(shape);
        for i in 0..per_shape {
            let transport = if i % 2 == 0 {
                Transport::Http
            } else {
                Transport::Https
            };
            let (dialer, shape, sem) = (dialer.clone(), shape.clone(), sem.clone());
            tasks.push(tokio::spawn(async move {
                let _permit = sem.acquire_owned().await;
                let reply = send_one(&dialer, transport, &shape.request, wait).await;
                let clean = (shape.expect)(&reply);
                (shape.label, reply, clean)
            }));
        }
    }
    for t in tasks {
        if let Ok((label, reply, clean)) = t.await {
            tally.add(label, &reply, clean);
        }
    }
    tally
}

/// One malformed request and what counts as handling it well.
pub struct Shape {
    /// What it is.
    pub label: &'static str,
    /// The bytes sent.
    pub request: Vec<u8>,
    /// True when the reply is what a careful server does.
    pub expect: fn(&Reply) -> bool,
}

fn shape(label: &'static str, request: impl Into<Vec<u8>>) -> Shape {
    Shape {
        label,
        request: request.into(),
        expect: Reply::refused_cleanly,
    }
}

/// A well-formed GET with `Connection: close` and extra header lines.
fn get_with(extra: &str) -> String {
    format!("GET / HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
}

/// Oversized heads: one 64 KiB header, 300 small headers, a 1 MiB target.
pub fn oversized_shapes() -> Vec<Shape> {
    vec![
        shape(
            "64 KiB header value",
            get_with(&format!("X-Big: {}\r\n", "a".repeat(64 * 1024))),
        ),
        shape(
            "300 headers",
            get_with(
                &(0..300)
                    .map(|i| format!("X-H{i}: v\r\n"))
                    .collect::<String>(),
            ),
        ),
        shape(
            "1 MiB request target",
            format!(
                "GET /{} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                "a".repeat(1024 * 1024)
            ),
        ),
    ]
}

/// Heads that break the grammar of RFC 9112.
pub fn malformed_shapes() -> Vec<Shape> {
    vec![
        shape("header without colon", get_with("NoColonHere\r\n")),
        shape("space before colon", get_with("X-Bad : 1\r\n")),
        shape("NUL in header value", get_with("X-Bad: a\0b\r\n")),
        shape("CR inside header value", get_with("X-Bad: a\rb\r\n")),
        shape(
            "obs-fold continuation line",
            get_with("X-Fold: a\r\n b\r\n"),
        ),
        shape("non-token header name", get_with("X(y): 1\r\n")),
        shape(
            "HTTP/1.1 without Host",
            "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        ),
        shape("two Host headers", get_with("Host: other.example\r\n")),
        shape("binary garbage", wire::noise(2048, 7)),
        shape(
            "request line with bare LF and spaces",
            "GET  /  HTTP/1.1 \nHost: x\n\n".to_string(),
        ),
    ]
}

/// Invalid methods and versions.
pub fn method_version_shapes() -> Vec<Shape> {
    vec![
        shape(
            "control byte in method",
            "G\x01T / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
        shape(
            "16 KiB method",
            format!(
                "{} / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                "G".repeat(16 * 1024)
            ),
        ),
        shape(
            "unknown method BREW (405)",
            "BREW / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
        shape(
            "POST with a body (405)",
            "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
        ),
        shape(
            "version HTTP/1.2",
            "GET / HTTP/1.2\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
        shape(
            "version HTTP/2.0 on HTTP/1 framing",
            "GET / HTTP/2.0\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
        shape(
            "version HTTP/9.9",
            "GET / HTTP/9.9\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
        shape(
            "lower-case version",
            "GET / http/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        ),
        shape("HTTP/0.9 request line", "GET /\r\n\r\n"),
    ]
}

/// Request smuggling shapes: the server must refuse them, or answer the
/// first request alone and close (RFC 9112 §6.1), never answer the
/// smuggled one.
pub fn smuggling_shapes() -> Vec<Shape> {
    let smuggled = "GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n";
    vec![
        shape(
            "Content-Length with Transfer-Encoding",
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\
                 Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        shape(
            "Transfer-Encoding then Content-Length",
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\
                 Content-Length: 60\r\n\r\n0\r\n\r\n{smuggled}"
            ),
        ),
        shape(
            "two different Content-Length",
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\
                 Content-Length: 46\r\n\r\n{smuggled}"
            ),
        ),
        shape(
            "Content-Length list 0, 46",
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0, 46\r\n\r\n{smuggled}"
            ),
        ),
        shape(
            "unknown Transfer-Encoding",
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n\
                 0\r\n\r\n{smuggled}"
            ),
        ),
        shape(
            "chunked not last",
            format!(
                "POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n\
                 0\r\n\r\n{smuggled}"
            ),
        ),
        shape(
            "negative Content-Length",
            format!("POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n{smuggled}"),
        ),
    ]
}

/// `n` slowloris connections on `transport`: a request line, then one
/// header byte a second, never the blank line. The server must close each
/// within its header timeout.
pub async fn slowloris(dialer: Dialer, transport: Transport, n: u32, header_timeout: u64) -> Tally {
    let wait = Duration::from_secs(header_timeout + 5);
    let mut tasks = Vec::new();
    for _ in 0..n {
        let dialer = dialer.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(io) = dialer.connect(transport, false).await else {
                return failed_connect();
            };
            let (mut rd, mut wr) = tokio::io::split(io);
            let writer = tokio::spawn(async move {
                if wr
                    .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
                    .await
                    .is_err()
                {
                    return;
                }
                for b in b"X-Slow: 1\r\n".iter().cycle() {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if wr.write_all(&[*b]).await.is_err() || wr.flush().await.is_err() {
                        return;
                    }
                }
            });
            let reply = wire::read_replies(&mut rd, wait).await;
            writer.abort();
            reply
        }));
    }
    let mut tally = Tally::default();
    let mut times: Vec<f64> = Vec::new();
    for t in tasks {
        if let Ok(reply) = t.await {
            let clean = reply.end != End::Open && reply.statuses.iter().all(|s| *s >= 400);
            if reply.end != End::Open {
                times.push(reply.elapsed.as_secs_f64());
            }
            tally.add("", &reply, clean);
        }
    }
    times.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (times.first(), times.last()) {
        let how = format!(
            "time from connect to the server's close, over {} slowloris connections ({}), header timeout {header_timeout} s",
            times.len(),
            transport.as_str()
        );
        tally.figures.push((
            "slowloris close, earliest".into(),
            round(*first),
            "s".into(),
            how.clone(),
        ));
        tally.figures.push((
            "slowloris close, latest".into(),
            round(*last),
            "s".into(),
            how,
        ));
    }
    tally
}

/// `conns` connections each pipelining `per_conn` GETs in one stream of
/// writes while reading; every request must be answered, in order.
pub async fn pipeline_flood(dialer: Dialer, conns: u32, per_conn: u32) -> Tally {
    let mut tasks = Vec::new();
    for c in 0..conns {
        let dialer = dialer.clone();
        let transport = if c % 2 == 0 {
            Transport::Http
        } else {
            Transport::Https
        };
        tasks.push(tokio::spawn(async move {
            let Ok(io) = dialer.connect(transport, false).await else {
                return (transport, failed_connect());
            };
            let (mut rd, mut wr) = tokio::io::split(io);
            let writer = tokio::spawn(async move {
                let one = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
                let batch: Vec<u8> = one.repeat(100);
                let mut sent = 0;
                while sent + 100 < per_conn {
                    if wr.write_all(&batch).await.is_err() {
                        return;
                    }
                    sent += 100;
                }
                for _ in sent..per_conn - 1 {
                    let _ = wr.write_all(one).await;
                }
                let _ = wr
                    .write_all(
                        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                    )
                    .await;
                let _ = wr.flush().await;
                // Keep the write half open until the server closes.
                tokio::time::sleep(Duration::from_secs(120)).await;
            });
            let reply = wire::read_replies(&mut rd, Duration::from_secs(60)).await;
            writer.abort();
            (transport, reply)
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok((transport, reply)) = t.await {
            let answered = reply.statuses.iter().filter(|s| **s == 200).count() as u32;
            let clean = answered == per_conn && reply.end == End::Closed;
            let class = if clean {
                format!(
                    "{}: all {per_conn} answered 200, then closed",
                    transport.as_str()
                )
            } else {
                format!(
                    "{}: {answered} of {per_conn} answered, {}",
                    transport.as_str(),
                    reply.class()
                )
            };
            tally.add_class(class, clean);
        }
    }
    tally
}

/// `n` TLS connections sending garbage instead of a ClientHello (random
/// bytes, a plaintext HTTP request, a record header announcing 16 KiB
/// that never come).
pub async fn tls_garbage(dialer: Dialer, n: u32, handshake_timeout: u64) -> Tally {
    let wait = Duration::from_secs(handshake_timeout + 5);
    let mut tasks = Vec::new();
    for i in 0..n {
        let dialer = dialer.clone();
        tasks.push(tokio::spawn(async move {
            let (label, bytes): (&str, Vec<u8>) = match i % 3 {
                0 => ("random bytes", wire::noise(1024, u64::from(i) + 1)),
                1 => ("plaintext HTTP on the TLS port", get_with("").into_bytes()),
                _ => ("truncated record", vec![0x16, 0x03, 0x01, 0x40, 0x00, 0x01]),
            };
            let Ok(mut s) = dialer.tcp(Transport::Https).await else {
                return (label, failed_connect());
            };
            let _ = s.write_all(&bytes).await;
            (label, wire::read_replies(&mut s, wait).await)
        }));
    }
    let mut tally = Tally::default();
    for t in tasks {
        if let Ok((label, reply)) = t.await {
            let clean = reply.end != End::Open && reply.statuses.is_empty();
            tally.add(label, &reply, clean);
        }
    }
    tally
}

/// `n` TCP connections to the TLS port that send nothing or half a
/// ClientHello and stall: each must be closed after the handshake timeout.
pub async fn stalled_handshakes(dialer: Dialer, n: u32, handshake_timeout: u64) -> Tally {
    let wait = Duration::from_secs(handshake_timeout + 5);
    let mut tasks = Vec::new();
    for i in 0..n {
        let dialer = dialer.clone();
        tasks.push(tokio::spawn(async move {
            let Ok(mut s) = dialer.tcp(Transport::Https).await else {
                return ("connect failed", failed_connect());
            };
            let label = if i % 2 == 0 {
                "silent"
            } else {
                // A handshake record header and the first bytes of a
                // ClientHello, then nothing.
                let _ = s
                    .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01])
                    .await;
                "half a ClientHello"
            };
            (label, wire::read_replies(&mut s, wait).await)
        }));
    }
    let mut tally = Tally::default();
    let mut latest = 0f64;
    for t in tasks {
        if let Ok((label, reply)) = t.await {
            let clean = reply.end != End::Open;
            if clean {
                latest = latest.max(reply.elapsed.as_secs_f64());
            }
            tally.add(label, &reply, clean);
        }
    }
    tally.figures.push((
        "stalled handshake closed after, latest".into(),
        round(latest),
        "s".into(),
        format!("time from connect to the server's close over {n} stalled handshakes, handshake timeout {handshake_timeout} s"),
    ));
    tally
}

fn round(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}
