//! Finding every peer, installing what is missing (Debian packages with
//! apt-get, crates with `cargo install` into a cache directory), building
//! the project's own `blog` and `loadgen`, and asking each for its version.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use serde::Serialize;

use crate::PeersError;

/// Debian packages: (program, package).
const APT_TOOLS: [(&str, &str); 3] = [
    ("nginx", "nginx"),
    ("wrk", "wrk"),
    ("h2load", "nghttp2-client"),
];

/// crates.io packages: (program, crate, features). static-web-server's
/// in-memory file cache is behind its `experimental` feature, which also
/// needs `RUSTFLAGS="--cfg tokio_unstable"` (its runtime metrics).
const CARGO_TOOLS: [(&str, &str, &[&str]); 2] = [
    ("oha", "oha", &[]),
    ("static-web-server", "static-web-server", &["experimental"]),
];

/// Every program a peers run uses, found or installed, with versions.
#[derive(Debug, Clone, Serialize)]
pub struct Tools {
    /// nginx (Debian).
    pub nginx: PathBuf,
    /// wrk (Debian).
    pub wrk: PathBuf,
    /// h2load (Debian's nghttp2-client).
    pub h2load: PathBuf,
    /// oha (cargo install).
    pub oha: PathBuf,
    /// static-web-server (cargo install).
    pub sws: PathBuf,
    /// The project's server, release build.
    pub blog: PathBuf,
    /// The project's load generator, release build.
    pub loadgen: PathBuf,
    /// Program name to the first line of its version output.
    pub versions: BTreeMap<String, String>,
    /// What had to be installed or built, and how long it took.
    pub setup_notes: Vec<String>,
}

/// Finds or installs every peer; `tools_dir` is the `cargo install --root`
/// cache, `workspace` the project's root (for building `blog` and
/// `loadgen`).
pub fn prepare(tools_dir: &Path, workspace: &Path) -> Result<Tools, PeersError> {
    let mut notes = Vec::new();

    let missing: Vec<&str> = APT_TOOLS
        .iter()
        .filter(|(program, _)| find_program(program).is_none())
        .map(|(_, package)| *package)
        .collect();
    if !missing.is_empty() {
        let started = Instant::now();
        apt_install(&missing)?;
        notes.push(format!(
            "apt-get installed {} in {:.0} s",
            missing.join(", "),
            started.elapsed().as_secs_f64()
        ));
    }
    let apt = |program: &str| {
        find_program(program).ok_or_else(|| PeersError::Install {
            tool: program.to_string(),
            detail: "apt-get finished but the program is still not on PATH or in /usr/sbin".into(),
        })
    };

    let mut cargo_path =
        |program: &str, krate: &str, features: &[&str]| -> Result<PathBuf, PeersError> {
            let cached = tools_dir.join("bin").join(program);
            if cached.is_file() && installed_with(tools_dir, krate, features) {
                return Ok(cached);
            }
            if features.is_empty() {
                if let Some(found) = find_program(program) {
                    return Ok(found);
                }
            }
            let started = Instant::now();
            cargo_install(krate, features, tools_dir)?;
            notes.push(format!(
                "cargo install {krate} into {} took {:.0} s",
                tools_dir.display(),
                started.elapsed().as_secs_f64()
            ));
            Ok(cached)
        };
    let [(oha, oha_crate, oha_features), (sws, sws_crate, sws_features)] = CARGO_TOOLS;
    let oha = cargo_path(oha, oha_crate, oha_features)?;
    let sws = cargo_path(sws, sws_crate, sws_features)?;

    let started = Instant::now();
    let (blog, loadgen) = build_own(workspace)?;
    notes.push(format!(
        "cargo build --release -p server -p loadgen: {:.0} s",
        started.elapsed().as_secs_f64()
    ));

    let mut tools = Tools {
        nginx: apt("nginx")?,
        wrk: apt("wrk")?,
        h2load: apt("h2load")?,
        oha,
        sws,
        blog,
        loadgen,
        versions: BTreeMap::new(),
        setup_notes: notes,
    };
    tools.versions = versions(&tools);
    Ok(tools)
}

/// `program` on PATH, or in /usr/sbin (nginx, when PATH lacks sbin).
pub fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/bin")])
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn apt_install(packages: &[&str]) -> Result<(), PeersError> {
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(packages)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .output()
    };
    let err = |detail: String| PeersError::Install {
        tool: packages.join(", "),
        detail,
    };
    let mut out = install().map_err(|e| err(format!("apt-get did not run: {e}")))?;
    if !out.status.success() {
        // A fresh machine has no package lists yet.
        let _ = Command::new("apt-get").arg("update").output();
        out = install().map_err(|e| err(format!("apt-get did not run: {e}")))?;
    }
    if !out.status.success() {
        return Err(err(format!(
            "apt-get install failed ({}): {}; install them by hand (needs root)",
            out.status,
            tail(&String::from_utf8_lossy(&out.stderr), 5)
        )));
    }
    Ok(())
}

/// Whether cargo's install record under `root` lists `krate` with every
/// one of `features`.
fn installed_with(root: &Path, krate: &str, features: &[&str]) -> bool {
    let Ok(text) = std::fs::read_to_string(root.join(".crates2.json")) else {
        return features.is_empty();
    };
    let Ok(record) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let Some(installs) = record.get("installs").and_then(|i| i.as_object()) else {
        return false;
    };
    installs.iter().any(|(key, entry)| {
        key.starts_with(&format!("{krate} "))
            && features.iter().all(|f| {
                entry["features"]
                    .as_array()
                    .is_some_and(|list| list.iter().any(|x| x == f))
            })
    })
}

fn cargo_install(krate: &str, features: &[&str], root: &Path) -> Result<(), PeersError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command
        .args(["install", "--locked", "--force", "--root"])
        .arg(root);
    if !features.is_empty() {
        command.arg("--features").arg(features.join(","));
    }
    let rustflags = if features.contains(&"experimental") {
        command.env("RUSTFLAGS", "--cfg tokio_unstable");
        "RUSTFLAGS='--cfg tokio_unstable' "
    } else {
        ""
    };
    let out = command
        .arg(krate)
        .output()
        .map_err(|e| PeersError::Install {
            tool: krate.to_string(),
            detail: format!("{cargo} did not run: {e}"),
        })?;
    if !out.status.success() {
        return Err(PeersError::Install {
            tool: krate.to_string(),
            detail: format!(
                "`{rustflags}cargo install --locked --force --root {} --features '{}' \
                 {krate}` failed ({}): {}; check that crates.io is reachable, or run that \
                 command yourself",
                root.display(),
                features.join(","),
                out.status,
                tail(&String::from_utf8_lossy(&out.stderr), 8)
            ),
        });
    }
    Ok(())
}

/// Builds `blog` and `loadgen` in release mode and returns their paths.
fn build_own(workspace: &Path) -> Result<(PathBuf, PathBuf), PeersError> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(&cargo)
        .current_dir(workspace)
        .args([
            "build",
            "--release",
            "-p",
            "server",
            "-p",
            "loadgen",
            "--bin",
            "blog",
            "--bin",
            "loadgen",
        ])
        .output()
        .map_err(|e| PeersError::Install {
            tool: "blog and loadgen".into(),
            detail: format!("{cargo} did not run: {e}"),
        })?;
    if !out.status.success() {
        return Err(PeersError::Install {
            tool: "blog and loadgen".into(),
            detail: format!(
                "cargo build --release failed in {}: {}",
                workspace.display(),
                tail(&String::from_utf8_lossy(&out.stderr), 8)
            ),
        });
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    Ok((
        target.join("release").join("blog"),
        target.join("release").join("loadgen"),
    ))
}

/// The first line of each program's version output.
fn versions(tools: &Tools) -> BTreeMap<String, String> {
    let asks: [(&str, &Path, &str); 7] = [
        ("nginx", &tools.nginx, "-v"),
        ("wrk", &tools.wrk, "-v"),
        ("h2load", &tools.h2load, "--version"),
        ("oha", &tools.oha, "--version"),
        ("static-web-server", &tools.sws, "--version"),
        ("blog", &tools.blog, "--version"),
        ("loadgen", &tools.loadgen, "--version"),
    ];
    asks.iter()
        .map(|(name, path, flag)| {
            let line = Command::new(path)
                .arg(flag)
                .output()
                .ok()
                .and_then(|out| {
                    let text = format!(
                        "{}{}",
                        String::from_utf8_lossy(&out.stdout),
                        String::from_utf8_lossy(&out.stderr)
                    );
                    text.lines()
                        .map(str::trim)
                        .find(|l| !l.is_empty())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "unknown".into());
            (name.to_string(), line)
        })
        .collect()
}

/// The last `n` lines of `text`, joined with " | ".
pub fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join(" | ")
}

/// Version of the machine's kernel and its CPU model, for the report.
pub fn machine() -> (String, String, String) {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown".into());
    (host, kernel, cpu)
}
