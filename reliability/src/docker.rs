//! The server in its container (compose, host profile, the shipped
//! restart policy): SIGKILL of the server process and the downtime until
//! `/healthz` answers again, and a 64 MiB memory limit holding thousands
//! of connections without an OOM kill. Holds the machine-wide lock.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use testbed::compose::{DeployConfig, Deployment, Profile};
use testbed::CertbotDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::blog::DOMAIN;
use crate::faults::SERVICE_ID;
use crate::outcome::{mib, Memory, Outcome};
use crate::probe::{self, ProbeSpec};
use crate::scenario::Scale;
use crate::wire::{Dialer, Transport};
use crate::ScenarioError;

/// Host ports the container listens on (host profile), away from 80/443
/// and the ports other tests use.
const HTTP_PORT: u16 = 18_080;
const HTTPS_PORT: u16 = 18_443;

/// A running container with its certificate directory.
struct Container {
    deployment: Deployment,
    ca: PathBuf,
    _certs: CertbotDir,
    _dir: tempfile::TempDir,
}

fn docker_err(e: impl std::fmt::Display) -> ScenarioError {
    ScenarioError::Docker(e.to_string())
}

/// Builds the image if needed (before the machine-wide lock, so a slow
/// rebuild does not hold Docker from others), then takes the lock.
fn image_then_lock() -> Result<(String, testbed::lock::LockGuard), ScenarioError> {
    let image = testbed::image::ensure_image().map_err(docker_err)?;
    let lock = testbed::lock::exclusive().map_err(docker_err)?;
    Ok((image, lock))
}

/// Brings up the host profile of `image` with a certbot-shaped directory
/// granted to gid 2200.
fn up(image: String, mem_limit: Option<&str>) -> Result<Container, ScenarioError> {
    let dir = tempfile::Builder::new()
        .prefix("hopless-reliability-")
        .tempdir()
        .map_err(ScenarioError::io("temporary directory"))?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(ScenarioError::io("chmod 755 the temporary directory"))?;
    let certs = CertbotDir::create(&dir.path().join("letsencrypt"), DOMAIN)?;
    certs.grant_group(SERVICE_ID)?;
    let ca = certs.write_ca(&dir.path().join("ca.pem"))?;
    let webroot = dir.path().join("acme");
    std::fs::create_dir_all(&webroot).map_err(ScenarioError::io("creating the webroot"))?;
    let cfg = DeployConfig {
        letsencrypt_dir: certs.root().to_path_buf(),
        acme_webroot: webroot,
        domain: DOMAIN.into(),
        http_port: HTTP_PORT,
        https_port: HTTPS_PORT,
        http_serves_site: true,
        mem_limit: mem_limit.map(str::to_string),
        image,
        ..DeployConfig::default()
    };
    let deployment = Deployment::up(Profile::Host, &cfg).map_err(docker_err)?;
    Ok(Container {
        deployment,
        ca,
        _certs: certs,
        _dir: dir,
    })
}

/// True when `GET /healthz` on the HTTP port answers 200.
fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.1 200")
}

fn inspect(c: &Container, format: &str) -> String {
    c.deployment
        .inspect(format)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|e| format!("({e})"))
}

/// SIGKILL of the server process, `scale.kills` times: the restart policy
/// must bring it back; the downtime is measured from the kill to the
/// first 200 from `/healthz`.
pub fn sigkill_restart(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let (image, _lock) = image_then_lock()?;
    let c = up(image, None)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], HTTP_PORT));
    let mut downtimes = Vec::new();
    let mut out = Outcome::new(
        "container-sigkill-restart",
        "kill -9 of the server process in its container (host profile, restart: unless-stopped)",
        u64::from(scale.kills),
    );
    for k in 0..scale.kills {
        if k > 0 {
            // Docker doubles the restart delay for a container that ran
            // under 10 s; wait that out so every kill is a first one.
            std::thread::sleep(Duration::from_secs(11));
        }
        let pid = c.deployment.server_pid().map_err(docker_err)?;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .map_err(|e| ScenarioError::Docker(format!("kill -9 {pid}: {e}")))?;
        let killed = Instant::now();
        // Let the kill land before the first poll.
        std::thread::sleep(Duration::from_millis(5));
        let mut failed_polls = 0u64;
        let back = loop {
            if healthy(addr) {
                break Some(killed.elapsed());
            }
            failed_polls += 1;
            if killed.elapsed() > Duration::from_secs(60) {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        out.count_as("health polls failed while down", failed_polls);
        match back {
            Some(d) => {
                out.count_as("came back", 1);
                downtimes.push(d.as_secs_f64() * 1000.0);
            }
            None => out.count_as("did not come back within 60 s", 1),
        }
    }
    let restarts = inspect(&c, "{{.RestartCount}}");
    out.check(
        "the restart policy brings the server back after every kill",
        downtimes.len() == scale.kills as usize && restarts == scale.kills.to_string(),
        format!(
            "{} of {} back, RestartCount {restarts}",
            downtimes.len(),
            scale.kills
        ),
    );
    downtimes.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (downtimes.first(), downtimes.last()) {
        let median = downtimes[downtimes.len() / 2];
        let how = format!(
            "kill -9 of the container's server pid to the first 200 from /healthz polled every 10 ms on loopback, {} kills 11 s apart",
            downtimes.len()
        );
        out.figure("downtime, median", median.round(), "ms", how.clone());
        out.figure("downtime, min", first.round(), "ms", how.clone());
        out.figure("downtime, max", last.round(), "ms", how);
    }
    Ok(out)
}

/// The memory cgroup directory of `pid` (cgroup v1), when found.
fn memory_cgroup(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == "memory")
            .then(|| path.to_string())
    })?;
    let dir = Path::new("/sys/fs/cgroup/memory").join(rel.trim_start_matches('/'));
    dir.is_dir().then_some(dir)
}

fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// How many of `held` the server has not closed: a read that ends at
/// once (end of stream or an error) is a closed one.
async fn count_open(held: &mut [Box<dyn crate::wire::Io>]) -> u32 {
    let mut open = 0;
    for io in held {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_millis(2), io.read(&mut byte)).await;
        open += u32::from(read.is_err());
    }
    open
}

/// Opens `n` keep-alive connections (half HTTPS) in steps of 250, one
/// GET answered on each, watching the server process: returns them still
/// open, how many got a 200, and how many were open when the server
/// process died (an OOM kill), if it did.
async fn hold_connections(
    dialer: Dialer,
    n: u32,
    pid: u32,
) -> (Vec<Box<dyn crate::wire::Io>>, u32, Option<u32>) {
    let (mut held, mut ok) = (Vec::new(), 0u32);
    let mut opened = 0;
    while opened < n {
        let step = 250.min(n - opened);
        let mut tasks = Vec::new();
        for i in opened..opened + step {
            let dialer = dialer.clone();
            tasks.push(tokio::spawn(async move {
                let transport = if i % 2 == 0 {
                    Transport::Http
                } else {
                    Transport::Https
                };
                let mut io = dialer.connect(transport, false).await.ok()?;
                io.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
                    .await
                    .ok()?;
                let mut buf = [0u8; 512];
                let got = tokio::time::timeout(Duration::from_secs(10), io.read(&mut buf)).await;
                let good = matches!(got, Ok(Ok(k)) if buf[..k].starts_with(b"HTTP/1.1 200"));
                Some((io, good))
            }));
        }
        for t in tasks {
            if let Ok(Some((io, good))) = t.await {
                held.push(io);
                ok += u32::from(good);
            }
        }
        opened += step;
        if !Path::new(&format!("/proc/{pid}")).exists() {
            return (held, ok, Some(opened));
        }
    }
    (held, ok, None)
}

/// `mem_limit: 64m` and `scale.memory_connections` keep-alive connections
/// held open while the well-behaved client runs: no OOM kill, no restart.
pub fn memory_limit(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let (image, _lock) = image_then_lock()?;
    crate::hostile::raise_fd_limit();
    let c = up(image, Some("64m"))?;
    let pid = c.deployment.server_pid().map_err(docker_err)?;
    let cgroup = memory_cgroup(pid);
    let limit = cgroup
        .as_ref()
        .map_or(0, |d| read_u64(&d.join("memory.limit_in_bytes")));
    let rss_before = crate::blog::status_kib(pid, "VmRSS:");
    let n = scale.memory_connections;

    let http = SocketAddr::from(([127, 0, 0, 1], HTTP_PORT));
    let https = SocketAddr::from(([127, 0, 0, 1], HTTPS_PORT));
    let dialer = Dialer::to(http, https, &c.ca)?;
    let rt = crate::hostile::runtime()?;
    let (mut held, answered, died_at) = rt.block_on(hold_connections(dialer, n, pid));
    let still_open = rt.block_on(count_open(&mut held));
    let rss_held = crate::blog::status_kib(pid, "VmRSS:");
    // Read before the probe: a restarted container starts a fresh cgroup.
    let peak = cgroup
        .as_ref()
        .map_or(0, |d| read_u64(&d.join("memory.max_usage_in_bytes")));
    let url = format!("https://localhost:{HTTPS_PORT}/");
    let stats = probe::run_url(&url, &c.ca, &ProbeSpec::steady(scale.load_window))?;
    drop(held);

    let oom = inspect(&c, "{{.State.OOMKilled}}");
    let restarts = inspect(&c, "{{.RestartCount}}");
    let mut out = Outcome::new(
        "container-64mib-connections",
        format!("{n} keep-alive connections (half HTTPS, one GET each) kept open by the client against the container with mem_limit 64m"),
        u64::from(n),
    );
    out.count_as("connections answered 200", u64::from(answered));
    out.count_as(
        "of them closed by the server afterwards, to make room under its connection cap",
        u64::from(answered.saturating_sub(still_open)),
    );
    out.count_as(
        "connections not established or not answered",
        u64::from(n - answered),
    );
    out.check(
        "every connection is established and answered",
        answered == n,
        format!("{answered} of {n}"),
    );
    if let Some(at) = died_at {
        out.figure(
            "server killed with this many connections open",
            f64::from(at),
            "connections",
            "connections opened (in steps of 250) when /proc/PID of the server disappeared; docker inspect says whether it was the OOM killer",
        );
    }
    out.check(
        "no OOM kill and no restart",
        oom == "false" && restarts == "0",
        format!("OOMKilled {oom}, RestartCount {restarts}"),
    );
    out.check(
        "the memory limit is 64 MiB",
        limit == 64 * 1024 * 1024,
        format!("memory.limit_in_bytes {limit}"),
    );
    out.figure(
        "container memory peak",
        (peak as f64 / 1048576.0 * 10.0).round() / 10.0,
        "MiB",
        "cgroup v1 memory.max_usage_in_bytes of the container (RSS + page cache + kernel memory charged), read once the connections were open",
    );
    let per_conn = (rss_held.saturating_sub(rss_before)) as f64 / f64::from(still_open.max(1));
    if died_at.is_none() {
        out.figure(
            "server RSS per held connection",
            (per_conn * 10.0).round() / 10.0,
            "KiB",
            format!(
                "(VmRSS with {still_open} connections still open - VmRSS before) / {still_open}; {} MiB -> {} MiB",
                mib(rss_before),
                mib(rss_held)
            ),
        );
    }
    out.memory = Some(Memory {
        before_kib: rss_before,
        peak_kib: rss_held,
        after_kib: crate::blog::status_kib(pid, "VmRSS:"),
    });
    out.add_probe(stats);
    Ok(out)
}
