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
    // the second oracle, Kafka's own verifier, ran beside the workers and lost nothing
    oracle_agrees(o, false);
}

/// The second oracle (`[check] oracle = "kafka-verifiable"`) ran to its end — its producer
/// acked records, its final read reached every end offset — finds loss exactly when `lost`,
/// and the report says that the two agree.
pub fn oracle_agrees(o: &Outcome, lost: bool) {
    let r = &o.report;
    let oracle = &r["oracle"];
    assert_eq!(oracle["kind"], "kafka-verifiable", "{}", o.summary);
    assert!(u(&oracle["acked"]) >= 1_000, "{oracle}");
    assert_eq!(oracle["final_read_complete"], true, "{oracle}");
    assert_eq!(u(&oracle["lost"]) > 0, lost, "{oracle}");
    assert_eq!(oracle["kafkatest_ok"], !lost, "{oracle}");
    let agrees = expectation(r, "oracle_agrees");
    assert_eq!(agrees["ok"], true, "{agrees}");
    assert!(agrees["actual"].as_str().unwrap().starts_with("agree: "));
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
    // every step ran, in the seed's order (and the wait for the sources after their roll)
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 11);
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

/// How many times a node's log says its process finished starting: "Kafka Server started"
/// in KRaft mode, "[KafkaServer id=N] started" in ZooKeeper (and migration) mode.
pub fn starts(dir: &std::path::Path, node: &str) -> usize {
    let log = std::fs::read_to_string(dir.join("nodes").join(node).join("server.log"))
        .unwrap_or_else(|e| panic!("{node}'s server.log (Log4j 2 writes it): {e}"));
    log.lines()
        .filter(|l| {
            l.contains("Kafka Server started")
                || (l.contains("[KafkaServer id=")
                    && l.contains("] started (kafka.server.KafkaServer)"))
        })
        .count()
}

/// The values of `key` in a node's configuration dumps (Kafka prints one at each start,
/// and 4.x another when the cluster's dynamic configuration is republished).
pub fn config_dumps(dir: &std::path::Path, node: &str, key: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join("nodes").join(node).join("server.log"))
        .unwrap_or_else(|e| panic!("{node}'s server.log: {e}"))
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("\t{key} = ")))
        .map(str::to_string)
        .collect()
}

/// How many leader elections a controller's log says it won.
pub fn elections_won(dir: &std::path::Path, node: &str) -> usize {
    std::fs::read_to_string(dir.join("nodes").join(node).join("server.log"))
        .unwrap()
        .matches("Completed transition to Leader")
        .count()
}

/// `kraft-rolling-restart`: every step ok; every node started twice, the second time with
/// what `node-config` set and removed; the active controller among those restarted (a
/// later election took over); the quorum and every broker's metadata intact at the end.
pub fn kraft_rolling_restart(o: &Outcome) {
    safe_procedure(o);
    let r = &o.report;
    let steps = r["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3, "{}", r["steps"]);
    assert!(steps.iter().all(|s| s["ok"] == true), "{}", r["steps"]);
    // every node started twice: with the cluster, and once in its roll — the second time
    // with the configuration `node-config` wrote (Kafka prints its config at each start)
    let dir = &o.guard.dir;
    for node in ["ctl1", "ctl2", "ctl3", "kafka1", "kafka2", "kafka3"] {
        assert_eq!(starts(dir, node), 2, "{node}");
        let first_and_last = |key: &str| {
            let values = config_dumps(dir, node, key);
            assert!(!values.is_empty(), "{node}: no `{key}` in its config dumps");
            (values[0].clone(), values[values.len() - 1].clone())
        };
        let (before, after) = first_and_last("num.network.threads");
        assert_ne!(before, "4", "{node}: set before the step?");
        assert_eq!(after, "4", "{node}: `set` not in effect after its restart");
        if node.starts_with("kafka") {
            // removed: from the harness's 64 MiB back to Kafka's own 1 GiB
            assert_eq!(
                first_and_last("log.segment.bytes"),
                ("67108864".to_string(), "1073741824".to_string()),
                "{node}: `remove` not in effect after its restart"
            );
        }
    }
    // the active controller was among those restarted: a later election took over
    let elections: usize = ["ctl1", "ctl2", "ctl3"]
        .iter()
        .map(|c| elections_won(dir, c))
        .sum();
    assert!(elections >= 2, "{elections} election(s) won");
    // the metadata check asked the quorum and each broker
    let m = &r["kafka_metadata"];
    assert_eq!(m["differences"].as_array().map(Vec::len), Some(0), "{m}");
    assert!(m["error"].is_null(), "{m}");
    let voters: Vec<i64> = m["quorum"]["voters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_i64().unwrap())
        .collect();
    assert_eq!(voters, [101, 102, 103], "{m}");
    assert!(u(&m["quorum"]["leader_epoch"]) >= 2, "{m}");
    assert_eq!(m["registered_brokers"], serde_json::json!([1, 2, 3]), "{m}");
    assert!(
        o.summary.contains("kafka metadata in the KRaft quorum"),
        "{}",
        o.summary
    );
}

/// `mirrormaker-switch-over`: MirrorMaker 2 copies to the run's second cluster, the consumers
/// then the producers move there, nothing acked lost on either, every record read on one
/// or the other; the report's two-cluster section drawn by a browser.
pub fn mirror_switch_over(o: &Outcome) {
    let r = &o.report;
    assert_eq!(r["verdict"], "pass", "{}", o.summary);
    let steps = r["steps"].as_array().unwrap();
    assert!(steps.iter().all(|s| s["ok"] == true), "{steps:?}");
    // every client moved: two consumer instances, two producer instances
    let sw = &r["switch_over"];
    assert_eq!(u(&sw["consumers_moved"]), 2, "{sw}");
    assert_eq!(u(&sw["producers_moved"]), 2, "{sw}");
    assert_eq!(sw["target_read"], true, "{sw}");
    // the producers wrote the target for the last ~15 s at 200 records/s
    let on_target = u(&sw["acked_on_target"]);
    assert!(on_target >= 1_500, "{sw}");
    assert_eq!(u(&sw["lost_on_target"]), 0, "{sw}");
    let a = &r["anomalies"];
    for k in [
        "lost",
        "unverified",
        "inconsistent_offset",
        "unconsumed",
        "poll_gap",
    ] {
        assert_eq!(u(&a[k]), 0, "{k}: {a}");
    }
    // the copy: everything the source acked is on the target; the target's own acks are
    // not the source's (not expected from the copy)
    let m = &r["mirror"];
    assert_eq!(u(&m["missing"]), 0, "{m}");
    let acked = u(&r["producers"]["acked"]);
    assert_eq!(u(&m["expected"]) + on_target, acked, "{m}");
    // the group's offsets were not compared at the end: the group itself moved
    assert!(m["group"].is_null(), "{m}");
    // both moves are in the timeline, each naming the target
    let timeline = std::fs::read_to_string(o.guard.dir.join("timeline.jsonl")).unwrap();
    let moves: Vec<&str> = timeline
        .lines()
        .filter(|l| l.contains("bootstrap_switch") && l.contains("MirrorMaker's target"))
        .collect();
    assert_eq!(moves.len(), 2, "{timeline}");
    assert!(moves[0].contains("consumer") && moves[1].contains("producer"));
    // the workers read the discovery file's lines for their roles
    let discovery = std::fs::read_to_string(o.guard.dir.join("discovery/bootstrap")).unwrap();
    assert!(discovery
        .lines()
        .any(|l| l.starts_with("consume ") && l.ends_with(" 1")));
    assert!(discovery
        .lines()
        .any(|l| l.starts_with("produce ") && l.ends_with(" 1")));
    // the report's section for the two clusters, drawn by a browser
    let html = std::fs::read_to_string(o.guard.dir.join("report.html")).unwrap();
    assert!(html.contains("Two clusters: MirrorMaker 2"), "no section");
    assert!(html.contains("The switch-over: 2 consumer and 2 producer client(s)"));
    crate::browser::assert_report_renders_in_chromium(&o.guard.dir);
    println!(
        "switch-over: {on_target} acked on the target, {} read again there",
        u(&sw["reread_on_target"])
    );
}
