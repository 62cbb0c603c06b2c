//! Running the server: log who runs it, load the site and certificate,
//! bind every listener, serve until SIGTERM or SIGINT, then stop
//! gracefully within the grace period.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio_rustls::TlsAcceptor;

use crate::acme::Acme;
use crate::config::{CertSource, Settings};
use crate::identity::Identity;
use crate::listen::{self, Connections, ListenError};
use crate::memory;
use crate::metrics::{self, Metrics};
use crate::response::Routes;
use crate::service::{App, Scheme};
use crate::site::{Site, SiteError};
use crate::tls::{self, CertStore, TlsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The site did not load.
    #[error(transparent)]
    Site(#[from] SiteError),
    /// The certificate did not load.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A listener could not be opened.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
}

/// `configured`, lowered to what the cgroup memory limit affords, and
/// said when it was.
fn connection_cap(configured: usize) -> usize {
    let limit = memory::cgroup_limit();
    let cap = memory::connection_cap(configured, limit);
    if let (Some(limit), true) = (limit, cap < configured) {
        tracing::info!(
            "memory limit {} MiB: at most {cap} connections at once instead of {configured} \
             ({} KiB each, {} MiB kept for the rest); at the cap the oldest connection closes \
             after its request to make room",
            limit >> 20,
            memory::CONNECTION_BUDGET >> 10,
            memory::RESERVE >> 20,
        );
    }
    cap
}

/// Serves until SIGTERM or SIGINT, then lets requests in flight finish
/// for up to the grace period. Returns once stopped.
pub async fn serve(settings: Settings) -> Result<(), ServeError> {
    log_identity();
    listen::raise_fd_limit();
    let mut term = signal(SignalKind::terminate()).map_err(ServeError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(ServeError::Signal)?;
    let hup = signal(SignalKind::hangup()).map_err(ServeError::Signal)?;

    let metrics = settings.metrics.map(|_| Arc::new(Metrics::default()));
    let store = Arc::new(CertStore::load(settings.cert.clone(), metrics.clone())?);
    let cert = store.current();
    match &settings.cert {
        CertSource::Letsencrypt { fullchain, .. } => {
            tracing::info!("certificate from {}: {cert}", fullchain.display())
        }
        CertSource::SelfSigned(_) => tracing::info!("self-signed certificate: {cert}"),
    }

    // Bind everything before the slow part, so a refused port fails fast.
    let https = bind_all(&settings.https)?;
    let http = bind_all(&settings.http)?;
    let metrics_listener = settings.metrics.map(listen::bind).transpose()?;
    let https_port = https.first().map_or(443, |(_, addr)| addr.port());

    let site = Site::load(settings.site.as_deref())?;
    let base_url = base_url(&settings.domains, https_port);
    let routes = Routes::from_site(&site, &base_url);
    tracing::info!(
        "site {}: {} posts, {} pages and assets, {} KiB in memory with compressed variants",
        settings
            .site
            .as_ref()
            .map_or("<embedded sample>".into(), |p| p.display().to_string()),
        site.posts.len(),
        routes.len(),
        routes.memory_bytes() / 1024,
    );

    if let Some(webroot) = settings.acme_webroot.as_ref().filter(|w| !w.is_dir()) {
        tracing::warn!(
            "--acme-webroot {} is not a directory (yet): ACME challenges get 404 until \
             certbot --webroot -w {0} creates .well-known/acme-challenge/ in it",
            webroot.display()
        );
    }
    let app = Arc::new(App {
        routes,
        acme: Acme {
            webroot: settings.acme_webroot.clone(),
            domains: settings.domains.clone(),
            https_port,
        },
        http_role: settings.http_role,
        metrics: metrics.clone(),
        access_log: settings.access_log,
    });
    let max_connections = connection_cap(settings.max_connections);
    let (stop_tx, stop) = watch::channel(false);
    let (alive, all_closed) = mpsc::channel::<()>(1);
    let conns = Arc::new(Connections {
        app,
        builder: Connections::builder(settings.header_timeout),
        limit: Arc::new(Semaphore::new(max_connections)),
        shed: Notify::new(),
        stop: stop.clone(),
        alive,
        handshake_timeout: settings.handshake_timeout,
        idle_timeout: settings.idle_timeout,
    });

    let acceptor = TlsAcceptor::from(tls::server_config(store.clone())?);
    tokio::spawn(store.watch(hup, settings.cert_check_interval, stop.clone()));
    spawn_listeners(https, http, acceptor, &conns);
    if let (Some(listener), Some(m)) = (metrics_listener, metrics) {
        let addr = listener.local_addr().ok();
        tokio::spawn(metrics::serve(listener, m, stop.clone()));
        if let Some(addr) = addr {
            tracing::info!("metrics on http://{addr}/metrics");
        }
    }
    drop(conns);

    stop_gracefully(
        &mut term,
        &mut int,
        stop_tx,
        all_closed,
        settings.grace_period,
    )
    .await;
    Ok(())
}

fn log_identity() {
    let who = Identity::current();
    tracing::info!("running as {who}");
    if who.is_root() {
        tracing::warn!(
            "running as uid 0, which is never needed: run as a user with read access to \
             the certificate (a group on live/ and archive/) and give the binary \
             cap_net_bind_service for ports below 1024"
        );
    }
}

fn spawn_listeners(
    https: Vec<(TcpListener, SocketAddr)>,
    http: Vec<(TcpListener, SocketAddr)>,
    acceptor: TlsAcceptor,
    conns: &Arc<Connections>,
) {
    let tls = https
        .into_iter()
        .map(|(l, a)| (l, a, Scheme::Https, Some(acceptor.clone())));
    let plain = http.into_iter().map(|(l, a)| (l, a, Scheme::Http, None));
    for (listener, addr, scheme, tls) in tls.chain(plain) {
        tokio::spawn(listen::accept_loop(listener, scheme, tls, conns.clone()));
        tracing::info!("listening on {}://{addr}", scheme.as_str());
        if addr.is_ipv6() && addr.ip().is_unspecified() {
            tracing::info!("{addr} is dual-stack: it accepts IPv4 clients too");
        }
    }
}

/// Waits for SIGTERM or SIGINT, stops accepting, and gives connections up
/// to `grace` to finish (idle ones close at once).
async fn stop_gracefully(
    term: &mut Signal,
    int: &mut Signal,
    stop: watch::Sender<bool>,
    mut all_closed: mpsc::Receiver<()>,
    grace: Duration,
) {
    let why = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!(
        "{why}: no longer accepting; letting requests in flight finish (up to {} s)",
        grace.as_secs()
    );
    let _ = stop.send(true);
    match tokio::time::timeout(grace, all_closed.recv()).await {
        Ok(_) => tracing::info!("all connections closed; exiting"),
        Err(_) => tracing::warn!(
            "grace period of {} s over with connections still open; closing them",
            grace.as_secs()
        ),
    }
}

fn bind_all(addrs: &[SocketAddr]) -> Result<Vec<(TcpListener, SocketAddr)>, ListenError> {
    let mut bound = Vec::with_capacity(addrs.len());
    for addr in addrs {
        let listener = match listen::bind(*addr) {
            Ok(listener) => listener,
            // A host without IPv6 still runs the demo (which adds ::1) ...
            Err(e) if no_ipv6(&e) && addr.ip().is_loopback() && addrs.len() > 1 => {
                tracing::warn!("skipping {addr}: {e}");
                continue;
            }
            // ... and the production default [::], on IPv4 alone.
            Err(e) if no_ipv6(&e) && addr.ip() == Ipv6Addr::UNSPECIFIED => {
                let v4 = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), addr.port());
                tracing::warn!("no IPv6 on this host ({e}); listening on {v4} instead");
                listen::bind(v4)?
            }
            Err(e) => return Err(e),
        };
        let local = listener.local_addr().unwrap_or(*addr);
        bound.push((listener, local));
    }
    Ok(bound)
}

/// True for the errors of binding an IPv6 address on a host without IPv6.
fn no_ipv6(err: &ListenError) -> bool {
    let ListenError::Bind { addr, source, .. } = err;
    let errno = source.raw_os_error();
    addr.is_ipv6()
        && (errno == Some(nix::libc::EAFNOSUPPORT) || errno == Some(nix::libc::EADDRNOTAVAIL))
}

/// `https://first-domain[:port]`, or localhost when no domain is set.
fn base_url(domains: &[String], https_port: u16) -> String {
    let host = domains.first().map_or("localhost", String::as_str);
    match https_port {
        443 => format!("https://{host}"),
        port => format!("https://{host}:{port}"),
    }
}
