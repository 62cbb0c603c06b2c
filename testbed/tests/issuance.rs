//! A real issuance and renewal: pebble as the ACME server on loopback,
//! certbot `--webroot` validated through the host-profile server's port
//! 80, the setup script's group grant and deploy hook; the renewed
//! certificate is served without a restart and without a failed request
//! from a load running across the renewal.

mod support;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use support::{chmod, curl_args, file_serial, served_serial, Site, DOMAIN};
use testbed::acme::{Certbot, Pebble};
use testbed::compose::{remove_leftovers, Deployment, Profile, Variant};
use testbed::image::workspace_root;

/// Bounds of the load across the renewal: at most this many requests, for
/// at most this long.
const MAX_REQUESTS: u32 = 5000;
const MAX_LOAD_TIME: Duration = Duration::from_secs(120);

/// What the load saw: (requests, failures with their curl output).
type LoadResult = (u32, Vec<String>);

/// Fresh-connection HTTPS GETs of `/` (curl, chain verified against
/// pebble's root) in a loop until `stop` or the bounds.
fn load(stop: Arc<AtomicBool>, root: PathBuf) -> thread::JoinHandle<LoadResult> {
    thread::spawn(move || {
        let started = Instant::now();
        let (mut requests, mut failures) = (0, Vec::new());
        let localhost: IpAddr = "127.0.0.1".parse().unwrap();
        let url = format!("https://{DOMAIN}/");
        let args = curl_args(&url, 443, localhost, &root);
        while !stop.load(Ordering::Relaxed)
            && requests < MAX_REQUESTS
            && started.elapsed() < MAX_LOAD_TIME
        {
            let out = Command::new("curl").args(&args).output().unwrap();
            requests += 1;
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            if !out.status.success() || !text.starts_with("200") {
                failures.push(format!("{text} {}", String::from_utf8_lossy(&out.stderr)));
            }
        }
        (requests, failures)
    })
}

#[test]
fn pebble_issued_certificate_is_renewed_and_served_without_restart_or_failed_request() {
    // Build (minutes when the server changed) before taking Docker.
    support::image();
    let _lock = testbed::lock::exclusive().unwrap();
    remove_leftovers();
    let localhost: IpAddr = "127.0.0.1".parse().unwrap();

    // The server cannot start without some certificate, so a first deploy
    // runs on a throwaway one while certbot gets the real one.
    let bootstrap = Site::granted();
    let letsencrypt = bootstrap.tmp.path().join("letsencrypt-pebble");
    std::fs::create_dir_all(&letsencrypt).unwrap();
    chmod(&letsencrypt, 0o755);
    let pebble = Pebble::start(80).unwrap_or_else(|e| panic!("{e}"));
    let first =
        Deployment::up(Profile::Host, &bootstrap.config()).unwrap_or_else(|e| panic!("{e}"));

    let certbot = Certbot::new(&letsencrypt, &bootstrap.tmp.path().join("certbot"));
    let issuing = Instant::now();
    certbot
        .certonly_webroot(DOMAIN, &bootstrap.webroot)
        .unwrap_or_else(|e| panic!("{e}\npebble:\n{}\nserver:\n{}", pebble.log(), first.logs()));
    let time_to_issue = issuing.elapsed();
    first.down().unwrap();

    let setup = Command::new(workspace_root().join("scripts/setup-host.sh"))
        .arg("--letsencrypt-dir")
        .arg(&letsencrypt)
        .output()
        .unwrap();
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    // The real deployment; the file watcher is slowed to an hour so that
    // only the deploy hook's SIGHUP can make it switch.
    let cfg = testbed::compose::DeployConfig {
        letsencrypt_dir: letsencrypt.clone(),
        ..bootstrap.config()
    };
    let extra = [("BLOG_CERT_CHECK_INTERVAL", "3600")];
    let mut deployment = Deployment::start(Profile::Host, &cfg, Variant::Standard, &extra).unwrap();
    deployment.wait_healthy().unwrap_or_else(|e| panic!("{e}"));
    let live = letsencrypt.join("live").join(DOMAIN);
    let issued = file_serial(&live.join("cert.pem"));
    assert_eq!(
        served_serial(localhost, 443),
        issued,
        "not the pebble-issued certificate"
    );
    let issuer = Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-in"])
        .arg(live.join("cert.pem"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&issuer.stdout).contains("Pebble"),
        "{issuer:?}"
    );
    let pid = deployment.server_pid().unwrap();
    let started_at = deployment.inspect("{{.State.StartedAt}}").unwrap();

    // Renew under load.
    let stop = Arc::new(AtomicBool::new(false));
    let root = pebble
        .write_root(&bootstrap.tmp.path().join("pebble-root.pem"))
        .unwrap();
    let loader = load(stop.clone(), root);
    thread::sleep(Duration::from_millis(500));
    let renewing = Instant::now();
    let said = certbot
        .renew_forced()
        .unwrap_or_else(|e| panic!("{e}\n{}", pebble.log()));
    let renewed = file_serial(&live.join("cert.pem"));
    assert_ne!(renewed, issued, "certbot renew did not renew");
    while served_serial(localhost, 443) != renewed {
        assert!(
            renewing.elapsed() < Duration::from_secs(60),
            "{said}\n{}",
            deployment.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }
    let time_to_serve = renewing.elapsed();
    thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (requests, failures) = loader.join().unwrap();

    eprintln!(
        "issuance: certbot certonly took {:.1} s; forced renewal to new serial served took {:.1} s \
         (wall clock, one run); load: {requests} fresh-connection HTTPS requests, {} failed",
        time_to_issue.as_secs_f64(),
        time_to_serve.as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "failed requests across the renewal: {failures:?}"
    );
    assert!(requests >= 5, "the load ran only {requests} requests");
    assert_eq!(
        deployment.server_pid().unwrap(),
        pid,
        "the server restarted"
    );
    assert_eq!(
        deployment.inspect("{{.State.StartedAt}}").unwrap(),
        started_at
    );
    assert_eq!(deployment.inspect("{{.RestartCount}}").unwrap().trim(), "0");
    assert!(
        deployment.logs().contains("SIGHUP"),
        "{}",
        deployment.logs()
    );

    // certbot kept the grant on the new key.
    let key = std::fs::canonicalize(live.join("privkey.pem")).unwrap();
    let meta = std::fs::metadata(&key).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        (meta.gid(), meta.permissions().mode() & 0o777),
        (2200, 0o640),
        "{}",
        key.display()
    );
    deployment.down().unwrap();
    drop(pebble);
}
