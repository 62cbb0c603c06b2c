//! A `blog` process on loopback ephemeral ports, serving a certbot-shaped
//! certificate from a throwaway CA, with metrics on: its log, its memory
//! (`/proc/PID/status`), its metrics, the certificate it hands out, and
//! signals. Killed on drop.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use testbed::CertbotDir;

use crate::binary::BLOG;
use crate::outcome::Memory;
use crate::ScenarioError;

/// The certificate name (and `--domain`) every scenario uses.
pub const DOMAIN: &str = "blog.test";

/// How to start the server.
#[derive(Debug, Clone)]
pub struct BlogOptions {
    /// `--header-timeout`, seconds.
    pub header_timeout: u64,
    /// `--handshake-timeout`, seconds.
    pub handshake_timeout: u64,
    /// `--grace-period`, seconds.
    pub grace_period: u64,
    /// `--cert-check-interval`, seconds.
    pub cert_check_interval: u64,
    /// Run as this uid and gid (via `setpriv`), with the certificate
    /// directory granted to the gid the way the host setup does.
    pub run_as: Option<u32>,
}

impl Default for BlogOptions {
    /// The server's own defaults, except a 1 s certificate check.
    fn default() -> Self {
        BlogOptions {
            header_timeout: 10,
            handshake_timeout: 10,
            grace_period: 10,
            cert_check_interval: 1,
            run_as: None,
        }
    }
}

type Log = Arc<(Mutex<Vec<String>>, Condvar)>;

/// A running `blog`.
pub struct Blog {
    child: Option<Child>,
    log: Log,
    /// The plain HTTP listener (serves the site).
    pub http: SocketAddr,
    /// The HTTPS listener.
    pub https: SocketAddr,
    /// The metrics listener.
    pub metrics: SocketAddr,
    certs: CertbotDir,
    ca: PathBuf,
    options: BlogOptions,
    dir: tempfile::TempDir,
}

impl std::fmt::Debug for Blog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blog")
            .field("pid", &self.pid())
            .field("https", &self.https)
            .finish()
    }
}

impl Blog {
    /// Makes a certificate directory and starts `blog` on it; returns
    /// once the HTTP, HTTPS and metrics listeners are up.
    pub fn start(options: BlogOptions) -> Result<Blog, ScenarioError> {
        let dir = tempfile::Builder::new()
            .prefix("hopless-reliability-")
            .tempdir()
            .map_err(ScenarioError::io("creating a temporary directory"))?;
        // setpriv'd servers must be able to walk into it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .map_err(ScenarioError::io(format!("chmod {}", dir.path().display())))?;
        let certs = CertbotDir::create(&dir.path().join("letsencrypt"), DOMAIN)?;
        if let Some(id) = options.run_as {
            certs.grant_group(id)?;
        }
        let ca = certs.write_ca(&dir.path().join("ca.pem"))?;
        let mut blog = Blog {
            child: None,
            log: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
            http: any(),
            https: any(),
            metrics: any(),
            certs,
            ca,
            options,
            dir,
        };
        blog.spawn()?;
        Ok(blog)
    }

    fn spawn(&mut self) -> Result<(), ScenarioError> {
        let o = &self.options;
        let mut cmd = match o.run_as {
            Some(id) => {
                let mut c = Command::new("setpriv");
                let id = id.to_string();
                c.args(["--reuid", &id, "--regid", &id, "--clear-groups"]);
                c.arg(BLOG.path()?);
                c
            }
            None => Command::new(BLOG.path()?),
        };
        let le = self.certs.root().to_path_buf();
        cmd.arg("--letsencrypt-dir")
            .arg(&le)
            .args([
                "--domain",
                DOMAIN,
                "--http-serves-site",
                "--listen",
                "127.0.0.1",
            ])
            .args([
                "--http-port",
                "0",
                "--https-port",
                "0",
                "--metrics",
                "127.0.0.1:0",
            ])
            .args(["--header-timeout", &o.header_timeout.to_string()])
            .args(["--handshake-timeout", &o.handshake_timeout.to_string()])
            .args(["--grace-period", &o.grace_period.to_string()])
            .args(["--cert-check-interval", &o.cert_check_interval.to_string()])
            .args(["--log", "info"])
            .env_remove("BLOG_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(ScenarioError::io(format!(
            "starting {:?}",
            cmd.get_program()
        )))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let sink = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.0.lock().unwrap_or_else(|e| e.into_inner()).push(line);
                sink.1.notify_all();
            }
            sink.0
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(STDERR_CLOSED.into());
            sink.1.notify_all();
        });
        self.child = Some(child);
        let wait = Duration::from_secs(120);
        self.https = self.listening("listening on https://", wait)?;
        self.http = self.listening("listening on http://", wait)?;
        self.metrics = self.listening("metrics on http://", wait)?;
        Ok(())
    }

    fn listening(&self, needle: &str, timeout: Duration) -> Result<SocketAddr, ScenarioError> {
        let line = self
            .wait_log(needle, timeout)
            .ok_or_else(|| ScenarioError::Start {
                reason: format!("no {needle:?} line"),
                log: self.log(),
            })?;
        let addr = line
            .split(needle)
            .nth(1)
            .and_then(|rest| rest.split(['/', ' ']).next())
            .unwrap_or_default();
        addr.parse().map_err(|_| ScenarioError::Start {
            reason: format!("no address in {line:?}"),
            log: self.log(),
        })
    }

    /// Waits for a log line containing `needle`; `None` when it does not
    /// come in time or the server exits first.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> Option<String> {
        self.wait_log_after(0, needle, timeout)
    }

    /// Like [`Blog::wait_log`], looking only at lines after the first
    /// `skip` (see [`Blog::log_len`]).
    pub fn wait_log_after(&self, skip: usize, needle: &str, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let (lock, cv) = &*self.log;
        let mut lines = lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(line) = lines.iter().skip(skip).find(|l| l.contains(needle)) {
                return Some(line.clone());
            }
            let now = Instant::now();
            if now >= deadline || lines.iter().any(|l| l == STDERR_CLOSED) {
                return None;
            }
            lines = cv
                .wait_timeout(lines, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// Lines logged so far.
    pub fn log_len(&self) -> usize {
        self.log.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        self.log
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// The CA file clients trust.
    pub fn ca_path(&self) -> &Path {
        &self.ca
    }

    /// The certificate directory.
    pub fn certs(&self) -> &CertbotDir {
        &self.certs
    }

    /// The certificate directory, to renew or break.
    pub fn certs_mut(&mut self) -> &mut CertbotDir {
        &mut self.certs
    }

    /// The scratch directory the certificates live in.
    pub fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// `https://localhost:PORT/` plus `path`.
    pub fn https_url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.https.port())
    }

    /// Sends `signal` to the server.
    pub fn signal(&self, signal: nix::sys::signal::Signal) -> Result<(), ScenarioError> {
        let pid = nix::unistd::Pid::from_raw(self.pid() as i32);
        nix::sys::signal::kill(pid, signal).map_err(|e| ScenarioError::Io {
            what: format!("kill -{signal} {}", self.pid()),
            source: std::io::Error::from_raw_os_error(e as i32),
        })
    }

    /// Waits up to `timeout` for the server to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// `VmRSS` in KiB (0 once the process is gone).
    pub fn rss_kib(&self) -> u64 {
        status_kib(self.pid(), "VmRSS:")
    }

    /// User plus system CPU time the server has used, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        cpu_seconds(self.pid())
    }

    /// Samples RSS every 100 ms until the returned watch is finished.
    pub fn watch_memory(&self) -> MemoryWatch {
        MemoryWatch::start(self.pid())
    }

    /// The Prometheus text from the metrics listener.
    pub fn metrics_text(&self) -> Result<String, ScenarioError> {
        let what = format!("GET http://{}/metrics", self.metrics);
        let mut s = TcpStream::connect_timeout(&self.metrics, Duration::from_secs(5))
            .map_err(ScenarioError::io(what.clone()))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(ScenarioError::io(what.clone()))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
            .map_err(ScenarioError::io(what.clone()))?;
        let mut text = String::new();
        s.read_to_string(&mut text)
            .map_err(ScenarioError::io(what))?;
        Ok(text
            .split_once("\r\n\r\n")
            .map_or(text.clone(), |(_, body)| body.to_string()))
    }

    /// The DER of the end-entity certificate a new TLS handshake gets.
    pub fn served_certificate(&self) -> Result<Vec<u8>, ScenarioError> {
        let what = format!("TLS handshake with {}", self.https);
        let config = loadgen::tls::client_config(Some(&self.ca), false, false)
            .map_err(|e| ScenarioError::Loadgen(e.to_string()))?;
        let name = ServerName::try_from("localhost").expect("a valid name");
        let mut conn =
            rustls::ClientConnection::new(config, name).map_err(|e| ScenarioError::Io {
                what: what.clone(),
                source: std::io::Error::other(e),
            })?;
        let mut sock = TcpStream::connect_timeout(&self.https, Duration::from_secs(5))
            .map_err(ScenarioError::io(what.clone()))?;
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(ScenarioError::io(what.clone()))?;
        while conn.is_handshaking() {
            conn.complete_io(&mut sock)
                .map_err(ScenarioError::io(what.clone()))?;
        }
        conn.peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref().to_vec())
            .ok_or_else(|| ScenarioError::Io {
                what,
                source: std::io::Error::other("no certificate presented"),
            })
    }

    /// The DER of `archive/NAME/certN.pem`: what version N of the
    /// certificate is.
    pub fn issued_certificate(&self, version: u32) -> Result<Vec<u8>, ScenarioError> {
        let path = self.certs.archive_dir().join(format!("cert{version}.pem"));
        let pem = std::fs::read(&path)
            .map_err(ScenarioError::io(format!("reading {}", path.display())))?;
        CertificateDer::from_pem_slice(&pem)
            .map(|c| c.as_ref().to_vec())
            .map_err(|e| ScenarioError::Io {
                what: format!("parsing {}", path.display()),
                source: std::io::Error::other(e.to_string()),
            })
    }
}

impl Drop for Blog {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const STDERR_CLOSED: &str = "<stderr closed>";

fn any() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// A `kB` field of `/proc/PID/status`, 0 when unreadable.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// User plus system CPU time of `pid` in seconds (`/proc/PID/stat`
/// fields 14 and 15), 0 when unreadable.
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces; fields count from after its ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let per_second = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as f64;
    // utime and stime are fields 14 and 15, the 12th and 13th after ')'.
    (ticks(11) + ticks(12)) as f64 / per_second
}

/// A thread sampling a process's RSS every 100 ms.
#[derive(Debug)]
pub struct MemoryWatch {
    pid: u32,
    before: u64,
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MemoryWatch {
    /// Starts sampling `pid`.
    pub fn start(pid: u32) -> MemoryWatch {
        let before = status_kib(pid, "VmRSS:");
        let peak = Arc::new(AtomicU64::new(before));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(status_kib(pid, "VmRSS:"), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        MemoryWatch {
            pid,
            before,
            peak,
            stop,
            thread: Some(thread),
        }
    }

    /// Stops sampling and returns what was seen.
    pub fn finish(mut self) -> Memory {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let after = status_kib(self.pid, "VmRSS:");
        Memory {
            before_kib: self.before,
            peak_kib: self.peak.load(Ordering::Relaxed).max(after),
            after_kib: after,
        }
    }
}
