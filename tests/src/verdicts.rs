//! What a scenario's run must show, whatever backend it ran on: the local tests and the
//! Docker tests call the same checks, so "the same verdict on Docker" means the same
//! assertions, not a looser copy.

use serde_json::Value;

use crate::{u, Outcome};

/// The step named `name` in a report.
fn step<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step `{name}` in {}", r["steps"]))
}

/// One expectation of a report by name.
pub fn expectation<'a>(r: &'a Value, name: &str) -> &'a Value {
    r["expectations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no expectation `{name}` in {}", r["expectations"]))
}

/// Unavailability windows of one partition (`topic/p`, `ensemble:NAME`, …).
pub fn windows<'a>(r: &'a Value, partition: &str) -> Vec<&'a Value> {
    r["unavailability"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["partition"] == partition)
        .collect()
}

/// `rolling-restart.toml`: passes, tens of thousands acked, nothing lost, duplicated or
/// reordered, every partition read to the end, the one step ran.
pub fn rolling_restart(o: &Outcome) {
    safe_procedure(o);
    let r = &o.report;
    // the restarts moved leaders: the step ran and every broker came back
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0]["ok"], true);
    assert!(u(&r["latency_ms"]["ack"]["count"]) >= 20_000);
}

/// A safe procedure's outcome: exit 0 and PASS, tens of thousands of records acked, none
/// lost, no duplicate but those a client epoch bump explains (librdkafka #4953), none
/// reordered, every partition read back to its end.
pub fn safe_procedure(o: &Outcome) {
    let r = &o.report;
    assert_eq!(o.code, 0, "verdict {}; {}", r["verdict"], o.summary);
    assert_eq!(r["verdict"], "pass");
    assert!(
        u(&r["producers"]["acked"]) >= 20_000,
        "tens of thousands of acked records: {}",
        r["producers"]
    );
    assert_eq!(u(&r["anomalies"]["lost"]), 0);
    assert_eq!(
        u(&r["anomalies"]["duplicate"]),
        u(&r["anomalies"]["duplicate_after_epoch_bump"]),
        "{}",
        r["anomalies"]
    );
    assert_eq!(u(&r["anomalies"]["reordered"]), 0);
    assert_eq!(
        u(&r["final_read"]["complete"]),
        u(&r["final_read"]["partitions"])
    );
}

/// `partition-leader.toml`: passes with nothing lost; the isolated leader's partition
/// had a produce window of 5 s or more blamed on the partition step.
pub fn partition_leader(o: &Outcome, attempt: u32) {
    let r = &o.report;
    assert_eq!(o.code, 0, "run {attempt}: {}", o.summary);
    assert_eq!(u(&r["anomalies"]["lost"]), 0, "run {attempt}");
    let isolate = step(r, "isolate the leader");
    let windows: Vec<&Value> = r["unavailability"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "produce" && w["partition"] == "orders/0")
        .collect();
    assert!(
        !windows.is_empty(),
        "run {attempt}: no produce window on orders/0: {}",
        r["unavailability"]
    );
    assert!(
        windows
            .iter()
            .any(|w| w["step"] == "isolate the leader" && u(&w["duration_ms"]) >= 5000),
        "run {attempt}: {windows:?}"
    );
    assert!(isolate["node"].is_null());
}

/// `zk-mitosis.toml`: passes; every step ran; Kafka's metadata lives in the target
/// ensemble and matches the brokers; the target ensemble had its one election window at
/// the split; one quorum per ensemble all along; all six servers probed.
pub fn zk_mitosis(o: &Outcome) {
    let r = &o.report;
    assert_eq!(o.code, 0, "{}", o.summary);
    assert_eq!(r["verdict"], "pass");
    assert_eq!(u(&r["anomalies"]["lost"]), 0);
    assert!(u(&r["producers"]["acked"]) >= 5_000);
    // every step ran, in the seed's order
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 10);
    assert!(steps.iter().all(|s| s["ok"] == true), "{}", r["steps"]);
    // Kafka's metadata lives in the target ensemble now, and matches the brokers
    let m = &r["kafka_metadata"];
    let hosts: Value =
        serde_json::from_str(&std::fs::read_to_string(o.guard.dir.join("run.json")).unwrap())
            .unwrap();
    let addr = |n: &str| {
        hosts["hosts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == n)
            .unwrap()["address"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let zk = m["zookeeper"].as_str().unwrap();
    for t in ["zk4", "zk5", "zk6"] {
        assert!(zk.contains(&format!("{}:2181", addr(t))), "{zk}");
    }
    assert!(!zk.contains(&format!("{}:2181", addr("zk1"))), "{zk}");
    assert_eq!(m["differences"].as_array().unwrap().len(), 0, "{m}");
    assert!(u(&m["partitions"]) >= 6, "{m}");
    assert_eq!(m["registered_brokers"], serde_json::json!([1, 2, 3]));
    // the target ensemble's one window: the election after the split, measured
    let target: Vec<&Value> = windows(r, "ensemble:target");
    let at_split: Vec<&&Value> = target
        .iter()
        .filter(|w| {
            w["step"] == "firewall: split targets from sources"
                || w["step"] == "restart the targets: they elect their own leader"
        })
        .collect();
    assert_eq!(at_split.len(), 1, "{target:?}");
    assert!(u(&at_split[0]["duration_ms"]) > 1_000, "{target:?}");
    assert_eq!(at_split[0]["open"], false);
    // one quorum per ensemble all along
    assert_eq!(
        r["zookeeper_splits"].as_array().unwrap().len(),
        0,
        "{}",
        r["zookeeper_splits"]
    );
    assert_eq!(expectation(r, "ensemble `source` one quorum")["ok"], true);
    assert_eq!(expectation(r, "ensemble `target` one quorum")["ok"], true);
    // the smoke test probed every node, the dormant one once it started
    let zk = r["zookeeper"].as_object().unwrap();
    assert_eq!(zk.len(), 6, "{zk:?}");
}
