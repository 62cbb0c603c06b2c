//! Renders a results directory: `summary.json`, the charts, `report.md`
//! with the headline table and the method, `index.html` for a browser with
//! no network, and `results/README.md` pointing at the latest run.

pub mod charts;
mod text;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::analysis;
use crate::matrix::Plan;
use crate::presets::VpsPreset;
use crate::procfs::Machine;
use crate::record::{self, RecordError, RunSummary, CELL_SCHEMA_VERSION};

/// What a run writes first (`run.json`), so a report can be rendered again
/// from the directory alone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The plan.
    pub plan: Plan,
    /// Where it ran.
    pub machine: Machine,
    /// The emulated VPS, with `--vps`.
    pub vps: Option<VpsPreset>,
    /// CPU quota of the server side, cores.
    pub server_cpus: f64,
    /// Server worker threads.
    pub workers: u32,
    /// HTTP and HTTPS ports of the deployment.
    pub ports: (u16, u16),
    /// Start, RFC 3339 UTC.
    pub started_at: String,
    /// End, RFC 3339 UTC (absent while running or after a crash).
    pub finished_at: Option<String>,
    /// Wall-clock length, s.
    pub duration_s: Option<f64>,
    /// Set when the run was interrupted or stopped early, with why.
    pub stopped_early: Option<String>,
}

/// A report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Reading cells or writing JSON failed.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// `run.json` is missing or not valid.
    #[error("{path}: {detail} (is this a directory a bench run wrote?)")]
    RunInfo {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// A chart could not be drawn.
    #[error(transparent)]
    Chart(#[from] charts::ChartError),
    /// A text file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

/// Reads `run.json` of a results directory.
pub fn read_run_info(dir: &Path) -> Result<RunInfo, ReportError> {
    let path = dir.join("run.json");
    let text = std::fs::read_to_string(&path).map_err(|e| ReportError::RunInfo {
        path: path.clone(),
        detail: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ReportError::RunInfo {
        path,
        detail: e.to_string(),
    })
}

/// Renders everything for the run in `dir`; `readme` is the
/// `results/README.md` to point at it (none in tests that should not touch
/// the real one). Returns the summary.
pub fn render(dir: &Path, readme: Option<&Path>) -> Result<RunSummary, ReportError> {
    let info = read_run_info(dir)?;
    let cells = record::read_cells(dir)?;
    let groups = analysis::groups(&cells);
    let headline = analysis::headline(&cells, &groups);
    let summary = RunSummary {
        schema_version: CELL_SCHEMA_VERSION,
        plan: info.plan.clone(),
        machine: info.machine.clone(),
        vps: info.vps.clone(),
        started_at: info.started_at.clone(),
        finished_at: info.finished_at.clone().unwrap_or_default(),
        duration_s: info.duration_s.unwrap_or(0.0),
        cells: cells.len(),
        failed_cells: cells.iter().filter(|c| c.status != "ok").count(),
        generator_limited_cells: cells
            .iter()
            .filter(|c| !c.generator_limited.is_empty())
            .count(),
        disturbed_cells: cells.iter().filter(|c| !c.disturbed.is_empty()).count(),
        headline,
        groups,
    };
    record::write_json(&dir.join("summary.json"), &summary)?;

    let drawn = charts::draw_all(dir, &cells, &summary.groups)?;
    write(
        &dir.join("report.md"),
        &text::report_md(&info, &summary, &cells, &drawn),
    )?;
    write(
        &dir.join("index.html"),
        &text::index_html(&info, &summary, &drawn),
    )?;
    if let Some(readme) = readme {
        let rel = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        write(readme, &text::results_readme(&rel, &info, &summary))?;
    }
    Ok(summary)
}

fn write(path: &Path, text: &str) -> Result<(), ReportError> {
    std::fs::write(path, text).map_err(|source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The newest run directory under `results` (names start with the date).
pub fn latest_run(results: &Path) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(results)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("run.json").is_file())
        .collect();
    dirs.sort();
    dirs.pop()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::fixtures::small_run;

    fn run_dir() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("cells")).unwrap();
        for c in small_run() {
            record::write_json(
                &dir.path()
                    .join("cells")
                    .join(format!("{}.json", c.key.id())),
                &c,
            )
            .unwrap();
        }
        let info = RunInfo {
            plan: Plan::quick(),
            machine: small_run()[0].machine.clone(),
            vps: None,
            server_cpus: 0.5,
            workers: 1,
            ports: (8080, 8443),
            started_at: "2026-01-01T00:00:00Z".into(),
            finished_at: Some("2026-01-01T00:02:00Z".into()),
            duration_s: Some(120.0),
            stopped_early: None,
        };
        record::write_json(&dir.path().join("run.json"), &info).unwrap();
        dir
    }

    #[test]
    fn render_writes_summary_charts_report_page_and_readme() {
        let dir = run_dir();
        let readme = dir.path().join("README.md");
        let summary = render(dir.path(), Some(&readme)).unwrap();
        assert_eq!(summary.cells, 24);
        for f in [
            "summary.json",
            "report.md",
            "index.html",
            "throughput.svg",
            "throughput.png",
            "latency-loopback.svg",
            "cpu-https-keepalive.svg",
            "latency-vs-rate-loopback.png",
        ] {
            let meta = std::fs::metadata(dir.path().join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            assert!(meta.len() > 200, "{f} is {} bytes", meta.len());
        }
        let svg = std::fs::read_to_string(dir.path().join("throughput.svg")).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("bridge"),
            "legend text missing"
        );
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(
            md.contains("| loopback | https-keepalive | docker-proxy |"),
            "{md}"
        );
        assert!(md.contains("## Method"));
        let readme = std::fs::read_to_string(readme).unwrap();
        assert!(readme.contains("bridge served 63% of host's"), "{readme}");
        if let Ok(keep) = std::env::var("HOPLESS_KEEP_REPORT") {
            let _ = std::process::Command::new("cp")
                .arg("-r")
                .arg(dir.path())
                .arg(keep)
                .status();
        }
        let html = std::fs::read_to_string(dir.path().join("index.html")).unwrap();
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "the page must work offline"
        );
    }

    #[test]
    fn report_of_a_directory_without_run_json_says_what_it_needs() {
        let dir = tempfile::tempdir().unwrap();
        let err = render(dir.path(), None).unwrap_err().to_string();
        assert!(
            err.contains("run.json") && err.contains("bench run"),
            "{err}"
        );
    }
}
