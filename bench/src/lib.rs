//! hopless bench: runs every profile × path × workload cell against the
//! real deployments, attributes each hop, emulates a small VPS, and
//! publishes results, charts and a report.

pub mod analysis;
pub mod cleanup;
pub mod cli;
pub mod iptables;
pub mod loadrun;
pub mod matrix;
pub mod prereq;
pub mod presets;
pub mod procfs;
pub mod record;
pub mod report;
pub mod run;
pub mod shaping;
pub mod stats;
pub mod target;
