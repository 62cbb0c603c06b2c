//! Runs `compose/docker-compose.yml` in one profile (bridge or host) from a
//! throwaway project directory with its own `.env`, waits until healthy,
//! finds the server's and docker-proxy's host pids, and takes it all down.

use std::fmt;
use std::fs;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::image::{workspace_root, IMAGE_TAG};

/// The compose project name every deployment uses; Docker objects it makes
/// are named `hopless_*` / `hopless-*`.
pub const PROJECT: &str = "hopless";

/// How long [`Deployment::up`] waits for the healthcheck to pass.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(90);

/// A compose profile: how the server container is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Profile {
    /// `network_mode: host`: the server's own sockets, no hop.
    Host,
    /// Published ports: docker-proxy and DNAT in the path.
    Bridge,
}

impl Profile {
    /// The compose service that runs in this profile.
    pub fn service(self) -> &'static str {
        match self {
            Profile::Host => "blog-host",
            Profile::Bridge => "blog-bridge",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Profile::Host => "host",
            Profile::Bridge => "bridge",
        })
    }
}

/// What a deployment's `.env` says.
#[derive(Debug, Clone, PartialEq)]
pub struct DeployConfig {
    /// Host directory mounted read-only as `/etc/letsencrypt`.
    pub letsencrypt_dir: PathBuf,
    /// Host directory mounted read-only as the ACME webroot.
    pub acme_webroot: PathBuf,
    /// Certificate name under `live/` (comma-separated for several).
    pub domain: String,
    /// Host port for plain HTTP.
    pub http_port: u16,
    /// Host port for HTTPS.
    pub https_port: u16,
    /// Serve the site over plain HTTP instead of redirecting to HTTPS.
    pub http_serves_site: bool,
    /// Server worker threads (`BLOG_WORKERS`); `None`: the server's default.
    pub workers: Option<u32>,
    /// CPU limit in CPUs (`cpus:`); `None`: unlimited.
    pub cpus: Option<f64>,
    /// CPUs the container may run on (`cpuset:`, e.g. "1").
    pub cpuset: Option<String>,
    /// Memory limit (`mem_limit:`, e.g. "256m").
    pub mem_limit: Option<String>,
    /// Parent cgroup of the container (`cgroup_parent:`, e.g.
    /// "/hopless-vps"), to share a CPU budget with docker-proxy.
    pub cgroup_parent: Option<String>,
    /// Image tag to run.
    pub image: String,
}

impl Default for DeployConfig {
    fn default() -> Self {
        DeployConfig {
            letsencrypt_dir: PathBuf::from("/etc/letsencrypt"),
            acme_webroot: PathBuf::from("/var/www/acme"),
            domain: "blog.test".to_string(),
            http_port: 80,
            https_port: 443,
            http_serves_site: false,
            workers: None,
            cpus: None,
            cpuset: None,
            mem_limit: None,
            cgroup_parent: None,
            image: IMAGE_TAG.to_string(),
        }
    }
}

impl DeployConfig {
    /// The `.env` compose reads (and passes whole to the server).
    pub fn env_file(&self) -> String {
        let mut lines = vec![
            format!("COMPOSE_PROJECT_NAME={PROJECT}"),
            format!("HOPLESS_IMAGE={}", self.image),
            format!("BLOG_DOMAIN={}", self.domain),
            format!("LETSENCRYPT_DIR={}", self.letsencrypt_dir.display()),
            format!("ACME_WEBROOT={}", self.acme_webroot.display()),
            format!("HTTP_PORT={}", self.http_port),
            format!("HTTPS_PORT={}", self.https_port),
            format!("BLOG_HTTP_SERVES_SITE={}", self.http_serves_site),
            "BLOG_GRACE_PERIOD=5".to_string(),
            "STOP_GRACE_PERIOD=10s".to_string(),
            // A short interval so `up` sees healthy within seconds.
            "HEALTH_INTERVAL=2s".to_string(),
            format!("CPUS={}", self.cpus.unwrap_or(0.0)),
            format!("CPUSET={}", self.cpuset.as_deref().unwrap_or("")),
            format!("MEM_LIMIT={}", self.mem_limit.as_deref().unwrap_or("0")),
            format!(
                "CGROUP_PARENT={}",
                self.cgroup_parent.as_deref().unwrap_or("")
            ),
        ];
        if let Some(workers) = self.workers {
            lines.push(format!("BLOG_WORKERS={workers}"));
        }
        lines.join("\n") + "\n"
    }
}

/// A deliberately weakened service definition, to show why the compose
/// file is written the way it is (see `compose/README.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// `compose/docker-compose.yml` as shipped.
    Standard,
    /// Adds `security_opt: [no-new-privileges:true]`: on Docker before
    /// 23.0.7 the file capability is then ignored, so the host profile
    /// cannot bind 80.
    NoNewPrivileges,
    /// `cap_drop: [ALL]` without `cap_add: [NET_BIND_SERVICE]`: the
    /// binary's `+ep` capability is outside the bounding set, exec fails.
    CapDropAllOnly,
}

impl Variant {
    /// The compose file text for this variant.
    fn compose_file(self, shipped: &str) -> Result<String, ComposeError> {
        let (from, to) = match self {
            Variant::Standard => return Ok(shipped.to_string()),
            Variant::NoNewPrivileges => (
                "  cap_add: [NET_BIND_SERVICE]\n",
                "  cap_add: [NET_BIND_SERVICE]\n  security_opt: [\"no-new-privileges:true\"]\n",
            ),
            Variant::CapDropAllOnly => ("  cap_add: [NET_BIND_SERVICE]\n", "  cap_add: []\n"),
        };
        if !shipped.contains(from) {
            return Err(ComposeError::Variant {
                variant: self,
                missing: from.trim().to_string(),
            });
        }
        Ok(shipped.replacen(from, to, 1))
    }
}

/// What can go wrong while running a compose profile.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// Neither `docker-compose` nor `docker compose` runs.
    #[error("no compose found: neither `docker-compose version` nor `docker compose version` works (apt-get install docker-compose)")]
    NoCompose,
    /// A command could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A command ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The project directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A host port the profile needs is taken by another process.
    #[error("port {port} is already in use ({holder}); stop that process or choose other ports (http_port/https_port, HTTP_PORT/HTTPS_PORT in .env)")]
    PortBusy {
        /// The port.
        port: u16,
        /// Who holds it, as `ss` reports.
        holder: String,
    },
    /// The container stopped, restarted or never became healthy.
    #[error("{service} did not become healthy ({state}); its log:\n{logs}")]
    Unhealthy {
        /// The compose service.
        service: String,
        /// What Docker reported last.
        state: String,
        /// The container's log.
        logs: String,
    },
    /// The shipped compose file no longer has the line a variant edits.
    #[error(
        "compose/docker-compose.yml has no `{missing}` line for the {variant:?} variant to change"
    )]
    Variant {
        /// The variant asked for.
        variant: Variant,
        /// The line it looked for.
        missing: String,
    },
}

/// A running compose profile, taken down (`down -v`, project directory
/// removed) when dropped, also during a panic.
#[derive(Debug)]
pub struct Deployment {
    profile: Profile,
    cfg: DeployConfig,
    program: Vec<String>,
    dir: tempfile::TempDir,
    container: Option<String>,
    is_down: bool,
}

impl Deployment {
    /// Writes `.env` in a temporary project directory, runs `compose
    /// --profile P up -d` and waits until the container is healthy.
    pub fn up(profile: Profile, cfg: &DeployConfig) -> Result<Deployment, ComposeError> {
        let mut deployment = Self::start(profile, cfg, Variant::Standard, &[])?;
        deployment.wait_healthy()?;
        Ok(deployment)
    }

    /// Writes the project (the compose file as `variant` has it, `.env`
    /// from `cfg` plus `extra_env` lines, e.g. other `BLOG_*` options) and
    /// runs `up -d` without waiting for health: the returned deployment may
    /// be failing (see [`Deployment::wait_healthy`]).
    pub fn start(
        profile: Profile,
        cfg: &DeployConfig,
        variant: Variant,
        extra_env: &[(&str, &str)],
    ) -> Result<Deployment, ComposeError> {
        let program = compose_program()?;
        for port in [cfg.http_port, cfg.https_port] {
            check_port_free(port)?;
        }
        let dir = tempfile::Builder::new()
            .prefix("hopless-compose-")
            .tempdir()
            .map_err(|source| ComposeError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let shipped_path = workspace_root().join("compose/docker-compose.yml");
        let shipped = fs::read_to_string(&shipped_path).map_err(|source| ComposeError::Io {
            path: shipped_path,
            source,
        })?;
        write(
            &dir.path().join("docker-compose.yml"),
            &variant.compose_file(&shipped)?,
        )?;
        let mut env = cfg.env_file();
        for (key, value) in extra_env {
            env.push_str(&format!("{key}={value}\n"));
        }
        write(&dir.path().join(".env"), &env)?;

        // From here on Drop takes down whatever `up` managed to create.
        let mut deployment = Deployment {
            profile,
            cfg: cfg.clone(),
            program,
            dir,
            container: None,
            is_down: false,
        };
        deployment.compose(&["up", "-d", "--no-build"])?;
        let id = deployment.compose(&["ps", "-q", profile.service()])?;
        let id = id.trim().to_string();
        if id.is_empty() {
            return Err(ComposeError::Failed {
                command: format!("compose ps -q {}", profile.service()),
                stderr: "no container after `up -d`".to_string(),
            });
        }
        deployment.container = Some(id);
        Ok(deployment)
    }

    /// Waits until Docker reports the container healthy; fails as soon as
    /// it exits or restarts (restart policy), with its log.
    pub fn wait_healthy(&mut self) -> Result<(), ComposeError> {
        let started = Instant::now();
        let mut state = String::from("not inspected");
        while started.elapsed() < HEALTHY_TIMEOUT {
            state = self.inspect(
                "status={{.State.Status}} health={{if .State.Health}}{{.State.Health.Status}}{{end}} restarts={{.RestartCount}} exit={{.State.ExitCode}}",
            )?;
            if state.contains("health=healthy") {
                return Ok(());
            }
            let stopped = ["status=exited", "status=dead", "status=restarting"];
            if stopped.iter().any(|s| state.contains(s)) || !state.contains("restarts=0") {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(ComposeError::Unhealthy {
            service: self.profile.service().to_string(),
            state: state.trim().to_string(),
            logs: self.logs(),
        })
    }

    /// The profile running.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &DeployConfig {
        &self.cfg
    }

    /// The container id.
    pub fn container_id(&self) -> &str {
        self.container.as_deref().unwrap_or("")
    }

    /// The temporary project directory (compose file and `.env`).
    pub fn project_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host pid of the `blog` process (the container's init).
    pub fn server_pid(&self) -> Result<u32, ComposeError> {
        let pid = self.inspect("{{.State.Pid}}")?;
        match pid.trim().parse::<u32>() {
            Ok(pid) if pid > 0 => Ok(pid),
            _ => Err(ComposeError::Failed {
                command: format!("docker inspect {}", self.container_id()),
                stderr: format!(
                    "container is not running (pid {:?}); log:\n{}",
                    pid.trim(),
                    self.logs()
                ),
            }),
        }
    }

    /// Host pids of the docker-proxy processes listening on this
    /// deployment's host ports (none in the host profile).
    pub fn docker_proxy_pids(&self) -> Vec<u32> {
        docker_proxy_pids_for_ports(&[self.cfg.http_port, self.cfg.https_port])
    }

    /// The container's log (stdout then stderr).
    pub fn logs(&self) -> String {
        let Some(id) = &self.container else {
            return String::new();
        };
        match Command::new("docker").args(["logs", id]).output() {
            Ok(out) => {
                let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.push_str(&String::from_utf8_lossy(&out.stderr));
                text
            }
            Err(e) => format!("(docker logs {id} failed: {e})"),
        }
    }

    /// Stops and removes the containers, networks and volumes it made.
    pub fn down(mut self) -> Result<(), ComposeError> {
        self.take_down()
    }

    fn take_down(&mut self) -> Result<(), ComposeError> {
        if self.is_down {
            return Ok(());
        }
        self.is_down = true;
        self.compose(&["down", "-v", "--remove-orphans", "--timeout", "15"])
            .map(|_| ())
    }

    /// `docker inspect --format FORMAT` of the container, e.g.
    /// `{{.RestartCount}}` or `{{.State.StartedAt}}`.
    pub fn inspect(&self, format: &str) -> Result<String, ComposeError> {
        let id = self.container_id();
        run(Command::new("docker").args(["inspect", "--format", format, id]))
    }

    /// Runs `compose -p hopless --profile P ARGS` in the project directory.
    fn compose(&self, args: &[&str]) -> Result<String, ComposeError> {
        let mut cmd = Command::new(&self.program[0]);
        cmd.args(&self.program[1..])
            .args(["-p", PROJECT, "--profile", &self.profile.to_string()])
            .args(args)
            .current_dir(self.dir.path());
        run(&mut cmd)
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if let Err(e) = self.take_down() {
            eprintln!(
                "hopless: taking down the {} deployment failed: {e}",
                self.profile
            );
        }
    }
}

/// The compose command: `["docker-compose"]` (v1) or `["docker",
/// "compose"]` (v2), whichever answers `version`.
pub fn compose_program() -> Result<Vec<String>, ComposeError> {
    let candidates: [&[&str]; 2] = [&["docker-compose"], &["docker", "compose"]];
    for program in candidates {
        let ok = Command::new(program[0])
            .args(&program[1..])
            .arg("version")
            .output()
            .is_ok_and(|out| out.status.success());
        if ok {
            return Ok(program.iter().map(|s| s.to_string()).collect());
        }
    }
    Err(ComposeError::NoCompose)
}

/// Host pids of `docker-proxy` processes whose `-host-port` is one of
/// `ports`.
pub fn docker_proxy_pids_for_ports(ports: &[u16]) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "docker-proxy" {
            continue;
        }
        let cmdline = fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let host_port = args
            .iter()
            .position(|a| a == "-host-port")
            .and_then(|i| args.get(i + 1))
            .and_then(|p| p.parse::<u16>().ok());
        if host_port.is_some_and(|p| ports.contains(&p)) {
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids
}

/// Removes the containers, networks and volumes of compose project
/// `hopless` (and any Docker object named `hopless*`) that a crashed run
/// left behind. Returns what it removed.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    let label = format!("label=com.docker.compose.project={PROJECT}");
    let name = format!("name={PROJECT}");
    for filter in [&label, &name] {
        let ids =
            run(Command::new("docker").args(["ps", "-aq", "--filter", filter])).unwrap_or_default();
        for id in ids.split_whitespace() {
            if run(Command::new("docker").args(["rm", "-f", "-v", id])).is_ok() {
                removed.push(format!("container {id}"));
            }
        }
    }
    for (kind, list) in [("network", "network"), ("volume", "volume")] {
        let names = run(Command::new("docker").args([list, "ls", "-q", "--filter", &name]))
            .unwrap_or_default();
        for object in names.split_whitespace() {
            let full = run(Command::new("docker").args([
                list,
                "inspect",
                "--format",
                "{{.Name}}",
                object,
            ]))
            .unwrap_or_default();
            if full.trim().starts_with(PROJECT)
                && run(Command::new("docker").args([list, "rm", object])).is_ok()
            {
                removed.push(format!("{kind} {}", full.trim()));
            }
        }
    }
    removed
}

/// Fails with the holder's description when `port` is taken on the host.
fn check_port_free(port: u16) -> Result<(), ComposeError> {
    match TcpListener::bind(("0.0.0.0", port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            let holder = Command::new("ss")
                .args(["-Hltnp", &format!("sport = :{port}")])
                .output()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
                .unwrap_or_default();
            let holder = if holder.is_empty() {
                "holder unknown".to_string()
            } else {
                holder
            };
            Err(ComposeError::PortBusy { port, holder })
        }
        // Other errors (e.g. EACCES when not root) surface from compose.
        Err(_) => Ok(()),
    }
}

fn write(path: &Path, text: &str) -> Result<(), ComposeError> {
    fs::write(path, text).map_err(|source| ComposeError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Runs a command and returns its stdout, or its stderr as the error.
fn run(cmd: &mut Command) -> Result<String, ComposeError> {
    let command = format!(
        "{} {}",
        cmd.get_program().to_string_lossy(),
        cmd.get_args()
            .map(|a| a.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let out = cmd.output().map_err(|source| ComposeError::Spawn {
        command: command.clone(),
        source,
    })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(ComposeError::Failed { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_file_leaves_out_unset_workers_and_zeroes_limits() {
        let env = DeployConfig::default().env_file();
        assert!(!env.contains("BLOG_WORKERS"), "{env}");
        assert!(
            env.contains("CPUS=0\n") && env.contains("MEM_LIMIT=0\n"),
            "{env}"
        );
        let cfg = DeployConfig {
            workers: Some(2),
            cpus: Some(1.5),
            ..Default::default()
        };
        let env = cfg.env_file();
        assert!(
            env.contains("BLOG_WORKERS=2\n") && env.contains("CPUS=1.5\n"),
            "{env}"
        );
    }

    #[test]
    fn variants_edit_the_shipped_compose_file() {
        let path = workspace_root().join("compose/docker-compose.yml");
        let shipped = fs::read_to_string(path).unwrap();
        let nnp = Variant::NoNewPrivileges.compose_file(&shipped).unwrap();
        assert!(nnp.contains("no-new-privileges:true"));
        let only_drop = Variant::CapDropAllOnly.compose_file(&shipped).unwrap();
        assert!(!only_drop.contains("NET_BIND_SERVICE]") && only_drop.contains("cap_add: []"));
        assert!(Variant::CapDropAllOnly
            .compose_file("services: {}\n")
            .is_err());
    }
}
