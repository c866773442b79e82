//! Step actions, one file per family: each family defines its validated action type and
//! parses it from a step table through [`StepArgs`], a cursor over the step's fields
//! (tokio's mini-redis parses its commands the same way). Executing them is
//! `crate::run::steps`, with the same file per family.
//!
//! | family | actions | file |
//! |---|---|---|
//! | nodes | start, stop, kill, pause, resume, restart, rolling-restart, wait-healthy, wait-failover, node-config | [`nodes`] |
//! | network | partition, heal, loss, bandwidth, delay | [`network`] |
//! | zookeeper | zk-config, zk-reconfig, zk-connect, zk-copy | [`zookeeper`] |
//! | brokers | add-brokers, reassign, drain, elect-leaders, audit, switch-bootstrap, migrate-brokers, create-metadata, create-topics | [`brokers`] |
//! | kraft | format-storage, wait-migration | [`kraft`] |
//! | mirror | mirror-start, mirror-wait, mirror-stop | [`mirror`] |
//! | pace | sleep, mark | [`pace`] |
//!
//! Adding an action: its variant and parser in the family file (and the keyword in the
//! family's `KEYWORDS`), its execution in the family file under `run/steps/`, and the README.
//!
//! A parser asks the cursor for every field its action takes; [`StepArgs::finish`] then
//! reports whatever the step gave that nobody asked for, listing what the action takes.
//! Validation also simulates the procedure ([`Procedure`]): node states, bound names,
//! active faults, so that impossible orders are refused before anything starts.

pub mod brokers;
pub mod kraft;
pub mod mirror;
pub mod network;
pub mod nodes;
pub mod pace;
pub mod zookeeper;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use toml::Spanned;

use super::load::Problems;
use super::model::{ClusterSpec, Target, Workload};

pub use brokers::{BrokerAction, ElectionKind, PlannedPartition, ReassignPlan};
pub use kraft::{ClusterIdSource, FeatureTarget, KraftAction};
pub use mirror::MirrorAction;
pub use network::{Cut, NetworkAction};
pub use nodes::NodeAction;
pub use pace::PaceAction;
pub use zookeeper::ZkAction;

/// What a step does, by family.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Action {
    /// Node lifecycle: start, stop, kill, pause, resume, restarts, health gates.
    Node(NodeAction),
    /// Network faults between hosts.
    Network(NetworkAction),
    /// ZooKeeper membership, connect strings and data.
    ZooKeeper(ZkAction),
    /// Kafka brokers: new brokers, reassignments, elections, audits, client bootstrap.
    Broker(BrokerAction),
    /// KRaft: controllers' storage, the ZooKeeper→KRaft migration's state.
    Kraft(KraftAction),
    /// MirrorMaker 2 between the run's two clusters.
    Mirror(MirrorAction),
    /// Waiting and marking the timeline.
    Pace(PaceAction),
}

impl Action {
    /// The scenario keyword of this action.
    pub fn keyword(&self) -> &'static str {
        match self {
            Action::Node(a) => a.keyword(),
            Action::Network(a) => a.keyword(),
            Action::ZooKeeper(a) => a.keyword(),
            Action::Broker(a) => a.keyword(),
            Action::Kraft(a) => a.keyword(),
            Action::Mirror(a) => a.keyword(),
            Action::Pace(a) => a.keyword(),
        }
    }

    /// True for the network faults, which need namespace hosts (or containers).
    pub fn is_network_fault(&self) -> bool {
        matches!(self, Action::Network(_))
    }
}

/// A family: its keywords and its parser.
struct Family {
    keywords: &'static [&'static str],
    parse: fn(&mut StepArgs, &mut Procedure<'_>, &mut Problems<'_>) -> Option<Action>,
}

const FAMILIES: &[Family] = &[
    Family {
        keywords: nodes::KEYWORDS,
        parse: nodes::parse,
    },
    Family {
        keywords: network::KEYWORDS,
        parse: network::parse,
    },
    Family {
        keywords: zookeeper::KEYWORDS,
        parse: zookeeper::parse,
    },
    Family {
        keywords: brokers::KEYWORDS,
        parse: brokers::parse,
    },
    Family {
        keywords: kraft::KEYWORDS,
        parse: kraft::parse,
    },
    Family {
        keywords: mirror::KEYWORDS,
        parse: mirror::parse,
    },
    Family {
        keywords: pace::KEYWORDS,
        parse: pace::parse,
    },
];

/// Every action keyword, in family order (for hints and the README's list).
pub fn keywords() -> Vec<&'static str> {
    FAMILIES
        .iter()
        .flat_map(|f| f.keywords.iter().copied())
        .collect()
}

/// What the validator knows of a node's state at a point of the procedure.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum NodeState {
    Running,
    Stopped,
    Paused,
    /// Bound by a step that was itself invalid: anything goes, so one mistake is reported
    /// once rather than again at every later use of the name.
    Unknown,
}

impl NodeState {
    fn word(self) -> String {
        format!("{self:?}").to_lowercase()
    }
}

/// The procedure as validation walks it: the cluster and workload, each node's state
/// (bound names under `@NAME`), the active network faults and the step names so far.
pub(crate) struct Procedure<'c> {
    pub cluster: &'c ClusterSpec,
    pub workload: &'c Workload,
    pub state: HashMap<String, NodeState>,
    pub faults: HashSet<String>,
    pub names: HashSet<String>,
    /// The controllers whose storage is not formatted yet (a migration's, until its
    /// `format-storage` step): they cannot start.
    pub unformatted: HashSet<String>,
    /// A `create-metadata` step came before.
    pub created_metadata: bool,
    /// The quorum's voters at this point (a dynamic quorum's change by steps).
    pub voters: HashSet<String>,
    /// The prefixes of the `create-topics` steps so far.
    pub created_topics: HashSet<String>,
    /// A step before killed, stopped or paused a node (what `wait-failover` measures from).
    pub lost_node: bool,
    /// MirrorMaker 2 runs at this point (a `mirror-start` and no `mirror-stop` since).
    pub mirror_running: bool,
    /// The `mirror-switch` of the consumers (where it is, for a problem at the end), and
    /// whether the producers followed.
    pub consumers_switched: Option<(Range<usize>, String)>,
    pub producers_switched: bool,
}

impl<'c> Procedure<'c> {
    fn new(cluster: &'c ClusterSpec, workload: &'c Workload) -> Self {
        let state = cluster
            .all_nodes()
            .into_iter()
            .map(|n| {
                let st = if cluster.dormant.contains(&n) {
                    NodeState::Stopped
                } else {
                    NodeState::Running
                };
                (n, st)
            })
            .collect();
        Procedure {
            cluster,
            workload,
            state,
            faults: HashSet::new(),
            names: HashSet::new(),
            unformatted: if cluster.is_migration() {
                cluster.controllers.iter().cloned().collect()
            } else {
                HashSet::new()
            },
            created_metadata: false,
            voters: cluster
                .controllers
                .iter()
                .filter(|c| !cluster.dynamic_quorum || !cluster.dormant.contains(c))
                .cloned()
                .collect(),
            created_topics: HashSet::new(),
            lost_node: false,
            mirror_running: false,
            consumers_switched: None,
            producers_switched: false,
        }
    }

    /// Reports a start of `n` while its storage is not formatted.
    pub fn check_formatted(&self, p: &mut Problems<'_>, n: &str, span: Range<usize>, field: &str) {
        if self.unformatted.contains(n) {
            p.at(
                span,
                field,
                format!("`{n}` would start with unformatted storage"),
                "a `format-storage` step (cluster_id = \"zookeeper\") before the controller's first start",
            );
        }
    }

    /// True when the node runs (or is paused) at this point.
    pub fn running(&self, n: &str) -> bool {
        matches!(
            self.state.get(n),
            Some(NodeState::Running | NodeState::Paused)
        )
    }
}

/// One `[[step]]` table: its fields by name, with their places in the file. A parser takes
/// the fields its action takes; what is left is reported by [`StepArgs::finish`].
pub(crate) struct StepArgs {
    /// 1-based step number (fields are named `step[N].FIELD`).
    number: usize,
    /// The action keyword (`do`).
    pub keyword: String,
    /// Where `do` is (problems of the step as a whole point there).
    pub keyword_span: Range<usize>,
    /// The step's name.
    pub name: Spanned<String>,
    /// The fields not taken yet.
    fields: BTreeMap<String, Spanned<toml::Value>>,
    /// The fields the parser asked for, present or not: what the action takes.
    asked: Vec<&'static str>,
    /// Fields given with a value of the wrong type (reported once, not again as missing).
    invalid: Vec<String>,
}

impl StepArgs {
    /// The dotted path of one of this step's fields.
    pub fn field(&self, k: &str) -> String {
        format!("step[{}].{k}", self.number)
    }

    /// True when the step gives `k` (without taking it).
    pub fn has(&self, k: &str) -> bool {
        self.fields.contains_key(k)
    }

    fn take(&mut self, k: &'static str) -> Option<Spanned<toml::Value>> {
        if !self.asked.contains(&k) {
            self.asked.push(k);
        }
        self.fields.remove(k)
    }

    /// Takes `k` as a `T`; a value of another type is reported (`expected` says what it
    /// should be) and taken as absent.
    pub fn get<T: DeserializeOwned>(
        &mut self,
        p: &mut Problems<'_>,
        k: &'static str,
        expected: &str,
    ) -> Option<Spanned<T>> {
        let v = self.take(k)?;
        let span = v.span();
        match v.into_inner().try_into::<T>() {
            Ok(t) => Some(Spanned::new(span, t)),
            Err(_) => {
                p.at(
                    span,
                    self.field(k),
                    format!("`{k}` must be {expected}"),
                    "see the action's fields in the README",
                );
                self.invalid.push(k.to_string());
                None
            }
        }
    }

    /// A string field.
    pub fn string(&mut self, p: &mut Problems<'_>, k: &'static str) -> Option<Spanned<String>> {
        self.get(p, k, "a string")
    }

    /// A list of strings.
    pub fn strings(
        &mut self,
        p: &mut Problems<'_>,
        k: &'static str,
    ) -> Option<Spanned<Vec<String>>> {
        self.get(p, k, "a list of strings, e.g. [\"kafka1\", \"kafka2\"]")
    }

    /// A boolean field.
    pub fn flag(&mut self, p: &mut Problems<'_>, k: &'static str) -> Option<Spanned<bool>> {
        self.get(p, k, "true or false")
    }

    /// An integer field.
    pub fn int(&mut self, p: &mut Problems<'_>, k: &'static str) -> Option<Spanned<i64>> {
        self.get(p, k, "a whole number")
    }

    /// A duration field (`"500ms"`, `"10s"`, `"2m"`), `default` when absent or invalid.
    pub fn duration(
        &mut self,
        p: &mut Problems<'_>,
        k: &'static str,
        default: Duration,
    ) -> Duration {
        let v = self.string(p, k);
        let field = self.field(k);
        p.duration(&v, &field, default)
    }

    /// Reports a missing required field at the step's `do` (with `hint`), when `v` is
    /// `None` (and `k` was not given with a wrong type, already reported); passes `v` on.
    pub fn require<T>(&self, p: &mut Problems<'_>, v: Option<T>, k: &str, hint: &str) -> Option<T> {
        if v.is_none() && !self.invalid.iter().any(|i| i == k) {
            p.at(
                self.keyword_span.clone(),
                self.field(k),
                format!("`{}` needs `{k}`", self.keyword),
                hint,
            );
        }
        v
    }

    /// Reports every field the step gave that its action does not take.
    pub fn finish(self, p: &mut Problems<'_>) {
        let takes = if self.asked.is_empty() {
            "nothing but `name` and `do`".to_string()
        } else {
            self.asked.join(", ")
        };
        for (k, v) in &self.fields {
            p.at(
                v.span(),
                self.field(k),
                format!("`{}` takes no `{k}`", self.keyword),
                format!("`{}` takes: {takes}", self.keyword),
            );
        }
    }
}

/// The raw form of a step, as the TOML gives it: every field with its place.
pub(crate) type RawStep = BTreeMap<String, Spanned<toml::Value>>;

/// Validates the steps in order: each is parsed by its family, against the procedure so
/// far. Invalid steps are left out (their problems reported).
pub(crate) fn parse_steps(
    p: &mut Problems<'_>,
    raw: &[Spanned<RawStep>],
    cluster: &ClusterSpec,
    workload: &Workload,
) -> ParsedSteps {
    let mut procedure = Procedure::new(cluster, workload);
    let all = keywords();
    let mut steps = Vec::new();
    for (i, rs) in raw.iter().enumerate() {
        let (line, _) = super::load::line_col(p.text, rs.span().start);
        let mut fields = rs.get_ref().clone();
        let table = rs.span();
        let mut text = |k: &str, p: &mut Problems<'_>| -> Option<Spanned<String>> {
            let field = format!("step[{}].{k}", i + 1);
            match fields.remove(k) {
                None => {
                    p.at(
                        table.clone(),
                        field,
                        format!("the step has no `{k}`"),
                        "every [[step]] has a `name` and a `do` (the action)",
                    );
                    None
                }
                Some(v) => {
                    let span = v.span();
                    match v.into_inner() {
                        toml::Value::String(s) => Some(Spanned::new(span, s)),
                        _ => {
                            p.at(
                                span,
                                field,
                                format!("`{k}` must be a string"),
                                "e.g. name = \"stop the leader\", do = \"stop\"",
                            );
                            None
                        }
                    }
                }
            }
        };
        let name = text("name", p);
        let keyword = text("do", p);
        let (Some(name), Some(keyword)) = (name, keyword) else {
            continue;
        };
        if !procedure.names.insert(name.get_ref().clone()) {
            p.at(
                name.span(),
                format!("step[{}].name", i + 1),
                format!("two steps are named `{}`", name.get_ref()),
                "step names identify steps in the report; make them unique",
            );
        }
        // a later `@name` must not fail just because this step is invalid
        let bind = match fields.get("bind").map(|b| b.get_ref()) {
            Some(toml::Value::String(b)) => Some(b.clone()),
            _ => None,
        };
        if let Some(b) = &bind {
            procedure
                .state
                .entry(format!("@{b}"))
                .or_insert(NodeState::Unknown);
        }
        let Some(family) = FAMILIES
            .iter()
            .find(|f| f.keywords.contains(&keyword.get_ref().as_str()))
        else {
            let near = all
                .iter()
                .min_by_key(|a| edit_distance(a, keyword.get_ref()))
                .copied()
                .unwrap_or_default();
            p.at(
                keyword.span(),
                format!("step[{}].do", i + 1),
                format!("unknown action `{}`", keyword.get_ref()),
                format!("did you mean `{near}`? actions: {}", all.join(", ")),
            );
            continue;
        };
        let mut args = StepArgs {
            number: i + 1,
            keyword: keyword.get_ref().clone(),
            keyword_span: keyword.span(),
            name,
            fields,
            asked: Vec::new(),
            invalid: Vec::new(),
        };
        let action = (family.parse)(&mut args, &mut procedure, p);
        let name = args.name.get_ref().clone();
        args.finish(p);
        // (a step with problems is kept when it parsed: the scenario is refused anyway,
        // and expectations that name it should not add a problem of their own)
        if let Some(action) = action {
            steps.push(super::Step {
                name,
                action,
                bind,
                line,
            });
        }
    }
    if let (Some((span, field)), false) =
        (&procedure.consumers_switched, procedure.producers_switched)
    {
        p.at(
            span.clone(),
            field.clone(),
            "the consumers move to the target and the producers never follow",
            "a `mirror-switch` with clients = \"producers\" after it: the run's end waits for the group on the cluster the consumers are on, which cannot tell when MirrorMaker has copied the source's last records",
        );
    }
    ParsedSteps {
        steps,
        names: procedure.names,
    }
}

/// The steps that parsed, and the names of all steps (for expectations naming a step).
pub(crate) struct ParsedSteps {
    pub steps: Vec<super::Step>,
    pub names: HashSet<String>,
}

/// A list of ZooKeeper node names and ensemble names, ensembles expanded in their order,
/// each node once; anything else is reported.
pub(crate) fn zk_list(
    p: &mut Problems<'_>,
    v: &Spanned<Vec<String>>,
    field: &str,
    cluster: &ClusterSpec,
) -> Vec<String> {
    expand_names(p, v, field, cluster, false)
}

/// As [`zk_list`], brokers allowed too; an empty list is reported.
pub(crate) fn node_list(
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
        let expanded = if cluster.is_zookeeper(e)
            || brokers && (cluster.broker_id(e).is_some() || cluster.is_controller(e))
        {
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
                        "brokers: {}; controllers: {}; ZooKeeper: {zookeeper}; ensembles: {ensembles}",
                        cluster.brokers.join(", "),
                        cluster.controllers.join(", ")
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

/// A list of broker names; anything else is reported (with `field` and the brokers).
pub(crate) fn broker_names(
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

/// Parses a `node` value (a node, `leader:T/P`, `follower:T/P` or `@BOUND`); reports
/// unknown nodes, topics, partitions and unbound names.
pub(crate) fn resolve_target(
    p: &mut Problems<'_>,
    v: &Spanned<String>,
    field: &str,
    procedure: &Procedure<'_>,
) -> Option<Target> {
    let (cluster, workload) = (procedure.cluster, procedure.workload);
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
                format!("topics: {}", workload.topic_names().join(", ")),
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
    } else if text == "coordinator:transactions" {
        if workload.producer.transactions.is_none() {
            p.at(
                v.span(),
                field,
                "`coordinator:transactions` names the transactional producers' coordinator, \
                 and this workload sends no transactions",
                "add transactions = { records = 10 } to [workload], or name a node",
            );
            return None;
        }
        Some(Target::TransactionCoordinator)
    } else if text == "controller:active" {
        // the KRaft quorum's leader, or ZooKeeper mode's controller broker
        Some(Target::ActiveController)
    } else if let Some(b) = text.strip_prefix('@') {
        if procedure.state.contains_key(&format!("@{b}")) {
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
    } else if cluster.all_nodes().iter().any(|n| n == text) {
        Some(Target::Node(text.clone()))
    } else {
        let all = cluster.all_nodes();
        p.at(
            v.span(),
            field,
            format!("unknown host `{text}`"),
            format!(
                "nodes of this cluster: {}; or leader:TOPIC/P, follower:TOPIC/P, controller:active, coordinator:transactions, @BOUND",
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
