//! ZooKeeper: `zk-config` (an operator's rewrite of `zoo.cfg`), `zk-reconfig` (dynamic
//! reconfig), `zk-connect` (the brokers' connect string, rolled), `zk-copy` (subtree copy).

use std::time::Duration;

use serde::Serialize;
use toml::Spanned;

use super::{zk_list, Action, NodeState, Procedure, StepArgs};
use crate::scenario::load::Problems;

/// The keywords of this family.
pub const KEYWORDS: &[&str] = &["zk-config", "zk-reconfig", "zk-connect", "zk-copy"];

/// A ZooKeeper membership, connect-string or data action.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "do", rename_all = "kebab-case")]
pub enum ZkAction {
    /// Rewrite ZooKeeper nodes' `zoo.cfg` server list (no restart: it takes effect at
    /// their next start, as an operator's config management would do).
    #[serde(rename = "zk-config")]
    Config {
        /// Whose configuration is rewritten.
        nodes: Vec<String>,
        /// The server list: voting members.
        participants: Vec<String>,
        /// The server list: non-voting members.
        observers: Vec<String>,
    },
    /// ZooKeeper dynamic reconfiguration (the `reconfig` command), sent through `via`;
    /// then wait until every added server serves in its new role.
    #[serde(rename = "zk-reconfig")]
    Reconfig {
        /// Servers to add as participants.
        add: Vec<String>,
        /// Servers to add as observers.
        add_observers: Vec<String>,
        /// Servers to remove.
        remove: Vec<String>,
        /// Servers to send the request to (any member of the current configuration).
        via: Vec<String>,
        /// Longest wait for the new configuration to serve.
        timeout: Duration,
    },
    /// Point brokers' `zookeeper.connect` at other ZooKeeper servers; with `roll`, restart
    /// them one at a time (interval and health gate as `rolling-restart`).
    #[serde(rename = "zk-connect")]
    Connect {
        /// The servers the brokers will use.
        servers: Vec<String>,
        /// The brokers, in restart order.
        brokers: Vec<String>,
        /// Restart them so it takes effect.
        roll: bool,
        /// Pause between one broker healthy and the next stopped.
        interval: Duration,
        /// Longest wait for the health gate.
        timeout: Duration,
    },
    /// Copy a subtree from one ensemble to another (`harness zk copy`).
    #[serde(rename = "zk-copy")]
    Copy {
        /// Source servers.
        from: Vec<String>,
        /// Destination servers.
        to: Vec<String>,
        /// Subtree (e.g. Kafka's chroot `/kafka`).
        path: String,
        /// Catch-up pass: only nodes modified since this earlier step started.
        since: Option<String>,
        /// Operations per transaction.
        batch: usize,
        /// Delete destination nodes the source no longer has.
        prune: bool,
    },
}

impl ZkAction {
    /// The scenario keyword.
    pub fn keyword(&self) -> &'static str {
        match self {
            ZkAction::Config { .. } => "zk-config",
            ZkAction::Reconfig { .. } => "zk-reconfig",
            ZkAction::Connect { .. } => "zk-connect",
            ZkAction::Copy { .. } => "zk-copy",
        }
    }
}

/// Parses a ZooKeeper step.
pub(super) fn parse(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<Action> {
    let action = match args.keyword.as_str() {
        "zk-config" => config(args, procedure, p),
        "zk-reconfig" => reconfig(args, procedure, p),
        "zk-connect" => connect(args, procedure, p),
        _ => copy(args, procedure, p),
    };
    action.map(Action::ZooKeeper)
}

fn config(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<ZkAction> {
    let cluster = procedure.cluster;
    let nodes = args.strings(p, "nodes");
    let participants = args.strings(p, "participants");
    let observers = args.strings(p, "observers");
    let nodes = args.require(
        p,
        nodes,
        "nodes",
        "nodes = [\"zk1\", \"zk4\"] (whose zoo.cfg is rewritten)",
    );
    let participants = args.require(
        p,
        participants,
        "participants",
        "participants = [\"zk1\", \"zk2\", \"zk3\"] (node or ensemble names)",
    );
    let (nodes, participants_list) = (nodes?, participants?);
    let nodes = zk_list(p, &nodes, &args.field("nodes"), cluster);
    let participants = zk_list(p, &participants_list, &args.field("participants"), cluster);
    let observer_names = observers
        .as_ref()
        .map(|o| zk_list(p, o, &args.field("observers"), cluster))
        .unwrap_or_default();
    if let Some(o) = &observers {
        if let Some(both) = observer_names.iter().find(|n| participants.contains(n)) {
            p.at(
                o.span(),
                args.field("observers"),
                format!("`{both}` is both participant and observer"),
                "give each server one role",
            );
        }
    }
    if participants.is_empty() {
        p.at(
            participants_list.span(),
            args.field("participants"),
            "no participants",
            "an ensemble needs voting members",
        );
    }
    Some(ZkAction::Config {
        nodes,
        participants,
        observers: observer_names,
    })
}

fn reconfig(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<ZkAction> {
    let cluster = procedure.cluster;
    let mut list = |k: &'static str, p: &mut Problems<'_>| {
        args.strings(p, k)
            .map(|l| zk_list(p, &l, &args.field(k), cluster))
            .unwrap_or_default()
    };
    let add = list("add", p);
    let add_observers = list("add_observers", p);
    let remove = list("remove", p);
    let via = list("via", p);
    let timeout = args.duration(p, "timeout", Duration::from_secs(120));
    let at = args.keyword_span.clone();
    if add.is_empty() && add_observers.is_empty() && remove.is_empty() {
        p.at(
            at.clone(),
            args.field("add"),
            "a reconfig that changes nothing",
            "give add = [...], add_observers = [...] and/or remove = [...]",
        );
    }
    for n in add.iter().chain(&add_observers) {
        if procedure.state.get(n) == Some(&NodeState::Stopped) {
            p.at(
                at.clone(),
                args.field("add"),
                format!("`{n}` is not running at this point"),
                "start the joining servers first (seed 001: as observers of the current configuration)",
            );
        }
        if remove.contains(n) {
            p.at(
                at.clone(),
                args.field("remove"),
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
        p.at(
            at,
            args.field("do"),
            "dynamic reconfig is disabled on this cluster",
            "add reconfigEnabled = \"true\" (and skipACL = \"yes\", or a super user) to [cluster.zookeeper_config]",
        );
    }
    Some(ZkAction::Reconfig {
        add,
        add_observers,
        remove,
        via,
        timeout,
    })
}

fn connect(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<ZkAction> {
    let cluster = procedure.cluster;
    let servers = args.strings(p, "servers");
    let brokers_given = args.strings(p, "brokers");
    let roll = args.flag(p, "roll").is_none_or(|r| *r.get_ref());
    let interval = args.duration(p, "interval", Duration::from_secs(5));
    let timeout = args.duration(p, "timeout", Duration::from_secs(120));
    let servers = args.require(
        p,
        servers,
        "servers",
        "servers = [\"target\"] (ZooKeeper node or ensemble names)",
    )?;
    let servers = zk_list(p, &servers, &args.field("servers"), cluster);
    let brokers = match &brokers_given {
        None => cluster.brokers.clone(),
        Some(b) => super::broker_names(p, b.span(), b.get_ref(), &args.field("brokers"), cluster),
    };
    if roll {
        for n in &brokers {
            if procedure
                .state
                .get(n)
                .is_some_and(|st| *st != NodeState::Running && *st != NodeState::Unknown)
            {
                p.at(
                    args.keyword_span.clone(),
                    args.field("brokers"),
                    format!("`{n}` is not running at this point"),
                    "a roll restarts running brokers; use roll = false for stopped ones",
                );
            }
        }
    }
    Some(ZkAction::Connect {
        servers,
        brokers,
        roll,
        interval,
        timeout,
    })
}

fn copy(
    args: &mut StepArgs,
    procedure: &mut Procedure<'_>,
    p: &mut Problems<'_>,
) -> Option<ZkAction> {
    let cluster = procedure.cluster;
    let from = args.strings(p, "from");
    let to = args.strings(p, "to");
    let path = args.string(p, "path");
    let since = args.string(p, "since");
    let batch = args.int(p, "batch");
    let prune = args.flag(p, "prune").is_some_and(|v| *v.get_ref());
    let from = args.require(p, from, "from", "from = [\"source\"], to = [\"target\"]");
    let to = args.require(p, to, "to", "from = [\"source\"], to = [\"target\"]");
    let path = args.require(p, path, "path", "path = \"/kafka\" (Kafka's chroot)");
    let (from, to_list, path) = (from?, to?, path?);
    let from = zk_list(p, &from, &args.field("from"), cluster);
    let to = zk_list(p, &to_list, &args.field("to"), cluster);
    if let Some(same) = from.iter().find(|n| to.contains(n)) {
        p.at(
            to_list.span(),
            args.field("to"),
            format!("`{same}` is on both sides"),
            "copy between two different ensembles",
        );
    }
    if !path.get_ref().starts_with('/') || path.get_ref().len() > 1 && path.get_ref().ends_with('/')
    {
        p.at(
            path.span(),
            args.field("path"),
            format!("`{}` is not a ZooKeeper path", path.get_ref()),
            "an absolute path without a trailing '/', e.g. \"/kafka\"",
        );
    }
    let since = since.map(|sn: Spanned<String>| {
        if !procedure.names.contains(sn.get_ref()) || sn.get_ref() == args.name.get_ref() {
            p.at(
                sn.span(),
                args.field("since"),
                format!("no earlier step is named `{}`", sn.get_ref()),
                "name the step of the first copy: the catch-up copies what changed since it started",
            );
        }
        sn.into_inner()
    });
    let batch = match &batch {
        None => 100,
        Some(b) if (1..=10_000).contains(b.get_ref()) => *b.get_ref() as usize,
        Some(b) => {
            p.at(
                b.span(),
                args.field("batch"),
                "must be 1..=10000",
                "operations per transaction, e.g. batch = 100",
            );
            100
        }
    };
    Some(ZkAction::Copy {
        from,
        to,
        path: path.into_inner(),
        since,
        batch,
        prune,
    })
}
