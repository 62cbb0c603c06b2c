//! `RELIABILITY.md` and `reliability.json`: the table (what was tried,
//! how many, what happened, requests lost), the well-behaved client's p99
//! under each scenario against the quiet baseline, server memory, and
//! every figure with how it was measured.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::outcome::{mib, Outcome};
use crate::ScenarioError;

/// Everything a run saves.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// `full` or `quick` (`full+quick` when a partial rerun mixed them).
    pub scale: String,
    /// When it ran, RFC 3339 UTC (and when scenarios were rerun).
    pub started_at: String,
    /// The machine: kernel and cores.
    pub machine: String,
    /// One per scenario, in order.
    pub outcomes: Vec<Outcome>,
}

impl RunReport {
    /// True when every scenario passed every check.
    pub fn passed(&self) -> bool {
        self.outcomes.iter().all(Outcome::passed)
    }

    /// The quiet baseline's p99, µs.
    fn baseline_p99(&self) -> Option<u64> {
        self.outcomes
            .iter()
            .find(|o| o.scenario == "quiet-baseline")
            .and_then(|o| o.probe.as_ref())
            .map(|p| p.p99_us)
    }

    /// The Markdown page.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# Reliability and security: what was tried, what happened\n"
        );
        let _ = writeln!(
            md,
            "Produced by `cargo run --release -p reliability -- --out results/reliability` \
             ({} scale) on {}, {}. Every scenario runs against the real `blog` binary \
             (or its container) on loopback, with a certbot-shaped certificate from a \
             throwaway CA. The same scenarios run with small counts in `cargo test -p reliability`.\n",
            self.scale, self.started_at, self.machine
        );
        let _ = writeln!(
            md,
            "**Well-behaved client**: the project's load generator, open loop at 100 requests/s \
             over 2 keep-alive HTTPS connections, run beside every attack; latency is corrected \
             for coordinated omission (from each request's scheduled send). **Requests lost**: its \
             requests (or the scenario's own load) that failed for any reason but a refused \
             connection. **RSS**: the server's `VmRSS` from `/proc/PID/status`, sampled every \
             100 ms.\n"
        );
        let baseline = self.baseline_p99();
        let _ = writeln!(
            md,
            "| scenario | what was tried | how many | what happened | requests lost | good client p99 (ms) | vs quiet p99 | server RSS peak (MiB) | result |"
        );
        let _ = writeln!(md, "|---|---|---:|---|---:|---:|---:|---:|---|");
        for o in &self.outcomes {
            let (p99, ratio) = match (&o.probe, baseline) {
                // A handshake per request is another workload than the
                // keep-alive baseline: no ratio.
                (Some(p), _) if p.new_connection => (
                    format!(
                        "{:.2} (new connection per request)",
                        p.p99_us as f64 / 1000.0
                    ),
                    "-".into(),
                ),
                (Some(p), Some(b)) if b > 0 => (
                    format!("{:.2}", p.p99_us as f64 / 1000.0),
                    format!("{:.1}x", p.p99_us as f64 / b as f64),
                ),
                (Some(p), _) => (format!("{:.2}", p.p99_us as f64 / 1000.0), "-".into()),
                _ => ("-".into(), "-".into()),
            };
            let rss = o.memory.map_or("-".into(), |m| mib(m.peak_kib));
            let result = if o.passed() { "pass" } else { "**FAIL**" };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {p99} | {ratio} | {rss} | {result} |",
                o.scenario,
                cell(&o.tried),
                o.count,
                cell(&o.happened_line()),
                o.requests_lost
            );
        }
        let _ = writeln!(md, "\n## Figures\n");
        let _ = writeln!(md, "| scenario | figure | value | how it was measured |");
        let _ = writeln!(md, "|---|---|---:|---|");
        for o in &self.outcomes {
            if let Some(p) = &o.probe {
                let _ = writeln!(
                    md,
                    "| {} | good client p50 / p99 / max | {:.2} / {:.2} / {:.2} ms | {} requests due at {} requests/s over {:.1} s, {} answered; corrected latency |",
                    o.scenario,
                    p.p50_us as f64 / 1000.0,
                    p.p99_us as f64 / 1000.0,
                    p.max_us as f64 / 1000.0,
                    p.sent,
                    p.rate,
                    p.duration_s,
                    p.completed
                );
            }
            if let Some(m) = o.memory {
                let _ = writeln!(
                    md,
                    "| {} | server RSS before / peak / after | {} / {} / {} MiB | VmRSS sampled every 100 ms |",
                    o.scenario,
                    mib(m.before_kib),
                    mib(m.peak_kib),
                    mib(m.after_kib)
                );
            }
            for f in &o.figures {
                let _ = writeln!(
                    md,
                    "| {} | {} | {} {} | {} |",
                    o.scenario,
                    f.name,
                    f.value,
                    f.unit,
                    cell(&f.how)
                );
            }
        }
        let _ = writeln!(md, "\n## Checks\n");
        for o in &self.outcomes {
            let _ = writeln!(md, "- **{}**", o.scenario);
            for c in &o.checks {
                let mark = if c.ok { "pass" } else { "**FAIL**" };
                let _ = writeln!(md, "  - {mark}: {} — {}", c.what, cell(&c.seen));
            }
        }
        md
    }

    /// Reads the `reliability.json` a previous run wrote into `dir`.
    pub fn read(dir: &Path) -> Result<RunReport, ScenarioError> {
        let path = dir.join("reliability.json");
        let bytes = std::fs::read(&path)
            .map_err(ScenarioError::io(format!("reading {}", path.display())))?;
        serde_json::from_slice(&bytes).map_err(|e| ScenarioError::Io {
            what: format!("parsing {}", path.display()),
            source: std::io::Error::other(e),
        })
    }

    /// Puts `fresh` outcomes in place of the same scenarios' old ones,
    /// keeping the others (a partial rerun with `--only`).
    pub fn replace(&mut self, fresh: Vec<Outcome>) {
        for outcome in fresh {
            match self
                .outcomes
                .iter_mut()
                .find(|o| o.scenario == outcome.scenario)
            {
                Some(old) => *old = outcome,
                None => self.outcomes.push(outcome),
            }
        }
    }

    /// Writes `RELIABILITY.md` and `reliability.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<(), ScenarioError> {
        std::fs::create_dir_all(dir)
            .map_err(ScenarioError::io(format!("creating {}", dir.display())))?;
        let md = dir.join("RELIABILITY.md");
        std::fs::write(&md, self.markdown())
            .map_err(ScenarioError::io(format!("writing {}", md.display())))?;
        let json = dir.join("reliability.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| ScenarioError::Io {
            what: "serializing the report".into(),
            source: std::io::Error::other(e),
        })?;
        std::fs::write(&json, text)
            .map_err(ScenarioError::io(format!("writing {}", json.display())))
    }
}

/// Text safe inside a Markdown table cell, cut to 400 characters.
fn cell(text: &str) -> String {
    let one_line = text.replace('|', "\\|").replace('\n', " ");
    if one_line.chars().count() > 400 {
        one_line.chars().take(400).collect::<String>() + "…"
    } else {
        one_line
    }
}
