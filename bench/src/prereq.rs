//! The prerequisite check that runs before anything else: root, Docker,
//! compose, the network tools, cgroup v1 and free ports, each missing piece
//! named with the command that installs it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;

/// One thing missing, with how to fix it.
#[derive(Debug, Clone, PartialEq)]
pub struct Missing {
    /// What is missing or wrong.
    pub what: String,
    /// The exact fix.
    pub fix: String,
}

/// Everything missing, as one error listing all of it.
#[derive(Debug, thiserror::Error)]
#[error("prerequisites missing:\n{}", list(.0))]
pub struct PrereqError(pub Vec<Missing>);

fn list(items: &[Missing]) -> String {
    items
        .iter()
        .map(|m| format!("  - {}: {}", m.what, m.fix))
        .collect::<Vec<_>>()
        .join("\n")
}

fn has_command(name: &str) -> bool {
    [
        "/usr/sbin",
        "/usr/bin",
        "/sbin",
        "/bin",
        "/usr/local/bin",
        "/usr/local/sbin",
    ]
    .iter()
    .any(|d| Path::new(d).join(name).exists())
        || Command::new("which")
            .arg(name)
            .output()
            .is_ok_and(|o| o.status.success())
}

/// Checks everything a run needs; `ports` must be free on 0.0.0.0 and [::].
pub fn check(ports: &[u16]) -> Result<(), PrereqError> {
    let mut missing = Vec::new();
    if !nix::unistd::Uid::effective().is_root() {
        missing.push(Missing {
            what: "not root".into(),
            fix: "run as root (namespaces, cgroups, tc and ports below 1024 need it): sudo -E cargo run --release -p bench".into(),
        });
    }
    let tools = [
        ("docker", "apt-get install docker.io"),
        ("ip", "apt-get install iproute2"),
        ("tc", "apt-get install iproute2"),
        ("iptables", "apt-get install iptables"),
        ("taskset", "apt-get install util-linux"),
        ("setpriv", "apt-get install util-linux"),
        ("getconf", "apt-get install libc-bin"),
    ];
    for (tool, fix) in tools {
        if !has_command(tool) {
            missing.push(Missing {
                what: format!("`{tool}` not found"),
                fix: fix.into(),
            });
        }
    }
    if has_command("docker") {
        let ok = Command::new("docker")
            .arg("info")
            .output()
            .is_ok_and(|o| o.status.success());
        if !ok {
            missing.push(Missing {
                what: "the Docker daemon is not reachable (`docker info` failed)".into(),
                fix: "start it: service docker start (or scripts/install-deps.sh)".into(),
            });
        }
    }
    if testbed::compose::compose_program().is_err() {
        missing.push(Missing {
            what: "neither `docker-compose` (v1) nor `docker compose` (v2) answers".into(),
            fix: "apt-get install docker-compose".into(),
        });
    }
    for controller in ["cpu", "cpuacct", "cpuset", "memory"] {
        let dir = Path::new("/sys/fs/cgroup").join(controller);
        if !dir.join("cgroup.procs").exists() {
            missing.push(Missing {
                what: format!("no cgroup v1 `{controller}` controller at {}", dir.display()),
                fix: "the server-side CPU budget needs cgroup v1 (boot with systemd.unified_cgroup_hierarchy=0)".into(),
            });
        }
    }
    for &port in ports {
        if let Some(why) = port_taken(port) {
            missing.push(Missing {
                what: format!("port {port} is taken ({why})"),
                fix: format!(
                    "stop what listens there (ss -ltnp 'sport = :{port}' shows it) or choose other ports with --http-port/--https-port"
                ),
            });
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrereqError(missing))
    }
}

/// Why `port` cannot be bound on the wildcard addresses, if it cannot.
pub fn port_taken(port: u16) -> Option<String> {
    let v4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, port));
    if let Err(e) = TcpListener::bind(v4) {
        return Some(format!("{v4}: {e}"));
    }
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    match TcpListener::bind(v6) {
        Err(e) if e.kind() != std::io::ErrorKind::AddrNotAvailable => Some(format!("{v6}: {e}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_named_with_the_way_out() {
        let held = TcpListener::bind("0.0.0.0:0").unwrap();
        let port = held.local_addr().unwrap().port();
        assert!(port_taken(port).is_some());
        let err = check(&[port]).unwrap_err().to_string();
        assert!(err.contains(&format!("port {port} is taken")), "{err}");
        assert!(err.contains("--http-port"), "{err}");
    }
}
