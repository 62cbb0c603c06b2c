//! Faults under steady load: the certificate directory vanishes, becomes
//! unreadable or holds a broken pair (the server must keep serving the
//! old certificate, say why, and pick up the next good one), a renewal
//! with SIGHUP, and a graceful stop with SIGTERM.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::blog::{Blog, BlogOptions};
use crate::outcome::Outcome;
use crate::probe::{self, ProbeSpec};
use crate::scenario::Scale;
use crate::ScenarioError;

/// The uid and gid the deployment runs as.
pub const SERVICE_ID: u32 = 2200;

/// The well-behaved client for certificate faults: a new connection (a
/// full TLS handshake against the current certificate) per request.
fn handshaking_probe(window: Duration) -> ProbeSpec {
    ProbeSpec {
        rate: 50,
        connections: 4,
        duration: window,
        http2: false,
        new_connection: true,
    }
}

/// Runs `break_it` on a fresh server while the handshaking client runs,
/// then checks the old certificate is still served and the reason was
/// logged (`reason` in the log line), then `repair` and a renewal must be
/// picked up.
fn cert_fault(
    name: &str,
    tried: &str,
    scale: &Scale,
    options: BlogOptions,
    reason: &str,
    break_it: impl FnOnce(&mut Blog) -> Result<(), ScenarioError>,
    repair: impl FnOnce(&mut Blog) -> Result<(), ScenarioError>,
) -> Result<Outcome, ScenarioError> {
    let mut blog = Blog::start(options)?;
    let first = blog.issued_certificate(1)?;
    let probe = probe::spawn(&blog, &handshaking_probe(scale.load_window));
    std::thread::sleep(Duration::from_millis(500));

    let mark = blog.log_len();
    break_it(&mut blog)?;
    let line = blog.wait_log_after(
        mark,
        "failed, still serving the previous one",
        Duration::from_secs(5),
    );
    let mut out = Outcome::new(name, tried, 1);
    out.check(
        format!("the server logs the failed reload and why ({reason})"),
        line.as_deref().is_some_and(|l| l.contains(reason)),
        line.clone()
            .unwrap_or_else(|| format!("no such line; log:\n{}", blog.log())),
    );
    let served_old = blog.served_certificate()? == first;
    out.check(
        "new handshakes still get the previous certificate",
        served_old,
        if served_old {
            "certificate 1 served"
        } else {
            "another certificate served"
        },
    );
    let metrics = blog.metrics_text()?;
    out.check(
        "the metrics expose the failing reload (blog_certificate_reload_failing 1)",
        reload_failing(&metrics) == Some(true),
        metrics_line(&metrics, "blog_certificate_reload"),
    );
    out.count_as(
        if line.is_some() {
            "logged at error level"
        } else {
            "not logged"
        },
        1,
    );

    let mark = blog.log_len();
    repair(&mut blog)?;
    blog.certs_mut().renew()?;
    let version = blog.certs().version();
    let reloaded = blog.wait_log_after(mark, "certificate reloaded", Duration::from_secs(5));
    let served_new = blog.served_certificate()? == blog.issued_certificate(version)?;
    let metrics = blog.metrics_text()?;
    out.check(
        "after the good renewal the metrics say so (blog_certificate_reload_failing 0)",
        reload_failing(&metrics) == Some(false),
        metrics_line(&metrics, "blog_certificate_reload"),
    );
    out.check(
        "once repaired, the next renewal is served",
        reloaded.is_some() && served_new,
        format!(
            "reload logged: {}, certificate {version} served: {served_new}",
            reloaded.is_some()
        ),
    );
    out.add_probe(probe::join(probe)?);
    Ok(out)
}

/// The value of `blog_certificate_reload_failing` in a metrics text:
/// `Some(true)` while the last reload failed, `None` when absent.
pub fn reload_failing(text: &str) -> Option<bool> {
    text.lines()
        .find_map(|l| l.strip_prefix("blog_certificate_reload_failing "))
        .map(|v| v.trim() == "1")
}

/// The metric lines starting with `prefix`, joined, for messages.
fn metrics_line(text: &str, prefix: &str) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with(prefix)).collect();
    if lines.is_empty() {
        format!("no {prefix}* series")
    } else {
        lines.join(", ")
    }
}

/// The certificate directory is moved away, then put back.
pub fn cert_dir_vanishes(scale: &Scale) -> Result<Outcome, ScenarioError> {
    cert_fault(
        "cert-dir-vanishes",
        "the whole certificate directory renamed away at runtime, under handshaking load",
        scale,
        BlogOptions::default(),
        "No such file or directory",
        |blog| {
            let root = blog.certs().root().to_path_buf();
            std::fs::rename(&root, root.with_extension("gone"))
                .map_err(ScenarioError::io(format!("moving {} away", root.display())))
        },
        |blog| {
            let root = blog.certs().root().to_path_buf();
            std::fs::rename(root.with_extension("gone"), &root)
                .map_err(ScenarioError::io(format!("moving {} back", root.display())))
        },
    )
}

/// A renewal whose private key the service user cannot read (mode 0600,
/// root-owned), with the server running as uid/gid 2200.
pub fn cert_unreadable(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let options = BlogOptions {
        run_as: Some(SERVICE_ID),
        ..BlogOptions::default()
    };
    cert_fault(
        "cert-unreadable",
        "a renewal whose new private key is root-only (0600, group root), server running as uid 2200",
        scale,
        options,
        "Permission denied",
        |blog| {
            // certbot gives a new key the group and mode of the previous
            // one: making the current key root-only makes the renewal's
            // key root-only from the moment it is written.
            lock_out(&blog.certs().privkey_path())?;
            Ok(blog.certs_mut().renew()?)
        },
        |blog| {
            let key = blog.certs().privkey_path();
            if let Ok(target) = key.canonicalize() {
                let gid = nix::unistd::Gid::from_raw(SERVICE_ID);
                let _ = nix::unistd::chown(&target, None, Some(gid));
                let _ = std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640));
            }
            Ok(())
        },
    )
}

/// Makes the file behind `link` mode 0600 with group root.
fn lock_out(link: &std::path::Path) -> Result<(), ScenarioError> {
    let target = link
        .canonicalize()
        .map_err(ScenarioError::io(format!("resolving {}", link.display())))?;
    nix::unistd::chown(&target, None, Some(nix::unistd::Gid::from_raw(0))).map_err(|e| {
        ScenarioError::Io {
            what: format!("chgrp root {}", target.display()),
            source: std::io::Error::from_raw_os_error(e as i32),
        }
    })?;
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600))
        .map_err(ScenarioError::io(format!("chmod 600 {}", target.display())))
}

/// A renewal whose private key does not match its certificate.
pub fn cert_broken_pair(scale: &Scale) -> Result<Outcome, ScenarioError> {
    cert_fault(
        "cert-broken-pair",
        "a renewal whose private key does not match its certificate",
        scale,
        BlogOptions::default(),
        "does not match",
        |blog| Ok(blog.certs_mut().renew_with_mismatched_key()?),
        |_| Ok(()),
    )
}

/// A certbot renewal and SIGHUP halfway through steady load: every
/// request answered, the new certificate served after.
pub fn renewal_under_load(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let blog = Blog::start(BlogOptions::default())?;
    let mut blog = blog;
    let window = scale.load_window;
    let keep_alive = probe::spawn(&blog, &ProbeSpec::steady(window));
    let handshaking = probe::spawn(&blog, &handshaking_probe(window));
    std::thread::sleep(window / 2);
    let mark = blog.log_len();
    blog.certs_mut().renew()?;
    blog.signal(Signal::SIGHUP)?;
    let reloaded = blog.wait_log_after(mark, "certificate reloaded", Duration::from_secs(5));
    let served_new = blog.served_certificate()? == blog.issued_certificate(2)?;
    let keep_alive = probe::join(keep_alive)?;
    let handshaking = probe::join(handshaking)?;

    let mut out = Outcome::new(
        "renewal-under-load",
        "certbot-style renewal plus SIGHUP halfway through 100 requests/s keep-alive and 50 requests/s new-connection HTTPS load",
        keep_alive.sent + handshaking.sent,
    );
    out.count_as(
        "requests answered",
        keep_alive.completed + handshaking.completed,
    );
    out.check(
        "the renewed certificate is served after SIGHUP",
        reloaded.is_some() && served_new,
        reloaded.unwrap_or_else(|| "no reload logged".into()),
    );
    out.requests_lost += handshaking.lost();
    out.check(
        "no handshaking request failed",
        handshaking.lost() == 0 && handshaking.refused() == 0,
        format!("errors {:?}", handshaking.errors_by_kind),
    );
    out.add_probe(keep_alive);
    Ok(out)
}

/// SIGTERM halfway through steady load: the server exits 0 within its
/// grace period and no request it accepted is cut off. Two clients run:
/// one opening a connection per request (any failure but a refused
/// connection is a request cut off) and one on keep-alive connections,
/// whose requests can race the server closing an idle connection (a
/// request written as the close arrives; counted, reported, not judged:
/// a client retries a GET that met a closed keep-alive connection).
pub fn graceful_stop_under_load(scale: &Scale) -> Result<Outcome, ScenarioError> {
    let mut blog = Blog::start(BlogOptions::default())?;
    let window = scale.load_window;
    let fresh = probe::spawn(&blog, &handshaking_probe(window));
    let keep_alive = probe::spawn(&blog, &ProbeSpec::steady(window));
    std::thread::sleep(window / 2);
    let slow = SlowReader::start(blog.http)?;
    let stopped_at = Instant::now();
    blog.signal(Signal::SIGTERM)?;
    let status = blog.wait_exit(Duration::from_secs(15));
    let exit_after = stopped_at.elapsed();
    let slow = slow.finish();
    let fresh = probe::join(fresh)?;
    let keep_alive = probe::join(keep_alive)?;

    let mut out = Outcome::new(
        "graceful-stop-under-load",
        "SIGTERM halfway through 50 requests/s on a new HTTPS connection each and 100 requests/s over 2 keep-alive HTTPS connections",
        fresh.sent + keep_alive.sent,
    );
    out.count_as(
        "answered before the stop",
        fresh.completed + keep_alive.completed,
    );
    out.count_as(
        "refused after the stop (nothing listening)",
        fresh.refused() + keep_alive.refused(),
    );
    out.count_as(
        "keep-alive requests that met the idle close (client retries)",
        keep_alive.lost(),
    );
    out.check(
        "the server exits 0 within its grace period",
        status.is_some_and(|s| s.success()),
        format!("{status:?} after {:.2} s", exit_after.as_secs_f64()),
    );
    out.figure(
        "SIGTERM to exit",
        (exit_after.as_secs_f64() * 1000.0).round(),
        "ms",
        "from kill(SIGTERM) to waitpid, under 150 requests/s, grace period 10 s",
    );
    out.figure(
        "keep-alive requests closed by the stop",
        keep_alive.lost() as f64,
        "requests",
        format!(
            "requests of the keep-alive client that met the server closing its idle connection, of {} (loadgen errors {:?})",
            keep_alive.sent, keep_alive.errors_by_kind
        ),
    );
    out.check(
        "a response being read slowly when SIGTERM arrives is delivered whole",
        slow.complete,
        format!(
            "{} of {} body bytes of /feed.xml read at about 100 KiB/s over a 4 KiB receive buffer",
            slow.body_read, slow.body_len
        ),
    );
    out.count_as(
        "new-connection requests reset at the stop (accepted by the kernel, never read)",
        fresh.lost(),
    );
    out.requests_lost = fresh.lost();
    out.check(
        "no new-connection request failed other than by a refused connection",
        fresh.lost() == 0,
        format!("errors {:?}", fresh.errors_by_kind),
    );
    out.probe = Some(keep_alive);
    Ok(out)
}

/// A client reading `/feed.xml` over plain HTTP through a 4 KiB receive
/// buffer, 1 KiB every 10 ms, so its response is still being delivered
/// when the server is told to stop.
struct SlowReader {
    thread: std::thread::JoinHandle<SlowRead>,
}

/// What the slow reader got.
#[derive(Debug, Default)]
struct SlowRead {
    body_len: usize,
    body_read: usize,
    complete: bool,
}

impl SlowReader {
    /// Connects, sends the request and returns once the first bytes of
    /// the response arrived.
    fn start(addr: std::net::SocketAddr) -> Result<SlowReader, ScenarioError> {
        use std::io::{Read, Write};
        let what = format!("slow reader on {addr}");
        let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
            .map_err(ScenarioError::io(what.clone()))?;
        socket
            .set_recv_buffer_size(4096)
            .map_err(ScenarioError::io(what.clone()))?;
        socket
            .connect(&addr.into())
            .map_err(ScenarioError::io(what.clone()))?;
        let mut stream: std::net::TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .map_err(ScenarioError::io(what.clone()))?;
        stream
            .write_all(b"GET /feed.xml HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .map_err(ScenarioError::io(what.clone()))?;
        let mut first = vec![0u8; 1024];
        let n = stream.read(&mut first).map_err(ScenarioError::io(what))?;
        first.truncate(n);
        let thread = std::thread::spawn(move || {
            let mut got = first;
            let mut chunk = [0u8; 1024];
            loop {
                std::thread::sleep(Duration::from_millis(10));
                match stream.read(&mut chunk) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&chunk[..n]),
                }
            }
            SlowRead::of(&got)
        });
        Ok(SlowReader { thread })
    }

    /// Waits for the reader to see the connection end.
    fn finish(self) -> SlowRead {
        self.thread.join().unwrap_or_default()
    }
}

impl SlowRead {
    fn of(response: &[u8]) -> SlowRead {
        let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
            return SlowRead::default();
        };
        let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
        let body_len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let body_read = response.len() - head_end - 4;
        SlowRead {
            body_len,
            body_read,
            complete: body_len > 0 && body_read == body_len,
        }
    }
}
