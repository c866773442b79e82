//! Checking a run: log readers, the checker, windows, latency, attribution.
//!
//! [`check_run`] reads a run directory (also one cut short by a crash: whatever the logs
//! hold up to their last flush) and returns the [`Findings`]; the verdict against the
//! scenario's expectations is the report's job ([`crate::report`]).

pub mod attribution;
mod checker;
pub mod copy;
mod findings;
pub mod latency;
pub mod mirror;
pub mod online;
pub mod oracle;
pub mod series;
pub mod smoke;
pub mod windows;

use std::path::Path;

pub use attribution::{Attribution, StepSpan};
pub use checker::{check, CheckInput, ClockCorrection, TargetRead, EXAMPLES_KEPT};
pub use findings::{
    Anomalies, ClientRenewal, ClockReport, ConsumerTotals, DeadWorker, Example, FinalReadTotals,
    Findings, HostClockReport, LogCut, ProducerSilence, ProducerTotals, StartupTimes,
    SwitchOverTotals, TransactionTotals, Verdict, Window, WindowKind, WindowSubject,
};

use crate::error::HarnessError;
use crate::rundir::{self, timeline, RunRecord};
use crate::scenario::Scenario;

/// Checks the run in `run_dir` against nothing but its own logs.
pub fn check_run(run_dir: &Path, scenario: &Scenario) -> Result<Findings, HarnessError> {
    let record = RunRecord::load(run_dir)?;
    let events = timeline::read(run_dir).map_err(|e| {
        HarnessError::BadInput(format!("{}: {e}", run_dir.join(rundir::TIMELINE).display()))
    })?;
    let attribution = Attribution::from_timeline(
        &events,
        record.started_ms,
        scenario.check.attribution_grace_ms,
    );
    let input = CheckInput {
        t0_ms: record.started_ms,
        topics: record.topics.clone(),
        attribution,
        window_threshold_ms: scenario.check.window_threshold_ms,
        logs: rundir::worker_logs(run_dir),
        silence_threshold_ms: silence_threshold_ms(scenario),
        producers_expected: scenario.workload.producers,
        dead_workers: dead_workers(run_dir, &events, record.started_ms),
        clocks: ClockCorrection::default(),
        target_read: mirror::target_read(run_dir)?,
    };
    let clocks = crate::cluster::ssh::clock::Clocks::load(run_dir)?;
    let input = CheckInput {
        clocks: clocks
            .as_ref()
            .map(|c| clock_correction(run_dir, c, &input.logs))
            .unwrap_or_default(),
        ..input
    };
    let mut findings = check(&input)?;
    if let Some(c) = &clocks {
        findings.clocks = Some(clock_report(c, &findings));
    }
    add_smoke(&mut findings, run_dir, &record, &input, scenario)?;
    findings.kafka_metadata = read_metadata_check(run_dir)?;
    findings.metadata_survival = read_json(&run_dir.join(rundir::METADATA_SURVIVAL))?;
    add_reassignments(&mut findings, &events, record.started_ms);
    findings.mirror = mirror::check_mirror(
        run_dir,
        record.started_ms,
        &record.topics,
        &input.logs,
        &input.attribution,
    )?;
    findings.oracle = oracle::check_oracle(run_dir)?;
    findings.copy = copy::check_copy(run_dir, &record.topics, &input.logs)?;
    Ok(findings)
}

/// Which clock each log and each producer instance ran on, from `clocks.json` and the
/// workers' configs (a worker's producer ids: its first instance id and its instances).
fn clock_correction(
    run_dir: &Path,
    clocks: &crate::cluster::ssh::clock::Clocks,
    logs: &[std::path::PathBuf],
) -> ClockCorrection {
    let mut out = ClockCorrection::default();
    for log in logs {
        let Some(worker) = log.file_stem().map(|s| s.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(clock) = clocks.of_worker(&worker) else {
            continue;
        };
        out.by_log.insert(log.clone(), clock.clone());
        let cfg = std::fs::read_to_string(run_dir.join("workers").join(format!("{worker}.json")))
            .ok()
            .and_then(|t| serde_json::from_str::<workers::WorkerConfig>(&t).ok());
        if let Some(cfg) = cfg.filter(|c| c.role == workers::Role::Produce) {
            for id in cfg.first_instance_id..cfg.first_instance_id + cfg.instances {
                out.by_producer.insert(id, clock.clone());
            }
        }
    }
    out
}

/// The clocks section of the report: offsets, the bound, and the windows it blurs.
fn clock_report(clocks: &crate::cluster::ssh::clock::Clocks, f: &Findings) -> ClockReport {
    let ms = |us: i64| us as f64 / 1000.0;
    let bound_us = clocks.bound_us();
    let bound_ms = bound_us.div_ceil(1000);
    let uncertain_windows = f
        .unavailability
        .iter()
        .filter(|w| {
            w.duration_ms <= 2 * bound_ms
                || f.steps
                    .iter()
                    .any(|s| w.start_ms.abs_diff(s.start_ms) <= bound_ms)
        })
        .map(|w| {
            format!(
                "{} {} {} ms at t+{:.3}s (under `{}`)",
                w.partition,
                w.kind,
                w.duration_ms,
                w.start_ms as f64 / 1000.0,
                w.step
            )
        })
        .collect();
    ClockReport {
        hosts: clocks
            .hosts
            .iter()
            .map(|h| HostClockReport {
                host: h.host.to_string(),
                offset_start_ms: ms(h.start.offset_us),
                offset_end_ms: h.end.map(|e| ms(e.offset_us)),
                bound_ms: ms(h.bound_us() as i64),
            })
            .collect(),
        error_bound_ms: ms(bound_us as i64),
        uncertain_windows,
    }
}

/// How long a producer instance may make no attempt to send before it counts as silent:
/// five window thresholds, at least 5 s, and at least three of its send intervals. A live
/// producer tries at its rate, and every 10–100 ms while the client refuses; only a stuck
/// or dead one stays quiet that long.
pub fn silence_threshold_ms(scenario: &Scenario) -> u64 {
    let interval_ms = scenario
        .workload
        .producer
        .rate
        .map_or(0.0, |r| 1000.0 / r.max(0.001));
    (5 * scenario.check.window_threshold_ms)
        .max(5_000)
        .max((3.0 * interval_ms).ceil() as u64)
}

/// How many of the last lines of a dead worker's stderr the report keeps.
pub const STDERR_LINES_KEPT: usize = 20;

/// The workers that ended badly, as the run recorded them, with their stderr's last lines.
fn dead_workers(
    run_dir: &Path,
    events: &[timeline::TimelineEvent],
    t0_ms: u64,
) -> Vec<findings::DeadWorker> {
    let mut out = Vec::new();
    for e in events {
        if let timeline::TimelineEvent::WorkerFailed {
            t_ms,
            worker,
            how,
            stderr,
        } = e
        {
            let text = std::fs::read_to_string(run_dir.join(stderr)).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(STDERR_LINES_KEPT)..].join("\n");
            out.push(findings::DeadWorker {
                worker: worker.clone(),
                how: how.clone(),
                seen_ms: t_ms.saturating_sub(t0_ms),
                stderr: tail,
            });
        }
    }
    out
}

/// One partition's move in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MovedPartitionSection {
    /// `topic/partition`.
    pub partition: String,
    /// Replicas before.
    pub from: Vec<i32>,
    /// Replicas after.
    pub to: Vec<i32>,
    /// How long it took, ms.
    pub took_ms: u64,
    /// Bytes copied to the new replicas.
    pub bytes: u64,
    /// Produce/consume windows of this partition while it moved.
    pub windows: usize,
    /// The longest of them, ms.
    pub max_window_ms: u64,
}

/// A reassignment in the report (a `reassign`/`drain` step, or one topic of a
/// `migrate-brokers` step).
#[derive(Debug, Clone, serde::Serialize)]
pub struct ReassignmentSection {
    /// The step.
    pub step: String,
    /// The topic, for a broker migration's per-topic move.
    pub topic: Option<String>,
    /// Start, ms since the run started.
    pub start_ms: u64,
    /// End, ms since the run started.
    pub end_ms: u64,
    /// Throttle, bytes/s.
    pub throttle: Option<u64>,
    /// Bytes copied in all.
    pub bytes: u64,
    /// Each partition.
    pub partitions: Vec<MovedPartitionSection>,
    /// What the plan kept as it was.
    pub warnings: Vec<String>,
}

/// A `create-topics` step in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CreatedTopicsSection {
    /// The step.
    pub step: String,
    /// What it made, how long it took, what the nodes held after it.
    #[serde(flatten)]
    pub created: timeline::CreatedTopics,
}

/// A `wait-failover` step in the report: how long the cluster took to have an active
/// controller and every partition led again after a node was lost, and what the clients
/// saw meanwhile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FailoverSection {
    /// The step.
    pub step: String,
    /// When the node was lost, ms since the run started (the measure counts from it).
    pub at_ms: u64,
    /// The node lost, the controller after it, the times, the partitions.
    #[serde(flatten)]
    pub measure: timeline::FailoverMeasure,
    /// Client windows (produce or consume, any partition) open between the loss and every
    /// partition led.
    pub windows: usize,
    /// The longest of them, ms.
    pub max_window_ms: u64,
}

/// An `audit` step in the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AuditSection {
    /// The step.
    pub step: String,
    /// The replica count asked for.
    pub min_replicas: u32,
    /// Partitions short of replicas or in-sync replicas.
    pub findings: Vec<timeline::AuditFinding>,
}

/// The reassignment, audit and migration sections, from the timeline; each moved
/// partition with the windows it had while it moved.
fn add_reassignments(f: &mut Findings, events: &[timeline::TimelineEvent], t0_ms: u64) {
    use timeline::TimelineEvent as E;
    let rel = |t: u64| t.saturating_sub(t0_ms);
    for e in events {
        match e {
            E::Reassignment {
                step,
                topic,
                report,
                ..
            } => {
                let start = rel(report.started_ms);
                let partitions = report
                    .partitions
                    .iter()
                    .map(|p| {
                        let name = format!("{}/{}", p.topic, p.partition);
                        let during: Vec<&Window> = f
                            .unavailability
                            .iter()
                            .filter(|w| {
                                w.partition.to_string() == name
                                    && w.start_ms <= start + p.took_ms
                                    && w.end_ms >= start
                            })
                            .collect();
                        MovedPartitionSection {
                            partition: name,
                            from: p.from.clone(),
                            to: p.to.clone(),
                            took_ms: p.took_ms,
                            bytes: p.bytes,
                            windows: during.len(),
                            max_window_ms: during.iter().map(|w| w.duration_ms).max().unwrap_or(0),
                        }
                    })
                    .collect();
                f.reassignments.push(ReassignmentSection {
                    step: step.clone(),
                    topic: topic.clone(),
                    start_ms: start,
                    end_ms: rel(report.ended_ms),
                    throttle: report.throttle,
                    bytes: report.bytes,
                    partitions,
                    warnings: report.warnings.clone(),
                });
            }
            E::Audit {
                step,
                min_replicas,
                findings,
                ..
            } => f.audits.push(AuditSection {
                step: step.clone(),
                min_replicas: *min_replicas,
                findings: findings.clone(),
            }),
            E::TopicsCreated { step, created, .. } => f.created_topics.push(CreatedTopicsSection {
                step: step.clone(),
                created: created.clone(),
            }),
            E::Failover {
                step,
                lost_at_ms,
                measure,
                ..
            } => {
                let at = rel(*lost_at_ms);
                let during: Vec<&Window> = f
                    .unavailability
                    .iter()
                    .filter(|w| matches!(w.kind, WindowKind::Produce | WindowKind::Consume))
                    .filter(|w| w.start_ms <= at + measure.leaders_ms && w.end_ms >= at)
                    .collect();
                f.failovers.push(FailoverSection {
                    step: step.clone(),
                    at_ms: at,
                    measure: measure.clone(),
                    windows: during.len(),
                    max_window_ms: during.iter().map(|w| w.duration_ms).max().unwrap_or(0),
                });
            }
            E::Migration { t_ms, step, what } => f
                .migration_events
                .push(format!("{} ms: {step}: {what}", rel(*t_ms))),
            E::Node {
                t_ms,
                step,
                node,
                what,
            } => f
                .migration_events
                .push(format!("{} ms: {step}: {node}: {what}", rel(*t_ms))),
            E::Ready { t_ms, what } => {
                let at = Some(rel(*t_ms));
                match what.as_str() {
                    "cluster" => f.startup_ms.cluster_up = at,
                    "topics" => f.startup_ms.topics_ready = at,
                    "workers" => f.startup_ms.workers_ready = at,
                    _ => {}
                }
            }
            E::BootstrapSwitch { t_ms, bootstrap } => f.migration_events.push(format!(
                "{} ms: workers switched to {bootstrap}",
                rel(*t_ms)
            )),
            _ => {}
        }
    }
}

/// The smoke test's cycle interval, ms (`harness zk smoke --interval`, as the run starts it).
pub const SMOKE_INTERVAL_MS: u32 = 200;

/// A server showing another member's heartbeat this much older than that member's last
/// write is reading from another quorum.
pub const SPLIT_STALE_MS: u64 = 5_000;

fn read_metadata_check(
    run_dir: &Path,
) -> Result<Option<crate::zk::metadata::MetadataCheck>, HarnessError> {
    read_json(&run_dir.join(rundir::METADATA_CHECK))
}

/// A JSON file of the run directory the harness wrote, `None` when absent.
pub(super) fn read_json<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Option<T>, HarnessError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| HarnessError::BadInput(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Adds the ZooKeeper smoke test's windows — per server (partition `zk:NODE`, kind
/// `zookeeper`) and per ensemble (partition `ensemble:NAME`, kind `ensemble`) — and the
/// per-node summary, when the run has a smoke log.
fn add_smoke(
    f: &mut Findings,
    run_dir: &Path,
    record: &RunRecord,
    input: &CheckInput,
    scenario: &Scenario,
) -> Result<(), HarnessError> {
    let path = run_dir.join(rundir::SMOKE_LOG);
    if !path.exists() {
        return Ok(());
    }
    let probes = smoke::read_log(&path)
        .map_err(|e| HarnessError::BadInput(format!("{}: {e}", path.display())))?;
    let analysis = smoke::analyse(&probes, record.started_ms);
    let name = |server: &str| {
        let host = server.rsplit_once(':').map(|(h, _)| h).unwrap_or(server);
        record
            .hosts
            .iter()
            .find(|h| h.name == server)
            .or_else(|| record.hosts.iter().find(|h| h.address == host))
            .map(|h| h.name.clone())
            .unwrap_or_else(|| server.to_string())
    };
    // A window starts at the last success; the probe notices at its next cycle, up to an
    // interval later: blame the step running then (within the window).
    let blame = |start: u32, end: u32| {
        let at = (start + SMOKE_INTERVAL_MS).min(end.max(start));
        input.attribution.label_at(at as u64).to_string()
    };
    let window = |partition: WindowSubject, kind: WindowKind, w: &windows::Span| Window {
        partition,
        kind,
        start_ms: w.start as u64,
        end_ms: w.end as u64,
        duration_ms: (w.end - w.start) as u64,
        step: blame(w.start, w.end),
        open: w.open,
    };
    for (server, w) in smoke::windows(&analysis, input.window_threshold_ms as u32) {
        f.unavailability.push(window(
            WindowSubject::ZooKeeper(name(&server)),
            WindowKind::ZooKeeper,
            &w,
        ));
    }
    for (ensemble, members) in &scenario.cluster.ensembles {
        let servers: Vec<String> = match &record.zookeeper {
            // a watch: the one ensemble is the servers it was given
            Some(connect) if members.is_empty() => crate::zk::split_connect(connect).0,
            _ => members
                .iter()
                .filter_map(|m| record.hosts.iter().find(|h| &h.name == m))
                .map(|h| format!("{}:{}", h.address, crate::cluster::ZK_CLIENT_PORT))
                .collect(),
        };
        for w in smoke::group_windows(&analysis, &servers, input.window_threshold_ms as u32) {
            f.unavailability.push(window(
                WindowSubject::Ensemble(ensemble.clone()),
                WindowKind::Ensemble,
                &w,
            ));
        }
        for d in smoke::divergence(&probes, &servers, record.started_ms, SPLIT_STALE_MS) {
            let (a, b) = (name(&d.server), name(&d.other));
            f.zookeeper_splits.push(Window {
                partition: WindowSubject::Ensemble(ensemble.clone()),
                kind: WindowKind::Split(a, b),
                start_ms: d.start_ms,
                end_ms: d.end_ms,
                duration_ms: d.end_ms - d.start_ms,
                step: input
                    .attribution
                    .label_at(d.start_ms.saturating_sub(SPLIT_STALE_MS))
                    .to_string(),
                open: false,
            });
        }
    }
    // report order: by start, then kind and subject as report.json spells them
    f.unavailability
        .sort_by_cached_key(|w| (w.start_ms, w.kind.to_string(), w.partition.to_string()));
    f.zookeeper = analysis
        .into_iter()
        .map(|(server, (summary, _))| (name(&server), summary))
        .collect();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use timeline::{FailoverMeasure, TimelineEvent};

    fn window(kind: WindowKind, start_ms: u64, end_ms: u64) -> Window {
        Window {
            partition: WindowSubject::Partition("orders/0".into()),
            kind,
            start_ms,
            end_ms,
            duration_ms: end_ms - start_ms,
            step: String::new(),
            open: false,
        }
    }

    #[test]
    fn a_failover_section_counts_the_client_windows_between_the_loss_and_all_led() {
        let t0 = 1_000_000;
        let mut f = Findings {
            unavailability: vec![
                window(WindowKind::Produce, 500, 900),       // before the loss
                window(WindowKind::Produce, 900, 1_200),     // open at the loss
                window(WindowKind::Consume, 5_000, 8_000),   // during
                window(WindowKind::ZooKeeper, 2_000, 3_000), // not a client's
                window(WindowKind::Produce, 9_500, 9_600),   // after every partition was led
            ],
            ..Findings::default()
        };
        let measure = FailoverMeasure {
            lost: "kafka1".into(),
            how: "kill".into(),
            controller: "kafka2".into(),
            controller_ms: 6_000,
            leaders_ms: 8_000,
            partitions: 1_006,
            unservable: 0,
            leaderless_max: 336,
            looks: 80,
        };
        let events = vec![TimelineEvent::Failover {
            t_ms: t0 + 9_000,
            step: "failover".into(),
            lost_at_ms: t0 + 1_000,
            measure,
        }];
        add_reassignments(&mut f, &events, t0);
        let s = &f.failovers[0];
        let m = &s.measure;
        assert_eq!(
            (s.at_ms, m.controller_ms, m.leaders_ms),
            (1_000, 6_000, 8_000)
        );
        assert_eq!((s.windows, s.max_window_ms), (2, 3_000));
        assert_eq!(
            (m.lost.as_str(), m.controller.as_str()),
            ("kafka1", "kafka2")
        );
    }
}
