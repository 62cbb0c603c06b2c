//! hopless reliability and security scenarios: hostile clients, faults
//! under load and a TLS scan, run against the real `blog` binary (and its
//! container), each producing an [`outcome::Outcome`] with counts, checks
//! and figures that the `reliability` binary writes to `RELIABILITY.md`.
//!
//! Modules, one concern each:
//!
//! - [`binary`]: finding (or building) the workspace binaries to run.
//! - [`blog`]: a `blog` process on loopback with a certbot-shaped
//!   certificate, its log, its memory.
//! - [`probe`]: the well-behaved client (the load generator, open loop)
//!   whose latency is recorded during every scenario.
//! - [`wire`]: raw connections for attackers and reading what comes back.
//! - [`hostile`]: HTTP/1.1 and TLS attacks; [`h2flood`]: HTTP/2 frame floods.
//! - [`faults`]: certificate faults, graceful stop and renewal under load.
//! - [`targets`]: the load generator against a target that dies, hangs or
//!   resets.
//! - [`docker`]: SIGKILL with the restart policy, a memory limit.
//! - [`tls_scan`]: testssl.sh against the HTTPS port.
//! - [`outcome`]: what a scenario reports; [`scenario`]: the list and
//!   the scale they run at; [`report`]: `RELIABILITY.md` and JSON.

pub mod binary;
pub mod blog;
pub mod docker;
pub mod faults;
pub mod h2flood;
pub mod hostile;
pub mod outcome;
pub mod probe;
pub mod report;
pub mod scenario;
pub mod targets;
pub mod tls_scan;
pub mod wire;

/// Why a scenario could not be run at all (as opposed to a scenario that
/// ran and failed a check, which its [`outcome::Outcome`] says).
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// A binary of the workspace could not be found or built.
    #[error("cannot find or build `{name}`: {reason}")]
    Binary {
        /// The binary.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// `blog` did not start.
    #[error("blog did not start ({reason}); its log:\n{log}")]
    Start {
        /// What went wrong.
        reason: String,
        /// What it printed.
        log: String,
    },
    /// A file or socket operation of the scenario itself failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The certificate directory could not be made or changed.
    #[error(transparent)]
    Certs(#[from] testbed::CertsError),
    /// The load generator refused its configuration or could not run.
    #[error("load generator: {0}")]
    Loadgen(String),
    /// Docker, compose or the image failed.
    #[error("docker: {0}")]
    Docker(String),
    /// A tool the scenario needs is not installed.
    #[error("{tool} is not installed: {hint}")]
    MissingTool {
        /// The tool.
        tool: String,
        /// How to install it.
        hint: String,
    },
}

impl ScenarioError {
    /// An [`ScenarioError::Io`] saying what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> ScenarioError {
        let what = what.into();
        move |source| ScenarioError::Io { what, source }
    }
}
