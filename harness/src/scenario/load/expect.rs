//! The `[check]` and `[expect]` tables: how the logs are judged, and the bounds a run must
//! keep. Defaults that decide verdicts are set here (duplicates are an error with
//! idempotence, reordering with ordered producers, unconsumed records when consumers run).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::{Problems, RawBound};
use crate::scenario::model::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCheck {
    #[serde(default)]
    window_threshold: Option<Spanned<String>>,
    #[serde(default)]
    attribution_grace: Option<Spanned<String>>,
    #[serde(default)]
    zookeeper_smoke: bool,
    #[serde(default)]
    kafka_metadata: Option<bool>,
    #[serde(default)]
    oracle: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawExpect {
    lost: Option<Spanned<RawBound>>,
    lost_step: Option<Spanned<String>>,
    duplicates: Option<Spanned<RawBound>>,
    duplicates_after_epoch_bump: Option<Spanned<RawBound>>,
    reordered: Option<Spanned<RawBound>>,
    inconsistent_offsets: Option<Spanned<RawBound>>,
    unexpected: Option<Spanned<RawBound>>,
    poll_gaps: Option<Spanned<RawBound>>,
    poll_regressions: Option<Spanned<RawBound>>,
    unconsumed: Option<Spanned<RawBound>>,
    foreign: Option<Spanned<RawBound>>,
    corrupt: Option<Spanned<RawBound>>,
    silent_producers: Option<Spanned<RawBound>>,
    dead_workers: Option<Spanned<RawBound>>,
    aborted_reads: Option<Spanned<RawBound>>,
    non_atomic_reads: Option<Spanned<RawBound>>,
    max_unavailable_ms: Option<Spanned<i64>>,
    max_rebalance_pause_ms: Option<Spanned<i64>>,
    min_acked: Option<Spanned<i64>>,
    unreadable_partitions: Option<Spanned<RawBound>>,
    mirror_missing: Option<Spanned<RawBound>>,
    mirror_duplicates: Option<Spanned<RawBound>>,
    mirror_group_offsets: Option<Spanned<String>>,
    copy_missing: Option<Spanned<RawBound>>,
    copy_duplicates: Option<Spanned<RawBound>>,
    copy_not_in_input: Option<Spanned<RawBound>>,
    #[serde(default)]
    step: BTreeMap<String, Spanned<RawStepExpect>>,
    #[serde(default)]
    ensemble: BTreeMap<String, Spanned<RawEnsembleExpect>>,
    kafka_metadata: Option<Spanned<String>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawEnsembleExpect {
    max_unavailable_ms: Option<Spanned<i64>>,
    windows: Option<Spanned<RawBound>>,
    #[serde(default)]
    step: BTreeMap<String, Spanned<RawEnsembleStep>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnsembleStep {
    max_unavailable_ms: Spanned<i64>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStepExpect {
    max_unavailable_ms: Option<Spanned<i64>>,
    lost: Option<Spanned<RawBound>>,
}

/// Validates `[check]`. `live`: a watch scenario, whose metadata check runs only when the
/// watch is given a ZooKeeper connect string, so it is judged only when asked for.
pub(super) fn check_settings(
    p: &mut Problems<'_>,
    raw: Option<&RawCheck>,
    live: bool,
) -> CheckSettings {
    CheckSettings {
        zookeeper_smoke: raw.is_some_and(|c| c.zookeeper_smoke),
        kafka_metadata: raw.and_then(|c| c.kafka_metadata).unwrap_or(!live),
        window_threshold_ms: raw
            .map(|c| {
                p.duration(
                    &c.window_threshold,
                    "check.window_threshold",
                    Duration::from_secs(1),
                )
            })
            .unwrap_or(Duration::from_secs(1))
            .as_millis() as u64,
        attribution_grace_ms: raw
            .map(|c| {
                p.duration(
                    &c.attribution_grace,
                    "check.attribution_grace",
                    Duration::from_millis(500),
                )
            })
            .unwrap_or(Duration::from_millis(500))
            .as_millis() as u64,
        oracle: raw.and_then(|c| c.oracle.as_ref()).and_then(|o| {
            let oracle = match o.get_ref().as_str() {
                "kafka-verifiable" => Some(Oracle::KafkaVerifiable),
                "none" => None,
                other => {
                    p.at(
                        o.span(),
                        "check.oracle",
                        format!("unknown oracle `{other}`"),
                        "use \"kafka-verifiable\" (Kafka's VerifiableProducer and VerifiableConsumer) or \"none\"",
                    );
                    None
                }
            };
            if oracle.is_some() && live {
                p.at(
                    o.span(),
                    "check.oracle",
                    "a watch does not run the oracle: it starts no clients of its own beside a live cluster's",
                    "remove `oracle` from [check], or run the scenario with `harness run`",
                );
                return None;
            }
            oracle
        }),
    }
}

/// Validates `[expect]`; `steps` are the names of every step.
pub(super) fn validate(
    p: &mut Problems<'_>,
    raw: Option<&RawExpect>,
    check: &CheckSettings,
    cluster: &ClusterSpec,
    workload: &Workload,
    steps: &HashSet<String>,
) -> Expect {
    let empty = RawExpect::default();
    let re = raw.unwrap_or(&empty);
    let step_named = |name: &str| steps.contains(name);
    let lost_step = re.lost_step.as_ref().map(|s| {
        if !step_named(s.get_ref()) {
            p.at(
                s.span(),
                "expect.lost_step",
                format!("no step is named `{}`", s.get_ref()),
                "copy the `name` of one of the [[step]] tables",
            );
        }
        s.get_ref().clone()
    });
    let nonneg = |v: &Option<Spanned<i64>>, p: &mut Problems<'_>, field: &str| -> Option<u64> {
        v.as_ref().map(|s| {
            if *s.get_ref() < 0 {
                p.at(
                    s.span(),
                    field,
                    "must not be negative",
                    "a number of milliseconds / records",
                );
            }
            (*s.get_ref()).max(0) as u64
        })
    };
    // every bounded anomaly: the scenario's bound, else its default (one place: Anomaly)
    let raw_bounds: [(Anomaly, &Option<Spanned<RawBound>>); 14] = [
        (Anomaly::Lost, &re.lost),
        (Anomaly::Duplicate, &re.duplicates),
        (Anomaly::Reordered, &re.reordered),
        (Anomaly::InconsistentOffset, &re.inconsistent_offsets),
        (Anomaly::Unexpected, &re.unexpected),
        (Anomaly::PollGap, &re.poll_gaps),
        (Anomaly::PollRegression, &re.poll_regressions),
        (Anomaly::Unconsumed, &re.unconsumed),
        (Anomaly::Foreign, &re.foreign),
        (Anomaly::Corrupt, &re.corrupt),
        (Anomaly::SilentProducer, &re.silent_producers),
        (Anomaly::DeadWorker, &re.dead_workers),
        (Anomaly::AbortedRead, &re.aborted_reads),
        (Anomaly::NonAtomicRead, &re.non_atomic_reads),
    ];
    let bounds = raw_bounds
        .into_iter()
        .map(|(a, raw)| {
            let field = format!("expect.{}", a.expect_key());
            (a, p.bound(raw, &field, a.default_bound(workload)))
        })
        .collect();
    let expect = Expect {
        bounds,
        lost_step,
        duplicates_after_epoch_bump: re.duplicates_after_epoch_bump.as_ref().map(|_| {
            p.bound(
                &re.duplicates_after_epoch_bump,
                "expect.duplicates_after_epoch_bump",
                Bound::Any,
            )
        }),
        max_unavailable_ms: nonneg(&re.max_unavailable_ms, p, "expect.max_unavailable_ms"),
        max_rebalance_pause_ms: nonneg(
            &re.max_rebalance_pause_ms,
            p,
            "expect.max_rebalance_pause_ms",
        ),
        min_acked: nonneg(&re.min_acked, p, "expect.min_acked").unwrap_or(1),
        unreadable_partitions: p.bound(
            &re.unreadable_partitions,
            "expect.unreadable_partitions",
            Bound::AtMost(0),
        ),
        copy_missing: p.bound(&re.copy_missing, "expect.copy_missing", Bound::AtMost(0)),
        copy_duplicates: p.bound(
            &re.copy_duplicates,
            "expect.copy_duplicates",
            Bound::AtMost(0),
        ),
        copy_not_in_input: p.bound(
            &re.copy_not_in_input,
            "expect.copy_not_in_input",
            Bound::AtMost(0),
        ),
        mirror_missing: p.bound(
            &re.mirror_missing,
            "expect.mirror_missing",
            Bound::AtMost(0),
        ),
        mirror_group_offsets: match re
            .mirror_group_offsets
            .as_ref()
            .map(|k| (k, k.get_ref().as_str()))
        {
            None | Some((_, "translated")) => true,
            Some((_, "any")) => false,
            Some((k, other)) => {
                p.at(
                        k.span(),
                        "expect.mirror_group_offsets",
                        format!("`{other}` is not an expectation"),
                        "mirror_group_offsets = \"translated\" (default: every partition synced, nothing skipped) or \"any\" (report only)",
                    );
                true
            }
        },
        mirror_duplicates: re.mirror_duplicates.as_ref().map(|_| {
            p.bound(
                &re.mirror_duplicates,
                "expect.mirror_duplicates",
                Bound::Any,
            )
        }),
        per_step: re
            .step
            .iter()
            .map(|(name, se)| {
                let field = format!("expect.step.\"{name}\"");
                if !step_named(name) {
                    p.at(
                        se.span(),
                        &field,
                        format!("no step is named `{name}`"),
                        "copy the `name` of one of the [[step]] tables",
                    );
                }
                let raw = se.get_ref();
                let e = StepExpect {
                    max_unavailable_ms: nonneg(
                        &raw.max_unavailable_ms,
                        p,
                        &format!("{field}.max_unavailable_ms"),
                    ),
                    lost: raw
                        .lost
                        .as_ref()
                        .map(|_| p.bound(&raw.lost, &format!("{field}.lost"), Bound::AtMost(0))),
                };
                (name.clone(), e)
            })
            .collect(),
        ensembles: re
            .ensemble
            .iter()
            .map(|(name, ee)| {
                let field = format!("expect.ensemble.{name}");
                if !cluster.ensembles.contains_key(name) {
                    p.at(
                        ee.span(),
                        &field,
                        format!("no ensemble `{name}`"),
                        format!(
                            "ensembles: {} (see [cluster.ensembles])",
                            cluster
                                .ensembles
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                }
                if !check.zookeeper_smoke {
                    p.at(
                        ee.span(),
                        &field,
                        "ensemble expectations need the smoke test",
                        "add [check] zookeeper_smoke = true",
                    );
                }
                let raw = ee.get_ref();
                let e = EnsembleExpect {
                    max_unavailable_ms: nonneg(
                        &raw.max_unavailable_ms,
                        p,
                        &format!("{field}.max_unavailable_ms"),
                    ),
                    windows: raw
                        .windows
                        .as_ref()
                        .map(|_| p.bound(&raw.windows, &format!("{field}.windows"), Bound::Any)),
                    per_step: raw
                        .step
                        .iter()
                        .map(|(step, b)| {
                            let sf = format!("{field}.step.\"{step}\"");
                            if !step_named(step) {
                                p.at(
                                    b.span(),
                                    &sf,
                                    format!("no step is named `{step}`"),
                                    "copy the `name` of one of the [[step]] tables",
                                );
                            }
                            let v = Some(b.get_ref().max_unavailable_ms.clone());
                            (
                                step.clone(),
                                nonneg(&v, p, &format!("{sf}.max_unavailable_ms")).unwrap_or(0),
                            )
                        })
                        .collect(),
                };
                (name.clone(), e)
            })
            .collect(),
        kafka_metadata_intact: match re
            .kafka_metadata
            .as_ref()
            .map(|k| (k, k.get_ref().as_str()))
        {
            None | Some((_, "intact")) => check.kafka_metadata,
            Some((_, "any")) => false,
            Some((k, other)) => {
                p.at(
                    k.span(),
                    "expect.kafka_metadata",
                    format!("`{other}` is not an expectation"),
                    "kafka_metadata = \"intact\" (default) or \"any\" (report only)",
                );
                true
            }
        },
        metadata_survival_intact: false,
    };
    if re
        .kafka_metadata
        .as_ref()
        .is_some_and(|k| k.get_ref() == "intact")
        && !check.kafka_metadata
    {
        let k = re.kafka_metadata.as_ref().unwrap();
        p.at(
            k.span(),
            "expect.kafka_metadata",
            "expects intact metadata but [check] kafka_metadata = false",
            "remove one of the two",
        );
    }
    expect
}
