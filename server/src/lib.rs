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
//! - [`listen`]: listeners, the accept loop, limits, timeouts, shutdown.
//! - [`identity`]: who the process runs as and advice when that is not
//!   enough; [`metrics`]: Prometheus counters; [`health`]: the healthcheck
//!   client.

pub mod acme;
pub mod config;
pub mod health;
pub mod identity;
pub mod listen;
pub mod metrics;
pub mod render;
pub mod response;
pub mod serve;
pub mod service;
pub mod site;
pub mod tls;

pub use response::Routes;
pub use site::{page_paths, Site, SiteError};
