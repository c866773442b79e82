//! The KRaft controller quorum: its state as DescribeQuorum gives it, and the end-of-run
//! metadata check of a KRaft cluster.
//!
//! In KRaft the cluster's metadata is a replicated log, `__cluster_metadata`, whose voters
//! are the controllers and whose observers are the brokers. "The metadata survived" then
//! means: the quorum has a leader and exactly the voters the cluster was given; every
//! running broker has replicated the log up to the quorum's high watermark; and every
//! broker, asked directly (a Metadata request to that broker, not to whichever broker a
//! client library picks), serves the same cluster id, the same brokers and the same topics
//! — by topic id too, which a forked log would not share — with the same assignments,
//! leaders and ISRs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use kafka_protocol::messages::{
    describe_quorum_request::{PartitionData, TopicData},
    DescribeQuorumRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use serde::{Deserialize, Serialize};

use super::protocol::{AdminError, BrokerConnection};

/// The metadata log's topic.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// How far (records) a replica of the metadata log may trail the high watermark and still
/// count as caught up: the controllers append a no-op record every 500 ms
/// (`metadata.max.idle.interval.ms`), so an exact match would race with them.
pub const CAUGHT_UP_SLACK: i64 = 20;

/// The quorum as its leader describes it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QuorumState {
    /// The leader's node id (-1: none).
    pub leader_id: i32,
    /// The leader's epoch.
    pub leader_epoch: i32,
    /// The metadata log's high watermark.
    pub high_watermark: i64,
    /// The voters (controllers) and how far each has replicated.
    pub voters: Vec<ReplicaProgress>,
    /// The observers (brokers) and how far each has replicated.
    pub observers: Vec<ReplicaProgress>,
}

/// One replica of the metadata log.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ReplicaProgress {
    /// Its node id.
    pub id: i32,
    /// Its log end offset as the leader last heard it (-1: unknown).
    pub log_end_offset: i64,
    /// When it was last caught up, ms since the epoch on the leader's clock (-1: unknown).
    pub last_caught_up_ms: i64,
    /// The id of its metadata log directory (KIP-853; base64url, empty when the quorum
    /// does not say: a static quorum, or DescribeQuorum before v2).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub directory_id: String,
}

impl QuorumState {
    /// The voters' ids, sorted.
    pub fn voter_ids(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.voters.iter().map(|r| r.id).collect();
        v.sort_unstable();
        v
    }

    /// How many records replica `id` (voter or observer) trails the high watermark by;
    /// `None` when the leader does not know it.
    pub fn lag(&self, id: i32) -> Option<i64> {
        self.voters
            .iter()
            .chain(&self.observers)
            .find(|r| r.id == id && r.log_end_offset >= 0)
            .map(|r| (self.high_watermark - r.log_end_offset).max(0))
    }

    /// True when replica `id` is within [`CAUGHT_UP_SLACK`] of the high watermark.
    pub fn caught_up(&self, id: i32) -> bool {
        self.lag(id).is_some_and(|l| l <= CAUGHT_UP_SLACK)
    }
}

/// Asks each of `controllers` (`host:port` of their controller listeners) in turn for the
/// quorum's state; the leader answers (a follower says NOT_LEADER_OR_FOLLOWER).
pub fn describe_quorum(
    controllers: &[String],
    timeout: Duration,
) -> Result<QuorumState, AdminError> {
    let request = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str(METADATA_TOPIC)))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let mut last = AdminError::NoBroker("no controller to ask".into());
    for addr in controllers {
        let response =
            match BrokerConnection::connect(addr, timeout).and_then(|mut c| c.call(&request)) {
                Ok(r) => r,
                Err(e) => {
                    last = e;
                    continue;
                }
            };
        if let Some(e) = AdminError::from_code(
            "DescribeQuorum",
            response.error_code,
            response.error_message.as_ref(),
        ) {
            last = e;
            continue;
        }
        let Some(p) = response.topics.first().and_then(|t| t.partitions.first()) else {
            last = AdminError::Protocol {
                what: format!("DescribeQuorum to {addr}"),
                message: "no partition in the answer".into(),
            };
            continue;
        };
        if let Some(e) =
            AdminError::from_code("DescribeQuorum", p.error_code, p.error_message.as_ref())
        {
            last = e;
            continue;
        }
        let progress = |r: &kafka_protocol::messages::describe_quorum_response::ReplicaState| {
            ReplicaProgress {
                id: r.replica_id.0,
                log_end_offset: r.log_end_offset,
                last_caught_up_ms: r.last_caught_up_timestamp,
                directory_id: if r.replica_directory_id.is_nil() {
                    String::new()
                } else {
                    uuid_text(&r.replica_directory_id)
                },
            }
        };
        return Ok(QuorumState {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: p.current_voters.iter().map(progress).collect(),
            observers: p.observers.iter().map(progress).collect(),
        });
    }
    Err(last)
}

/// A partition as a broker serves it: leader, replicas, ISR (sorted).
pub type PartitionView = (i32, Vec<i32>, Vec<i32>);

/// A topic as a broker serves it: its id and its partitions.
pub type TopicView = (String, BTreeMap<i32, PartitionView>);

/// One broker's own metadata, as it answers a Metadata request for every topic.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerView {
    /// The cluster id it serves.
    pub cluster_id: Option<String>,
    /// The brokers it lists (registered and not fenced), sorted.
    pub brokers: Vec<i32>,
    /// Per topic: its id and per partition (leader, replicas, sorted ISR).
    pub topics: BTreeMap<String, TopicView>,
}

/// Asks the broker at `addr` itself for its metadata.
pub fn broker_view(addr: &str, timeout: Duration) -> Result<BrokerView, AdminError> {
    let mut c = BrokerConnection::connect(addr, timeout)?;
    let r = c.call(&MetadataRequest::default().with_topics(None))?;
    let mut brokers: Vec<i32> = r.brokers.iter().map(|b| b.node_id.0).collect();
    brokers.sort_unstable();
    let ids =
        |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
    let topics = r
        .topics
        .iter()
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    let mut isr = ids(&p.isr_nodes);
                    isr.sort_unstable();
                    (
                        p.partition_index,
                        (p.leader_id.0, ids(&p.replica_nodes), isr),
                    )
                })
                .collect();
            Some((name, (t.topic_id.to_string(), parts)))
        })
        .collect();
    Ok(BrokerView {
        cluster_id: r.cluster_id.as_ref().map(|s| s.to_string()),
        brokers,
        topics,
    })
}

/// What the KRaft metadata check compares against: the cluster as the harness made it.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The cluster id every node was formatted with.
    pub cluster_id: String,
    /// The controllers' listener addresses (`host:port`), to ask for the quorum.
    pub controllers: Vec<String>,
    /// The voters the quorum must have: the controllers' node ids, sorted.
    pub voters: Vec<i32>,
    /// The running brokers: id and `host:port`.
    pub brokers: Vec<(i32, String)>,
    /// The brokers that must follow the metadata log as observers: every running one,
    /// except a migration's brokers still in ZooKeeper mode (the controllers send those
    /// their metadata by RPCs instead).
    pub observers: Vec<i32>,
    /// Topics that must exist (the workload's).
    pub topics: Vec<String>,
}

/// What one comparison found.
#[derive(Debug, Clone, Default)]
pub struct Comparison {
    /// The differences between the cluster and the expectation, in words (empty: intact).
    pub differences: Vec<String>,
    /// The quorum's state, when it could be read.
    pub quorum: Option<QuorumState>,
    /// The brokers registered and not fenced, as the first broker that answered lists them.
    pub registered: Vec<i32>,
}

/// Compares the cluster with `expected`.
pub fn compare(expected: &Expected, timeout: Duration) -> Comparison {
    let mut d = Vec::new();
    let quorum = match describe_quorum(&expected.controllers, timeout) {
        Ok(q) => Some(q),
        Err(e) => {
            d.push(format!(
                "no controller answers DescribeQuorum as leader: {e}"
            ));
            None
        }
    };
    if let Some(q) = &quorum {
        if q.leader_id < 0 {
            d.push("the quorum has no leader".into());
        }
        if q.voter_ids() != expected.voters {
            d.push(format!(
                "the quorum's voters are {:?}, the cluster's controllers {:?}",
                q.voter_ids(),
                expected.voters
            ));
        }
        for id in &expected.observers {
            match q.lag(*id) {
                None => d.push(format!(
                    "broker {id} is not an observer of the metadata log (the leader has not heard from it)"
                )),
                Some(l) if l > CAUGHT_UP_SLACK => d.push(format!(
                    "broker {id} trails the metadata log's high watermark {} by {l} records",
                    q.high_watermark
                )),
                Some(_) => {}
            }
        }
    }
    let running: Vec<i32> = expected.brokers.iter().map(|(id, _)| *id).collect();
    let mut reference: Option<(i32, BrokerView)> = None;
    for (id, addr) in &expected.brokers {
        let view = match broker_view(addr, timeout) {
            Ok(v) => v,
            Err(e) => {
                d.push(format!("broker {id} does not answer Metadata: {e}"));
                continue;
            }
        };
        if view.cluster_id.as_deref() != Some(expected.cluster_id.as_str()) {
            d.push(format!(
                "broker {id} serves cluster id {:?}, the cluster was formatted with {}",
                view.cluster_id, expected.cluster_id
            ));
        }
        if view.brokers != running {
            d.push(format!(
                "broker {id} lists brokers {:?}, the running ones are {running:?}",
                view.brokers
            ));
        }
        for t in &expected.topics {
            if !view.topics.contains_key(t) {
                d.push(format!("broker {id} does not know topic `{t}`"));
            }
        }
        match &reference {
            None => reference = Some((*id, view)),
            Some((first, r)) => d.extend(view_differences(*first, r, *id, &view)),
        }
    }
    Comparison {
        differences: d,
        quorum,
        registered: reference.map(|(_, v)| v.brokers).unwrap_or_default(),
    }
}

/// How broker `id`'s topics differ from broker `first`'s.
fn view_differences(first: i32, a: &BrokerView, id: i32, b: &BrokerView) -> Vec<String> {
    let mut d = Vec::new();
    let names: BTreeSet<&String> = a.topics.keys().chain(b.topics.keys()).collect();
    for name in names {
        match (a.topics.get(name), b.topics.get(name)) {
            (Some(_), None) => d.push(format!(
                "topic `{name}`: broker {first} has it, broker {id} not"
            )),
            (None, Some(_)) => d.push(format!(
                "topic `{name}`: broker {id} has it, broker {first} not"
            )),
            (Some((ida, pa)), Some((idb, pb))) => {
                if ida != idb {
                    d.push(format!(
                        "topic `{name}`: id {ida} on broker {first}, {idb} on broker {id}"
                    ));
                }
                let parts: BTreeSet<&i32> = pa.keys().chain(pb.keys()).collect();
                for p in parts {
                    let (x, y) = (pa.get(p), pb.get(p));
                    if x != y {
                        d.push(format!(
                            "{name}/{p}: (leader, replicas, ISR) {x:?} on broker {first}, {y:?} on broker {id}"
                        ));
                    }
                }
            }
            (None, None) => {}
        }
    }
    d
}

/// Runs [`compare`] until it finds nothing or `attempts` are spent, 2 s apart (leaders,
/// ISRs and the observers' offsets move; a difference must persist to count).
pub fn check(expected: &Expected, attempts: u32) -> Comparison {
    let mut last = Comparison::default();
    for attempt in 0..attempts.max(1) {
        if attempt > 0 {
            std::thread::sleep(Duration::from_secs(2));
        }
        last = compare(expected, Duration::from_secs(5));
        if last.differences.is_empty() {
            break;
        }
    }
    last
}

/// A Kafka `Uuid` as Kafka writes it: base64url of its 16 bytes, no padding.
fn uuid_text(id: &uuid::Uuid) -> String {
    openssl::base64::encode_block(id.as_bytes())
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

/// The `Uuid` of its text form ([`uuid_text`]); `None` when it is not one.
fn uuid_of_text(text: &str) -> Option<uuid::Uuid> {
    let std_b64 = text.replace('-', "+").replace('_', "/") + "==";
    let bytes = openssl::base64::decode_block(&std_b64).ok()?;
    Some(uuid::Uuid::from_bytes(bytes.try_into().ok()?))
}

/// A change of a dynamic quorum's voters (KIP-853), as the quorum's leader is asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoterChange {
    /// AddRaftVoter: the controller `id`, its log directory and its controller listener.
    Add {
        /// Its node id.
        id: i32,
        /// Its metadata log directory's id (as DescribeQuorum lists the observer).
        directory_id: String,
        /// Its controller listener's host.
        host: String,
        /// Its controller listener's port.
        port: u16,
    },
    /// RemoveRaftVoter: the voter `id` with that log directory.
    Remove {
        /// Its node id.
        id: i32,
        /// Its metadata log directory's id.
        directory_id: String,
    },
}

/// Asks the quorum's leader — each of `controllers` in turn, a follower answering
/// NOT_LEADER_OR_FOLLOWER — for one voter change. The leader answers once the new voter
/// set is committed to the metadata log (or with why not: another change in progress, a
/// voter not caught up, a quorum not on `kraft.version` 1).
pub fn change_voters(
    controllers: &[String],
    cluster_id: &str,
    change: &VoterChange,
    timeout: Duration,
) -> Result<(), AdminError> {
    use kafka_protocol::messages::{
        add_raft_voter_request::Listener, AddRaftVoterRequest, RemoveRaftVoterRequest,
    };
    let directory = |d: &str| {
        uuid_of_text(d).ok_or_else(|| AdminError::Protocol {
            what: "a voter change".into(),
            message: format!("`{d}` is not a log directory id"),
        })
    };
    let cluster = Some(StrBytes::from_string(cluster_id.to_string()));
    let mut last = AdminError::NoBroker("no controller to ask".into());
    for addr in controllers {
        let mut conn = match BrokerConnection::connect(addr, timeout) {
            Ok(c) => c,
            Err(e) => {
                last = e;
                continue;
            }
        };
        let answer = match change {
            VoterChange::Add {
                id,
                directory_id,
                host,
                port,
            } => conn
                .call(
                    &AddRaftVoterRequest::default()
                        .with_cluster_id(cluster.clone())
                        .with_timeout_ms(timeout.as_millis().min(i32::MAX as u128) as i32)
                        .with_voter_id(*id)
                        .with_voter_directory_id(directory(directory_id)?)
                        .with_listeners(vec![Listener::default()
                            .with_name(StrBytes::from_static_str("CONTROLLER"))
                            .with_host(StrBytes::from_string(host.clone()))
                            .with_port(*port)]),
                )
                .map(|r| ("AddRaftVoter", r.error_code, r.error_message)),
            VoterChange::Remove { id, directory_id } => conn
                .call(
                    &RemoveRaftVoterRequest::default()
                        .with_cluster_id(cluster.clone())
                        .with_voter_id(*id)
                        .with_voter_directory_id(directory(directory_id)?),
                )
                .map(|r| ("RemoveRaftVoter", r.error_code, r.error_message)),
        };
        match answer {
            Ok((api, code, message)) => match AdminError::from_code(api, code, message.as_ref()) {
                None => return Ok(()),
                // NOT_LEADER_OR_FOLLOWER: ask the next controller
                Some(e) if code == 6 => last = e,
                Some(e) => return Err(e),
            },
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// A new cluster id (or log directory id): 16 random bytes in URL-safe base64 without
/// padding, as `kafka-storage random-uuid` prints one — and, as Kafka's `Uuid.randomUuid`
/// does, never one Kafka reserves or one that starts with `-`: the format tool's argument
/// parser reads `-t -xyz…` as an option and refuses the run (seen here, once in ~64 runs).
pub fn random_cluster_id() -> std::io::Result<String> {
    loop {
        let mut bytes = [0u8; 16];
        openssl::rand::rand_bytes(&mut bytes).map_err(std::io::Error::other)?;
        let text = openssl::base64::encode_block(&bytes)
            .trim_end_matches('=')
            .replace('+', "-")
            .replace('/', "_");
        if usable_uuid_text(&text) {
            return Ok(text);
        }
    }
}

/// Kafka's rule for a random Uuid: not the zero Uuid, not the metadata topic's (1), and
/// no leading `-` (it would read as a command-line option).
fn usable_uuid_text(text: &str) -> bool {
    !text.starts_with('-') && text != "AAAAAAAAAAAAAAAAAAAAAA" && text != "AAAAAAAAAAAAAAAAAAAAAQ"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_is_never_one_the_format_tool_would_read_as_an_option() {
        assert!(!usable_uuid_text("-3LqYdlQyEAASNFZ4mrze_"));
        assert!(!usable_uuid_text("AAAAAAAAAAAAAAAAAAAAAA"));
        assert!(!usable_uuid_text("AAAAAAAAAAAAAAAAAAAAAQ"));
        assert!(usable_uuid_text("ASNFZ4mrze_-3LqYdlQyEA"));
        // 1 in 64 random ids starts with '-': 2,000 draws all but surely meet some
        for _ in 0..2_000 {
            let id = random_cluster_id().unwrap();
            assert!(!id.starts_with('-'), "{id}");
            assert_eq!(id.len(), 22, "{id}");
        }
    }

    #[test]
    fn a_log_directory_id_reads_back_as_the_uuid_it_names() {
        let text = random_cluster_id().unwrap();
        let id = uuid_of_text(&text).unwrap();
        assert_eq!(uuid_text(&id), text);
        // Kafka's own rendering of a known Uuid (Uuid.toString: base64url, no padding)
        let known = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        assert_eq!(uuid_text(&known), "ASNFZ4mrze_-3LqYdlQyEA");
        assert_eq!(uuid_of_text("ASNFZ4mrze_-3LqYdlQyEA"), Some(known));
        assert_eq!(uuid_of_text("zookeeper"), None);
    }

    #[test]
    fn a_cluster_id_is_22_url_safe_characters_and_new_each_time() {
        let a = random_cluster_id().unwrap();
        assert_eq!(a.len(), 22, "{a}");
        assert!(
            a.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "{a}"
        );
        assert_ne!(a, random_cluster_id().unwrap());
    }

    #[test]
    fn lag_is_counted_from_the_high_watermark_for_voters_and_observers() {
        let q = QuorumState {
            leader_id: 101,
            leader_epoch: 3,
            high_watermark: 500,
            voters: vec![
                ReplicaProgress {
                    id: 101,
                    log_end_offset: 500,
                    last_caught_up_ms: 1,
                    directory_id: String::new(),
                },
                ReplicaProgress {
                    id: 102,
                    log_end_offset: 400,
                    last_caught_up_ms: 1,
                    directory_id: String::new(),
                },
            ],
            observers: vec![ReplicaProgress {
                id: 1,
                log_end_offset: 490,
                last_caught_up_ms: 1,
                directory_id: String::new(),
            }],
        };
        assert_eq!(q.voter_ids(), vec![101, 102]);
        assert!(q.caught_up(101));
        assert!(!q.caught_up(102));
        assert_eq!(q.lag(102), Some(100));
        assert!(q.caught_up(1));
        assert_eq!(q.lag(7), None);
    }

    #[test]
    fn a_quorum_or_a_broker_that_does_not_answer_is_a_difference() {
        // port 1 on loopback: refused at once
        let expected = Expected {
            cluster_id: "c".into(),
            controllers: vec!["127.0.0.1:1".into()],
            voters: vec![101],
            brokers: vec![(1, "127.0.0.1:1".into())],
            observers: vec![1],
            topics: vec!["orders".into()],
        };
        let c = compare(&expected, Duration::from_millis(500));
        let d = c.differences;
        assert!(c.quorum.is_none() && c.registered.is_empty());
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].starts_with("no controller answers DescribeQuorum"),
            "{d:?}"
        );
        assert!(
            d[1].starts_with("broker 1 does not answer Metadata"),
            "{d:?}"
        );
    }

    #[test]
    fn brokers_that_disagree_on_a_topic_id_or_an_isr_are_named() {
        let view = |topic_id: &str, isr: Vec<i32>| BrokerView {
            cluster_id: Some("c".into()),
            brokers: vec![1, 2],
            topics: [(
                "orders".to_string(),
                (topic_id.to_string(), [(0, (1, vec![1, 2], isr))].into()),
            )]
            .into(),
        };
        assert!(view_differences(1, &view("x", vec![1, 2]), 2, &view("x", vec![1, 2])).is_empty());
        let d = view_differences(1, &view("x", vec![1, 2]), 2, &view("y", vec![1]));
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(d[0].contains("id x on broker 1, y on broker 2"), "{d:?}");
        assert!(d[1].starts_with("orders/0"), "{d:?}");
    }
}
