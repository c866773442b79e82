//! Node lifecycle: `start`, `stop`, `restart` (one node, or a group with `nodes`), `kill`,
//! `pause`, `resume`, `rolling-restart`, `wait-healthy`, `wait-failover`, `node-config`.

use std::time::Duration;

use serde::Serialize;
use toml::Spanned;

use super::{node_list, resolve_target, zk_list, Action, NodeState, Procedure, StepArgs};
use crate::scenario::load::{config_map, Problems};
use crate::scenario::Target;

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &[
    "start",
    "stop",
    "kill",
    "pause",
    "resume",
    "restart",
    "rolling-restart",
    "wait-healthy",
    "wait-failover",
    "node-config",
];

/// A node lifecycle action.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum NodeAction {
    /// Start a stopped node and wait until it is ready. A broker whose previous process
    /// was killed may be refused by ZooKeeper while the old session lives on; the start is
    /// then tried again, as a process supervisor would, bounded by the session timeout.
    Start {
        /// The node.
        node: Target,
        /// Longest wait for it to be ready (a broker's log recovery after a kill grows
        /// with its partitions).
        timeout: Duration,
    },
    /// Start several stopped nodes at once, then wait until each is ready (ZooKeeper
    /// nodes that can only elect a leader together).
    StartAll {
        /// The nodes.
        nodes: Vec<String>,
        /// Longest wait for all to be ready.
        timeout: Duration,
    },
    /// Stop several nodes, then start them all at once and wait until each is ready.
    RestartAll {
        /// The nodes.
        nodes: Vec<String>,
        /// Longest wait for all to be ready.
        timeout: Duration,
    },
    /// Stop several nodes gracefully, one after the other (a decommissioned ensemble).
    StopAll {
        /// The nodes.
        nodes: Vec<String>,
    },
    /// Stop a node gracefully (SIGTERM: a broker's controlled shutdown) and wait for exit.
    Stop {
        /// The node.
        node: Target,
    },
    /// SIGKILL a node.
    Kill {
        /// The node.
        node: Target,
    },
    /// SIGSTOP a node (it holds its sessions and sockets but answers nothing).
    Pause {
        /// The node.
        node: Target,
    },
    /// SIGCONT a paused node.
    Resume {
        /// The node.
        node: Target,
    },
    /// Stop then start a node, and wait until it is ready.
    Restart {
        /// The node.
        node: Target,
        /// Longest wait for it to be ready again.
        timeout: Duration,
    },
    /// Restart nodes one at a time, in order; before the next, wait `interval` and the
    /// health gate (a broker: no partition under-replicated; a ZooKeeper node: it serves
    /// again, as leader, follower or observer).
    RollingRestart {
        /// Nodes in order (a stopped one is started: "restart" the not-yet-running targets).
        nodes: Vec<String>,
        /// Pause between one node and the next (after its gate, when `wait`).
        interval: Duration,
        /// Longest wait for the health gate.
        timeout: Duration,
        /// Wait for the health gate after each node; `false`: only the interval, as a
        /// runbook that says "one at a time, at least 10 s apart" is often run.
        wait: bool,
    },
    /// Rewrite Kafka nodes' `server.properties` (brokers and KRaft controllers): set and
    /// remove properties. No restart — it takes effect at each node's next start, as an
    /// operator's config change does before a roll.
    NodeConfig {
        /// Brokers and controllers whose configuration changes.
        nodes: Vec<String>,
        /// Properties set (added or replaced); `{address}` is each node's address.
        set: std::collections::BTreeMap<String, String>,
        /// Properties removed (the harness's default, if it had one, goes too).
        remove: Vec<String>,
    },
    /// Wait until every partition has its full ISR, and the given ZooKeeper nodes serve.
    WaitHealthy {
        /// ZooKeeper nodes that must serve (none: only the Kafka gate).
        zookeeper: Vec<String>,
        /// Longest wait.
        timeout: Duration,
    },
    /// Measure a failover: from the last node killed, stopped or paused (an earlier step),
    /// wait until an active controller that runs is known (a KRaft quorum's leader; in
    /// ZooKeeper mode the broker `/controller` names) and every partition with a running
    /// replica has a running leader, as the brokers' metadata says. How long each took goes
    /// into the report (`failovers`); figures, not a gate.
    WaitFailover {
        /// Longest wait; the step fails after it, naming what was still missing.
        timeout: Duration,
    },
}

impl NodeAction {
    /// The scenario keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            NodeAction::Start { .. } | NodeAction::StartAll { .. } => "start",
            NodeAction::RestartAll { .. } | NodeAction::Restart { .. } => "restart",
            NodeAction::Stop { .. } | NodeAction::StopAll { .. } => "stop",
            NodeAction::Kill { .. } => "kill",
            NodeAction::Pause { .. } => "pause",
            NodeAction::Resume { .. } => "resume",
            NodeAction::RollingRestart { .. } => "rolling-restart",
            NodeAction::WaitHealthy { .. } => "wait-healthy",
            NodeAction::NodeConfig { .. } => "node-config",
            NodeAction::WaitFailover { .. } => "wait-failover",
        }
    }

    /// The node of a single-node action.
    pub fn target(&self) -> Option<&Target> {
        match self {
            NodeAction::Start { node, .. }
            | NodeAction::Stop { node }
            | NodeAction::Kill { node }
            | NodeAction::Pause { node }
            | NodeAction::Resume { node }
            | NodeAction::Restart { node, .. } => Some(node),
            _ => None,
        }
    }
}

const NODE_HINT: &str =
    "node = \"kafka1\", or \"leader:TOPIC/PARTITION\", \"follower:TOPIC/PARTITION\", \"controller:active\", \"coordinator:transactions\", \"@BOUND\"";

/// Parses a node lifecycle step.
pub(super) fn parse(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    let kw = args.keyword.clone();
    let action = match kw.as_str() {
        "start" | "restart" | "stop" if args.has("nodes") => group(args, procedure, p),
        "rolling-restart" => rolling_restart(args, procedure, p),
        "wait-healthy" => wait_healthy(args, procedure, p),
        "wait-failover" => wait_failover(args, procedure, p),
        "node-config" => node_config(args, procedure, p),
        _ => single(args, procedure, p),
    };
    action.map(Action::Node)
}

/// `start`/`stop`/`kill`/`pause`/`resume`/`restart` of one node, with an optional `bind`.
fn single(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<NodeAction> {
    let kw = args.keyword.clone();
    let node = args.string(p, "node");
    let bind = args.string(p, "bind");
    let timeout = matches!(kw.as_str(), "start" | "restart")
        .then(|| args.duration(p, "timeout", Duration::from_secs(120)))
        .unwrap_or_default();
    let node = args.require(p, node, "node", NODE_HINT)?;
    let field = args.field("node");
    let target = resolve_target(p, &node, &field, procedure)?;
    // simulate the node's state to catch impossible orders
    let key = match &target {
        Target::Node(n) => Some(n.clone()),
        Target::Bound(b) => Some(format!("@{b}")),
        _ => None,
    };
    if let Some(key) = &key {
        let cur = procedure
            .state
            .get(key)
            .copied()
            .unwrap_or(NodeState::Running);
        let (allowed, next): (&[NodeState], NodeState) = match kw.as_str() {
            "start" => (&[NodeState::Stopped], NodeState::Running),
            "stop" | "kill" => (&[NodeState::Running, NodeState::Paused], NodeState::Stopped),
            "pause" => (&[NodeState::Running], NodeState::Paused),
            "resume" => (&[NodeState::Paused], NodeState::Running),
            _ => (&[NodeState::Running], NodeState::Running),
        };
        if cur != NodeState::Unknown && !allowed.contains(&cur) {
            p.at(
                node.span(),
                &field,
                format!("cannot {kw} `{target}`: it is {} at this point", cur.word()),
                "check the order of the steps (start after stop/kill, resume after pause)",
            );
        }
        if matches!(kw.as_str(), "start" | "restart") {
            procedure.check_formatted(p, key, node.span(), &field);
        }
        procedure.state.insert(key.clone(), next);
    }
    if let Some(b) = &bind {
        let bname = b.get_ref().clone();
        if bname.is_empty()
            || !bname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            p.at(
                b.span(),
                args.field("bind"),
                "not a usable name",
                "bind = \"victim\", then node = \"@victim\" in a later step",
            );
        }
        let bound_state = key
            .as_ref()
            .and_then(|k| procedure.state.get(k).copied())
            .unwrap_or(match kw.as_str() {
                "stop" | "kill" => NodeState::Stopped,
                "pause" => NodeState::Paused,
                _ => NodeState::Running,
            });
        procedure.state.insert(format!("@{bname}"), bound_state);
    }
    if matches!(kw.as_str(), "kill" | "stop" | "pause") {
        procedure.lost_node = true;
    }
    let node = target;
    Some(match kw.as_str() {
        "start" => NodeAction::Start { node, timeout },
        "stop" => NodeAction::Stop { node },
        "kill" => NodeAction::Kill { node },
        "pause" => NodeAction::Pause { node },
        "resume" => NodeAction::Resume { node },
        _ => NodeAction::Restart { node, timeout },
    })
}

/// `start`/`restart`/`stop` with `nodes`: the group forms (or goes) together.
fn group(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<NodeAction> {
    let kw = args.keyword.clone();
    let list = args.strings(p, "nodes")?;
    let timeout = (kw != "stop").then(|| args.duration(p, "timeout", Duration::from_secs(120)));
    let nodes = node_list(p, &list, &args.field("nodes"), procedure.cluster);
    // a group restart also starts the group's stopped (dormant) members
    let allowed: &[NodeState] = match kw.as_str() {
        "start" => &[NodeState::Stopped],
        "stop" => &[NodeState::Running, NodeState::Paused],
        _ => &[NodeState::Running, NodeState::Stopped],
    };
    for n in &nodes {
        let cur = procedure
            .state
            .get(n)
            .copied()
            .unwrap_or(NodeState::Running);
        if cur != NodeState::Unknown && !allowed.contains(&cur) {
            p.at(
                list.span(),
                args.field("nodes"),
                format!("cannot {kw} `{n}`: it is {} at this point", cur.word()),
                "check the order of the steps (start after stop/kill or a dormant node)",
            );
        }
        if kw == "stop" {
            procedure.state.insert(n.clone(), NodeState::Stopped);
            procedure.lost_node = true;
            continue;
        }
        procedure.check_formatted(p, n, list.span(), &args.field("nodes"));
        procedure.state.insert(n.clone(), NodeState::Running);
    }
    let timeout = timeout.unwrap_or_default();
    Some(match kw.as_str() {
        "start" => NodeAction::StartAll { nodes, timeout },
        "stop" => NodeAction::StopAll { nodes },
        _ => NodeAction::RestartAll { nodes, timeout },
    })
}

fn rolling_restart(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<NodeAction> {
    let list = args.strings(p, "nodes");
    let interval = args.duration(p, "interval", Duration::from_secs(5));
    let timeout = args.duration(p, "timeout", Duration::from_secs(120));
    let wait = args.flag(p, "wait").is_none_or(|w| *w.get_ref());
    let cluster = procedure.cluster;
    let nodes = match &list {
        None => cluster.brokers.clone(),
        Some(list) => {
            let nodes = node_list(p, list, &args.field("nodes"), cluster);
            for n in &nodes {
                match procedure.state.get(n) {
                    Some(NodeState::Paused) => p.at(
                        list.span(),
                        args.field("nodes"),
                        format!("`{n}` is paused at this point"),
                        "resume it first",
                    ),
                    Some(NodeState::Stopped) if cluster.broker_id(n).is_some() => p.at(
                        list.span(),
                        args.field("nodes"),
                        format!("`{n}` is not running at this point"),
                        "a rolling restart of brokers needs every broker it restarts running",
                    ),
                    _ => {}
                }
                procedure.check_formatted(p, n, list.span(), &args.field("nodes"));
                // a stopped ZooKeeper node (dormant) is started by the roll
                procedure.state.insert(n.clone(), NodeState::Running);
            }
            nodes
        }
    };
    Some(NodeAction::RollingRestart {
        nodes,
        interval,
        timeout,
        wait,
    })
}

/// `node-config`: `nodes` (Kafka nodes: brokers, controllers), `set` and/or `remove`.
fn node_config(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<NodeAction> {
    let list = args.strings(p, "nodes");
    let set: Option<Spanned<std::collections::BTreeMap<String, toml::Value>>> = args.get(
        p,
        "set",
        "a table of properties, e.g. { \"num.io.threads\" = \"4\" }",
    );
    let remove = args.strings(p, "remove");
    let list = args.require(p, list, "nodes", "nodes = [\"kafka1\", \"kafka2\"]")?;
    let nodes = node_list(p, &list, &args.field("nodes"), procedure.cluster);
    let cluster = procedure.cluster;
    for n in &nodes {
        if cluster.is_zookeeper(n) {
            p.at(
                list.span(),
                args.field("nodes"),
                format!("`{n}` is a ZooKeeper node"),
                "node-config rewrites Kafka nodes' server.properties; zk-config rewrites zoo.cfg",
            );
        }
    }
    let props = set
        .map(|set| config_map(p, set.get_ref(), set.span(), &args.field("set")))
        .unwrap_or_default();
    let remove: Vec<String> = remove.map(|r| r.into_inner()).unwrap_or_default();
    if props.is_empty() && remove.is_empty() {
        p.at(
            args.keyword_span.clone(),
            args.field("set"),
            "`node-config` changes nothing",
            "set = { \"num.io.threads\" = \"4\" } and/or remove = [\"log.retention.hours\"]",
        );
    }
    for (k, v) in &props {
        if let Some(bad) = unknown_placeholder(v) {
            p.at(
                args.keyword_span.clone(),
                args.field(&format!("set.{k}")),
                format!("`{bad}` in `{v}` is not a placeholder node-config knows"),
                "{address} (the node's address), {id} (its broker or node id), {voters} (the controllers' controller.quorum.voters)",
            );
        } else if v.contains("{voters}") && !cluster.has_controllers() {
            p.at(
                args.keyword_span.clone(),
                args.field(&format!("set.{k}")),
                "`{voters}` names the KRaft controllers, and this cluster has none",
                "name controllers in [cluster] (a migration: zookeeper and dormant controllers on 3.9)",
            );
        }
    }
    if let Some(k) = remove.iter().find(|k| props.contains_key(*k)) {
        p.at(
            args.keyword_span.clone(),
            args.field("remove"),
            format!("`{k}` is both set and removed"),
            "keep it in one of `set` and `remove`",
        );
    }
    Some(NodeAction::NodeConfig {
        nodes,
        set: props,
        remove,
    })
}

fn wait_healthy(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<NodeAction> {
    let list = args.strings(p, "nodes");
    let timeout = args.duration(p, "timeout", Duration::from_secs(120));
    let zookeeper = match &list {
        None => Vec::new(),
        Some(list) => {
            let l = zk_list(p, list, &args.field("nodes"), procedure.cluster);
            for n in &l {
                if procedure.state.get(n) == Some(&NodeState::Stopped) {
                    p.at(
                        list.span(),
                        args.field("nodes"),
                        format!("`{n}` is not running at this point"),
                        "wait only for running ZooKeeper nodes",
                    );
                }
            }
            l
        }
    };
    Some(NodeAction::WaitHealthy { zookeeper, timeout })
}

/// The first `{…}` in `value` that is not one of node-config's placeholders.
fn unknown_placeholder(value: &str) -> Option<&str> {
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let close = after.find('}')?;
        let token = &after[..=close];
        if !matches!(token, "{address}" | "{id}" | "{voters}") {
            return Some(token);
        }
        rest = &after[close + 1..];
    }
    None
}

/// `wait-failover`: `timeout` (default 10 min); a node must have been killed, stopped or
/// paused by an earlier step (what it measures from).
fn wait_failover(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<NodeAction> {
    let timeout = args.duration(p, "timeout", Duration::from_secs(600));
    if !procedure.lost_node {
        p.at(
            args.keyword_span.clone(),
            args.field("do"),
            "`wait-failover` measures from the last node killed, stopped or paused, and no step before it kills, stops or pauses one",
            "a step before it such as do = \"kill\", node = \"controller:active\"",
        );
    }
    Some(NodeAction::WaitFailover { timeout })
}

#[cfg(test)]
mod placeholder_tests {
    use super::unknown_placeholder;

    #[test]
    fn node_config_knows_three_placeholders() {
        assert_eq!(unknown_placeholder("{id}@{address}:9093"), None);
        assert_eq!(unknown_placeholder("{voters}"), None);
        assert_eq!(unknown_placeholder("plain"), None);
        assert_eq!(unknown_placeholder("{id}-{node}"), Some("{node}"));
    }
}
