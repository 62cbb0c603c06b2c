//! The results of a peers run: medians with ranges per figure, the issue's
//! targets checked, written as `results.json`, `report.md` and SVG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plotters::prelude::*;
use serde::Serialize;

use crate::generator::GeneratorKind;
use crate::peer::PeerKind;
use crate::run::{GeneratorSample, LatencySample, Measurements, Options, ServerCell, ServerSample};
use crate::stats::Spread;
use crate::tools::Tools;
use crate::PeersError;

/// Version of the `results.json` layout.
pub const SCHEMA_VERSION: u32 = 1;

/// One figure over the repeats.
#[derive(Debug, Clone, Serialize)]
pub struct Figure {
    /// The server or generator it is about.
    pub subject: String,
    /// The cell (server comparison) or part (generator comparison).
    pub cell: String,
    /// What is measured, e.g. `rate`.
    pub metric: String,
    /// Its unit, e.g. `requests/s`.
    pub unit: String,
    /// How it was measured.
    pub how: String,
    /// Median and range over the repeats.
    pub spread: Spread,
}

/// One of the targets, checked.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// What the issue asks.
    pub target: String,
    /// The measured ratio or difference that decides it.
    pub measured: String,
    /// Whether it was met.
    pub met: bool,
    /// Why the check may not mean what it says (e.g. the server was not
    /// the bottleneck), if anything.
    pub caveat: Option<String>,
}

/// Everything `results.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// RFC 3339 UTC start of the run.
    pub started_at: String,
    /// RFC 3339 UTC end of the run.
    pub finished_at: String,
    /// The machine's host name.
    pub host: String,
    /// Its kernel release.
    pub kernel: String,
    /// Its CPU model.
    pub cpu_model: String,
    /// Every peer's version line.
    pub versions: BTreeMap<String, String>,
    /// What had to be installed or built, and how long it took.
    pub setup_notes: Vec<String>,
    /// The run's shape.
    pub options: Options,
    /// The page loaded (URL path) and its size in bytes.
    pub page: (String, usize),
    /// Server comparison figures.
    pub server_figures: Vec<Figure>,
    /// Generator comparison figures (CPU per request, rates, latency).
    pub generator_figures: Vec<Figure>,
    /// The targets.
    pub targets: Vec<TargetCheck>,
    /// Every sample behind the figures.
    pub samples: Measurements,
}

impl Results {
    /// Summarises `samples` into figures and target checks.
    pub fn new(
        tools: &Tools,
        options: &Options,
        samples: Measurements,
        started_at: String,
        finished_at: String,
    ) -> Self {
        let (host, kernel, cpu_model) = crate::tools::machine();
        let server_figures = server_figures(&samples.servers, options);
        let generator_figures = generator_figures(&samples);
        let mut results = Results {
            schema_version: SCHEMA_VERSION,
            started_at,
            finished_at,
            host,
            kernel,
            cpu_model,
            versions: tools.versions.clone(),
            setup_notes: tools.setup_notes.clone(),
            options: options.clone(),
            page: samples.page.clone(),
            server_figures,
            generator_figures,
            targets: Vec::new(),
            samples,
        };
        results.targets = targets(&results);
        results
    }

    /// Writes `results.json`, `report.md` and the charts into `dir`;
    /// returns the files written.
    pub fn write(&self, dir: &Path) -> Result<Vec<PathBuf>, PeersError> {
        std::fs::create_dir_all(dir).map_err(|e| PeersError::io("create", dir, e))?;
        let json = dir.join("results.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| {
            PeersError::io("serialise", &json, std::io::Error::other(e.to_string()))
        })?;
        std::fs::write(&json, text).map_err(|e| PeersError::io("write", &json, e))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.markdown()).map_err(|e| PeersError::io("write", &md, e))?;
        let mut files = vec![json, md];
        files.extend(self.charts(dir)?);
        Ok(files)
    }

    /// `report.md`.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Peers: blog vs nginx and static-web-server, loadgen vs wrk, h2load and oha\n"
        );
        let _ = writeln!(
            md,
            "Run {} to {} on `{}` (kernel {}, {}), {} mode: {} interleaved repeat(s) of {} s \
             loads; every figure is the median over the repeats with (min–max).\n",
            self.started_at,
            self.finished_at,
            self.host,
            self.kernel,
            self.cpu_model,
            if o.quick { "quick" } else { "full" },
            o.repeats,
            o.duration_s
        );

        md.push_str(
            "## Targets\n\nEach ratio is taken within a repeat (the two runs side by side, \
             sharing whatever else the machine did then) and the median of those ratios is \
             shown with their range.\n\n| target | measured | met |\n|---|---|---|\n",
        );
        for t in &self.targets {
            let caveat = t
                .caveat
                .as_deref()
                .map_or(String::new(), |c| format!(" ({c})"));
            let _ = writeln!(
                md,
                "| {} | {}{} | {} |",
                t.target,
                t.measured,
                caveat,
                if t.met { "met" } else { "**MISSED**" }
            );
        }

        let _ = writeln!(
            md,
            "\n## Servers, each capped to {} core (cgroup v1 CFS quota, 10 ms period) on core {}\n\n\
             The load generator is `loadgen` with one thread pinned to core {} (taskset); it \
             asks for `{}` ({} bytes, identity encoding) at `blog.test` over 127.0.0.1. Each \
             server instance is started fresh per repeat, the servers interleaved \
             (blog, nginx, sws, blog, ...), and runs the cells in this order: {} \
             HTTPS connections held open at {} requests/s in all (peak RSS = VmHWM summed over \
             the serving processes, nginx master + worker); keep-alive HTTP and HTTPS with {} \
             connections, closed loop (maximum rate, loadgen's completed requests over its \
             measured window, after 1 s of warm-up); a new HTTPS connection per request with {} \
             connections; {} requests/s over {} keep-alive HTTPS connections, open loop \
             (latency from the intended send time, loadgen's corrected histogram). Server CPU \
             = cpuacct of the server's cgroup over loadgen's whole run; loadgen CPU = its \
             user + system time (getrusage) over its wall time.\n",
            o.server_cpus,
            crate::run::SERVER_CORE,
            crate::run::GENERATOR_CORE,
            self.page.0,
            self.page.1,
            o.rss_connections,
            o.rss_connections,
            o.connections,
            o.handshake_connections,
            o.fixed_rate,
            o.fixed_rate_connections,
        );
        figure_table(&mut md, &self.server_figures, "server");

        let _ = writeln!(
            md,
            "\n## Generators against one nginx (one worker, core {}, no quota)\n\n\
             Each generator runs on one thread pinned to core {}, closed loop, {} keep-alive \
             HTTP/1.1 connections, {} s (wrk `-t1`, h2load `--h1 -t1 -D`, oha `-z` whose \
             runtime is confined to the pinned core, loadgen `-t 1`). Requests are counted by \
             nginx (`stub_status` read before and after each run, the status read taken out), \
             not by the generator; CPU is the generator's user + system time (getrusage of \
             the reaped child) over those requests; the rate is nginx's count over the \
             generator's wall time, start-up included. The same runs are repeated against \
             nginx under the servers' quota ({} core, cell `keepalive-http-capped`), where \
             nginx rather than the generator is the bottleneck, to compare rates (the \
             uncapped runs compare CPU per request). The latency part runs loadgen `-R` and \
             `oha --latency-correction -q` at {} requests/s over {} connections against the \
             same nginx and compares their p50/p99 (cells `fixed-rate-http-RATE`). The target \
             is checked at the first rate: oha's dispatcher sleeps on tokio's 1 ms timer and \
             stamps each request with the time it woke, so above 1000 requests/s it sends \
             rate/1000 requests per tick at once, and its figure then includes those bursts \
             queueing in its one thread; loadgen spaces its sends on a finer timer. The \
             higher rate shows that difference. The two stamps also differ: loadgen's \
             corrected figure runs from the intended send time, so a late wake of the \
             generator itself (an idle virtual CPU woken late on a busy host) counts in it, \
             while oha's starts when its dispatcher woke. loadgen's `p99 less own lag` takes \
             out of each corrected latency how much later than its due time and its \
             connection's previous response the request was sent, keeping a wait the server \
             caused: the same definition as oha's, and the second p99 target.\n",
            crate::run::SERVER_CORE,
            crate::run::GENERATOR_CORE,
            o.connections,
            o.duration_s,
            o.server_cpus,
            o.latency_rates
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(" and "),
            o.fixed_rate_connections,
        );
        figure_table(&mut md, &self.generator_figures, "generator");

        md.push_str("\n## Versions\n\n| peer | version |\n|---|---|\n");
        for (name, version) in &self.versions {
            let _ = writeln!(md, "| {name} | `{version}` |");
        }
        md.push_str("\n## Setup and notes\n\n");
        for note in &self.setup_notes {
            let _ = writeln!(md, "- {note}");
        }
        md.push_str(NOTES);
        md.push_str(
            "\nCharts: `server-rates.svg`, `generator-cpu.svg`. Raw samples: `results.json`.\n",
        );
        md
    }

    fn charts(&self, dir: &Path) -> Result<Vec<PathBuf>, PeersError> {
        let mut files = Vec::new();
        let rate_cells = [
            ServerCell::KeepaliveHttp,
            ServerCell::KeepaliveHttps,
            ServerCell::NewHttpsConnection,
        ];
        let mut groups = Vec::new();
        for cell in rate_cells {
            let bars: Vec<(String, Spread)> = PeerKind::ALL
                .iter()
                .filter_map(|p| {
                    self.find(p.name(), cell.name(), "rate")
                        .map(|s| (p.name().to_string(), s))
                })
                .collect();
            groups.push((cell.name().to_string(), bars));
        }
        let path = dir.join("server-rates.svg");
        bar_chart(
            &path,
            &format!(
                "Maximum rate, servers capped to {} core (median, min-max)",
                self.options.server_cpus
            ),
            "requests/s (loadgen, 1 thread on core 1)",
            &groups,
        )?;
        files.push(path);

        let bars: Vec<(String, Spread)> = GeneratorKind::ALL
            .iter()
            .filter_map(|g| {
                self.find(g.name(), "keepalive-http", "cpu per request")
                    .map(|s| (g.name().to_string(), s))
            })
            .collect();
        let path = dir.join("generator-cpu.svg");
        bar_chart(
            &path,
            "Generator CPU per request counted by nginx (median, min-max)",
            "µs of user + system CPU per request",
            &[("keep-alive HTTP/1.1".to_string(), bars)],
        )?;
        files.push(path);
        Ok(files)
    }

    fn find(&self, subject: &str, cell: &str, metric: &str) -> Option<Spread> {
        self.server_figures
            .iter()
            .chain(&self.generator_figures)
            .find(|f| f.subject == subject && f.cell == cell && f.metric == metric)
            .map(|f| f.spread)
    }
}

const NOTES: &str = "- TLS: all three servers use the same certbot-shaped ECDSA P-256 test \
certificate (testbed::CertbotDir) with TLS 1.2 and 1.3 and ALPN h2 + http/1.1; loadgen speaks \
HTTP/1.1. In the new-connection cell loadgen's rustls client resumes sessions when the server \
offers tickets or a session cache (each server as configured here), so that cell measures \
resumed and full handshakes as a returning browser would, not full handshakes only.\n\
- nginx: one worker, `access_log off`, `sendfile on`, `tcp_nopush on`, keep-alive 65 s without a \
request cap (`keepalive_requests 10000000`; the blog and static-web-server have none), \
`stub_status` only in the generator comparison. static-web-server: `--threads-multiplier 1` \
in a one-core cpuset (one worker thread), compression off, one process for HTTP and one for \
HTTPS (it serves either on one port), both in the same budget; its RSS counts only the HTTPS \
process. The blog: `--workers 1`.\n\
- Each rate cell also records server CPU (cores) and loadgen CPU (cores) in `results.json`: \
a server at its quota and a generator under one core means the server was the bottleneck.\n";

fn figure_table(md: &mut String, figures: &[Figure], what: &str) {
    let _ = writeln!(
        md,
        "\n| {what} | cell | figure | median (min–max), n | how |\n|---|---|---|---|---|"
    );
    for f in figures {
        let s = f.spread;
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} ({}–{}) {}, n={} | {} |",
            f.subject,
            f.cell,
            f.metric,
            num(s.median),
            num(s.min),
            num(s.max),
            f.unit,
            s.n,
            f.how
        );
    }
}

/// A number with as many decimals as its size needs.
fn num(x: f64) -> String {
    if x.abs() >= 100.0 || x.fract() == 0.0 {
        format!("{x:.0}")
    } else if x.abs() >= 1.0 {
        format!("{x:.2}")
    } else {
        format!("{x:.3}")
    }
}

fn server_figures(samples: &[ServerSample], options: &Options) -> Vec<Figure> {
    type Pick = fn(&ServerSample) -> f64;
    let mut figures = Vec::new();
    for cell in ServerCell::ALL {
        let metrics: Vec<(&str, &str, String, Pick)> = match cell {
            ServerCell::OpenConnections => vec![
                (
                    "peak RSS",
                    "MiB",
                    format!(
                        "VmHWM summed over the serving processes after {} HTTPS connections \
                         were held open",
                        options.rss_connections
                    ),
                    |s| s.peak_rss_kib as f64 / 1024.0,
                ),
                ("RSS before", "MiB", "VmRSS before the cell".into(), |s| {
                    s.rss_before_kib as f64 / 1024.0
                }),
                (
                    "errors",
                    "requests",
                    "loadgen's failed requests".into(),
                    |s| s.errors as f64,
                ),
            ],
            ServerCell::FixedRateHttps => vec![
                (
                    "p50",
                    "µs",
                    format!("loadgen corrected, {} requests/s", options.fixed_rate),
                    |s| s.p50_us as f64,
                ),
                (
                    "p99",
                    "µs",
                    format!("loadgen corrected, {} requests/s", options.fixed_rate),
                    |s| s.p99_us as f64,
                ),
                ("server CPU", "cores", "cgroup cpuacct / wall".into(), |s| {
                    s.server_cpu_cores
                }),
                (
                    "errors",
                    "requests",
                    "loadgen's failed requests".into(),
                    |s| s.errors as f64,
                ),
            ],
            _ => vec![
                (
                    "rate",
                    "requests/s",
                    "loadgen completed requests / measured s".into(),
                    |s| s.rate_rps,
                ),
                ("server CPU", "cores", "cgroup cpuacct / wall".into(), |s| {
                    s.server_cpu_cores
                }),
                (
                    "loadgen CPU",
                    "cores",
                    "getrusage user+system / wall".into(),
                    |s| s.generator_cpu_cores,
                ),
                (
                    "errors",
                    "requests",
                    "loadgen's failed requests".into(),
                    |s| s.errors as f64,
                ),
            ],
        };
        for peer in PeerKind::ALL {
            let of: Vec<&ServerSample> = samples
                .iter()
                .filter(|s| s.peer == peer && s.cell == cell)
                .collect();
            for (metric, unit, how, pick) in &metrics {
                let values: Vec<f64> = of.iter().map(|s| pick(s)).collect();
                if let Some(spread) = Spread::of(&values) {
                    figures.push(Figure {
                        subject: peer.name().into(),
                        cell: cell.name().into(),
                        metric: metric.to_string(),
                        unit: unit.to_string(),
                        how: how.clone(),
                        spread,
                    });
                }
            }
        }
    }
    figures
}

fn generator_figures(m: &Measurements) -> Vec<Figure> {
    let mut figures = Vec::new();
    for capped in [false, true] {
        let cell = if capped {
            "keepalive-http-capped"
        } else {
            "keepalive-http"
        };
        for kind in GeneratorKind::ALL {
            let of: Vec<_> = m
                .generators
                .iter()
                .filter(|s| s.generator == kind && s.server_quota_cores.is_some() == capped)
                .collect();
            let metrics: [(&str, &str, &str, Vec<f64>); 4] = [
                (
                    "cpu per request",
                    "µs",
                    "generator user+system CPU / requests counted by nginx",
                    of.iter().map(|s| s.cpu_us_per_request).collect(),
                ),
                (
                    "rate",
                    "requests/s",
                    "requests counted by nginx / generator wall time",
                    of.iter().map(|s| s.server_rate_rps).collect(),
                ),
                (
                    "generator CPU",
                    "cores",
                    "getrusage user+system / wall",
                    of.iter().map(|s| s.generator_cpu_cores).collect(),
                ),
                (
                    "nginx CPU",
                    "cores",
                    "cgroup cpuacct / generator wall time",
                    of.iter().map(|s| s.server_cpu_cores).collect(),
                ),
            ];
            for (metric, unit, how, values) in metrics {
                if let Some(spread) = Spread::of(&values) {
                    figures.push(Figure {
                        subject: kind.name().into(),
                        cell: cell.into(),
                        metric: metric.into(),
                        unit: unit.into(),
                        how: how.into(),
                        spread,
                    });
                }
            }
        }
    }
    for (rate, kind) in latency_rates(&m.latency)
        .into_iter()
        .flat_map(|rate| [GeneratorKind::Loadgen, GeneratorKind::Oha].map(|kind| (rate, kind)))
    {
        let of: Vec<_> = m
            .latency
            .iter()
            .filter(|s| s.generator == kind && s.rate_target == rate)
            .collect();
        let how = match kind {
            GeneratorKind::Oha => "oha --latency-correction, JSON latencyPercentiles",
            _ => "loadgen corrected histogram (from the intended send time)",
        };
        for (metric, unit, how, values) in [
            ("p50", "µs", how, of.iter().map(|s| s.p50_us).collect::<Vec<_>>()),
            ("p99", "µs", how, of.iter().map(|s| s.p99_us).collect()),
            (
                "p99 less own lag",
                "µs",
                "loadgen corrected histogram less its own send lag (oha's stamp leaves it out too)",
                of.iter().filter_map(|s| s.p99_less_own_lag_us).collect(),
            ),
            (
                "late sends",
                "requests",
                "loadgen: sent over 2 ms after their due time with the connection free (its own late wake-ups)",
                of.iter().filter_map(|s| s.late_sends.map(|n| n as f64)).collect(),
            ),
        ] {
            if let Some(spread) = Spread::of(&values) {
                figures.push(Figure {
                    subject: kind.name().into(),
                    cell: fixed_rate_cell(rate),
                    metric: metric.into(),
                    unit: unit.into(),
                    how: how.into(),
                    spread,
                });
            }
        }
    }
    figures
}

/// The rates of the latency comparison, in the order they ran; the first
/// is the one the p99 target is checked at.
fn latency_rates(latency: &[LatencySample]) -> Vec<u32> {
    let mut rates = Vec::new();
    for s in latency {
        if !rates.contains(&s.rate_target) {
            rates.push(s.rate_target);
        }
    }
    rates
}

/// The figure cell of the latency comparison at `rate` requests/s.
fn fixed_rate_cell(rate: u32) -> String {
    format!("fixed-rate-http-{rate}")
}

/// Ratios a/b of a figure paired by repeat, over the repeats both have:
/// run side by side, the pair shares whatever else the machine was doing
/// then, which a ratio of two separate medians does not.
fn paired(a: &[(u32, f64)], b: &[(u32, f64)]) -> Option<Spread> {
    let ratios: Vec<f64> = a
        .iter()
        .filter_map(|(repeat, x)| {
            let (_, y) = b.iter().find(|(r, y)| r == repeat && *y > 0.0)?;
            Some(x / y)
        })
        .collect();
    Spread::of(&ratios)
}

/// "1.23× (1.10–1.40, n=3)": a paired ratio and its range.
fn times(q: &Spread) -> String {
    format!("{:.2}× ({:.2}–{:.2}, n={})", q.median, q.min, q.max, q.n)
}

/// "+1.2% (-3.0 to +4.1%, n=3)": a paired ratio as a difference.
fn percent(q: &Spread) -> String {
    let p = |x: f64| (x - 1.0) * 100.0;
    format!(
        "{:+.1}% ({:+.1} to {:+.1}%, n={})",
        p(q.median),
        p(q.min),
        p(q.max),
        q.n
    )
}

fn targets(r: &Results) -> Vec<TargetCheck> {
    let m = &r.samples;
    let server = |peer: &str, cell: &str| -> Vec<(u32, f64)> {
        m.servers
            .iter()
            .filter(|s| s.peer.name() == peer && s.cell.name() == cell)
            .map(|s| (s.repeat, s.rate_rps))
            .collect()
    };
    // The uncapped runs: nginx on a whole core.
    let generator = |kind: &str, figure: fn(&GeneratorSample) -> f64| -> Vec<(u32, f64)> {
        m.generators
            .iter()
            .filter(|s| s.generator.name() == kind && s.server_quota_cores.is_none())
            .map(|s| (s.repeat, figure(s)))
            .collect()
    };
    let mut checks = Vec::new();
    for cell in ["keepalive-http", "keepalive-https"] {
        for peer in ["nginx", "sws"] {
            checks.push(check(
                format!("{cell}: blog rate ≥ 1.2× {peer}"),
                paired(&server("blog", cell), &server(peer, cell)),
                times,
                |q| q >= 1.2,
                None,
            ));
        }
    }
    let cell = "new-https-connection";
    checks.push(check(
        format!("{cell}: blog rate ≥ nginx"),
        paired(&server("blog", cell), &server("nginx", cell)),
        times,
        |q| q >= 1.0,
        None,
    ));

    let cpu = |s: &GeneratorSample| s.cpu_us_per_request;
    checks.push(check(
        "loadgen CPU per request ≤ 0.9× wrk".into(),
        paired(&generator("loadgen", cpu), &generator("wrk", cpu)),
        times,
        |q| q <= 0.9,
        None,
    ));
    // The rate targets need nginx busy: only then do the rates compare
    // generators fairly.
    let nginx_full = m
        .generators
        .iter()
        .filter(|s| s.server_quota_cores.is_none())
        .all(|s| s.server_cpu_cores >= 0.9);
    let bottleneck = (!nginx_full).then(|| {
        "nginx was under 0.9 core in some run: the server was not always the bottleneck".to_string()
    });
    let rate = |s: &GeneratorSample| s.server_rate_rps;
    for other in ["wrk", "h2load"] {
        checks.push(check(
            format!("loadgen rate within 5% of {other} (nginx-counted)"),
            paired(&generator("loadgen", rate), &generator(other, rate)),
            percent,
            |q| (q - 1.0).abs() <= 0.05,
            bottleneck.clone(),
        ));
    }
    let at = latency_rates(&m.latency).first().copied().unwrap_or(0);
    let p99 = |kind: GeneratorKind, less_own_lag: bool| -> Vec<(u32, f64)> {
        m.latency
            .iter()
            .filter(|s| s.generator == kind && s.rate_target == at)
            .filter_map(|s| {
                let p99 = if less_own_lag {
                    s.p99_less_own_lag_us?
                } else {
                    s.p99_us
                };
                Some((s.repeat, p99))
            })
            .collect()
    };
    for (figure, less_own_lag) in [
        ("corrected p99 (from the due time)", false),
        ("corrected p99 less its own send lag", true),
    ] {
        checks.push(check(
            format!("loadgen {figure} within 10% of oha --latency-correction at {at} requests/s"),
            paired(
                &p99(GeneratorKind::Loadgen, less_own_lag),
                &p99(GeneratorKind::Oha, false),
            ),
            percent,
            |q| (q - 1.0).abs() <= 0.10,
            None,
        ));
    }
    checks
}

fn check(
    target: String,
    value: Option<Spread>,
    show: impl Fn(&Spread) -> String,
    pass: impl Fn(f64) -> bool,
    caveat: Option<String>,
) -> TargetCheck {
    match value {
        Some(v) => TargetCheck {
            target,
            measured: show(&v),
            met: pass(v.median),
            caveat,
        },
        None => TargetCheck {
            target,
            measured: "not measured".into(),
            met: false,
            caveat,
        },
    }
}

/// Grouped bars with min–max whiskers, one group per cell.
fn bar_chart(
    path: &Path,
    title: &str,
    y_label: &str,
    groups: &[(String, Vec<(String, Spread)>)],
) -> Result<(), PeersError> {
    let err = |e: String| PeersError::io("draw", path, std::io::Error::other(e));
    let top = groups
        .iter()
        .flat_map(|(_, bars)| bars.iter().map(|(_, s)| s.max))
        .fold(0.0_f64, f64::max)
        .max(1.0)
        * 1.15;
    let per_group = groups
        .iter()
        .map(|(_, b)| b.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let slots = groups.len() * (per_group + 1);
    let colors = [BLUE, RED, GREEN, MAGENTA];

    let root = SVGBackend::new(path, (900, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..slots as f64, 0.0..top)
        .map_err(|e| err(e.to_string()))?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_x_axis()
        .y_desc(y_label)
        .draw()
        .map_err(|e| err(e.to_string()))?;

    for (g, (group, bars)) in groups.iter().enumerate() {
        let base = (g * (per_group + 1)) as f64 + 0.5;
        for (i, (name, s)) in bars.iter().enumerate() {
            let x = base + i as f64;
            let color = colors[i % colors.len()];
            chart
                .draw_series([Rectangle::new(
                    [(x, 0.0), (x + 0.8, s.median)],
                    color.filled(),
                )])
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series([PathElement::new(
                    vec![(x + 0.4, s.min), (x + 0.4, s.max)],
                    BLACK.stroke_width(2),
                )])
                .map_err(|e| err(e.to_string()))?;
            chart
                .draw_series([Text::new(
                    format!("{name} {}", num(s.median)),
                    (x, s.max + top * 0.02),
                    ("sans-serif", 13),
                )])
                .map_err(|e| err(e.to_string()))?;
        }
        chart
            .draw_series([Text::new(
                group.clone(),
                (base, top * 0.95),
                ("sans-serif", 15),
            )])
            .map_err(|e| err(e.to_string()))?;
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratios_pair_runs_of_the_same_repeat_and_skip_the_unpaired() {
        let a = [(0, 10.0), (1, 30.0), (2, 50.0)];
        let b = [(1, 10.0), (0, 5.0), (3, 1.0)];
        let q = paired(&a, &b).unwrap();
        assert_eq!((q.median, q.min, q.max, q.n), (2.5, 2.0, 3.0, 2));
        assert_eq!(times(&q), "2.50× (2.00–3.00, n=2)");
        assert!(paired(&a, &[(0, 0.0)]).is_none());
    }

    #[test]
    fn a_ratio_reads_as_a_signed_difference() {
        let q = Spread::of(&[0.95, 1.02, 1.041]).unwrap();
        assert_eq!(percent(&q), "+2.0% (-5.0 to +4.1%, n=3)");
    }
}
