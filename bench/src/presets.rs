//! Small-VPS presets (`--vps NAME`) read from `bench/vps-presets.toml`: the
//! CPU, memory and bandwidth of the smallest AWS and Lightsail instances,
//! each number with its source.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The presets file shipped with the bench, built in.
pub const BUILTIN: &str = include_str!("../vps-presets.toml");

/// A preset could not be read or was not found.
#[derive(Debug, thiserror::Error)]
pub enum PresetError {
    /// The file could not be read.
    #[error("cannot read VPS presets {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is not valid TOML of the preset shape.
    #[error(
        "VPS presets {path} are not valid: {detail} (see bench/vps-presets.toml for the fields)"
    )]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        detail: String,
    },
    /// No preset has that name.
    #[error("no VPS preset {name:?}; known presets: {known}")]
    Unknown {
        /// The name asked for.
        name: String,
        /// The names there are, comma separated.
        known: String,
    },
    /// A value is out of range.
    #[error("VPS preset {name:?}: {detail}")]
    Invalid {
        /// The preset.
        name: String,
        /// What is wrong.
        detail: String,
    },
}

/// One instance type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpsPreset {
    /// Filled from the table name when read.
    #[serde(default)]
    pub name: String,
    /// Human name of the instance type.
    pub title: String,
    /// Virtual CPUs of the instance.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Sustained CPU per vCPU without burst credits, percent.
    pub cpu_baseline_pct: f64,
    /// Baseline network bandwidth, Mbit/s; `None` when not published.
    #[serde(default)]
    pub bandwidth_baseline_mbit: Option<f64>,
    /// Burst network bandwidth, Mbit/s; `None` when not published.
    #[serde(default)]
    pub bandwidth_burst_mbit: Option<f64>,
    /// Source URL of each group of numbers.
    pub sources: BTreeMap<String, String>,
}

impl VpsPreset {
    /// CPU quota for the server side, in cores: the vCPUs, at most the one
    /// core the server side is pinned to.
    pub fn cpu_quota(&self) -> f64 {
        (self.vcpus as f64).min(1.0)
    }

    /// Memory limit in bytes.
    pub fn mem_limit_bytes(&self) -> u64 {
        self.memory_mib * 1024 * 1024
    }
}

/// Parses a presets file; `path` only names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Vec<VpsPreset>, PresetError> {
    let table: BTreeMap<String, VpsPreset> =
        toml::from_str(text).map_err(|e| PresetError::Parse {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let mut presets = Vec::new();
    for (name, mut preset) in table {
        preset.name = name.clone();
        let invalid = |detail: &str| PresetError::Invalid {
            name: name.clone(),
            detail: detail.into(),
        };
        if preset.vcpus == 0 {
            return Err(invalid("vcpus must be at least 1"));
        }
        if preset.memory_mib < 64 {
            return Err(invalid("memory_mib must be at least 64"));
        }
        if preset.bandwidth_baseline_mbit.is_some_and(|b| b <= 0.0) {
            return Err(invalid("bandwidth_baseline_mbit must be positive"));
        }
        if preset.sources.is_empty() {
            return Err(invalid("every preset needs `sources` for its numbers"));
        }
        presets.push(preset);
    }
    Ok(presets)
}

/// Finds `name` in `file` (or the built-in presets when `file` is `None`).
pub fn find(name: &str, file: Option<&Path>) -> Result<VpsPreset, PresetError> {
    let (text, path) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| PresetError::Io {
                path: path.to_path_buf(),
                source,
            })?,
            path.to_path_buf(),
        ),
        None => (BUILTIN.to_string(), PathBuf::from("bench/vps-presets.toml")),
    };
    let presets = parse(&text, &path)?;
    let known = presets
        .iter()
        .map(|p| p.name.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    presets
        .into_iter()
        .find(|p| p.name == name)
        .ok_or_else(|| PresetError::Unknown {
            name: name.to_string(),
            known,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_presets_parse_and_cite_their_sources() {
        let presets = parse(BUILTIN, Path::new("builtin")).unwrap();
        let names: Vec<&str> = presets.iter().map(|p| p.name.as_str()).collect();
        for want in ["t4g-nano", "t3-nano", "t3-micro", "lightsail-512mb"] {
            assert!(names.contains(&want), "{names:?}");
        }
        for p in &presets {
            assert!(
                p.sources.values().all(|u| u.starts_with("https://")),
                "{}",
                p.name
            );
        }
        let nano = find("t3-nano", None).unwrap();
        assert_eq!((nano.cpu_quota(), nano.mem_limit_bytes()), (1.0, 512 << 20));
        assert_eq!(nano.bandwidth_baseline_mbit, Some(32.0));
    }

    #[test]
    fn unknown_preset_lists_the_known_ones() {
        let err = find("t2.huge", None).unwrap_err().to_string();
        assert!(err.contains("t3-micro"), "{err}");
    }

    #[test]
    fn preset_without_sources_is_refused() {
        let text =
            "[x]\ntitle = \"x\"\nvcpus = 1\nmemory_mib = 512\ncpu_baseline_pct = 5\nsources = {}\n";
        let err = parse(text, Path::new("p.toml")).unwrap_err().to_string();
        assert!(err.contains("sources"), "{err}");
    }
}
