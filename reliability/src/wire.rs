//! Raw connections for the attackers, plain TCP or TLS to the server's
//! listeners, and a reader that counts the HTTP/1.1 responses that come
//! back and how the connection ended.

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::blog::Blog;
use crate::ScenarioError;

/// Which listener an attack goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// The plain HTTP listener.
    Http,
    /// The HTTPS listener, after a real TLS handshake.
    Https,
}

impl Transport {
    /// `http` or `https`.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Http => "http",
            Transport::Https => "https",
        }
    }
}

/// A byte stream an attacker writes to.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// Opens attacker connections to one server.
#[derive(Clone)]
pub struct Dialer {
    http: SocketAddr,
    https: SocketAddr,
    h1: TlsConnector,
    h2: TlsConnector,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer")
            .field("https", &self.https)
            .finish()
    }
}

impl Dialer {
    /// A dialer for `blog`, trusting its CA.
    pub fn new(blog: &Blog) -> Result<Dialer, ScenarioError> {
        Dialer::to(blog.http, blog.https, blog.ca_path())
    }

    /// A dialer for listeners at `http` and `https`, trusting the CA in
    /// `ca` (PEM).
    pub fn to(http: SocketAddr, https: SocketAddr, ca: &Path) -> Result<Dialer, ScenarioError> {
        let config = |h2| {
            loadgen::tls::client_config(Some(ca), false, h2)
                .map_err(|e| ScenarioError::Loadgen(e.to_string()))
        };
        Ok(Dialer {
            http,
            https,
            h1: TlsConnector::from(config(false)?),
            h2: TlsConnector::from(config(true)?),
        })
    }

    /// The address of a listener.
    pub fn addr(&self, transport: Transport) -> SocketAddr {
        match transport {
            Transport::Http => self.http,
            Transport::Https => self.https,
        }
    }

    /// A TCP connection to a listener, nothing sent.
    pub async fn tcp(&self, transport: Transport) -> io::Result<TcpStream> {
        let s = TcpStream::connect(self.addr(transport)).await?;
        s.set_nodelay(true)?;
        Ok(s)
    }

    /// A connection ready for HTTP: plain, or TLS with ALPN `h2` when
    /// `h2` (else `http/1.1`).
    pub async fn connect(&self, transport: Transport, h2: bool) -> io::Result<Box<dyn Io>> {
        let tcp = self.tcp(transport).await?;
        match transport {
            Transport::Http => Ok(Box::new(tcp)),
            Transport::Https => {
                let connector = if h2 { &self.h2 } else { &self.h1 };
                let name = ServerName::try_from("localhost").expect("a valid name");
                Ok(Box::new(connector.connect(name, tcp).await?))
            }
        }
    }
}

/// How a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The server closed it (EOF, or a TLS close).
    Closed,
    /// The server reset it.
    Reset,
    /// Still open when the reader gave up.
    Open,
}

/// What came back on one connection.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status of every complete response, in order.
    pub statuses: Vec<u16>,
    /// How it ended.
    pub end: End,
    /// Time from the start of reading to the end.
    pub elapsed: Duration,
}

impl Reply {
    /// A short class for tallies: `400 then closed`, `closed without a
    /// response`, `reset`, `still open`, `2 responses then closed`.
    pub fn class(&self) -> String {
        let end = match self.end {
            End::Closed => "closed",
            End::Reset => "reset",
            End::Open => "still open",
        };
        match self.statuses.as_slice() {
            [] => format!("{end} without a response"),
            [one] => format!("{one} then {end}"),
            many => {
                let mut uniq: Vec<u16> = many.to_vec();
                uniq.dedup();
                let list = uniq
                    .iter()
                    .map(u16::to_string)
                    .collect::<Vec<_>>()
                    .join("/");
                format!("{} responses ({list}) then {end}", many.len())
            }
        }
    }

    /// Refused cleanly: at most one response, an error status if any,
    /// and the connection closed or reset.
    pub fn refused_cleanly(&self) -> bool {
        self.end != End::Open && self.statuses.len() <= 1 && self.statuses.iter().all(|s| *s >= 400)
    }
}

/// Reads responses until the server closes, resets or `wait` passes.
pub async fn read_replies<R: AsyncRead + Unpin + ?Sized>(io: &mut R, wait: Duration) -> Reply {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + wait;
    let mut buf = Vec::with_capacity(16 * 1024);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut statuses = Vec::new();
    let end = loop {
        let n = match tokio::time::timeout_at(deadline, io.read(&mut chunk)).await {
            Err(_) => break End::Open,
            Ok(Ok(0)) => break End::Closed,
            Ok(Ok(n)) => n,
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionReset => break End::Reset,
            // A TLS close without close_notify or another broken read:
            // the server ended the connection.
            Ok(Err(_)) => break End::Closed,
        };
        buf.extend_from_slice(&chunk[..n]);
        let used = parse_responses(&buf, &mut statuses);
        buf.drain(..used);
    };
    Reply {
        statuses,
        end,
        elapsed: started.elapsed(),
    }
}

/// Takes every complete response off the front of `buf`, pushing its
/// status; returns the bytes used.
pub fn parse_responses(buf: &[u8], statuses: &mut Vec<u16>) -> usize {
    let mut at = 0;
    while let Some(head_len) = find(&buf[at..], b"\r\n\r\n") {
        let head = String::from_utf8_lossy(&buf[at..at + head_len]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0);
        let length = head
            .lines()
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("content-length")
                    .then(|| value.trim().parse::<usize>().ok())
                    .flatten()
            })
            .unwrap_or(0);
        let end = at + head_len + 4 + length;
        if end > buf.len() {
            break;
        }
        statuses.push(status);
        at = end;
    }
    at
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Makes `n` pseudo-random bytes from `seed` (xorshift), for garbage.
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A shared, cloneable dialer.
pub type SharedDialer = Arc<Dialer>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelined_responses_are_counted_with_their_bodies() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nHTTP/HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\nHTTP/1.1 200";
        let mut statuses = Vec::new();
        let used = parse_responses(wire, &mut statuses);
        assert_eq!(statuses, [200, 404]);
        assert_eq!(&wire[used..], b"HTTP/1.1 200");
    }

    #[test]
    fn one_error_then_close_is_a_clean_refusal_and_two_responses_are_not() {
        let mut r = Reply {
            statuses: vec![400],
            end: End::Closed,
            elapsed: Duration::ZERO,
        };
        assert!(r.refused_cleanly());
        assert_eq!(r.class(), "400 then closed");
        r.statuses.push(404);
        assert!(!r.refused_cleanly());
        r.statuses = vec![200];
        assert!(!r.refused_cleanly());
    }
}
