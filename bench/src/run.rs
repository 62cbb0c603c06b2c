//! The run: takes the machine-wide lock, clears leftovers, checks
//! prerequisites, sets up certificates, the CPU budget and the client
//! namespace, then measures every cell in interleaved order and renders the
//! report. Everything it makes is removed on the way out, also on an
//! interrupt or a panic (drop guards).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use testbed::cgroup::{BudgetLimits, CpuBudget};
use testbed::compose::DeployConfig;
use testbed::ClientNamespace;

use crate::cleanup::{self, Interrupt, BUDGET_NAME, TEMP_PREFIX};
use crate::cli::Args;
use crate::loadrun::LoadSpec;
use crate::matrix::{CellKey, ClientPath, Hop, LoadPoint, Plan, Profile, Workload};
use crate::presets::VpsPreset;
use crate::procfs::{self, Machine};
use crate::record::{
    self, BandwidthCheck, CellRecord, CpuFigures, HopEvidence, CELL_SCHEMA_VERSION,
};
use crate::report::{self, RunInfo};
use crate::shaping::BandwidthCap;
use crate::target::{self, ServerSetup, Target};

/// The core the server side is pinned to.
const SERVER_CORE: u32 = 0;
/// The client namespace index the bench uses.
const NETNS_INDEX: u8 = 0;
/// The certificate name.
const DOMAIN: &str = "blog.test";

/// Everything a cell needs that stays the same through the run.
struct Context {
    plan: Plan,
    machine: Machine,
    vps: Option<VpsPreset>,
    server_cpus: f64,
    mem_limit: Option<u64>,
    ports: (u16, u16),
    loadgen: PathBuf,
    mix_http: PathBuf,
    mix_https: PathBuf,
    cacert: PathBuf,
    scratch: PathBuf,
    cells_dir: PathBuf,
    ns: Option<ClientNamespace>,
    cap: Option<BandwidthCap>,
    budget: CpuBudget,
    ticks: f64,
    interrupt: Interrupt,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn plan_from(args: &Args) -> anyhow::Result<Plan> {
    let mut plan = if args.quick {
        Plan::quick()
    } else {
        Plan::standard()
    };
    if let Some(r) = args.repeats {
        if r == 0 || r > 20 {
            bail!("--repeats {r}: give 1 to 20");
        }
        plan.repeats = r;
    }
    if let Some(d) = args.duration {
        plan.max_duration_s = d;
        plan.open_duration_s = d;
    }
    if !args.profiles.is_empty() {
        plan.profiles = args
            .profiles
            .iter()
            .map(|n| {
                Profile::ALL
                    .into_iter()
                    .find(|p| p.name() == n)
                    .with_context(|| format!("--profiles {n:?}: not one of bare, host, bridge"))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if !args.paths.is_empty() {
        plan.paths = args
            .paths
            .iter()
            .map(|n| {
                ClientPath::ALL
                    .into_iter()
                    .find(|p| p.name() == n)
                    .with_context(|| {
                        format!("--paths {n:?}: not one of loopback, external-v4, external-v6")
                    })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    if args.repeats.is_some()
        || args.duration.is_some()
        || !args.profiles.is_empty()
        || !args.paths.is_empty()
    {
        plan.name = format!("{}-custom", plan.name);
    }
    Ok(plan)
}

/// `results/<date>-<host>`, or with `-2`, `-3` ... when taken.
fn run_dir(out: &Path, host: &str) -> PathBuf {
    let date = time::OffsetDateTime::now_utc().date();
    let base = format!("{date}-{host}");
    let mut dir = out.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = out.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// Runs the bench as the command line says.
pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let plan = plan_from(args)?;
    let vps = match &args.vps {
        Some(name) => Some(crate::presets::find(name, args.vps_presets.as_deref())?),
        None => None,
    };
    if !(0.05..=64.0).contains(&args.server_cpus) {
        bail!(
            "--server-cpus {}: give a CPU quota between 0.05 and 64 cores",
            args.server_cpus
        );
    }
    if args.http_port == args.https_port {
        bail!(
            "--http-port and --https-port are both {}: give two different ports",
            args.http_port
        );
    }
    let interrupt = Interrupt::install().context("cannot install the SIGINT/SIGTERM handler")?;

    eprintln!(
        "bench: taking the machine-wide lock {} (waits for other hopless tests)",
        testbed::lock::LOCK_PATH
    );
    let _lock = testbed::lock::exclusive()?;
    for what in cleanup::remove_leftovers() {
        eprintln!("bench: removed leftover {what}");
    }
    crate::prereq::check(&[args.http_port, args.https_port])?;
    let machine = Machine::probe();

    eprintln!("bench: building the server image and static binary (scripts/build-image.sh)");
    let image = testbed::image::ensure_image().context("building the server image")?;
    let binary = testbed::image::static_binary();
    eprintln!("bench: building the load generator (cargo build --release -p loadgen)");
    let loadgen =
        crate::loadrun::find_or_build(args.loadgen.as_deref()).map_err(anyhow::Error::msg)?;

    // Scratch space: certificates, webroot, mix files, loadgen JSON.
    let scratch = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir()
        .context("creating a temp dir")?;
    set_mode(scratch.path(), 0o755)?;
    let le_dir = scratch.path().join("letsencrypt");
    std::fs::create_dir(&le_dir)?;
    let certs = testbed::CertbotDir::create(&le_dir, DOMAIN)?;
    certs.grant_group(2200)?;
    let cacert = scratch.path().join("ca.pem");
    certs.write_ca(&cacert)?;
    let webroot = scratch.path().join("acme");
    std::fs::create_dir(&webroot)?;
    set_mode(&webroot, 0o755)?;
    let paths = target::served_paths(&binary).map_err(anyhow::Error::msg)?;
    let (mix_http, mix_https) =
        write_mixes(scratch.path(), &paths, args.http_port, args.https_port)?;

    let server_cpus = vps.as_ref().map_or(args.server_cpus, |v| v.cpu_quota());
    let mem_limit = vps.as_ref().map(|v| v.mem_limit_bytes());
    let budget = CpuBudget::create(
        BUDGET_NAME,
        &BudgetLimits {
            cpus: Some(server_cpus),
            cpuset: Some(SERVER_CORE.to_string()),
            mem_limit_bytes: mem_limit,
        },
    )?;
    let ns = if plan.paths.iter().any(|p| p.is_external()) {
        Some(ClientNamespace::create(NETNS_INDEX)?)
    } else {
        None
    };
    if let Some(ns) = &ns {
        widen_client_ports(ns);
    }
    let cap = match (&ns, vps.as_ref().and_then(|v| v.bandwidth_baseline_mbit)) {
        (Some(ns), Some(mbit)) => Some(BandwidthCap::apply(ns, mbit)?),
        _ => None,
    };

    let setup = ServerSetup {
        binary,
        deploy: DeployConfig {
            letsencrypt_dir: le_dir.clone(),
            acme_webroot: webroot,
            domain: DOMAIN.into(),
            http_port: args.http_port,
            https_port: args.https_port,
            http_serves_site: true,
            workers: Some(args.workers),
            cpus: None,
            cpuset: Some(SERVER_CORE.to_string()),
            mem_limit: None,
            cgroup_parent: Some(budget.cgroup_parent()),
            image,
        },
        workers: args.workers,
    };

    let dir = run_dir(&args.out, &machine.host);
    let cells_dir = dir.join("cells");
    std::fs::create_dir_all(&cells_dir)
        .with_context(|| format!("creating {}", cells_dir.display()))?;
    let mut info = RunInfo {
        plan: plan.clone(),
        machine: machine.clone(),
        vps: vps.clone(),
        server_cpus,
        workers: args.workers,
        ports: (args.http_port, args.https_port),
        started_at: now_rfc3339(),
        finished_at: None,
        duration_s: None,
        stopped_early: None,
    };
    record::write_json(&dir.join("run.json"), &info)?;
    eprintln!(
        "bench: {} plan, {} cells, about {} min of measuring; results in {}",
        plan.name,
        plan.cell_count(),
        plan.estimated().as_secs().div_ceil(60),
        dir.display()
    );

    let ctx = Context {
        plan,
        machine,
        vps,
        server_cpus,
        mem_limit,
        ports: (args.http_port, args.https_port),
        loadgen,
        mix_http,
        mix_https,
        cacert,
        scratch: scratch.path().to_path_buf(),
        cells_dir,
        ns,
        cap,
        budget,
        ticks: procfs::clock_ticks(),
        interrupt,
    };
    let outcome = run_cells(&ctx, &setup, started);

    info.finished_at = Some(now_rfc3339());
    info.duration_s = Some(started.elapsed().as_secs_f64());
    info.stopped_early = outcome.stopped_early.clone();
    record::write_json(&dir.join("run.json"), &info)?;
    // Tear down before rendering, so an interrupt during rendering cannot
    // leave the namespace or cgroup behind.
    drop(ctx);
    drop(certs);
    drop(scratch);

    // A partial run is rendered but never becomes the latest published one.
    let publish = !args.no_readme && outcome.stopped_early.is_none();
    let readme = publish.then(|| args.out.join("README.md"));
    let rendered = report::render(&dir, readme.as_deref());
    if let Some(why) = outcome.stopped_early {
        match rendered {
            Ok(_) => eprintln!(
                "bench: stopped early ({why}); partial report in {}",
                dir.display()
            ),
            Err(e) => eprintln!("bench: stopped early ({why}); nothing to report: {e}"),
        }
        return Ok(ExitCode::from(130));
    }
    let summary = rendered.with_context(|| format!("rendering {}", dir.display()))?;
    eprintln!(
        "bench: done in {:.0} s: {} cells, {} failed, {} generator-limited; report {}, page {}",
        started.elapsed().as_secs_f64(),
        summary.cells,
        summary.failed_cells,
        summary.generator_limited_cells,
        dir.join("report.md").display(),
        dir.join("index.html").display()
    );
    Ok(ExitCode::SUCCESS)
}

/// New-connection workloads open tens of thousands of connections a cell:
/// give the client namespace (its own sysctls, nothing shared) the whole
/// ephemeral range and TIME_WAIT reuse so the client does not run out of
/// ports. Failure only risks `connect` errors, which the cell records.
fn widen_client_ports(ns: &ClientNamespace) {
    for setting in [
        "net.ipv4.ip_local_port_range=1024 65535",
        "net.ipv4.tcp_tw_reuse=1",
    ] {
        let ok = ns
            .command("sysctl")
            .args(["-q", "-w", setting])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("bench: warning: could not set {setting} in {}", ns.name());
        }
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {mode:o} {}", path.display()))
}

/// Writes the visitor mix for plain HTTP and HTTPS.
fn write_mixes(
    dir: &Path,
    paths: &[String],
    http: u16,
    https: u16,
) -> anyhow::Result<(PathBuf, PathBuf)> {
    if paths.is_empty() {
        bail!("the server lists no paths (blog paths printed nothing)");
    }
    let mix = |scheme: &str, port: u16| {
        let mut text = String::from("# visitor mix: index and posts heavy, assets lighter\n");
        for p in paths {
            text.push_str(&format!(
                "{} {scheme}://{DOMAIN}:{port}{p}\n",
                target::visitor_weight(p)
            ));
        }
        text
    };
    let (h, s) = (dir.join("mix-http.txt"), dir.join("mix-https.txt"));
    std::fs::write(&h, mix("http", http))?;
    std::fs::write(&s, mix("https", https))?;
    Ok((h, s))
}

struct Outcome {
    stopped_early: Option<String>,
}

fn run_cells(ctx: &Context, setup: &ServerSetup, started: Instant) -> Outcome {
    let total = ctx.plan.cell_count();
    let mut done = 0usize;
    // Bare's maximum per path and workload, per repeat.
    let mut bare_max: HashMap<(ClientPath, Workload), Vec<f64>> = HashMap::new();
    for repeat in 0..ctx.plan.repeats {
        for &profile in &ctx.plan.profiles {
            if ctx.interrupt.is_set() {
                return Outcome {
                    stopped_early: Some("interrupted (SIGINT/SIGTERM)".into()),
                };
            }
            let cells = ctx.plan.cells_of(profile, repeat);
            let target = match Target::up(profile, setup, &ctx.budget) {
                Ok(t) => t,
                // A Ctrl-C in a terminal also reaches compose: not a failure.
                Err(_) if ctx.interrupt.is_set() => break,
                Err(e) => {
                    for key in cells {
                        done += 1;
                        let rec = failed(ctx, key, None, format!("{e}"));
                        save(ctx, &rec, done, total, started);
                    }
                    continue;
                }
            };
            for key in cells {
                if ctx.interrupt.is_set() {
                    break;
                }
                done += 1;
                let rate = match key.load {
                    LoadPoint::Max => None,
                    LoadPoint::Fraction { fraction } => {
                        let maxes = bare_max.get(&(key.path, key.workload));
                        // This repeat's bare maximum, else any measured one.
                        let this_repeat = maxes
                            .and_then(|m| m.get(repeat as usize).copied())
                            .filter(|v| v.is_finite());
                        let any = || maxes.and_then(|m| m.iter().copied().find(|v| v.is_finite()));
                        match this_repeat.or_else(any) {
                            Some(max) => Some(max * fraction),
                            None => {
                                let why = "no bare maximum measured for this path and workload to scale the offered rate from";
                                save(
                                    ctx,
                                    &failed(ctx, key, None, why.into()),
                                    done,
                                    total,
                                    started,
                                );
                                continue;
                            }
                        }
                    }
                };
                let rec = measure(ctx, &target, key, rate);
                if ctx.interrupt.is_set() && rec.status != "ok" {
                    // Cut short by the interrupt: not a measurement.
                    break;
                }
                if profile == Profile::Bare && key.load == LoadPoint::Max {
                    let entry = bare_max.entry((key.path, key.workload)).or_default();
                    entry.resize(repeat as usize + 1, f64::NAN);
                    if let Some(t) = rec.throughput() {
                        entry[repeat as usize] = t;
                    }
                }
                save(ctx, &rec, done, total, started);
            }
            if let Err(e) = target.down() {
                eprintln!("bench: warning: taking {} down: {e}", profile.name());
            }
        }
    }
    if ctx.interrupt.is_set() {
        return Outcome {
            stopped_early: Some("interrupted (SIGINT/SIGTERM)".into()),
        };
    }
    Outcome {
        stopped_early: None,
    }
}

fn failed(ctx: &Context, key: CellKey, rate: Option<f64>, reason: String) -> CellRecord {
    CellRecord {
        schema_version: CELL_SCHEMA_VERSION,
        key,
        status: "failed".into(),
        reason: Some(reason),
        offered_rate: rate,
        report: None,
        cpu: None,
        hop: None,
        generator_limited: vec![],
        disturbed: vec![],
        bandwidth: None,
        server_cpus: ctx.server_cpus,
        server_mem_limit_bytes: ctx.mem_limit,
        vps: ctx.vps.clone(),
        machine: ctx.machine.clone(),
        finished_at: now_rfc3339(),
    }
}

fn save(ctx: &Context, rec: &CellRecord, done: usize, total: usize, started: Instant) {
    let path = ctx.cells_dir.join(format!("{}.json", rec.key.id()));
    if let Err(e) = record::write_json(&path, rec) {
        eprintln!("bench: warning: {e}");
    }
    let elapsed = started.elapsed().as_secs();
    let head = format!(
        "[{done}/{total} {}:{:02}] r{} {} {} {} {}",
        elapsed / 60,
        elapsed % 60,
        rec.key.repeat,
        rec.key.profile.name(),
        rec.key.path.name(),
        rec.key.workload.name(),
        rec.key.load.label()
    );
    match (rec.ok_report(), &rec.cpu, &rec.hop) {
        (Some(r), Some(cpu), Some(hop)) => {
            let mut line = format!(
                "{head}: {:.0} req/s{}, p50 {} µs, p99 {} µs, server side {:.1} µs/req, hop {}",
                r.summary.rate_achieved,
                rec.offered_rate
                    .map(|o| format!(" of {o:.0} offered"))
                    .unwrap_or_default(),
                r.summary.latency_corrected.p50_us,
                r.summary.latency_corrected.p99_us,
                cpu.server_side_us_per_request(),
                hop.observed.name()
            );
            if r.summary.errors > 0 {
                line.push_str(&format!(", {} errors", r.summary.errors));
            }
            if !rec.generator_limited.is_empty() {
                line.push_str(" [generator-limited]");
            }
            if !rec.disturbed.is_empty() {
                line.push_str(" [disturbed]");
            }
            if rec.bandwidth.as_ref().is_some_and(|b| b.bound) {
                line.push_str(" [bandwidth-bound]");
            }
            eprintln!("{line}");
        }
        _ => eprintln!(
            "{head}: FAILED: {}",
            rec.reason
                .as_deref()
                .unwrap_or("?")
                .lines()
                .next()
                .unwrap_or("")
        ),
    }
}

/// CPU counters at one instant.
struct Snapshot {
    at: Instant,
    server_s: f64,
    proxy_s: f64,
    softirq_s: f64,
    dnat: Option<u64>,
    budget_ns: Option<u64>,
    throttled_ns: Option<u64>,
    server_core_busy_s: f64,
    client_core_busy_s: f64,
    client_softirq_s: f64,
}

fn snapshot(ctx: &Context, server_pid: u32, proxies: &[u32]) -> Snapshot {
    Snapshot {
        at: Instant::now(),
        server_s: procfs::process_cpu_s(server_pid, ctx.ticks).unwrap_or(0.0),
        proxy_s: proxies
            .iter()
            .filter_map(|p| procfs::process_cpu_s(*p, ctx.ticks))
            .sum(),
        softirq_s: procfs::softirq_s(SERVER_CORE, ctx.ticks).unwrap_or(0.0),
        dnat: crate::iptables::dnat_packets(&[ctx.ports.0, ctx.ports.1]),
        budget_ns: ctx.budget.cpu_usage_ns(),
        throttled_ns: ctx.budget.throttling().map(|t| t.1),
        server_core_busy_s: procfs::cpu_busy_s(SERVER_CORE, ctx.ticks).unwrap_or(0.0),
        client_core_busy_s: procfs::cpu_busy_s(crate::loadrun::CLIENT_CORE, ctx.ticks)
            .unwrap_or(0.0),
        client_softirq_s: procfs::softirq_s(crate::loadrun::CLIENT_CORE, ctx.ticks).unwrap_or(0.0),
    }
}

fn measure(ctx: &Context, target: &Target, key: CellKey, rate: Option<f64>) -> CellRecord {
    let Some(server_pid) = target.server_pid() else {
        return failed(
            ctx,
            key,
            rate,
            format!("the server is not running; log:\n{}", tail(&target.logs())),
        );
    };
    let port = if key.workload.tls() {
        ctx.ports.1
    } else {
        ctx.ports.0
    };
    let (netns, connect_to) = match key.path {
        ClientPath::Loopback => (None, format!("127.0.0.1:{port}")),
        ClientPath::ExternalV4 | ClientPath::ExternalV6 => {
            let Some(ns) = &ctx.ns else {
                return failed(ctx, key, rate, "no client namespace".into());
            };
            let addr = ns.host_addr(key.path == ClientPath::ExternalV6);
            (
                Some(ns.name()),
                std::net::SocketAddr::new(addr, port).to_string(),
            )
        }
    };
    let duration_s = match key.load {
        LoadPoint::Max => ctx.plan.max_duration_s,
        LoadPoint::Fraction { .. } => ctx.plan.open_duration_s,
    };
    let json = ctx.scratch.join(format!("{}.json", key.id()));
    let spec = LoadSpec {
        binary: ctx.loadgen.clone(),
        netns,
        mix: if key.workload.tls() {
            ctx.mix_https.clone()
        } else {
            ctx.mix_http.clone()
        },
        connect_to,
        cacert: ctx.cacert.clone(),
        workload: key.workload,
        rate,
        duration_s,
        json: Some(json),
    };
    if ctx.plan.warmup_s > 0.0 {
        let warm = LoadSpec {
            duration_s: ctx.plan.warmup_s,
            json: None,
            ..spec.clone()
        };
        if let Err(e) = warm.run(&ctx.interrupt) {
            return failed(ctx, key, rate, format!("warm-up failed: {e}"));
        }
    }

    let proxies = target.docker_proxy_pids();
    let before = snapshot(ctx, server_pid, &proxies);
    let result = spec.run(&ctx.interrupt);
    let after = snapshot(ctx, server_pid, &proxies);
    let report = match result {
        Ok(Some(r)) => r,
        Ok(None) => return failed(ctx, key, rate, "loadgen wrote no report".into()),
        Err(e) => {
            return failed(
                ctx,
                key,
                rate,
                format!("{e}; server log tail:\n{}", tail(&target.logs())),
            )
        }
    };
    if report.summary.requests_completed == 0 {
        let kinds: Vec<String> = report
            .summary
            .errors_by_kind
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let mut rec = failed(
            ctx,
            key,
            rate,
            format!("no request completed ({})", kinds.join(", ")),
        );
        rec.report = Some(report);
        return rec;
    }

    let window_s = after.at.duration_since(before.at).as_secs_f64();
    let mut cpu = CpuFigures {
        server_s: (after.server_s - before.server_s).max(0.0),
        docker_proxy_s: (after.proxy_s - before.proxy_s).max(0.0),
        loadgen_s: report.cpu.user_s + report.cpu.system_s,
        softirq_s: (after.softirq_s - before.softirq_s).max(0.0),
        budget_s: match (before.budget_ns, after.budget_ns) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / 1e9),
            _ => None,
        },
        throttled_ms: match (before.throttled_ns, after.throttled_ns) {
            (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 / 1e6),
            _ => None,
        },
        requests: report.summary.requests_completed + report.summary.errors,
        ..CpuFigures::default()
    };
    cpu.finish(report.summary.duration_s.max(0.001));
    // Whatever else ran on the two cores during the window: other work on
    // the machine that competes with the measurement.
    let server_core = after.server_core_busy_s - before.server_core_busy_s;
    cpu.foreign_server_core_s =
        (server_core - cpu.server_s - cpu.docker_proxy_s - cpu.softirq_s).max(0.0);
    let client_core = after.client_core_busy_s - before.client_core_busy_s;
    // The client's own kernel network work runs as softirq on its core.
    let client_softirq = after.client_softirq_s - before.client_softirq_s;
    cpu.foreign_client_core_s = (client_core - cpu.loadgen_s - client_softirq).max(0.0);
    let dnat_packets = match (before.dnat, after.dnat) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b)),
        _ => None,
    };
    let observed = observed_hop(cpu.docker_proxy_s, cpu.server_s, dnat_packets);
    let expected = if key.profile == Profile::Bridge {
        key.path.expected_bridge_hop()
    } else {
        Hop::None
    };

    let mut limited = Vec::new();
    if cpu.loadgen_core_pct >= 90.0 {
        limited.push(format!(
            "loadgen used {:.0}% of its core",
            cpu.loadgen_core_pct
        ));
    }
    if report.fell_behind {
        limited.push(format!(
            "loadgen fell behind its schedule: {} of {} requests sent over 2 ms late \
             by the generator itself",
            report.summary.late_sends, report.summary.requests_sent
        ));
    }
    let noisy = 0.1 * window_s;
    let mut disturbed = Vec::new();
    if cpu.foreign_client_core_s > noisy {
        disturbed.push(format!(
            "other processes used {:.2} s of the generator's core in a {window_s:.1} s window",
            cpu.foreign_client_core_s
        ));
    }
    if cpu.foreign_server_core_s > noisy {
        disturbed.push(format!(
            "other processes used {:.2} s of the server's core in a {window_s:.1} s window",
            cpu.foreign_server_core_s
        ));
    }
    // HTTP bytes only: TCP/IP and TLS framing add 5-15% on the wire, so a
    // cap-bound cell shows about 75-90% of the cap here.
    let bandwidth = match (&ctx.cap, key.path.is_external()) {
        (Some(cap), true) => {
            let achieved = report.summary.bytes_received as f64 * 8.0
                / report.summary.duration_s.max(0.001)
                / 1e6;
            Some(BandwidthCheck {
                cap_mbit: cap.mbit,
                achieved_mbit: achieved,
                bound: achieved >= 0.75 * cap.mbit,
            })
        }
        _ => None,
    };
    CellRecord {
        schema_version: CELL_SCHEMA_VERSION,
        key,
        status: "ok".into(),
        reason: None,
        offered_rate: rate,
        report: Some(report),
        cpu: Some(cpu.clone()),
        hop: Some(HopEvidence {
            docker_proxy_cpu_s: cpu.docker_proxy_s,
            dnat_packets,
            observed,
            expected,
        }),
        generator_limited: limited,
        disturbed,
        bandwidth,
        server_cpus: ctx.server_cpus,
        server_mem_limit_bytes: ctx.mem_limit,
        vps: ctx.vps.clone(),
        machine: ctx.machine.clone(),
        finished_at: now_rfc3339(),
    }
}

/// docker-proxy when the proxy used at least a tenth of the server's CPU
/// (and 10 ms), DNAT when Docker's DNAT rules counted packets, else none.
pub fn observed_hop(proxy_s: f64, server_s: f64, dnat_packets: Option<u64>) -> Hop {
    if proxy_s >= 0.01 && proxy_s >= 0.1 * server_s {
        Hop::DockerProxy
    } else if dnat_packets.is_some_and(|p| p >= 10) {
        Hop::Dnat
    } else {
        Hop::None
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().rev().take(15).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_is_read_from_the_evidence() {
        assert_eq!(observed_hop(0.5, 1.0, Some(0)), Hop::DockerProxy);
        assert_eq!(observed_hop(0.0, 1.0, Some(5000)), Hop::Dnat);
        assert_eq!(observed_hop(0.001, 1.0, Some(3)), Hop::None);
    }
}
