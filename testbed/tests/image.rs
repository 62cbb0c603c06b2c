//! The image `scripts/build-image.sh` makes: the file capability survives
//! into the image's file system, the metadata is set, the image is small,
//! and a second build changes nothing.

mod support;

use std::process::Command;

use support::output;
use testbed::image::{ensure_image, image_size, static_binary};

/// Removes the inspection container even when an assertion fails.
struct Created(String);

impl Drop for Created {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

fn inspect(tag: &str, format: &str) -> String {
    let out = output(Command::new("docker").args(["image", "inspect", "--format", format, tag]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn image_keeps_the_file_capability_and_stays_small() {
    // Build (minutes when the server changed) before taking Docker.
    let tag = support::image();
    let _lock = testbed::lock::exclusive().unwrap();

    // Read the xattr from the image's own file system, not from target/.
    drop(Created("hopless-inspect".into()));
    let out = output(Command::new("docker").args(["create", "--name", "hopless-inspect", &tag]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _created = Created("hopless-inspect".into());
    let tmp = tempfile::tempdir().unwrap();
    let extract = format!(
        "docker export hopless-inspect | tar --xattrs --xattrs-include='*' -x -C {} \
         usr/local/bin/blog etc/passwd etc/group srv/site",
        tmp.path().display()
    );
    let out = output(Command::new("sh").args(["-c", &extract]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blog = tmp.path().join("usr/local/bin/blog");
    let caps = output(Command::new("getcap").arg(&blog));
    let caps = String::from_utf8_lossy(&caps.stdout);
    assert!(caps.contains("cap_net_bind_service=ep"), "getcap: {caps:?}");
    let passwd = std::fs::read_to_string(tmp.path().join("etc/passwd")).unwrap();
    assert!(passwd.contains(":2200:2200:"), "{passwd}");
    assert!(std::fs::read_to_string(tmp.path().join("etc/group"))
        .unwrap()
        .contains(":2200:"));
    assert!(tmp.path().join("srv/site/posts").is_dir());

    assert_eq!(inspect(&tag, "{{.Config.User}}"), "2200:2200");
    assert_eq!(
        inspect(&tag, "{{json .Config.Entrypoint}}"),
        r#"["/usr/local/bin/blog"]"#
    );
    assert_eq!(inspect(&tag, "{{.Config.StopSignal}}"), "SIGTERM");
    let exposed = inspect(&tag, "{{json .Config.ExposedPorts}}");
    assert!(
        exposed.contains("80/tcp") && exposed.contains("443/tcp"),
        "{exposed}"
    );
    assert!(inspect(&tag, "{{json .Config.Healthcheck.Test}}").contains("healthcheck"));

    let size = image_size(&tag).unwrap();
    eprintln!(
        "image {tag}: {:.1} MB (docker image inspect .Size)",
        size as f64 / 1e6
    );
    assert!(
        size < 12_000_000,
        "image grew to {size} bytes (aim: under 10 MB)"
    );

    // The bare profile's binary carries the capability too.
    let caps = output(Command::new("getcap").arg(static_binary()));
    assert!(String::from_utf8_lossy(&caps.stdout).contains("cap_net_bind_service=ep"));

    // Idempotent: a build right after a build keeps the image. (The first
    // call catches up with server edits made while this test ran.)
    assert_eq!(ensure_image().unwrap(), tag);
    let id = inspect(&tag, "{{.Id}}");
    assert_eq!(ensure_image().unwrap(), tag);
    assert_eq!(
        inspect(&tag, "{{.Id}}"),
        id,
        "a second build made a new image"
    );
}
