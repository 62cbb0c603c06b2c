//! `blog`: parses the command line, sets up logging and runs the server,
//! the health check or the path listing from the `server` library.

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use server::config::{Cli, Command};

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            // Library errors carry their cause in their message already.
            eprintln!("blog: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<ExitCode> {
    forget_empty_env();
    let cli = Cli::parse();
    let args = &cli.serve;
    if cli.serve.list_paths || matches!(cli.command, Some(Command::Paths)) {
        for path in server::page_paths(args.site.as_deref())? {
            println!("{path}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(Command::Healthcheck { url }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| args.healthcheck_url());
        return Ok(match server::health::check(&url, Duration::from_secs(5)) {
            Ok(_) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("blog healthcheck: {e}");
                ExitCode::FAILURE
            }
        });
    }

    let settings = args.resolve()?;
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).map_err(|e| {
        server::config::ConfigError::BadLogFilter {
            filter: args.log.clone(),
            reason: e.to_string(),
        }
    })?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.workers)
        .enable_all()
        .build()
        .map_err(|e| anyhow::anyhow!("cannot start the async runtime: {e}"))?;
    let result = runtime.block_on(server::serve::serve(settings));
    // Connections still open after the grace period are dropped here.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result?;
    Ok(ExitCode::SUCCESS)
}

/// Treats an empty `BLOG_*` variable as unset: compose files write
/// `BLOG_DOMAIN=${DOMAIN:-}`, which must not mean "the domain ''".
fn forget_empty_env() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(k, v)| k.to_string_lossy().starts_with("BLOG_") && v.is_empty())
        .map(|(k, _)| k)
        .collect();
    for key in empty {
        // Still single-threaded: nothing else reads the environment yet.
        std::env::remove_var(key);
    }
}
