//! End to end: `bench --quick` against the real deployments publishes valid
//! JSON, charts, a report and a page headless Chromium renders, and leaves
//! nothing behind; a SIGINT in the middle leaves nothing behind either.
//! Needs root, Docker and ports 80/443 (as the bench itself).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bench::record::{CellRecord, RunSummary};

fn bench() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bench"));
    cmd.env("BENCH_LOG", "warn");
    cmd
}

/// Every hopless-owned thing a run could leave: containers of the compose
/// project, client namespaces, hl- links (their qdiscs go with them),
/// cgroups and the bench's temp dirs. Holds the machine-wide lock while it
/// looks, so another test's deployment is not taken for a leftover.
fn leftovers() -> Vec<String> {
    let _lock = testbed::lock::exclusive().unwrap();
    let mut found = Vec::new();
    let ps = Command::new("docker")
        .args([
            "ps",
            "-aq",
            "--filter",
            "label=com.docker.compose.project=hopless",
        ])
        .output()
        .unwrap();
    for id in String::from_utf8_lossy(&ps.stdout).split_whitespace() {
        found.push(format!("container {id}"));
    }
    let ns = Command::new("ip").args(["netns", "list"]).output().unwrap();
    for line in String::from_utf8_lossy(&ns.stdout).lines() {
        if line.starts_with("hopless-c") {
            found.push(format!("netns {line}"));
        }
    }
    let links = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    for line in String::from_utf8_lossy(&links.stdout).lines() {
        let name = line.split(':').nth(1).unwrap_or("").trim();
        if name.starts_with("hl-") {
            found.push(format!("link {name}"));
        }
    }
    for controller in ["cpu", "cpuacct", "cpuset", "memory"] {
        if Path::new("/sys/fs/cgroup")
            .join(controller)
            .join("hopless-vps")
            .exists()
        {
            found.push(format!("cgroup {controller}/hopless-vps"));
        }
    }
    for entry in std::fs::read_dir(std::env::temp_dir()).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("hopless-bench-") {
            found.push(format!("temp dir {name}"));
        }
    }
    found
}

/// Interrupts and reaps the bench if a test fails while it runs.
struct Reap(std::process::Child);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let pid = nix::unistd::Pid::from_raw(self.0.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT);
            let _ = self.0.wait();
        }
    }
}

fn only_run_dir(out: &Path) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

#[test]
fn quick_run_publishes_json_charts_report_and_a_page_chromium_renders() {
    let out = tempfile::tempdir().unwrap();
    let status = bench()
        .args(["--quick", "--no-readme", "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "bench --quick exited with {status}");
    let dir = only_run_dir(out.path());

    // One valid JSON per cell, each either measured or failed with a reason.
    let cells: Vec<CellRecord> = std::fs::read_dir(dir.join("cells"))
        .unwrap()
        .flatten()
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.path()).unwrap()).unwrap())
        .collect();
    assert_eq!(cells.len(), bench::matrix::Plan::quick().cell_count());
    for c in &cells {
        assert!(
            c.status == "ok" || c.reason.is_some(),
            "{} has no reason",
            c.key.id()
        );
    }
    assert!(cells.iter().any(|c| c.status == "ok"), "no cell succeeded");
    let summary: RunSummary =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary.cells, cells.len());

    for chart in ["throughput", "latency-loopback", "cpu-https-keepalive"] {
        let svg = std::fs::read_to_string(dir.join(format!("{chart}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("</svg>"),
            "{chart}.svg is not an SVG"
        );
        assert!(
            dir.join(format!("{chart}.png")).is_file(),
            "{chart}.png missing"
        );
    }
    let md = std::fs::read_to_string(dir.join("report.md")).unwrap();
    assert!(
        md.contains("## What bridge costs against host") && md.contains("## Method"),
        "{md}"
    );

    // The page renders offline: a screenshot with real content in it.
    let shot = out.path().join("page.png");
    let chromium = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
        ])
        .args(["--window-size=1200,1600", "--virtual-time-budget=5000"])
        .arg(format!("--screenshot={}", shot.display()))
        .arg(format!("file://{}", dir.join("index.html").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("chromium is installed (scripts/install-deps.sh)");
    assert!(chromium.success(), "chromium exited with {chromium}");
    let img = image::open(&shot).unwrap().to_rgb8();
    let drawn = img
        .pixels()
        .filter(|p| p.0.iter().any(|c| *c < 200))
        .count();
    let share = drawn as f64 / (img.width() * img.height()) as f64;
    assert!(
        share > 0.01,
        "the screenshot is almost blank ({:.2}% drawn)",
        share * 100.0
    );

    assert_eq!(leftovers(), Vec::<String>::new());
}

#[test]
fn sigint_in_the_middle_of_a_run_leaves_nothing_behind() {
    let out = tempfile::tempdir().unwrap();
    let mut child = Reap(
        bench()
            .args([
                "--quick",
                "--no-readme",
                "--profiles",
                "host,bridge",
                "--paths",
                "loopback,external-v4",
            ])
            .arg("--out")
            .arg(out.path())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );

    // Interrupt once the first cell of the host deployment finished: a
    // container, the namespace and the cgroup all exist then.
    let stderr = child.0.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead as _;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("no cell finished");
        if line.starts_with("[1/") {
            break;
        }
    }
    let pid = nix::unistd::Pid::from_raw(child.0.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();

    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "bench did not stop within 120 s of SIGINT"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(130), "an interrupted run exits 130");
    assert_eq!(leftovers(), Vec::<String>::new());
    let run_json = std::fs::read_to_string(only_run_dir(out.path()).join("run.json")).unwrap();
    assert!(run_json.contains("interrupted"), "{run_json}");
}
