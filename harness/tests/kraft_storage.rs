//! Issue [7]: what a KRaft cluster is before it starts — each node's roles, id, listeners
//! and the static quorum in its `server.properties`, and its storage formatted with the
//! cluster's id (`meta.properties`, which Kafka refuses to start without) — for dedicated
//! and combined controllers side by side; and a format that fails names its node.

use std::collections::BTreeMap;

use harness::cluster::{dist, Cluster};
use harness::scenario::{Backend, ClusterSpec, HostMode};

fn spec(broker_config: &[(&str, &str)]) -> ClusterSpec {
    ClusterSpec {
        backend: Backend::Local,
        hosts: HostMode::Loopback,
        kafka_version: "4.1.2".into(),
        zookeeper: vec![],
        dormant: vec![],
        ensembles: Default::default(),
        kafka_ensemble: String::new(),
        brokers: vec!["kafka1".into(), "kafka2".into()],
        // one dedicated controller, one combined node
        controllers: vec!["ctl1".into(), "kafka2".into()],
        dynamic_quorum: false,
        broker_config: broker_config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        zookeeper_config: Default::default(),
        broker_heap_mb: 384,
        zookeeper_heap_mb: 64,
        controller_heap_mb: 256,
        inventory: None,
        ec2: None,
        target: None,
    }
}

fn properties(path: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

#[test]
fn dedicated_and_combined_nodes_are_configured_and_formatted_with_one_cluster_id() {
    let d = dist::locate("4.1.2")
        .unwrap_or_else(|e| panic!("NOT RUN: no Kafka 4.1.2 distribution: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::prepare("kraft-storage-test", &spec(&[]), &d, dir.path(), false, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let id = cluster
        .cluster_id()
        .expect("a KRaft cluster has an id")
        .to_string();
    assert_eq!(id.len(), 22, "{id}");
    let node = |n: &str| properties(&dir.path().join("nodes").join(n).join("server.properties"));
    let (ctl1, kafka1, kafka2) = (node("ctl1"), node("kafka1"), node("kafka2"));
    assert_eq!(ctl1["process.roles"], "controller");
    assert_eq!(kafka1["process.roles"], "broker");
    assert_eq!(kafka2["process.roles"], "broker,controller");
    assert_eq!(
        (
            ctl1["node.id"].as_str(),
            kafka1["node.id"].as_str(),
            kafka2["node.id"].as_str()
        ),
        ("101", "1", "2")
    );
    // every node is given the same static quorum: the dedicated controller and the combined node
    let voters = &ctl1["controller.quorum.voters"];
    assert_eq!(&kafka1["controller.quorum.voters"], voters);
    assert_eq!(&kafka2["controller.quorum.voters"], voters);
    let ids: Vec<&str> = voters
        .split(',')
        .map(|v| v.split('@').next().unwrap())
        .collect();
    assert_eq!(ids, ["101", "2"], "{voters}");
    assert!(voters.split(',').all(|v| v.ends_with(":9093")), "{voters}");
    // a dedicated controller has no client listener; a broker advertises only its own
    assert!(
        !ctl1["listeners"].contains("PLAINTEXT://"),
        "{}",
        ctl1["listeners"]
    );
    assert!(!ctl1.contains_key("advertised.listeners"));
    assert!(
        kafka2["listeners"].contains("PLAINTEXT://")
            && kafka2["listeners"].contains("CONTROLLER://")
    );
    assert!(!kafka1["listeners"].contains("CONTROLLER://"));
    assert!(!kafka1.contains_key("zookeeper.connect"));
    // a broker's failure is noticed in 6 s, as in ZooKeeper mode, with heartbeats every
    // 500 ms: the controllers read the session, the brokers the interval; all get both
    for (n, p) in [("ctl1", &ctl1), ("kafka1", &kafka1), ("kafka2", &kafka2)] {
        assert_eq!(p["broker.session.timeout.ms"], "6000", "{n}");
        assert_eq!(p["broker.heartbeat.interval.ms"], "500", "{n}");
    }
    // formatted: each log directory holds meta.properties with the cluster id and its node id
    for (n, node_id) in [("ctl1", "101"), ("kafka1", "1"), ("kafka2", "2")] {
        let meta = properties(
            &dir.path()
                .join("nodes")
                .join(n)
                .join("data")
                .join("meta.properties"),
        );
        assert_eq!(meta["cluster.id"], id, "{n}");
        assert_eq!(meta["node.id"], node_id, "{n}");
    }
}

#[test]
fn the_scenarios_broker_config_overrides_the_kraft_session_defaults() {
    let d = dist::locate("4.1.2")
        .unwrap_or_else(|e| panic!("NOT RUN: no Kafka 4.1.2 distribution: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let spec = spec(&[("broker.session.timeout.ms", "9000")]);
    Cluster::prepare(
        "kraft-storage-test-session",
        &spec,
        &d,
        dir.path(),
        false,
        &[],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for n in ["ctl1", "kafka1", "kafka2"] {
        let text =
            std::fs::read_to_string(dir.path().join("nodes").join(n).join("server.properties"))
                .unwrap();
        let sessions: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("broker.session.timeout.ms="))
            .collect();
        // once, the scenario's value: Kafka would take the last of two, a reader the first
        assert_eq!(sessions, ["broker.session.timeout.ms=9000"], "{n}");
        assert!(text.contains("broker.heartbeat.interval.ms=500\n"), "{n}");
    }
}

#[test]
fn a_storage_format_that_fails_names_the_node_and_carries_the_tools_words() {
    let d = dist::locate("4.1.2")
        .unwrap_or_else(|e| panic!("NOT RUN: no Kafka 4.1.2 distribution: {e}"));
    let dir = tempfile::tempdir().unwrap();
    // a log directory nobody can create
    let spec = spec(&[("log.dirs", "/proc/kmh-no-such-dir/data")]);
    let err = match Cluster::prepare("kraft-storage-test-bad", &spec, &d, dir.path(), false, &[]) {
        Ok(_) => panic!("formatting into /proc succeeded"),
        Err(e) => e.to_string(),
    };
    println!("{err}");
    assert!(err.contains("formatting the storage of "), "{err}");
    assert!(
        ["ctl1", "kafka1", "kafka2"]
            .iter()
            .any(|n| err.contains(&format!("of {n} "))),
        "{err}"
    );
    assert!(
        err.contains("/proc/kmh-no-such-dir"),
        "the tool's own words: {err}"
    );
}

/// The 16 bytes of a Kafka `Uuid` in its text form (base64url, no padding).
fn uuid_bytes(text: &str) -> Vec<u8> {
    let std_b64 = text.replace('-', "+").replace('_', "/") + "==";
    openssl::base64::decode_block(&std_b64).unwrap()
}

#[test]
fn a_dynamic_quorum_writes_its_first_voters_into_their_storage_and_points_every_node_at_all_controllers(
) {
    let d = dist::locate("4.1.2")
        .unwrap_or_else(|e| panic!("NOT RUN: no Kafka 4.1.2 distribution: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let mut spec = spec(&[]);
    // two dedicated controllers, the second dormant (it joins by add-controller)
    spec.controllers = vec!["ctl1".into(), "ctl2".into()];
    spec.dormant = vec!["ctl2".into()];
    spec.dynamic_quorum = true;
    let _cluster = Cluster::prepare("kraft-dynamic-test", &spec, &d, dir.path(), false, &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let path = |n: &str, f: &str| dir.path().join("nodes").join(n).join(f);
    // every node finds the quorum through all controllers, the dormant one too
    let servers = properties(&path("ctl1", "server.properties"))
        ["controller.quorum.bootstrap.servers"]
        .clone();
    assert_eq!(servers.split(',').count(), 2, "{servers}");
    assert!(
        servers.split(',').all(|s| s.ends_with(":9093")),
        "{servers}"
    );
    for n in ["ctl1", "ctl2", "kafka1", "kafka2"] {
        let p = properties(&path(n, "server.properties"));
        assert_eq!(p["controller.quorum.bootstrap.servers"], servers, "{n}");
        assert!(!p.contains_key("controller.quorum.voters"), "{n}");
    }
    // the first voter's storage holds the voter set (a checkpoint with its log directory's
    // id in it); the dormant controller's and the brokers' hold none
    let voters_checkpoint = "data/__cluster_metadata-0/00000000000000000000-0000000000.checkpoint";
    let ctl1_dir = properties(&path("ctl1", "data/meta.properties"))["directory.id"].clone();
    let checkpoint = std::fs::read(path("ctl1", voters_checkpoint))
        .unwrap_or_else(|e| panic!("ctl1's voter set: {e}"));
    let id = uuid_bytes(&ctl1_dir);
    assert!(
        checkpoint.windows(16).any(|w| w == id.as_slice()),
        "ctl1's directory id {ctl1_dir} is not in its voter set"
    );
    for n in ["ctl2", "kafka1"] {
        assert!(!path(n, voters_checkpoint).exists(), "{n} has a voter set");
        // formatted all the same, with a log directory id of its own
        let meta = properties(&path(n, "data/meta.properties"));
        assert_eq!(meta["cluster.id"], _cluster.cluster_id().unwrap(), "{n}");
        assert_ne!(meta["directory.id"], ctl1_dir, "{n}");
    }
}
