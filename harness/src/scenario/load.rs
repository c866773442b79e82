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
    "zk-config",
    "zk-reconfig",
    "zk-connect",
    "zk-copy",
    "add-brokers",
    "reassign",
    "drain",
    "elect-leaders",
    "audit",
    "switch-bootstrap",
    "migrate-brokers",
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
    #[serde(default)]
    dormant: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    ensembles: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    #[serde(default)]
    kafka_ensemble: Option<Spanned<String>>,
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
    #[serde(default)]
    participants: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    observers: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    add: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    add_observers: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    remove: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    via: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    servers: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    brokers: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    roll: Option<Spanned<bool>>,
    #[serde(default)]
    path: Option<Spanned<String>>,
    #[serde(default)]
    since: Option<Spanned<String>>,
    #[serde(default)]
    batch: Option<Spanned<i64>>,
    #[serde(default)]
    prune: Option<Spanned<bool>>,
    #[serde(default)]
    wait: Option<Spanned<bool>>,
    #[serde(default)]
    plan: Option<Spanned<Vec<RawPlannedPartition>>>,
    #[serde(default)]
    map: Option<Spanned<BTreeMap<String, String>>>,
    #[serde(default)]
    topics: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    replication: Option<Spanned<i64>>,
    #[serde(default)]
    avoid: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    onto: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    throttle: Option<Spanned<String>>,
    #[serde(default)]
    election: Option<Spanned<String>>,
    #[serde(default)]
    min_replicas: Option<Spanned<i64>>,
    #[serde(default)]
    bookkeeping_topic: Option<Spanned<String>>,
    #[serde(default)]
    interrupt_after: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlannedPartition {
    topic: String,
    partition: i64,
    replicas: Vec<String>,
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
    #[serde(default)]
    kafka_metadata: Option<bool>,
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
    duplicates_after_epoch_bump: Option<Spanned<RawBound>>,
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
        Some("docker") => Backend::Docker,
        Some(other) => {
            let b = rc.backend.as_ref().unwrap();
            p.at(
                b.span(),
                "cluster.backend",
                format!("backend `{other}` is not available in this version"),
                "use backend = \"local\" or \"docker\" (ec2 and external are planned)",
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
    let dormant = rc
        .dormant
        .as_ref()
        .map(|d| d.get_ref().clone())
        .unwrap_or_default();
    if let Some(d) = &rc.dormant {
        for n in d.get_ref() {
            if !zookeeper.contains(n) && !brokers.contains(n) {
                p.at(
                    d.span(),
                    "cluster.dormant",
                    format!("`{n}` is not a node of this cluster"),
                    format!(
                        "ZooKeeper nodes: {}; brokers: {}",
                        zookeeper.join(", "),
                        brokers.join(", ")
                    ),
                );
            }
        }
        if !brokers.is_empty() && brokers.iter().all(|b| d.get_ref().contains(b)) {
            p.at(
                d.span(),
                "cluster.dormant",
                "every broker is dormant",
                "the workload needs running brokers at the start; new brokers a step adds are dormant, the old ones are not",
            );
        }
        if zookeeper.iter().all(|z| d.get_ref().contains(z)) {
            p.at(
                d.span(),
                "cluster.dormant",
                "every ZooKeeper node is dormant",
                "the brokers need a running ensemble at the start; keep at least one group running",
            );
        }
    }
    let ensembles: BTreeMap<String, Vec<String>> = match &rc.ensembles {
        None => BTreeMap::from([("zookeeper".to_string(), zookeeper.clone())]),
        Some(e) => {
            let mut owner: HashMap<&str, &str> = HashMap::new();
            for (name, members) in e.get_ref() {
                if members.is_empty() {
                    p.at(
                        e.span(),
                        format!("cluster.ensembles.{name}"),
                        "an empty ensemble",
                        "list its ZooKeeper nodes, e.g. source = [\"zk1\", \"zk2\", \"zk3\"]",
                    );
                }
                if zookeeper.contains(name) || brokers.contains(name) {
                    p.at(
                        e.span(),
                        format!("cluster.ensembles.{name}"),
                        format!("`{name}` is also a node name"),
                        "steps accept both node and ensemble names: give the ensemble another name",
                    );
                }
                for m in members {
                    if !zookeeper.contains(m) {
                        p.at(
                            e.span(),
                            format!("cluster.ensembles.{name}"),
                            format!("`{m}` is not a ZooKeeper node"),
                            format!("ZooKeeper nodes: {}", zookeeper.join(", ")),
                        );
                    } else if let Some(other) = owner.insert(m, name) {
                        p.at(e.span(), format!("cluster.ensembles.{name}"), format!("`{m}` is in both `{other}` and `{name}`"), "each node starts in one ensemble; its zoo.cfg lists that ensemble's members");
                    }
                }
            }
            for z in &zookeeper {
                if !owner.contains_key(z.as_str()) {
                    p.at(e.span(), "cluster.ensembles", format!("`{z}` is in no ensemble"), "put every ZooKeeper node in one ensemble (its initial zoo.cfg lists that ensemble)");
                }
            }
            e.get_ref().clone()
        }
    };
    let kafka_ensemble = match &rc.kafka_ensemble {
        Some(k) => {
            if !ensembles.contains_key(k.get_ref()) {
                p.at(
                    k.span(),
                    "cluster.kafka_ensemble",
                    format!("no ensemble `{}`", k.get_ref()),
                    format!(
                        "ensembles: {}",
                        ensembles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                );
            } else if ensembles[k.get_ref()].iter().all(|m| dormant.contains(m)) {
                p.at(
                    k.span(),
                    "cluster.kafka_ensemble",
                    format!("every node of `{}` is dormant", k.get_ref()),
                    "the brokers need a running ensemble at the start",
                );
            }
            k.get_ref().clone()
        }
        None if ensembles.len() == 1 => ensembles.keys().next().cloned().unwrap_or_default(),
        None => {
            p.at(
                rc.zookeeper.span(),
                "cluster.kafka_ensemble",
                "several ensembles and no `kafka_ensemble`",
                "say which ensemble the brokers use at the start, e.g. kafka_ensemble = \"source\"",
            );
            String::new()
        }
    };
    let cluster = ClusterSpec {
        backend,
        hosts,
        kafka_version,
        zookeeper: zookeeper.clone(),
        dormant,
        ensembles,
        kafka_ensemble,
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
        kafka_metadata: raw
            .check
            .as_ref()
            .and_then(|c| c.kafka_metadata)
            .unwrap_or(true),
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
    let expect =
        Expect {
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
            duplicates_after_epoch_bump: re.duplicates_after_epoch_bump.as_ref().map(|_| {
                p.bound(
                    &re.duplicates_after_epoch_bump,
                    "expect.duplicates_after_epoch_bump",
                    Bound::Any,
                )
            }),
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
                        lost: raw.lost.as_ref().map(|_| {
                            p.bound(&raw.lost, &format!("{field}.lost"), Bound::AtMost(0))
                        }),
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
                            &mut p,
                            &format!("{field}.max_unavailable_ms"),
                        ),
                        windows: raw.windows.as_ref().map(|_| {
                            p.bound(&raw.windows, &format!("{field}.windows"), Bound::Any)
                        }),
                        per_step: raw
                            .step
                            .iter()
                            .map(|(step, b)| {
                                let sf = format!("{field}.step.\"{step}\"");
                                if !steps.iter().any(|st| &st.name == step) {
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
                                    nonneg(&v, &mut p, &format!("{sf}.max_unavailable_ms"))
                                        .unwrap_or(0),
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
        .map(|n| {
            let st = if cluster.dormant.contains(n) {
                NodeState::Stopped
            } else {
                NodeState::Running
            };
            (n.clone(), st)
        })
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
            "start" | "restart" if s.nodes.is_some() => (&["nodes"], &["timeout"]),
            "start" | "stop" | "kill" | "pause" | "resume" | "restart" => (&["node"], &["bind"]),
            "rolling-restart" => (&[], &["nodes", "interval", "timeout", "wait"]),
            "zk-config" => (&["nodes", "participants"], &["observers"]),
            "zk-reconfig" => (&[], &["add", "add_observers", "remove", "via", "timeout"]),
            "zk-connect" => (&["servers"], &["brokers", "roll", "interval", "timeout"]),
            "zk-copy" => (&["from", "to", "path"], &["since", "batch", "prune"]),
            "add-brokers" => (&["brokers"], &["timeout"]),
            "reassign" => (
                &[],
                &[
                    "plan",
                    "map",
                    "topics",
                    "replication",
                    "avoid",
                    "throttle",
                    "timeout",
                ],
            ),
            "drain" => (&["brokers"], &["onto", "throttle", "timeout"]),
            "elect-leaders" => (&[], &["election", "topics"]),
            "audit" => (&[], &["min_replicas"]),
            "switch-bootstrap" => (&["brokers"], &["timeout"]),
            "migrate-brokers" => (
                &["map", "bookkeeping_topic"],
                &["throttle", "timeout", "interrupt_after"],
            ),
            "wait-healthy" => (&[], &["nodes", "timeout"]),
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
            ("participants", s.participants.as_ref().map(|v| v.span())),
            ("observers", s.observers.as_ref().map(|v| v.span())),
            ("add", s.add.as_ref().map(|v| v.span())),
            ("add_observers", s.add_observers.as_ref().map(|v| v.span())),
            ("remove", s.remove.as_ref().map(|v| v.span())),
            ("via", s.via.as_ref().map(|v| v.span())),
            ("servers", s.servers.as_ref().map(|v| v.span())),
            ("brokers", s.brokers.as_ref().map(|v| v.span())),
            ("roll", s.roll.as_ref().map(|v| v.span())),
            ("path", s.path.as_ref().map(|v| v.span())),
            ("since", s.since.as_ref().map(|v| v.span())),
            ("batch", s.batch.as_ref().map(|v| v.span())),
            ("prune", s.prune.as_ref().map(|v| v.span())),
            ("wait", s.wait.as_ref().map(|v| v.span())),
            ("plan", s.plan.as_ref().map(|v| v.span())),
            ("map", s.map.as_ref().map(|v| v.span())),
            ("topics", s.topics.as_ref().map(|v| v.span())),
            ("replication", s.replication.as_ref().map(|v| v.span())),
            ("avoid", s.avoid.as_ref().map(|v| v.span())),
            ("onto", s.onto.as_ref().map(|v| v.span())),
            ("throttle", s.throttle.as_ref().map(|v| v.span())),
            ("election", s.election.as_ref().map(|v| v.span())),
            ("min_replicas", s.min_replicas.as_ref().map(|v| v.span())),
            (
                "bookkeeping_topic",
                s.bookkeeping_topic.as_ref().map(|v| v.span()),
            ),
            (
                "interrupt_after",
                s.interrupt_after.as_ref().map(|v| v.span()),
            ),
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
                    "nodes" if kw == "zk-config" => "nodes = [\"zk1\", \"zk4\"] (whose zoo.cfg is rewritten)".to_string(),
                    "participants" => "participants = [\"zk1\", \"zk2\", \"zk3\"] (node or ensemble names)".to_string(),
                    "servers" => "servers = [\"target\"] (ZooKeeper node or ensemble names)".to_string(),
                    "from" | "to" if kw == "zk-copy" => "from = [\"source\"], to = [\"target\"]".to_string(),
                    "path" => "path = \"/kafka\" (Kafka's chroot)".to_string(),
                    "brokers" => "brokers = [\"kafka4\", \"kafka5\"]".to_string(),
                    "map" => "map = { kafka1 = \"kafka4\", kafka2 = \"kafka5\" } (old broker = new broker)".to_string(),
                    "bookkeeping_topic" => "bookkeeping_topic = \"_migration\" (records the topics moved, for a resume)".to_string(),
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
            "start" | "stop" | "kill" | "pause" | "resume" | "restart" if s.nodes.is_none() => {
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
                        let nodes = node_list(p, list, &f("nodes"), cluster);
                        for n in &nodes {
                            match state.get(n) {
                                Some(NodeState::Paused) => p.at(
                                    list.span(),
                                    f("nodes"),
                                    format!("`{n}` is paused at this point"),
                                    "resume it first",
                                ),
                                Some(NodeState::Stopped) if cluster.broker_id(n).is_some() => p.at(
                                    list.span(),
                                    f("nodes"),
                                    format!("`{n}` is not running at this point"),
                                    "a rolling restart of brokers needs every broker it restarts running",
                                ),
                                _ => {}
                            }
                            // a stopped ZooKeeper node (dormant) is started by the roll
                            state.insert(n.clone(), NodeState::Running);
                        }
                        nodes
                    }
                };
                Action::RollingRestart {
                    nodes,
                    interval: dur(p, &s.interval, "interval", 5),
                    timeout: dur(p, &s.timeout, "timeout", 120),
                    wait: s.wait.as_ref().is_none_or(|w| *w.get_ref()),
                }
            }
            "wait-healthy" => {
                let zookeeper = match &s.nodes {
                    None => Vec::new(),
                    Some(list) => {
                        let l = zk_list(p, list, &f("nodes"), cluster);
                        for n in &l {
                            if state.get(n) == Some(&NodeState::Stopped) {
                                p.at(
                                    list.span(),
                                    f("nodes"),
                                    format!("`{n}` is not running at this point"),
                                    "wait only for running ZooKeeper nodes",
                                );
                            }
                        }
                        l
                    }
                };
                Action::WaitHealthy {
                    zookeeper,
                    timeout: dur(p, &s.timeout, "timeout", 120),
                }
            }
            "sleep" => Action::Sleep {
                duration: dur(p, &s.duration, "duration", 0),
            },
            "mark" => Action::Mark,
            "start" | "restart" => {
                // the group forms: start them together (`nodes`)
                let list = s.nodes.as_ref().unwrap();
                let nodes = node_list(p, list, &f("nodes"), cluster);
                // a group restart also starts the group's stopped (dormant) members
                let allowed: &[NodeState] = if kw == "start" {
                    &[NodeState::Stopped]
                } else {
                    &[NodeState::Running, NodeState::Stopped]
                };
                for n in &nodes {
                    let cur = state.get(n).copied().unwrap_or(NodeState::Running);
                    if cur != NodeState::Unknown && !allowed.contains(&cur) {
                        p.at(list.span(), f("nodes"), format!("cannot {kw} `{n}`: it is {} at this point", format!("{cur:?}").to_lowercase()), "check the order of the steps (start after stop/kill or a dormant node)");
                    }
                    state.insert(n.clone(), NodeState::Running);
                }
                let timeout = dur(p, &s.timeout, "timeout", 120);
                if kw == "start" {
                    Action::StartAll { nodes, timeout }
                } else {
                    Action::RestartAll { nodes, timeout }
                }
            }
            "zk-config" => {
                let nodes = zk_list(p, s.nodes.as_ref().unwrap(), &f("nodes"), cluster);
                let participants = zk_list(
                    p,
                    s.participants.as_ref().unwrap(),
                    &f("participants"),
                    cluster,
                );
                let observers = s
                    .observers
                    .as_ref()
                    .map(|o| zk_list(p, o, &f("observers"), cluster))
                    .unwrap_or_default();
                if let Some(o) = &s.observers {
                    if let Some(both) = observers.iter().find(|n| participants.contains(n)) {
                        p.at(
                            o.span(),
                            f("observers"),
                            format!("`{both}` is both participant and observer"),
                            "give each server one role",
                        );
                    }
                }
                if participants.is_empty() {
                    p.at(
                        s.participants.as_ref().unwrap().span(),
                        f("participants"),
                        "no participants",
                        "an ensemble needs voting members",
                    );
                }
                Action::ZkConfig {
                    nodes,
                    participants,
                    observers,
                }
            }
            "zk-reconfig" => {
                let list = |v: &Option<Spanned<Vec<String>>>, k: &str, p: &mut Problems<'_>| {
                    v.as_ref()
                        .map(|l| zk_list(p, l, &f(k), cluster))
                        .unwrap_or_default()
                };
                let add = list(&s.add, "add", p);
                let add_observers = list(&s.add_observers, "add_observers", p);
                let remove = list(&s.remove, "remove", p);
                let via = list(&s.via, "via", p);
                if add.is_empty() && add_observers.is_empty() && remove.is_empty() {
                    p.at(
                        s.action.span(),
                        f("add"),
                        "a reconfig that changes nothing",
                        "give add = [...], add_observers = [...] and/or remove = [...]",
                    );
                }
                for n in add.iter().chain(&add_observers) {
                    if state.get(n) == Some(&NodeState::Stopped) {
                        p.at(s.action.span(), f("add"), format!("`{n}` is not running at this point"), "start the joining servers first (seed 001: as observers of the current configuration)");
                    }
                    if remove.contains(n) {
                        p.at(
                            s.action.span(),
                            f("remove"),
                            format!("`{n}` is both added and removed"),
                            "a server is either added or removed",
                        );
                    }
                }
                if cluster
                    .zookeeper_config
                    .get("reconfigEnabled")
                    .is_none_or(|v| v != "true")
                {
                    p.at(s.action.span(), f("do"), "dynamic reconfig is disabled on this cluster", "add reconfigEnabled = \"true\" (and skipACL = \"yes\", or a super user) to [cluster.zookeeper_config]");
                }
                Action::ZkReconfig {
                    add,
                    add_observers,
                    remove,
                    via,
                    timeout: dur(p, &s.timeout, "timeout", 120),
                }
            }
            "zk-connect" => {
                let servers = zk_list(p, s.servers.as_ref().unwrap(), &f("servers"), cluster);
                let brokers = match &s.brokers {
                    None => cluster.brokers.clone(),
                    Some(b) => {
                        for n in b.get_ref() {
                            if cluster.broker_id(n).is_none() {
                                p.at(
                                    b.span(),
                                    f("brokers"),
                                    format!("`{n}` is not a broker"),
                                    format!("brokers: {}", cluster.brokers.join(", ")),
                                );
                            }
                        }
                        b.get_ref().clone()
                    }
                };
                let roll = s.roll.as_ref().is_none_or(|r| *r.get_ref());
                if roll {
                    for n in &brokers {
                        if state.get(n).is_some_and(|st| {
                            *st != NodeState::Running && *st != NodeState::Unknown
                        }) {
                            p.at(s.action.span(), f("brokers"), format!("`{n}` is not running at this point"), "a roll restarts running brokers; use roll = false for stopped ones");
                        }
                    }
                }
                Action::ZkConnect {
                    servers,
                    brokers,
                    roll,
                    interval: dur(p, &s.interval, "interval", 5),
                    timeout: dur(p, &s.timeout, "timeout", 120),
                }
            }
            "zk-copy" => {
                let group = |v: &Spanned<Vec<Spanned<String>>>, k: &str, p: &mut Problems<'_>| {
                    let plain = Spanned::new(
                        v.span(),
                        v.get_ref()
                            .iter()
                            .map(|e| e.get_ref().clone())
                            .collect::<Vec<_>>(),
                    );
                    zk_list(p, &plain, &f(k), cluster)
                };
                let from = group(s.from.as_ref().unwrap(), "from", p);
                let to = group(s.to.as_ref().unwrap(), "to", p);
                if let Some(same) = from.iter().find(|n| to.contains(n)) {
                    p.at(
                        s.to.as_ref().unwrap().span(),
                        f("to"),
                        format!("`{same}` is on both sides"),
                        "copy between two different ensembles",
                    );
                }
                let path = s.path.as_ref().unwrap();
                if !path.get_ref().starts_with('/')
                    || path.get_ref().len() > 1 && path.get_ref().ends_with('/')
                {
                    p.at(
                        path.span(),
                        f("path"),
                        format!("`{}` is not a ZooKeeper path", path.get_ref()),
                        "an absolute path without a trailing '/', e.g. \"/kafka\"",
                    );
                }
                let since = s.since.as_ref().map(|sn| {
                    if !names.contains(sn.get_ref()) || sn.get_ref() == s.name.get_ref() {
                        p.at(sn.span(), f("since"), format!("no earlier step is named `{}`", sn.get_ref()), "name the step of the first copy: the catch-up copies what changed since it started");
                    }
                    sn.get_ref().clone()
                });
                let batch = match &s.batch {
                    None => 100,
                    Some(b) if (1..=10_000).contains(b.get_ref()) => *b.get_ref() as usize,
                    Some(b) => {
                        p.at(
                            b.span(),
                            f("batch"),
                            "must be 1..=10000",
                            "operations per transaction, e.g. batch = 100",
                        );
                        100
                    }
                };
                Action::ZkCopy {
                    from,
                    to,
                    path: path.get_ref().clone(),
                    since,
                    batch,
                    prune: s.prune.as_ref().is_some_and(|v| *v.get_ref()),
                }
            }
            "add-brokers" | "reassign" | "drain" | "elect-leaders" | "audit"
            | "switch-bootstrap" | "migrate-brokers" => {
                match broker_action(p, s, kw, &f, cluster, workload, &mut state) {
                    Some(a) => a,
                    None => continue,
                }
            }
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
                                .flat_map(|e| {
                                    if e.get_ref() == "clients" {
                                        vec![Target::Clients]
                                    } else if let Some(members) = cluster.ensembles.get(e.get_ref())
                                    {
                                        // a ZooKeeper ensemble by its name
                                        members.iter().map(|m| Target::Node(m.clone())).collect()
                                    } else {
                                        resolve_target(p, e, field, cluster, workload, &state)
                                            .into_iter()
                                            .collect()
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

/// A list of broker names; anything else is reported (with `field` and the brokers).
fn broker_names(
    p: &mut Problems<'_>,
    span: Range<usize>,
    names: &[String],
    field: &str,
    cluster: &ClusterSpec,
) -> Vec<String> {
    for n in names {
        if cluster.broker_id(n).is_none() {
            p.at(
                span.clone(),
                field,
                format!("`{n}` is not a broker"),
                format!("brokers: {}", cluster.brokers.join(", ")),
            );
        }
    }
    names.to_vec()
}

/// The broker migration actions: `add-brokers`, `reassign`, `drain`, `elect-leaders`,
/// `audit`, `switch-bootstrap`, `migrate-brokers`. `None` when the step is invalid (its
/// problems reported).
fn broker_action(
    p: &mut Problems<'_>,
    s: &RawStep,
    kw: &str,
    f: &dyn Fn(&str) -> String,
    cluster: &ClusterSpec,
    workload: &Workload,
    state: &mut HashMap<String, NodeState>,
) -> Option<Action> {
    let errors_before = p.list.len();
    let timeout = p.duration(&s.timeout, &f("timeout"), Duration::from_secs(600));
    let throttle = s.throttle.as_ref().and_then(|t| {
        let r = crate::kafka::reassign::parse_rate(t.get_ref());
        if r.is_none() {
            p.at(
                t.span(),
                f("throttle"),
                format!("`{}` is not a byte rate", t.get_ref()),
                "bytes per second, e.g. throttle = \"1MB\" (or 1048576, \"5MiB\")",
            );
        }
        r
    });
    let brokers = s
        .brokers
        .as_ref()
        .map(|b| {
            if b.get_ref().is_empty() {
                p.at(
                    b.span(),
                    f("brokers"),
                    "an empty list",
                    "name at least one broker",
                );
            }
            broker_names(p, b.span(), b.get_ref(), &f("brokers"), cluster)
        })
        .unwrap_or_default();
    let running = |state: &HashMap<String, NodeState>, n: &str| {
        matches!(state.get(n), Some(NodeState::Running | NodeState::Paused))
    };
    let map =
        |p: &mut Problems<'_>, state: &HashMap<String, NodeState>| -> BTreeMap<String, String> {
            let m = s.map.as_ref().expect("checked by the caller");
            let map = m.get_ref().clone();
            let all: Vec<String> = map.keys().chain(map.values()).cloned().collect();
            broker_names(p, m.span(), &all, &f("map"), cluster);
            let ids: BTreeMap<i32, i32> = map
                .iter()
                .filter_map(|(o, n)| Some((cluster.broker_id(o)?, cluster.broker_id(n)?)))
                .collect();
            if ids.len() == map.len() {
                if let Err(e) = crate::kafka::migrate::check_map(&ids) {
                    p.at(
                        m.span(),
                        f("map"),
                        e.to_string().lines().next().unwrap_or_default().to_string(),
                        "old broker = new broker, each once, e.g. { kafka1 = \"kafka4\" }",
                    );
                }
            }
            for n in map.values() {
                if cluster.broker_id(n).is_some() && !running(state, n) {
                    p.at(
                        m.span(),
                        f("map"),
                        format!("new broker `{n}` is not running at this point"),
                        "add the new brokers first (do = \"add-brokers\")",
                    );
                }
            }
            map
        };
    let action = match kw {
        "add-brokers" => {
            for b in &brokers {
                if running(state, b) {
                    p.at(
                        s.brokers.as_ref().unwrap().span(),
                        f("brokers"),
                        format!("`{b}` is already running at this point"),
                        "add-brokers starts brokers that are dormant or stopped",
                    );
                }
                state.insert(b.clone(), NodeState::Running);
            }
            Action::AddBrokers { brokers, timeout }
        }
        "switch-bootstrap" => {
            for b in &brokers {
                if !running(state, b) {
                    p.at(
                        s.brokers.as_ref().unwrap().span(),
                        f("brokers"),
                        format!("`{b}` is not running at this point"),
                        "switch the clients to brokers that run",
                    );
                }
            }
            Action::SwitchBootstrap {
                brokers,
                timeout: p.duration(&s.timeout, &f("timeout"), Duration::from_secs(60)),
            }
        }
        "drain" => {
            let onto = s
                .onto
                .as_ref()
                .map(|o| broker_names(p, o.span(), o.get_ref(), &f("onto"), cluster))
                .unwrap_or_default();
            if let Some(b) = brokers.iter().find(|b| onto.contains(b)) {
                p.at(
                    s.onto.as_ref().unwrap().span(),
                    f("onto"),
                    format!("`{b}` is drained and filled"),
                    "drain onto other brokers",
                );
            }
            Action::Reassign {
                plan: ReassignPlan::Drain { brokers, onto },
                throttle,
                timeout,
            }
        }
        "reassign" => {
            let given = [s.plan.is_some(), s.map.is_some(), s.replication.is_some()];
            if given.iter().filter(|g| **g).count() != 1 {
                p.at(s.action.span(), f("do"), "`reassign` needs exactly one of `plan`, `map`, `replication`", "plan = [{ topic = \"orders\", partition = 0, replicas = [\"kafka2\", \"kafka3\"] }], or map = { kafka1 = \"kafka4\" }, or replication = 2 with topics = [\"payments*\"]");
                return None;
            }
            if (s.topics.is_some() || s.avoid.is_some()) && s.replication.is_none() {
                let sp = s
                    .topics
                    .as_ref()
                    .map(|t| t.span())
                    .or(s.avoid.as_ref().map(|a| a.span()))
                    .unwrap();
                p.at(
                    sp,
                    f("topics"),
                    "`topics` and `avoid` go with `replication`",
                    "replication = 2, topics = [\"payments*\"], avoid = [\"kafka2\"]",
                );
            }
            let plan = if let Some(pl) = &s.plan {
                let mut out = Vec::new();
                if pl.get_ref().is_empty() {
                    p.at(
                        pl.span(),
                        f("plan"),
                        "an empty plan",
                        "list the partitions to move",
                    );
                }
                for m in pl.get_ref() {
                    let topic = workload.topics.iter().find(|t| t.name == m.topic);
                    match topic {
                        None => p.at(
                            pl.span(),
                            f("plan"),
                            format!("`{}` is not a workload topic", m.topic),
                            format!(
                                "topics: {}",
                                workload
                                    .topics
                                    .iter()
                                    .map(|t| t.name.as_str())
                                    .collect::<Vec<_>>()
                                    .join(", ")
                            ),
                        ),
                        Some(t) if m.partition < 0 || m.partition >= i64::from(t.partitions) => p
                            .at(
                                pl.span(),
                                f("plan"),
                                format!("{} has no partition {}", m.topic, m.partition),
                                format!("partitions 0..{}", t.partitions),
                            ),
                        _ => {}
                    }
                    if m.replicas.is_empty() {
                        p.at(
                            pl.span(),
                            f("plan"),
                            format!("{}/{}: no replicas", m.topic, m.partition),
                            "replicas = [\"kafka2\", \"kafka3\"], preferred leader first",
                        );
                    }
                    let mut seen = HashSet::new();
                    if m.replicas.iter().any(|r| !seen.insert(r)) {
                        p.at(
                            pl.span(),
                            f("plan"),
                            format!("{}/{}: a broker twice", m.topic, m.partition),
                            "each replica on its own broker",
                        );
                    }
                    broker_names(p, pl.span(), &m.replicas, &f("plan"), cluster);
                    out.push(PlannedPartition {
                        topic: m.topic.clone(),
                        partition: m.partition as i32,
                        replicas: m.replicas.clone(),
                    });
                }
                ReassignPlan::Explicit(out)
            } else if s.map.is_some() {
                ReassignPlan::Map(map(p, state))
            } else {
                let r = s.replication.as_ref().unwrap();
                let replication = match u32::try_from(*r.get_ref()) {
                    Ok(n) if n >= 1 && n as usize <= cluster.brokers.len() => n,
                    _ => {
                        p.at(
                            r.span(),
                            f("replication"),
                            format!("{} replicas are not possible here", r.get_ref()),
                            format!("1..={} (the brokers)", cluster.brokers.len()),
                        );
                        1
                    }
                };
                let topics = match &s.topics {
                    None => "*".to_string(),
                    Some(t) if t.get_ref().len() == 1 => t.get_ref()[0].clone(),
                    Some(t) => {
                        p.at(
                            t.span(),
                            f("topics"),
                            "one pattern only",
                            "topics = [\"payments*\"]",
                        );
                        String::new()
                    }
                };
                let avoid = s
                    .avoid
                    .as_ref()
                    .map(|a| broker_names(p, a.span(), a.get_ref(), &f("avoid"), cluster))
                    .unwrap_or_default();
                ReassignPlan::Raise {
                    topics,
                    replication,
                    avoid,
                }
            };
            Action::Reassign {
                plan,
                throttle,
                timeout,
            }
        }
        "elect-leaders" => {
            let election = match s.election.as_ref().map(|e| e.get_ref().as_str()) {
                None | Some("preferred") => ElectionKind::Preferred,
                Some("unclean") => ElectionKind::Unclean,
                Some(other) => {
                    p.at(
                        s.election.as_ref().unwrap().span(),
                        f("election"),
                        format!("`{other}` is not an election"),
                        "election = \"preferred\" or \"unclean\"",
                    );
                    ElectionKind::Preferred
                }
            };
            let topics = s
                .topics
                .as_ref()
                .map(|t| t.get_ref().clone())
                .unwrap_or_default();
            Action::ElectLeaders { election, topics }
        }
        "audit" => {
            let min_replicas = match s
                .min_replicas
                .as_ref()
                .map(|m| (m.span(), u32::try_from(*m.get_ref())))
            {
                None => 2,
                Some((_, Ok(n))) if n >= 1 => n,
                Some((sp, _)) => {
                    p.at(
                        sp,
                        f("min_replicas"),
                        "must be at least 1",
                        "min_replicas = 2: partitions with fewer replicas are listed",
                    );
                    2
                }
            };
            Action::Audit { min_replicas }
        }
        "migrate-brokers" => {
            let map = map(p, state);
            let bookkeeping_topic = s.bookkeeping_topic.as_ref().unwrap().get_ref().clone();
            if bookkeeping_topic.is_empty()
                || workload.topics.iter().any(|t| t.name == bookkeeping_topic)
            {
                p.at(
                    s.bookkeeping_topic.as_ref().unwrap().span(),
                    f("bookkeeping_topic"),
                    format!("`{bookkeeping_topic}` cannot be the bookkeeping topic"),
                    "a topic of its own, not a workload topic, e.g. \"_migration\"",
                );
            }
            let interrupt_after =
                s.interrupt_after
                    .as_ref()
                    .map(|i| match u32::try_from(*i.get_ref()) {
                        Ok(n) if n >= 1 => n,
                        _ => {
                            p.at(
                            i.span(),
                            f("interrupt_after"),
                            "must be at least 1",
                            "interrupt_after = 2 kills the migration while its second topic moves",
                        );
                            1
                        }
                    });
            Action::MigrateBrokers {
                map,
                bookkeeping_topic,
                throttle,
                timeout: p.duration(&s.timeout, &f("timeout"), Duration::from_secs(900)),
                interrupt_after,
            }
        }
        _ => unreachable!("the caller matches the keywords"),
    };
    (p.list.len() == errors_before).then_some(action)
}

/// A list of ZooKeeper node names and ensemble names, ensembles expanded in their order,
/// each node once; anything else is reported.
fn zk_list(
    p: &mut Problems<'_>,
    v: &Spanned<Vec<String>>,
    field: &str,
    cluster: &ClusterSpec,
) -> Vec<String> {
    expand_names(p, v, field, cluster, false)
}

/// As [`zk_list`], brokers allowed too; an empty list is reported.
fn node_list(
    p: &mut Problems<'_>,
    v: &Spanned<Vec<String>>,
    field: &str,
    cluster: &ClusterSpec,
) -> Vec<String> {
    if v.get_ref().is_empty() {
        p.at(v.span(), field, "an empty list", "name at least one node");
    }
    expand_names(p, v, field, cluster, true)
}

fn expand_names(
    p: &mut Problems<'_>,
    v: &Spanned<Vec<String>>,
    field: &str,
    cluster: &ClusterSpec,
    brokers: bool,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in v.get_ref() {
        let expanded = if cluster.is_zookeeper(e) || brokers && cluster.broker_id(e).is_some() {
            vec![e.clone()]
        } else if let Some(members) = cluster.ensembles.get(e) {
            members.clone()
        } else {
            let ensembles = cluster
                .ensembles
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ");
            let zookeeper = cluster.zookeeper.join(", ");
            let (what, hint) = if brokers {
                (
                    "not a node or ensemble of this cluster",
                    format!(
                        "brokers: {}; ZooKeeper: {zookeeper}; ensembles: {ensembles}",
                        cluster.brokers.join(", ")
                    ),
                )
            } else {
                (
                    "neither a ZooKeeper node nor an ensemble",
                    format!("ZooKeeper nodes: {zookeeper}; ensembles: {ensembles}"),
                )
            };
            p.at(v.span(), field, format!("`{e}` is {what}"), hint);
            continue;
        };
        for n in expanded {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    out
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
