//! Rendering a [`Site`] into the pages it serves: the index, one HTML page
//! per post, the Atom feed, the static assets and the 404 page.

use std::fmt::Write as _;
use std::time::SystemTime;

use pulldown_cmark::{html, Options, Parser};
use time::macros::format_description;
use time::Date;

use crate::site::{Asset, Post, Site};

/// The blog's name in page titles, the header and the feed.
pub const SITE_TITLE: &str = "hopless";

/// The path of the 404 page in the list [`render`] returns.
pub const NOT_FOUND_PATH: &str = "/404.html";

/// One rendered resource, before compression and headers.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL path that serves it.
    pub path: String,
    /// The Content-Type header value.
    pub content_type: &'static str,
    /// The bytes served.
    pub body: Vec<u8>,
    /// The Last-Modified time.
    pub last_modified: SystemTime,
    /// How long caches may keep it.
    pub cache: CacheClass,
}

/// How long a resource may be cached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheClass {
    /// Pages that change when a post is added: short.
    Page,
    /// Static assets: a day.
    Asset,
    /// Never cached (`/healthz`).
    Never,
}

/// Renders every page of `site`; `base_url` (`https://host[:port]`)
/// makes the feed's links absolute. The 404 page comes last, at
/// [`NOT_FOUND_PATH`]; the rest are sorted by path.
pub fn render(site: &Site, base_url: &str) -> Vec<Page> {
    let newest = site
        .posts
        .iter()
        .map(post_modified)
        .max()
        .unwrap_or(SystemTime::UNIX_EPOCH);
    let links = head_links(site);
    let mut pages = Vec::with_capacity(site.posts.len() + site.assets.len() + 3);

    pages.push(html_page(
        "/",
        layout(SITE_TITLE, &index_body(site), &links),
        newest,
    ));
    for post in &site.posts {
        let body = layout(
            &format!("{} · {SITE_TITLE}", post.title),
            &post_body(post),
            &links,
        );
        pages.push(html_page(
            &format!("/posts/{}/", post.slug),
            body,
            post_modified(post),
        ));
    }
    pages.push(Page {
        path: "/feed.xml".into(),
        content_type: "application/atom+xml; charset=utf-8",
        body: feed(site, base_url).into_bytes(),
        last_modified: newest,
        cache: CacheClass::Page,
    });
    for asset in &site.assets {
        let page = asset_page(asset, newest);
        // Crawlers and browsers ask for these at the root, not under /static/.
        if matches!(asset.path.as_str(), "robots.txt" | "favicon.ico") {
            pages.push(Page {
                path: format!("/{}", asset.path),
                ..page.clone()
            });
        }
        pages.push(page);
    }
    pages.sort_by(|a, b| a.path.cmp(&b.path));

    let missing = "<h1>Not found</h1>\n<p>There is no page at this address. \
                   The <a href=\"/\">index</a> lists every post.</p>\n";
    pages.push(html_page(
        NOT_FOUND_PATH,
        layout("Not found", missing, &links),
        newest,
    ));
    pages
}

fn html_page(path: &str, body: String, last_modified: SystemTime) -> Page {
    Page {
        path: path.to_string(),
        content_type: "text/html; charset=utf-8",
        body: body.into_bytes(),
        last_modified,
        cache: CacheClass::Page,
    }
}

fn asset_page(asset: &Asset, fallback: SystemTime) -> Page {
    Page {
        path: format!("/static/{}", asset.path),
        content_type: content_type(&asset.path),
        body: asset.bytes.clone(),
        last_modified: asset.modified.unwrap_or(fallback),
        cache: CacheClass::Asset,
    }
}

/// The newer of the file's mtime and the post's date.
fn post_modified(post: &Post) -> SystemTime {
    let dated: SystemTime = post.date.midnight().assume_utc().into();
    post.modified.map_or(dated, |m| m.max(dated))
}

/// Content-Type by file extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "css" => "text/css; charset=utf-8",
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "pdf" => "application/pdf",
        _ => "application/octet-stream",
    }
}

/// `<link>`s to the stylesheet and icon, for those the site has.
fn head_links(site: &Site) -> String {
    let has = |path: &str| site.assets.iter().any(|a| a.path == path);
    let mut links = String::new();
    if has("style.css") {
        links.push_str("<link rel=\"stylesheet\" href=\"/static/style.css\">\n");
    }
    if has("favicon.svg") {
        links.push_str("<link rel=\"icon\" href=\"/static/favicon.svg\" type=\"image/svg+xml\">\n");
    }
    links
}

fn layout(title: &str, main: &str, links: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{title}</title>\n{links}\
         <link rel=\"alternate\" type=\"application/atom+xml\" title=\"{site}\" href=\"/feed.xml\">\n\
         </head>\n<body>\n<header><a class=\"home\" href=\"/\">{site}</a> \
         <nav><a href=\"/feed.xml\">Feed</a></nav></header>\n<main>\n{main}</main>\n\
         <footer>Served from memory by hopless.</footer>\n</body>\n</html>\n",
        title = escape(title),
        site = SITE_TITLE,
    )
}

fn index_body(site: &Site) -> String {
    let mut out = String::from("<h1>Posts</h1>\n<ul class=\"posts\">\n");
    for post in &site.posts {
        let _ = write!(
            out,
            "<li><a href=\"/posts/{slug}/\">{title}</a> <time datetime=\"{iso}\">{human}</time>",
            slug = post.slug,
            title = escape(&post.title),
            iso = post.date,
            human = human_date(post.date),
        );
        if let Some(summary) = &post.summary {
            let _ = write!(out, "<p>{}</p>", escape(summary));
        }
        out.push_str(&tag_list(&post.tags));
        out.push_str("</li>\n");
    }
    out.push_str("</ul>\n");
    out
}

fn post_body(post: &Post) -> String {
    format!(
        "<article>\n<h1>{title}</h1>\n<div class=\"meta\"><time datetime=\"{iso}\">{human}</time>{tags}</div>\n{html}</article>\n",
        title = escape(&post.title),
        iso = post.date,
        human = human_date(post.date),
        tags = tag_list(&post.tags),
        html = markdown_html(&post.markdown),
    )
}

fn tag_list(tags: &[String]) -> String {
    if tags.is_empty() {
        return String::new();
    }
    let items: Vec<String> = tags
        .iter()
        .map(|t| format!("<li>{}</li>", escape(t)))
        .collect();
    format!(" <ul class=\"tags\">{}</ul>", items.concat())
}

fn markdown_html(markdown: &str) -> String {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_SMART_PUNCTUATION;
    let mut out = String::with_capacity(markdown.len() * 3 / 2);
    html::push_html(&mut out, Parser::new_ext(markdown, options));
    out
}

fn feed(site: &Site, base: &str) -> String {
    let updated = site.posts.first().map(|p| p.date).unwrap_or(Date::MIN);
    let mut out = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>{SITE_TITLE}</title>\n<id>{base}/</id>\n<link href=\"{base}/\"/>\n\
         <link rel=\"self\" href=\"{base}/feed.xml\"/>\n<updated>{updated}T00:00:00Z</updated>\n\
         <author><name>{SITE_TITLE}</name></author>\n"
    );
    for post in &site.posts {
        let url = format!("{base}/posts/{}/", post.slug);
        let _ = write!(
            out,
            "<entry>\n<title>{title}</title>\n<id>{url}</id>\n<link href=\"{url}\"/>\n\
             <updated>{date}T00:00:00Z</updated>\n",
            title = escape(&post.title),
            date = post.date,
        );
        if let Some(summary) = &post.summary {
            let _ = writeln!(out, "<summary>{}</summary>", escape(summary));
        }
        let _ = write!(
            out,
            "<content type=\"html\">{}</content>\n</entry>\n",
            escape(&markdown_html(&post.markdown))
        );
    }
    out.push_str("</feed>\n");
    out
}

fn human_date(date: Date) -> String {
    let format = format_description!("[day padding:none] [month repr:long] [year]");
    date.format(&format).unwrap_or_else(|_| date.to_string())
}

/// Escapes text for HTML and XML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_site_renders_index_posts_feed_and_404() {
        let site = Site::load(None).unwrap();
        let pages = render(&site, "https://blog.test");
        let paths: Vec<&str> = pages.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"/") && paths.contains(&"/feed.xml"));
        assert_eq!(paths.last(), Some(&NOT_FOUND_PATH));
        let post = format!("/posts/{}/", site.posts[0].slug);
        assert!(paths.contains(&post.as_str()));
        let feed = pages.iter().find(|p| p.path == "/feed.xml").unwrap();
        let feed = String::from_utf8_lossy(&feed.body);
        assert!(feed.contains(&format!("<id>https://blog.test{post}</id>")));
    }

    #[test]
    fn escape_covers_markup_characters() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
