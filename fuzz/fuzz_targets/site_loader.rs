//! Fuzzes the Markdown and front-matter loader: the input becomes one or
//! two posts of a scratch site directory, loaded with `Site::load_dir` and
//! rendered; the loader must return a site or an error, never panic, and
//! every title must reach the index escaped.
//!
//! Input: one byte choosing the file names, then the first post, then
//! optionally a second post after a 0xFF byte.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

const NAMES: [&str; 4] = [
    "2025-03-14-hello.md",
    "hello.md",
    "2025-13-45-odd-date.md",
    "x.md",
];

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("hopless-fuzz-site-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("posts")).expect("create the scratch site");
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (first, second) = match rest.iter().position(|b| *b == 0xff) {
        Some(i) => (&rest[..i], Some(&rest[i + 1..])),
        None => (rest, None),
    };
    let posts = scratch().join("posts");
    for name in NAMES {
        let _ = std::fs::remove_file(posts.join(name));
    }
    let a = NAMES[usize::from(pick & 3)];
    std::fs::write(posts.join(a), first).expect("write the first post");
    if let Some(second) = second {
        let b = NAMES[usize::from((pick >> 2) & 3)];
        std::fs::write(posts.join(b), second).expect("write the second post");
    }

    match server::Site::load_dir(scratch()) {
        Ok(site) => {
            let pages = server::render::render(&site, "https://localhost");
            let index = pages
                .iter()
                .find(|p| p.path == "/")
                .expect("every site has an index");
            let index = String::from_utf8_lossy(&index.body);
            for post in &site.posts {
                assert!(
                    index.contains(&server::render::escape(&post.title)),
                    "title {:?} missing from the index",
                    post.title
                );
            }
            assert!(pages.iter().all(|p| p.path.starts_with('/') && !p.path.contains("..")));
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
        }
    }
});
