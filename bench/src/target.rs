//! The server side of a run, per profile: the bare process or a compose
//! deployment, all under one CPU budget, with the pids the accounting reads.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testbed::cgroup::CpuBudget;
use testbed::compose::{DeployConfig, Deployment};

use crate::matrix::Profile;

/// The server side could not be brought up.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    /// Compose failed.
    #[error("the {profile} deployment did not come up: {source}")]
    Compose {
        /// bare, host or bridge.
        profile: &'static str,
        /// What compose said.
        source: testbed::compose::ComposeError,
    },
    /// The bare server could not start or did not answer.
    #[error("the bare server ({binary}) {detail}")]
    Bare {
        /// The binary.
        binary: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A process could not be put under the CPU budget.
    #[error("cannot put pid {pid} under the CPU budget: {source}")]
    Budget {
        /// The process.
        pid: u32,
        /// What the cgroup said.
        source: testbed::cgroup::CgroupError,
    },
}

/// What a profile is started with.
#[derive(Debug, Clone)]
pub struct ServerSetup {
    /// The static blog binary (the one the image holds).
    pub binary: PathBuf,
    /// Compose settings (ports, certificates, image, limits, cgroup parent).
    pub deploy: DeployConfig,
    /// Server worker threads.
    pub workers: u32,
}

/// A running server side, taken down on drop.
#[derive(Debug)]
pub enum Target {
    /// The plain process.
    Bare(BareServer),
    /// A compose deployment.
    Compose(Box<Deployment>),
}

impl Target {
    /// Brings `profile` up and puts it (and, for bridge, docker-proxy) under
    /// `budget`.
    pub fn up(
        profile: Profile,
        setup: &ServerSetup,
        budget: &CpuBudget,
    ) -> Result<Self, TargetError> {
        let target = match profile {
            Profile::Bare => Target::Bare(BareServer::start(setup, budget)?),
            Profile::Host | Profile::Bridge => {
                let p = if profile == Profile::Host {
                    testbed::compose::Profile::Host
                } else {
                    testbed::compose::Profile::Bridge
                };
                let deployment =
                    Deployment::up(p, &setup.deploy).map_err(|source| TargetError::Compose {
                        profile: profile.name(),
                        source,
                    })?;
                Target::Compose(Box::new(deployment))
            }
        };
        for pid in target.docker_proxy_pids() {
            budget
                .add_process(pid)
                .map_err(|source| TargetError::Budget { pid, source })?;
        }
        Ok(target)
    }

    /// The server process's host pid.
    pub fn server_pid(&self) -> Option<u32> {
        match self {
            Target::Bare(b) => Some(b.child.id()),
            Target::Compose(d) => d.server_pid().ok(),
        }
    }

    /// docker-proxy processes of this deployment (none for bare and host).
    pub fn docker_proxy_pids(&self) -> Vec<u32> {
        match self {
            Target::Bare(_) => Vec::new(),
            Target::Compose(d) => d.docker_proxy_pids(),
        }
    }

    /// The server's log so far (for a failed cell's reason).
    pub fn logs(&self) -> String {
        match self {
            Target::Bare(b) => std::fs::read_to_string(&b.log).unwrap_or_default(),
            Target::Compose(d) => d.logs(),
        }
    }

    /// Takes the server side down, reporting a failure.
    pub fn down(self) -> Result<(), String> {
        match self {
            Target::Bare(b) => {
                drop(b);
                Ok(())
            }
            Target::Compose(d) => (*d).down().map_err(|e| e.to_string()),
        }
    }
}

/// The static binary run as a plain process, uid/gid 2200, no capability
/// other than its file capability; killed on drop.
#[derive(Debug)]
pub struct BareServer {
    child: Child,
    log: PathBuf,
}

impl BareServer {
    fn start(setup: &ServerSetup, budget: &CpuBudget) -> Result<Self, TargetError> {
        let err = |detail: String| TargetError::Bare {
            binary: setup.binary.clone(),
            detail,
        };
        let d = &setup.deploy;
        let log = d.acme_webroot.with_file_name("bare-server.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| err(format!("log {}: {e}", log.display())))?;
        let mut cmd = Command::new("setpriv");
        cmd.args([
            "--reuid",
            "2200",
            "--regid",
            "2200",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(&setup.binary)
        .arg("--letsencrypt-dir")
        .arg(&d.letsencrypt_dir)
        .arg("--acme-webroot")
        .arg(&d.acme_webroot)
        .args(["--domain", &d.domain])
        .args([
            "--http-port",
            &d.http_port.to_string(),
            "--https-port",
            &d.https_port.to_string(),
        ])
        .args(["--workers", &setup.workers.to_string(), "--log", "warn"])
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log_file);
        if d.http_serves_site {
            cmd.arg("--http-serves-site");
        }
        let child = cmd
            .spawn()
            .map_err(|e| err(format!("cannot start via setpriv: {e}")))?;
        let _ = std::fs::write(crate::cleanup::bare_pid_file(), child.id().to_string());
        let mut server = BareServer { child, log };
        budget
            .add_process(server.child.id())
            .map_err(|source| TargetError::Budget {
                pid: server.child.id(),
                source,
            })?;
        server
            .wait_ready(d.http_port, Duration::from_secs(20))
            .map_err(err)?;
        Ok(server)
    }

    /// Waits until the HTTP port accepts a connection, or the process exits.
    fn wait_ready(&mut self, port: u16, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(format!("exited ({status}) before listening:\n{log}"));
            }
            if std::net::TcpStream::connect_timeout(
                &([127, 0, 0, 1], port).into(),
                Duration::from_millis(200),
            )
            .is_ok()
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "did not listen on 127.0.0.1:{port} within {timeout:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for BareServer {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let _ = std::fs::remove_file(crate::cleanup::bare_pid_file());
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(crate::cleanup::bare_pid_file());
    }
}

/// The served paths, as `blog paths` lists them (the site embedded in the
/// binary every profile runs).
pub fn served_paths(binary: &Path) -> Result<Vec<String>, String> {
    let out = Command::new(binary)
        .arg("paths")
        .env_clear()
        .output()
        .map_err(|e| format!("cannot run {} paths: {e}", binary.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} paths failed: {}",
            binary.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('/'))
        .map(String::from)
        .collect())
}

/// The visitor mix: weight per path (the index and posts heavy, the
/// stylesheet and feed lighter, images, icons and robots.txt light).
pub fn visitor_weight(path: &str) -> u32 {
    if path == "/" {
        20
    } else if path.ends_with(".css") {
        5
    } else if path.ends_with(".xml") {
        2
    } else if path.ends_with(".png")
        || path.ends_with(".svg")
        || path.ends_with(".ico")
        || path.ends_with(".txt")
    {
        1
    } else {
        6
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visitors_weigh_index_and_posts_over_assets() {
        assert!(visitor_weight("/") > visitor_weight("/posts/hello/"));
        assert!(visitor_weight("/posts/hello/") > visitor_weight("/style.css"));
        assert!(visitor_weight("/style.css") > visitor_weight("/feed.xml"));
        assert!(visitor_weight("/feed.xml") > visitor_weight("/robots.txt"));
    }
}
