//! Each compose profile, for real: up and healthy, pages over HTTP and
//! HTTPS from loopback and from a client namespace (IPv4 and IPv6), the
//! server confined (uid/gid 2200, only NET_BIND_SERVICE, read-only root),
//! docker-proxy present only in bridge, and nothing left after down.

mod support;

use std::net::IpAddr;
use std::process::Command;

use support::{
    curl_args, http_status, https_status, leftover_objects, proc_status, status_of, Site, BLOG_ID,
    DOMAIN,
};
use testbed::compose::{docker_proxy_pids_for_ports, remove_leftovers, Deployment, Profile};
use testbed::ClientNamespace;

/// CAP_NET_BIND_SERVICE is bit 10.
const NET_BIND_SERVICE_MASK: &str = "0000000000000400";

fn serves_confined_on_every_path(profile: Profile, ns_index: u8) {
    // Build (minutes when the server changed) before taking Docker.
    support::image();
    let _lock = testbed::lock::exclusive().unwrap();
    remove_leftovers();
    let site = Site::granted();
    std::fs::write(
        site.webroot.join(".well-known/acme-challenge/token-1"),
        "token-1.thumbprint",
    )
    .unwrap();
    let cfg = site.config();
    let deployment = Deployment::up(profile, &cfg).unwrap_or_else(|e| panic!("{e}"));

    // Loopback, both families.
    for addr in ["127.0.0.1", "::1"] {
        let addr: IpAddr = addr.parse().unwrap();
        assert_eq!(
            https_status(addr, 443, "/", &site.ca).0,
            200,
            "{profile} https {addr}"
        );
        let (code, location) = http_status(addr, 80, "/");
        assert!((300..400).contains(&code), "{profile} http {addr}: {code}");
        assert!(
            location.starts_with(&format!("https://{DOMAIN}")),
            "{location}"
        );
        let challenge = http_status(addr, 80, "/.well-known/acme-challenge/token-1");
        assert_eq!(challenge.0, 200, "{profile} ACME webroot over {addr}");
    }

    // An external visitor in its own namespace, both families.
    let ns = ClientNamespace::create(ns_index).unwrap();
    for addr in [IpAddr::from(ns.host_v4()), IpAddr::from(ns.host_v6())] {
        let url = format!("https://{DOMAIN}/");
        let mut cmd = ns.command("curl");
        cmd.args(curl_args(&url, 443, addr, &site.ca));
        assert_eq!(
            status_of(cmd).0,
            200,
            "{profile} https from {} to {addr}",
            ns.name()
        );
        let url = format!("http://{DOMAIN}/healthz");
        let mut cmd = ns.command("curl");
        cmd.args(curl_args(&url, 80, addr, &site.ca));
        assert_eq!(
            status_of(cmd).0,
            200,
            "{profile} http from {} to {addr}",
            ns.name()
        );
    }
    drop(ns);

    // Confinement, read from the host's view of the server process.
    let pid = deployment.server_pid().unwrap();
    let id = BLOG_ID.to_string();
    for key in ["Uid", "Gid"] {
        let ids = proc_status(pid, key);
        assert!(ids.split_whitespace().all(|x| x == id), "{key}: {ids}");
    }
    for key in ["CapEff", "CapPrm", "CapBnd"] {
        assert_eq!(
            proc_status(pid, key),
            NET_BIND_SERVICE_MASK,
            "{key} of pid {pid}"
        );
    }
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mounts")).unwrap();
    let root = mounts
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("/"))
        .unwrap();
    let options = root.split_whitespace().nth(3).unwrap();
    assert!(
        options.split(',').any(|o| o == "ro"),
        "root mounted {options}"
    );

    // docker-proxy carries loopback and IPv6 in bridge; host has none.
    let proxies = deployment.docker_proxy_pids();
    match profile {
        Profile::Bridge => assert!(proxies.len() >= 2, "docker-proxy pids {proxies:?}"),
        Profile::Host => assert!(proxies.is_empty(), "docker-proxy pids {proxies:?}"),
    }

    deployment.down().unwrap();
    assert_eq!(leftover_objects(), "", "compose objects left after down");
    assert!(docker_proxy_pids_for_ports(&[80, 443]).is_empty());
    let ps = Command::new("docker")
        .args(["ps", "-aq", "--filter", "name=hopless"])
        .output();
    assert!(
        ps.unwrap().stdout.is_empty(),
        "containers named hopless* left after down"
    );
}

#[test]
fn host_profile_serves_every_path_confined_without_docker_proxy() {
    serves_confined_on_every_path(Profile::Host, 10);
}

#[test]
fn bridge_profile_serves_every_path_confined_through_docker_proxy() {
    serves_confined_on_every_path(Profile::Bridge, 11);
}
