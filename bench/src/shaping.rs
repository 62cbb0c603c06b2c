//! Bandwidth caps with tc: a token bucket on both ends of a client
//! namespace's veth pair (host side: responses, client side: requests),
//! removed on drop.

use std::process::Command;

/// tc could not set the cap.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{command}` failed: {stderr} (is iproute2's tc installed and the sch_tbf module available?)"
)]
pub struct ShapingError {
    command: String,
    stderr: String,
}

/// A tbf cap on both directions of one client namespace's veth pair.
#[derive(Debug)]
pub struct BandwidthCap {
    host_veth: String,
    netns: String,
    client_veth: String,
    /// The cap per direction, Mbit/s.
    pub mbit: f64,
}

impl BandwidthCap {
    /// Caps both directions of `ns` at `mbit` Mbit/s.
    pub fn apply(ns: &testbed::ClientNamespace, mbit: f64) -> Result<Self, ShapingError> {
        let cap = BandwidthCap {
            host_veth: ns.host_veth(),
            netns: ns.name(),
            client_veth: ns.client_veth(),
            mbit,
        };
        let rate = format!("{}kbit", (mbit * 1000.0).round() as u64);
        // Burst: at least 10 ms of traffic at the rate, and a full-size frame.
        let burst = format!("{}", ((mbit * 1e6 / 8.0 * 0.01) as u64).max(16 * 1024));
        let tbf = [
            "root", "tbf", "rate", &rate, "burst", &burst, "latency", "50ms",
        ];
        tc(
            None,
            &[&["qdisc", "replace", "dev", &cap.host_veth][..], &tbf[..]].concat(),
        )?;
        tc(
            Some(&cap.netns),
            &[&["qdisc", "replace", "dev", &cap.client_veth][..], &tbf[..]].concat(),
        )?;
        Ok(cap)
    }
}

impl Drop for BandwidthCap {
    fn drop(&mut self) {
        let _ = tc(None, &["qdisc", "del", "dev", &self.host_veth, "root"]);
        let _ = tc(
            Some(&self.netns),
            &["qdisc", "del", "dev", &self.client_veth, "root"],
        );
    }
}

fn tc(netns: Option<&str>, args: &[&str]) -> Result<(), ShapingError> {
    let mut cmd = Command::new("ip");
    if let Some(ns) = netns {
        cmd.args(["netns", "exec", ns, "tc"]);
    } else {
        cmd = Command::new("tc");
    }
    cmd.args(args);
    let command = format!("tc {}", args.join(" "));
    let out = cmd.output().map_err(|e| ShapingError {
        command: command.clone(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(ShapingError {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qdiscs(ns: Option<&str>, dev: &str) -> String {
        let mut cmd = match ns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "tc"]);
                c
            }
            None => Command::new("tc"),
        };
        let out = cmd.args(["qdisc", "show", "dev", dev]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    #[test]
    fn cap_shapes_both_ends_and_is_removed_on_drop() {
        let _lock = testbed::lock::exclusive().unwrap();
        let ns = testbed::ClientNamespace::create(9).unwrap();
        let cap = BandwidthCap::apply(&ns, 32.0).unwrap();
        let host = qdiscs(None, &ns.host_veth());
        assert!(host.contains("tbf") && host.contains("32Mbit"), "{host}");
        let client = qdiscs(Some(&ns.name()), &ns.client_veth());
        assert!(client.contains("tbf"), "{client}");
        drop(cap);
        assert!(!qdiscs(None, &ns.host_veth()).contains("tbf"));
    }
}
