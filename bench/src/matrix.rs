//! What a run measures: profiles, paths, workloads and load points, and the
//! plan (standard or quick) that lists the cells in their interleaved order.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// How the server is deployed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// The static server binary as a plain process on the host: the limit.
    Bare,
    /// The compose `host` profile: `network_mode: host`, no hop.
    Host,
    /// The compose `bridge` profile: published ports, docker-proxy and DNAT.
    Bridge,
}

impl Profile {
    /// Every profile in the order a repeat runs them.
    pub const ALL: [Profile; 3] = [Profile::Bare, Profile::Host, Profile::Bridge];

    /// The name used in flags, JSON and charts.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Bare => "bare",
            Profile::Host => "host",
            Profile::Bridge => "bridge",
        }
    }
}

/// How the load generator reaches the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientPath {
    /// 127.0.0.1 on the host itself.
    Loopback,
    /// From a client namespace over a veth, IPv4 (198.18.N.2 → 198.18.N.1).
    ExternalV4,
    /// From a client namespace over a veth, IPv6 (2001:2:0:N::2 → ::1).
    ExternalV6,
}

impl ClientPath {
    /// Every path.
    pub const ALL: [ClientPath; 3] = [
        ClientPath::Loopback,
        ClientPath::ExternalV4,
        ClientPath::ExternalV6,
    ];

    /// The name used in flags, JSON and charts.
    pub fn name(self) -> &'static str {
        match self {
            ClientPath::Loopback => "loopback",
            ClientPath::ExternalV4 => "external-v4",
            ClientPath::ExternalV6 => "external-v6",
        }
    }

    /// True for the paths that come in from a client namespace.
    pub fn is_external(self) -> bool {
        !matches!(self, ClientPath::Loopback)
    }

    /// The hop a bridge deployment is expected to use on this path (see
    /// Docker 20.10 with ip6tables off: loopback and IPv6 go through
    /// docker-proxy, IPv4 from outside through DNAT).
    pub fn expected_bridge_hop(self) -> Hop {
        match self {
            ClientPath::ExternalV4 => Hop::Dnat,
            ClientPath::Loopback | ClientPath::ExternalV6 => Hop::DockerProxy,
        }
    }
}

/// What carried a connection into the container, as observed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Hop {
    /// The userland proxy copied the bytes.
    DockerProxy,
    /// Kernel DNAT, the bridge and the veth.
    Dnat,
    /// Neither: the server's own socket.
    None,
}

impl Hop {
    /// The name used in JSON and the report.
    pub fn name(self) -> &'static str {
        match self {
            Hop::DockerProxy => "docker-proxy",
            Hop::Dnat => "dnat",
            Hop::None => "none",
        }
    }
}

/// The kind of traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Plain HTTP/1.1 over kept-alive connections.
    Http1Keepalive,
    /// HTTP/1.1 over TLS, kept-alive connections.
    HttpsKeepalive,
    /// HTTP/2 over TLS.
    H2,
    /// Plain HTTP/1.1, a new TCP connection per request.
    Http1NewConnection,
    /// HTTPS, a new TCP connection and TLS handshake per request.
    HttpsNewConnection,
}

impl Workload {
    /// Every workload.
    pub const ALL: [Workload; 5] = [
        Workload::Http1Keepalive,
        Workload::HttpsKeepalive,
        Workload::H2,
        Workload::Http1NewConnection,
        Workload::HttpsNewConnection,
    ];

    /// The name used in flags, JSON and charts.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Http1Keepalive => "http1-keepalive",
            Workload::HttpsKeepalive => "https-keepalive",
            Workload::H2 => "h2",
            Workload::Http1NewConnection => "http1-new-connection",
            Workload::HttpsNewConnection => "https-new-connection",
        }
    }

    /// True when the workload speaks TLS.
    pub fn tls(self) -> bool {
        matches!(
            self,
            Workload::HttpsKeepalive | Workload::H2 | Workload::HttpsNewConnection
        )
    }

    /// True when every request opens a new connection.
    pub fn new_connection(self) -> bool {
        matches!(
            self,
            Workload::Http1NewConnection | Workload::HttpsNewConnection
        )
    }

    /// Concurrent connections the generator keeps: enough to saturate a
    /// one-core server, few enough that a new-connection workload does not
    /// run out of ephemeral ports in a cell.
    pub fn connections(self) -> u32 {
        if self.new_connection() {
            16
        } else {
            64
        }
    }
}

/// How hard a cell drives the server.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum LoadPoint {
    /// Closed loop: as fast as replies come (maximum throughput).
    Max,
    /// Open loop at this fraction of bare's maximum for the same path and
    /// workload in the same repeat.
    Fraction {
        /// 0.25, 0.5, 0.75 ...
        fraction: f64,
    },
}

impl LoadPoint {
    /// `max` or `25pct`.
    pub fn label(&self) -> String {
        match self {
            LoadPoint::Max => "max".to_string(),
            LoadPoint::Fraction { fraction } => format!("{}pct", (fraction * 100.0).round()),
        }
    }
}

impl fmt::Display for LoadPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label())
    }
}

/// One measurement: a profile, a path, a workload and a load point, in a
/// given repeat.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CellKey {
    /// Deployment.
    pub profile: Profile,
    /// How the client reaches it.
    pub path: ClientPath,
    /// Traffic kind.
    pub workload: Workload,
    /// Closed loop max or a fraction of bare's max.
    pub load: LoadPoint,
    /// 0-based repeat number.
    pub repeat: u32,
}

impl CellKey {
    /// A file-name-safe id, e.g. `r0-bridge-external-v4-h2-max`.
    pub fn id(&self) -> String {
        format!(
            "r{}-{}-{}-{}-{}",
            self.repeat,
            self.profile.name(),
            self.path.name(),
            self.workload.name(),
            self.load.label()
        )
    }
}

/// What a run measures and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `standard`, `quick` or `custom`.
    pub name: String,
    /// Profiles, in the interleaved order each repeat runs them.
    pub profiles: Vec<Profile>,
    /// Client paths.
    pub paths: Vec<ClientPath>,
    /// Workloads measured at maximum throughput.
    pub workloads: Vec<Workload>,
    /// Workloads also measured open loop at `fractions`.
    pub open_loop_workloads: Vec<Workload>,
    /// Fractions of bare's maximum for the open-loop cells.
    pub fractions: Vec<f64>,
    /// Repeats of the whole matrix.
    pub repeats: u32,
    /// Measured seconds of a closed-loop cell.
    pub max_duration_s: f64,
    /// Measured seconds of an open-loop cell.
    pub open_duration_s: f64,
    /// Warm-up seconds before each cell (not measured).
    pub warmup_s: f64,
}

impl Plan {
    /// The standard comparison: every path and workload, open loop for the
    /// visitors' common case (keep-alive HTTPS), 3 repeats; about 20 minutes.
    pub fn standard() -> Self {
        Plan {
            name: "standard".into(),
            profiles: Profile::ALL.to_vec(),
            paths: ClientPath::ALL.to_vec(),
            workloads: Workload::ALL.to_vec(),
            open_loop_workloads: vec![Workload::HttpsKeepalive],
            fractions: vec![0.25, 0.5, 0.75],
            repeats: 3,
            max_duration_s: 4.0,
            open_duration_s: 3.0,
            warmup_s: 1.0,
        }
    }

    /// The reduced matrix the tests use: two workloads, one repeat, short
    /// cells; about two minutes.
    pub fn quick() -> Self {
        Plan {
            name: "quick".into(),
            profiles: Profile::ALL.to_vec(),
            paths: ClientPath::ALL.to_vec(),
            workloads: vec![Workload::Http1Keepalive, Workload::HttpsKeepalive],
            open_loop_workloads: vec![Workload::HttpsKeepalive],
            fractions: vec![0.5],
            repeats: 1,
            max_duration_s: 2.0,
            open_duration_s: 2.0,
            warmup_s: 0.5,
        }
    }

    /// Every cell of one profile in one repeat, in the order run: per path
    /// and workload the closed-loop cell, then its open-loop cells.
    pub fn cells_of(&self, profile: Profile, repeat: u32) -> Vec<CellKey> {
        let mut cells = Vec::new();
        for &path in &self.paths {
            for &workload in &self.workloads {
                let key = |load| CellKey {
                    profile,
                    path,
                    workload,
                    load,
                    repeat,
                };
                cells.push(key(LoadPoint::Max));
                if self.open_loop_workloads.contains(&workload) {
                    for &fraction in &self.fractions {
                        cells.push(key(LoadPoint::Fraction { fraction }));
                    }
                }
            }
        }
        cells
    }

    /// Number of cells in the whole run.
    pub fn cell_count(&self) -> usize {
        let per_profile = self.cells_of(Profile::Bare, 0).len();
        per_profile * self.profiles.len() * self.repeats as usize
    }

    /// Measured plus warm-up time of the whole run, without start-up and
    /// teardown.
    pub fn estimated(&self) -> Duration {
        let mut secs = 0.0;
        for cell in self.cells_of(Profile::Bare, 0) {
            secs += self.warmup_s
                + match cell.load {
                    LoadPoint::Max => self.max_duration_s,
                    LoadPoint::Fraction { .. } => self.open_duration_s,
                };
        }
        Duration::from_secs_f64(secs * (self.profiles.len() as u32 * self.repeats) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quick_plan_has_open_loop_cells_after_their_max_cell() {
        let plan = Plan::quick();
        let cells = plan.cells_of(Profile::Host, 0);
        let pos = |w, l: LoadPoint| {
            cells
                .iter()
                .position(|c| c.workload == w && c.load == l && c.path == ClientPath::Loopback)
        };
        let max = pos(Workload::HttpsKeepalive, LoadPoint::Max).unwrap();
        let half = pos(
            Workload::HttpsKeepalive,
            LoadPoint::Fraction { fraction: 0.5 },
        )
        .unwrap();
        assert!(max < half);
        assert_eq!(plan.cell_count(), 3 * 3 * (2 + 1));
    }

    #[test]
    fn cell_id_names_every_coordinate() {
        let key = CellKey {
            profile: Profile::Bridge,
            path: ClientPath::ExternalV6,
            workload: Workload::H2,
            load: LoadPoint::Fraction { fraction: 0.25 },
            repeat: 2,
        };
        assert_eq!(key.id(), "r2-bridge-external-v6-h2-25pct");
    }

    #[test]
    fn standard_plan_fits_in_about_twenty_minutes_of_measuring() {
        let secs = Plan::standard().estimated().as_secs();
        assert!((900..=1260).contains(&secs), "{secs} s");
    }
}
