//! Throwaway certificate authorities and certbot-shaped `live/` + `archive/`
//! directories, with renewals that move the links the way certbot does.

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    SanType, SerialNumber,
};
use time::{Duration, OffsetDateTime};

/// What can go wrong while laying out a certificate directory.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A file or directory could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// rcgen refused to make a key or certificate.
    #[error("cannot generate a certificate for {name}: {source}")]
    Generate {
        /// The subject the certificate was for.
        name: String,
        /// The underlying error.
        source: rcgen::Error,
    },
}

/// A certbot-shaped directory (`live/NAME/*.pem` are relative links into
/// `archive/NAME/*N.pem`) signed by a throwaway CA of its own.
///
/// # Examples
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let mut certs = testbed::CertbotDir::create(dir.path(), "blog.test").unwrap();
/// assert_eq!(certs.version(), 1);
/// certs.renew().unwrap();
/// assert!(certs.fullchain_path().canonicalize().unwrap().ends_with("fullchain2.pem"));
/// ```
pub struct CertbotDir {
    root: PathBuf,
    domain: String,
    ca_cert: Certificate,
    ca_key: KeyPair,
    version: u32,
    serials: Vec<u64>,
}

impl std::fmt::Debug for CertbotDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertbotDir")
            .field("root", &self.root)
            .field("domain", &self.domain)
            .field("version", &self.version)
            .finish()
    }
}

impl CertbotDir {
    /// Makes a CA and a first certificate for `domain` (also valid for
    /// `localhost`, `127.0.0.1` and `::1`) under `root`, with the modes
    /// certbot sets: `live/` and `archive/` 0700, private keys 0600.
    pub fn create(root: &Path, domain: &str) -> Result<Self, CertsError> {
        let ca_key = KeyPair::generate().map_err(|e| gen_err("test CA", e))?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, "hopless test CA");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(3650);
        let ca_cert = params
            .self_signed(&ca_key)
            .map_err(|e| gen_err("test CA", e))?;

        let mut dir = CertbotDir {
            root: root.to_path_buf(),
            domain: domain.to_string(),
            ca_cert,
            ca_key,
            version: 0,
            serials: Vec::new(),
        };
        for sub in ["live", "archive", "renewal"] {
            mkdir(&root.join(sub))?;
        }
        set_mode(&root.join("live"), 0o700)?;
        set_mode(&root.join("archive"), 0o700)?;
        mkdir(&dir.live_dir())?;
        mkdir(&dir.archive_dir())?;
        write(
            &root.join("renewal").join(format!("{domain}.conf")),
            format!(
                "# made by hopless testbed\narchive_dir = {}\n",
                dir.archive_dir().display()
            ),
            0o644,
        )?;
        dir.renew()?;
        Ok(dir)
    }

    /// Issues the next certificate: writes `archive/NAME/*N+1.pem` and
    /// moves the `live/` links to it, as `certbot renew` does. The new
    /// private key keeps the group and mode of the previous one.
    pub fn renew(&mut self) -> Result<(), CertsError> {
        let key = KeyPair::generate().map_err(|e| gen_err(&self.domain, e))?;
        let serial = next_serial(&self.serials);
        let cert = self.sign(&key, serial)?;
        self.install(&cert.pem(), &key.serialize_pem())?;
        self.serials.push(serial);
        Ok(())
    }

    /// Installs a renewal whose private key does not match its certificate,
    /// the broken pair a server must refuse to switch to.
    pub fn renew_with_mismatched_key(&mut self) -> Result<(), CertsError> {
        let key = KeyPair::generate().map_err(|e| gen_err(&self.domain, e))?;
        let other = KeyPair::generate().map_err(|e| gen_err(&self.domain, e))?;
        let serial = next_serial(&self.serials);
        let cert = self.sign(&key, serial)?;
        self.install(&cert.pem(), &other.serialize_pem())?;
        self.serials.push(serial);
        Ok(())
    }

    /// Gives group `gid` read access the way the host setup does:
    /// `live/` and `archive/` (and their per-name folders) 0750, private
    /// keys 0640, all with group `gid`. Needs root (or ownership).
    pub fn grant_group(&self, gid: u32) -> Result<(), CertsError> {
        let gid = Some(nix::unistd::Gid::from_raw(gid));
        let mut paths = vec![
            self.root.join("live"),
            self.root.join("archive"),
            self.live_dir(),
            self.archive_dir(),
        ];
        for p in &paths {
            set_mode(p, 0o750)?;
        }
        let entries =
            fs::read_dir(self.archive_dir()).map_err(|e| io_err(&self.archive_dir(), e))?;
        for entry in entries {
            let path = entry.map_err(|e| io_err(&self.archive_dir(), e))?.path();
            if file_name(&path).starts_with("privkey") {
                set_mode(&path, 0o640)?;
            }
            paths.push(path);
        }
        for p in &paths {
            nix::unistd::chown(p, None, gid)
                .map_err(|e| io_err(p, std::io::Error::from_raw_os_error(e as i32)))?;
        }
        Ok(())
    }

    /// The certbot configuration directory (what `/etc/letsencrypt` is).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The certificate name, also its DNS name.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// `live/NAME`.
    pub fn live_dir(&self) -> PathBuf {
        self.root.join("live").join(&self.domain)
    }

    /// `archive/NAME`.
    pub fn archive_dir(&self) -> PathBuf {
        self.root.join("archive").join(&self.domain)
    }

    /// `live/NAME/fullchain.pem`, a link into `archive/`.
    pub fn fullchain_path(&self) -> PathBuf {
        self.live_dir().join("fullchain.pem")
    }

    /// `live/NAME/privkey.pem`, a link into `archive/`.
    pub fn privkey_path(&self) -> PathBuf {
        self.live_dir().join("privkey.pem")
    }

    /// The number N of the files the `live/` links point at now.
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The serial number of the certificate the `live/` links point at now.
    pub fn serial(&self) -> u64 {
        *self
            .serials
            .last()
            .expect("create issues a first certificate")
    }

    /// The CA certificate in PEM, for clients to trust.
    pub fn ca_pem(&self) -> String {
        self.ca_cert.pem()
    }

    /// Writes the CA certificate to `path` (0644) and returns the path.
    pub fn write_ca(&self, path: &Path) -> Result<PathBuf, CertsError> {
        write(path, self.ca_pem(), 0o644)?;
        Ok(path.to_path_buf())
    }

    fn sign(&self, key: &KeyPair, serial: u64) -> Result<Certificate, CertsError> {
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, self.domain.clone());
        params.distinguished_name = dn;
        let dns = |n: &str| {
            n.to_string()
                .try_into()
                .map(SanType::DnsName)
                .map_err(|e| gen_err(n, e))
        };
        params.subject_alt_names = vec![
            dns(&self.domain)?,
            dns("localhost")?,
            SanType::IpAddress(IpAddr::from([127, 0, 0, 1])),
            SanType::IpAddress("::1".parse().expect("valid address")),
        ];
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_before = OffsetDateTime::now_utc() - Duration::days(1);
        params.not_after = OffsetDateTime::now_utc() + Duration::days(90);
        params
            .signed_by(key, &self.ca_cert, &self.ca_key)
            .map_err(|e| gen_err(&self.domain, e))
    }

    fn install(&mut self, cert_pem: &str, key_pem: &str) -> Result<(), CertsError> {
        let n = self.version + 1;
        let archive = self.archive_dir();
        let previous_key = archive.join(format!("privkey{}.pem", self.version));
        let chain = self.ca_pem();
        write(
            &archive.join(format!("cert{n}.pem")),
            cert_pem.to_string(),
            0o644,
        )?;
        write(&archive.join(format!("chain{n}.pem")), chain.clone(), 0o644)?;
        write(
            &archive.join(format!("fullchain{n}.pem")),
            format!("{cert_pem}{chain}"),
            0o644,
        )?;
        let new_key = archive.join(format!("privkey{n}.pem"));
        write(&new_key, key_pem.to_string(), 0o600)?;
        if let Ok(meta) = fs::metadata(&previous_key) {
            use std::os::unix::fs::MetadataExt;
            set_mode(&new_key, meta.mode() & 0o777)?;
            let gid = Some(nix::unistd::Gid::from_raw(meta.gid()));
            nix::unistd::chown(&new_key, None, gid)
                .map_err(|e| io_err(&new_key, std::io::Error::from_raw_os_error(e as i32)))?;
        }
        for kind in ["cert", "chain", "fullchain", "privkey"] {
            let link = self.live_dir().join(format!("{kind}.pem"));
            let target = format!("../../archive/{}/{kind}{n}.pem", self.domain);
            // Swap the link atomically so a reader never sees it missing.
            let tmp = self.live_dir().join(format!(".{kind}.pem.new"));
            let _ = fs::remove_file(&tmp);
            symlink(&target, &tmp).map_err(|e| io_err(&tmp, e))?;
            fs::rename(&tmp, &link).map_err(|e| io_err(&link, e))?;
        }
        self.version = n;
        Ok(())
    }
}

fn next_serial(previous: &[u64]) -> u64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() as u64;
    let candidate = (nanos >> 8) | 1;
    if previous.contains(&candidate) {
        candidate + 2
    } else {
        candidate
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn mkdir(path: &Path) -> Result<(), CertsError> {
    fs::create_dir_all(path).map_err(|e| io_err(path, e))
}

fn write(path: &Path, contents: String, mode: u32) -> Result<(), CertsError> {
    fs::write(path, contents).map_err(|e| io_err(path, e))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), CertsError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, source: std::io::Error) -> CertsError {
    CertsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn gen_err(name: &str, source: rcgen::Error) -> CertsError {
    CertsError::Generate {
        name: name.to_string(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_moves_links_to_the_next_numbered_files() {
        let tmp = tempfile::tempdir().unwrap();
        let mut dir = CertbotDir::create(tmp.path(), "blog.test").unwrap();
        let first = dir.serial();
        let link = fs::read_link(dir.privkey_path()).unwrap();
        assert_eq!(link, Path::new("../../archive/blog.test/privkey1.pem"));
        dir.renew().unwrap();
        assert_ne!(dir.serial(), first);
        let link = fs::read_link(dir.fullchain_path()).unwrap();
        assert_eq!(link, Path::new("../../archive/blog.test/fullchain2.pem"));
        let mode = fs::metadata(dir.root().join("live"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }
}
