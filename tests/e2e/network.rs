//! Issue [2] end to end: the partition scenario on namespace hosts gives the same verdict
//! run after run; its acks=1 variant loses records and blames the partition; a coordinator
//! killed in the middle of a partition leaves nothing `harness cleanup` does not remove;
//! and without root a scenario with network faults is refused before anything starts.

use std::process::Command;
use std::time::{Duration, Instant};

use e2e::verdicts;
use e2e::{
    assert_nothing_left, assert_refused_before_start, cluster_lock, cluster_lock_exclusive,
    harness_bin, repo, require_prerequisites, require_root, run_dir, run_scenario, sh, start_run,
    u, RunGuard,
};
use serde_json::Value;

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_partition_scenario_gives_the_same_verdict_three_runs_in_a_row() {
    let _one = cluster_lock();
    require_root();
    for attempt in 1..=3 {
        let o = run_scenario("partition-leader.toml");
        verdicts::partition_leader(&o, attempt);
        let hosts: Value =
            serde_json::from_str(&std::fs::read_to_string(o.guard.dir.join("run.json")).unwrap())
                .unwrap();
        assert!(
            hosts["hosts"]
                .as_array()
                .unwrap()
                .iter()
                .all(|h| h["namespace"]
                    .as_str()
                    .is_some_and(|n| n.starts_with("kmh-"))),
            "namespace hosts"
        );
        assert_nothing_left(o.guard.run_id().as_deref().unwrap());
    }
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_partition_with_acks_1_loses_records_and_blames_the_partition() {
    let _one = cluster_lock();
    require_root();
    let o = run_scenario("partition-leader-acks1.toml");
    let r = &o.report;
    assert_eq!(o.code, 0, "{}", o.summary);
    let lost = u(&r["anomalies"]["lost"]);
    assert!(lost > 0);
    assert_eq!(
        r["lost_by_step"]["isolate the leader"].as_u64(),
        Some(lost),
        "{}",
        r["lost_by_step"]
    );
    assert_nothing_left(o.guard.run_id().as_deref().unwrap());
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_coordinator_killed_during_a_partition_leaves_nothing_cleanup_does_not_remove() {
    let _one = cluster_lock();
    require_prerequisites();
    require_root();
    let dir = run_dir("killed-partition");
    let guard = RunGuard { dir: dir.clone() };
    let mut child = start_run("partition-leader.toml", &dir);
    let deadline = Instant::now() + Duration::from_secs(300);
    while !std::fs::read_to_string(dir.join("timeline.jsonl"))
        .unwrap_or_default()
        .contains("\"name\":\"leader is cut off\"")
    {
        assert!(child.try_wait().unwrap().is_none(), "the run ended early");
        assert!(Instant::now() < deadline, "the partition never started");
        std::thread::sleep(Duration::from_millis(200));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    let id = guard.run_id().unwrap();
    let tag = format!("{:06x}", workers::record::run_hash(&id) & 0xff_ffff);
    // the partition is still in force: its rules sit in the isolated node's namespace
    let namespaces = sh(&["ip", "netns", "list"]);
    assert_eq!(
        namespaces.matches(&format!("kmh-{tag}-")).count(),
        6,
        "{namespaces}"
    );
    let drops: usize = namespaces
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.contains(&tag))
        .map(|n| {
            sh(&["ip", "netns", "exec", n, "iptables", "-S"])
                .matches("fault=leader-cut")
                .count()
        })
        .sum();
    assert!(drops >= 10, "partition rules in force: {drops}");
    assert!(sh(&["iptables-save"]).contains(&id));

    let out = Command::new(harness_bin()).arg("cleanup").output().unwrap();
    assert!(out.status.success());
    println!("{}", String::from_utf8_lossy(&out.stdout));
    assert_nothing_left(&id);
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn without_root_a_scenario_with_network_faults_is_refused_before_it_starts() {
    require_root(); // to become someone else
    let dir = run_dir("not-root");
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(harness_bin())
        .arg("run")
        .arg(repo().join("scenarios/partition-leader.toml"))
        .arg("--out")
        .arg(&dir)
        .env("HOME", "/tmp");
    let err = assert_refused_before_start(cmd, &dir);
    assert!(
        err.contains("`isolate the leader`") && err.contains("need root"),
        "{err}"
    );
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_delayed_leader_costs_latency_and_nothing_else() {
    let _all = cluster_lock_exclusive(); // tight timing: alone
    require_root();
    let o = run_scenario("slow-leader.toml");
    let r = &o.report;
    assert_eq!(o.code, 0, "{}", o.summary);
    assert_eq!(u(&r["anomalies"]["lost"]), 0);
    let slow = r["latency_by_step"]["leader is slow"]["ack"]["p99"]
        .as_f64()
        .unwrap();
    let after = r["latency_by_step"]["(settle)"]["ack"]["p50"]
        .as_f64()
        .unwrap();
    println!("ack p99 while slow {slow} ms; p50 after the heal {after} ms");
    assert!(
        slow >= 200.0,
        "records to the slow leader waited at least its 200 ms: {slow}"
    );
    // A record whose path still crossed the delay could not be acked in under 180 ms (200 ms
    // less the 20 ms jitter), so a median under 150 ms says the heal took the delay away;
    // the margin below 180 is for a loaded machine (CI measured a 100.1 ms median after the
    // heal on two busy cores, against ~230 ms while slow).
    assert!(after < 150.0, "the heal removed the delay: {after}");
    // slow is not down: no client gave up on a request (no epoch bump or new producer id,
    // below), no partition lost its leader, and no partition stopped acking for longer
    // than a slow round trip can explain. Under the delay, acks=all waits for followers
    // that fetch through it: on two loaded cores CI measured ack p99 2.8 s and one 1.05 s
    // gap (just over the 1 s window threshold) on the slow leader's partition (the slow
    // broker is also a follower in every other partition's ISR, which acks=all waits
    // for). An outage (a session expiring, an election) stops a partition for 6 s and
    // more; a gap under 3 s is the delay's latency, and the report is right to show it. A loaded machine may also show a short stall in the warm-up, before any
    // fault (CI saw the first acks of a fresh cluster take 1.2 s); it is not the slow
    // leader's, and it must stay short.
    let (warmup, windows): (Vec<&Value>, Vec<&Value>) = r["unavailability"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "produce")
        .partition(|w| w["step"] == "(warmup)");
    for w in &windows {
        assert!(
            u(&w["duration_ms"]) < 3_000 && w["partition"] != "cluster",
            "a slow leader is not unavailable: gaps shorter than an outage, never all partitions at once: {windows:?}"
        );
    }
    let delay_from = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "slow the leader")
        .map(|s| u(&s["start_ms"]))
        .expect("the delay step ran");
    for w in &warmup {
        assert!(
            u(&w["duration_ms"]) < 5_000 && u(&w["end_ms"]) < delay_from,
            "a stall in the warm-up stays short and ends before the delay: {w}"
        );
    }
    assert_eq!(r["client_renewals"], serde_json::json!([]), "{}", o.summary);
    assert_nothing_left(o.guard.run_id().as_deref().unwrap());
}
