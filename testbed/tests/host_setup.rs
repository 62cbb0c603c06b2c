//! The host side of the deployment: `scripts/setup-host.sh` (group grant,
//! dry run, idempotence, refusals), the group grant deciding whether the
//! container can read its key, the certbot deploy hook reloading a running
//! container, and the systemd unit.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::{file_serial, served_serial, Site, BLOG_ID};
use testbed::compose::{remove_leftovers, ComposeError, Deployment, Profile, Variant};
use testbed::image::workspace_root;

fn setup(dir: &Path, extra: &[&str]) -> Output {
    Command::new(workspace_root().join("scripts/setup-host.sh"))
        .arg("--letsencrypt-dir")
        .arg(dir)
        .args(extra)
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Every path under `root`, with its mode and gid.
fn modes(root: &Path) -> Vec<(PathBuf, u32, u32)> {
    let mut all = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                stack.push(path.clone());
            }
            if !meta.file_type().is_symlink() {
                all.push((path, meta.permissions().mode() & 0o7777, meta.gid()));
            }
        }
    }
    all.sort();
    all
}

#[test]
fn setup_dry_run_lists_every_change_and_makes_none() {
    let site = Site::ungranted();
    let before = modes(site.certs.root());
    let out = setup(site.certs.root(), &["--dry-run"]);
    let said = text(&out);
    assert!(out.status.success(), "{said}");
    let live = site.certs.root().join("live");
    assert!(
        said.contains(&format!("would: chmod 0750 {}", live.display())),
        "{said}"
    );
    assert!(said.contains("would: chmod 0640"), "{said}");
    assert!(said.contains("renewal-hooks/deploy/hopless-blog"), "{said}");
    assert_eq!(
        modes(site.certs.root()),
        before,
        "the dry run changed something"
    );
}

#[test]
fn setup_grants_group_read_without_world_access_and_is_idempotent() {
    let site = Site::ungranted();
    let root = site.certs.root();
    let out = setup(root, &[]);
    assert!(out.status.success(), "{}", text(&out));

    let check = |path: PathBuf, mode: u32| {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(
            meta.permissions().mode() & 0o777,
            mode,
            "{}",
            path.display()
        );
        assert_eq!(meta.gid(), BLOG_ID, "{}", path.display());
    };
    check(root.join("live"), 0o750);
    check(root.join("archive"), 0o750);
    check(site.certs.archive_dir(), 0o750);
    check(site.certs.archive_dir().join("privkey1.pem"), 0o640);
    for (path, mode, _) in modes(root) {
        let is_key = path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("privkey");
        assert!(
            !is_key || mode & 0o004 == 0,
            "{} is world-readable",
            path.display()
        );
    }
    let hook = root.join("renewal-hooks/deploy/hopless-blog");
    assert_eq!(
        std::fs::metadata(&hook).unwrap().permissions().mode() & 0o111,
        0o111
    );

    let again = setup(root, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert!(
        text(&again).contains("nothing to change"),
        "{}",
        text(&again)
    );
}

#[test]
fn setup_refuses_a_directory_that_is_not_certbot_shaped() {
    let tmp = tempfile::tempdir().unwrap();
    let out = setup(tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("is not a certbot directory"),
        "{}",
        text(&out)
    );

    // live/NAME/privkey.pem a plain file, not certbot's link into archive/.
    let live = tmp.path().join("live/blog.test");
    std::fs::create_dir_all(&live).unwrap();
    std::fs::create_dir_all(tmp.path().join("archive")).unwrap();
    std::fs::write(live.join("privkey.pem"), "key").unwrap();
    let before = modes(tmp.path());
    let out = setup(tmp.path(), &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("not certbot's link"), "{}", text(&out));
    assert_eq!(modes(tmp.path()), before);
}

/// Without the grant the server stops with a message naming the file, its
/// uid/gid and the fix; after setup-host.sh the certificate is served.
#[test]
fn container_reads_the_certificate_only_with_the_group_grant() {
    // Build (minutes when the server changed) before taking Docker.
    support::image();
    let _lock = testbed::lock::exclusive().unwrap();
    remove_leftovers();
    let site = Site::ungranted();
    let mut denied = Deployment::start(Profile::Host, &site.config(), Variant::Standard, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let err = denied
        .wait_healthy()
        .expect_err("served a root-only certificate");
    let ComposeError::Unhealthy { logs, .. } = &err else {
        panic!("expected the server to stop, got: {err}");
    };
    for needed in [
        "live/blog.test",
        "uid 2200",
        "gid 2200",
        "chgrp 2200",
        "0640",
    ] {
        assert!(logs.contains(needed), "message lacks {needed:?}: {logs}");
    }
    denied.down().unwrap();

    let out = setup(site.certs.root(), &[]);
    assert!(out.status.success(), "{}", text(&out));
    let granted = Deployment::up(Profile::Host, &site.config()).unwrap_or_else(|e| panic!("{e}"));
    let expected = file_serial(&site.certs.live_dir().join("cert.pem"));
    assert_eq!(served_serial("127.0.0.1".parse().unwrap(), 443), expected);
    granted.down().unwrap();
}

/// The hook setup-host.sh installs makes the running container serve a
/// renewed certificate, by SIGHUP alone (the file watcher is slowed to an
/// hour), with no restart.
#[test]
fn deploy_hook_reloads_the_running_container_without_restart() {
    // Build (minutes when the server changed) before taking Docker.
    support::image();
    let _lock = testbed::lock::exclusive().unwrap();
    remove_leftovers();
    let mut site = Site::ungranted();
    assert!(setup(site.certs.root(), &[]).status.success());
    let extra = [("BLOG_CERT_CHECK_INTERVAL", "3600")];
    let mut deployment =
        Deployment::start(Profile::Host, &site.config(), Variant::Standard, &extra).unwrap();
    deployment.wait_healthy().unwrap_or_else(|e| panic!("{e}"));
    let pid = deployment.server_pid().unwrap();
    let localhost = "127.0.0.1".parse().unwrap();
    let first = served_serial(localhost, 443);

    site.certs.renew().unwrap();
    let renewed = file_serial(&site.certs.live_dir().join("cert.pem"));
    assert_ne!(first, renewed);
    let hook = site.certs.root().join("renewal-hooks/deploy/hopless-blog");
    let out = Command::new(&hook)
        .env("RENEWED_LINEAGE", site.certs.live_dir())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("sent SIGHUP"), "{}", text(&out));

    let started = Instant::now();
    while served_serial(localhost, 443) != renewed {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{}",
            deployment.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        deployment.server_pid().unwrap(),
        pid,
        "the server restarted"
    );
    assert_eq!(deployment.inspect("{{.RestartCount}}").unwrap().trim(), "0");
    assert!(
        deployment.logs().contains("SIGHUP"),
        "{}",
        deployment.logs()
    );
    deployment.down().unwrap();
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let template = workspace_root().join("compose/hopless-blog@.service");
    for profile in ["host", "bridge"] {
        let unit = tmp.path().join(format!("hopless-blog@{profile}.service"));
        std::fs::copy(&template, &unit).unwrap();
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            text(&out)
        );
    }
    // The check can fail: a broken copy is refused.
    let broken = tmp.path().join("hopless-blog@broken.service");
    let unit = std::fs::read_to_string(&template).unwrap();
    std::fs::write(
        &broken,
        unit.replace("Restart=on-failure", "Restart=sometimes"),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&broken)
        .output()
        .unwrap();
    assert!(
        !out.stderr.is_empty(),
        "systemd-analyze accepted Restart=sometimes"
    );
}
