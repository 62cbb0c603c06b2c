//! The site over plain HTTP against the real binary: pages, HEAD,
//! conditional requests, compression, traversal attempts, the ACME
//! challenge and redirects, healthcheck and path listing.

mod support;

use std::io::Read;
use std::process::Command;

use support::*;

fn site_server(extra: &[&str]) -> (tempfile::TempDir, Blog) {
    let tmp = tempfile::tempdir().unwrap();
    let site = write_site(tmp.path());
    let mut args = vec!["--site", site.to_str().unwrap(), "--http-serves-site"];
    args.extend_from_slice(extra);
    let blog = Blog::start(&args);
    (tmp, blog)
}

#[test]
fn every_listed_path_of_the_sample_site_is_served_over_http() {
    let out = Command::new(BLOG).arg("paths").output().unwrap();
    assert!(out.status.success());
    let paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    assert!(paths.len() > 20, "{paths:?}");
    assert!(paths.iter().any(|p| p.starts_with("/posts/")) && paths.contains(&"/feed.xml".into()));

    let blog = Blog::start(&[]);
    for path in &paths {
        let answer = get(blog.http, path, "localhost", "");
        assert_eq!(status(&answer), 200, "{path}: {answer:.200}");
    }
    let index = get(blog.http, "/", "localhost", "");
    assert!(index.contains("<a href=\"/posts/"), "{index:.400}");
    assert_eq!(
        header(&index, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        blog.log().contains("running as uid 0"),
        "start-up names the user"
    );
    assert!(blog.log().contains("never needed"), "root gets a warning");
}

#[test]
fn posts_feed_and_404_page_render_from_a_site_directory() {
    let (_tmp, blog) = site_server(&[]);
    let post = get(blog.http, "/posts/second-post/", "x", "");
    assert_eq!(status(&post), 200);
    assert!(post.contains("Second: the sequel") && post.contains("<h1"));
    let feed = get(blog.http, "/feed.xml", "x", "");
    assert_eq!(
        header(&feed, "content-type"),
        Some("application/atom+xml; charset=utf-8")
    );
    assert!(feed.contains("<entry>") && feed.contains("/posts/first-post/</id>"));
    let missing = get(blog.http, "/posts/nope/", "x", "");
    assert_eq!(status(&missing), 404);
    assert!(missing.contains("Not found"), "the 404 page is the site's");
}

#[test]
fn trailing_slash_redirects_to_the_canonical_form() {
    let (_tmp, blog) = site_server(&[]);
    let answer = get(blog.http, "/posts/first-post", "x", "");
    assert_eq!(status(&answer), 308);
    assert_eq!(header(&answer, "location"), Some("/posts/first-post/"));
    let answer = get(blog.http, "/feed.xml/", "x", "");
    assert_eq!(header(&answer, "location"), Some("/feed.xml"));
}

#[test]
fn head_has_the_get_headers_and_no_body() {
    let (_tmp, blog) = site_server(&[]);
    let full = get(blog.http, "/static/style.css", "x", "");
    let body_len = full.split("\r\n\r\n").nth(1).unwrap().len();
    let head = raw(
        blog.http,
        b"HEAD /static/style.css HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&head), 200);
    assert_eq!(
        header(&head, "content-length"),
        Some(body_len.to_string().as_str())
    );
    assert_eq!(header(&head, "etag"), header(&full, "etag"));
    assert!(
        head.ends_with("\r\n\r\n"),
        "no body after the head: {head:?}"
    );
}

#[test]
fn conditional_requests_get_304() {
    let (_tmp, blog) = site_server(&[]);
    let first = get(blog.http, "/posts/first-post/", "x", "");
    let etag = header(&first, "etag").unwrap();
    let modified = header(&first, "last-modified").unwrap();
    assert_eq!(header(&first, "cache-control"), Some("public, max-age=300"));

    let again = get(
        blog.http,
        "/posts/first-post/",
        "x",
        &format!("If-None-Match: {etag}\r\n"),
    );
    assert_eq!(status(&again), 304);
    assert_eq!(header(&again, "etag"), Some(etag));
    assert!(again.ends_with("\r\n\r\n"));
    let since = get(
        blog.http,
        "/posts/first-post/",
        "x",
        &format!("If-Modified-Since: {modified}\r\n"),
    );
    assert_eq!(status(&since), 304);
    let stale = get(
        blog.http,
        "/posts/first-post/",
        "x",
        "If-None-Match: \"other\"\r\n",
    );
    assert_eq!(status(&stale), 200);
    let old = "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT\r\n";
    assert_eq!(status(&get(blog.http, "/posts/first-post/", "x", old)), 200);
}

#[test]
fn accept_encoding_chooses_brotli_gzip_or_identity() {
    let (_tmp, blog) = site_server(&[]);
    let plain = get(blog.http, "/static/style.css", "x", "");
    let plain_body = plain.split("\r\n\r\n").nth(1).unwrap().as_bytes().to_vec();

    let raw_body = |extra: &str| {
        let mut stream = std::net::TcpStream::connect(blog.http).unwrap();
        let req = format!(
            "GET /static/style.css HTTP/1.1\r\nHost: x\r\n{extra}Connection: close\r\n\r\n"
        );
        std::io::Write::write_all(&mut stream, req.as_bytes()).unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).unwrap();
        let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        (
            String::from_utf8_lossy(&out[..split]).into_owned(),
            out[split + 4..].to_vec(),
        )
    };
    let (head, body) = raw_body("Accept-Encoding: gzip, deflate, br\r\n");
    assert!(head.contains("content-encoding: br"), "{head}");
    let mut decoded = Vec::new();
    brotli::Decompressor::new(&body[..], 4096)
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain_body);
    assert!(head.contains("vary: accept-encoding"));

    let (head, body) = raw_body("Accept-Encoding: gzip\r\n");
    assert!(head.contains("content-encoding: gzip"), "{head}");
    let mut decoded = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut decoded)
        .unwrap();
    assert_eq!(decoded, plain_body);

    let (head, _) = raw_body("Accept-Encoding: br;q=0, gzip;q=0\r\n");
    assert!(!head.contains("content-encoding"), "{head}");
    let png = get(
        blog.http,
        "/static/img/pic.png",
        "x",
        "Accept-Encoding: gzip, br\r\n",
    );
    assert_eq!(
        header(&png, "content-encoding"),
        None,
        "incompressible bytes stay as they are"
    );
}

#[test]
fn traversal_attempts_never_leave_the_site() {
    let (_tmp, blog) = site_server(&[]);
    let attempts = [
        "/static/../../secret.txt",
        "/../secret.txt",
        "/static/%2e%2e/%2e%2e/secret.txt",
        "/static/%2E%2E%2F%2E%2E%2Fsecret.txt",
        "/static/%252e%252e/%252e%252e/secret.txt",
        "/static/..%5c..%5csecret.txt",
        "/static/..\\..\\secret.txt",
        "/static/style.css%00.txt",
        "/static/%00",
        "/static/%zz",
        "//secret.txt",
        "/static//../../secret.txt",
        "/posts/../../secret.txt",
    ];
    for path in attempts {
        let answer = raw(
            blog.http,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(!answer.contains(SECRET), "{path} leaked the secret");
        let code = status(&answer);
        assert!(code == 400 || code == 404, "{path}: {code}");
    }
    let answer = raw(
        blog.http,
        b"GET /static/\0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(!answer.contains(SECRET));
    assert!(answer.is_empty() || status(&answer) == 400, "{answer:?}");
}

#[test]
fn other_methods_get_405_with_allow() {
    let (_tmp, blog) = site_server(&[]);
    let answer = raw(
        blog.http,
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&answer), 405);
    assert_eq!(header(&answer, "allow"), Some("GET, HEAD"));
    let answer = raw(
        blog.http,
        b"GET not-a-path HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&answer), 400, "malformed target: {answer}");
}

#[test]
fn acme_token_is_served_and_everything_else_redirected_for_known_hosts_only() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = certbot(tmp.path());
    let webroot = tmp.path().join("webroot");
    std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
    std::fs::write(
        webroot.join(".well-known/acme-challenge/tok_EN-123"),
        "tok_EN-123.keyauth",
    )
    .unwrap();
    let le = certs.root().to_str().unwrap();
    let blog = Blog::start(&[
        "--letsencrypt-dir",
        le,
        "--domain",
        "blog.test",
        "--domain",
        "www.blog.test",
        "--acme-webroot",
        webroot.to_str().unwrap(),
    ]);

    let token = get(
        blog.http,
        "/.well-known/acme-challenge/tok_EN-123",
        "blog.test",
        "",
    );
    assert_eq!(status(&token), 200);
    assert!(token.ends_with("tok_EN-123.keyauth"));
    let missing = get(
        blog.http,
        "/.well-known/acme-challenge/other",
        "blog.test",
        "",
    );
    assert_eq!(status(&missing), 404);
    let bad = get(
        blog.http,
        "/.well-known/acme-challenge/..%2f..%2fsecret",
        "blog.test",
        "",
    );
    assert_eq!(status(&bad), 400);

    let moved = get(blog.http, "/posts/x/?a=b", "WWW.blog.test:80", "");
    assert_eq!(status(&moved), 301);
    let expected = format!("https://www.blog.test:{}/posts/x/?a=b", blog.https.port());
    assert_eq!(header(&moved, "location"), Some(expected.as_str()));
    let unknown = get(blog.http, "/", "evil.example", "");
    assert_eq!(status(&unknown), 400);
    assert_eq!(header(&unknown, "location"), None);
    assert_eq!(status(&get(blog.http, "/healthz", "127.0.0.1", "")), 200);
}

#[test]
fn healthcheck_subcommand_exits_0_for_a_live_server_and_1_otherwise() {
    let (_tmp, blog) = site_server(&[]);
    let ok = Command::new(BLOG)
        .args(["healthcheck", "--http-port", &blog.http.port().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let url = format!("http://{}/no-such-page", blog.http);
    let not_found = Command::new(BLOG)
        .args(["healthcheck", "--url", &url])
        .output()
        .unwrap();
    assert_eq!(not_found.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&not_found.stderr).contains("status 404"));
    let addr = blog.http;
    drop(blog);
    let url = format!("http://{addr}/healthz");
    let dead = Command::new(BLOG)
        .args(["healthcheck", "--url", &url])
        .status()
        .unwrap();
    assert_eq!(dead.code(), Some(1));
}

#[test]
fn access_log_lines_appear_only_when_switched_on() {
    let (_tmp, quiet) = site_server(&[]);
    get(quiet.http, "/posts/first-post/?quiet", "x", "");
    let (_tmp2, loud) = site_server(&["--access-log"]);
    get(loud.http, "/posts/first-post/?loud", "x", "");
    let line = loud.wait_log(
        "/posts/first-post/?loud",
        std::time::Duration::from_secs(10),
    );
    assert!(line.contains(" 200 "), "{line}");
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(!quiet.log().contains("/posts/first-post/?quiet"));
}

#[test]
fn metrics_count_requests_and_report_certificate_expiry() {
    let (_tmp, blog) = site_server(&["--metrics", "127.0.0.1:0"]);
    let line = blog.wait_log("metrics on http://", std::time::Duration::from_secs(10));
    let addr: std::net::SocketAddr = line
        .split("metrics on http://")
        .nth(1)
        .unwrap()
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    get(blog.http, "/", "x", "");
    get(blog.http, "/nope", "x", "");
    let text = get(addr, "/metrics", "x", "");
    assert!(
        text.contains("blog_requests_total{status=\"200\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("blog_requests_total{status=\"404\"} 1"),
        "{text}"
    );
    let expiry = text
        .lines()
        .find(|l| l.starts_with("blog_certificate_expiry_seconds "))
        .unwrap();
    let secs: i64 = expiry.rsplit(' ').next().unwrap().parse().unwrap();
    assert!(secs > 0, "{expiry}");
    assert!(text.contains("blog_open_connections"));
}

#[test]
fn environment_alone_configures_a_dual_stack_listener_for_ipv4_and_ipv6() {
    let tmp = tempfile::tempdir().unwrap();
    let site = write_site(tmp.path());
    let blog = Blog::spawn(
        Command::new(BLOG)
            .env("BLOG_SITE", &site)
            .env("BLOG_LISTEN", "::")
            .env("BLOG_HTTP_PORT", "0")
            .env("BLOG_HTTPS_PORT", "0")
            .env("BLOG_HTTP_SERVES_SITE", "1")
            .env("BLOG_DOMAIN", "")
            .env("BLOG_ACCESS_LOG", "true"),
    );
    assert!(
        blog.http.ip().is_unspecified() && blog.http.is_ipv6(),
        "{}",
        blog.http
    );
    let port = blog.http.port();
    for client in [format!("127.0.0.1:{port}"), format!("[::1]:{port}")] {
        let answer = get(client.parse().unwrap(), "/posts/first-post/", "x", "");
        assert_eq!(status(&answer), 200, "{client}");
    }
    blog.wait_log("/posts/first-post/", std::time::Duration::from_secs(10));
}

#[test]
fn a_broken_site_is_refused_naming_the_file_and_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let site = write_site(tmp.path());
    let broken = site.join("posts/2025-05-05-broken.md");
    std::fs::write(&broken, "---\ntitle: no date here\n---\nbody\n").unwrap();
    let out = Command::new(BLOG)
        .args([
            "--site",
            site.to_str().unwrap(),
            "--http-port",
            "0",
            "--https-port",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2025-05-05-broken.md") && err.contains("no date"),
        "{err}"
    );
    assert!(
        err.contains("date: YYYY-MM-DD"),
        "says what a post looks like: {err}"
    );

    let out = Command::new(BLOG)
        .args(["paths", "--site", tmp.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("has no posts/ directory"));
}
