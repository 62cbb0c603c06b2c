//! The words of a report: `report.md` (headline table, every group, flags,
//! method), `index.html` (charts, offline) and `results/README.md`.

use std::fmt::Write as _;

use super::charts::Chart;
use super::RunInfo;
use crate::analysis::HeadlineRow;
use crate::matrix::Workload;
use crate::record::{CellRecord, RunSummary};
use crate::stats::Spread;

fn sp(s: &Option<Spread>, digits: usize) -> String {
    s.map(|s| s.display(digits)).unwrap_or_else(|| "–".into())
}

fn pct(s: &Option<Spread>) -> String {
    match s {
        Some(s) if s.n > 1 && s.min != s.max => format!(
            "{:.0}% ({:.0}–{:.0}%)",
            s.median * 100.0,
            s.min * 100.0,
            s.max * 100.0
        ),
        Some(s) => format!("{:.0}%", s.median * 100.0),
        None => "–".into(),
    }
}

/// Sentences that state the headline from the data.
pub fn headline_sentences(summary: &RunSummary) -> Vec<String> {
    let mut out = Vec::new();
    let preferred = |rows: &[&HeadlineRow]| -> Option<HeadlineRow> {
        let pick = rows
            .iter()
            .find(|r| r.workload == Workload::HttpsKeepalive)
            .or(rows.first());
        pick.map(|r| (*r).clone())
    };
    let mut paths: Vec<_> = summary.headline.iter().map(|r| r.path).collect();
    paths.dedup();
    for path in paths {
        let rows: Vec<&HeadlineRow> = summary.headline.iter().filter(|r| r.path == path).collect();
        let Some(row) = preferred(&rows) else {
            continue;
        };
        let (Some(ratio), Some(host), Some(bridge)) = (
            row.throughput_ratio,
            row.host_throughput,
            row.bridge_throughput,
        ) else {
            continue;
        };
        let mut s = format!(
            "On {} ({} through {}), bridge served {:.0}% of host's maximum {} throughput \
             ({:.0} against {:.0} requests/s, median of {}",
            path.name(),
            if path.is_external() {
                "a visitor"
            } else {
                "the same host"
            },
            row.bridge_hop,
            ratio.median * 100.0,
            row.workload.name(),
            bridge.median,
            host.median,
            ratio.n
        );
        if ratio.n > 1 {
            let _ = write!(s, ", {:.0}–{:.0}%", ratio.min * 100.0, ratio.max * 100.0);
        }
        s.push(')');
        if let (Some(hc), Some(bc)) = (row.host_cpu_us, row.bridge_cpu_us) {
            let _ = write!(
                s,
                " and spent {:.0} µs of server-side CPU per request against {:.0} µs on host",
                bc.median, hc.median
            );
        }
        s.push('.');
        out.push(s);
    }
    let limited = summary.generator_limited_cells;
    let disturbed = summary.disturbed_cells;
    if summary.failed_cells > 0 || limited > 0 || disturbed > 0 {
        out.push(format!(
            "{} of {} cells failed, {} may have been limited by the load generator and {} \
             shared a core with other work on the machine (see the flags in report.md).",
            summary.failed_cells, summary.cells, limited, disturbed
        ));
    }
    out
}

fn setup_line(info: &RunInfo) -> String {
    let m = &info.machine;
    let mut s = format!(
        "{} cores ({}), {} MiB, kernel {}, Docker {}, {}. Server side on core 0 under one cgroup v1 \
         budget of {} CPU (CFS quota) holding the server and the docker-proxy processes, {} server \
         workers; load generator pinned to core 1.",
        m.cores, m.cpu_model, m.memory_mib, m.kernel, m.docker, m.compose, info.server_cpus, info.workers
    );
    if let Some(vps) = &info.vps {
        let _ = write!(
            s,
            " Emulating {} ({}): {} vCPUs as a {} core quota (the burst state; its sustained \
             baseline of {}% per vCPU is not applied), {} MiB memory limit{}.",
            vps.name,
            vps.title,
            vps.vcpus,
            vps.cpu_quota(),
            vps.cpu_baseline_pct,
            vps.memory_mib,
            match vps.bandwidth_baseline_mbit {
                Some(b) => format!(
                    ", its {b} Mbit/s baseline bandwidth as a tc cap per direction on the \
                     external paths"
                ),
                None => ", no bandwidth cap (the provider publishes none)".into(),
            }
        );
    }
    s
}

/// The Markdown report.
pub fn report_md(
    info: &RunInfo,
    summary: &RunSummary,
    cells: &[CellRecord],
    charts: &[Chart],
) -> String {
    let mut md = String::new();
    let date = info.started_at.get(..10).unwrap_or(&info.started_at);
    let _ = writeln!(
        md,
        "# hopless bench: {} run on {}, {date}\n",
        info.plan.name, info.machine.host
    );
    let _ = writeln!(md, "{}\n", setup_line(info));
    if let Some(why) = &info.stopped_early {
        let _ = writeln!(
            md,
            "**This run stopped early: {why}. Its figures are partial.**\n"
        );
    }
    for s in headline_sentences(summary) {
        let _ = writeln!(md, "- {s}");
    }

    let _ = writeln!(md, "\n## What bridge costs against host\n");
    let _ = writeln!(
        md,
        "Medians of {} repeats, (min–max) in brackets; ratios are paired by repeat (same \
         moment, same machine). Throughput: closed loop. Latency: corrected for coordinated \
         omission, at the load shown. CPU: server + docker-proxy + softirq on the server core, \
         per completed request, at maximum throughput.\n",
        info.plan.repeats
    );
    md.push_str(
        "| path | workload | bridge hop | host req/s | bridge req/s | bridge / host req/s | latency at | \
         p50 host → bridge (µs) | p99 host → bridge (µs) | CPU µs/req host → bridge | bridge / host CPU |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in &summary.headline {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} → {} | {} → {} | {} → {} | {} |",
            r.path.name(),
            r.workload.name(),
            r.bridge_hop,
            sp(&r.host_throughput, 0),
            sp(&r.bridge_throughput, 0),
            pct(&r.throughput_ratio),
            r.latency_load,
            sp(&r.host_p50_us, 0),
            sp(&r.bridge_p50_us, 0),
            sp(&r.host_p99_us, 0),
            sp(&r.bridge_p99_us, 0),
            sp(&r.host_cpu_us, 1),
            sp(&r.bridge_cpu_us, 1),
            pct(&r.cpu_ratio),
        );
    }
    md.push_str("\n### Against bare (the plain process: the limit)\n\n");
    md.push_str(
        "| path | workload | host / bare req/s | bridge / bare req/s |\n|---|---|---|---|\n",
    );
    for r in &summary.headline {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.path.name(),
            r.workload.name(),
            pct(&r.host_vs_bare),
            pct(&r.bridge_vs_bare)
        );
    }

    md.push_str("\n## Every group\n\n");
    md.push_str(
        "| profile | path | workload | load | offered req/s | req/s | p50 µs | p99 µs | server µs/req | \
         docker-proxy µs/req | softirq µs/req | loadgen µs/req | hop seen | ok/failed |\n",
    );
    md.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for g in &summary.groups {
        let mut hops = g.hops_observed.clone();
        hops.sort();
        hops.dedup();
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {}/{} |",
            g.profile.name(),
            g.path.name(),
            g.workload.name(),
            g.load.label(),
            sp(&g.offered_rate, 0),
            sp(&g.throughput, 0),
            sp(&g.p50_us, 0),
            sp(&g.p99_us, 0),
            sp(&g.server_us, 1),
            sp(&g.docker_proxy_us, 1),
            sp(&g.softirq_us, 1),
            sp(&g.loadgen_us, 1),
            hops.join(", "),
            g.ok,
            g.failed
        );
    }

    md.push_str("\n## Flags\n\n");
    let mut flagged = false;
    for c in cells {
        let id = c.key.id();
        if c.status != "ok" {
            flagged = true;
            let _ = writeln!(
                md,
                "- `{id}` failed: {}",
                c.reason.as_deref().unwrap_or("no reason recorded")
            );
        }
        if !c.generator_limited.is_empty() {
            flagged = true;
            let _ = writeln!(
                md,
                "- `{id}`: the generator may have been the bottleneck ({})",
                c.generator_limited.join("; ")
            );
        }
        if !c.disturbed.is_empty() {
            flagged = true;
            let _ = writeln!(md, "- `{id}`: disturbed: {}", c.disturbed.join("; "));
        }
        if let Some(b) = c.bandwidth.as_ref().filter(|b| b.bound) {
            flagged = true;
            let _ = writeln!(
                md,
                "- `{id}`: bandwidth-bound, {:.1} of {:.1} Mbit/s: the VPS's bandwidth, not the hop, limited it",
                b.achieved_mbit, b.cap_mbit
            );
        }
        if let Some(h) = c.hop.as_ref().filter(|h| h.observed != h.expected) {
            flagged = true;
            let _ = writeln!(
                md,
                "- `{id}`: expected hop {} but saw {} (docker-proxy {:.3} s CPU, DNAT {} packets)",
                h.expected.name(),
                h.observed.name(),
                h.docker_proxy_cpu_s,
                h.dnat_packets.map_or("unknown".into(), |p| p.to_string())
            );
        }
    }
    if !flagged {
        md.push_str("None: every cell succeeded, no generator limit, hops as expected.\n");
    }

    md.push_str("\n## Charts\n\n");
    for c in charts {
        let _ = writeln!(md, "### {}\n\n![{}]({}.svg)\n", c.title, c.title, c.stem);
    }

    md.push_str(METHOD);
    md
}

const METHOD: &str = "\n## Method\n\n\
- Profiles: `bare` (the static server binary as a plain process, uid 2200, the same binary the \
image holds), `host` (compose, `network_mode: host`) and `bridge` (compose, published ports). \
Never two at once: each is brought down before the next comes up. Repeats interleave the \
profiles (bare, host, bridge, bare, ...) so drift hits all of them alike.\n\
- Paths: `loopback` (127.0.0.1 on the host), `external-v4` and `external-v6` (the load generator \
in a network namespace tied to the host by a veth pair, 198.18.0.0/15 and 2001:2::/48).\n\
- Hop evidence per cell: docker-proxy CPU time over the window (/proc/PID/stat, all its \
processes) and the packet counters of Docker's DNAT rules for the ports (`iptables -t nat -L \
DOCKER -v -x`). A cell shows `docker-proxy` when the proxy used CPU for at least a tenth of the \
requests' server time, `dnat` when DNAT counted packets, else `none`.\n\
- Load: the hopless load generator, closed loop for the maximum, then open loop at fixed \
fractions of bare's maximum for the same path and workload in the same repeat, so every \
profile is compared at the same offered load. Latency is corrected for coordinated omission.\n\
- CPU per request: server process (/proc/PID/stat user + system), docker-proxy processes \
(same), softirq time on the server's core (/proc/stat), and the generator's own getrusage, \
each divided by the requests finished in the window.\n\
- Two cores: the server side (server, docker-proxy) runs on core 0 under one cgroup v1 CPU \
budget (CFS quota) so the proxy competes with the server as on a one-vCPU VPS; the generator \
runs pinned to core 1. A cell is flagged when the generator used 90% of its core or more, or \
fell behind its schedule.\n";

/// The offline page showing the charts (SVG files beside it).
pub fn index_html(info: &RunInfo, summary: &RunSummary, charts: &[Chart]) -> String {
    let esc = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let mut html = String::new();
    let title = format!(
        "hopless bench, {} run on {}",
        info.plan.name, info.machine.host
    );
    let _ = write!(
        html,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{t}</title><style>body{{font-family:sans-serif;max-width:1150px;margin:1em auto;\
         padding:0 1em;color:#222}}img{{max-width:100%;border:1px solid #ddd}}\
         table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:2px 6px}}\
         </style></head><body>\n<h1>{t}</h1>\n<p>{setup}</p>\n<ul>\n",
        t = esc(&title),
        setup = esc(&setup_line(info))
    );
    for s in headline_sentences(summary) {
        let _ = writeln!(html, "<li>{}</li>", esc(&s));
    }
    html.push_str(
        "</ul>\n<table><tr><th>path</th><th>workload</th><th>bridge hop</th>\
                   <th>bridge / host req/s</th><th>CPU µs/req host → bridge</th></tr>\n",
    );
    for r in &summary.headline {
        let _ = writeln!(
            html,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} → {}</td></tr>",
            r.path.name(),
            r.workload.name(),
            r.bridge_hop,
            pct(&r.throughput_ratio),
            sp(&r.host_cpu_us, 1),
            sp(&r.bridge_cpu_us, 1)
        );
    }
    html.push_str("</table>\n");
    for c in charts {
        let _ = writeln!(
            html,
            "<h2>{h}</h2>\n<img src=\"{s}.svg\" alt=\"{t}\" width=\"1100\" height=\"560\">",
            h = esc(c.title.split(" (").next().unwrap_or(&c.title)),
            t = esc(&c.title),
            s = c.stem
        );
    }
    html.push_str("<p>Full tables and the method: <a href=\"report.md\">report.md</a>; raw cells in cells/.</p>\n</body></html>\n");
    html
}

/// `results/README.md`: where the latest run is and what it found.
pub fn results_readme(run_dir: &str, info: &RunInfo, summary: &RunSummary) -> String {
    let mut md = String::from("# Results\n\n");
    let _ = writeln!(
        md,
        "Each run of `cargo run --release -p bench` writes `results/<date>-<host>/`: one JSON per \
         cell in `cells/`, `summary.json`, `report.md`, the charts (SVG and PNG) and \
         `index.html`. `cargo run --release -p bench -- report DIR` renders them again.\n"
    );
    let _ = writeln!(
        md,
        "Latest run: [`{run_dir}/`]({run_dir}/report.md) ({} plan, {}, started {}).\n",
        info.plan.name, info.machine.host, info.started_at
    );
    for s in headline_sentences(summary) {
        let _ = writeln!(md, "- {s}");
    }
    let as_expected = summary
        .headline
        .iter()
        .filter(|r| r.bridge_hop == r.path.expected_bridge_hop().name())
        .count();
    let _ = writeln!(
        md,
        "- The hop was observed, not assumed: in {as_expected} of {} path × workload rows \
         bridge's cells took the hop Docker 20.10 is expected to use (docker-proxy for loopback \
         and IPv6, DNAT for IPv4 visitors; see compose/README.md), judged from docker-proxy's \
         CPU time and Docker's DNAT counters.",
        summary.headline.len()
    );
    md
}
