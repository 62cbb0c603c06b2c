//! TLS: loading and checking a certificate pair (certbot's `live/` links
//! or a self-signed one), the resolver that hands the current pair to new
//! handshakes, its reload on SIGHUP or file change, and the rustls server
//! configuration (TLS 1.2 and 1.3, ALPN h2 and http/1.1, resumption).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::watch;

use crate::config::CertSource;
use crate::identity::{self, Identity};
use crate::metrics::Metrics;

/// Why a certificate pair could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path} as {who}: {source}; {advice}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Who tried.
        who: Identity,
        /// The underlying error.
        source: std::io::Error,
        /// What to do about it.
        advice: String,
    },
    /// A file holds no PEM certificate.
    #[error(
        "{0} holds no PEM certificate; fullchain.pem should start with -----BEGIN CERTIFICATE-----"
    )]
    NoCertificate(PathBuf),
    /// A file holds no usable private key.
    #[error("{path} holds no usable PEM private key ({reason})")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// Why it was refused.
        reason: String,
    },
    /// The key is not the certificate's.
    #[error("{key} does not match the certificate in {cert} ({reason}); certbot writes both in one renewal, check the live/ links")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// The certificate could not be parsed for its subject and expiry.
    #[error("{path}: certificate does not parse: {reason}")]
    BadCertificate {
        /// The certificate file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rcgen could not make a self-signed certificate.
    #[error("cannot generate a self-signed certificate for {names:?}: {source}")]
    SelfSigned {
        /// The names asked for.
        names: Vec<String>,
        /// The underlying error.
        source: rcgen::Error,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
}

/// A certificate pair ready to serve, with what the logs say about it.
#[derive(Clone)]
pub struct LoadedCert {
    /// The pair.
    pub key: Arc<CertifiedKey>,
    /// The end-entity certificate's subject.
    pub subject: String,
    /// Its serial number, hex.
    pub serial: String,
    /// Its expiry.
    pub not_after: SystemTime,
}

impl fmt::Debug for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadedCert")
            .field("subject", &self.subject)
            .field("serial", &self.serial)
            .finish()
    }
}

impl fmt::Display for LoadedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "subject {} serial {} expires {}",
            self.subject,
            self.serial,
            httpdate::fmt_http_date(self.not_after)
        )
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks a certificate chain and its key (the key must match
/// the first certificate).
pub fn load_pair(fullchain: &Path, privkey: &Path) -> Result<LoadedCert, TlsError> {
    let chain_pem = read(fullchain)?;
    let key_pem = read(privkey)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<_, _>>()
        .map_err(|_| TlsError::NoCertificate(fullchain.to_path_buf()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(fullchain.to_path_buf()));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::BadKey {
        path: privkey.to_path_buf(),
        reason: e.to_string(),
    })?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey {
            path: privkey.to_path_buf(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| TlsError::KeyMismatch {
        cert: fullchain.to_path_buf(),
        key: privkey.to_path_buf(),
        reason: e.to_string(),
    })?;
    describe(certified, fullchain)
}

/// Makes a self-signed certificate for `names` plus localhost, 127.0.0.1
/// and ::1.
pub fn self_signed(names: &[String]) -> Result<LoadedCert, TlsError> {
    let mut all: Vec<String> = names.to_vec();
    for extra in ["localhost", "127.0.0.1", "::1"] {
        if !all.iter().any(|n| n == extra) {
            all.push(extra.to_string());
        }
    }
    let err = |source| TlsError::SelfSigned {
        names: all.clone(),
        source,
    };
    let generated = rcgen::generate_simple_self_signed(all.clone()).map_err(err)?;
    let key = PrivateKeyDer::try_from(generated.key_pair.serialize_der()).map_err(|reason| {
        TlsError::BadKey {
            path: "<generated>".into(),
            reason: reason.to_string(),
        }
    })?;
    let signing = provider().key_provider.load_private_key(key)?;
    let certified = CertifiedKey::new(vec![generated.cert.der().clone()], signing);
    describe(certified, Path::new("<self-signed>"))
}

fn describe(key: CertifiedKey, path: &Path) -> Result<LoadedCert, TlsError> {
    let bad = |reason: String| TlsError::BadCertificate {
        path: path.to_path_buf(),
        reason,
    };
    let der = key.cert.first().ok_or_else(|| bad("empty chain".into()))?;
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| bad(e.to_string()))?;
    let not_after = cert.validity().not_after.timestamp();
    let serial = cert
        .raw_serial()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    Ok(LoadedCert {
        subject: cert.subject().to_string(),
        serial,
        not_after: SystemTime::UNIX_EPOCH + Duration::from_secs(not_after.max(0) as u64),
        key: Arc::new(key),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| {
        let who = Identity::current();
        TlsError::Read {
            path: path.to_path_buf(),
            advice: identity::read_advice(source.kind(), &who),
            who,
            source,
        }
    })
}

/// The pair served to new handshakes; swapped whole on reload, so
/// connections already open keep the pair they started with.
#[derive(Debug)]
pub struct CertStore {
    current: RwLock<LoadedCert>,
    source: CertSource,
    metrics: Option<Arc<Metrics>>,
    /// The files as they were just before the first load: the watcher
    /// starts from this, so a renewal between start-up and the watcher's
    /// first run is still noticed.
    first_seen: Option<Fingerprint>,
}

/// The link targets behind `live/` with their size and mtime.
type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>)>;

impl CertStore {
    /// Loads the first pair from `source`.
    pub fn load(source: CertSource, metrics: Option<Arc<Metrics>>) -> Result<CertStore, TlsError> {
        let first_seen = fingerprint(&source);
        let first = match &source {
            CertSource::Letsencrypt { fullchain, privkey } => load_pair(fullchain, privkey)?,
            CertSource::SelfSigned(names) => self_signed(names)?,
        };
        let store = CertStore {
            current: RwLock::new(first.clone()),
            source,
            metrics,
            first_seen,
        };
        store.note_expiry(&first);
        Ok(store)
    }

    /// The pair served now.
    pub fn current(&self) -> LoadedCert {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Loads the pair again from the files; on any error keeps the old
    /// one. Returns the new pair, or `None` for a self-signed source.
    pub fn reload(&self) -> Result<Option<LoadedCert>, TlsError> {
        let CertSource::Letsencrypt { fullchain, privkey } = &self.source else {
            return Ok(None);
        };
        let fresh = load_pair(fullchain, privkey)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = fresh.clone();
        self.note_expiry(&fresh);
        Ok(Some(fresh))
    }

    /// Exports the expiry and warns when it is past or near: certbot
    /// renews 30 days ahead, so under 14 days left means renewal is failing.
    fn note_expiry(&self, cert: &LoadedCert) {
        match cert.not_after.duration_since(SystemTime::now()) {
            Err(_) => tracing::warn!(
                "the certificate expired on {}; clients will refuse it until certbot renews it",
                httpdate::fmt_http_date(cert.not_after)
            ),
            Ok(left) if left < Duration::from_secs(14 * 86_400) => tracing::warn!(
                "the certificate expires in {} days ({}); check certbot's renewals",
                left.as_secs() / 86_400,
                httpdate::fmt_http_date(cert.not_after)
            ),
            Ok(_) => {}
        }
        if let Some(m) = &self.metrics {
            let secs = cert
                .not_after
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            m.set_cert_not_after(secs as i64);
        }
    }

    /// Reloads on SIGHUP and whenever the files behind the links change
    /// (checked every `interval`), until `stop` turns true.
    /// Takes the SIGHUP stream ready-made so that no signal sent after
    /// start-up is lost before this task runs.
    pub async fn watch(
        self: Arc<Self>,
        mut hup: tokio::signal::unix::Signal,
        interval: Duration,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut seen = self.first_seen.clone();
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = crate::listen::stopped(&mut stop) => return,
                _ = hup.recv() => "SIGHUP",
                _ = tick.tick() => {
                    if fingerprint(&self.source) == seen { continue; }
                    "certificate files changed"
                }
            };
            // Remember what was tried, so a broken renewal is reported
            // once rather than on every tick.
            seen = fingerprint(&self.source);
            let result = self.reload();
            if let Some(m) = &self.metrics {
                match &result {
                    Ok(Some(_)) => m.reload(true),
                    Err(_) => m.reload(false),
                    Ok(None) => {}
                }
            }
            match result {
                Ok(Some(cert)) => tracing::info!("certificate reloaded ({why}): {cert}"),
                Ok(None) => tracing::info!("{why}: self-signed certificate, nothing to reload"),
                Err(e) => tracing::error!(
                    "certificate reload ({why}) failed, still serving the previous one: {e}"
                ),
            }
        }
    }
}

/// What identifies the files behind the links now: the link targets and
/// their size and mtime. A renewal changes it. `None` for a self-signed
/// source.
fn fingerprint(source: &CertSource) -> Option<Fingerprint> {
    let CertSource::Letsencrypt { fullchain, privkey } = source else {
        return None;
    };
    let files = [fullchain, privkey].into_iter().map(|p| {
        let target = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        let meta = std::fs::metadata(&target).ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        (target, len, meta.and_then(|m| m.modified().ok()))
    });
    Some(files.collect())
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .key
                .clone(),
        )
    }
}

/// The rustls configuration: TLS 1.3 and 1.2, ALPN h2 then http/1.1,
/// session resumption by cache and by tickets.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(4096);
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    Ok(Arc::new(config))
}
