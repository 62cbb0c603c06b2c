//! Finding the workspace binaries a scenario runs (`blog`, `loadgen`):
//! next to the running executable in cargo's target directory, built with
//! `cargo build` on first use (a no-op when up to date), or named by an environment
//! variable (`HOPLESS_BLOG`, `HOPLESS_LOADGEN`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use crate::ScenarioError;

/// A binary of the workspace and the package that builds it.
#[derive(Debug, Clone, Copy)]
pub struct Binary {
    /// The executable's name.
    pub name: &'static str,
    /// Its package.
    pub package: &'static str,
    /// The environment variable that overrides where it is.
    pub env: &'static str,
}

/// The blog server.
pub const BLOG: Binary = Binary {
    name: "blog",
    package: "server",
    env: "HOPLESS_BLOG",
};

/// The load generator.
pub const LOADGEN: Binary = Binary {
    name: "loadgen",
    package: "loadgen",
    env: "HOPLESS_LOADGEN",
};

/// The binaries built by this process so far (one build at a time).
static BUILT: Mutex<Vec<&'static str>> = Mutex::new(Vec::new());

impl Binary {
    /// The path of the executable: `$ENV` when set, else the profile
    /// directory this process runs from (`target/debug` for tests,
    /// `target/release` for `cargo run --release`), brought up to date
    /// with `cargo build` on first use.
    pub fn path(&self) -> Result<PathBuf, ScenarioError> {
        if let Some(p) = std::env::var_os(self.env) {
            return Ok(PathBuf::from(p));
        }
        let dir = profile_dir().ok_or_else(|| self.err("cannot tell the target directory"))?;
        let path = dir.join(self.name);
        let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
        if !built.contains(&self.name) {
            // Once per process, so a changed server is what runs (a no-op
            // build takes a second); a stale binary beats none when cargo
            // cannot run.
            if let Err(e) = self.build(&dir) {
                if !path.exists() {
                    return Err(e);
                }
                tracing::warn!("using {} as it is: {e}", path.display());
            }
            built.push(self.name);
        }
        if !path.exists() {
            return Err(self.err(&format!("{} missing after the build", path.display())));
        }
        Ok(path)
    }

    fn build(&self, dir: &Path) -> Result<(), ScenarioError> {
        let release = dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
        cmd.args(["build", "-p", self.package, "--bin", self.name]);
        if release {
            cmd.arg("--release");
        }
        tracing::info!(
            "building {} ({})",
            self.name,
            if release { "release" } else { "debug" }
        );
        let out = cmd
            .current_dir(workspace_root())
            .output()
            .map_err(|e| self.err(&format!("cannot run cargo: {e}")))?;
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            return Err(self.err(&format!("cargo build failed:\n{stderr}")));
        }
        Ok(())
    }

    fn err(&self, reason: &str) -> ScenarioError {
        ScenarioError::Binary {
            name: self.name.to_string(),
            reason: format!(
                "{reason}; build it with `cargo build -p {}` or set {}",
                self.package, self.env
            ),
        }
    }
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("reliability lives inside the workspace")
        .to_path_buf()
}

/// `target/<profile>`: the running executable's directory, or its parent
/// for a test executable in `target/<profile>/deps`.
fn profile_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir.parent().map(Path::to_path_buf)
    } else {
        Some(dir.to_path_buf())
    }
}
