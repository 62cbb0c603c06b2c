//! Listeners and connections: dual-stack binding with clear errors, the
//! accept loop with its connection cap, TLS handshake, header and idle
//! timeouts, and the graceful close of every connection on shutdown.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::identity::{self, Identity};
use crate::metrics::Metrics;
use crate::service::{App, Handler, Scheme};

/// Request head size at most; a larger head is answered 431.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Why a listener could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The kernel refused to bind.
    #[error("cannot listen on {addr}: {source}; {advice}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        source: io::Error,
        /// What to do about it.
        advice: String,
    },
}

/// Binds `addr` for a listener. The unspecified IPv6 address `[::]`
/// accepts IPv4 too (IPV6_V6ONLY off); any other IPv6 address is IPv6 only.
pub fn bind(addr: SocketAddr) -> Result<TcpListener, ListenError> {
    let err = |source: io::Error| {
        let who = Identity::current();
        let advice = match source.kind() {
            io::ErrorKind::PermissionDenied => identity::bind_advice(addr.port(), &who),
            io::ErrorKind::AddrInUse => format!(
                "another process holds port {}; stop it or choose another port",
                addr.port()
            ),
            io::ErrorKind::AddrNotAvailable => format!(
                "{} is not an address of this host; check --listen (BLOG_LISTEN)",
                addr.ip()
            ),
            _ => format!("as {who}"),
        };
        ListenError::Bind {
            addr,
            source,
            advice,
        }
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(err)?;
    socket.set_reuse_address(true).map_err(err)?;
    if let SocketAddr::V6(v6) = addr {
        socket.set_only_v6(!v6.ip().is_unspecified()).map_err(err)?;
    }
    socket.set_nonblocking(true).map_err(err)?;
    socket.bind(&addr.into()).map_err(err)?;
    socket.listen(1024).map_err(err)?;
    TcpListener::from_std(socket.into()).map_err(err)
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Raises the soft open-files limit to the hard one, so the connection
/// cap and not the file descriptor limit is what bounds connections.
pub fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::warn!("cannot raise the open files limit from {soft} to {hard}: {e}");
            }
        }
    }
}

/// What every connection task needs besides its socket.
#[derive(Debug)]
pub struct Connections {
    /// The site and switches.
    pub app: Arc<App>,
    /// HTTP/1.1 + HTTP/2 connection settings.
    pub builder: auto::Builder<TokioExecutor>,
    /// Caps concurrent connections; a connection holds a permit.
    pub limit: Arc<Semaphore>,
    /// Rung when a connection waits for a permit: the longest-waiting
    /// connection being served finishes its request in flight and closes,
    /// as a kept-alive connection may at any time.
    pub shed: Notify,
    /// Turns true when the server stops.
    pub stop: watch::Receiver<bool>,
    /// Never sent on: it lives as long as any holder of these
    /// `Connections` (every accept loop and connection task), so the
    /// shutdown waits for its receiver to report all of them gone.
    pub alive: mpsc::Sender<()>,
    /// Time to finish a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time without traffic before a connection is closed.
    pub idle_timeout: Duration,
}

impl Connections {
    /// The HTTP/1.1 and HTTP/2 settings: header read timeout, header size
    /// cap, timers.
    pub fn builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .max_buf_size(MAX_HEADER_BYTES)
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_concurrent_streams(256);
        builder
    }

    fn metrics(&self) -> Option<&Metrics> {
        self.app.metrics.as_deref()
    }
}

/// How long a connection accepted just before (or while) the server stops,
/// or asked to make room under the cap, has to send its first request
/// before the graceful close applies to it: without it, a client whose SYN
/// the kernel completed a moment before would have its request cut off
/// unread.
const FRESH_CONNECTION_GRACE: Duration = Duration::from_secs(1);

/// Accepts connections on `listener` until the stop signal, serving at
/// most as many at once as the semaphore allows. A listener waits for a
/// permit only after it has accepted, so an idle listener holds none and
/// the cap is shared fairly between listeners. At the cap, the oldest
/// connection is asked to close after its request in flight (idle
/// keep-alive connections make room for new visitors, as nginx does when
/// it runs out of connections); meanwhile the next clients wait in the
/// kernel's backlog.
/// On stop, the connections already queued in the kernel are accepted and
/// served before the listener closes, so none is reset unread.
pub async fn accept_loop(
    listener: TcpListener,
    scheme: Scheme,
    tls: Option<TlsAcceptor>,
    conns: Arc<Connections>,
) {
    let mut stop = conns.stop.clone();
    loop {
        let (stream, peer) = tokio::select! {
            _ = crate::listen::stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors or a client gone before
                    // accept: back off briefly instead of spinning.
                    tracing::warn!("accept on {:?} failed: {e}", listener.local_addr().ok());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let permit = match conns.limit.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                conns.shed.notify_one();
                wait_for_permit(&mut stop, &conns).await
            }
        };
        // Without a permit the server is stopping: accepted before the
        // stop, the connection is served like the backlog below.
        let stopping = permit.is_none();
        spawn_connection(stream, peer, permit, scheme, tls.clone(), &conns);
        if stopping {
            break;
        }
    }
    drain_backlog(&listener, scheme, &tls, &conns);
}

/// A permit once one is free, or `None` when the server stops first.
async fn wait_for_permit(
    stop: &mut watch::Receiver<bool>,
    conns: &Connections,
) -> Option<tokio::sync::OwnedSemaphorePermit> {
    tokio::select! {
        _ = crate::listen::stopped(stop) => None,
        permit = conns.limit.clone().acquire_owned() => permit.ok(),
    }
}

/// Accepts whatever the kernel has already queued on `listener`, without
/// waiting, and serves it. What arrives after this returns is refused by
/// the closed socket (a clean RST on SYN), not reset after the handshake.
fn drain_backlog(
    listener: &TcpListener,
    scheme: Scheme,
    tls: &Option<TlsAcceptor>,
    conns: &Arc<Connections>,
) {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    let mut drained = 0usize;
    while let Poll::Ready(Ok((stream, peer))) = listener.poll_accept(&mut cx) {
        // Past the cap the connection is still served: the cap exists for
        // memory, and the backlog holds at most its listen(2) length.
        let permit = conns.limit.clone().try_acquire_owned().ok();
        spawn_connection(stream, peer, permit, scheme, tls.clone(), conns);
        drained += 1;
    }
    if drained > 0 {
        tracing::debug!(
            "accepted {drained} queued connection(s) on {:?} while stopping",
            listener.local_addr().ok()
        );
    }
}

fn spawn_connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    scheme: Scheme,
    tls: Option<TlsAcceptor>,
    conns: &Arc<Connections>,
) {
    let conns = conns.clone();
    tokio::spawn(async move {
        let _permit = permit;
        handle(stream, peer, scheme, tls, &conns).await;
    });
}

/// One connection from accept to close: the TLS handshake if any, then
/// HTTP until the client leaves, the idle timeout, or the stop.
async fn handle(
    stream: TcpStream,
    peer: SocketAddr,
    scheme: Scheme,
    tls: Option<TlsAcceptor>,
    conns: &Connections,
) {
    let accepted_at = Instant::now();
    let _ = stream.set_nodelay(true);
    let _open = OpenConnection::new(conns.metrics());
    let handler = Handler::new(conns.app.clone(), scheme, peer);
    match tls {
        None => serve(stream, handler, accepted_at, conns).await,
        Some(acceptor) => {
            if let Some(tls_stream) = handshake(acceptor, stream, peer, accepted_at, conns).await {
                serve(tls_stream, handler, accepted_at, conns).await;
            }
        }
    }
}

/// Resolves once `cause` has, but not before the connection is
/// `FRESH_CONNECTION_GRACE` old: a client that connected a moment before a
/// stop or a shed still gets its first request answered.
async fn after_grace(cause: impl Future<Output = ()>, accepted_at: Instant) {
    cause.await;
    tokio::time::sleep_until(accepted_at + FRESH_CONNECTION_GRACE).await;
}

async fn handshake(
    acceptor: TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    accepted_at: Instant,
    conns: &Connections,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut stop = conns.stop.clone();
    let result = tokio::select! {
        _ = after_grace(stopped(&mut stop), accepted_at) => return None,
        r = tokio::time::timeout(conns.handshake_timeout, acceptor.accept(stream)) => r,
    };
    let ok = matches!(result, Ok(Ok(_)));
    if let Some(m) = conns.metrics() {
        m.handshake(ok);
    }
    match result {
        Ok(Ok(s)) => Some(s),
        Ok(Err(e)) => {
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake timed out");
            None
        }
    }
}

async fn serve<IO>(io: IO, handler: Handler, accepted_at: Instant, conns: &Connections)
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(IdleGuard::new(io, conns.idle_timeout));
    let conn = conns.builder.serve_connection(io, handler);
    tokio::pin!(conn);
    let mut stop = conns.stop.clone();
    let stop_or_shed = async {
        tokio::select! {
            _ = stopped(&mut stop) => {}
            _ = conns.shed.notified() => {
                tracing::debug!("closing a connection to make room under the connection cap");
            }
        }
    };
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = after_grace(stop_or_shed, accepted_at) => {
            // Finish the request in flight, close when idle.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection closed with an error: {e}");
    }
}

/// Counts a connection open for as long as it lives.
struct OpenConnection<'a>(Option<&'a Metrics>);

impl<'a> OpenConnection<'a> {
    fn new(metrics: Option<&'a Metrics>) -> Self {
        if let Some(m) = metrics {
            m.open();
        }
        OpenConnection(metrics)
    }
}

impl Drop for OpenConnection<'_> {
    fn drop(&mut self) {
        if let Some(m) = self.0 {
            m.close();
        }
    }
}

/// Closes a connection after `period` without a byte read or written.
/// Activity only sets a flag; the timer is re-armed when it fires, so the
/// hot path pays no clock read. A connection is closed after between one
/// and two periods of silence.
struct IdleGuard<T> {
    inner: T,
    timer: Pin<Box<Sleep>>,
    period: Duration,
    active: bool,
}

impl<T> IdleGuard<T> {
    fn new(inner: T, period: Duration) -> Self {
        IdleGuard {
            inner,
            timer: Box::pin(tokio::time::sleep(period)),
            period,
            active: false,
        }
    }

    /// True once a whole period passed without activity.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if !self.active {
                return true;
            }
            self.active = false;
            self.timer.as_mut().reset(Instant::now() + self.period);
        }
    }

    fn timed_out() -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, "connection idle too long")
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleGuard<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                this.active |= buf.filled().len() > before;
                Poll::Ready(Ok(()))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleGuard<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                this.active |= n > 0;
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.active |= n > 0;
                Poll::Ready(Ok(n))
            }
            Poll::Pending if this.expired(cx) => Poll::Ready(Err(Self::timed_out())),
            other => other,
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wildcard_v6_listener_accepts_ipv4() {
        let Ok(listener) = bind("[::]:0".parse().unwrap()) else {
            return; // no IPv6 on this host: nothing to check
        };
        let port = listener.local_addr().unwrap().port();
        let client = TcpStream::connect(("127.0.0.1", port));
        let (accepted, client) = tokio::join!(listener.accept(), client);
        assert!(accepted.is_ok() && client.is_ok());
    }

    #[tokio::test]
    async fn port_in_use_says_so() {
        let first = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let err = bind(first.local_addr().unwrap()).unwrap_err().to_string();
        assert!(err.contains("another process holds port"), "{err}");
    }
}
