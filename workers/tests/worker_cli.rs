//! The `worker` binary's contract with the harness: a bad config is exit code 2 with the
//! file named; a config whose brokers never answer still yields a valid, flushed log on
//! SIGTERM, with every sent record given an outcome.

use std::process::Command;
use std::time::Duration;

use workers::{
    Acks, ConsumerSettings, EventKind, LogReader, ProducerSettings, Role, TopicSpec, WorkerConfig,
};

/// A worker config whose cluster does not exist (nothing listens on 127.0.0.1:1).
fn config(role: Role, dir: &std::path::Path, rate: f64) -> WorkerConfig {
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
        },
        consumer: ConsumerSettings {
            group_id: "g".into(),
            session_timeout_ms: 6000,
        },
        final_read_timeout_ms: 1000,
        client_overrides: Default::default(),
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

#[test]
fn a_config_of_another_role_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(Role::FinalRead, dir.path(), 1.0);
    let path = dir.path().join("w.json");
    std::fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_worker"))
        .arg("produce")
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
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
    let dir = tempfile::tempdir().unwrap();
    // nothing listens on this loopback address: every send stays pending
    let cfg = config(Role::Produce, dir.path(), 100.0);
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
    let mut sent = 0;
    let mut outcomes = 0;
    while let Some(e) = r.next_event().unwrap() {
        match e.kind {
            EventKind::Sent => sent += 1,
            EventKind::Failed | EventKind::Indeterminate | EventKind::Acked => outcomes += 1,
            _ => {}
        }
    }
    assert!(!r.was_cut_short());
    assert!(
        sent > 100,
        "it kept sending while the cluster was unreachable: {sent}"
    );
    assert_eq!(sent, outcomes, "every sent record ends with an outcome");
}
