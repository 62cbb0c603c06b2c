//! Opening connections: TCP (optional source address, TCP_NODELAY) and
//! TLS on top, timing each phase, and the stream type both HTTP paths use.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::record::ErrorKind;

/// A connection to the target, plain or TLS.
#[derive(Debug)]
pub enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream<TcpStream>>),
}

/// A fresh connection and how long its phases took.
#[derive(Debug)]
pub struct Connected {
    /// The stream.
    pub stream: Stream,
    /// TCP connect time.
    pub connect: Duration,
    /// TLS handshake time (None on plain TCP).
    pub tls: Option<Duration>,
}

/// Opens connections to one address the same way every time.
#[derive(Clone)]
pub struct Connector {
    addr: SocketAddr,
    bind: Option<IpAddr>,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    http2: bool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("addr", &self.addr)
            .field("bind", &self.bind)
            .field("tls", &self.tls.is_some())
            .field("http2", &self.http2)
            .finish()
    }
}

impl Connector {
    /// A connector to `addr`, from `bind` when given, with TLS when `tls`
    /// is given (config and server name). With `http2` a TLS connection
    /// must negotiate `h2` by ALPN.
    pub fn new(
        addr: SocketAddr,
        bind: Option<IpAddr>,
        tls: Option<(Arc<ClientConfig>, ServerName<'static>)>,
        http2: bool,
    ) -> Self {
        let tls = tls.map(|(config, name)| (TlsConnector::from(config), name));
        Connector {
            addr,
            bind,
            tls,
            http2,
        }
    }

    /// Connects (and handshakes), classifying any failure.
    pub async fn connect(&self) -> Result<Connected, ErrorKind> {
        let start = Instant::now();
        let tcp = self
            .connect_tcp()
            .await
            .map_err(|e| ErrorKind::of_io(&e, true))?;
        let connect = start.elapsed();
        let Some((connector, name)) = &self.tls else {
            return Ok(Connected {
                stream: Stream::Plain(tcp),
                connect,
                tls: None,
            });
        };

        let tls_start = Instant::now();
        let tls =
            connector.connect(name.clone(), tcp).await.map_err(|e| {
                match ErrorKind::of_io(&e, true) {
                    ErrorKind::Connect | ErrorKind::Io => ErrorKind::Tls,
                    other => other,
                }
            })?;
        if self.http2 && tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(ErrorKind::Protocol);
        }
        Ok(Connected {
            stream: Stream::Tls(Box::new(tls)),
            connect,
            tls: Some(tls_start.elapsed()),
        })
    }

    async fn connect_tcp(&self) -> io::Result<TcpStream> {
        let socket = if self.addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(ip) = self.bind {
            socket.bind(SocketAddr::new(ip, 0))?;
        }
        let tcp = socket.connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        Ok(tcp)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
