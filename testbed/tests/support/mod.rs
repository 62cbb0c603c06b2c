//! What the deploy tests share: the image built once per test binary, a
//! granted certbot directory and webroot, and clients (curl, openssl) run
//! from the host or from a client namespace.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use testbed::compose::DeployConfig;
use testbed::CertbotDir;

/// The uid and gid the container runs as, and the group the host grants.
pub const BLOG_ID: u32 = 2200;
/// The domain every test certificate is for.
pub const DOMAIN: &str = "blog.test";

/// Builds the image once per test binary and returns its tag.
pub fn image() -> String {
    static TAG: OnceLock<String> = OnceLock::new();
    TAG.get_or_init(|| testbed::image::ensure_image().unwrap_or_else(|e| panic!("{e}")))
        .clone()
}

/// A throwaway `/etc/letsencrypt` (certbot-shaped, own CA) and ACME
/// webroot under one temporary directory.
pub struct Site {
    pub tmp: tempfile::TempDir,
    pub certs: CertbotDir,
    pub webroot: PathBuf,
    pub ca: PathBuf,
}

impl Site {
    /// Certificates as certbot leaves them (root-only), not yet granted.
    pub fn ungranted() -> Site {
        let tmp = tempfile::Builder::new()
            .prefix("hopless-deploy-")
            .tempdir()
            .unwrap();
        // The temp dir is 0700; the container (uid 2200) must reach the
        // mount points below it, as it reaches /etc/letsencrypt.
        chmod(tmp.path(), 0o755);
        let certs = CertbotDir::create(&tmp.path().join("letsencrypt"), DOMAIN).unwrap();
        chmod(certs.root(), 0o755);
        let webroot = tmp.path().join("acme");
        std::fs::create_dir_all(webroot.join(".well-known/acme-challenge")).unwrap();
        let ca = certs.write_ca(&tmp.path().join("ca.pem")).unwrap();
        Site {
            tmp,
            certs,
            webroot,
            ca,
        }
    }

    /// Certificates with the group grant the host setup makes.
    pub fn granted() -> Site {
        let site = Site::ungranted();
        site.certs.grant_group(BLOG_ID).unwrap();
        site
    }

    /// A deployment on ports 80/443 serving this site's certificate.
    pub fn config(&self) -> DeployConfig {
        DeployConfig {
            letsencrypt_dir: self.certs.root().to_path_buf(),
            acme_webroot: self.webroot.clone(),
            domain: DOMAIN.to_string(),
            image: image(),
            ..DeployConfig::default()
        }
    }
}

/// Sets the mode of `path`.
pub fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// `curl` arguments for a bounded request to `url` that prints only the
/// status code, with `blog.test` resolved to `addr`.
pub fn curl_args(url: &str, port: u16, addr: IpAddr, ca: &Path) -> Vec<String> {
    let host = match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    vec![
        "--silent".into(),
        "--show-error".into(),
        "--max-time".into(),
        "5".into(),
        "--cacert".into(),
        ca.display().to_string(),
        "--resolve".into(),
        format!("{DOMAIN}:{port}:{host}"),
        "--output".into(),
        "/dev/null".into(),
        "--write-out".into(),
        "%{http_code} %{redirect_url}".into(),
        url.into(),
    ]
}

/// Runs `cmd` and returns (status code, redirect target) from curl's
/// `--write-out`, or panics with curl's error.
pub fn status_of(mut cmd: Command) -> (u16, String) {
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut parts = text.splitn(2, ' ');
    let code = parts.next().unwrap_or("").parse().unwrap_or(0);
    (code, parts.next().unwrap_or("").trim().to_string())
}

/// GETs `path` over HTTPS on `addr:port` from the host.
pub fn https_status(addr: IpAddr, port: u16, path: &str, ca: &Path) -> (u16, String) {
    let url = format!("https://{DOMAIN}:{port}{path}");
    let mut cmd = Command::new("curl");
    cmd.args(curl_args(&url, port, addr, ca));
    status_of(cmd)
}

/// GETs `path` over plain HTTP on `addr:port` from the host.
pub fn http_status(addr: IpAddr, port: u16, path: &str) -> (u16, String) {
    let url = format!("http://{DOMAIN}:{port}{path}");
    let mut cmd = Command::new("curl");
    cmd.args(curl_args(&url, port, addr, Path::new("/dev/null")));
    status_of(cmd)
}

/// The serial number (lowercase hex, no leading zeros) of the certificate
/// served on `addr:port` for SNI `blog.test`.
pub fn served_serial(addr: IpAddr, port: u16) -> String {
    let connect = match addr {
        IpAddr::V4(v4) => format!("{v4}:{port}"),
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
    };
    let out = Command::new("sh")
        .args([
            "-c",
            "openssl s_client -connect \"$1\" -servername \"$2\" </dev/null 2>/dev/null \
             | openssl x509 -noout -serial",
            "sh",
            &connect,
            DOMAIN,
        ])
        .output()
        .unwrap();
    serial_from_openssl(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|| panic!("no certificate served on {connect}: {out:?}"))
}

/// The serial of the PEM certificate at `path`.
pub fn file_serial(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path)
        .output()
        .unwrap();
    serial_from_openssl(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|| panic!("no certificate in {}: {out:?}", path.display()))
}

fn serial_from_openssl(text: &str) -> Option<String> {
    let hex = text.trim().strip_prefix("serial=")?;
    let hex = hex.trim_start_matches('0').to_ascii_lowercase();
    (!hex.is_empty()).then_some(hex)
}

/// The `Key:` line of `/proc/PID/status`, e.g. `Uid`, `CapEff`.
pub fn proc_status(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in /proc/{pid}/status"))
        .trim()
        .to_string()
}

/// Runs a command and returns its output, panicking if it could not start.
pub fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// Every compose object of project `hopless` still on the engine.
pub fn leftover_objects() -> String {
    let mut all = String::new();
    for args in [
        &[
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.project=hopless",
        ][..],
        &[
            "network",
            "ls",
            "-q",
            "--filter",
            "label=com.docker.compose.project=hopless",
        ][..],
        &[
            "volume",
            "ls",
            "-q",
            "--filter",
            "label=com.docker.compose.project=hopless",
        ][..],
    ] {
        let out = output(Command::new("docker").args(args));
        all.push_str(String::from_utf8_lossy(&out.stdout).trim());
    }
    all
}
