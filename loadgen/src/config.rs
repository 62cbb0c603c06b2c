//! A run's validated configuration: targets on one origin, the load shape
//! (open or closed loop), connection options, and the parsers for the
//! values people type (`10s`, `500ms`, `2m`, `20ms`, `5k`).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use crate::report::{RunConfig, Target};

/// What is wrong with a flag, a URL or a file the configuration reads.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A URL that is not `http://host[:port]/path` or `https://...`.
    #[error("bad URL {url:?}: {why}; expected http://HOST[:PORT]/PATH or https://...")]
    Url {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        why: String,
    },
    /// Targets on different scheme, host or port.
    #[error(
        "{first} and {other} are on different origins; every URL of one run must share \
         scheme, host and port (run one loadgen per origin)"
    )]
    MixedOrigins {
        /// The first target's origin.
        first: String,
        /// The differing origin.
        other: String,
    },
    /// No URL given and no `--mix`.
    #[error("no target: give one or more URLs, or --mix FILE")]
    NoTarget,
    /// A value that does not parse.
    #[error("bad {flag} value {value:?}: {why}")]
    Value {
        /// The flag, for example `--duration`.
        flag: &'static str,
        /// The value as given.
        value: String,
        /// What is expected.
        why: String,
    },
    /// The host name of the URL does not resolve.
    #[error(
        "cannot resolve {host}:{port}: {source}; use --connect-to ADDR:PORT to give an address"
    )]
    Resolve {
        /// The host.
        host: String,
        /// The port.
        port: u16,
        /// The resolver's error.
        source: std::io::Error,
    },
    /// A file named by a flag cannot be read or is malformed.
    #[error("{flag} {path}: {why}")]
    File {
        /// The flag, for example `--mix`.
        flag: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// `http` or `https`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain TCP.
    Http,
    /// TLS over TCP.
    Https,
}

/// One target URL split into what the request writer needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Url {
    /// The URL as given.
    pub raw: String,
    /// Scheme.
    pub scheme: Scheme,
    /// Host as written (no brackets around IPv6).
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// Path and query, at least `/`.
    pub path: String,
}

impl Url {
    /// Parses `http(s)://host[:port][/path]`.
    pub fn parse(raw: &str) -> Result<Self, ConfigError> {
        let bad = |why: &str| ConfigError::Url {
            url: raw.to_string(),
            why: why.to_string(),
        };
        let uri: http::Uri = raw
            .parse()
            .map_err(|e: http::uri::InvalidUri| bad(&e.to_string()))?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::Http,
            Some("https") => Scheme::Https,
            Some(other) => return Err(bad(&format!("scheme {other:?} is not http or https"))),
            None => return Err(bad("no scheme")),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        let port = uri.port_u16().unwrap_or(match scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        });
        if port == 0 {
            return Err(bad("port 0"));
        }
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let path = if path.is_empty() {
            "/".to_string()
        } else {
            path.to_string()
        };
        Ok(Url {
            raw: raw.to_string(),
            scheme,
            host,
            port,
            path,
        })
    }

    /// `scheme://host:port`, what must match across the targets of a run.
    pub fn origin(&self) -> String {
        let scheme = if self.scheme == Scheme::Https {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{}", self.authority())
    }

    /// The Host header value: host, with the port when not the default.
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default = match self.scheme {
            Scheme::Http => 80,
            Scheme::Https => 443,
        };
        if self.port == default {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Open loop at a fixed total rate, or closed loop.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Load {
    /// As fast as each connection's replies come back.
    Closed,
    /// A fixed total rate in requests per second, on an absolute schedule.
    Open {
        /// Requests per second over all connections.
        rate: f64,
    },
}

/// A validated run configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Weighted targets, all on one origin.
    pub targets: Vec<(u32, Url)>,
    /// The address connections go to.
    pub addr: SocketAddr,
    /// Open or closed loop.
    pub load: Load,
    /// Concurrent connections.
    pub connections: u32,
    /// Concurrent requests per HTTP/2 connection (1 for HTTP/1.1).
    pub streams: u32,
    /// Worker threads.
    pub threads: u32,
    /// Measured duration.
    pub duration: Duration,
    /// Warm-up before measuring.
    pub warmup: Duration,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Extra header lines `Name: value`.
    pub headers: Vec<String>,
    /// HTTP/2.
    pub http2: bool,
    /// One connection per request.
    pub new_connection: bool,
    /// Source address.
    pub bind: Option<IpAddr>,
    /// `--connect-to` as given.
    pub connect_to: Option<String>,
    /// CA file for HTTPS.
    pub cacert: Option<PathBuf>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// The mix file the targets came from.
    pub mix_file: Option<PathBuf>,
    /// The p99 objective of a sweep.
    pub slo_p99: Option<Duration>,
}

impl Config {
    /// Checks targets (one origin), resolves the address (`connect_to` or
    /// the URL's host) and returns the configuration.
    pub fn resolve_targets(
        targets: Vec<(u32, Url)>,
        connect_to: Option<&str>,
    ) -> Result<(Vec<(u32, Url)>, SocketAddr), ConfigError> {
        let first = targets.first().ok_or(ConfigError::NoTarget)?;
        for (_, t) in &targets[1..] {
            if t.origin() != first.1.origin() {
                return Err(ConfigError::MixedOrigins {
                    first: first.1.origin(),
                    other: t.origin(),
                });
            }
        }
        let addr = match connect_to {
            Some(a) => a.parse::<SocketAddr>().map_err(|_| ConfigError::Value {
                flag: "--connect-to",
                value: a.to_string(),
                why: "expected ADDR:PORT, for example 127.0.0.1:8080 or [::1]:443".into(),
            })?,
            None => resolve(&first.1.host, first.1.port)?,
        };
        Ok((targets, addr))
    }

    /// The configuration as saved in the report.
    pub fn to_run_config(&self) -> RunConfig {
        RunConfig {
            targets: self
                .targets
                .iter()
                .map(|(weight, url)| Target {
                    weight: *weight,
                    url: url.raw.clone(),
                })
                .collect(),
            mode: match self.load {
                Load::Open { .. } => "open".into(),
                Load::Closed => "closed".into(),
            },
            connections: self.connections,
            streams: self.streams,
            threads: self.threads,
            duration_s: self.duration.as_secs_f64(),
            warmup_s: self.warmup.as_secs_f64(),
            rate: match self.load {
                Load::Open { rate } => Some(rate),
                Load::Closed => None,
            },
            http2: self.http2,
            new_connection: self.new_connection,
            timeout_ms: self.timeout.as_millis() as u64,
            headers: self.headers.clone(),
            connect_to: self.connect_to.clone(),
            bind: self.bind.map(|b| b.to_string()),
            cacert: self.cacert.as_ref().map(|p| p.display().to_string()),
            insecure: self.insecure,
            mix_file: self.mix_file.as_ref().map(|p| p.display().to_string()),
            slo_p99_us: self.slo_p99.map(|d| d.as_micros() as u64),
        }
    }

    /// The scheme of every target.
    pub fn scheme(&self) -> Scheme {
        self.targets[0].1.scheme
    }
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, ConfigError> {
    let resolve_err = |source| ConfigError::Resolve {
        host: host.to_string(),
        port,
        source,
    };
    let mut addrs = (host, port).to_socket_addrs().map_err(resolve_err)?;
    addrs.next().ok_or_else(|| {
        resolve_err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "no address",
        ))
    })
}

/// Parses a duration: a number with `us`, `ms`, `s`, `m` or `h` (bare
/// numbers are seconds), for example `10s`, `500ms`, `2m`, `1.5s`.
pub fn parse_duration(flag: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let bad = |why: &str| ConfigError::Value {
        flag,
        value: value.to_string(),
        why: why.to_string(),
    };
    let v = value.trim();
    let split = v
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| bad("expected a number with a unit, like 10s, 500ms, 2m"))?;
    let scale = match unit {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return Err(bad("unknown unit; use us, ms, s, m or h")),
    };
    let secs = n * scale;
    if !secs.is_finite() || secs > 7.0 * 86400.0 {
        return Err(bad("too long; at most a week"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parses a rate in requests per second: `2000`, `2.5k`, `1M`.
pub fn parse_rate(value: &str) -> Result<f64, ConfigError> {
    let bad = || ConfigError::Value {
        flag: "--rate",
        value: value.to_string(),
        why: "expected requests per second above 0, like 2000 or 2.5k".into(),
    };
    let v = value.trim();
    let (num, scale) = match v.strip_suffix(['k', 'K']) {
        Some(n) => (n, 1e3),
        None => match v.strip_suffix('M') {
            Some(n) => (n, 1e6),
            None => (v, 1.0),
        },
    };
    let rate = num.parse::<f64>().map_err(|_| bad())? * scale;
    if rate.is_finite() && rate > 0.0 && rate <= 1e8 {
        Ok(rate)
    } else {
        Err(bad())
    }
}

/// Checks a `-H` value is one `Name: value` header line.
pub fn check_header(value: &str) -> Result<(), ConfigError> {
    let bad = |why: &str| ConfigError::Value {
        flag: "--header",
        value: value.to_string(),
        why: why.to_string(),
    };
    let (name, _) = value
        .split_once(':')
        .ok_or_else(|| bad("expected \"Name: value\""))?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
    {
        return Err(bad("the header name must be letters, digits, - or _"));
    }
    if value.contains(['\r', '\n']) {
        return Err(bad("no line breaks in a header"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_the_units_people_type() {
        assert_eq!(
            parse_duration("-d", "10s").unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            parse_duration("-d", "500ms").unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            parse_duration("-d", "2m").unwrap(),
            Duration::from_secs(120)
        );
        assert_eq!(parse_duration("-d", "3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("-d", "10 parsecs").is_err());
        assert!(parse_duration("-d", "s").is_err());
    }

    #[test]
    fn rates_accept_suffixes_and_refuse_zero() {
        assert_eq!(parse_rate("2.5k").unwrap(), 2500.0);
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-3").is_err());
        assert!(parse_rate("fast").is_err());
    }

    #[test]
    fn urls_split_into_origin_and_path() {
        let u = Url::parse("https://blog.test:8443/posts?x=1").unwrap();
        assert_eq!(u.origin(), "https://blog.test:8443");
        assert_eq!(u.path, "/posts?x=1");
        let u = Url::parse("http://[::1]/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.authority()),
            ("::1", 80, "[::1]".to_string())
        );
        assert!(Url::parse("ftp://x/").is_err());
        assert!(Url::parse("localhost:80").is_err());
    }

    #[test]
    fn headers_need_a_name_and_a_colon() {
        assert!(check_header("X-Test: 1").is_ok());
        assert!(check_header("nocolon").is_err());
        assert!(check_header("Bad Name: 1").is_err());
    }
}
