//! The in-memory routes: every page held as complete responses (identity,
//! gzip and brotli bodies with precomputed headers), looked up by path,
//! with conditional requests and the choice of encoding per request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io::Write as _;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode, Uri};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use crate::render::{self, CacheClass, Page, NOT_FOUND_PATH};
use crate::site::Site;

/// The body type of every response the server builds.
pub type Body = Full<Bytes>;

/// The path of the health endpoint.
pub const HEALTHZ_PATH: &str = "/healthz";

const HSTS: HeaderValue = HeaderValue::from_static("max-age=31536000");
const ALLOW: HeaderValue = HeaderValue::from_static("GET, HEAD");

/// All responses of a site, ready to send.
#[derive(Debug)]
pub struct Routes {
    map: HashMap<Box<str>, Entry, BuildHasherDefault<Fnv>>,
    not_found: Entry,
}

/// One resource: its encodings and what conditional requests compare.
#[derive(Debug)]
struct Entry {
    status: StatusCode,
    identity: Variant,
    gzip: Option<Variant>,
    brotli: Option<Variant>,
    /// Seconds since the epoch, as Last-Modified says.
    modified: u64,
}

/// One encoding of a resource, with its complete header maps. Responses
/// clone a map and the body; both hold only `'static` data (see [`leak`]),
/// so a clone is copies, without shared reference counts bouncing between
/// worker threads.
#[derive(Debug)]
struct Variant {
    body: Bytes,
    etag: HeaderValue,
    /// Headers of a 200/404, indexed by `secure as usize` (HSTS or not).
    full: [HeaderMap; 2],
    /// Headers of a 304 (no Content-Length or Content-Type), same index.
    not_modified: [HeaderMap; 2],
}

impl Routes {
    /// Renders `site` and precomputes every response; `base_url` makes
    /// the feed's links absolute.
    pub fn from_site(site: &Site, base_url: &str) -> Routes {
        Routes::from_pages(render::render(site, base_url))
    }

    /// Precomputes responses for rendered pages; the page at
    /// [`NOT_FOUND_PATH`] becomes the 404 page (a plain one if absent).
    pub fn from_pages(pages: Vec<Page>) -> Routes {
        let mut map = HashMap::with_capacity_and_hasher(pages.len() + 1, Default::default());
        let mut not_found = None;
        for page in pages {
            if page.path == NOT_FOUND_PATH {
                not_found = Some(Entry::new(StatusCode::NOT_FOUND, &page));
            } else {
                map.insert(
                    page.path.clone().into_boxed_str(),
                    Entry::new(StatusCode::OK, &page),
                );
            }
        }
        let health = Page {
            path: HEALTHZ_PATH.into(),
            content_type: "text/plain; charset=utf-8",
            body: b"ok\n".to_vec(),
            last_modified: SystemTime::UNIX_EPOCH,
            cache: CacheClass::Never,
        };
        map.insert(HEALTHZ_PATH.into(), Entry::new(StatusCode::OK, &health));
        let not_found = not_found.unwrap_or_else(|| {
            let page = Page {
                path: NOT_FOUND_PATH.into(),
                content_type: "text/plain; charset=utf-8",
                body: b"not found\n".to_vec(),
                last_modified: SystemTime::UNIX_EPOCH,
                cache: CacheClass::Page,
            };
            Entry::new(StatusCode::NOT_FOUND, &page)
        });
        Routes { map, not_found }
    }

    /// How many resources are held, not counting `/healthz` and the 404 page.
    pub fn len(&self) -> usize {
        self.map.len() - 1
    }

    /// True when the site has no page at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total bytes held in memory across all encodings.
    pub fn memory_bytes(&self) -> usize {
        self.map
            .values()
            .chain(std::iter::once(&self.not_found))
            .map(Entry::bytes)
            .sum()
    }

    /// Answers a request from memory. `secure` adds HSTS (HTTPS only).
    ///
    /// # Examples
    ///
    /// ```
    /// use http::{HeaderMap, Method, StatusCode};
    /// let routes = server::Routes::from_pages(Vec::new());
    /// let uri = "/healthz".parse().unwrap();
    /// let resp = routes.respond(&Method::GET, &uri, &HeaderMap::new(), false);
    /// assert_eq!(resp.status(), StatusCode::OK);
    /// ```
    pub fn respond(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
        secure: bool,
    ) -> Response<Body> {
        let head = match *method {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut resp = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
                resp.headers_mut().insert(header::ALLOW, ALLOW);
                return resp;
            }
        };
        let Some(path) = decode_path(uri.path()).filter(|p| p.starts_with('/')) else {
            return plain(StatusCode::BAD_REQUEST, "malformed request target\n");
        };

        let Some(entry) = self.map.get(path.as_ref()) else {
            return match self.canonical(&path) {
                Some(canonical) => redirect(StatusCode::PERMANENT_REDIRECT, canonical, uri.query()),
                None => self.not_found.send(headers, head, secure),
            };
        };
        entry.send(headers, head, secure)
    }

    /// The other trailing-slash form of `path`, when that one exists.
    fn canonical<'a>(&self, path: &'a str) -> Option<Cow<'a, str>> {
        let other: Cow<str> = match path.strip_suffix('/') {
            Some(trimmed) if !trimmed.is_empty() => Cow::Borrowed(trimmed),
            Some(_) => return None,
            None => Cow::Owned(format!("{path}/")),
        };
        self.map.contains_key(other.as_ref()).then_some(other)
    }
}

impl Entry {
    fn new(status: StatusCode, page: &Page) -> Entry {
        let modified = page
            .last_modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs();
        let cache = HeaderValue::from_static(match page.cache {
            CacheClass::Page => "public, max-age=300",
            CacheClass::Asset => "public, max-age=86400",
            CacheClass::Never => "no-store",
        });
        let tag = hex(&Sha256::digest(&page.body)[..12]);
        let compressible = is_compressible(page.content_type);
        let smaller = |body: Vec<u8>| (body.len() < page.body.len()).then_some(body);
        let gz = compressible.then(|| smaller(gzip(&page.body))).flatten();
        let br = compressible.then(|| smaller(brotli(&page.body))).flatten();
        let vary = gz.is_some() || br.is_some();
        let shared = Shared {
            content_type: HeaderValue::from_static(page.content_type),
            last_modified: leak(httpdate::fmt_http_date(
                SystemTime::UNIX_EPOCH + Duration::from_secs(modified),
            )),
            cache,
            vary,
        };
        Entry {
            status,
            identity: Variant::new(page.body.clone(), format!("\"{tag}\""), None, &shared),
            gzip: gz.map(|b| Variant::new(b, format!("\"{tag}-gz\""), Some("gzip"), &shared)),
            brotli: br.map(|b| Variant::new(b, format!("\"{tag}-br\""), Some("br"), &shared)),
            modified,
        }
    }

    fn variants(&self) -> impl Iterator<Item = &Variant> {
        std::iter::once(&self.identity)
            .chain(self.gzip.as_ref())
            .chain(self.brotli.as_ref())
    }

    fn bytes(&self) -> usize {
        self.variants().map(|v| v.body.len()).sum()
    }

    fn send(&self, headers: &HeaderMap, head: bool, secure: bool) -> Response<Body> {
        let variant = match choose_encoding(headers.get(header::ACCEPT_ENCODING)) {
            (true, _) if self.brotli.is_some() => self.brotli.as_ref(),
            (_, true) if self.gzip.is_some() => self.gzip.as_ref(),
            _ => None,
        }
        .unwrap_or(&self.identity);

        if self.status == StatusCode::OK && self.not_modified(headers) {
            let headers = variant.not_modified[secure as usize].clone();
            return build(StatusCode::NOT_MODIFIED, headers, Bytes::new());
        }
        let body = if head {
            Bytes::new()
        } else {
            variant.body.clone()
        };
        build(self.status, variant.full[secure as usize].clone(), body)
    }

    /// RFC 9110 §13.2.2: If-None-Match decides when present, else
    /// If-Modified-Since.
    fn not_modified(&self, headers: &HeaderMap) -> bool {
        if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
            return inm.as_bytes().split(|b| *b == b',').any(|tag| {
                let tag = tag.trim_ascii();
                let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
                tag == b"*" || self.variants().any(|v| v.etag.as_bytes() == tag)
            });
        }
        let Some(since) = headers.get(header::IF_MODIFIED_SINCE) else {
            return false;
        };
        let Some(since) = since
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
        else {
            return false;
        };
        let since = since
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or(Duration::ZERO);
        self.modified <= since.as_secs()
    }
}

/// The headers every variant of one entry shares.
struct Shared {
    content_type: HeaderValue,
    last_modified: HeaderValue,
    cache: HeaderValue,
    vary: bool,
}

impl Variant {
    fn new(body: Vec<u8>, etag: String, coding: Option<&'static str>, shared: &Shared) -> Variant {
        let etag = leak(etag);
        let mut not_modified = HeaderMap::with_capacity(8);
        not_modified.insert(header::ETAG, etag.clone());
        not_modified.insert(header::LAST_MODIFIED, shared.last_modified.clone());
        not_modified.insert(header::CACHE_CONTROL, shared.cache.clone());
        not_modified.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        if shared.vary {
            not_modified.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
        }
        let mut full = not_modified.clone();
        full.insert(header::CONTENT_TYPE, shared.content_type.clone());
        full.insert(header::CONTENT_LENGTH, leak(body.len().to_string()));
        if let Some(coding) = coding {
            full.insert(header::CONTENT_ENCODING, HeaderValue::from_static(coding));
        }
        let with_hsts = |map: &HeaderMap| {
            let mut map = map.clone();
            map.insert(header::STRICT_TRANSPORT_SECURITY, HSTS);
            map
        };
        Variant {
            body: Bytes::from_static(Box::leak(body.into_boxed_slice())),
            etag,
            full: [full.clone(), with_hsts(&full)],
            not_modified: [not_modified.clone(), with_hsts(&not_modified)],
        }
    }
}

/// A header value that lives as long as the process. Routes are built once
/// at start and kept until exit, so leaking their bytes costs nothing and
/// makes every clone on the request path a plain copy.
fn leak(value: String) -> HeaderValue {
    HeaderValue::from_static(Box::leak(value.into_boxed_str()))
}

fn build(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// A short text/plain response, for errors and refusals.
pub fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *resp.status_mut() = status;
    let map = resp.headers_mut();
    map.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    map.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    map.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// A redirect to `location` (a path or an absolute URL) plus `query`.
pub fn redirect(status: StatusCode, location: Cow<'_, str>, query: Option<&str>) -> Response<Body> {
    let location = match query {
        Some(q) => format!("{location}?{}", escape_non_ascii(q)),
        None => location.into_owned(),
    };
    let mut resp = plain(status, "moved\n");
    match HeaderValue::from_str(&location) {
        Ok(value) => {
            resp.headers_mut().insert(header::LOCATION, value);
        }
        Err(_) => return plain(StatusCode::BAD_REQUEST, "malformed request target\n"),
    }
    resp
}

/// Percent-encodes every byte outside printable ASCII, so a query echoed
/// into Location is plain ASCII whatever bytes the request carried.
fn escape_non_ascii(text: &str) -> Cow<'_, str> {
    if text.bytes().all(|b| b.is_ascii_graphic()) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() * 3);
    for b in text.bytes() {
        if b.is_ascii_graphic() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    Cow::Owned(out)
}

/// Which of brotli and gzip the Accept-Encoding value allows, as
/// `(brotli, gzip)`; brotli wins ties, a higher q wins otherwise.
pub fn choose_encoding(accept: Option<&HeaderValue>) -> (bool, bool) {
    let Some(accept) = accept else {
        return (false, false);
    };
    let (mut br, mut gz, mut star) = (None, None, None);
    for item in accept.as_bytes().split(|b| *b == b',') {
        let mut parts = item.split(|b| *b == b';');
        let name = parts.next().unwrap_or_default().trim_ascii();
        let q = parts
            .find_map(|p| p.trim_ascii().strip_prefix(b"q="))
            .and_then(|q| std::str::from_utf8(q).ok()?.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        if name.eq_ignore_ascii_case(b"br") {
            br = Some(q);
        } else if name.eq_ignore_ascii_case(b"gzip") || name.eq_ignore_ascii_case(b"x-gzip") {
            gz = Some(q);
        } else if name == b"*" {
            star = Some(q);
        }
    }
    let br = br.or(star).unwrap_or(0.0);
    let gz = gz.or(star).unwrap_or(0.0);
    match (br > 0.0, gz > 0.0) {
        (true, true) if gz > br => (false, true),
        pair => pair,
    }
}

/// Percent-decodes a request path; `None` for a bad escape, invalid UTF-8
/// or a NUL. Paths without `%` are borrowed, not copied.
pub fn decode_path(path: &str) -> Option<Cow<'_, str>> {
    if !path.contains('%') {
        return (!path.contains('\0')).then_some(Cow::Borrowed(path));
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digit = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
            out.push((digit(i + 1)? * 16 + digit(i + 2)?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok().map(Cow::Owned)
}

fn is_compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.contains("xml")
        || content_type.contains("json")
        || content_type.contains("javascript")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

fn brotli(data: &[u8]) -> Vec<u8> {
    // Quality 9 rather than 11: start-up stays quick even in debug builds,
    // for a few percent in size.
    let mut out = Vec::new();
    {
        let mut enc = ::brotli::CompressorWriter::new(&mut out, 4096, 9, 22);
        enc.write_all(data).expect("writing to a Vec cannot fail");
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// FNV-1a: the route keys are short and not attacker-chosen at insert
/// time, so a fast non-keyed hash is enough.
#[derive(Debug, Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(path: &str, body: &str) -> Page {
        Page {
            path: path.into(),
            content_type: "text/html; charset=utf-8",
            body: body.as_bytes().to_vec(),
            last_modified: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            cache: CacheClass::Page,
        }
    }

    fn routes() -> Routes {
        Routes::from_pages(vec![
            page("/", &"hello ".repeat(200)),
            page("/posts/a/", "a"),
        ])
    }

    fn get(
        routes: &Routes,
        path: &str,
        headers: &[(&'static str, &'static str)],
    ) -> Response<Body> {
        let mut map = HeaderMap::new();
        for (k, v) in headers {
            map.insert(*k, HeaderValue::from_static(v));
        }
        routes.respond(&Method::GET, &path.parse().unwrap(), &map, true)
    }

    #[test]
    fn redirect_percent_encodes_non_ascii_query_bytes() {
        // Found by the request_target fuzz target: the query was echoed
        // into Location byte for byte.
        let uri = Uri::try_from(&b"/posts/a?q=\xdd\x9e"[..]).unwrap();
        let resp = routes().respond(&Method::GET, &uri, &HeaderMap::new(), true);
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(resp.headers()[header::LOCATION], "/posts/a/?q=%DD%9E");
    }

    #[test]
    fn accept_encoding_prefers_brotli_and_honours_q_zero() {
        let v = |s: &'static str| choose_encoding(Some(&HeaderValue::from_static(s)));
        assert_eq!(v("gzip, deflate, br"), (true, true));
        assert_eq!(v("br;q=0, gzip"), (false, true));
        assert_eq!(v("br;q=0.5, gzip;q=0.9"), (false, true));
        assert_eq!(v("identity"), (false, false));
        assert_eq!(v("*"), (true, true));
        assert_eq!(choose_encoding(None), (false, false));
    }

    #[test]
    fn compressed_variant_only_when_smaller() {
        let r = routes();
        let big = get(&r, "/", &[("accept-encoding", "gzip")]);
        assert_eq!(big.headers()["content-encoding"], "gzip");
        let tiny = get(&r, "/posts/a/", &[("accept-encoding", "gzip, br")]);
        assert!(tiny.headers().get("content-encoding").is_none());
    }

    #[test]
    fn etag_and_date_conditions_give_304() {
        let r = routes();
        let first = get(&r, "/", &[]);
        let etag = first.headers()["etag"].to_str().unwrap().to_string();
        let mut h = HeaderMap::new();
        h.insert("if-none-match", HeaderValue::from_str(&etag).unwrap());
        let again = r.respond(&Method::GET, &"/".parse().unwrap(), &h, false);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let later = get(
            &r,
            "/",
            &[("if-modified-since", "Wed, 01 Jan 2025 00:00:00 GMT")],
        );
        assert_eq!(later.status(), StatusCode::NOT_MODIFIED);
        let earlier = get(
            &r,
            "/",
            &[("if-modified-since", "Wed, 01 Jan 2020 00:00:00 GMT")],
        );
        assert_eq!(earlier.status(), StatusCode::OK);
        let other = get(&r, "/", &[("if-none-match", "\"nope\"")]);
        assert_eq!(other.status(), StatusCode::OK);
    }

    #[test]
    fn trailing_slash_has_one_canonical_form() {
        let r = routes();
        let resp = get(&r, "/posts/a?x=1", &[]);
        assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(resp.headers()["location"], "/posts/a/?x=1");
        assert_eq!(get(&r, "/healthz/", &[]).headers()["location"], "/healthz");
    }

    #[test]
    fn decode_path_rejects_bad_escapes_and_nul() {
        assert_eq!(decode_path("/a%2Fb").unwrap(), "/a/b");
        assert!(decode_path("/a%zz").is_none());
        assert!(decode_path("/a%00").is_none());
        assert!(decode_path("/a%").is_none());
    }

    #[test]
    fn other_methods_get_405_with_allow() {
        let r = routes();
        let resp = r.respond(
            &Method::POST,
            &"/".parse().unwrap(),
            &HeaderMap::new(),
            false,
        );
        assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(resp.headers()["allow"], "GET, HEAD");
    }
}
