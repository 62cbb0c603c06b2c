//! The hopless blog server: a Markdown site rendered once at start and
//! served from memory over HTTP/1.1 and HTTP/2, in the clear and over TLS,
//! with certbot-shaped certificates that reload without a restart.
//!
//! The binary `blog` is a thin wrapper around [`config`] (what to do) and
//! [`serve::serve`] (doing it). Modules, one concern each:
//!
//! - [`site`]: loading posts and assets; [`render`]: HTML and Atom pages.
//! - [`response`]: the in-memory routes with precomputed headers,
//!   conditional requests and the choice of encoding.
//! - [`service`]: the hyper services behind the HTTPS and HTTP listeners;
//!   [`acme`]: what the HTTP listener does besides serving the site.
//! - [`tls`]: certificate loading, checking, reloading and the resolver.
//! - [`listen`]: listeners, the accept loop, limits, timeouts, shutdown;
//!   [`memory`]: the connection cap a cgroup memory limit affords.
//! - [`identity`]: who the process runs as and advice when that is not
//!   enough; [`metrics`]: Prometheus counters; [`health`]: the healthcheck
//!   client.
//!
//! # Running
//!
//! `blog` with no arguments is the demo: the embedded sample site on
//! `http://127.0.0.1:8080` and `https://127.0.0.1:8443` (and `[::1]`), with
//! a fresh self-signed certificate; both listeners serve the site.
//!
//! Production: `blog --letsencrypt-dir /etc/letsencrypt --domain blog.example
//! --acme-webroot /var/www/acme` listens on `[::]:80` and `[::]:443`
//! (dual-stack); port 80 answers ACME challenges and `/healthz` and
//! redirects the rest to HTTPS. Every flag also reads a `BLOG_*`
//! variable (`blog --help`); an empty variable counts as unset.
//!
//! Logs go to stderr. Each bound listener logs one line
//! `listening on http://ADDR` or `listening on https://ADDR`, with the real
//! port when 0 was asked for. `blog paths` (or [`page_paths`]) lists the
//! pages; `blog healthcheck [--url U]` exits 0 on a 2xx or 3xx.
//!
//! Benchmarking: plain HTTP with `--http-serves-site` (the HTTP listener
//! then serves the site), HTTPS as it is; `--workers N` sets the threads,
//! `--log warn` keeps start-up quiet. The access log and metrics are off
//! unless asked for.

pub mod acme;
pub mod config;
pub mod health;
pub mod identity;
pub mod listen;
pub mod memory;
pub mod metrics;
pub mod render;
pub mod response;
pub mod serve;
pub mod service;
pub mod site;
pub mod tls;

pub use response::Routes;
pub use site::{page_paths, Site, SiteError};
