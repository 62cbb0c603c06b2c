//! The two comparisons, cell by cell, with repeats interleaved: the servers
//! under one CPU budget each, driven by `loadgen` from the other core; and
//! the generators, each pinned to the other core, against one uncapped
//! nginx that counts the requests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tracing::info;

use crate::export::export_site;
use crate::generator::{oha_percentiles_us, run_pinned, GeneratorKind, GeneratorRun};
use crate::peer::{PeerKind, PeerSetup, RunningPeer, DOMAIN};
use crate::tools::Tools;
use crate::PeersError;

/// The core the servers run on.
pub const SERVER_CORE: &str = "0";
/// The core every generator is pinned to.
pub const GENERATOR_CORE: u32 = 1;

/// How a peers run is shaped.
#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// The short smoke-test shape (`--quick`).
    pub quick: bool,
    /// Interleaved repeats of every cell.
    pub repeats: u32,
    /// Measured seconds of each load (after a 1 s warm-up for loadgen's
    /// server cells).
    pub duration_s: u32,
    /// CPU quota of each compared server, in cores (cgroup v1 CFS).
    pub server_cpus: f64,
    /// Connections of the keep-alive maximum-rate cells and of the
    /// generator comparison.
    pub connections: u32,
    /// Connections of the new-connection-per-request cell.
    pub handshake_connections: u32,
    /// Total rate of the fixed-rate p99 cell, requests/s.
    pub fixed_rate: u32,
    /// Connections of the fixed-rate cells.
    pub fixed_rate_connections: u32,
    /// Connections held open for the peak RSS cell.
    pub rss_connections: u32,
    /// Total rates of the latency comparison against uncapped nginx,
    /// requests/s; the first is the one the p99 target is checked at.
    /// oha's dispatcher wakes on tokio's 1 ms timer and stamps each request
    /// with the time it woke, so above 1000/s it sends a burst of
    /// rate/1000 requests per tick: its latency then includes its own
    /// bursts queueing in its one thread, which loadgen (spaced sends)
    /// does not make.
    pub latency_rates: Vec<u32>,
    /// The page every load asks for.
    pub page: String,
}

impl Options {
    /// The full comparison: 3 repeats of 10 s cells.
    pub fn full() -> Self {
        Options {
            quick: false,
            repeats: 3,
            duration_s: 10,
            server_cpus: 0.5,
            connections: 64,
            handshake_connections: 16,
            fixed_rate: 2000,
            fixed_rate_connections: 32,
            rss_connections: 1000,
            latency_rates: vec![1000, 5000],
            page: "/".into(),
        }
    }

    /// The smoke test: one repeat of 2 s cells (about a minute and a half).
    pub fn quick() -> Self {
        Options {
            quick: true,
            repeats: 1,
            duration_s: 2,
            ..Options::full()
        }
    }
}

/// A cell of the server comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ServerCell {
    /// Peak RSS with `rss_connections` open HTTPS connections at a low rate.
    OpenConnections,
    /// Closed loop, keep-alive, plain HTTP: maximum rate.
    KeepaliveHttp,
    /// Closed loop, keep-alive, HTTPS: maximum rate.
    KeepaliveHttps,
    /// Closed loop, a new HTTPS connection per request: maximum rate.
    NewHttpsConnection,
    /// Open loop at `fixed_rate`, keep-alive HTTPS: corrected latency.
    FixedRateHttps,
}

impl ServerCell {
    /// Every cell, in the order each server instance runs them (the RSS
    /// cell first, so its peak is not an earlier cell's).
    pub const ALL: [ServerCell; 5] = [
        ServerCell::OpenConnections,
        ServerCell::KeepaliveHttp,
        ServerCell::KeepaliveHttps,
        ServerCell::NewHttpsConnection,
        ServerCell::FixedRateHttps,
    ];

    /// Its name in files, tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            ServerCell::OpenConnections => "open-connections",
            ServerCell::KeepaliveHttp => "keepalive-http",
            ServerCell::KeepaliveHttps => "keepalive-https",
            ServerCell::NewHttpsConnection => "new-https-connection",
            ServerCell::FixedRateHttps => "fixed-rate-https",
        }
    }
}

/// One server cell of one repeat, measured by loadgen and the cgroup.
#[derive(Debug, Clone, Serialize)]
pub struct ServerSample {
    /// The server.
    pub peer: PeerKind,
    /// The cell.
    pub cell: ServerCell,
    /// Repeat number, from 0.
    pub repeat: u32,
    /// Completed requests per second (loadgen's count over its measured
    /// window).
    pub rate_rps: f64,
    /// Requests that failed (loadgen's errors).
    pub errors: u64,
    /// Connections loadgen opened, warm-up included.
    pub connections_opened: u64,
    /// Corrected p50 latency, µs.
    pub p50_us: u64,
    /// Corrected p99 latency, µs.
    pub p99_us: u64,
    /// Server CPU over loadgen's whole run (cpuacct delta / wall), cores.
    pub server_cpu_cores: f64,
    /// loadgen CPU (user + system) over its whole run, cores.
    pub generator_cpu_cores: f64,
    /// loadgen fell behind its schedule (open loop).
    pub fell_behind: bool,
    /// Sum of VmHWM over the server's processes after the cell, KiB.
    pub peak_rss_kib: u64,
    /// Sum of VmRSS over them before the cell, KiB.
    pub rss_before_kib: u64,
}

/// One generator run against the reference nginx.
#[derive(Debug, Clone, Serialize)]
pub struct GeneratorSample {
    /// The generator.
    pub generator: GeneratorKind,
    /// Repeat number, from 0.
    pub repeat: u32,
    /// Requests nginx counted (stub_status delta, the status read itself
    /// taken out) over the generator's whole run.
    pub server_requests: u64,
    /// The generator's wall time, spawn to exit, s.
    pub wall_s: f64,
    /// Its user CPU, s.
    pub user_s: f64,
    /// Its system CPU, s.
    pub system_s: f64,
    /// (user + system) / server-counted requests, µs.
    pub cpu_us_per_request: f64,
    /// Server-counted requests / wall time, requests/s.
    pub server_rate_rps: f64,
    /// Generator CPU / wall, cores (1.0: its core was full).
    pub generator_cpu_cores: f64,
    /// nginx CPU / wall, cores (1.0: nginx's core was full).
    pub server_cpu_cores: f64,
    /// nginx's CPU quota in this run, cores (`None`: a whole core).
    pub server_quota_cores: Option<f64>,
}

/// One fixed-rate run of the latency comparison.
#[derive(Debug, Clone, Serialize)]
pub struct LatencySample {
    /// loadgen (corrected histogram) or oha (`--latency-correction`).
    pub generator: GeneratorKind,
    /// Repeat number, from 0.
    pub repeat: u32,
    /// The rate asked for, requests/s.
    pub rate_target: u32,
    /// Requests nginx counted over the run.
    pub server_requests: u64,
    /// p50 latency, µs, as the generator reports it.
    pub p50_us: f64,
    /// p99 latency, µs, as the generator reports it.
    pub p99_us: f64,
    /// loadgen only: p99 of the corrected latency less loadgen's own send
    /// lag (a send later than its due time on a free connection), µs.
    /// oha's figure starts when its dispatcher woke, so it too leaves out
    /// the generator's own lateness but keeps a wait for a busy connection.
    pub p99_less_own_lag_us: Option<f64>,
    /// loadgen only: requests it sent over 2 ms after their due time with
    /// their connection free, i.e. its own late wake-ups.
    pub late_sends: Option<u64>,
}

/// Everything measured in one peers run.
#[derive(Debug, Clone, Serialize)]
pub struct Measurements {
    /// The server comparison.
    pub servers: Vec<ServerSample>,
    /// The generator comparison: CPU per request.
    pub generators: Vec<GeneratorSample>,
    /// The generator comparison: latency at a fixed rate.
    pub latency: Vec<LatencySample>,
    /// The page loaded and its size in bytes.
    pub page: (String, usize),
    /// How many pages were exported for nginx and static-web-server.
    pub site_pages: usize,
}

/// Set by SIGINT/SIGTERM: stop after the current load.
pub type StopFlag = Arc<AtomicBool>;

/// Runs both comparisons with `tools` under `work_dir` (certificates,
/// exported pages, configurations, logs, generator reports).
pub fn measure(
    tools: &Tools,
    options: &Options,
    work_dir: &Path,
    stop: &StopFlag,
) -> Result<Measurements, PeersError> {
    let certs = testbed::CertbotDir::create(&work_dir.join("letsencrypt"), DOMAIN)?;
    let ca = certs.write_ca(&work_dir.join("ca.pem"))?;
    let site_root = work_dir.join("site");
    let pages = export_site(None, &format!("https://{DOMAIN}"), &site_root)?;
    let page = pages
        .iter()
        .find(|p| p.path == options.page)
        .map(|p| (p.path.clone(), p.bytes))
        .ok_or_else(|| PeersError::Server {
            peer: "blog".into(),
            detail: format!(
                "serves no page at {:?}; try one of `blog paths`",
                options.page
            ),
        })?;
    let setup = PeerSetup {
        site_root,
        letsencrypt_dir: certs.root().to_path_buf(),
        fullchain: certs.fullchain_path(),
        privkey: certs.privkey_path(),
        work_dir: work_dir.to_path_buf(),
        cpus: Some(options.server_cpus),
        cpuset: SERVER_CORE.into(),
        stub_status: false,
    };

    let servers = compare_servers(tools, options, &setup, &ca, stop)?;
    let reference = PeerSetup {
        cpus: None,
        stub_status: true,
        ..setup
    };
    let (generators, latency) = compare_generators(tools, options, &reference, stop)?;
    Ok(Measurements {
        servers,
        generators,
        latency,
        page,
        site_pages: pages.len(),
    })
}

fn stopped(stop: &StopFlag) -> Result<(), PeersError> {
    if stop.load(Ordering::Relaxed) {
        return Err(PeersError::Generator {
            generator: "peers".into(),
            detail: "interrupted (SIGINT or SIGTERM); servers stopped, nothing written".into(),
        });
    }
    Ok(())
}

fn compare_servers(
    tools: &Tools,
    options: &Options,
    setup: &PeerSetup,
    ca: &Path,
    stop: &StopFlag,
) -> Result<Vec<ServerSample>, PeersError> {
    let mut samples = Vec::new();
    for repeat in 0..options.repeats {
        for kind in PeerKind::ALL {
            stopped(stop)?;
            info!(
                peer = kind.name(),
                repeat, "starting server under its CPU budget"
            );
            let peer = RunningPeer::start(kind, tools, setup)?;
            for cell in ServerCell::ALL {
                stopped(stop)?;
                let sample = server_cell(tools, options, setup, &peer, cell, repeat, ca)?;
                info!(
                    peer = kind.name(),
                    cell = cell.name(),
                    repeat,
                    rate_rps = format!("{:.0}", sample.rate_rps),
                    p99_us = sample.p99_us,
                    server_cpu_cores = format!("{:.2}", sample.server_cpu_cores),
                    "cell done"
                );
                samples.push(sample);
            }
        }
    }
    Ok(samples)
}

fn server_cell(
    tools: &Tools,
    options: &Options,
    setup: &PeerSetup,
    peer: &RunningPeer,
    cell: ServerCell,
    repeat: u32,
    ca: &Path,
) -> Result<ServerSample, PeersError> {
    let ports = peer.ports();
    let https_url = format!("https://{DOMAIN}:{}{}", ports.https, options.page);
    let http_url = format!("http://127.0.0.1:{}{}", ports.http, options.page);
    let connect_to = format!("127.0.0.1:{}", ports.https);
    let mut args: Vec<String> = vec![
        "--warmup".into(),
        "1s".into(),
        "--timeout".into(),
        "2s".into(),
    ];
    let https = |args: &mut Vec<String>| {
        args.extend([
            "--cacert".into(),
            ca.display().to_string(),
            "--connect-to".into(),
            connect_to.clone(),
            https_url.clone(),
        ]);
    };
    let (connections, rate) = match cell {
        ServerCell::OpenConnections => (options.rss_connections, Some(options.rss_connections)),
        ServerCell::KeepaliveHttp | ServerCell::KeepaliveHttps => (options.connections, None),
        ServerCell::NewHttpsConnection => (options.handshake_connections, None),
        ServerCell::FixedRateHttps => (options.fixed_rate_connections, Some(options.fixed_rate)),
    };
    if let Some(rate) = rate {
        args.extend(["-R".into(), rate.to_string()]);
    }
    if cell == ServerCell::NewHttpsConnection {
        args.push("--new-connection".into());
    }
    if cell == ServerCell::KeepaliveHttp {
        args.push(http_url);
    } else {
        https(&mut args);
    }

    let name = format!("{}-{}-{repeat}", peer.kind().name(), cell.name());
    let rss_before_kib = peer.rss_kib();
    let cpu_before = peer.cpu_s();
    let (report, run) = run_loadgen(tools, options, &setup.work_dir, &name, connections, &args)?;
    let server_cpu_cores = (peer.cpu_s() - cpu_before) / run.wall_s;
    let summary = &report.summary;
    Ok(ServerSample {
        peer: peer.kind(),
        cell,
        repeat,
        rate_rps: summary.rate_achieved,
        errors: summary.errors,
        connections_opened: summary.connections_opened,
        p50_us: summary.latency_corrected.p50_us,
        p99_us: summary.latency_corrected.p99_us,
        server_cpu_cores,
        generator_cpu_cores: (run.user_s + run.system_s) / run.wall_s,
        fell_behind: report.fell_behind,
        peak_rss_kib: peer.peak_rss_kib(),
        rss_before_kib,
    })
}

/// loadgen on one thread pinned to the generator core, `args` after the
/// common ones; returns its report and what the run cost.
fn run_loadgen(
    tools: &Tools,
    options: &Options,
    work_dir: &Path,
    name: &str,
    connections: u32,
    args: &[String],
) -> Result<(loadgen::report::Report, GeneratorRun), PeersError> {
    let json = work_dir.join(format!("{name}.loadgen.json"));
    let mut all = vec![
        "-t".to_string(),
        "1".into(),
        "-q".into(),
        "-c".into(),
        connections.to_string(),
        "-d".into(),
        format!("{}s", options.duration_s),
        "--json".into(),
        json.display().to_string(),
    ];
    all.extend_from_slice(args);
    let run = run_pinned(
        name,
        GENERATOR_CORE,
        &tools.loadgen,
        &all,
        limit(options),
        work_dir,
    )?;
    let report = read_loadgen_report(&json)?;
    Ok((report, run))
}

fn read_loadgen_report(json: &Path) -> Result<loadgen::report::Report, PeersError> {
    loadgen::report::Report::from_json_file(json).map_err(|e| PeersError::Generator {
        generator: "loadgen".into(),
        detail: format!("wrote no readable report: {e}"),
    })
}

/// The longest any one load may take before it is killed.
fn limit(options: &Options) -> Duration {
    Duration::from_secs(u64::from(options.duration_s) * 3 + 30)
}

fn compare_generators(
    tools: &Tools,
    options: &Options,
    setup: &PeerSetup,
    stop: &StopFlag,
) -> Result<(Vec<GeneratorSample>, Vec<LatencySample>), PeersError> {
    info!("starting the reference nginx on core {SERVER_CORE}, no CPU quota");
    let nginx = RunningPeer::start(PeerKind::Nginx, tools, setup)?;
    let mut samples = Vec::new();
    let mut latency = Vec::new();
    for repeat in 0..options.repeats {
        for kind in GeneratorKind::ALL {
            stopped(stop)?;
            samples.push(generator_run(
                tools, options, setup, &nginx, kind, repeat, None,
            )?);
        }
        for &rate in &options.latency_rates {
            for kind in [GeneratorKind::Loadgen, GeneratorKind::Oha] {
                stopped(stop)?;
                latency.push(latency_run(
                    tools, options, setup, &nginx, kind, rate, repeat,
                )?);
            }
        }
    }
    drop(nginx);

    // The same runs against nginx under the servers' quota, where nginx and
    // not the generator is surely the bottleneck: the rates should agree.
    info!(
        cpus = options.server_cpus,
        "starting the reference nginx under a CPU quota"
    );
    let capped = PeerSetup {
        cpus: Some(options.server_cpus),
        ..setup.clone()
    };
    let nginx = RunningPeer::start(PeerKind::Nginx, tools, &capped)?;
    for repeat in 0..options.repeats {
        for kind in GeneratorKind::ALL {
            stopped(stop)?;
            let quota = Some(options.server_cpus);
            samples.push(generator_run(
                tools, options, setup, &nginx, kind, repeat, quota,
            )?);
        }
    }
    Ok((samples, latency))
}

/// One closed-loop keep-alive run of `kind` against `nginx`, measured by
/// nginx's count and the generator's CPU time.
fn generator_run(
    tools: &Tools,
    options: &Options,
    setup: &PeerSetup,
    nginx: &RunningPeer,
    kind: GeneratorKind,
    repeat: u32,
    quota: Option<f64>,
) -> Result<GeneratorSample, PeersError> {
    let url = plain_url(nginx, options);
    let capped = if quota.is_some() { "-capped" } else { "" };
    let name = format!("gen-{}{capped}-{repeat}", kind.name());
    let json = setup.work_dir.join(format!("{name}.json"));
    let (program, args) =
        kind.closed_loop(tools, &url, options.connections, options.duration_s, &json);
    let (run, server_requests, server_cpu) = counted(nginx, || {
        run_pinned(
            &name,
            GENERATOR_CORE,
            &program,
            &args,
            limit(options),
            &setup.work_dir,
        )
    })?;
    let cpu = run.user_s + run.system_s;
    let sample = GeneratorSample {
        generator: kind,
        repeat,
        server_requests,
        wall_s: run.wall_s,
        user_s: run.user_s,
        system_s: run.system_s,
        cpu_us_per_request: cpu * 1e6 / server_requests.max(1) as f64,
        server_rate_rps: server_requests as f64 / run.wall_s,
        generator_cpu_cores: cpu / run.wall_s,
        server_cpu_cores: server_cpu / run.wall_s,
        server_quota_cores: quota,
    };
    info!(
        generator = kind.name(),
        repeat,
        nginx_quota = ?quota,
        cpu_us_per_request = format!("{:.2}", sample.cpu_us_per_request),
        server_rate_rps = format!("{:.0}", sample.server_rate_rps),
        server_cpu_cores = format!("{:.2}", sample.server_cpu_cores),
        "generator run done"
    );
    Ok(sample)
}

/// The page over plain HTTP on `nginx`.
fn plain_url(nginx: &RunningPeer, options: &Options) -> String {
    format!("http://127.0.0.1:{}{}", nginx.ports().http, options.page)
}

/// Runs `load`, returning what it returned, the requests nginx counted
/// meanwhile and nginx's CPU seconds meanwhile.
fn counted<T>(
    nginx: &RunningPeer,
    load: impl FnOnce() -> Result<T, PeersError>,
) -> Result<(T, u64, f64), PeersError> {
    let before = nginx.requests_counted()?;
    let cpu_before = nginx.cpu_s();
    let out = load()?;
    let cpu = nginx.cpu_s() - cpu_before;
    // The second status read counts itself.
    let after = nginx.requests_counted()?.saturating_sub(1);
    Ok((out, after.saturating_sub(before), cpu))
}

fn latency_run(
    tools: &Tools,
    options: &Options,
    setup: &PeerSetup,
    nginx: &RunningPeer,
    kind: GeneratorKind,
    rate_target: u32,
    repeat: u32,
) -> Result<LatencySample, PeersError> {
    let url = plain_url(nginx, options);
    let name = format!("latency-{}-{rate_target}-{repeat}", kind.name());
    let c = options.fixed_rate_connections.to_string();
    let rate = rate_target.to_string();
    let d = format!("{}s", options.duration_s);
    let json = setup.work_dir.join(format!("{name}.json"));
    let (program, args): (PathBuf, Vec<String>) = match kind {
        GeneratorKind::Oha => (
            tools.oha.clone(),
            [
                "--no-tui",
                "--output-format",
                "json",
                "--worker-threads",
                "1",
                "--latency-correction",
                "-c",
                &c,
                "-q",
                &rate,
                "-z",
                &d,
                &url,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
        _ => (
            tools.loadgen.clone(),
            [
                "-t",
                "1",
                "-q",
                "-c",
                &c,
                "-R",
                &rate,
                "-d",
                &d,
                "--json",
                &json.display().to_string(),
                &url,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
        ),
    };
    let (run, server_requests, _) = counted(nginx, || {
        run_pinned(
            &name,
            GENERATOR_CORE,
            &program,
            &args,
            limit(options),
            &setup.work_dir,
        )
    })?;
    let (p50_us, p99_us, p99_less_own_lag_us, late_sends) = match kind {
        GeneratorKind::Oha => oha_percentiles_us(&run.stdout)
            .ok_or_else(|| PeersError::Generator {
                generator: "oha".into(),
                detail: format!(
                    "printed no latencyPercentiles p50/p99 in its JSON (see {})",
                    setup.work_dir.join(format!("{name}.stdout")).display()
                ),
            })
            .map(|(p50, p99)| (p50, p99, None, None))?,
        _ => {
            let report = read_loadgen_report(&json)?;
            let c = &report.summary.latency_corrected;
            let less_own_lag = report.summary.latency_less_own_lag.p99_us as f64;
            let late = report.summary.late_sends;
            (
                c.p50_us as f64,
                c.p99_us as f64,
                Some(less_own_lag),
                Some(late),
            )
        }
    };
    info!(
        generator = kind.name(),
        repeat, rate_target, p50_us, p99_us, "latency run done"
    );
    Ok(LatencySample {
        generator: kind,
        repeat,
        rate_target,
        server_requests,
        p50_us,
        p99_us,
        p99_less_own_lag_us,
        late_sends,
    })
}
