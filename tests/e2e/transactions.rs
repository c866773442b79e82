//! Exactly-once under migration: transactional producers (transactions of several records
//! across partitions, some aborted on purpose) and `read_committed` consumers on real
//! clusters — a rolling restart, the transaction coordinator's broker SIGKILLed
//! mid-commit, seed 001's broker replacement (every transaction coordinator moves, the
//! clients switch), and the known-unsafe setting (`read_uncommitted` consumers) that the
//! harness must catch; and the exactly-once pipeline (consume-transform-produce) through a
//! broker kill and a restart, on KRaft.

use e2e::{cluster_lock, run_scenario, run_scenario_on, snapshot_before, u};
use serde_json::Value;

/// The transactions were real: committed and aborted ones, aborted records written to the
/// log (the final read's offsets hold holes where they are), and no transactional anomaly.
fn transactions_held(r: &Value, summary: &str) {
    let t = &r["transactions"];
    assert!(u(&t["committed"]) > 100, "{summary}");
    assert!(u(&t["aborted"]) > 10, "{summary}");
    assert!(u(&r["producers"]["aborted"]) > 50, "{summary}");
    assert_eq!(u(&r["anomalies"]["aborted_read"]), 0, "{summary}");
    assert_eq!(u(&r["anomalies"]["non_atomic_read"]), 0, "{summary}");
    assert_eq!(u(&r["anomalies"]["lost"]), 0, "{summary}");
    // every committed record is in the final read; an aborted one never is
    assert!(
        u(&r["final_read"]["records"]) >= u(&r["producers"]["acked"]),
        "{summary}"
    );
    assert_eq!(u(&r["anomalies"]["poll_gap"]), 0, "{summary}");
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_rolling_restart_under_transactions_loses_no_commit_and_shows_no_abort() {
    let _one = cluster_lock();
    let o = run_scenario("transactional-rolling-restart.toml");
    assert_eq!(o.code, 0, "{}", o.summary);
    transactions_held(&o.report, &o.summary);
    assert!(
        o.summary.contains("transactions: committed"),
        "{}",
        o.summary
    );
}

/// Java's `String.hashCode`, as Kafka takes a transactional id's `__transaction_state`
/// partition: `Utils.abs(id.hashCode) % partitions` (TransactionStateManager.partitionFor).
fn transaction_state_partition(id: &str, partitions: i32) -> i32 {
    let h = id
        .encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)));
    let abs = if h == i32::MIN { 0 } else { h.abs() };
    abs % partitions
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn killing_the_transaction_coordinator_mid_commit_loses_no_commit() {
    let _one = cluster_lock();
    let o = run_scenario("transactional-coordinator-kill.toml");
    assert_eq!(o.code, 0, "{}", o.summary);
    let r = &o.report;
    transactions_held(r, &o.summary);
    // the step killed the coordinator: the broker leading the __transaction_state
    // partition of most producers' transactional ids (`kmh-RUN-tI`), as Kafka places them,
    // in the cluster as it stood before the step
    let kill = "kill the transaction coordinator";
    let killed = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == kill)
        .unwrap()["node"]
        .as_str()
        .unwrap()
        .to_string();
    let snap = snapshot_before(&o.guard.dir, kill);
    let state: Vec<&Value> = snap["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == "__transaction_state")
        .collect();
    assert!(!state.is_empty());
    let run_id = r["run_id"].as_str().unwrap();
    let mut led: std::collections::BTreeMap<i64, u32> = Default::default();
    for i in 0..2 {
        let p = transaction_state_partition(&format!("kmh-{run_id}-t{i}"), state.len() as i32);
        let leader = state.iter().find(|s| s["partition"] == p).unwrap()["leader"]
            .as_i64()
            .unwrap();
        *led.entry(leader).or_default() += 1;
    }
    let most = *led.values().max().unwrap();
    let coordinators: Vec<String> = led
        .iter()
        .filter(|(_, n)| **n == most)
        .map(|(id, _)| format!("kafka{id}"))
        .collect();
    assert_eq!(coordinators.first(), Some(&killed), "{led:?}");
    // a commit in flight waited for the new coordinator: the longest transaction is the
    // kill's, seconds long — and that producer is not called silent for waiting
    let t = &r["transactions"];
    assert!(u(&t["longest_ms"]) >= 1000, "{}", t);
    assert_eq!(u(&r["anomalies"]["silent_producers"]), 0, "{}", o.summary);
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn read_uncommitted_consumers_are_caught_reading_aborted_records() {
    let _one = cluster_lock();
    let o = run_scenario("transactional-read-uncommitted.toml");
    // the scenario expects aborted reads: finding them passes
    assert_eq!(o.code, 0, "{}", o.summary);
    let r = &o.report;
    let aborted = u(&r["producers"]["aborted"]);
    let read = u(&r["anomalies"]["aborted_read"]);
    // the consumers read (nearly) every aborted record: each abort wrote its records first
    assert!(
        read > 0 && read * 10 >= aborted * 9,
        "{read} of {aborted}: {}",
        o.summary
    );
    let ex = &r["examples"]["aborted_read"][0];
    assert!(
        ex["detail"]
            .as_str()
            .unwrap()
            .contains("read by a consumer"),
        "{ex}"
    );
    // the final read (always read_committed) holds none of them, and every commit
    for e in r["examples"]["aborted_read"].as_array().unwrap() {
        assert!(!e["detail"].as_str().unwrap().contains("final read"), "{e}");
    }
    assert_eq!(u(&r["anomalies"]["lost"]), 0, "{}", o.summary);
    assert_eq!(u(&r["anomalies"]["non_atomic_read"]), 0, "{}", o.summary);
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn replacing_every_broker_under_transactions_loses_no_commit() {
    let _one = cluster_lock();
    let o = run_scenario("transactional-broker-replacement.toml");
    assert_eq!(o.code, 0, "{}", o.summary);
    let r = &o.report;
    transactions_held(r, &o.summary);
    // the transaction log moved with the rest: nothing of it is left on the old brokers
    let snap = snapshot_before(&o.guard.dir, "stop kafka1");
    for p in snap["partitions"].as_array().unwrap() {
        if p["topic"] == "__transaction_state" {
            for b in p["replicas"].as_array().unwrap() {
                assert!(b.as_i64().unwrap() >= 4, "{p}");
            }
        }
    }
    // the producers switched to the new brokers: each ended its open transaction first,
    // then took a new client with its transactional id (`switches` in their status)
    assert!(
        r["migration_events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().contains("workers switched")),
        "{}",
        r["migration_events"]
    );
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn the_exactly_once_pipeline_copies_each_committed_record_once_through_a_kill_and_a_restart_on_kraft(
) {
    let _one = cluster_lock();
    // on KRaft 4.1: the transactional scenarios' coordinator moves and aborts under
    // Kafka 4's transaction protocol, the pipeline's offsets committed in its transactions
    let o = run_scenario_on("exactly-once-pipeline.toml", &["--kraft", "4.1"]);
    assert_eq!(o.code, 0, "{}", o.summary);
    let r = &o.report;
    transactions_held(r, &o.summary);
    let c = &r["copy"];
    assert_eq!(c["from"], "ledger", "{c}");
    assert_eq!(c["to"], "ledger-copy", "{c}");
    assert_eq!(c["caught_up"], true, "{c}");
    // everything the input holds — every committed record, no aborted one — and nothing
    // else is in the output, each once
    let input = u(&c["input_records"]);
    assert!(input > 500, "{c}");
    assert_eq!(input, u(&r["final_read"]["records"]), "{c}");
    assert_eq!(u(&c["copied_once"]), input, "{c}");
    assert_eq!(u(&c["output_records"]), input, "{c}");
    assert_eq!(
        (u(&c["missing"]), u(&c["duplicates"]), u(&c["not_in_input"])),
        (0, 0, 0),
        "{c}"
    );
    assert!(c["input_incomplete"].as_array().unwrap().is_empty(), "{c}");
    assert!(c["output_incomplete"].as_array().unwrap().is_empty(), "{c}");
    // the pipeline ran in transactions: many rounds, every record it copied committed once
    let t = &c["transactions"];
    assert!(u(&t["committed"]) > 20, "{c}");
    assert!(u(&t["records_read"]) >= input, "{c}");
    assert!(u(&t["records_committed"]) >= input, "{c}");
    // the report says so in its summary and the expectations were judged
    assert!(
        o.summary.contains("pipeline ledger → ledger-copy"),
        "{}",
        o.summary
    );
    for name in ["copy_missing", "copy_duplicates", "copy_not_in_input"] {
        let e = r["expectations"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == name)
            .unwrap_or_else(|| panic!("{name} judged: {}", o.summary));
        assert_eq!(e["ok"], true, "{e}");
    }
    // the run was on KRaft
    let stored = std::fs::read_to_string(o.guard.dir.join("scenario.toml")).unwrap();
    assert!(stored.lines().next().unwrap().contains("kraft"), "{stored}");
}

#[test]
fn kafka_places_a_transactional_id_as_java_hashes_it() {
    // "a".hashCode() = 97; "kmh".hashCode() = 106_310 (107*31² + 109*31 + 104)
    assert_eq!(transaction_state_partition("a", 50), 97 % 50);
    assert_eq!(transaction_state_partition("kmh", 1000), 106_310 % 1000);
    // a negative hash is taken by its absolute value
    let h = "polygenelubricants"; // hashCode() = i32::MIN in Java: Utils.abs gives 0
    assert_eq!(transaction_state_partition(h, 3), 0);
}
