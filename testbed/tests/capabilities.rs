//! Why the compose file keeps `cap_add: [NET_BIND_SERVICE]` and leaves out
//! `no-new-privileges`: each weakened variant fails the way FACTS.md
//! records for Docker 20.10, and only where it says.

mod support;

use support::Site;
use testbed::compose::{remove_leftovers, ComposeError, Deployment, Profile, Variant};

/// Guards the host profile against `no-new-privileges` (moby#45491): the
/// kernel ignores the file capability under it, so binding 80 as uid 2200
/// fails with EACCES and the server explains the fix.
#[test]
fn no_new_privileges_makes_the_host_profile_fail_to_bind_80() {
    // Build (minutes when the server changed) before taking Docker.
    support::image();
    let _lock = testbed::lock::exclusive().unwrap();
    remove_leftovers();
    let site = Site::granted();
    let mut deployment =
        Deployment::start(Profile::Host, &site.config(), Variant::NoNewPrivileges, &[])
            .unwrap_or_else(|e| panic!("{e}"));
    let err = deployment
        .wait_healthy()
        .expect_err("host profile came up under no-new-privileges");
    let ComposeError::Unhealthy { logs, .. } = &err else {
        panic!("expected the server to stop, got: {err}");
    };
    assert!(
        logs.contains("Permission denied") || logs.contains("os error 13"),
        "{logs}"
    );
    assert!(
        logs.contains("no-new-privileges"),
        "the server's advice is missing: {logs}"
    );
    let pid = deployment.inspect("{{.State.Pid}}").unwrap();
    assert!(pid.trim() == "0" || deployment.inspect("{{.RestartCount}}").unwrap().trim() != "0");
}

/// The contrast that shows why: in the bridge profile Docker sets
/// ip_unprivileged_port_start=0 inside the container, so the same setting
/// binds 80 without any capability.
#[test]
fn no_new_privileges_is_harmless_in_the_bridge_profile() {
    // Build (minutes when the server changed) before taking Docker.
    support::image();
    let _lock = testbed::lock::exclusive().unwrap();
    remove_leftovers();
    let site = Site::granted();
    let mut deployment = Deployment::start(
        Profile::Bridge,
        &site.config(),
        Variant::NoNewPrivileges,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    deployment.wait_healthy().unwrap_or_else(|e| panic!("{e}"));
    let pid = deployment.server_pid().unwrap();
    assert_eq!(support::proc_status(pid, "NoNewPrivs"), "1");
    assert_eq!(support::proc_status(pid, "CapEff"), "0000000000000000");
    deployment.down().unwrap();
}

/// Guards `cap_add: [NET_BIND_SERVICE]`: with `cap_drop: [ALL]` alone the
/// binary's `+ep` capability lies outside the bounding set and the kernel
/// refuses the exec, in either profile.
#[test]
fn cap_drop_all_alone_makes_exec_fail_in_both_profiles() {
    // Build (minutes when the server changed) before taking Docker.
    support::image();
    let _lock = testbed::lock::exclusive().unwrap();
    remove_leftovers();
    let site = Site::granted();
    for profile in [Profile::Host, Profile::Bridge] {
        let started = Deployment::start(profile, &site.config(), Variant::CapDropAllOnly, &[]);
        let message = match started {
            Err(e) => e.to_string(),
            Ok(mut deployment) => match deployment.wait_healthy() {
                Err(e) => e.to_string(),
                Ok(()) => panic!("{profile} came up with cap_drop: [ALL] alone"),
            },
        };
        assert!(
            message.contains("operation not permitted"),
            "{profile}: {message}"
        );
    }
}
