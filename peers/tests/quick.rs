//! `peers --quick` end to end against the real nginx, static-web-server,
//! wrk, h2load and oha: it writes its JSON, report and charts, and leaves
//! no server process and no cgroup behind.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Building `blog` and `loadgen` in release mode and installing oha and
/// static-web-server may come first; the run itself takes about two minutes.
const LIMIT: Duration = Duration::from_secs(40 * 60);

#[test]
fn quick_run_writes_results_and_leaves_nothing_running() {
    let out = tempfile::Builder::new()
        .prefix("peers-test-out-")
        .tempdir()
        .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_peers"))
        .args(["--quick", "--out"])
        .arg(out.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let pid = child.id();
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("peers --quick still running after {} s", LIMIT.as_secs());
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(
        status.success(),
        "peers --quick failed ({status}); stdout:\n{stdout}"
    );

    // Nothing left: no process working in a peers work directory, no
    // budget named after this run.
    let strays = processes_mentioning("hopless-peers-");
    assert!(strays.is_empty(), "left running: {strays:?}");
    for controller in ["cpu", "cpuacct", "cpuset", "memory"] {
        let root = Path::new("/sys/fs/cgroup").join(controller);
        for entry in fs::read_dir(&root).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                !(name.starts_with("hopless-peers-") && name.ends_with(&format!("-{pid}"))),
                "cgroup {controller}/{name} left behind"
            );
        }
    }

    // One results folder with the JSON, the report and the charts.
    let dirs: Vec<_> = fs::read_dir(out.path()).unwrap().flatten().collect();
    assert_eq!(dirs.len(), 1, "expected one <date>-<host> folder");
    let dir = dirs[0].path();
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(dir.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["schema_version"], 1);
    for peer in ["blog", "nginx", "sws"] {
        let rate = json["server_figures"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| {
                f["subject"] == peer && f["cell"] == "keepalive-https" && f["metric"] == "rate"
            })
            .unwrap_or_else(|| panic!("no keepalive-https rate for {peer}"));
        assert!(
            rate["spread"]["median"].as_f64().unwrap() > 0.0,
            "{peer}: {rate}"
        );
    }
    for generator in ["loadgen", "wrk", "h2load", "oha"] {
        let counted = json["samples"]["generators"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["generator"] == generator)
            .unwrap_or_else(|| panic!("no run of {generator}"));
        assert!(
            counted["server_requests"].as_u64().unwrap() > 0,
            "{counted}"
        );
    }
    for name in [
        "nginx",
        "static-web-server",
        "wrk",
        "h2load",
        "oha",
        "blog",
        "loadgen",
    ] {
        assert!(json["versions"][name].is_string(), "no version of {name}");
    }
    let report = fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(report.contains("## Targets"), "{report}");
    assert!(report.contains("1.2× nginx"), "{report}");
    for chart in ["server-rates.svg", "generator-cpu.svg"] {
        let svg = fs::read_to_string(dir.join(chart)).unwrap();
        assert!(svg.starts_with("<svg"), "{chart}");
    }
}

/// Command lines of running processes that contain `needle`.
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let cmdline = entry.path().join("cmdline");
        if let Ok(bytes) = fs::read(&cmdline) {
            let text = String::from_utf8_lossy(&bytes).replace('\0', " ");
            if text.contains(needle) {
                found.push(format!("{}: {text}", entry.file_name().to_string_lossy()));
            }
        }
    }
    found
}
