//! `harness compare RUN_A RUN_B`: the canary question — is B (a new version, a new
//! setting) worse than A on the same scenario?
//!
//! Reads nothing but the two `report.json` files (as JSON values, so reports of older
//! harness versions compare too: a field one of them lacks counts as zero). Compares, row
//! by row: the verdicts; every anomaly count; per step, the client windows (how many, the
//! longest); the longest partition window; per step, ack and end-to-end p99 latency. A row
//! is worse when B exceeds A beyond the tolerance: counts by more than `relative` of A
//! (a count A did not have at all is always worse), windows by more than `relative` of A
//! plus an absolute slack (two runs of one scenario never give the same milliseconds).
//! Latency is looser by default (`latency_relative`: twice A's p99, plus a slack): two runs
//! of one version on one machine were measured here to differ by up to 2.3× in a step's
//! p99 (partition-leader, three runs in a row); and a p99 of fewer than
//! `min_latency_samples` records is shown but not judged.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

/// How much worse B may be before it counts.
#[derive(Debug, Clone, Copy)]
pub struct Tolerance {
    /// Fraction of A's figure B may exceed it by (0.2: 20 %).
    pub relative: f64,
    /// Milliseconds a window may be longer beyond that.
    pub window_slack_ms: f64,
    /// Fraction of A's p99 latency B's may exceed it by.
    pub latency_relative: f64,
    /// Milliseconds a p99 latency may be higher beyond that.
    pub latency_slack_ms: f64,
    /// A p99 over fewer records than this, in either run, is not judged.
    pub min_latency_samples: u64,
}

impl Default for Tolerance {
    fn default() -> Self {
        Tolerance {
            relative: 0.2,
            window_slack_ms: 1000.0,
            latency_relative: 1.0,
            latency_slack_ms: 50.0,
            min_latency_samples: 1000,
        }
    }
}

/// One compared figure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    /// `verdict`, `anomalies`, `windows`, `latency`.
    pub section: String,
    /// What is compared (`lost`, `restart kafka2: longest window ms`…).
    pub what: String,
    /// A's figure.
    pub a: String,
    /// B's figure.
    pub b: String,
    /// B is worse than A beyond the tolerance.
    pub worse: bool,
}

/// The comparison.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// A's scenario and run id.
    pub a: String,
    /// B's scenario and run id.
    pub b: String,
    /// Every compared figure.
    pub rows: Vec<Row>,
    /// Whether any row is worse.
    pub worse: bool,
    /// Notes: different scenarios, missing sections.
    pub notes: Vec<String>,
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(0.0)
}

fn count_worse(a: f64, b: f64, t: &Tolerance) -> bool {
    b > a + (a * t.relative).floor()
}

fn time_worse(a: f64, b: f64, relative: f64, slack: f64) -> bool {
    b > a * (1.0 + relative) + slack
}

/// Per step: (client windows, longest ms). Windows of ZooKeeper servers and ensembles are
/// left to their own rows (they are not the clients' view).
fn windows_by_step(r: &Value) -> BTreeMap<String, (f64, f64)> {
    let mut out: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for w in r["unavailability"].as_array().into_iter().flatten() {
        let kind = w["kind"].as_str().unwrap_or("");
        if kind != "produce" && kind != "consume" {
            continue;
        }
        let step = w["step"].as_str().unwrap_or("?").to_string();
        let e = out.entry(step).or_default();
        e.0 += 1.0;
        e.1 = e.1.max(num(&w["duration_ms"]));
    }
    out
}

fn name(r: &Value) -> String {
    format!(
        "{} ({})",
        r["scenario"].as_str().unwrap_or("?"),
        r["run_id"].as_str().unwrap_or("?")
    )
}

/// Compares B against A.
pub fn compare(a: &Value, b: &Value, t: &Tolerance) -> Comparison {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    if a["scenario"] != b["scenario"] {
        notes.push(format!(
            "different scenarios: {} and {} — the figures compare, their meaning may not",
            a["scenario"], b["scenario"]
        ));
    }
    let (va, vb) = (
        a["verdict"].as_str().unwrap_or("?"),
        b["verdict"].as_str().unwrap_or("?"),
    );
    rows.push(Row {
        section: "verdict".into(),
        what: "verdict".into(),
        a: va.into(),
        b: vb.into(),
        worse: va == "pass" && vb != "pass",
    });

    // anomalies: every count either report has
    let kinds: BTreeSet<&String> = [a, b]
        .iter()
        .filter_map(|r| r["anomalies"].as_object())
        .flat_map(|m| m.keys())
        .collect();
    for k in kinds {
        let (x, y) = (num(&a["anomalies"][k]), num(&b["anomalies"][k]));
        if x == 0.0 && y == 0.0 {
            continue;
        }
        rows.push(Row {
            section: "anomalies".into(),
            what: k.clone(),
            a: x.to_string(),
            b: y.to_string(),
            worse: count_worse(x, y, t),
        });
    }

    // windows per step
    let (wa, wb) = (windows_by_step(a), windows_by_step(b));
    let steps: BTreeSet<&String> = wa.keys().chain(wb.keys()).collect();
    for s in steps {
        let (x, y) = (
            wa.get(s).copied().unwrap_or_default(),
            wb.get(s).copied().unwrap_or_default(),
        );
        rows.push(Row {
            section: "windows".into(),
            what: format!("{s}: longest window ms"),
            a: x.1.to_string(),
            b: y.1.to_string(),
            worse: time_worse(x.1, y.1, t.relative, t.window_slack_ms),
        });
        rows.push(Row {
            section: "windows".into(),
            what: format!("{s}: windows"),
            a: x.0.to_string(),
            b: y.0.to_string(),
            // more windows is worse only as far as they last: a count grows with
            // partitions moved; informational unless the longest grew too
            worse: false,
        });
    }
    let (x, y) = (num(&a["max_unavailable_ms"]), num(&b["max_unavailable_ms"]));
    rows.push(Row {
        section: "windows".into(),
        what: "longest partition window ms (the run)".into(),
        a: x.to_string(),
        b: y.to_string(),
        worse: time_worse(x, y, t.relative, t.window_slack_ms),
    });

    // latency: over the run, then per step or phase both have
    let mut labels: Vec<(String, &Value, &Value)> =
        vec![("(run)".into(), &a["latency_ms"], &b["latency_ms"])];
    if let (Some(la), Some(lb)) = (
        a["latency_by_step"].as_object(),
        b["latency_by_step"].as_object(),
    ) {
        for (k, v) in la {
            if let Some(w) = lb.get(k) {
                labels.push((k.clone(), v, w));
            }
        }
    }
    for (label, x, y) in labels {
        for which in ["ack", "e2e"] {
            let (p, q) = (&x[which], &y[which]);
            let samples = num(&p["count"]).min(num(&q["count"]));
            if samples == 0.0 {
                continue;
            }
            let judged = samples >= t.min_latency_samples as f64;
            let (p, q) = (num(&p["p99"]), num(&q["p99"]));
            rows.push(Row {
                section: "latency".into(),
                what: if judged {
                    format!("{label}: {which} p99 ms")
                } else {
                    format!("{label}: {which} p99 ms (few records: not judged)")
                },
                a: p.to_string(),
                b: q.to_string(),
                worse: judged && time_worse(p, q, t.latency_relative, t.latency_slack_ms),
            });
        }
    }
    let worse = rows.iter().any(|r| r.worse);
    Comparison {
        a: name(a),
        b: name(b),
        rows,
        worse,
        notes,
    }
}

/// The comparison as the terminal shows it.
pub fn text(c: &Comparison, t: &Tolerance) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "A: {}\nB: {}", c.a, c.b);
    for n in &c.notes {
        let _ = writeln!(s, "note: {n}");
    }
    let width = c
        .rows
        .iter()
        .map(|r| r.what.len())
        .max()
        .unwrap_or(10)
        .min(70);
    let mut section = "";
    for r in &c.rows {
        if r.section != section {
            section = &r.section;
            let _ = writeln!(s, "\n{section}");
        }
        let _ = writeln!(
            s,
            "  {:width$}  {:>12}  {:>12}  {}",
            r.what,
            r.a,
            r.b,
            if r.worse { "WORSE" } else { "" }
        );
    }
    let _ = writeln!(
        s,
        "\n{} (tolerance: counts {:.0} % of A; windows {:.0} % + {} ms; p99 latency {:.0} % + {} ms, over {} records or more)",
        if c.worse {
            "B is worse than A"
        } else {
            "B is not worse than A"
        },
        t.relative * 100.0,
        t.relative * 100.0,
        t.window_slack_ms,
        t.latency_relative * 100.0,
        t.latency_slack_ms,
        t.min_latency_samples
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(lost: u64, window: u64, p99: f64) -> Value {
        json!({
            "scenario": "rolling-restart", "run_id": "r", "verdict": if lost == 0 { "pass" } else { "fail" },
            "anomalies": { "lost": lost, "duplicates": 0 },
            "unavailability": [
                { "partition": "orders/0", "kind": "produce", "start_ms": 1000, "end_ms": 1000 + window,
                  "duration_ms": window, "step": "roll", "open": false },
                { "partition": "zk:zk1", "kind": "zookeeper", "start_ms": 1000, "end_ms": 90000,
                  "duration_ms": 89000, "step": "roll", "open": false }
            ],
            "max_unavailable_ms": window,
            "latency_ms": { "ack": { "count": 5000, "p50": 1.0, "p99": p99, "max": p99 },
                            "e2e": { "count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0 } },
            "latency_by_step": { "roll": { "ack": { "count": 5000, "p50": 1.0, "p99": p99, "max": p99 },
                                           "e2e": { "count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0 } },
                                 "heal": { "ack": { "count": 50, "p50": 1.0, "p99": p99 * 9.0, "max": p99 },
                                           "e2e": { "count": 0, "p50": 0.0, "p99": 0.0, "max": 0.0 } } }
        })
    }

    /// What the comparison calls worse.
    fn worse_rows(c: &Comparison) -> Vec<&str> {
        c.rows
            .iter()
            .filter(|r| r.worse)
            .map(|r| r.what.as_str())
            .collect()
    }

    #[test]
    fn the_same_figures_are_not_worse() {
        let c = compare(
            &report(0, 2000, 20.0),
            &report(0, 2000, 20.0),
            &Tolerance::default(),
        );
        assert!(!c.worse, "{c:?}");
    }

    #[test]
    fn a_loss_the_first_run_did_not_have_is_worse_and_fails_the_verdict_row() {
        let c = compare(
            &report(0, 2000, 20.0),
            &report(1, 2000, 20.0),
            &Tolerance::default(),
        );
        assert!(c.worse);
        let worse = worse_rows(&c);
        assert_eq!(worse, vec!["verdict", "lost"]);
        // the other way round: better, not worse
        assert!(
            !compare(
                &report(1, 2000, 20.0),
                &report(0, 2000, 20.0),
                &Tolerance::default()
            )
            .worse
        );
    }

    #[test]
    fn longer_windows_and_latency_count_only_beyond_the_tolerance() {
        let t = Tolerance::default();
        // 2000 → 3000 ms: within 20 % + 1000 ms (3400)
        assert!(!compare(&report(0, 2000, 20.0), &report(0, 3000, 20.0), &t).worse);
        let c = compare(&report(0, 2000, 20.0), &report(0, 5000, 20.0), &t);
        let worse = worse_rows(&c);
        assert_eq!(
            worse,
            vec![
                "roll: longest window ms",
                "longest partition window ms (the run)"
            ]
        );
        // ZooKeeper's own windows are not the clients' windows
        assert!(!c.rows.iter().any(|r| r.what.contains("89000")));
        // latency: 20 → 85 ms is within 100 % + 50 ms (90); 20 → 100 is not — except
        // where few records give the p99
        assert!(!compare(&report(0, 2000, 20.0), &report(0, 2000, 85.0), &t).worse);
        let c = compare(&report(0, 2000, 20.0), &report(0, 2000, 100.0), &t);
        let worse = worse_rows(&c);
        assert_eq!(worse, vec!["(run): ack p99 ms", "roll: ack p99 ms"]);
        assert!(c
            .rows
            .iter()
            .any(|r| r.what == "heal: ack p99 ms (few records: not judged)"));
    }

    #[test]
    fn a_report_of_another_scenario_is_compared_with_a_note() {
        let mut b = report(0, 2000, 20.0);
        b["scenario"] = json!("zk-mitosis");
        let c = compare(&report(0, 2000, 20.0), &b, &Tolerance::default());
        assert_eq!(c.notes.len(), 1);
        assert!(text(&c, &Tolerance::default()).contains("B is not worse than A"));
    }
}
