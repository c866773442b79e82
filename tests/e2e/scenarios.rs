//! The three scenarios of the foundation, each on a real 3-ZooKeeper, 3-broker cluster
//! under load, with the outcomes the harness must report; a frozen leader, which makes
//! librdkafka bump its producer epoch for real; and a topic whose retention deletes records
//! during the run (expired, not lost). The first two also open their runs' report.html in
//! headless Chromium.

use e2e::{cluster_lock, cluster_lock_exclusive, run_scenario, snapshot_before, u};
use serde_json::Value;

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_rolling_restart_under_load_loses_nothing() {
    let _one = cluster_lock();
    let o = run_scenario("rolling-restart.toml");
    e2e::verdicts::rolling_restart(&o);
    // the report to look at, in a real browser
    e2e::browser::assert_report_renders_in_chromium(&o.guard.dir);
    an_oracle_that_misses_records_is_a_disagreement(&o.guard.dir);
}

/// The second oracle is judged from the stored history alone, and a disagreement fails the
/// run: a copy of a clean run whose oracle final read lost five acked values is checked
/// again (`harness check`) and fails on `oracle_agrees`, the harness's own counts unchanged.
fn an_oracle_that_misses_records_is_a_disagreement(run: &std::path::Path) {
    // beside the run, kept like the runs for a look afterwards
    let dir = run.with_file_name(format!(
        "{}-oracle-disagreement",
        run.file_name().unwrap().to_string_lossy()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let cp = std::process::Command::new("cp")
        .arg("-a")
        .arg(run)
        .arg(&dir)
        .status()
        .unwrap();
    assert!(cp.success());
    let fin = dir.join("oracle/final-read.jsonl");
    let text = std::fs::read_to_string(&fin).unwrap();
    let mut dropped = 0;
    let kept: String = text
        .lines()
        .filter(|l| {
            let drop = dropped < 5 && l.contains("\"name\":\"record_data\"");
            dropped += drop as u32;
            !drop
        })
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(dropped, 5);
    std::fs::write(&fin, kept).unwrap();
    let out = std::process::Command::new(e2e::harness_bin())
        .arg("check")
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let r: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(u(&r["anomalies"]["lost"]), 0);
    assert_eq!(u(&r["oracle"]["lost"]), 5, "{}", r["oracle"]);
    let agrees = e2e::verdicts::expectation(&r, "oracle_agrees");
    assert_eq!(agrees["ok"], false);
    assert!(
        agrees["actual"]
            .as_str()
            .unwrap()
            .starts_with("DISAGREE on loss: harness: 0 lost"),
        "{agrees}"
    );
    assert!(stdout.contains("kafkatest: fail"), "{stdout}");
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn stopping_the_broker_of_an_rf1_topic_opens_windows_on_exactly_its_partitions() {
    let _all = cluster_lock_exclusive(); // tight timing: alone
    let o = run_scenario("rf1-broker-stop.toml");
    let r = &o.report;
    assert_eq!(o.code, 0, "{}", o.summary);
    assert_eq!(u(&r["anomalies"]["lost"]), 0);
    // the ZooKeeper smoke test ran on every node all along, and nothing touched ZooKeeper
    let zk = r["zookeeper"].as_object().expect("a smoke test summary");
    assert_eq!(zk.keys().collect::<Vec<_>>(), vec!["zk1", "zk2", "zk3"]);
    for (node, s) in zk {
        assert!(u(&s["operations"]) > 100, "{node}: {s}");
        assert_eq!(u(&s["failures"]), 0, "{node}: {s}");
    }
    // which partitions kafka2 (broker id 2) led just before it was stopped
    let snapshot = snapshot_before(&o.guard.dir, "stop kafka2");
    let mut led: Vec<String> = snapshot["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["topic"] == "events" && p["leader"] == 2)
        .map(|p| format!("events/{}", p["partition"]))
        .collect();
    led.sort();
    assert!(
        !led.is_empty(),
        "kafka2 led no partition of events? {snapshot}"
    );
    // the outage: from the stop's end (process gone) to the start's end (registered again)
    let steps = r["steps"].as_array().unwrap();
    let step = |n: &str| {
        steps
            .iter()
            .find(|s| s["name"] == n)
            .unwrap_or_else(|| panic!("step {n}"))
    };
    let down_ms = u(&step("start kafka2")["start_ms"]) - u(&step("stop kafka2")["end_ms"]);
    assert!(down_ms >= 15_000);
    let windows: Vec<&Value> = r["unavailability"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["kind"] == "produce" && w["partition"] != "cluster")
        .collect();
    // The outage's windows: blamed on the stop, on exactly kafka2's partitions, each as long
    // as the outage. A loaded machine may also show a short stall elsewhere (a ~1 s window in
    // the warm-up was seen on CI); the report is right to show it, and it must stay short.
    let (outage, other): (Vec<&Value>, Vec<&Value>) =
        windows.iter().partition(|w| w["step"] == "stop kafka2");
    let mut with_window: Vec<String> = outage
        .iter()
        .map(|w| w["partition"].as_str().unwrap().to_string())
        .collect();
    with_window.sort();
    with_window.dedup();
    assert_eq!(
        with_window, led,
        "the stop opened produce windows on exactly the partitions kafka2 led: {windows:#?}"
    );
    for w in &outage {
        assert!(
            u(&w["duration_ms"]) >= down_ms,
            "window shorter than the outage ({down_ms} ms): {w}"
        );
    }
    for w in &other {
        assert!(
            u(&w["duration_ms"]) < down_ms / 3,
            "a window as long as an outage away from the stop: {w}"
        );
    }
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn an_unclean_election_loses_acked_records_and_the_kill_is_blamed() {
    let _one = cluster_lock();
    let o = run_scenario("unclean-election-loss.toml");
    let r = &o.report;
    assert_eq!(
        o.code, 0,
        "the scenario expects loss, so finding it passes: {}",
        o.summary
    );
    let lost = u(&r["anomalies"]["lost"]);
    assert!(lost > 0, "{}", o.summary);
    let by_step = r["lost_by_step"].as_object().unwrap();
    assert_eq!(
        by_step.keys().collect::<Vec<_>>(),
        vec!["kill the leader"],
        "{by_step:?}"
    );
    assert_eq!(u(&by_step["kill the leader"]), lost);
    let ex = &r["examples"]["lost"][0];
    assert_eq!(ex["partition"], "payments/0");
    assert!(ex["detail"]
        .as_str()
        .unwrap()
        .contains("not in the final read"));
    // the kill step named the node it killed, the leader of payments/0
    let kill = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "kill the leader")
        .unwrap();
    assert!(kill["node"].as_str().unwrap().starts_with("kafka"));
    // the report to look at shows the loss: its windows in the Gantt chart, the examples,
    // and it renders in a real browser
    let html = std::fs::read_to_string(o.guard.dir.join("report.html")).unwrap();
    assert!(
        html.contains("payments/0 produce"),
        "no window row in report.html"
    );
    assert!(html.contains("<h3>First examples: lost</h3>"));
    assert!(html.contains("<span class=\"verdict pass\">PASS</span>"));
    // Kafka's own verifier, on a topic placed as payments, lost records too (judged on its
    // final read: whether its consumer beside the workers had read them before the
    // truncation differs from run to run — all of them in one, none in another whose group
    // coordinator was the paused broker)
    e2e::verdicts::oracle_agrees(&o, true);
    assert_eq!(r["oracle"]["mirrors"], "payments");
    assert!(html.contains("<h2>Two oracles</h2>"));
    e2e::browser::assert_report_renders_in_chromium(&o.guard.dir);
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn a_leader_frozen_past_the_delivery_timeout_makes_the_clients_bump_their_epoch_and_explains_every_duplicate(
) {
    let _all = cluster_lock_exclusive(); // tight timing: alone
    let o = run_scenario("frozen-leader.toml");
    let r = &o.report;
    assert_eq!(o.code, 0, "{}", o.summary);
    assert_eq!(u(&r["anomalies"]["lost"]), 0);
    assert_eq!(u(&r["anomalies"]["unexpected"]), 0);
    assert!(
        u(&r["producers"]["failed"]) + u(&r["producers"]["indeterminate"]) > 0,
        "records timed out while the leader was frozen: {}",
        r["producers"]
    );
    // the producers' logs carry librdkafka's epoch bumps: the gap the timed-out records
    // left in the sequence, each bump during or right after the freeze
    let renewals = r["client_renewals"].as_array().unwrap();
    assert!(
        renewals.iter().any(|x| x["kind"] == "epoch bump"
            && x["reason"].as_str().unwrap().contains("message.timeout.ms")),
        "no epoch bump after timed-out records: {}",
        o.summary
    );
    for x in renewals {
        assert!(
            [
                "freeze the leader",
                "frozen",
                "thaw",
                "cluster recovers",
                "(settle)"
            ]
            .contains(&x["step"].as_str().unwrap()),
            "a renewal away from the freeze: {x}"
        );
        assert!(u(&x["at_ms"]) >= u(&x["drain_start_ms"]), "{x}");
    }
    // records were in flight at a bump (what may be stored twice), and whatever was
    // stored twice was in flight at one of those bumps
    assert!(
        renewals.iter().any(|x| u(&x["in_flight"]) > 0),
        "no record in flight at any bump: {}",
        r["client_renewals"]
    );
    assert_eq!(
        u(&r["anomalies"]["duplicate"]),
        u(&r["anomalies"]["duplicate_after_epoch_bump"]),
        "{}",
        o.summary
    );
}

#[test]
#[ignore = "slow tier: real clusters, namespaces or containers"]
fn records_deleted_by_retention_during_the_run_are_expired_not_lost() {
    let _one = cluster_lock();
    let o = run_scenario("retention-expiry.toml");
    let r = &o.report;
    // no fault: the run passes, though most records are gone from the log by the end
    assert_eq!(o.code, 0, "{}", o.summary);
    assert_eq!(u(&r["anomalies"]["lost"]), 0, "{}", o.summary);
    let (acked, expired) = (u(&r["producers"]["acked"]), u(&r["anomalies"]["expired"]));
    assert!(
        expired > acked / 2,
        "retention (5 s of a 30 s load) removed most records: {expired} of {acked}"
    );
    // the rest are in the final read, each where its ack said
    assert_eq!(
        u(&r["final_read"]["records"]) + expired,
        acked,
        "{}",
        o.summary
    );
    assert_eq!(u(&r["anomalies"]["inconsistent_offset"]), 0);
    assert!(o.summary.contains("expired"), "{}", o.summary);
}
