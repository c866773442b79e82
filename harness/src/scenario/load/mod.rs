//! Reading and validating a scenario file. Every problem is reported with the file, line,
//! column, field and a hint — all of them at once, before anything starts.
//!
//! The top-level tables each have a file ([`cluster`], [`workload`], [`expect`] with
//! `[check]`); steps are parsed by their action families (`super::actions`). Required fields
//! are optional to serde and checked here, so a missing one is reported with the rest.

mod cluster;
pub(crate) use cluster::kafka_release;
mod expect;
mod workload;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::actions::{self, RawStep};
use super::model::*;
use super::units;
use crate::error::{ScenarioError, ScenarioErrors};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    #[serde(default)]
    name: Option<Spanned<String>>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    cluster: Option<Spanned<cluster::RawCluster>>,
    #[serde(default)]
    workload: Option<Spanned<workload::RawWorkload>>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    check: Option<expect::RawCheck>,
    #[serde(default)]
    expect: Option<expect::RawExpect>,
}

/// A count bound as written: a number (at most) or a text (`"> 0"`, `"any"`).
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum RawBound {
    Number(i64),
    Text(String),
}

/// Collects located errors while validating.
pub(crate) struct Problems<'a> {
    /// The scenario file (for messages).
    pub file: &'a Path,
    /// Its text (for line and column).
    pub text: &'a str,
    /// What was found so far.
    pub list: Vec<ScenarioError>,
}

impl Problems<'_> {
    /// Records a problem at `span`.
    pub fn at(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let (line, column) = line_col(self.text, span.start);
        self.list.push(ScenarioError {
            file: self.file.to_path_buf(),
            line,
            column,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        });
    }

    /// A duration field, `default` when absent or invalid (reported).
    pub fn duration(
        &mut self,
        v: &Option<Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(s) => units::parse_duration(s.get_ref()).unwrap_or_else(|| {
                self.at(
                    s.span(),
                    field,
                    format!("`{}` is not a duration", s.get_ref()),
                    "write e.g. \"500ms\", \"10s\" or \"2m\"",
                );
                default
            }),
        }
    }

    /// A count bound field, `default` when absent or invalid (reported).
    pub fn bound(&mut self, v: &Option<Spanned<RawBound>>, field: &str, default: Bound) -> Bound {
        let Some(s) = v else { return default };
        let parsed = match s.get_ref() {
            RawBound::Number(n) if *n >= 0 => Some(Bound::AtMost(*n as u64)),
            RawBound::Number(_) => None,
            RawBound::Text(t) => Bound::parse(t),
        };
        parsed.unwrap_or_else(|| {
            self.at(
                s.span(),
                field,
                "not a count bound",
                "write a number (the most allowed), or \"> 0\", \">= 10\", \"== 3\", \"any\"",
            );
            default
        })
    }
}

impl Problems<'_> {
    /// A field the table must have: reported at the table when missing (every missing
    /// field is one problem among the others, not the end of validation).
    pub fn required<T>(
        &mut self,
        v: Option<T>,
        table: Range<usize>,
        field: &str,
        hint: &str,
    ) -> Option<T> {
        if v.is_none() {
            let key = field.rsplit('.').next().unwrap_or(field);
            self.at(table, field, format!("missing field `{key}`"), hint);
        }
        v
    }
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map(|i| before.len() - i)
        .unwrap_or(before.len() + 1);
    (line, col)
}

pub(crate) fn config_map(
    p: &mut Problems<'_>,
    raw: &BTreeMap<String, toml::Value>,
    span: Range<usize>,
    field: &str,
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in raw {
        let s = match v {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            _ => {
                p.at(
                    span.clone(),
                    format!("{field}.{k}"),
                    "must be a string, number or boolean",
                    "write the property value as Kafka expects it, e.g. \"5000\"",
                );
                continue;
            }
        };
        out.insert(k.clone(), s);
    }
    out
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ScenarioErrors(vec![ScenarioError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
            hint: "give the path of a scenario .toml file, e.g. scenarios/rolling-restart.toml"
                .into(),
        }])
    })?;
    parse(path, &text)
}

/// Validates scenario text (`path` is used in messages only).
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioErrors> {
    parse_as(path, text, false)
}

/// Reads and validates the scenario of a watch (`harness watch`): a workload and `[expect]`
/// bounds, without `[cluster]` (the cluster is the one watched) and without steps (on a
/// live cluster the operator acts, and says so with `harness mark`).
pub fn load_watch(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ScenarioErrors(vec![ScenarioError {
            file: path.to_path_buf(),
            line: 0,
            column: 0,
            field: "(file)".into(),
            message: format!("cannot read: {e}"),
            hint: "give the path of a watch scenario .toml file (a [workload] and an [expect])"
                .into(),
        }])
    })?;
    parse_watch(path, &text)
}

/// Validates the text of a watch scenario (see [`load_watch`]).
pub fn parse_watch(path: &Path, text: &str) -> Result<Scenario, ScenarioErrors> {
    parse_as(path, text, true)
}

fn parse_as(path: &Path, text: &str, live: bool) -> Result<Scenario, ScenarioErrors> {
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        let msg = match e.message().trim() {
            // the toml crate gives no words for some syntax errors (`key =` with nothing
            // after it): say what the parser stopped at
            "" => "the TOML parser stopped here: a value is missing or malformed \
                   (a string, number, boolean, date, array or inline table is expected)"
                .to_string(),
            m => m.to_string(),
        };
        let hint = if msg.contains("unknown field") {
            "remove or correct the field; the README lists every field of each table"
        } else {
            "fix the TOML syntax or the value's type"
        };
        ScenarioErrors(vec![ScenarioError {
            file: path.to_path_buf(),
            line,
            column,
            field: "(toml)".into(),
            message: msg,
            hint: hint.into(),
        }])
    })?;
    let mut p = Problems {
        file: path,
        text,
        list: Vec::new(),
    };
    let whole = 0..0;

    // --- name
    let name = p.required(
        raw.name,
        whole.clone(),
        "name",
        "name = \"rolling-restart\" (it becomes part of the run id)",
    );
    if let Some(n) = &name {
        let valid = !n.get_ref().is_empty()
            && n.get_ref().len() <= 40
            && n.get_ref()
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            p.at(
                n.span(),
                "name",
                "must be 1-40 characters of letters, digits, '-' or '_'",
                "it becomes part of the run id and directory names, e.g. \"rolling-restart\"",
            );
        }
    }

    // --- cluster and workload: the steps and expectations are checked against them
    let cluster = if live {
        if let Some(c) = &raw.cluster {
            p.at(
                c.span(),
                "cluster",
                "a watch runs against the cluster given with --bootstrap; a watch scenario has no [cluster] table",
                "remove [cluster] (a scenario with one runs on a cluster of its own: `harness run`)",
            );
        }
        if let Some(s) = raw.steps.first() {
            p.at(
                s.span(),
                "step",
                "steps act on clusters the harness starts; on a live cluster the operator acts",
                "remove the [[step]] tables, and mark each action of the runbook with `harness mark \"…\"` while the watch runs",
            );
        }
        Some(ClusterSpec::live())
    } else {
        p.required(
            raw.cluster,
            whole.clone(),
            "cluster",
            "add a [cluster] table: kafka, zookeeper, brokers (see the README)",
        )
        .map(|raw_cluster| cluster::validate(&mut p, &raw_cluster))
    };
    let check_span = whole.clone();
    let raw_workload = p.required(
        raw.workload,
        whole,
        "workload",
        "add a [workload] table: topics, producers, rate, acks, idempotence (see the README)",
    );
    let (Some(cluster), Some(raw_workload)) = (cluster, raw_workload) else {
        return Err(p.into_errors());
    };
    let workload = workload::validate(&mut p, &raw_workload, &cluster);

    // --- steps
    let parsed = actions::parse_steps(&mut p, &raw.steps, &cluster, &workload);

    // --- check and expect
    let check = expect::check_settings(&mut p, raw.check.as_ref(), live);
    if check.zookeeper_smoke && cluster.is_kraft() {
        p.at(
            check_span.clone(),
            "check.zookeeper_smoke",
            "a ZooKeeper smoke test on a KRaft cluster (it has no ZooKeeper)",
            "remove zookeeper_smoke; the quorum's health is in the metadata check",
        );
    }
    let mut expect = expect::validate(
        &mut p,
        raw.expect.as_ref(),
        &check,
        &cluster,
        &workload,
        &parsed.names,
    );
    // what a `create-metadata` step made must be there at the end
    expect.metadata_survival_intact = parsed.steps.iter().any(|s| {
        matches!(
            s.action,
            super::Action::Broker(super::BrokerAction::CreateMetadata { .. })
        )
    });

    if !p.list.is_empty() {
        return Err(p.into_errors());
    }
    Ok(Scenario {
        name: name.map(Spanned::into_inner).unwrap_or_default(),
        description: raw.description,
        file: path.to_path_buf(),
        cluster,
        workload,
        steps: parsed.steps,
        check,
        expect,
    })
}

impl Problems<'_> {
    /// Every problem, in file order.
    fn into_errors(mut self) -> ScenarioErrors {
        self.list.sort_by_key(|e| (e.line, e.column));
        ScenarioErrors(self.list)
    }
}
