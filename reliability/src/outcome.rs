//! What a scenario reports: what was tried and how many times, what
//! happened, requests lost, the checks it passed or failed and the
//! figures it measured (each with its unit and how it was measured).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::probe::ProbeStats;

/// One behaviour a scenario asserts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Check {
    /// What must hold, in a sentence.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    pub seen: String,
}

/// One measured number.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// What it is.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`ms`, `MiB`, `requests`).
    pub unit: String,
    /// How it was measured.
    pub how: String,
}

/// The server's resident memory around a scenario, from
/// `/proc/PID/status` (`VmRSS` sampled every 100 ms, `VmHWM` at the end).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Memory {
    /// RSS before the scenario, KiB.
    pub before_kib: u64,
    /// Highest RSS sampled during it, KiB.
    pub peak_kib: u64,
    /// RSS after it, KiB.
    pub after_kib: u64,
}

/// The result of one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// Its name, e.g. `slowloris`.
    pub scenario: String,
    /// What was tried.
    pub tried: String,
    /// How many connections, requests or streams.
    pub count: u64,
    /// What the server did, by outcome class.
    pub happened: BTreeMap<String, u64>,
    /// Requests of the well-behaved client (or of the scenario's own
    /// load) that failed for a reason other than a refused connection.
    pub requests_lost: u64,
    /// The behaviours asserted.
    pub checks: Vec<Check>,
    /// The numbers measured.
    pub figures: Vec<Figure>,
    /// The well-behaved client during the scenario.
    pub probe: Option<ProbeStats>,
    /// The server's memory.
    pub memory: Option<Memory>,
}

impl Outcome {
    /// A new outcome with nothing measured yet.
    pub fn new(scenario: &str, tried: impl Into<String>, count: u64) -> Outcome {
        Outcome {
            scenario: scenario.to_string(),
            tried: tried.into(),
            count,
            happened: BTreeMap::new(),
            requests_lost: 0,
            checks: Vec::new(),
            figures: Vec::new(),
            probe: None,
            memory: None,
        }
    }

    /// Records a check.
    pub fn check(&mut self, what: impl Into<String>, ok: bool, seen: impl Into<String>) {
        self.checks.push(Check {
            what: what.into(),
            ok,
            seen: seen.into(),
        });
    }

    /// Records a figure.
    pub fn figure(&mut self, name: &str, value: f64, unit: &str, how: impl Into<String>) {
        self.figures.push(Figure {
            name: name.to_string(),
            value,
            unit: unit.to_string(),
            how: how.into(),
        });
    }

    /// Adds `n` to the outcome class `class`.
    pub fn count_as(&mut self, class: impl Into<String>, n: u64) {
        *self.happened.entry(class.into()).or_default() += n;
    }

    /// True when every check held.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The classes of [`Outcome::happened`] as one line.
    pub fn happened_line(&self) -> String {
        if self.happened.is_empty() {
            return "-".into();
        }
        self.happened
            .iter()
            .map(|(class, n)| format!("{n} {class}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    /// Adds the well-behaved client's figures and its lost requests, and
    /// checks it was served throughout.
    pub fn add_probe(&mut self, probe: ProbeStats) {
        self.requests_lost += probe.lost();
        self.check(
            "the well-behaved client is served throughout",
            probe.served_throughout(),
            format!(
                "{} of {} requests answered, {} unanswered at the end, errors {:?}, p99 {:.1} ms",
                probe.completed,
                probe.sent,
                probe.unfinished,
                probe.errors_by_kind,
                probe.p99_us as f64 / 1000.0
            ),
        );
        self.probe = Some(probe);
    }

    /// Adds the memory figures and checks the peak stayed under
    /// `bound_kib`.
    pub fn add_memory(&mut self, memory: Memory, bound_kib: u64) {
        self.check(
            format!("server RSS stays under {} MiB", bound_kib / 1024),
            memory.peak_kib <= bound_kib,
            format!(
                "RSS {} MiB before, {} MiB peak, {} MiB after",
                mib(memory.before_kib),
                mib(memory.peak_kib),
                mib(memory.after_kib)
            ),
        );
        self.memory = Some(memory);
    }
}

/// KiB as MiB with one decimal, for messages.
pub fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} (x{}) -> {}; lost {}",
            self.scenario,
            self.tried,
            self.count,
            self.happened_line(),
            self.requests_lost
        )?;
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            writeln!(f, "  [{mark}] {} ({})", c.what, c.seen)?;
        }
        for fig in &self.figures {
            writeln!(
                f,
                "  {} = {} {} ({})",
                fig.name, fig.value, fig.unit, fig.how
            )?;
        }
        Ok(())
    }
}
