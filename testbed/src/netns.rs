//! Client network namespaces: an "external" visitor tied to the host by a
//! veth pair, with addresses from the benchmarking ranges 198.18.0.0/15
//! (RFC 2544) and 2001:2::/48 (RFC 5180).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::{Command, Output};

/// Prefix of every namespace this crate makes.
pub const NETNS_PREFIX: &str = "hopless-c";
/// Prefix of every veth this crate makes.
pub const VETH_PREFIX: &str = "hl-";

/// A failed `ip` command.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// `ip` could not be run at all.
    #[error("cannot run `{command}`: {source} (install iproute2: apt-get install iproute2)")]
    Spawn {
        /// The command line.
        command: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// `ip` ran and failed.
    #[error("`{command}` failed: {stderr} (needs root; remove leftovers with `ip netns del {NETNS_PREFIX}N`)")]
    Failed {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// A namespace `hopless-cN` with a veth pair `hl-hN` (host side) and `hl-cN`
/// (client side). Removed on drop.
///
/// Addresses: host `198.18.N.1/24` and `2001:2:0:N::1/64`; client
/// `198.18.N.2/24` and `2001:2:0:N::2/64`; the client's default routes go
/// to the host side, so a connection to the host address enters the host
/// from outside, as a visitor's does.
#[derive(Debug)]
pub struct ClientNamespace {
    index: u8,
}

impl ClientNamespace {
    /// Creates namespace number `index`, first removing any leftover of the
    /// same name.
    pub fn create(index: u8) -> Result<Self, NetnsError> {
        let ns = ClientNamespace { index };
        ns.remove();
        let name = ns.name();
        let (host, client) = (ns.host_veth(), ns.client_veth());
        ip(&["netns", "add", &name])?;
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", &client, "netns", &name,
        ])?;
        ip(&["addr", "add", &format!("{}/24", ns.host_v4()), "dev", &host])?;
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", ns.host_v6()),
            "dev",
            &host,
            "nodad",
        ])?;
        ip(&["link", "set", &host, "up"])?;
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &name, "ip"];
            full.extend_from_slice(args);
            ip(&full)
        };
        inside(&["link", "set", "lo", "up"])?;
        inside(&[
            "addr",
            "add",
            &format!("{}/24", ns.client_v4()),
            "dev",
            &client,
        ])?;
        inside(&[
            "-6",
            "addr",
            "add",
            &format!("{}/64", ns.client_v6()),
            "dev",
            &client,
            "nodad",
        ])?;
        inside(&["link", "set", &client, "up"])?;
        inside(&["route", "add", "default", "via", &ns.host_v4().to_string()])?;
        inside(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &ns.host_v6().to_string(),
        ])?;
        Ok(ns)
    }

    /// `hopless-cN`.
    pub fn name(&self) -> String {
        format!("{NETNS_PREFIX}{}", self.index)
    }

    /// The host end of the veth pair, `hl-hN` (where a bandwidth cap goes).
    pub fn host_veth(&self) -> String {
        format!("{VETH_PREFIX}h{}", self.index)
    }

    /// The client end of the veth pair, `hl-cN`, inside the namespace.
    pub fn client_veth(&self) -> String {
        format!("{VETH_PREFIX}c{}", self.index)
    }

    /// The host's IPv4 address on the pair: what a visitor connects to.
    pub fn host_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.index, 1)
    }

    /// The client's IPv4 address.
    pub fn client_v4(&self) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, self.index, 2)
    }

    /// The host's IPv6 address on the pair.
    pub fn host_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 2, 0, self.index as u16, 0, 0, 0, 1)
    }

    /// The client's IPv6 address.
    pub fn client_v6(&self) -> Ipv6Addr {
        Ipv6Addr::new(0x2001, 2, 0, self.index as u16, 0, 0, 0, 2)
    }

    /// The host address of the given family.
    pub fn host_addr(&self, v6: bool) -> IpAddr {
        if v6 {
            self.host_v6().into()
        } else {
            self.host_v4().into()
        }
    }

    /// A command that runs `program` inside the namespace.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name(), program]);
        cmd
    }

    fn remove(&self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name()])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth()])
            .output();
    }
}

impl Drop for ClientNamespace {
    fn drop(&mut self) {
        self.remove();
    }
}

/// Removes every namespace and veth this crate could have left behind
/// (names starting with [`NETNS_PREFIX`] or [`VETH_PREFIX`]), and nothing
/// else. Returns what it removed.
pub fn remove_leftovers() -> Vec<String> {
    let mut removed = Vec::new();
    if let Ok(out) = Command::new("ip").args(["netns", "list"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let name = line.split_whitespace().next().unwrap_or("");
            if name.starts_with(NETNS_PREFIX) {
                let _ = Command::new("ip").args(["netns", "del", name]).output();
                removed.push(format!("netns {name}"));
            }
        }
    }
    if let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "12: hl-h0@if11: <...>"
            let name = line.split(':').nth(1).unwrap_or("").trim();
            let name = name.split('@').next().unwrap_or("");
            if name.starts_with(VETH_PREFIX) {
                let _ = Command::new("ip").args(["link", "del", name]).output();
                removed.push(format!("link {name}"));
            }
        }
    }
    removed
}

fn ip(args: &[&str]) -> Result<Output, NetnsError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(NetnsError::Failed { command, stderr });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_namespace_reaches_the_host_over_both_families() {
        let _lock = crate::lock::exclusive().unwrap();
        let ns = ClientNamespace::create(250).unwrap();
        for addr in [ns.host_v4().to_string(), ns.host_v6().to_string()] {
            let out = ns
                .command("ping")
                .args(["-c", "1", "-W", "2", &addr])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "ping {addr}: {}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        let name = ns.name();
        drop(ns);
        let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
        assert!(!String::from_utf8_lossy(&list.stdout).contains(&name));
    }
}
