//! The configuration the harness hands each worker process, as a JSON file.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The job a worker process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Send sequence-numbered records and log every outcome.
    Produce,
    /// Consume in a group (subscribe) and log every delivery.
    Consume,
    /// Read every partition from the beginning to its end offset (assign), once.
    FinalRead,
    /// The exactly-once pipeline: consume a topic in a group (`read_committed`) and copy
    /// each record, unchanged, to another topic inside transactions that also commit the
    /// consumed offsets (consume-transform-produce).
    Copy,
}

impl Role {
    /// Its name in configs and in the discovery file (kebab-case, as serde writes it).
    pub fn name(self) -> &'static str {
        match self {
            Role::Produce => "produce",
            Role::Consume => "consume",
            Role::FinalRead => "final-read",
            Role::Copy => "copy",
        }
    }

    /// Code stored in the log header.
    pub fn code(self) -> u8 {
        match self {
            Role::Produce => 1,
            Role::Consume => 2,
            Role::FinalRead => 3,
            Role::Copy => 4,
        }
    }

    /// Inverse of [`Role::code`].
    pub fn from_code(c: u8) -> Option<Role> {
        match c {
            1 => Some(Role::Produce),
            2 => Some(Role::Consume),
            3 => Some(Role::FinalRead),
            4 => Some(Role::Copy),
            _ => None,
        }
    }
}

/// `acks` as the scenario spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Acks {
    /// Fire and forget.
    #[serde(rename = "0")]
    None,
    /// The leader alone.
    #[serde(rename = "1")]
    Leader,
    /// Every in-sync replica.
    #[serde(rename = "all")]
    All,
}

impl Acks {
    /// The librdkafka value.
    pub fn as_config(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// A workload topic as the workers see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: u32,
}

/// Producer settings that decide correctness, all explicit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProducerSettings {
    /// Records per second per producer instance; `None`: unlimited — as fast as the client
    /// takes them (its queue pushes back: a full queue is a refusal, tried again 10 ms later).
    pub rate: Option<f64>,
    /// Bytes per record value (at least the 36-byte header).
    pub size: usize,
    /// `acks`.
    pub acks: Acks,
    /// `enable.idempotence`.
    pub idempotence: bool,
    /// `retries`.
    pub retries: u32,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: u32,
    /// `linger.ms`.
    pub linger_ms: u32,
    /// `delivery.timeout.ms`: after this a record is reported indeterminate or failed.
    pub delivery_timeout_ms: u32,
    /// `request.timeout.ms`.
    pub request_timeout_ms: u32,
    /// Send in transactions (`None`: no transactions). Absent from older configs.
    #[serde(default)]
    pub transactions: Option<TransactionSettings>,
}

/// A transactional workload: each producer instance has its own `transactional.id` and
/// sends its records in transactions of a fixed size, aborting some on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionSettings {
    /// Records per transaction (its records go to the partitions in turn, so a transaction
    /// of several records spans several partitions).
    pub records: u32,
    /// Every `abort_every`-th transaction of an instance is aborted on purpose (0: none).
    pub abort_every: u32,
    /// `transaction.timeout.ms`: how long the coordinator keeps a transaction whose client
    /// went silent before it aborts it.
    pub timeout_ms: u32,
}

impl TransactionSettings {
    /// Whether transaction number `n` (from 0) of an instance is one to abort on purpose.
    pub fn aborts(&self, n: u64) -> bool {
        self.abort_every > 0 && n % u64::from(self.abort_every) == u64::from(self.abort_every) - 1
    }
}

impl ProducerSettings {
    /// True when the client keeps per-partition order, so a reorder is an anomaly.
    pub fn ordered(&self) -> bool {
        self.idempotence || self.max_in_flight <= 1
    }

    /// Time between two sends of one instance: `1 / rate`, zero when unlimited. `None` when
    /// the rate gives no such time (not above zero, not a number, or so small that the
    /// interval does not fit a `Duration`) — [`WorkerConfig::validate`] refuses those.
    pub fn send_interval(&self) -> Option<Duration> {
        match self.rate {
            None => Some(Duration::ZERO),
            Some(r) if r > 0.0 => Duration::try_from_secs_f64(1.0 / r).ok(),
            Some(_) => None,
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerSettings {
    /// Consumer group for the `consume` role.
    pub group_id: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u32,
    /// `isolation.level=read_uncommitted` instead of librdkafka's default
    /// `read_committed`: the consumers then see aborted transactions' records (the
    /// known-unsafe setting a transactional scenario must catch). Never for the final read,
    /// which reads what a `read_committed` reader must see. Absent from older configs.
    #[serde(default)]
    pub read_uncommitted: bool,
}

/// The exactly-once pipeline's settings (the `copy` role).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySettings {
    /// The workload topic it reads (its records' headers name the producers that wrote them).
    pub from: String,
    /// The topic it writes: a record read from partition `p` goes to partition
    /// `p % to.partitions`, its key and value unchanged.
    pub to: TopicSpec,
    /// Its consumer group (the offsets its transactions commit).
    pub group_id: String,
    /// At most this many records per transaction (what one poll round gathered).
    pub records: u32,
    /// `transaction.timeout.ms` of its producers.
    pub timeout_ms: u32,
}

/// Everything one worker process needs; written by the harness as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkerConfig {
    /// Run id: stamped in records and log headers.
    pub run_id: String,
    /// What this worker does.
    pub role: Role,
    /// Index of this worker among those of its role.
    pub worker_index: u32,
    /// Client instances hosted by this process (each its own Kafka client).
    pub instances: u32,
    /// Id of instance 0, unique across the run's workers of one role: instance `i` is
    /// `first_instance_id + i` (the producer id for producers).
    pub first_instance_id: u32,
    /// `bootstrap.servers` at the start.
    pub bootstrap: String,
    /// The discovery file: when it is rewritten, the worker reconnects to the servers it
    /// names (see [`crate::discovery`]).
    #[serde(default)]
    pub bootstrap_file: Option<PathBuf>,
    /// Workload topics, in the order the log's topic indexes refer to.
    pub topics: Vec<TopicSpec>,
    /// Where to write the binary log.
    pub log_path: PathBuf,
    /// Producer settings (used by the `produce` role).
    pub producer: ProducerSettings,
    /// Consumer settings (used by the `consume` role).
    pub consumer: ConsumerSettings,
    /// How long the final read may take before it reports partitions incomplete.
    pub final_read_timeout_ms: u64,
    /// The pipeline's settings (used by the `copy` role). Absent from older configs.
    #[serde(default)]
    pub copy: Option<CopySettings>,
    /// Extra librdkafka properties, applied last.
    #[serde(default)]
    pub client_overrides: BTreeMap<String, String>,
}

/// The largest record value a producer makes: librdkafka's own `message.max.bytes` ceiling
/// (a record larger than that could never be sent; a worker would only allocate it).
pub const MAX_RECORD_SIZE: usize = 1_000_000_000;

/// Topics a log can name: its events carry the topic's index in 16 bits.
pub const MAX_TOPICS: usize = 1 << 16;

/// Bytes of a run id a log header keeps (see [`crate::log`]); a longer one would not match
/// its own logs.
pub const MAX_RUN_ID_LEN: usize = 64;

/// One thing wrong in a worker config: the field and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the field, e.g. `topics[1].partitions`.
    pub field: String,
    /// What is wrong, and the fix.
    pub message: String,
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

impl WorkerConfig {
    /// Reads a config file written by the harness, and validates it: a file that parses
    /// but that a worker could not run (no topics, a partition count of 0, a rate that is
    /// not a rate…) is refused here, naming the file and every field, instead of failing
    /// later in the worker.
    pub fn load(path: &std::path::Path) -> anyhow::Result<WorkerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading worker config {}: {e}", path.display()))?;
        let cfg: WorkerConfig = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "worker config {}: {e} (hint: the harness writes this file; a hand-written \
                 one must have every field of WorkerConfig, see workers/src/config.rs)",
                path.display()
            )
        })?;
        cfg.check()
            .map_err(|e| anyhow::anyhow!("worker config {}: {e}", path.display()))?;
        Ok(cfg)
    }

    /// [`Self::validate`] as one error naming every field at fault.
    pub fn check(&self) -> anyhow::Result<()> {
        self.validate().map_err(|problems| {
            anyhow::anyhow!(
                "{}",
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })
    }

    /// Every reason this config cannot be run, or `Ok` when a worker of its role can run it.
    pub fn validate(&self) -> Result<(), Vec<ConfigProblem>> {
        let mut problems = Vec::new();
        let mut bad = |field: &str, message: String| {
            problems.push(ConfigProblem {
                field: field.into(),
                message,
            })
        };
        if self.run_id.is_empty() || self.run_id.len() > MAX_RUN_ID_LEN {
            bad(
                "run_id",
                format!(
                    "{} bytes; give 1 to {MAX_RUN_ID_LEN} (the log header keeps that many)",
                    self.run_id.len()
                ),
            );
        }
        if self.instances == 0 {
            bad("instances", "0: a worker hosts at least one client".into());
        }
        // instance i (below `instances`) is `first_instance_id + i`
        if self
            .first_instance_id
            .checked_add(self.instances.saturating_sub(1))
            .is_none()
        {
            bad(
                "first_instance_id",
                format!(
                    "{} + {} instances passes {}: give smaller ids",
                    self.first_instance_id,
                    self.instances,
                    u32::MAX
                ),
            );
        }
        if self.bootstrap.trim().is_empty() {
            bad("bootstrap", "empty: give host:port[,host:port…]".into());
        }
        if self.topics.is_empty() {
            bad(
                "topics",
                "empty: every role works on the workload's topics".into(),
            );
        }
        if self.topics.len() > MAX_TOPICS {
            bad(
                "topics",
                format!(
                    "{} topics; a log names at most {MAX_TOPICS}",
                    self.topics.len()
                ),
            );
        }
        for (i, t) in self.topics.iter().enumerate() {
            if t.name.is_empty() {
                bad(
                    &format!("topics[{i}].name"),
                    "empty: give the topic's name".into(),
                );
            }
            if t.partitions == 0 || t.partitions > i32::MAX as u32 {
                bad(
                    &format!("topics[{i}].partitions"),
                    format!(
                        "{}: give the topic's partition count (at least 1)",
                        t.partitions
                    ),
                );
            }
        }
        let p = &self.producer;
        if p.send_interval().is_none() {
            bad(
                "producer.rate",
                format!(
                    "{:?}: give records per second per instance above 0 (at least one record \
                     in a few hundred billion years), or null for unlimited",
                    p.rate
                ),
            );
        }
        if p.size > MAX_RECORD_SIZE {
            bad(
                "producer.size",
                format!("{} bytes; at most {MAX_RECORD_SIZE}", p.size),
            );
        }
        if p.max_in_flight == 0 {
            bad("producer.max_in_flight", "0: at least 1".into());
        }
        if let Some(t) = &p.transactions {
            if t.records == 0 {
                bad(
                    "producer.transactions.records",
                    "0: a transaction holds at least one record".into(),
                );
            }
            if !p.idempotence || p.acks != Acks::All {
                bad(
                    "producer.transactions",
                    "transactions need idempotence and acks = all (a transactional \
                     producer is an idempotent one)"
                        .into(),
                );
            }
            if t.timeout_ms == 0 {
                bad(
                    "producer.transactions.timeout_ms",
                    "0: give the coordinator's transaction timeout in ms".into(),
                );
            }
        }
        if self.role == Role::Copy {
            match &self.copy {
                None => bad(
                    "copy",
                    "missing: a copying worker needs `from`, `to`, `group_id`, `records`, \
                     `timeout_ms`"
                        .into(),
                ),
                Some(c) => {
                    if !self.topics.iter().any(|t| t.name == c.from) {
                        bad(
                            "copy.from",
                            format!("`{}` is not one of `topics`: give a workload topic", c.from),
                        );
                    }
                    if c.to.name.is_empty() || c.to.name == c.from {
                        bad(
                            "copy.to.name",
                            format!("`{}`: give a topic other than `from`", c.to.name),
                        );
                    }
                    if c.to.partitions == 0 || c.to.partitions > i32::MAX as u32 {
                        bad(
                            "copy.to.partitions",
                            format!(
                                "{}: give the output topic's partition count",
                                c.to.partitions
                            ),
                        );
                    }
                    if c.group_id.is_empty() {
                        bad(
                            "copy.group_id",
                            "empty: the pipeline reads in a group".into(),
                        );
                    }
                    if c.records == 0 {
                        bad(
                            "copy.records",
                            "0: a transaction copies at least one record".into(),
                        );
                    }
                    if c.timeout_ms == 0 {
                        bad(
                            "copy.timeout_ms",
                            "0: give the coordinator's transaction timeout in ms".into(),
                        );
                    }
                }
            }
        }
        if self.role == Role::Consume && self.consumer.group_id.is_empty() {
            bad(
                "consumer.group_id",
                "empty: a consuming worker joins a group".into(),
            );
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// Where a producer sends record `seq`: the topics in turn, then that topic's
    /// partitions in turn — (topic index, partition). A validated config has topics and
    /// partitions.
    pub fn placement(&self, seq: u64) -> (usize, i32) {
        let topics = self.topics.len().max(1) as u64;
        let topic = (seq % topics) as usize;
        let partitions = self
            .topics
            .get(topic)
            .map_or(1, |t| u64::from(t.partitions.max(1)));
        (topic, ((seq / topics) % partitions) as i32)
    }
}
