//! What the checker finds, as types: the counts, the windows, the examples, the verdict.
//! report.json writes each enum as the string it always had, so its fields keep their
//! meaning; code matches on the enums instead of comparing strings.

use std::collections::BTreeMap;

use serde::{Serialize, Serializer};

use super::attribution::StepSpan;
use super::latency::LatencySummary;
use crate::scenario::Anomaly;

/// What a window is about.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WindowSubject {
    /// One partition, `topic/partition`.
    Partition(String),
    /// The whole cluster: no partition succeeded.
    Cluster,
    /// One ZooKeeper server, as its smoke-test probe saw it (`zk:NODE`).
    ZooKeeper(String),
    /// A ZooKeeper ensemble: no member served (`ensemble:NAME`).
    Ensemble(String),
}

impl std::fmt::Display for WindowSubject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowSubject::Partition(p) => write!(f, "{p}"),
            WindowSubject::Cluster => write!(f, "cluster"),
            WindowSubject::ZooKeeper(n) => write!(f, "zk:{n}"),
            WindowSubject::Ensemble(n) => write!(f, "ensemble:{n}"),
        }
    }
}

impl Serialize for WindowSubject {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What kind of unavailability a window is.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WindowKind {
    /// Records sent, none acked.
    Produce,
    /// Records stored, none delivered to the consumer group.
    Consume,
    /// A ZooKeeper server's probe failed throughout.
    ZooKeeper,
    /// No member of an ensemble served.
    Ensemble,
    /// Split brain: the first server did not see the second's writes (`split A/B`).
    Split(String, String),
    /// Records stored, none delivered, while the consumer group itself was rebalancing
    /// (the partition had no owner, or had just been given one): the group's pause, not
    /// the cluster's.
    Rebalance,
}

impl WindowKind {
    /// Produce and consume windows: the Kafka clients' view.
    pub fn is_client(&self) -> bool {
        matches!(self, WindowKind::Produce | WindowKind::Consume)
    }
}

impl std::fmt::Display for WindowKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WindowKind::Produce => write!(f, "produce"),
            WindowKind::Consume => write!(f, "consume"),
            WindowKind::ZooKeeper => write!(f, "zookeeper"),
            WindowKind::Ensemble => write!(f, "ensemble"),
            WindowKind::Split(a, b) => write!(f, "split {a}/{b}"),
            WindowKind::Rebalance => write!(f, "rebalance"),
        }
    }
}

impl Serialize for WindowKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A run's verdict: every expectation held, or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Every expectation held.
    Pass,
    /// At least one did not.
    Fail,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
        })
    }
}

/// One anomalous record, for the report.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Example {
    /// `topic/partition`.
    pub partition: String,
    /// Offset, when one is known.
    pub offset: Option<i64>,
    /// Producer id.
    pub producer: u32,
    /// Sequence number.
    pub seq: u64,
    /// The step it is attributed to.
    pub step: String,
    /// What exactly was seen.
    pub detail: String,
}

/// Anomaly counts.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Anomalies {
    /// Acked, and not held by the cluster at the end (final read).
    pub lost: u64,
    /// Of `lost`: records a consumer had read before they disappeared.
    pub lost_read_before: u64,
    /// Acked, and on a partition the final read could not finish, beyond the offsets it
    /// reached: whether the cluster still holds them is unknown (a consumer having read
    /// one earlier does not say it is still there).
    pub unverified: u64,
    /// Extra copies: records stored at two or more offsets count once per extra copy.
    pub duplicate: u64,
    /// Of `duplicate`: copies of records that were in flight when their producer's client
    /// bumped its epoch or took a new producer id. The client sends them again with new
    /// sequence numbers, so a broker that had stored an earlier attempt cannot recognise
    /// them (librdkafka issue #4953): a client limitation, not a broker's idempotence
    /// failing.
    pub duplicate_after_epoch_bump: u64,
    /// Records stored below an earlier-sent record of the same producer and partition.
    pub reordered: u64,
    /// Offsets at which a reader saw a different record than the final read holds.
    pub inconsistent_offset: u64,
    /// Records read that the producer recorded as definitely failed.
    pub unexpected: u64,
    /// A consumer skipped over existing offsets.
    pub poll_gap: u64,
    /// A consumer went back without a rebalance.
    pub poll_regression: u64,
    /// Records the cluster holds at the end that no consumer of the group ever received
    /// (counted only when consumers ran): e.g. offsets a consumer silently skipped after
    /// a truncation moved the log under it.
    pub unconsumed: u64,
    /// Records in the workload topics that no producer of this run wrote.
    pub foreign: u64,
    /// Records of ours whose checksum failed.
    pub corrupt: u64,
    /// Acked records below their partition's log start offset at the final read: removed
    /// by retention or compaction, which is the topic's configuration doing its job — not
    /// loss. Reported, not judged.
    pub expired: u64,
    /// Producer instances that stopped trying to send for longer than the silence
    /// threshold while the workload ran (or never sent at all): each one once. See
    /// [`Findings::producer_silences`].
    pub silent_producers: u64,
    /// Worker processes (producers, consumers) that exited with an error or had to be
    /// killed. See [`Findings::dead_workers`].
    pub dead_workers: u64,
    /// Records of aborted transactions (on purpose or after an error) that a
    /// `read_committed` reader saw: the final read or a consumer, each record once.
    pub aborted_read: u64,
    /// Transactions of which the final read found some records and not others, on
    /// partitions it finished: committed ones (their missing records are `lost` too) and
    /// ones of unknown outcome (all or nothing may be visible, nothing between).
    pub non_atomic_read: u64,
}

/// Transactions by how their producers saw them end (transactional workloads).
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, PartialEq)]
pub struct TransactionTotals {
    /// Committed: every record acked (a `read_committed` reader must see all of them).
    pub committed: u64,
    /// Aborted on purpose (the workload's `abort_every`).
    pub aborted: u64,
    /// Aborted because the commit could not be made.
    pub aborted_after_error: u64,
    /// Of unknown outcome: its records count as indeterminate (all or none may be seen).
    pub unknown: u64,
    /// Records sent in a transaction that never ended in the log (the worker stopped
    /// first): indeterminate too.
    pub records_without_end: u64,
    /// Records per committed transaction, the workload's setting as the logs show it (the
    /// largest committed).
    pub largest: u64,
    /// The longest a transaction took from its first send to its end (its commit or
    /// abort answered), ms: a commit waits while its coordinator moves.
    pub longest_ms: u64,
    /// The step running when that transaction began.
    pub longest_step: String,
    /// Write cycles (Jepsen's G0) among the transactions the final read holds: groups of
    /// transactions each of which wrote before another of the group on some partition and
    /// after it on another — Kafka orders a partition, not transactions across partitions,
    /// so `read_committed` allows them. Reported, never judged.
    #[serde(default)]
    pub write_cycles: u64,
    /// Transactions in the largest such group.
    #[serde(default)]
    pub write_cycle_largest: u64,
    /// One group, in words (a few of its transactions and where they cross).
    #[serde(default)]
    pub write_cycle_example: String,
}

/// Producer outcome totals.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ProducerTotals {
    /// Records handed to the clients.
    pub sent: u64,
    /// Acknowledged.
    pub acked: u64,
    /// Definitely not written.
    pub failed: u64,
    /// Maybe written (timed out, purged in flight).
    pub indeterminate: u64,
    /// Sends the client refused before queueing them (a full queue…); the same record was
    /// tried again later, so these are attempts, not records.
    pub refused: u64,
    /// Sent with no outcome logged (the worker died first).
    pub no_outcome: u64,
    /// Records of aborted transactions (transactional producers): written to the log,
    /// never to be read by a `read_committed` reader. Not in `acked` or `failed`.
    #[serde(default)]
    pub aborted: u64,
    /// Producer instances seen.
    pub producers: u64,
}

/// Consumer totals.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ConsumerTotals {
    /// Deliveries (re-deliveries included).
    pub received: u64,
    /// Distinct records delivered.
    pub distinct: u64,
    /// Rebalance assignments seen.
    pub assignments: u64,
}

/// Final read totals.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct FinalReadTotals {
    /// Whether a final-read log exists.
    pub ran: bool,
    /// Partitions in the workload.
    pub partitions: u64,
    /// Partitions read to their end offset.
    pub complete: u64,
    /// Partitions not finished (`topic/partition`).
    pub incomplete: Vec<String>,
    /// Records read.
    pub records: u64,
}

/// A producer client that gave up its sequence numbers: an epoch bump or a new producer id.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ClientRenewal {
    /// Producer id (ours, as in the records).
    pub producer: u32,
    /// `epoch bump` or `new producer id`.
    pub kind: workers::renewal::RenewalKind,
    /// Why the client did it.
    pub reason: String,
    /// When the client began draining its requests, ms since run start.
    pub drain_start_ms: u64,
    /// When the new epoch or id took effect, ms since run start.
    pub at_ms: u64,
    /// Kafka producer id and epoch from then on.
    pub producer_id: u64,
    /// Epoch from then on.
    pub epoch: i32,
    /// Records sent without an outcome at that moment: the ones that may be stored twice.
    pub in_flight: u64,
    /// Step running when it took effect.
    pub step: String,
}

/// An unavailability window, ms since run start.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Window {
    /// What was unavailable (`partition` in report.json: `topic/partition`, `cluster`,
    /// `zk:NODE`, `ensemble:NAME`).
    pub partition: WindowSubject,
    /// Of what kind.
    pub kind: WindowKind,
    /// Start.
    pub start_ms: u64,
    /// End.
    pub end_ms: u64,
    /// Length.
    pub duration_ms: u64,
    /// Step running when it began.
    pub step: String,
    /// True when no success ended it (attempts failed or the run ended).
    pub open: bool,
}

/// A producer instance that stopped trying to send while the workload ran.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProducerSilence {
    /// Producer id.
    pub producer: u32,
    /// Its last attempt before the silence (or the start of the load, when it never sent),
    /// ms since run start.
    pub start_ms: u64,
    /// Its next attempt (or the producers' stop), ms since run start.
    pub end_ms: u64,
    /// The step running when it fell silent.
    pub step: String,
    /// True when it never sent again before the producers were stopped.
    pub until_stop: bool,
}

/// A worker process that did not end cleanly.
#[derive(Debug, Clone, Serialize, PartialEq, serde::Deserialize)]
pub struct DeadWorker {
    /// Worker name (`producer-0`, `consumer-1`).
    pub worker: String,
    /// How it ended (exit status, signal, killed at stop).
    pub how: String,
    /// When the harness saw it, ms since run start.
    pub seen_ms: u64,
    /// The last lines of its stderr (`workers/NAME.err`).
    pub stderr: String,
}

/// Everything the checker found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Findings {
    /// Producer totals.
    pub producers: ProducerTotals,
    /// Consumer totals.
    pub consumers: ConsumerTotals,
    /// Final read totals.
    pub final_read: FinalReadTotals,
    /// Anomaly counts.
    pub anomalies: Anomalies,
    /// Lost records by the step they are attributed to.
    pub lost_by_step: BTreeMap<String, u64>,
    /// Producer clients' epoch bumps and producer id renewals, in time order.
    pub client_renewals: Vec<ClientRenewal>,
    /// Stretches in which a producer instance made no attempt to send.
    pub producer_silences: Vec<ProducerSilence>,
    /// Worker processes that exited with an error or had to be killed.
    pub dead_workers: Vec<DeadWorker>,
    /// First examples of each anomaly kind.
    pub examples: BTreeMap<String, Vec<Example>>,
    /// Unavailability windows, by start.
    pub unavailability: Vec<Window>,
    /// Latency over the whole run.
    pub latency_ms: LatencySummary,
    /// Latency per step / phase.
    pub latency_by_step: BTreeMap<String, LatencySummary>,
    /// The run per time bucket (the HTML report's charts).
    pub series: super::series::Series,
    /// Steps as they ran.
    pub steps: Vec<StepSpan>,
    /// Logs read, and those cut short (a crash mid-write).
    pub logs_read: u64,
    /// Logs that ended in a partial or damaged event.
    pub logs_cut_short: Vec<String>,
    /// Where each of those was cut: the reader stopped there, what follows went unchecked.
    pub logs_cut_short_at: Vec<LogCut>,
    /// The ZooKeeper smoke test, per node (when it ran).
    pub zookeeper: BTreeMap<String, crate::check::smoke::ServerSummary>,
    /// The end-of-run check of Kafka's metadata in ZooKeeper (when it ran).
    pub kafka_metadata: Option<crate::zk::metadata::MetadataCheck>,
    /// The end-of-run check of what a `create-metadata` step created (when one did).
    pub metadata_survival: Option<crate::kafka::survival::SurvivalCheck>,
    /// Split brains the smoke test saw inside an ensemble (kind `split A/B`: A did not
    /// see B's writes).
    pub zookeeper_splits: Vec<Window>,
    /// Reassignments the steps ran: what moved, how long, the windows during each move.
    pub reassignments: Vec<super::ReassignmentSection>,
    /// The `audit` steps' findings.
    pub audits: Vec<super::AuditSection>,
    /// The `create-topics` steps: what they made and what it cost.
    pub created_topics: Vec<super::CreatedTopicsSection>,
    /// The `wait-failover` steps' measures.
    pub failovers: Vec<super::FailoverSection>,
    /// Broker migration processes killed and resumed, bootstrap switches (in time order).
    pub migration_events: Vec<String>,
    /// How long the run took to start, phase by phase.
    pub startup_ms: StartupTimes,
    /// Other machines' clocks, when workers ran on them.
    pub clocks: Option<ClockReport>,
    /// MirrorMaker 2's copy to the target cluster, checked by record identity (when a
    /// `mirror-start` step ran).
    pub mirror: Option<super::mirror::MirrorCheck>,
    /// The exactly-once pipeline's copy, by record identity (when `[workload] copy` ran).
    pub copy: Option<super::copy::CopyCheck>,
    /// The second oracle's findings (`[check] oracle`), when it ran.
    pub oracle: Option<super::oracle::OracleCheck>,
    /// The transactional producers' transactions by outcome, when any producer sent in
    /// transactions.
    pub transactions: Option<TransactionTotals>,
    /// Clients moved to MirrorMaker's target (`mirror-switch`), when any did.
    pub switch_over: Option<SwitchOverTotals>,
}

/// What clients did on MirrorMaker's target after a `mirror-switch` moved them there.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SwitchOverTotals {
    /// Consumer client instances that reconnected to the target.
    pub consumers_moved: u64,
    /// Producer client instances that reconnected to the target.
    pub producers_moved: u64,
    /// Records the target acked (a producer there); among `producers.acked` too.
    pub acked_on_target: u64,
    /// Of those, missing from the target's final read of a partition it read to its end
    /// (among `anomalies.lost` too).
    pub lost_on_target: u64,
    /// Deliveries on the target of records the group had been given before (on the
    /// source): what the offsets MirrorMaker translated made it read again. Not an
    /// anomaly: MirrorMaker translates to the last offset it synced at or before the
    /// group's commit, so some are expected.
    pub reread_on_target: u64,
    /// The target's final read was there to judge the target's acks against (when not,
    /// they are `unverified`).
    pub target_read: bool,
}

/// The worker hosts' clocks as a run measured them (ssh backend with worker hosts).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClockReport {
    /// Each host: its offset at the start and the end, and the error of each.
    pub hosts: Vec<HostClockReport>,
    /// Times from different machines are right to within this (the largest error of any
    /// host's measurement), ms. Every time in this report is on the coordinator's clock.
    pub error_bound_ms: f64,
    /// Windows that bound makes uncertain: shorter than twice it, or starting within it of
    /// a step's start (so the step they are tied to may be the one before).
    pub uncertain_windows: Vec<String>,
}

/// One host's clock against the coordinator's.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HostClockReport {
    /// The host's address.
    pub host: String,
    /// Host clock minus coordinator clock at the start, ms.
    pub offset_start_ms: f64,
    /// The same at the end (absent when the run did not get there), ms.
    pub offset_end_ms: Option<f64>,
    /// The measurement's error (half the shortest round trip), ms.
    pub bound_ms: f64,
}

/// When each point of a run's start-up was reached, ms since the run's start (absent in
/// runs recorded before these were).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StartupTimes {
    /// Every node ready (ZooKeeper serving, brokers registered).
    pub cluster_up: Option<u64>,
    /// Topics created, every partition with its full ISR.
    pub topics_ready: Option<u64>,
    /// Consumers assigned and producers started: the load begins.
    pub workers_ready: Option<u64>,
}

impl Anomalies {
    /// The count of a bounded anomaly (a scenario's `[expect]` bounds it).
    pub fn count(&self, a: Anomaly) -> u64 {
        match a {
            Anomaly::Lost => self.lost,
            Anomaly::Duplicate => self.duplicate,
            Anomaly::Reordered => self.reordered,
            Anomaly::InconsistentOffset => self.inconsistent_offset,
            Anomaly::Unexpected => self.unexpected,
            Anomaly::PollGap => self.poll_gap,
            Anomaly::PollRegression => self.poll_regression,
            Anomaly::Unconsumed => self.unconsumed,
            Anomaly::Foreign => self.foreign,
            Anomaly::Corrupt => self.corrupt,
            Anomaly::SilentProducer => self.silent_producers,
            Anomaly::DeadWorker => self.dead_workers,
            Anomaly::AbortedRead => self.aborted_read,
            Anomaly::NonAtomicRead => self.non_atomic_read,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_json_keeps_its_strings() {
        let w = Window {
            partition: WindowSubject::Ensemble("source".into()),
            kind: WindowKind::Split("zk1".into(), "zk2".into()),
            start_ms: 1,
            end_ms: 2,
            duration_ms: 1,
            step: "split".into(),
            open: false,
        };
        let v = serde_json::to_value(&w).unwrap();
        assert_eq!(v["partition"], "ensemble:source");
        assert_eq!(v["kind"], "split zk1/zk2");
        for (subject, text) in [
            (WindowSubject::Partition("orders/3".into()), "orders/3"),
            (WindowSubject::Cluster, "cluster"),
            (WindowSubject::ZooKeeper("zk1".into()), "zk:zk1"),
        ] {
            assert_eq!(serde_json::to_value(&subject).unwrap(), text);
        }
        for (kind, text) in [
            (WindowKind::Produce, "produce"),
            (WindowKind::Consume, "consume"),
            (WindowKind::ZooKeeper, "zookeeper"),
            (WindowKind::Ensemble, "ensemble"),
            (WindowKind::Rebalance, "rebalance"),
        ] {
            assert_eq!(serde_json::to_value(&kind).unwrap(), text);
        }
        assert_eq!(serde_json::to_value(Verdict::Pass).unwrap(), "pass");
        assert_eq!(serde_json::to_value(Verdict::Fail).unwrap(), "fail");
    }

    #[test]
    fn every_bounded_anomaly_has_its_count() {
        let a = Anomalies {
            lost: 1,
            duplicate: 2,
            reordered: 3,
            inconsistent_offset: 4,
            unexpected: 5,
            poll_gap: 6,
            poll_regression: 7,
            unconsumed: 8,
            foreign: 9,
            corrupt: 10,
            silent_producers: 11,
            dead_workers: 12,
            aborted_read: 13,
            non_atomic_read: 14,
            ..Default::default()
        };
        let counts: Vec<u64> = Anomaly::ALL.iter().map(|x| a.count(*x)).collect();
        assert_eq!(counts, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]);
    }
}

/// A worker log that ended in a partial or damaged event or block: read up to `at_byte`,
/// nothing of it from there on (a worker killed mid-write, a disk that lost a write, a
/// copy taken while it grew).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogCut {
    /// The log file.
    pub path: String,
    /// Where the partial or damaged event or block begins, in bytes from the file's start.
    pub at_byte: u64,
    /// Events read before it.
    pub events_before: u64,
}
