//! Reports: the verdict against `[expect]`, `report.json`, `junit.xml` and the terminal
//! summary.
//!
//! `report.json` is the stable interface for CI: see the README's "Report" section. Times
//! in it (`start_ms`, `end_ms` of steps and windows) are milliseconds since the run start,
//! `run_start_unix_ms` anchors them.

use std::collections::BTreeMap;
use std::path::Path;

use quick_junit::{NonSuccessKind, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::check::latency::LatencySummary;
use crate::check::{
    Anomalies, Example, FinalReadTotals, Findings, ProducerTotals, StepSpan, Window,
};
use crate::error::HarnessError;
use crate::scenario::{Bound, Scenario};

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
    pub verdict: String,
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
    /// The ZooKeeper smoke test per node: operations, failures, latency (when it ran).
    pub zookeeper: BTreeMap<String, crate::check::smoke::ServerSummary>,
    /// The end-of-run check of Kafka's metadata in ZooKeeper (when it ran).
    pub kafka_metadata: Option<crate::zk::metadata::MetadataCheck>,
    /// Split brains inside a ZooKeeper ensemble, as the smoke test saw them.
    pub zookeeper_splits: Vec<Window>,
    /// Reassignments: per step (per topic for a broker migration), bytes moved, how long
    /// each partition took, and the windows each partition had while it moved.
    pub reassignments: Vec<crate::check::ReassignmentSection>,
    /// The `audit` steps' findings.
    pub audits: Vec<crate::check::AuditSection>,
    /// Migration processes killed and resumed, workers' bootstrap switches.
    pub migration_events: Vec<String>,
}

impl Report {
    /// True when every expectation held.
    pub fn passed(&self) -> bool {
        self.verdict == "pass"
    }
}

fn bound_check(name: &str, bound: Bound, actual: u64) -> ExpectationResult {
    ExpectationResult {
        name: name.into(),
        expected: bound.to_string(),
        actual: actual.to_string(),
        ok: bound.holds(actual),
    }
}

/// Judges the findings against the scenario's expectations.
pub fn judge(scenario: &Scenario, findings: &Findings) -> Vec<ExpectationResult> {
    let e = &scenario.expect;
    let a = &findings.anomalies;
    let mut out = vec![
        bound_check("lost", e.lost, a.lost),
        bound_check("reordered", e.reordered, a.reordered),
        bound_check(
            "inconsistent_offsets",
            e.inconsistent_offsets,
            a.inconsistent_offset,
        ),
        bound_check("unexpected", e.unexpected, a.unexpected),
        bound_check("poll_gaps", e.poll_gaps, a.poll_gap),
        bound_check("poll_regressions", e.poll_regressions, a.poll_regression),
        bound_check("unconsumed", e.unconsumed, a.unconsumed),
    ];
    // Duplicates: one bound on all of them, or, when the scenario bounds those a client
    // epoch bump explains on their own, the other bound on the rest.
    match e.duplicates_after_epoch_bump {
        None => out.insert(1, bound_check("duplicates", e.duplicates, a.duplicate)),
        Some(after_bump) => {
            out.insert(
                1,
                bound_check(
                    "duplicates (no epoch bump explains)",
                    e.duplicates,
                    a.duplicate.saturating_sub(a.duplicate_after_epoch_bump),
                ),
            );
            out.insert(
                2,
                bound_check(
                    "duplicates_after_epoch_bump",
                    after_bump,
                    a.duplicate_after_epoch_bump,
                ),
            );
        }
    }
    let unreadable = if findings.final_read.ran {
        findings.final_read.incomplete.len() as u64
    } else {
        findings.final_read.partitions
    };
    let mut unread = bound_check("unreadable_partitions", e.unreadable_partitions, unreadable);
    if !findings.final_read.ran {
        unread.actual = format!("{unreadable} (no final read)");
    }
    out.push(unread);
    out.push(ExpectationResult {
        name: "min_acked".into(),
        expected: format!(">= {}", e.min_acked),
        actual: findings.producers.acked.to_string(),
        ok: findings.producers.acked >= e.min_acked,
    });
    if let Some(step) = &e.lost_step {
        let others: Vec<String> = findings
            .lost_by_step
            .iter()
            .filter(|(k, _)| *k != step)
            .map(|(k, v)| format!("{v} to `{k}`"))
            .collect();
        out.push(ExpectationResult {
            name: "lost_step".into(),
            expected: format!("every lost record attributed to `{step}`"),
            actual: if findings.lost_by_step.is_empty() {
                "nothing lost".into()
            } else {
                findings
                    .lost_by_step
                    .iter()
                    .map(|(k, v)| format!("{v} to `{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
            ok: others.is_empty() && !findings.lost_by_step.is_empty(),
        });
    }
    // Windows: a step with its own bound is judged by it; every other window by the
    // scenario-wide bound ("no window longer than N outside the partition step").
    let own_bound = |step: &str| e.per_step.get(step).and_then(|se| se.max_unavailable_ms);
    if let Some(max) = e.max_unavailable_ms {
        let longest = partition_windows(findings)
            .filter(|w| own_bound(&w.step).is_none())
            .map(|w| w.duration_ms)
            .max()
            .unwrap_or(0);
        let name = if e
            .per_step
            .values()
            .any(|se| se.max_unavailable_ms.is_some())
        {
            "max_unavailable_ms (other steps)"
        } else {
            "max_unavailable_ms"
        };
        out.push(ExpectationResult {
            name: name.into(),
            expected: format!("<= {max}"),
            actual: longest.to_string(),
            ok: longest <= max,
        });
    }
    for (step, se) in &e.per_step {
        if let Some(max) = se.max_unavailable_ms {
            let longest = partition_windows(findings)
                .filter(|w| &w.step == step)
                .map(|w| w.duration_ms)
                .max()
                .unwrap_or(0);
            out.push(ExpectationResult {
                name: format!("max_unavailable_ms in `{step}`"),
                expected: format!("<= {max}"),
                actual: longest.to_string(),
                ok: longest <= max,
            });
        }
        if let Some(bound) = se.lost {
            let lost = findings.lost_by_step.get(step).copied().unwrap_or(0);
            out.push(bound_check(&format!("lost in `{step}`"), bound, lost));
        }
    }
    // ZooKeeper ensembles as the smoke test saw them
    for (name, ee) in &e.ensembles {
        let part = format!("ensemble:{name}");
        let ws: Vec<&Window> = findings
            .unavailability
            .iter()
            .filter(|w| w.partition == part)
            .collect();
        let describe = |ws: &[&Window]| {
            if ws.is_empty() {
                "no window".to_string()
            } else {
                ws.iter()
                    .map(|w| {
                        format!(
                            "{} ms in `{}`{}",
                            w.duration_ms,
                            w.step,
                            if w.open { " (never recovered)" } else { "" }
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            }
        };
        if let Some(max) = ee.max_unavailable_ms {
            let others: Vec<&Window> = ws
                .iter()
                .filter(|w| !ee.per_step.contains_key(&w.step))
                .copied()
                .collect();
            let longest = others.iter().map(|w| w.duration_ms).max().unwrap_or(0);
            out.push(ExpectationResult {
                name: if ee.per_step.is_empty() {
                    format!("ensemble `{name}` max_unavailable_ms")
                } else {
                    format!("ensemble `{name}` max_unavailable_ms (other steps)")
                },
                expected: format!("<= {max}"),
                actual: format!("{longest} ({})", describe(&others)),
                ok: longest <= max,
            });
        }
        for (step, max) in &ee.per_step {
            let mine: Vec<&Window> = ws.iter().filter(|w| &w.step == step).copied().collect();
            let longest = mine.iter().map(|w| w.duration_ms).max().unwrap_or(0);
            out.push(ExpectationResult {
                name: format!("ensemble `{name}` max_unavailable_ms in `{step}`"),
                expected: format!("<= {max}"),
                actual: format!("{longest} ({})", describe(&mine)),
                ok: longest <= *max,
            });
        }
        if let Some(bound) = ee.windows {
            let mut r = bound_check(
                &format!("ensemble `{name}` windows"),
                bound,
                ws.len() as u64,
            );
            r.actual = format!("{} ({})", ws.len(), describe(&ws));
            out.push(r);
        }
    }
    // One quorum per ensemble, always, when the smoke test ran
    if scenario.check.zookeeper_smoke {
        for (name, members) in &scenario.cluster.ensembles {
            if members.len() < 2 {
                continue;
            }
            let part = format!("ensemble:{name}");
            let splits: Vec<String> = findings
                .zookeeper_splits
                .iter()
                .filter(|w| w.partition == part)
                .map(|w| format!("{} from t={}ms in `{}`", w.kind, w.start_ms, w.step))
                .collect();
            out.push(ExpectationResult {
                name: format!("ensemble `{name}` one quorum"),
                expected: "every member sees the others' writes".into(),
                actual: if splits.is_empty() {
                    "no split brain seen".into()
                } else {
                    splits.join("; ")
                },
                ok: splits.is_empty(),
            });
        }
    }
    if e.kafka_metadata_intact {
        let (actual, ok) = match &findings.kafka_metadata {
            None => (
                "not checked (the run ended before the end-of-run check)".to_string(),
                false,
            ),
            Some(m) if m.error.is_some() => (
                format!("check failed: {}", m.error.as_deref().unwrap_or("")),
                false,
            ),
            Some(m) if m.differences.is_empty() => (
                format!(
                    "intact in {}: {} topics, {} partitions, brokers {:?}, controller {}",
                    m.zookeeper, m.topics, m.partitions, m.registered_brokers, m.controller
                ),
                true,
            ),
            Some(m) => (
                format!(
                    "{} difference(s) in {}: {}",
                    m.differences.len(),
                    m.zookeeper,
                    m.differences
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
                false,
            ),
        };
        out.push(ExpectationResult {
            name: "kafka_metadata".into(),
            expected: "Kafka's znodes match what the brokers report".into(),
            actual,
            ok,
        });
    }
    // Every step must have run and succeeded: a failed step is a procedure the cluster
    // did not survive (or a harness problem the step error names).
    let ran: Vec<&StepSpan> = findings.steps.iter().collect();
    let failed: Vec<String> = ran
        .iter()
        .filter(|s| s.ok != Some(true))
        .map(|s| {
            format!(
                "`{}`: {}",
                s.name,
                s.error.as_deref().unwrap_or("did not finish")
            )
        })
        .collect();
    let missing = scenario.steps.len().saturating_sub(ran.len());
    out.push(ExpectationResult {
        name: "steps".into(),
        expected: format!("all {} steps succeed", scenario.steps.len()),
        actual: if failed.is_empty() && missing == 0 {
            format!("{} succeeded", ran.len())
        } else {
            let failed = if failed.is_empty() {
                "none failed".to_string()
            } else {
                failed.join("; ")
            };
            format!("{failed}; {missing} not run")
        },
        ok: failed.is_empty() && missing == 0,
    });
    out
}

/// True for a Kafka window (produce or consume) of a single partition.
fn is_partition_window(w: &Window) -> bool {
    w.partition != "cluster" && (w.kind == "produce" || w.kind == "consume")
}

/// Windows of single partitions (not the cluster-wide ones, not ZooKeeper's).
fn partition_windows(f: &Findings) -> impl Iterator<Item = &Window> {
    f.unavailability.iter().filter(|w| is_partition_window(w))
}

/// The longest window on any single partition.
pub fn max_partition_window(f: &Findings) -> u64 {
    partition_windows(f)
        .map(|w| w.duration_ms)
        .max()
        .unwrap_or(0)
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
        "pass"
    } else {
        "fail"
    };
    Report {
        scenario: scenario.name.clone(),
        run_id: run_id.into(),
        verdict: verdict.into(),
        run_start_unix_ms,
        max_unavailable_ms: max_partition_window(&findings),
        producers: findings.producers,
        consumers: findings.consumers,
        final_read: findings.final_read,
        anomalies: findings.anomalies,
        lost_by_step: findings.lost_by_step,
        client_renewals: findings.client_renewals,
        examples: findings.examples,
        unavailability: findings.unavailability,
        steps: findings.steps,
        latency_ms: findings.latency_ms,
        latency_by_step: findings.latency_by_step,
        expectations,
        logs_read: findings.logs_read,
        logs_cut_short: findings.logs_cut_short,
        zookeeper: findings.zookeeper,
        kafka_metadata: findings.kafka_metadata,
        zookeeper_splits: findings.zookeeper_splits,
        reassignments: findings.reassignments,
        audits: findings.audits,
        migration_events: findings.migration_events,
    }
}

/// Writes `report.json` and `junit.xml` into the run directory.
pub fn write(run_dir: &Path, report: &Report) -> Result<(), HarnessError> {
    let json = serde_json::to_vec_pretty(report).map_err(anyhow::Error::from)?;
    std::fs::write(run_dir.join("report.json"), json)?;
    let mut suite = TestSuite::new(format!("scenario {}", report.scenario));
    for e in &report.expectations {
        let status = if e.ok {
            TestCaseStatus::success()
        } else {
            let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
            s.set_message(format!("expected {}, got {}", e.expected, e.actual));
            s
        };
        let mut tc = TestCase::new(e.name.clone(), status);
        tc.set_classname(format!("kmh.{}", report.scenario));
        suite.add_test_case(tc);
    }
    let mut junit = quick_junit::Report::new("kafka-migration-harness");
    junit.add_test_suite(suite);
    let xml = junit
        .to_string()
        .map_err(|e| HarnessError::Other(anyhow::anyhow!("junit: {e}")))?;
    std::fs::write(run_dir.join("junit.xml"), xml)?;
    Ok(())
}

/// The terminal summary.
pub fn summary(report: &Report, run_dir: &Path) -> String {
    let p = &report.producers;
    let a = &report.anomalies;
    let mut s = String::new();
    s.push_str(&format!(
        "\n== {} — run {}\n",
        report.scenario, report.run_id
    ));
    s.push_str(&format!(
        "producers: sent {} acked {} failed {} indeterminate {} no-outcome {}\n",
        p.sent, p.acked, p.failed, p.indeterminate, p.no_outcome
    ));
    s.push_str(&format!(
        "consumers: received {} (distinct {}); final read {}/{} partitions, {} records\n",
        report.consumers.received,
        report.consumers.distinct,
        report.final_read.complete,
        report.final_read.partitions,
        report.final_read.records
    ));
    s.push_str(&format!(
        "anomalies: lost {} (read before loss {}) unverified {} duplicate {} reordered {} inconsistent-offset {} unexpected {} poll-gap {} poll-regression {} unconsumed {}\n",
        a.lost, a.lost_read_before, a.unverified, a.duplicate, a.reordered, a.inconsistent_offset, a.unexpected, a.poll_gap, a.poll_regression, a.unconsumed
    ));
    for (step, n) in &report.lost_by_step {
        s.push_str(&format!("  lost {n} in step `{step}`\n"));
    }
    if a.duplicate_after_epoch_bump > 0 {
        s.push_str(&format!(
            "  {} of the {} duplicates were in flight when their producer's client bumped its \
             epoch (re-sent with new sequence numbers: librdkafka#4953)\n",
            a.duplicate_after_epoch_bump, a.duplicate
        ));
    }
    for r in report.client_renewals.iter().take(10) {
        s.push_str(&format!(
            "  producer {} {} at t={}ms in `{}` after {}, {} record(s) in flight\n",
            r.producer,
            if r.kind == "epoch bump" {
                format!("bumped its epoch to {}", r.epoch)
            } else {
                format!("took producer id {}", r.producer_id)
            },
            r.at_ms,
            r.step,
            r.reason,
            r.in_flight
        ));
    }
    if report.client_renewals.len() > 10 {
        s.push_str(&format!(
            "  … {} more client renewals in report.json\n",
            report.client_renewals.len() - 10
        ));
    }
    let windows: Vec<&Window> = report
        .unavailability
        .iter()
        .filter(|w| is_partition_window(w))
        .collect();
    s.push_str(&format!(
        "unavailability: {} partition windows, longest {} ms\n",
        windows.len(),
        report.max_unavailable_ms
    ));
    for w in report
        .unavailability
        .iter()
        .filter(|w| w.partition == "cluster")
        .take(10)
    {
        s.push_str(&format!(
            "  cluster {} window {} ms at t={}ms in `{}`\n",
            w.kind, w.duration_ms, w.start_ms, w.step
        ));
    }
    s.push_str(&format!(
        "latency: ack p50 {} ms p99 {} ms max {} ms; e2e p50 {} ms p99 {} ms\n",
        report.latency_ms.ack.p50,
        report.latency_ms.ack.p99,
        report.latency_ms.ack.max,
        report.latency_ms.e2e.p50,
        report.latency_ms.e2e.p99
    ));
    if !report.zookeeper.is_empty() {
        let per: Vec<String> = report
            .zookeeper
            .iter()
            .map(|(n, z)| {
                format!(
                    "{n} {}/{} failed, p99 {} ms",
                    z.failures, z.operations, z.p99_ms
                )
            })
            .collect();
        s.push_str(&format!("zookeeper smoke test: {}\n", per.join("; ")));
        for w in report
            .unavailability
            .iter()
            .filter(|w| w.kind == "ensemble" || w.kind == "zookeeper")
            .take(20)
        {
            s.push_str(&format!(
                "  {} unavailable {} ms at t={}ms in `{}`{}\n",
                w.partition,
                w.duration_ms,
                w.start_ms,
                w.step,
                if w.open { " (never recovered)" } else { "" }
            ));
        }
    }
    for w in report.zookeeper_splits.iter().take(10) {
        s.push_str(&format!(
            "  {} SPLIT BRAIN {} from t={}ms to t={}ms in `{}`\n",
            w.partition, w.kind, w.start_ms, w.end_ms, w.step
        ));
    }
    if let Some(m) = &report.kafka_metadata {
        if m.intact() {
            s.push_str(&format!(
                "kafka metadata in {}: intact ({} topics, {} partitions, controller {})\n",
                m.zookeeper, m.topics, m.partitions, m.controller
            ));
        } else {
            s.push_str(&format!(
                "kafka metadata in {}: {}\n",
                m.zookeeper,
                m.error
                    .clone()
                    .unwrap_or_else(|| format!("{} difference(s)", m.differences.len()))
            ));
            for d in m.differences.iter().take(10) {
                s.push_str(&format!("  {d}\n"));
            }
        }
    }
    for a in &report.audits {
        s.push_str(&format!(
            "audit `{}`: {} partition(s) with fewer than {} replicas or under min ISR{}\n",
            a.step,
            a.findings.len(),
            a.min_replicas,
            if a.findings.is_empty() {
                String::new()
            } else {
                format!(
                    " ({})",
                    a.findings
                        .iter()
                        .take(6)
                        .map(|f| format!("{}/{} {}", f.topic, f.partition, f.problems.join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            }
        ));
    }
    for r in &report.reassignments {
        let slowest = r.partitions.iter().map(|p| p.took_ms).max().unwrap_or(0);
        let windows: usize = r.partitions.iter().map(|p| p.windows).sum();
        s.push_str(&format!(
            "reassignment `{}`{}: {} partition(s), {} bytes copied, {} ms (slowest partition {} ms){}, {} window(s) on moving partitions\n",
            r.step,
            r.topic.as_deref().map(|t| format!(" [{t}]")).unwrap_or_default(),
            r.partitions.len(),
            r.bytes,
            r.end_ms.saturating_sub(r.start_ms),
            slowest,
            r.throttle.map(|t| format!(", throttle {t} B/s")).unwrap_or_default(),
            windows
        ));
    }
    for m in &report.migration_events {
        s.push_str(&format!("migration: {m}\n"));
    }
    for e in report.expectations.iter().filter(|e| !e.ok) {
        s.push_str(&format!(
            "  FAILED {}: expected {}, got {}\n",
            e.name, e.expected, e.actual
        ));
    }
    s.push_str(&format!(
        "verdict: {}  (report: {})\n",
        report.verdict.to_uppercase(),
        run_dir.join("report.json").display()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCENARIO: &str = r#"name = "t"
[cluster]
kafka = "3.9"
zookeeper = ["zk1"]
brokers = ["kafka1"]
[workload]
topics = [{ name = "orders", partitions = 1, replication = 1 }]
producers = 1
consumers = 0
rate = 10
acks = "all"
idempotence = true
"#;

    fn results(expect: &str, duplicate: u64, after_bump: u64) -> Vec<(String, bool)> {
        let text = format!("{SCENARIO}[expect]\n{expect}");
        let scenario = crate::scenario::parse(Path::new("t.toml"), &text).unwrap();
        let mut findings = Findings::default();
        findings.anomalies.duplicate = duplicate;
        findings.anomalies.duplicate_after_epoch_bump = after_bump;
        judge(&scenario, &findings)
            .into_iter()
            .filter(|r| r.name.starts_with("duplicates"))
            .map(|r| (r.name, r.ok))
            .collect()
    }

    #[test]
    fn duplicates_bound_them_all_unless_those_after_an_epoch_bump_have_their_own_bound() {
        // one bound on every duplicate, explained or not
        assert_eq!(
            results("duplicates = 0\n", 1, 1),
            [("duplicates".to_string(), false)]
        );
        // a separate bound for those an epoch bump explains: the rest must still be 0
        let split = "duplicates = 0\nduplicates_after_epoch_bump = \"any\"\n";
        assert_eq!(
            results(split, 3, 3),
            [
                ("duplicates (no epoch bump explains)".to_string(), true),
                ("duplicates_after_epoch_bump".to_string(), true)
            ]
        );
        assert_eq!(
            results(split, 3, 2)[0],
            ("duplicates (no epoch bump explains)".to_string(), false)
        );
        let tight = "duplicates = \"any\"\nduplicates_after_epoch_bump = 1\n";
        assert_eq!(
            results(tight, 5, 2)[1],
            ("duplicates_after_epoch_bump".to_string(), false)
        );
    }
}
