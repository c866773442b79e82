//! The end-of-run check that Kafka's metadata survived the migration: what the ensemble
//! the brokers use holds under Kafka's chroot, compared with what the brokers report.
//!
//! A migration that loses or forks ZooKeeper data shows here even when no record was lost:
//! a topic the brokers serve with no znode (the next controller would not know it), an
//! assignment or ISR that differs, a broker not registered, no controller, no cluster id.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client::Client;

use crate::error::ZkError;
use crate::kafka::ClusterSnapshot;

/// The result, as `metadata-check.json` in the run directory holds it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MetadataCheck {
    /// The ZooKeeper servers read (`host:port,...`) and the chroot.
    pub zookeeper: String,
    /// Topics compared.
    pub topics: u64,
    /// Partitions compared.
    pub partitions: u64,
    /// Brokers registered in ZooKeeper (KRaft: registered with the quorum and not fenced,
    /// as the brokers' metadata lists them).
    pub registered_brokers: Vec<i32>,
    /// The controller's broker id in ZooKeeper (-1: none).
    pub controller: i32,
    /// Every difference, in words (empty: intact).
    pub differences: Vec<String>,
    /// When the check itself could not run: why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A KRaft cluster's check: the controllers asked (`host:port,…` of their listeners);
    /// `zookeeper` is empty then.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub controllers: String,
    /// A KRaft cluster's check: the cluster id every node was formatted with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// A KRaft cluster's check: the quorum as its leader described it at the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<crate::kafka::quorum::QuorumState>,
}

impl MetadataCheck {
    /// Where the metadata was read, in words: the ZooKeeper servers and chroot, or the
    /// KRaft quorum's controllers.
    pub fn source(&self) -> String {
        if self.controllers.is_empty() {
            self.zookeeper.clone()
        } else {
            format!("the KRaft quorum ({})", self.controllers)
        }
    }

    /// True when the check ran and found nothing.
    pub fn intact(&self) -> bool {
        self.error.is_none() && self.differences.is_empty()
    }
}

#[derive(Deserialize)]
struct TopicZnode {
    partitions: BTreeMap<String, Vec<i32>>,
}

#[derive(Deserialize)]
struct StateZnode {
    leader: i32,
    isr: Vec<i32>,
}

/// `/controller`: the broker that is ZooKeeper mode's active controller.
#[derive(Deserialize)]
pub(crate) struct ControllerZnode {
    /// Its broker id.
    pub brokerid: i32,
}

async fn data(c: &Client, path: &str) -> Result<Option<Vec<u8>>, ZkError> {
    match c.get_data(path).await {
        Ok((d, _)) => Ok(Some(d)),
        Err(zookeeper_client::Error::NoNode) => Ok(None),
        Err(source) => Err(ZkError::Op {
            op: "reading",
            at: path.to_string(),
            source,
        }),
    }
}

async fn children(c: &Client, path: &str) -> Result<Vec<String>, ZkError> {
    match c.list_children(path).await {
        Ok(v) => Ok(v),
        Err(zookeeper_client::Error::NoNode) => Ok(Vec::new()),
        Err(source) => Err(ZkError::Op {
            op: "listing",
            at: path.to_string(),
            source,
        }),
    }
}

/// Compares the chroot `root` of the ensemble `c` is connected to with `snapshot`.
pub async fn compare(
    c: &Client,
    root: &str,
    snapshot: &ClusterSnapshot,
) -> Result<MetadataCheck, ZkError> {
    let mut out = MetadataCheck::default();
    let d = &mut out.differences;
    if data(c, &format!("{root}/cluster/id")).await?.is_none() {
        d.push(format!(
            "{root}/cluster/id is missing (the brokers' cluster id)"
        ));
    }
    let mut ids: Vec<i32> = children(c, &format!("{root}/brokers/ids"))
        .await?
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    ids.sort_unstable();
    let mut live = snapshot.brokers.clone();
    live.sort_unstable();
    if ids != live {
        d.push(format!(
            "registered brokers {ids:?} in ZooKeeper, the cluster reports {live:?}"
        ));
    }
    out.registered_brokers = ids;
    out.controller = match data(c, &format!("{root}/controller")).await? {
        None => {
            d.push(format!("{root}/controller is missing: no controller"));
            -1
        }
        Some(raw) => match serde_json::from_slice::<ControllerZnode>(&raw) {
            Ok(z) => {
                if !live.contains(&z.brokerid) {
                    d.push(format!(
                        "the controller ({}) is not a live broker",
                        z.brokerid
                    ));
                }
                z.brokerid
            }
            Err(e) => {
                d.push(format!("{root}/controller is not readable: {e}"));
                -1
            }
        },
    };
    let reported: BTreeSet<&str> = snapshot
        .partitions
        .iter()
        .map(|p| p.topic.as_str())
        .collect();
    let mut in_zk: BTreeSet<String> = children(c, &format!("{root}/brokers/topics"))
        .await?
        .into_iter()
        .collect();
    let deleting: BTreeSet<String> = children(c, &format!("{root}/admin/delete_topics"))
        .await?
        .into_iter()
        .collect();
    in_zk.retain(|t| !deleting.contains(t));
    for t in &in_zk {
        if !reported.contains(t.as_str()) {
            d.push(format!(
                "topic `{t}` is in ZooKeeper but the brokers do not serve it"
            ));
        }
    }
    for topic in &reported {
        out.topics += 1;
        let parts: Vec<_> = snapshot
            .partitions
            .iter()
            .filter(|p| p.topic == *topic)
            .collect();
        let Some(raw) = data(c, &format!("{root}/brokers/topics/{topic}")).await? else {
            d.push(format!(
                "topic `{topic}` ({} partitions) has no znode in ZooKeeper",
                parts.len()
            ));
            continue;
        };
        let assignment = match serde_json::from_slice::<TopicZnode>(&raw) {
            Ok(z) => z.partitions,
            Err(e) => {
                d.push(format!("topic `{topic}`: znode not readable: {e}"));
                continue;
            }
        };
        if assignment.len() != parts.len() {
            d.push(format!(
                "topic `{topic}`: {} partitions in ZooKeeper, {} reported",
                assignment.len(),
                parts.len()
            ));
        }
        for p in parts {
            out.partitions += 1;
            let name = format!("{topic}/{}", p.partition);
            match assignment.get(&p.partition.to_string()) {
                None => d.push(format!("{name}: no assignment in ZooKeeper")),
                Some(r) if *r != p.replicas => d.push(format!(
                    "{name}: replicas {r:?} in ZooKeeper, {:?} reported",
                    p.replicas
                )),
                Some(_) => {}
            }
            let state_path = format!(
                "{root}/brokers/topics/{topic}/partitions/{}/state",
                p.partition
            );
            match data(c, &state_path).await? {
                None => d.push(format!("{name}: no leader/ISR state in ZooKeeper")),
                Some(raw) => match serde_json::from_slice::<StateZnode>(&raw) {
                    Ok(s) => {
                        let (mut a, mut b) = (s.isr.clone(), p.isr.clone());
                        a.sort_unstable();
                        b.sort_unstable();
                        if s.leader != p.leader || a != b {
                            d.push(format!(
                                "{name}: leader {} ISR {:?} in ZooKeeper, leader {} ISR {:?} reported",
                                s.leader, s.isr, p.leader, p.isr
                            ));
                        }
                    }
                    Err(e) => d.push(format!("{name}: state not readable: {e}")),
                },
            }
        }
    }
    Ok(out)
}

/// Runs [`compare`] against `servers` until it finds no difference or `attempts` are
/// spent (leaders and ISR move; a difference must persist to count), taking a fresh
/// snapshot with `snapshot` each time.
pub async fn check(
    servers: &str,
    root: &str,
    attempts: u32,
    snapshot: impl Fn() -> Result<ClusterSnapshot, String>,
) -> MetadataCheck {
    let mut last = MetadataCheck {
        zookeeper: format!("{servers}{root}"),
        ..Default::default()
    };
    let client = match super::tree::connect(servers).await {
        Ok(c) => c,
        Err(e) => {
            last.error = Some(format!("cannot connect to {servers}: {e}"));
            return last;
        }
    };
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let snap = match snapshot() {
            Ok(s) => s,
            Err(e) => {
                last.error = Some(format!("no metadata from the brokers: {e}"));
                continue;
            }
        };
        match compare(&client, root, &snap).await {
            Ok(mut r) => {
                r.zookeeper = format!("{servers}{root}");
                let done = r.intact();
                last = r;
                if done {
                    break;
                }
            }
            Err(e) => last.error = Some(e.to_string()),
        }
    }
    last
}
