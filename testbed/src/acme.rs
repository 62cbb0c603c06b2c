//! A real ACME issuance on loopback: Debian's `pebble` (test CA) with
//! `pebble-challtestsrv` as its DNS (every name resolves to 127.0.0.1), and
//! `certbot` driven against it with `--webroot`.

use std::fs;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where pebble answers ACME requests.
pub const DIRECTORY_URL: &str = "https://127.0.0.1:14000/dir";
const ACME_PORT: u16 = 14000;
const PEBBLE_MANAGEMENT_PORT: u16 = 15000;
const DNS_PORT: u16 = 8053;
const CHALLTESTSRV_MANAGEMENT_PORT: u16 = 8055;

/// What can go wrong while running pebble or certbot.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    /// A program could not be started.
    #[error("cannot run {program}: {source} (apt-get install pebble certbot)")]
    Spawn {
        /// The program.
        program: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A port pebble needs is taken.
    #[error("port {port} on 127.0.0.1 is taken; pebble and pebble-challtestsrv need 8053, 8055, 14000 and 15000 (stop what holds it)")]
    PortBusy {
        /// The port.
        port: u16,
    },
    /// A server did not start listening in time.
    #[error("{program} did not listen on 127.0.0.1:{port} within 15 s; its log:\n{log}")]
    NotReady {
        /// The program.
        program: String,
        /// The port it should have opened.
        port: u16,
        /// Its output so far.
        log: String,
    },
    /// certbot ran and failed.
    #[error("`{command}` failed ({status}):\n{output}")]
    Certbot {
        /// The command line.
        command: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed.
        output: String,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// rcgen could not make pebble's own certificate.
    #[error("cannot generate pebble's certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// pebble and pebble-challtestsrv, running until dropped.
#[derive(Debug)]
pub struct Pebble {
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Pebble {
    /// Starts the DNS server and pebble, which validates http-01
    /// challenges on `http_port` of whatever the names resolve to
    /// (127.0.0.1): the port of the server under test.
    pub fn start(http_port: u16) -> Result<Pebble, AcmeError> {
        for port in [
            ACME_PORT,
            PEBBLE_MANAGEMENT_PORT,
            CHALLTESTSRV_MANAGEMENT_PORT,
        ] {
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                return Err(AcmeError::PortBusy { port });
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("hopless-pebble-")
            .tempdir()
            .map_err(|source| AcmeError::Io {
                path: std::env::temp_dir(),
                source,
            })?;
        let mut pebble = Pebble {
            dir,
            children: Vec::new(),
        };

        let dns = format!("127.0.0.1:{DNS_PORT}");
        let management = format!("127.0.0.1:{CHALLTESTSRV_MANAGEMENT_PORT}");
        // Only the DNS part, without AAAA answers: names resolve to 127.0.0.1
        // only, so a server listening on IPv4 alone is validated too.
        let dns_only = [
            "-defaultIPv6",
            "",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
        ];
        let args = [
            &["-dns01", &dns, "-management", &management][..],
            &dns_only[..],
        ]
        .concat();
        pebble.spawn("pebble-challtestsrv", &args, &[])?;
        pebble.wait_listening("pebble-challtestsrv", CHALLTESTSRV_MANAGEMENT_PORT)?;

        let config = pebble.write_config(http_port)?;
        let config = config.display().to_string();
        let env = [("PEBBLE_VA_NOSLEEP", "1"), ("PEBBLE_WFE_NONCEREJECT", "0")];
        pebble.spawn("pebble", &["-config", &config, "-dnsserver", &dns], &env)?;
        pebble.wait_listening("pebble", ACME_PORT)?;
        Ok(pebble)
    }

    /// What pebble and the DNS server printed so far.
    pub fn log(&self) -> String {
        ["pebble-challtestsrv", "pebble"]
            .iter()
            .map(|p| {
                fs::read_to_string(self.dir.path().join(format!("{p}.log"))).unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Writes pebble's root certificate (fetched from its management
    /// interface) to `path`, for clients to verify issued chains against.
    pub fn write_root(&self, path: &Path) -> Result<PathBuf, AcmeError> {
        let url = format!("https://127.0.0.1:{PEBBLE_MANAGEMENT_PORT}/roots/0");
        let out = Command::new("curl")
            .args([
                "--silent",
                "--show-error",
                "--fail",
                "--insecure",
                "--max-time",
                "5",
                &url,
            ])
            .output()
            .map_err(|source| AcmeError::Spawn {
                program: "curl".into(),
                source,
            })?;
        let pem = String::from_utf8_lossy(&out.stdout).into_owned();
        if !out.status.success() || !pem.contains("BEGIN CERTIFICATE") {
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            return Err(AcmeError::NotReady {
                program: format!("pebble root at {url}"),
                port: PEBBLE_MANAGEMENT_PORT,
                log: stderr,
            });
        }
        write(path, &pem)?;
        Ok(path.to_path_buf())
    }

    fn write_config(&self, http_port: u16) -> Result<PathBuf, AcmeError> {
        let key = rcgen::KeyPair::generate()?;
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])?;
        let cert = params.self_signed(&key)?;
        let (cert_path, key_path) = (self.path("cert.pem"), self.path("key.pem"));
        write(&cert_path, &cert.pem())?;
        write(&key_path, &key.serialize_pem())?;
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{ACME_PORT}"),
                "managementListenAddress": format!("127.0.0.1:{PEBBLE_MANAGEMENT_PORT}"),
                "certificate": cert_path,
                "privateKey": key_path,
                "httpPort": http_port,
                "tlsPort": 5001,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        let path = self.path("pebble-config.json");
        write(&path, &config.to_string())?;
        Ok(path)
    }

    fn spawn(
        &mut self,
        program: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<(), AcmeError> {
        let log_path = self.path(&format!("{program}.log"));
        let log = fs::File::create(&log_path).map_err(|source| AcmeError::Io {
            path: log_path.clone(),
            source,
        })?;
        let err_log = log.try_clone().map_err(|source| AcmeError::Io {
            path: log_path,
            source,
        })?;
        let child = Command::new(program)
            .args(args)
            .envs(env.iter().copied())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .map_err(|source| AcmeError::Spawn {
                program: program.to_string(),
                source,
            })?;
        self.children.push(child);
        Ok(())
    }

    fn wait_listening(&self, program: &str, port: u16) -> Result<(), AcmeError> {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(15) {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(AcmeError::NotReady {
            program: program.to_string(),
            port,
            log: self.log(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// certbot with its own config, work and logs directories, talking to
/// pebble.
#[derive(Debug, Clone)]
pub struct Certbot {
    config_dir: PathBuf,
    scratch: PathBuf,
}

impl Certbot {
    /// certbot keeping its certificates in `config_dir` (what
    /// `/etc/letsencrypt` is) and its work and logs under `scratch`.
    pub fn new(config_dir: &Path, scratch: &Path) -> Certbot {
        Certbot {
            config_dir: config_dir.to_path_buf(),
            scratch: scratch.to_path_buf(),
        }
    }

    /// The certbot configuration directory.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// First issuance for `domain` over http-01, writing the challenge
    /// files into `webroot` for the server under test to serve.
    pub fn certonly_webroot(&self, domain: &str, webroot: &Path) -> Result<String, AcmeError> {
        let webroot = webroot.display().to_string();
        let args = ["certonly", "--webroot", "-w", &webroot, "-d", domain];
        self.run(
            &[
                &args[..],
                &["--register-unsafely-without-email", "--agree-tos"],
            ]
            .concat(),
        )
    }

    /// `certbot renew --force-renewal` without the random sleep; runs the
    /// deploy hooks in `renewal-hooks/deploy/`.
    pub fn renew_forced(&self) -> Result<String, AcmeError> {
        self.run(&["renew", "--force-renewal", "--no-random-sleep-on-renew"])
    }

    fn run(&self, args: &[&str]) -> Result<String, AcmeError> {
        let dirs = [
            ("--config-dir", self.config_dir.clone()),
            ("--work-dir", self.scratch.join("work")),
            ("--logs-dir", self.scratch.join("logs")),
        ];
        let mut cmd = Command::new("certbot");
        cmd.args(args).args([
            "--server",
            DIRECTORY_URL,
            "--no-verify-ssl",
            "--non-interactive",
        ]);
        for (flag, dir) in &dirs {
            cmd.arg(flag).arg(dir);
        }
        let command = format!("certbot {}", args.join(" "));
        let out = cmd.output().map_err(|source| AcmeError::Spawn {
            program: "certbot".into(),
            source,
        })?;
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if !out.status.success() {
            return Err(AcmeError::Certbot {
                command,
                status: out.status,
                output,
            });
        }
        Ok(output)
    }
}

fn write(path: &Path, text: &str) -> Result<(), AcmeError> {
    fs::write(path, text).map_err(|source| AcmeError::Io {
        path: path.to_path_buf(),
        source,
    })
}
