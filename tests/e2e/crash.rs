//! A coordinator killed mid-run (SIGKILL: no chance to clean up) leaves a run directory
//! `harness check` can read, and processes `harness cleanup` removes — idempotently. A
//! worker killed mid-run is a finding of the run, not a warning.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{
    cluster_lock, harness_bin, require_prerequisites, run_dir, start_run, tagged_process_with,
    tagged_processes, wait_bounded, RunGuard,
};

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_killed_run_leaves_checkable_logs_and_cleanup_removes_its_processes() {
    let _one = cluster_lock();
    require_prerequisites();
    let dir = run_dir("crash");
    let guard = RunGuard { dir: dir.clone() };
    let mut child = start_run("rf1-broker-stop.toml", &dir);

    // wait until the procedure is under way (the broker is down), then kill the harness
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let tl = std::fs::read_to_string(dir.join("timeline.jsonl")).unwrap_or_default();
        if tl.contains("\"name\":\"kafka2 is down\"") {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run ended before the step"
        );
        assert!(Instant::now() < deadline, "the run never reached the step");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();

    let id = guard
        .run_id()
        .expect("run.json written before the workers started");
    let left = tagged_processes(&id);
    // five live nodes (one broker is stopped) and the workers outlive their coordinator
    assert!(
        left.len() >= 5,
        "expected the run's nodes and workers still running: {left:#?}"
    );

    // the logs are readable as they are; with no final read the verdict cannot pass
    let mut check = Command::new(harness_bin())
        .arg("check")
        .arg(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let st = wait_bounded(&mut check, Duration::from_secs(120));
    assert_eq!(
        st.code(),
        Some(1),
        "check of a crashed run: a verdict (fail), not a tool error"
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert!(
        report["producers"]["acked"].as_u64().unwrap() > 1000,
        "{}",
        report["producers"]
    );
    assert_eq!(report["final_read"]["ran"], false);
    assert_eq!(
        report["anomalies"]["lost"], 0,
        "no final read: nothing is called lost"
    );
    // every acked record is unverified: no partition was read at the end
    let acked = report["producers"]["acked"].as_u64().unwrap();
    assert_eq!(
        report["anomalies"]["unverified"].as_u64().unwrap(),
        acked,
        "{}",
        report["anomalies"]
    );
    let unreadable = report["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "unreadable_partitions")
        .unwrap();
    assert_eq!(unreadable["ok"], false);

    // cleanup removes every process of the run, and a second cleanup finds nothing
    let out = Command::new(harness_bin())
        .args(["cleanup", "--run", &id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("cleanup: {} process(es) removed", left.len())),
        "{text}"
    );
    assert!(
        tagged_processes(&id).is_empty(),
        "{:#?}",
        tagged_processes(&id)
    );
    let again = Command::new(harness_bin())
        .args(["cleanup", "--run", &id])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&again.stdout).contains("cleanup: 0 process(es) removed"));
}

/// A producer worker that dies mid-run is a finding, not a warning: the run fails, and the
/// report names the dead worker (with its stderr) and the producers that fell silent.
#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_producer_worker_killed_mid_run_fails_the_run_and_is_named_in_the_report() {
    let _one = cluster_lock();
    require_prerequisites();
    let dir = run_dir("dead-worker");
    let guard = RunGuard { dir: dir.clone() };
    let mut child = start_run("rf1-broker-stop.toml", &dir);
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut s).unwrap();
        s
    });

    // once the load runs (the first step began), SIGKILL the first producer worker
    let deadline = Instant::now() + Duration::from_secs(300);
    let pid = loop {
        let tl = std::fs::read_to_string(dir.join("timeline.jsonl")).unwrap_or_default();
        if tl.contains("\"name\":\"stop kafka2\"") {
            let id = guard.run_id().expect("run.json");
            if let Some(pid) = tagged_process_with(&id, "producer-0.json") {
                break pid as i32;
            }
        }
        assert!(child.try_wait().unwrap().is_none(), "the run ended first");
        assert!(
            Instant::now() < deadline,
            "the run never reached its first step"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    unsafe { libc::kill(pid, libc::SIGKILL) };

    let status = wait_bounded(&mut child, Duration::from_secs(600));
    let summary = reader.join().unwrap();
    println!("{summary}");
    assert_eq!(status.code(), Some(1), "a failed verdict: {summary}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(
        report["anomalies"]["dead_workers"], 1,
        "{}",
        report["dead_workers"]
    );
    let dead = &report["dead_workers"][0];
    assert_eq!(dead["worker"], "producer-0");
    assert!(dead["how"].as_str().unwrap().contains("signal"), "{dead}");
    // its two instances stopped trying to send, until the producers were stopped
    assert_eq!(
        report["anomalies"]["silent_producers"], 2,
        "{}",
        report["producer_silences"]
    );
    assert!(report["producer_silences"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["until_stop"] == true));
    let failed: Vec<&str> = report["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ok"] == false)
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(failed, ["silent_producers", "dead_workers"], "{summary}");
    // nothing else was blamed on the death: what it acked is in the final read
    assert_eq!(report["anomalies"]["lost"], 0);
}
