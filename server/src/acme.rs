//! What the port-80 listener does besides serving the site: ACME http-01
//! challenge tokens from the webroot certbot writes to, and 301s to HTTPS
//! for the configured domains only (any other Host gets 400).

use std::borrow::Cow;
use std::path::PathBuf;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode, Uri};
use http_body_util::Full;

use crate::response::{plain, redirect, Body};

/// The path prefix of ACME http-01 challenges.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

/// The HTTP listener's answers for challenges and redirects.
#[derive(Debug, Clone)]
pub struct Acme {
    /// The directory certbot's `--webroot -w` points at.
    pub webroot: Option<PathBuf>,
    /// Domains redirected to HTTPS, lowercase.
    pub domains: Vec<String>,
    /// The HTTPS port redirects point at.
    pub https_port: u16,
}

impl Acme {
    /// Serves `WEBROOT/.well-known/acme-challenge/<token>` when the token
    /// uses only the ACME alphabet (base64url) and the file exists.
    pub fn challenge(&self, token: &str) -> Response<Body> {
        if !is_token(token) {
            return plain(StatusCode::BAD_REQUEST, "not an ACME token\n");
        }
        let Some(webroot) = &self.webroot else {
            return plain(StatusCode::NOT_FOUND, "no --acme-webroot configured\n");
        };
        let path = webroot.join(".well-known/acme-challenge").join(token);
        // A token is read once per validation, a few times a quarter: a
        // blocking read of a tiny file is fine here.
        match std::fs::read(&path) {
            Ok(body) => {
                let mut resp = Response::new(Full::new(Bytes::from(body)));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                );
                resp
            }
            Err(e) => {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::error!("cannot read ACME token {}: {e}", path.display());
                }
                plain(StatusCode::NOT_FOUND, "no such ACME token\n")
            }
        }
    }

    /// 301 to `https://<host>[:port]<path>` when the request's host is one
    /// of the domains; 400 otherwise, so the server never redirects a
    /// visitor to a name it does not serve.
    pub fn redirect(&self, uri: &Uri, headers: &HeaderMap) -> Response<Body> {
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| uri.authority().map(|a| a.as_str()));
        let Some(name) = host.map(host_name) else {
            return plain(StatusCode::BAD_REQUEST, "a Host header is required\n");
        };
        let Some(domain) = self.domains.iter().find(|d| d.eq_ignore_ascii_case(name)) else {
            return plain(StatusCode::BAD_REQUEST, "unknown host\n");
        };
        let port = if self.https_port == 443 {
            String::new()
        } else {
            format!(":{}", self.https_port)
        };
        let target = format!("https://{domain}{port}{}", uri.path());
        redirect(
            StatusCode::MOVED_PERMANENTLY,
            Cow::Owned(target),
            uri.query(),
        )
    }
}

/// True for a non-empty base64url string (the ACME token alphabet).
pub fn is_token(token: &str) -> bool {
    !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The name part of a Host value: without the port, without IPv6 brackets.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
    .trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acme() -> Acme {
        Acme {
            webroot: None,
            domains: vec!["blog.test".into()],
            https_port: 8443,
        }
    }

    fn with_host(host: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static(host));
        h
    }

    #[test]
    fn known_host_is_redirected_with_port_path_and_query() {
        let resp = acme().redirect(&"/a/b?c=d".parse().unwrap(), &with_host("Blog.Test:80"));
        assert_eq!(resp.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(resp.headers()["location"], "https://blog.test:8443/a/b?c=d");
    }

    #[test]
    fn unknown_host_is_refused() {
        let resp = acme().redirect(&"/".parse().unwrap(), &with_host("evil.example"));
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = acme().redirect(&"/".parse().unwrap(), &HeaderMap::new());
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn token_alphabet_is_base64url() {
        assert!(is_token("aB3_-x"));
        assert!(!is_token("../x") && !is_token("a.b") && !is_token("") && !is_token("a%2e"));
    }

    #[test]
    fn host_name_strips_port_and_brackets() {
        assert_eq!(host_name("[::1]:80"), "::1");
        assert_eq!(host_name("blog.test."), "blog.test");
        assert_eq!(host_name("blog.test:8080"), "blog.test");
    }
}
