//! Shared by the tests that need real ZooKeeper servers.

use std::path::Path;

use harness::cluster::{dist, Cluster};
use harness::scenario::{Backend, ClusterSpec, HostMode};
use harness::Shutdown;

#[allow(unused_imports)]
pub use e2e::{cluster_lock, cluster_lock_exclusive};

#[allow(dead_code)]
/// Starts a ZooKeeper-only cluster of `nodes` (one ensemble) on loopback addresses, its
/// files under `dir`. Without Java or the distribution the test fails with `NOT RUN:`.
pub fn zookeeper_cluster(dir: &Path, run_id: &str, nodes: &[&str]) -> Cluster {
    let d = dist::locate("3.9.1")
        .unwrap_or_else(|e| panic!("NOT RUN: no Kafka/ZooKeeper distribution: {e}"));
    let names: Vec<String> = nodes.iter().map(|n| n.to_string()).collect();
    let spec = ClusterSpec {
        backend: Backend::Local,
        hosts: HostMode::Loopback,
        kafka_version: "3.9.1".into(),
        zookeeper: names.clone(),
        dormant: vec![],
        ensembles: [("zookeeper".to_string(), names)].into(),
        kafka_ensemble: "zookeeper".into(),
        brokers: vec![],
        broker_config: Default::default(),
        zookeeper_config: Default::default(),
        broker_heap_mb: 384,
        zookeeper_heap_mb: 64,
        controller_heap_mb: 256,
        controllers: Vec::new(),
        dynamic_quorum: false,
        inventory: None,
        ec2: None,
        target: None,
    };
    let mut c = Cluster::prepare(run_id, &spec, &d, dir, false, &[]).unwrap();
    c.start_all(&Shutdown::new()).unwrap();
    c
}

/// Starts one ZooKeeper node and `brokers` brokers (the `dormant` ones configured but not
/// started) on loopback addresses. Without Java or the distribution: `NOT RUN:`.
#[allow(dead_code)]
pub fn kafka_cluster(dir: &Path, run_id: &str, brokers: &[&str], dormant: &[&str]) -> Cluster {
    kafka_cluster_with(dir, run_id, brokers, dormant, &[])
}

/// [`kafka_cluster`] with broker properties on top of the harness's defaults.
#[allow(dead_code)]
pub fn kafka_cluster_with(
    dir: &Path,
    run_id: &str,
    brokers: &[&str],
    dormant: &[&str],
    broker_config: &[(&str, &str)],
) -> Cluster {
    let d = dist::locate("3.9.1")
        .unwrap_or_else(|e| panic!("NOT RUN: no Kafka/ZooKeeper distribution: {e}"));
    let spec = ClusterSpec {
        backend: Backend::Local,
        hosts: HostMode::Loopback,
        kafka_version: "3.9.1".into(),
        zookeeper: vec!["zk1".into()],
        dormant: dormant.iter().map(|n| n.to_string()).collect(),
        ensembles: [("zookeeper".to_string(), vec!["zk1".to_string()])].into(),
        kafka_ensemble: "zookeeper".into(),
        brokers: brokers.iter().map(|n| n.to_string()).collect(),
        broker_config: broker_config
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        zookeeper_config: Default::default(),
        broker_heap_mb: 384,
        zookeeper_heap_mb: 64,
        controller_heap_mb: 256,
        controllers: Vec::new(),
        dynamic_quorum: false,
        inventory: None,
        ec2: None,
        target: None,
    };
    let mut c = Cluster::prepare(run_id, &spec, &d, dir, false, &[]).unwrap();
    c.start_all(&Shutdown::new()).unwrap();
    c
}
