//! testssl.sh (Debian's `testssl`) against the server's HTTPS port on
//! loopback: protocols, cipher categories, server defaults (chain of
//! trust against the test CA) and headers, read from its flat JSON.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use serde::Deserialize;

use crate::blog::{Blog, BlogOptions};
use crate::outcome::Outcome;
use crate::scenario::Scale;
use crate::ScenarioError;

/// The finding about the test certificate lacking a revocation URI.
pub const NOT_THE_SERVER: &str = "cert_revocation";

/// One finding of testssl's flat JSON (`--jsonfile`).
#[derive(Debug, Clone, Deserialize)]
pub struct Finding {
    /// The test, e.g. `TLS1_1`, `cipherlist_LOW`, `HSTS`.
    pub id: String,
    /// `OK`, `INFO`, `LOW`, `MEDIUM`, `HIGH`, `CRITICAL`, `WARN`, `FATAL`.
    pub severity: String,
    /// What it found.
    pub finding: String,
}

/// Runs testssl against `blog` and returns its findings.
pub fn scan(blog: &Blog) -> Result<Vec<Finding>, ScenarioError> {
    let dir = tempfile::tempdir().map_err(ScenarioError::io("temporary directory"))?;
    let json = dir.path().join("testssl.json");
    let out = Command::new("testssl")
        .args(["--quiet", "--color", "0", "--warnings", "off", "--sneaky"])
        .args(["--ip", "127.0.0.1", "-p", "-s", "-S", "-h", "--add-ca"])
        .arg(blog.ca_path())
        .arg("--jsonfile")
        .arg(&json)
        .arg(format!("https://localhost:{}/", blog.https.port()))
        .output()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ScenarioError::MissingTool {
                tool: "testssl".into(),
                hint: "apt-get install testssl.sh".into(),
            },
            _ => ScenarioError::Io {
                what: "running testssl".into(),
                source: e,
            },
        })?;
    read_findings(&json).map_err(|e| ScenarioError::Io {
        what: format!(
            "reading testssl's JSON ({e}); testssl said: {}",
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(10)
                .collect::<Vec<_>>()
                .join(" | ")
        ),
        source: std::io::Error::other("no findings"),
    })
}

fn read_findings(path: &Path) -> Result<Vec<Finding>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

/// The finding with this id (ids may carry a ` <cert#1>` suffix).
fn find<'a>(findings: &'a [Finding], id: &str) -> Option<&'a Finding> {
    findings
        .iter()
        .find(|f| f.id == id || f.id.starts_with(&format!("{id} ")))
}

/// Checks the findings: nothing below TLS 1.2, no weak cipher category,
/// no HIGH or CRITICAL finding, HSTS present, the chain of trust complete.
pub fn judge(findings: &[Finding], out: &mut Outcome) {
    let says =
        |id: &str| find(findings, id).map_or("(no finding)".to_string(), |f| f.finding.clone());
    for id in ["SSLv2", "SSLv3", "TLS1", "TLS1_1"] {
        out.check(
            format!("{id} not offered"),
            says(id).starts_with("not offered"),
            says(id),
        );
    }
    for id in ["TLS1_2", "TLS1_3"] {
        out.check(
            format!("{id} offered"),
            says(id).starts_with("offered"),
            says(id),
        );
    }
    for id in [
        "cipherlist_NULL",
        "cipherlist_aNULL",
        "cipherlist_EXPORT",
        "cipherlist_LOW",
        "cipherlist_3DES_IDEA",
    ] {
        out.check(
            format!("{id} not offered"),
            says(id).starts_with("not offered"),
            says(id),
        );
    }
    // The throwaway CA's certificates carry no OCSP or CRL URI (Let's
    // Encrypt's do), so testssl's revocation finding is about the test
    // certificate, not the server.
    let bad: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f.severity.as_str(), "HIGH" | "CRITICAL"))
        .filter(|f| !f.id.starts_with(NOT_THE_SERVER))
        .map(|f| format!("{}: {}", f.id, f.finding))
        .collect();
    out.check(
        "no HIGH or CRITICAL finding (besides the test CA having no OCSP/CRL URI)",
        bad.is_empty(),
        if bad.is_empty() {
            "none".into()
        } else {
            bad.join("; ")
        },
    );
    let hsts = find(findings, "HSTS_time").or_else(|| find(findings, "HSTS"));
    out.check(
        "HSTS present",
        hsts.is_some_and(|f| f.severity == "OK" || f.finding.contains("=")),
        hsts.map_or("(no finding)".into(), |f| f.finding.clone()),
    );
    out.check(
        "the chain of trust is complete (against the test CA)",
        says("cert_chain_of_trust").starts_with("passed"),
        says("cert_chain_of_trust"),
    );
    for f in findings {
        let class = match f.severity.as_str() {
            "OK" | "INFO" => format!("{} findings", f.severity),
            other => format!("{other} {}: {}", f.id, f.finding),
        };
        *out.happened.entry(class).or_default() += 1;
    }
}

/// The scan as a scenario of the report.
pub fn scenario(_scale: &Scale) -> Result<Outcome, ScenarioError> {
    let blog = Blog::start(BlogOptions::default())?;
    let started = Instant::now();
    let findings = scan(&blog)?;
    let mut out = Outcome::new(
        "tls-scan",
        "testssl.sh -p -s -S -h against the HTTPS port (certbot-shaped chain, test CA added)",
        findings.len() as u64,
    );
    judge(&findings, &mut out);
    out.figure(
        "testssl run time",
        started.elapsed().as_secs() as f64,
        "s",
        "wall time of the scan",
    );
    Ok(out)
}
