//! The run's timeline: `timeline.jsonl`, one JSON object per line, appended and flushed as
//! things happen, so a run killed mid-way still tells what ran when.

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::kafka::ClusterSnapshot;

/// One line of the timeline. `t_ms` is wall-clock ms since the Unix epoch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TimelineEvent {
    /// The run began (t0 of every relative time in the report).
    RunStart {
        /// When.
        t_ms: u64,
        /// Run id.
        run_id: String,
        /// Scenario name.
        scenario: String,
    },
    /// A phase of the run around the steps: `warmup`, `settle`, `drain`, `final-read`.
    Phase {
        /// When it began.
        t_ms: u64,
        /// Which.
        name: String,
    },
    /// A step began.
    StepStart {
        /// When.
        t_ms: u64,
        /// 0-based index.
        index: usize,
        /// Step name.
        name: String,
        /// Action keyword.
        action: String,
    },
    /// A step ended.
    StepEnd {
        /// When.
        t_ms: u64,
        /// 0-based index.
        index: usize,
        /// Step name.
        name: String,
        /// Whether it did what it should.
        ok: bool,
        /// Why not.
        error: Option<String>,
        /// The node the step acted on, when it targets one.
        node: Option<String>,
    },
    /// Leaders, replicas and ISR at a moment (taken before each step).
    Snapshot {
        /// When.
        t_ms: u64,
        /// The picture.
        snapshot: ClusterSnapshot,
    },
    /// A named point (a `mark` step, or `harness mark`).
    Mark {
        /// When.
        t_ms: u64,
        /// Label.
        name: String,
    },
    /// A subtree copy between ZooKeeper ensembles finished (`zk-copy`).
    ZkCopy {
        /// When.
        t_ms: u64,
        /// The subtree.
        path: String,
        /// The modification-time filter of a catch-up pass (ms since epoch).
        mtime_after: Option<i64>,
        /// What it did.
        report: crate::zk::tree::CopyReport,
    },
    /// A dynamic reconfig committed this ZooKeeper configuration (`zk-reconfig`).
    ZkConfig {
        /// When.
        t_ms: u64,
        /// Its version.
        version: String,
        /// `(myid, role)` of each server.
        servers: Vec<(i32, String)>,
    },
    /// A reassignment finished (a `reassign`/`drain` step, or one topic of a broker
    /// migration).
    Reassignment {
        /// When it ended.
        t_ms: u64,
        /// The step it belongs to.
        step: String,
        /// The topic, for a broker migration's per-topic move.
        topic: Option<String>,
        /// What moved, how long each partition took, bytes copied.
        report: crate::kafka::reassign::ReassignReport,
    },
    /// An `audit` step's findings.
    Audit {
        /// When.
        t_ms: u64,
        /// The step.
        step: String,
        /// The replica count asked for.
        min_replicas: u32,
        /// Partitions short of replicas or of in-sync replicas.
        findings: Vec<AuditFinding>,
    },
    /// A worker process exited with an error, or had to be killed, before the run stopped
    /// it cleanly.
    WorkerFailed {
        /// When the harness saw it.
        t_ms: u64,
        /// Worker name (`producer-0`).
        worker: String,
        /// How it ended.
        how: String,
        /// Its stderr, relative to the run directory.
        stderr: String,
    },
    /// A point of the run's start-up was reached: `cluster` (every node ready), `topics`
    /// (created, every partition with its full ISR), `workers` (consumers assigned,
    /// producers started: the load begins).
    Ready {
        /// When.
        t_ms: u64,
        /// Which point.
        what: String,
    },
    /// The workers were pointed at other bootstrap servers and all reconnected.
    BootstrapSwitch {
        /// When the last worker reconnected.
        t_ms: u64,
        /// The new `bootstrap.servers`.
        bootstrap: String,
    },
    /// A broker migration's process was killed on purpose (`interrupt_after`) or started
    /// again to resume.
    Migration {
        /// When.
        t_ms: u64,
        /// The step.
        step: String,
        /// `killed while moving TOPIC`, `resumed: N topics recorded, M partitions in flight`.
        what: String,
    },
    /// The cluster did something on its own during a step: a broker start refused while
    /// its killed predecessor's ZooKeeper session held its registration, started again.
    Node {
        /// When.
        t_ms: u64,
        /// The step.
        step: String,
        /// The node.
        node: String,
        /// What happened and why.
        what: String,
    },
    /// A `create-topics` step's topics exist and every one of their partitions is led, with
    /// its full ISR.
    TopicsCreated {
        /// When.
        t_ms: u64,
        /// The step.
        step: String,
        /// What was made, how long it took, what the nodes hold after it.
        created: CreatedTopics,
    },
    /// A `wait-failover` step's measure.
    Failover {
        /// When the step ended.
        t_ms: u64,
        /// The step.
        step: String,
        /// When the node was lost (when the step that took it had acted), ms since the Unix
        /// epoch: what the measure's times count from.
        lost_at_ms: u64,
        /// The loss it measured from and how long the cluster took to recover from it.
        measure: FailoverMeasure,
    },
    /// The run's workload and cluster are done.
    RunEnd {
        /// When.
        t_ms: u64,
        /// `completed`, `interrupted`, or an error.
        outcome: String,
    },
}

/// A partition an `audit` step found short of replicas or in-sync replicas.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditFinding {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Its replicas.
    pub replicas: Vec<i32>,
    /// Its in-sync replicas.
    pub isr: Vec<i32>,
    /// The topic's `min.insync.replicas`.
    pub min_isr: u32,
    /// `replicas < N`, `isr < min.insync.replicas` (both when both).
    pub problems: Vec<String>,
}

/// What a `create-topics` step made.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CreatedTopics {
    /// The topics' names start with `PREFIX-`.
    pub prefix: String,
    /// Topics created.
    pub topics: u32,
    /// Their partitions, in all.
    pub partitions: u64,
    /// Their replication factor.
    pub replication: u32,
    /// The CreateTopics requests' own time, summed, ms (the rest of `led_ms` is waiting
    /// for leaders between them).
    pub requests_ms: u64,
    /// From the step's start until every one of their partitions had a leader and its full
    /// ISR, and every broker's log directories held each replica it was given, ms.
    pub led_ms: u64,
    /// Every partition the cluster serves afterwards (internal and workload topics too).
    pub cluster_partitions: u64,
    /// What each running Kafka node's process holds afterwards (local processes only:
    /// elsewhere the harness cannot read the process's `/proc`).
    pub nodes: std::collections::BTreeMap<String, crate::cluster::ProcessResources>,
}

/// A `wait-failover` step's measure: from the loss of a node to an active controller and
/// every partition led again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FailoverMeasure {
    /// The node lost (killed, stopped or paused by the last such step before).
    pub lost: String,
    /// How: `kill`, `stop` or `pause`.
    pub how: String,
    /// The active controller found after the loss (a node that runs, not the lost one).
    pub controller: String,
    /// From the loss until that controller was seen, ms.
    pub controller_ms: u64,
    /// From the loss until every partition with a running replica had a running leader in
    /// the brokers' metadata, ms.
    pub leaders_ms: u64,
    /// Partitions judged (those with a running replica).
    pub partitions: u64,
    /// Partitions left out: no running replica can lead them.
    pub unservable: u64,
    /// The most partitions seen without a running leader at one look.
    pub leaderless_max: u64,
    /// Looks taken (a look every 100 ms, plus the requests' own time: the figures'
    /// resolution).
    pub looks: u32,
}

/// Appends timeline events to `timeline.jsonl`.
pub struct Timeline {
    file: File,
}

impl Timeline {
    /// Opens (appending) the timeline of a run directory.
    pub fn open(run_dir: &Path) -> std::io::Result<Timeline> {
        let file = File::options()
            .create(true)
            .append(true)
            .open(run_dir.join("timeline.jsonl"))?;
        Ok(Timeline { file })
    }

    /// Appends one event. One `write(2)` per line on a file opened for appending: another
    /// process appending (`harness mark`) never interleaves with it.
    pub fn record(&mut self, e: &TimelineEvent) {
        if let Ok(mut line) = serde_json::to_string(e) {
            line.push('\n');
            let _ = self.file.write_all(line.as_bytes());
        }
    }
}

/// Reads a timeline, skipping a torn last line.
pub fn read(run_dir: &Path) -> std::io::Result<Vec<TimelineEvent>> {
    let f = File::open(run_dir.join("timeline.jsonl"))?;
    let mut out = Vec::new();
    for line in BufReader::new(f).lines() {
        let line = line?;
        if let Ok(e) = serde_json::from_str(&line) {
            out.push(e);
        }
    }
    Ok(out)
}
