//! Turns cell records into medians per group and the headline: what bridge
//! costs against host (and each against bare), paired by repeat.

use serde::{Deserialize, Serialize};

use crate::matrix::{ClientPath, LoadPoint, Profile, Workload};
use crate::record::CellRecord;
use crate::stats::{paired_ratio, Spread};

/// Medians over the repeats of one profile × path × workload × load point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    /// Deployment.
    pub profile: Profile,
    /// Client path.
    pub path: ClientPath,
    /// Workload.
    pub workload: Workload,
    /// Load point.
    pub load: LoadPoint,
    /// Offered rate (open loop), requests/s.
    pub offered_rate: Option<Spread>,
    /// Completed requests/s.
    pub throughput: Option<Spread>,
    /// Corrected p50 latency, µs.
    pub p50_us: Option<Spread>,
    /// Corrected p99 latency, µs.
    pub p99_us: Option<Spread>,
    /// Server CPU per request, µs.
    pub server_us: Option<Spread>,
    /// docker-proxy CPU per request, µs.
    pub docker_proxy_us: Option<Spread>,
    /// Softirq on the server core per request, µs.
    pub softirq_us: Option<Spread>,
    /// Load generator CPU per request, µs.
    pub loadgen_us: Option<Spread>,
    /// Server side (server + docker-proxy + softirq) per request, µs.
    pub server_side_us: Option<Spread>,
    /// Hops observed, one per successful repeat (`docker-proxy`, `dnat`, `none`).
    pub hops_observed: Vec<String>,
    /// Repeats that succeeded.
    pub ok: usize,
    /// Repeats that failed.
    pub failed: usize,
    /// Repeats whose generator may have been the bottleneck.
    pub generator_limited: usize,
    /// Repeats bounded by the bandwidth cap.
    pub bandwidth_bound: usize,
}

/// For one path and workload: bridge against host (and both against bare).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadlineRow {
    /// Client path.
    pub path: ClientPath,
    /// Workload.
    pub workload: Workload,
    /// The hop bridge took here (observed, most repeats).
    pub bridge_hop: String,
    /// Host max throughput, requests/s.
    pub host_throughput: Option<Spread>,
    /// Bridge max throughput, requests/s.
    pub bridge_throughput: Option<Spread>,
    /// Bridge / host max throughput, paired by repeat.
    pub throughput_ratio: Option<Spread>,
    /// Host / bare max throughput, paired by repeat.
    pub host_vs_bare: Option<Spread>,
    /// Bridge / bare max throughput, paired by repeat.
    pub bridge_vs_bare: Option<Spread>,
    /// Which load the latency figures come from (`50pct` open loop or `max`).
    pub latency_load: String,
    /// Host p50, µs.
    pub host_p50_us: Option<Spread>,
    /// Bridge p50, µs.
    pub bridge_p50_us: Option<Spread>,
    /// Host p99, µs.
    pub host_p99_us: Option<Spread>,
    /// Bridge p99, µs.
    pub bridge_p99_us: Option<Spread>,
    /// Host server-side CPU per request at max, µs.
    pub host_cpu_us: Option<Spread>,
    /// Bridge server-side CPU per request at max, µs.
    pub bridge_cpu_us: Option<Spread>,
    /// Bridge / host server-side CPU per request, paired by repeat.
    pub cpu_ratio: Option<Spread>,
}

fn matching<'a>(
    cells: &'a [CellRecord],
    profile: Profile,
    path: ClientPath,
    workload: Workload,
    load: &LoadPoint,
) -> impl Iterator<Item = &'a CellRecord> {
    let load = *load;
    cells.iter().filter(move |c| {
        c.key.profile == profile
            && c.key.path == path
            && c.key.workload == workload
            && c.key.load == load
    })
}

/// Groups cells by profile × path × workload × load point, in a stable order.
pub fn groups(cells: &[CellRecord]) -> Vec<Group> {
    let mut keys: Vec<(Profile, ClientPath, Workload, LoadPoint)> = Vec::new();
    for c in cells {
        let k = (c.key.profile, c.key.path, c.key.workload, c.key.load);
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys.sort_by(|a, b| {
        (a.1, a.2, a.0)
            .cmp(&(b.1, b.2, b.0))
            .then(load_order(&a.3).total_cmp(&load_order(&b.3)))
    });
    keys.into_iter()
        .map(|(profile, path, workload, load)| {
            let all: Vec<&CellRecord> = matching(cells, profile, path, workload, &load).collect();
            let ok: Vec<&CellRecord> = all
                .iter()
                .copied()
                .filter(|c| c.ok_report().is_some())
                .collect();
            let of = |f: &dyn Fn(&CellRecord) -> Option<f64>| {
                Spread::of(&ok.iter().filter_map(|c| f(c)).collect::<Vec<_>>())
            };
            Group {
                profile,
                path,
                workload,
                load,
                offered_rate: of(&|c| c.offered_rate),
                throughput: of(&|c| c.throughput()),
                p50_us: of(&|c| Some(c.report.as_ref()?.summary.latency_corrected.p50_us as f64)),
                p99_us: of(&|c| Some(c.report.as_ref()?.summary.latency_corrected.p99_us as f64)),
                server_us: of(&|c| Some(c.cpu.as_ref()?.server_us_per_request)),
                docker_proxy_us: of(&|c| Some(c.cpu.as_ref()?.docker_proxy_us_per_request)),
                softirq_us: of(&|c| Some(c.cpu.as_ref()?.softirq_us_per_request)),
                loadgen_us: of(&|c| Some(c.cpu.as_ref()?.loadgen_us_per_request)),
                server_side_us: of(&|c| Some(c.cpu.as_ref()?.server_side_us_per_request())),
                hops_observed: ok
                    .iter()
                    .filter_map(|c| Some(c.hop.as_ref()?.observed.name().to_string()))
                    .collect(),
                ok: ok.len(),
                failed: all.len() - ok.len(),
                generator_limited: ok
                    .iter()
                    .filter(|c| !c.generator_limited.is_empty())
                    .count(),
                bandwidth_bound: ok
                    .iter()
                    .filter(|c| c.bandwidth.as_ref().is_some_and(|b| b.bound))
                    .count(),
            }
        })
        .collect()
}

fn load_order(load: &LoadPoint) -> f64 {
    match load {
        LoadPoint::Max => 2.0,
        LoadPoint::Fraction { fraction } => *fraction,
    }
}

/// Per repeat (index = repeat number) the value of `f` for the cell, if any.
fn by_repeat(
    cells: &[CellRecord],
    profile: Profile,
    path: ClientPath,
    workload: Workload,
    load: &LoadPoint,
    f: impl Fn(&CellRecord) -> Option<f64>,
) -> Vec<Option<f64>> {
    let repeats = cells.iter().map(|c| c.key.repeat + 1).max().unwrap_or(0) as usize;
    let mut out = vec![None; repeats];
    for c in matching(cells, profile, path, workload, load) {
        if c.ok_report().is_some() {
            out[c.key.repeat as usize] = f(c);
        }
    }
    out
}

/// The headline rows: one per path × workload that has host and bridge cells.
pub fn headline(cells: &[CellRecord], groups: &[Group]) -> Vec<HeadlineRow> {
    let mut rows = Vec::new();
    for path in ClientPath::ALL {
        for workload in Workload::ALL {
            let group = |profile, load: &LoadPoint| {
                groups.iter().find(|g| {
                    g.profile == profile
                        && g.path == path
                        && g.workload == workload
                        && g.load == *load
                })
            };
            let max = LoadPoint::Max;
            let (Some(host), Some(bridge)) =
                (group(Profile::Host, &max), group(Profile::Bridge, &max))
            else {
                continue;
            };
            let half = LoadPoint::Fraction { fraction: 0.5 };
            let latency_load = if group(Profile::Host, &half).is_some()
                && group(Profile::Bridge, &half).is_some()
            {
                half
            } else {
                max
            };
            let (host_lat, bridge_lat) = (
                group(Profile::Host, &latency_load).unwrap(),
                group(Profile::Bridge, &latency_load).unwrap(),
            );
            let series = |profile, f: fn(&CellRecord) -> Option<f64>| {
                by_repeat(cells, profile, path, workload, &max, f)
            };
            let tput = |c: &CellRecord| c.throughput();
            let cpu = |c: &CellRecord| Some(c.cpu.as_ref()?.server_side_us_per_request());
            let bare = series(Profile::Bare, tput);
            rows.push(HeadlineRow {
                path,
                workload,
                bridge_hop: majority(&bridge.hops_observed),
                host_throughput: host.throughput,
                bridge_throughput: bridge.throughput,
                throughput_ratio: paired_ratio(
                    &series(Profile::Bridge, tput),
                    &series(Profile::Host, tput),
                ),
                host_vs_bare: paired_ratio(&series(Profile::Host, tput), &bare),
                bridge_vs_bare: paired_ratio(&series(Profile::Bridge, tput), &bare),
                latency_load: latency_load.label(),
                host_p50_us: host_lat.p50_us,
                bridge_p50_us: bridge_lat.p50_us,
                host_p99_us: host_lat.p99_us,
                bridge_p99_us: bridge_lat.p99_us,
                host_cpu_us: host.server_side_us,
                bridge_cpu_us: bridge.server_side_us,
                cpu_ratio: paired_ratio(&series(Profile::Bridge, cpu), &series(Profile::Host, cpu)),
            });
        }
    }
    rows
}

/// The most frequent entry, or `unknown`.
fn majority(items: &[String]) -> String {
    let mut best: Option<(&String, usize)> = None;
    for item in items {
        let n = items.iter().filter(|i| *i == item).count();
        if best.is_none_or(|(_, m)| n > m) {
            best = Some((item, n));
        }
    }
    best.map(|(s, _)| s.clone())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::fixtures::small_run;

    #[test]
    fn headline_pairs_bridge_with_host_by_repeat() {
        let cells = small_run();
        let groups = groups(&cells);
        let rows = headline(&cells, &groups);
        let lo = rows
            .iter()
            .find(|r| r.path == ClientPath::Loopback)
            .unwrap();
        let ratio = lo.throughput_ratio.unwrap();
        // repeat 0: 6000 / 9500, repeat 1: 6100 / 9600
        assert!((ratio.min - 6000.0 / 9500.0).abs() < 1e-9, "{ratio:?}");
        assert!((ratio.max - 6100.0 / 9600.0).abs() < 1e-9, "{ratio:?}");
        assert_eq!(lo.bridge_hop, "docker-proxy");
        assert_eq!(lo.latency_load, "50pct");
        let v4 = rows
            .iter()
            .find(|r| r.path == ClientPath::ExternalV4)
            .unwrap();
        assert_eq!(v4.bridge_hop, "dnat");
        assert!(v4.cpu_ratio.unwrap().median < lo.cpu_ratio.unwrap().median);
    }

    #[test]
    fn a_failed_cell_counts_as_failed_not_as_zero() {
        let mut cells = small_run();
        cells[0].status = "failed".into();
        cells[0].reason = Some("test".into());
        let g = groups(&cells);
        let first = g
            .iter()
            .find(|g| {
                g.profile == cells[0].key.profile
                    && g.path == cells[0].key.path
                    && g.load == LoadPoint::Max
            })
            .unwrap();
        assert_eq!((first.ok, first.failed), (1, 1));
        assert_eq!(first.throughput.unwrap().n, 1);
    }
}
