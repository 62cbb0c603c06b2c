//! Loading a site: Markdown posts with front matter from `posts/*.md` and
//! assets from `static/`, read from a directory or from the sample site
//! embedded in the binary at compile time.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use include_dir::{include_dir, Dir};
use time::macros::format_description;
use time::Date;

/// The sample site shipped in the repository (`server/site/`).
static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/site");

/// A loaded site, ready to render.
#[derive(Debug, Clone)]
pub struct Site {
    /// Posts, newest first.
    pub posts: Vec<Post>,
    /// Files under `static/`, by path relative to `static/`.
    pub assets: Vec<Asset>,
}

/// One post: its front matter and Markdown body.
#[derive(Debug, Clone)]
pub struct Post {
    /// URL name: the file stem without a leading `YYYY-MM-DD-`.
    pub slug: String,
    /// `title:` from the front matter.
    pub title: String,
    /// `date:` from the front matter.
    pub date: Date,
    /// `summary:` from the front matter, if any.
    pub summary: Option<String>,
    /// `tags:` from the front matter.
    pub tags: Vec<String>,
    /// The Markdown after the front matter.
    pub markdown: String,
    /// Modification time of the file, when read from disk.
    pub modified: Option<SystemTime>,
}

/// One static file.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Path relative to `static/`, with `/` separators.
    pub path: String,
    /// The file's bytes.
    pub bytes: Vec<u8>,
    /// Modification time of the file, when read from disk.
    pub modified: Option<SystemTime>,
}

/// Why a site could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// A file or directory could not be read.
    #[error("cannot read {path}: {source}; check --site (BLOG_SITE) and the file's permissions")]
    Read {
        /// What could not be read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A post's front matter is missing or wrong.
    #[error("{path}: {reason}; a post starts with ---, then title: and date: YYYY-MM-DD lines, then ---")]
    FrontMatter {
        /// The post.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A file name that cannot become a URL.
    #[error("{path}: file name must use only a-z, A-Z, 0-9, '-', '_' and '.' so it can be a URL")]
    BadName {
        /// The file.
        path: PathBuf,
    },
    /// Two posts would have the same URL.
    #[error("{first} and {second} both become /posts/{slug}/; rename one")]
    DuplicateSlug {
        /// The slug.
        slug: String,
        /// One post.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A site without a `posts/` directory.
    #[error("{0} has no posts/ directory; a site is posts/*.md plus optional static/")]
    NoPosts(PathBuf),
}

/// A file found in a site, before it is sorted into posts and assets.
struct SourceFile {
    rel: String,
    bytes: Vec<u8>,
    modified: Option<SystemTime>,
}

impl Site {
    /// Loads the site from `dir`, or the embedded sample site for `None`.
    pub fn load(dir: Option<&Path>) -> Result<Site, SiteError> {
        match dir {
            Some(dir) => Site::load_dir(dir),
            None => Site::from_files(Path::new("<embedded>"), embedded_files()),
        }
    }

    /// Loads the site from a directory.
    pub fn load_dir(dir: &Path) -> Result<Site, SiteError> {
        if !dir.join("posts").is_dir() {
            return Err(SiteError::NoPosts(dir.to_path_buf()));
        }
        let mut files = Vec::new();
        collect_dir(dir, dir, &mut files)?;
        Site::from_files(dir, files)
    }

    fn from_files(root: &Path, files: Vec<SourceFile>) -> Result<Site, SiteError> {
        let mut posts: Vec<(Post, PathBuf)> = Vec::new();
        let mut assets = Vec::new();
        for file in files {
            let path = root.join(&file.rel);
            if !file.rel.split('/').all(is_url_safe) {
                return Err(SiteError::BadName { path });
            }
            if let Some(rel) = file.rel.strip_prefix("static/") {
                assets.push(Asset {
                    path: rel.to_string(),
                    bytes: file.bytes,
                    modified: file.modified,
                });
            } else if let Some(name) = file.rel.strip_prefix("posts/") {
                let Some(stem) = name.strip_suffix(".md").filter(|s| !s.contains('/')) else {
                    continue;
                };
                let post = parse_post(&path, stem, &file.bytes, file.modified)?;
                if let Some((_, first)) = posts.iter().find(|(p, _)| p.slug == post.slug) {
                    return Err(SiteError::DuplicateSlug {
                        slug: post.slug,
                        first: first.clone(),
                        second: path,
                    });
                }
                posts.push((post, path));
            }
        }
        let mut posts: Vec<Post> = posts.into_iter().map(|(p, _)| p).collect();
        posts.sort_by(|a, b| b.date.cmp(&a.date).then_with(|| a.slug.cmp(&b.slug)));
        assets.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Site { posts, assets })
    }
}

/// Every page path a site serves with 200 (index, posts, feed, assets),
/// sorted: the visitor URL mix for a benchmark. `/healthz` is not content
/// and is left out. `None` is the embedded sample site.
///
/// # Examples
///
/// ```
/// let paths = server::page_paths(None).unwrap();
/// assert!(paths.iter().any(|p| p == "/feed.xml"));
/// ```
pub fn page_paths(dir: Option<&Path>) -> Result<Vec<String>, SiteError> {
    let site = Site::load(dir)?;
    let pages = crate::render::render(&site, "https://localhost");
    Ok(pages
        .into_iter()
        .map(|p| p.path)
        .filter(|p| p != crate::render::NOT_FOUND_PATH)
        .collect())
}

fn embedded_files() -> Vec<SourceFile> {
    fn walk(dir: &Dir<'static>, out: &mut Vec<SourceFile>) {
        for file in dir.files() {
            out.push(SourceFile {
                rel: file.path().to_string_lossy().replace('\\', "/"),
                bytes: file.contents().to_vec(),
                modified: None,
            });
        }
        for sub in dir.dirs() {
            walk(sub, out);
        }
    }
    let mut out = Vec::new();
    walk(&EMBEDDED, &mut out);
    out
}

fn collect_dir(root: &Path, dir: &Path, out: &mut Vec<SourceFile>) -> Result<(), SiteError> {
    let read_err = |path: &Path, source| SiteError::Read {
        path: path.to_path_buf(),
        source,
    };
    for entry in fs::read_dir(dir).map_err(|e| read_err(dir, e))? {
        let path = entry.map_err(|e| read_err(dir, e))?.path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        if name.starts_with('.') {
            continue;
        }
        // Symlinks are skipped so a link cannot pull files from outside
        // the site into it.
        let meta = fs::symlink_metadata(&path).map_err(|e| read_err(&path, e))?;
        if meta.is_dir() {
            collect_dir(root, &path, out)?;
        } else if meta.is_file() {
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .into_owned();
            let bytes = fs::read(&path).map_err(|e| read_err(&path, e))?;
            out.push(SourceFile {
                rel,
                bytes,
                modified: meta.modified().ok(),
            });
        } else {
            tracing::warn!(path = %path.display(), "skipping: not a regular file or directory");
        }
    }
    Ok(())
}

fn is_url_safe(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn parse_post(
    path: &Path,
    stem: &str,
    bytes: &[u8],
    modified: Option<SystemTime>,
) -> Result<Post, SiteError> {
    let bad = |reason: String| SiteError::FrontMatter {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|e| bad(format!("not UTF-8 ({e})")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text.split_inclusive('\n');
    if lines.next().map(str::trim_end) != Some("---") {
        return Err(bad("first line is not ---".into()));
    }

    let (mut title, mut date, mut summary, mut tags) = (None, None, None, Vec::new());
    let mut consumed = text.find('\n').map_or(text.len(), |i| i + 1);
    let mut closed = false;
    for (n, line) in lines.enumerate() {
        consumed += line.len();
        let line = line.trim_end();
        if line == "---" {
            closed = true;
            break;
        }
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once(':') else {
            return Err(bad(format!("line {} has no `key: value`: {line:?}", n + 2)));
        };
        let value = unquote(value.trim());
        match key.trim() {
            "title" => title = Some(value.to_string()),
            "date" => {
                let format = format_description!("[year]-[month]-[day]");
                let parsed = Date::parse(value, &format)
                    .map_err(|e| bad(format!("date {value:?} is not YYYY-MM-DD ({e})")))?;
                date = Some(parsed);
            }
            "summary" => summary = Some(value.to_string()).filter(|s| !s.is_empty()),
            "tags" => {
                let list = value
                    .strip_prefix('[')
                    .and_then(|v| v.strip_suffix(']'))
                    .unwrap_or(value);
                tags = list
                    .split(',')
                    .map(|t| unquote(t.trim()).to_string())
                    .filter(|t| !t.is_empty())
                    .collect();
            }
            other => {
                tracing::debug!(path = %path.display(), key = other, "ignoring front matter key")
            }
        }
    }
    if !closed {
        return Err(bad("front matter has no closing ---".into()));
    }
    let title = title
        .filter(|t| !t.is_empty())
        .ok_or_else(|| bad("no title:".into()))?;
    let date = date.ok_or_else(|| bad("no date:".into()))?;
    Ok(Post {
        slug: slug_of(stem),
        title,
        date,
        summary,
        tags,
        markdown: text[consumed.min(text.len())..].to_string(),
        modified,
    })
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(q).and_then(|v| v.strip_suffix(q)) {
            return inner;
        }
    }
    value
}

/// `2025-03-14-hello` → `hello`; other stems are kept whole.
fn slug_of(stem: &str) -> String {
    let b = stem.as_bytes();
    let dated = b.len() > 11
        && b[..10].iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && b[10] == b'-';
    if dated {
        stem[11..].to_string()
    } else {
        stem.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_matter_fields_and_body_are_read() {
        let src =
            "---\ntitle: \"Hi: there\"\ndate: 2025-03-14\nsummary: s\ntags: [a, b]\n---\n# Body\n";
        let post = parse_post(Path::new("p.md"), "2025-03-14-hi", src.as_bytes(), None).unwrap();
        assert_eq!(post.slug, "hi");
        assert_eq!(post.title, "Hi: there");
        assert_eq!(post.tags, ["a", "b"]);
        assert_eq!(post.markdown, "# Body\n");
        assert_eq!(post.date.to_string(), "2025-03-14");
    }

    #[test]
    fn missing_date_names_the_file() {
        let err = parse_post(Path::new("x/p.md"), "p", b"---\ntitle: t\n---\n", None).unwrap_err();
        assert!(
            err.to_string().contains("x/p.md") && err.to_string().contains("no date"),
            "{err}"
        );
    }

    #[test]
    fn unclosed_front_matter_is_refused() {
        let err = parse_post(
            Path::new("p.md"),
            "p",
            b"---\ntitle: t\ndate: 2025-01-01\n",
            None,
        );
        assert!(err.unwrap_err().to_string().contains("closing"));
    }

    #[test]
    fn embedded_site_loads() {
        let site = Site::load(None).unwrap();
        assert!(!site.posts.is_empty());
        assert!(site.posts.windows(2).all(|w| w[0].date >= w[1].date));
    }
}
