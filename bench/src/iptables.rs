//! Evidence of the DNAT hop: packet counters of Docker's DNAT rules for the
//! published ports, read from `iptables -t nat -L DOCKER -v -n -x` (and the
//! legacy backend when Docker used that one).

use std::process::Command;

/// Packets matched so far by `DNAT` rules of the DOCKER chain whose
/// destination port is one of `ports`, summed over both iptables backends;
/// `None` when no backend could be read.
pub fn dnat_packets(ports: &[u16]) -> Option<u64> {
    let mut total = None;
    for program in ["iptables", "iptables-legacy"] {
        let Ok(out) = Command::new(program)
            .args(["-t", "nat", "-L", "DOCKER", "-v", "-n", "-x"])
            .output()
        else {
            continue;
        };
        if out.status.success() {
            let n = parse_dnat_packets(&String::from_utf8_lossy(&out.stdout), ports);
            total = Some(total.unwrap_or(0) + n);
        }
    }
    total
}

/// Sums the packet column of DNAT rules matching `dpt:PORT` for `ports`.
pub fn parse_dnat_packets(listing: &str, ports: &[u16]) -> u64 {
    listing
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("DNAT"))
        .filter(|l| {
            l.split_whitespace().any(|w| {
                w.strip_prefix("dpt:")
                    .and_then(|p| p.parse::<u16>().ok())
                    .is_some_and(|p| ports.contains(&p))
            })
        })
        .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const LISTING: &str = "\
Chain DOCKER (2 references)
    pkts      bytes target     prot opt in     out     source               destination
       0        0 RETURN     all  --  docker0 *       0.0.0.0/0            0.0.0.0/0
    1200    72000 DNAT       tcp  --  !br-1 *       0.0.0.0/0            0.0.0.0/0            tcp dpt:443 to:172.18.0.2:443
      35     2100 DNAT       tcp  --  !br-1 *       0.0.0.0/0            0.0.0.0/0            tcp dpt:80 to:172.18.0.2:80
       9      540 DNAT       tcp  --  !br-2 *       0.0.0.0/0            0.0.0.0/0            tcp dpt:8080 to:172.19.0.2:80
";

    #[test]
    fn only_dnat_rules_of_the_given_ports_count() {
        assert_eq!(parse_dnat_packets(LISTING, &[80, 443]), 1235);
        assert_eq!(parse_dnat_packets(LISTING, &[443]), 1200);
        assert_eq!(parse_dnat_packets(LISTING, &[22]), 0);
    }
}
