//! The servers compared (the blog, nginx, static-web-server), each started
//! inside its own cgroup CPU budget from its first instruction, configured
//! alike (one worker, same pages, same certificate, keep-alive, TLS 1.2 and
//! 1.3), and stopped, with everything left in the budget killed, on drop.

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde::Serialize;
use testbed::cgroup::{BudgetLimits, CpuBudget};

use crate::tools::{tail, Tools};
use crate::PeersError;

/// The domain of the test certificate and of the URLs the generators ask.
pub const DOMAIN: &str = "blog.test";

/// How long a server gets to accept connections after it is started.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// How long a server gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// One of the compared servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerKind {
    /// The project's `blog`.
    Blog,
    /// Debian's nginx.
    Nginx,
    /// static-web-server.
    Sws,
}

impl PeerKind {
    /// Every peer, in the order repeats interleave them.
    pub const ALL: [PeerKind; 3] = [PeerKind::Blog, PeerKind::Nginx, PeerKind::Sws];

    /// Its short name in files, tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            PeerKind::Blog => "blog",
            PeerKind::Nginx => "nginx",
            PeerKind::Sws => "sws",
        }
    }
}

/// What every server is given.
#[derive(Debug, Clone)]
pub struct PeerSetup {
    /// The exported pages (for nginx and static-web-server).
    pub site_root: PathBuf,
    /// The certbot-shaped directory (`live/DOMAIN/...`).
    pub letsencrypt_dir: PathBuf,
    /// Its `fullchain.pem`.
    pub fullchain: PathBuf,
    /// Its `privkey.pem`.
    pub privkey: PathBuf,
    /// Where configuration files and logs go.
    pub work_dir: PathBuf,
    /// CPU quota in cores (`None`: no quota).
    pub cpus: Option<f64>,
    /// Cores the server may run on, cpuset syntax.
    pub cpuset: String,
    /// Open nginx's `stub_status` on a third port (to count requests).
    pub stub_status: bool,
}

/// The ports one running peer listens on, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Ports {
    /// Plain HTTP serving the site.
    pub http: u16,
    /// HTTPS.
    pub https: u16,
    /// nginx's `stub_status` (`GET /status`), when asked for.
    pub status: Option<u16>,
}

/// What a process of a peer does, to leave idle helpers out of the RSS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Serves HTTP and HTTPS.
    Both,
    /// Serves plain HTTP only (static-web-server's second instance).
    HttpOnly,
    /// Serves HTTPS only.
    HttpsOnly,
}

/// A running server under its CPU budget.
#[derive(Debug)]
pub struct RunningPeer {
    kind: PeerKind,
    ports: Ports,
    children: Vec<(Role, Child)>,
    logs: Vec<PathBuf>,
    // Dropped after `children` are stopped (see `Drop`), so nothing is
    // moved back to the root group while still running.
    budget: CpuBudget,
}

impl RunningPeer {
    /// Starts `kind` with `setup` under a new budget named
    /// `hopless-peers-<name>-<pid>` and waits until its ports accept.
    pub fn start(kind: PeerKind, tools: &Tools, setup: &PeerSetup) -> Result<Self, PeersError> {
        let budget = CpuBudget::create(
            &format!("hopless-peers-{}-{}", kind.name(), std::process::id()),
            &BudgetLimits {
                cpus: setup.cpus,
                cpuset: Some(setup.cpuset.clone()),
                mem_limit_bytes: None,
            },
        )?;
        let ports = Ports {
            http: free_port()?,
            https: free_port()?,
            status: if setup.stub_status && kind == PeerKind::Nginx {
                Some(free_port()?)
            } else {
                None
            },
        };
        let mut peer = RunningPeer {
            kind,
            ports,
            children: Vec::new(),
            logs: Vec::new(),
            budget,
        };
        let dir = setup.work_dir.join(kind.name());
        fs::create_dir_all(&dir).map_err(|e| PeersError::io("create", &dir, e))?;

        match kind {
            PeerKind::Blog => {
                let args = blog_args(setup, &ports);
                peer.spawn(Role::Both, &tools.blog, &args, &dir.join("blog.log"))?;
            }
            PeerKind::Nginx => {
                let conf = dir.join("nginx.conf");
                let text = nginx_conf(setup, &ports, &dir);
                fs::write(&conf, text).map_err(|e| PeersError::io("write", &conf, e))?;
                let args = vec![
                    "-p".to_string(),
                    format!("{}/", dir.display()),
                    "-c".into(),
                    conf.display().to_string(),
                    "-e".into(),
                    dir.join("error.log").display().to_string(),
                ];
                peer.spawn(Role::Both, &tools.nginx, &args, &dir.join("nginx.log"))?;
            }
            PeerKind::Sws => {
                // One static-web-server process serves either plain HTTP or
                // TLS; two processes share the one budget, and only one is
                // loaded at a time.
                for (role, port, tls, name) in [
                    (Role::HttpOnly, ports.http, false, "sws-http"),
                    (Role::HttpsOnly, ports.https, true, "sws-https"),
                ] {
                    let conf = dir.join(format!("{name}.toml"));
                    let text = sws_config(setup, port, tls);
                    fs::write(&conf, text).map_err(|e| PeersError::io("write", &conf, e))?;
                    let args = vec!["--config-file".to_string(), conf.display().to_string()];
                    peer.spawn(role, &tools.sws, &args, &dir.join(format!("{name}.log")))?;
                }
            }
        }
        peer.wait_ready()?;
        Ok(peer)
    }

    /// Which server this is.
    pub fn kind(&self) -> PeerKind {
        self.kind
    }

    /// Its ports.
    pub fn ports(&self) -> Ports {
        self.ports
    }

    /// CPU time used by the whole budget so far, in seconds (cpuacct).
    pub fn cpu_s(&self) -> f64 {
        self.budget.cpu_usage_ns().unwrap_or(0) as f64 / 1e9
    }

    /// Peak resident memory (VmHWM), in KiB, summed over every process in
    /// the budget that serves HTTPS (nginx: master and worker).
    pub fn peak_rss_kib(&self) -> u64 {
        self.serving_pids()
            .iter()
            .map(|pid| status_kib(*pid, "VmHWM:"))
            .sum()
    }

    /// Resident memory now (VmRSS), in KiB, over the same processes.
    pub fn rss_kib(&self) -> u64 {
        self.serving_pids()
            .iter()
            .map(|pid| status_kib(*pid, "VmRSS:"))
            .sum()
    }

    /// Requests nginx has counted so far (`stub_status`), the reading
    /// request itself included.
    pub fn requests_counted(&self) -> Result<u64, PeersError> {
        let port = self.ports.status.ok_or_else(|| PeersError::Server {
            peer: self.kind.name().into(),
            detail: "has no stub_status port (only nginx started with stub_status has)".into(),
        })?;
        read_stub_status(port).map_err(|detail| PeersError::Server {
            peer: self.kind.name().into(),
            detail: format!("stub_status on 127.0.0.1:{port}: {detail}"),
        })
    }

    /// Every pid in the budget except idle plain-HTTP helpers.
    fn serving_pids(&self) -> Vec<u32> {
        let helpers: Vec<u32> = self
            .children
            .iter()
            .filter(|(role, _)| *role == Role::HttpOnly)
            .map(|(_, c)| c.id())
            .collect();
        budget_pids(&self.budget)
            .into_iter()
            .filter(|pid| !helpers.contains(pid))
            .collect()
    }

    fn spawn(
        &mut self,
        role: Role,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<(), PeersError> {
        let out = File::create(log).map_err(|e| PeersError::io("create", log, e))?;
        let err = out
            .try_clone()
            .map_err(|e| PeersError::io("open", log, e))?;
        // The shell joins the budget and then execs the server, so every
        // process and thread it ever makes starts inside the budget.
        let mut script = String::from("set -e; ");
        for controller in ["cpu", "cpuacct", "cpuset", "memory"] {
            script.push_str(&format!(
                "echo $$ > '{}/cgroup.procs'; ",
                self.budget.dir(controller).display()
            ));
        }
        script.push_str("exec \"$@\"");
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("peers-spawn")
            .arg(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|source| PeersError::Spawn {
                program: program.display().to_string(),
                source,
            })?;
        self.children.push((role, child));
        self.logs.push(log.to_path_buf());
        Ok(())
    }

    fn wait_ready(&mut self) -> Result<(), PeersError> {
        let mut ports = vec![self.ports.http, self.ports.https];
        ports.extend(self.ports.status);
        let started = Instant::now();
        loop {
            for (i, (_, child)) in self.children.iter_mut().enumerate() {
                if let Ok(Some(status)) = child.try_wait() {
                    return Err(self.failure(&format!("exited at start ({status})"), i));
                }
            }
            let all_up = ports.iter().all(|port| {
                TcpStream::connect_timeout(
                    &SocketAddr::from(([127, 0, 0, 1], *port)),
                    Duration::from_millis(200),
                )
                .is_ok()
            });
            if all_up {
                return Ok(());
            }
            if started.elapsed() > READY_TIMEOUT {
                return Err(self.failure(
                    &format!(
                        "did not accept on 127.0.0.1 ports {ports:?} within {} s",
                        READY_TIMEOUT.as_secs()
                    ),
                    0,
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn failure(&self, what: &str, log: usize) -> PeersError {
        let text = self
            .logs
            .get(log)
            .and_then(|p| fs::read_to_string(p).ok())
            .unwrap_or_default();
        PeersError::Server {
            peer: self.kind.name().into(),
            detail: format!(
                "{what}; its log {}: {}",
                self.logs
                    .get(log)
                    .map_or("-".into(), |p| p.display().to_string()),
                tail(&text, 6)
            ),
        }
    }

    /// Stops every process (SIGTERM, then SIGKILL after a grace period) and
    /// kills whatever is still in the budget.
    fn stop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        for (_, child) in &mut self.children {
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        for _ in 0..100 {
            let left = budget_pids(&self.budget);
            if left.is_empty() {
                break;
            }
            for pid in left {
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningPeer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn budget_pids(budget: &CpuBudget) -> Vec<u32> {
    fs::read_to_string(budget.dir("cpu").join("cgroup.procs"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// A `/proc/PID/status` field in KiB (0 when the process is gone).
fn status_kib(pid: u32, key: &str) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

/// A port free on 127.0.0.1 right now (the kernel's choice).
pub fn free_port() -> Result<u16, PeersError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| PeersError::io("bind", "127.0.0.1:0", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| PeersError::io("bind", "127.0.0.1:0", e))
}

fn blog_args(setup: &PeerSetup, ports: &Ports) -> Vec<String> {
    [
        "--letsencrypt-dir",
        &setup.letsencrypt_dir.display().to_string(),
        "--domain",
        DOMAIN,
        "--http-port",
        &ports.http.to_string(),
        "--https-port",
        &ports.https.to_string(),
        "--listen",
        "127.0.0.1",
        "--http-serves-site",
        "--workers",
        "1",
        "--log",
        "warn",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// nginx as Debian ships it, reduced to what serving the site needs: one
/// worker, no access log, sendfile, keep-alive without a request cap (the
/// blog has none), TLS 1.2 and 1.3 with ALPN h2, the test certificate.
pub fn nginx_conf(setup: &PeerSetup, ports: &Ports, dir: &Path) -> String {
    let d = dir.display();
    let status = ports.status.map_or(String::new(), |port| {
        format!(
            "    server {{\n        listen 127.0.0.1:{port};\n        \
             location = /status {{ stub_status; }}\n    }}\n"
        )
    });
    format!(
        "worker_processes 1;\n\
         daemon off;\n\
         pid {d}/nginx.pid;\n\
         error_log {d}/error.log warn;\n\
         worker_rlimit_nofile 8192;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n    \
             access_log off;\n    \
             sendfile on;\n    \
             tcp_nopush on;\n    \
             keepalive_timeout 65s;\n    \
             keepalive_requests 10000000;\n    \
             client_body_temp_path {d}/tmp-body;\n    \
             proxy_temp_path {d}/tmp-proxy;\n    \
             fastcgi_temp_path {d}/tmp-fastcgi;\n    \
             uwsgi_temp_path {d}/tmp-uwsgi;\n    \
             scgi_temp_path {d}/tmp-scgi;\n    \
             types {{\n        \
                 text/html html;\n        \
                 text/css css;\n        \
                 application/atom+xml xml;\n        \
                 image/svg+xml svg;\n        \
                 image/png png;\n        \
                 text/plain txt;\n    \
             }}\n    \
             default_type application/octet-stream;\n    \
             charset utf-8;\n    \
             charset_types text/css application/atom+xml text/plain;\n    \
             ssl_protocols TLSv1.2 TLSv1.3;\n    \
             ssl_certificate {fullchain};\n    \
             ssl_certificate_key {privkey};\n    \
             server {{\n        \
                 listen 127.0.0.1:{http};\n        \
                 listen 127.0.0.1:{https} ssl http2;\n        \
                 server_name {DOMAIN} localhost;\n        \
                 root {root};\n        \
                 index index.html;\n        \
                 error_page 404 /404.html;\n    \
             }}\n\
         {status}}}\n",
        fullchain = setup.fullchain.display(),
        privkey = setup.privkey.display(),
        http = ports.http,
        https = ports.https,
        root = setup.site_root.display(),
    )
}

/// static-web-server's configuration file for one port: one worker thread
/// (`threads-multiplier` 1 in a one-core cpuset), its in-memory file cache
/// on, compression off (the generators ask for identity anyway), TLS with
/// the test certificate when `tls` (static-web-server enables TLS only
/// together with HTTP/2; ALPN still offers HTTP/1.1).
pub fn sws_config(setup: &PeerSetup, port: u16, tls: bool) -> String {
    let mut toml = format!(
        "[general]\n\
         host = \"127.0.0.1\"\n\
         port = {port}\n\
         root = \"{root}\"\n\
         threads-multiplier = 1\n\
         log-level = \"error\"\n\
         compression = false\n\
         page404 = \"{root}/404.html\"\n",
        root = setup.site_root.display(),
    );
    if tls {
        toml.push_str(&format!(
            "http2 = true\nhttp2-tls-cert = \"{}\"\nhttp2-tls-key = \"{}\"\n",
            setup.fullchain.display(),
            setup.privkey.display()
        ));
    }
    toml.push_str("\n[advanced.memory-cache]\ncapacity = 256\nttl = 86400\ntti = 86400\n");
    toml
}

/// `requests` from nginx's stub_status page.
fn read_stub_status(port: u16) -> Result<u64, String> {
    let mut stream = TcpStream::connect_timeout(
        &SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_secs(2),
    )
    .map_err(|e| format!("connect: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /status HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| format!("read: {e}"))?;
    parse_stub_status(&text).ok_or_else(|| format!("unexpected answer: {}", tail(&text, 4)))
}

/// The third number of the line after `server accepts handled requests`.
pub fn parse_stub_status(text: &str) -> Option<u64> {
    let mut lines = text.lines();
    lines.find(|l| l.trim() == "server accepts handled requests")?;
    lines.next()?.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stub_status_requests_are_the_third_counter() {
        let page = "HTTP/1.1 200 OK\r\n\r\nActive connections: 1 \nserver accepts handled \
                    requests\n 7 7 42 \nReading: 0 Writing: 1 Waiting: 0 \n";
        assert_eq!(parse_stub_status(page), Some(42));
        assert_eq!(parse_stub_status("HTTP/1.1 404 Not Found\r\n\r\n"), None);
    }

    #[test]
    fn nginx_conf_has_one_worker_no_access_log_and_both_tls_versions() {
        let setup = PeerSetup {
            site_root: "/s".into(),
            letsencrypt_dir: "/le".into(),
            fullchain: "/le/f.pem".into(),
            privkey: "/le/k.pem".into(),
            work_dir: "/w".into(),
            cpus: Some(0.5),
            cpuset: "0".into(),
            stub_status: true,
        };
        let ports = Ports {
            http: 1,
            https: 2,
            status: Some(3),
        };
        let conf = nginx_conf(&setup, &ports, Path::new("/w/nginx"));
        for line in [
            "worker_processes 1;",
            "access_log off;",
            "sendfile on;",
            "ssl_protocols TLSv1.2 TLSv1.3;",
            "listen 127.0.0.1:2 ssl http2;",
            "location = /status { stub_status; }",
        ] {
            assert!(conf.contains(line), "{line} missing from\n{conf}");
        }
    }
}
