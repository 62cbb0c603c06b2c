//! The load generator (the real `loadgen` binary) against a target that
//! dies mid-run (the blog, SIGKILLed), hangs (accepts and never answers)
//! or resets every connection: the run must end on time, exit 0 and count
//! the errors by kind in its JSON report.

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::binary::LOADGEN;
use crate::blog::{Blog, BlogOptions};
use crate::outcome::Outcome;
use crate::scenario::Scale;
use crate::ScenarioError;

/// Seconds the run lasts (`-d`).
const RUN_S: u64 = 3;
/// Per-request timeout (`--timeout`), s.
const TIMEOUT_S: u64 = 1;

/// What a loadgen run against a bad target gave.
#[derive(Debug)]
struct Run {
    wall: Duration,
    exit: Option<i32>,
    report: Option<loadgen::report::Report>,
    stderr: String,
}

fn run_loadgen(url: &str, extra: &[&str], during: impl FnOnce()) -> Result<Run, ScenarioError> {
    let dir = tempfile::tempdir().map_err(ScenarioError::io("temporary directory"))?;
    let json = dir.path().join("report.json");
    let program = LOADGEN.path()?;
    let started = Instant::now();
    let mut child = Command::new(program)
        .arg(url)
        .args(["-c", "4", "-t", "1", "-q", "-d", &format!("{RUN_S}s")])
        .args(["--timeout", &format!("{TIMEOUT_S}s"), "--json"])
        .arg(&json)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(ScenarioError::io("starting loadgen"))?;
    during();
    // Never wait forever on it: three times its run is far past "on time".
    let limit = Duration::from_secs(3 * (RUN_S + TIMEOUT_S) + 5);
    let exit = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let report = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    Ok(Run {
        wall,
        exit,
        report,
        stderr,
    })
}

fn judge(name: &str, tried: &str, run: Run, expect_kind: &[&str]) -> Outcome {
    let mut out = Outcome::new(name, tried, 1);
    let bound = Duration::from_secs(RUN_S + TIMEOUT_S + 2);
    out.check(
        format!(
            "the run ends on time (under {} s: duration + timeout + 2 s)",
            bound.as_secs()
        ),
        run.wall <= bound,
        format!("{:.2} s", run.wall.as_secs_f64()),
    );
    out.check(
        "loadgen exits 0 with a JSON report",
        run.exit == Some(0) && run.report.is_some(),
        format!("exit {:?}; stderr: {}", run.exit, run.stderr.trim()),
    );
    out.figure(
        "wall time",
        (run.wall.as_secs_f64() * 100.0).round() / 100.0,
        "s",
        format!("loadgen process start to exit, -d {RUN_S}s --timeout {TIMEOUT_S}s"),
    );
    if let Some(r) = &run.report {
        let s = &r.summary;
        out.count = s.requests_sent;
        for (kind, n) in &s.errors_by_kind {
            out.count_as(format!("error {kind}"), *n);
        }
        out.count_as("answered", s.requests_completed);
        out.count_as("unfinished at the deadline", s.unfinished);
        let counted = expect_kind
            .iter()
            .any(|k| s.errors_by_kind.get(*k).is_some_and(|n| *n > 0));
        out.check(
            format!("errors are counted as {}", expect_kind.join(" or ")),
            counted,
            format!("{:?}", s.errors_by_kind),
        );
        out.check(
            "the totals add up (sent = answered + errors + unfinished)",
            s.requests_sent == s.requests_completed + s.errors + s.unfinished,
            format!(
                "{} = {} + {} + {}",
                s.requests_sent, s.requests_completed, s.errors, s.unfinished
            ),
        );
    }
    out
}

/// The blog SIGKILLed one second into the run.
pub fn target_dies(_scale: &Scale) -> Result<Outcome, ScenarioError> {
    let mut blog = Blog::start(BlogOptions::default())?;
    let url = format!("http://127.0.0.1:{}/", blog.http.port());
    let run = run_loadgen(&url, &[], || {
        std::thread::sleep(Duration::from_secs(1));
        let _ = blog.signal(Signal::SIGKILL);
    })?;
    let _ = blog.wait_exit(Duration::from_secs(5));
    Ok(judge(
        "loadgen-target-dies",
        "loadgen (4 connections, 3 s) against the blog, SIGKILLed after 1 s",
        run,
        &["refused", "reset", "closed"],
    ))
}

/// A listener that accepts, reads and never answers, on loopback.
struct BadTarget {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl BadTarget {
    /// `reset`: answer every connection with a TCP reset after the first
    /// bytes; otherwise hold it open, silent.
    fn start(reset: bool) -> Result<BadTarget, ScenarioError> {
        let listener =
            TcpListener::bind("127.0.0.1:0").map_err(ScenarioError::io("binding 127.0.0.1:0"))?;
        let addr = listener
            .local_addr()
            .map_err(ScenarioError::io("reading the bound address"))?;
        listener
            .set_nonblocking(true)
            .map_err(ScenarioError::io("nonblocking listener"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut s, _)) if reset => {
                        let _ = s.set_read_timeout(Some(Duration::from_millis(200)));
                        let _ = s.read(&mut [0u8; 1024]);
                        let sock = socket2::SockRef::from(&s);
                        let _ = sock.set_linger(Some(Duration::ZERO));
                        drop(s);
                    }
                    Ok((s, _)) => held.push(s),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Ok(BadTarget { addr, stop })
    }
}

impl Drop for BadTarget {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A target that accepts and never answers.
pub fn target_hangs(_scale: &Scale) -> Result<Outcome, ScenarioError> {
    let target = BadTarget::start(false)?;
    let run = run_loadgen(&format!("http://{}/", target.addr), &[], || {})?;
    Ok(judge(
        "loadgen-target-hangs",
        "loadgen (4 connections, 3 s, 1 s timeout) against a listener that accepts and never answers",
        run,
        &["timeout"],
    ))
}

/// A target that resets every connection.
pub fn target_resets(_scale: &Scale) -> Result<Outcome, ScenarioError> {
    let target = BadTarget::start(true)?;
    let run = run_loadgen(&format!("http://{}/", target.addr), &[], || {})?;
    Ok(judge(
        "loadgen-target-resets",
        "loadgen (4 connections, 3 s) against a listener that resets every connection (SO_LINGER 0)",
        run,
        &["reset", "closed"],
    ))
}
