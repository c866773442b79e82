//! A coordinator killed mid-run (SIGKILL: no chance to clean up) leaves a run directory
//! `harness check` can read, and processes `harness cleanup` removes — idempotently.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{
    cluster_lock, harness_bin, require_prerequisites, run_dir, start_run, tagged_processes,
    wait_bounded, RunGuard,
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
    assert!(report["anomalies"]["unverified"].as_u64().is_some());
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
