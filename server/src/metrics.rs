//! Prometheus text metrics: requests by status, bytes sent, open
//! connections, TLS handshakes, certificate expiry and reloads, counted only when
//! metrics are switched on, and the small listener that exposes them.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The counters. Shared by every connection.
#[derive(Debug)]
pub struct Metrics {
    by_status: Box<[AtomicU64]>,
    bytes: AtomicU64,
    open: AtomicI64,
    handshakes: AtomicU64,
    handshake_failures: AtomicU64,
    cert_not_after: AtomicI64,
    reloads_ok: AtomicU64,
    reloads_failed: AtomicU64,
    reload_failing: AtomicI64,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            by_status: (0..600).map(|_| AtomicU64::new(0)).collect(),
            bytes: AtomicU64::new(0),
            open: AtomicI64::new(0),
            handshakes: AtomicU64::new(0),
            handshake_failures: AtomicU64::new(0),
            cert_not_after: AtomicI64::new(0),
            reloads_ok: AtomicU64::new(0),
            reloads_failed: AtomicU64::new(0),
            reload_failing: AtomicI64::new(0),
        }
    }
}

impl Metrics {
    /// Counts one response with `status` and `bytes` of body.
    pub fn request(&self, status: StatusCode, bytes: u64) {
        if let Some(counter) = self.by_status.get(status.as_u16() as usize) {
            counter.fetch_add(1, Relaxed);
        }
        self.bytes.fetch_add(bytes, Relaxed);
    }

    /// A connection was accepted.
    pub fn open(&self) {
        self.open.fetch_add(1, Relaxed);
    }

    /// A connection was closed.
    pub fn close(&self) {
        self.open.fetch_sub(1, Relaxed);
    }

    /// A TLS handshake finished, well or not.
    pub fn handshake(&self, ok: bool) {
        let counter = if ok {
            &self.handshakes
        } else {
            &self.handshake_failures
        };
        counter.fetch_add(1, Relaxed);
    }

    /// A certificate reload was tried; `ok` says whether its pair is now
    /// served. A failure stays visible (`blog_certificate_reload_failing
    /// 1`) until a reload succeeds.
    pub fn reload(&self, ok: bool) {
        let counter = if ok {
            &self.reloads_ok
        } else {
            &self.reloads_failed
        };
        counter.fetch_add(1, Relaxed);
        self.reload_failing.store(i64::from(!ok), Relaxed);
    }

    /// The certificate now served expires at `not_after` (Unix seconds).
    pub fn set_cert_not_after(&self, not_after: i64) {
        self.cert_not_after.store(not_after, Relaxed);
    }

    /// The Prometheus text exposition of every counter.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(1024);
        out.push_str("# HELP blog_requests_total Responses sent, by HTTP status.\n");
        out.push_str("# TYPE blog_requests_total counter\n");
        for (status, counter) in self.by_status.iter().enumerate() {
            let n = counter.load(Relaxed);
            if n > 0 {
                let _ = writeln!(out, "blog_requests_total{{status=\"{status}\"}} {n}");
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let not_after = self.cert_not_after.load(Relaxed);
        let expiry = if not_after == 0 { 0 } else { not_after - now };
        let _ = write!(
            out,
            "# HELP blog_response_body_bytes_total Response body bytes sent.\n\
             # TYPE blog_response_body_bytes_total counter\n\
             blog_response_body_bytes_total {}\n\
             # HELP blog_open_connections Connections open now.\n\
             # TYPE blog_open_connections gauge\n\
             blog_open_connections {}\n\
             # HELP blog_tls_handshakes_total TLS handshakes, by result.\n\
             # TYPE blog_tls_handshakes_total counter\n\
             blog_tls_handshakes_total{{result=\"ok\"}} {}\n\
             blog_tls_handshakes_total{{result=\"failed\"}} {}\n\
             # HELP blog_certificate_expiry_seconds Seconds until the served certificate expires.\n\
             # TYPE blog_certificate_expiry_seconds gauge\n\
             blog_certificate_expiry_seconds {expiry}\n\
             # HELP blog_certificate_reloads_total Certificate reloads (SIGHUP or changed files), by result.\n\
             # TYPE blog_certificate_reloads_total counter\n\
             blog_certificate_reloads_total{{result=\"ok\"}} {}\n\
             blog_certificate_reloads_total{{result=\"failed\"}} {}\n\
             # HELP blog_certificate_reload_failing 1 while the last reload failed and the previous certificate is still served.\n\
             # TYPE blog_certificate_reload_failing gauge\n\
             blog_certificate_reload_failing {}\n",
            self.bytes.load(Relaxed),
            self.open.load(Relaxed),
            self.handshakes.load(Relaxed),
            self.handshake_failures.load(Relaxed),
            self.reloads_ok.load(Relaxed),
            self.reloads_failed.load(Relaxed),
            self.reload_failing.load(Relaxed),
        );
        out
    }
}

/// Answers every request on `listener` with the metrics until `stop`
/// turns true.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            _ = crate::listen::stopped(&mut stop) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("metrics listener: accept failed: {e}");
                    continue;
                }
            },
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = service_fn(move |_req| {
                let mut resp = Response::new(Full::new(Bytes::from(metrics.render())));
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                std::future::ready(Ok::<_, std::convert::Infallible>(resp))
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service);
            if let Err(e) = conn.await {
                tracing::debug!("metrics connection: {e}");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reload_failure_is_exposed_until_a_reload_succeeds() {
        let m = Metrics::default();
        assert!(m.render().contains("blog_certificate_reload_failing 0\n"));
        m.reload(false);
        let text = m.render();
        assert!(
            text.contains("blog_certificate_reload_failing 1\n"),
            "{text}"
        );
        assert!(text.contains("blog_certificate_reloads_total{result=\"failed\"} 1\n"));
        m.reload(true);
        let text = m.render();
        assert!(
            text.contains("blog_certificate_reload_failing 0\n"),
            "{text}"
        );
        assert!(text.contains("blog_certificate_reloads_total{result=\"ok\"} 1\n"));
    }

    #[test]
    fn render_lists_statuses_seen_and_gauges() {
        let m = Metrics::default();
        m.request(StatusCode::OK, 100);
        m.request(StatusCode::NOT_FOUND, 5);
        m.open();
        let text = m.render();
        assert!(
            text.contains("blog_requests_total{status=\"200\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("blog_response_body_bytes_total 105\n"));
        assert!(text.contains("blog_open_connections 1\n"));
        assert!(!text.contains("status=\"500\""));
    }
}
