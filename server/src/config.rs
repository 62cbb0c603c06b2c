//! The command line (every flag also read from a `BLOG_*` environment
//! variable) and its resolution into the [`Settings`] a server runs with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

/// `blog`: serve the blog (the default), check a running one, or list its
/// pages.
#[derive(Debug, Parser)]
#[command(name = "blog", version, about = "A fast HTTPS blog served from memory")]
pub struct Cli {
    /// What to do; serving is the default.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// How to serve (also read by `healthcheck` to find the HTTP port).
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// The subcommands of `blog`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the blog (what `blog` with no subcommand does).
    Serve,
    /// Exit 0 when GET URL answers 2xx or 3xx, 1 otherwise.
    Healthcheck {
        /// The URL to check (plain http://); default
        /// http://127.0.0.1:HTTP_PORT/healthz.
        #[arg(global = true, long, env = "BLOG_HEALTHCHECK_URL")]
        url: Option<String>,
    },
    /// Print every page path the site serves, one per line, and exit.
    Paths,
}

/// Everything that shapes the server, flag by flag.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Site directory (posts/*.md and static/); default: the embedded sample site.
    #[arg(global = true, long, env = "BLOG_SITE", value_name = "DIR")]
    pub site: Option<PathBuf>,
    /// Production mode: certificate from DIR/live/NAME/fullchain.pem and privkey.pem, NAME the first --domain.
    #[arg(global = true, long, env = "BLOG_LETSENCRYPT_DIR", value_name = "DIR")]
    pub letsencrypt_dir: Option<PathBuf>,
    /// A domain this server answers for (repeatable; env: comma-separated).
    #[arg(
        global = true,
        long = "domain",
        env = "BLOG_DOMAIN",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub domains: Vec<String>,
    /// HTTP port [default: 80 in production mode, 8080 in demo mode].
    #[arg(global = true, long, env = "BLOG_HTTP_PORT", value_name = "PORT")]
    pub http_port: Option<u16>,
    /// HTTPS port [default: 443 in production mode, 8443 in demo mode].
    #[arg(global = true, long, env = "BLOG_HTTPS_PORT", value_name = "PORT")]
    pub https_port: Option<u16>,
    /// Addresses to listen on (repeatable; env: comma-separated)
    /// (default: :: dual-stack in production mode, 127.0.0.1 and ::1 in demo mode).
    #[arg(
        global = true,
        long = "listen",
        env = "BLOG_LISTEN",
        value_name = "ADDR",
        value_delimiter = ','
    )]
    pub listen: Vec<IpAddr>,
    /// Serve /.well-known/acme-challenge/TOKEN from DIR on the HTTP listener.
    #[arg(global = true, long, env = "BLOG_ACME_WEBROOT", value_name = "DIR")]
    pub acme_webroot: Option<PathBuf>,
    /// The HTTP listener serves the site instead of redirecting to HTTPS.
    #[arg(global = true, long, env = "BLOG_HTTP_SERVES_SITE", value_parser = BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub http_serves_site: bool,
    /// Generate a self-signed certificate for the domains and localhost.
    #[arg(global = true, long, env = "BLOG_SELF_SIGNED", value_parser = BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub self_signed: bool,
    /// Serve Prometheus metrics on this address (off by default; keep it on loopback).
    #[arg(global = true, long, env = "BLOG_METRICS", value_name = "ADDR:PORT")]
    pub metrics: Option<SocketAddr>,
    /// Log one line per request.
    #[arg(global = true, long, env = "BLOG_ACCESS_LOG", value_parser = BoolishValueParser::new(), action = clap::ArgAction::SetTrue)]
    pub access_log: bool,
    /// Seconds in-flight requests get to finish after SIGTERM or SIGINT.
    #[arg(
        global = true,
        long,
        env = "BLOG_GRACE_PERIOD",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub grace_period: u64,
    /// Concurrent connections at most, lowered to what a cgroup memory
    /// limit affords (48 KiB each); at the cap the oldest connection closes
    /// after its request in flight and newer ones wait to be accepted.
    #[arg(
        global = true,
        long,
        env = "BLOG_MAX_CONNECTIONS",
        value_name = "N",
        default_value_t = 10_000
    )]
    pub max_connections: usize,
    /// Worker threads [default: available cores].
    #[arg(global = true, long, env = "BLOG_WORKERS", value_name = "N")]
    pub workers: Option<usize>,
    /// Tracing filter, e.g. `info` or `server=debug`.
    #[arg(
        global = true,
        long,
        env = "BLOG_LOG",
        value_name = "FILTER",
        default_value = "info"
    )]
    pub log: String,
    /// Seconds a client gets to send a request's headers (also bounds an
    /// idle HTTP/1.1 keep-alive wait).
    #[arg(
        global = true,
        long,
        env = "BLOG_HEADER_TIMEOUT",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub header_timeout: u64,
    /// Seconds a client gets to finish the TLS handshake.
    #[arg(
        global = true,
        long,
        env = "BLOG_HANDSHAKE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 10
    )]
    pub handshake_timeout: u64,
    /// Seconds without a byte either way before a connection is closed.
    #[arg(
        global = true,
        long,
        env = "BLOG_IDLE_TIMEOUT",
        value_name = "SECS",
        default_value_t = 60
    )]
    pub idle_timeout: u64,
    /// Seconds between checks of the certificate files for a renewal.
    #[arg(
        global = true,
        long,
        env = "BLOG_CERT_CHECK_INTERVAL",
        value_name = "SECS",
        default_value_t = 30
    )]
    pub cert_check_interval: u64,
    /// Print every page path and exit (same as `blog paths`).
    #[arg(global = true, long, hide = true)]
    pub list_paths: bool,
}

/// Where the HTTPS certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// certbot's `live/NAME/fullchain.pem` and `live/NAME/privkey.pem`.
    Letsencrypt {
        /// `live/NAME/fullchain.pem`.
        fullchain: PathBuf,
        /// `live/NAME/privkey.pem`.
        privkey: PathBuf,
    },
    /// A certificate generated at start for these names.
    SelfSigned(Vec<String>),
}

/// What the HTTP listener does with requests that are not ACME challenges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpRole {
    /// Serve the site in the clear.
    Site,
    /// 301 to HTTPS for the configured domains, 400 for any other Host.
    Redirect,
}

/// The resolved configuration a server runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Site directory, or `None` for the embedded sample site.
    pub site: Option<PathBuf>,
    /// Where the certificate comes from.
    pub cert: CertSource,
    /// Domains, lowercase; the first one names the certificate.
    pub domains: Vec<String>,
    /// Addresses for the HTTP listener.
    pub http: Vec<SocketAddr>,
    /// Addresses for the HTTPS listener.
    pub https: Vec<SocketAddr>,
    /// What the HTTP listener does.
    pub http_role: HttpRole,
    /// Directory holding `.well-known/acme-challenge/`.
    pub acme_webroot: Option<PathBuf>,
    /// Prometheus metrics address.
    pub metrics: Option<SocketAddr>,
    /// Log one line per request.
    pub access_log: bool,
    /// Time in-flight requests get after a stop signal.
    pub grace_period: Duration,
    /// Concurrent connections at most.
    pub max_connections: usize,
    /// Worker threads.
    pub workers: usize,
    /// Time to send request headers.
    pub header_timeout: Duration,
    /// Time to finish a TLS handshake.
    pub handshake_timeout: Duration,
    /// Time without traffic before a connection is closed.
    pub idle_timeout: Duration,
    /// Time between checks of the certificate files.
    pub cert_check_interval: Duration,
}

/// A combination of flags that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `--letsencrypt-dir` without a domain to pick `live/NAME`.
    #[error(
        "--letsencrypt-dir {0} needs --domain NAME (BLOG_DOMAIN) to find live/NAME/fullchain.pem"
    )]
    NoDomain(PathBuf),
    /// Both certificate sources at once.
    #[error("--letsencrypt-dir and --self-signed both choose the certificate; pass only one")]
    TwoCertSources,
    /// A domain that is not a plausible DNS name.
    #[error("--domain {0:?} is not a DNS name (letters, digits, '-' and '.' only)")]
    BadDomain(String),
    /// A zero where a count or a duration must be positive.
    #[error("--{0} must be at least 1")]
    Zero(&'static str),
    /// The tracing filter does not parse.
    #[error("--log {filter:?} is not a tracing filter: {reason}")]
    BadLogFilter {
        /// The filter given.
        filter: String,
        /// Why it was refused.
        reason: String,
    },
}

impl ServeArgs {
    /// True when a certificate directory or a domain was given: the
    /// defaults are then ports 80/443 on `[::]` and HTTP redirects.
    pub fn production(&self) -> bool {
        self.letsencrypt_dir.is_some() || self.domains.iter().any(|d| !d.trim().is_empty())
    }

    /// The HTTP port the server will use.
    pub fn http_port(&self) -> u16 {
        self.http_port
            .unwrap_or(if self.production() { 80 } else { 8080 })
    }

    /// The HTTPS port the server will use.
    pub fn https_port(&self) -> u16 {
        self.https_port
            .unwrap_or(if self.production() { 443 } else { 8443 })
    }

    /// The listen addresses the server will use.
    pub fn listen_addrs(&self) -> Vec<IpAddr> {
        if !self.listen.is_empty() {
            return self.listen.clone();
        }
        if self.production() {
            vec![IpAddr::V6(Ipv6Addr::UNSPECIFIED)]
        } else {
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
        }
    }

    /// Checks the flags together and fills in the defaults of the mode.
    pub fn resolve(&self) -> Result<Settings, ConfigError> {
        let domains = self
            .domains
            .iter()
            .map(|d| d.trim().to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect::<Vec<_>>();
        if let Some(bad) = domains.iter().find(|d| !is_dns_name(d)) {
            return Err(ConfigError::BadDomain(bad.clone()));
        }
        let cert = match (&self.letsencrypt_dir, self.self_signed) {
            (Some(_), true) => return Err(ConfigError::TwoCertSources),
            (Some(dir), false) => {
                let first = domains
                    .first()
                    .ok_or_else(|| ConfigError::NoDomain(dir.clone()))?;
                let live = dir.join("live").join(first);
                CertSource::Letsencrypt {
                    fullchain: live.join("fullchain.pem"),
                    privkey: live.join("privkey.pem"),
                }
            }
            (None, _) => CertSource::SelfSigned(domains.clone()),
        };
        for (name, value) in [
            ("max-connections", self.max_connections as u64),
            ("header-timeout", self.header_timeout),
            ("handshake-timeout", self.handshake_timeout),
            ("idle-timeout", self.idle_timeout),
            ("cert-check-interval", self.cert_check_interval),
        ] {
            if value == 0 {
                return Err(ConfigError::Zero(name));
            }
        }
        if self.workers == Some(0) {
            return Err(ConfigError::Zero("workers"));
        }

        let ips = self.listen_addrs();
        let on = |port: u16| {
            ips.iter()
                .map(|ip| SocketAddr::new(*ip, port))
                .collect::<Vec<_>>()
        };
        // Without a domain there is nowhere to redirect to, so the demo
        // serves the site on both listeners.
        let http_role = if self.http_serves_site || domains.is_empty() {
            HttpRole::Site
        } else {
            HttpRole::Redirect
        };
        let workers = self.workers.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
        });
        Ok(Settings {
            site: self.site.clone(),
            cert,
            domains,
            http: on(self.http_port()),
            https: on(self.https_port()),
            http_role,
            acme_webroot: self.acme_webroot.clone(),
            metrics: self.metrics,
            access_log: self.access_log,
            grace_period: Duration::from_secs(self.grace_period),
            max_connections: self.max_connections,
            workers,
            header_timeout: Duration::from_secs(self.header_timeout),
            handshake_timeout: Duration::from_secs(self.handshake_timeout),
            idle_timeout: Duration::from_secs(self.idle_timeout),
            cert_check_interval: Duration::from_secs(self.cert_check_interval),
        })
    }

    /// The URL `blog healthcheck` checks when given none: `/healthz` on the
    /// HTTP port, on the first listen address (loopback for a wildcard).
    pub fn healthcheck_url(&self) -> String {
        let ip = match self.listen_addrs().first() {
            Some(ip) if !ip.is_unspecified() => *ip,
            _ => IpAddr::V4(Ipv4Addr::LOCALHOST),
        };
        format!("http://{}/healthz", SocketAddr::new(ip, self.http_port()))
    }
}

fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("blog").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn no_arguments_is_the_demo_on_loopback_8080_and_8443() {
        let s = parse(&[]).serve.resolve().unwrap();
        assert_eq!(s.http[0], "127.0.0.1:8080".parse().unwrap());
        assert_eq!(s.https[1], "[::1]:8443".parse().unwrap());
        assert_eq!(s.http_role, HttpRole::Site);
        assert_eq!(s.cert, CertSource::SelfSigned(vec![]));
    }

    #[test]
    fn letsencrypt_dir_is_production_on_dual_stack_80_and_443() {
        let cli = parse(&[
            "--letsencrypt-dir",
            "/le",
            "--domain",
            "Blog.Test,www.blog.test",
        ]);
        let s = cli.serve.resolve().unwrap();
        assert_eq!(s.https, vec!["[::]:443".parse().unwrap()]);
        assert_eq!(s.http_role, HttpRole::Redirect);
        assert_eq!(s.domains, ["blog.test", "www.blog.test"]);
        let CertSource::Letsencrypt { privkey, .. } = s.cert else {
            panic!("not letsencrypt")
        };
        assert_eq!(privkey, PathBuf::from("/le/live/blog.test/privkey.pem"));
    }

    #[test]
    fn letsencrypt_dir_without_domain_is_refused() {
        let err = parse(&["--letsencrypt-dir", "/le"])
            .serve
            .resolve()
            .unwrap_err();
        assert!(err.to_string().contains("--domain"), "{err}");
    }

    #[test]
    fn bad_domain_is_refused() {
        let err = parse(&["--domain", "a/b"]).serve.resolve().unwrap_err();
        assert!(matches!(err, ConfigError::BadDomain(_)));
    }

    #[test]
    fn healthcheck_url_follows_port_and_listen() {
        let cli = parse(&["--http-port", "9000", "--listen", "::"]);
        assert_eq!(cli.serve.healthcheck_url(), "http://127.0.0.1:9000/healthz");
        let cli = parse(&["--domain", "blog.test", "healthcheck"]);
        assert_eq!(cli.serve.healthcheck_url(), "http://127.0.0.1:80/healthz");
    }
}
