//! Reading and validating a scenario file. Every problem is reported with the file, line,
//! column, field and a hint — all of them at once, before anything starts.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;
use workers::{Acks, ProducerSettings};

use super::duration;
use super::model::*;
use crate::error::{ScenarioError, ScenarioErrors};

/// The actions a step can name, for hints.
pub const ACTIONS: &[&str] = &[
    "partition",
    "heal",
    "loss",
    "bandwidth",
    "delay",
    "start",
    "stop",
    "kill",
    "pause",
    "resume",
    "restart",
    "rolling-restart",
    "wait-healthy",
    "sleep",
    "mark",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    cluster: Spanned<RawCluster>,
    workload: Spanned<RawWorkload>,
    #[serde(default, rename = "step")]
    steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    check: Option<RawCheck>,
    #[serde(default)]
    expect: Option<RawExpect>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCluster {
    #[serde(default)]
    backend: Option<Spanned<String>>,
    #[serde(default)]
    hosts: Option<Spanned<String>>,
    kafka: Spanned<String>,
    zookeeper: Spanned<Vec<String>>,
    brokers: Spanned<Vec<String>>,
    #[serde(default)]
    broker_config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    zookeeper_config: BTreeMap<String, toml::Value>,
    #[serde(default)]
    broker_heap_mb: Option<u32>,
    #[serde(default)]
    zookeeper_heap_mb: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTopic {
    name: String,
    partitions: u32,
    replication: u32,
    #[serde(default)]
    min_insync: Option<u32>,
    #[serde(default)]
    config: BTreeMap<String, toml::Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorkload {
    topics: Spanned<Vec<Spanned<RawTopic>>>,
    producers: Spanned<u32>,
    #[serde(default)]
    producer_processes: Option<Spanned<u32>>,
    #[serde(default)]
    consumers: u32,
    #[serde(default)]
    consumer_processes: Option<Spanned<u32>>,
    rate: Spanned<f64>,
    #[serde(default)]
    size: Option<Spanned<usize>>,
    acks: Spanned<String>,
    idempotence: Spanned<bool>,
    #[serde(default)]
    retries: Option<u32>,
    #[serde(default)]
    max_in_flight: Option<Spanned<u32>>,
    #[serde(default)]
    linger_ms: Option<u32>,
    #[serde(default)]
    delivery_timeout: Option<Spanned<String>>,
    #[serde(default)]
    request_timeout: Option<Spanned<String>>,
    #[serde(default)]
    consumer_session_timeout: Option<Spanned<String>>,
    #[serde(default)]
    warmup: Option<Spanned<String>>,
    #[serde(default)]
    settle: Option<Spanned<String>>,
    #[serde(default)]
    drain_timeout: Option<Spanned<String>>,
    #[serde(default)]
    final_read_timeout: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    name: Spanned<String>,
    #[serde(rename = "do")]
    action: Spanned<String>,
    #[serde(default)]
    node: Option<Spanned<String>>,
    #[serde(default)]
    nodes: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    duration: Option<Spanned<String>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
    #[serde(default)]
    timeout: Option<Spanned<String>>,
    #[serde(default)]
    bind: Option<Spanned<String>>,
    #[serde(default)]
    from: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    to: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    direction: Option<Spanned<String>>,
    #[serde(default)]
    fault: Option<Spanned<String>>,
    #[serde(default)]
    probability: Option<Spanned<f64>>,
    #[serde(default)]
    rate: Option<Spanned<String>>,
    #[serde(default)]
    latency: Option<Spanned<String>>,
    #[serde(default)]
    jitter: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCheck {
    #[serde(default)]
    window_threshold: Option<Spanned<String>>,
    #[serde(default)]
    attribution_grace: Option<Spanned<String>>,
    #[serde(default)]
    zookeeper_smoke: bool,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawBound {
    Number(i64),
    Text(String),
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    lost: Option<Spanned<RawBound>>,
    lost_step: Option<Spanned<String>>,
    duplicates: Option<Spanned<RawBound>>,
    reordered: Option<Spanned<RawBound>>,
    inconsistent_offsets: Option<Spanned<RawBound>>,
    unexpected: Option<Spanned<RawBound>>,
    poll_gaps: Option<Spanned<RawBound>>,
    poll_regressions: Option<Spanned<RawBound>>,
    unconsumed: Option<Spanned<RawBound>>,
    max_unavailable_ms: Option<Spanned<i64>>,
    min_acked: Option<Spanned<i64>>,
    unreadable_partitions: Option<Spanned<RawBound>>,
    #[serde(default)]
    step: BTreeMap<String, Spanned<RawStepExpect>>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawStepExpect {
    max_unavailable_ms: Option<Spanned<i64>>,
    lost: Option<Spanned<RawBound>>,
}

/// Collects located errors while validating.
struct Problems<'a> {
    file: &'a Path,
    text: &'a str,
    list: Vec<ScenarioError>,
}

impl Problems<'_> {
    fn at(
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

    fn duration(
        &mut self,
        v: &Option<Spanned<String>>,
        field: &str,
        default: Duration,
    ) -> Duration {
        match v {
            None => default,
            Some(s) => duration::parse(s.get_ref()).unwrap_or_else(|| {
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

    fn bound(&mut self, v: &Option<Spanned<RawBound>>, field: &str, default: Bound) -> Bound {
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

fn config_map(
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
    let raw: RawScenario = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        let msg = e.message().to_string();
        let hint = if msg.contains("unknown field") {
            "remove or correct the field; the README lists every field of each table"
        } else if msg.contains("missing field") {
            "add the field; see the scenario format in the README"
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

    // --- name
    let name = raw.name.get_ref().clone();
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        p.at(
            raw.name.span(),
            "name",
            "must be 1-40 characters of letters, digits, '-' or '_'",
            "it becomes part of the run id and directory names, e.g. \"rolling-restart\"",
        );
    }

    // --- cluster
    let rc = raw.cluster.get_ref();
    let backend = match rc.backend.as_ref().map(|b| b.get_ref().as_str()) {
        None | Some("local") => Backend::Local,
        Some(other) => {
            let b = rc.backend.as_ref().unwrap();
            p.at(
                b.span(),
                "cluster.backend",
                format!("backend `{other}` is not available in this version"),
                "use backend = \"local\" (docker, ec2 and external are planned)",
            );
            Backend::Local
        }
    };
    let kafka_version = match rc.kafka.get_ref().as_str() {
        "3.9" | "3.9.1" => "3.9.1".to_string(),
        v => {
            p.at(
                rc.kafka.span(),
                "cluster.kafka",
                format!("Kafka `{v}` is not supported"),
                "use kafka = \"3.9\" (3.9.1, ZooKeeper mode)",
            );
            "3.9.1".to_string()
        }
    };
    let zookeeper = rc.zookeeper.get_ref().clone();
    let brokers = rc.brokers.get_ref().clone();
    if zookeeper.is_empty() {
        p.at(
            rc.zookeeper.span(),
            "cluster.zookeeper",
            "no ZooKeeper nodes",
            "Kafka 3.9 in ZooKeeper mode needs an ensemble, e.g. [\"zk1\", \"zk2\", \"zk3\"]",
        );
    }
    if brokers.is_empty() {
        p.at(
            rc.brokers.span(),
            "cluster.brokers",
            "no brokers",
            "name at least one broker, e.g. [\"kafka1\", \"kafka2\", \"kafka3\"]",
        );
    }
    let mut seen = HashSet::new();
    for (n, span) in zookeeper
        .iter()
        .map(|n| (n, rc.zookeeper.span()))
        .chain(brokers.iter().map(|n| (n, rc.brokers.span())))
    {
        if !seen.insert(n.clone()) {
            p.at(
                span.clone(),
                "cluster",
                format!("node name `{n}` is used twice"),
                "every ZooKeeper node and broker needs its own name",
            );
        }
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            || n.starts_with('@')
        {
            p.at(
                span,
                "cluster",
                format!("`{n}` is not a valid node name"),
                "use letters, digits, '-' and '_'",
            );
        }
    }
    let hosts = match rc.hosts.as_ref().map(|h| h.get_ref().as_str()) {
        None | Some("auto") => HostMode::Auto,
        Some("namespaces") => HostMode::Namespaces,
        Some("loopback") => HostMode::Loopback,
        Some(other) => {
            p.at(rc.hosts.as_ref().unwrap().span(), "cluster.hosts", format!("`{other}` is not a host mode"), "hosts = \"auto\" (namespaces when root, else loopback), \"namespaces\" or \"loopback\"");
            HostMode::Auto
        }
    };
    let cluster = ClusterSpec {
        backend,
        hosts,
        kafka_version,
        zookeeper: zookeeper.clone(),
        brokers: brokers.clone(),
        broker_config: config_map(
            &mut p,
            &rc.broker_config,
            raw.cluster.span(),
            "cluster.broker_config",
        ),
        zookeeper_config: config_map(
            &mut p,
            &rc.zookeeper_config,
            raw.cluster.span(),
            "cluster.zookeeper_config",
        ),
        broker_heap_mb: rc.broker_heap_mb.unwrap_or(384),
        zookeeper_heap_mb: rc.zookeeper_heap_mb.unwrap_or(96),
    };

    // --- workload
    let rw = raw.workload.get_ref();
    let mut topics = Vec::new();
    let mut topic_names = HashSet::new();
    for (i, t) in rw.topics.get_ref().iter().enumerate() {
        let field = format!("workload.topics[{i}]");
        let rt = t.get_ref();
        if !topic_names.insert(rt.name.clone()) {
            p.at(
                t.span(),
                &field,
                format!("topic `{}` is listed twice", rt.name),
                "give each topic once",
            );
        }
        if rt.name.is_empty()
            || rt.name.starts_with("__")
            || !rt
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            p.at(
                t.span(),
                format!("{field}.name"),
                format!("`{}` is not a usable topic name", rt.name),
                "letters, digits, '.', '_', '-'; not starting with \"__\"",
            );
        }
        if rt.partitions == 0 || rt.partitions > 10_000 {
            p.at(
                t.span(),
                format!("{field}.partitions"),
                "must be 1..=10000",
                "e.g. partitions = 12",
            );
        }
        if rt.replication == 0 || rt.replication as usize > brokers.len() {
            p.at(
                t.span(),
                format!("{field}.replication"),
                format!(
                    "replication {} with {} brokers",
                    rt.replication,
                    brokers.len()
                ),
                "replication must be between 1 and the number of brokers",
            );
        }
        let min_insync = rt.min_insync.unwrap_or(1);
        if min_insync == 0 || min_insync > rt.replication {
            p.at(
                t.span(),
                format!("{field}.min_insync"),
                format!(
                    "min_insync {min_insync} with replication {}",
                    rt.replication
                ),
                "min_insync must be between 1 and the replication",
            );
        }
        topics.push(Topic {
            name: rt.name.clone(),
            partitions: rt.partitions,
            replication: rt.replication,
            min_insync,
            config: config_map(&mut p, &rt.config, t.span(), &format!("{field}.config")),
        });
    }
    if topics.is_empty() {
        p.at(rw.topics.span(), "workload.topics", "no topics", "add e.g. topics = [{ name = \"orders\", partitions = 12, replication = 3, min_insync = 2 }]");
    }
    let producers = *rw.producers.get_ref();
    if producers == 0 {
        p.at(
            rw.producers.span(),
            "workload.producers",
            "needs at least one producer",
            "producers = 4",
        );
    }
    let rate = *rw.rate.get_ref();
    if !(rate > 0.0 && rate <= 100_000.0) {
        p.at(
            rw.rate.span(),
            "workload.rate",
            "must be > 0 and at most 100000 records/s per producer",
            "rate = 500",
        );
    }
    let size = rw.size.as_ref().map(|s| *s.get_ref()).unwrap_or(512);
    if let Some(s) = &rw.size {
        if !(workers::record::HEADER_LEN..=1_000_000).contains(s.get_ref()) {
            p.at(
                s.span(),
                "workload.size",
                format!("must be {}..=1000000 bytes", workers::record::HEADER_LEN),
                "the record header alone takes 36 bytes; size = 512",
            );
        }
    }
    let acks = match rw.acks.get_ref().as_str() {
        "all" | "-1" => Acks::All,
        "1" => Acks::Leader,
        "0" => Acks::None,
        other => {
            p.at(
                rw.acks.span(),
                "workload.acks",
                format!("`{other}` is not an acks setting"),
                "acks = \"all\", \"1\" or \"0\"",
            );
            Acks::All
        }
    };
    let idempotence = *rw.idempotence.get_ref();
    let max_in_flight = rw.max_in_flight.as_ref().map(|m| *m.get_ref()).unwrap_or(5);
    if idempotence && acks != Acks::All {
        p.at(
            rw.idempotence.span(),
            "workload.idempotence",
            "idempotence needs acks = \"all\"",
            "set acks = \"all\" or idempotence = false",
        );
    }
    if let Some(m) = &rw.max_in_flight {
        if *m.get_ref() == 0 || (idempotence && *m.get_ref() > 5) {
            p.at(
                m.span(),
                "workload.max_in_flight",
                "must be 1..=5 with idempotence, and at least 1",
                "max_in_flight = 5",
            );
        }
    }
    let delivery_timeout = p.duration(
        &rw.delivery_timeout,
        "workload.delivery_timeout",
        Duration::from_secs(60),
    );
    let request_timeout = p.duration(
        &rw.request_timeout,
        "workload.request_timeout",
        Duration::from_secs(10),
    );
    let proc_count =
        |v: &Option<Spanned<u32>>, instances: u32, p: &mut Problems<'_>, field: &str| -> u32 {
            match v {
                None => instances.clamp(1, 2),
                Some(s) if *s.get_ref() == 0 || *s.get_ref() > instances.max(1) => {
                    p.at(
                        s.span(),
                        field,
                        "must be between 1 and the number of instances",
                        "each process hosts several client instances; e.g. 2",
                    );
                    1
                }
                Some(s) => *s.get_ref(),
            }
        };
    let workload = Workload {
        topics,
        producers,
        producer_processes: proc_count(
            &rw.producer_processes,
            producers,
            &mut p,
            "workload.producer_processes",
        ),
        consumers: rw.consumers,
        consumer_processes: proc_count(
            &rw.consumer_processes,
            rw.consumers,
            &mut p,
            "workload.consumer_processes",
        ),
        producer: ProducerSettings {
            rate,
            size,
            acks,
            idempotence,
            retries: rw.retries.unwrap_or(i32::MAX as u32),
            max_in_flight,
            linger_ms: rw.linger_ms.unwrap_or(5),
            delivery_timeout_ms: delivery_timeout.as_millis() as u32,
            request_timeout_ms: request_timeout.as_millis() as u32,
        },
        consumer_session_timeout_ms: p
            .duration(
                &rw.consumer_session_timeout,
                "workload.consumer_session_timeout",
                Duration::from_secs(10),
            )
            .as_millis() as u32,
        warmup: p.duration(&rw.warmup, "workload.warmup", Duration::from_secs(5)),
        settle: p.duration(&rw.settle, "workload.settle", Duration::from_secs(5)),
        drain_timeout: p.duration(
            &rw.drain_timeout,
            "workload.drain_timeout",
            Duration::from_secs(60),
        ),
        final_read_timeout: p.duration(
            &rw.final_read_timeout,
            "workload.final_read_timeout",
            Duration::from_secs(120),
        ),
    };

    // --- steps
    let steps = validate_steps(&mut p, &raw.steps, &cluster, &workload);

    // --- check
    let check = CheckSettings {
        zookeeper_smoke: raw.check.as_ref().is_some_and(|c| c.zookeeper_smoke),
        window_threshold_ms: raw
            .check
            .as_ref()
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
            .check
            .as_ref()
            .map(|c| {
                p.duration(
                    &c.attribution_grace,
                    "check.attribution_grace",
                    Duration::from_millis(500),
                )
            })
            .unwrap_or(Duration::from_millis(500))
            .as_millis() as u64,
    };

    // --- expect
    let re = raw.expect.as_ref();
    let empty = RawExpect::default();
    let re = re.unwrap_or(&empty);
    let ordered = workload.producer.ordered();
    let lost_step = re.lost_step.as_ref().map(|s| {
        if !steps.iter().any(|st| &st.name == s.get_ref()) {
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
    let expect = Expect {
        lost: p.bound(&re.lost, "expect.lost", Bound::AtMost(0)),
        lost_step,
        duplicates: p.bound(
            &re.duplicates,
            "expect.duplicates",
            if idempotence {
                Bound::AtMost(0)
            } else {
                Bound::Any
            },
        ),
        reordered: p.bound(
            &re.reordered,
            "expect.reordered",
            if ordered {
                Bound::AtMost(0)
            } else {
                Bound::Any
            },
        ),
        inconsistent_offsets: p.bound(
            &re.inconsistent_offsets,
            "expect.inconsistent_offsets",
            Bound::AtMost(0),
        ),
        unexpected: p.bound(&re.unexpected, "expect.unexpected", Bound::AtMost(0)),
        poll_gaps: p.bound(&re.poll_gaps, "expect.poll_gaps", Bound::AtMost(0)),
        poll_regressions: p.bound(
            &re.poll_regressions,
            "expect.poll_regressions",
            Bound::AtMost(0),
        ),
        unconsumed: p.bound(
            &re.unconsumed,
            "expect.unconsumed",
            if workload.consumers > 0 {
                Bound::AtMost(0)
            } else {
                Bound::Any
            },
        ),
        max_unavailable_ms: nonneg(&re.max_unavailable_ms, &mut p, "expect.max_unavailable_ms"),
        min_acked: nonneg(&re.min_acked, &mut p, "expect.min_acked").unwrap_or(1),
        unreadable_partitions: p.bound(
            &re.unreadable_partitions,
            "expect.unreadable_partitions",
            Bound::AtMost(0),
        ),
        per_step: re
            .step
            .iter()
            .map(|(name, se)| {
                let field = format!("expect.step.\"{name}\"");
                if !steps.iter().any(|st| &st.name == name) {
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
                        &mut p,
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
    };

    if !p.list.is_empty() {
        p.list.sort_by_key(|e| (e.line, e.column));
        return Err(ScenarioErrors(p.list));
    }
    Ok(Scenario {
        name,
        description: raw.description,
        file: path.to_path_buf(),
        cluster,
        workload,
        steps,
        check,
        expect,
    })
}

/// What the validator knows of a node's state at a point of the procedure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum NodeState {
    Running,
    Stopped,
    Paused,
    /// Bound by a step that was itself invalid: anything goes, so one mistake is reported
    /// once rather than again at every later use of the name.
    Unknown,
}

fn validate_steps(
    p: &mut Problems<'_>,
    raw: &[Spanned<RawStep>],
    cluster: &ClusterSpec,
    workload: &Workload,
) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut names = HashSet::new();
    // network faults active at each point (by name)
    let mut faults: HashSet<String> = HashSet::new();
    // node states; bound targets tracked under "@name"
    let mut state: HashMap<String, NodeState> = cluster
        .zookeeper
        .iter()
        .chain(cluster.brokers.iter())
        .map(|n| (n.clone(), NodeState::Running))
        .collect();
    for (i, rs) in raw.iter().enumerate() {
        let s = rs.get_ref();
        let f = |x: &str| format!("step[{}].{x}", i + 1);
        let (line, _) = line_col(p.text, rs.span().start);
        if !names.insert(s.name.get_ref().clone()) {
            p.at(
                s.name.span(),
                f("name"),
                format!("two steps are named `{}`", s.name.get_ref()),
                "step names identify steps in the report; make them unique",
            );
        }
        // a later `@name` must not fail just because this step is invalid
        if let Some(b) = &s.bind {
            state
                .entry(format!("@{}", b.get_ref()))
                .or_insert(NodeState::Unknown);
        }
        let kw = s.action.get_ref().as_str();
        // Which optional arguments each action takes.
        let (required, optional): (&[&str], &[&str]) = match kw {
            "start" | "stop" | "kill" | "pause" | "resume" | "restart" => (&["node"], &["bind"]),
            "rolling-restart" => (&[], &["nodes", "interval", "timeout"]),
            "wait-healthy" => (&[], &["timeout"]),
            "sleep" => (&["duration"], &[]),
            "mark" => (&[], &[]),
            "partition" => (&["from"], &["to", "direction", "fault"]),
            "heal" => (&[], &["fault"]),
            "loss" => (&["node", "probability"], &["fault"]),
            "bandwidth" => (&["node", "rate"], &["fault"]),
            "delay" => (&["node", "latency"], &["jitter", "fault"]),
            other => {
                let near = ACTIONS
                    .iter()
                    .min_by_key(|a| edit_distance(a, other))
                    .unwrap();
                p.at(
                    s.action.span(),
                    f("do"),
                    format!("unknown action `{other}`"),
                    format!("did you mean `{near}`? actions: {}", ACTIONS.join(", ")),
                );
                continue;
            }
        };
        let given: Vec<(&str, Range<usize>)> = [
            ("node", s.node.as_ref().map(|v| v.span())),
            ("nodes", s.nodes.as_ref().map(|v| v.span())),
            ("duration", s.duration.as_ref().map(|v| v.span())),
            ("interval", s.interval.as_ref().map(|v| v.span())),
            ("timeout", s.timeout.as_ref().map(|v| v.span())),
            ("bind", s.bind.as_ref().map(|v| v.span())),
            ("from", s.from.as_ref().map(|v| v.span())),
            ("to", s.to.as_ref().map(|v| v.span())),
            ("direction", s.direction.as_ref().map(|v| v.span())),
            ("fault", s.fault.as_ref().map(|v| v.span())),
            ("probability", s.probability.as_ref().map(|v| v.span())),
            ("rate", s.rate.as_ref().map(|v| v.span())),
            ("latency", s.latency.as_ref().map(|v| v.span())),
            ("jitter", s.jitter.as_ref().map(|v| v.span())),
        ]
        .into_iter()
        .filter_map(|(k, sp)| sp.map(|sp| (k, sp)))
        .collect();
        let mut ok = true;
        for (k, sp) in &given {
            if !required.contains(k) && !optional.contains(k) {
                p.at(
                    sp.clone(),
                    f(k),
                    format!("`{kw}` takes no `{k}`"),
                    format!(
                        "`{kw}` takes: {}",
                        required
                            .iter()
                            .chain(optional)
                            .copied()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
                ok = false;
            }
        }
        for k in required {
            if !given.iter().any(|(g, _)| g == k) {
                p.at(s.action.span(), f(k), format!("`{kw}` needs `{k}`"), match *k {
                    "node" => "node = \"kafka1\", or \"leader:TOPIC/PARTITION\", \"follower:TOPIC/PARTITION\", \"@BOUND\"".to_string(),
                    "duration" => "duration = \"10s\"".to_string(),
                    _ => String::new(),
                });
                ok = false;
            }
        }
        if !ok {
            continue;
        }
        let target = s
            .node
            .as_ref()
            .map(|n| resolve_target(p, n, &f("node"), cluster, workload, &state));
        let dur = |p: &mut Problems<'_>, v: &Option<Spanned<String>>, k: &str, d: u64| {
            p.duration(v, &f(k), Duration::from_secs(d))
        };
        let action = match kw {
            "start" | "stop" | "kill" | "pause" | "resume" | "restart" => {
                let Some(Some(node)) = target else { continue };
                // simulate the node's state to catch impossible orders
                let key = match &node {
                    Target::Node(n) => Some(n.clone()),
                    Target::Bound(b) => Some(format!("@{b}")),
                    _ => None,
                };
                if let Some(key) = &key {
                    let cur = state.get(key).copied().unwrap_or(NodeState::Running);
                    let (allowed, next): (&[NodeState], NodeState) = match kw {
                        "start" => (&[NodeState::Stopped], NodeState::Running),
                        "stop" | "kill" => {
                            (&[NodeState::Running, NodeState::Paused], NodeState::Stopped)
                        }
                        "pause" => (&[NodeState::Running], NodeState::Paused),
                        "resume" => (&[NodeState::Paused], NodeState::Running),
                        _ => (&[NodeState::Running], NodeState::Running),
                    };
                    if cur != NodeState::Unknown && !allowed.contains(&cur) {
                        let sp = s.node.as_ref().unwrap().span();
                        p.at(sp, f("node"), format!("cannot {kw} `{node}`: it is {} at this point", format!("{cur:?}").to_lowercase()), "check the order of the steps (start after stop/kill, resume after pause)");
                    }
                    state.insert(key.clone(), next);
                }
                if let Some(b) = &s.bind {
                    let bname = b.get_ref().clone();
                    if bname.is_empty()
                        || !bname
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    {
                        p.at(
                            b.span(),
                            f("bind"),
                            "not a usable name",
                            "bind = \"victim\", then node = \"@victim\" in a later step",
                        );
                    }
                    let bound_state =
                        key.as_ref()
                            .and_then(|k| state.get(k).copied())
                            .unwrap_or(match kw {
                                "stop" | "kill" => NodeState::Stopped,
                                "pause" => NodeState::Paused,
                                _ => NodeState::Running,
                            });
                    state.insert(format!("@{bname}"), bound_state);
                }
                match kw {
                    "start" => Action::Start { node },
                    "stop" => Action::Stop { node },
                    "kill" => Action::Kill { node },
                    "pause" => Action::Pause { node },
                    "resume" => Action::Resume { node },
                    _ => Action::Restart { node },
                }
            }
            "rolling-restart" => {
                let nodes = match &s.nodes {
                    None => cluster.brokers.clone(),
                    Some(list) => {
                        for n in list.get_ref() {
                            if cluster.broker_id(n).is_none() {
                                p.at(
                                    list.span(),
                                    f("nodes"),
                                    format!("`{n}` is not a broker"),
                                    format!("brokers: {}", cluster.brokers.join(", ")),
                                );
                            } else if state.get(n) != Some(&NodeState::Running) {
                                p.at(
                                    list.span(),
                                    f("nodes"),
                                    format!("`{n}` is not running at this point"),
                                    "a rolling restart needs every broker it restarts running",
                                );
                            }
                        }
                        list.get_ref().clone()
                    }
                };
                Action::RollingRestart {
                    nodes,
                    interval: dur(p, &s.interval, "interval", 5),
                    timeout: dur(p, &s.timeout, "timeout", 120),
                }
            }
            "wait-healthy" => Action::WaitHealthy {
                timeout: dur(p, &s.timeout, "timeout", 120),
            },
            "sleep" => Action::Sleep {
                duration: dur(p, &s.duration, "duration", 0),
            },
            "mark" => Action::Mark,
            "heal" => {
                let fault = s.fault.as_ref().map(|f| f.get_ref().clone());
                match &fault {
                    Some(name) if !faults.remove(name) => p.at(
                        s.fault.as_ref().unwrap().span(),
                        f("fault"),
                        format!("no active fault `{name}` at this point"),
                        format!("active faults: {:?}; a fault is named by its `fault` (default: its step's name)", faults.iter().collect::<Vec<_>>()),
                    ),
                    Some(_) => {}
                    None => faults.clear(),
                }
                Action::Heal { fault }
            }
            _ => {
                // the network faults
                let fault = s
                    .fault
                    .as_ref()
                    .map(|f| f.get_ref().clone())
                    .unwrap_or_else(|| s.name.get_ref().clone());
                if !faults.insert(fault.clone()) {
                    p.at(
                        s.fault.as_ref().map(|f| f.span()).unwrap_or(s.name.span()),
                        f("fault"),
                        format!("fault `{fault}` is already active"),
                        "heal it first, or give this one another `fault` name",
                    );
                }
                let Some(node) = target.clone().flatten().or(if kw == "partition" {
                    Some(Target::Clients)
                } else {
                    None
                }) else {
                    continue;
                };
                match kw {
                    "partition" => {
                        let group = |p: &mut Problems<'_>,
                                     v: &Spanned<Vec<Spanned<String>>>,
                                     field: &str|
                         -> Vec<Target> {
                            if v.get_ref().is_empty() {
                                p.at(v.span(), field, "an empty group", "name at least one host, e.g. [\"kafka1\"] or [\"leader:orders/0\"]");
                            }
                            v.get_ref()
                                .iter()
                                .filter_map(|e| {
                                    if e.get_ref() == "clients" {
                                        Some(Target::Clients)
                                    } else {
                                        resolve_target(p, e, field, cluster, workload, &state)
                                    }
                                })
                                .collect()
                        };
                        let from = group(p, s.from.as_ref().unwrap(), &f("from"));
                        let to = s.to.as_ref().map(|t| group(p, t, &f("to")));
                        let both_ways = match s.direction.as_ref().map(|d| d.get_ref().as_str()) {
                            None | Some("both") => true,
                            Some("one-way") => false,
                            Some(other) => {
                                p.at(s.direction.as_ref().unwrap().span(), f("direction"), format!("`{other}` is not a direction"), "direction = \"both\" (default) or \"one-way\" (only packets from `from` to `to` are dropped)");
                                true
                            }
                        };
                        Action::Partition {
                            from,
                            to,
                            both_ways,
                            fault,
                        }
                    }
                    "loss" => {
                        let pr = s.probability.as_ref().unwrap();
                        if !(*pr.get_ref() > 0.0 && *pr.get_ref() < 1.0) {
                            p.at(
                                pr.span(),
                                f("probability"),
                                "must be between 0 and 1 (exclusive)",
                                "probability = 0.2 drops one packet in five",
                            );
                        }
                        Action::Loss {
                            node,
                            probability: *pr.get_ref(),
                            fault,
                        }
                    }
                    "bandwidth" => {
                        let r = s.rate.as_ref().unwrap();
                        if !valid_rate(r.get_ref()) {
                            p.at(
                                r.span(),
                                f("rate"),
                                format!("`{}` is not a rate", r.get_ref()),
                                "a number and a unit: \"512kbit\", \"2mbit\", \"1gbit\"",
                            );
                        }
                        Action::Bandwidth {
                            node,
                            rate: r.get_ref().clone(),
                            fault,
                        }
                    }
                    _ => Action::Delay {
                        node,
                        latency: p.duration(&s.latency, &f("latency"), Duration::from_millis(100)),
                        jitter: p.duration(&s.jitter, &f("jitter"), Duration::ZERO),
                        fault,
                    },
                }
            }
        };
        steps.push(Step {
            name: s.name.get_ref().clone(),
            action,
            bind: s.bind.as_ref().map(|b| b.get_ref().clone()),
            line,
        });
    }
    steps
}

/// Parses a `node` value; reports unknown nodes, topics, partitions and unbound names.
fn resolve_target(
    p: &mut Problems<'_>,
    v: &Spanned<String>,
    field: &str,
    cluster: &ClusterSpec,
    workload: &Workload,
    state: &HashMap<String, NodeState>,
) -> Option<Target> {
    let text = v.get_ref();
    let partition_ref = |rest: &str, p: &mut Problems<'_>| -> Option<(String, i32)> {
        let Some((topic, part)) = rest.rsplit_once('/') else {
            p.at(
                v.span(),
                field,
                format!("`{text}` lacks a partition"),
                "write TOPIC/PARTITION, e.g. \"leader:orders/0\"",
            );
            return None;
        };
        let Some(t) = workload.topics.iter().find(|t| t.name == topic) else {
            p.at(
                v.span(),
                field,
                format!("no workload topic `{topic}`"),
                format!(
                    "topics: {}",
                    workload
                        .topics
                        .iter()
                        .map(|t| t.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            return None;
        };
        match part.parse::<i32>() {
            Ok(n) if n >= 0 && (n as u32) < t.partitions => Some((topic.to_string(), n)),
            _ => {
                p.at(
                    v.span(),
                    field,
                    format!("`{part}` is not a partition of `{topic}`"),
                    format!("partitions are 0..{}", t.partitions),
                );
                None
            }
        }
    };
    if let Some(rest) = text.strip_prefix("leader:") {
        partition_ref(rest, p).map(|(topic, partition)| Target::Leader { topic, partition })
    } else if let Some(rest) = text.strip_prefix("follower:") {
        partition_ref(rest, p).map(|(topic, partition)| Target::Follower { topic, partition })
    } else if let Some(b) = text.strip_prefix('@') {
        if state.contains_key(&format!("@{b}")) {
            Some(Target::Bound(b.to_string()))
        } else {
            p.at(
                v.span(),
                field,
                format!("`@{b}` is not bound by an earlier step"),
                "add bind = \"NAME\" to an earlier step that targets the node",
            );
            None
        }
    } else if cluster.zookeeper.contains(text) || cluster.brokers.contains(text) {
        Some(Target::Node(text.clone()))
    } else {
        let all: Vec<&str> = cluster
            .zookeeper
            .iter()
            .chain(cluster.brokers.iter())
            .map(String::as_str)
            .collect();
        p.at(
            v.span(),
            field,
            format!("unknown host `{text}`"),
            format!(
                "nodes of this cluster: {}; or leader:TOPIC/P, follower:TOPIC/P, @BOUND",
                all.join(", ")
            ),
        );
        None
    }
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            cur.push(
                (prev[j] + usize::from(ca != *cb))
                    .min(prev[j + 1] + 1)
                    .min(cur[j] + 1),
            );
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A tc rate: digits, then bit, kbit, mbit, gbit, bps, kbps, mbps or gbps.
fn valid_rate(r: &str) -> bool {
    let i = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
    i > 0 && ["bit", "kbit", "mbit", "gbit", "bps", "kbps", "mbps", "gbps"].contains(&&r[i..])
}
