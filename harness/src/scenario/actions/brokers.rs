//! Kafka brokers: `add-brokers`, `reassign`, `drain`, `elect-leaders`, `audit`,
//! `switch-bootstrap`, `migrate-brokers`, `create-metadata`, `create-topics`. A step of this family with any problem is left
//! out of the procedure, so a broken plan never reaches the state simulation.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{broker_names, Action, Procedure, StepArgs};
use crate::scenario::load::Problems;
use crate::scenario::units;

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &[
    "add-brokers",
    "reassign",
    "drain",
    "elect-leaders",
    "audit",
    "switch-bootstrap",
    "migrate-brokers",
    "create-metadata",
    "create-topics",
];

/// A broker migration action.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum BrokerAction {
    /// Start new (dormant or stopped) brokers together and wait until each is registered
    /// and accepts connections.
    AddBrokers {
        /// The brokers.
        brokers: Vec<String>,
        /// Longest wait.
        timeout: Duration,
    },
    /// Reassign partitions (`reassign`, `drain`): throttle, start, wait until nothing of the
    /// plan is in flight, check the replicas are the plan's, remove the throttle.
    Reassign {
        /// What moves where.
        plan: ReassignPlan,
        /// Replication throttle, bytes/s.
        throttle: Option<u64>,
        /// Longest wait for the moves (then they are cancelled and the step fails).
        timeout: Duration,
    },
    /// Leader election on the given topics (all when empty).
    ElectLeaders {
        /// Preferred or unclean.
        election: ElectionKind,
        /// Topic name patterns.
        topics: Vec<String>,
    },
    /// Create the metadata a migration must carry beyond topics (topic config overrides,
    /// client quotas, SCRAM users; ACLs with `acls`), to be read back and compared at the
    /// end of the run ([`crate::kafka::survival`]).
    CreateMetadata {
        /// ACLs too (the brokers need an authorizer).
        acls: bool,
    },
    /// Create topics the workers do not use — `topics` of them, `partitions` each, named
    /// `PREFIX-0001`, … — and wait until every partition has a leader: the metadata a
    /// controller carries, whose failover time grows with the partitions it must load and
    /// lead ([`crate::kafka::Admin::create_topics`], in batches).
    CreateTopics {
        /// The start of the topics' names.
        prefix: String,
        /// How many topics.
        topics: u32,
        /// Partitions per topic.
        partitions: u32,
        /// Replication factor.
        replication: u32,
        /// Longest wait for every partition to have a leader.
        timeout: Duration,
    },
    /// List partitions with fewer replicas than `min_replicas` or an ISR under their
    /// `min.insync.replicas`, into the report.
    Audit {
        /// Replicas every partition should have.
        min_replicas: u32,
    },
    /// Rewrite the workers' discovery file to these brokers and wait until every producer
    /// and consumer has reconnected through them.
    SwitchBootstrap {
        /// The brokers clients bootstrap from from now on.
        brokers: Vec<String>,
        /// Longest wait for every worker.
        timeout: Duration,
    },
    /// `harness migrate brokers` as its own process, as an operator runs it; with
    /// `interrupt_after`, killed (SIGKILL) while that topic's move is in flight, then run
    /// again, which must resume from the bookkeeping topic.
    MigrateBrokers {
        /// Old broker → new broker.
        map: BTreeMap<String, String>,
        /// The bookkeeping topic.
        bookkeeping_topic: String,
        /// Replication throttle, bytes/s.
        throttle: Option<u64>,
        /// Longest wait for the whole migration.
        timeout: Duration,
        /// Kill the migration while its n-th topic moves (1-based), then resume.
        interrupt_after: Option<u32>,
    },
}

impl BrokerAction {
    /// The scenario keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            BrokerAction::AddBrokers { .. } => "add-brokers",
            BrokerAction::Reassign {
                plan: ReassignPlan::Drain { .. },
                ..
            } => "drain",
            BrokerAction::Reassign { .. } => "reassign",
            BrokerAction::ElectLeaders { .. } => "elect-leaders",
            BrokerAction::Audit { .. } => "audit",
            BrokerAction::CreateMetadata { .. } => "create-metadata",
            BrokerAction::CreateTopics { .. } => "create-topics",
            BrokerAction::SwitchBootstrap { .. } => "switch-bootstrap",
            BrokerAction::MigrateBrokers { .. } => "migrate-brokers",
        }
    }
}

/// What a `reassign` step moves where.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReassignPlan {
    /// Partitions and their new replicas (broker names, preferred leader first).
    Explicit(Vec<PlannedPartition>),
    /// Every replica on an old broker moves to its new broker, in place.
    Map(BTreeMap<String, String>),
    /// Raise the replication of the matching topics' partitions that have fewer replicas.
    Raise {
        /// Topic name pattern (`*` matches any run of characters).
        topics: String,
        /// Replicas each partition should have.
        replication: u32,
        /// Brokers that get no new replica and should lose the preferred leadership (the
        /// broker going away for repair).
        avoid: Vec<String>,
    },
    /// Every partition back to the replicas it had when step `step` started (a rollback:
    /// the layout recorded before that step).
    Restore {
        /// The earlier step whose starting layout comes back.
        step: String,
    },
    /// Every replica off these brokers, onto the others (or `onto`).
    Drain {
        /// Brokers to empty.
        brokers: Vec<String>,
        /// Brokers to fill (empty: every running broker not drained).
        onto: Vec<String>,
    },
}

/// One partition of an explicit plan.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedPartition {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Broker names, preferred leader first.
    pub replicas: Vec<String>,
}

/// Which leader election an `elect-leaders` step asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ElectionKind {
    /// The preferred replica (first in the assignment), when in sync.
    Preferred,
    /// Any live replica, in sync or not.
    Unclean,
}

/// One partition of a `plan` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlannedPartition {
    topic: String,
    partition: i64,
    replicas: Vec<String>,
}

/// Parses a broker step; `None` when it has any problem.
pub(super) fn parse(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    let errors_before = p.list.len();
    let cluster = procedure.cluster;
    let kw = args.keyword.clone();
    let default_timeout = match kw.as_str() {
        "switch-bootstrap" => 60,
        "migrate-brokers" => 900,
        _ => 600,
    };
    let timeout = if matches!(kw.as_str(), "elect-leaders" | "audit" | "create-metadata") {
        Duration::ZERO
    } else {
        args.duration(p, "timeout", Duration::from_secs(default_timeout))
    };
    let throttle = matches!(kw.as_str(), "reassign" | "drain" | "migrate-brokers")
        .then(|| args.string(p, "throttle"))
        .flatten()
        .and_then(|t| {
            let r = units::parse_byte_rate(t.get_ref());
            if r.is_none() {
                p.at(
                    t.span(),
                    args.field("throttle"),
                    format!("`{}` is not a byte rate", t.get_ref()),
                    "bytes per second, e.g. throttle = \"1MB\" (or 1048576, \"5MiB\")",
                );
            }
            r
        });
    let onto = (kw == "drain").then(|| args.strings(p, "onto")).flatten();
    let brokers = match kw.as_str() {
        "add-brokers" | "switch-bootstrap" | "drain" => {
            let b = args.strings(p, "brokers");
            let b = args.require(p, b, "brokers", "brokers = [\"kafka4\", \"kafka5\"]")?;
            if b.get_ref().is_empty() {
                p.at(
                    b.span(),
                    args.field("brokers"),
                    "an empty list",
                    "name at least one broker",
                );
            }
            Some(b)
        }
        _ => None,
    };
    let brokers_span = brokers.as_ref().map(|b| b.span()).unwrap_or_default();
    let brokers = brokers
        .map(|b| broker_names(p, b.span(), b.get_ref(), &args.field("brokers"), cluster))
        .unwrap_or_default();
    let action = match kw.as_str() {
        "add-brokers" => {
            for b in &brokers {
                if procedure.running(b) {
                    p.at(
                        brokers_span.clone(),
                        args.field("brokers"),
                        format!("`{b}` is already running at this point"),
                        "add-brokers starts brokers that are dormant or stopped",
                    );
                }
                procedure.state.insert(b.clone(), super::NodeState::Running);
            }
            BrokerAction::AddBrokers { brokers, timeout }
        }
        "switch-bootstrap" => {
            for b in &brokers {
                if !procedure.running(b) {
                    p.at(
                        brokers_span.clone(),
                        args.field("brokers"),
                        format!("`{b}` is not running at this point"),
                        "switch the clients to brokers that run",
                    );
                }
            }
            // it gives every client one line again: clients a `mirror-switch` moved to
            // MirrorMaker's target would come back to the source mid-run, which the checker
            // (following each client across the clusters once) does not follow
            if procedure.consumers_switched.is_some() {
                p.at(
                    args.keyword_span.clone(),
                    args.field("do"),
                    "the clients are on MirrorMaker's target at this point: a `switch-bootstrap` would move them back to this cluster's brokers",
                    "switch the bootstrap before the `mirror-switch` steps, or leave it out",
                );
            }
            BrokerAction::SwitchBootstrap { brokers, timeout }
        }
        "drain" => {
            let onto_span = onto.as_ref().map(|o| o.span()).unwrap_or_default();
            let onto = onto
                .map(|o| broker_names(p, o.span(), o.get_ref(), &args.field("onto"), cluster))
                .unwrap_or_default();
            if let Some(b) = brokers.iter().find(|b| onto.contains(b)) {
                p.at(
                    onto_span,
                    args.field("onto"),
                    format!("`{b}` is drained and filled"),
                    "drain onto other brokers",
                );
            }
            BrokerAction::Reassign {
                plan: ReassignPlan::Drain { brokers, onto },
                throttle,
                timeout,
            }
        }
        "reassign" => BrokerAction::Reassign {
            plan: reassign_plan(args, procedure, p)?,
            throttle,
            timeout,
        },
        "elect-leaders" => {
            let election = args.string(p, "election");
            let topics = args.strings(p, "topics");
            let election = match election.as_ref().map(|e| e.get_ref().as_str()) {
                None | Some("preferred") => ElectionKind::Preferred,
                Some("unclean") => ElectionKind::Unclean,
                Some(other) => {
                    p.at(
                        election.as_ref().map(|e| e.span()).unwrap_or_default(),
                        args.field("election"),
                        format!("`{other}` is not an election"),
                        "election = \"preferred\" or \"unclean\"",
                    );
                    ElectionKind::Preferred
                }
            };
            BrokerAction::ElectLeaders {
                election,
                topics: topics.map(|t| t.into_inner()).unwrap_or_default(),
            }
        }
        "create-metadata" => {
            let acls = args.flag(p, "acls");
            let cluster = procedure.cluster;
            if let Some(a) = acls.as_ref().filter(|a| *a.get_ref()) {
                let anonymous_super = cluster
                    .broker_config
                    .get("super.users")
                    .is_some_and(|u| u.split(';').any(|u| u.trim() == "User:ANONYMOUS"));
                if !cluster.broker_config.contains_key("authorizer.class.name") || !anonymous_super
                {
                    p.at(
                        a.span(),
                        args.field("acls"),
                        "ACLs need an authorizer on the brokers, and the harness's own (ANONYMOUS) requests a super user",
                        "broker_config = { \"authorizer.class.name\" = \"kafka.security.authorizer.AclAuthorizer\", \"allow.everyone.if.no.acl.found\" = \"true\", \"super.users\" = \"User:ANONYMOUS\" } (ZooKeeper mode; KRaft: org.apache.kafka.metadata.authorizer.StandardAuthorizer)",
                    );
                }
            }
            if procedure.created_metadata {
                p.at(
                    args.keyword_span.clone(),
                    args.field("do"),
                    "the metadata is created already by an earlier step",
                    "one `create-metadata` step per run",
                );
            }
            procedure.created_metadata = true;
            BrokerAction::CreateMetadata {
                acls: acls.is_some_and(|a| a.into_inner()),
            }
        }
        "create-topics" => create_topics(args, procedure, p, timeout)?,
        "audit" => {
            let min_replicas = match args
                .int(p, "min_replicas")
                .map(|m| (m.span(), u32::try_from(*m.get_ref())))
            {
                None => 2,
                Some((_, Ok(n))) if n >= 1 => n,
                Some((sp, _)) => {
                    p.at(
                        sp,
                        args.field("min_replicas"),
                        "must be at least 1",
                        "min_replicas = 2: partitions with fewer replicas are listed",
                    );
                    2
                }
            };
            BrokerAction::Audit { min_replicas }
        }
        _ => {
            // migrate-brokers
            let map = args.get::<BTreeMap<String, String>>(p, "map", MAP_TYPE);
            let topic = args.string(p, "bookkeeping_topic");
            let interrupt_after = args.int(p, "interrupt_after");
            let map = args.require(p, map, "map", MAP_HINT);
            let topic = args.require(
                p,
                topic,
                "bookkeeping_topic",
                "bookkeeping_topic = \"_migration\" (records the topics moved, for a resume)",
            );
            let map = broker_map(args, procedure, p, &map?);
            let topic = topic?;
            let bookkeeping_topic = topic.get_ref().clone();
            if bookkeeping_topic.is_empty()
                || procedure
                    .workload
                    .topics
                    .iter()
                    .any(|t| t.name == bookkeeping_topic)
            {
                p.at(
                    topic.span(),
                    args.field("bookkeeping_topic"),
                    format!("`{bookkeeping_topic}` cannot be the bookkeeping topic"),
                    "a topic of its own, not a workload topic, e.g. \"_migration\"",
                );
            }
            let interrupt_after = interrupt_after.map(|i| match u32::try_from(*i.get_ref()) {
                Ok(n) if n >= 1 => n,
                _ => {
                    p.at(
                        i.span(),
                        args.field("interrupt_after"),
                        "must be at least 1",
                        "interrupt_after = 2 kills the migration while its second topic moves",
                    );
                    1
                }
            });
            BrokerAction::MigrateBrokers {
                map,
                bookkeeping_topic,
                throttle,
                timeout,
                interrupt_after,
            }
        }
    };
    (p.list.len() == errors_before).then_some(Action::Broker(action))
}

const MAP_TYPE: &str = "a table of old broker = new broker";
const MAP_HINT: &str =
    "map = { kafka1 = \"kafka4\", kafka2 = \"kafka5\" } (old broker = new broker)";

/// The plan of a `reassign` step: exactly one of `plan`, `map`, `replication` (with
/// `topics` and `avoid`).
fn reassign_plan(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<ReassignPlan> {
    let cluster = procedure.cluster;
    let workload = procedure.workload;
    let plan =
        args.get::<Vec<RawPlannedPartition>>(p, "plan", "a list of { topic, partition, replicas }");
    let map = args.get::<BTreeMap<String, String>>(p, "map", MAP_TYPE);
    let replication = args.int(p, "replication");
    let restore = args.string(p, "restore");
    let topics = args.strings(p, "topics");
    let avoid = args.strings(p, "avoid");
    let given = [
        plan.is_some(),
        map.is_some(),
        replication.is_some(),
        restore.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        p.at(args.keyword_span.clone(), args.field("do"), "`reassign` needs exactly one of `plan`, `map`, `replication`, `restore`", "plan = [{ topic = \"orders\", partition = 0, replicas = [\"kafka2\", \"kafka3\"] }], or map = { kafka1 = \"kafka4\" }, or replication = 2 with topics = [\"payments*\"], or restore = \"STEP\" (the layout before that step)");
        return None;
    }
    if let Some(r) = restore {
        let step = r.get_ref();
        if step == args.name.get_ref() || !procedure.names.contains(step) {
            p.at(
                r.span(),
                args.field("restore"),
                format!("`{step}` is not an earlier step"),
                "restore = \"NAME\" of a step before this one: the layout when it started comes back",
            );
        }
        return Some(ReassignPlan::Restore { step: step.clone() });
    }
    if (topics.is_some() || avoid.is_some()) && replication.is_none() {
        let sp = topics
            .as_ref()
            .map(|t| t.span())
            .or(avoid.as_ref().map(|a| a.span()))
            .unwrap_or_default();
        p.at(
            sp,
            args.field("topics"),
            "`topics` and `avoid` go with `replication`",
            "replication = 2, topics = [\"payments*\"], avoid = [\"kafka2\"]",
        );
    }
    if let Some(pl) = plan {
        let mut out = Vec::new();
        let field = args.field("plan");
        if pl.get_ref().is_empty() {
            p.at(
                pl.span(),
                &field,
                "an empty plan",
                "list the partitions to move",
            );
        }
        for m in pl.get_ref() {
            match workload.topics.iter().find(|t| t.name == m.topic) {
                None => p.at(
                    pl.span(),
                    &field,
                    format!("`{}` is not a workload topic", m.topic),
                    format!("topics: {}", workload.topic_names().join(", ")),
                ),
                Some(t) if m.partition < 0 || m.partition >= i64::from(t.partitions) => p.at(
                    pl.span(),
                    &field,
                    format!("{} has no partition {}", m.topic, m.partition),
                    format!("partitions 0..{}", t.partitions),
                ),
                _ => {}
            }
            if m.replicas.is_empty() {
                p.at(
                    pl.span(),
                    &field,
                    format!("{}/{}: no replicas", m.topic, m.partition),
                    "replicas = [\"kafka2\", \"kafka3\"], preferred leader first",
                );
            }
            let mut seen = HashSet::new();
            if m.replicas.iter().any(|r| !seen.insert(r)) {
                p.at(
                    pl.span(),
                    &field,
                    format!("{}/{}: a broker twice", m.topic, m.partition),
                    "each replica on its own broker",
                );
            }
            broker_names(p, pl.span(), &m.replicas, &field, cluster);
            out.push(PlannedPartition {
                topic: m.topic.clone(),
                partition: m.partition as i32,
                replicas: m.replicas.clone(),
            });
        }
        return Some(ReassignPlan::Explicit(out));
    }
    if let Some(m) = map {
        return Some(ReassignPlan::Map(broker_map(args, procedure, p, &m)));
    }
    let r = replication?;
    let replication = match u32::try_from(*r.get_ref()) {
        Ok(n) if n >= 1 && n as usize <= cluster.brokers.len() => n,
        _ => {
            p.at(
                r.span(),
                args.field("replication"),
                format!("{} replicas are not possible here", r.get_ref()),
                format!("1..={} (the brokers)", cluster.brokers.len()),
            );
            1
        }
    };
    let topics = match &topics {
        None => "*".to_string(),
        Some(t) if t.get_ref().len() == 1 => t.get_ref()[0].clone(),
        Some(t) => {
            p.at(
                t.span(),
                args.field("topics"),
                "one pattern only",
                "topics = [\"payments*\"]",
            );
            String::new()
        }
    };
    let avoid = avoid
        .map(|a| broker_names(p, a.span(), a.get_ref(), &args.field("avoid"), cluster))
        .unwrap_or_default();
    Some(ReassignPlan::Raise {
        topics,
        replication,
        avoid,
    })
}

/// An old broker → new broker map: brokers of this cluster, each once, the new ones
/// running at this point.
fn broker_map(
    args: &StepArgs,
    procedure: &Procedure<'_>,
    p: &mut Problems<'_>,
    m: &toml::Spanned<BTreeMap<String, String>>,
) -> BTreeMap<String, String> {
    let cluster = procedure.cluster;
    let field = args.field("map");
    let map = m.get_ref().clone();
    let all: Vec<String> = map.keys().chain(map.values()).cloned().collect();
    broker_names(p, m.span(), &all, &field, cluster);
    let ids: BTreeMap<i32, i32> = map
        .iter()
        .filter_map(|(o, n)| Some((cluster.broker_id(o)?, cluster.broker_id(n)?)))
        .collect();
    if ids.len() == map.len() {
        if let Err(e) = units::check_broker_map(&ids) {
            p.at(
                m.span(),
                &field,
                e,
                "old broker = new broker, each once, e.g. { kafka1 = \"kafka4\" }",
            );
        }
    }
    for n in map.values() {
        if cluster.broker_id(n).is_some() && !procedure.running(n) {
            p.at(
                m.span(),
                &field,
                format!("new broker `{n}` is not running at this point"),
                "add the new brokers first (do = \"add-brokers\")",
            );
        }
    }
    map
}

/// `create-topics`: `topics` × `partitions` with `replication` (default: the brokers, at
/// most 3), names `PREFIX-0001`… (`prefix` default `kmh-scale`), none a workload topic's.
fn create_topics(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
    timeout: Duration,
) -> Option<BrokerAction> {
    let prefix = args.string(p, "prefix");
    let topics = args.int(p, "topics");
    let partitions = args.int(p, "partitions");
    let replication = args.int(p, "replication");
    let topics = args.require(p, topics, "topics", "topics = 20 (how many topics)");
    let partitions = args.require(
        p,
        partitions,
        "partitions",
        "partitions = 100 (per topic: 20 topics × 100 = 2,000 partitions)",
    );
    let mut count = |v: Option<toml::Spanned<i64>>, k: &'static str, max: i64, hint: &str| {
        let v = v?;
        match u32::try_from(*v.get_ref()) {
            Ok(n) if n >= 1 && i64::from(n) <= max => Some(n),
            _ => {
                p.at(v.span(), args.field(k), format!("must be 1 to {max}"), hint);
                None
            }
        }
    };
    // (one topic's assignment is one znode in ZooKeeper mode: 10,000 partitions keep it
    // well under ZooKeeper's 1 MB jute.maxbuffer)
    let topics = count(topics, "topics", 100_000, "more partitions: more topics");
    let partitions = count(
        partitions,
        "partitions",
        10_000,
        "more partitions: more topics (one topic's assignment is one znode in ZooKeeper mode)",
    );
    let running_brokers = procedure
        .cluster
        .brokers
        .iter()
        .filter(|b| procedure.running(b))
        .count() as u32;
    let replication = match replication {
        None => Some(running_brokers.clamp(1, 3)),
        Some(r) => count(
            Some(r),
            "replication",
            i64::from(running_brokers.max(1)),
            "at most the brokers running at this point",
        ),
    };
    let prefix = match prefix {
        None => "kmh-scale".to_string(),
        Some(s) => {
            let v = s.get_ref();
            let legal = !v.is_empty() && v.len() <= 200 && crate::scenario::topic_chars_ok(v);
            if !legal {
                p.at(
                    s.span(),
                    args.field("prefix"),
                    format!("`{v}` cannot start a topic name"),
                    "letters, digits, '.', '_' and '-', e.g. prefix = \"scale\"",
                );
            }
            v.clone()
        }
    };
    let clash = procedure
        .workload
        .topics
        .iter()
        .find(|t| t.name.starts_with(&format!("{prefix}-")));
    if let Some(t) = clash {
        p.at(
            args.keyword_span.clone(),
            args.field("prefix"),
            format!(
                "workload topic `{}` has a name this step would make",
                t.name
            ),
            "another prefix: the workers' topics stay theirs",
        );
    }
    if !procedure.created_topics.insert(prefix.clone()) {
        p.at(
            args.keyword_span.clone(),
            args.field("prefix"),
            format!("an earlier step creates topics named `{prefix}-…` already"),
            "another prefix for each `create-topics` step",
        );
    }
    Some(BrokerAction::CreateTopics {
        prefix,
        topics: topics?,
        partitions: partitions?,
        replication: replication?,
        timeout,
    })
}
