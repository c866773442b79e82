//! The configuration the harness hands each worker process, as a JSON file.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The job a worker process does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Send sequence-numbered records and log every outcome.
    Produce,
    /// Consume in a group (subscribe) and log every delivery.
    Consume,
    /// Read every partition from the beginning to its end offset (assign), once.
    FinalRead,
}

impl Role {
    /// Code stored in the log header.
    pub fn code(self) -> u8 {
        match self {
            Role::Produce => 1,
            Role::Consume => 2,
            Role::FinalRead => 3,
        }
    }

    /// Inverse of [`Role::code`].
    pub fn from_code(c: u8) -> Option<Role> {
        match c {
            1 => Some(Role::Produce),
            2 => Some(Role::Consume),
            3 => Some(Role::FinalRead),
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
}

impl ProducerSettings {
    /// True when the client keeps per-partition order, so a reorder is an anomaly.
    pub fn ordered(&self) -> bool {
        self.idempotence || self.max_in_flight <= 1
    }
}

/// Consumer settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsumerSettings {
    /// Consumer group for the `consume` role.
    pub group_id: String,
    /// `session.timeout.ms`.
    pub session_timeout_ms: u32,
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
    /// Extra librdkafka properties, applied last.
    #[serde(default)]
    pub client_overrides: BTreeMap<String, String>,
}

impl WorkerConfig {
    /// Reads a config file written by the harness.
    pub fn load(path: &std::path::Path) -> anyhow::Result<WorkerConfig> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading worker config {}: {e}", path.display()))?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("worker config {}: {e}", path.display()))
    }
}
