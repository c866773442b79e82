//! Reports: the verdict against `[expect]`, `report.json`, `junit.xml`, `report.html` and
//! the terminal summary.
//!
//! `report.json` is the stable interface for CI: see the README's "Report" section. Times
//! in it (`start_ms`, `end_ms` of steps and windows) are milliseconds since the run start,
//! `run_start_unix_ms` anchors them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

use crate::check::latency::LatencySummary;
use crate::check::{
    Anomalies, Example, FinalReadTotals, Findings, ProducerTotals, StepSpan, Verdict, Window,
};
use crate::error::HarnessError;
use crate::scenario::Scenario;

pub mod compare;
pub mod html;
mod judge;
mod junit;
mod summary;

pub use judge::{judge, max_partition_window};
pub use summary::summary;

/// One expectation and whether it held.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ExpectationResult {
    /// What is checked (`lost`, `max_unavailable_ms`, …).
    pub name: String,
    /// The bound, as written.
    pub expected: String,
    /// What the run showed.
    pub actual: String,
    /// Whether it held.
    pub ok: bool,
}

/// `report.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Run id.
    pub run_id: String,
    /// `pass` or `fail`.
    pub verdict: Verdict,
    /// Anchor of every relative time in this report.
    pub run_start_unix_ms: u64,
    /// Producer outcome totals.
    pub producers: ProducerTotals,
    /// Consumer totals.
    pub consumers: crate::check::ConsumerTotals,
    /// The final read.
    pub final_read: FinalReadTotals,
    /// Anomaly counts.
    pub anomalies: Anomalies,
    /// Lost records by the step they are attributed to.
    pub lost_by_step: BTreeMap<String, u64>,
    /// Producer clients' epoch bumps and producer id renewals: the records in flight at
    /// each may be stored twice.
    pub client_renewals: Vec<crate::check::ClientRenewal>,
    /// Stretches in which a producer instance made no attempt to send.
    pub producer_silences: Vec<crate::check::ProducerSilence>,
    /// Worker processes that exited with an error or were killed, with their stderr.
    pub dead_workers: Vec<crate::check::DeadWorker>,
    /// First examples of each anomaly.
    pub examples: BTreeMap<String, Vec<Example>>,
    /// Unavailability windows.
    pub unavailability: Vec<Window>,
    /// The longest partition window (produce or consume), ms.
    pub max_unavailable_ms: u64,
    /// Steps as they ran.
    pub steps: Vec<StepSpan>,
    /// Latency percentiles over the run.
    pub latency_ms: LatencySummary,
    /// Latency percentiles per step / phase.
    pub latency_by_step: BTreeMap<String, LatencySummary>,
    /// Each expectation.
    pub expectations: Vec<ExpectationResult>,
    /// Worker logs read.
    pub logs_read: u64,
    /// Logs that ended mid-event (a crash).
    pub logs_cut_short: Vec<String>,
    /// Where each of those ends: the byte the reader stopped at and the events before it
    /// (what follows went unchecked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub logs_cut_short_at: Vec<crate::check::LogCut>,
    /// The ZooKeeper smoke test per node: operations, failures, latency (when it ran).
    pub zookeeper: BTreeMap<String, crate::check::smoke::ServerSummary>,
    /// The end-of-run check of Kafka's metadata in ZooKeeper (when it ran).
    pub kafka_metadata: Option<crate::zk::metadata::MetadataCheck>,
    /// Topic configs, quotas, SCRAM users and ACLs a `create-metadata` step made, read back
    /// at the end (when a step made them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_survival: Option<crate::kafka::survival::SurvivalCheck>,
    /// Split brains inside a ZooKeeper ensemble, as the smoke test saw them.
    pub zookeeper_splits: Vec<Window>,
    /// Reassignments: per step (per topic for a broker migration), bytes moved, how long
    /// each partition took, and the windows each partition had while it moved.
    pub reassignments: Vec<crate::check::ReassignmentSection>,
    /// The `audit` steps' findings.
    pub audits: Vec<crate::check::AuditSection>,
    /// The `create-topics` steps: topics and partitions made, how long until all were led,
    /// what each Kafka process held after (files, memory maps, memory).
    pub created_topics: Vec<crate::check::CreatedTopicsSection>,
    /// The `wait-failover` steps: from a node's loss to an active controller and to every
    /// partition led again, and the client windows meanwhile.
    pub failovers: Vec<crate::check::FailoverSection>,
    /// Migration processes killed and resumed, workers' bootstrap switches.
    pub migration_events: Vec<String>,
    /// When the start-up's points were reached (cluster up, topics ready, workers
    /// ready), ms since the run's start.
    pub startup_ms: crate::check::StartupTimes,
    /// Workers on other machines (ssh backend): each host's clock against the
    /// coordinator's, the error bound of the times compared across them, and the windows
    /// too short or too near a step's start for that bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clocks: Option<crate::check::ClockReport>,
    /// MirrorMaker 2's copy to the target cluster, by record identity: what the target
    /// must hold (acked on the source up to the cut), what it holds, extra copies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<crate::check::mirror::MirrorCheck>,
    /// The second oracle (`[check] oracle`): Kafka's VerifiableProducer and
    /// VerifiableConsumer on their own topic, judged as kafkatest judges them — beside the
    /// harness's own counts, and whether the two agree on loss (`oracle_agrees`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oracle: Option<crate::check::oracle::OracleCheck>,
    /// Transactional workloads: transactions by outcome (`aborted_reads` and
    /// `non_atomic_reads` are among the anomalies).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transactions: Option<crate::check::TransactionTotals>,
    /// The exactly-once pipeline (`[workload] copy`): each record of its input copied
    /// once, never, or more, by record identity; its transactions by outcome.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub copy: Option<crate::check::copy::CopyCheck>,
    /// Clients moved to MirrorMaker's target (`mirror-switch`): how many, what the target
    /// acked and lost, what the group read again there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_over: Option<crate::check::SwitchOverTotals>,
    /// The run per time bucket: records sent, acked, failed, refused, consumed, and
    /// latency percentiles (what `report.html` charts).
    #[serde(skip_serializing_if = "crate::check::series::Series::is_empty")]
    pub series: crate::check::series::Series,
}

impl Report {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.verdict == Verdict::Pass
    }
}

/// Builds the report.
pub fn build(
    scenario: &Scenario,
    run_id: &str,
    run_start_unix_ms: u64,
    findings: Findings,
) -> Report {
    let expectations = judge(scenario, &findings);
    let verdict = if expectations.iter().all(|e| e.ok) {
        Verdict::Pass
    } else {
        Verdict::Fail
    };
    Report {
        scenario: scenario.name.clone(),
        run_id: run_id.into(),
        verdict,
        run_start_unix_ms,
        max_unavailable_ms: max_partition_window(&findings),
        producers: findings.producers,
        consumers: findings.consumers,
        final_read: findings.final_read,
        anomalies: findings.anomalies,
        lost_by_step: findings.lost_by_step,
        client_renewals: findings.client_renewals,
        producer_silences: findings.producer_silences,
        dead_workers: findings.dead_workers,
        examples: findings.examples,
        unavailability: findings.unavailability,
        steps: findings.steps,
        latency_ms: findings.latency_ms,
        latency_by_step: findings.latency_by_step,
        expectations,
        logs_read: findings.logs_read,
        logs_cut_short: findings.logs_cut_short,
        logs_cut_short_at: findings.logs_cut_short_at,
        zookeeper: findings.zookeeper,
        kafka_metadata: findings.kafka_metadata,
        metadata_survival: findings.metadata_survival,
        zookeeper_splits: findings.zookeeper_splits,
        reassignments: findings.reassignments,
        audits: findings.audits,
        created_topics: findings.created_topics,
        failovers: findings.failovers,
        migration_events: findings.migration_events,
        startup_ms: findings.startup_ms,
        clocks: findings.clocks,
        mirror: findings.mirror,
        oracle: findings.oracle,
        transactions: findings.transactions,
        copy: findings.copy,
        switch_over: findings.switch_over,
        series: findings.series,
    }
}

/// Writes `report.json`, `junit.xml` and `report.html` into the run directory.
pub fn write(run_dir: &Path, report: &Report) -> Result<(), HarnessError> {
    let json = serde_json::to_vec_pretty(report).map_err(anyhow::Error::from)?;
    std::fs::write(run_dir.join(crate::rundir::REPORT_JSON), json)?;
    std::fs::write(run_dir.join(crate::rundir::JUNIT_XML), junit::xml(report)?)?;
    // the settings section shows the scenario as run (absent: a directory without it)
    let scenario = std::fs::read_to_string(run_dir.join(crate::rundir::SCENARIO)).ok();
    std::fs::write(
        run_dir.join(crate::rundir::REPORT_HTML),
        html::render(report, scenario.as_deref()),
    )?;
    Ok(())
}
