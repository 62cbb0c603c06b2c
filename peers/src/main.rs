//! `peers`: the blog against nginx and static-web-server, loadgen against
//! wrk, h2load and oha, results written under `results/peers/`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use peers::report::Results;
use peers::run::{measure, Options};

/// Command line of `peers`.
#[derive(Debug, Parser)]
#[command(
    name = "peers",
    about = "Compare the blog with nginx and static-web-server, and loadgen with wrk, h2load \
             and oha, on two cores (servers on core 0 under a CPU quota, generators on core 1)"
)]
struct Cli {
    /// One repeat of 2 s loads (about a minute and a half) instead of three of 10 s.
    #[arg(long)]
    quick: bool,
    /// Results go to OUT/<date>-<host>/ [default: <workspace>/results/peers].
    #[arg(long, value_name = "OUT")]
    out: Option<PathBuf>,
    /// Interleaved repeats [default: 3, or 1 with --quick].
    #[arg(long, value_name = "N")]
    repeats: Option<u32>,
    /// Seconds of each load [default: 10, or 2 with --quick].
    #[arg(long, value_name = "SECS")]
    duration: Option<u32>,
    /// CPU quota of each compared server, in cores.
    #[arg(long, value_name = "CORES", default_value_t = 0.5)]
    server_cpus: f64,
    /// Where `cargo install` puts oha and static-web-server
    /// [default: <workspace>/target/peers-tools].
    #[arg(long, value_name = "DIR")]
    tools_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peers: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("peers crate has no parent directory")?
        .to_path_buf();
    let mut options = if cli.quick {
        Options::quick()
    } else {
        Options::full()
    };
    if let Some(n) = cli.repeats {
        anyhow::ensure!((1..=20).contains(&n), "--repeats {n}: expected 1 to 20");
        options.repeats = n;
    }
    if let Some(d) = cli.duration {
        anyhow::ensure!(
            (1..=120).contains(&d),
            "--duration {d}: expected 1 to 120 seconds"
        );
        options.duration_s = d;
    }
    anyhow::ensure!(
        cli.server_cpus > 0.0 && cli.server_cpus <= 1.0,
        "--server-cpus {}: expected more than 0 and at most 1 core (the servers share core 0)",
        cli.server_cpus
    );
    options.server_cpus = cli.server_cpus;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    anyhow::ensure!(
        cores >= 2,
        "this machine offers {cores} core(s) to peers; it needs 2 (servers on core 0, \
         generators on core 1)"
    );

    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("cannot install the SIGINT/SIGTERM handler")?;
    }

    let tools_dir = cli
        .tools_dir
        .unwrap_or_else(|| workspace.join("target").join("peers-tools"));
    let tools = peers::tools::prepare(&tools_dir, &workspace)?;
    for note in &tools.setup_notes {
        tracing::info!("{note}");
    }
    // 1,000 open connections need more descriptors than the usual 1,024.
    raise_fd_limit();

    tracing::info!(
        "waiting for the machine-wide lock ({})",
        testbed::lock::LOCK_PATH
    );
    let _lock = testbed::lock::exclusive()?;
    let started_at = now();
    let work = tempfile::Builder::new()
        .prefix("hopless-peers-")
        .tempdir()
        .context("cannot make a work directory under the temp dir")?;
    let samples = measure(&tools, &options, work.path(), &stop)?;
    let results = Results::new(&tools, &options, samples, started_at, now());

    let (host, _, _) = peers::tools::machine();
    let out = cli
        .out
        .unwrap_or_else(|| workspace.join("results").join("peers"))
        .join(format!("{}-{host}", &results.started_at[..10]));
    let files = results.write(&out)?;
    for t in &results.targets {
        println!(
            "{} {}: {}",
            if t.met { "met   " } else { "MISSED" },
            t.target,
            t.measured
        );
    }
    for f in files {
        println!("wrote {}", f.display());
    }
    Ok(())
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| "unknown".into())
}

fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let want = hard.min(65_536);
        if soft < want {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, want, hard);
        }
    }
}
