//! Fuzzes request-target parsing and path lookup: `decode_path`, the URI
//! parser and `Routes::respond` on the embedded sample site, with the
//! method, one request header and the scheme taken from the input.
//!
//! Input: one flag byte (method, header, HTTPS), the request target, then
//! after the first newline a header value.

#![no_main]

use std::collections::HashSet;
use std::sync::OnceLock;

use http::header::{ACCEPT_ENCODING, IF_MODIFIED_SINCE, IF_NONE_MATCH};
use http::{HeaderMap, HeaderValue, Method, Uri};
use libfuzzer_sys::fuzz_target;
use server::response::{choose_encoding, decode_path};
use server::Routes;

struct Fixture {
    routes: Routes,
    paths: HashSet<String>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let site = server::Site::load(None).expect("the embedded sample site loads");
        let routes = Routes::from_site(&site, "https://localhost");
        let mut paths: HashSet<String> = server::page_paths(None)
            .expect("the embedded sample site lists its pages")
            .into_iter()
            .collect();
        paths.insert(server::response::HEALTHZ_PATH.to_string());
        Fixture { routes, paths }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (target, header) = match rest.iter().position(|b| *b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };

    if let Ok(text) = std::str::from_utf8(target) {
        if let Some(decoded) = decode_path(text) {
            assert!(!decoded.contains('\0'), "NUL survived decoding {text:?}");
            if !text.contains('%') {
                assert_eq!(decoded, text, "a path without escapes must come back as is");
            }
        }
    }

    let Ok(uri) = Uri::try_from(target) else {
        return;
    };
    let method = match flags & 3 {
        0 => Method::GET,
        1 => Method::HEAD,
        2 => Method::POST,
        _ => Method::from_bytes(b"BREW").expect("a token"),
    };
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_bytes(header) {
        let _ = choose_encoding(Some(&value));
        let name = match (flags >> 2) & 3 {
            0 => ACCEPT_ENCODING,
            1 => IF_NONE_MATCH,
            _ => IF_MODIFIED_SINCE,
        };
        headers.insert(name, value);
    }

    let fx = fixture();
    let resp = fx.routes.respond(&method, &uri, &headers, flags & 16 != 0);
    let status = resp.status().as_u16();
    assert!(
        matches!(status, 200 | 304 | 308 | 400 | 404 | 405),
        "unexpected status {status} for {method} {uri}"
    );
    if matches!(status, 200 | 304) {
        let path = decode_path(uri.path()).expect("a served path decodes");
        assert!(fx.paths.contains(path.as_ref()), "{path:?} served but not a page of the site");
    }
    if status == 308 {
        // The query is echoed as sent, so non-ASCII bytes (obs-text) can
        // appear; what matters is that the target stays on this site.
        let location = resp.headers()["location"].as_bytes();
        assert!(
            location.starts_with(b"/") && !location.starts_with(b"//"),
            "redirect for {uri} leaves the site: {:?}",
            String::from_utf8_lossy(location)
        );
    }
});
