//! The validated scenario: what the rest of the harness runs. Built only by
//! [`super::load`], so every value here has passed validation.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use workers::ProducerSettings;

use super::actions::Action;

/// A scenario file, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Scenario {
    /// Short name (used in run ids and directory names).
    pub name: String,
    /// What the procedure is, in a sentence.
    pub description: String,
    /// Where it came from.
    pub file: PathBuf,
    /// The cluster to build.
    pub cluster: ClusterSpec,
    /// The load to run while the steps execute.
    pub workload: Workload,
    /// The migration procedure, in order.
    pub steps: Vec<Step>,
    /// How the logs are judged.
    pub check: CheckSettings,
    /// What must hold for the run to pass.
    pub expect: Expect,
}

/// Which kind of hosts the nodes run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Processes on this machine, each node on its own loopback address or namespace.
    Local,
    /// Containers on a Docker engine (`DOCKER_HOST`), nodes and workers alike, on a
    /// network made for the run.
    Docker,
    /// A cluster the harness did not start (`harness watch`): no nodes of its own, workers
    /// on this machine. A watch scenario has no `[cluster]` table.
    Live,
    /// Hosts the operator has, reached over SSH (an inventory names them): a node per
    /// host, workers on worker hosts (or here).
    Ssh,
    /// Instances the harness launches on EC2 (or finds by tag), then as `Ssh` on them.
    Ec2,
}

impl Backend {
    /// As `run.json` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Local => "local",
            Backend::Docker => "docker",
            Backend::Live => "live",
            Backend::Ssh => "ssh",
            Backend::Ec2 => "ec2",
        }
    }
}

/// What a local host is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostMode {
    /// Namespaces when the machine allows them (root, iproute2, iptables), else loopback.
    Auto,
    /// A network namespace per node on a bridge: network faults possible. Needs root.
    Namespaces,
    /// A loopback address per node: no network faults.
    Loopback,
}

/// The cluster: node names and their configuration.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterSpec {
    /// Host backend.
    pub backend: Backend,
    /// What the local backend's hosts are.
    pub hosts: HostMode,
    /// Exact Kafka version of the distribution (e.g. `3.9.1`).
    pub kafka_version: String,
    /// ZooKeeper node names, in `myid` order (1-based).
    pub zookeeper: Vec<String>,
    /// Nodes configured but not started with the cluster (a `start` or `add-brokers` step
    /// starts them): the third target node of seed 000's mitosis, the new brokers of a
    /// replacement.
    pub dormant: Vec<String>,
    /// Named groups of ZooKeeper nodes. Each is an ensemble at the start (its members'
    /// `zoo.cfg` lists exactly its members as participants); the smoke test reports each
    /// group's availability (some member serves), and steps name groups instead of nodes.
    /// Without `[cluster.ensembles]`: one group `zookeeper` with every ZooKeeper node.
    pub ensembles: BTreeMap<String, Vec<String>>,
    /// The ensemble the brokers' `zookeeper.connect` names at the start.
    pub kafka_ensemble: String,
    /// Broker node names; broker `i` (0-based) gets `broker.id = i + 1`.
    pub brokers: Vec<String>,
    /// KRaft controller node names (empty: ZooKeeper mode). A name also in `brokers` is a
    /// combined node (`process.roles=broker,controller`, its broker id); a dedicated
    /// controller `i` (0-based in this list) gets `node.id = 100 + i + 1`, so controller
    /// ids never collide with broker ids and read as controllers in logs.
    pub controllers: Vec<String>,
    /// A dynamic KRaft quorum (KIP-853, `quorum = "dynamic"`): the nodes find the quorum
    /// through `controller.quorum.bootstrap.servers`, the controllers that start with the
    /// cluster are its first voters (`--initial-controllers`), and a dormant controller
    /// joins by steps (`add-controller`). False: the static `controller.quorum.voters`.
    pub dynamic_quorum: bool,
    /// Broker properties applied on top of the harness's defaults.
    pub broker_config: BTreeMap<String, String>,
    /// ZooKeeper properties applied on top of the harness's defaults.
    pub zookeeper_config: BTreeMap<String, String>,
    /// Broker JVM heap, MiB.
    pub broker_heap_mb: u32,
    /// ZooKeeper JVM heap, MiB.
    pub zookeeper_heap_mb: u32,
    /// A dedicated KRaft controller's JVM heap, MiB (a combined node has the broker's).
    pub controller_heap_mb: u32,
    /// The ssh backend's inventory file (`inventory = "…"`, relative to the scenario file;
    /// `--hosts` on the command line).
    pub inventory: Option<std::path::PathBuf>,
    /// The ec2 backend's `[cluster.ec2]`.
    pub ec2: Option<crate::scenario::Ec2Spec>,
    /// A second Kafka cluster in the run (`[cluster.target]`): MirrorMaker 2's target.
    pub target: Option<TargetCluster>,
}

/// A second Kafka cluster in the run (`[cluster.target]`), on the same backend as the first:
/// its own brokers on their own ZooKeeper ensemble. Nothing of the run's Kafka side uses it
/// (the workload, the steps' admin, the end-of-run checks are the first cluster's) except
/// the `mirror-*` steps, MirrorMaker 2's copy, and the mirror check's read.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCluster {
    /// Its brokers' node names, not among `ClusterSpec::brokers`; broker `i` (0-based) gets
    /// `broker.id = i + 1` in its own cluster.
    pub brokers: Vec<String>,
    /// The ensemble (a key of `[cluster.ensembles]`) its brokers' `zookeeper.connect` names.
    pub ensemble: String,
}

impl ClusterSpec {
    /// The cluster of a watch: none of its own (the brokers are the watched cluster's);
    /// one ensemble `zookeeper`, the servers of `--zookeeper` when given.
    pub fn live() -> ClusterSpec {
        ClusterSpec {
            backend: Backend::Live,
            hosts: HostMode::Loopback,
            kafka_version: "live".into(),
            zookeeper: Vec::new(),
            dormant: Vec::new(),
            ensembles: [("zookeeper".to_string(), Vec::new())].into(),
            kafka_ensemble: "zookeeper".into(),
            brokers: Vec::new(),
            controllers: Vec::new(),
            dynamic_quorum: false,
            broker_config: BTreeMap::new(),
            zookeeper_config: BTreeMap::new(),
            broker_heap_mb: 0,
            zookeeper_heap_mb: 0,
            controller_heap_mb: 0,
            inventory: None,
            ec2: None,
            target: None,
        }
    }

    /// Every node, in the order hosts are given to them: the ZooKeeper nodes, the
    /// dedicated KRaft controllers, then the brokers (dormant ones among them), then the
    /// target cluster's brokers.
    pub fn all_nodes(&self) -> Vec<String> {
        self.zookeeper
            .iter()
            .chain(self.dedicated_controllers())
            .chain(&self.brokers)
            .chain(self.target_brokers())
            .cloned()
            .collect()
    }

    /// The target cluster's brokers (none without `[cluster.target]`).
    pub fn target_brokers(&self) -> impl Iterator<Item = &String> {
        self.target.iter().flat_map(|t| &t.brokers)
    }

    /// True when `node` is a broker of the target cluster.
    pub fn is_target_broker(&self, node: &str) -> bool {
        self.target_brokers().any(|b| b == node)
    }

    /// A target broker's id in its own cluster.
    pub fn target_broker_id(&self, node: &str) -> Option<i32> {
        self.target_brokers()
            .position(|b| b == node)
            .map(|i| i as i32 + 1)
    }

    /// True when the cluster starts in KRaft mode (controllers and no ZooKeeper).
    pub fn is_kraft(&self) -> bool {
        !self.controllers.is_empty() && self.zookeeper.is_empty()
    }

    /// True when the cluster is a ZooKeeper→KRaft migration: it starts on ZooKeeper, and
    /// its (dedicated, dormant) controllers join by steps.
    pub fn is_migration(&self) -> bool {
        !self.controllers.is_empty() && !self.zookeeper.is_empty()
    }

    /// True when the cluster has KRaft controllers (from the start, or by the migration).
    pub fn has_controllers(&self) -> bool {
        !self.controllers.is_empty()
    }

    /// The controllers that are not brokers too.
    pub fn dedicated_controllers(&self) -> impl Iterator<Item = &String> {
        self.controllers
            .iter()
            .filter(|c| !self.brokers.contains(c))
    }

    /// True when `node` is a KRaft controller (dedicated or combined).
    pub fn is_controller(&self, node: &str) -> bool {
        self.controllers.iter().any(|c| c == node)
    }

    /// The KRaft `node.id` of a controller: its broker id when combined, else
    /// `100 + position + 1`.
    pub fn controller_id(&self, node: &str) -> Option<i32> {
        let i = self.controllers.iter().position(|c| c == node)?;
        Some(self.broker_id(node).unwrap_or(100 + i as i32 + 1))
    }

    /// The broker id of a broker node name.
    pub fn broker_id(&self, node: &str) -> Option<i32> {
        self.brokers
            .iter()
            .position(|b| b == node)
            .map(|i| i as i32 + 1)
    }

    /// The broker node name of a broker id.
    pub fn broker_name(&self, id: i32) -> Option<&str> {
        usize::try_from(id - 1)
            .ok()
            .and_then(|i| self.brokers.get(i))
            .map(String::as_str)
    }

    /// True when `node` is a ZooKeeper node.
    pub fn is_zookeeper(&self, node: &str) -> bool {
        self.zookeeper.iter().any(|z| z == node)
    }

    /// The `myid` of a ZooKeeper node name.
    pub fn zookeeper_id(&self, node: &str) -> Option<i32> {
        self.zookeeper
            .iter()
            .position(|z| z == node)
            .map(|i| i as i32 + 1)
    }

    /// The ensemble (group) a ZooKeeper node starts in.
    pub fn ensemble_of(&self, node: &str) -> Option<&str> {
        self.ensembles
            .iter()
            .find(|(_, members)| members.iter().any(|m| m == node))
            .map(|(name, _)| name.as_str())
    }
}

/// True when every character of `name` is one Kafka allows in a topic name (letters,
/// digits, '.', '_', '-'); the length and the `__` prefix are the caller's to judge.
pub fn topic_chars_ok(name: &str) -> bool {
    name.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A name the harness may give a topic it creates: Kafka's rule (1-249 of letters, digits,
/// `.`, `_`, `-`; not `.` or `..`), and not one of Kafka's own (`__` first).
pub fn usable_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && !name.starts_with("__")
        && topic_chars_ok(name)
}

impl Workload {
    /// The workload topics' names, in order.
    pub fn topic_names(&self) -> Vec<&str> {
        self.topics.iter().map(|t| t.name.as_str()).collect()
    }
}

/// A workload topic.
#[derive(Debug, Clone, Serialize)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
    /// Replication factor.
    pub replication: u32,
    /// `min.insync.replicas`.
    pub min_insync: u32,
    /// Other topic configs (e.g. `unclean.leader.election.enable`).
    pub config: BTreeMap<String, String>,
}

/// The load the workers put on the cluster.
#[derive(Debug, Clone, Serialize)]
pub struct Workload {
    /// Topics the harness creates and the workers use.
    pub topics: Vec<Topic>,
    /// Producer instances in total.
    pub producers: u32,
    /// Processes the producer instances are spread over.
    pub producer_processes: u32,
    /// Consumer instances in total (one group).
    pub consumers: u32,
    /// Processes the consumer instances are spread over.
    pub consumer_processes: u32,
    /// Producer settings (rate is per instance).
    pub producer: ProducerSettings,
    /// Consumer `session.timeout.ms`.
    pub consumer_session_timeout_ms: u32,
    /// `consumer_isolation = "read_uncommitted"`: the consumers read aborted and open
    /// transactions' records (the unsafe setting; `read_committed` by default).
    pub consumer_read_uncommitted: bool,
    /// Load before the first step.
    pub warmup: Duration,
    /// Load after the last step, before the producers stop.
    pub settle: Duration,
    /// Longest wait for consumers to catch up once the producers stopped.
    pub drain_timeout: Duration,
    /// Longest the final read may take.
    pub final_read_timeout: Duration,
    /// Where worker processes go when the run has worker hosts (ssh and ec2 backends).
    pub placement: Placement,
    /// The exactly-once pipeline (`copy = { … }`), when the scenario runs one.
    pub copy: Option<CopySpec>,
}

impl Workload {
    /// The workload topics among `names`, in the workload's order, with their partition
    /// counts (what MirrorMaker copies, as the steps and the end of the run need it).
    pub fn partitions_of(&self, names: &[String]) -> Vec<(String, u32)> {
        self.topics
            .iter()
            .filter(|t| names.contains(&t.name))
            .map(|t| (t.name.clone(), t.partitions))
            .collect()
    }
}

/// `[workload] copy`: the exactly-once pipeline — `copy` workers read `from` in a group
/// (`read_committed`) and copy each record, unchanged, to `to` in transactions that commit
/// the offsets read (consume-transform-produce). The checker then asks, by record identity,
/// whether each record `from` holds was copied exactly once.
#[derive(Debug, Clone, Serialize)]
pub struct CopySpec {
    /// The workload topic it reads.
    pub from: String,
    /// The topic it writes: made by the run with `from`'s partitions, replication,
    /// `min_insync` and configs; read back at the end by a final read of its own.
    pub to: String,
    /// Pipeline instances (each a group consumer and a transactional producer).
    pub instances: u32,
    /// Processes the instances are spread over.
    pub processes: u32,
    /// At most this many records per transaction.
    pub records: u32,
    /// `transaction.timeout.ms` of its producers.
    pub timeout: Duration,
}

impl Workload {
    /// The pipeline's output topic, as created: `from`'s settings under `to`'s name.
    pub fn copy_topic(&self) -> Option<Topic> {
        let c = self.copy.as_ref()?;
        let from = self.topics.iter().find(|t| t.name == c.from)?;
        Some(Topic {
            name: c.to.clone(),
            ..from.clone()
        })
    }

    /// The pipeline's settings as its workers are given them, in consumer group `group_id`.
    pub fn copy_settings(&self, group_id: &str) -> Option<workers::CopySettings> {
        let c = self.copy.as_ref()?;
        let to = self.copy_topic()?;
        Some(workers::CopySettings {
            from: c.from.clone(),
            to: workers::TopicSpec {
                name: to.name,
                partitions: to.partitions,
            },
            group_id: group_id.to_string(),
            records: c.records,
            timeout_ms: (c.timeout.as_millis() as u32).max(1),
        })
    }
}

/// `[workload] placement`: how worker processes spread over the worker hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Placement {
    /// Each worker process on the next worker host, in start order (consumers, producers,
    /// then the final read).
    #[default]
    RoundRobin,
    /// Producers on the first half of the worker hosts (rounded up), consumers and the
    /// final read on the rest: a consumer host's load never slows a producer, and an
    /// end-to-end latency always crosses two clocks (corrected, within the bound). Needs
    /// two worker hosts or more.
    Split,
}

impl Placement {
    /// Why this placement cannot spread workers over `hosts` worker hosts, if it cannot.
    pub fn unfit(self, hosts: usize) -> Option<String> {
        (self == Placement::Split && hosts < 2).then(|| {
            format!(
                "[workload] placement = \"split\" needs two worker hosts or more; this run has {hosts}\n  hint: add worker hosts (the inventory's `workers`, or [cluster.ec2] workers), or placement = \"round-robin\""
            )
        })
    }
}

/// How the checker judges.
#[derive(Debug, Clone, Serialize)]
pub struct CheckSettings {
    /// A stretch with attempts and no success longer than this is an unavailability window.
    pub window_threshold_ms: u64,
    /// An event this long before a step's start is attributed to that step: the last
    /// success before a kill, say, lands a few ms before the kill is sent.
    pub attribution_grace_ms: u64,
    /// Run the ZooKeeper smoke test against every ZooKeeper node for the whole run.
    pub zookeeper_smoke: bool,
    /// At the end of the run, compare Kafka's metadata in the ensemble the brokers use
    /// with what the brokers report (topics, assignments, leaders, ISR, registered brokers).
    pub kafka_metadata: bool,
    /// A second, independent oracle run beside the workers (`[check] oracle`), whose
    /// verdict on loss the harness's own must agree with.
    pub oracle: Option<Oracle>,
}

/// A second oracle: another program's producer and consumer on their own topic, judged by
/// its own rule, so that a verdict does not rest on the harness's workers and checker alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Oracle {
    /// Kafka's own `VerifiableProducer` and `VerifiableConsumer` (kafka-tools), judged as
    /// kafkatest's produce-consume-validate does: every acked value must be consumed.
    KafkaVerifiable,
}

impl Oracle {
    /// Its name in `[check] oracle`.
    pub fn name(self) -> &'static str {
        match self {
            Oracle::KafkaVerifiable => "kafka-verifiable",
        }
    }
}

/// A ZooKeeper server's role in a membership list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ZkRole {
    /// Votes.
    Participant,
    /// Follows without voting.
    Observer,
}

/// Where an action points.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum Target {
    /// A node by name.
    Node(String),
    /// The broker leading a partition when the step starts.
    Leader {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// A broker that follows (replicates, not leads) a partition when the step starts.
    Follower {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
    },
    /// The active KRaft controller (the quorum's leader) when the step starts.
    ActiveController,
    /// The broker coordinating the most of the run's transactional producers when the
    /// step starts (ties: the lowest broker id) — transactional workloads only.
    TransactionCoordinator,
    /// The node an earlier step bound with `bind = "NAME"`.
    Bound(String),
    /// The workers and the harness (in a `partition` group only).
    Clients,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Node(n) => write!(f, "{n}"),
            Target::Leader { topic, partition } => write!(f, "leader:{topic}/{partition}"),
            Target::Follower { topic, partition } => write!(f, "follower:{topic}/{partition}"),
            Target::ActiveController => write!(f, "controller:active"),
            Target::TransactionCoordinator => write!(f, "coordinator:transactions"),
            Target::Bound(b) => write!(f, "@{b}"),
            Target::Clients => write!(f, "clients"),
        }
    }
}

impl Scenario {
    /// Steps that need namespace hosts (network faults), if any.
    pub fn network_steps(&self) -> Vec<&Step> {
        self.steps
            .iter()
            .filter(|s| s.action.is_network_fault())
            .collect()
    }

    /// The Kafka releases `kafka-version` steps switch nodes to (fetched before the run
    /// starts, never in the middle of it).
    pub fn upgrade_releases(&self) -> Vec<&str> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                crate::scenario::Action::Kraft(crate::scenario::KraftAction::KafkaVersion {
                    kafka,
                    ..
                }) => Some(kafka.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// One step of the procedure.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    /// What the operator would call it; reports name steps by this.
    pub name: String,
    /// What it does.
    pub action: Action,
    /// Remember the node this step resolved to, for later steps (`node = "@NAME"`).
    pub bind: Option<String>,
    /// Line of the step in the scenario file.
    pub line: usize,
}

/// A bound on a count: `0` (at most 0), `"> 0"`, `">= 10"`, `"< 5"`, `"== 3"`, `"any"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Bound {
    /// Anything goes (reported only).
    Any,
    /// At most.
    AtMost(u64),
    /// At least.
    AtLeast(u64),
    /// Exactly.
    Exactly(u64),
}

impl Bound {
    /// Parses the scenario form.
    pub fn parse(text: &str) -> Option<Bound> {
        let t = text.trim();
        if t == "any" {
            return Some(Bound::Any);
        }
        let (op, num) = ["<=", ">=", "==", "<", ">"]
            .iter()
            .find_map(|op| t.strip_prefix(op).map(|rest| (*op, rest.trim())))
            .unwrap_or(("<=", t));
        let n: u64 = num.parse().ok()?;
        Some(match op {
            "<=" => Bound::AtMost(n),
            ">=" => Bound::AtLeast(n),
            "==" => Bound::Exactly(n),
            "<" => Bound::AtMost(n.checked_sub(1)?),
            ">" => Bound::AtLeast(n + 1),
            _ => unreachable!(),
        })
    }

    /// True when `v` satisfies the bound.
    pub fn holds(&self, v: u64) -> bool {
        match *self {
            Bound::Any => true,
            Bound::AtMost(n) => v <= n,
            Bound::AtLeast(n) => v >= n,
            Bound::Exactly(n) => v == n,
        }
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bound::Any => write!(f, "any"),
            Bound::AtMost(n) => write!(f, "<= {n}"),
            Bound::AtLeast(n) => write!(f, ">= {n}"),
            Bound::Exactly(n) => write!(f, "== {n}"),
        }
    }
}

/// An anomaly a scenario bounds: each is named here once, with its `[expect]` key and its
/// default bound; the checker counts it (`check::Anomalies::count`), the report judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Anomaly {
    /// Acked records the cluster no longer holds.
    Lost,
    /// Records stored at two or more offsets — all of them, or, when
    /// `duplicates_after_epoch_bump` is set, those no client epoch bump explains.
    Duplicate,
    /// Records stored out of their producer's order (ordered producers only).
    Reordered,
    /// Offsets at which two readers saw different records.
    InconsistentOffset,
    /// Records read that the producer recorded as definitely failed.
    Unexpected,
    /// Consumer skips over existing offsets.
    PollGap,
    /// Consumer going back without a rebalance.
    PollRegression,
    /// Stored records the consumer group never received (when consumers run).
    Unconsumed,
    /// Records in the workload topics that no producer of this run wrote.
    Foreign,
    /// Records of ours whose checksum failed.
    Corrupt,
    /// Producer instances that stopped trying to send while the workload ran.
    SilentProducer,
    /// Worker processes that exited with an error or had to be killed.
    DeadWorker,
    /// Records of aborted transactions that a `read_committed` reader saw.
    AbortedRead,
    /// Transactions that readers saw in part: some records and not others.
    NonAtomicRead,
}

impl Anomaly {
    /// Every bounded anomaly, in the order the report lists its expectation.
    pub const ALL: [Anomaly; 14] = [
        Anomaly::Lost,
        Anomaly::Duplicate,
        Anomaly::Reordered,
        Anomaly::InconsistentOffset,
        Anomaly::Unexpected,
        Anomaly::PollGap,
        Anomaly::PollRegression,
        Anomaly::Unconsumed,
        Anomaly::Foreign,
        Anomaly::Corrupt,
        Anomaly::SilentProducer,
        Anomaly::DeadWorker,
        Anomaly::AbortedRead,
        Anomaly::NonAtomicRead,
    ];

    /// Its key in `[expect]` (and the expectation's name in the report).
    pub fn expect_key(self) -> &'static str {
        match self {
            Anomaly::Lost => "lost",
            Anomaly::Duplicate => "duplicates",
            Anomaly::Reordered => "reordered",
            Anomaly::InconsistentOffset => "inconsistent_offsets",
            Anomaly::Unexpected => "unexpected",
            Anomaly::PollGap => "poll_gaps",
            Anomaly::PollRegression => "poll_regressions",
            Anomaly::Unconsumed => "unconsumed",
            Anomaly::Foreign => "foreign",
            Anomaly::Corrupt => "corrupt",
            Anomaly::SilentProducer => "silent_producers",
            Anomaly::DeadWorker => "dead_workers",
            Anomaly::AbortedRead => "aborted_reads",
            Anomaly::NonAtomicRead => "non_atomic_reads",
        }
    }

    /// The bound when the scenario sets none: nothing of any kind, except duplicates
    /// without idempotence, reordering of producers that do not keep order, and
    /// unconsumed records when no consumer runs (reported, not judged).
    pub fn default_bound(self, workload: &Workload) -> Bound {
        let judged = match self {
            Anomaly::Duplicate => workload.producer.idempotence,
            Anomaly::Reordered => workload.producer.ordered(),
            Anomaly::Unconsumed => workload.consumers > 0,
            _ => true,
        };
        if judged {
            Bound::AtMost(0)
        } else {
            Bound::Any
        }
    }
}

/// The `[expect]` table: each bound must hold for the run to pass.
#[derive(Debug, Clone, Serialize)]
pub struct Expect {
    /// The bound of every anomaly (the scenario's, or [`Anomaly::default_bound`]).
    pub bounds: BTreeMap<Anomaly, Bound>,
    /// Every lost record must be attributed to this step (by name), when set.
    pub lost_step: Option<String>,
    /// When set: a separate bound for the duplicates of records that were in flight when
    /// their producer's client bumped its epoch (librdkafka re-sends them with new sequence
    /// numbers; see [`crate::check::Anomalies::duplicate_after_epoch_bump`]); the
    /// `duplicates` bound then holds the rest.
    pub duplicates_after_epoch_bump: Option<Bound>,
    /// Longest unavailability window (produce or consume, any partition) attributed to a
    /// step without its own bound in `per_step`, ms.
    pub max_unavailable_ms: Option<u64>,
    /// Longest pause of the consumer group's own (a `rebalance` window), ms; not judged
    /// when unset.
    pub max_rebalance_pause_ms: Option<u64>,
    /// Fewest acked records for the run to count (guards against a run that did nothing).
    pub min_acked: u64,
    /// Partitions the final read could not finish.
    pub unreadable_partitions: Bound,
    /// Records acked on the source before the mirror's cut that the target cluster does not
    /// hold (`mirror_missing`; judged only when MirrorMaker ran).
    pub mirror_missing: Bound,
    /// Records of the pipeline's input never copied (`copy_missing`; judged only when
    /// `[workload] copy` ran).
    pub copy_missing: Bound,
    /// Extra copies the pipeline made (`copy_duplicates`).
    pub copy_duplicates: Bound,
    /// Copies of records its input's final read does not hold (`copy_not_in_input`).
    pub copy_not_in_input: Bound,
    /// Extra copies on the target (`mirror_duplicates`); `None`: none for the transactional
    /// copy, any for the at-least-once one.
    pub mirror_duplicates: Option<Bound>,
    /// The consumer group's offsets synced to the target must let a consumer switched over
    /// skip nothing, on every partition (`mirror_group_offsets = "translated"`, default).
    pub mirror_group_offsets: bool,
    /// Expectations about what is attributed to one step (`[expect.step."NAME"]`).
    pub per_step: std::collections::BTreeMap<String, StepExpect>,
    /// Expectations about ZooKeeper ensembles as the smoke test saw them
    /// (`[expect.ensemble.NAME]`).
    pub ensembles: std::collections::BTreeMap<String, EnsembleExpect>,
    /// The end-of-run check of Kafka's metadata in ZooKeeper must find no difference.
    pub kafka_metadata_intact: bool,
    /// What a `create-metadata` step created must all be there at the end, unchanged (set
    /// when the procedure has one).
    pub metadata_survival_intact: bool,
}

impl Expect {
    /// The bound of an anomaly.
    pub fn bound(&self, a: Anomaly) -> Bound {
        self.bounds.get(&a).copied().unwrap_or(Bound::AtMost(0))
    }
}

/// What must hold for one ZooKeeper ensemble (a `[cluster.ensembles]` group).
#[derive(Debug, Clone, Serialize, Default)]
pub struct EnsembleExpect {
    /// Longest stretch in which no member served, ms (from its first success on).
    pub max_unavailable_ms: Option<u64>,
    /// Number of such windows.
    pub windows: Option<Bound>,
    /// Longest window attributed to a given step, ms (`[expect.ensemble.NAME.step."S"]`);
    /// those windows are exempt from `max_unavailable_ms`.
    pub per_step: BTreeMap<String, u64>,
}

/// What must hold for the windows and losses attributed to one step. A step listed here
/// is exempt from the scenario-wide `max_unavailable_ms`.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StepExpect {
    /// Longest window attributed to the step, ms.
    pub max_unavailable_ms: Option<u64>,
    /// Lost records attributed to the step.
    pub lost: Option<Bound>,
}

/// True when `name` matches `pattern`, where `*` matches any run of characters.
pub fn topic_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((b'*', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((c, rest)) => n.first() == Some(c) && go(rest, &n[1..]),
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    #[test]
    fn topic_patterns() {
        use super::topic_matches as m;
        assert!(m("payments", "payments"));
        assert!(!m("payments", "payments2"));
        assert!(m("pay*", "payments"));
        assert!(m("*", "__consumer_offsets"));
        assert!(m("*-v*", "orders-v2"));
        assert!(!m("orders-*", "orders"));
    }
}
