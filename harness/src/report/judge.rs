//! The verdict: every `[expect]` bound against the findings, one [`ExpectationResult`]
//! each (the bounded anomalies in [`Anomaly::ALL`] order, then the final read, acks,
//! attribution, windows per step and per ensemble, ZooKeeper quorums, Kafka's metadata,
//! the steps).

use super::ExpectationResult;
use crate::check::{Findings, StepSpan, Window, WindowKind, WindowSubject};
use crate::scenario::{Anomaly, Bound, Scenario};

fn bound_check(name: &str, bound: Bound, actual: u64) -> ExpectationResult {
    ExpectationResult {
        name: name.into(),
        expected: bound.to_string(),
        actual: actual.to_string(),
        ok: bound.holds(actual),
    }
}

/// The exactly-once pipeline's three bounds. Missing records are judged only against a
/// whole picture: both final reads read every partition to its end and the pipeline caught
/// up before it was stopped — else a record may only be beyond what was read or copied,
/// and the expectation fails saying so. A run that left no record of the pipeline (it
/// ended before its output was read back) fails all three: unchecked is not a pass.
fn copy_expectations(e: &crate::scenario::Expect, findings: &Findings) -> Vec<ExpectationResult> {
    let Some(c) = &findings.copy else {
        let why = format!(
            "not checked: no {} in the run directory (the run ended before the pipeline's \
             output was read back)",
            crate::check::copy::COPY_RECORD
        );
        return [
            ("copy_missing", e.copy_missing),
            ("copy_duplicates", e.copy_duplicates),
            ("copy_not_in_input", e.copy_not_in_input),
        ]
        .into_iter()
        .map(|(name, bound)| ExpectationResult {
            name: name.into(),
            expected: bound.to_string(),
            actual: why.clone(),
            ok: false,
        })
        .collect();
    };
    let mut missing = bound_check("copy_missing", e.copy_missing, c.missing);
    let mut gaps = Vec::new();
    if !c.caught_up {
        gaps.push(format!(
            "the pipeline did not catch up: {}",
            c.catch_up_note
        ));
    }
    if !c.input_incomplete.is_empty() {
        gaps.push(format!(
            "the final read did not finish {}",
            c.input_incomplete.join(", ")
        ));
    }
    if !c.output_incomplete.is_empty() {
        gaps.push(format!(
            "the output's final read did not finish {}",
            c.output_incomplete.join(", ")
        ));
    }
    if !gaps.is_empty() {
        missing.actual = format!("{} ({})", c.missing, gaps.join("; "));
        missing.ok = false;
    }
    vec![
        missing,
        bound_check("copy_duplicates", e.copy_duplicates, c.duplicates),
        bound_check("copy_not_in_input", e.copy_not_in_input, c.not_in_input),
    ]
}

/// `oracle_agrees`: the second oracle ran to its end (it acked records, its final read
/// reached every end offset) and finds loss exactly when the harness does. Which of the two
/// is right when they disagree is for a person to find out: the finding is the
/// disagreement itself.
fn oracle_agrees(findings: &Findings) -> ExpectationResult {
    let expected = "the harness and the second oracle agree on loss".to_string();
    let name = "oracle_agrees".to_string();
    let Some(o) = &findings.oracle else {
        return ExpectationResult {
            name,
            expected,
            actual: "not checked: the run left no oracle/ directory (the oracle never started)"
                .into(),
            ok: false,
        };
    };
    let harness = findings.anomalies.lost;
    let both = format!(
        "harness: {harness} lost of {} acked; {}: {} lost of {} acked",
        findings.producers.acked, o.kind, o.lost, o.acked
    );
    let (actual, ok) = if !o.final_read_complete {
        (
            format!(
                "not checked: the oracle's final read did not reach the end ({}); {both}",
                o.final_read_short.join(", ")
            ),
            false,
        )
    } else if o.acked == 0 {
        (
            format!("not checked: the oracle's producer acked nothing; {both}"),
            false,
        )
    } else if (harness > 0) != (o.lost > 0) {
        (format!("DISAGREE on loss: {both}"), false)
    } else {
        (format!("agree: {both}"), true)
    };
    ExpectationResult {
        name,
        expected,
        actual,
        ok,
    }
}

/// Judges the findings against the scenario's expectations.
pub fn judge(scenario: &Scenario, findings: &Findings) -> Vec<ExpectationResult> {
    let e = &scenario.expect;
    let a = &findings.anomalies;
    let mut out = Vec::new();
    for anomaly in Anomaly::ALL {
        let (name, bound) = (anomaly.expect_key(), e.bound(anomaly));
        match (anomaly, e.duplicates_after_epoch_bump) {
            // Duplicates: one bound on all of them, or, when the scenario bounds those a
            // client epoch bump explains on their own, the other bound on the rest.
            (Anomaly::Duplicate, Some(after_bump)) => {
                out.push(bound_check(
                    "duplicates (no epoch bump explains)",
                    bound,
                    a.duplicate.saturating_sub(a.duplicate_after_epoch_bump),
                ));
                out.push(bound_check(
                    "duplicates_after_epoch_bump",
                    after_bump,
                    a.duplicate_after_epoch_bump,
                ));
            }
            _ => out.push(bound_check(name, bound, a.count(anomaly))),
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
    if let Some(max) = e.max_rebalance_pause_ms {
        let longest = findings
            .unavailability
            .iter()
            .filter(|w| w.kind == WindowKind::Rebalance)
            .map(|w| w.duration_ms)
            .max()
            .unwrap_or(0);
        out.push(ExpectationResult {
            name: "max_rebalance_pause_ms".into(),
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
        let part = WindowSubject::Ensemble(name.clone());
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
            let part = WindowSubject::Ensemble(name.clone());
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
    let mirrored = scenario.steps.iter().any(|s| {
        matches!(
            s.action,
            crate::scenario::Action::Mirror(crate::scenario::MirrorAction::MirrorStart { .. })
        )
    });
    if mirrored && findings.mirror.is_none() {
        // the scenario copies, and the run left no record of the copy to check: the run
        // ended (a crash, an interrupt) before the end-of-run read of the target — the copy
        // went unchecked, which is not a pass
        out.push(ExpectationResult {
            name: "mirror_missing".into(),
            expected: e.mirror_missing.to_string(),
            actual: format!(
                "not checked: no {} in the run directory (the run ended before MirrorMaker's \
                 copy was read back from the target)",
                crate::check::mirror::MIRROR_RECORD
            ),
            ok: false,
        });
    }
    if let Some(m) = &findings.mirror {
        // the target's final read must have read every copied partition to its end, or a
        // missing record may only be beyond what it reached
        let mut missing = bound_check("mirror_missing", e.mirror_missing, m.missing);
        if !m.target_incomplete.is_empty() {
            missing.actual = format!(
                "{} (the target's final read did not finish {})",
                m.missing,
                m.target_incomplete.join(", ")
            );
            missing.ok = false;
        }
        if m.cut_ms.is_none() {
            missing.actual = format!("not checked: {}", m.cut_reason);
            missing.ok = false;
        }
        if let Some(why) = &m.end_catch_up_error {
            missing.actual = format!(
                "{} up to the cut, and MirrorMaker did not catch up at the end: {why}",
                m.missing
            );
            missing.ok = false;
        }
        out.push(missing);
        let dup_bound = e.mirror_duplicates.unwrap_or(if m.exactly_once {
            Bound::AtMost(0)
        } else {
            Bound::Any
        });
        out.push(bound_check("mirror_duplicates", dup_bound, m.duplicates));
        if let Some(g) = m.group.as_ref().filter(|_| e.mirror_group_offsets) {
            out.push(ExpectationResult {
                name: "mirror_group_offsets".into(),
                expected: "every partition synced to the target, nothing skipped".into(),
                actual: if g.partitions == 0 {
                    format!("no committed offsets to compare: {}", g.note)
                } else {
                    format!(
                    "{} of {} partitions synced{}, {} skipped, {} read again (at most {} on one partition)",
                    g.translated,
                    g.partitions,
                    if g.untranslated.is_empty() {
                        String::new()
                    } else {
                        format!(" (not: {})", g.untranslated.join(", "))
                    },
                    g.skipped,
                    g.reread,
                    g.max_reread
                )
                },
                ok: g.partitions > 0 && g.untranslated.is_empty() && g.skipped == 0,
            });
        }
    }
    if scenario.workload.copy.is_some() {
        out.extend(copy_expectations(e, findings));
    }
    if scenario.check.oracle.is_some() {
        out.push(oracle_agrees(findings));
    }
    if e.kafka_metadata_intact {
        let (actual, ok) = metadata_intact(findings.kafka_metadata.as_ref());
        out.push(ExpectationResult {
            name: "kafka_metadata".into(),
            expected: "Kafka's znodes match what the brokers report".into(),
            actual,
            ok,
        });
        // MirrorMaker's target: the migration's destination is checked as its source is
        if let Some(m) = &findings.mirror {
            let (actual, ok) = metadata_intact(m.target_metadata.as_ref());
            out.push(ExpectationResult {
                name: "kafka_metadata_target".into(),
                expected: "the target cluster's znodes match what its brokers report".into(),
                actual,
                ok,
            });
        }
    }
    if e.metadata_survival_intact {
        let (actual, ok) = match &findings.metadata_survival {
            None => (
                "not checked (the run ended before the end-of-run check, or the step failed)"
                    .to_string(),
                false,
            ),
            Some(m) if m.error.is_some() => (
                format!("check failed: {}", m.error.as_deref().unwrap_or("")),
                false,
            ),
            Some(m) if m.differences.is_empty() => ("every item as created".to_string(), true),
            Some(m) => (
                format!(
                    "{} difference(s): {}",
                    m.differences.len(),
                    first_five(&m.differences)
                ),
                false,
            ),
        };
        out.push(ExpectationResult {
            name: "metadata_survival".into(),
            expected:
                "the topic configs, quotas, SCRAM users and ACLs `create-metadata` made, unchanged"
                    .into(),
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
pub(super) fn is_partition_window(w: &Window) -> bool {
    matches!(w.partition, WindowSubject::Partition(_)) && w.kind.is_client()
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

/// A metadata check's verdict in words: intact, or its differences, or why it did not run.
fn metadata_intact(check: Option<&crate::zk::metadata::MetadataCheck>) -> (String, bool) {
    match check {
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
                first_five(&m.differences)
            ),
            false,
        ),
    }
}

/// The first five differences an end-of-run check found, `; `-separated.
fn first_five(d: &[String]) -> String {
    d.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use std::path::Path;

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

    /// The results of judging `findings` by a scenario whose `[expect]` is `expect`
    /// (with `steps` appended to the scenario), by name.
    fn judged(expect: &str, steps: &str, findings: &Findings) -> Vec<(String, bool)> {
        // (Kafka's metadata in ZooKeeper is judged in its own tests)
        let text = format!("{SCENARIO}[check]\nkafka_metadata = false\n{steps}[expect]\n{expect}");
        let scenario = crate::scenario::parse(Path::new("t.toml"), &text).unwrap();
        judge(&scenario, findings)
            .into_iter()
            .map(|r| (r.name, r.ok))
            .collect()
    }

    fn ok_of(results: &[(String, bool)], name: &str) -> bool {
        results
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no expectation `{name}` in {results:?}"))
            .1
    }

    /// Findings of a run that did its job: something acked, every partition read.
    fn healthy() -> Findings {
        let mut f = Findings::default();
        f.producers.acked = 100;
        f.final_read.ran = true;
        f
    }

    fn window(step: &str, kind: WindowKind, ms: u64) -> Window {
        Window {
            partition: WindowSubject::Partition("orders/0".into()),
            kind,
            start_ms: 1000,
            end_ms: 1000 + ms,
            duration_ms: ms,
            step: step.into(),
            open: false,
        }
    }

    #[test]
    fn a_copy_the_run_never_read_back_fails_as_not_checked() {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/mirrormaker-clone.toml");
        let sc = crate::scenario::load(&path).unwrap();
        // the run died before the end-of-run read of the target: no mirror record
        let r = judge(&sc, &healthy());
        let missing: Vec<_> = r.iter().filter(|e| e.name == "mirror_missing").collect();
        assert_eq!(missing.len(), 1, "{r:?}");
        assert!(!missing[0].ok);
        assert!(
            missing[0]
                .actual
                .starts_with("not checked: no mirror/mirror.json"),
            "{:?}",
            missing[0]
        );
        // with a record, judged from it alone
        let mut f = healthy();
        f.mirror = Some(crate::check::mirror::MirrorCheck {
            cut_ms: Some(1),
            ..Default::default()
        });
        let r = judge(&sc, &f);
        let missing: Vec<_> = r.iter().filter(|e| e.name == "mirror_missing").collect();
        assert_eq!(missing.len(), 1, "{r:?}");
        assert!(missing[0].ok, "{:?}", missing[0]);
    }

    #[test]
    fn the_mirror_targets_metadata_is_judged_as_the_sources_when_mirrormaker_ran() {
        use crate::zk::metadata::MetadataCheck;
        let with_metadata = |mirror: Option<Option<MetadataCheck>>| {
            let text = format!("{SCENARIO}[expect]\n");
            let scenario = crate::scenario::parse(Path::new("t.toml"), &text).unwrap();
            let mut f = healthy();
            f.kafka_metadata = Some(MetadataCheck {
                zookeeper: "zk:2181/kafka".into(),
                ..Default::default()
            });
            f.mirror = mirror.map(|target_metadata| crate::check::mirror::MirrorCheck {
                cut_ms: Some(1_000),
                target_metadata,
                ..Default::default()
            });
            judge(&scenario, &f)
                .into_iter()
                .filter(|r| r.name.starts_with("kafka_metadata"))
                .map(|r| (r.name, r.ok, r.actual))
                .collect::<Vec<_>>()
        };
        // no MirrorMaker: the source's check only
        let names: Vec<String> = with_metadata(None).into_iter().map(|r| r.0).collect();
        assert_eq!(names, ["kafka_metadata"]);
        let target = |r: Vec<(String, bool, String)>| {
            r.into_iter()
                .find(|(n, _, _)| n == "kafka_metadata_target")
                .map(|(_, ok, actual)| (ok, actual))
                .expect("judged")
        };
        let intact = MetadataCheck {
            zookeeper: "tzk:2181/kafka".into(),
            topics: 4,
            ..Default::default()
        };
        let (ok, actual) = target(with_metadata(Some(Some(intact.clone()))));
        assert!(ok, "{actual}");
        assert!(actual.contains("intact in tzk:2181/kafka"), "{actual}");
        let differs = MetadataCheck {
            differences: vec!["orders/0: leader 2 in ZooKeeper, 3 on the brokers".into()],
            ..intact.clone()
        };
        let (ok, actual) = target(with_metadata(Some(Some(differs))));
        assert!(!ok && actual.contains("orders/0: leader 2"), "{actual}");
        let failed = MetadataCheck {
            error: Some("connection refused".into()),
            ..intact
        };
        assert!(!target(with_metadata(Some(Some(failed)))).0);
        // MirrorMaker ran but the target was never checked: not a pass
        let (ok, actual) = target(with_metadata(Some(None)));
        assert!(!ok && actual.starts_with("not checked"), "{actual}");
    }

    #[test]
    fn the_copy_is_judged_only_when_mirrormaker_ran_and_its_duplicates_by_its_setting() {
        let without = judged("", "", &healthy());
        assert!(!without.iter().any(|(n, _)| n.starts_with("mirror")));
        let with = |m: crate::check::mirror::MirrorCheck, expect: &str| {
            let mut f = healthy();
            f.mirror = Some(m);
            let r = judged(expect, "", &f);
            (ok_of(&r, "mirror_missing"), ok_of(&r, "mirror_duplicates"))
        };
        let clean = crate::check::mirror::MirrorCheck {
            cut_ms: Some(1_000),
            expected: 10,
            copied: 10,
            ..Default::default()
        };
        assert_eq!(with(clean.clone(), ""), (true, true));
        let missing = crate::check::mirror::MirrorCheck {
            copied: 9,
            missing: 1,
            ..clean.clone()
        };
        assert_eq!(with(missing.clone(), ""), (false, true));
        assert_eq!(with(missing, "mirror_missing = \"any\"\n"), (true, true));
        // at-least-once: duplicates reported; exactly-once: none allowed
        let twice = crate::check::mirror::MirrorCheck {
            duplicates: 3,
            ..clean.clone()
        };
        assert_eq!(with(twice.clone(), ""), (true, true));
        assert_eq!(
            with(twice.clone(), "mirror_duplicates = 0\n"),
            (true, false)
        );
        let eos = crate::check::mirror::MirrorCheck {
            exactly_once: true,
            ..twice
        };
        assert_eq!(with(eos, ""), (true, false));
        // never seen caught up, or a partition not read to its end: not a pass
        let never = crate::check::mirror::MirrorCheck {
            cut_ms: None,
            ..clean.clone()
        };
        assert_eq!(with(never, ""), (false, true));
        let unread = crate::check::mirror::MirrorCheck {
            target_incomplete: vec!["orders/0".into()],
            ..clean.clone()
        };
        assert_eq!(with(unread, ""), (false, true));
        // a copy that did not keep up at the end fails, whatever an earlier cut says
        let behind = crate::check::mirror::MirrorCheck {
            end_catch_up_error: Some("not caught up after 60s".into()),
            ..clean.clone()
        };
        assert_eq!(with(behind, ""), (false, true));
        // the group's synced offsets: judged when read, nothing skipped on any partition
        let group = |skipped: u64, untranslated: Vec<String>| {
            let mut f = healthy();
            f.mirror = Some(crate::check::mirror::MirrorCheck {
                group: Some(crate::check::mirror::GroupTranslation {
                    partitions: 6,
                    translated: 6 - untranslated.len() as u64,
                    skipped,
                    reread: 40,
                    untranslated,
                    ..Default::default()
                }),
                ..clean.clone()
            });
            (
                ok_of(&judged("", "", &f), "mirror_group_offsets"),
                ok_of(
                    &judged("mirror_group_offsets = \"any\"\n", "", &f),
                    "mirror_missing",
                ),
            )
        };
        assert_eq!(group(0, vec![]), (true, true));
        assert!(!group(3, vec![]).0);
        assert!(!group(0, vec!["orders/5".into()]).0);
        let mut f = healthy();
        f.mirror = Some(crate::check::mirror::MirrorCheck {
            group: Some(crate::check::mirror::GroupTranslation {
                partitions: 6,
                skipped: 3,
                ..Default::default()
            }),
            ..clean
        });
        assert!(!judged("mirror_group_offsets = \"any\"\n", "", &f)
            .iter()
            .any(|(n, _)| n == "mirror_group_offsets"));
    }

    const TWO_STEPS: &str = "[[step]]\nname = \"pause\"\ndo = \"sleep\"\nduration = \"1s\"\n\
        [[step]]\nname = \"kill\"\ndo = \"kill\"\nnode = \"kafka1\"\n";

    #[test]
    fn a_healthy_run_passes_and_every_bounded_anomaly_fails_it_by_default() {
        let results = judged("", "", &healthy());
        assert!(results.iter().all(|(_, ok)| *ok), "{results:?}");
        for anomaly in Anomaly::ALL {
            let mut f = healthy();
            match anomaly {
                Anomaly::Lost => f.anomalies.lost = 1,
                Anomaly::Duplicate => f.anomalies.duplicate = 1,
                Anomaly::Reordered => f.anomalies.reordered = 1,
                Anomaly::InconsistentOffset => f.anomalies.inconsistent_offset = 1,
                Anomaly::Unexpected => f.anomalies.unexpected = 1,
                Anomaly::PollGap => f.anomalies.poll_gap = 1,
                Anomaly::PollRegression => f.anomalies.poll_regression = 1,
                // no consumers in this scenario: unconsumed records are reported only
                Anomaly::Unconsumed => continue,
                Anomaly::Foreign => f.anomalies.foreign = 1,
                Anomaly::Corrupt => f.anomalies.corrupt = 1,
                Anomaly::SilentProducer => f.anomalies.silent_producers = 1,
                Anomaly::DeadWorker => f.anomalies.dead_workers = 1,
                Anomaly::AbortedRead => f.anomalies.aborted_read = 1,
                Anomaly::NonAtomicRead => f.anomalies.non_atomic_read = 1,
            }
            let results = judged("", "", &f);
            let failed: Vec<&String> = results
                .iter()
                .filter(|(_, ok)| !ok)
                .map(|(n, _)| n)
                .collect();
            assert_eq!(failed, [anomaly.expect_key()], "{anomaly:?}");
            // and a scenario that allows it passes
            let allowed = format!("{} = \"any\"\n", anomaly.expect_key());
            assert!(judged(&allowed, "", &f).iter().all(|(_, ok)| *ok));
        }
        // expired records are reported, never judged
        let mut f = healthy();
        f.anomalies.expired = 1_000;
        assert!(judged("", "", &f).iter().all(|(_, ok)| *ok));
    }

    #[test]
    fn the_final_read_and_the_acks_must_show_a_run_that_did_its_job() {
        let mut f = healthy();
        f.final_read.ran = false;
        f.final_read.partitions = 1;
        assert!(!ok_of(&judged("", "", &f), "unreadable_partitions"));
        let mut f = healthy();
        f.final_read.incomplete = vec!["orders/0".into()];
        assert!(!ok_of(&judged("", "", &f), "unreadable_partitions"));
        assert!(ok_of(
            &judged("unreadable_partitions = 1\n", "", &f),
            "unreadable_partitions"
        ));
        let mut f = healthy();
        f.producers.acked = 0;
        assert!(!ok_of(&judged("", "", &f), "min_acked"));
        f.producers.acked = 10;
        assert!(!ok_of(&judged("min_acked = 11\n", "", &f), "min_acked"));
    }

    #[test]
    fn windows_are_judged_by_their_steps_bound_else_the_scenarios_and_rebalances_apart() {
        let expect =
            "max_unavailable_ms = 1000\n[expect.step.\"kill\"]\nmax_unavailable_ms = 5000\n";
        let mut f = healthy();
        f.unavailability = vec![window("kill", WindowKind::Produce, 4000)];
        let r = judged(expect, TWO_STEPS, &f);
        assert!(ok_of(&r, "max_unavailable_ms (other steps)"), "{r:?}");
        assert!(ok_of(&r, "max_unavailable_ms in `kill`"));
        f.unavailability
            .push(window("pause", WindowKind::Consume, 1500));
        let r = judged(expect, TWO_STEPS, &f);
        assert!(!ok_of(&r, "max_unavailable_ms (other steps)"), "{r:?}");
        // a pause of the consumer group's own is not the cluster's unavailability
        f.unavailability[1] = window("pause", WindowKind::Rebalance, 1500);
        let r = judged(expect, TWO_STEPS, &f);
        assert!(ok_of(&r, "max_unavailable_ms (other steps)"), "{r:?}");
        assert!(!r.iter().any(|(n, _)| n == "max_rebalance_pause_ms"));
        // it has a bound of its own
        let r = judged(
            &format!("max_rebalance_pause_ms = 1000\n{expect}"),
            TWO_STEPS,
            &f,
        );
        assert!(!ok_of(&r, "max_rebalance_pause_ms"), "{r:?}");
    }

    #[test]
    fn lost_records_must_all_be_blamed_on_the_named_step_and_every_step_must_succeed() {
        let mut f = healthy();
        f.anomalies.lost = 3;
        f.lost_by_step.insert("kill".into(), 3);
        let expect = "lost = \"any\"\nlost_step = \"kill\"\n";
        assert!(
            !ok_of(&judged(expect, TWO_STEPS, &f), "steps"),
            "no step ran"
        );
        f.steps = ["pause", "kill"]
            .iter()
            .enumerate()
            .map(|(index, name)| StepSpan {
                index,
                name: name.to_string(),
                action: "sleep".into(),
                start_ms: 0,
                end_ms: Some(1),
                ok: Some(true),
                error: None,
                node: None,
            })
            .collect();
        let r = judged(expect, TWO_STEPS, &f);
        assert!(r.iter().all(|(_, ok)| *ok), "{r:?}");
        f.lost_by_step.insert("pause".into(), 1);
        assert!(!ok_of(&judged(expect, TWO_STEPS, &f), "lost_step"));
        // nothing lost at all does not meet "lost in that step" either
        f.lost_by_step.clear();
        f.anomalies.lost = 0;
        assert!(!ok_of(&judged(expect, TWO_STEPS, &f), "lost_step"));
        // a failed step fails the run
        f.steps[1].ok = Some(false);
        f.steps[1].error = Some("kafka1 did not stop".into());
        assert!(!ok_of(&judged("", TWO_STEPS, &f), "steps"));
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

    #[test]
    fn the_two_oracles_must_agree_on_loss_and_the_second_must_have_run_to_its_end() {
        let judge_with = |harness_lost: u64, oracle: Option<crate::check::oracle::OracleCheck>| {
            let text = format!(
                "{SCENARIO}[check]\nkafka_metadata = false\noracle = \"kafka-verifiable\"\n[expect]\nlost = \"any\"\n"
            );
            let scenario = crate::scenario::parse(Path::new("t.toml"), &text).unwrap();
            let mut f = healthy();
            f.anomalies.lost = harness_lost;
            f.oracle = oracle;
            judge(&scenario, &f)
                .into_iter()
                .find(|r| r.name == "oracle_agrees")
                .expect("judged when the scenario names an oracle")
        };
        let ran = |acked: u64, lost: u64| crate::check::oracle::OracleCheck {
            kind: "kafka-verifiable".into(),
            acked,
            lost,
            final_read_complete: true,
            ..Default::default()
        };
        assert!(judge_with(0, Some(ran(500, 0))).ok);
        assert!(judge_with(7, Some(ran(500, 3))).ok);
        let r = judge_with(0, Some(ran(500, 3)));
        assert!(!r.ok);
        assert!(
            r.actual.starts_with("DISAGREE on loss: harness: 0 lost"),
            "{}",
            r.actual
        );
        assert!(!judge_with(7, Some(ran(500, 0))).ok);
        // an oracle that acked nothing, or did not read to the end, proves nothing
        assert!(!judge_with(0, Some(ran(0, 0))).ok);
        let short = crate::check::oracle::OracleCheck {
            final_read_complete: false,
            final_read_short: vec!["0: 2/3".into()],
            ..ran(500, 0)
        };
        let r = judge_with(0, Some(short));
        assert!(!r.ok && r.actual.contains("0: 2/3"), "{}", r.actual);
        let r = judge_with(0, None);
        assert!(!r.ok && r.actual.starts_with("not checked"), "{}", r.actual);
        // without [check] oracle there is nothing to agree with
        assert!(!judged("", "", &healthy())
            .iter()
            .any(|(n, _)| n == "oracle_agrees"));
    }
}
