//! The TLS client configuration: trusted roots from `--cacert` (or the
//! system bundle), `--insecure` for test certificates, ALPN for h2 or
//! HTTP/1.1.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::ConfigError;

/// The system CA bundle read when neither `--cacert` nor `--insecure` is given.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// Builds the client configuration for a run.
pub fn client_config(
    cacert: Option<&Path>,
    insecure: bool,
    http2: bool,
) -> Result<Arc<ClientConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the default provider supports the default versions");
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
            .with_no_client_auth()
    } else {
        let (path, flag) = match cacert {
            Some(p) => (p.to_path_buf(), "--cacert"),
            None => (PathBuf::from(SYSTEM_BUNDLE), "system CA bundle"),
        };
        builder
            .with_root_certificates(read_roots(&path, flag)?)
            .with_no_client_auth()
    };
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Arc::new(config))
}

/// The name to verify and send as SNI: the URL's host.
pub fn server_name(host: &str) -> Result<ServerName<'static>, ConfigError> {
    ServerName::try_from(host.to_string()).map_err(|e| ConfigError::Value {
        flag: "URL host",
        value: host.to_string(),
        why: format!("not a valid TLS server name: {e}"),
    })
}

fn read_roots(path: &Path, flag: &'static str) -> Result<RootCertStore, ConfigError> {
    let file_err = |why: String| ConfigError::File {
        flag,
        path: path.to_path_buf(),
        why,
    };
    let pem = std::fs::read(path).map_err(|e| {
        file_err(format!(
            "{e}; give the CA with --cacert FILE, or --insecure for a test server"
        ))
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| file_err(format!("not PEM certificates: {e}")))?;
        roots
            .add(cert)
            .map_err(|e| file_err(format!("unusable CA certificate: {e}")))?;
    }
    if roots.is_empty() {
        return Err(file_err("no CERTIFICATE block in it".into()));
    }
    Ok(roots)
}

/// `--insecure`: accepts any certificate but still checks the handshake
/// signatures, so the TLS work measured is the real work.
#[derive(Debug)]
struct AcceptAnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
