//! The scenarios and the scale they run at: full counts for the report
//! (`reliability`), a quicker pass (`--quick`), and the small counts the
//! tests use. One function per scenario, each returning an [`Outcome`].

use std::time::Duration;

use crate::blog::BlogOptions;
use crate::h2flood::{self, Flood};
use crate::hostile::{self, under_attack};
use crate::outcome::Outcome;
use crate::wire::Transport;
use crate::{docker, faults, probe, targets, tls_scan, ScenarioError};

/// How many of everything a run tries.
#[derive(Debug, Clone)]
pub struct Scale {
    /// `full`, `quick` or `test`.
    pub name: &'static str,
    /// Slowloris connections per transport.
    pub slowloris: u32,
    /// Connections per malformed-request shape.
    pub per_shape: u32,
    /// Pipelining connections.
    pub pipeline_conns: u32,
    /// Requests pipelined on each.
    pub pipeline_requests: u32,
    /// HTTP/2 flooding connections per transport.
    pub h2_conns: u32,
    /// Streams each flooding connection sends.
    pub h2_streams: u32,
    /// TLS garbage connections.
    pub tls_garbage: u32,
    /// Stalled handshakes.
    pub stalled: u32,
    /// The server's `--header-timeout`, s.
    pub header_timeout: u64,
    /// The server's `--handshake-timeout`, s.
    pub handshake_timeout: u64,
    /// How long steady load runs around a fault.
    pub load_window: Duration,
    /// Connections held open against the memory-limited container.
    pub memory_connections: u32,
    /// SIGKILLs of the container.
    pub kills: u32,
    /// The server's RSS must stay under this, KiB.
    pub rss_bound_kib: u64,
}

impl Scale {
    /// The counts the report is made with.
    pub fn full() -> Scale {
        Scale {
            name: "full",
            slowloris: 1000,
            per_shape: 40,
            pipeline_conns: 8,
            pipeline_requests: 10_000,
            h2_conns: 4,
            h2_streams: 10_000,
            tls_garbage: 300,
            stalled: 1000,
            header_timeout: 10,
            handshake_timeout: 10,
            load_window: Duration::from_secs(10),
            memory_connections: 4000,
            kills: 3,
            rss_bound_kib: 256 * 1024,
        }
    }

    /// Full counts, shorter timeouts and windows.
    pub fn quick() -> Scale {
        Scale {
            name: "quick",
            header_timeout: 3,
            handshake_timeout: 3,
            load_window: Duration::from_secs(5),
            kills: 1,
            ..Scale::full()
        }
    }

    /// Small counts for the tests.
    pub fn test() -> Scale {
        Scale {
            name: "test",
            slowloris: 200,
            per_shape: 4,
            pipeline_conns: 2,
            pipeline_requests: 1000,
            h2_conns: 1,
            h2_streams: 2000,
            tls_garbage: 30,
            stalled: 100,
            header_timeout: 2,
            handshake_timeout: 2,
            load_window: Duration::from_secs(4),
            memory_connections: 1000,
            kills: 1,
            rss_bound_kib: 256 * 1024,
        }
    }

    /// The server options hostile scenarios run with.
    pub fn blog_options(&self) -> BlogOptions {
        BlogOptions {
            header_timeout: self.header_timeout,
            handshake_timeout: self.handshake_timeout,
            ..BlogOptions::default()
        }
    }
}

/// One scenario of the report.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    /// Its name (what `--only` matches).
    pub name: &'static str,
    /// It needs Docker (and takes the machine-wide lock).
    pub docker: bool,
    /// Runs it.
    pub run: fn(&Scale) -> Result<Outcome, ScenarioError>,
}

/// Every scenario, in report order.
pub fn all() -> Vec<Scenario> {
    let s = |name, docker, run| Scenario { name, docker, run };
    vec![
        s("quiet-baseline", false, quiet_baseline),
        s("slowloris-http", false, |sc| slowloris(sc, Transport::Http)),
        s("slowloris-https", false, |sc| {
            slowloris(sc, Transport::Https)
        }),
        s("oversized-heads", false, oversized),
        s("malformed-heads", false, malformed),
        s("invalid-methods-versions", false, methods),
        s("smuggling-shapes", false, smuggling),
        s("pipelining-flood", false, pipelining),
        s("h2-rapid-reset", false, |sc| h2(sc, Flood::RapidReset)),
        s("h2-stream-flood", false, |sc| h2(sc, Flood::OpenStreams)),
        s("tls-garbage", false, tls_garbage),
        s("tls-stalled-handshakes", false, stalled),
        s("tls-scan", false, tls_scan::scenario),
        s("cert-dir-vanishes", false, faults::cert_dir_vanishes),
        s("cert-unreadable", false, faults::cert_unreadable),
        s("cert-broken-pair", false, faults::cert_broken_pair),
        s("renewal-under-load", false, faults::renewal_under_load),
        s(
            "graceful-stop-under-load",
            false,
            faults::graceful_stop_under_load,
        ),
        s("loadgen-target-dies", false, targets::target_dies),
        s("loadgen-target-hangs", false, targets::target_hangs),
        s("loadgen-target-resets", false, targets::target_resets),
        s("container-sigkill-restart", true, docker::sigkill_restart),
        s("container-64mib-connections", true, docker::memory_limit),
    ]
}

/// The well-behaved client alone against a fresh server: the baseline
/// every attack's p99 is compared with.
pub fn quiet_baseline(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let window = Duration::from_secs(scale.header_timeout + 4);
    let blog = crate::blog::Blog::start(scale.blog_options())?;
    probe::run(&blog, &probe::ProbeSpec::steady(Duration::from_millis(500)))?;
    let memory = blog.watch_memory();
    let stats = probe::run(&blog, &probe::ProbeSpec::steady(window))?;
    let mut out = Outcome::new(
        "quiet-baseline",
        "the well-behaved client alone (100 requests/s, 2 keep-alive HTTPS connections)",
        stats.sent,
    );
    out.count_as("answered", stats.completed);
    out.add_probe(stats);
    out.add_memory(memory.finish(), scale.rss_bound_kib);
    Ok(out)
}

fn slowloris(scale: &Scale, transport: Transport) -> Result<Outcome, ScenarioError> {
    let (n, t) = (scale.slowloris, scale.header_timeout);
    under_attack(
        &format!("slowloris-{}", transport.as_str()),
        &format!(
            "{n} connections over {} sending a request line, then one header byte a second",
            transport.as_str()
        ),
        scale,
        Duration::from_secs(t + 4),
        move |d| hostile::slowloris(d, transport, n, t),
    )
}

fn shapes(
    name: &str,
    what: &str,
    scale: &Scale,
    list: Vec<hostile::Shape>,
) -> Result<Outcome, ScenarioError> {
    let per = scale.per_shape;
    let tried = format!(
        "{what} ({} shapes x {per} connections, half HTTP, half HTTPS): {}",
        list.len(),
        list.iter().map(|s| s.label).collect::<Vec<_>>().join(", ")
    );
    under_attack(name, &tried, scale, Duration::from_secs(4), move |d| {
        hostile::send_shapes(d, list, per, Duration::from_secs(5))
    })
}

fn oversized(scale: &Scale) -> Result<Outcome, ScenarioError> {
    shapes(
        "oversized-heads",
        "oversized request heads",
        scale,
        hostile::oversized_shapes(),
    )
}

fn malformed(scale: &Scale) -> Result<Outcome, ScenarioError> {
    shapes(
        "malformed-heads",
        "malformed request heads",
        scale,
        hostile::malformed_shapes(),
    )
}

fn methods(scale: &Scale) -> Result<Outcome, ScenarioError> {
    shapes(
        "invalid-methods-versions",
        "invalid methods and versions",
        scale,
        hostile::method_version_shapes(),
    )
}

fn smuggling(scale: &Scale) -> Result<Outcome, ScenarioError> {
    shapes(
        "smuggling-shapes",
        "request smuggling shapes, each followed by a smuggled GET",
        scale,
        hostile::smuggling_shapes(),
    )
}

fn pipelining(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let (c, r) = (scale.pipeline_conns, scale.pipeline_requests);
    under_attack(
        "pipelining-flood",
        &format!("{c} connections (half HTTPS) each pipelining {r} GET /healthz as fast as the socket takes them"),
        scale,
        Duration::from_secs(5),
        move |d| hostile::pipeline_flood(d, c, r),
    )
}

fn h2(scale: &Scale, flood: Flood) -> Result<Outcome, ScenarioError> {
    let (c, n) = (scale.h2_conns, scale.h2_streams);
    let (name, what) = match flood {
        Flood::RapidReset => (
            "h2-rapid-reset",
            format!("{} h2 connections (h2c and TLS) each sending up to {n} HEADERS+RST_STREAM pairs", c * 2),
        ),
        Flood::OpenStreams => (
            "h2-stream-flood",
            format!("{} h2 connections (h2c and TLS) each opening up to {n} streams that never finish (limit 256)", c * 2),
        ),
    };
    under_attack(name, &what, scale, Duration::from_secs(5), move |d| {
        h2flood::flood(d, flood, c, n)
    })
}

fn tls_garbage(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let (n, t) = (scale.tls_garbage, scale.handshake_timeout);
    under_attack(
        "tls-garbage",
        &format!("{n} connections to the TLS port sending random bytes, plaintext HTTP or a truncated record"),
        scale,
        Duration::from_secs(t + 3),
        move |d| hostile::tls_garbage(d, n, t),
    )
}

fn stalled(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let (n, t) = (scale.stalled, scale.handshake_timeout);
    under_attack(
        "tls-stalled-handshakes",
        &format!("{n} connections to the TLS port sending nothing or half a ClientHello"),
        scale,
        Duration::from_secs(t + 4),
        move |d| hostile::stalled_handshakes(d, n, t),
    )
}
