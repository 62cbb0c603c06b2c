//! The server image: runs `scripts/build-image.sh` (static `blog` with the
//! cap_net_bind_service file capability, `docker import`ed) and finds what
//! it built.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The tag `scripts/build-image.sh` gives the image by default.
pub const IMAGE_TAG: &str = "hopless/blog:latest";

/// Building or inspecting the image failed.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The script could not be started.
    #[error("cannot run {script}: {source} (is the checkout complete and bash installed?)")]
    Spawn {
        /// The script path.
        script: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The script ran and failed.
    #[error("{script} failed ({status}):\n{stderr}")]
    Build {
        /// The script path.
        script: PathBuf,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// The tail of what it printed on stderr.
        stderr: String,
    },
    /// A `docker` command about the image failed.
    #[error("`{command}` failed: {stderr} (is the Docker daemon running? scripts/install-deps.sh starts it)")]
    Docker {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testbed lives inside the workspace")
        .to_path_buf()
}

/// Cargo's target directory, as `scripts/build-image.sh` resolves it.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Builds the image if the server binary or the site changed (the script
/// is idempotent: a few seconds when nothing changed, a release build of
/// the server otherwise) and returns its tag.
pub fn ensure_image() -> Result<String, ImageError> {
    let script = workspace_root().join("scripts/build-image.sh");
    let out = Command::new(&script)
        .current_dir(workspace_root())
        .output()
        .map_err(|source| ImageError::Spawn {
            script: script.clone(),
            source,
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let stderr = tail.into_iter().rev().collect::<Vec<_>>().join("\n");
        return Err(ImageError::Build {
            script,
            status: out.status,
            stderr,
        });
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(stdout
        .lines()
        .last()
        .unwrap_or(IMAGE_TAG)
        .trim()
        .to_string())
}

/// The static `blog` binary the script laid into the image's root file
/// system, carrying `cap_net_bind_service=+ep`: what the `bare` profile
/// runs. Exists once [`ensure_image`] succeeded.
pub fn static_binary() -> PathBuf {
    rootfs_dir().join("usr/local/bin/blog")
}

/// The root file system the script imported.
pub fn rootfs_dir() -> PathBuf {
    target_dir().join("hopless-image/rootfs")
}

/// The image's size in bytes, as `docker image inspect` reports it.
pub fn image_size(tag: &str) -> Result<u64, ImageError> {
    let out = docker(&["image", "inspect", "--format", "{{.Size}}", tag])?;
    out.trim().parse().map_err(|_| ImageError::Docker {
        command: format!("docker image inspect {tag}"),
        stderr: format!("unexpected size {out:?}"),
    })
}

/// Runs `docker ARGS` and returns its stdout.
pub(crate) fn docker(args: &[&str]) -> Result<String, ImageError> {
    let command = format!("docker {}", args.join(" "));
    let out = Command::new("docker")
        .args(args)
        .output()
        .map_err(|e| ImageError::Docker {
            command: command.clone(),
            stderr: e.to_string(),
        })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        return Err(ImageError::Docker { command, stderr });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
