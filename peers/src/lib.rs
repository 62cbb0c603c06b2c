//! Peers: the blog server measured against nginx and static-web-server, and
//! the project's load generator against wrk, h2load and oha, on one machine
//! with two cores.
//!
//! Modules, one concern each:
//!
//! - [`tools`]: finding (and installing when missing) every peer, and their
//!   versions.
//! - [`export`]: the blog's rendered pages written to a directory, so nginx
//!   and static-web-server serve the same bytes.
//! - [`peer`]: the servers as processes under a CPU budget, stopped on drop.
//! - [`generator`]: running one load generator pinned to a core, with its
//!   CPU time and the requests the server counted.
//! - [`run`]: the two comparisons, their cells and interleaved repeats.
//! - [`stats`]: medians and spreads.
//! - [`report`]: the JSON results, `report.md` and the SVG charts.

pub mod export;
pub mod generator;
pub mod peer;
pub mod report;
pub mod run;
pub mod stats;
pub mod tools;

use std::path::PathBuf;

/// Everything that can stop a peers run, each naming what failed and on
/// what.
#[derive(Debug, thiserror::Error)]
pub enum PeersError {
    /// A tool is missing and could not be installed.
    #[error("cannot install {tool}: {detail}")]
    Install {
        /// The program or package.
        tool: String,
        /// What the installer said, and what to do about it.
        detail: String,
    },
    /// A file or directory could not be read or written.
    #[error("cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`write`, `create`, `read`).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A process could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A server did not come up or died.
    #[error("{peer} {detail}")]
    Server {
        /// The peer (`blog`, `nginx`, `sws`).
        peer: String,
        /// What went wrong, with the tail of its log.
        detail: String,
    },
    /// A load generator failed or its output could not be read.
    #[error("{generator} {detail}")]
    Generator {
        /// The generator (`loadgen`, `wrk`, `h2load`, `oha`).
        generator: String,
        /// What went wrong.
        detail: String,
    },
    /// The CPU budget could not be made or filled.
    #[error(transparent)]
    Cgroup(#[from] testbed::cgroup::CgroupError),
    /// The test certificate could not be made.
    #[error(transparent)]
    Certs(#[from] testbed::CertsError),
    /// The blog's site could not be loaded.
    #[error(transparent)]
    Site(#[from] server::SiteError),
    /// The machine-wide lock could not be taken.
    #[error(transparent)]
    Lock(#[from] testbed::lock::LockError),
}

impl PeersError {
    /// An [`PeersError::Io`] for `path`.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        PeersError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
