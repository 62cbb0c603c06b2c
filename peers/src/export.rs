//! The blog's rendered pages written to a directory (a path ending in `/`
//! becomes `index.html` under it), so nginx and static-web-server serve
//! exactly the bytes the blog serves from memory.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::PeersError;

/// One exported page.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportedPage {
    /// The URL path the blog serves it at.
    pub path: String,
    /// The file written.
    pub file: PathBuf,
    /// Body size in bytes.
    pub bytes: usize,
}

/// Renders the embedded sample site (or `site_dir`) as the blog does for
/// `base_url`, and writes every page under `root` (made world-readable:
/// nginx's worker runs as an unprivileged user).
pub fn export_site(
    site_dir: Option<&Path>,
    base_url: &str,
    root: &Path,
) -> Result<Vec<ExportedPage>, PeersError> {
    let site = server::Site::load(site_dir)?;
    let pages = server::render::render(&site, base_url);
    let mut written = Vec::with_capacity(pages.len());
    mkdir(root)?;
    for page in pages {
        let file = file_for(root, &page.path).ok_or_else(|| {
            PeersError::io(
                "export",
                root.join(page.path.trim_start_matches('/')),
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "page path is not a plain relative path",
                ),
            )
        })?;
        if let Some(parent) = file.parent() {
            mkdir(parent)?;
        }
        fs::write(&file, &page.body).map_err(|e| PeersError::io("write", &file, e))?;
        written.push(ExportedPage {
            path: page.path,
            file,
            bytes: page.body.len(),
        });
    }
    Ok(written)
}

/// Where the page served at `url_path` lives under `root`; `None` for a
/// path that would leave `root`.
pub fn file_for(root: &Path, url_path: &str) -> Option<PathBuf> {
    let rel = url_path.strip_prefix('/')?;
    if rel.split('/').any(|seg| seg == ".." || seg == ".") {
        return None;
    }
    let mut file = root.join(rel);
    if rel.is_empty() || rel.ends_with('/') {
        file.push("index.html");
    }
    Some(file)
}

fn mkdir(dir: &Path) -> Result<(), PeersError> {
    fs::create_dir_all(dir).map_err(|e| PeersError::io("create", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755))
        .map_err(|e| PeersError::io("chmod", dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_paths_become_index_files_and_escapes_are_refused() {
        let root = Path::new("/srv/site");
        assert_eq!(file_for(root, "/").unwrap(), root.join("index.html"));
        assert_eq!(
            file_for(root, "/posts/a/").unwrap(),
            root.join("posts/a/index.html")
        );
        assert_eq!(file_for(root, "/feed.xml").unwrap(), root.join("feed.xml"));
        assert!(file_for(root, "/../etc/passwd").is_none());
        assert!(file_for(root, "relative").is_none());
    }

    #[test]
    fn every_page_the_blog_serves_is_exported_byte_for_byte() {
        let dir = tempfile::tempdir().unwrap();
        let pages = export_site(None, "https://blog.test", dir.path()).unwrap();
        for path in server::page_paths(None).unwrap() {
            let page = pages.iter().find(|p| p.path == path).unwrap();
            assert_eq!(fs::read(&page.file).unwrap().len(), page.bytes, "{path}");
        }
        assert!(dir.path().join("index.html").is_file());
        assert!(dir.path().join("404.html").is_file());
    }
}
