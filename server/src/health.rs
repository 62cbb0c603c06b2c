//! `blog healthcheck`: one plain-HTTP GET with a deadline, so a container
//! without curl can check the server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Why a health check failed.
#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    /// The URL is not `http://host:port/path`.
    #[error("--url {0:?} is not a plain http:// URL with a host (the check speaks HTTP/1.1 without TLS; point it at the HTTP listener)")]
    BadUrl(String),
    /// No connection or no answer.
    #[error("{url}: {source}; is the server running and listening there?")]
    Io {
        /// The URL checked.
        url: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An answer that is not a status line.
    #[error("{url}: the answer is not HTTP ({line:?})")]
    NotHttp {
        /// The URL checked.
        url: String,
        /// The first line received.
        line: String,
    },
    /// A status other than 2xx or 3xx.
    #[error("{url}: status {status}")]
    Status {
        /// The URL checked.
        url: String,
        /// The status received.
        status: u16,
    },
}

/// GETs `url` within `timeout`; `Ok(status)` for 2xx and 3xx.
pub fn check(url: &str, timeout: Duration) -> Result<u16, HealthError> {
    let bad = || HealthError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() {
        return Err(bad());
    }
    let io = |source| HealthError::Io {
        url: url.to_string(),
        source,
    };
    let with_port = if authority.ends_with(']') || !authority.contains(':') {
        format!("{authority}:80")
    } else {
        authority.to_string()
    };
    let addr: SocketAddr = with_port
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(bad)?;

    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: blog-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut head = [0u8; 64];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]).map_err(io)? {
            0 => break,
            n => len += n,
        }
    }
    let line = String::from_utf8_lossy(&head[..len])
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|l| l.get(2..5))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| HealthError::NotHttp {
            url: url.to_string(),
            line: line.clone(),
        })?;
    if (200..400).contains(&status) {
        Ok(status)
    } else {
        Err(HealthError::Status {
            url: url.to_string(),
            status,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_and_garbage_urls_are_refused_clearly() {
        let err = check("https://127.0.0.1/healthz", Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("plain http://"), "{err}");
        assert!(matches!(
            check("http:///x", Duration::from_secs(1)),
            Err(HealthError::BadUrl(_))
        ));
    }

    #[test]
    fn refused_connection_is_an_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = check(
            &format!("http://127.0.0.1:{port}/healthz"),
            Duration::from_secs(2),
        );
        assert!(matches!(err, Err(HealthError::Io { .. })));
    }
}
