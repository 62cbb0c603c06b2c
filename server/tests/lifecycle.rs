//! Robustness against the real binary: graceful stop with a slow response
//! in flight, header floods, slow and idle clients, the connection cap, and
//! the error messages a non-root user sees (run as uid 2200 with setpriv).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use nix::sys::signal::Signal;
use support::*;

/// A site with one large incompressible asset, to keep a response in
/// flight for as long as the client reads slowly.
fn big_site(tmp: &tempfile::TempDir, bytes: usize) -> std::path::PathBuf {
    let site = write_site(tmp.path());
    let mut x: u64 = 7;
    let big: Vec<u8> = (0..bytes)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    std::fs::write(site.join("static/big.bin"), big).unwrap();
    site
}

/// A TCP connection with a small receive buffer, so the server cannot
/// push a large response into the kernel in one go.
fn slow_client(addr: std::net::SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    stream
}

/// The blog serving the small test site on both listeners, plus `extra`.
fn site_blog(tmp: &tempfile::TempDir, extra: &[&str]) -> Blog {
    let site = write_site(tmp.path());
    let mut args = vec!["--site", site.to_str().unwrap(), "--http-serves-site"];
    args.extend_from_slice(extra);
    Blog::start(&args)
}

#[test]
fn sigterm_lets_a_slow_response_finish_closes_idle_connections_and_exits_0() {
    let tmp = tempfile::tempdir().unwrap();
    let size = 24 * 1024 * 1024;
    let site = big_site(&tmp, size);
    let mut blog = Blog::start(&[
        "--site",
        site.to_str().unwrap(),
        "--http-serves-site",
        "--grace-period",
        "60",
    ]);

    let mut idle = TcpStream::connect(blog.http).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 4096];
    assert!(idle.read(&mut buf).unwrap() > 0, "keep-alive answer");

    let mut slow = slow_client(blog.http);
    slow.write_all(b"GET /static/big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut received = Vec::new();
    while received.len() < 64 * 1024 {
        let n = slow.read(&mut buf).unwrap();
        assert!(n > 0);
        received.extend_from_slice(&buf[..n]);
    }

    blog.signal(Signal::SIGTERM);
    blog.wait_log("SIGTERM: no longer accepting", Duration::from_secs(10));
    // The idle keep-alive connection is closed by the server.
    let closed = loop {
        match idle.read(&mut buf) {
            Ok(0) => break true,
            Ok(_) => continue,
            Err(_) => break false,
        }
    };
    assert!(closed, "idle connection closed on shutdown");
    assert!(
        blog.wait_exit(Duration::from_millis(200)).is_none(),
        "still serving the slow response"
    );

    // Read the rest slowly (a pause every megabyte).
    let mut next_pause = received.len() + (1 << 20);
    loop {
        let n = slow.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
        if received.len() > next_pause {
            std::thread::sleep(Duration::from_millis(20));
            next_pause += 1 << 20;
        }
    }
    let split = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(received.len() - split, size, "the whole body arrived");

    let status = blog
        .wait_exit(Duration::from_secs(20))
        .expect("exits after the response");
    assert_eq!(status.code(), Some(0), "log:\n{}", blog.log());
    assert!(TcpStream::connect(blog.http).is_err(), "listener is closed");
}

#[test]
fn sigterm_serves_connections_queued_in_the_backlog_instead_of_resetting_them() {
    let tmp = tempfile::tempdir().unwrap();
    let mut blog = site_blog(&tmp, &["--max-connections", "1"]);
    // One connection holds the only permit, so the next ones complete
    // their TCP handshake in the kernel and wait there, unaccepted.
    let mut holder = TcpStream::connect(blog.http).unwrap();
    assert_eq!(get_keepalive(&mut holder), 200, "the holder is served");
    let queued: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect(blog.http).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));

    blog.signal(Signal::SIGTERM);
    blog.wait_log("SIGTERM: no longer accepting", Duration::from_secs(10));
    for (i, mut stream) in queued.into_iter().enumerate() {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut answer = Vec::new();
        let read = stream.read_to_end(&mut answer);
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            read.is_ok() && status(&answer) == 200,
            "queued connection {i} got {read:?} {answer:.80}; log:\n{}",
            blog.log()
        );
    }
    let status = blog
        .wait_exit(Duration::from_secs(15))
        .expect("exits once the queued connections are served");
    assert_eq!(status.code(), Some(0), "log:\n{}", blog.log());
    assert!(TcpStream::connect(blog.http).is_err(), "listener is closed");
}

/// One request on `stream` (kept alive), its status.
fn get_keepalive(stream: &mut TcpStream) -> u16 {
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    status(&String::from_utf8_lossy(&buf[..n]))
}

#[test]
fn at_the_connection_cap_the_oldest_idle_connection_makes_room() {
    let tmp = tempfile::tempdir().unwrap();
    let blog = site_blog(&tmp, &["--max-connections", "2"]);
    let mut oldest = TcpStream::connect(blog.http).unwrap();
    assert_eq!(get_keepalive(&mut oldest), 200);
    let mut second = TcpStream::connect(blog.http).unwrap();
    assert_eq!(get_keepalive(&mut second), 200);
    // Past the grace a fresh connection gets before it can be asked to go.
    std::thread::sleep(Duration::from_millis(1200));

    let mut third = TcpStream::connect(blog.http).unwrap();
    assert_eq!(get_keepalive(&mut third), 200, "log:\n{}", blog.log());
    let mut rest = Vec::new();
    let closed = oldest.read_to_end(&mut rest);
    assert!(
        matches!(closed, Ok(0)),
        "the oldest idle connection is closed cleanly to make room: {closed:?} {rest:?}"
    );
    assert_eq!(get_keepalive(&mut second), 200, "the second one stays open");
}

#[test]
fn header_flood_is_answered_431() {
    let tmp = tempfile::tempdir().unwrap();
    let blog = site_blog(&tmp, &[]);

    let mut many = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
    for i in 0..500 {
        many.push_str(&format!("X-Flood-{i}: {}\r\n", "a".repeat(60)));
    }
    many.push_str("\r\n");
    let answer = raw(blog.http, many.as_bytes());
    assert_eq!(status(&answer), 431, "{answer:.200}");

    let huge = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nCookie: {}\r\n\r\n",
        "c".repeat(64 * 1024)
    );
    assert_eq!(status(&raw(blog.http, huge.as_bytes())), 431);

    // The server is still fine afterwards.
    assert_eq!(status(&get(blog.http, "/", "x", "")), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn many_idle_half_open_connections_do_not_block_a_normal_client() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = certbot(tmp.path());
    let le = certs.root().to_str().unwrap().to_string();
    let blog = Blog::start(&[
        "--letsencrypt-dir",
        &le,
        "--domain",
        "blog.test",
        "--http-serves-site",
        "--header-timeout",
        "120",
        "--handshake-timeout",
        "120",
    ]);

    let mut idle = Vec::new();
    for i in 0..300 {
        let mut tls = TcpStream::connect(blog.https).unwrap();
        if i % 2 == 0 {
            tls.write_all(&[0x16, 0x03, 0x01]).unwrap(); // a TLS record header, then nothing
        }
        let mut http = TcpStream::connect(blog.http).unwrap();
        http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .unwrap();
        idle.push((tls, http));
    }

    let client = tls_client(&certs.ca_pem(), &[b"h2"]);
    let served = tokio::time::timeout(Duration::from_secs(30), async {
        let stream = tls_connect(&client, blog.https, "blog.test").await;
        let mut h2 = h2(stream).await;
        let resp = h2
            .send_request(request("GET", "https://blog.test/", &[]))
            .await
            .unwrap();
        resp.status()
    })
    .await
    .expect("a normal HTTPS client is served while 600 idle connections are open");
    assert_eq!(served, 200);
    let plain = tokio::task::spawn_blocking({
        let addr = blog.http;
        move || get(addr, "/", "x", "")
    });
    assert_eq!(status(&plain.await.unwrap()), 200);
    drop(idle);
}

#[test]
fn slow_headers_and_silent_handshakes_are_cut_off() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = certbot(tmp.path());
    let le = certs.root().to_str().unwrap().to_string();
    let blog = Blog::start(&[
        "--letsencrypt-dir",
        &le,
        "--domain",
        "blog.test",
        "--http-serves-site",
        "--header-timeout",
        "1",
        "--handshake-timeout",
        "1",
    ]);
    let mut slowloris = TcpStream::connect(blog.http).unwrap();
    slowloris
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut silent = TcpStream::connect(blog.https).unwrap();
    for stream in [&mut slowloris, &mut silent] {
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut rest = Vec::new();
        // The server closes (EOF or reset), well before our 30 s read timeout.
        match stream.read_to_end(&mut rest) {
            Ok(_) => {}
            Err(e) => assert_ne!(e.kind(), std::io::ErrorKind::WouldBlock, "not closed: {e}"),
        }
    }
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let certs = certbot(tmp.path());
    let le = certs.root().to_str().unwrap().to_string();
    let blog = Blog::start(&[
        "--letsencrypt-dir",
        &le,
        "--domain",
        "blog.test",
        "--idle-timeout",
        "1",
    ]);
    let out = std::process::Command::new("curl")
        .args([
            "-s",
            "--http2",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--cacert",
        ])
        .arg(certs.write_ca(&tmp.path().join("ca.pem")).unwrap())
        .args([
            "--resolve",
            &format!("blog.test:{}:127.0.0.1", blog.https.port()),
        ])
        .arg(format!("https://blog.test:{}/", blog.https.port()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200");

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let client = tls_client(&certs.ca_pem(), &[b"h2"]);
        let stream = tls_connect(&client, blog.https, "blog.test").await;
        let (mut sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .unwrap();
        let conn = tokio::spawn(conn);
        let resp = sender
            .send_request(request("GET", "https://blog.test/", &[]))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        drop(resp);
        // An HTTP/2 connection left idle is closed by the server.
        let ended = tokio::time::timeout(Duration::from_secs(30), conn).await;
        assert!(ended.is_ok(), "server closed the idle HTTP/2 connection");
    });
}

#[test]
fn excess_connections_wait_instead_of_failing() {
    let tmp = tempfile::tempdir().unwrap();
    let blog = site_blog(&tmp, &["--max-connections", "2"]);
    let first = TcpStream::connect(blog.http).unwrap();
    let second = TcpStream::connect(blog.http).unwrap();
    let addr = blog.http;
    let waiting = std::thread::spawn(move || get(addr, "/healthz", "x", ""));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        !waiting.is_finished(),
        "the third connection waits while two are open"
    );
    drop(first);
    drop(second);
    assert_eq!(status(&waiting.join().unwrap()), 200);
}

/// A temporary directory uid 2200 can traverse.
fn shared_tempdir() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    tmp
}

#[test]
fn non_root_bind_of_a_low_port_explains_the_fixes() {
    let (status, log) = run_as(
        2200,
        &[
            "--http-port",
            "1023",
            "--https-port",
            "0",
            "--listen",
            "127.0.0.1",
        ],
        Duration::from_secs(60),
    );
    let status = status.expect("exits");
    assert!(!status.success());
    assert!(log.contains("cannot listen on 127.0.0.1:1023"), "{log}");
    assert!(log.contains("port 1023 as uid 2200"), "{log}");
    assert!(log.contains("setcap cap_net_bind_service=+ep"), "{log}");
    assert!(log.contains("bridge networking"), "{log}");
    assert!(
        log.contains("running as uid 2200 gid 2200 groups none capabilities none"),
        "{log}"
    );
}

#[test]
fn unreadable_key_names_the_file_the_uid_and_the_group_fix() {
    let tmp = shared_tempdir();
    let certs = certbot(tmp.path());
    let le = certs.root().to_str().unwrap().to_string();
    let args = [
        "--letsencrypt-dir",
        &le,
        "--domain",
        "blog.test",
        "--listen",
        "127.0.0.1",
        "--http-port",
        "0",
        "--https-port",
        "0",
    ];
    let (status, log) = run_as(2200, &args, Duration::from_secs(60));
    assert!(!status.expect("exits").success());
    assert!(
        log.contains("cannot read") && log.contains("live/blog.test/fullchain.pem"),
        "{log}"
    );
    assert!(log.contains("uid 2200 gid 2200"), "{log}");
    assert!(log.contains("chmod 0750, chgrp 2200"), "{log}");

    // With the group grant the same user serves.
    certs.grant_group(2200).unwrap();
    let (status, log) = run_as(2200, &args, Duration::from_secs(60));
    assert!(status.is_none(), "keeps running: {log}");
    assert!(
        log.contains("certificate from") && log.contains("CN=blog.test"),
        "{log}"
    );
    assert!(
        !log.contains("never needed"),
        "no root warning for uid 2200"
    );
}

#[test]
fn non_root_with_the_file_capability_binds_low_ports_and_reads_a_granted_cert() {
    let tmp = shared_tempdir();
    let certs = certbot(tmp.path());
    certs.grant_group(2200).unwrap();
    let binary = tmp.path().join("blog");
    std::fs::copy(BLOG, &binary).unwrap();
    let setcap = std::process::Command::new("setcap")
        .args(["cap_net_bind_service=+ep"])
        .arg(&binary)
        .status()
        .expect("setcap (libcap2-bin)");
    assert!(setcap.success());

    // Low ports no other crate uses; a lock of their own keeps two runs of
    // this test apart without waiting behind the Docker lock.
    let _ports =
        testbed::lock::exclusive_at(std::path::Path::new("/tmp/hopless-server-1021-1022.lock"))
            .unwrap();
    let le = certs.root().to_str().unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid", "2200", "--regid", "2200", "--clear-groups"])
        .arg(&binary)
        .args([
            "--letsencrypt-dir",
            le,
            "--domain",
            "blog.test",
            "--listen",
            "127.0.0.1",
        ])
        .args(["--http-port", "1022", "--https-port", "1021"]);
    let blog = Blog::spawn(&mut cmd);
    assert_eq!((blog.http.port(), blog.https.port()), (1022, 1021));
    let log = blog.log();
    assert!(
        log.contains("running as uid 2200 gid 2200 groups none capabilities cap_net_bind_service"),
        "{log}"
    );
    let moved = get(blog.http, "/", "blog.test", "");
    assert_eq!(status(&moved), 301);
    assert_eq!(header(&moved, "location"), Some("https://blog.test:1021/"));
}

#[test]
fn sigint_stops_an_idle_server_with_exit_0() {
    let mut blog = Blog::start(&[]);
    blog.signal(Signal::SIGINT);
    let status = blog.wait_exit(Duration::from_secs(20)).expect("exits");
    assert_eq!(status.code(), Some(0));
    blog.wait_log("SIGINT: no longer accepting", Duration::from_secs(5));
}
