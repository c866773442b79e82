//! [`ClusterAdmin`]: the admin requests a migration needs and librdkafka lacks —
//! DescribeCluster, AlterPartitionReassignments (start and cancel),
//! ListPartitionReassignments, ElectLeaders (preferred and unclean),
//! IncrementalAlterConfigs (replication throttles) and DescribeLogDirs (bytes per replica).
//! [`super::Admin`] (rdkafka) keeps metadata, topic creation and the health gate.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, BrokerId, DescribeClusterRequest, DescribeLogDirsRequest,
    ElectLeadersRequest, FindCoordinatorRequest, IncrementalAlterConfigsRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};
use serde::{Deserialize, Serialize};

use super::protocol::{AdminError, BrokerConnection, NOT_CONTROLLER};

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    /// `broker.id`.
    pub id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
}

/// What DescribeCluster says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterDescription {
    /// `cluster.id`.
    pub cluster_id: String,
    /// The active controller's broker id (-1: none).
    pub controller: i32,
    /// Registered brokers, by id.
    pub brokers: Vec<BrokerInfo>,
}

/// A reassignment in flight, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingReassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The replica set during the move (old and new).
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding: Vec<i32>,
    /// Replicas being removed.
    pub removing: Vec<i32>,
}

/// One partition's target replicas (`None`: cancel its reassignment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMove {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The new replica list, preferred leader first; `None` cancels.
    pub replicas: Option<Vec<i32>>,
}

/// A partition-level error in an answer that covers many partitions.
#[derive(Debug)]
pub struct PartitionError {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The error.
    pub error: AdminError,
}

/// Which leader election.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Election {
    /// The first replica in the assignment leads, if it is in sync.
    Preferred,
    /// Any live replica leads, in sync or not (may lose acked records).
    Unclean,
}

/// A replication throttle as `kafka-reassign-partitions --throttle` sets it: a rate on the
/// brokers taking part, and the replicas it applies to, per topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttle {
    /// Bytes/s, for both leader (sending) and follower (fetching) replication.
    pub rate: u64,
    /// Brokers the rate is set on.
    pub brokers: Vec<i32>,
    /// Per topic, `partition:broker` replicas throttled as leaders (the existing replicas).
    pub leader_replicas: BTreeMap<String, Vec<(i32, i32)>>,
    /// Per topic, `partition:broker` replicas throttled as followers (the ones being added).
    pub follower_replicas: BTreeMap<String, Vec<(i32, i32)>>,
}

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
/// Broker configs a throttle sets.
pub const THROTTLE_RATE_CONFIGS: [&str; 2] = [
    "leader.replication.throttled.rate",
    "follower.replication.throttled.rate",
];

/// The partitions of an answer that carry an error code, as [`PartitionError`]s.
fn partition_errors<'a>(
    results: impl Iterator<Item = (&'static str, &'a StrBytes, i32, i16, Option<&'a StrBytes>)>,
) -> Vec<PartitionError> {
    results
        .filter_map(|(request, topic, partition, code, message)| {
            let what = format!("{request} {topic}/{partition}");
            AdminError::from_code(what, code, message).map(|error| PartitionError {
                topic: topic.to_string(),
                partition,
                error,
            })
        })
        .collect()
}

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

fn text(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// Admin requests over the Kafka protocol, to the broker each must go to. Connections are
/// kept and re-made when they break; the controller is looked up again when it moves.
pub struct ClusterAdmin {
    bootstrap: Vec<String>,
    timeout: Duration,
    /// Open connections by `host:port`.
    connections: HashMap<String, BrokerConnection>,
    /// TLS and SASL for every connection.
    security: super::security::Security,
    /// The last DescribeCluster answer.
    cluster: Option<ClusterDescription>,
}

impl ClusterAdmin {
    /// An admin for the cluster reachable at `bootstrap` (`host:port,...`); connects lazily.
    pub fn new(bootstrap: &str, timeout: Duration) -> ClusterAdmin {
        ClusterAdmin {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            timeout,
            connections: HashMap::new(),
            security: Default::default(),
            cluster: None,
        }
    }

    /// The same, every connection with TLS and SASL as `security` says (a secured
    /// cluster's listener).
    pub fn with_security(mut self, security: super::security::Security) -> ClusterAdmin {
        self.security = security;
        self
    }

    /// Sends `req` to `addr`, connecting first when needed; a broken connection is dropped.
    fn call_at<R: Request>(&mut self, addr: &str, req: &R) -> Result<R::Response, AdminError> {
        if !self.connections.contains_key(addr) {
            let c = BrokerConnection::connect_secured(addr, self.timeout, &self.security)?;
            self.connections.insert(addr.to_string(), c);
        }
        let conn = self.connections.get_mut(addr).expect("just inserted");
        let r = conn.call(req);
        if matches!(r, Err(AdminError::Io { .. } | AdminError::Protocol { .. })) {
            self.connections.remove(addr);
        }
        r
    }

    /// Sends `req` to any broker that answers: open connections, the bootstrap list, then
    /// every registered broker.
    pub(super) fn call_any<R: Request>(&mut self, req: &R) -> Result<R::Response, AdminError> {
        self.call_any_until(req, |_| true)
    }

    /// [`Self::call_any`], going on to the next broker while an answer is not `good`
    /// enough; the first answer stands when none is.
    fn call_any_until<R: Request>(
        &mut self,
        req: &R,
        good: impl Fn(&R::Response) -> bool,
    ) -> Result<R::Response, AdminError> {
        let mut candidates: Vec<String> = self.connections.keys().cloned().collect();
        candidates.extend(self.bootstrap.iter().cloned());
        if let Some(c) = &self.cluster {
            candidates.extend(c.brokers.iter().map(|b| format!("{}:{}", b.host, b.port)));
        }
        let mut seen = std::collections::HashSet::new();
        let mut errors = Vec::new();
        let mut first = None;
        for addr in candidates {
            if !seen.insert(addr.clone()) {
                continue;
            }
            match self.call_at(&addr, req) {
                Ok(r) if good(&r) => return Ok(r),
                Ok(r) => {
                    first.get_or_insert(r);
                }
                Err(e @ (AdminError::Connect { .. } | AdminError::Io { .. })) => {
                    errors.push(e.to_string())
                }
                Err(e) => return Err(e),
            }
        }
        first.ok_or_else(|| AdminError::NoBroker(errors.join("; ")))
    }

    /// Brokers, controller and cluster id (DescribeCluster).
    pub fn describe_cluster(&mut self) -> Result<ClusterDescription, AdminError> {
        // In ZooKeeper mode a broker learns the cluster from the controller's
        // UpdateMetadata, a moment after it is up: until then it answers with no broker,
        // not even itself — ask another.
        let resp = self.call_any_until(&DescribeClusterRequest::default(), |r| {
            !r.brokers.is_empty()
        })?;
        if let Some(e) = AdminError::from_code(
            "DescribeCluster",
            resp.error_code,
            resp.error_message.as_ref(),
        ) {
            return Err(e);
        }
        let mut brokers: Vec<BrokerInfo> = resp
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
            })
            .collect();
        brokers.sort_by_key(|b| b.id);
        let d = ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller: resp.controller_id.0,
            brokers,
        };
        self.cluster = Some(d.clone());
        Ok(d)
    }

    /// The broker that coordinates transactional id `id` now (FindCoordinator, key type 1:
    /// the leader of its `__transaction_state` partition). A coordinator still loading
    /// its partition answers "not available": asked again for up to ten seconds. Asked in
    /// version 4 or later (keys in a list), which every Kafka since 3.0 speaks — every
    /// release this harness starts.
    pub fn transaction_coordinator(&mut self, id: &str) -> Result<i32, AdminError> {
        const TRANSACTION: i8 = 1;
        let req = FindCoordinatorRequest::default()
            .with_key_type(TRANSACTION)
            .with_coordinator_keys(vec![StrBytes::from_string(id.to_string())]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let resp = self.call_any(&req)?;
            let Some(c) = resp.coordinators.first() else {
                return Err(AdminError::Protocol {
                    what: "FindCoordinator".into(),
                    message: format!("no coordinator in the answer for `{id}`"),
                });
            };
            match AdminError::from_code("FindCoordinator", c.error_code, c.error_message.as_ref()) {
                None => return Ok(c.node_id.0),
                // COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE
                Some(_)
                    if matches!(c.error_code, 14 | 15) && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(500));
                }
                Some(e) => return Err(e),
            }
        }
    }

    /// `host:port` of a registered broker.
    fn broker_addr(&mut self, id: i32) -> Result<String, AdminError> {
        let known = |c: &Option<ClusterDescription>| {
            c.as_ref()
                .and_then(|c| c.brokers.iter().find(|b| b.id == id))
                .map(|b| format!("{}:{}", b.host, b.port))
        };
        if let Some(a) = known(&self.cluster) {
            return Ok(a);
        }
        self.describe_cluster()?;
        known(&self.cluster).ok_or_else(|| AdminError::Kafka {
            request: format!("broker {id}"),
            code: 39,
            name: "BrokerNotAvailable".into(),
            message: Some(format!("broker {id} is not registered")),
        })
    }

    /// Sends `req` to broker `id`. A broker registers before it accepts connections, and
    /// may have moved since it was looked up: a refused connection is retried (with the
    /// address looked up again) for up to ten seconds.
    fn call_broker<R: Request>(&mut self, id: i32, req: &R) -> Result<R::Response, AdminError> {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let addr = self.broker_addr(id)?;
            match self.call_at(&addr, req) {
                Err(AdminError::Connect { .. } | AdminError::Io { .. })
                    if std::time::Instant::now() < deadline =>
                {
                    self.cluster = None;
                    std::thread::sleep(Duration::from_millis(500));
                }
                r => return r,
            }
        }
    }

    /// Sends `req` to the controller; `top_error` extracts the response's top-level error
    /// code. On `NOT_CONTROLLER` or a broken connection the controller is looked up again
    /// (at most five times, a second apart).
    pub(super) fn call_controller<R: Request>(
        &mut self,
        req: &R,
        top_error: impl Fn(&R::Response) -> i16,
    ) -> Result<R::Response, AdminError> {
        let mut last = None;
        for attempt in 0..5 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(1));
            }
            let controller = match self.describe_cluster() {
                Ok(d) if d.controller >= 0 => d.controller,
                Ok(_) => {
                    last = Some(AdminError::NoBroker("no active controller".into()));
                    continue;
                }
                Err(e) => {
                    last = Some(e);
                    continue;
                }
            };
            match self.call_broker(controller, req) {
                Ok(r) if top_error(&r) == NOT_CONTROLLER => {
                    last = Some(AdminError::NoBroker(format!(
                        "broker {controller} is no longer the controller"
                    )))
                }
                Ok(r) => return Ok(r),
                Err(e @ (AdminError::Connect { .. } | AdminError::Io { .. })) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| AdminError::NoBroker("controller".into())))
    }

    /// Starts (or, with `replicas: None`, cancels) reassignments. The request as a whole
    /// failing is an `Err`; partitions refused one by one come back in the list.
    pub fn alter_reassignments(
        &mut self,
        moves: &[PartitionMove],
    ) -> Result<Vec<PartitionError>, AdminError> {
        let mut by_topic: BTreeMap<&str, Vec<&PartitionMove>> = BTreeMap::new();
        for m in moves {
            by_topic.entry(&m.topic).or_default().push(m);
        }
        let req =
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(self.timeout.as_millis() as i32)
                .with_topics(
                    by_topic
                        .iter()
                        .map(|(t, ms)| {
                            ReassignableTopic::default()
                                .with_name(name(t))
                                .with_partitions(
                                    ms.iter()
                                        .map(|m| {
                                            ReassignablePartition::default()
                                                .with_partition_index(m.partition)
                                                .with_replicas(m.replicas.as_ref().map(|r| {
                                                    r.iter().map(|b| BrokerId(*b)).collect()
                                                }))
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
        let resp = self.call_controller(&req, |r| r.error_code)?;
        if let Some(e) = AdminError::from_code(
            "AlterPartitionReassignments",
            resp.error_code,
            resp.error_message.as_ref(),
        ) {
            return Err(e);
        }
        let errors = partition_errors(resp.responses.iter().flat_map(|t| {
            t.partitions.iter().map(move |p| {
                (
                    "AlterPartitionReassignments",
                    &t.name.0,
                    p.partition_index,
                    p.error_code,
                    p.error_message.as_ref(),
                )
            })
        }));
        Ok(errors)
    }

    /// Cancels the reassignments of these partitions (the replicas go back to the old set).
    pub fn cancel_reassignments(
        &mut self,
        partitions: &[(String, i32)],
    ) -> Result<Vec<PartitionError>, AdminError> {
        let moves: Vec<PartitionMove> = partitions
            .iter()
            .map(|(t, p)| PartitionMove {
                topic: t.clone(),
                partition: *p,
                replicas: None,
            })
            .collect();
        self.alter_reassignments(&moves)
    }

    /// Reassignments in flight (every topic).
    pub fn list_reassignments(&mut self) -> Result<Vec<OngoingReassignment>, AdminError> {
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.timeout.as_millis() as i32)
            .with_topics(None);
        let resp = self.call_controller(&req, |r| r.error_code)?;
        if let Some(e) = AdminError::from_code(
            "ListPartitionReassignments",
            resp.error_code,
            resp.error_message.as_ref(),
        ) {
            return Err(e);
        }
        let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<i32>>();
        let mut out: Vec<OngoingReassignment> = resp
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(move |p| OngoingReassignment {
                    topic: t.name.0.to_string(),
                    partition: p.partition_index,
                    replicas: ids(&p.replicas),
                    adding: ids(&p.adding_replicas),
                    removing: ids(&p.removing_replicas),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// Elects leaders for `partitions` (`None`: every partition). A partition whose
    /// preferred leader already leads is not an error.
    pub fn elect_leaders(
        &mut self,
        election: Election,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<PartitionError>, AdminError> {
        let topic_partitions = partitions.map(|ps| {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in ps {
                by_topic.entry(t).or_default().push(*p);
            }
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    TopicPartitions::default()
                        .with_topic(name(t))
                        .with_partitions(ps)
                })
                .collect()
        });
        let req = ElectLeadersRequest::default()
            .with_election_type(match election {
                Election::Preferred => 0,
                Election::Unclean => 1,
            })
            .with_topic_partitions(topic_partitions)
            .with_timeout_ms(self.timeout.as_millis() as i32);
        let resp = self.call_controller(&req, |r| r.error_code)?;
        if let Some(e) = AdminError::from_code("ElectLeaders", resp.error_code, None) {
            return Err(e);
        }
        const ELECTION_NOT_NEEDED: i16 = 84;
        let errors = partition_errors(resp.replica_election_results.iter().flat_map(|t| {
            t.partition_result
                .iter()
                .filter(|p| p.error_code != ELECTION_NOT_NEEDED)
                .map(move |p| {
                    (
                        "ElectLeaders",
                        &t.topic.0,
                        p.partition_id,
                        p.error_code,
                        p.error_message.as_ref(),
                    )
                })
        }));
        Ok(errors)
    }

    /// Sets or deletes configs of one resource (IncrementalAlterConfigs); a broker's own
    /// configs go to that broker, a topic's to any broker.
    fn alter_configs(
        &mut self,
        resource_type: i8,
        resource: &str,
        set: &[(&str, String)],
        delete: &[&str],
    ) -> Result<(), AdminError> {
        let configs: Vec<AlterableConfig> = set
            .iter()
            .map(|(k, v)| {
                AlterableConfig::default()
                    .with_name(text(k))
                    .with_config_operation(OP_SET)
                    .with_value(Some(text(v)))
            })
            .chain(delete.iter().map(|k| {
                AlterableConfig::default()
                    .with_name(text(k))
                    .with_config_operation(OP_DELETE)
                    .with_value(None)
            }))
            .collect();
        let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(text(resource))
                .with_configs(configs),
        ]);
        let resp = if resource_type == RESOURCE_BROKER {
            let id: i32 = resource.parse().map_err(|_| AdminError::Protocol {
                what: "IncrementalAlterConfigs".into(),
                message: format!("`{resource}` is not a broker id"),
            })?;
            self.call_broker(id, &req)?
        } else {
            self.call_any(&req)?
        };
        for r in &resp.responses {
            let what = format!(
                "IncrementalAlterConfigs {} {}",
                if r.resource_type == RESOURCE_BROKER {
                    "broker"
                } else {
                    "topic"
                },
                r.resource_name
            );
            if let Some(e) = AdminError::from_code(what, r.error_code, r.error_message.as_ref()) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Sets a replication throttle: the rate on every broker taking part, and the
    /// throttled replica lists on every topic moving.
    pub fn set_throttle(&mut self, t: &Throttle) -> Result<(), AdminError> {
        let rate = t.rate.to_string();
        for b in &t.brokers {
            let set: Vec<(&str, String)> = THROTTLE_RATE_CONFIGS
                .iter()
                .map(|k| (*k, rate.clone()))
                .collect();
            self.alter_configs(RESOURCE_BROKER, &b.to_string(), &set, &[])?;
        }
        let list = |v: &[(i32, i32)]| {
            v.iter()
                .map(|(p, b)| format!("{p}:{b}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let topics: std::collections::BTreeSet<&String> = t
            .leader_replicas
            .keys()
            .chain(t.follower_replicas.keys())
            .collect();
        for topic in topics {
            let mut set = Vec::new();
            if let Some(l) = t.leader_replicas.get(topic).filter(|l| !l.is_empty()) {
                set.push(("leader.replication.throttled.replicas", list(l)));
            }
            if let Some(f) = t.follower_replicas.get(topic).filter(|f| !f.is_empty()) {
                set.push(("follower.replication.throttled.replicas", list(f)));
            }
            self.alter_configs(RESOURCE_TOPIC, topic, &set, &[])?;
        }
        Ok(())
    }

    /// Removes a throttle set by [`ClusterAdmin::set_throttle`] (as
    /// `kafka-reassign-partitions --verify` does once the move is done).
    pub fn remove_throttle(&mut self, t: &Throttle) -> Result<(), AdminError> {
        for b in &t.brokers {
            self.alter_configs(RESOURCE_BROKER, &b.to_string(), &[], &THROTTLE_RATE_CONFIGS)?;
        }
        let topics: std::collections::BTreeSet<&String> = t
            .leader_replicas
            .keys()
            .chain(t.follower_replicas.keys())
            .collect();
        for topic in topics {
            self.alter_configs(
                RESOURCE_TOPIC,
                topic,
                &[],
                &[
                    "leader.replication.throttled.replicas",
                    "follower.replication.throttled.replicas",
                ],
            )?;
        }
        Ok(())
    }

    /// Bytes each replica on broker `id` holds (DescribeLogDirs), by (topic, partition).
    pub fn replica_sizes(&mut self, id: i32) -> Result<BTreeMap<(String, i32), i64>, AdminError> {
        let resp = self.call_broker(id, &DescribeLogDirsRequest::default().with_topics(None))?;
        if let Some(e) = AdminError::from_code("DescribeLogDirs", resp.error_code, None) {
            return Err(e);
        }
        let mut out = BTreeMap::new();
        for dir in &resp.results {
            for t in &dir.topics {
                for p in &t.partitions {
                    if !p.is_future_key {
                        *out.entry((t.name.0.to_string(), p.partition_index))
                            .or_insert(0) += p.partition_size;
                    }
                }
            }
        }
        Ok(out)
    }
}
