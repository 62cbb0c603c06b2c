//! The hyper services behind the listeners: HTTPS serves the site; HTTP
//! serves ACME challenges and `/healthz`, then either the site or
//! redirects. Both count metrics and write the access log when asked.

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::net::SocketAddr;
use std::sync::Arc;

use http::{header, HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Body as _;

use crate::acme::{Acme, CHALLENGE_PREFIX};
use crate::config::HttpRole;
use crate::metrics::Metrics;
use crate::response::{plain, Body, Routes, HEALTHZ_PATH};

/// What every connection shares: the routes and the switches.
#[derive(Debug)]
pub struct App {
    /// The site, in memory.
    pub routes: Routes,
    /// Challenges and redirects for the HTTP listener.
    pub acme: Acme,
    /// What the HTTP listener does with other requests.
    pub http_role: HttpRole,
    /// Counters, when metrics are on.
    pub metrics: Option<Arc<Metrics>>,
    /// Log every request.
    pub access_log: bool,
}

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// The TLS listener.
    Https,
    /// The plain listener.
    Http,
}

impl Scheme {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Https => "https",
            Scheme::Http => "http",
        }
    }
}

/// The service for one connection.
#[derive(Debug, Clone)]
pub struct Handler {
    app: Arc<App>,
    scheme: Scheme,
    peer: SocketAddr,
}

impl Handler {
    /// A service for a connection from `peer` on the `scheme` listener.
    pub fn new(app: Arc<App>, scheme: Scheme, peer: SocketAddr) -> Handler {
        Handler { app, scheme, peer }
    }

    /// Answers one request.
    pub fn handle<B>(&self, req: &Request<B>) -> Response<Body> {
        let app = &*self.app;
        let (method, uri, headers) = (req.method(), req.uri(), req.headers());
        let resp = if !host_is_valid(req) {
            plain(
                StatusCode::BAD_REQUEST,
                "an HTTP/1.1 request needs exactly one Host header\n",
            )
        } else {
            self.route(method, uri, headers)
        };

        if app.metrics.is_some() || app.access_log {
            let bytes = resp.body().size_hint().exact().unwrap_or(0);
            if let Some(metrics) = &app.metrics {
                metrics.request(resp.status(), bytes);
            }
            if app.access_log {
                tracing::info!(
                    target: "blog::access",
                    "{} {} {} {} {:?} {} {} bytes",
                    self.peer,
                    self.scheme.as_str(),
                    method,
                    uri,
                    req.version(),
                    resp.status().as_u16(),
                    bytes,
                );
            }
        }
        resp
    }

    /// Chooses the response by listener and path.
    fn route(&self, method: &Method, uri: &Uri, headers: &HeaderMap) -> Response<Body> {
        let app = &*self.app;
        match self.scheme {
            Scheme::Https => app.routes.respond(method, uri, headers, true),
            Scheme::Http => match uri.path().strip_prefix(CHALLENGE_PREFIX) {
                Some(token) => app.acme.challenge(token),
                None if app.http_role == HttpRole::Site || uri.path() == HEALTHZ_PATH => {
                    app.routes.respond(method, uri, headers, false)
                }
                None => app.acme.redirect(uri, headers),
            },
        }
    }
}

/// RFC 9112 §3.2: an HTTP/1.1 request without a Host header, or with more
/// than one, is answered 400. HTTP/2 carries `:authority` instead and
/// HTTP/1.0 may omit it.
fn host_is_valid<B>(req: &Request<B>) -> bool {
    req.version() != Version::HTTP_11 || req.headers().get_all(header::HOST).iter().count() == 1
}

impl<B> hyper::service::Service<Request<B>> for Handler {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Body>, Infallible>>;

    fn call(&self, req: Request<B>) -> Self::Future {
        ready(Ok(self.handle(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::Acme;

    fn handler() -> Handler {
        let app = App {
            routes: Routes::from_pages(Vec::new()),
            acme: Acme {
                webroot: None,
                domains: Vec::new(),
                https_port: 443,
            },
            http_role: HttpRole::Site,
            metrics: None,
            access_log: false,
        };
        Handler::new(Arc::new(app), Scheme::Https, ([127, 0, 0, 1], 1).into())
    }

    fn status(hosts: &[&str], version: Version) -> StatusCode {
        let mut req = Request::builder().uri("/healthz").version(version);
        for host in hosts {
            req = req.header(header::HOST, *host);
        }
        handler().handle(&req.body(()).unwrap()).status()
    }

    #[test]
    fn http11_request_without_or_with_two_host_headers_is_400() {
        // Found by the reliability scenarios: both were answered 200.
        assert_eq!(status(&[], Version::HTTP_11), StatusCode::BAD_REQUEST);
        assert_eq!(
            status(&["a", "b"], Version::HTTP_11),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status(&["a"], Version::HTTP_11), StatusCode::OK);
        assert_eq!(status(&[], Version::HTTP_10), StatusCode::OK);
        assert_eq!(status(&[], Version::HTTP_2), StatusCode::OK);
    }
}
