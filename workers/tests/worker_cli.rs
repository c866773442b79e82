//! The `worker` binary's contract with the harness: a bad config is exit code 2 with the
//! file named; a config whose brokers never answer still yields a valid, flushed log on
//! SIGTERM, with every sent record given an outcome.

use std::process::Command;
use std::time::Duration;

use workers::{
    Acks, ConsumerSettings, EventKind, LogReader, ProducerSettings, Role, TopicSpec, WorkerConfig,
};

/// A worker config whose cluster does not exist (nothing listens on 127.0.0.1:1).
fn config(role: Role, dir: &std::path::Path, rate: Option<f64>) -> WorkerConfig {
    WorkerConfig {
        run_id: "t".into(),
        role,
        worker_index: 0,
        instances: 2,
        first_instance_id: 10,
        bootstrap: "127.0.0.1:1".into(),
        bootstrap_file: None,
        topics: vec![TopicSpec {
            name: "x".into(),
            partitions: 2,
        }],
        log_path: dir.join("w.log"),
        producer: ProducerSettings {
            rate,
            size: 64,
            acks: Acks::All,
            idempotence: false,
            retries: 3,
            max_in_flight: 1,
            linger_ms: 0,
            delivery_timeout_ms: 1000,
            request_timeout_ms: 500,
            transactions: None,
        },
        consumer: ConsumerSettings {
            group_id: "g".into(),
            session_timeout_ms: 6000,
            read_uncommitted: false,
        },
        final_read_timeout_ms: 1000,
        client_overrides: Default::default(),
        copy: None,
    }
}

#[test]
fn a_bad_config_is_exit_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("w.json");
    std::fs::write(&cfg, "{ not json").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("consume")
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("w.json"));
}

/// Runs `worker ROLE` on `cfg`, written to `dir/w.json`.
fn run_with(cfg: &WorkerConfig, dir: &std::path::Path, role: &str) -> std::process::Output {
    let path = dir.join("w.json");
    std::fs::write(&path, serde_json::to_vec(cfg).unwrap()).unwrap();
    Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg(role)
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap()
}

#[test]
fn a_config_that_parses_but_cannot_run_is_exit_2_naming_each_field() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Role::Produce, dir.path(), Some(1e-300));
    cfg.topics[0].partitions = 0;
    cfg.instances = 0;
    let out = run_with(&cfg, dir.path(), "produce");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for field in [
        "w.json",
        "`producer.rate`",
        "`topics[0].partitions`",
        "`instances`",
    ] {
        assert!(err.contains(field), "{field} not named: {err}");
    }
    // refused before anything started: no log
    assert!(!dir.path().join("w.log").exists());
}

#[test]
fn a_config_of_another_role_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Role::FinalRead, dir.path(), Some(1.0));
    let out = run_with(&cfg, dir.path(), "produce");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not Produce"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cfg.log_path.exists(), "nothing written");
}

#[test]
fn a_producer_cut_off_from_its_cluster_flushes_an_outcome_for_every_send_on_sigterm() {
    cut_off_producer(Some(100.0));
}

#[test]
fn an_unlimited_producer_fills_its_client_then_is_refused_and_still_accounts_for_every_send() {
    let refused = cut_off_producer(None);
    assert!(refused > 0, "its full queue pushed back");
}

/// A producer at `rate` against nothing; returns how many sends its client refused.
fn cut_off_producer(rate: Option<f64>) -> u64 {
    let dir = tempfile::tempdir().unwrap();
    // nothing listens on this loopback address: every send stays pending
    let cfg = config(Role::Produce, dir.path(), rate);
    let cfg_path = dir.path().join("w.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("produce")
        .arg("--config")
        .arg(&cfg_path)
        .spawn()
        .unwrap();
    // the worker waits up to 3 request timeouts (1.5 s) for metadata, then sends anyway
    std::thread::sleep(Duration::from_secs(4));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().unwrap();
    assert!(st.success(), "{st}");
    let mut r = LogReader::open(&cfg.log_path).unwrap();
    assert_eq!(r.header().run_id, "t");
    let mut sent_to = std::collections::BTreeMap::new();
    let mut refused = 0;
    let mut outcomes = std::collections::BTreeSet::new();
    while let Some(e) = r.next_event().unwrap() {
        match e.kind {
            // sends are watermarks: every seq below was handed to the client
            EventKind::SentUpTo => {
                let to = sent_to.entry(e.producer).or_insert(0);
                *to = e.seq.max(*to);
            }
            EventKind::Refused => refused += 1,
            EventKind::Failed | EventKind::Indeterminate | EventKind::Acked => {
                let fresh = outcomes.insert((e.producer, e.seq));
                assert!(fresh, "one outcome per record: {e:?}");
            }
            _ => {}
        }
    }
    let sent: u64 = sent_to.values().sum();
    let outcomes = outcomes.len() as u64;
    assert!(!r.was_cut_short());
    assert!(
        sent > 100,
        "it kept sending while the cluster was unreachable: {sent}"
    );
    assert_eq!(sent, outcomes, "every sent record ends with an outcome");
    refused
}

/// The final read keeps to its timeout on a cluster that answers nothing: it stops asking
/// when the timeout is up (each request's wait cut to what is left), logs every partition
/// incomplete, and exits. It took 30 s for this 2-s read, six partitions of 5-s requests,
/// before the waits were cut; 20 s is the bound here, a contract rather than a speed goal.
#[test]
fn a_final_read_of_a_cluster_that_answers_nothing_ends_at_its_timeout_with_every_partition_incomplete(
) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(Role::FinalRead, dir.path(), Some(10.0));
    cfg.topics[0].partitions = 6;
    cfg.final_read_timeout_ms = 2_000;
    let started = std::time::Instant::now();
    let out = run_with(&cfg, dir.path(), "final-read");
    let took = started.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        took < Duration::from_secs(20),
        "a 2-s final read took {took:?}"
    );
    let mut reader = LogReader::open(&cfg.log_path).unwrap();
    let mut incomplete = Vec::new();
    while let Some(e) = reader.next_event().unwrap() {
        if e.kind == EventKind::ReadIncomplete {
            incomplete.push(e.partition);
        }
    }
    incomplete.sort();
    assert_eq!(incomplete, [0, 1, 2, 3, 4, 5]);
}
