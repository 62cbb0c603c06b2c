//! A machine-wide lock around what only one user at a time may hold: the
//! Docker engine's compose projects, ports 80 and 443, client namespaces.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

/// Where the lock file lives; the same path for every crate's tests and the
/// bench, so a test run and a bench run wait for each other.
pub const LOCK_PATH: &str = "/tmp/hopless-testbed.lock";

/// Holds the machine-wide lock until dropped.
#[derive(Debug)]
pub struct LockGuard {
    _flock: Flock<File>,
    path: PathBuf,
}

impl LockGuard {
    /// The lock file held.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Could not take the lock.
#[derive(Debug, thiserror::Error)]
#[error("cannot lock {path}: {reason} (another hopless test or bench holds Docker; wait for it or remove the stale file)")]
pub struct LockError {
    path: PathBuf,
    reason: String,
}

/// Waits for and takes the machine-wide lock (blocking).
pub fn exclusive() -> Result<LockGuard, LockError> {
    exclusive_at(Path::new(LOCK_PATH))
}

/// Waits for and takes the lock at `path` (blocking).
pub fn exclusive_at(path: &Path) -> Result<LockGuard, LockError> {
    let err = |reason: String| LockError {
        path: path.to_path_buf(),
        reason,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    let flock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| err(e.to_string()))?;
    Ok(LockGuard {
        _flock: flock,
        path: path.to_path_buf(),
    })
}
