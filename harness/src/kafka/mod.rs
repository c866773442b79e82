//! Kafka admin operations on rdkafka: cluster snapshots (brokers, leaders, replicas, ISR),
//! topic creation, and the health gate (every partition led and fully in sync); and, on
//! the Kafka protocol itself, the requests librdkafka lacks ([`ClusterAdmin`]).

mod cluster_admin;
mod lag;
pub mod migrate;
pub mod mirror;
mod protocol;
pub mod quorum;
pub mod reassign;
pub mod security;
pub mod survival;

pub use cluster_admin::{
    BrokerInfo, ClusterAdmin, ClusterDescription, Election, OngoingReassignment, PartitionError,
    PartitionMove, Throttle, THROTTLE_RATE_CONFIGS,
};
pub use lag::GroupCatchUp;
pub use protocol::{AdminError, BrokerConnection};

use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::scenario::Topic;
use crate::shutdown::Shutdown;

/// One partition's state as the cluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Leader broker id, -1 when offline.
    pub leader: i32,
    /// Replica broker ids.
    pub replicas: Vec<i32>,
    /// In-sync replica broker ids.
    pub isr: Vec<i32>,
}

/// A picture of the cluster at one moment, as written into the timeline.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// Live (registered) broker ids.
    pub brokers: Vec<i32>,
    /// Every partition of every topic, internal topics included.
    pub partitions: Vec<PartitionState>,
}

impl ClusterSnapshot {
    /// Partitions not led, or with fewer in-sync replicas than replicas.
    pub fn unhealthy(&self) -> Vec<&PartitionState> {
        self.partitions
            .iter()
            .filter(|p| p.leader < 0 || p.isr.len() < p.replicas.len())
            .collect()
    }

    /// The state of one partition.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.partitions
            .iter()
            .find(|p| p.topic == topic && p.partition == partition)
    }
}

/// An admin connection to the cluster.
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    /// One client per bootstrap address: when the broker the main client asks is paused or
    /// partitioned away, metadata is asked of each broker in turn.
    per_broker: Vec<AdminClient<DefaultClientContext>>,
}

fn admin_client(
    bootstrap: &str,
    properties: &ClientProperties,
) -> anyhow::Result<AdminClient<DefaultClientContext>> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("log_level", "3")
        .set("topic.metadata.refresh.interval.ms", "1000");
    for (k, v) in properties {
        c.set(k, v);
    }
    Ok(c.create()?)
}

/// librdkafka properties for every client of a run: security (TLS, SASL) for a secured
/// cluster (`harness watch --client-config`).
pub type ClientProperties = std::collections::BTreeMap<String, String>;

impl Admin {
    /// Connects (lazily) to `bootstrap`.
    pub fn new(bootstrap: &str) -> anyhow::Result<Admin> {
        Self::with_properties(bootstrap, &ClientProperties::new())
    }

    /// Connects (lazily) to `bootstrap` with extra client properties (security).
    pub fn with_properties(
        bootstrap: &str,
        properties: &ClientProperties,
    ) -> anyhow::Result<Admin> {
        let per_broker = bootstrap
            .split(',')
            .map(|b| admin_client(b, properties))
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Admin {
            client: admin_client(bootstrap, properties)?,
            per_broker,
        })
    }

    /// Deletes a consumer group — only ever one the caller's workers used. Its members
    /// leave when their processes stop; a member killed without leaving holds the group
    /// until its session times out, so a non-empty group is retried up to `patience`.
    pub fn delete_group(&self, group: &str, patience: Duration) -> anyhow::Result<()> {
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let deadline = Instant::now() + patience;
        loop {
            let results = futures::executor::block_on(self.client.delete_groups(&[group], &opts))?;
            match results.into_iter().next() {
                None | Some(Ok(_)) => return Ok(()),
                // never created (no consumer ran), or deleted already
                Some(Err((_, RDKafkaErrorCode::GroupIdNotFound))) => return Ok(()),
                Some(Err((_, RDKafkaErrorCode::NonEmptyGroup))) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(500))
                }
                Some(Err((name, code))) => anyhow::bail!("deleting group {name}: {code}"),
            }
        }
    }

    /// Reads brokers and every partition's leader, replicas and ISR — from whichever broker
    /// answers first (the main client, then each broker in turn).
    pub fn snapshot(&self, timeout: Duration) -> anyhow::Result<ClusterSnapshot> {
        let mut last = None;
        for c in std::iter::once(&self.client).chain(self.per_broker.iter()) {
            match Self::snapshot_from(c, timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no broker to ask")))
    }

    /// Every registered broker as `(id, host, port)`, sorted by id.
    pub fn brokers(&self, timeout: Duration) -> anyhow::Result<Vec<(i32, String, i32)>> {
        let md = self.client.inner().fetch_metadata(None, timeout)?;
        let mut out: Vec<(i32, String, i32)> = md
            .brokers()
            .iter()
            .map(|b| (b.id(), b.host().to_string(), b.port()))
            .collect();
        out.sort();
        Ok(out)
    }

    fn snapshot_from(
        client: &AdminClient<DefaultClientContext>,
        timeout: Duration,
    ) -> anyhow::Result<ClusterSnapshot> {
        let md = client.inner().fetch_metadata(None, timeout)?;
        let mut brokers: Vec<i32> = md.brokers().iter().map(|b| b.id()).collect();
        brokers.sort_unstable();
        let mut partitions = Vec::new();
        for t in md.topics() {
            for p in t.partitions() {
                partitions.push(PartitionState {
                    topic: t.name().to_string(),
                    partition: p.id(),
                    leader: if p.error().is_some() && p.leader() < 0 {
                        -1
                    } else {
                        p.leader()
                    },
                    replicas: p.replicas().to_vec(),
                    isr: p.isr().to_vec(),
                });
            }
        }
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(ClusterSnapshot {
            brokers,
            partitions,
        })
    }

    /// Creates the workload topics (an existing one with the same name is an error: the
    /// harness never writes into a topic it did not create).
    pub fn create_topics(&self, topics: &[Topic]) -> anyhow::Result<()> {
        self.create(topics, false).map(|_| ())
    }

    /// Creates many topics at once, as [`Admin::create_topics`], except that a topic whose
    /// creation outlasts the request (`RequestTimedOut`: the controller took it and is
    /// still working through it) is not an error: the caller waits for its partitions'
    /// leaders instead. Returns how many timed out so.
    pub fn create_topics_in_bulk(&self, topics: &[Topic]) -> anyhow::Result<usize> {
        self.create(topics, true)
    }

    fn create(&self, topics: &[Topic], bulk: bool) -> anyhow::Result<usize> {
        let configs: Vec<Vec<(String, String)>> = topics
            .iter()
            .map(|t| {
                let mut c: Vec<(String, String)> =
                    vec![("min.insync.replicas".into(), t.min_insync.to_string())];
                c.extend(t.config.iter().map(|(k, v)| (k.clone(), v.clone())));
                c
            })
            .collect();
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .zip(&configs)
            .map(|(t, c)| {
                let mut nt = NewTopic::new(
                    &t.name,
                    t.partitions as i32,
                    TopicReplication::Fixed(t.replication as i32),
                );
                for (k, v) in c {
                    nt = nt.set(k, v);
                }
                nt
            })
            .collect();
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        // A broker that every metadata response lists may not be in the controller's own
        // view yet (ZooKeeper watch, then UpdateMetadata: asynchronous), and the controller
        // refuses a replication factor above the brokers it knows. Seen once in CI right
        // after start-up; so that refusal is retried for a while, only for the topics it
        // hit.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut pending: Vec<&NewTopic<'_>> = new.iter().collect();
        let mut timed_out = 0;
        loop {
            let results =
                futures::executor::block_on(self.client.create_topics(pending.clone(), &opts))?;
            let mut retry = Vec::new();
            for r in results {
                match r {
                    Ok(_) => {}
                    Err((_, RDKafkaErrorCode::RequestTimedOut)) if bulk => timed_out += 1,
                    Err((name, RDKafkaErrorCode::InvalidReplicationFactor))
                        if Instant::now() < deadline =>
                    {
                        retry.push(name);
                    }
                    Err((name, code)) => anyhow::bail!(
                        "creating topic {name}: {code}{}",
                        if code == RDKafkaErrorCode::InvalidReplicationFactor {
                            " (for 30 s: fewer live brokers than its replication factor)"
                        } else {
                            ""
                        }
                    ),
                }
            }
            if retry.is_empty() {
                return Ok(timed_out);
            }
            pending.retain(|t| retry.iter().any(|n| n == t.name));
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Deletes `topics` — only ever ones the caller created itself.
    pub fn delete_topics(&self, topics: &[&str]) -> anyhow::Result<()> {
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        let results = futures::executor::block_on(self.client.delete_topics(topics, &opts))?;
        for r in results {
            if let Err((name, code)) = r {
                anyhow::bail!("deleting topic {name}: {code}");
            }
        }
        Ok(())
    }

    /// Creates one topic with an explicit replica assignment (`assignment[p]`: partition
    /// `p`'s replicas, preferred leader first), e.g. a bookkeeping topic placed on the new
    /// brokers only. An existing topic of that name is an error.
    pub fn create_topic_assigned(
        &self,
        name: &str,
        assignment: &[Vec<i32>],
        config: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let replicas: Vec<&[i32]> = assignment.iter().map(Vec::as_slice).collect();
        let mut nt = NewTopic::new(
            name,
            assignment.len() as i32,
            TopicReplication::Variable(&replicas),
        );
        for (k, v) in config {
            nt = nt.set(k, v);
        }
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
        for r in futures::executor::block_on(self.client.create_topics([&nt], &opts))? {
            if let Err((name, code)) = r {
                anyhow::bail!("creating topic {name}: {code}");
            }
        }
        Ok(())
    }

    /// A topic config as the brokers report it (DescribeConfigs), `None` when unset.
    pub fn topic_config(&self, topic: &str, key: &str) -> anyhow::Result<Option<String>> {
        self.resource_config(rdkafka::admin::ResourceSpecifier::Topic(topic), key)
    }

    /// A broker config as the broker reports it (dynamic ones included), `None` when unset.
    pub fn broker_config(&self, broker: i32, key: &str) -> anyhow::Result<Option<String>> {
        self.resource_config(rdkafka::admin::ResourceSpecifier::Broker(broker), key)
    }

    fn resource_config(
        &self,
        spec: rdkafka::admin::ResourceSpecifier<'_>,
        key: &str,
    ) -> anyhow::Result<Option<String>> {
        let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
        let res = futures::executor::block_on(self.client.describe_configs([&spec], &opts))?;
        let r = res
            .into_iter()
            .next()
            .ok_or_else(|| anyhow::anyhow!("no answer"))?
            .map_err(|e| anyhow::anyhow!("describe configs: {e}"))?;
        Ok(r.get(key).and_then(|e| e.value.clone()))
    }

    /// Waits until `want` brokers are registered and every partition (of `topics`, or all
    /// when empty) is led with its full ISR. Returns the last snapshot.
    pub fn wait_healthy(
        &self,
        want_brokers: &[i32],
        topics: &[&str],
        timeout: Duration,
        shutdown: &Shutdown,
    ) -> anyhow::Result<ClusterSnapshot> {
        let deadline = Instant::now() + timeout;
        let mut last_problem;
        loop {
            match self.snapshot(Duration::from_secs(5)) {
                Ok(s) => {
                    let missing: Vec<i32> = want_brokers
                        .iter()
                        .copied()
                        .filter(|b| !s.brokers.contains(b))
                        .collect();
                    let expected_topics_present = topics
                        .iter()
                        .all(|t| s.partitions.iter().any(|p| &p.topic == t));
                    let bad: Vec<String> = s
                        .unhealthy()
                        .into_iter()
                        .filter(|p| {
                            topics.is_empty()
                                || topics.contains(&p.topic.as_str())
                                || p.topic.starts_with("__")
                        })
                        .map(|p| {
                            format!(
                                "{}/{} (leader {}, isr {:?} of {:?})",
                                p.topic, p.partition, p.leader, p.isr, p.replicas
                            )
                        })
                        .collect();
                    if missing.is_empty() && bad.is_empty() && expected_topics_present {
                        return Ok(s);
                    }
                    last_problem = if !missing.is_empty() {
                        format!("brokers not registered: {missing:?}")
                    } else if !expected_topics_present {
                        "topics not in metadata yet".into()
                    } else {
                        format!(
                            "{} partitions not fully in sync, e.g. {}",
                            bad.len(),
                            bad[0]
                        )
                    };
                }
                Err(e) => last_problem = e.to_string(),
            }
            if Instant::now() >= deadline {
                anyhow::bail!("not healthy after {:?}: {last_problem}", timeout);
            }
            // polled tightly: a metadata request is cheap, and every run starts here
            if shutdown.sleep(Duration::from_millis(100)) {
                anyhow::bail!("interrupted");
            }
        }
    }
}
