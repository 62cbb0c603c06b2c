//! One run end to end: the plan from a [`Config`], the worker threads, the
//! progress bar, the generator's CPU time, and the assembled [`Report`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::assemble::{RunMeta, Totals};
use crate::client_h2::H2Target;
use crate::config::{Config, ConfigError, Load, Scheme};
use crate::conn::Connector;
use crate::env::{environment, CpuTimes};
use crate::http1::RequestTemplate;
use crate::report::Report;
use crate::worker::{run_worker, Plan};

/// Time given to the worker threads to start before the schedule begins.
const START_DELAY: Duration = Duration::from_millis(20);

/// What can stop a run from happening at all (a dead target does not: it
/// is counted in the report's errors).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration cannot be turned into connections (TLS roots,
    /// header values).
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A worker thread or its runtime could not be started.
    #[error("cannot start worker thread {worker}: {source}")]
    Worker {
        /// The worker's number.
        worker: u32,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Runs the load described by `config` and returns its report. With
/// `progress` a bar on stderr shows the measured part going by.
pub fn run(config: &Config, progress: bool) -> Result<Report, RunError> {
    let plan = Arc::new(plan(config)?);
    let threads = config.threads.clamp(1, config.connections.max(1));
    let counters: Vec<Arc<AtomicU64>> = (0..threads).map(|_| Arc::new(AtomicU64::new(0))).collect();

    let mut handles = Vec::new();
    for w in 0..threads {
        let ids: Vec<u32> = (0..config.connections)
            .filter(|i| i % threads == w)
            .collect();
        let (plan, counter) = (plan.clone(), counters[w as usize].clone());
        let handle = std::thread::Builder::new()
            .name(format!("loadgen-worker-{w}"))
            .spawn(move || run_worker(plan, ids, counter))
            .map_err(|source| RunError::Worker { worker: w, source })?;
        handles.push(handle);
    }

    sleep_until(plan.window_start);
    let cpu_start = CpuTimes::now();
    let started_at = SystemTime::now();
    if progress {
        show_progress(&plan, &counters);
    }

    let mut totals = Totals::default();
    for (w, h) in handles.into_iter().enumerate() {
        let worker = w as u32;
        let rec = h
            .join()
            .map_err(|_| RunError::Worker {
                worker,
                source: std::io::Error::other("panicked"),
            })?
            .map_err(|source| RunError::Worker { worker, source })?;
        totals
            .add_recorder(&rec)
            .expect("a worker's own histograms decode");
    }
    let cpu = cpu_start.usage_until(CpuTimes::now(), 0);

    let meta = RunMeta {
        config: config.to_run_config(),
        environment: environment(),
        started_at: rfc3339(started_at),
        duration_s: config.duration.as_secs_f64(),
        rate_target: match config.load {
            Load::Open { rate } => Some(rate),
            Load::Closed => None,
        },
        cpu_s: (cpu.user_s, cpu.system_s),
    };
    Ok(totals.into_report(meta))
}

fn plan(config: &Config) -> Result<Plan, ConfigError> {
    let first = &config.targets[0].1;
    let tls = match config.scheme() {
        Scheme::Https => Some((
            crate::tls::client_config(config.cacert.as_deref(), config.insecure, config.http2)?,
            crate::tls::server_name(&first.host)?,
        )),
        Scheme::Http => None,
    };
    let connector = Connector::new(config.addr, config.bind, tls, config.http2);
    let (templates, h2_targets) = if config.http2 {
        let targets = config
            .targets
            .iter()
            .map(|(_, url)| h2_target(url, &config.headers))
            .collect::<Result<_, _>>()?;
        (Vec::new(), targets)
    } else {
        let templates = config
            .targets
            .iter()
            .map(|(_, url)| RequestTemplate::new(url, &config.headers, config.new_connection))
            .collect();
        (templates, Vec::new())
    };
    let start = Instant::now() + START_DELAY;
    let window_start = start + config.warmup;
    Ok(Plan {
        load: config.load,
        connections: config.connections,
        streams: config.streams,
        connector,
        templates,
        h2_targets,
        weights: config.targets.iter().map(|(w, _)| *w).collect(),
        timeout: config.timeout,
        new_connection: config.new_connection,
        start,
        window_start,
        end: window_start + config.duration,
    })
}

fn h2_target(url: &crate::config::Url, headers: &[String]) -> Result<H2Target, ConfigError> {
    let uri: http::Uri = url
        .raw
        .parse()
        .map_err(|e: http::uri::InvalidUri| ConfigError::Url {
            url: url.raw.clone(),
            why: e.to_string(),
        })?;
    let mut map = http::HeaderMap::new();
    for h in headers {
        let (name, value) = h.split_once(':').expect("checked by check_header");
        let bad = |why: String| ConfigError::Value {
            flag: "--header",
            value: h.clone(),
            why,
        };
        let name =
            http::HeaderName::from_bytes(name.trim().as_bytes()).map_err(|e| bad(e.to_string()))?;
        if name == http::header::HOST {
            continue; // HTTP/2 carries the authority in the URI
        }
        let value = http::HeaderValue::from_str(value.trim()).map_err(|e| bad(e.to_string()))?;
        map.append(name, value);
    }
    Ok(H2Target { uri, headers: map })
}

fn show_progress(plan: &Plan, counters: &[Arc<AtomicU64>]) {
    let total = plan
        .end
        .saturating_duration_since(plan.window_start)
        .as_millis() as u64;
    let bar = indicatif::ProgressBar::new(total.max(1));
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {elapsed}/{duration} {msg}")
            .expect("a valid template"),
    );
    while Instant::now() < plan.end {
        std::thread::sleep(Duration::from_millis(100));
        let done: u64 = counters.iter().map(|c| c.load(Ordering::Relaxed)).sum();
        let elapsed = plan.window_start.elapsed().as_millis() as u64;
        bar.set_position(elapsed.min(total));
        bar.set_message(format!("{done} requests finished"));
    }
    bar.finish_and_clear();
}

fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

fn rfc3339(t: SystemTime) -> String {
    let t: time::OffsetDateTime = t.into();
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
